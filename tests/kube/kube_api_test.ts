/**
 * The Kubernetes API facts forge-manager relies on, checked against a real kube-apiserver with
 * the sidecar's own client (client-node over Deno's fetch, lib/kube/kube_client.ts) running inside
 * a Worker that holds only the product's sandbox permissions (lib/core/sandbox.ts). The last two
 * tests pin what plain client-node does over its own undici stack (KUBE_TRANSPORT=undici's fixes).
 */
import assert from "node:assert/strict";
import diagnostics from "node:diagnostics_channel";
import { CoreV1Api, KubeConfig, type V1PolicyRule } from "@kubernetes/client-node";
import { Http1KubeConfig } from "../support/_kube_admin.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { execPluginKubeconfig } from "../support/exec_plugin.ts";
import {
  KubeOpsError,
  type SandboxedKubeOps,
  startSandboxedKubeOps,
} from "../support/sandboxed_kube_ops.ts";

// client-node keeps HTTP connections open in the test isolate (admin calls) and the control
// plane is a set of child processes shared by all test files: the sanitizers cannot apply.
const integration = { sanitizeResources: false, sanitizeOps: false };

const leaseRules: V1PolicyRule[] = [{
  apiGroups: ["coordination.k8s.io"],
  resources: ["leases"],
  verbs: ["get", "list", "create", "update"],
}];

let namespaces = 0;
function uniqueNamespace(purpose: string): string {
  return `kube-api-${purpose}-${Date.now().toString(36)}-${namespaces++}`;
}

/** Mints an identity in a fresh namespace and starts a sandboxed worker with just its grants. */
async function sandboxedIdentity(
  purpose: string,
  rules: V1PolicyRule[],
): Promise<{ namespace: string; kubeconfig: string; ops: SandboxedKubeOps }> {
  const cp = await sharedControlPlane();
  const namespace = uniqueNamespace(purpose);
  const kubeconfig = await cp.mintIdentity({ namespace, serviceAccount: "forge-manager", rules });
  const ops = await startSandboxedKubeOps({
    kubeconfig,
    grants: { read: [kubeconfig, cp.caFile], write: [], net: [`${cp.host}:${cp.port}`] },
  });
  return { namespace, kubeconfig, ops };
}

/** Runs `promise`, expecting it to fail with a {@linkcode KubeOpsError}; returns that error. */
async function failure(promise: Promise<unknown>): Promise<KubeOpsError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof KubeOpsError, `expected a KubeOpsError, got ${err}`);
    return err;
  }
  assert.fail("expected the operation to fail, it succeeded");
}

Deno.test({
  name: "creating a Lease works",
  ...integration,
  async fn() {
    const { namespace, ops } = await sandboxedIdentity("create", leaseRules);
    await using _ = ops;
    const now = new Date().toISOString();
    const created = await ops.call("lease.create", {
      namespace,
      name: "forge",
      holderIdentity: "pod-a_1",
      leaseDurationSeconds: 15,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: 0,
    });
    assert.equal(created.metadata?.name, "forge");
    assert.match(created.metadata?.resourceVersion ?? "", /^\d+$/);
    assert.match(created.metadata?.uid ?? "", /^[0-9a-f-]{36}$/);
    assert.equal(created.spec?.holderIdentity, "pod-a_1");
    assert.equal(created.spec?.leaseDurationSeconds, 15);

    const read = await ops.call("lease.read", { namespace, name: "forge" });
    assert.equal(read.metadata?.resourceVersion, created.metadata?.resourceVersion);
    assert.equal(read.spec?.holderIdentity, "pod-a_1");
  },
});

Deno.test({
  name: "a replace with a stale resourceVersion gets 409",
  ...integration,
  async fn() {
    const { namespace, ops } = await sandboxedIdentity("conflict", leaseRules);
    await using _ = ops;
    const base = { namespace, name: "forge", leaseDurationSeconds: 15 };
    const created = await ops.call("lease.create", { ...base, holderIdentity: "pod-a" });
    const stale = created.metadata?.resourceVersion;

    const renewed = await ops.call("lease.replace", {
      ...base,
      holderIdentity: "pod-a",
      renewTime: new Date().toISOString(),
      resourceVersion: stale,
    });
    assert.notEqual(renewed.metadata?.resourceVersion, stale);

    const lost = await failure(ops.call("lease.replace", {
      ...base,
      holderIdentity: "pod-b",
      resourceVersion: stale,
    }));
    assert.equal(lost.code, 409);
    assert.match(lost.body ?? "", /"reason":\s*"Conflict"/);
    const after = await ops.call("lease.read", { namespace, name: "forge" });
    assert.equal(after.spec?.holderIdentity, "pod-a", "the losing write changed nothing");
  },
});

Deno.test({
  name: "a replace without a resourceVersion is rejected, so every write is guarded",
  ...integration,
  async fn() {
    const { namespace, ops } = await sandboxedIdentity("unconditional", leaseRules);
    await using _ = ops;
    await ops.call("lease.create", { namespace, name: "forge", holderIdentity: "pod-a" });
    const rejected = await failure(
      ops.call("lease.replace", { namespace, name: "forge", holderIdentity: "pod-b" }),
    );
    assert.equal(rejected.code, 422);
    assert.match(rejected.body ?? "", /resourceVersion/);
  },
});

Deno.test({
  name: "a renewTime written as V1MicroTime round-trips with microsecond precision",
  ...integration,
  async fn() {
    const { namespace, ops } = await sandboxedIdentity("microtime", leaseRules);
    await using _ = ops;
    // V1MicroTime is a Date (millisecond precision) serialised with 6 fractional digits.
    const micro = await ops.call("lease.create", {
      namespace,
      name: "micro",
      renewTime: "2025-06-01T12:34:56.789Z",
    });
    // On reads the field is the server's string, despite client-node's V1MicroTime type.
    assert.equal(micro.spec?.renewTime as unknown, "2025-06-01T12:34:56.789000Z");
    const readMicro = await ops.call("lease.read", { namespace, name: "micro" });
    assert.equal(readMicro.spec?.renewTime as unknown, "2025-06-01T12:34:56.789000Z");

    // The server keeps all six digits (a string passes through client-node unchanged).
    await ops.call("lease.create", {
      namespace,
      name: "string",
      renewTime: "2025-06-01T12:34:56.789123Z",
      times: "string",
    });
    const readString = await ops.call("lease.read", { namespace, name: "string" });
    assert.equal(readString.spec?.renewTime as unknown, "2025-06-01T12:34:56.789123Z");

    // The pitfall: TypeScript accepts a plain Date, which serialises with 3 digits; the server
    // parses MicroTime strictly and refuses the whole object.
    const pitfall = await failure(ops.call("lease.create", {
      namespace,
      name: "date",
      renewTime: "2025-06-01T12:34:56.789Z",
      times: "date",
    }));
    assert.equal(pitfall.code, 400);
    assert.match(pitfall.body ?? "", /2025-06-01T12:34:56\.789Z/);
  },
});

const crdGroup = "test.forge-manager.io";
const forgeStatusCrd = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `forgestatuses.${crdGroup}` },
  spec: {
    group: crdGroup,
    scope: "Namespaced",
    names: {
      plural: "forgestatuses",
      singular: "forgestatus",
      kind: "ForgeStatus",
      listKind: "ForgeStatusList",
    },
    versions: [{
      name: "v1alpha1",
      served: true,
      storage: true,
      subresources: { status: {} },
      schema: {
        openAPIV3Schema: {
          type: "object",
          properties: {
            spec: { type: "object", properties: { pool: { type: "string" } } },
            status: {
              type: "object",
              properties: {
                leader: { type: "string" },
                forging: { type: "boolean" },
                observedTransitions: { type: "integer" },
              },
            },
          },
        },
      },
    }],
  },
};

Deno.test({
  name: "a merge-patch of a custom resource's /status subresource works",
  ...integration,
  async fn() {
    const cp = await sharedControlPlane();
    await cp.apply(forgeStatusCrd); // waits until Established
    const { namespace, ops } = await sandboxedIdentity("status", [{
      apiGroups: [crdGroup],
      resources: ["forgestatuses", "forgestatuses/status"],
      verbs: ["get", "create", "patch"],
    }]);
    await using _ = ops;
    const ref = { group: crdGroup, version: "v1alpha1", namespace, plural: "forgestatuses" };
    await ops.call("custom.create", {
      ...ref,
      body: {
        apiVersion: `${crdGroup}/v1alpha1`,
        kind: "ForgeStatus",
        metadata: { name: "pool" },
        spec: { pool: "POOL1" },
      },
    });

    const patched = await ops.call("custom.patchStatus", {
      ...ref,
      name: "pool",
      patch: { status: { leader: "pod-a", forging: true }, spec: { pool: "IGNORED" } },
    });
    assert.deepEqual(patched.status, { leader: "pod-a", forging: true });

    // A second merge patch changes only the fields it names.
    await ops.call("custom.patchStatus", {
      ...ref,
      name: "pool",
      patch: { status: { forging: false, observedTransitions: 1 } },
    });
    const read = await ops.call("custom.get", { ...ref, name: "pool" });
    assert.deepEqual(read.status, { leader: "pod-a", forging: false, observedTransitions: 1 });
    assert.deepEqual(read.spec, { pool: "POOL1" }, "/status ignores changes to spec");
  },
});

Deno.test({
  name: "an identity bound only to a namespaced Role gets 403 outside it and succeeds inside",
  ...integration,
  async fn() {
    const cp = await sharedControlPlane();
    const { namespace, ops } = await sandboxedIdentity("rbac", leaseRules);
    await using _ = ops;
    const other = uniqueNamespace("rbac-other");
    await cp.ensureNamespace(other);

    await ops.call("lease.create", { namespace, name: "forge", holderIdentity: "pod-a" });
    assert.deepEqual(await ops.call("lease.list", { namespace }), { names: ["forge"] });

    const list = await failure(ops.call("lease.list", { namespace: other }));
    assert.equal(list.code, 403);
    assert.match(list.body ?? "", /system:serviceaccount:kube-api-rbac-[^:]+:forge-manager/);
    const create = await failure(
      ops.call("lease.create", { namespace: other, name: "forge", holderIdentity: "pod-a" }),
    );
    assert.equal(create.code, 403);
  },
});

Deno.test({
  name: "the sandboxed worker cannot read outside its grants, connect elsewhere or kill",
  ...integration,
  async fn() {
    const cp = await sharedControlPlane();
    const { kubeconfig, ops } = await sandboxedIdentity("boundary", leaseRules);
    await using _ = ops;
    const elsewhere = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const victim = new Deno.Command("sleep", { args: ["30"], stdin: "null" }).spawn();
    try {
      // What it is granted works...
      assert.ok((await ops.call("probe.read", { path: kubeconfig })).bytes > 0);
      await ops.call("probe.connect", { hostname: cp.host, port: cp.port });

      // ...and nothing else does.
      const read = await failure(ops.call("probe.read", { path: cp.adminKubeconfig }));
      assert.equal(read.errorName, "NotCapable");
      assert.match(read.message, /read access/);

      const port = (elsewhere.addr as Deno.NetAddr).port;
      const connect = await failure(ops.call("probe.connect", { hostname: "127.0.0.1", port }));
      assert.equal(connect.errorName, "NotCapable");
      assert.match(connect.message, /net access/);

      const kill = await failure(ops.call("probe.kill", { pid: victim.pid }));
      assert.equal(kill.errorName, "NotCapable");
      assert.match(kill.message, /run access/);
    } finally {
      elsewhere.close();
      victim.kill("SIGKILL");
      const status = await victim.status;
      assert.equal(status.signal, "SIGKILL", "the victim was still alive when the test ended");
    }
  },
});

Deno.test({
  name:
    "a kubeconfig's exec credential plugin runs in the sandbox, which still cannot kill or run anything else",
  ...integration,
  async fn() {
    const cp = await sharedControlPlane();
    const namespace = uniqueNamespace("exec");
    const minted = await cp.mintIdentity({
      namespace,
      serviceAccount: "forge-manager",
      rules: leaseRules,
    });
    const dir = await Deno.makeTempDir({ prefix: "forge-exec-" });
    const { kubeconfig, plugin, runs } = await execPluginKubeconfig(minted, dir);
    const victim = new Deno.Command("sleep", { args: ["30"], stdin: "null" }).spawn();
    try {
      await using ops = await startSandboxedKubeOps({
        kubeconfig,
        grants: {
          read: [kubeconfig, cp.caFile],
          write: [],
          net: [`${cp.host}:${cp.port}`],
          run: [plugin],
        },
      });
      // Authenticated through the plugin (the kubeconfig holds no credential of its own).
      await ops.call("lease.create", { namespace, name: "exec" });
      assert.ok((await Deno.readTextFile(runs)).includes("run"), "the plugin never ran");
      const kill = await failure(ops.call("probe.kill", { pid: victim.pid }));
      assert.equal(kill.errorName, "NotCapable", "a scoped run grant allowed a signal");
    } finally {
      victim.kill("SIGKILL");
      await victim.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "client-node speaks HTTP/2 to the API server unless told not to",
  ...integration,
  async fn() {
    // Why it matters: under Deno 2.9.6 a GOAWAY on an HTTP/2 connection (an API server that
    // stops or restarts) can crash the whole process in nghttp2 (SIGSEGV or an assertion).
    const cp = await sharedControlPlane();
    const protocols: string[] = [];
    const onConnected = (message: unknown) => {
      const socket = (message as { socket?: { alpnProtocol?: string } }).socket;
      protocols.push(String(socket?.alpnProtocol));
    };
    diagnostics.subscribe("undici:client:connected", onConnected);
    try {
      for (const config of [new KubeConfig(), new Http1KubeConfig()]) {
        config.loadFromFile(cp.adminKubeconfig);
        await config.makeApiClient(CoreV1Api).listNamespace();
      }
    } finally {
      diagnostics.unsubscribe("undici:client:connected", onConnected);
    }
    assert.deepEqual(protocols, ["h2", "http/1.1"]);
  },
});

Deno.test({
  name: "client-node opens a new TLS connection for every request",
  ...integration,
  async fn() {
    // client-node 2.0.1 builds a new undici Agent per request (applySecurityAuthentication) and
    // never closes the old one: every lease renew pays a TLS handshake, and idle sockets linger
    // until undici's keep-alive timeout. If this starts failing, client-node reuses connections.
    const cp = await sharedControlPlane();
    let connections = 0;
    const onConnected = () => connections++;
    diagnostics.subscribe("undici:client:connected", onConnected);
    try {
      const core = cp.admin().makeApiClient(CoreV1Api);
      for (let i = 0; i < 3; i++) await core.readNamespace({ name: "default" });
    } finally {
      diagnostics.unsubscribe("undici:client:connected", onConnected);
    }
    assert.equal(connections, 3);
  },
});
