/**
 * Prometheus metrics. The registry is created here and injected where needed; the seed's five
 * metric names and labels are kept exactly. Process metrics are fed from `Deno.memoryUsage()` and
 * `process.cpuUsage()`, because prom-client's default collectors silently read 0 in a sandbox.
 *
 * @module
 */

import { Counter, Gauge, Registry } from "prom-client";
import { type GlobalMetrics, globalMetrics } from "./global_metrics.ts";
import { cpuUsage } from "node:process";
import type { CredentialCheck, CredentialVerdict } from "../forging/credential_verdict.ts";
import { operationsMetrics, scheduleMetrics, syncMetrics } from "./metrics_handovers.ts";
import {
  CONFIRMATION_STATES,
  type ConfirmationState,
  type ForgingConfirmation,
} from "../forging/forging_confirmation.ts";

/** Every metric the sidecar exports. */
export interface Metrics {
  /** The election across clusters' metrics (registered only with it). */
  readonly global?: GlobalMetrics;
  readonly registry: Registry;
  readonly forgingEnabled: Gauge<"pod">;
  readonly leaderStatus: Gauge<"pod">;
  readonly leadershipChanges: Counter;
  readonly sighups: Counter<"reason">;
  readonly credentialOperations: Counter<"operation" | "file">;
  readonly renewFailures: Counter;
  readonly secondsSinceRenew: Gauge;
  readonly demotions: Counter<"reason">;
  readonly signalFailures: Counter<"reason">;
  readonly statusUpdateFailures: Counter;
  readonly apiRequests: Counter<"operation">;
  /** Requests client-node's own undici stack started (none with KUBE_TRANSPORT=deno). */
  readonly undiciRequests: Counter;
  /** Connections undici opened or tried to (none with KUBE_TRANSPORT=deno). */
  readonly undiciConnections: Counter;
  readonly fenceWaits: Counter<"outcome">;
  readonly nodeNonProducing: Gauge;
  readonly paused: Gauge;
  readonly controlReadFailures: Counter;
  readonly handovers: Counter<"reason" | "result">;
  readonly nodeTipLag: Gauge;
  readonly nodeSync: Gauge<"state">;
  readonly unsyncedForging: Gauge;
  readonly scheduleUpcoming: Gauge;
  readonly slotWaits: Counter<"trigger" | "outcome">;
  readonly slotWaitSeconds: Counter<"trigger">;
  readonly kesPeriodsRemaining: Gauge<"hot_key">;
  readonly kesExpiry: Gauge<"hot_key">;
  readonly opcertIssueCounter: Gauge<"hot_key">;
  readonly opcertKesStartPeriod: Gauge<"hot_key">;
  readonly kesCurrentPeriod: Gauge<"source">;
  readonly credentialsValid: Gauge<"reason">;
  readonly nodeForgingConfirmed: Gauge<"state">;
  readonly guardArmed: Gauge;
  readonly guardDemotions: Counter<"reason">;
  readonly info: Gauge<
    "version" | "pod" | "namespace" | "lease" | "identity" | "pool_name" | "pool_ticker"
  >;
}

/** Creates the registry and all metrics. `lastRenewAt` feeds the seconds-since-renew gauge. */
export function createMetrics(opts: {
  version: string;
  pod: string;
  namespace: string;
  lease: string;
  identity: string;
  /** POOL_NAME and POOL_TICKER, on forge_manager_info ("" when not set). */
  poolName?: string;
  poolTicker?: string;
  /**
   * Labels on every series: `network` and `pool_id` once POOL_ID names the pool (several pools
   * can then share a namespace and a Prometheus), `cluster` with the election across clusters.
   */
  labels?: Record<string, string>;
  /** Registers the election across clusters' metrics too. */
  global?: boolean;
  /** Wall-clock ms of the last successful renew, or undefined if never. */
  lastRenewAt: () => number | undefined;
  /**
   * Seconds since this sidecar last answered its guard's ping while the guard was armed, or
   * undefined when it is not (no guard, not connected, disarmed).
   */
  guardHeartbeatAge?: () => number | undefined;
}): Metrics {
  const registry = new Registry();
  if (opts.labels !== undefined && Object.keys(opts.labels).length > 0) {
    registry.setDefaultLabels(opts.labels);
  }
  const registers = [registry];
  const forgingEnabled = new Gauge({
    name: "cardano_forging_enabled",
    help: "Whether this pod's node has the forging keys and was signalled to forge (0 or 1)",
    labelNames: ["pod"] as const,
    registers,
  });
  const leaderStatus = new Gauge({
    name: "cardano_leader_status",
    help: "Whether this pod holds the leader Lease (0 or 1)",
    labelNames: ["pod"] as const,
    registers,
  });
  forgingEnabled.set({ pod: opts.pod }, 0);
  leaderStatus.set({ pod: opts.pod }, 0);
  const info = new Gauge({
    name: "forge_manager_info",
    help: "Build and identity of this forge-manager (always 1)",
    labelNames: [
      "version",
      "pod",
      "namespace",
      "lease",
      "identity",
      "pool_name",
      "pool_ticker",
    ] as const,
    registers,
  });
  info.set({
    version: opts.version,
    pod: opts.pod,
    namespace: opts.namespace,
    lease: opts.lease,
    identity: opts.identity,
    pool_name: opts.poolName ?? "",
    pool_ticker: opts.poolTicker ?? "",
  }, 1);
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes",
    registers,
    collect() {
      this.set(Deno.memoryUsage().rss);
    },
  });
  new Counter({
    name: "process_cpu_seconds_total",
    help: "Total user and system CPU time spent in seconds",
    registers,
    collect() {
      const usage = cpuUsage();
      this.reset();
      this.inc((usage.user + usage.system) / 1e6);
    },
  });
  return {
    registry,
    forgingEnabled,
    leaderStatus,
    info,
    ...eventMetrics(registers, opts.lastRenewAt),
    ...witnessMetrics(registers),
    ...operationsMetrics(registers),
    ...syncMetrics(registers),
    ...scheduleMetrics(registers),
    ...guardMetrics(registers, opts.guardHeartbeatAge),
    ...(opts.global ? { global: globalMetrics(registers) } : {}),
  };
}

/** The guard (lib/core/guard.ts) as this sidecar sees it. */
function guardMetrics(
  registers: Registry[],
  heartbeatAge: (() => number | undefined) | undefined,
): Pick<Metrics, "guardArmed" | "guardDemotions"> {
  new Gauge({
    name: "forge_manager_guard_heartbeat_age_seconds",
    help: "Seconds since this sidecar last answered its armed guard's ping (-1 when the guard " +
      "is not armed or there is none)",
    registers,
    collect() {
      this.set(heartbeatAge?.() ?? -1);
    },
  });
  const guardArmed = new Gauge({
    name: "forge_manager_guard_armed",
    help: "The guard: 1 armed (it will stop this node when the term lapses or the sidecar dies), " +
      "0 connected and idle, -1 no guard connected (or none configured)",
    registers,
  });
  guardArmed.set(-1);
  return {
    guardArmed,
    guardDemotions: new Counter({
      name: "forge_manager_guard_demotions_total",
      help: "Times the guard stopped the node itself, by reason: deadline, sidecar_gone, " +
        "restarted_armed, guard_stopping (counted while the guard runs)",
      labelNames: ["reason"] as const,
      registers,
    }),
  };
}

/** What the loop did: leadership, signals, Lease writes, fence checks, API requests. */
function eventMetrics(registers: Registry[], lastRenewAt: () => number | undefined): Pick<
  Metrics,
  | "leadershipChanges"
  | "sighups"
  | "credentialOperations"
  | "renewFailures"
  | "secondsSinceRenew"
  | "demotions"
  | "signalFailures"
  | "statusUpdateFailures"
  | "apiRequests"
  | "undiciRequests"
  | "undiciConnections"
  | "fenceWaits"
> {
  return {
    leadershipChanges: new Counter({
      name: "cardano_leadership_changes_total",
      help: "Times this pod became or stopped being the leader",
      registers,
    }),
    sighups: new Counter({
      name: "cardano_sighup_signals_total",
      help: "SIGHUP signals delivered to cardano-node, by reason",
      labelNames: ["reason"] as const,
      registers,
    }),
    credentialOperations: new Counter({
      name: "cardano_credential_operations_total",
      help: "Credential file operations (write, decoy, unchanged, remove, error) by file",
      labelNames: ["operation", "file"] as const,
      registers,
    }),
    renewFailures: new Counter({
      name: "forge_manager_lease_renew_failures_total",
      help: "Lease renewals that failed (error, timeout or conflict) while leading",
      registers,
    }),
    secondsSinceRenew: new Gauge({
      name: "forge_manager_seconds_since_last_renew",
      help: "Seconds since this pod last renewed the Lease successfully (-1 if never)",
      registers,
      collect() {
        const at = lastRenewAt();
        this.set(at === undefined ? -1 : (Date.now() - at) / 1000);
      },
    }),
    demotions: new Counter({
      name: "forge_manager_demotions_total",
      help: "Times forging was stopped, by reason",
      labelNames: ["reason"] as const,
      registers,
    }),
    signalFailures: new Counter({
      name: "forge_manager_signal_failures_total",
      help: "SIGHUPs that could not be delivered, by reason (not_found, refused, replaced, error)",
      labelNames: ["reason"] as const,
      registers,
    }),
    statusUpdateFailures: new Counter({
      name: "forge_manager_status_update_failures_total",
      help: "CardanoLeader status or Event writes that failed (never blocks forging decisions)",
      registers,
    }),
    apiRequests: new Counter({
      name: "forge_manager_api_requests_total",
      help: "Kubernetes API requests sent, by operation",
      labelNames: ["operation"] as const,
      registers,
    }),
    undiciRequests: new Counter({
      name: "forge_manager_undici_requests_total",
      help: "HTTP requests started by client-node's own undici stack (KUBE_TRANSPORT=undici; " +
        "0 with the default transport, Deno's fetch)",
      registers,
    }),
    undiciConnections: new Counter({
      name: "forge_manager_undici_connections_total",
      help: "Connections undici opened or tried to open (0 with KUBE_TRANSPORT=deno)",
      registers,
    }),
    fenceWaits: new Counter({
      name: "forge_manager_fence_checks_total",
      help: "Fence checks before forging, by outcome: proven (pod_gone, pod_replaced, " +
        "pod_deleted, node_terminated, own_pod), no_previous (no earlier leader to fence), " +
        "unproven, error",
      labelNames: ["outcome"] as const,
      registers,
    }),
  };
}

/** What the credentials and the node's own metrics say (KES window, counter, confirmation). */
function witnessMetrics(registers: Registry[]): Pick<
  Metrics,
  | "kesPeriodsRemaining"
  | "kesExpiry"
  | "opcertIssueCounter"
  | "opcertKesStartPeriod"
  | "kesCurrentPeriod"
  | "credentialsValid"
  | "nodeForgingConfirmed"
  | "nodeNonProducing"
> {
  return {
    kesPeriodsRemaining: new Gauge({
      name: "forge_manager_kes_periods_remaining",
      help: "KES periods the operational certificate has left, the current one included",
      labelNames: ["hot_key"] as const,
      registers,
    }),
    kesExpiry: new Gauge({
      name: "forge_manager_kes_expiry_timestamp_seconds",
      help: "When the operational certificate's KES window ends (Unix time)",
      labelNames: ["hot_key"] as const,
      registers,
    }),
    opcertIssueCounter: new Gauge({
      name: "forge_manager_opcert_issue_counter",
      help: "The operational certificate's issue counter",
      labelNames: ["hot_key"] as const,
      registers,
    }),
    opcertKesStartPeriod: new Gauge({
      name: "forge_manager_opcert_kes_start_period",
      help: "The operational certificate's first valid KES period",
      labelNames: ["hot_key"] as const,
      registers,
    }),
    kesCurrentPeriod: new Gauge({
      name: "forge_manager_kes_current_period",
      help: "The current KES period, from the node's metrics or the clock (source)",
      labelNames: ["source"] as const,
      registers,
    }),
    credentialsValid: new Gauge({
      name: "forge_manager_credentials_valid",
      help: "Whether the source credentials may forge now (1) or not (0, reason: expired, " +
        "not_yet_valid, bad_signature, pool_mismatch, invalid)",
      labelNames: ["reason"] as const,
      registers,
    }),
    nodeForgingConfirmed: new Gauge({
      name: "forge_manager_node_forging_confirmed",
      help: "Whether the node's own metrics confirm the forging state it was asked for: one " +
        "series per state (confirmed, mismatch, unknown), the current one 1",
      labelNames: ["state"] as const,
      registers,
    }),
    nodeNonProducing: new Gauge({
      name: "forge_manager_node_non_producing_flag",
      help:
        "Whether the node runs with the non-producing flag (1), without it (0), or is absent (-1)",
      registers,
    }),
  };
}

/** `forge_manager_credentials_valid`'s reason for a set that cannot even be read or matched. */
export type CredentialsInvalid = "invalid";

/** The values of the credential metrics for one check; undefined series are not exported. */
export interface CredentialMetricValues {
  /** The `hot_key` label of the certificate series (8 hex digits); undefined: no certificate. */
  hotKey: string | undefined;
  kesPeriodsRemaining: number | undefined;
  kesExpiryTimestampSeconds: number | undefined;
  opcertIssueCounter: number | undefined;
  opcertKesStartPeriod: number | undefined;
  kesCurrentPeriod: { source: "node" | "clock"; value: number } | undefined;
  credentialsValid: { reason: CredentialVerdict | CredentialsInvalid; value: 0 | 1 };
}

/**
 * The credential metrics' values for a judged set (`judgeCredentials`), or for a set that could
 * not be judged (`{ invalid: reason }`: unreadable, corrupt, KES key not the certificate's).
 * Pure.
 */
export function credentialMetricValues(
  check: CredentialCheck | { invalid: string },
): CredentialMetricValues {
  if ("invalid" in check) {
    return {
      hotKey: undefined,
      kesPeriodsRemaining: undefined,
      kesExpiryTimestampSeconds: undefined,
      opcertIssueCounter: undefined,
      opcertKesStartPeriod: undefined,
      kesCurrentPeriod: undefined,
      credentialsValid: { reason: "invalid", value: 0 },
    };
  }
  return {
    hotKey: check.hotKeyId,
    kesPeriodsRemaining: check.kes.remainingPeriods,
    kesExpiryTimestampSeconds: check.expiresAtUnix,
    opcertIssueCounter: check.issueCounter,
    opcertKesStartPeriod: check.kesStartPeriod,
    kesCurrentPeriod: { source: check.kes.periodSource, value: check.kes.currentPeriod },
    credentialsValid: { reason: check.verdict, value: check.verdict === "valid" ? 1 : 0 },
  };
}

/**
 * Sets the credential metrics to `values`, replacing every earlier series (a rotated certificate
 * leaves no stale `hot_key` behind).
 */
export function recordCredentialMetrics(metrics: Metrics, values: CredentialMetricValues): void {
  const certificate: [Gauge<"hot_key">, number | undefined][] = [
    [metrics.kesPeriodsRemaining, values.kesPeriodsRemaining],
    [metrics.kesExpiry, values.kesExpiryTimestampSeconds],
    [metrics.opcertIssueCounter, values.opcertIssueCounter],
    [metrics.opcertKesStartPeriod, values.opcertKesStartPeriod],
  ];
  for (const [gauge, value] of certificate) {
    gauge.reset();
    if (values.hotKey !== undefined && value !== undefined) {
      gauge.set({ hot_key: values.hotKey }, value);
    }
  }
  metrics.kesCurrentPeriod.reset();
  if (values.kesCurrentPeriod !== undefined) {
    metrics.kesCurrentPeriod.set(
      { source: values.kesCurrentPeriod.source },
      values.kesCurrentPeriod.value,
    );
  }
  metrics.credentialsValid.reset();
  metrics.credentialsValid.set(
    { reason: values.credentialsValid.reason },
    values.credentialsValid.value,
  );
}

/** `forge_manager_node_forging_confirmed{state}` for a confirmation: the current state 1. Pure. */
export function forgingConfirmationValues(
  confirmation: ForgingConfirmation,
): Record<ConfirmationState, 0 | 1> {
  return Object.fromEntries(
    CONFIRMATION_STATES.map((state) => [state, state === confirmation.state ? 1 : 0]),
  ) as Record<ConfirmationState, 0 | 1>;
}

/** Sets `forge_manager_node_forging_confirmed` from a confirmation. */
export function recordForgingConfirmation(
  metrics: Metrics,
  confirmation: ForgingConfirmation,
): void {
  for (const [state, value] of Object.entries(forgingConfirmationValues(confirmation))) {
    metrics.nodeForgingConfirmed.set({ state }, value);
  }
}
