/**
 * Runs @kubernetes/client-node operations, through the sidecar's own client and transport, inside a
 * Worker that holds only the product's sandbox permissions ({@linkcode sandboxPermissions} from
 * lib/core/sandbox.ts), the way forge-manager runs its Kubernetes client. The operations are in tests/support/kube_ops_worker.ts.
 *
 * ```ts
 * await using ops = await startSandboxedKubeOps({ kubeconfig, grants: { read: [kubeconfig, ca],
 *   write: [], net: ["127.0.0.1:6443"] } });
 * const lease = await ops.call("lease.read", { namespace: "cardano", name: "forge" });
 * ```
 *
 * Needs the `worker-options` unstable feature (deno.json) and, in the parent, at least the
 * permissions it grants.
 *
 * @module
 */
import type { KubeTransport } from "../../lib/core/kube_transport.ts";
import { type SandboxGrants, sandboxPermissions } from "../../lib/core/sandbox.ts";
import type {
  KubeOp,
  KubeOpsFailure,
  KubeOpsReply,
  KubeOpsRequest,
  KubeOpsRequests,
  KubeOpsResults,
} from "./kube_ops_worker.ts";

export type { KubeOpsRequests, KubeOpsResults } from "./kube_ops_worker.ts";

/** An operation that failed inside the worker; `code` is the HTTP status of an ApiException. */
export class KubeOpsError extends Error {
  /** Name of the original error: "ApiException", "NotCapable", ... */
  readonly errorName: string;
  readonly code: number | undefined;
  /** Raw response body of an ApiException. */
  readonly body: string | undefined;

  constructor(op: string, failure: KubeOpsFailure) {
    super(`${op} failed in the sandboxed worker: ${failure.name}: ${failure.message}`);
    this.name = "KubeOpsError";
    this.errorName = failure.name;
    this.code = failure.code;
    this.body = failure.body;
  }
}

/** A sandboxed worker that answers {@linkcode KubeOpsRequests}. Disposing it terminates it. */
export interface SandboxedKubeOps extends AsyncDisposable {
  call<K extends KubeOp>(op: K, args: KubeOpsRequests[K]): Promise<KubeOpsResults[K]>;
  terminate(): void;
}

/**
 * Starts the worker with `sandboxPermissions(grants)` and loads `kubeconfig` in it.
 * The grants must include the kubeconfig, the CA file it names and the API server's host:port.
 */
export async function startSandboxedKubeOps(
  opts: { kubeconfig: string; grants: SandboxGrants; transport?: KubeTransport },
): Promise<SandboxedKubeOps> {
  const worker = new Worker(new URL("./kube_ops_worker.ts", import.meta.url).href, {
    type: "module",
    deno: { permissions: sandboxPermissions(opts.grants) },
  });
  const pending = new Map<
    number,
    { op: string; resolve: (value: unknown) => void; reject: (err: Error) => void }
  >();
  let nextId = 1;
  let terminated = false;
  const failAll = (err: Error) => {
    for (const waiter of pending.values()) waiter.reject(err);
    pending.clear();
  };
  worker.onmessage = (event: MessageEvent<KubeOpsReply>) => {
    const reply = event.data;
    const waiter = pending.get(reply.id);
    if (waiter === undefined) return;
    pending.delete(reply.id);
    if (reply.ok) waiter.resolve(reply.value);
    else waiter.reject(new KubeOpsError(waiter.op, reply.error));
  };
  worker.onerror = (event: ErrorEvent) => {
    event.preventDefault();
    failAll(new Error(`Cannot run the sandboxed kube-ops worker: ${event.message}`));
  };
  const ops: SandboxedKubeOps = {
    call<K extends KubeOp>(op: K, args: KubeOpsRequests[K]): Promise<KubeOpsResults[K]> {
      if (terminated) return Promise.reject(new Error(`Cannot run ${op}: worker terminated`));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { op, resolve: resolve as (value: unknown) => void, reject });
        const request: KubeOpsRequest<K> = { id, op, args };
        worker.postMessage(request);
      });
    },
    terminate() {
      if (terminated) return;
      terminated = true;
      worker.terminate();
      failAll(new Error("the sandboxed kube-ops worker was terminated"));
    },
    [Symbol.asyncDispose]() {
      ops.terminate();
      return Promise.resolve();
    },
  };
  try {
    await ops.call("init", {
      kubeconfig: opts.kubeconfig,
      ...(opts.transport !== undefined ? { transport: opts.transport } : {}),
    });
  } catch (err) {
    ops.terminate();
    throw err;
  }
  return ops;
}
