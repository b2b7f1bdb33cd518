/**
 * The Lease as the forging step drives it, through the election (`election.ts`): what a read, a
 * watch event or a write's answer changes, an acquisition (straight to waiting for the node, or
 * first the fence, carrying whom it still has to prove on every write), a lost race, the release,
 * the fence's result, and the election's decision as time passes.
 *
 * @module
 */

import {
  decide,
  type Decision,
  demoted,
  needsProbation,
  observe,
  termDeadline,
  writeFailed,
  written,
} from "./election.ts";
import type { FencePending, LeaseRecord, Observation } from "../kube/lease_store.ts";
import { mayForge } from "./credential_verdict.ts";
import { type Effect, type FenceResult, type ForgingEvent, report } from "./events.ts";
import {
  type ForgingState,
  type HolderFacts,
  isForging,
  LEADING_PHASES,
  optional,
  readTimeout,
  type WriteDecision,
} from "./state.ts";
import { beginStop } from "./stopping.ts";
import { acquireDeferral } from "./sync.ts";

/** Records a read or watch event of the Lease (and the last holder's facts, for the fence). */
export function observed(s: ForgingState, observation: Observation, now: number): ForgingState {
  const lastHolder = observation.kind === "present" && observation.record.holder !== ""
    ? {
      podUid: observation.record.holderPodUid,
      writtenAt: observation.record.writtenAt,
      guardBoundMs: observation.record.guardBoundMs,
    }
    : s.lastHolder;
  return {
    ...s,
    election: observe(s.election, observation, now),
    observedOnce: true,
    ...(lastHolder !== undefined ? { lastHolder } : {}),
  };
}

/** A write's answer: renewed, acquired (perhaps on probation), or late while on our way out. */
export function leaseWritten(
  s: ForgingState,
  e: Extract<ForgingEvent, { kind: "lease_written" }>,
  now: number,
  fx: Effect[],
): ForgingState {
  const held = s.election.term !== undefined;
  const probation = !held && needsProbation(e.decision, s.cfg.identity);
  const election = written(
    s.election,
    e.record,
    e.sentAt,
    now,
    probation ? { timing: s.cfg } : undefined,
  );
  let next: ForgingState = {
    ...s,
    election,
    leaseBusy: undefined,
    observedOnce: true,
    leaseCarries: e.fencePending,
  };
  fx.push(report({ kind: "renewed" }));
  if (next.deferredRelease !== undefined) {
    // The stop is done and its release waited for this answer: release the newest version.
    fx.push({ ...next.deferredRelease, record: e.record });
    return { ...next, deferredRelease: undefined, election: demoted(next.election, now) };
  }
  if (held) return next;
  const decision: Extract<Decision, { kind: "acquire" }> = e.decision.kind === "acquire"
    ? e.decision
    : {
      kind: "acquire",
      record: e.record,
      previousHolder: "",
      proofNeeded: false,
      observedAt: now,
    };
  const phase = s.phase.kind;
  if (
    phase === "stopping" || phase === "releasing" || phase === "done" || phase === "stepped_aside"
  ) {
    // A write sent before we decided to stop came back late: the term is ours, but we are on
    // our way out. Leave it again; the release (if one is due) goes to this newer record.
    const left = (next.election.term?.forgeFrom ?? now) - now;
    next = { ...next, election: demoted(next.election, now) };
    if (s.phase.kind === "releasing" && s.phase.afterWrite) {
      // Shut down before this acquire was answered: nothing was placed or signalled, so the
      // release is clean, and it passes on the obligation and any probation the write carried.
      fx.push({
        kind: "release_lease",
        record: e.record,
        clean: true,
        timeoutMs: 3000,
        ...optional("fencePending", e.fencePending),
        ...(left > 0 ? { waitMs: left } : {}),
      });
      return { ...next, phase: { kind: "releasing" } };
    }
    if (s.phase.kind === "stopping" && s.phase.release !== undefined) {
      next = { ...next, phase: { ...s.phase, release: { ...s.phase.release, record: e.record } } };
    }
    return next;
  }
  return acquired(next, decision, e.record, { probation, previous: e.previous, now }, fx);
}

function acquired(
  s: ForgingState,
  decision: Extract<Decision, { kind: "acquire" }>,
  record: LeaseRecord,
  how: { probation: boolean; previous: HolderFacts | undefined; now: number },
  fx: Effect[],
): ForgingState {
  const { probation, previous, now } = how;
  const term = s.term + 1;
  // Taken from a planned handover's release naming this pod: its target says when it is done.
  const named = decision.record?.releasedBy !== undefined && decision.record.holder === "" &&
    decision.record.handoverTo === s.cfg.podName;
  s = named ? { ...s, handoverTerm: term } : s;
  fx.push(report({
    kind: "became_leader",
    previous: decision.previousHolder,
    proofNeeded: decision.proofNeeded,
    transitions: record.transitions,
    ...(probation
      ? { probationSeconds: (s.cfg.leaseDurationMs + s.cfg.acquireDelayMs) / 1000 }
      : {}),
  }));
  if (!s.cfg.fence || !decision.proofNeeded) {
    // A create with no holder known, not even from the CardanoLeader status (read with the
    // absence, see election.ts): nobody to fence.
    if (s.cfg.fence && decision.record === undefined && decision.previousHolder === "") {
      fx.push(report({
        kind: "fence_done",
        previous: "",
        outcome: { proven: true, how: "no_previous" },
      }));
    }
    return { ...s, term, phase: { kind: "awaiting_node", term } };
  }
  const facts = fenceFacts(decision, previous);
  const boundAt = guardBoundAt(s, decision, facts);
  if (boundAt !== undefined && now >= boundAt) {
    // FENCE=guard, and the previous holder's guard has stopped its node by now: no API proof.
    fx.push(report({
      kind: "fence_done",
      previous: decision.previousHolder,
      outcome: { proven: true, how: "guard_bound" },
    }));
    return { ...s, term, phase: { kind: "awaiting_node", term } };
  }
  fx.push(report({ kind: "fence_started", previous: decision.previousHolder }), {
    kind: "start_fence",
    term,
    previousHolder: decision.previousHolder,
    ...optional("previousPodUid", facts.podUid),
    ...optional("previousWrittenAt", facts.writtenAt),
    ownNodeStopped: s.stopConfirmed && !isForging(s),
  });
  // Until the proof, every write of this term tells a successor whom it still has to prove.
  return {
    ...s,
    term,
    phase: { kind: "fencing", term, ...optional("boundAt", boundAt) },
    owed: facts,
  };
}

/**
 * With FENCE=guard, when the previous holder's guard bound has passed (monotonic), if that holder
 * wrote one: its last successful renew was sent before the version we replace was committed, so
 * before we first saw it (`observedAt`), and its guard stopped its node within the bound of that.
 */
function guardBoundAt(
  s: ForgingState,
  decision: Extract<Decision, { kind: "acquire" }>,
  facts: FencePending,
): number | undefined {
  return s.cfg.fenceBound && facts.guardBoundMs !== undefined
    ? decision.observedAt + facts.guardBoundMs
    : undefined;
}

/** FENCE=guard: the previous holder's bound has come while fencing; that proves it stopped. */
export function fenceByBound(s: ForgingState, fx: Effect[]): ForgingState {
  const phase = s.phase;
  if (phase.kind !== "fencing") return s;
  const outcome = { proven: true, how: "guard_bound" } as const;
  fx.push(
    { kind: "cancel_fence", term: phase.term },
    report({ kind: "fence_done", previous: s.owed?.holder ?? "", outcome }),
  );
  return fenceDone(s, phase.term, outcome);
}

/** Whom an acquisition must prove stopped: the obligation it inherited, or the last holder. */
function fenceFacts(
  decision: Extract<Decision, { kind: "acquire" }>,
  previous: HolderFacts | undefined,
): FencePending {
  if (decision.pending !== undefined) return decision.pending;
  const podUid = decision.record?.holderPodUid ?? previous?.podUid;
  const writtenAt = decision.record?.writtenAt ?? previous?.writtenAt;
  const guardBoundMs = decision.record?.guardBoundMs ?? previous?.guardBoundMs;
  return {
    holder: decision.previousHolder,
    ...(podUid !== undefined ? { podUid } : {}),
    ...(writtenAt !== undefined ? { writtenAt } : {}),
    ...(guardBoundMs !== undefined ? { guardBoundMs } : {}),
  };
}

/**
 * The obligation a write carries: an acquisition that will have to fence carries it from the
 * first write (unless the previous holder's guard bound has passed already: then it is proven);
 * a renew while the term still owes a proof carries it.
 */
function owedBy(s: ForgingState, d: WriteDecision, now: number): FencePending | undefined {
  if (d.kind === "renew") return s.owed;
  if (!s.cfg.fence || !d.proofNeeded) return undefined;
  const facts = fenceFacts(d, d.record === undefined ? s.lastHolder : undefined);
  const boundAt = guardBoundAt(s, d, facts);
  return boundAt !== undefined && now >= boundAt ? undefined : facts;
}

/** A write that failed: back off; a lost race reads the Lease again at once. */
export function leaseWriteFailed(
  s: ForgingState,
  e: Extract<ForgingEvent, { kind: "lease_write_failed" }>,
  now: number,
  fx: Effect[],
): ForgingState {
  const operation = e.decision.kind === "renew"
    ? "renew"
    : e.decision.record
    ? "acquire"
    : "create";
  fx.push(report({
    kind: "lease_write_failed",
    operation,
    conflict: e.conflict,
    leading: e.decision.kind === "renew",
    error: e.error,
  }));
  let next: ForgingState = { ...s, election: writeFailed(s.election, now), leaseBusy: undefined };
  // Shut down while this acquire was in flight, and it lost: nothing to release.
  if (s.phase.kind === "releasing" && s.phase.afterWrite) {
    return { ...next, phase: { kind: "done" } };
  }
  if (next.deferredRelease !== undefined) {
    fx.push(next.deferredRelease);
    next = { ...next, deferredRelease: undefined };
  }
  if (!e.conflict) return next;
  // Lost a race: read the Lease again at once.
  fx.push({ kind: "read_lease", timeoutMs: readTimeout(s.cfg) });
  return { ...next, leaseBusy: { op: "read", since: now } };
}

/** After the release at shutdown (answered or failed), the process is done. */
export function afterRelease(s: ForgingState): ForgingState {
  return s.phase.kind === "releasing" ? { ...s, phase: { kind: "done" } } : s;
}

// ---- the fence ----------------------------------------------------------------------------

/** The fence's result: proven, in this term's fencing, lets the term wait for the node. */
export function fenceDone(s: ForgingState, term: number, outcome: FenceResult): ForgingState {
  if (s.phase.kind !== "fencing" || s.phase.term !== term || !outcome.proven) return s;
  // Proven: the next renew takes the obligation off the Lease, and forging waits for it.
  const { owed: _proven, ...rest } = s;
  return { ...rest, phase: { kind: "awaiting_node", term } };
}

// ---- as time passes -----------------------------------------------------------------------

/** The election's decision now: demote at the deadline or on a lost Lease, or write when due. */
export function settleElection(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  // A deferral is decided afresh at every step (its rule's time is only when to look again).
  const { acquireDeferral: _due, ...rest } = s;
  s = rest;
  const d = decide(s.election, now, s.cfg);
  if (d.kind === "demote") {
    return LEADING_PHASES.has(s.phase.kind)
      ? beginStop(s, d.reason, { kind: "standby" }, now, fx)
      : { ...s, election: demoted(s.election, now) };
  }
  if ((d.kind === "renew" || d.kind === "acquire") && s.leaseBusy === undefined && writable(s, d)) {
    if (d.kind === "acquire") {
      // Not synced: a synced standby takes the Lease first, for a while (sync.ts).
      const wait = acquireDeferral(s, d, now);
      if (wait !== undefined) {
        return {
          ...s,
          acquireDeferral: wait.until,
          deferredSince: { observedAt: d.observedAt, since: wait.since },
        };
      }
    }
    fx.push({
      kind: "write_lease",
      decision: d,
      deadline: d.kind === "renew" ? d.deadline : Infinity,
      maxTimeoutMs: d.kind === "renew"
        ? s.cfg.renewDeadlineMs
        : Math.min(s.cfg.renewDeadlineMs, 5000),
      ...optional("previous", s.lastHolder),
      ...optional("fencePending", owedBy(s, d, now)),
    });
    return { ...s, leaseBusy: { op: "write", since: now } };
  }
  return s;
}

/** A follower reads the Lease (when `DUE.lease` says so). */
export function readLease(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  fx.push({ kind: "read_lease", timeoutMs: readTimeout(s.cfg) });
  return { ...s, leaseBusy: { op: "read", since: now } };
}

/**
 * Lease writes are not sent while a stop is under way or after shutdown began; a replica whose
 * credentials cannot forge does not compete for the Lease (a renew is still sent: the leader
 * steps aside through its own transition).
 */
function writable(s: ForgingState, d: Decision): boolean {
  const k = s.phase.kind;
  if (k === "stopping" || k === "releasing" || k === "retired") return false;
  // Our Pod is being deleted: a replica never competes again, even in the step before it
  // retires (a stop that ends in standby, then `retireIfDeleted`).
  if (d.kind === "acquire" && s.ops?.podTerminating) return false;
  return d.kind !== "acquire" || s.credentials === undefined || mayForge(s.credentials);
}

/** Sends a renew at once (without the settled obligation), unless a write is in flight. */
export function renewNow(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const seen = s.election.seen?.observation;
  const deadline = termDeadline(s.election, s.cfg);
  if (s.leaseBusy !== undefined || seen?.kind !== "present" || deadline === undefined) return s;
  const decision: WriteDecision = { kind: "renew", record: seen.record, deadline };
  fx.push({
    kind: "write_lease",
    decision,
    deadline,
    maxTimeoutMs: s.cfg.renewDeadlineMs,
    ...optional("fencePending", s.owed),
  });
  return { ...s, leaseBusy: { op: "write", since: now } };
}
