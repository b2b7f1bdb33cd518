/**
 * The guard as the step sees it (with `cfg.guard`): the guard is a process of its own on this
 * machine (lib/core/guard.ts) that stops the node itself when this sidecar's term lapses or the
 * sidecar dies. The rules here:
 * - a promotion arms the guard beside its claim and its placement; the SIGHUP waits for the
 *   guard's `armed` (promotion.ts); a guard that cannot be armed makes the leader step aside;
 * - from that arming until a stop confirms, every answer to the guard's pings says "armed" with
 *   the term's time left (`guardAnswer`), so the guard's deadline never outlives the term;
 * - a guard that goes away (its connection closes, or it refuses us) while keys may be in place
 *   makes the leader step aside at once (unlink, SIGHUP, release): nothing would stop this node
 *   if this sidecar froze now, so another replica with a working guard should lead;
 * - the guard stopping the node itself (its deadline passed while we still thought we forged)
 *   ends forging the same way.
 *
 * @module
 */

import { type Effect, type ForgingEvent, report } from "./events.ts";
import { forgeDeadline, type ForgingState, isForging } from "./state.ts";
import { stepAside } from "./stopping.ts";

/** How long an arming may take before the promotion gives up, in ms. */
export const GUARD_ARM_TIMEOUT_MS = 2000;

/** What to answer the guard's ping now: whether keys may be in place, and the term's time left. */
export function guardAnswer(s: ForgingState, now: number): { armed: boolean; leftMs: number } {
  if (!s.guardWanted) return { armed: false, leftMs: 0 };
  // Across clusters the coordination Lease's term may end first: the earlier deadline counts.
  const deadline = forgeDeadline(s);
  // Keys at risk with no term left (an unconfirmed stop after the term): the guard acts at once.
  return { armed: true, leftMs: deadline === undefined ? 0 : Math.max(0, deadline - now) };
}

/** The promotion's arming: from here on every answer says "armed". */
export function armGuard(s: ForgingState, term: number, fx: Effect[]): ForgingState {
  fx.push({ kind: "arm_guard", term, timeoutMs: GUARD_ARM_TIMEOUT_MS });
  return { ...s, guardWanted: true };
}

/** Whether keys may be in place for forging now, by this sidecar's own account. */
function keysAtRisk(s: ForgingState): boolean {
  return isForging(s) || s.phase.kind === "promoting";
}

/** The guard's events, other than the arming's answer (promotion.ts). */
export function guardEvent(
  s: ForgingState,
  e: Extract<
    ForgingEvent,
    { kind: "guard_arm_failed" | "guard_link" | "guard_fired" | "guard_state" }
  >,
  now: number,
  fx: Effect[],
): ForgingState {
  switch (e.kind) {
    case "guard_arm_failed": {
      fx.push(report({ kind: "guard_arm_failed", error: e.error }));
      const phase = s.phase;
      if (phase.kind !== "promoting" || phase.term !== e.term) return s;
      return stepAside(s, `the guard could not be armed: ${e.error}`, now, fx, {
        provision: false,
        reason: "guard",
      });
    }
    case "guard_link": {
      fx.push(report({ kind: "guard_link", up: e.up, ...(e.error ? { error: e.error } : {}) }));
      const next: ForgingState = {
        ...s,
        guardLink: e.up ? "up" : "down",
        ...(e.up ? {} : { guardArmed: false }),
      };
      if (e.up || !keysAtRisk(next)) return next;
      return stepAside(
        next,
        `the guard went away: ${e.error ?? "its connection closed"}`,
        now,
        fx,
        {
          provision: false,
          reason: "guard",
        },
      );
    }
    case "guard_fired": {
      const wasForging = keysAtRisk(s);
      fx.push(report({
        kind: "guard_fired",
        reason: e.reason,
        ok: e.ok,
        ...(e.error !== undefined ? { error: e.error } : {}),
        wasForging,
      }));
      if (wasForging) {
        return stepAside(s, `the guard stopped the node (${e.reason})`, now, fx, {
          provision: false,
          reason: "guard",
        });
      }
      // Its stop counts as ours when no stop of ours is under way: keys gone, node signalled.
      return e.ok && s.stop === undefined ? { ...s, stopConfirmed: true, guardWanted: false } : s;
    }
    case "guard_state":
      fx.push(report({ kind: "guard_state", armed: e.armed, demotions: e.demotions }));
      return { ...s, guardArmed: e.armed };
  }
}

/** The guard as `status` shows it (see `ReplicaView.guard`). */
export function guardView(s: ForgingState): "off" | "absent" | "idle" | "armed" {
  if (!s.cfg.guard) return "off";
  if (s.guardLink !== "up") return "absent";
  return s.guardArmed ? "armed" : "idle";
}
