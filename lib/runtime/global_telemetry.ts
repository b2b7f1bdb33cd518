/**
 * The election across clusters' transitions as logs, metrics and Events (telemetry.ts calls
 * these like its own handlers). The coordination Lease's holder is the pool's forger: its
 * changes are logged at info, failures to reach the coordination cluster at warn.
 *
 * @module
 */

import type { GlobalTransition } from "../forging/global_events.ts";
import type { Context, Handlers } from "./telemetry.ts";
import { recordClusterState } from "./global_metrics.ts";

/** The handlers. */
export const GLOBAL: Pick<Handlers, GlobalTransition["kind"]> = {
  global_acquired: (t, c) => {
    c.metrics.global?.globalLeader.set(1);
    c.metrics.global?.globalTransitions.inc({ kind: "acquired" });
    c.log.info("holds the coordination Lease: this cluster forges for the pool", {
      previous: t.previous,
      proof: t.proof,
      ...(t.probationSeconds !== undefined ? { probationSeconds: t.probationSeconds } : {}),
    });
    c.event("Normal", "CoordinationLeaseAcquired", `${c.d.podName} holds the coordination Lease`);
  },
  global_lost: (t, c) => {
    c.metrics.global?.globalLeader.set(0);
    c.metrics.global?.globalTransitions.inc({ kind: "lost" });
    c.log.warn("lost the coordination Lease", { reason: t.reason });
  },
  global_released: (t, c) => {
    c.metrics.global?.globalLeader.set(0);
    c.metrics.global?.globalTransitions.inc({ kind: "released" });
    c.log.info("released the coordination Lease", { clean: t.clean, to: t.to });
  },
  global_release_failed: (t, c) =>
    c.log.warn("cannot release the coordination Lease; it will expire", { err: t.error }),
  global_write_failed: (t, c) => {
    if (t.operation === "renew") c.metrics.renewFailures.inc();
    if (t.conflict) {
      c.log.info(`lost the race to ${t.operation} the coordination Lease`, { err: t.error });
    } else c.log.warn(`cannot ${t.operation} the coordination Lease`, { err: t.error });
  },
  members_read_failed: (t, c) =>
    c.log.warn("cannot read the coordination CardanoLeader (the other clusters' entries)", {
      err: t.error,
    }),
  global_read_failed: (t, c) => c.log.warn("cannot read the coordination Lease", { err: t.error }),
  global_unprovable: (t, c) => {
    c.metrics.global?.globalTransitions.inc({ kind: "unprovable" });
    c.log.error(
      "the coordination Lease's holder wrote no guard bound: nothing proves its node stopped, " +
        "so this cluster will not take over (run every cluster with FENCE=guard)",
      { holder: t.holder },
    );
    c.event("Warning", "CoordinationUnprovable", `holder ${t.holder} wrote no guard bound`);
  },
  global_waiting: (t, c) =>
    c.log.debug("waiting for the coordination Lease", { reason: t.reason, untilMs: t.untilMs }),
  standing_changed: (t, c) => {
    c.metrics.global?.clusterPriority.set(t.standing.priority);
    if (c.metrics.global !== undefined) recordClusterState(c.metrics.global, t.standing.state);
    c.log.info("this cluster's standing", {
      state: t.standing.state,
      priority: t.standing.priority,
      reason: t.standing.reason,
      message: t.standing.message,
    });
  },
  cluster_read_failed: (t, c) =>
    c.log.warn("cannot read this cluster's CardanoForgeCluster; keeping the last one read", {
      err: t.error,
    }),
  health_changed: (t, c) => {
    c.metrics.global?.clusterHealthy.set(t.healthy ? 1 : 0);
    const fields = { failures: t.failures, message: t.message };
    if (t.healthy) c.log.info("health check passing", fields);
    else c.log.warn("health check failing past its threshold", fields);
  },
  cluster_handover: (t, c) => {
    const kind = t.why === "return"
      ? "handed_back"
      : t.why === "request"
      ? "handed_over"
      : "disabled";
    c.metrics.global?.globalTransitions.inc({ kind });
    c.log.info("handing the coordination Lease on", { why: t.why, to: t.to, id: t.id });
    c.event(
      "Normal",
      "CoordinationHandover",
      `${c.d.podName} hands the pool on (${t.why}) to ${t.to || "any cluster"}`,
    );
  },
  cluster_handover_done: (t, c: Context) =>
    c.log.info("cluster handover done", { id: t.id, to: t.to, result: t.result }),
};
