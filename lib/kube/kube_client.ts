/**
 * Building client-node's API objects, and per-request options (timeouts, content types).
 * Needs (inside the worker): read of the kubeconfig or service-account files, `sys: ["uid"]`,
 * unscoped `env`, and net to the API server.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { sleep, systemClock } from "../base/clock.ts";

/**
 * Loads a kubeconfig file, or the in-cluster service account when `kubeconfig` is undefined.
 *
 * @throws {Error} when no usable configuration is found (client-node would otherwise silently
 *   fall back to http://localhost:8080).
 */
export function loadKubeConfig(kubeconfig: string | undefined, context?: string): k8s.KubeConfig {
  const kc = new ForgeKubeConfig();
  if (kubeconfig !== undefined) {
    kc.loadFromFile(kubeconfig);
    if (context !== undefined) {
      if (kc.getContextObject(context) === null) {
        throw new Error(
          `Cannot configure the Kubernetes client: ${kubeconfig} has no context ${
            JSON.stringify(context)
          }`,
        );
      }
      kc.setCurrentContext(context);
    }
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

type CreateDispatcher = (cluster: k8s.Cluster | null, agentOptions: unknown) => unknown;

/**
 * client-node's KubeConfig with two fixes for a long-running sidecar under Deno:
 * - HTTP/1.1 only (`allowH2: false`): under Deno 2.9.6 an HTTP/2 GOAWAY from an API server
 *   that stops or restarts can crash the whole process in nghttp2;
 * - one connection pool per set of connection options, reused: client-node 2.0.1 builds a new
 *   undici Agent (a new TLS connection) for every request and never closes the old ones.
 */
export class ForgeKubeConfig extends k8s.KubeConfig {
  constructor() {
    super();
    // createDispatcher is private in client-node's types; wrap it on the instance.
    const self = this as unknown as { createDispatcher: CreateDispatcher };
    const create = self.createDispatcher.bind(this);
    const pools = new Map<string, unknown>();
    self.createDispatcher = (cluster, agentOptions) => {
      const key = JSON.stringify([
        cluster?.server,
        this.createDispatcherOptions(cluster, agentOptions as never),
      ]);
      if (!pools.has(key)) pools.set(key, create(cluster, agentOptions));
      return pools.get(key);
    };
  }

  override createDispatcherOptions(
    cluster: k8s.Cluster | null,
    agentOptions: Parameters<k8s.KubeConfig["createDispatcherOptions"]>[1],
  ): k8s.DispatcherOptions {
    const options = super.createDispatcherOptions(cluster, agentOptions);
    if (options.type !== "agent" && options.type !== "proxy") return options;
    return {
      ...options,
      connect: { ...options.connect, allowH2: false } as typeof options.connect,
    };
  }
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

/** How long a watch that ended or failed waits before it starts again. */
const REWATCH_MS = 1000;

/**
 * Watches the one object `name` in the collection at `path` (with `fieldSelector=metadata.name`,
 * which an RBAC rule limited by resourceNames allows), until `signal` aborts: `onEvent` gets each
 * ADDED or MODIFIED object, and `undefined` when it is DELETED. A watch that ends or fails starts
 * again `rewatchMs` later (default a second; `count` is called for each start). A watch is an
 * accelerator: every caller also polls, since a watch can go quiet without failing.
 */
export function watchOne<T>(opts: {
  kc: k8s.KubeConfig;
  path: string;
  name: string;
  onEvent: (phase: "ADDED" | "MODIFIED" | "DELETED", obj: T | undefined) => void;
  signal: AbortSignal;
  count: () => void;
  rewatchMs?: number;
}): void {
  const { kc, path, name, onEvent, signal, count, rewatchMs = REWATCH_MS } = opts;
  const watcher = new k8s.Watch(kc);
  let controller: AbortController | undefined;
  signal.addEventListener("abort", () => controller?.abort(), { once: true });
  const loop = async (): Promise<void> => {
    while (!signal.aborted) {
      count();
      const done = Promise.withResolvers<void>();
      try {
        controller = await watcher.watch(
          path,
          { fieldSelector: `metadata.name=${name}`, allowWatchBookmarks: false },
          (phase: string, obj: T) => {
            if (phase === "DELETED") onEvent(phase, undefined);
            else if (phase === "ADDED" || phase === "MODIFIED") onEvent(phase, obj);
          },
          () => done.resolve(),
        );
        if (signal.aborted) controller.abort();
        await done.promise;
      } catch {
        // Started again below; the caller's polls cover the gap.
      }
      if (!signal.aborted) await sleep(systemClock, rewatchMs, signal);
    }
  };
  void loop();
}
