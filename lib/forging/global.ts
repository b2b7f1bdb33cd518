/**
 * The election across clusters (with `cfg.global`; README, "Several clusters"). Every cluster
 * keeps its own election; the coordination cluster holds one more Lease, and a replica forges
 * only while it holds both, for the same local term. The rules:
 * - only a cluster's local leader competes, once its fence is done, its node ready, its
 *   CardanoForgeCluster read and its standing not Disabled (`competes`);
 * - the coordination Lease follows the same election as the local one (`election.ts`):
 *   conditional writes, the term measured from the send time, the renew deadline, the wait of
 *   LEASE_DURATION + ACQUIRE_DELAY after the last change seen, probation after a create;
 * - a lower-priority cluster waits PRIORITY_DELAY more per priority step (standing.ts), counted
 *   from when the election first allowed it; only a release handed to its cluster skips that;
 * - another cluster cannot be asked whether its node stopped: a takeover from a holder that did
 *   not release cleanly needs the holder's guard bound, written on the Lease, to have passed
 *   since the version was first seen (a holder that wrote none is never taken over: failing
 *   safe); our own writes carry our bound;
 * - when either term ends, forging stops; a lost coordination Lease keeps the local term (the
 *   replica stays its cluster's candidate), a lost local term releases the coordination Lease;
 * - the holder hands the Lease on by a planned handover (stop, then a clean release naming the
 *   target cluster, which alone may take it at once) to a higher-priority cluster that has been
 *   ready for RETURN_STABLE, to the cluster an operator names, or to anyone when it is Disabled.
 * Pure.
 *
 * @module
 */

import { decide, demoted, needsProbation, observe, writeFailed, written } from "./election.ts";
import { type Effect, report } from "./events.ts";
import type { GlobalEvent } from "./global_events.ts";
import type { GlobalRelease, GlobalState } from "./global_state.ts";
import { type ForgingState, isForging, optional, readTimeout } from "./state.ts";
import { DUE, isDue } from "./due.ts";
import { clearAt, HANDOVER_SLOT_WAIT_MS } from "./slot_wait.ts";
import { beginStop } from "./stopping.ts";
import { MAX_PRIORITY_STEPS, priorityDelayMs } from "./standing.ts";
import {
  candidateElection,
  checkHealth,
  clusterRead,
  competes,
  g,
  healthResult,
  localLeader,
  membersRead,
  noteStanding,
  publishCluster,
  readCluster,
  requestTarget,
  returnTarget,
  standingNow,
  withGlobal,
} from "./global_cluster.ts";
import type { StopReason } from "./stop_reasons.ts";
import type { HandoverResult } from "../kube/cardano_leader.ts";

/** Requests older than this are not acted on (as the local handover's). */
const HANDOVER_MAX_AGE_MS = 5 * 60_000;

/**
 * How often a follower reads the coordination Lease: a competing candidate every retry period
 * (it polls, so this is how late it sees a release or the last renew before a failure), anyone
 * else every SLEEP_INTERVAL.
 */
function readInterval(s: ForgingState, now: number): number {
  return competes(s, now) ? s.cfg.retryPeriodMs : s.cfg.sleepIntervalMs;
}

// ---- events --------------------------------------------------------------------------------

/** The election across clusters' events. */
export function globalEvent(
  s: ForgingState,
  e: GlobalEvent,
  now: number,
  fx: Effect[],
): ForgingState {
  if (s.global === undefined) return s;
  const gs = g(s);
  switch (e.kind) {
    case "global_read": {
      // A holder learns of its Lease from its own writes' answers; a read may be older.
      const held = gs.election.term !== undefined;
      return withGlobal(s, {
        ...gs,
        election: held ? gs.election : observe(gs.election, e.observation, now),
        busy: undefined,
        nextReadAt: now + readInterval(s, now),
      });
    }
    case "global_read_failed":
      fx.push(report({ kind: "global_read_failed", error: e.error }));
      return withGlobal(s, { ...gs, busy: undefined, nextReadAt: now + readInterval(s, now) });
    case "members_read":
      return withGlobal(s, {
        ...gs,
        members: membersRead(s, e.members, now),
        control: e.control,
        membersBusy: false,
        nextMembersReadAt: now + s.cfg.sleepIntervalMs,
      });
    case "members_read_failed":
      fx.push(report({ kind: "members_read_failed", error: e.error }));
      return withGlobal(s, {
        ...gs,
        membersBusy: false,
        nextMembersReadAt: now + s.cfg.sleepIntervalMs,
      });
    case "global_written":
      return written_(s, e, now, fx);
    case "global_write_failed": {
      fx.push(report({
        kind: "global_write_failed",
        operation: e.decision.kind,
        conflict: e.conflict,
        error: e.error,
      }));
      let next: GlobalState = {
        ...gs,
        election: writeFailed(gs.election, now),
        busy: undefined,
        // Lost a race: read again at once.
        ...(e.conflict ? { nextReadAt: now } : {}),
      };
      if (next.deferredRelease !== undefined) {
        fx.push(next.deferredRelease);
        next = { ...next, deferredRelease: undefined, releasing: true };
      }
      return withGlobal(s, next);
    }
    case "global_released":
      fx.push(report({
        kind: "global_released",
        clean: e.clean,
        ...optional("to", e.record.handoverTo),
      }));
      return handoverAnswered(
        withGlobal(s, {
          ...gs,
          releasing: false,
          election: observe(gs.election, { kind: "present", record: e.record }, now),
        }),
        e.clean ? "released" : "released_unclean",
        fx,
      );
    case "global_release_failed":
      fx.push(report({ kind: "global_release_failed", error: e.error }));
      return handoverAnswered(withGlobal(s, { ...gs, releasing: false }), "release_failed", fx);
    case "cluster_read":
      return clusterRead(s, e, now);
    case "cluster_read_failed":
      fx.push(report({ kind: "cluster_read_failed", error: e.error }));
      return withGlobal(s, {
        ...gs,
        clusterBusy: false,
        nextClusterReadAt: now + s.cfg.sleepIntervalMs,
      });
    case "health_checked":
      return healthResult(s, e.ok, e.message, fx);
  }
}

function written_(
  s: ForgingState,
  e: Extract<GlobalEvent, { kind: "global_written" }>,
  now: number,
  fx: Effect[],
): ForgingState {
  const gs = g(s);
  if (gs.deferredRelease !== undefined) {
    // The term ended while this write was in flight: release the version it wrote.
    fx.push({ ...gs.deferredRelease, record: e.record });
    return withGlobal(s, {
      ...gs,
      busy: undefined,
      deferredRelease: undefined,
      releasing: true,
      election: observe(gs.election, { kind: "present", record: e.record }, now),
    });
  }
  const held = gs.election.term !== undefined;
  const probation = !held && needsProbation(e.decision, gs.election.identity);
  const election = written(
    gs.election,
    e.record,
    e.sentAt,
    now,
    probation ? { timing: s.cfg } : undefined,
  );
  let next = withGlobal(s, { ...gs, election, busy: undefined });
  if (held) return next;
  if (!competes(s, now)) {
    // Won after this replica stopped competing (its local term ended, say): nothing was forged
    // with it; release it at once, clean.
    return releaseGlobal(next, true, undefined, now, fx);
  }
  const d = e.decision;
  const previous = d.kind === "acquire" ? d.previousHolder : "";
  const wait = election.term!.forgeFrom - now;
  fx.push(report({
    kind: "global_acquired",
    previous,
    proof: d.kind === "acquire" && d.proofNeeded ? "bound" : previous === "" ? "none" : "clean",
    ...(wait > 0 ? { probationSeconds: Math.round(wait / 100) / 10 } : {}),
  }));
  fx.push({ kind: "claim_global" });
  next = withGlobal(next, { ...g(next), forTerm: s.term, acquiredAt: now, acquirable: undefined });
  return next;
}

// ---- releasing -----------------------------------------------------------------------------

/**
 * Leaves the coordination Lease: a release of our version (clean only when our node's stop is
 * confirmed; with `handoverTo`, the one cluster that may take it at once), after any write in
 * flight; with `holdOffMs`, we do not compete again before then.
 */
export function releaseGlobal(
  s: ForgingState,
  clean: boolean,
  handoverTo: string | undefined,
  now: number,
  fx: Effect[],
  holdOffMs = 0,
): ForgingState {
  const gs = s.global;
  if (gs === undefined || gs.election.term === undefined) return s;
  const seen = gs.election.seen?.observation;
  const ours = seen?.kind === "present" && seen.record.holder === gs.election.identity
    ? seen.record
    : undefined;
  const left = gs.election.term.forgeFrom - now;
  const { forTerm: _ended, ...rest } = gs;
  let next: GlobalState = { ...rest, election: demoted(gs.election, now, holdOffMs) };
  if (ours !== undefined) {
    const effect: GlobalRelease = {
      kind: "release_global",
      record: ours,
      clean,
      timeoutMs: 3000,
      // A create's probation passes on, as the local release's does (election.ts).
      ...(clean && left > 0 ? { waitMs: left } : {}),
      ...(clean && handoverTo !== undefined ? { handoverTo } : {}),
    };
    if (gs.busy?.op === "write") next = { ...next, deferredRelease: effect };
    else {
      fx.push(effect);
      next = { ...next, releasing: true };
    }
  }
  return withGlobal(s, next);
}

/** A planned handover's release was answered: report the request's result, if one asked. */
function handoverAnswered(s: ForgingState, result: HandoverResult, fx: Effect[]): ForgingState {
  const gs = g(s);
  const pending = gs.pendingHandover;
  if (pending === undefined) return s;
  fx.push(report({ kind: "cluster_handover_done", id: pending.id, to: pending.to, result }));
  fx.push({ kind: "report_global_handover", id: pending.id, result });
  const { pendingHandover: _done, ...rest } = gs;
  return withGlobal(s, rest);
}

/** Why the coordination Lease is handed on. */
type Leaving = { why: "return" | "request" | "disabled"; to?: string; id?: string };

const LEAVE_REASONS: Record<Leaving["why"], StopReason> = {
  return: "priority_return",
  request: "cluster_handover",
  disabled: "cluster_disabled",
};

/** The holder hands the coordination Lease on: stop forging first, then a clean release. */
function leave(s: ForgingState, l: Leaving, now: number, fx: Effect[]): ForgingState {
  fx.push(
    report({ kind: "cluster_handover", to: l.to ?? "", why: l.why, ...optional("id", l.id) }),
  );
  const holdOffMs = 2 * s.cfg.leaseDurationMs;
  let next = l.id !== undefined
    ? withGlobal(s, {
      ...g(s),
      handled: [...g(s).handled.slice(-15), l.id],
      pendingHandover: { id: l.id, to: l.to ?? "" },
    })
    : s;
  if (isForging(next) || next.phase.kind === "paused") {
    next = beginStop(next, LEAVE_REASONS[l.why], { kind: "candidate" }, now, fx);
    const phase = next.phase;
    if (phase.kind !== "stopping") return next;
    return {
      ...next,
      phase: { ...phase, globalRelease: { ...optional("handoverTo", l.to), holdOffMs } },
    };
  }
  // Not forging (awaiting its node): nothing to stop unless keys may still be in place.
  return releaseGlobal(next, !next.guardWanted, l.to, now, fx, holdOffMs);
}

/** The coordination Lease is lost: stop forging, stay the cluster's candidate. */
function globalLost(s: ForgingState, reason: string, now: number, fx: Effect[]): ForgingState {
  const gs = g(s);
  const { forTerm: _lost, ...rest } = gs;
  fx.push(report({ kind: "global_lost", reason }));
  const next = withGlobal(s, { ...rest, election: demoted(gs.election, now) });
  if (!isForging(next) && next.phase.kind !== "promoting") return next;
  return beginStop(
    next,
    reason === "renew_deadline" ? "global_renew_deadline" : "global_lease_lost",
    { kind: "candidate" },
    now,
    fx,
  );
}

// ---- as time passes ------------------------------------------------------------------------

/** Everything of the election across clusters that time makes due. */
export function settleGlobal(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  if (s.global === undefined || s.cfg.global === undefined) return s;
  let next = s;
  if (localLeader(next) && g(next).specRead) next = noteStanding(next, now, fx);
  next = settleTerm(next, now, fx);
  next = settleAcquire(next, now, fx);
  if (isDue(DUE.globalRead(next), now)) {
    fx.push({ kind: "read_global", timeoutMs: readTimeout(next.cfg) });
    next = withGlobal(next, { ...g(next), busy: { op: "read", since: now } });
  }
  if (isDue(DUE.membersRead(next), now)) {
    fx.push({ kind: "read_members", timeoutMs: readTimeout(next.cfg) });
    next = withGlobal(next, { ...g(next), membersBusy: true });
  }
  if (isDue(DUE.clusterRead(next), now)) next = readCluster(next, fx);
  if (isDue(DUE.health(next), now)) next = checkHealth(next, now, fx);
  if (DUE.publishCluster(next) !== undefined) next = publishCluster(next, now, fx);
  return next;
}

/** The holder: demote at the global deadline or loss, renew when due, hand on when it should. */
function settleTerm(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const gs = g(s);
  if (gs.election.term === undefined) return s;
  const d = decide(gs.election, now, s.cfg);
  if (d.kind === "demote") return globalLost(s, d.reason, now, fx);
  if (!localLeader(s) && s.phase.kind !== "stopping" && s.phase.kind !== "releasing") {
    // The local term ended without a stop that released it (none was forging): release now.
    return releaseGlobal(s, !s.guardWanted, s.cfg.global!.cluster, now, fx);
  }
  let next = s;
  if (d.kind === "renew" && gs.busy === undefined && !gs.releasing) {
    fx.push({
      kind: "write_global",
      decision: d,
      deadline: d.deadline,
      maxTimeoutMs: s.cfg.renewDeadlineMs,
    });
    next = withGlobal(next, { ...gs, busy: { op: "write", since: now } });
  }
  const k = next.phase.kind;
  if (k !== "forging" && k !== "paused" && k !== "awaiting_node") return next;
  const leaving = shouldLeave(next, now);
  if (leaving === undefined) return endLeaveWait(next, "cancelled", now, fx);
  // Like every planned end of term of a forger (slot_wait.ts): not within the margin of one of
  // the pool's slots, for at most HANDOVER_SLOT_WAIT_MS.
  if (isForging(next)) {
    const clear = clearAt(next, now);
    const since = g(next).leaveWait?.since ?? now;
    const until = Math.min(clear, since + HANDOVER_SLOT_WAIT_MS);
    if (until > now) {
      if (g(next).leaveWait === undefined) {
        fx.push(report({ kind: "slot_wait_started", trigger: "cluster", waitMs: until - now }));
      }
      return withGlobal(next, { ...g(next), leaveWait: { since, until } });
    }
    next = endLeaveWait(next, clear <= now ? "passed" : "bound", now, fx);
  }
  return leave(next, leaving, now, fx);
}

/** A handover between clusters that waited for a slot: the wait is over (reported). */
function endLeaveWait(
  s: ForgingState,
  outcome: "passed" | "bound" | "cancelled",
  now: number,
  fx: Effect[],
): ForgingState {
  const wait = g(s).leaveWait;
  if (wait === undefined) return s;
  fx.push(report({
    kind: "slot_wait_ended",
    trigger: "cluster",
    outcome,
    waitedMs: now - wait.since,
  }));
  const { leaveWait: _done, ...rest } = g(s);
  return withGlobal(s, rest);
}

/** Whether the holder should hand the coordination Lease on now, and to whom. */
function shouldLeave(s: ForgingState, now: number): Leaving | undefined {
  const gs = g(s);
  if (!gs.specRead) return undefined;
  if (standingNow(s, now).state === "Disabled") return { why: "disabled" };
  const h = gs.control?.handover;
  if (
    h !== undefined && !gs.handled.includes(h.id) && h.id !== gs.control?.handledId &&
    h.to !== s.cfg.global!.cluster && h.ageMs <= HANDOVER_MAX_AGE_MS
  ) {
    const target = requestTarget(s, h.to, now);
    if (target !== undefined) return { why: "request", to: target.view.cluster, id: h.id };
  }
  const back = returnTarget(s, now);
  return back === undefined ? undefined : { why: "return", to: back.view.cluster };
}

/** The candidate: take the coordination Lease when the election, the delay and the proof allow. */
function settleAcquire(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const gs = g(s);
  if (gs.election.term !== undefined || gs.busy !== undefined || gs.releasing) return s;
  if (!competes(s, now)) return s;
  const election = candidateElection(s);
  const d = decide(election, now, s.cfg);
  if (d.kind !== "acquire") return s;
  const key = gs.election.seen?.key ?? "unseen";
  const acquirable = gs.acquirable?.key === key ? gs.acquirable : { key, since: now };
  let next = withGlobal(s, { ...gs, election, acquirable });
  const record = d.record;
  const handedToUs = record?.handoverTo === s.cfg.global!.cluster;
  const delay = handedToUs ? 0 : priorityDelayMs(
    standingNow(s, now).priority,
    s.cfg.global!.priorityDelayMs,
    MAX_PRIORITY_STEPS,
  );
  if (now < acquirable.since + delay) return next;
  if (d.proofNeeded || d.pending !== undefined) {
    // Another cluster's holder that did not release cleanly: only its guard bound, passed since
    // we first saw its last version, proves its node stopped.
    const bound = d.pending === undefined ? record?.guardBoundMs : undefined;
    if (bound === undefined) {
      if (gs.unprovable !== key) {
        fx.push(report({ kind: "global_unprovable", holder: d.previousHolder }));
        next = withGlobal(next, { ...g(next), unprovable: key });
      }
      return next;
    }
    if (now < d.observedAt + bound) return next;
  }
  fx.push({
    kind: "write_global",
    decision: d,
    deadline: Infinity,
    maxTimeoutMs: Math.min(s.cfg.renewDeadlineMs, 5000),
  });
  return withGlobal(next, { ...g(next), busy: { op: "write", since: now } });
}

/**
 * When the election across clusters next needs the loop (monotonic), besides its DUE rules: the
 * global term's deadline and renew, the end of a probation, an acquisition's delay and proof, a
 * member ready long enough to hand back to. Only times to come: what is due now was done.
 */
export function globalWake(s: ForgingState, now: number): number[] {
  const gs = s.global;
  if (gs === undefined || s.phase.kind === "starting" || s.phase.kind === "done") return [];
  const times: number[] = [];
  if (gs.election.term !== undefined) {
    times.push(gs.election.term.renewSentAt + s.cfg.renewDeadlineMs, gs.election.term.forgeFrom);
  }
  if (gs.busy === undefined) {
    const d = decide(competes(s, now) ? candidateElection(s) : gs.election, now, s.cfg);
    if (d.kind === "wait") times.push(d.until);
    if (d.kind === "acquire" && gs.acquirable !== undefined && competes(s, now)) {
      const delay = priorityDelayMs(
        standingNow(s, now).priority,
        s.cfg.global!.priorityDelayMs,
        MAX_PRIORITY_STEPS,
      );
      times.push(gs.acquirable.since + delay);
      const bound = d.record?.guardBoundMs;
      if (d.proofNeeded && bound !== undefined) times.push(d.observedAt + bound);
    }
  }
  if (gs.leaveWait !== undefined) times.push(gs.leaveWait.until);
  if (gs.election.term !== undefined) {
    for (const m of Object.values(gs.members)) {
      if (m.readySince !== undefined) times.push(m.readySince + s.cfg.global!.returnStableMs);
    }
  }
  return times.filter((t) => t > now && Number.isFinite(t));
}
