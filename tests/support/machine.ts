/**
 * The forging step driven by real events, for table tests (tests/forging/*_test.ts): a
 * {@linkcode Machine} keeps the state and the last step's effects; {@linkcode standby} and
 * {@linkcode forger} reach the two usual starting points through the real step.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { LeaseRecord, Observation } from "../../lib/kube/lease_store.ts";
import type { Effect, ForgingEvent } from "../../lib/forging/events.ts";
import type { ForgingConfig, ForgingState } from "../../lib/forging/state.ts";
import { start, step } from "../../lib/forging/step.ts";
import type { NodeInfo } from "../../lib/core/node_process.ts";

export const ME = "producer-0_self";
export const OTHER = "producer-1_other";
export const NODE: NodeInfo = { pid: 42, startTicks: 7, nonProducing: true };
export const CFG: ForgingConfig = {
  identity: ME,
  podName: "producer-0",
  fence: false,
  startAsNonProducing: false,
  socketCheck: false,
  socketWaitTimeoutMs: 5000,
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2000,
  acquireDelayMs: 2000,
  sleepIntervalMs: 5000,
};
export const FACTS = {
  changed: ["kes", "vrf", "opcert"],
  facts: { issueCounter: 3, kesStartPeriod: 100, hotKeyId: "ab12" },
} as unknown as Extract<ForgingEvent, { kind: "keys_placed" }>["placed"];

export function rec(holder: string, rv: string, extra: Partial<LeaseRecord> = {}): LeaseRecord {
  return { holder, durationMs: 15_000, transitions: 1, resourceVersion: rv, ...extra };
}
export function present(record: LeaseRecord): Observation {
  return { kind: "present", record };
}

/** One machine driven by real events, keeping the effects of the last step. */
export class Machine {
  state: ForgingState;
  effects: Effect[];
  now: number;
  constructor(cfg: Partial<ForgingConfig> = {}, now = 1_000) {
    this.now = now;
    ({ state: this.state, effects: this.effects } = start({ ...CFG, ...cfg }, now));
  }
  feed(event: ForgingEvent, at = this.now): Effect[] {
    this.now = at;
    ({ state: this.state, effects: this.effects } = step(this.state, event, at));
    return this.effects;
  }
  /** The effects of the last step as short strings, in order. */
  get did(): string[] {
    return this.effects.map(describe);
  }
  get phase(): string {
    return this.state.phase.kind;
  }
  /** The first effect of `kind` in the last step. */
  effect<K extends Effect["kind"]>(kind: K): Extract<Effect, { kind: K }> {
    const found = this.effects.find((e) => e.kind === kind);
    assert.ok(found !== undefined, `no ${kind} effect in ${JSON.stringify(this.did)}`);
    return found as Extract<Effect, { kind: K }>;
  }
  /** Answers `write` with our record at version `rv`, carrying the obligation the write carried. */
  writtenCarrying(write: Extract<Effect, { kind: "write_lease" }>, rv: string): void {
    const fencePending = write.fencePending!;
    this.feed({
      kind: "lease_written",
      decision: write.decision,
      record: rec(ME, rv, { fencePending }),
      sentAt: this.now,
      fencePending,
    });
  }
  /** Answers the promotion's claim of the status (the SIGHUP waits for it and the keys). */
  answerClaim(): void {
    const phase = this.state.phase;
    assert.ok(phase.kind === "promoting", `not promoting but ${phase.kind}`);
    this.feed({ kind: "leader_claimed", term: phase.term });
  }
  /** Answers the pending stop's two effects (unlink, SIGHUP). */
  answerStop(signal: "ok" | "refused" | "not_found" = "ok", removed = true): void {
    const stop = this.state.stop;
    assert.ok(stop !== undefined, "no stop pending");
    this.feed({ kind: "keys_removed", stop: stop.id, ok: removed });
    this.feed({
      kind: "signalled",
      reason: stop.reason,
      stop: stop.id,
      pid: NODE.pid,
      outcome: signal,
    });
  }
}

export function describe(e: Effect): string {
  switch (e.kind) {
    case "report":
      return `report:${e.transition.kind}`;
    case "signal":
      return `signal:${e.reason}`;
    case "place_keys":
      return `place_keys:${e.purpose}`;
    case "release_lease":
      return `release:${e.clean ? "clean" : "unclean"}`;
    case "write_lease":
      return `write:${e.decision.kind}`;
    default:
      return e.kind;
  }
}

/** A standby with its node found and stopped, having read a Lease held by OTHER (or `first`). */
export function standby(
  cfg: Partial<ForgingConfig> = {},
  first: Observation = present(rec(OTHER, "10")),
): Machine {
  const m = new Machine(cfg);
  if (m.did.includes("place_keys:boot")) {
    m.feed({ kind: "keys_placed", purpose: "boot", placed: FACTS });
  }
  if (m.did.includes("probe_socket")) m.feed({ kind: "socket_probed", accepts: true });
  assert.deepEqual(m.did.filter((d) => !d.startsWith("report")), ["check_node"]);
  m.feed({ kind: "node_checked", node: NODE, accepts: true });
  assert.deepEqual(m.did.slice(0, 3), ["report:node_flag", "remove_keys", "signal:startup"]);
  m.answerStop();
  assert.equal(m.phase, "standby");
  m.feed({ kind: "lease_read", observation: first }, m.now + 1);
  return m;
}

/** A standby that took a clean handover and now forges. */
export function forger(cfg: Partial<ForgingConfig> = {}): Machine {
  const m = standby(cfg);
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  const write = m.effect("write_lease");
  assert.equal(write.decision.kind, "acquire");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.deepEqual(m.did, [
    "report:renewed",
    "report:became_leader",
    "claim_leader",
    "place_keys:promote",
  ]);
  m.feed({ kind: "leader_claimed", term: m.effect("claim_leader").term });
  m.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
  assert.deepEqual(m.did, ["signal:promote"]);
  m.feed({ kind: "signalled", reason: "promote", pid: NODE.pid, outcome: "ok" });
  assert.equal(m.phase, "forging");
  return m;
}

/** A standby with operations on, that has read an empty spec once. */
export function opsStandby(cfg: Partial<ForgingConfig> = {}): Machine {
  const m = standby({ operations: true, ...cfg });
  m.feed({ kind: "control_read", control: {} });
  return m;
}

/** A forger with operations on (took a clean handover after reading an empty spec). */
export function opsForger(cfg: Partial<ForgingConfig> = {}): Machine {
  const m = opsStandby(cfg);
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  const write = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.ok(m.did.includes("place_keys:promote"), JSON.stringify(m.did));
  m.answerClaim();
  m.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
  m.feed({ kind: "signalled", reason: "promote", pid: NODE.pid, outcome: "ok" });
  assert.equal(m.phase, "forging");
  return m;
}
