/**
 * The events, effects and transitions of the election across clusters (`global.ts`). Plain
 * data only; `events.ts` adds them to its unions.
 *
 * @module
 */

import type { LeaseRecord, Observation } from "../kube/lease_store.ts";
import type { ControlView, HandoverResult, ReplicaView } from "../kube/cardano_leader.ts";
import type { ForgeClusterSpec, ForgeState, HealthStatus } from "../kube/forge_cluster.ts";
import type { GlobalRelease, MemberView } from "./global_state.ts";
import type { WriteDecision } from "./state.ts";
import type { Standing } from "./standing.ts";

/** The election across clusters' events. */
export type GlobalEvent =
  /** A read of the coordination Lease (a follower's: a holder learns from its writes). */
  | { kind: "global_read"; observation: Observation }
  | { kind: "global_read_failed"; error: string }
  /** The coordination CardanoLeader: its requests and the other clusters' entries. */
  | { kind: "members_read"; control: ControlView; members: MemberView[] }
  | { kind: "members_read_failed"; error: string }
  | { kind: "global_written"; decision: WriteDecision; record: LeaseRecord; sentAt: number }
  | { kind: "global_write_failed"; decision: WriteDecision; conflict: boolean; error: string }
  | { kind: "global_released"; record: LeaseRecord; clean: boolean }
  | { kind: "global_release_failed"; error: string }
  /** This cluster's CardanoForgeCluster (`spec` undefined: there is none); `wallMs` at the read. */
  | { kind: "cluster_read"; spec?: ForgeClusterSpec; wallMs: number }
  | { kind: "cluster_read_failed"; error: string }
  | { kind: "health_checked"; ok: boolean; message: string };

/** This cluster's entry in the coordination CardanoLeader's status (the runner adds times). */
export interface MemberEntry extends ReplicaView {
  /** The candidate's pod. */
  pod: string;
  ready: boolean;
  state: ForgeState;
  priority: number;
  region: string;
}

/** What this cluster's local leader writes on its CardanoForgeCluster (the runner adds times). */
export interface ClusterReport {
  standing: Standing;
  activeLeader: string;
  localLeader: string;
  health?: Omit<HealthStatus, "lastProbeTime">;
}

/** The election across clusters' effects. */
export type GlobalEffect =
  | { kind: "read_global"; timeoutMs: number }
  | { kind: "read_members"; timeoutMs: number }
  | { kind: "write_global"; decision: WriteDecision; deadline: number; maxTimeoutMs: number }
  | GlobalRelease
  /** Names `<cluster>/<pod>` as the pool's leader in the coordination CardanoLeader (best effort). */
  | { kind: "claim_global" }
  | { kind: "publish_member"; entry: MemberEntry }
  | { kind: "report_global_handover"; id: string; result: HandoverResult }
  | { kind: "read_cluster"; timeoutMs: number }
  | { kind: "report_cluster"; report: ClusterReport }
  | { kind: "check_health"; endpoint: string; timeoutMs: number };

/** The election across clusters' transitions (telemetry.ts). */
export type GlobalTransition =
  | {
    kind: "global_acquired";
    previous: string;
    /** How the previous holder's stop is known: a clean release, its guard bound, or none held. */
    proof: "clean" | "bound" | "none";
    probationSeconds?: number;
  }
  | { kind: "global_lost"; reason: string }
  | { kind: "global_released"; clean: boolean; to?: string }
  | { kind: "global_release_failed"; error: string }
  | { kind: "global_write_failed"; operation: string; conflict: boolean; error: string }
  | { kind: "global_read_failed"; error: string }
  | { kind: "members_read_failed"; error: string }
  /** The previous holder wrote no guard bound: nothing can prove its node stopped. */
  | { kind: "global_unprovable"; holder: string }
  | { kind: "global_waiting"; reason: string; untilMs: number }
  | { kind: "standing_changed"; standing: Standing }
  | { kind: "cluster_read_failed"; error: string }
  | { kind: "health_changed"; healthy: boolean; failures: number; message: string }
  | { kind: "cluster_handover"; to: string; why: "return" | "request" | "disabled"; id?: string }
  | { kind: "cluster_handover_done"; id: string; to: string; result: HandoverResult };

const GLOBAL_EVENTS: ReadonlySet<string> = new Set([
  "global_read",
  "global_read_failed",
  "members_read",
  "members_read_failed",
  "global_written",
  "global_write_failed",
  "global_released",
  "global_release_failed",
  "cluster_read",
  "cluster_read_failed",
  "health_checked",
]);

/** Whether `e` is one of the election across clusters' events. */
export function isGlobalEvent(e: { kind: string }): e is GlobalEvent {
  return GLOBAL_EVENTS.has(e.kind);
}
