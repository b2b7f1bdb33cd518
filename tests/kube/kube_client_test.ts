/**
 * lib/kube/kube_client.ts against the real control plane: the sidecar's KubeConfig speaks HTTP/1.1
 * and reuses its connections over either transport; per-request timeouts abort; helpers read what
 * they should. tests/kube/kube_transport_test.ts covers the ways to sign in and the restart.
 */

import assert from "node:assert/strict";
import diagnostics from "node:diagnostics_channel";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import {
  apiServerHostPort,
  loadKubeConfig,
  requestOptions,
  statusOf,
  watchOne,
} from "../../lib/kube/kube_client.ts";
import { type ControlPlane, sharedControlPlane } from "../support/control_plane.ts";
import { TcpProxy } from "../support/tcp_proxy.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

/** A copy of the admin kubeconfig whose server is `server` (same CA and token), in `dir`. */
async function adminVia(cp: ControlPlane, server: string, dir: string): Promise<string> {
  const text = await Deno.readTextFile(cp.adminKubeconfig);
  const path = `${dir}/via.kubeconfig`;
  await Deno.writeTextFile(
    path,
    text.replace(/^(\s*server: ).*$/m, `$1${JSON.stringify(server)}`),
    { mode: 0o600 },
  );
  return path;
}

Deno.test({
  name:
    "over Deno's fetch the sidecar's client offers only HTTP/1.1, where Deno's default offers h2",
  ...integration,
  async fn() {
    const cp = await sharedControlPlane();
    // A TLS listener with the API server's own certificate, offering both protocols: what the
    // client's handshake picks is what it offered.
    const listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: await Deno.readTextFile(`${cp.dir}/pki/apiserver.crt`),
      key: await Deno.readTextFile(`${cp.dir}/pki/apiserver.key`),
      alpnProtocols: ["h2", "http/1.1"],
    });
    const picked: (string | null)[] = [];
    const serving = (async () => {
      for await (const conn of listener) {
        try {
          picked.push((await conn.handshake()).alpnProtocol);
        } catch { /* the client gave up */ }
        conn.close();
      }
    })();
    const dir = await Deno.makeTempDir({ prefix: "kube-client-alpn-" });
    const server = `https://127.0.0.1:${listener.addr.port}`;
    const kc = loadKubeConfig(await adminVia(cp, server, dir));
    try {
      await assert.rejects(kc.makeApiClient(CoreV1Api).readNamespace({ name: "default" }));
      const plain = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(cp.caFile)] });
      await assert.rejects(fetch(server, { client: plain }));
      plain.close();
    } finally {
      kc.closeConnections();
      listener.close();
      await serving;
      await Deno.remove(dir, { recursive: true });
    }
    assert.deepEqual(picked, ["http/1.1", "h2"]);
  },
});

Deno.test({
  name:
    "over Deno's fetch the sidecar's client reuses one connection for its requests and one for a watch",
  ...integration,
  async fn() {
    const cp = await sharedControlPlane();
    await using proxy = TcpProxy.start({ hostname: cp.host, port: cp.port });
    const dir = await Deno.makeTempDir({ prefix: "kube-client-reuse-" });
    const kc = loadKubeConfig(await adminVia(cp, proxy.server, dir));
    const stop = new AbortController();
    try {
      const core = kc.makeApiClient(CoreV1Api);
      for (let i = 0; i < 10; i++) await core.readNamespace({ name: "default" });
      assert.equal(proxy.stats.connections, 1, "one kept-alive connection for ten requests");
      const seen = Promise.withResolvers<void>();
      watchOne({
        kc,
        path: "/api/v1/namespaces",
        name: "default",
        onEvent: () => seen.resolve(),
        signal: stop.signal,
        count: () => {},
      });
      await seen.promise;
      for (let i = 0; i < 5; i++) await core.readNamespace({ name: "default" });
      assert.equal(proxy.stats.connections, 2, "the open watch holds a second connection");
    } finally {
      stop.abort();
      kc.closeConnections();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "with KUBE_TRANSPORT=undici the client speaks HTTP/1.1 and reuses its connections",
  ...integration,
  async fn() {
    const cp = await sharedControlPlane();
    const protocols: string[] = [];
    const onConnected = (message: unknown) => {
      protocols.push(
        String((message as { socket?: { alpnProtocol?: string } }).socket?.alpnProtocol),
      );
    };
    diagnostics.subscribe("undici:client:connected", onConnected);
    try {
      const kc = loadKubeConfig(cp.adminKubeconfig, { transport: "undici" });
      const core = kc.makeApiClient(CoreV1Api);
      for (let i = 0; i < 10; i++) await core.readNamespace({ name: "default" });
    } finally {
      diagnostics.unsubscribe("undici:client:connected", onConnected);
    }
    // Plain client-node opens one TLS connection per request (see kube_api_test.ts); ours keeps
    // a pool (here the first two requests may each open one before keep-alive settles).
    assert.ok(protocols.length >= 1 && protocols.length <= 2, `${protocols.length} connections`);
    assert.ok(protocols.every((p) => p === "http/1.1"), protocols.join(", "));
  },
});

Deno.test({
  name: "a per-request timeout aborts the request",
  ...integration,
  async fn() {
    const cp = await sharedControlPlane();
    const core = loadKubeConfig(cp.adminKubeconfig).makeApiClient(CoreV1Api);
    // A watch-less list with a 1 ms budget cannot complete.
    await assert.rejects(core.listNamespace({}, requestOptions(1)));
    // The same client still works with a sane budget.
    const ns = await core.readNamespace({ name: "default" }, requestOptions(5000));
    assert.equal(ns.metadata?.name, "default");
    await assert.rejects(
      core.readNamespace({ name: "no-such-namespace" }, requestOptions(5000)),
      (err: unknown) => statusOf(err) === 404,
    );
  },
});

Deno.test("apiServerHostPort names the host and port the worker must reach", () => {
  const kc = new KubeConfig();
  for (
    const [server, expected] of [
      ["https://127.0.0.1:6443", "127.0.0.1:6443"],
      ["https://kubernetes.default.svc", "kubernetes.default.svc:443"],
      ["https://[::1]:8443", "::1:8443"],
    ]
  ) {
    kc.loadFromOptions({
      clusters: [{ name: "c", server }],
      users: [{ name: "u", token: "t" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    assert.equal(apiServerHostPort(kc), expected);
  }
});

Deno.test("loadKubeConfig refuses a kubeconfig without a server instead of using localhost:8080", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/empty.kubeconfig`;
    await Deno.writeTextFile(
      path,
      "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    );
    assert.throws(() => loadKubeConfig(path), /Cannot configure the Kubernetes client/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
