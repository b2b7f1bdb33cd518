/**
 * lib/runtime/guard_port.ts: the worker's side of the guard. Pings are answered at once from what
 * the loop registered; arming resolves or rejects on the guard's answer, or times out; notices
 * that arrive before the loop watches are kept for it.
 */

import assert from "node:assert/strict";
import type { FromWorker } from "../../lib/core/worker_protocol.ts";
import { RpcGuard } from "../../lib/runtime/guard_port.ts";
import { VirtualClock } from "../support/virtual_clock.ts";

function rpc() {
  const sent: FromWorker[] = [];
  const clock = new VirtualClock();
  return { sent, clock, guard: new RpcGuard((m) => sent.push(m), clock) };
}

Deno.test("a ping is answered at once with the loop's answer, and the heartbeat counts from it", async () => {
  const { sent, clock, guard } = rpc();
  guard.deliver({ kind: "ping", seq: 1 });
  assert.deepEqual(sent, [{ op: "guard_pong", seq: 1, armed: false, leftMs: 0 }]);
  assert.equal(guard.heartbeatAge(), undefined, "not armed: no heartbeat");
  guard.answerWith(() => ({ armed: true, leftMs: 4200 }));
  guard.deliver({ kind: "ping", seq: 2 });
  assert.deepEqual(sent[1], { op: "guard_pong", seq: 2, armed: true, leftMs: 4200 });
  await clock.advance(2500, () => Promise.resolve());
  assert.equal(guard.heartbeatAge(), 2.5);
});

Deno.test("arming resolves on the guard's ok and rejects with its reason", async () => {
  const { sent, guard } = rpc();
  const ok = guard.arm(2000);
  const refused = guard.arm(2000);
  const ids = sent.map((m) => m.op === "guard_arm" ? m.id : -1);
  assert.deepEqual(sent.map((m) => m.op), ["guard_arm", "guard_arm"]);
  guard.deliver({ kind: "armed", id: ids[1]!, ok: false, error: "the term had no time left" });
  guard.deliver({ kind: "armed", id: ids[0]!, ok: true });
  await ok;
  await assert.rejects(refused, /the term had no time left/);
});

Deno.test("an arming the guard never answers fails after its timeout", async () => {
  const { guard, clock } = rpc();
  const arming = guard.arm(2000);
  await clock.advance(2000, () => Promise.resolve());
  await assert.rejects(arming, /did not answer within 2000 ms/);
});

Deno.test("notices that come before the loop watches are delivered when it does, in order", () => {
  const { guard } = rpc();
  guard.deliver({ kind: "link", up: true });
  guard.deliver({ kind: "state", armed: false, demotions: {} });
  const seen: string[] = [];
  guard.watch((n) => seen.push(n.kind));
  assert.deepEqual(seen, ["link", "state"]);
  guard.deliver({ kind: "fired", reason: "deadline", ok: true });
  assert.deepEqual(seen, ["link", "state", "fired"]);
});
