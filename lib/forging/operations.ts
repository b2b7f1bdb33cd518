/**
 * Operations: the operator's pause and handover, our own Pod's deletion, and this replica's
 * published state.
 *
 * With `cfg.operations`, every replica reads the CardanoLeader's spec every SLEEP_INTERVAL
 * (`read_control`; a failed read keeps the last known value) and publishes its own state
 * (`publish_replica`). The rules:
 * - a pause (spec.pause, active until `until` passes) holds a leader in `paused`: keys unlinked,
 *   node signalled, the Lease still renewed; a replica that acquires during a pause does not
 *   promote; no term promotes before the spec was read once (a pause survives restarts);
 * - a handover (spec.handover, a new id) ends a leader's term as a shutdown does, releasing
 *   clean and naming the target (only that pod takes the release at once, see election.ts),
 *   then steps aside; ids are remembered, and status.handover.id counts as handled;
 * - our own Pod's deletion (read while leading, FENCE=pod) ends the term at once, releasing
 *   clean to any standby, and the process never competes again (`retired`).
 *
 * @module
 */

import type { ControlView, HandoverResult, ReplicaView } from "../kube/cardano_leader.ts";
import { DUE, isDue } from "./due.ts";
import { type Effect, type ForgingEvent, type OpsEvent, report } from "./events.ts";
import {
  controlOf,
  type ForgingState,
  holdsTerm,
  isForging,
  keysMoving,
  leadsNow,
  nodeCheckInterval,
  type OpsState,
  optional,
  readTimeout,
  withOps,
} from "./state.ts";
import { endTermAtDeletion, stopNode } from "./stopping.ts";
import { type Handover, handoverResult } from "./handover.ts";
import { nextSlot, plan } from "./slot_wait.ts";
import { slotStartMs } from "../cardano/kes_period.ts";
import { peerSync, syncOf } from "./sync.ts";
import { guardView } from "./guard.ts";

/** How often an unchanged replica state is published again (ms). */
export const REPLICA_HEARTBEAT_MS = 10_000;

/**
 * The CardanoLeader and our Pod are watched (every change arrives at once); a read is the
 * backstop for a watch gone quiet. After a watch event the next read of the CardanoLeader waits
 * this long (our own heartbeats modify it every REPLICA_HEARTBEAT_MS, so a live watch keeps it
 * from ever coming), after a read only SLEEP_INTERVAL. Our Pod is read this often while leading.
 */
export const WATCHED_READ_MS = 30_000;

/** A handover request older than this when a leader first sees it is not acted on. */
export const HANDOVER_MAX_AGE_MS = 60_000;

/** Whether a pause is in force at `now` (monotonic). */
export function pauseActive(control: ControlView | undefined, now: number): boolean {
  const pause = control?.pause;
  return pause !== undefined && (pause.endsAt === undefined || now < pause.endsAt);
}

/** Whether a term may promote now: the spec was read once and no pause is in force. */
export function mayPromote(s: ForgingState, now: number): boolean {
  if (!s.cfg.operations) return true;
  const control = controlOf(s);
  return control !== undefined && !pauseActive(control, now);
}

/** The operations' events: the CardanoLeader read or watched, our Pod read or watched. */
export function applyOps(s: ForgingState, e: OpsEvent, now: number, fx: Effect[]): ForgingState {
  const ops = s.ops ?? {};
  const due = now + s.cfg.sleepIntervalMs;
  switch (e.kind) {
    case "control_read": {
      if (!e.watched && ops.controlReadStale) {
        // A watch event came after this read was sent: keep what it said.
        return withOps(s, { ...ops, controlBusy: false, controlReadStale: false });
      }
      const next = e.watched
        ? {
          ...ops,
          control: e.control,
          nextControlReadAt: now + WATCHED_READ_MS,
          controlReadStale: ops.controlBusy === true,
        }
        : { ...ops, control: e.control, controlBusy: false, nextControlReadAt: due };
      return handover(withOps(s, next), e.control, now, fx);
    }
    case "control_read_failed":
      fx.push(report({ kind: "control_read_failed", error: e.error }));
      // The last known requests stay in force; with none known, there are none.
      return withOps(s, {
        ...ops,
        control: ops.control ?? {},
        controlBusy: false,
        nextControlReadAt: due,
      });
    case "pod_checked":
      return withOps(s, {
        ...ops,
        ...(e.watched ? {} : { podCheckBusy: false }),
        nextPodCheckAt: now + WATCHED_READ_MS,
      });
    case "pod_check_failed":
      fx.push(report({ kind: "pod_check_failed", error: e.error }));
      return withOps(s, {
        ...ops,
        podCheckBusy: false,
        nextPodCheckAt: now + nodeCheckInterval(s.cfg),
      });
    case "pod_terminating": {
      const next = withOps(s, { ...ops, ...(e.watched ? {} : { podCheckBusy: false }) });
      // Seen once is enough: a deletion is never undone.
      return ops.podTerminating ? next : podTerminating(next, e.graceMs, now, fx);
    }
  }
}

/** Results that belong to a handover in progress (its release), before the usual handling. */
export function beforeEvent(s: ForgingState, e: ForgingEvent, fx: Effect[]): ForgingState {
  const pending = s.ops?.pendingHandover;
  if (pending === undefined) return s;
  if (e.kind !== "lease_released" && e.kind !== "lease_release_failed") return s;
  const result: HandoverResult = e.kind === "lease_release_failed"
    ? "release_failed"
    : e.clean
    ? "released"
    : "released_unclean";
  handoverResult(pending, result, fx);
  const { pendingHandover: _done, ...ops } = s.ops!;
  return withOps(s, ops);
}

function handover(s: ForgingState, control: ControlView, now: number, fx: Effect[]): ForgingState {
  const h = control.handover;
  const ops = s.ops ?? {};
  const handled = ops.handled ?? [];
  if (h === undefined || handled.includes(h.id) || h.id === control.handledId) return s;
  // A clean release lets the target forge without proof; mid-fence, the previous holder's node
  // is not proven stopped yet: act on the request once the fence is done (it is read again).
  if (s.phase.kind === "fencing") return s;
  const next = withOps(s, { ...ops, handled: [...handled.slice(-15), h.id] });
  if (!holdsTerm(s)) return next;
  const request: Handover = { id: h.id, to: h.to, by: h.by, reason: "handover" };
  const done = (result: HandoverResult): ForgingState => {
    handoverResult(request, result, fx);
    return next;
  };
  if (h.ageMs > HANDOVER_MAX_AGE_MS) return done("stale");
  if (h.to === s.cfg.podName) return done("already_leader");
  // The command refuses a lagging target; its entry may have changed since.
  if (h.to !== "" && peerSync(next, h.to, now) === "lagging") return done("target_lagging");
  return plan(next, { trigger: "handover", handover: request }, now, fx);
}

/** A standby whose Pod is being deleted never competes again. */
export function retireIfDeleted(s: ForgingState): ForgingState {
  const k = s.phase.kind;
  return s.ops?.podTerminating && (k === "standby" || k === "stepped_aside")
    ? { ...s, phase: { kind: "retired" } }
    : s;
}

function podTerminating(
  s: ForgingState,
  graceMs: number | undefined,
  now: number,
  fx: Effect[],
): ForgingState {
  const leading = holdsTerm(s);
  fx.push(report({ kind: "pod_terminating", leading }));
  const next = withOps(s, { ...s.ops, podTerminating: true });
  // A forging leader's term may wait for one of the pool's slots (within the grace period).
  return leading
    ? plan(next, { trigger: "pod_terminating", ...optional("graceMs", graceMs) }, now, fx)
    : endTermAtDeletion(next, now, fx);
}

/** The time-driven part of the operations, run by `settle`. */
export function settleRequests(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  if (!s.cfg.operations) return s;
  if (keysMoving(s)) return rememberReason(s); // requests wait until the keys have moved
  let ops: OpsState = s.ops ?? {};
  if (isDue(DUE.control(s), now)) {
    fx.push({ kind: "read_control", timeoutMs: readTimeout(s.cfg) });
    ops = { ...ops, controlBusy: true };
  }
  if (isDue(DUE.pod(s), now)) {
    fx.push({ kind: "check_pod", timeoutMs: readTimeout(s.cfg) });
    ops = { ...ops, podCheckBusy: true };
  }
  return publish(handoverCompleted(withOps(s, ops), fx), now, fx);
}

/**
 * The target of a handover, once it forges in the term it took from the release naming it, writes
 * the handover done: the leader's `released` only says that its own part is over.
 */
function handoverCompleted(s: ForgingState, fx: Effect[]): ForgingState {
  const last = s.ops?.control?.lastHandover;
  const phase = s.phase;
  if (last === undefined || last.result !== "released" || last.to !== s.cfg.podName) return s;
  if (phase.kind !== "forging" || phase.term !== s.handoverTerm) return s;
  if (s.ops?.doneReported === last.id) return s;
  fx.push(report({ kind: "handover_completed", id: last.id }));
  fx.push({
    kind: "report_handover",
    id: last.id,
    to: last.to,
    reason: last.reason,
    result: "done",
  });
  return withOps(s, { ...s.ops, doneReported: last.id });
}

/** An operator's pause begins or ends: a leader is held in `paused`, or resumes. */
export function pause(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const ops = s.ops ?? {};
  const control = controlOf(s);
  const active = pauseActive(control, now);
  let next = s;
  if (active !== (ops.pauseSeen ?? false)) {
    const p = control?.pause;
    fx.push(report(
      active && p !== undefined
        ? { kind: "pause_started", reason: p.reason, by: p.by }
        : { kind: "pause_ended" },
    ));
    next = withOps(next, { ...ops, pauseSeen: active });
  }
  const phase = next.phase;
  if (
    active && (phase.kind === "awaiting_node" || phase.kind === "promoting" ||
      phase.kind === "forging")
  ) {
    const p = control!.pause!;
    const wasForging = phase.kind !== "awaiting_node";
    fx.push(report({ kind: "paused_leader", reason: p.reason, by: p.by, wasForging }));
    next = { ...next, phase: { kind: "paused", term: phase.term } };
    // Keys placed (or being placed) and perhaps signalled: unlink, then SIGHUP, on the lane.
    if (wasForging) next = stopNode(next, "paused", fx);
    return next;
  }
  if (!active && phase.kind === "paused") {
    fx.push(report({ kind: "resumed_leader" }));
    // The pause's reason ends with it: the entry says why this leader forges again.
    return {
      ...next,
      phase: { kind: "awaiting_node", term: phase.term },
      ops: { ...next.ops, lastReason: "resumed" },
    };
  }
  return next;
}

/** This replica's state as `status` shows it. */
export function replicaView(s: ForgingState, now: number): ReplicaView {
  const phase = s.phase;
  const reason = phase.kind === "stopping"
    ? phase.reason
    : phase.kind === "paused"
    ? "paused"
    : phase.kind === "retired"
    ? "pod_terminating"
    : s.planned !== undefined
    ? `slot_wait_${s.planned.request.trigger}`
    : s.unsyncedForging && isForging(s)
    ? "forging_unsynced"
    : s.ops?.lastReason ?? "";
  const sync = s.cfg.maxTipLagSlots !== undefined ? syncOf(s, now) : undefined;
  const ahead = nextSlot(s, now);
  return {
    phase: phase.kind,
    leader: leadsNow(s, now),
    forging: isForging(s),
    nodeFound: s.node.kind === "present",
    fence: !s.cfg.fence ? "off" : phase.kind === "fencing" ? "proving" : "idle",
    guard: guardView(s),
    reason,
    ...(sync !== undefined ? { sync: sync.state, ...optional("tipLagSlots", sync.lagSlots) } : {}),
    // Only the next slot's time, never the schedule: what `status` shows as the time to it.
    ...(ahead !== undefined && s.cfg.kesTiming !== undefined
      ? { nextSlotAt: new Date(slotStartMs(s.cfg.kesTiming, ahead.slot)).toISOString() }
      : {}),
  };
}

/**
 * Keeps the reason of the last stop, which the published state shows after it. Only a stop's
 * reason is kept: a phase's own reason (paused, a retired Pod) is shown while the phase lasts and
 * would otherwise outlive it.
 */
function rememberReason(s: ForgingState): ForgingState {
  const phase = s.phase;
  const ops = s.ops ?? {};
  if (phase.kind !== "stopping" || phase.reason === ops.lastReason) return s;
  return withOps(s, { ...ops, lastReason: phase.reason });
}

function publish(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  s = rememberReason(s);
  const view = replicaView(s, now);
  // The lag moves with every reading: it goes out with the heartbeats, a change of sync at once.
  const key = JSON.stringify({ ...view, tipLagSlots: undefined });
  const ops = s.ops ?? {};
  if (key === ops.published && !isDue(DUE.publish(s), now)) return s;
  fx.push({ kind: "publish_replica", replica: view });
  return withOps(s, {
    ...ops,
    published: key,
    // A change is published at once; an unchanged state only as a heartbeat, well within the
    // 30 s after which `forge-manager status` calls an entry stale.
    nextPublishAt: now + Math.max(s.cfg.sleepIntervalMs, REPLICA_HEARTBEAT_MS),
  });
}
