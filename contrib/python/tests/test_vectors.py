"""The Python kit against swarm-handler(7)'s shared vectors (contrib/vectors):
it reads every vector's bytes, in both framings, as the messages the vector
describes, and answers them with exactly the bytes the vector expects, from
a plain and from an async handler. Run: python3 -m unittest discover -s contrib/python/tests"""
import base64
import io
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import swarm_handler  # noqa: E402

VECTORS = os.path.join(HERE, "..", "..", "vectors")


def field(f):
    """A byte field of vectors.json."""
    if f is None:
        return None
    if "text" in f:
        return f["text"].encode()
    if "base64" in f:
        return base64.b64decode(f["base64"])
    unit = f["pattern"].encode()
    return (unit * (f["length"] // len(unit) + 1))[:f["length"]]


def result(r):
    if r == "ok":
        return swarm_handler.OK
    if r == "defer":
        return swarm_handler.DEFER
    return swarm_handler.fail(r[len("fail:"):])


def load():
    with open(os.path.join(VECTORS, "vectors.json"), encoding="utf-8") as f:
        return json.load(f)["vectors"]


class Vectors(unittest.TestCase):
    def frame(self, name, framing):
        with open(os.path.join(VECTORS, f"{name}.{framing}"), "rb") as f:
            return f.read()

    def test_every_vector_reads_as_its_messages_in_both_framings(self):
        for v in load():
            for framing in ("1", "2"):
                with self.subTest(vector=v["name"], framing=framing):
                    got = list(swarm_handler.batches(io.BytesIO(self.frame(v["name"], framing)), framing))
                    self.assertEqual(len(got), len(v["batches"]))
                    for batch, want in zip(got, v["batches"]):
                        self.assertEqual(len(batch), len(want))
                        for m, w in zip(batch, want):
                            self.assertEqual((m.topic, m.partition, m.offset, m.timestamp), (w["topic"], w["partition"], w["offset"], w["timestamp"]))
                            self.assertEqual(m.key, field(w["key"]))
                            self.assertEqual(m.value, field(w["value"]))
                            self.assertEqual(m.tombstone, w["value"] is None)
                            self.assertEqual(m.headers, tuple((n, field(h)) for n, h in w["headers"]))

    def answered(self, v, framing, handle):
        out = io.StringIO()
        os.environ["SWARM_HANDLER_PROTOCOL"] = framing
        swarm_handler.run(handle, stdin=io.BytesIO(self.frame(v["name"], framing)), stdout=out)
        return out.getvalue()

    def test_every_vector_is_answered_with_its_bytes_by_a_plain_and_an_async_handler(self):
        for v in load():
            results = iter([[result(m["result"]) for m in b] for b in v["batches"]])

            def handle(batch):
                r = next(results)
                return None if all(x == swarm_handler.OK for x in r) else r
            for framing in ("1", "2"):
                with self.subTest(vector=v["name"], framing=framing):
                    results = iter([[result(m["result"]) for m in b] for b in v["batches"]])
                    self.assertEqual(self.answered(v, framing, handle), v["answers"])
                    results = iter([[result(m["result"]) for m in b] for b in v["batches"]])

                    async def async_handle(batch):
                        return [x for x in next(results)]
                    self.assertEqual(self.answered(v, framing, async_handle), v["answers"])

    def test_a_raising_handler_fails_every_message_of_its_batch_with_the_exception(self):
        v = next(v for v in load() if v["name"] == "simple")

        def handle(batch):
            raise RuntimeError("downstream\nsaid no")
        self.assertEqual(self.answered(v, "2", handle), "fail RuntimeError: downstream said no\n" * 3)

    def test_a_wrong_number_of_results_and_a_foreign_framing_are_protocol_errors(self):
        v = next(v for v in load() if v["name"] == "simple")
        with self.assertRaises(swarm_handler.ProtocolError):
            self.answered(v, "1", lambda batch: [swarm_handler.OK])
        with self.assertRaises(swarm_handler.ProtocolError):
            list(swarm_handler.batches(io.BytesIO(self.frame("simple", "1")), "2"))

    def test_results_that_are_not_the_kits_own_become_failures_with_their_text(self):
        batch = [swarm_handler.Message("t", 0, i, 0, None, b"", ()) for i in range(4)]
        self.assertEqual(swarm_handler.answers(batch, [True, None, "failed to connect", ValueError("x")]),
                         "ok\nok\nfail failed to connect\nfail x\n")
        self.assertEqual(swarm_handler.fail("  "), "fail")


if __name__ == "__main__":
    unittest.main()
