#!/usr/bin/python3
"""The alternative a Python user has: a plain confluent-kafka consumer
(Debian's python3-confluent-kafka) that only counts its messages.
Prints: messages/s between 10 % and 90 % of COUNT, and CPU ns per message
of the whole process (librdkafka's threads included) over the same window.
With WORK "json+sha256", each value is JSON-decoded and hashed, as the
kits' handlers in the same benchmark do.
Usage: python-consumer.py BOOTSTRAP GROUP TOPIC COUNT [WORK]"""
import hashlib
import json
import os
import sys
import time

from confluent_kafka import Consumer

bootstrap, group, topic, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
work = len(sys.argv) > 5 and sys.argv[5] == "json+sha256"
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
              "session.timeout.ms": 6000, "log_level": 3})
c.subscribe([topic])
n = 0
marks = {}
while n < count:
    for m in c.consume(500, 1.0):
        if m.error() is None:
            n += 1
            if work:
                v = m.value()
                json.loads(v)
                hashlib.sha256(v).digest()
    if n >= count // 10 and "from" not in marks:
        marks["from"] = (time.monotonic(), sum(os.times()[:2]), n)
    if n >= count * 9 // 10 and "to" not in marks:
        marks["to"] = (time.monotonic(), sum(os.times()[:2]), n)
c.close()
(t0, c0, n0), (t1, c1, n1) = marks["from"], marks["to"]
print(f"{(n1 - n0) / (t1 - t0):.0f} {(c1 - c0) * 1e9 / (n1 - n0):.0f}")
