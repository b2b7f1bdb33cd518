/**
 * The election across clusters as the step keeps it (with `cfg.global`): a second election,
 * on the coordination cluster's Lease, that only this cluster's local leader takes part in and
 * that a replica must also win to forge. Its rules are in `global.ts`; this module holds its
 * state and the predicates the rest of the step asks of it.
 *
 * @module
 */

import { type ElectionState, initialState, isLeading, termDeadline } from "./election.ts";
import type { ElectionTiming } from "./election.ts";
import type { ControlView } from "../kube/cardano_leader.ts";
import type { ForgeClusterSpec, ForgeState } from "../kube/forge_cluster.ts";
import type { LeaseRecord } from "../kube/lease_store.ts";
import type { HealthCount, Standing } from "./standing.ts";

/** What the step needs to take part in the election across clusters. Durations in ms. */
export interface GlobalForgingConfig {
  /** `<cluster>/<identity>`: this process on the coordination Lease. */
  identity: string;
  cluster: string;
  region: string;
  /** CLUSTER_PRIORITY: the priority while no CardanoForgeCluster says otherwise. */
  priority: number;
  priorityDelayMs: number;
  returnStableMs: number;
  /** The guard's bound, written on every write of the coordination Lease. */
  guardBoundMs: number;
  /** HEALTH_CHECK_ENDPOINT: the only endpoint the health check may probe. */
  healthEndpoint?: string;
}

/** Another cluster's entry in the coordination CardanoLeader's status, as read. */
export interface MemberView {
  cluster: string;
  /** Its local leader, the candidate. */
  pod: string;
  phase: string;
  /** Its candidate holds its local term, its fence is done and its node is ready. */
  ready: boolean;
  state: ForgeState;
  priority: number;
  region: string;
  /** Its writer's wall clock, opaque here: a new value means its candidate is alive. */
  heartbeat: string;
}

/** A member with what we observed of it (monotonic times). */
export interface Member {
  readonly view: MemberView;
  /** When its heartbeat last changed, as we saw it. */
  readonly changedAt: number;
  /** Since when it has been ready, eligible and alive without a break. */
  readonly readySince?: number;
}

/** The release of the coordination Lease, as the runner performs it (`release_global`). */
export interface GlobalRelease {
  kind: "release_global";
  record: LeaseRecord;
  clean: boolean;
  timeoutMs: number;
  waitMs?: number;
  /** `<cluster>/<pod>`: the only candidate that may take the release at once. */
  handoverTo?: string;
}

/** The election across clusters: the coordination Lease, this cluster, the other clusters. */
export interface GlobalState {
  readonly election: ElectionState;
  /** A read or write of the coordination Lease in flight (one at a time). */
  readonly busy?: { op: "read" | "write"; since: number };
  /** A release in flight. */
  readonly releasing?: boolean;
  readonly deferredRelease?: GlobalRelease;
  readonly nextReadAt: number;
  /** A read of the coordination CardanoLeader in flight (the local leader's). */
  readonly membersBusy?: boolean;
  readonly nextMembersReadAt: number;
  /** The local term our global term was won for (forging needs both, of the same term). */
  readonly forTerm?: number;
  /** When we won the global term (monotonic). */
  readonly acquiredAt?: number;
  /** The version we may take, and since when the election allowed it (before the delay). */
  readonly acquirable?: { key: string; since: number };
  /** The version whose previous holder could not be proven stopped (reported once). */
  readonly unprovable?: string;
  /** This cluster's CardanoForgeCluster spec as last read; undefined: none, or not read yet. */
  readonly spec?: ForgeClusterSpec;
  readonly specRead: boolean;
  /** Our wall clock minus our monotonic clock at the last read (an override's end is wall time). */
  readonly wallOffsetMs?: number;
  readonly clusterBusy?: boolean;
  readonly nextClusterReadAt: number;
  readonly health?: HealthCount;
  readonly healthBusy?: boolean;
  readonly nextHealthAt: number;
  /** The standing as last computed (and reported when it changes). */
  readonly standing?: Standing;
  readonly members: Readonly<Record<string, Member>>;
  /** The coordination CardanoLeader's requests (a handover between clusters). */
  readonly control?: ControlView;
  readonly handled: readonly string[];
  readonly pendingHandover?: { id: string; to: string };
  /** A handover to another cluster waiting for one of the pool's slots: since, and until when. */
  readonly leaveWait?: { since: number; until: number };
  readonly nextPublishAt: number;
  readonly published?: string;
  readonly nextReportAt: number;
  readonly reported?: string;
}

/** The initial state. */
export function initialGlobal(cfg: GlobalForgingConfig, now: number): GlobalState {
  return {
    election: initialState(cfg.identity),
    nextReadAt: now,
    nextMembersReadAt: now,
    specRead: false,
    nextClusterReadAt: now,
    nextHealthAt: now,
    members: {},
    handled: [],
    nextPublishAt: now,
    nextReportAt: now,
  };
}

/** `<cluster>/<pod>`, the pod part of a global identity (`podOf` of it). */
export function globalPod(cluster: string, pod: string): string {
  return `${cluster}/${pod}`;
}

/** Whether the coordination Lease lets local term `term` forge now. */
export function globalAllows(
  g: GlobalState | undefined,
  term: number | undefined,
  now: number,
  timing: ElectionTiming,
): boolean {
  return g === undefined || (g.forTerm !== undefined && g.forTerm === term &&
    isLeading(g.election, now, timing));
}

/** The end of the global term (monotonic), or undefined when not holding it. */
export function globalDeadline(
  g: GlobalState | undefined,
  timing: ElectionTiming,
): number | undefined {
  return g === undefined ? undefined : termDeadline(g.election, timing);
}
