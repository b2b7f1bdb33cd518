/**
 * lib/own_pod.ts against the real API server: a Pod being deleted (deletionTimestamp, held here
 * by a finalizer), one of our name with another UID, one running, and one that does not exist.
 */

import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { loadKubeConfig } from "../lib/kube_client.ts";
import { KubeOwnPod } from "../lib/own_pod.ts";
import { sharedControlPlane } from "./support/control_plane.ts";

const NS = "own-pod-test";

Deno.test(
  "our Pod is terminating with a deletionTimestamp; running, absent or another UID's it is not",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const cp = await sharedControlPlane();
    await cp.ensureNamespace(NS);
    const kubeconfig = await cp.mintIdentity({
      namespace: NS,
      serviceAccount: "own-pod",
      rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get"] }],
    });
    const kc = loadKubeConfig(kubeconfig);
    const core = cp.admin().makeApiClient(k8s.CoreV1Api);
    const pod = await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: "p-0", finalizers: ["example.com/hold"] },
        spec: { containers: [{ name: "c", image: "x" }] },
      },
    });
    const uid = pod.metadata!.uid!;
    const own = (name: string, u: string) => new KubeOwnPod({ kc, namespace: NS, name, uid: u });
    assert.equal(await own("p-0", uid).terminating(5000), false, "a running Pod");
    // Another UID is not ours (a copy outside the Pod model using the name): no reason to retire.
    assert.equal(await own("p-0", "another-uid").terminating(5000), false, "another UID");
    assert.equal(await own("p-9", "x").terminating(5000), false, "an absent Pod");
    await core.deleteNamespacedPod({ name: "p-0", namespace: NS });
    assert.equal(await own("p-0", uid).terminating(5000), true, "a Pod being deleted");
    assert.equal(await own("p-0", "another-uid").terminating(5000), false, "not ours, deleted");
    await core.patchNamespacedPod(
      { name: "p-0", namespace: NS, body: { metadata: { finalizers: null } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  },
);
