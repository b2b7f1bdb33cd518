/**
 * The preferred replica (spec.preferredReplica, set by `forge-manager prefer`): the pod that
 * should forge whenever it can, for instance the one on the machine with the best connectivity.
 * After a failover the Lease stays where it landed; once the preferred replica has stood by ready
 * and synced (sync.ts) for PREFERRED_STABLE, the forging leader hands the term back to it by a
 * planned handover (handover.ts, reason `preferred`).
 *
 * Never by a race: only the current leader starts the return, by a clean release naming the
 * preferred pod; a standby never acquires early for being preferred. Every replica keeps the time
 * since which it has seen the preferred replica ready and synced (on its own monotonic clock, from
 * the entries it reads), so whichever replica leads knows how long that has lasted; any entry that
 * says otherwise, or goes stale, starts the count again.
 *
 * @module
 */

import { type Effect } from "./events.ts";
import { ownHandoverId } from "./handover.ts";
import { plan } from "./slot_wait.ts";
import { type ForgingState, withOps } from "./state.ts";
import { readySynced } from "./sync.ts";

/** The preferred pod, when it is another replica and the return is configured. */
function preferredOther(s: ForgingState): string | undefined {
  const preferred = s.ops?.control?.preferred;
  return s.cfg.preferredStableMs !== undefined && preferred !== undefined &&
      preferred !== s.cfg.podName
    ? preferred
    : undefined;
}

/** Whether this replica may start the return now: it forges, and no other handover runs. */
export function mayReturn(s: ForgingState): boolean {
  const phase = s.phase;
  return s.cfg.operations === true && phase.kind === "forging" && phase.rotation === undefined &&
    s.ops?.pendingHandover === undefined && s.planned === undefined;
}

/**
 * When the return is due (monotonic): the preferred replica's stable period after it was first
 * seen ready and synced, while this replica may start it; otherwise undefined.
 */
export function returnDueAt(s: ForgingState): number | undefined {
  const seen = s.ops?.preferredReady;
  if (seen === undefined || !mayReturn(s) || seen.pod !== preferredOther(s)) return undefined;
  return seen.since + s.cfg.preferredStableMs!;
}

/** Keeps since when the preferred replica has been seen ready and synced, without a break. */
export function notePreferred(s: ForgingState, now: number): ForgingState {
  const pod = preferredOther(s);
  const ready = pod !== undefined && readySynced(s, pod, now);
  const seen = s.ops?.preferredReady;
  if (ready && seen?.pod === pod) return s;
  if (!ready && seen === undefined) return s;
  const { preferredReady: _gone, ...ops } = s.ops ?? {};
  return withOps(s, ready ? { ...ops, preferredReady: { pod: pod!, since: now } } : ops);
}

/** The return, when due: a planned handover to the preferred replica. */
export function settlePreferred(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const next = notePreferred(s, now);
  const due = returnDueAt(next);
  if (due === undefined || now < due) return next;
  const pod = next.ops!.preferredReady!.pod;
  const handover = { id: ownHandoverId(next, "preferred"), to: pod, by: next.cfg.podName };
  return plan(
    next,
    {
      trigger: "preferred",
      handover: { ...handover, reason: "preferred" },
    },
    now,
    fx,
  );
}
