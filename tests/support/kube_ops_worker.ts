/**
 * Worker module for tests: runs @kubernetes/client-node calls through the sidecar's own client
 * (lib/kube/kube_client.ts, and so its transport), and boundary probes, inside a Worker that has
 * only the product's sandbox permissions (lib/core/sandbox.ts). Driven by
 * tests/support/sandboxed_kube_ops.ts; import only its types from here.
 *
 * Protocol: the parent posts `{id, op, args}`; the worker answers `{id, ok: true, value}` or
 * `{id, ok: false, error: {name, message, code?, body?}}`.
 *
 * @module
 */
import {
  ApiException,
  CoordinationV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Lease,
  V1MicroTime,
} from "@kubernetes/client-node";
import type { KubeTransport } from "../../lib/core/kube_transport.ts";
import { loadKubeConfig } from "../../lib/kube/kube_client.ts";

/** How the worker encodes `renewTime`/`acquireTime` before handing the Lease to client-node. */
export type TimeEncoding = "micro" | "date" | "string";

/** A Lease in plain data (it crosses postMessage). Times are ISO strings. */
export interface LeaseInput {
  namespace: string;
  name: string;
  /** Needed by replace: the resourceVersion the caller read. */
  resourceVersion?: string;
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  leaseTransitions?: number;
  acquireTime?: string;
  renewTime?: string;
  /** Default "micro": `new V1MicroTime(time)`, the correct encoding. */
  times?: TimeEncoding;
}

/** Where a namespaced custom resource lives. */
export interface CustomRef {
  group: string;
  version: string;
  namespace: string;
  plural: string;
}

/** The operations and their arguments. */
export interface KubeOpsRequests {
  /** Loads the kubeconfig with the sidecar's client; answers the server URL. */
  "init": { kubeconfig: string; transport?: KubeTransport };
  "lease.create": LeaseInput;
  "lease.replace": LeaseInput;
  "lease.read": { namespace: string; name: string };
  "lease.list": { namespace: string };
  "custom.create": CustomRef & { body: Record<string, unknown> };
  "custom.get": CustomRef & { name: string };
  /** A JSON merge patch of the `/status` subresource. */
  "custom.patchStatus": CustomRef & { name: string; patch: Record<string, unknown> };
  /** Boundary probes: each answers what it got or fails with the permission error. */
  "probe.read": { path: string };
  "probe.connect": { hostname: string; port: number };
  "probe.kill": { pid: number };
}

/** What each operation answers (Lease times come back as strings despite client-node's types). */
export interface KubeOpsResults {
  "init": { server: string };
  "lease.create": V1Lease;
  "lease.replace": V1Lease;
  "lease.read": V1Lease;
  "lease.list": { names: string[] };
  "custom.create": Record<string, unknown>;
  "custom.get": Record<string, unknown>;
  "custom.patchStatus": Record<string, unknown>;
  "probe.read": { bytes: number };
  "probe.connect": { connected: true };
  "probe.kill": { killed: true };
}

/** An operation name. */
export type KubeOp = keyof KubeOpsRequests;

/** A request posted to the worker. */
export interface KubeOpsRequest<K extends KubeOp = KubeOp> {
  id: number;
  op: K;
  args: KubeOpsRequests[K];
}

/** An error as it crosses postMessage. */
export interface KubeOpsFailure {
  name: string;
  message: string;
  /** HTTP status of an ApiException. */
  code?: number;
  /** Raw response body of an ApiException. */
  body?: string;
}

/** A reply posted by the worker. */
export type KubeOpsReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: KubeOpsFailure };

let config: KubeConfig | undefined;

function kube(): KubeConfig {
  if (config === undefined) throw new Error("Cannot call the API: send `init` first");
  return config;
}

function time(value: string | undefined, encoding: TimeEncoding): V1MicroTime | undefined {
  if (value === undefined) return undefined;
  switch (encoding) {
    case "micro":
      return new V1MicroTime(value);
    case "date":
      // The pitfall under test: TypeScript accepts a Date here (V1MicroTime extends Date).
      return new Date(value) as V1MicroTime;
    case "string":
      // Full microsecond precision: client-node passes a string through unchanged.
      return value as unknown as V1MicroTime;
  }
}

function lease(input: LeaseInput): V1Lease {
  const encoding = input.times ?? "micro";
  return {
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    metadata: {
      name: input.name,
      namespace: input.namespace,
      resourceVersion: input.resourceVersion,
    },
    spec: {
      holderIdentity: input.holderIdentity,
      leaseDurationSeconds: input.leaseDurationSeconds,
      leaseTransitions: input.leaseTransitions,
      acquireTime: time(input.acquireTime, encoding),
      renewTime: time(input.renewTime, encoding),
    },
  };
}

const ops: { [K in KubeOp]: (args: KubeOpsRequests[K]) => Promise<KubeOpsResults[K]> } = {
  init({ kubeconfig, transport }) {
    // The sidecar's own client (lib/kube/kube_client.ts), over the transport it ships with.
    const loaded = loadKubeConfig(kubeconfig, { transport: transport ?? "deno" });
    config = loaded;
    return Promise.resolve({ server: loaded.getCurrentCluster()?.server ?? "" });
  },
  "lease.create"(input) {
    const api = kube().makeApiClient(CoordinationV1Api);
    return api.createNamespacedLease({ namespace: input.namespace, body: lease(input) });
  },
  "lease.replace"(input) {
    const api = kube().makeApiClient(CoordinationV1Api);
    return api.replaceNamespacedLease({
      name: input.name,
      namespace: input.namespace,
      body: lease(input),
    });
  },
  "lease.read"({ namespace, name }) {
    return kube().makeApiClient(CoordinationV1Api).readNamespacedLease({ name, namespace });
  },
  async "lease.list"({ namespace }) {
    const list = await kube().makeApiClient(CoordinationV1Api).listNamespacedLease({ namespace });
    return { names: list.items.map((item) => item.metadata?.name ?? "") };
  },
  "custom.create"({ body, ...ref }) {
    return kube().makeApiClient(CustomObjectsApi).createNamespacedCustomObject({ ...ref, body });
  },
  "custom.get"(ref) {
    return kube().makeApiClient(CustomObjectsApi).getNamespacedCustomObject(ref);
  },
  "custom.patchStatus"({ patch, ...ref }) {
    // Without the header client-node sends application/json-patch+json and the server says 400.
    return kube().makeApiClient(CustomObjectsApi).patchNamespacedCustomObjectStatus(
      { ...ref, body: patch },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  },
  async "probe.read"({ path }) {
    return { bytes: (await Deno.readFile(path)).byteLength };
  },
  async "probe.connect"({ hostname, port }) {
    const conn = await Deno.connect({ hostname, port });
    conn.close();
    return { connected: true };
  },
  "probe.kill"({ pid }) {
    Deno.kill(pid, "SIGTERM");
    return Promise.resolve({ killed: true });
  },
};

function failure(err: unknown): KubeOpsFailure {
  if (err instanceof ApiException) {
    return {
      name: "ApiException",
      message: err.message,
      code: err.code,
      body: typeof err.body === "string" ? err.body : JSON.stringify(err.body),
    };
  }
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: "Error", message: String(err) };
}

async function handle(request: KubeOpsRequest): Promise<KubeOpsReply> {
  try {
    const run = ops[request.op] as (args: unknown) => Promise<unknown>;
    if (run === undefined) throw new Error(`Cannot run op ${request.op}: unknown op`);
    // Class instances become plain data when posted; that is all the tests need.
    return { id: request.id, ok: true, value: await run(request.args) };
  } catch (err) {
    return { id: request.id, ok: false, error: failure(err) };
  }
}

const scope = self as unknown as {
  onmessage: ((event: MessageEvent<KubeOpsRequest>) => void) | null;
  postMessage(message: KubeOpsReply): void;
};
scope.onmessage = (event) => {
  handle(event.data).then((reply) => {
    try {
      scope.postMessage(reply);
    } catch (err) { // e.g. a value that cannot be cloned: the caller must not wait forever
      scope.postMessage({ id: reply.id, ok: false, error: failure(err) });
    }
  });
};
