#!/usr/bin/env python3
"""An exec handler for swarm in Python, with swarm's handler library: see
swarm-handler(7) and contrib/python (the swarm_handler package).

Run by each node as `[handler] kind = "exec"`, command = ["python3", "handler.py"]
(add `protocol = 2` for the faster binary framing; the library reads both).
Logs to stderr, which swarmd shows with the node's slot.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "contrib", "python"))
import swarm_handler  # noqa: E402

handled = 0


def handle(batch):
    """Your work goes here. Return None when every message was handled, or
    one result per message (swarm_handler.OK, swarm_handler.fail("why"),
    swarm_handler.DEFER). A value of None is a tombstone: the key was deleted."""
    global handled
    results = []
    for m in batch:
        try:
            if m.value is not None and m.value.startswith(b"{"):
                json.loads(m.value)
            results.append(swarm_handler.OK)
        except ValueError as e:  # one bad message must not take the batch down
            results.append(swarm_handler.fail(e))
    handled += len(batch)
    if handled % 10000 < len(batch):
        print(f"handled {handled} messages", file=sys.stderr, flush=True)
    return results


swarm_handler.run(handle)
