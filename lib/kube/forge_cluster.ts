/**
 * The `CardanoForgeCluster` resource (`cardano.io/v1`, short name `cfc`): one per cluster of a
 * pool that runs in several clusters, in the namespace of its replicas. Its spec is the
 * operator's say over this cluster (forge state, priority, region, health check, a time-limited
 * override); its status is what this cluster's local leader computed from it (effective state and
 * priority, the pool's active leader, the health check's result, conditions). The field names
 * are the Python twin's where they mean the same.
 *
 * Needs RBAC: get on `cardanoforgeclusters` and get/patch on `cardanoforgeclusters/status`,
 * both for the one object.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { requestOptions, statusOf } from "./kube_client.ts";

/** The CRD's coordinates. */
export const FORGE_CLUSTER = {
  group: "cardano.io",
  version: "v1",
  plural: "cardanoforgeclusters",
} as const;

/** What the operator says this cluster may do. */
export type ForgeState = "Enabled" | "Disabled" | "Priority-based";

/** Every forge state, as the CRD's enum lists them. */
export const FORGE_STATES: readonly ForgeState[] = ["Enabled", "Disabled", "Priority-based"];

/** `spec.healthCheck` as the step sees it (durations in ms). */
export interface HealthCheckSpec {
  enabled: boolean;
  /** The URL probed; it must be the sidecar's HEALTH_CHECK_ENDPOINT (its only permitted one). */
  endpoint?: string;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failures after which this cluster counts as unhealthy. */
  failureThreshold: number;
}

/** `spec.override` as the step sees it (`expiresAtMs`: wall-clock ms). */
export interface OverrideSpec {
  enabled: boolean;
  reason: string;
  expiresAtMs?: number;
  forceState?: ForgeState;
  forcePriority?: number;
}

/** The spec as the step sees it, defaults filled in. */
export interface ForgeClusterSpec {
  forgeState: ForgeState;
  priority: number;
  region?: string;
  healthCheck?: HealthCheckSpec;
  override?: OverrideSpec;
}

/** `status.healthStatus`. */
export interface HealthStatus {
  healthy: boolean;
  lastProbeTime: string;
  consecutiveFailures: number;
  message: string;
}

/** One `metav1.Condition` of the status. */
export interface ForgeClusterCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
}

/** The status this cluster's local leader writes. */
export interface ForgeClusterStatus {
  effectiveState: ForgeState;
  effectivePriority: number;
  /** The pool's forger, `<cluster>/<pod>`, as the coordination Lease says ("" none). */
  activeLeader: string;
  /** This cluster's local leader (its candidate). */
  localLeader: string;
  reason: string;
  message: string;
  healthStatus?: HealthStatus;
  conditions: ForgeClusterCondition[];
  lastUpdateTime: string;
}

/** The stored spec, as far as it is read. */
interface StoredSpec {
  forgeState?: string;
  priority?: number;
  region?: string;
  healthCheck?: {
    enabled?: boolean;
    endpoint?: string;
    interval?: string;
    timeoutSeconds?: number;
    failureThreshold?: number;
  };
  override?: {
    enabled?: boolean;
    reason?: string;
    expiresAt?: string;
    forceState?: string;
    forcePriority?: number;
  };
}

/** `30s`, `2m`, `1h`, `1m30s` -> ms; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(text.trim());
  if (m === null || text.trim() === "") return undefined;
  return ((Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0)) * 60 + Number(m[3] ?? 0)) * 1000;
}

function forgeState(value: string | undefined): ForgeState | undefined {
  return FORGE_STATES.find((s) => s === value);
}

/**
 * The step's view of a stored spec; `fallbackPriority` (CLUSTER_PRIORITY) when it names none.
 * Values the CRD's schema already refuses are taken at their defaults here too. Pure.
 */
export function toForgeClusterSpec(
  spec: StoredSpec | undefined,
  fallbackPriority: number,
): ForgeClusterSpec {
  const hc = spec?.healthCheck;
  const ov = spec?.override;
  const expiresAt = ov?.expiresAt === undefined ? NaN : Date.parse(ov.expiresAt);
  const forced = forgeState(ov?.forceState);
  return {
    forgeState: forgeState(spec?.forgeState) ?? "Priority-based",
    priority: spec?.priority ?? fallbackPriority,
    ...(spec?.region !== undefined && spec.region !== "" ? { region: spec.region } : {}),
    ...(hc !== undefined
      ? {
        healthCheck: {
          enabled: hc.enabled ?? true,
          ...(hc.endpoint !== undefined && hc.endpoint !== "" ? { endpoint: hc.endpoint } : {}),
          intervalMs: parseDuration(hc.interval ?? "30s") ?? 30_000,
          timeoutMs: (hc.timeoutSeconds ?? 5) * 1000,
          failureThreshold: hc.failureThreshold ?? 3,
        },
      }
      : {}),
    ...(ov !== undefined
      ? {
        override: {
          enabled: ov.enabled ?? false,
          reason: ov.reason ?? "",
          ...(Number.isFinite(expiresAt) ? { expiresAtMs: expiresAt } : {}),
          ...(forced !== undefined ? { forceState: forced } : {}),
          ...(ov.forcePriority !== undefined ? { forcePriority: ov.forcePriority } : {}),
        },
      }
      : {}),
  };
}

/** Reading this cluster's CardanoForgeCluster and writing its status. */
export interface ForgeClusterStore {
  /** The spec; undefined when the object (or the CRD) does not exist. */
  read(timeoutMs: number): Promise<ForgeClusterSpec | undefined>;
  /** Merge-patches the status (a missing object is no error: there is nothing to show it on). */
  report(status: ForgeClusterStatus, timeoutMs: number): Promise<void>;
}

/** {@linkcode ForgeClusterStore} on the API server. */
export class KubeForgeCluster implements ForgeClusterStore {
  readonly #objects: k8s.CustomObjectsApi;
  readonly #namespace: string;
  readonly #name: string;
  readonly #fallbackPriority: number;
  readonly #count: (op: string) => void;

  constructor(opts: {
    kc: k8s.KubeConfig;
    namespace: string;
    name: string;
    /** CLUSTER_PRIORITY: the priority when the spec names none. */
    fallbackPriority: number;
    count?: (op: string) => void;
  }) {
    this.#objects = opts.kc.makeApiClient(k8s.CustomObjectsApi);
    this.#namespace = opts.namespace;
    this.#name = opts.name;
    this.#fallbackPriority = opts.fallbackPriority;
    this.#count = opts.count ?? (() => {});
  }

  #ref() {
    return { ...FORGE_CLUSTER, namespace: this.#namespace, name: this.#name };
  }

  async read(timeoutMs: number): Promise<ForgeClusterSpec | undefined> {
    this.#count("forge_cluster_get");
    try {
      const obj = await this.#objects.getNamespacedCustomObject(
        this.#ref(),
        requestOptions(timeoutMs),
      ) as { spec?: StoredSpec };
      return toForgeClusterSpec(obj.spec, this.#fallbackPriority);
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw new Error(`Cannot read CardanoForgeCluster ${this.#namespace}/${this.#name}`, {
        cause: err,
      });
    }
  }

  async report(status: ForgeClusterStatus, timeoutMs: number): Promise<void> {
    this.#count("forge_cluster_status_patch");
    try {
      await this.#objects.patchNamespacedCustomObjectStatus(
        { ...this.#ref(), body: { status } },
        requestOptions(timeoutMs, k8s.PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }
}
