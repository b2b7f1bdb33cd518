/**
 * The start-up check of NODE_CONTAINER_NAME against this pod's own spec. The fence takes the
 * kubelet's report on the container of that name in the previous holder's pod as proof that its
 * node stopped (lib/kube/fence.ts), so a name that matches no container would make that proof never
 * fire (the fence then waits for the whole pod, failing safe but slowly). Replicas of one
 * StatefulSet share one pod template: our own pod stands for theirs.
 *
 * Needs `get` on pods (the `forge-manager-fence` Role, present with FENCE=pod) and net to the API
 * server.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { ConfigError } from "../core/config.ts";
import { requestOptions } from "./kube_client.ts";

/** How the check went when it did not refuse the configuration. */
export type PodCheck = { checked: true } | { checked: false; why: string };

/**
 * The problem with `container` as the node's container of `pod`, or undefined when `pod` has a
 * main container of that name. Pure.
 */
export function nodeContainerProblem(pod: k8s.V1Pod, container: string): string | undefined {
  const main = (pod.spec?.containers ?? []).map((c) => c.name);
  if (main.includes(container)) return undefined;
  const init = (pod.spec?.initContainers ?? []).map((c) => c.name);
  const where = `pod ${pod.metadata?.namespace ?? "?"}/${pod.metadata?.name ?? "?"}`;
  const names = `its containers: ${main.join(", ") || "none"}` +
    (init.length > 0 ? `; init containers: ${init.join(", ")}` : "");
  return init.includes(container)
    ? `NODE_CONTAINER_NAME=${
      JSON.stringify(container)
    }: is an init container of ${where}; it must name the main container that runs cardano-node (${names})`
    : `NODE_CONTAINER_NAME=${
      JSON.stringify(container)
    }: names no container of ${where}; it must name the container that runs cardano-node (${names})`;
}

/**
 * Reads this pod and checks that `container` is one of its main containers.
 *
 * @throws {ConfigError} when the pod was read and has no main container of that name.
 * @returns `checked: false` with the reason when the pod could not be read (refused, absent, API
 *   server unreachable): the caller logs it and goes on; a wrong name only slows the fence.
 */
export async function checkNodeContainer(opts: {
  kc: k8s.KubeConfig;
  namespace: string;
  pod: string;
  container: string;
  timeoutMs?: number;
  /** Called once per request sent (pod_get). */
  count?: (operation: string) => void;
}): Promise<PodCheck> {
  const core = opts.kc.makeApiClient(k8s.CoreV1Api);
  let pod: k8s.V1Pod;
  try {
    opts.count?.("pod_get");
    pod = await core.readNamespacedPod(
      { name: opts.pod, namespace: opts.namespace },
      requestOptions(opts.timeoutMs ?? 5000),
    );
  } catch (err) {
    const why = err instanceof k8s.ApiException
      ? `reading pod ${opts.namespace}/${opts.pod} was answered with HTTP ${err.code}`
      : `reading pod ${opts.namespace}/${opts.pod} failed: ${
        err instanceof Error ? err.message : String(err)
      }`;
    return { checked: false, why };
  }
  const problem = nodeContainerProblem(pod, opts.container);
  if (problem !== undefined) throw new ConfigError([problem]);
  return { checked: true };
}
