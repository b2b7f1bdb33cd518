/**
 * lib/fence.ts against the real API server: proof that the previous leader's node is gone,
 * from Pod objects (this control plane has no kubelet: a Pod without spec.nodeName is deleted at
 * once, one bound to a node waits for a kubelet that never comes, like a partitioned one).
 */

import assert from "node:assert/strict";
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { PodFence } from "../lib/fence.ts";
import { loadKubeConfig } from "../lib/kube_client.ts";
import { sharedControlPlane } from "./support/control_plane.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NS = "fence-test";

async function setup() {
  const cp = await sharedControlPlane();
  await cp.ensureNamespace(NS);
  const kc = loadKubeConfig(cp.adminKubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  let ownNodeStopped = true;
  const fence = new PodFence({
    kc,
    namespace: NS,
    ownPod: "me-0",
    ownPodUid: "my-uid",
    pollMs: 100,
    ownNodeStopped: () => ownNodeStopped,
  });
  const pod = async (name: string, nodeName?: string): Promise<V1Pod> =>
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name },
        spec: {
          ...(nodeName ? { nodeName } : {}),
          containers: [{ name: "cardano-node", image: "example.invalid/node:1" }],
        },
      },
    });
  const setOwnNodeStopped = (value: boolean) => (ownNodeStopped = value);
  return { core, fence, pod, setOwnNodeStopped };
}

Deno.test("a previous leader whose pod does not exist is proven gone", opts, async () => {
  const { fence } = await setup();
  const outcome = await fence.prove("never-existed-0_abcd", undefined, AbortSignal.timeout(5000));
  assert.deepEqual(outcome, { proven: true, how: "pod_gone" });
});

Deno.test(
  "our own pod needs no proof once this process confirmed it stopped its node",
  opts,
  async () => {
    const { fence, setOwnNodeStopped } = await setup();
    const outcome = await fence.prove("me-0_1234", "my-uid", AbortSignal.timeout(5000));
    assert.deepEqual(outcome, { proven: true, how: "own_pod" });
    // Our pod's name with another UID is another process, not ours (here: no such pod exists).
    const other = await fence.prove("me-0_5678", "some-other-uid", AbortSignal.timeout(5000));
    assert.deepEqual(other, { proven: true, how: "pod_gone" });
    // Without a confirmed stop, our own pod is proven like any other.
    setOwnNodeStopped(false);
    const unconfirmed = await fence.prove("me-0_1234", "my-uid", AbortSignal.timeout(5000));
    assert.deepEqual(unconfirmed, { proven: true, how: "pod_gone" });
  },
);

Deno.test(
  "a previous leader's pod that still exists is deleted, and proven once gone",
  opts,
  async () => {
    const { fence, pod, core } = await setup();
    const created = await pod("old-leader-1");
    const outcome = await fence.prove(
      "old-leader-1_aaaa",
      created.metadata?.uid,
      AbortSignal.timeout(10_000),
    );
    assert.deepEqual(outcome, { proven: true, how: "pod_deleted" });
    await assert.rejects(core.readNamespacedPod({ name: "old-leader-1", namespace: NS }));
  },
);

Deno.test(
  "a pod recreated under the same name (another UID) proves the old one gone",
  opts,
  async () => {
    const { fence, pod, core } = await setup();
    const created = await pod("old-leader-2");
    const outcome = await fence.prove(
      "old-leader-2_bbbb",
      "uid-of-an-older-pod",
      AbortSignal.timeout(5000),
    );
    assert.deepEqual(outcome, { proven: true, how: "pod_replaced" });
    // The new pod was left alone.
    const still = await core.readNamespacedPod({ name: "old-leader-2", namespace: NS });
    assert.equal(still.metadata?.uid, created.metadata?.uid);
    assert.equal(still.metadata?.deletionTimestamp, undefined);
    await core.deleteNamespacedPod({ name: "old-leader-2", namespace: NS });
  },
);

Deno.test(
  "a pod whose kubelet never confirms the deletion is never proven: nobody forges",
  opts,
  async () => {
    const { fence, pod, core } = await setup();
    const created = await pod("old-leader-3", "unreachable-node");
    const started = performance.now();
    const outcome = await fence.prove(
      "old-leader-3_cccc",
      created.metadata?.uid,
      AbortSignal.timeout(2000),
    );
    assert.equal(outcome.proven, false);
    assert.ok(performance.now() - started >= 1900, "it waited until the lease was lost");
    const still = await core.readNamespacedPod({ name: "old-leader-3", namespace: NS });
    assert.notEqual(still.metadata?.deletionTimestamp, undefined, "it asked for the deletion");
    await core.deleteNamespacedPod({ name: "old-leader-3", namespace: NS, gracePeriodSeconds: 0 });
  },
);
