/**
 * lib/kube/own_pod.ts against the real API server: a Pod being deleted (deletionTimestamp, held here
 * by a finalizer), one of our name with another UID, one running, and one that does not exist;
 * and the same through the watch.
 */

import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { loadKubeConfig } from "../../lib/kube/kube_client.ts";
import { KubeOwnPod } from "../../lib/kube/own_pod.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { waitUntil } from "../support/wait.ts";

const NS = "own-pod-test";
const opts = { sanitizeOps: false, sanitizeResources: false };

/**
 * An identity with `verbs` on pods, and a Pod `name` held by a finalizer once deleted (released
 * on dispose).
 */
async function heldPod(name: string, verbs: string[]) {
  const cp = await sharedControlPlane();
  await cp.ensureNamespace(NS);
  const kubeconfig = await cp.mintIdentity({
    namespace: NS,
    serviceAccount: `own-pod-${name}`,
    rules: [{ apiGroups: [""], resources: ["pods"], verbs }],
  });
  const core = cp.admin().makeApiClient(k8s.CoreV1Api);
  const pod = await core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name, finalizers: ["example.com/hold"] },
      spec: { containers: [{ name: "c", image: "x" }] },
    },
  });
  return {
    kc: loadKubeConfig(kubeconfig),
    uid: pod.metadata!.uid!,
    delete: () => core.deleteNamespacedPod({ name, namespace: NS }),
    [Symbol.asyncDispose]: async () => {
      await core.patchNamespacedPod(
        { name, namespace: NS, body: { metadata: { finalizers: null } } },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
    },
  };
}

Deno.test(
  "our Pod is terminating with a deletionTimestamp; running, absent or another UID's it is not",
  opts,
  async () => {
    await using pod = await heldPod("p-0", ["get"]);
    const own = (name: string, u: string) =>
      new KubeOwnPod({ kc: pod.kc, namespace: NS, name, uid: u });
    assert.equal(await own("p-0", pod.uid).terminating(5000), false, "a running Pod");
    // Another UID is not ours (a copy outside the Pod model using the name): no reason to retire.
    assert.equal(await own("p-0", "another-uid").terminating(5000), false, "another UID");
    assert.equal(await own("p-9", "x").terminating(5000), false, "an absent Pod");
    await pod.delete();
    const deletion = await own("p-0", pod.uid).terminating(5000);
    assert.ok(deletion !== false, "a Pod being deleted");
    // Its grace period comes with it (a Pod not scheduled to a node gets 0 from the API server).
    assert.equal(typeof deletion.graceSeconds, "number", JSON.stringify(deletion));
    assert.equal(await own("p-0", "another-uid").terminating(5000), false, "not ours, deleted");
  },
);

Deno.test(
  "the watch says our Pod is terminating as soon as it gets a deletionTimestamp, and another UID's never",
  opts,
  async () => {
    await using pod = await heldPod("w-0", ["get", "watch"]);
    const seen: boolean[] = [];
    const other: boolean[] = [];
    const graces: (number | undefined)[] = [];
    const stop = new AbortController();
    try {
      const where = { kc: pod.kc, namespace: NS, name: "w-0" };
      new KubeOwnPod({ ...where, uid: pod.uid }).watch((d) => {
        seen.push(d !== false);
        if (d !== false) graces.push(d.graceSeconds);
      }, stop.signal);
      new KubeOwnPod({ ...where, uid: "another-uid" }).watch(
        (d) => other.push(d !== false),
        stop.signal,
      );
      await waitUntil("the first events", () => seen.length > 0 && other.length > 0, 10_000);
      assert.deepEqual([seen, other], [[false], [false]]);
      const deletedAt = performance.now();
      await pod.delete();
      await waitUntil("the deletion through the watch", () => seen.at(-1) === true, 5_000);
      assert.ok(performance.now() - deletedAt < 2_000, "the watch was slower than a poll");
      assert.ok(!other.includes(true), "another UID's Pod counted as ours");
      assert.equal(typeof graces.at(-1), "number", "the watch gave no grace period");
    } finally {
      stop.abort();
    }
  },
);
