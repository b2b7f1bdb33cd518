/**
 * The election as pure functions: `(state, observation, now) -> state` and
 * `(state, now) -> decision`, with no I/O, no timers and no `Deno.*`.
 * The forging state machine (`forging.ts`) drives it; the loop (`forge_manager.ts`) owns the clock.
 *
 * Safety argument (why two leaders never forge at once, as long as every replica runs this):
 * - A leader's right to forge ends at `S + renewDeadline`, where S is the monotonic time at which
 *   its last SUCCESSFUL renew was SENT. A renew can only commit after it was sent.
 * - A follower starts its expiry clock when it first OBSERVES a record version (a resourceVersion),
 *   which is after that version was committed, so after the leader sent it. It acquires only by a
 *   conditional write carrying that resourceVersion, so the record did not change in between, and
 *   only once `max(record duration, configured duration) + acquireDelay` has passed since.
 * - Hence a follower acquires no earlier than `S + leaseDuration + acquireDelay`, which config
 *   validation keeps at least MIN_STOP_BUDGET_MS after the old leader's deadline. Only the two
 *   monotonic clocks' RATES matter, never their offsets or the wall clock.
 * - A release written by our own end-of-term handover (after the keys were unlinked and the node
 *   signalled) carries `releasedBy` and may be taken at once (after `releaseWaitMs`, the rest of
 *   the releaser's probation, if any: see below); any other empty holder is waited out.
 *   A planned handover also names its target (`handoverTo`): only the target's pod takes it at
 *   once; every other replica waits as for an unmarked release (which covers any
 *   `releaseWaitMs`), so a target that never comes leaves the lease to the others after the usual
 *   wait (no state nobody can leave).
 * - A CREATE has no such precondition: "absent" is not a version, so a follower cannot tell one
 *   long absence from absent -> created by someone -> deleted again. And a write whose response
 *   was lost may have been a create that committed late. So a term begun by a create, by
 *   re-acquiring our own record whose write we never saw answered, or by a renew answered only
 *   after its term had ended, is on probation: we hold and renew the lease, but may forge only
 *   from `response time + leaseDuration + acquireDelay`.
 *   Every earlier holder of a since-deleted lease sent its last renew before the deletion, which
 *   came before our create committed, so its term has ended by then with the usual margin. This
 *   is the one wait: an absent Lease is created at once (waiting before the create adds nothing
 *   to it). A term still on probation that ends passes the rest of its probation on with its
 *   release (`releaseWaitMs`): its own clean stop says nothing of the deleted lease's last holder.
 *   The follower counts that duration from when it first observed the release, which is after the
 *   releaser measured it, so the wait ends no earlier than the probation would have.
 * - A leader that stops (sidecar killed or frozen) cannot keep this promise: `lib/kube/fence.ts`
 *   covers that before the new leader forges. A new leader that still has to prove an earlier
 *   holder's node stopped has not forged; it says so on the Lease (`fencePending`: that holder,
 *   on every write until the proof, and on its release), so whoever takes the Lease from it
 *   proves the earlier holder, not only it. A chain of leaders that each stopped before their
 *   proof (a partitioned kubelet, then a rolling update) passes the same obligation on.
 * - A Lease deleted under a dead sidecar leaves a replica that never saw its holder nothing to
 *   fence but the pod the CardanoLeader status names. That name is read with the absence, before
 *   the create is decided, so the create itself carries the obligation (`fencePending`), and no
 *   write of ours (naming ourselves in the status) can race it away.
 *
 * @module
 */

import type { FencePending, LeaseRecord, Observation } from "../kube/lease_store.ts";
import { podOf } from "../base/identity.ts";
import type { ElectionStopReason } from "./stop_reasons.ts";

/** Timing parameters, in milliseconds (see `Config`). */
export interface ElectionTiming {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  acquireDelayMs: number;
  sleepIntervalMs: number;
}

/** Local knowledge of one participant. Treat as immutable; every function returns a new one. */
export interface ElectionState {
  /** Unique per process (`<pod>_<random>`), so two processes never share an identity. */
  readonly identity: string;
  /** The last observation, and when (monotonic) it was first seen in this version. */
  readonly seen?: { observation: Observation; key: string; changedAt: number };
  /**
   * Present while we hold the lease: the version we wrote last, when that write was sent, and
   * from when we may forge (later than the acquisition while on probation, see the header).
   */
  readonly term?: { resourceVersion: string; renewSentAt: number; forgeFrom: number };
  /** The last non-empty holder we saw, for the fence when the lease disappears. */
  readonly lastHolder?: string;
  /** The fence obligation the last record we saw carried (kept while the Lease is absent). */
  readonly lastPending?: FencePending;
  /** When the last failed write happened; writes are retried no sooner than a backoff later. */
  readonly lastFailureAt?: number;
  /** No acquisition before this time (after stepping aside). */
  readonly notBefore?: number;
}

/** What the loop should do next. */
export type Decision =
  | { kind: "renew"; record: LeaseRecord; deadline: number }
  | {
    kind: "acquire";
    /** The record to replace (conditional on its resourceVersion), or undefined to create. */
    record: LeaseRecord | undefined;
    /** Who held the lease before, "" if nobody we know of. */
    previousHolder: string;
    /** False when the previous holder handed over cleanly, was us, or is unknown. */
    proofNeeded: boolean;
    /** The holder to prove stopped came from a fence obligation on the Lease. */
    pending?: FencePending;
    /**
     * When we first saw the version this acquisition replaces (or the absence), monotonic: the
     * previous holder's last successful renew was sent before it, so its guard's bound counts
     * from here (FENCE=guard).
     */
    observedAt: number;
  }
  | { kind: "demote"; reason: ElectionStopReason }
  | { kind: "wait"; until: number; reason: string };

/** The initial state of a participant. */
export function initialState(identity: string): ElectionState {
  return { identity };
}

/** Records a read of the Lease (or a write's response) made at monotonic time `now`. */
export function observe(
  state: ElectionState,
  observation: Observation,
  now: number,
): ElectionState {
  const key = observation.kind === "absent" ? "absent" : `rv:${observation.record.resourceVersion}`;
  const changedAt = state.seen !== undefined && state.seen.key === key ? state.seen.changedAt : now;
  const holder = observation.kind === "present" ? observation.record.holder : "";
  // A present record without an obligation ends the one seen before; absence keeps it, or, when
  // we never saw a holder, takes the pod the CardanoLeader status names (its node may forge).
  const lastPending = observation.kind === "present"
    ? observation.record.fencePending
    : state.lastPending ?? fromStatus(state, observation.lastLeader);
  const { lastPending: _old, ...rest } = state;
  return {
    ...rest,
    ...(lastPending !== undefined ? { lastPending } : {}),
    seen: { observation, key, changedAt },
    lastHolder: holder !== "" ? holder : state.lastHolder,
  };
}

/** The obligation to fence the pod the status names, if we know of no holder ourselves. */
function fromStatus(state: ElectionState, pod: string | undefined): FencePending | undefined {
  if (state.lastHolder !== undefined || pod === undefined || pod === "") return undefined;
  if (pod === podOf(state.identity)) return undefined;
  return { holder: `${pod}${STATUS_SUFFIX}` };
}

/** Suffix of the identity given to a holder known only from the CardanoLeader status. */
const STATUS_SUFFIX = "_status";

/**
 * Records a successful acquire or renew, SENT at `sentAt`, whose response came at `now`.
 * With `probation` (a create, or re-acquiring our own record whose write went unanswered), a new
 * term may forge only from `now + leaseDuration + acquireDelay`; a renew keeps the term's start.
 */
export function written(
  state: ElectionState,
  record: LeaseRecord,
  sentAt: number,
  now: number,
  probation?: { timing: ElectionTiming },
): ElectionState {
  const next = observe(state, { kind: "present", record }, now);
  const { lastFailureAt: _drop, ...rest } = next;
  const forgeFrom = state.term !== undefined
    ? state.term.forgeFrom
    : probation === undefined
    ? -Infinity
    : now + probation.timing.leaseDurationMs + probation.timing.acquireDelayMs;
  return {
    ...rest,
    term: { resourceVersion: record.resourceVersion, renewSentAt: sentAt, forgeFrom },
  };
}

/**
 * Whether a term begun by this write needs probation before forging (see the module header): a
 * create, re-acquiring our own record, or a renew answered only after its term had ended (our own
 * record again: the term it renewed may have been on probation, and that is forgotten at the end
 * of a term). A renew within its term keeps the term's start and never asks.
 */
export function needsProbation(decision: Decision, identity: string): boolean {
  if (decision.kind === "renew") return true;
  return decision.kind === "acquire" &&
    (decision.record === undefined || decision.record.holder === identity);
}

/** Records a failed write (conflict, error or timeout) at `now`. */
export function writeFailed(state: ElectionState, now: number): ElectionState {
  return { ...state, lastFailureAt: now };
}

/** Records that we stopped leading; with `holdOffMs`, we do not try to lead again before then. */
export function demoted(state: ElectionState, now: number, holdOffMs = 0): ElectionState {
  const { term: _drop, ...rest } = state;
  return holdOffMs > 0 ? { ...rest, notBefore: now + holdOffMs } : rest;
}

/**
 * Whether this state may forge now: it holds the lease, its term has time left, and it is past
 * any probation.
 */
export function isLeading(state: ElectionState, now: number, timing: ElectionTiming): boolean {
  return state.term !== undefined && now >= state.term.forgeFrom &&
    now < state.term.renewSentAt + timing.renewDeadlineMs;
}

/** From when the current term may forge (monotonic), or undefined when not holding the lease. */
export function forgeFrom(state: ElectionState): number | undefined {
  return state.term?.forgeFrom;
}

/** The end of the current term (monotonic), or undefined when not leading. */
export function termDeadline(state: ElectionState, timing: ElectionTiming): number | undefined {
  return state.term === undefined ? undefined : state.term.renewSentAt + timing.renewDeadlineMs;
}

/** Decides the next action. Pure: the same inputs always give the same decision. */
export function decide(state: ElectionState, now: number, timing: ElectionTiming): Decision {
  const backoff = Math.min(1000, timing.retryPeriodMs);
  const retryAt = state.lastFailureAt === undefined ? -Infinity : state.lastFailureAt + backoff;
  return state.term !== undefined
    ? decideLeading(state, state.term, now, timing, retryAt)
    : decideFollowing(state, now, timing, retryAt);
}

/** A leader: demote at the deadline or when the Lease is no longer ours, else renew when due. */
function decideLeading(
  state: ElectionState,
  term: NonNullable<ElectionState["term"]>,
  now: number,
  timing: ElectionTiming,
  retryAt: number,
): Decision {
  const seen = state.seen;
  const deadline = term.renewSentAt + timing.renewDeadlineMs;
  if (now >= deadline) return { kind: "demote", reason: "renew_deadline" };
  if (seen === undefined || seen.observation.kind === "absent") {
    return { kind: "demote", reason: "lease_deleted" };
  }
  const record = seen.observation.record;
  if (record.holder !== state.identity) {
    return { kind: "demote", reason: record.holder === "" ? "lease_released" : "lease_taken" };
  }
  const due = Math.max(term.renewSentAt + timing.retryPeriodMs, retryAt);
  if (now >= due) return { kind: "renew", record, deadline };
  const probationEnds = term.forgeFrom > now ? term.forgeFrom : Infinity;
  return {
    kind: "wait",
    until: Math.min(due, deadline, probationEnds),
    reason: probationEnds < Infinity ? "probation" : "renew_later",
  };
}

/** A follower: wait out what it saw (and any hold-off), then acquire as the record allows. */
function decideFollowing(
  state: ElectionState,
  now: number,
  timing: ElectionTiming,
  retryAt: number,
): Decision {
  const seen = state.seen;
  if (state.notBefore !== undefined && now < state.notBefore) {
    return { kind: "wait", until: state.notBefore, reason: "stepped_aside" };
  }
  if (seen === undefined) {
    return { kind: "wait", until: now + timing.sleepIntervalMs, reason: "not_observed" };
  }
  const notBeforeRetry = (d: Decision): Decision =>
    now < retryAt ? { kind: "wait", until: retryAt, reason: "backoff" } : d;
  // A fence obligation on the Lease names the holder to prove stopped, whoever holds it now:
  // that holder never forged, the one it names may still.
  const owed = (d: Extract<Decision, { kind: "acquire" }>, pending: FencePending | undefined) =>
    notBeforeRetry(
      pending === undefined || pending.holder === "" || pending.holder === state.identity
        ? d
        : { ...d, previousHolder: pending.holder, proofNeeded: true, pending },
    );

  if (seen.observation.kind === "absent") {
    // Created at once: the create's probation is the wait (see the header).
    const previousHolder = state.lastHolder ?? "";
    return owed({
      kind: "acquire",
      observedAt: seen.changedAt,
      record: undefined,
      previousHolder,
      proofNeeded: previousHolder !== "" && previousHolder !== state.identity,
    }, state.lastPending);
  }

  const record = seen.observation.record;
  if (record.holder === state.identity) {
    // Our own record whose write response we lost (identities are unique per process).
    return owed(
      {
        kind: "acquire",
        record,
        previousHolder: "",
        proofNeeded: false,
        observedAt: seen.changedAt,
      },
      record.fencePending,
    );
  }
  const releasedBy = record.holder === "" ? record.releasedBy ?? "" : "";
  const handedToOther = releasedBy !== "" && record.handoverTo !== undefined &&
    record.handoverTo !== "" && record.handoverTo !== podOf(state.identity);
  if (releasedBy !== "" && !handedToOther) {
    // Its node is stopped (no proof needed), but a release made on probation carries the rest of
    // that probation: the deleted Lease's last holder may forge until it ends.
    const waitUntil = seen.changedAt + (record.releaseWaitMs ?? 0);
    if (now < waitUntil) return { kind: "wait", until: waitUntil, reason: "release_probation" };
    return owed({
      kind: "acquire",
      observedAt: seen.changedAt,
      record,
      previousHolder: releasedBy,
      proofNeeded: false,
    }, record.fencePending);
  }
  const duration = Math.max(record.durationMs, timing.leaseDurationMs);
  const expiresAt = seen.changedAt + duration + timing.acquireDelayMs;
  if (now < expiresAt) {
    return {
      kind: "wait",
      until: expiresAt,
      reason: handedToOther
        ? "handed_to_other"
        : record.holder === ""
        ? "unexplained_release"
        : "held",
    };
  }
  if (handedToOther) {
    // The release was clean (the previous leader unlinked and signalled): after the wait, no
    // proof is needed, as for a clean release taken at once.
    return notBeforeRetry({
      kind: "acquire",
      observedAt: seen.changedAt,
      record,
      previousHolder: releasedBy,
      proofNeeded: false,
    });
  }
  const previousHolder = record.holder !== "" ? record.holder : state.lastHolder ?? "";
  return owed({
    kind: "acquire",
    observedAt: seen.changedAt,
    record,
    previousHolder,
    proofNeeded: previousHolder !== "" && previousHolder !== state.identity,
  }, record.fencePending);
}
