/**
 * The election across clusters in the step (lib/forging/global.ts): a replica forges only with
 * its local term and the coordination Lease of that term; the priority delay; the guard bound as
 * the only proof across clusters; losing either Lease; handing the pool back to a higher-priority
 * cluster, to the cluster an operator names, or to anyone when Disabled. Tables over the real
 * step: no I/O, no timers.
 */

import assert from "node:assert/strict";
import { guardAnswer } from "../../lib/forging/guard.ts";
import { isForging } from "../../lib/forging/state.ts";
import { nextWake } from "../../lib/forging/step.ts";
import type { GlobalForgingConfig, MemberView } from "../../lib/forging/global_state.ts";
import type { ForgeClusterSpec } from "../../lib/kube/forge_cluster.ts";
import type { LeaseRecord } from "../../lib/kube/lease_store.ts";
import {
  describe,
  FACTS,
  Machine,
  ME,
  NODE,
  OTHER,
  present,
  rec,
  standby,
} from "../support/machine.ts";
import type { Effect } from "../../lib/forging/events.ts";
import { NETWORK_KES_TIMING, slotAt, slotStartMs } from "../../lib/cardano/kes_period.ts";

const EAST: GlobalForgingConfig = {
  identity: "east_5e1f",
  cluster: "east",
  region: "eu-west",
  priority: 1,
  priorityDelayMs: 5000,
  returnStableMs: 30_000,
  guardBoundMs: 11_000,
};
const WALL = Date.parse("2026-12-04T12:00:00Z");

/** A record of the coordination Lease. */
function grec(holder: string, rv: string, extra: Partial<LeaseRecord> = {}): LeaseRecord {
  return rec(holder, rv, extra);
}

/** Another cluster's entry. */
function member(cluster: string, extra: Partial<MemberView> = {}): MemberView {
  return {
    cluster,
    pod: "cardano-producer-1",
    phase: "awaiting_node",
    ready: true,
    state: "Priority-based",
    priority: 1,
    region: "us-east",
    heartbeat: "2026-12-04T12:00:00Z",
    ...extra,
  };
}

/**
 * Answers the global read in flight (and the members' read, if one is in flight too); returns
 * the effects of both steps.
 */
function globalRead(
  m: Machine,
  record: LeaseRecord | undefined,
  members: MemberView[] = [],
  at = m.now,
): Effect[] {
  const effects: Effect[] = [];
  if (m.state.global?.membersBusy) {
    effects.push(...m.feed({ kind: "members_read", members, control: {} }, at));
  }
  if (m.state.global?.busy?.op === "read") {
    effects.push(...m.feed({
      kind: "global_read",
      observation: record === undefined ? { kind: "absent" } : present(record),
    }, at));
  }
  return effects;
}

/** The last effect of `kind` among `effects`. */
function last<K extends Effect["kind"]>(effects: Effect[], kind: K): Extract<Effect, { kind: K }> {
  const found = effects.findLast((e) => e.kind === kind);
  assert.ok(found !== undefined, `no ${kind} among ${effects.map(describe).join(", ")}`);
  return found as Extract<Effect, { kind: K }>;
}

/** What the world answers while {@linkcode run} advances time. */
interface World {
  /** The coordination Lease as another cluster left it (undefined: as we last wrote it). */
  lease?: () => LeaseRecord | undefined;
  members?: () => MemberView[];
  spec?: ForgeClusterSpec;
  /** Answer our writes of the coordination Lease (false: they hang). */
  globalWrites?: boolean;
  /** Stop advancing once this holds. */
  until?: (m: Machine) => boolean;
}

/** What {@linkcode run} saw: every effect, and their short descriptions. */
interface Seen {
  effects: Effect[];
  did: string[];
}

/**
 * Advances `m` to `until`, waking when the step asks and answering what it asks of the world:
 * local renews succeed, node checks find the node, reads and writes of the coordination Lease
 * are answered as `world` says.
 */
function run(m: Machine, until: number, world: World = {}): Seen {
  let rv = 100;
  let ours: LeaseRecord | undefined;
  const seen: Seen = { effects: [], did: [] };
  const answer = (effects: readonly Effect[]) => {
    seen.effects.push(...effects);
    seen.did.push(...effects.map(describe));
    for (const e of effects) {
      if (e.kind === "write_lease" && e.decision.kind === "renew") {
        m.feed({
          kind: "lease_written",
          decision: e.decision,
          record: rec(ME, `${rv++}`),
          sentAt: m.now,
        });
        answer(m.effects);
      } else if (e.kind === "write_global" && world.globalWrites !== false) {
        ours = grec(m.state.cfg.global!.identity, `${rv++}`);
        m.feed({ kind: "global_written", decision: e.decision, record: ours, sentAt: m.now });
        answer(m.effects);
      } else if (e.kind === "read_global") {
        const lease = world.lease?.() ?? ours;
        m.feed({
          kind: "global_read",
          observation: lease === undefined ? { kind: "absent" } : present(lease),
        });
        answer(m.effects);
      } else if (e.kind === "release_global") {
        ours = grec("", `${rv++}`, {
          releasedBy: m.state.cfg.global!.identity,
          ...(e.handoverTo !== undefined ? { handoverTo: e.handoverTo } : {}),
        });
        m.feed({ kind: "global_released", record: ours, clean: e.clean });
        answer(m.effects);
      } else if (e.kind === "read_members") {
        m.feed({ kind: "members_read", members: world.members?.() ?? [], control: {} });
        answer(m.effects);
      } else if (e.kind === "read_cluster") {
        m.feed({
          kind: "cluster_read",
          ...(world.spec ? { spec: world.spec } : {}),
          wallMs: WALL + m.now,
        });
        answer(m.effects);
      } else if (e.kind === "check_node") {
        m.feed({ kind: "node_checked", node: NODE, accepts: true });
        answer(m.effects);
      }
    }
  };
  answer(m.effects);
  // Reads already in flight when we begin are answered first.
  if (m.state.global?.busy?.op === "read") answer([{ kind: "read_global", timeoutMs: 1000 }]);
  if (m.state.global?.membersBusy) answer([{ kind: "read_members", timeoutMs: 1000 }]);
  while (m.now < until && m.phase !== "stopping" && !(world.until?.(m) ?? false)) {
    const wake = nextWake(m.state, m.now) ?? until;
    m.feed({ kind: "tick" }, Math.min(until, Math.max(wake, m.now + 1)));
    answer(m.effects);
  }
  return seen;
}

/**
 * The local leader of cluster `east` (local fence done, node ready), its CardanoForgeCluster read
 * (`spec`, none by default). Nothing is forging yet: the coordination Lease is not held.
 */
function candidate(
  global: Partial<GlobalForgingConfig> = {},
  spec?: ForgeClusterSpec,
  cfg: Parameters<typeof standby>[0] = {},
): Machine {
  const m = standby({ ...cfg, global: { ...EAST, ...global } });
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  m.feed({
    kind: "lease_written",
    decision: m.effect("write_lease").decision,
    record: rec(ME, "12"),
    sentAt: m.now,
  });
  assert.equal(m.phase, "awaiting_node");
  assert.ok(!m.did.includes("claim_leader"), "no promotion without the coordination Lease");
  m.feed({ kind: "cluster_read", ...(spec !== undefined ? { spec } : {}), wallMs: WALL + m.now });
  return m;
}

/** A candidate that took a clean coordination Lease and forges. */
function globalForger(
  global: Partial<GlobalForgingConfig> = {},
  cfg: Parameters<typeof standby>[0] = {},
): Machine {
  const m = candidate(global, undefined, cfg);
  if (cfg.operations) m.feed({ kind: "control_read", control: {} });
  const released = grec("", "5", { releasedBy: "west_aa11" });
  const first = globalRead(m, released);
  // A lower priority waits its delay first.
  const seen = run(m, m.now + 60_000, {
    lease: () => released,
    globalWrites: false,
    until: (m) => m.state.global?.busy?.op === "write",
  });
  const write = last([...first, ...seen.effects], "write_global");
  m.feed({
    kind: "global_written",
    decision: write.decision,
    record: grec(m.state.cfg.global!.identity, "6"),
    sentAt: m.now,
  });
  assert.ok(m.did.includes("claim_global"));
  assert.deepEqual(m.did.filter((d) => d === "claim_leader" || d === "place_keys:promote"), [
    "claim_leader",
    "place_keys:promote",
  ]);
  m.feed({ kind: "leader_claimed", term: m.effect("claim_leader").term });
  m.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
  m.feed({ kind: "signalled", reason: "promote", pid: NODE.pid, outcome: "ok" });
  assert.ok(isForging(m.state));
  return m;
}

Deno.test("only the local leader competes, and it forges only once it holds the coordination Lease too", () => {
  const m = candidate();
  // The holder of another cluster released it cleanly: taken at once (priority 1, no delay).
  const write = last(globalRead(m, grec("", "5", { releasedBy: "west_aa11" })), "write_global");
  assert.equal(write.decision.kind, "acquire");
  assert.ok(!m.did.includes("place_keys:promote"));
  m.feed({
    kind: "global_written",
    decision: write.decision,
    record: grec(EAST.identity, "6"),
    sentAt: m.now,
  });
  assert.ok(m.did.includes("place_keys:promote"), m.did.join());
  // A standby of the same cluster only reads the coordination Lease.
  const s = standby({ global: EAST });
  assert.equal(s.state.global?.busy?.op, "read");
  const read = globalRead(s, grec("", "5", { releasedBy: "west_aa11" }));
  assert.ok(!read.some((e) => e.kind === "write_global"), "a standby never competes");
});

Deno.test("a lower-priority cluster waits its priority delay after the Lease allows it", () => {
  const m = candidate({ priority: 3 });
  const t0 = m.now;
  const released = grec("", "5", { releasedBy: "west_aa11" });
  const world: World = { lease: () => released, globalWrites: false };
  const first = globalRead(m, released);
  assert.ok(!first.some((e) => e.kind === "write_global"), "priority 3 waits two delays");
  run(m, t0 + 2 * EAST.priorityDelayMs - 1, world);
  assert.equal(m.state.global?.busy?.op === "write", false, "not before two delays");
  run(m, t0 + 2 * EAST.priorityDelayMs, world);
  assert.equal(m.state.global?.busy?.op, "write", "at two delays");
});

Deno.test("the CardanoForgeCluster's priority, not CLUSTER_PRIORITY, sets the delay; a release handed to us skips it", () => {
  const m = candidate({ priority: 1 }, { forgeState: "Priority-based", priority: 2 });
  const read = globalRead(m, grec("", "5", { releasedBy: "west_aa11" }));
  assert.ok(!read.some((e) => e.kind === "write_global"), "spec.priority 2 waits one delay");
  const h = candidate({ priority: 5 });
  last(
    globalRead(h, grec("", "5", { releasedBy: "west_aa11", handoverTo: "east" })),
    "write_global",
  );
});

Deno.test("another cluster's holder that did not release is taken over only after its guard bound, never without one", () => {
  const m = candidate();
  const seenAt = m.now;
  const held = grec("west_aa11", "5", { guardBoundMs: 11_000 });
  globalRead(m, held);
  // It runs out LEASE_DURATION + ACQUIRE_DELAY after we first saw it; its bound passed by then.
  run(m, seenAt + 16_999, { lease: () => held, globalWrites: false });
  assert.notEqual(m.state.global?.busy?.op, "write");
  run(m, seenAt + 17_001, { lease: () => held, globalWrites: false });
  assert.equal(m.state.global?.busy?.op, "write", "taken over once it ran out");

  const n = candidate();
  const unbounded = grec("west_aa11", "5");
  globalRead(n, unbounded);
  run(n, n.now + 60_000, { lease: () => unbounded, globalWrites: false });
  assert.notEqual(n.state.global?.busy?.op, "write", "no bound: nothing proves its node stopped");
  assert.equal(n.state.global?.unprovable !== undefined, true);
});

Deno.test("our own writes of the coordination Lease are conditional and carry our guard bound", () => {
  const m = globalForger();
  // The renew goes out a retry period after the acquisition's send time.
  m.feed({ kind: "tick" }, m.now + 2_000);
  const renew = m.effect("write_global");
  assert.equal(renew.decision.kind, "renew");
  assert.equal(renew.decision.record.resourceVersion, "6");
  assert.ok(renew.deadline < Infinity, "a renew cannot outlive the term");
});

Deno.test("the coordination Lease's renew deadline stops forging; the local term goes on and competes again", () => {
  const m = globalForger();
  const local = m.state.term;
  // Our renews of the coordination Lease hang; the local ones succeed.
  const seen = run(m, m.now + 10_001, { globalWrites: false });
  assert.equal(m.phase, "stopping");
  assert.ok(seen.did.includes("signal:global_renew_deadline"), seen.did.join());
  m.answerStop();
  assert.equal(m.phase, "awaiting_node", "still this cluster's candidate");
  assert.equal(m.state.term, local, "the same local term");
  assert.ok(!m.did.includes("release:clean"), "the local Lease is kept");
});

Deno.test("the guard is told the earlier of the two deadlines", () => {
  const m = globalForger();
  const g = m.state.global!.election.term!;
  const l = m.state.election.term!;
  const earlier = Math.min(g.renewSentAt, l.renewSentAt) + 10_000;
  assert.deepEqual(guardAnswer({ ...m.state, guardWanted: true }, m.now), {
    armed: true,
    leftMs: earlier - m.now,
  });
});

Deno.test("a lost local term releases the coordination Lease clean, to this cluster's next local leader", () => {
  const m = globalForger();
  // Another replica of this cluster writes the local Lease (our renew answers it); the
  // coordination Lease's renew, sent at the same time, succeeds.
  m.feed({ kind: "tick" }, m.now + 2_000);
  const renew = m.effect("write_lease");
  const grenew = m.effect("write_global");
  m.feed({
    kind: "global_written",
    decision: grenew.decision,
    record: grec(EAST.identity, "7"),
    sentAt: m.now,
  });
  m.feed({ kind: "lease_write_failed", decision: renew.decision, conflict: true, error: "409" });
  m.feed({ kind: "lease_read", observation: present(rec(OTHER, "13")) });
  assert.ok(m.did.includes("remove_keys"), m.did.join());
  m.answerStop();
  const release = m.effect("release_global");
  assert.equal(release.clean, true);
  assert.equal(release.handoverTo, "east");
});

Deno.test("the pool goes back to a higher-priority cluster ready for RETURN_STABLE, by a planned handover", () => {
  const m = globalForger({ priority: 2 });
  const t0 = m.now;
  let beat = 0;
  const west = () => [member("west", { priority: 1, heartbeat: `beat-${beat++}` })];
  run(m, t0 + 29_000, { members: west });
  assert.ok(isForging(m.state), "not before it has been ready for 30 s");
  const seen = run(m, t0 + 40_000, { members: west });
  assert.equal(m.phase, "stopping");
  assert.ok(seen.did.includes("signal:priority_return"), seen.did.join());
  m.answerStop();
  const release = m.effect("release_global");
  assert.equal(release.handoverTo, "west", "only west may take it at once");
  assert.equal(m.phase, "awaiting_node");
  // It does not compete again before two lease durations.
  const left = grec("", "9", { releasedBy: EAST.identity, handoverTo: "west" });
  run(m, m.now + 20_000, { lease: () => left, members: west, globalWrites: false });
  assert.notEqual(m.state.global?.busy?.op, "write");
});

Deno.test("a member that stops beating, or is not ready, is not handed the pool", () => {
  const m = globalForger({ priority: 2 });
  const t0 = m.now;
  run(m, t0 + 60_000, { members: () => [member("west", { priority: 1 })] });
  assert.ok(isForging(m.state), "a frozen heartbeat is a dead candidate");
  let beat = 0;
  run(m, t0 + 120_000, {
    members: () => [member("west", { priority: 1, ready: false, heartbeat: `b${beat++}` })],
  });
  assert.ok(isForging(m.state), "not ready");
  run(m, t0 + 180_000, {
    members: () => [member("west", { priority: 3, heartbeat: `b${beat++}` })],
  });
  assert.ok(isForging(m.state), "lower priority");
});

Deno.test("a Disabled cluster never competes, and its holder hands the pool to anyone", () => {
  const disabled: ForgeClusterSpec = { forgeState: "Disabled", priority: 1 };
  const m = candidate({}, disabled);
  const read = globalRead(m, grec("", "5", { releasedBy: "west_aa11" }));
  assert.ok(!read.some((e) => e.kind === "write_global"));
  const f = globalForger();
  f.feed({ kind: "cluster_read", spec: disabled, wallMs: WALL }, f.now + 1);
  assert.ok(f.did.includes("signal:cluster_disabled"), f.did.join());
  f.answerStop();
  const release = f.effect("release_global");
  assert.equal(release.clean, true);
  assert.equal(release.handoverTo, undefined, "any cluster may take it");
  assert.equal(f.phase, "awaiting_node");
});

Deno.test("an override forces its state until it expires, by the wall clock at the read", () => {
  const m = standby({ global: EAST });
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  m.feed({
    kind: "lease_written",
    decision: m.effect("write_lease").decision,
    record: rec(ME, "12"),
    sentAt: m.now,
  });
  const spec: ForgeClusterSpec = {
    forgeState: "Priority-based",
    priority: 1,
    override: {
      enabled: true,
      reason: "maintenance",
      expiresAtMs: WALL + m.now + 30_000,
      forceState: "Disabled",
    },
  };
  const released = grec("", "5", { releasedBy: "west_aa11" });
  const t0 = m.now;
  run(m, t0 + 29_000, { spec, lease: () => released, globalWrites: false });
  assert.notEqual(m.state.global?.busy?.op, "write", "forced Disabled");
  run(m, t0 + 36_000, { spec, lease: () => released, globalWrites: false });
  assert.equal(m.state.global?.busy?.op, "write", "the override expired: competes again");
});

Deno.test("shutdown releases both Leases", () => {
  const m = globalForger();
  m.feed({ kind: "shutdown" }, m.now + 1);
  m.answerStop();
  assert.ok(m.did.includes("release:clean"));
  assert.equal(m.effect("release_global").clean, true);
});

Deno.test("a pause on the coordination cluster's CardanoLeader pauses the pool's forger there", () => {
  const m = globalForger({}, { operations: true });
  m.feed({
    kind: "members_read",
    members: [],
    control: { pause: { reason: "KES rotation", by: "alice" } },
  }, m.now + 1);
  assert.equal(m.phase, "paused");
  assert.ok(m.did.includes("signal:paused"), m.did.join());
  // Its own cluster's spec has none: the coordination cluster's counts.
  assert.equal(m.state.ops?.control?.pause, undefined);
});

Deno.test("a member that was gone starts its RETURN_STABLE over when it comes back", () => {
  const m = globalForger({ priority: 2 });
  const t0 = m.now;
  let beat = 0;
  let beating = true;
  let backAt: number | undefined;
  const west = () => {
    if (beating) {
      beat++;
      backAt ??= m.now;
    }
    return [member("west", { priority: 1, heartbeat: `b${beat}` })];
  };
  run(m, t0 + 3_000, { members: west });
  // Cut off for a while: its heartbeat stops moving, its entry still says ready.
  beating = false;
  run(m, t0 + 40_000, { members: west });
  assert.ok(isForging(m.state), "a silent member is not handed the pool");
  // Back: ready again, but handed the pool only RETURN_STABLE after it came back.
  beating = true;
  backAt = undefined;
  run(m, m.now + 10_000, { members: west });
  assert.ok(backAt !== undefined);
  run(m, backAt + 29_000, { members: west });
  assert.ok(isForging(m.state), "handed back before RETURN_STABLE");
  run(m, backAt + 36_000, { members: west });
  assert.equal(m.phase, "stopping", "handed back once it had been ready for RETURN_STABLE");
});

Deno.test("a candidate on probation in its own cluster neither competes nor says it is ready", () => {
  // Its own record, re-acquired after its write went unanswered: probation LEASE_DURATION +
  // ACQUIRE_DELAY before its local term may forge.
  const m = standby({ global: EAST }, present(rec(ME, "10")));
  const write = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "11"), sentAt: m.now });
  assert.ok(m.state.election.term!.forgeFrom > m.now, "on probation");
  m.feed({ kind: "cluster_read", wallMs: WALL + m.now });
  const read = globalRead(m, grec("", "5", { releasedBy: "west_aa11" }));
  assert.ok(!read.some((e) => e.kind === "write_global"), "competed on probation");
  const entry = [...m.effects, ...read].findLast((e) => e.kind === "publish_member");
  assert.equal(
    entry === undefined || entry.kind !== "publish_member" || entry.entry.ready,
    entry === undefined,
    "said it was ready",
  );
});

/**
 * A priority-2 holder that handed the pool back to west (priority 1, ready all along) by a
 * planned handover, its release written; west's entry keeps beating.
 */
function handedToWest(): { m: Machine; west: () => MemberView[] } {
  const m = globalForger({ priority: 2 });
  let beat = 0;
  const west = () => [member("west", { priority: 1, heartbeat: `b${beat++}` })];
  run(m, m.now + 40_000, { members: west });
  assert.equal(m.phase, "stopping");
  m.answerStop();
  assert.equal(m.effect("release_global").handoverTo, "west");
  m.feed({
    kind: "global_released",
    record: grec("", "29", { releasedBy: EAST.identity, handoverTo: "west" }),
    clean: true,
  });
  return { m, west };
}

Deno.test("a release handed back to us is taken at once, hold-off or not", () => {
  const { m, west } = handedToWest();
  // West hands it straight back (an operator's request): our two-lease hold-off gives way.
  const back = grec("", "30", { releasedBy: "west_aa11", handoverTo: "east" });
  const seen = run(m, m.now + 2_000, { lease: () => back, members: west, globalWrites: false });
  assert.ok(seen.did.includes("write_global"), "held off a release addressed to us");
});

Deno.test("a holder keeps the pool RETURN_STABLE after taking it, whoever is ready", () => {
  const m = globalForger({ priority: 2 });
  const t0 = m.now;
  let beat = 0;
  // West (priority 1) has been ready all along, but we only just took the Lease.
  const west = () => [member("west", { priority: 1, heartbeat: `b${beat++}` })];
  run(m, t0 + 29_000, { members: west });
  assert.ok(isForging(m.state), "handed back before our term lasted RETURN_STABLE");
});

Deno.test("a competing candidate polls the coordination Lease every retry period, anyone else less often", () => {
  const m = candidate({ priority: 2 });
  globalRead(m, grec("west_aa11", "5", { guardBoundMs: 11_000 }));
  assert.equal(m.state.global!.nextReadAt - m.now, 2_000, "the candidate: RETRY_PERIOD");
  const s = standby({ global: EAST });
  globalRead(s, grec("west_aa11", "5", { guardBoundMs: 11_000 }));
  assert.equal(s.state.global!.nextReadAt - s.now, 5_000, "a standby: SLEEP_INTERVAL");
});

Deno.test("a handover to another cluster waits for one of the pool's slots, as every planned one", () => {
  const timing = NETWORK_KES_TIMING.preview;
  const cfg = { kesTiming: timing, schedule: { marginMs: 5_000, shutdownWaitMs: 20_000 } };
  const m = globalForger({ priority: 2 }, cfg);
  const wall = Date.now();
  const slot0 = slotAt(timing, wall);
  // A slot of the pool 40 s from now: its window is [35 s, 46 s) (slot 1 s, margin 5 s).
  m.feed({ kind: "schedule_read", wallMs: wall, slots: [slot0 + 40] }, m.now);
  const t0 = m.now;
  const slotStart = t0 + slotStartMs(timing, slot0 + 40) - wall;
  let beat = 0;
  const west = () => [member("west", { priority: 1, heartbeat: `b${beat++}` })];
  // West has been ready for RETURN_STABLE by 30 s; the handover would come within the window.
  const seen = run(m, slotStart - 1_000, { members: west });
  assert.ok(isForging(m.state), "handed over within the slot's margin");
  assert.ok(seen.did.includes("report:slot_wait_started"), seen.did.join());
  const after = run(m, slotStart + 1_000 + 5_000 + 2_000, { members: west });
  assert.equal(m.phase, "stopping", "handed over once the slot's window passed");
  assert.ok(after.did.includes("report:slot_wait_ended"));
  assert.ok(after.did.includes("signal:priority_return"));
});

Deno.test("once the cluster it handed the pool to holds the Lease, the old holder's hold-off ends: a failover waits only for the Lease", () => {
  const { m, west } = handedToWest();
  const releasedAt = m.now;
  // West takes it at once, then its whole cluster is cut off: its record never changes again.
  const west1 = grec("west_aa11", "30", { guardBoundMs: 11_000 });
  const seenAt = m.now + 100;
  run(m, seenAt, { lease: () => west1, members: west, globalWrites: false });
  // LEASE_DURATION + ACQUIRE_DELAY after the version was first seen, then our priority delay
  // (5 s): 22 s, not the 30 s hold-off and the delay after it (35 s).
  run(m, seenAt + 21_000, { lease: () => west1, members: west, globalWrites: false });
  assert.notEqual(m.state.global?.busy?.op, "write", "before the Lease ran out");
  const seen = run(m, seenAt + 25_000, { lease: () => west1, members: west, globalWrites: false });
  assert.ok(
    seen.did.includes("write_global"),
    `not taken over by ${seenAt + 25_000 - releasedAt} ms`,
  );
});
