/**
 * The fence: before a new leader forges, proof through the API that the previous holder's node
 * cannot still be forging. A lease alone cannot give this: a previous leader whose sidecar died
 * or froze leaves its node forging with the keys in place, and nobody in that pod can signal it.
 *
 * Proof, for the previous holder's pod (the part of its identity before the last "_"):
 * - the pod object does not exist, or exists with another UID (it was recreated): its
 *   containers were terminated, so its node is gone;
 * - otherwise the new leader deletes that pod (precondition: its UID) and waits until it is gone,
 *   or until the kubelet reports the node container of the terminating pod terminated (see
 *   {@linkcode nodeTerminated}): a kubelet does not start containers of a pod that is being
 *   deleted, so the node cannot come back in that pod, even while a frozen sidecar holds the pod
 *   until the end of its grace period. Where the kubelet reports nothing (partitioned), the new
 *   leader waits: failing safe.
 * - the previous holder was a process in our own pod, and this process has since stopped the
 *   node (unlinked the keys and signalled it, confirmed); without that confirmation our own pod
 *   is treated like any other.
 *
 * While it waits it watches that one pod (any change wakes it at once) and reads it every
 * `pollMs` besides, so a watch that breaks costs latency, never a proof.
 *
 * Needs RBAC: get, watch and delete on pods in the namespace (the separate `forge-manager-fence`
 * Role).
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { podOf } from "../base/identity.ts";
import type { FencePending } from "./lease_store.ts";
import { requestOptions, statusOf, watchOne } from "./kube_client.ts";

/** Every way the fence can prove the previous holder's node stopped. */
export const FENCE_PROOFS = [
  "pod_gone",
  "pod_replaced",
  "pod_deleted",
  "node_terminated",
  "own_pod",
] as const;

/** One of {@linkcode FENCE_PROOFS}. */
export type FenceProof = typeof FENCE_PROOFS[number];

/** How a fence check ended. */
export type FenceOutcome =
  | { proven: true; how: FenceProof }
  | { proven: false; why: string };

/** Whom a fence proves stopped, as the step knows it when the fence starts. */
export interface FenceRequest extends FencePending {
  /**
   * This process's last stop of its own node was confirmed (keys unlinked, SIGHUP delivered) and
   * it has not forged since: proof enough when the holder was our own pod.
   */
  ownNodeStopped: boolean;
}

/** The port for the fence. */
export interface Fence {
  /**
   * Resolves once the previous holder's node is proven stopped, or with `proven: false` when
   * `signal` aborts first (we lost the lease meanwhile).
   */
  prove(previous: FenceRequest, signal: AbortSignal): Promise<FenceOutcome>;
}

/** What the kubelet's report on a pod says about its node container. */
export type NodeReport =
  | { terminated: true; finishedAt: number }
  | { terminated: false; why: string };

/** Whole seconds of a time in milliseconds (API times are whole seconds, truncated). */
const second = (ms: number) => Math.floor(ms / 1000);
/** Milliseconds of an API time (client-node types them as Date; they may arrive as strings). */
const timeOf = (t: Date | string | undefined) => t === undefined ? NaN : new Date(t).getTime();
const iso = (ms: number) => Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);

/**
 * Whether the kubelet reports, in `pod`, that the node container `container` has stopped for
 * good. All of these must hold:
 * - the pod is terminating (`deletionTimestamp`, whoever deleted it): the kubelet does not start
 *   containers of such a pod again. In a pod that is not terminating a terminated container may be
 *   restarted at once, with the keys still in place: no proof;
 * - the container's status is `state.terminated`, or it is `waiting` (not running) with a
 *   `restartCount` above `restartsAtStart` (the count seen when the fence began) and the
 *   termination in `lastState.terminated`; a kubelet that could not locate the container
 *   (`ContainerStatusUnknown`) proves nothing;
 * - `finishedAt` is in a later whole second than `writtenAt` (the holder's last write, by the API
 *   server's clock, whole seconds) and than the deletion request (`deletionTimestamp` minus
 *   `deletionGracePeriodSeconds`). Both times are truncated to whole seconds, so equal seconds
 *   cannot tell the order and are refused. After the deletion: a container that stopped before it
 *   (a crash) may have been restarted by a kubelet that had not seen the deletion yet.
 *
 * Pure: reads `pod` only.
 */
export function nodeTerminated(
  pod: k8s.V1Pod,
  opts: { container: string; writtenAt: number | undefined; restartsAtStart: number },
): NodeReport {
  const name = opts.container;
  const deletion = timeOf(pod.metadata?.deletionTimestamp);
  if (!Number.isFinite(deletion)) {
    return { terminated: false, why: "the pod is not terminating: its node may be restarted" };
  }
  if (opts.writtenAt === undefined) {
    return { terminated: false, why: "the holder's last write time is unknown" };
  }
  const status = (pod.status?.containerStatuses ?? []).find((s) => s.name === name);
  if (status === undefined) {
    return { terminated: false, why: `the kubelet reports no status of container ${name}` };
  }
  const state = status.state ?? {};
  if (state.running !== undefined) {
    return { terminated: false, why: `container ${name} is running` };
  }
  const record = state.terminated ??
    (state.waiting !== undefined && status.restartCount > opts.restartsAtStart
      ? status.lastState?.terminated
      : undefined);
  if (record === undefined) {
    return { terminated: false, why: `container ${name} has not terminated` };
  }
  if (record.reason === "ContainerStatusUnknown") {
    return { terminated: false, why: `the kubelet could not locate container ${name}` };
  }
  const finishedAt = timeOf(record.finishedAt);
  if (!Number.isFinite(finishedAt)) {
    return { terminated: false, why: `container ${name} terminated with no finish time` };
  }
  if (second(finishedAt) <= second(opts.writtenAt)) {
    return {
      terminated: false,
      why: `container ${name} finished at ${iso(finishedAt)}, not after the holder's last write ` +
        `at ${iso(opts.writtenAt)} (whole seconds)`,
    };
  }
  const requested = second(deletion) - (pod.metadata?.deletionGracePeriodSeconds ?? 0);
  if (second(finishedAt) <= requested) {
    return {
      terminated: false,
      why: `container ${name} finished at ${iso(finishedAt)}, not after the pod's deletion ` +
        `at ${iso(requested * 1000)} (whole seconds)`,
    };
  }
  return { terminated: true, finishedAt };
}

/** The restart count of container `name` in `pod` (0 when it has no status yet). */
function restartsOf(pod: k8s.V1Pod, name: string): number {
  return (pod.status?.containerStatuses ?? []).find((s) => s.name === name)?.restartCount ?? 0;
}

/** The pod-based fence on a real API server. */
export class PodFence implements Fence {
  readonly #core: k8s.CoreV1Api;
  readonly #kc: k8s.KubeConfig;
  readonly #namespace: string;
  readonly #ownPod: string;
  readonly #nodeContainer: string;
  readonly #pollMs: number;
  readonly #onEvent: (outcome: string, detail: string) => void;
  readonly #count: (operation: string) => void;
  readonly #ownPodUid: string;

  constructor(opts: {
    kc: k8s.KubeConfig;
    namespace: string;
    ownPod: string;
    /** Our pod's UID (POD_UID). */
    ownPodUid?: string;
    /** The node's container in every replica's pod (NODE_CONTAINER_NAME; default cardano-node). */
    nodeContainer?: string;
    /** How often the pod is read besides the watch (default 2000 ms). */
    pollMs?: number;
    /** Called with what the fence does or waits for ("deleting", "waiting", "error", ...). */
    onEvent?: (outcome: string, detail: string) => void;
    /** Called once per request sent: pod_get, pod_delete, pod_watch. */
    count?: (operation: string) => void;
  }) {
    this.#ownPodUid = opts.ownPodUid ?? "";
    this.#kc = opts.kc;
    this.#core = opts.kc.makeApiClient(k8s.CoreV1Api);
    this.#namespace = opts.namespace;
    this.#ownPod = opts.ownPod;
    this.#nodeContainer = opts.nodeContainer ?? "cardano-node";
    this.#pollMs = opts.pollMs ?? 2000;
    this.#onEvent = opts.onEvent ?? (() => {});
    this.#count = opts.count ?? (() => {});
  }

  async prove(previous: FenceRequest, signal: AbortSignal): Promise<FenceOutcome> {
    const { holder: previousHolder, podUid: previousPodUid, writtenAt: previousWrittenAt } =
      previous;
    const pod = podOf(previousHolder);
    // Our own pod (same name, and the same UID where the holder recorded one): this process
    // stopped the node (unlink + SIGHUP, confirmed) before leading.
    const samePod = pod === this.#ownPod &&
      (previousPodUid === undefined || previousPodUid === "" || previousPodUid === this.#ownPodUid);
    if (samePod && previous.ownNodeStopped) return { proven: true, how: "own_pod" };
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    const changed = this.#watch(pod, stop.signal);
    try {
      return await this.#prove(pod, previousHolder, previousPodUid, previousWrittenAt, {
        signal,
        changed,
      });
    } finally {
      signal.removeEventListener("abort", onAbort);
      stop.abort();
    }
  }

  async #prove(
    pod: string,
    previousHolder: string,
    previousPodUid: string | undefined,
    previousWrittenAt: number | undefined,
    io: { signal: AbortSignal; changed: (ms: number) => Promise<void> },
  ): Promise<FenceOutcome> {
    const { signal } = io;
    // The node's own report counts only for the pod the holder claimed (its UID).
    const holderUid = previousPodUid ?? "";
    let restartsAtStart: number | undefined;
    let deleted = false;
    let lastError = "";
    let waitingFor = "";
    while (!signal.aborted) {
      try {
        this.#count("pod_get");
        const current = await this.#core.readNamespacedPod(
          { name: pod, namespace: this.#namespace },
          requestOptions(5000),
        );
        const uid = current.metadata?.uid;
        if (previousPodUid !== undefined && previousPodUid !== "" && uid !== previousPodUid) {
          // Another pod of that name. It replaced the holder's pod only if it was created after
          // the holder's last write: a pod that already existed while the holder wrote under
          // another UID means the holder was never a pod we can see (a copy outside Kubernetes
          // with this pod's name). Nothing here can prove that one stopped: wait.
          const created = timeOf(current.metadata?.creationTimestamp);
          if (
            deleted || previousWrittenAt === undefined || !Number.isFinite(created) ||
            created >= previousWrittenAt
          ) {
            return { proven: true, how: deleted ? "pod_deleted" : "pod_replaced" };
          }
          if (lastError === "") {
            lastError =
              `holder ${previousHolder} claimed pod UID ${previousPodUid}, but pod ${pod} ` +
              `(UID ${uid}) existed before its last write: a process outside the Pod model`;
            this.#onEvent("unprovable", lastError);
          }
          await io.changed(this.#pollMs);
          continue;
        }
        if (holderUid !== "" && uid === holderUid) {
          restartsAtStart ??= restartsOf(current, this.#nodeContainer);
          const report = nodeTerminated(current, {
            container: this.#nodeContainer,
            writtenAt: previousWrittenAt,
            restartsAtStart,
          });
          if (report.terminated) return { proven: true, how: "node_terminated" };
          if (report.why !== waitingFor && current.metadata?.deletionTimestamp !== undefined) {
            waitingFor = report.why;
            this.#onEvent("waiting", `pod ${pod}: ${report.why}`);
          }
        }
        if (!deleted && current.metadata?.deletionTimestamp === undefined) {
          this.#onEvent("deleting", pod);
          this.#count("pod_delete");
          await this.#core.deleteNamespacedPod(
            {
              name: pod,
              namespace: this.#namespace,
              body: { preconditions: uid !== undefined ? { uid } : {} },
            },
            requestOptions(5000),
          );
          // Wait for the pod to go: if it was recreated under the same name, the UID tells.
          previousPodUid = uid;
          deleted = true;
          continue; // read it again at once: the kubelet's report may already be there
        } else if (!deleted) {
          previousPodUid = uid;
          deleted = true; // someone else is deleting it already: wait for it to go
        }
      } catch (err) {
        const code = statusOf(err);
        if (code === 404) return { proven: true, how: deleted ? "pod_deleted" : "pod_gone" };
        if (code === 409) continue; // UID precondition failed: the pod was replaced; read again
        lastError = String(err instanceof Error ? err.message : err);
        this.#onEvent("error", lastError);
      }
      await io.changed(this.#pollMs);
    }
    return {
      proven: false,
      why: lastError || waitingFor ||
        "lease lost while waiting for the previous pod to go",
    };
  }

  /**
   * Watches pod `name` until `signal` aborts. Returns a wait: it resolves after `ms`, at once if
   * the pod changed since the last wait, or as soon as it changes. The watch is an accelerator
   * only: when it fails the fence still reads the pod every `pollMs`.
   */
  #watch(name: string, signal: AbortSignal): (ms: number) => Promise<void> {
    let changed = false;
    let wake: (() => void) | undefined;
    const poke = () => {
      changed = true;
      wake?.();
    };
    // Refused or unreachable, it starts again after `pollMs`; the polls go on meanwhile.
    watchOne({
      kc: this.#kc,
      path: `/api/v1/namespaces/${this.#namespace}/pods`,
      name,
      onEvent: poke,
      signal,
      count: () => this.#count("pod_watch"),
      rewatchMs: this.#pollMs,
    });
    return (ms: number) => {
      if (changed || signal.aborted) {
        changed = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const finish = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", finish);
          wake = undefined;
          changed = false;
          resolve();
        };
        const timer = setTimeout(finish, Math.max(0, ms));
        wake = finish;
        signal.addEventListener("abort", finish, { once: true });
      });
    };
  }
}
