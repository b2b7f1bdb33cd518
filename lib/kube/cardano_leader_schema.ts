/**
 * The CardanoLeader custom resource's schema (spec, status, each replica's entry, the last
 * handover) and its view for the forging step ({@linkcode ControlView} in, {@linkcode ReplicaView}
 * and {@linkcode HandoverResult} out). Its reads and writes are `cardano_leader.ts`, which
 * re-exports all of this. Pure: no client, no I/O.
 *
 * @module
 */

/** The CRD's coordinates. */
export const CARDANO_LEADER = { group: "cardano.io", version: "v1", plural: "cardanoleaders" };

// ---- the schema ---------------------------------------------------------------------------

/** `spec.pause` as stored. Times are RFC 3339. */
export interface PauseSpec {
  reason: string;
  by: string;
  at: string;
  until?: string;
}

/** `spec.handover` as stored. */
export interface HandoverSpec {
  id: string;
  /** The target pod; "" for any ready standby. */
  to: string;
  by: string;
  at: string;
}

/** The CardanoLeader's spec. */
export interface CardanoLeaderSpec {
  pause?: PauseSpec;
  handover?: HandoverSpec;
  /**
   * The pod that should forge whenever it is ready and synced (`forge-manager prefer`): the leader
   * hands the term back to it after PREFERRED_STABLE.
   */
  preferredReplica?: string;
}

/**
 * How a handover request ended, as written to `status.handover.result`: by the leader that
 * handled it, then `done` by its target once that holds the Lease and forges.
 */
export type HandoverResult =
  | "released"
  | "released_unclean"
  | "release_failed"
  | "already_leader"
  | "stale"
  | "target_lagging"
  | "done";

/** Why a leader handed over: an operator's request, its node's lag, the preferred replica. */
export type HandoverReason = "handover" | "sync" | "preferred";

/** `status.handover`: the last handover request a leader handled. */
export interface HandoverStatus {
  id: string;
  /** The target pod ("" for any standby); absent in older sidecars' writes. */
  to?: string;
  /** Absent: an operator's request (older sidecars write only those). */
  reason?: HandoverReason;
  result: HandoverResult;
  at: string;
}

/**
 * What a replica publishes in `status.replicas.<pod>` (the runner adds identity and times). The
 * phase is a name of the forging step's phases, stored as a plain string (any version writes it).
 */
export interface ReplicaView {
  phase: string;
  leader: boolean;
  forging: boolean;
  nodeFound: boolean;
  fence: "off" | "idle" | "proving";
  /**
   * The guard on this replica's machine: `off` none configured, `absent` configured but not
   * connected (this replica will not forge), `idle` connected and disarmed, `armed` it will stop
   * this node if the term lapses or the sidecar dies. Absent in entries of older sidecars.
   */
  guard?: "off" | "absent" | "idle" | "armed";
  reason: string;
  /**
   * Whether this replica's node is synced: its tip (the metrics' slotNum) within
   * MAX_TIP_LAG_SLOTS of the wall clock's slot; `unknown` without a recent reading. Absent in
   * entries of older sidecars.
   */
  sync?: SyncState;
  /** How many slots the tip lags the wall clock's slot at the last reading (absent: unknown). */
  tipLagSlots?: number;
  /**
   * When the pool's next leader slot begins (RFC 3339), with a leader schedule: that slot only,
   * never the schedule.
   */
  nextSlotAt?: string;
}

/** A node's sync, as its replica judged it. */
export type SyncState = "synced" | "lagging" | "unknown";

/** An entry whose heartbeat is older than this is not counted as a running forge-manager. */
export const REPLICA_FRESH_MS = 30_000;

/** One replica's entry in `status.replicas`, as published. */
export interface ReplicaEntry extends ReplicaView {
  identity: string;
  /** When `phase` or `reason` last changed (RFC 3339). */
  since: string;
  /** When this entry was written (RFC 3339). */
  heartbeat: string;
}

/** What a pod reports as the leader's status. */
export interface StatusUpdate {
  leaderPod: string;
  forgingEnabled: boolean;
  reason: string;
  message: string;
  leaseTransitions?: number;
}

/** The status as stored, as far as the sidecar reads it. */
export interface StoredStatus {
  leaderPod?: string;
  forgingEnabled?: boolean;
  lastTransitionTime?: string;
  conditions?: { type: string; status: string; lastTransitionTime?: string }[];
  /** Each replica's own entry, written without a precondition. */
  replicas?: Record<string, Partial<ReplicaEntry>>;
  handover?: HandoverStatus;
}

/** The CardanoLeader as stored, as far as the sidecar reads it. */
export interface StoredCardanoLeader {
  metadata?: { resourceVersion?: string };
  spec?: CardanoLeaderSpec;
  status?: StoredStatus;
}

// ---- the step's view ----------------------------------------------------------------------

/** A pause as the step sees it; `endsAt` is monotonic, converted from `until` at the read. */
export interface PauseRequest {
  reason: string;
  by: string;
  endsAt?: number;
}

/** A handover as the step sees it; `ageMs` since its `at`, by the wall clock at the read. */
export interface HandoverRequest {
  id: string;
  /** The target pod; "" for any standby. */
  to: string;
  by: string;
  ageMs: number;
}

/**
 * Another replica's entry as the step sees it: whether it stands by ready and synced, and until
 * when (monotonic) its last heartbeat counts as fresh (REPLICA_FRESH_MS after it, by the wall
 * clock at the read).
 */
export interface PeerView {
  phase: string;
  nodeFound: boolean;
  sync: SyncState;
  tipLagSlots?: number;
  freshUntil: number;
}

/** The CardanoLeader as the step sees it: the requests, and the last handover a leader handled. */
export interface ControlView {
  pause?: PauseRequest;
  handover?: HandoverRequest;
  /** spec.preferredReplica, when set. */
  preferred?: string;
  /** Every replica's published entry (this one's too), by pod. */
  replicas?: Record<string, PeerView>;
  /** status.handover.id: handled by a leader already (perhaps by an earlier process). */
  handledId?: string;
  /** status.handover as the last writer left it: its target learns there that it is done. */
  lastHandover?: { id: string; to: string; reason: HandoverReason; result: string };
}

/**
 * The step's view of the object (an absent one: no requests), with wall-clock times turned into
 * monotonic ones at the read: `until` becomes `endsAt` (`monoNow + until - wallNow`), `at`
 * becomes an age. Pure.
 */
export function toControlView(
  obj: Pick<StoredCardanoLeader, "spec" | "status"> | undefined,
  monoNow: number,
  wallNow: number,
): ControlView {
  const view: { -readonly [K in keyof ControlView]: ControlView[K] } = {};
  const pause = obj?.spec?.pause;
  if (pause !== undefined) {
    const until = pause.until === undefined ? NaN : Date.parse(pause.until);
    view.pause = {
      reason: pause.reason,
      by: pause.by,
      ...(Number.isFinite(until) ? { endsAt: monoNow + (until - wallNow) } : {}),
    };
  }
  const h = obj?.spec?.handover;
  if (h !== undefined && h.id !== "") {
    const at = Date.parse(h.at);
    view.handover = {
      id: h.id,
      to: h.to ?? "",
      by: h.by,
      ageMs: Number.isFinite(at) ? Math.max(0, wallNow - at) : Infinity,
    };
  }
  const handled = obj?.status?.handover;
  if (handled !== undefined && handled.id !== "") {
    view.handledId = handled.id;
    view.lastHandover = {
      id: handled.id,
      to: handled.to ?? "",
      reason: handled.reason ?? "handover",
      result: handled.result,
    };
  }
  const preferred = obj?.spec?.preferredReplica;
  if (preferred !== undefined && preferred !== "") view.preferred = preferred;
  const entries = obj?.status?.replicas;
  if (entries !== undefined) view.replicas = peers(entries, monoNow, wallNow);
  return view;
}

/** The replicas' entries as peers; an entry without a readable heartbeat is left out. */
function peers(
  entries: Record<string, Partial<ReplicaEntry>>,
  monoNow: number,
  wallNow: number,
): Record<string, PeerView> {
  const out: Record<string, PeerView> = {};
  for (const [pod, e] of Object.entries(entries)) {
    const heartbeat = Date.parse(e.heartbeat ?? "");
    if (!Number.isFinite(heartbeat)) continue;
    out[pod] = {
      phase: e.phase ?? "",
      nodeFound: e.nodeFound === true,
      // An older sidecar publishes no sync: nothing is known of its node.
      sync: e.sync ?? "unknown",
      ...(typeof e.tipLagSlots === "number" ? { tipLagSlots: e.tipLagSlots } : {}),
      freshUntil: monoNow + REPLICA_FRESH_MS - Math.max(0, wallNow - heartbeat),
    };
  }
  return out;
}
