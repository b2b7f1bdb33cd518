/**
 * The sidecar as it runs in a pod: no KUBECONFIG, the API server from KUBERNETES_SERVICE_HOST and
 * _PORT, and the service-account token and CA at /var/run/secrets/kubernetes.io/serviceaccount
 * (shown inside the simulated pod's own mount namespace). This is the path the container image
 * takes; the other integration tests use a kubeconfig.
 */

import assert from "node:assert/strict";
import { KubeConfig } from "@kubernetes/client-node";
import { SERVICE_ACCOUNT_DIR } from "../../lib/core/sandbox_grants.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { exists } from "../support/fs.ts";
import { startPod } from "../support/pod.ts";
import { FAST_TIMING, installForgeManager } from "../support/replicas.ts";
import { forgersNow } from "../support/scenario.ts";
import { waitUntil } from "../support/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "in a pod, the sidecar reaches the API server with its service account and forges",
  opts,
  async () => {
    const cp = await sharedControlPlane();
    const namespace = "in-cluster";
    const kubeconfig = await installForgeManager(cp, namespace);
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const token = kc.getCurrentUser()?.token;
    assert.ok(token, "the minted identity has a token");
    const root = await Deno.makeTempDir({ prefix: "fm-in-cluster-" });
    try {
      await using pod = await startPod({
        name: "producer-0",
        dir: `${root}/producer-0`,
        env: {
          NAMESPACE: namespace,
          KUBERNETES_SERVICE_HOST: cp.host,
          KUBERNETES_SERVICE_PORT: String(cp.port),
          ...FAST_TIMING,
        },
        serviceAccount: { token, ca: await Deno.readTextFile(cp.caFile), namespace },
      });
      await waitUntil(
        "the in-cluster sidecar to forge",
        async () => (await forgersNow([pod])).includes("producer-0") ? true : undefined,
        30_000,
      );
      const log = await Deno.readTextFile(pod.sidecarLog);
      const grants = log.split("\n").filter((l) => l.includes("starting the sandboxed worker"))
        .map((l) => JSON.parse(l) as { read: string[]; net: string[] })[0]!;
      assert.ok(grants.read.includes(SERVICE_ACCOUNT_DIR));
      assert.ok(grants.net.includes(`${cp.host}:${cp.port}`));
      // Nothing was written at the in-cluster path on this machine itself.
      assert.equal(
        await exists(`${SERVICE_ACCOUNT_DIR}/token`),
        false,
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
);
