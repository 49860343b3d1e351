#!/usr/bin/env python3
"""The hand-written framing-1 handler examples/handler.py was before
swarm_handler.py existed: line-by-line parsing, kept to measure against
(Benchmarks/bench.py, "Python handlers").
"""
import json
import sys


def read_batch(inp):
    line = inp.readline()
    if not line:
        return None
    kind, count = line.split()
    assert kind == b"batch"
    messages = []
    for _ in range(int(count)):
        f = inp.readline().split()
        assert f[0] == b"message"
        topic, partition, offset, timestamp = f[1].decode(), int(f[2]), int(f[3]), int(f[4])
        key_len, value_len, header_count = int(f[5]), int(f[6]), int(f[7])
        headers = {}
        for _ in range(header_count):
            _, name_len, hv_len = inp.readline().split()
            name = inp.read(int(name_len)).decode()
            headers[name] = inp.read(int(hv_len))
            inp.read(1)
        key = inp.read(key_len) if key_len >= 0 else None
        value = inp.read(value_len) if value_len >= 0 else None  # None: a tombstone (null value)
        inp.read(1)
        messages.append(dict(topic=topic, partition=partition, offset=offset, timestamp=timestamp,
                             key=key, value=value, headers=headers))
    return messages


def handle(message):
    """Your work goes here. Raise to fail the message (it is retried, then
    skipped or dead-lettered, as the configuration says). A value of None is
    a tombstone: the key was deleted."""
    if message["value"] is None:
        return
    if message["value"].startswith(b"{"):
        json.loads(message["value"])


def main():
    inp, out = sys.stdin.buffer, sys.stdout
    handled = 0
    while True:
        batch = read_batch(inp)
        if batch is None:
            return
        answers = []
        for m in batch:
            try:
                handle(m)
                answers.append("ok")
            except Exception as e:  # one bad message must not take the batch down
                answers.append("fail " + str(e).replace("\n", " ")[:200])
        if all(a == "ok" for a in answers):
            out.write(f"ok {len(answers)}\n")
        else:
            out.write("\n".join(answers) + "\n")
        out.flush()
        handled += len(batch)
        if handled % 10000 < len(batch):
            print(f"handled {handled} messages", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
