/**
 * lib/forging/due.ts: the step's time-driven rules are written once, and `settle` and `nextWake`
 * agree on them. A property over random runs of the real step (fast-check): a driver answers the
 * step's own effects (in any order, with any outcome), advances time, and injects what the world
 * sends unasked (Lease watch events, operator requests, our Pod's deletion, shutdown). After every
 * step, no rule is left due (settle acted on each one whose time had come), and the next wake-up
 * lies in the future but no later than any rule's time, so the loop neither misses nor oversleeps
 * a rule, nor spins.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import type { ControlView } from "../../lib/kube/cardano_leader.ts";
import type { LeaseRecord, Observation } from "../../lib/kube/lease_store.ts";
import type { NodeInfo } from "../../lib/core/node_process.ts";
import { kesPeriodAt, MAINNET_KES_TIMING, slotAt } from "../../lib/cardano/kes_period.ts";
import { DUE, isDue } from "../../lib/forging/due.ts";
import type { Effect, ForgingEvent } from "../../lib/forging/events.ts";
import type { ForgingConfig, ForgingState } from "../../lib/forging/state.ts";
import { nextWake, start, step } from "../../lib/forging/step.ts";

const ME = "producer-0_me";
const NODES: (NodeInfo | undefined)[] = [
  { pid: 42, startTicks: 7, nonProducing: true },
  { pid: 43, startTicks: 9, nonProducing: true },
  { pid: 44, startTicks: 11, nonProducing: false },
  undefined,
];
const WALL = Date.parse("2026-12-01T00:00:00Z");
const FACTS = {
  issueCounter: 3,
  // Valid at WALL, so that a run with KES checks on can forge.
  kesStartPeriod: kesPeriodAt(MAINNET_KES_TIMING, WALL) - 1,
  hotKeyId: "ab12cd34",
  poolId: "00".repeat(28),
  signatureValid: true,
  vrfKeyConsistent: true,
};

/** One thing that happens to the sidecar. */
type Action =
  | { kind: "answer"; pick: number; variant: number }
  | { kind: "wait"; ms: number }
  | { kind: "watch"; holder: number; rv: number }
  | { kind: "control"; variant: number }
  | { kind: "pod_terminating" }
  | { kind: "shutdown" };

/**
 * The actions, weighted (each by `scale`); `ends` weighs the two that end a run (shutdown, our
 * Pod's deletion).
 */
function actions(ends: number, scale = 1): fc.Arbitrary<Action> {
  return fc.oneof(
    {
      weight: 8 * scale,
      arbitrary: fc.record({
        kind: fc.constant("answer" as const),
        pick: fc.nat(),
        variant: fc.nat(7),
      }),
    },
    {
      weight: 4 * scale,
      arbitrary: fc.record({
        kind: fc.constant("wait" as const),
        ms: fc.integer({ min: 1, max: 20_000 }),
      }),
    },
    {
      weight: 2 * scale,
      arbitrary: fc.record({
        kind: fc.constant("watch" as const),
        holder: fc.nat(3),
        rv: fc.nat(50),
      }),
    },
    {
      weight: 2 * scale,
      arbitrary: fc.record({ kind: fc.constant("control" as const), variant: fc.nat(11) }),
    },
    { weight: ends, arbitrary: fc.constant({ kind: "pod_terminating" as const }) },
    { weight: ends, arbitrary: fc.constant({ kind: "shutdown" as const }) },
  );
}

const action = actions(1);

const config: fc.Arbitrary<ForgingConfig> = fc.record({
  fence: fc.boolean(),
  startAsNonProducing: fc.boolean(),
  decoys: fc.boolean(),
  socketCheck: fc.boolean(),
  operations: fc.boolean(),
  nodeMetrics: fc.boolean(),
  kes: fc.boolean(),
  sync: fc.boolean(),
  preferred: fc.boolean(),
  schedule: fc.boolean(),
}).map(({ kes, sync, preferred, schedule, ...flags }) => ({
  identity: ME,
  podName: "producer-0",
  socketWaitTimeoutMs: 30_000,
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
  acquireDelayMs: 2_000,
  sleepIntervalMs: 5_000,
  ...flags,
  ...(kes ? { kesTiming: MAINNET_KES_TIMING } : {}),
  ...(sync ? { maxTipLagSlots: 100 } : {}),
  ...(preferred ? { preferredStableMs: 3_000 } : {}),
  // Slot waits need the slots' times: with KES timing only, as the sidecar has it.
  ...(schedule && kes ? { schedule: { marginMs: 3_000, shutdownWaitMs: 10_000 } } : {}),
}));

function record(holder: string, rv: number, extra: Partial<LeaseRecord> = {}): LeaseRecord {
  return { holder, durationMs: 15_000, transitions: 1, resourceVersion: String(rv), ...extra };
}

const HOLDERS = ["producer-1_other", "", ME, "producer-2_third"];

function observation(holder: number, rv: number): Observation {
  const who = HOLDERS[holder % HOLDERS.length]!;
  if (holder === 3 && rv % 5 === 0) return { kind: "absent" };
  return { kind: "present", record: record(who, rv, who === "" ? { releasedBy: HOLDERS[0] } : {}) };
}

/** Other replicas' entries: synced or lagging standbys, fresh for a while. */
function peers(variant: number, now: number): ControlView["replicas"] {
  return {
    "producer-1": {
      phase: "standby",
      nodeFound: true,
      sync: variant % 2 === 0 ? "synced" : "lagging",
      tipLagSlots: variant % 2 === 0 ? 3 : 500,
      freshUntil: now + 3_000 * (variant % 7),
    },
    "producer-2": {
      phase: "standby",
      nodeFound: true,
      sync: variant % 3 === 0 ? "synced" : "unknown",
      freshUntil: now + 9_000,
    },
  };
}

function controlView(variant: number, now: number): ControlView {
  switch (variant % 6) {
    case 0:
      return {};
    case 1:
      return { pause: { reason: "upgrade", by: "alice", endsAt: now + 7_000 } };
    case 2:
      return { handover: { id: `h${now}`, to: "", by: "bob", ageMs: 0 } };
    case 3:
      return { pause: { reason: "x", by: "a" }, handledId: "h0" };
    case 4:
      return { replicas: peers(variant, now), preferred: "producer-1" };
    default:
      return {
        replicas: peers(variant, now),
        handover: { id: `h${now}`, to: "producer-1", by: "bob", ageMs: 0 },
      };
  }
}

/**
 * The CardanoLeader as the runs with every rule on see it: mostly replicas' entries and a
 * preferred replica (pauses and operator's handovers rarer than in {@linkcode controlView}, so
 * that a term lasts long enough to reach the rules of issue 20).
 */
function ruleView(variant: number, now: number): ControlView {
  switch (variant % 6) {
    case 1:
      return { pause: { reason: "upgrade", by: "alice", endsAt: now + 3_000 } };
    case 5: // an operator's handover to producer-1, synced
      return {
        replicas: peers(variant + 1, now),
        handover: { id: `h${now}`, to: "producer-1", by: "bob", ageMs: 0 },
      };
    default:
      return {
        replicas: peers(variant, now),
        ...(variant % 2 === 0 ? { preferred: "producer-1" } : {}),
      };
  }
}

/** The views the current property's runs get, and the nodes its checks find. */
let views = controlView;
let nodes = NODES;

/** A node that stays up (restarted now and then): terms last long enough to reach the rules. */
const STEADY_NODES = [NODES[0], NODES[0], NODES[0], NODES[1]];

/** The event that answers `e`, `variant` choosing among its outcomes; undefined: no answer. */
function answer(e: Effect, variant: number, now: number, rv: number): ForgingEvent | undefined {
  const ok = variant % 4 !== 3;
  switch (e.kind) {
    case "probe_socket":
      return { kind: "socket_probed", accepts: ok };
    case "read_lease":
      return ok
        ? { kind: "lease_read", observation: observation(variant, rv) }
        : { kind: "lease_read_failed", error: "timeout" };
    case "write_lease":
      return ok
        ? { kind: "lease_written", decision: e.decision, record: record(ME, rv), sentAt: now }
        : { kind: "lease_write_failed", decision: e.decision, conflict: variant > 4, error: "x" };
    case "release_lease":
      return ok
        ? { kind: "lease_released", record: record("", rv), clean: e.clean }
        : { kind: "lease_release_failed", error: "x" };
    case "start_fence":
      return {
        kind: "fence_done",
        term: e.term,
        previous: e.previousHolder,
        outcome: ok ? { proven: true, how: "pod_gone" } : { proven: false, why: "x" },
      };
    case "claim_leader":
      return { kind: "leader_claimed", term: e.term, ...(ok ? {} : { error: "x" }) };
    case "check_node":
      return { kind: "node_checked", node: nodes[variant % nodes.length], accepts: ok };
    case "check_sources":
      return { kind: "sources_checked", differ: variant > 3, ...(ok ? {} : { problem: "x" }) };
    case "check_credentials":
      return ok
        ? { kind: "credentials_checked", facts: FACTS, wallMs: WALL + now }
        : { kind: "credentials_checked", error: "x", wallMs: WALL + now };
    case "read_node_metrics": {
      // The tip: current, far behind, or absent.
      const atMs = WALL + now;
      const slot = slotAt(MAINNET_KES_TIMING, atMs);
      const slotNum = variant % 3 === 0 ? slot - 2 : variant % 3 === 1 ? slot - 900 : undefined;
      return ok
        ? {
          kind: "node_metrics_read",
          sample: {
            atMs,
            forgingEnabled: variant % 2,
            ...(slotNum !== undefined ? { slotNum } : {}),
          },
        }
        : { kind: "node_metrics_read", error: "x" };
    }
    case "place_keys":
      if (e.purpose === "boot" && e.decoys) {
        return ok
          ? { kind: "decoys_placed", changed: ["vrf"] }
          : { kind: "keys_place_failed", purpose: "boot", error: "x" };
      }
      return ok
        ? {
          kind: "keys_placed",
          purpose: e.purpose,
          placed: { changed: ["kes"], facts: FACTS },
          wallMs: WALL + now,
        }
        : { kind: "keys_place_failed", purpose: e.purpose, error: "x" };
    case "remove_keys":
      return { kind: "keys_removed", stop: e.stop, ok };
    case "signal":
      return {
        kind: "signalled",
        reason: e.reason,
        ...(e.stop !== undefined ? { stop: e.stop } : {}),
        pid: 42,
        outcome: ok ? "ok" : variant > 4 ? "not_found" : "refused",
      };
    case "read_control":
      return ok
        ? { kind: "control_read", control: views(variant, now) }
        : { kind: "control_read_failed", error: "x" };
    case "read_schedule": {
      // Slots near now, far off, or a file that cannot be read.
      const slot = slotAt(MAINNET_KES_TIMING, WALL + now);
      const dense = Array.from({ length: 10 }, (_, i) => 1 + 3 * i); // windows back to back
      const near = [dense, [2, 6, 40], [1], [90, 200], []][variant % 5]!;
      return ok
        ? { kind: "schedule_read", wallMs: WALL + now, slots: near.map((o) => slot + o) }
        : { kind: "schedule_read", wallMs: WALL + now, error: "line 2 is not a slot number" };
    }
    case "check_pod":
      return ok ? { kind: "pod_checked" } : { kind: "pod_check_failed", error: "x" };
    default:
      return undefined; // reports, publishing, cancelling a fence: nothing comes back
  }
}

/** What must hold after every step. */
function checkSettled(state: ForgingState, now: number, after: string): void {
  for (const [name, rule] of Object.entries(DUE)) {
    assert.ok(!isDue(rule(state), now), `rule ${name} left due at ${now} after ${after}`);
  }
  const wake = nextWake(state, now);
  assert.ok(wake === undefined || wake > now, `next wake ${wake} not after ${now} (${after})`);
  for (const [name, rule] of Object.entries(DUE)) {
    const at = rule(state);
    if (at === undefined) continue;
    assert.ok(wake !== undefined && wake <= at, `next wake ${wake} is after rule ${name} (${at})`);
  }
}

/** What the runs reached, so that a property provably covers the rules it is meant to. */
const reached = new Map<string, number>();

/** Notes the rules the state shows at work. */
function noteReached(state: ForgingState): void {
  const seen = [
    ["forging", state.phase.kind === "forging"],
    ["acquire deferred", state.acquireDeferral !== undefined],
    ["forging unsynced", state.unsyncedForging === true],
    [`handover (${state.ops?.pendingHandover?.reason})`, state.ops?.pendingHandover !== undefined],
    [`slot wait (${state.planned?.request.trigger})`, state.planned !== undefined],
  ] as const;
  for (const [what, yes] of seen) if (yes) reached.set(what, (reached.get(what) ?? 0) + 1);
}

/** Whether an effect gets an answer at all (reports and publications never do). */
function answered(e: Effect): boolean {
  return answer(e, 0, 0, 0) !== undefined;
}

/** One random run of the real step, checked after every step. */
function run(cfg: ForgingConfig, actions: Action[]): void {
  let now = 1_000;
  let rv = 100;
  let { state, effects } = start(cfg, now);
  const pending: Effect[] = effects.filter(answered);
  checkSettled(state, now, "start");
  for (const a of actions) {
    if (state.phase.kind === "done") break;
    let event: ForgingEvent | undefined;
    switch (a.kind) {
      case "answer": {
        if (pending.length === 0) continue;
        const [effect] = pending.splice(a.pick % pending.length, 1);
        event = answer(effect!, a.variant, now, ++rv);
        break;
      }
      case "wait": {
        // The loop wakes at nextWake (or the event comes first): never later.
        const wake = nextWake(state, now);
        now = wake === undefined ? now + a.ms : Math.min(now + a.ms, wake);
        event = { kind: "tick" };
        break;
      }
      case "watch":
        event = { kind: "lease_watched", observation: observation(a.holder, a.rv + rv) };
        break;
      case "control":
        event = { kind: "control_read", control: views(a.variant, now), watched: true };
        break;
      case "pod_terminating":
        event = { kind: "pod_terminating", watched: true, ...(rv % 2 ? { graceMs: 30_000 } : {}) };
        break;
      case "shutdown":
        event = { kind: "shutdown" };
        break;
    }
    if (event === undefined) continue;
    ({ state, effects } = step(state, event, now));
    pending.push(...effects.filter(answered));
    checkSettled(state, now, event.kind);
    noteReached(state);
  }
}

Deno.test("after every step no time-driven rule is left due, and the loop wakes in time for each", () => {
  fc.assert(fc.property(config, fc.array(action, { maxLength: 120 }), run), { numRuns: 300 });
});

/** Every rule of issue 20 on: operations, the node's metrics with its tip, sync, a schedule. */
const allRules = config.map((cfg): ForgingConfig => ({
  ...cfg,
  operations: true,
  nodeMetrics: true,
  kesTiming: MAINNET_KES_TIMING,
  maxTipLagSlots: 100,
  preferredStableMs: 3_000,
  schedule: { marginMs: 3_000, shutdownWaitMs: 10_000 },
}));

/** Long runs, rarely ended (a shutdown or our Pod's deletion comes about once in 90 actions). */
const longRun = fc.array(actions(1, 10), { minLength: 100, maxLength: 400 });

/**
 * The runs of one configuration, with the rules' views, counting what they reached. The seed is
 * fixed: the assertion is about what the generator reaches, which must not depend on luck (about
 * one unseeded run in eight missed a rare kind of wait); the property without a seed explores anew
 * on every run.
 */
function reaching(
  configs: fc.Arbitrary<ForgingConfig>,
  rules: string[],
  runs: fc.Arbitrary<Action[]> = longRun,
): void {
  reached.clear();
  views = ruleView;
  nodes = STEADY_NODES;
  try {
    fc.assert(fc.property(configs, runs, run), { numRuns: 600, seed: 7 });
  } finally {
    views = controlView;
    nodes = NODES;
  }
  for (const what of rules) {
    assert.ok((reached.get(what) ?? 0) > 0, `no run reached: ${what} (${[...reached.keys()]})`);
  }
}

Deno.test("the same with sync and the preferred replica on, reaching each of their rules", () => {
  reaching(allRules, [
    "acquire deferred",
    "forging unsynced",
    "handover (sync)",
    "handover (preferred)",
  ]);
});

Deno.test("the same with a leader schedule (and no sync), reaching each kind of slot wait", () => {
  reaching(allRules.map(({ maxTipLagSlots: _sync, ...cfg }) => cfg), [
    "slot wait (handover)",
    "slot wait (preferred)",
    "slot wait (shutdown)",
    "slot wait (pod_terminating)",
  ], fc.array(actions(2, 10), { minLength: 100, maxLength: 400 }));
});

Deno.test("the rules follow the state: a request in flight is never due, a finished one is", () => {
  const cfg: ForgingConfig = {
    identity: ME,
    podName: "producer-0",
    fence: false,
    startAsNonProducing: false,
    socketCheck: false,
    socketWaitTimeoutMs: 5_000,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    acquireDelayMs: 2_000,
    sleepIntervalMs: 5_000,
    operations: true,
  };
  const { state } = start(cfg, 1_000);
  assert.equal(DUE.node(state), undefined, "the first node check is in flight");
  const checked = step(state, { kind: "node_checked", node: NODES[0], accepts: true }, 1_100).state;
  assert.equal(DUE.node(checked), 1_100 + 2_000, "the next check, one interval later");
  assert.equal(DUE.lease(checked), undefined, "no read while the startup stop moves keys");
  assert.equal(DUE.control(checked), undefined, "no request while keys move");
});
