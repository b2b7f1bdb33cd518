/**
 * Slot-aware planned handovers (lib/forging/slot_wait.ts) as tables over the real step: every
 * planned end of term of a forging leader within the margin of one of the pool's slots waits until
 * the slot has passed, bounded by the time it has; a fault never waits.
 */

import assert from "node:assert/strict";
import type { Effect, ForgingEvent, Transition } from "../../lib/forging/events.ts";
import type { PeerView, ReplicaView } from "../../lib/kube/cardano_leader.ts";
import { NETWORK_KES_TIMING, slotAt, slotStartMs } from "../../lib/cardano/kes_period.ts";
import type { ForgingConfig } from "../../lib/forging/state.ts";
import { POD_GRACE_RESERVE_MS, SCHEDULE_READ_MS } from "../../lib/forging/slot_wait.ts";
import { nextWake } from "../../lib/forging/step.ts";
import { type Machine, ME, opsForger, opsStandby, rec } from "../support/machine.ts";

const TIMING = NETWORK_KES_TIMING.preview;
/** A wall-clock time at the start of a slot. */
const WALL = slotStartMs(TIMING, slotAt(TIMING, Date.parse("2026-12-01T00:00:00Z")));
const SLOT0 = slotAt(TIMING, WALL);
const MARGIN = 5_000;
const SHUTDOWN_WAIT = 20_000;
const CFG: Partial<ForgingConfig> = {
  kesTiming: TIMING,
  schedule: { marginMs: MARGIN, shutdownWaitMs: SHUTDOWN_WAIT },
  fence: true,
};

/** A forger that read a schedule (at wall time WALL, now) with slots `offsets` seconds ahead. */
function scheduled(offsets: number[], cfg: Partial<ForgingConfig> = {}): Machine {
  const m = opsForger({ ...CFG, ...cfg });
  m.feed({
    kind: "schedule_read",
    wallMs: WALL,
    slots: offsets.map((o) => SLOT0 + o),
  }, m.now + 1);
  return m;
}

/** When slot SLOT0 + `offset` begins on the machine's clock (the schedule was read at `at`). */
function slotStart(m: Machine, offset: number): number {
  return m.state.schedule!.monoMs + offset * TIMING.slotLengthMs;
}

function transitions(m: Machine, kind: Transition["kind"]): Transition[] {
  return m.effects.flatMap((e) =>
    e.kind === "report" && e.transition.kind === kind ? [e.transition] : []
  );
}

function published(m: Machine): ReplicaView | undefined {
  const e = m.effects.find((e): e is Extract<Effect, { kind: "publish_replica" }> =>
    e.kind === "publish_replica"
  );
  return e?.replica;
}

/** Ticks to `until` in steps of at most 2 s, answering renews (the term goes on). */
function runTo(m: Machine, until: number, seen: string[] = []): string[] {
  while (m.now < until) {
    m.feed({ kind: "tick" }, Math.min(until, m.now + 2_000));
    seen.push(...m.did);
    const write = m.effects.find((e) => e.kind === "write_lease");
    if (write?.kind === "write_lease" && write.decision.kind === "renew") {
      m.feed({
        kind: "lease_written",
        decision: write.decision,
        record: rec(ME, String(m.now)),
        sentAt: m.now,
      });
      seen.push(...m.did);
    }
    if (m.did.includes("read_schedule")) {
      m.feed({
        kind: "schedule_read",
        wallMs: WALL + (m.now - m.state.schedule!.monoMs),
        slots: [...m.state.schedule!.slots],
      });
    }
  }
  return seen;
}

const HANDOVER: ForgingEvent = {
  kind: "control_read",
  control: { handover: { id: "h-1", to: "producer-2", by: "alice", ageMs: 0 } },
};

Deno.test("an operator's handover within the margin of a slot waits until it has passed", () => {
  const m = scheduled([3]);
  m.feed(HANDOVER);
  assert.equal(m.phase, "forging", "handed over before the slot");
  const [started] = transitions(m, "slot_wait_started");
  const end = slotStart(m, 3) + TIMING.slotLengthMs + MARGIN;
  assert.deepEqual(started, {
    kind: "slot_wait_started",
    trigger: "handover",
    waitMs: end - m.now,
    slot: SLOT0 + 3,
  });
  assert.equal(published(m)?.reason, "slot_wait_handover");
  assert.ok(nextWake(m.state, m.now)! <= end);
  // It forges on and renews meanwhile, through the slot.
  const seen = runTo(m, end - 1);
  assert.equal(m.phase, "forging");
  assert.ok(seen.includes("write:renew"));
  assert.ok(!seen.includes("signal:handover"));
  m.feed({ kind: "tick" }, end);
  const waited = (started as Extract<Transition, { kind: "slot_wait_started" }>).waitMs;
  assert.deepEqual(transitions(m, "slot_wait_ended"), [
    { kind: "slot_wait_ended", trigger: "handover", outcome: "passed", waitedMs: waited },
  ]);
  assert.equal(m.phase, "stopping");
  assert.ok(m.did.includes("signal:handover"), m.did.join());
  m.answerStop();
  assert.equal(m.effect("release_lease").handoverTo, "producer-2");
});

Deno.test("a planned end of term away from every slot's margin does not wait", () => {
  const m = scheduled([30, 60]);
  m.feed(HANDOVER);
  assert.equal(m.phase, "stopping");
  assert.deepEqual(transitions(m, "slot_wait_started"), []);
  const past = scheduled([-20]);
  past.feed({ kind: "shutdown" });
  assert.equal(past.phase, "stopping", "a slot long past held the shutdown");
});

Deno.test("close slots make one window; the schedule read again moves the wait's end", () => {
  const m = scheduled([2, 9]);
  m.feed(HANDOVER);
  const planned = m.state.planned!;
  // [2 - 5, 3 + 5) and [9 - 5, 10 + 5) overlap: clear at 15 s.
  assert.equal(planned.until, slotStart(m, 9) + 1_000 + MARGIN);
  // A new epoch's schedule without the second slot: the wait ends after the first.
  m.feed({
    kind: "schedule_read",
    wallMs: WALL + (m.now - m.state.schedule!.monoMs),
    slots: [SLOT0 + 2],
  });
  assert.equal(m.state.planned!.until, slotStart(m, 2) + 1_000 + MARGIN);
  // An unreadable one keeps the last, said once.
  m.feed({ kind: "schedule_read", wallMs: WALL, error: "line 3 is not a slot number" });
  m.feed({ kind: "schedule_read", wallMs: WALL, error: "line 3 is not a slot number" });
  assert.equal(m.state.schedule!.slots.length, 1);
  assert.equal(m.state.planned!.until, slotStart(m, 2) + 1_000 + MARGIN);
});

Deno.test("a fault never waits: the renew deadline stops the leader in the middle of a wait", () => {
  const m = scheduled([4]);
  m.feed(HANDOVER);
  assert.ok(m.state.planned !== undefined);
  // No renew is answered: the term ends at its deadline, well before the slot window ends.
  const deadline = m.state.election.term!.renewSentAt + 10_000;
  m.feed({ kind: "tick" }, deadline);
  assert.equal(m.phase, "stopping");
  assert.ok(m.did.includes("signal:renew_deadline"), m.did.join());
  assert.deepEqual(
    transitions(m, "slot_wait_ended").map((t) => t.kind === "slot_wait_ended" && t.outcome),
    ["cancelled"],
  );
  assert.equal(m.state.planned, undefined);
  m.answerStop();
  assert.equal(m.phase, "standby", "the dropped handover still stepped aside");
});

Deno.test("a shutdown waits at most SHUTDOWN_SLOT_WAIT, then stops; a standby's never waits", () => {
  // Slots every 4 s for a minute: one long window, longer than the shutdown's budget.
  const m = scheduled(Array.from({ length: 15 }, (_, i) => 2 + 4 * i));
  const at = m.now;
  m.feed({ kind: "shutdown" });
  assert.equal(m.phase, "forging");
  m.feed({ kind: "shutdown" }, at + 1_000);
  assert.equal(m.state.planned!.deadline, at + SHUTDOWN_WAIT, "a second SIGTERM moved the bound");
  runTo(m, at + SHUTDOWN_WAIT - 1);
  assert.equal(m.phase, "forging");
  m.feed({ kind: "tick" }, at + SHUTDOWN_WAIT);
  assert.deepEqual(
    transitions(m, "slot_wait_ended").map((t) => t.kind === "slot_wait_ended" && t.outcome),
    ["bound"],
  );
  assert.ok(m.did.includes("signal:shutdown"), m.did.join());
  m.answerStop();
  assert.equal(m.phase, "releasing");
  // A standby has nothing to lose: done at once, whatever the schedule says.
  const s = opsStandby(CFG);
  s.feed({ kind: "schedule_read", wallMs: WALL, slots: [SLOT0 + 1] }, s.now + 1);
  s.feed({ kind: "shutdown" });
  assert.equal(s.phase, "done");
});

Deno.test("a Pod deletion waits within its grace period; a node that exits meanwhile stops it at once", () => {
  const m = scheduled(Array.from({ length: 15 }, (_, i) => 2 + 4 * i));
  const at = m.now;
  m.feed({ kind: "pod_terminating", watched: true, graceMs: 15_000 });
  assert.equal(m.phase, "forging");
  assert.equal(m.state.planned!.deadline, at + 15_000 - POD_GRACE_RESERVE_MS);
  assert.equal(published(m)?.reason, "slot_wait_pod_terminating");
  // The kubelet stopped the node (its SIGTERM): gone, a fault, no more waiting.
  m.feed({ kind: "node_checked", node: undefined, accepts: true }, at + 1_000);
  assert.equal(m.phase, "stopping");
  assert.ok(m.did.includes("signal:cannot_forge"), m.did.join());
  m.answerStop("not_found");
  assert.equal(m.phase, "retired", "a deleted replica competes again");
  assert.ok(m.did.includes("release:clean"));
});

Deno.test("a Pod deletion without a grace period in the Pod waits at most the shutdown's time", () => {
  const m = scheduled(Array.from({ length: 15 }, (_, i) => 2 + 4 * i));
  const at = m.now;
  m.feed({ kind: "pod_terminating", watched: true });
  assert.equal(m.state.planned!.deadline, at + SHUTDOWN_WAIT);
  m.feed({ kind: "shutdown" }, at + 500);
  assert.equal(m.state.planned!.request.trigger, "pod_terminating", "a shutdown outranked it");
  runTo(m, at + SHUTDOWN_WAIT);
  assert.equal(m.phase, "stopping");
  m.answerStop();
  assert.equal(m.phase, "retired");
});

Deno.test("the sync handover and the return to the preferred replica wait for the slot too", () => {
  const peer: PeerView = {
    phase: "standby",
    nodeFound: true,
    sync: "synced",
    tipLagSlots: 1,
    freshUntil: 1e12,
  };
  const preferred = scheduled([3], { preferredStableMs: 0 });
  preferred.feed({
    kind: "control_read",
    control: { preferred: "producer-1", replicas: { "producer-1": peer } },
  });
  assert.equal(preferred.state.planned?.request.trigger, "preferred");
  const sync = scheduled([3], { maxTipLagSlots: 100, nodeMetrics: true });
  sync.feed({ kind: "control_read", control: { replicas: { "producer-1": peer } } });
  sync.feed({
    kind: "node_metrics_read",
    sample: { atMs: WALL, slotNum: SLOT0 - 500 },
  });
  assert.equal(sync.state.planned?.request.trigger, "sync");
  assert.equal(sync.phase, "forging");
  // An operator's handover outranks them, and replaces the wait.
  sync.feed(HANDOVER);
  assert.equal(sync.state.planned?.request.trigger, "handover");
});

Deno.test("the schedule is read again every 30 s, and the entry shows only the next slot's time", () => {
  const m = scheduled([40, 90]);
  assert.equal(published(m)?.nextSlotAt, new Date(slotStartMs(TIMING, SLOT0 + 40)).toISOString());
  const read = m.now;
  m.feed({ kind: "tick" }, read + SCHEDULE_READ_MS - 1);
  assert.ok(!m.did.includes("read_schedule"));
  m.feed({ kind: "tick" }, read + SCHEDULE_READ_MS);
  assert.ok(m.did.includes("read_schedule"), m.did.join());
  const loaded = transitions(scheduled([40, 90]), "schedule_loaded");
  assert.deepEqual(loaded, [{
    kind: "schedule_loaded",
    upcoming: 2,
    changed: true,
    next: SLOT0 + 40,
  }]);
});

Deno.test("without a schedule nothing waits", () => {
  const m = opsForger({ kesTiming: TIMING });
  m.feed(HANDOVER);
  assert.equal(m.phase, "stopping");
  assert.ok(!m.did.includes("read_schedule"));
  const n = opsForger({ kesTiming: TIMING });
  n.feed({ kind: "shutdown" });
  assert.equal(n.phase, "stopping");
});
