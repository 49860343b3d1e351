"""Write a swarm exec handler in Python: see swarm-handler(7).

    import swarm_handler

    def handle(batch):                  # or: async def handle(batch)
        for m in batch:
            process(m.key, m.value)      # bytes, or None (no key / a tombstone)
        # returning None: every message was handled

    swarm_handler.run(handle)

`handle(batch)` gets a list of `Message` objects (topic, partition, offset,
timestamp, key, value, headers) and may return, instead of None, one result
per message: `swarm_handler.OK`, `swarm_handler.fail("why")` or
`swarm_handler.DEFER` (not handled, deliver again: with ordering =
"partition", answer it for the later messages of a partition whose message
failed). If it raises, every message of the batch fails with the exception's
text and is retried as the configuration says. An `async def handle` runs in
one asyncio event loop for the life of the process (start your clients in it
once, on the first batch or in a task of your own).

The node tells this module which framing it writes (SWARM_HANDLER_PROTOCOL):
1, the text framing any language can parse line by line, or 2 (`protocol = 2`
in swarmd.toml's [handler]), a binary framing that a batch is read with in
one read and sliced with struct: most of what a Python handler spent per
message in framing 1 was readline() and split().

Standard library only. `pip install contrib/python` installs it; Debian's
swarmd package ships it in /usr/lib/python3/dist-packages.
"""
from __future__ import annotations

import asyncio
import inspect
import os
import struct
import sys
from typing import Awaitable, BinaryIO, Callable, Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple, Union

__all__ = ["Message", "Result", "Handler", "run", "answers", "batches", "OK", "DEFER", "fail", "ProtocolError"]
__version__ = "0.3.0"

OK = "ok"
DEFER = "defer"

#: What `handle` may return per message: OK (or True/None), DEFER, or fail("why").
Result = Union[str, bool, None]
#: `handle(batch)`: plain or async; None means every message was handled.
Handler = Callable[[List["Message"]], Union[Optional[Iterable[Result]], Awaitable[Optional[Iterable[Result]]]]]


def fail(reason: object) -> str:
    """The result for a message that failed: retried, then skipped or
    dead-lettered. Whitespace in the reason becomes single spaces (an
    answer is one line); it is cut at 500 characters."""
    text = " ".join(str(reason).split())[:500]
    return f"fail {text}" if text else "fail"


class ProtocolError(Exception):
    """The node sent something this module does not understand."""


class Message(tuple):
    """One message: `topic`, `partition`, `offset`, `timestamp` (ms since the
    epoch, -1 if the broker gave none), `key` (bytes, None without a key),
    `value` (bytes, None for a tombstone), `headers` (a tuple of (name, bytes)
    pairs, empty without headers).

    A tuple underneath: building one per message was the largest cost of a
    Python handler after the framing itself (tuple.__new__ is several times
    cheaper than a class's __init__)."""
    __slots__ = ()

    topic: str = property(lambda m: m[0])  # type: ignore[assignment]
    partition: int = property(lambda m: m[1])  # type: ignore[assignment]
    offset: int = property(lambda m: m[2])  # type: ignore[assignment]
    timestamp: int = property(lambda m: m[3])  # type: ignore[assignment]
    key: Optional[bytes] = property(lambda m: m[4])  # type: ignore[assignment]
    value: Optional[bytes] = property(lambda m: m[5])  # type: ignore[assignment]
    headers: Tuple[Tuple[str, bytes], ...] = property(lambda m: m[6])  # type: ignore[assignment]

    def __new__(cls, topic: str, partition: int, offset: int, timestamp: int, key: Optional[bytes],
                value: Optional[bytes], headers: Tuple[Tuple[str, bytes], ...]) -> "Message":
        return tuple.__new__(cls, (topic, partition, offset, timestamp, key, value, headers))

    @property
    def tombstone(self) -> bool:
        """True for a message whose value is null (a deletion on a compacted topic)."""
        return self[5] is None

    def __repr__(self) -> str:
        return f"Message({self[0]}/{self[1]}@{self[2]}, key={self[4]!r}, value={self[5]!r})"


def _read_exactly(inp: BinaryIO, n: int) -> bytes:
    data = inp.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _batches_v1(inp: BinaryIO) -> Iterator[List[Message]]:
    """Framing 1: `batch N`, then per message a text header line and the raw bytes."""
    while True:
        line = inp.readline()
        if not line:
            return
        fields = line.split()
        if len(fields) != 2 or fields[0] != b"batch":
            raise ProtocolError(f"expected 'batch <count>', got {line[:80]!r}")
        batch = []
        for _ in range(int(fields[1])):
            f = inp.readline().split()
            if len(f) != 8 or f[0] != b"message":
                raise ProtocolError(f"expected a message line, got {f!r}")
            key_len, value_len, header_count = int(f[5]), int(f[6]), int(f[7])
            headers = []
            for _ in range(header_count):
                h = inp.readline().split()
                if len(h) != 3 or h[0] != b"header":
                    raise ProtocolError(f"expected a header line, got {h!r}")
                name = _read_exactly(inp, int(h[1])).decode()
                headers.append((name, _read_exactly(inp, int(h[2]))))
                inp.read(1)
            key = _read_exactly(inp, key_len) if key_len >= 0 else None
            value = _read_exactly(inp, value_len) if value_len >= 0 else None
            inp.read(1)
            batch.append(Message(f[1].decode(), int(f[2]), int(f[3]), int(f[4]), key, value, tuple(headers)))
        yield batch


_BATCH = struct.Struct("<4sIIIQ")  # magic, messages, headers, topics, bytes that follow
_MESSAGE = struct.Struct("<IiqqqqqqII")  # topic index, partition, offset, timestamp, key and value spans, first header, headers
_HEADER = struct.Struct("<qqqq")  # name span, value span
_TOPIC = struct.Struct("<qq")  # name span


def _batches_v2(inp: BinaryIO) -> Iterator[List[Message]]:
    """Framing 2: a 24-byte batch header, then the whole batch in one read:
    fixed-size records walked by struct.iter_unpack (a loop in C), and the
    bytes they point into, sliced here. Parsing each message's fields in
    line, one unpack_from at a time, cost twice as much per message."""
    new = tuple.__new__
    no_headers = ()
    while True:
        head = inp.read(_BATCH.size)
        if not head:
            return
        if len(head) != _BATCH.size:
            raise ProtocolError("the input ended inside a batch header")
        magic, count, header_count, topic_count, size = _BATCH.unpack(head)
        if magic != b"SWB2":
            raise ProtocolError(f"not a framing-2 batch (magic {magic!r})")
        data = _read_exactly(inp, size)
        view = memoryview(data)
        messages_end = count * _MESSAGE.size
        headers_end = messages_end + header_count * _HEADER.size
        topics_end = headers_end + topic_count * _TOPIC.size
        if topics_end > size:
            raise ProtocolError(f"a batch of {size} bytes cannot hold its {count} message records")
        topics = [data[s:e].decode() for s, e in _TOPIC.iter_unpack(view[headers_end:topics_end])]
        headers = [(data[ns:ne].decode(), data[vs:ve] if vs >= 0 else None)
                   for ns, ne, vs, ve in _HEADER.iter_unpack(view[messages_end:headers_end])]
        batch = [new(Message, (topics[t], p, o, ts, data[ks:ke] if ks >= 0 else None, data[vs:ve] if vs >= 0 else None,
                               tuple(headers[fh:fh + hc]) if hc else no_headers))
                 for t, p, o, ts, ks, ke, vs, ve, fh, hc in _MESSAGE.iter_unpack(view[:messages_end])]
        view.release()
        yield batch


def batches(inp: BinaryIO, protocol: str = "1") -> Iterator[List[Message]]:
    """The batches on `inp` in framing `protocol` ("1" or "2"), until it ends."""
    return _batches_v2(inp) if protocol == "2" else _batches_v1(inp)


def answers(batch: Sequence[Message], results: Optional[Iterable[Result]]) -> str:
    """The answer lines for a batch: one `ok N` when all went well."""
    if results is None:
        return f"ok {len(batch)}\n"
    results = list(results)
    if len(results) != len(batch):
        raise ProtocolError(f"handle() returned {len(results)} results for {len(batch)} messages")
    if all(r == OK or r is None or r is True for r in results):
        return f"ok {len(batch)}\n"
    lines = []
    for r in results:
        if r is None or r is True or r == OK:
            lines.append(OK)
        elif r == DEFER:
            lines.append(DEFER)
        elif isinstance(r, str) and (r == "fail" or r.startswith("fail ")):
            lines.append(fail(r[5:]))
        else:
            lines.append(fail(r))
    return "\n".join(lines) + "\n"


def _failed(batch: Sequence[Message], e: BaseException) -> str:
    """Every message of the batch failed with the handler's exception."""
    return "\n".join([fail(f"{type(e).__name__}: {e}")] * len(batch)) + "\n"


def run(handle: Handler, stdin: Optional[BinaryIO] = None, stdout: Optional[TextIO] = None) -> None:
    """Reads batches until the node closes the input, calls `handle` for each
    (awaiting it when it is a coroutine function), answers."""
    inp = stdin or sys.stdin.buffer
    out = stdout or sys.stdout
    source = batches(inp, os.environ.get("SWARM_HANDLER_PROTOCOL", "1"))
    if inspect.iscoroutinefunction(handle):
        asyncio.run(_run_async(handle, source, out))
        return
    try:
        for batch in source:
            try:
                answer = answers(batch, handle(batch))  # type: ignore[arg-type]
            except ProtocolError:
                raise
            except Exception as e:  # the handler's own error: the batch fails and is retried
                answer = _failed(batch, e)
            out.write(answer)
            out.flush()
    except (EOFError, BrokenPipeError):
        pass  # the node is gone or stopping


async def _run_async(handle: Handler, source: Iterator[List[Message]], out: TextIO) -> None:
    """The loop of `run` for `async def handle`: the next batch is read in a
    thread, so tasks the handler started keep running while the node has
    nothing to send."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            batch = await loop.run_in_executor(None, next, source, None)
            if batch is None:
                return
            try:
                answer = answers(batch, await handle(batch))  # type: ignore[misc]
            except ProtocolError:
                raise
            except Exception as e:
                answer = _failed(batch, e)
            out.write(answer)
            out.flush()
    except (EOFError, BrokenPipeError):
        pass
