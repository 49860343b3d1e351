#!/usr/bin/env python3
"""A benchmark handler: answers ok, except that 1 % of messages (offset % 100
== 37) fail the first time this process sees them ("fail transient"), as a
flaky downstream would. Reads the v1 framing of swarm-handler(7)."""
import sys

inp, out = sys.stdin.buffer, sys.stdout
failed = set()
while line := inp.readline():
    answers = []
    for _ in range(int(line.split()[1])):
        f = inp.readline().split()
        for _ in range(int(f[7])):
            _, n, v = inp.readline().split()
            inp.read(int(n) + int(v) + 1)
        inp.read(max(int(f[5]), 0) + max(int(f[6]), 0) + 1)
        where = (f[1], f[2], f[3])
        if int(f[3]) % 100 == 37 and where not in failed:
            failed.add(where)
            answers.append("fail transient")
        else:
            answers.append("ok")
    out.write("\n".join(answers) + "\n")
    out.flush()
