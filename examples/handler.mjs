#!/usr/bin/env node
// An exec handler for swarm in Node.js, with swarm's Node.js kit: see
// swarm-handler(7) and contrib/node.
//
// Run by each node as [handler] kind = "exec", command = ["node", "handler.mjs"]
// (add `protocol = 2` for the binary framing; the kit reads both). Logs to
// stderr, which swarmd shows with the node's slot.
import { run, fail, OK } from "../contrib/node/index.js";

let handled = 0;

// Your work goes here: return nothing when every message was handled, or one
// result per message (OK, DEFER, fail("why")). A null value is a tombstone.
await run(async (batch) => {
  const results = batch.map((m) => {
    try {
      if (m.value && m.value[0] === 0x7b) JSON.parse(m.value.toString("utf8"));
      return OK;
    } catch (e) { // one bad message must not take the batch down
      return fail(e.message);
    }
  });
  handled += batch.length;
  if (handled % 10000 < batch.length) console.error(`handled ${handled} messages`);
  return results;
});
