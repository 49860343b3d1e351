#!/usr/bin/env python3
"""A handler for the Kafka tests, speaking swarm-handler(7).

Appends one line per message it sees to $RECORD_FILE:
    <slot> <topic> <partition> <offset> <key> <ok|fail>
FAIL_KEYS=k1,k2   those keys always fail ("fail injected failure")
FAIL_ONCE_KEYS=k5 those keys fail the first time this handler sees them ("fail transient")
CRASH_KEY=k3      exit(1) the first time that key is seen (a marker file remembers)
CRASH_ALWAYS=1    exit(1) every time CRASH_KEY is seen (a poison message)
SLOW_MS=n         sleep n ms per message
ENV_FILE=path     write the handler's environment there at start (NAME=value lines)
WAITING_FILE=path append a line there when, its batch handled and not yet answered,
                  the next batch is already waiting on stdin (pipelining)
"""
import os
import select
import sys
import time

inp = sys.stdin.buffer
out = sys.stdout
record = open(os.environ["RECORD_FILE"], "a", buffering=1)
record_fd = os.open(os.environ["RECORD_FILE"], os.O_WRONLY | os.O_APPEND)
slot = os.environ.get("SWARM_SLOT", "?")
fail_keys = set(filter(None, os.environ.get("FAIL_KEYS", "").split(",")))
fail_once = set(filter(None, os.environ.get("FAIL_ONCE_KEYS", "").split(",")))
crash_key = os.environ.get("CRASH_KEY")
crash_marker = os.environ.get("RECORD_FILE") + ".crashed"
crash_always = os.environ.get("CRASH_ALWAYS") == "1"
slow = float(os.environ.get("SLOW_MS", "0")) / 1000.0
waiting_file = os.environ.get("WAITING_FILE")
if os.environ.get("ENV_FILE"):
    with open(os.environ["ENV_FILE"], "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in os.environ.items()))

while True:
    line = inp.readline()
    if not line:
        break  # EOF: the node is gone or stopping
    kind, count = line.split()
    assert kind == b"batch", line
    answers = []
    lines = []
    for _ in range(int(count)):
        header = inp.readline().split()
        assert header[0] == b"message", header
        topic, partition, offset = header[1].decode(), int(header[2]), int(header[3])
        key_len, value_len, header_count = int(header[5]), int(header[6]), int(header[7])
        for _ in range(header_count):
            _, name_len, hv_len = inp.readline().split()
            inp.read(int(name_len) + int(hv_len) + 1)
        key = inp.read(key_len).decode() if key_len >= 0 else ""
        inp.read(max(value_len, 0))  # -1: a tombstone
        inp.read(1)  # the newline after the value
        if crash_key and key == crash_key and (crash_always or not os.path.exists(crash_marker)):
            open(crash_marker, "w").close()
            record.write("".join(lines) + f"{slot} {topic} {partition} {offset} {key} crash\n")
            os._exit(1)
        if slow:
            time.sleep(slow)
        status = "fail" if key in fail_keys or key in fail_once else "ok"
        lines.append(f"{slot} {topic} {partition} {offset} {key} {status}\n")
        answers.append(("fail transient" if key in fail_once else "fail injected failure") if status == "fail" else "ok")
        fail_once.discard(key)
    # Only the pipe is looked at, not what readline() buffered: this can miss a
    # waiting batch, never invent one (with pipeline = 1 nothing is written
    # before the answers are read).
    if waiting_file and select.select([inp.fileno()], [], [], 0)[0]:
        with open(waiting_file, "a") as f:
            f.write("waiting\n")
    # One write per batch, before answering: what is recorded was seen.
    os.write(record_fd, "".join(lines).encode())
    out.write("\n".join(answers) + "\n")
    out.flush()
