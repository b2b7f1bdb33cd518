/**
 * The CardanoLeader custom resource (`cardanoleaders.cardano.io/v1`), in one place: its reads and
 * writes here, its schema and its view for the forging step in `cardano_leader_schema.ts`
 * (re-exported: importers name this module only).
 *
 * - Status (through the status subresource, merge patch) and Kubernetes Events for transitions:
 *   best effort by design; failures are logged and counted, and no forging decision ever waits
 *   on them, except the promotion's claim ({@linkcode StatusReporter.claim}), which is bounded. A
 *   pod only ever clears its OWN claim.
 * - Operator requests, as the sidecar sees them: `spec.pause` and `spec.handover` (written by
 *   `forge-manager pause|resume|handover`, conditionally), the last handover a leader handled
 *   (`status.handover`), and this replica's own entry in `status.replicas.<pod>` for
 *   `forge-manager status`. A failed read keeps the last known requests (in the step).
 *
 * Needs RBAC: get and watch on `cardanoleaders`, get/patch on `cardanoleaders/status` for the one
 * name, create on `events`.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import type { Clock } from "../base/clock.ts";
import { requestOptions, statusOf, watchOne } from "./kube_client.ts";

export * from "./cardano_leader_schema.ts";
import {
  CARDANO_LEADER,
  type ControlView,
  type HandoverStatus,
  type ReplicaEntry,
  type StatusUpdate,
  type StoredCardanoLeader,
  toControlView,
} from "./cardano_leader_schema.ts";

// ---- the ports ----------------------------------------------------------------------------

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

/** The port for operator requests and the published replica state. */
export interface ControlStore {
  /** The step's view of the spec and status.handover; an absent object reads as no requests. */
  read(timeoutMs: number): Promise<ControlView>;
  /**
   * Calls `onView` with each change of the object (an absent object reads as no requests) until
   * `signal` aborts. An accelerator: the caller still reads, less often.
   */
  watch(onView: (view: ControlView) => void, signal: AbortSignal): void;
  /** Merge-patches `status.replicas.<pod>`. */
  publishReplica(pod: string, entry: ReplicaEntry, timeoutMs: number): Promise<void>;
  /** Merge-patches `status.handover`. */
  reportHandover(status: HandoverStatus, timeoutMs: number): Promise<void>;
}

// ---- on a real API server -----------------------------------------------------------------

/** The CardanoLeader on a real API server: both ports. */
export class KubeCardanoLeader implements StatusReporter, ControlStore {
  readonly #kc: k8s.KubeConfig;
  readonly #objects: k8s.CustomObjectsApi;
  readonly #core: k8s.CoreV1Api;
  readonly #namespace: string;
  readonly #name: string;
  readonly #pod: string;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #count: (op: string) => void;

  constructor(opts: {
    kc: k8s.KubeConfig;
    namespace: string;
    name: string;
    /** This replica's pod. */
    pod: string;
    /** Turns the spec's wall-clock times into the step's monotonic ones at each read. */
    clock: Clock;
    /** The bound of a status or Event write (default 5000 ms). */
    timeoutMs?: number;
    count?: (op: string) => void;
  }) {
    this.#kc = opts.kc;
    this.#objects = opts.kc.makeApiClient(k8s.CustomObjectsApi);
    this.#core = opts.kc.makeApiClient(k8s.CoreV1Api);
    this.#namespace = opts.namespace;
    this.#name = opts.name;
    this.#pod = opts.pod;
    this.#clock = opts.clock;
    this.#timeoutMs = opts.timeoutMs ?? 5000;
    this.#count = opts.count ?? (() => {});
  }

  #ref() {
    return { ...CARDANO_LEADER, namespace: this.#namespace, name: this.#name };
  }

  #view(obj: StoredCardanoLeader | undefined): ControlView {
    return toControlView(obj, this.#clock.monotonic(), this.#clock.wall().getTime());
  }

  async report(update: StatusUpdate, onlyIfLeaderIs?: string): Promise<void> {
    // Every replica also merge-patches its own `status.replicas` entry: those writes move the
    // resourceVersion without touching what this write is about, so a conflict is read again and
    // retried, up to ten times. The fence reads `leaderPod` back when a Lease was deleted under a
    // dead sidecar: losing this write is not harmless.
    for (let attempt = 0; attempt < 10; attempt++) {
      this.#count("status_get");
      const current = await this.#objects.getNamespacedCustomObjectStatus(
        this.#ref(),
        requestOptions(this.#timeoutMs),
      ) as StoredCardanoLeader;
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
          { ...this.#ref(), body },
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
          ...this.#ref(),
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
    let current: StoredCardanoLeader;
    try {
      current = await this.#objects.getNamespacedCustomObjectStatus(
        this.#ref(),
        requestOptions(this.#timeoutMs),
      ) as StoredCardanoLeader;
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

  async read(timeoutMs: number): Promise<ControlView> {
    this.#count("control_get");
    try {
      const obj = await this.#objects.getNamespacedCustomObject(
        this.#ref(),
        requestOptions(timeoutMs),
      ) as StoredCardanoLeader;
      return this.#view(obj);
    } catch (err) {
      if (statusOf(err) === 404) return this.#view(undefined);
      throw new Error(`Cannot read CardanoLeader ${this.#namespace}/${this.#name}`, {
        cause: err,
      });
    }
  }

  watch(onView: (view: ControlView) => void, signal: AbortSignal): void {
    const { group, version, plural } = CARDANO_LEADER;
    watchOne<StoredCardanoLeader>({
      kc: this.#kc,
      path: `/apis/${group}/${version}/namespaces/${this.#namespace}/${plural}`,
      name: this.#name,
      onEvent: (_phase, obj) => onView(this.#view(obj)),
      signal,
      count: () => this.#count("control_watch"),
    });
  }

  async publishReplica(pod: string, entry: ReplicaEntry, timeoutMs: number): Promise<void> {
    await this.#patch({ replicas: { [pod]: entry } }, timeoutMs, "replica_patch");
  }

  async reportHandover(status: HandoverStatus, timeoutMs: number): Promise<void> {
    await this.#patch({ handover: status }, timeoutMs, "handover_patch");
  }

  async #patch(status: Record<string, unknown>, timeoutMs: number, op: string): Promise<void> {
    this.#count(op);
    await this.#objects.patchNamespacedCustomObjectStatus(
      { ...this.#ref(), body: { status } },
      requestOptions(timeoutMs, k8s.PatchStrategy.MergePatch),
    );
  }
}
