// Write a swarm exec handler in Node.js (swarm-handler(7)):
//
//   import { run, fail } from "swarm-handler";
//
//   run(async (batch) => {
//     for (const m of batch) await store(m.key, m.value);  // Buffers, or null
//     // undefined: every message handled; or one result per message: OK, DEFER, fail("why")
//   });
//
// No dependencies. The node says which framing it writes in
// SWARM_HANDLER_PROTOCOL: 1 (text lines) or 2 (binary records).

export const OK = "ok";
export const DEFER = "defer";

/** The node sent something this library does not understand. */
export class ProtocolError extends Error {}

/** The result for a message that failed: whitespace runs become single spaces, at most 500 characters. */
export function fail(reason) {
  const text = String(reason).split(/\s+/).filter(Boolean).join(" ").slice(0, 500);
  return text ? `fail ${text}` : "fail";
}

function message(topic, partition, offset, timestamp, key, value, headers) {
  return { topic, partition, offset, timestamp, key, value, headers, tombstone: value === null };
}

const NEED_MORE = Symbol("need more input");

/** Framing 1 from `buf` at `at`: [batch, next position], or NEED_MORE. */
function parseV1(buf, at) {
  const line = () => {
    const end = buf.indexOf(10, at);
    if (end < 0) throw NEED_MORE;
    const text = buf.toString("latin1", at, end);
    at = end + 1;
    return text.split(" ").filter(Boolean);
  };
  const bytes = (n) => {
    if (at + n > buf.length) throw NEED_MORE;
    const b = buf.subarray(at, at + n);
    at += n;
    return b;
  };
  const skip = () => { bytes(1); };
  const head = line();
  if (head.length !== 2 || head[0] !== "batch") throw new ProtocolError(`expected 'batch <count>', got ${JSON.stringify(head.join(" ").slice(0, 80))}`);
  const batch = [];
  for (let i = Number(head[1]); i > 0; i--) {
    const f = line();
    if (f.length !== 8 || f[0] !== "message") throw new ProtocolError(`expected a message line, got ${JSON.stringify(f)}`);
    const keyLen = Number(f[5]), valueLen = Number(f[6]);
    const headers = [];
    for (let h = Number(f[7]); h > 0; h--) {
      const hf = line();
      if (hf.length !== 3 || hf[0] !== "header") throw new ProtocolError(`expected a header line, got ${JSON.stringify(hf)}`);
      const name = bytes(Number(hf[1])).toString("utf8");
      headers.push([name, Buffer.from(bytes(Number(hf[2])))]);
      skip();
    }
    const key = keyLen >= 0 ? Buffer.from(bytes(keyLen)) : null;
    const value = valueLen >= 0 ? Buffer.from(bytes(valueLen)) : null;
    skip();
    // Topic names are ASCII-safe in framing 1 (no spaces); decode as UTF-8 all the same.
    batch.push(message(Buffer.from(f[1], "latin1").toString("utf8"), Number(f[2]), Number(f[3]), Number(f[4]), key, value, headers));
  }
  return [batch, at];
}

/** Framing 2 from `buf` at `at`: [batch, next position], or NEED_MORE. */
function parseV2(buf, at) {
  if (at + 24 > buf.length) throw NEED_MORE;
  if (buf.toString("latin1", at, at + 4) !== "SWB2") throw new ProtocolError(`not a framing-2 batch (magic ${JSON.stringify(buf.toString("latin1", at, at + 4))})`);
  const count = buf.readUInt32LE(at + 4), headerCount = buf.readUInt32LE(at + 8), topicCount = buf.readUInt32LE(at + 12);
  const size = Number(buf.readBigUInt64LE(at + 16));
  const base = at + 24;
  if (base + size > buf.length) throw NEED_MORE;
  const messagesEnd = count * 64, headersEnd = messagesEnd + headerCount * 32;
  if (headersEnd + topicCount * 16 > size) throw new ProtocolError(`a batch of ${size} bytes cannot hold its ${count} message records`);
  const i64 = (p) => Number(buf.readBigInt64LE(base + p));
  // Copies, not views: a handler may keep a message after its batch.
  const span = (s, e) => (s < 0 ? null : Buffer.from(buf.subarray(base + s, base + e)));
  const topics = [];
  for (let t = 0; t < topicCount; t++) topics.push(buf.toString("utf8", base + i64(headersEnd + t * 16), base + i64(headersEnd + t * 16 + 8)));
  const headers = [];
  for (let h = 0; h < headerCount; h++) {
    const p = messagesEnd + h * 32;
    headers.push([buf.toString("utf8", base + i64(p), base + i64(p + 8)), span(i64(p + 16), i64(p + 24))]);
  }
  const batch = [];
  for (let m = 0; m < count; m++) {
    const p = base + m * 64;
    const first = buf.readUInt32LE(p + 56), n = buf.readUInt32LE(p + 60);
    batch.push(message(topics[buf.readUInt32LE(p)], buf.readInt32LE(p + 4), i64(m * 64 + 8), i64(m * 64 + 16),
      span(i64(m * 64 + 24), i64(m * 64 + 32)), span(i64(m * 64 + 40), i64(m * 64 + 48)), headers.slice(first, first + n)));
  }
  return [batch, base + size];
}

/** The batches on a readable stream (async iterable of Buffers) in framing `protocol`, until it ends. */
export async function* batches(input, protocol = "1") {
  const parse = String(protocol) === "2" ? parseV2 : parseV1;
  let buf = Buffer.alloc(0);
  for await (const chunk of input) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    let at = 0;
    for (;;) {
      let parsed;
      try {
        parsed = parse(buf, at);
      } catch (e) {
        if (e === NEED_MORE) break;
        throw e;
      }
      [, at] = parsed;
      yield parsed[0];
    }
    buf = buf.subarray(at);
  }
  if (buf.length) throw new ProtocolError("the input ended inside a batch");
}

/** The answer lines for a batch (swarm-handler(7)): one `ok N` when all went well. */
export function answers(batch, results) {
  if (results === undefined || results === null) return `ok ${batch.length}\n`;
  const list = Array.from(results);
  if (list.length !== batch.length) throw new ProtocolError(`handle() returned ${list.length} results for ${batch.length} messages`);
  const isOK = (r) => r === OK || r === true || r === undefined || r === null;
  if (list.every(isOK)) return `ok ${batch.length}\n`;
  return list.map((r) => {
    if (isOK(r)) return OK;
    if (r === DEFER) return DEFER;
    if (typeof r === "string" && (r === "fail" || r.startsWith("fail "))) return fail(r.slice(5));
    return fail(r instanceof Error ? r.message : r);
  }).join("\n") + "\n";
}

/**
 * Reads batches until the node closes the input, calls `handle` (sync or
 * async) for each, answers. An exception fails every message of its batch
 * with its name and text.
 */
export async function run(handle, { input = process.stdin, output = process.stdout, protocol = process.env.SWARM_HANDLER_PROTOCOL ?? "1" } = {}) {
  const write = (text) => new Promise((resolve, reject) => output.write(text, (e) => (e ? reject(e) : resolve())));
  try {
    for await (const batch of batches(input, protocol)) {
      let answer;
      try {
        answer = answers(batch, await handle(batch));
      } catch (e) {
        if (e instanceof ProtocolError) throw e;
        answer = `${fail(`${e?.name ?? "Error"}: ${e?.message ?? e}`)}\n`.repeat(batch.length);
      }
      await write(answer);
    }
  } catch (e) {
    if (e?.code !== "EPIPE") throw e; // EPIPE: the node is gone or stopping
  }
}
