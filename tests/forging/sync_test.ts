/**
 * Sync-aware election (lib/forging/sync.ts) as tables over the real step: the tip's lag from the
 * node's metrics, a lagging leader handing over to a synced standby (or forging and saying so),
 * an unsynced standby letting a synced one take the Lease first, and unknown never blocking.
 */

import assert from "node:assert/strict";
import type { Effect, ForgingEvent } from "../../lib/forging/events.ts";
import type { ControlView, PeerView, ReplicaView } from "../../lib/kube/cardano_leader.ts";
import { NETWORK_KES_TIMING, slotAt } from "../../lib/cardano/kes_period.ts";
import type { ForgingConfig } from "../../lib/forging/state.ts";
import { TIP_MAX_AGE_MS } from "../../lib/forging/sync.ts";
import { nextWake } from "../../lib/forging/step.ts";
import {
  type Machine,
  ME,
  opsForger,
  opsStandby,
  OTHER,
  present,
  rec,
} from "../support/machine.ts";

const TIMING = NETWORK_KES_TIMING.preview;
const WALL = Date.parse("2026-12-01T00:00:00Z");
const SYNC: Partial<ForgingConfig> = {
  kesTiming: TIMING,
  nodeMetrics: true,
  maxTipLagSlots: 100,
};

/** A reading of the node's metrics whose tip lags the wall clock's slot by `lag` slots. */
function tip(lag: number, atMs = WALL): ForgingEvent {
  return {
    kind: "node_metrics_read",
    sample: { atMs, slotNum: slotAt(TIMING, atMs) - lag, forgingEnabled: 0 },
  };
}

/** A peer's entry as the step sees it. */
function peer(sync: PeerView["sync"], change: Partial<PeerView> = {}): PeerView {
  return {
    phase: "standby",
    nodeFound: true,
    sync,
    ...(sync === "unknown" ? {} : { tipLagSlots: sync === "synced" ? 3 : 900 }),
    freshUntil: 1e12,
    ...change,
  };
}

function control(replicas: Record<string, PeerView>, extra: ControlView = {}): ForgingEvent {
  return { kind: "control_read", control: { replicas, ...extra } };
}

function published(m: Machine): ReplicaView | undefined {
  const e = m.effects.find((e): e is Extract<Effect, { kind: "publish_replica" }> =>
    e.kind === "publish_replica"
  );
  return e?.replica;
}

/** The Lease request in flight (read through a call: the machine's state changes under TS). */
function busyOp(m: Machine): string | undefined {
  return m.state.leaseBusy?.op;
}

const RELEASED = present(rec("", "11", { releasedBy: OTHER }));

/** Feeds `e`, then answers the follower's reads of the Lease it asked for with the release. */
function feedReading(m: Machine, e: ForgingEvent, at: number): void {
  m.feed(e, at);
  while (m.did.includes("read_lease")) m.feed({ kind: "lease_read", observation: RELEASED }, at);
}

/** A clean release by OTHER, seen on the watch, and our acquire answered. */
function takeRelease(m: Machine): void {
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  const write = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
}

Deno.test("the tip's lag comes from the metrics' slotNum against the wall clock's slot, and ages out", () => {
  const m = opsForger(SYNC);
  m.feed(tip(20), m.now + 1);
  assert.deepEqual(m.effect("report").transition, {
    kind: "sync_judged",
    sync: { state: "synced", lagSlots: 20 },
    changed: true,
  });
  // A change of sync is published at once, with the lag.
  assert.equal(published(m)?.sync, "synced");
  assert.equal(published(m)?.tipLagSlots, 20);
  m.feed(tip(30), m.now + 1);
  assert.equal(published(m), undefined, "a new lag alone goes out with the next heartbeat");
  m.feed(tip(101), m.now + 1);
  assert.equal(published(m)?.sync, "lagging", "a change of sync is published at once");
  // A tip ahead of the clock (a clock behind) is no lag; a reading without slotNum is none.
  m.feed(tip(-5), m.now + 1);
  assert.equal(m.state.tip?.lagSlots, 0);
  const at = m.now;
  m.feed({ kind: "node_metrics_read", error: "connection refused" }, at + 1);
  assert.equal(m.state.tip?.lagSlots, 0, "a failed read keeps the last tip until it ages");
  m.feed({ kind: "node_metrics_read", error: "connection refused" }, at + TIP_MAX_AGE_MS + 1);
  const judged = m.effects.find((e) => e.kind === "report" && e.transition.kind === "sync_judged");
  assert.deepEqual(judged?.kind === "report" && judged.transition, {
    kind: "sync_judged",
    sync: { state: "unknown" },
    changed: true,
  });
});

Deno.test("a forging leader that falls behind hands over to the best synced standby", () => {
  const m = opsForger(SYNC);
  m.feed(control({
    "producer-1": peer("synced", { tipLagSlots: 9 }),
    "producer-2": peer("synced", { tipLagSlots: 2 }),
    "producer-3": peer("lagging"),
    "producer-4": peer("synced", { phase: "stepped_aside" }),
    "producer-5": peer("synced", { freshUntil: 0 }),
  }));
  m.feed(tip(30), m.now + 1);
  assert.equal(m.phase, "forging", "handed over while synced");
  m.feed(tip(400), m.now + 1);
  assert.equal(m.phase, "stopping");
  const started = m.effects.find((e) =>
    e.kind === "report" && e.transition.kind === "handover_started"
  );
  assert.ok(started?.kind === "report" && started.transition.kind === "handover_started");
  assert.equal(started.transition.reason, "sync");
  assert.equal(
    started.transition.to,
    "producer-2",
    "the least lag among the fresh synced standbys",
  );
  assert.ok(m.did.includes("signal:sync"), m.did.join());
  m.answerStop();
  const release = m.effect("release_lease");
  assert.equal(release.clean, true);
  assert.equal(release.handoverTo, "producer-2");
  assert.equal(m.phase, "stepped_aside");
  m.feed({ kind: "lease_released", record: rec("", "13", { releasedBy: ME }), clean: true });
  const reported = m.effect("report_handover");
  assert.deepEqual({ reason: reported.reason, result: reported.result, to: reported.to }, {
    reason: "sync",
    result: "released",
    to: "producer-2",
  });
});

Deno.test("the preferred replica is the sync handover's first choice when it is synced", () => {
  const m = opsForger(SYNC);
  m.feed(control({
    "producer-1": peer("synced", { tipLagSlots: 9 }),
    "producer-2": peer("synced", { tipLagSlots: 2 }),
  }, { preferred: "producer-1" }));
  m.feed(tip(400), m.now + 1);
  m.answerStop();
  assert.equal(m.effect("release_lease").handoverTo, "producer-1");
});

Deno.test("with no synced standby a lagging leader forges on and says so, once, until it syncs", () => {
  const m = opsForger(SYNC);
  m.feed(control({ "producer-1": peer("lagging"), "producer-2": peer("unknown") }));
  m.feed(tip(400), m.now + 1);
  assert.equal(m.phase, "forging");
  const said = m.effects.filter((e) =>
    e.kind === "report" && e.transition.kind === "unsynced_forging"
  );
  assert.deepEqual(said.map((e) => e.kind === "report" && e.transition), [
    { kind: "unsynced_forging", active: true, lagSlots: 400 },
  ]);
  assert.equal(published(m)?.reason, "forging_unsynced");
  m.feed(tip(450), m.now + 1);
  assert.ok(!m.did.includes("report:unsynced_forging"), "said twice");
  m.feed(tip(10), m.now + 1);
  assert.ok(m.did.includes("report:unsynced_forging"), "the end was not said");
  assert.notEqual(published(m)?.reason, "forging_unsynced");
});

Deno.test("a lagging standby lets a synced one take a free Lease first, for one lease duration", () => {
  const m = opsStandby(SYNC);
  m.feed(tip(400), m.now + 1);
  m.feed(control({ "producer-1": peer("synced") }));
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  assert.ok(!m.did.some((d) => d.startsWith("write")), "took the Lease before a synced standby");
  const wake = nextWake(m.state, m.now)!;
  assert.ok(wake <= m.now + 15_000, `no wake-up for the deferral's end (${wake - m.now} ms)`);
  // Still deferring just before the bound; the bound ends it whatever the peer says.
  const start = m.now;
  feedReading(m, tip(400, WALL + 14_000), start + 14_000);
  assert.ok(!m.did.some((d) => d.startsWith("write")));
  feedReading(m, { kind: "tick" }, start + 15_000);
  assert.equal(busyOp(m), "write", m.did.join());
  // Acquired, lagging, a synced standby waits: no promotion, a handover to it instead.
  const write = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.ok(!m.did.includes("place_keys:promote"), "a lagging leader promoted");
  assert.equal(m.phase, "stopping");
  m.answerStop();
  assert.equal(m.effect("release_lease").handoverTo, "producer-1");
});

Deno.test("the deferral ends when the synced standby's entry goes stale", () => {
  const m = opsStandby(SYNC);
  m.feed(tip(400), m.now + 1);
  m.feed(control({ "producer-1": peer("synced", { freshUntil: m.now + 4_000 }) }));
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  assert.ok(!m.did.some((d) => d.startsWith("write")));
  const until = m.state.acquireDeferral!;
  assert.ok(nextWake(m.state, m.now)! <= until);
  feedReading(m, { kind: "tick" }, until - 1);
  assert.equal(busyOp(m), undefined, "stopped deferring early");
  feedReading(m, { kind: "tick" }, until);
  assert.equal(busyOp(m), "write", m.did.join());
});

Deno.test("unknown never blocks: a standby of unknown sync defers, but then promotes as leader", () => {
  // Metrics unreadable: it still lets a synced standby go first...
  const m = opsStandby(SYNC);
  m.feed(control({ "producer-1": peer("synced") }));
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  assert.ok(!m.did.some((d) => d.startsWith("write")));
  // ...and with nobody synced it takes the Lease and forges: it may be the only failover left.
  const n = opsStandby(SYNC);
  n.feed(control({ "producer-1": peer("unknown"), "producer-2": peer("lagging") }));
  takeRelease(n);
  assert.ok(n.did.includes("place_keys:promote"), n.did.join());
  // A synced standby takes at once, whatever the others say.
  const s = opsStandby(SYNC);
  s.feed(tip(3), s.now + 1);
  s.feed(control({ "producer-1": peer("synced") }));
  takeRelease(s);
  assert.ok(s.did.includes("place_keys:promote"), s.did.join());
});

Deno.test("a lagging replica with no synced standby takes the Lease and forges, saying so", () => {
  const m = opsStandby(SYNC);
  m.feed(tip(400), m.now + 1);
  m.feed(control({ "producer-1": peer("lagging") }));
  takeRelease(m);
  assert.ok(m.did.includes("place_keys:promote"), m.did.join());
  m.answerClaim();
  m.feed({ kind: "keys_placed", purpose: "promote", placed: { changed: [], facts: {} } as never });
  m.feed({ kind: "signalled", reason: "promote", pid: 42, outcome: "ok" });
  assert.equal(m.phase, "forging");
  assert.ok(m.did.includes("report:unsynced_forging"), m.did.join());
});

Deno.test("an operator's handover to a target whose entry says it lags is refused by the leader", () => {
  const m = opsForger(SYNC);
  m.feed(control({ "producer-2": peer("lagging") }, {
    handover: { id: "h-9", to: "producer-2", by: "alice", ageMs: 0 },
  }));
  assert.equal(m.phase, "forging");
  assert.equal(m.effect("report_handover").result, "target_lagging");
});

Deno.test("without sync configured nothing of this applies", () => {
  const m = opsForger({ kesTiming: TIMING, nodeMetrics: true });
  m.feed(control({ "producer-1": peer("synced") }));
  m.feed(tip(100_000), m.now + 1);
  assert.equal(m.phase, "forging");
  assert.ok(!m.did.includes("report:sync_judged"));
  assert.equal(published(m)?.sync, undefined);
});
