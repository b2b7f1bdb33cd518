/**
 * lib/kube/fence.ts against the real API server: proof that the previous leader's node is gone,
 * from Pod objects (this control plane has no kubelet: a Pod without spec.nodeName is deleted at
 * once, one bound to a node waits for a kubelet that never comes, like a partitioned one). Where
 * a test needs the kubelet's report, it writes the Pod status itself, as a kubelet would.
 */

import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { CoreV1Api, type V1ContainerStatus, type V1Pod } from "@kubernetes/client-node";
import { FENCE_PROOFS, nodeTerminated, PodFence } from "../../lib/kube/fence.ts";
import { loadKubeConfig } from "../../lib/kube/kube_client.ts";
import { createMetrics } from "../../lib/runtime/metrics.ts";
import { sharedControlPlane } from "../support/control_plane.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NS = "fence-test";
/** Whole seconds, as the API server writes times. */
const wholeSecond = (ms: number) => Math.floor(ms / 1000) * 1000;

async function setup(fenceOpts: { pollMs?: number; nodeContainer?: string } = {}) {
  const cp = await sharedControlPlane();
  await cp.ensureNamespace(NS);
  const kc = loadKubeConfig(cp.adminKubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  let ownNodeStopped = true;
  const requests: string[] = [];
  const events: string[] = [];
  const podFence = new PodFence({
    kc,
    namespace: NS,
    ownPod: "me-0",
    ownPodUid: "my-uid",
    pollMs: fenceOpts.pollMs ?? 100,
    ...(fenceOpts.nodeContainer !== undefined ? { nodeContainer: fenceOpts.nodeContainer } : {}),
    count: (operation) => requests.push(operation),
    onEvent: (outcome, detail) => events.push(`${outcome}: ${detail}`),
  });
  const pod = async (name: string, nodeName?: string): Promise<V1Pod> =>
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name },
        spec: {
          ...(nodeName ? { nodeName } : {}),
          initContainers: [{
            name: "forge-manager",
            image: "example.invalid/forge-manager:1",
            restartPolicy: "Always",
          }],
          containers: [{ name: "cardano-node", image: "example.invalid/node:1" }],
        },
      },
    });
  /** Writes the kubelet's report of the node container (the sidecar keeps running). */
  const report = async (name: string, node: Partial<V1ContainerStatus>) => {
    const container = (c: string, status: Partial<V1ContainerStatus>) => ({
      name: c,
      image: `example.invalid/${c}:1`,
      imageID: "",
      ready: false,
      restartCount: 0,
      ...status,
    });
    await core.patchNamespacedPodStatus(
      {
        name,
        namespace: NS,
        body: {
          status: {
            phase: "Running",
            initContainerStatuses: [
              container("forge-manager", {
                ready: true,
                state: { running: { startedAt: new Date() } },
              }),
            ],
            containerStatuses: [container("cardano-node", node)],
          },
        },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  };
  const running = (restartCount = 0): Partial<V1ContainerStatus> => ({
    ready: true,
    restartCount,
    state: { running: { startedAt: new Date(Date.now() - 60_000) } },
  });
  /** Waits until pod `name` is terminating; returns the deletion request time (whole seconds). */
  const deletionRequested = async (name: string): Promise<number> => {
    for (;;) {
      const p = await core.readNamespacedPod({ name, namespace: NS });
      const at = p.metadata?.deletionTimestamp;
      if (at !== undefined) {
        return new Date(at).getTime() - (p.metadata?.deletionGracePeriodSeconds ?? 0) * 1000;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const exists = async (name: string) => {
    try {
      await core.readNamespacedPod({ name, namespace: NS });
      return true;
    } catch {
      return false;
    }
  };
  const forceDelete = (name: string) =>
    core.deleteNamespacedPod({ name, namespace: NS, gracePeriodSeconds: 0 }).catch(() => {});
  const setOwnNodeStopped = (value: boolean) => (ownNodeStopped = value);
  // The step says whether our own node's last stop was confirmed when it starts a fence.
  const fence = {
    prove: (holder: string, podUid: string | undefined, signal: AbortSignal, writtenAt?: number) =>
      podFence.prove({
        holder,
        ...(podUid !== undefined ? { podUid } : {}),
        ...(writtenAt !== undefined ? { writtenAt } : {}),
        ownNodeStopped,
      }, signal),
  };
  return {
    core,
    fence,
    pod,
    report,
    running,
    deletionRequested,
    exists,
    forceDelete,
    requests,
    events,
    setOwnNodeStopped,
  };
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
    const { fence, pod, core, requests } = await setup({ pollMs: 500 });
    const created = await pod("old-leader-3", "unreachable-node");
    const started = performance.now();
    const outcome = await fence.prove(
      "old-leader-3_cccc",
      created.metadata?.uid,
      AbortSignal.timeout(3000),
      wholeSecond(Date.now() - 60_000),
    );
    assert.equal(outcome.proven, false);
    assert.ok(performance.now() - started >= 2900, "it waited until the lease was lost");
    const still = await core.readNamespacedPod({ name: "old-leader-3", namespace: NS });
    assert.notEqual(still.metadata?.deletionTimestamp, undefined, "it asked for the deletion");
    // One read per poll, one after the delete, one per change the watch reports; one watch.
    const gets = requests.filter((r) => r === "pod_get").length;
    assert.ok(gets <= 3000 / 500 + 4, `${gets} reads in 3 s`);
    assert.equal(requests.filter((r) => r === "pod_delete").length, 1);
    assert.ok(requests.includes("pod_watch"));
    await core.deleteNamespacedPod({ name: "old-leader-3", namespace: NS, gracePeriodSeconds: 0 });
  },
);

Deno.test(
  "a terminating pod whose kubelet reports its node container terminated is proven at once, " +
    "while its sidecar still holds the pod",
  opts,
  async () => {
    // A long poll: only the watch can make the proof quick.
    const { fence, pod, report, running, deletionRequested, exists, forceDelete } = await setup({
      pollMs: 10_000,
    });
    const created = await pod("old-leader-4", "sim-node");
    await report("old-leader-4", running());
    const proof = fence.prove(
      "old-leader-4_dddd",
      created.metadata?.uid,
      AbortSignal.timeout(20_000),
      wholeSecond(Date.now() - 60_000),
    );
    const deletedAt = await deletionRequested("old-leader-4");
    // The node exits on SIGTERM two seconds later, by the kubelet's clock.
    const reportedAt = performance.now();
    await report("old-leader-4", {
      restartCount: 0,
      state: {
        terminated: { exitCode: 0, reason: "Completed", finishedAt: new Date(deletedAt + 2000) },
      },
    });
    assert.deepEqual(await proof, { proven: true, how: "node_terminated" });
    const tookMs = performance.now() - reportedAt;
    assert.ok(tookMs < 2000, `proven ${tookMs.toFixed(0)} ms after the report (poll: 10 s)`);
    assert.ok(await exists("old-leader-4"), "the pod itself is still there");
    await forceDelete("old-leader-4");
  },
);

Deno.test(
  "a node container that terminated while its pod was not terminating is no proof",
  opts,
  async () => {
    const { core, fence, pod, report, exists, forceDelete, events } = await setup();
    const created = await pod("old-leader-5", "sim-node");
    // Exited (a crash): a kubelet restarts it, keys still in place, unless the pod is deleted.
    await report("old-leader-5", {
      restartCount: 0,
      state: { terminated: { exitCode: 1, reason: "Error", finishedAt: new Date() } },
    });
    const writtenAt = wholeSecond(Date.now() - 60_000);
    const before = await core.readNamespacedPod({ name: "old-leader-5", namespace: NS });
    const judged = nodeTerminated(before, {
      container: "cardano-node",
      writtenAt,
      restartsAtStart: 0,
    });
    assert.deepEqual(judged, {
      terminated: false,
      why: "the pod is not terminating: its node may be restarted",
    });
    const outcome = await fence.prove(
      "old-leader-5_eeee",
      created.metadata?.uid,
      AbortSignal.timeout(2500),
      writtenAt,
    );
    // The fence deleted the pod itself; an exit from before the deletion does not count then.
    assert.equal(outcome.proven, false);
    assert.ok(events.some((e) => e.includes("not after the pod's deletion")), events.join("\n"));
    assert.ok(await exists("old-leader-5"));
    await forceDelete("old-leader-5");
  },
);

Deno.test(
  "a node container that finished before the holder's last write is no proof",
  opts,
  async () => {
    const { fence, pod, report, running, deletionRequested, forceDelete, events } = await setup();
    const created = await pod("old-leader-6", "sim-node");
    await report("old-leader-6", running());
    // The holder wrote 30 s from now by the API server's clock: the node's exit reported below
    // (2 s after the deletion) precedes it.
    const writtenAt = wholeSecond(Date.now() + 30_000);
    const proof = fence.prove(
      "old-leader-6_ffff",
      created.metadata?.uid,
      AbortSignal.timeout(3000),
      writtenAt,
    );
    const deletedAt = await deletionRequested("old-leader-6");
    await report("old-leader-6", {
      state: { terminated: { exitCode: 0, finishedAt: new Date(deletedAt + 2000) } },
    });
    const outcome = await proof;
    assert.equal(outcome.proven, false);
    assert.ok(
      events.some((e) => e.includes("not after the holder's last write")),
      events.join("\n"),
    );
    await forceDelete("old-leader-6");
  },
);

Deno.test(
  "a restart count above the one seen at the start proves a waiting node container stopped; " +
    "the same count does not",
  opts,
  async () => {
    const { fence, pod, report, running, deletionRequested, forceDelete } = await setup();
    for (
      const [name, restarts, proven] of [["old-leader-7", 3, true], [
        "old-leader-8",
        2,
        false,
      ]] as const
    ) {
      const created = await pod(name, "sim-node");
      await report(name, running(2));
      const proof = fence.prove(
        `${name}_gggg`,
        created.metadata?.uid,
        AbortSignal.timeout(3000),
        wholeSecond(Date.now() - 60_000),
      );
      const deletedAt = await deletionRequested(name);
      // It crashed after the deletion and waits in back-off; a terminating pod is not restarted.
      await report(name, {
        restartCount: restarts,
        state: { waiting: { reason: "CrashLoopBackOff" } },
        lastState: { terminated: { exitCode: 1, finishedAt: new Date(deletedAt + 2000) } },
      });
      const outcome = await proof;
      assert.deepEqual(
        outcome.proven ? outcome : { proven: false },
        proven ? { proven: true, how: "node_terminated" } : { proven: false },
        name,
      );
      await forceDelete(name);
    }
  },
);

Deno.test(
  "with NODE_CONTAINER_NAME naming another container, the node's report proves nothing",
  opts,
  async () => {
    const { fence, pod, report, running, deletionRequested, forceDelete } = await setup({
      nodeContainer: "node",
    });
    const created = await pod("old-leader-9", "sim-node");
    await report("old-leader-9", running());
    const proof = fence.prove(
      "old-leader-9_hhhh",
      created.metadata?.uid,
      AbortSignal.timeout(2500),
      wholeSecond(Date.now() - 60_000),
    );
    const deletedAt = await deletionRequested("old-leader-9");
    await report("old-leader-9", {
      state: { terminated: { exitCode: 0, finishedAt: new Date(deletedAt + 2000) } },
    });
    assert.equal((await proof).proven, false);
    await forceDelete("old-leader-9");
  },
);

// ---- the judgement alone, at the edges of whole seconds --------------------------------------

const T = Date.parse("2026-03-01T12:00:00Z");
const GRACE = 120;

/** A terminating pod deleted at T + 10 s (grace 120 s), its node container in `node`. */
function terminatingPod(node: Partial<V1ContainerStatus> | undefined, deleted = true): V1Pod {
  return {
    metadata: {
      name: "p",
      uid: "u",
      ...(deleted
        ? {
          deletionTimestamp: new Date(T + 10_000 + GRACE * 1000),
          deletionGracePeriodSeconds: GRACE,
        }
        : {}),
    },
    status: {
      containerStatuses: node === undefined ? [] : [{
        name: "cardano-node",
        image: "",
        imageID: "",
        ready: false,
        restartCount: 0,
        ...node,
      }],
    },
  };
}
const finished = (ms: number, reason = "Completed") => ({
  state: { terminated: { exitCode: 0, reason, finishedAt: new Date(ms) } },
});

const JUDGED: {
  why: string;
  pod: V1Pod;
  writtenAt?: number;
  restartsAtStart?: number;
  terminated: boolean;
}[] = [
  {
    why: "exit after the last write and the deletion",
    pod: terminatingPod(finished(T + 13_000)),
    terminated: true,
  },
  {
    why: "pod not terminating",
    pod: terminatingPod(finished(T + 13_000), false),
    terminated: false,
  },
  {
    why: "container running",
    pod: terminatingPod({ state: { running: { startedAt: new Date(T) } } }),
    terminated: false,
  },
  { why: "no status for the container", pod: terminatingPod(undefined), terminated: false },
  {
    why: "exit in the same whole second as the last write",
    pod: terminatingPod(finished(T + 13_000)),
    writtenAt: T + 13_000,
    terminated: false,
  },
  {
    why: "exit one second after the last write",
    pod: terminatingPod(finished(T + 14_000)),
    writtenAt: T + 13_000,
    terminated: true,
  },
  {
    why: "exit before the last write",
    pod: terminatingPod(finished(T + 12_000)),
    writtenAt: T + 13_000,
    terminated: false,
  },
  {
    why: "exit in the deletion's second",
    pod: terminatingPod(finished(T + 10_000)),
    terminated: false,
  },
  {
    why: "exit before the deletion (a crash)",
    pod: terminatingPod(finished(T + 5_000)),
    terminated: false,
  },
  {
    why: "last write unknown",
    pod: terminatingPod(finished(T + 13_000)),
    writtenAt: undefined,
    terminated: false,
  },
  {
    why: "a kubelet that could not locate the container",
    pod: terminatingPod(finished(T + 13_000, "ContainerStatusUnknown")),
    terminated: false,
  },
  {
    why: "waiting after a restart since the start",
    pod: terminatingPod({
      restartCount: 1,
      state: { waiting: { reason: "CrashLoopBackOff" } },
      lastState: finished(T + 13_000).state,
    }),
    terminated: true,
  },
  {
    why: "waiting with no restart since the start",
    pod: terminatingPod({
      restartCount: 1,
      state: { waiting: { reason: "CrashLoopBackOff" } },
      lastState: finished(T + 13_000).state,
    }),
    restartsAtStart: 1,
    terminated: false,
  },
  {
    why: "running again after a restart",
    pod: terminatingPod({
      restartCount: 1,
      state: { running: { startedAt: new Date(T + 14_000) } },
      lastState: finished(T + 13_000).state,
    }),
    terminated: false,
  },
];

for (const row of JUDGED) {
  Deno.test(`the kubelet's report judged: ${row.why}`, () => {
    const report = nodeTerminated(row.pod, {
      container: "cardano-node",
      writtenAt: "writtenAt" in row ? row.writtenAt : T,
      restartsAtStart: row.restartsAtStart ?? 0,
    });
    assert.equal(report.terminated, row.terminated, JSON.stringify(report));
  });
}

Deno.test("the metrics help and the README name every proof the fence gives", async () => {
  const metrics = createMetrics({
    version: "test",
    pod: "p",
    namespace: "n",
    lease: "l",
    identity: "p_1",
    lastRenewAt: () => undefined,
  });
  const help = (await metrics.fenceWaits.get()).help;
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const row = readme.split("\n").find((l) => l.includes("`forge_manager_fence_checks_total"));
  assert.ok(row !== undefined, "the README lists the metric");
  for (const outcome of [...FENCE_PROOFS, "no_previous", "unproven", "error"]) {
    assert.ok(help.includes(outcome), `help names ${outcome}`);
    assert.ok(row.includes(outcome), `README names ${outcome}`);
  }
});
