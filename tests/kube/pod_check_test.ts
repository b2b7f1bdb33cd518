/**
 * lib/kube/pod_check.ts against the real API server: NODE_CONTAINER_NAME checked against this pod's
 * own spec at start, through the sidecar's own identity (the shipped fence Role's `get`).
 */

import assert from "node:assert/strict";
import { CoreV1Api } from "@kubernetes/client-node";
import { ConfigError } from "../../lib/core/config.ts";
import { loadKubeConfig } from "../../lib/kube/kube_client.ts";
import { checkNodeContainer } from "../../lib/kube/pod_check.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { exists } from "../support/fs.ts";
import { freePort } from "../support/pod.ts";
import { installForgeManager } from "../support/replicas.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NS = "pod-check-test";
const POD = "cardano-producer-0";
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

async function setup() {
  const cp = await sharedControlPlane();
  await cp.ensureNamespace(NS);
  const core = cp.admin().makeApiClient(CoreV1Api);
  try {
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: POD },
        spec: {
          nodeName: "sim-node",
          initContainers: [{
            name: "forge-manager",
            image: "example.invalid/forge-manager:1",
            restartPolicy: "Always",
          }],
          containers: [
            { name: "cardano-node", image: "example.invalid/node:1" },
            { name: "log-shipper", image: "example.invalid/shipper:1" },
          ],
        },
      },
    });
  } catch {
    // created by an earlier test of this file
  }
  const sidecar = loadKubeConfig(
    await cp.mintIdentity({
      namespace: NS,
      serviceAccount: "forge-manager",
      rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch", "delete"] }],
    }),
  );
  const stranger = loadKubeConfig(
    await cp.mintIdentity({ namespace: NS, serviceAccount: "no-pod-access", rules: [] }),
  );
  return { sidecar, stranger };
}

/** The refusal's one problem (fails the test when the check does not refuse). */
async function refusal(check: Promise<unknown>): Promise<string> {
  try {
    await check;
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    assert.equal(err.problems.length, 1);
    return err.problems[0]!;
  }
  assert.fail("the check accepted the name");
}

Deno.test("the node's container name is found in this pod's spec", opts, async () => {
  const { sidecar } = await setup();
  const requests: string[] = [];
  const check = await checkNodeContainer({
    kc: sidecar,
    namespace: NS,
    pod: POD,
    container: "cardano-node",
    count: (operation) => requests.push(operation),
  });
  assert.deepEqual(check, { checked: true });
  assert.deepEqual(requests, ["pod_get"]);
});

Deno.test(
  "a container name the pod does not have is refused, naming the containers it has",
  opts,
  async () => {
    const { sidecar } = await setup();
    const problem = await refusal(
      checkNodeContainer({ kc: sidecar, namespace: NS, pod: POD, container: "node" }),
    );
    assert.equal(
      problem,
      `NODE_CONTAINER_NAME="node": names no container of pod ${NS}/${POD}; it must name the ` +
        "container that runs cardano-node (its containers: cardano-node, log-shipper; " +
        "init containers: forge-manager)",
    );
  },
);

Deno.test("an init container (the sidecar itself) is refused as the node's", opts, async () => {
  const { sidecar } = await setup();
  const problem = await refusal(
    checkNodeContainer({ kc: sidecar, namespace: NS, pod: POD, container: "forge-manager" }),
  );
  assert.ok(problem.startsWith('NODE_CONTAINER_NAME="forge-manager": is an init container'));
  assert.ok(problem.includes("its containers: cardano-node, log-shipper"), problem);
});

Deno.test(
  "a pod the sidecar may not read leaves the name unchecked, with the reason",
  opts,
  async () => {
    const { stranger, sidecar } = await setup();
    assert.deepEqual(
      await checkNodeContainer({ kc: stranger, namespace: NS, pod: POD, container: "node" }),
      { checked: false, why: `reading pod ${NS}/${POD} was answered with HTTP 403` },
    );
    assert.deepEqual(
      await checkNodeContainer({ kc: sidecar, namespace: NS, pod: "absent-0", container: "node" }),
      { checked: false, why: `reading pod ${NS}/absent-0 was answered with HTTP 404` },
    );
  },
);

Deno.test(
  "the sidecar refuses to start with a node container its pod does not have; the core then " +
    "removes the keys",
  opts,
  async () => {
    const cp = await sharedControlPlane();
    const namespace = "pod-check-main";
    const kubeconfig = await installForgeManager(cp, namespace);
    const core = cp.admin().makeApiClient(CoreV1Api);
    const created = await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: POD },
        spec: {
          nodeName: "sim-node",
          containers: [{ name: "cardano-node", image: "example.invalid/node:1" }],
        },
      },
    });
    const dir = await Deno.makeTempDir({ prefix: "fm-pod-check-" });
    // A key left in place (as after a crash of a leader's sidecar): the core's fail-safe removes it.
    await Deno.writeTextFile(`${dir}/kes.skey`, "stale");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-P=forge-manager", "--no-prompt", `--config=${CONFIG}`, MAIN],
      env: {
        PATH: Deno.env.get("PATH") ?? "",
        HOME: Deno.env.get("HOME") ?? "/root",
        NAMESPACE: namespace,
        POD_NAME: POD,
        POD_UID: created.metadata!.uid!,
        KUBECONFIG: kubeconfig,
        NODE_CONTAINER_NAME: "node",
        NODE_SOCKET: `${dir}/node.socket`,
        TARGET_KES_KEY: `${dir}/kes.skey`,
        TARGET_VRF_KEY: `${dir}/vrf.skey`,
        TARGET_OP_CERT: `${dir}/node.cert`,
        METRICS_HOST: "127.0.0.1",
        METRICS_PORT: String(freePort()),
      },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 1, text);
    assert.ok(
      text.includes(
        `NODE_CONTAINER_NAME=\\"node\\": names no container of pod ${namespace}/${POD}`,
      ),
      text,
    );
    assert.ok(text.includes("its containers: cardano-node"), text);
    assert.equal(await exists(`${dir}/kes.skey`), false, "the core removed the key");
    assert.ok(!text.includes("standing by"), "the loop never ran");
    await Deno.remove(dir, { recursive: true });
  },
);
