/**
 * The metrics of the election across clusters (README, "Several clusters"). Registered with the
 * others by `createMetrics`; every series also carries the `cluster` label.
 *
 * @module
 */

import { Counter, Gauge, type Registry } from "prom-client";
import { FORGE_STATES, type ForgeState } from "../kube/forge_cluster.ts";

/** The election across clusters' metrics. */
export interface GlobalMetrics {
  readonly globalLeader: Gauge;
  readonly globalTransitions: Counter<"kind">;
  readonly clusterPriority: Gauge;
  readonly clusterState: Gauge<"state">;
  readonly clusterHealthy: Gauge;
}

/** Registers them (with -1 and 0 where nothing is known yet). */
export function globalMetrics(registers: Registry[]): GlobalMetrics {
  const globalLeader = new Gauge({
    name: "forge_manager_global_leader",
    help: "Whether this replica holds the coordination cluster's Lease (the pool's forger " +
      "across clusters; 0 or 1)",
    registers,
  });
  globalLeader.set(0);
  const clusterPriority = new Gauge({
    name: "forge_manager_cluster_effective_priority",
    help: "This cluster's effective priority as its local leader computed it (1 is the " +
      "highest; -1 not known here: this replica is not its cluster's local leader)",
    registers,
  });
  clusterPriority.set(-1);
  const clusterHealthy = new Gauge({
    name: "forge_manager_cluster_healthy",
    help: "The CardanoForgeCluster health check as this local leader last ran it (1 healthy, " +
      "0 failing past its threshold, -1 not checked here)",
    registers,
  });
  clusterHealthy.set(-1);
  return {
    globalLeader,
    clusterPriority,
    clusterHealthy,
    clusterState: new Gauge({
      name: "forge_manager_cluster_forge_state",
      help: "This cluster's effective forge state, one series per state (Enabled, Disabled, " +
        "Priority-based), the current one 1 (all 0: not this cluster's local leader)",
      labelNames: ["state"] as const,
      registers,
    }),
    globalTransitions: new Counter({
      name: "forge_manager_global_transitions_total",
      help: "Changes of the coordination Lease made by this replica, by kind: acquired, lost, " +
        "released, handed_back (a higher-priority cluster), handed_over (an operator), " +
        "disabled (this cluster is Disabled), unprovable (a holder with no guard bound)",
      labelNames: ["kind"] as const,
      registers,
    }),
  };
}

/** Sets the forge-state series (one per state; `undefined`: all 0). */
export function recordClusterState(m: GlobalMetrics, state: ForgeState | undefined): void {
  for (const s of FORGE_STATES) m.clusterState.set({ state: s }, s === state ? 1 : 0);
}
