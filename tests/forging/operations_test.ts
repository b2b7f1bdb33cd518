/**
 * What a replica publishes about itself in `status.replicas.<pod>` and reports about handovers:
 * tables over the real step (lib/forging/operations.ts), reached by real events.
 */

import assert from "node:assert/strict";
import type { Effect } from "../../lib/forging/events.ts";
import type { ReplicaView } from "../../lib/kube/cardano_leader.ts";
import {
  FACTS,
  type Machine,
  ME,
  NODE,
  opsForger,
  opsStandby,
  OTHER,
  present,
  rec,
} from "../support/machine.ts";

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

Deno.test("the target of a handover reports it done once it holds the Lease and forges", () => {
  const released = { id: "h-1", to: "producer-0", reason: "handover", result: "released" } as const;
  // The old leader's result may come before the target forges, or after.
  for (const when of ["before", "after"] as const) {
    const m = opsStandby();
    if (when === "before") m.feed({ kind: "control_read", control: { lastHandover: released } });
    m.feed({
      kind: "lease_watched",
      observation: present(rec("", "11", { releasedBy: OTHER, handoverTo: "producer-0" })),
    });
    const write = m.effect("write_lease");
    m.feed({
      kind: "lease_written",
      decision: write.decision,
      record: rec(ME, "12"),
      sentAt: m.now,
    });
    m.answerClaim();
    m.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
    m.feed({ kind: "signalled", reason: "promote", pid: NODE.pid, outcome: "ok" });
    assert.equal(m.phase, "forging");
    if (when === "after") {
      assert.ok(!m.did.includes("report_handover"), "done before the leader's result came");
      m.feed({ kind: "control_read", control: { lastHandover: released } });
    }
    const done = m.effect("report_handover");
    assert.deepEqual({ id: done.id, to: done.to, result: done.result }, {
      id: "h-1",
      to: "producer-0",
      result: "done",
    }, when);
    m.feed({ kind: "control_read", control: { lastHandover: released } }, m.now + 1_000);
    assert.ok(!m.did.includes("report_handover"), `${when}: reported twice`);
  }
});

Deno.test("a handover is never reported done by a replica that did not take it, or does not forge", () => {
  const released = { id: "h-2", to: "producer-0", reason: "handover", result: "released" } as const;
  // Took a clean release naming nobody (a shutdown): not the handover's term.
  const m = opsForger();
  m.feed({ kind: "control_read", control: { lastHandover: released } });
  assert.ok(!m.did.includes("report_handover"), "a term not taken from the handover said done");
  // Named, but never forging (paused).
  const p = opsStandby();
  p.feed({
    kind: "control_read",
    control: { lastHandover: released, pause: { reason: "x", by: "a" } },
  });
  p.feed({
    kind: "lease_watched",
    observation: present(rec("", "11", { releasedBy: OTHER, handoverTo: "producer-0" })),
  });
  const write = p.effect("write_lease");
  p.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: p.now });
  assert.equal(p.phase, "paused");
  assert.ok(!p.did.includes("report_handover"), "done without forging");
});
