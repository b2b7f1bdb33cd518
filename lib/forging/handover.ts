/**
 * Planned handovers, whoever asks for them: an operator (spec.handover), a leader whose node lags
 * the chain while a synced standby waits (sync.ts), or the return to the preferred replica
 * (preferred.ts). Each ends the term as a shutdown does (unlink, SIGHUP), releases the Lease clean
 * and naming its target (only that pod takes it at once, see election.ts), and steps aside for two
 * lease durations; its result goes to `status.handover`, where the target writes `done` once it
 * forges (operations.ts).
 *
 * @module
 */

import type { HandoverReason, HandoverResult } from "../kube/cardano_leader.ts";
import { type Effect, report } from "./events.ts";
import { type ForgingState, optional, withOps } from "./state.ts";
import { beginStop } from "./stopping.ts";

/** One planned handover. */
export interface Handover {
  /** spec.handover's id, or one made up by the leader for its own handovers. */
  id: string;
  /** The target pod; "" for any standby. */
  to: string;
  /** Who asked: the operator's user, or this pod for its own handovers. */
  by: string;
  reason: HandoverReason;
}

/** The id of a handover the leader starts itself: its reason, this process and its term. */
export function ownHandoverId(s: ForgingState, reason: HandoverReason): string {
  const suffix = s.cfg.identity.slice(s.cfg.identity.lastIndexOf("_") + 1).slice(0, 16);
  return `${reason}-${suffix}-${s.term}`;
}

/** A handover that ends without a release (or once its release is answered): its result. */
export function handoverResult(h: Handover, result: HandoverResult, fx: Effect[]): void {
  fx.push(report({ kind: "handover_done", id: h.id, to: h.to, reason: h.reason, result }));
  fx.push({ kind: "report_handover", id: h.id, to: h.to, reason: h.reason, result });
}

/**
 * Ends the term and releases the Lease clean to `h.to`, then steps aside, at once (slot_wait.ts
 * decides when: `plan`).
 */
export function handOverNow(
  s: ForgingState,
  h: Handover,
  now: number,
  fx: Effect[],
): ForgingState {
  fx.push(report({ kind: "handover_started", id: h.id, to: h.to, by: h.by, reason: h.reason }));
  const next = beginStop(s, h.reason, { kind: "step_aside", provision: false }, now, fx, {
    holdOffMs: 2 * s.cfg.leaseDurationMs,
  });
  const phase = next.phase;
  if (phase.kind !== "stopping" || phase.release === undefined) {
    handoverResult(h, "release_failed", fx);
    return next;
  }
  return withOps({
    ...next,
    phase: {
      ...phase,
      release: { ...phase.release, ...optional("handoverTo", h.to || undefined) },
    },
  }, { ...next.ops, pendingHandover: h });
}
