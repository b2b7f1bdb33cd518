/**
 * lib/kube/kube_client.ts against the real control plane: the sidecar's KubeConfig speaks HTTP/1.1
 * and reuses one connection; per-request timeouts abort; helpers read what they should.
 */

import assert from "node:assert/strict";
import diagnostics from "node:diagnostics_channel";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import {
  apiServerHostPort,
  loadKubeConfig,
  requestOptions,
  statusOf,
} from "../../lib/kube/kube_client.ts";
import { sharedControlPlane } from "../support/control_plane.ts";

const integration = { sanitizeOps: false, sanitizeResources: false };

Deno.test({
  name: "the sidecar's client speaks HTTP/1.1 and reuses its connections across requests",
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
      const core = loadKubeConfig(cp.adminKubeconfig).makeApiClient(CoreV1Api);
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
