/**
 * Slot-aware planned handovers (with `cfg.schedule`, LEADER_SCHEDULE_FILE): a planned end of term
 * that would come within LEADER_SLOT_MARGIN of one of the pool's leader slots loses that slot's
 * block: the forging node stops just before it, and the next one starts just after. So every
 * planned end of term of a forging leader (an operator's handover, the sync handover, the return
 * to the preferred replica, a shutdown, our Pod's deletion) first waits until no slot is within
 * the margin, bounded by the time it has:
 * - a handover (operator's, sync, preferred): {@linkcode HANDOVER_SLOT_WAIT_MS};
 * - a shutdown: SHUTDOWN_SLOT_WAIT;
 * - our Pod's deletion: its grace period (deletionGracePeriodSeconds) less
 *   {@linkcode POD_GRACE_RESERVE_MS}, or SHUTDOWN_SLOT_WAIT when the Pod did not say.
 *
 * A fault never waits: the renew deadline, a lost Lease, a node gone, a guard gone, bad keys all
 * stop through their own paths at once; a wait in progress then ends (a shutdown or a deletion
 * goes on from wherever the fault left the term). While it waits the leader goes on forging and
 * renewing as usual. A leader that does not forge has nothing to lose and never waits.
 *
 * The schedule is the pool's slots (absolute numbers, lib/cardano/leader_schedule.ts), read again
 * every {@linkcode SCHEDULE_READ_MS} (a new epoch's schedule replaces the old); their times come
 * from the genesis timing, turned into monotonic ones at each read. It is sensitive: slot numbers
 * go to debug logs only.
 *
 * @module
 */

import { slotStartMs } from "../cardano/kes_period.ts";
import { type Effect, report } from "./events.ts";
import { type Handover, handOverNow } from "./handover.ts";
import { type ForgingState, isForging } from "./state.ts";
import { endTermAtDeletion, shutdown } from "./stopping.ts";

/** How often the schedule file is read again (a new epoch's replaces it), in ms. */
export const SCHEDULE_READ_MS = 30_000;

/** The longest a handover (operator's, sync, preferred) waits for a slot, in ms. */
export const HANDOVER_SLOT_WAIT_MS = 60_000;

/**
 * What a Pod deletion keeps of its grace period for the rest of its shutdown: the release, and
 * the node's exit before the kubelet's SIGKILL.
 */
export const POD_GRACE_RESERVE_MS = 10_000;

/** The schedule as last read: the slots, and a wall-clock time with its monotonic one. */
export interface Schedule {
  slots: readonly number[];
  wallMs: number;
  monoMs: number;
}

/** A planned end of term that may wait for a slot. */
export type PlannedRequest =
  | { trigger: "handover" | "sync" | "preferred"; handover: Handover }
  | { trigger: "shutdown" }
  | { trigger: "pod_terminating"; graceMs?: number };

/** What waits for which slot to pass. */
export interface Planned {
  request: PlannedRequest;
  since: number;
  /** When it runs: the end of the slots' windows, or its bound if that comes first. */
  until: number;
  /** Its bound (the time it has). */
  deadline: number;
}

/** A request outranks one planned before it if at least as urgent (a deletion, then a shutdown). */
const RANK = { preferred: 0, sync: 0, handover: 1, shutdown: 2, pod_terminating: 3 } as const;

/** When `slot` begins, on this replica's monotonic clock. */
function slotAtMono(s: ForgingState, schedule: Schedule, slot: number): number {
  return schedule.monoMs + slotStartMs(s.cfg.kesTiming!, slot) - schedule.wallMs;
}

/**
 * The first time from `now` on at which no slot of the schedule is within the margin: each slot
 * keeps `[start - margin, end + margin)` free of planned handovers; overlapping ones merge.
 */
export function clearAt(s: ForgingState, now: number): number {
  const schedule = s.schedule;
  const cfg = s.cfg.schedule;
  if (schedule === undefined || cfg === undefined || s.cfg.kesTiming === undefined) return now;
  const length = s.cfg.kesTiming.slotLengthMs;
  let t = now;
  for (const slot of schedule.slots) {
    const start = slotAtMono(s, schedule, slot);
    if (start + length + cfg.marginMs <= t) continue;
    if (start - cfg.marginMs > t) break;
    t = start + length + cfg.marginMs;
  }
  return t;
}

/** The next slot that begins after `now`: its number and its start (monotonic). */
export function nextSlot(s: ForgingState, now: number): { slot: number; at: number } | undefined {
  const schedule = s.schedule;
  if (schedule === undefined || s.cfg.kesTiming === undefined) return undefined;
  for (const slot of schedule.slots) {
    const at = slotAtMono(s, schedule, slot);
    if (at > now) return { slot, at };
  }
  return undefined;
}

/** The time a request has to wait, from `now` (monotonic). */
function deadlineOf(s: ForgingState, request: PlannedRequest, now: number): number {
  const shutdownWait = s.cfg.schedule?.shutdownWaitMs ?? 0;
  switch (request.trigger) {
    case "shutdown":
      return now + shutdownWait;
    case "pod_terminating":
      return now +
        (request.graceMs !== undefined
          ? Math.max(0, request.graceMs - POD_GRACE_RESERVE_MS)
          : shutdownWait);
    default:
      return now + HANDOVER_SLOT_WAIT_MS;
  }
}

/** Performs a request now. */
function perform(
  s: ForgingState,
  request: PlannedRequest,
  now: number,
  fx: Effect[],
): ForgingState {
  switch (request.trigger) {
    case "shutdown":
      return shutdown(s, now, fx);
    case "pod_terminating":
      return endTermAtDeletion(s, now, fx);
    default:
      return handOverNow(s, request.handover, now, fx);
  }
}

/**
 * A planned end of term: performed now, unless this replica forges and one of the pool's slots is
 * within the margin; then it waits (reported), and `settlePlanned` performs it later. A request
 * less urgent than one already waiting is dropped (a shutdown outranks a handover).
 */
export function plan(
  s: ForgingState,
  request: PlannedRequest,
  now: number,
  fx: Effect[],
): ForgingState {
  const waiting = s.planned;
  if (waiting !== undefined) {
    // A less urgent request waits behind (is dropped); a second shutdown or deletion changes
    // nothing (its bound is the first one's); a newer handover replaces an older one.
    const rank = RANK[request.trigger] - RANK[waiting.request.trigger];
    if (rank < 0 || (rank === 0 && request.trigger !== "handover")) return s;
    fx.push(report({
      kind: "slot_wait_ended",
      trigger: waiting.request.trigger,
      outcome: "cancelled",
      waitedMs: now - waiting.since,
    }));
  }
  const clear = isForging(s) ? clearAt(s, now) : now;
  if (clear <= now) {
    const { planned: _gone, ...rest } = s;
    return perform(rest, request, now, fx);
  }
  const deadline = deadlineOf(s, request, now);
  const until = Math.min(clear, deadline);
  const next = nextSlot(s, now - s.cfg.kesTiming!.slotLengthMs - s.cfg.schedule!.marginMs);
  fx.push(report({
    kind: "slot_wait_started",
    trigger: request.trigger,
    waitMs: until - now,
    ...(next !== undefined ? { slot: next.slot } : {}),
  }));
  return { ...s, planned: { request, since: now, until, deadline } };
}

/** A schedule read again: a wait in progress ends when the new schedule's windows do. */
export function replanned(s: ForgingState, now: number): ForgingState {
  const p = s.planned;
  if (p === undefined) return s;
  return { ...s, planned: { ...p, until: Math.max(now, Math.min(clearAt(s, now), p.deadline)) } };
}

/**
 * A wait whose time has come is performed; one whose term a fault ended (this replica no longer
 * forges) ends at once: a shutdown or a deletion goes on from where the fault left the term, a
 * handover is dropped (the fault's own stop released the Lease, or will).
 */
export function settlePlanned(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const p = s.planned;
  if (p === undefined) return s;
  const forging = isForging(s);
  if (forging && now < p.until) return s;
  const { planned: _done, ...rest } = s;
  const outcome = !forging ? "cancelled" : p.until < p.deadline ? "passed" : "bound";
  fx.push(report({
    kind: "slot_wait_ended",
    trigger: p.request.trigger,
    outcome,
    waitedMs: now - p.since,
  }));
  const keeps = p.request.trigger === "shutdown" || p.request.trigger === "pod_terminating";
  return forging || keeps ? perform(rest, p.request, now, fx) : rest;
}

/**
 * The schedule read again: the slots replace the last ones (only those not yet past are kept),
 * anchored to this read's wall-clock time; a wait in progress follows the new windows. A file
 * that cannot be read or parsed keeps the last schedule (reported once per problem).
 */
export function scheduleRead(
  s: ForgingState,
  e: { wallMs: number; slots?: number[]; error?: string },
  now: number,
  fx: Effect[],
): ForgingState {
  if (e.slots === undefined) {
    const error = e.error ?? "no slots";
    if (error !== s.scheduleError) fx.push(report({ kind: "schedule_unusable", error }));
    return { ...s, scheduleError: error };
  }
  const { scheduleError: _fixed, ...rest } = s;
  const anchored: Schedule = { slots: e.slots, wallMs: e.wallMs, monoMs: now };
  const length = s.cfg.kesTiming?.slotLengthMs ?? 0;
  const margin = s.cfg.schedule?.marginMs ?? 0;
  const kept = e.slots.filter((slot) => slotAtMono(s, anchored, slot) + length + margin > now);
  const old = s.schedule?.slots ?? [];
  const changed = s.schedule === undefined || old.length !== kept.length ||
    old.some((slot, i) => slot !== kept[i]);
  const next: ForgingState = { ...rest, schedule: { ...anchored, slots: kept } };
  const ahead = nextSlot(next, now);
  fx.push(report({
    kind: "schedule_loaded",
    upcoming: kept.filter((slot) => slotAtMono(s, anchored, slot) > now).length,
    changed,
    ...(ahead !== undefined ? { next: ahead.slot } : {}),
  }));
  return replanned(next, now);
}
