/**
 * Where this cluster stands among the pool's clusters: its effective forge state and priority,
 * computed from its CardanoForgeCluster's spec, an override that has not expired, and the health
 * check. The rules, as the Python twin's where they mean the same:
 * - an enabled override that has not expired forces its state and priority (`manual_override`);
 *   once expired it stops applying (`override_expired`), whatever else it says;
 * - `Priority-based` with a health check that failed `failureThreshold` times in a row adds
 *   {@linkcode HEALTH_PENALTY} to the priority (`health_degraded`): a healthy cluster of lower
 *   priority then gets the Lease back by a planned handover;
 * - `Enabled` competes at its priority whatever the health check says; `Disabled` never
 *   competes, and a holder in a cluster that becomes Disabled hands the Lease back.
 * Wall-clock times decide only availability here (when an override ends), never safety. Pure.
 *
 * @module
 */

import type { ForgeClusterSpec, ForgeState } from "../kube/forge_cluster.ts";

/** At most this many priority steps are waited (a degraded priority adds 100). */
export const MAX_PRIORITY_STEPS = 9;

/** Added to the priority of a Priority-based cluster whose health check keeps failing. */
export const HEALTH_PENALTY = 100;

/** This cluster's effective standing. */
export interface Standing {
  state: ForgeState;
  /** 1 is the highest. */
  priority: number;
  /** Why, as a short word (the CardanoForgeCluster status reason). */
  reason:
    | "base_configuration"
    | "manual_override"
    | "override_expired"
    | "health_degraded"
    | "cluster_disabled";
  message: string;
  /** Whether the override was enabled but its time has passed. */
  overrideExpired: boolean;
}

/** The health check's running count, as the step keeps it. */
export interface HealthCount {
  /** Consecutive failures (0 after a success). */
  failures: number;
  /** The last result's text. */
  message: string;
}

/** The standing for `spec` now (`wallNow` in ms), given the health check's count. */
export function standing(
  spec: ForgeClusterSpec,
  health: HealthCount | undefined,
  wallNow: number,
): Standing {
  const ov = spec.override;
  const expired = ov !== undefined && ov.enabled && ov.expiresAtMs !== undefined &&
    wallNow >= ov.expiresAtMs;
  if (ov !== undefined && ov.enabled && !expired) {
    const state = ov.forceState ?? spec.forgeState;
    return {
      state,
      priority: ov.forcePriority ?? spec.priority,
      reason: "manual_override",
      message: `override by the operator${ov.reason === "" ? "" : `: ${ov.reason}`}`,
      overrideExpired: false,
    };
  }
  if (spec.forgeState === "Disabled") {
    return {
      state: "Disabled",
      priority: spec.priority,
      reason: "cluster_disabled",
      message: "spec.forgeState is Disabled: this cluster never forges",
      overrideExpired: expired,
    };
  }
  const hc = spec.healthCheck;
  if (
    spec.forgeState === "Priority-based" && hc !== undefined && hc.enabled &&
    health !== undefined && health.failures >= hc.failureThreshold
  ) {
    return {
      state: spec.forgeState,
      priority: spec.priority + HEALTH_PENALTY,
      reason: "health_degraded",
      message: `${health.failures} health checks failed in a row (${health.message}): ` +
        `priority ${spec.priority} + ${HEALTH_PENALTY}`,
      overrideExpired: expired,
    };
  }
  return {
    state: spec.forgeState,
    priority: spec.priority,
    reason: expired ? "override_expired" : "base_configuration",
    message: expired
      ? "the override expired; the spec's state and priority apply"
      : `spec.forgeState ${spec.forgeState}, priority ${spec.priority}`,
    overrideExpired: expired,
  };
}

/**
 * How long a cluster of this standing waits, beyond what the Lease itself asks, before it may
 * take the Lease: one `stepMs` per priority step below the highest, at most `maxSteps`.
 */
export function priorityDelayMs(priority: number, stepMs: number, maxSteps: number): number {
  return Math.min(Math.max(priority - 1, 0), maxSteps) * stepMs;
}
