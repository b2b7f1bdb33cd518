/**
 * Sync-aware election (with `cfg.maxTipLagSlots`): a node whose tip lags the chain forges blocks
 * the network orphans, so the replica with a synced node should forge. The node's tip is its
 * metrics' slotNum; its lag is the wall clock's slot (from the network's genesis, at the reading's
 * own wall time) minus that tip. A reading counts for {@linkcode TIP_MAX_AGE_MS}.
 *
 * - `synced`: lag within MAX_TIP_LAG_SLOTS; `lagging`: beyond it; `unknown`: no recent reading
 *   (metrics unreadable or without slotNum, or none yet).
 * - Unknown is neither: we act on evidence of lag only. A node whose metrics endpoint is down (a
 *   monitoring port, configured apart from the chain) may be perfectly synced, and that replica may
 *   be the only failover left: unknown never blocks a promotion or a command. But it never attracts
 *   one either: automatic targets are synced replicas only, and a standby that is not known synced
 *   lets a synced one take the Lease first.
 * - A standby that is not synced lets a fresh, synced standby take a free Lease first: it defers
 *   its acquisition while one stands by, for at most one lease duration (a peer that says so but
 *   never acquires cannot keep the pool from forging).
 * - A leader whose node lags does not promote, and a forging one stops, when a synced standby
 *   stands by: it hands over to it (a planned handover, handover.ts). With none, it forges (or goes
 *   on forging) and says so: after a network-wide stall every node lags, and the chain resumes only
 *   because block producers forge on the tips they have.
 *
 * Sync never decides safety: only which replica takes the Lease, and when a planned handover
 * starts.
 *
 * @module
 */

import { slotAt } from "../cardano/kes_period.ts";
import type { PeerView, SyncState } from "../kube/cardano_leader.ts";
import type { NodeMetricsSample } from "../node/node_metrics.ts";
import type { Decision } from "./election.ts";
import { type Effect, report } from "./events.ts";
import { ownHandoverId } from "./handover.ts";
import { plan } from "./slot_wait.ts";
import { type ForgingState, isForging, leadsNow, NODE_METRICS_MS } from "./state.ts";

/** How long a tip reading counts: three reads of the node's metrics. */
export const TIP_MAX_AGE_MS = 3 * NODE_METRICS_MS;

/** A node's sync now, with its lag when known. */
export interface Sync {
  state: SyncState;
  lagSlots?: number;
}

/**
 * The tip's lag in slots in `sample` (0 for a tip ahead of the clock), or undefined when the
 * sample has no slotNum or sync is not configured (no genesis timing, or before its era).
 */
export function tipLag(s: ForgingState, sample: NodeMetricsSample): number | undefined {
  const timing = s.cfg.kesTiming;
  if (timing === undefined || s.cfg.maxTipLagSlots === undefined) return undefined;
  if (sample.slotNum === undefined || !Number.isFinite(sample.slotNum)) return undefined;
  try {
    return Math.max(0, slotAt(timing, sample.atMs) - sample.slotNum);
  } catch {
    return undefined; // a clock before the Shelley era: nothing to compare with
  }
}

/** This replica's node's sync at `now`. */
export function syncOf(s: ForgingState, now: number): Sync {
  const max = s.cfg.maxTipLagSlots;
  const tip = s.tip;
  if (max === undefined || tip === undefined || now - tip.at > TIP_MAX_AGE_MS) {
    return { state: "unknown" };
  }
  return { state: tip.lagSlots > max ? "lagging" : "synced", lagSlots: tip.lagSlots };
}

/** Another replica's entry, when it is fresh at `now`. */
function freshPeer(s: ForgingState, pod: string, now: number): PeerView | undefined {
  const peer = s.ops?.control?.replicas?.[pod];
  return peer !== undefined && now < peer.freshUntil ? peer : undefined;
}

/** Another replica's sync as it published it, if its entry is fresh (else unknown). */
export function peerSync(s: ForgingState, pod: string, now: number): SyncState {
  return freshPeer(s, pod, now)?.sync ?? "unknown";
}

/** Whether `pod`'s fresh entry says it stands by, its node found and synced. */
export function readySynced(s: ForgingState, pod: string, now: number): boolean {
  const peer = freshPeer(s, pod, now);
  return peer !== undefined && peer.phase === "standby" && peer.nodeFound && peer.sync === "synced";
}

/**
 * The other replicas that stand by ready and synced, best first: the preferred replica, then the
 * least lag, then by name.
 */
export function syncedStandbys(s: ForgingState, now: number): string[] {
  const control = s.ops?.control;
  const pods = Object.keys(control?.replicas ?? {}).filter((pod) =>
    pod !== s.cfg.podName && readySynced(s, pod, now)
  );
  const lag = (pod: string) => control?.replicas?.[pod]?.tipLagSlots ?? Infinity;
  return pods.sort((a, b) =>
    Number(b === control?.preferred) - Number(a === control?.preferred) || lag(a) - lag(b) ||
    a.localeCompare(b)
  );
}

/** Whether this replica's lag keeps it from promoting: it lags and a synced standby waits. */
export function syncHoldsPromotion(s: ForgingState, now: number): boolean {
  return syncOf(s, now).state === "lagging" && syncedStandbys(s, now).length > 0;
}

/**
 * Until when (monotonic) a standby defers an acquisition the election allows, or undefined when it
 * does not: only while it is not synced and a fresh synced standby waits, at most one lease
 * duration after it first deferred for this version of the Lease, and no longer than the first of
 * those standbys' entries stays fresh (then it looks again).
 */
export function acquireDeferral(
  s: ForgingState,
  d: Extract<Decision, { kind: "acquire" }>,
  now: number,
): { until: number; since: number } | undefined {
  if (s.cfg.maxTipLagSlots === undefined || syncOf(s, now).state === "synced") return undefined;
  const peers = syncedStandbys(s, now);
  if (peers.length === 0) return undefined;
  const since = s.deferredSince?.observedAt === d.observedAt ? s.deferredSince.since : now;
  const hardUntil = since + s.cfg.leaseDurationMs;
  if (now >= hardUntil) return undefined;
  const fresh = peers.map((pod) => s.ops!.control!.replicas![pod]!.freshUntil);
  return { until: Math.min(hardUntil, ...fresh), since };
}

/**
 * The leader's sync rules, run by `settle`: a lagging leader about to promote, or forging, hands
 * over to the best synced standby; with none, a forging one says so (once, and once when it ends).
 */
export function settleSync(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  if (s.cfg.maxTipLagSlots === undefined) return s;
  const own = syncOf(s, now);
  const phase = s.phase;
  const targets = own.state === "lagging" ? syncedStandbys(s, now) : [];
  const mayStart = (phase.kind === "forging" && phase.rotation === undefined) ||
    (phase.kind === "awaiting_node" && leadsNow(s, now) && s.leaseCarries === undefined);
  const idle = s.ops?.pendingHandover === undefined && s.planned === undefined;
  if (targets.length > 0 && mayStart && idle) {
    const handover = { id: ownHandoverId(s, "sync"), to: targets[0]!, by: s.cfg.podName };
    return plan(s, { trigger: "sync", handover: { ...handover, reason: "sync" } }, now, fx);
  }
  const unsynced = isForging(s) && own.state === "lagging";
  if (unsynced === (s.unsyncedForging ?? false)) return s;
  fx.push(report({
    kind: "unsynced_forging",
    active: unsynced,
    ...(own.lagSlots !== undefined ? { lagSlots: own.lagSlots } : {}),
  }));
  return { ...s, unsyncedForging: unsynced };
}
