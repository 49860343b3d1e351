// The Node.js kit against swarm-handler(7)'s shared vectors (contrib/vectors):
// it reads every vector's bytes, in both framings, as the messages the vector
// describes, and answers them with exactly the bytes the vector expects, from
// a plain and from an async handler. Run: node --test contrib/node/test/
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { run, batches, answers, fail, OK, DEFER, ProtocolError } from "../index.js";

const vectorsDir = fileURLToPath(new URL("../../vectors/", import.meta.url));
const { vectors } = JSON.parse(readFileSync(vectorsDir + "vectors.json", "utf8"));
const frame = (name, framing) => readFileSync(`${vectorsDir}${name}.${framing}`);

function field(f) {
  if (f === null) return null;
  if ("text" in f) return Buffer.from(f.text, "utf8");
  if ("base64" in f) return Buffer.from(f.base64, "base64");
  const unit = Buffer.from(f.pattern, "utf8");
  return Buffer.concat(Array(Math.ceil(f.length / unit.length)).fill(unit)).subarray(0, f.length);
}
const result = (r) => (r === "ok" ? OK : r === "defer" ? DEFER : fail(r.slice("fail:".length)));

// In chunks of 4 KiB, as a pipe delivers them: a batch may end anywhere.
const chunked = (buf) => Readable.from((function* () { for (let i = 0; i < buf.length; i += 4096) yield buf.subarray(i, i + 4096); })());

async function answered(buf, framing, handle) {
  let out = "";
  const output = new Writable({ write(chunk, _enc, done) { out += chunk.toString(); done(); } });
  await run(handle, { input: chunked(buf), output, protocol: framing });
  return out;
}

test("every vector reads as its messages in both framings", async () => {
  for (const v of vectors) {
    for (const framing of ["1", "2"]) {
      const got = [];
      for await (const b of batches(chunked(frame(v.name, framing)), framing)) got.push(b);
      assert.equal(got.length, v.batches.length, `${v.name} ${framing}`);
      got.forEach((batch, i) => {
        assert.equal(batch.length, v.batches[i].length);
        batch.forEach((m, j) => {
          const w = v.batches[i][j];
          const where = `${v.name}, framing ${framing}, offset ${w.offset}`;
          assert.deepEqual([m.topic, m.partition, m.offset, m.timestamp], [w.topic, w.partition, w.offset, w.timestamp], where);
          assert.deepEqual(m.key, field(w.key), where);
          assert.deepEqual(m.value, field(w.value), where);
          assert.equal(m.tombstone, w.value === null, where);
          assert.deepEqual(m.headers, w.headers.map(([n, h]) => [n, field(h)]), where);
        });
      });
    }
  }
});

test("every vector is answered with its bytes by a plain and an async handler", async () => {
  for (const v of vectors) {
    for (const framing of ["1", "2"]) {
      let plan = v.batches.map((b) => b.map((m) => result(m.result)));
      const plain = (batch) => { const r = plan.shift(); return r.every((x) => x === OK) ? undefined : r; };
      assert.equal(await answered(frame(v.name, framing), framing, plain), v.answers, `${v.name} ${framing}`);
      plan = v.batches.map((b) => b.map((m) => result(m.result)));
      const later = async (batch) => { await new Promise((r) => setImmediate(r)); return plan.shift(); };
      assert.equal(await answered(frame(v.name, framing), framing, later), v.answers, `${v.name} ${framing} async`);
    }
  }
});

test("a throwing handler fails every message of its batch with the error", async () => {
  const out = await answered(frame("simple", "2"), "2", async () => { throw new TypeError("downstream\nsaid no"); });
  assert.equal(out, "fail TypeError: downstream said no\n".repeat(3));
});

test("a wrong number of results and a foreign framing are protocol errors", async () => {
  await assert.rejects(answered(frame("simple", "1"), "1", () => [OK]), ProtocolError);
  await assert.rejects(answered(frame("simple", "1"), "2", () => undefined), ProtocolError);
  assert.equal(answers([{}, {}, {}], [true, "failed to connect", new Error("x")]), "ok\nfail failed to connect\nfail x\n");
});
