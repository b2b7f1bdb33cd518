/**
 * This replica's own Pod, read through the fence's Pod access (FENCE=pod): whether it is being
 * deleted (a `deletionTimestamp`), so a leader ends its term while its node is still shutting
 * down instead of after the node has exited (a native sidecar gets SIGTERM last).
 *
 * Needs RBAC: get and watch on pods (the `forge-manager-fence` Role).
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { requestOptions, statusOf, watchOne } from "./kube_client.ts";

/** Our Pod's deletion: its grace period, when the Pod says (`deletionGracePeriodSeconds`). */
export interface PodDeletion {
  graceSeconds?: number;
}

/** The port. */
export interface OwnPod {
  /**
   * Whether our Pod (our name and, when POD_UID is set, our UID) is being deleted: it has a
   * `deletionTimestamp` (then its deletion), or `false`. No Pod of that name, or one with another
   * UID, counts as not deleted.
   */
  terminating(timeoutMs: number): Promise<false | PodDeletion>;
  /**
   * Calls `onChange` with the same (as above) at each change of our Pod until `signal` aborts. An
   * accelerator: the caller still reads, less often.
   */
  watch(onChange: (deletion: false | PodDeletion) => void, signal: AbortSignal): void;
}

/** OwnPod on a real API server. */
export class KubeOwnPod implements OwnPod {
  readonly #kc: k8s.KubeConfig;
  readonly #core: k8s.CoreV1Api;
  readonly #namespace: string;
  readonly #name: string;
  readonly #uid: string;
  readonly #count: (op: string) => void;

  constructor(opts: {
    kc: k8s.KubeConfig;
    namespace: string;
    name: string;
    /** POD_UID: a Pod of the same name with another UID is not ours. */
    uid: string;
    count?: (op: string) => void;
  }) {
    this.#kc = opts.kc;
    this.#core = opts.kc.makeApiClient(k8s.CoreV1Api);
    this.#namespace = opts.namespace;
    this.#name = opts.name;
    this.#uid = opts.uid;
    this.#count = opts.count ?? (() => {});
  }

  async terminating(timeoutMs: number): Promise<false | PodDeletion> {
    this.#count("own_pod_get");
    try {
      const pod = await this.#core.readNamespacedPod(
        { name: this.#name, namespace: this.#namespace },
        requestOptions(timeoutMs),
      );
      // A Pod of our name with another UID is not ours: a process outside the Pod model using
      // the name (the fence's rules cover it), or ours already replaced, which a kubelet does
      // only after our containers ended. Neither tells us to hand over.
      return this.#terminating(pod);
    } catch (err) {
      // No object of that name: not a sign of deletion we can act on (a pod run outside the API,
      // or a wrong POD_NAME); retiring on it would leave a state nobody can leave.
      if (statusOf(err) === 404) return false;
      throw new Error(`Cannot read Pod ${this.#namespace}/${this.#name}`, { cause: err });
    }
  }

  watch(onChange: (deletion: false | PodDeletion) => void, signal: AbortSignal): void {
    watchOne<k8s.V1Pod>({
      kc: this.#kc,
      path: `/api/v1/namespaces/${this.#namespace}/pods`,
      name: this.#name,
      // A deleted object says nothing we can act on (as a 404 above).
      onEvent: (_phase, pod) => onChange(pod !== undefined && this.#terminating(pod)),
      signal,
      count: () => this.#count("own_pod_watch"),
    });
  }

  #terminating(pod: k8s.V1Pod): false | PodDeletion {
    if (this.#uid !== "" && pod.metadata?.uid !== this.#uid) return false;
    if (pod.metadata?.deletionTimestamp === undefined) return false;
    const grace = pod.metadata.deletionGracePeriodSeconds;
    return typeof grace === "number" ? { graceSeconds: grace } : {};
  }
}
