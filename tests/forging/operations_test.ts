/**
 * What a replica publishes about itself in `status.replicas.<pod>` and reports about handovers:
 * tables over the real step (lib/forging/operations.ts), reached by real events.
 */

import assert from "node:assert/strict";
import type { Effect } from "../../lib/forging/events.ts";
import type { ReplicaView } from "../../lib/kube/cardano_leader.ts";
import { FACTS, type Machine, NODE, opsForger } from "../support/machine.ts";

/** The replica view the last step published, if it published one. */
function published(m: Machine): ReplicaView | undefined {
  const e = m.effects.find((e): e is Extract<Effect, { kind: "publish_replica" }> =>
    e.kind === "publish_replica"
  );
  return e?.replica;
}

Deno.test("after resume, the forging leader's entry no longer gives the reason paused", () => {
  const m = opsForger();
  m.feed({ kind: "control_read", control: { pause: { reason: "upgrade", by: "alice" } } });
  assert.equal(m.phase, "paused");
  assert.equal(published(m)?.reason, "paused");
  m.answerStop();
  m.feed({ kind: "control_read", control: {} }, m.now + 1_000);
  m.answerClaim();
  m.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
  m.feed({ kind: "signalled", reason: "promote", pid: NODE.pid, outcome: "ok" });
  assert.equal(m.phase, "forging");
  const view = published(m);
  assert.ok(view !== undefined, "the forging state was not published");
  assert.equal(view.forging, true);
  assert.equal(view.reason, "resumed", "a forging leader still says paused");
});
