/**
 * Building client-node's API objects, and per-request options (timeouts, content types).
 * Needs (inside the worker): read of the kubeconfig or service-account files, `sys: ["uid"]`,
 * unscoped `env`, and net to the API server.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";

/**
 * Loads a kubeconfig file, or the in-cluster service account when `kubeconfig` is undefined.
 *
 * @throws {Error} when no usable configuration is found (client-node would otherwise silently
 *   fall back to http://localhost:8080).
 */
export function loadKubeConfig(kubeconfig: string | undefined): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (kubeconfig !== undefined) {
    kc.loadFromFile(kubeconfig);
  } else {
    kc.loadFromCluster();
  }
  const cluster = kc.getCurrentCluster();
  if (
    cluster === null || cluster.server === "" || cluster.server.startsWith("http://localhost:8080")
  ) {
    throw new Error(
      `Cannot configure the Kubernetes client: ${
        kubeconfig ?? "the in-cluster service account"
      } gave no API server (is KUBECONFIG right, or are KUBERNETES_SERVICE_HOST and the service-account token present?)`,
    );
  }
  return kc;
}

/** The `host:port` of the API server a kubeconfig points at (for the worker's net grant). */
export function apiServerHostPort(kc: k8s.KubeConfig): string {
  const server = kc.getCurrentCluster()?.server;
  if (server === undefined) throw new Error("Cannot find the API server: no current cluster");
  const url = new URL(server);
  const port = url.port !== "" ? url.port : url.protocol === "https:" ? "443" : "80";
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  return `${host}:${port}`;
}

function observableOf<T>(value: T) {
  const promise = Promise.resolve(value);
  return { toPromise: () => promise, pipe: <R>(f: (v: T) => R) => observableOf(f(value)) };
}

/**
 * Per-request options: an abort after `timeoutMs`, and optionally a Content-Type header
 * (a merge patch needs `application/merge-patch+json`; client-node defaults to JSON patch).
 */
export function requestOptions(
  timeoutMs: number,
  contentType?: k8s.PatchStrategy,
): k8s.ConfigurationOptions {
  const ms = Math.max(1, Math.floor(timeoutMs));
  const timeout = {
    pre: (ctx: k8s.RequestContext) => {
      ctx.setSignal(AbortSignal.timeout(ms));
      return observableOf(ctx);
    },
    post: (ctx: k8s.ResponseContext) => observableOf(ctx),
  };
  // client-node's object API runs middleware as Observables (`toPromise`), although the exported
  // ConfigurationOptions type describes Promise middleware; a Promise-returning `pre` fails.
  const options = {
    middleware: [timeout],
    middlewareMergeStrategy: "append",
  } as unknown as k8s.ConfigurationOptions;
  return contentType === undefined
    ? options
    : k8s.setHeaderOptions("Content-Type", contentType, options);
}

/** The HTTP status of a client-node error, or undefined when it is not an API answer. */
export function statusOf(err: unknown): number | undefined {
  return err instanceof k8s.ApiException ? err.code : undefined;
}
