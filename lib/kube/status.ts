/**
 * The CardanoLeader custom resource's status (through the status subresource, merge patch) and
 * Kubernetes Events for transitions. Best effort by design: failures are logged and counted, and
 * no forging decision ever waits on them. A pod only ever clears its OWN claim.
 *
 * Needs RBAC: get/patch on `cardanoleaders/status` for the one name, create on `events`.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { requestOptions, statusOf } from "./kube_client.ts";

/** The CRD's coordinates. */
export const CARDANO_LEADER = { group: "cardano.io", version: "v1", plural: "cardanoleaders" };

/** What a pod reports. */
export interface StatusUpdate {
  leaderPod: string;
  forgingEnabled: boolean;
  reason: string;
  message: string;
  leaseTransitions?: number;
}

/** The port for status reporting. */
export interface StatusReporter {
  /** Sets the status to `update`; with `onlyIfLeaderIs`, only when that pod is the recorded leader. */
  report(update: StatusUpdate, onlyIfLeaderIs?: string): Promise<void>;
  /** Records a Kubernetes Event about the CardanoLeader. */
  event(type: "Normal" | "Warning", reason: string, message: string): Promise<void>;
  /**
   * The pod the status names as leader (if not this one), or else the newest other replica whose
   * own entry says it leads or forges; "" for none, and when the CRD or the object is missing.
   */
  lastLeader(): Promise<string>;
  /**
   * Names this pod as the leader (`leaderPod`, with a new `lastTransitionTime`) in one merge patch
   * without a precondition, before it forges; a missing CRD or object is no error.
   */
  claim(timeoutMs: number): Promise<void>;
}

interface CurrentStatus {
  leaderPod?: string;
  forgingEnabled?: boolean;
  lastTransitionTime?: string;
  conditions?: { type: string; status: string; lastTransitionTime?: string }[];
  /** Each replica's own entry (lib/kube/control.ts), written without a precondition. */
  replicas?: Record<string, { leader?: boolean; forging?: boolean; heartbeat?: string }>;
}

/** Status reporting on a real API server. */
export class KubeStatusReporter implements StatusReporter {
  readonly #objects: k8s.CustomObjectsApi;
  readonly #core: k8s.CoreV1Api;
  readonly #namespace: string;
  readonly #name: string;
  readonly #pod: string;
  readonly #timeoutMs: number;
  readonly #count: (op: string) => void;

  constructor(opts: {
    kc: k8s.KubeConfig;
    namespace: string;
    name: string;
    pod: string;
    timeoutMs?: number;
    count?: (op: string) => void;
  }) {
    this.#objects = opts.kc.makeApiClient(k8s.CustomObjectsApi);
    this.#core = opts.kc.makeApiClient(k8s.CoreV1Api);
    this.#namespace = opts.namespace;
    this.#name = opts.name;
    this.#pod = opts.pod;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#count = opts.count ?? (() => {});
  }

  async report(update: StatusUpdate, onlyIfLeaderIs?: string): Promise<void> {
    // Every replica also merge-patches its own `status.replicas` entry (lib/kube/control.ts): those
    // writes move the resourceVersion without touching what this write is about, so a conflict
    // is read again and retried, up to ten times. The fence reads `leaderPod` back when a Lease
    // was deleted under a dead sidecar: losing this write is not harmless.
    for (let attempt = 0; attempt < 10; attempt++) {
      this.#count("status_get");
      const current = await this.#objects.getNamespacedCustomObjectStatus(
        { ...CARDANO_LEADER, namespace: this.#namespace, name: this.#name },
        requestOptions(this.#timeoutMs),
      ) as { metadata?: { resourceVersion?: string }; status?: CurrentStatus };
      const status = current.status ?? {};
      if (onlyIfLeaderIs !== undefined && (status.leaderPod ?? "") !== onlyIfLeaderIs) return;
      const now = new Date().toISOString();
      const changed = (status.leaderPod ?? "") !== update.leaderPod ||
        (status.forgingEnabled ?? false) !== update.forgingEnabled;
      if (!changed && status.lastTransitionTime !== undefined) return;
      const forging = update.forgingEnabled ? "True" : "False";
      const previous = status.conditions?.find((c) => c.type === "Forging");
      const body = {
        // Only a demoted leader's clearing write is conditional (it may clear its own claim
        // only); a leader naming itself must land before it is killed, not lose races against
        // the replicas' own entries (fault G2 relies on it to find whom to fence).
        ...(onlyIfLeaderIs !== undefined
          ? { metadata: { resourceVersion: current.metadata?.resourceVersion } }
          : {}),
        status: {
          leaderPod: update.leaderPod,
          forgingEnabled: update.forgingEnabled,
          lastTransitionTime: changed ? now : status.lastTransitionTime ?? now,
          ...(update.leaseTransitions !== undefined
            ? { leaseTransitions: update.leaseTransitions }
            : {}),
          conditions: [{
            type: "Forging",
            status: forging,
            reason: update.reason,
            message: update.message,
            lastTransitionTime: previous?.status === forging && previous.lastTransitionTime
              ? previous.lastTransitionTime
              : now,
          }],
        },
      };
      try {
        this.#count("status_patch");
        await this.#objects.patchNamespacedCustomObjectStatus(
          { ...CARDANO_LEADER, namespace: this.#namespace, name: this.#name, body },
          requestOptions(this.#timeoutMs, k8s.PatchStrategy.MergePatch),
        );
        return;
      } catch (err) {
        if (statusOf(err) !== 409) throw err; // someone else wrote in between: read again
      }
    }
  }

  async claim(timeoutMs: number): Promise<void> {
    this.#count("status_patch");
    try {
      await this.#objects.patchNamespacedCustomObjectStatus(
        {
          ...CARDANO_LEADER,
          namespace: this.#namespace,
          name: this.#name,
          body: { status: { leaderPod: this.#pod, lastTransitionTime: new Date().toISOString() } },
        },
        requestOptions(timeoutMs, k8s.PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (statusOf(err) !== 404) throw err; // no CRD or no object: nobody reads a name there
    }
  }

  async lastLeader(): Promise<string> {
    this.#count("status_get");
    let current: { status?: CurrentStatus };
    try {
      current = await this.#objects.getNamespacedCustomObjectStatus(
        { ...CARDANO_LEADER, namespace: this.#namespace, name: this.#name },
        requestOptions(this.#timeoutMs),
      ) as { status?: CurrentStatus };
    } catch (err) {
      if (statusOf(err) === 404) return ""; // no CRD or no object: nobody was ever named
      throw err;
    }
    const status = current.status ?? {};
    const named = status.leaderPod ?? "";
    if (named !== "" && named !== this.#pod) return named;
    // The leader's report may have been lost (best effort) or be our own; each replica's own
    // entry is written too. The newest other replica that says it leads or forges is the one to
    // fence.
    const claims = Object.entries(status.replicas ?? {})
      .filter(([pod, e]) => pod !== this.#pod && (e.forging === true || e.leader === true))
      .sort(([, a], [, b]) => String(b.heartbeat ?? "").localeCompare(String(a.heartbeat ?? "")));
    return claims[0]?.[0] ?? "";
  }

  async event(type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
    const now = new Date();
    this.#count("event_create");
    await this.#core.createNamespacedEvent({
      namespace: this.#namespace,
      body: {
        metadata: { generateName: `${this.#name}.`, namespace: this.#namespace },
        involvedObject: {
          apiVersion: `${CARDANO_LEADER.group}/${CARDANO_LEADER.version}`,
          kind: "CardanoLeader",
          name: this.#name,
          namespace: this.#namespace,
        },
        type,
        reason,
        message,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component: "forge-manager", host: this.#pod },
        reportingComponent: "forge-manager",
        reportingInstance: this.#pod,
      },
    }, requestOptions(this.#timeoutMs));
  }
}
