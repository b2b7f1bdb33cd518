/**
 * The fence: before a new leader forges, proof through the API that the previous holder's node
 * cannot still be forging. A lease alone cannot give this: a previous leader whose sidecar died
 * or froze leaves its node forging with the keys in place, and nobody in that pod can signal it.
 *
 * Proof, for the previous holder's pod (the part of its identity before the last "_"):
 * - the pod object does not exist, or exists with another UID (it was recreated): its
 *   containers were terminated, so its node is gone;
 * - otherwise the new leader deletes that pod (precondition: its UID) and waits until it is gone.
 *   Where it never goes (a partitioned kubelet), the new leader waits: failing safe.
 * - the previous holder was a process in our own pod, and this process has since stopped the
 *   node (unlinked the keys and signalled it, confirmed); without that confirmation our own pod
 *   is treated like any other.
 *
 * Needs RBAC: get and delete on pods in the namespace (the separate `forge-manager-fence` Role).
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { podOf } from "./election.ts";
import { abortableSleep } from "./lease_store.ts";
import { requestOptions, statusOf } from "./kube_client.ts";

/** How a fence check ended. */
export type FenceOutcome =
  | { proven: true; how: "pod_gone" | "pod_replaced" | "pod_deleted" | "own_pod" }
  | { proven: false; why: string };

/** The port for the fence. */
export interface Fence {
  /**
   * Resolves once the previous holder's node is proven stopped, or with `proven: false` when
   * `signal` aborts first (we lost the lease meanwhile).
   */
  prove(
    previousHolder: string,
    previousPodUid: string | undefined,
    signal: AbortSignal,
    previousWrittenAt?: number,
  ): Promise<FenceOutcome>;
}

/** The pod-based fence on a real API server. */
export class PodFence implements Fence {
  readonly #core: k8s.CoreV1Api;
  readonly #namespace: string;
  readonly #ownPod: string;
  readonly #pollMs: number;
  readonly #onEvent: (outcome: string, detail: string) => void;
  readonly #ownNodeStopped: () => boolean;
  readonly #ownPodUid: string;

  constructor(opts: {
    kc: k8s.KubeConfig;
    namespace: string;
    ownPod: string;
    /** Our pod's UID (POD_UID). */
    ownPodUid?: string;
    /** Whether this process's last stop of its own node was confirmed (default: no). */
    ownNodeStopped?: () => boolean;
    pollMs?: number;
    onEvent?: (outcome: string, detail: string) => void;
  }) {
    this.#ownNodeStopped = opts.ownNodeStopped ?? (() => false);
    this.#ownPodUid = opts.ownPodUid ?? "";
    this.#core = opts.kc.makeApiClient(k8s.CoreV1Api);
    this.#namespace = opts.namespace;
    this.#ownPod = opts.ownPod;
    this.#pollMs = opts.pollMs ?? 500;
    this.#onEvent = opts.onEvent ?? (() => {});
  }

  async prove(
    previousHolder: string,
    previousPodUid: string | undefined,
    signal: AbortSignal,
    previousWrittenAt?: number,
  ): Promise<FenceOutcome> {
    const pod = podOf(previousHolder);
    // Our own pod (same name, and the same UID where the holder recorded one): this process
    // stopped the node (unlink + SIGHUP, confirmed) before leading.
    const samePod = pod === this.#ownPod &&
      (previousPodUid === undefined || previousPodUid === "" || previousPodUid === this.#ownPodUid);
    if (samePod && this.#ownNodeStopped()) return { proven: true, how: "own_pod" };
    let deleted = false;
    let lastError = "";
    while (!signal.aborted) {
      try {
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
          const created = current.metadata?.creationTimestamp === undefined
            ? NaN
            : new Date(current.metadata.creationTimestamp).getTime();
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
          await abortableSleep(this.#pollMs, signal);
          continue;
        }
        if (!deleted && current.metadata?.deletionTimestamp === undefined) {
          this.#onEvent("deleting", pod);
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
      await abortableSleep(this.#pollMs, signal);
    }
    return {
      proven: false,
      why: lastError || "lease lost while waiting for the previous pod to go",
    };
  }
}
