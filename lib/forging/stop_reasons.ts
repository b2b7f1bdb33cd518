/**
 * Every reason to stop forging, in one closed union and one table: the metric label, the
 * CardanoLeader status reason and the log text of each. Adding a reason is one member here, one
 * row below and one transition in `forging.ts`.
 *
 * @module
 */

/** Why forging stops (or a standby's node is told to stop). Used as a metric label. */
export type StopReason =
  /** A standby's first stop at start: whatever the pod did before, its node must not forge. */
  | "startup"
  /** A standby's node restarted (new process) and is ready: it must not forge either. */
  | "node_restart"
  /** The leader could not renew within its term (watchdog). */
  | "renew_deadline"
  /** The Lease was deleted under the leader. */
  | "lease_deleted"
  /** Another identity holds the Lease. */
  | "lease_taken"
  /** The Lease was released by someone else (a hand edit). */
  | "lease_released"
  /** The leader cannot forge (keys invalid, node gone or not ready, signal refused). */
  | "cannot_forge"
  /** A planned shutdown (SIGTERM/SIGINT). */
  | "shutdown"
  /** The node runs without the non-producing flag on a replica that does not lead. */
  | "unsafe_node"
  /** The certificate is expired, not yet valid, wrongly signed, or of another pool. */
  | "bad_credentials"
  /** An operator paused forging (spec.pause): the leader keeps the Lease, its node stops. */
  | "paused"
  /** An operator handed the term over (spec.handover): stop, release to the target. */
  | "handover"
  /** The leader's own Pod is being deleted: stop and release at once, never compete again. */
  | "pod_terminating"
  /** The guard went away, could not be armed, or stopped the node itself (lib/core/guard.ts). */
  | "guard"
  /** Across clusters: the coordination Lease was not renewed within the renew deadline. */
  | "global_renew_deadline"
  /** Across clusters: the coordination Lease was taken, released or deleted under us. */
  | "global_lease_lost"
  /** Across clusters: this cluster's CardanoForgeCluster became Disabled. */
  | "cluster_disabled"
  /** Across clusters: a higher-priority cluster is ready again; the Lease goes back to it. */
  | "priority_return"
  /** Across clusters: an operator handed the pool to another cluster. */
  | "cluster_handover"
  /** The node's tip lags the chain and a synced standby takes over (a planned handover). */
  | "sync"
  /** The preferred replica stands by ready and synced: the term returns to it (planned). */
  | "preferred";

/** Why the node gets a SIGHUP: a stop, or one of the two ways to (re)start forging. */
export type SignalReason = StopReason | "promote" | "rotate";

/** The reasons the election step itself returns (`decide`). */
export type ElectionStopReason = Extract<
  StopReason,
  "renew_deadline" | "lease_deleted" | "lease_taken" | "lease_released"
>;

/** How one stop reason appears to people and to Prometheus. */
export interface StopReasonText {
  /** The `reason` label of `forge_manager_demotions_total` and `cardano_sighup_signals_total`. */
  metric: string;
  /** The CardanoLeader status reason and Event reason. */
  status: string;
  /** What the log says. */
  text: string;
}

/** The one table. */
export const STOP_REASONS: Readonly<Record<StopReason, StopReasonText>> = {
  startup: {
    metric: "startup",
    status: "StandbyStarted",
    text: "a standby starts with its node not forging",
  },
  node_restart: {
    metric: "node_restart",
    status: "NodeRestarted",
    text: "the node restarted on a standby",
  },
  renew_deadline: {
    metric: "renew_deadline",
    status: "Demoted_renew_deadline",
    text: "the lease was not renewed within the renew deadline",
  },
  lease_deleted: {
    metric: "lease_deleted",
    status: "Demoted_lease_deleted",
    text: "the lease was deleted",
  },
  lease_taken: {
    metric: "lease_taken",
    status: "Demoted_lease_taken",
    text: "another replica holds the lease",
  },
  lease_released: {
    metric: "lease_released",
    status: "Demoted_lease_released",
    text: "the lease was released by someone else",
  },
  cannot_forge: {
    metric: "cannot_forge",
    status: "Demoted_cannot_forge",
    text: "this replica cannot forge",
  },
  shutdown: { metric: "shutdown", status: "Demoted_shutdown", text: "planned shutdown" },
  bad_credentials: {
    metric: "bad_credentials",
    status: "Demoted_bad_credentials",
    text:
      "the operational certificate cannot forge now (expired, not yet valid, wrongly signed or another pool's)",
  },
  unsafe_node: {
    metric: "unsafe_node",
    status: "UnsafeNode",
    text: "the node runs without the non-producing flag on a replica that does not lead",
  },
  paused: {
    metric: "paused",
    status: "Paused",
    text: "an operator paused forging",
  },
  handover: {
    metric: "handover",
    status: "Demoted_handover",
    text: "an operator handed the term over",
  },
  pod_terminating: {
    metric: "pod_terminating",
    status: "Demoted_pod_terminating",
    text: "this replica's Pod is being deleted",
  },
  guard: {
    metric: "guard",
    status: "Demoted_guard",
    text: "the guard went away, could not be armed, or stopped the node itself",
  },
  global_renew_deadline: {
    metric: "global_renew_deadline",
    status: "Demoted_global_renew_deadline",
    text: "the coordination Lease was not renewed within the renew deadline",
  },
  global_lease_lost: {
    metric: "global_lease_lost",
    status: "Demoted_global_lease_lost",
    text: "another cluster holds the coordination Lease, or it was released or deleted",
  },
  cluster_disabled: {
    metric: "cluster_disabled",
    status: "Demoted_cluster_disabled",
    text: "this cluster's CardanoForgeCluster is Disabled",
  },
  priority_return: {
    metric: "priority_return",
    status: "Demoted_priority_return",
    text: "a higher-priority cluster is ready again: the pool goes back to it",
  },
  cluster_handover: {
    metric: "cluster_handover",
    status: "Demoted_cluster_handover",
    text: "an operator handed the pool to another cluster",
  },
  sync: {
    metric: "sync",
    status: "Demoted_sync",
    text: "the node's tip lags the chain: handing over to a synced standby",
  },
  preferred: {
    metric: "preferred",
    status: "Demoted_preferred",
    text: "the preferred replica is ready and synced: handing the term back to it",
  },
};
