/**
 * The sidecar's transport (client-node's API over Deno's fetch, lib/kube/deno_transport.ts)
 * against the real API server, in each way a sidecar or an operator signs in: TLS verified with
 * the control plane's CA and a bearer token, a client certificate, an exec credential plugin, a
 * token file as the in-cluster service account has it; inside the product's sandbox as well; and a
 * watch that survives the API server's restart. In this isolate undici stays silent throughout.
 */

import assert from "node:assert/strict";
import {
  AuthenticationV1Api,
  CoordinationV1Api,
  CoreV1Api,
  type V1Lease,
  V1MicroTime,
} from "@kubernetes/client-node";
import {
  ForgeKubeConfig,
  loadKubeConfig,
  observeUndici,
  statusOf,
  watchOne,
} from "../../lib/kube/kube_client.ts";
import { sharedControlPlane, startControlPlane } from "../support/control_plane.ts";
import { execPluginKubeconfig } from "../support/exec_plugin.ts";
import { exists } from "../support/fs.ts";
import { startSandboxedKubeOps } from "../support/sandboxed_kube_ops.ts";
import { waitUntil } from "../support/wait.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

const leaseRules = [{
  apiGroups: ["coordination.k8s.io"],
  resources: ["leases"],
  verbs: ["get", "list", "watch", "create", "update"],
}];

let namespaces = 0;
function uniqueNamespace(purpose: string): string {
  return `kube-transport-${purpose}-${Date.now().toString(36)}-${namespaces++}`;
}

/** A ServiceAccount token in a fresh namespace, allowed the Leases there (its kubeconfig). */
async function leaseIdentity(purpose: string) {
  const cp = await sharedControlPlane();
  const namespace = uniqueNamespace(purpose);
  const kubeconfig = await cp.mintIdentity({
    namespace,
    serviceAccount: "forge-manager",
    rules: leaseRules,
  });
  return { cp, namespace, kubeconfig };
}

function lease(name: string, holder: string): V1Lease {
  return {
    metadata: { name },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime: new V1MicroTime() },
  };
}

/**
 * Runs `body` and fails if undici (client-node's own HTTP stack) started a request or a
 * connection in this isolate meanwhile: the requests must all have gone through Deno's fetch.
 */
async function withoutUndici<T>(body: () => Promise<T>): Promise<T> {
  let requests = 0;
  let connections = 0;
  const stop = observeUndici({ onRequest: () => requests++, onConnection: () => connections++ });
  try {
    return await body();
  } finally {
    stop();
    assert.deepEqual({ requests, connections }, { requests: 0, connections: 0 }, "undici was used");
  }
}

/** Creates, reads and replaces a Lease and sees the replace through a watch, with `kc`. */
async function leaseRoundTrip(kc: ForgeKubeConfig, namespace: string): Promise<void> {
  const api = kc.makeApiClient(CoordinationV1Api);
  const created = await api.createNamespacedLease({ namespace, body: lease("forge", "pod-a") });
  const stop = new AbortController();
  const holders: (string | undefined)[] = [];
  const changed = Promise.withResolvers<void>();
  try {
    watchOne<V1Lease>({
      kc,
      path: `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
      name: "forge",
      onEvent: (_phase, obj) => {
        holders.push(obj?.spec?.holderIdentity);
        if (obj?.spec?.holderIdentity === "pod-b") changed.resolve();
      },
      signal: stop.signal,
      count: () => {},
    });
    await waitUntil("the watch's first event", () => holders.length > 0 || undefined, 10_000);
    await api.replaceNamespacedLease({
      name: "forge",
      namespace,
      body: { ...lease("forge", "pod-b"), metadata: created.metadata },
    });
    await changed.promise;
  } finally {
    stop.abort();
  }
  const read = await api.readNamespacedLease({ name: "forge", namespace });
  assert.equal(read.spec?.holderIdentity, "pod-b");
  assert.deepEqual(holders, ["pod-a", "pod-b"]);
}

Deno.test({
  name: "TLS verified with the control plane's CA and a bearer token: reads, writes and a watch",
  ...integration,
  async fn() {
    const { namespace, kubeconfig } = await leaseIdentity("token");
    const kc = loadKubeConfig(kubeconfig);
    try {
      await withoutUndici(() => leaseRoundTrip(kc, namespace));
      // The token is what the server judged: this identity may not read namespaces.
      await assert.rejects(
        kc.makeApiClient(CoreV1Api).readNamespace({ name: namespace }),
        (err: unknown) => statusOf(err) === 403,
      );
    } finally {
      kc.closeConnections();
    }
  },
});

Deno.test({
  name: "a client certificate signs in, over Deno's fetch and inside the product's sandbox",
  ...integration,
  async fn() {
    const cp = await sharedControlPlane();
    assert.ok(
      await exists(cp.clientCertKubeconfig),
      "the control plane made no client certificate (is openssl installed?)",
    );
    const kc = loadKubeConfig(cp.clientCertKubeconfig);
    const user = kc.getCurrentUser();
    assert.ok(user?.certFile !== undefined && user.token === undefined, "a certificate, no token");
    try {
      const review = await withoutUndici(() =>
        kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({
          body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
        })
      );
      assert.equal(review.status?.userInfo?.username, "admin-cert");
      assert.ok(review.status?.userInfo?.groups?.includes("system:masters"));
    } finally {
      kc.closeConnections();
    }
    // In the sandbox: read of the kubeconfig, the CA and the certificate's two files only.
    const namespace = uniqueNamespace("cert");
    await cp.ensureNamespace(namespace);
    await using ops = await startSandboxedKubeOps({
      kubeconfig: cp.clientCertKubeconfig,
      grants: {
        read: [cp.clientCertKubeconfig, cp.caFile, user.certFile, user.keyFile!],
        write: [],
        net: [`${cp.host}:${cp.port}`],
      },
    });
    const created = await ops.call("lease.create", { namespace, name: "cert" });
    assert.equal(created.metadata?.name, "cert");
  },
});

Deno.test({
  name: "an exec credential plugin signs in over Deno's fetch, for requests and watches",
  ...integration,
  async fn() {
    const { namespace, kubeconfig: minted } = await leaseIdentity("exec");
    const dir = await Deno.makeTempDir({ prefix: "kube-transport-exec-" });
    const { kubeconfig, runs } = await execPluginKubeconfig(minted, dir);
    const kc = loadKubeConfig(kubeconfig);
    try {
      await withoutUndici(() => leaseRoundTrip(kc, namespace));
      assert.ok((await Deno.readTextFile(runs)).includes("run"), "the plugin never ran");
    } finally {
      kc.closeConnections();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a token file, as the in-cluster service account has it, is read for each request",
  ...integration,
  async fn() {
    const { cp, namespace, kubeconfig } = await leaseIdentity("file");
    const minted = loadKubeConfig(kubeconfig);
    const dir = await Deno.makeTempDir({ prefix: "kube-transport-file-" });
    /** A KubeConfig as client-node's loadFromCluster makes it, with the token in `file`. */
    const fromFile = async (file: string, token: string) => {
      await Deno.writeTextFile(`${dir}/${file}`, token);
      const kc = new ForgeKubeConfig("deno");
      kc.loadFromOptions({
        clusters: [{ name: "c", server: cp.server, caFile: cp.caFile, skipTLSVerify: false }],
        users: [{
          name: "u",
          authProvider: { name: "tokenFile", config: { tokenFile: `${dir}/${file}` } },
        }],
        contexts: [{ name: "x", cluster: "c", user: "u" }],
        currentContext: "x",
      });
      return kc;
    };
    const good = await fromFile("token", minted.getCurrentUser()!.token!);
    const bad = await fromFile("wrong", "not-a-token");
    try {
      await withoutUndici(async () => {
        const api = good.makeApiClient(CoordinationV1Api);
        await api.createNamespacedLease({ namespace, body: lease("file", "pod-a") });
        await assert.rejects(
          bad.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: "file", namespace }),
          (err: unknown) => statusOf(err) === 401,
        );
      });
    } finally {
      good.closeConnections();
      bad.closeConnections();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a watch over Deno's fetch survives the API server's restart, and requests work after it",
  ...integration,
  async fn() {
    // A private control plane: the shared one cannot be restarted.
    await using cp = await startControlPlane();
    const namespace = "restart";
    await cp.ensureNamespace(namespace);
    const kc = loadKubeConfig(cp.adminKubeconfig);
    const api = kc.makeApiClient(CoordinationV1Api);
    const stop = new AbortController();
    let starts = 0;
    const holders: (string | undefined)[] = [];
    try {
      await withoutUndici(async () => {
        await api.createNamespacedLease({ namespace, body: lease("forge", "before") });
        watchOne<V1Lease>({
          kc,
          path: `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
          name: "forge",
          onEvent: (_phase, obj) => holders.push(obj?.spec?.holderIdentity),
          signal: stop.signal,
          count: () => starts++,
          rewatchMs: 200,
        });
        await waitUntil("the first event", () => holders.includes("before") || undefined, 10_000);
      });
      await cp.stopApiServer();
      await cp.startApiServer();
      await withoutUndici(async () => {
        // The pool's connections died with the server; the next request needs no retry.
        const read = await api.readNamespacedLease({ name: "forge", namespace });
        await api.replaceNamespacedLease({
          name: "forge",
          namespace,
          body: { ...lease("forge", "after"), metadata: read.metadata },
        });
        await waitUntil(
          "the watch to see the change",
          () => holders.includes("after") || undefined,
          30_000,
        );
      });
    } finally {
      stop.abort();
      kc.closeConnections();
    }
    assert.ok(starts >= 2, `the watch was started ${starts} time(s)`);
  },
});

Deno.test({
  name:
    "a watch silent for its idle time is started again and still delivers, over either transport",
  ...integration,
  async fn() {
    // Over undici, client-node's own Watch aborts a silent watch but never says so under Deno:
    // before kube_client.ts listened to that abort, such a watch was dead for good.
    const { cp, namespace } = await leaseIdentity("idle");
    const admin = loadKubeConfig(cp.adminKubeconfig);
    const api = admin.makeApiClient(CoordinationV1Api);
    const created = await api.createNamespacedLease({ namespace, body: lease("quiet", "pod-a") });
    const stop = new AbortController();
    const seen = { undici: [] as string[], deno: [] as string[] };
    const starts = { undici: 0, deno: 0 };
    const clients: ForgeKubeConfig[] = [];
    try {
      for (const transport of ["undici", "deno"] as const) {
        const kc = loadKubeConfig(cp.adminKubeconfig, { transport });
        clients.push(kc);
        watchOne<V1Lease>({
          kc,
          path: `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
          name: "quiet",
          onEvent: (_phase, obj) => seen[transport].push(obj?.spec?.holderIdentity ?? "-"),
          signal: stop.signal,
          count: () => starts[transport]++,
          rewatchMs: 100,
          idleMs: 1000,
        });
      }
      await waitUntil(
        "both watches to be started again after a silence",
        () => starts.undici >= 2 && starts.deno >= 2 || undefined,
        10_000,
      );
      await api.replaceNamespacedLease({
        name: "quiet",
        namespace,
        body: { ...lease("quiet", "pod-b"), metadata: created.metadata },
      });
      await waitUntil(
        "both watches to see the change",
        () => seen.undici.includes("pod-b") && seen.deno.includes("pod-b") || undefined,
        10_000,
      );
    } finally {
      stop.abort();
      for (const kc of [admin, ...clients]) kc.closeConnections();
    }
  },
});
