/**
 * What the core grants the sandboxed worker: exactly the configured paths and endpoints, and
 * nothing that would let it run programs, signal, load native code or fetch remote code.
 * (tests/kube/kube_api_test.ts proves that such a worker is really refused everything else.)
 */

import assert from "node:assert/strict";
import { parseConfig } from "../../lib/core/config.ts";
import { inClusterApi, sandboxGrants, SERVICE_ACCOUNT_DIR } from "../../lib/core/sandbox_grants.ts";
import { sandboxPermissions } from "../../lib/core/sandbox.ts";
import { commandPermissions } from "../../lib/core/cli/command.ts";

Deno.test("the worker may read only the sources, the target folder, the socket and the API credentials", () => {
  const config = parseConfig({ POD_NAME: "forge-0", POD_UID: "uid-0" });
  const grants = sandboxGrants(config, "10.0.0.1:443", [SERVICE_ACCOUNT_DIR]);
  assert.deepEqual(grants.read, [
    "/secrets/kes.skey",
    "/secrets/vrf.skey",
    "/secrets/node.cert",
    "/ipc",
    "/ipc/node.socket",
    SERVICE_ACCOUNT_DIR,
  ]);
  assert.deepEqual(grants.write, ["/ipc", "/ipc/node.socket"]);
  assert.deepEqual(grants.net, [
    "10.0.0.1:443",
    "0.0.0.0:8000",
    "unix:/ipc/node.socket",
    "127.0.0.1:12798",
  ]);
});

Deno.test("with a KES agent the worker may read no KES key and never reach the agent", () => {
  // The agent serves its key to whoever connects: the sidecar has no need of it.
  const config = parseConfig({
    POD_NAME: "forge-0",
    POD_UID: "uid-0",
    KES_AGENT_SOCKET: "/kes-agent/service.socket",
  });
  const grants = sandboxGrants(config, "10.0.0.1:443", [SERVICE_ACCOUNT_DIR]);
  assert.deepEqual(grants.read, [
    "/secrets/vrf.skey",
    "/secrets/node.cert",
    "/ipc",
    "/ipc/node.socket",
    SERVICE_ACCOUNT_DIR,
  ]);
  for (const grant of [...grants.read, ...grants.write, ...grants.net]) {
    assert.ok(!grant.includes("kes"), `granted ${grant}`);
  }
});

Deno.test("a configured genesis file is readable and the node metrics endpoint reachable", () => {
  const config = parseConfig({
    POD_NAME: "forge-0",
    POD_UID: "uid-0",
    SHELLEY_GENESIS_FILE: "/config/shelley-genesis.json",
    NODE_METRICS_URL: "http://127.0.0.1:9101/metrics",
  });
  const grants = sandboxGrants(config, "10.0.0.1:443", [SERVICE_ACCOUNT_DIR]);
  assert.ok(grants.read.includes("/config/shelley-genesis.json"));
  assert.ok(grants.net.includes("127.0.0.1:9101"));
  assert.ok(!grants.net.includes("127.0.0.1:12798"));
});

Deno.test("a leader schedule file is readable, and only that file, never writable", () => {
  const config = parseConfig({
    POD_NAME: "forge-0",
    POD_UID: "uid-0",
    LEADER_SCHEDULE_FILE: "/schedule/slots.json",
  });
  const grants = sandboxGrants(config, "10.0.0.1:443", [SERVICE_ACCOUNT_DIR]);
  assert.ok(grants.read.includes("/schedule/slots.json"));
  assert.ok(!grants.read.includes("/schedule"));
  assert.ok(!grants.write.some((w) => w.startsWith("/schedule")));
  const without = sandboxGrants(parseConfig({ POD_NAME: "forge-0", POD_UID: "uid-0" }), "h:1", []);
  assert.ok(!without.read.some((r) => r.startsWith("/schedule")));
});

Deno.test("the worker's permissions forbid subprocesses, signals, FFI and remote imports", () => {
  const permissions = sandboxPermissions({ read: ["/a", "/a"], write: [], net: ["h:1"] });
  assert.deepEqual(permissions, {
    read: ["/a"],
    write: [],
    net: ["h:1"],
    env: true,
    sys: ["uid"],
    run: false,
    ffi: false,
    import: false,
  });
});

Deno.test("a kubeconfig's exec credential plugin is the one program the worker may run", () => {
  const permissions = sandboxPermissions({
    read: ["/a"],
    write: [],
    net: ["h:1"],
    run: ["/usr/local/bin/aws", "/usr/local/bin/aws"],
  });
  assert.deepEqual(permissions.run, ["/usr/local/bin/aws"]);
  assert.equal(sandboxPermissions({ read: [], write: [], net: [], run: [] }).run, false);
  // The operator commands' worker gets the same, and only for a command that talks to the API.
  const command = commandPermissions({
    read: ["/k"],
    net: ["h:1"],
    kubeClient: true,
    run: ["gke"],
  });
  assert.deepEqual(command.run, ["gke"]);
  assert.equal(commandPermissions({ read: ["/k"] }).run, false);
});

Deno.test("the in-cluster API server comes from the variables Kubernetes sets", () => {
  assert.equal(
    inClusterApi({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }),
    "10.96.0.1:443",
  );
  assert.throws(() => inClusterApi({}), /KUBERNETES_SERVICE_HOST is not set/);
});
