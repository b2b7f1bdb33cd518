/**
 * Building client-node's API objects, and per-request options (timeouts, content types), over
 * the transport chosen by KUBE_TRANSPORT: Deno's `fetch` (lib/kube/deno_transport.ts, the
 * default) or client-node's own undici stack.
 * Needs (inside the worker): read of the kubeconfig or service-account files, `sys: ["uid"]`,
 * unscoped `env`, and net to the API server.
 *
 * @module
 */

import diagnostics from "node:diagnostics_channel";
import * as k8s from "@kubernetes/client-node";
import { sleep, systemClock } from "../base/clock.ts";
import { VERSION } from "../base/version.ts";
import type { KubeTransport } from "../core/kube_transport.ts";
import {
  denoClientOptions,
  DenoClients,
  DenoHttpLibrary,
  WATCH_IDLE_MS,
  watchOnce,
} from "./deno_transport.ts";

/**
 * Loads a kubeconfig file, or the in-cluster service account when `kubeconfig` is undefined;
 * `context` picks a context of the file, `transport` how requests travel (default `deno`).
 *
 * @throws {Error} when no usable configuration is found (client-node would otherwise silently
 *   fall back to http://localhost:8080).
 */
export function loadKubeConfig(
  kubeconfig: string | undefined,
  opts: { context?: string; transport?: KubeTransport } = {},
): ForgeKubeConfig {
  const { context, transport = "deno" } = opts;
  const kc = new ForgeKubeConfig(transport);
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

/** The User-Agent of the API requests over Deno's fetch (audit logs name the sidecar). */
const USER_AGENT = `forge-manager/${VERSION} (kubernetes-client-javascript)`;

/**
 * client-node's KubeConfig for a long-running sidecar under Deno. With transport `deno` (the
 * default) every API object it makes and every {@linkcode watchOne} sends its requests through
 * Deno's `fetch` (lib/kube/deno_transport.ts), with the TLS material and headers client-node's
 * own authentication computes for each request; no undici Agent is ever built.
 *
 * With transport `undici` it is client-node's own stack with two fixes (and a third in
 * {@linkcode watchOne}: a silent watch is started again):
 * - HTTP/1.1 only (`allowH2: false`): under Deno 2.9.6 an HTTP/2 GOAWAY from an API server
 *   that stops or restarts can crash the whole process in nghttp2 (Deno's node:http2);
 * - one connection pool per set of connection options, reused: client-node 2.0.1 builds a new
 *   undici Agent (a new TLS connection) for every request and never closes the old ones.
 */
export class ForgeKubeConfig extends k8s.KubeConfig {
  /** How requests travel. */
  readonly transport: KubeTransport;
  readonly #http = new DenoHttpLibrary();
  readonly #clients = new DenoClients();

  constructor(transport: KubeTransport = "deno") {
    super();
    this.transport = transport;
    // createDispatcher is private in client-node's types; replace it on the instance. Its
    // caller, applySecurityAuthentication, puts what it returns on the request.
    const self = this as unknown as { createDispatcher: CreateDispatcher };
    if (transport === "deno") {
      self.createDispatcher = (cluster, agentOptions) =>
        this.#clients.get(
          denoClientOptions(
            cluster?.server ?? "",
            this.createDispatcherOptions(cluster, agentOptions as never),
          ),
        );
      return;
    }
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

  /** client-node's `makeApiClient`, with Deno's fetch as the HTTP library for transport `deno`. */
  override makeApiClient<T extends k8s.ApiType>(apiClientType: k8s.ApiConstructor<T>): T {
    if (this.transport === "undici") return super.makeApiClient(apiClientType);
    const cluster = this.getCurrentCluster();
    if (cluster === null) {
      throw new Error("Cannot make a Kubernetes API client: the kubeconfig has no current cluster");
    }
    return new apiClientType(k8s.createConfiguration({
      baseServer: new k8s.ServerConfiguration(cluster.server, {}),
      authMethods: { default: this },
      httpApi: this.#http,
      middleware: [k8s.setHeaderMiddleware("User-Agent", USER_AGENT)],
    }));
  }

  /**
   * Throws, naming the kubeconfig field, when this transport cannot serve the current context
   * (with `deno`: insecure-skip-tls-verify, tls-server-name, a SOCKS4 proxy), so a sidecar or a
   * command refuses to start instead of failing every request.
   */
  checkTransport(): void {
    if (this.transport !== "deno") return;
    const cluster = this.getCurrentCluster();
    if (cluster === null) return;
    denoClientOptions(
      cluster.server,
      this.createDispatcherOptions(cluster, {
        ...(cluster.skipTLSVerify ? { rejectUnauthorized: false } : {}),
        ...(cluster.tlsServerName !== undefined ? { servername: cluster.tlsServerName } : {}),
      }),
    );
  }

  /** Closes the Deno transport's connection pools (tests; the sidecar keeps its own for life). */
  closeConnections(): void {
    this.#clients.close();
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

/** undici's diagnostics channels for a request it starts and a connection it opens. */
const UNDICI_REQUEST = "undici:request:create";
const UNDICI_CONNECT = "undici:client:beforeConnect";

/**
 * Calls `onRequest` for every HTTP request client-node's undici stack starts in this isolate,
 * and `onConnection` for every connection it opens or tries to (undici's diagnostics channels);
 * returns a function that stops it. With the Deno transport neither is ever called: every timer
 * undici arms (its 500 ms timer wheel, connect, header, body and keep-alive timeouts) belongs to
 * one of those requests or connections, so none exists either.
 */
export function observeUndici(on: { onRequest: () => void; onConnection: () => void }): () => void {
  const request = () => on.onRequest();
  const connection = () => on.onConnection();
  diagnostics.subscribe(UNDICI_REQUEST, request);
  diagnostics.subscribe(UNDICI_CONNECT, connection);
  return () => {
    diagnostics.unsubscribe(UNDICI_REQUEST, request);
    diagnostics.unsubscribe(UNDICI_CONNECT, connection);
  };
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
 * ADDED or MODIFIED object, and `undefined` when it is DELETED. A watch that ends, fails or stays
 * silent for `idleMs` (default 30 s, as client-node's Watch) starts again `rewatchMs` later
 * (default a second; `count` is called for each start). A watch is an accelerator: every caller also polls, since a watch can go quiet without
 * failing. Over Deno's fetch for a {@linkcode ForgeKubeConfig} with transport `deno`, else
 * through client-node's Watch.
 */
export function watchOne<T>(opts: {
  kc: k8s.KubeConfig;
  path: string;
  name: string;
  onEvent: (phase: "ADDED" | "MODIFIED" | "DELETED", obj: T | undefined) => void;
  signal: AbortSignal;
  count: () => void;
  rewatchMs?: number;
  idleMs?: number;
}): void {
  const { kc, path, name, onEvent, signal, count } = opts;
  const { rewatchMs = REWATCH_MS, idleMs = WATCH_IDLE_MS } = opts;
  const query = { fieldSelector: `metadata.name=${name}`, allowWatchBookmarks: "false" };
  const deliver = (phase: string, obj: unknown) => {
    if (phase === "DELETED") onEvent(phase, undefined);
    else if (phase === "ADDED" || phase === "MODIFIED") onEvent(phase, obj as T);
  };
  const once = kc instanceof ForgeKubeConfig && kc.transport === "deno"
    ? () => {
      const url = new URL(`${kc.getCurrentCluster()?.server ?? ""}${path}`);
      url.searchParams.set("watch", "true");
      for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
      return watchOnce({ kc, url, onEvent: deliver, signal, idleMs });
    }
    : clientNodeWatch({ kc, path, query, deliver, signal, idleMs });
  const loop = async (): Promise<void> => {
    while (!signal.aborted) {
      count();
      try {
        await once();
      } catch {
        // Started again below; the caller's polls cover the gap.
      }
      if (!signal.aborted) await sleep(systemClock, rewatchMs, signal);
    }
  };
  void loop();
}

/** One watch through client-node's Watch (undici), resolved when it ends or fails. */
function clientNodeWatch(opts: {
  kc: k8s.KubeConfig;
  path: string;
  query: Record<string, string>;
  deliver: (phase: string, obj: unknown) => void;
  signal: AbortSignal;
  idleMs: number;
}): () => Promise<void> {
  const { kc, path, query, deliver, signal } = opts;
  const watcher = new k8s.Watch(kc);
  // Its inactivity timeout is private in client-node's types, a plain field in its code.
  (watcher as unknown as { requestTimeoutMs: number }).requestTimeoutMs = opts.idleMs;
  let controller: AbortController | undefined;
  signal.addEventListener("abort", () => controller?.abort(), { once: true });
  return async () => {
    const done = Promise.withResolvers<void>();
    controller = await watcher.watch(path, query, deliver, () => done.resolve());
    // Under Deno, client-node's own 30 s inactivity abort never calls `done`: the watch would be
    // dead for good, with no event and no restart (kube_transport_test pins it).
    controller.signal.addEventListener("abort", () => done.resolve(), { once: true });
    if (signal.aborted || controller.signal.aborted) controller.abort();
    await done.promise;
  };
}
