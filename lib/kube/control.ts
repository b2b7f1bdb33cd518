/**
 * Operator requests on the CardanoLeader object, as the sidecar sees them: `spec.pause` and
 * `spec.handover` (written by `forge-manager pause|resume|handover`, conditionally), the last
 * handover a leader handled (`status.handover`), and this replica's own entry in
 * `status.replicas.<pod>` for `forge-manager status`. Best effort like lib/kube/status.ts: a failed
 * read keeps the last known requests (in lib/forging/forging.ts) and no write is ever awaited by a
 * forging decision.
 *
 * Needs RBAC: get and watch on `cardanoleaders` and get/patch on `cardanoleaders/status`, for the
 * one name.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import type { ControlView, HandoverResult, ReplicaView } from "../forging/forging.ts";
import { requestOptions, statusOf, watchOne } from "./kube_client.ts";
import { CARDANO_LEADER } from "./status.ts";

/** `spec.pause` as stored. Times are RFC 3339. */
export interface PauseSpec {
  reason: string;
  by: string;
  at: string;
  until?: string;
}

/** `spec.handover` as stored. */
export interface HandoverSpec {
  id: string;
  /** The target pod; "" for any ready standby. */
  to: string;
  by: string;
  at: string;
}

/** The CardanoLeader's spec. */
export interface CardanoLeaderSpec {
  pause?: PauseSpec;
  handover?: HandoverSpec;
}

/** One replica's entry in `status.replicas`, as published. */
export interface ReplicaEntry extends ReplicaView {
  identity: string;
  /** When `phase` or `reason` last changed (RFC 3339). */
  since: string;
  /** When this entry was written (RFC 3339). */
  heartbeat: string;
}

/** `status.handover`: the last handover request a leader handled. */
export interface HandoverStatus {
  id: string;
  result: HandoverResult;
  at: string;
}

/** What one read returns. */
export interface ControlRead {
  spec: CardanoLeaderSpec;
  handled?: HandoverStatus;
}

/** The port for operator requests and the published replica state. */
export interface ControlStore {
  /** The spec and status.handover; an absent object reads as no requests. */
  read(timeoutMs: number): Promise<ControlRead>;
  /**
   * Calls `onRead` with each change of the object (an absent object reads as no requests) until
   * `signal` aborts. An accelerator: the caller still reads, less often.
   */
  watch(onRead: (read: ControlRead) => void, signal: AbortSignal): void;
  /** Merge-patches `status.replicas.<pod>`. */
  publishReplica(pod: string, entry: ReplicaEntry, timeoutMs: number): Promise<void>;
  /** Merge-patches `status.handover`. */
  reportHandover(status: HandoverStatus, timeoutMs: number): Promise<void>;
}

/**
 * The step's view of a read, with wall-clock times turned into monotonic ones at the read:
 * `until` becomes `endsAt` (`monoNow + until - wallNow`), `at` becomes an age. Pure.
 */
export function toControlView(read: ControlRead, monoNow: number, wallNow: number): ControlView {
  const view: { -readonly [K in keyof ControlView]: ControlView[K] } = {};
  const pause = read.spec.pause;
  if (pause !== undefined) {
    const until = pause.until === undefined ? NaN : Date.parse(pause.until);
    view.pause = {
      reason: pause.reason,
      by: pause.by,
      ...(Number.isFinite(until) ? { endsAt: monoNow + (until - wallNow) } : {}),
    };
  }
  const h = read.spec.handover;
  if (h !== undefined && h.id !== "") {
    const at = Date.parse(h.at);
    view.handover = {
      id: h.id,
      to: h.to ?? "",
      by: h.by,
      ageMs: Number.isFinite(at) ? Math.max(0, wallNow - at) : Infinity,
    };
  }
  if (read.handled !== undefined && read.handled.id !== "") view.handledId = read.handled.id;
  return view;
}

/** The CardanoLeader as stored, as far as the sidecar reads it. */
interface StoredCardanoLeader {
  spec?: CardanoLeaderSpec;
  status?: { handover?: HandoverStatus };
}

function toControlRead(obj: StoredCardanoLeader): ControlRead {
  return {
    spec: obj.spec ?? {},
    ...(obj.status?.handover !== undefined ? { handled: obj.status.handover } : {}),
  };
}

/** The ControlStore on a real API server. */
export class KubeControlStore implements ControlStore {
  readonly #kc: k8s.KubeConfig;
  readonly #objects: k8s.CustomObjectsApi;
  readonly #namespace: string;
  readonly #name: string;
  readonly #count: (op: string) => void;

  constructor(opts: {
    kc: k8s.KubeConfig;
    namespace: string;
    name: string;
    count?: (op: string) => void;
  }) {
    this.#kc = opts.kc;
    this.#objects = opts.kc.makeApiClient(k8s.CustomObjectsApi);
    this.#namespace = opts.namespace;
    this.#name = opts.name;
    this.#count = opts.count ?? (() => {});
  }

  async read(timeoutMs: number): Promise<ControlRead> {
    this.#count("control_get");
    try {
      const obj = await this.#objects.getNamespacedCustomObject(
        { ...CARDANO_LEADER, namespace: this.#namespace, name: this.#name },
        requestOptions(timeoutMs),
      ) as StoredCardanoLeader;
      return toControlRead(obj);
    } catch (err) {
      if (statusOf(err) === 404) return { spec: {} };
      throw new Error(`Cannot read CardanoLeader ${this.#namespace}/${this.#name}`, {
        cause: err,
      });
    }
  }

  watch(onRead: (read: ControlRead) => void, signal: AbortSignal): void {
    const { group, version, plural } = CARDANO_LEADER;
    watchOne<StoredCardanoLeader>({
      kc: this.#kc,
      path: `/apis/${group}/${version}/namespaces/${this.#namespace}/${plural}`,
      name: this.#name,
      onEvent: (_phase, obj) => onRead(obj === undefined ? { spec: {} } : toControlRead(obj)),
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
      { ...CARDANO_LEADER, namespace: this.#namespace, name: this.#name, body: { status } },
      requestOptions(timeoutMs, k8s.PatchStrategy.MergePatch),
    );
  }
}
