/**
 * lib/kube/cardano_leader.ts: the step's view of the CardanoLeader's requests (pure), and the object
 * against the real API server with the shipped CRD: status through the status subresource,
 * lastTransitionTime only on real transitions, a pod clearing only its own claim, the last leader
 * the fence reads back, Events; the requests as the step sees them, the watch, replica entries and
 * the handover result.
 */

import assert from "node:assert/strict";
import { CoreV1Api, CustomObjectsApi, loadAllYaml, PatchStrategy } from "@kubernetes/client-node";
import type { KubernetesObject } from "@kubernetes/client-node";
import { loadKubeConfig, requestOptions } from "../../lib/kube/kube_client.ts";
import { systemClock } from "../../lib/base/clock.ts";
import {
  CARDANO_LEADER,
  type ControlView,
  KubeCardanoLeader,
  toControlView,
} from "../../lib/kube/cardano_leader.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { installForgeManager } from "../support/replicas.ts";
import { sleep, waitUntil } from "../support/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NS = "status-test";

interface Status {
  leaderPod?: string;
  forgingEnabled?: boolean;
  lastTransitionTime?: string;
  leaseTransitions?: number;
  conditions?: { type: string; status: string; reason: string; lastTransitionTime: string }[];
}

async function setup(name: string) {
  const cp = await sharedControlPlane();
  await cp.ensureNamespace(NS);
  const crd = loadAllYaml(
    await Deno.readTextFile(new URL("../../manifests/crd.yaml", import.meta.url)),
  ) as KubernetesObject[];
  for (const obj of crd) await cp.apply(obj);
  await cp.apply({
    apiVersion: "cardano.io/v1",
    kind: "CardanoLeader",
    metadata: { name, namespace: NS },
  } as KubernetesObject);
  const kc = loadKubeConfig(cp.adminKubeconfig);
  const objects = kc.makeApiClient(CustomObjectsApi);
  const read = async () =>
    ((await objects.getNamespacedCustomObjectStatus({
      ...CARDANO_LEADER,
      namespace: NS,
      name,
    })) as {
      status?: Status;
    }).status ?? {};
  const reporter = (pod: string) =>
    new KubeCardanoLeader({ kc, namespace: NS, name, pod, clock: systemClock });
  return { kc, read, reporter };
}

Deno.test("status changes lastTransitionTime only on a real transition", opts, async () => {
  const { read, reporter } = await setup("transitions");
  const a = reporter("pod-a");
  await a.report({
    leaderPod: "pod-a",
    forgingEnabled: false,
    reason: "LeaseAcquired",
    message: "m",
    leaseTransitions: 1,
  });
  const first = await read();
  assert.equal(first.leaderPod, "pod-a");
  assert.equal(first.forgingEnabled, false);
  assert.equal(first.leaseTransitions, 1);
  await sleep(1100); // timestamps have 1 s resolution
  await a.report({
    leaderPod: "pod-a",
    forgingEnabled: false,
    reason: "LeaseAcquired",
    message: "m",
  });
  assert.equal((await read()).lastTransitionTime, first.lastTransitionTime);
  await a.report({
    leaderPod: "pod-a",
    forgingEnabled: true,
    reason: "Forging",
    message: "forges",
  });
  const forging = await read();
  assert.equal(forging.forgingEnabled, true);
  assert.notEqual(forging.lastTransitionTime, first.lastTransitionTime);
  const condition = forging.conditions?.find((c) => c.type === "Forging");
  assert.equal(condition?.status, "True");
  assert.equal(condition?.reason, "Forging");
});

Deno.test("a demoted pod clears only its own claim", opts, async () => {
  const { read, reporter } = await setup("own-claim");
  await reporter("pod-b").report({
    leaderPod: "pod-b",
    forgingEnabled: true,
    reason: "Forging",
    message: "m",
  });
  // pod-a, an old leader, clears "its" claim late: pod-b's status stays.
  await reporter("pod-a").report(
    { leaderPod: "", forgingEnabled: false, reason: "Demoted", message: "m" },
    "pod-a",
  );
  assert.equal((await read()).leaderPod, "pod-b");
  await reporter("pod-b").report(
    { leaderPod: "", forgingEnabled: false, reason: "Demoted", message: "m" },
    "pod-b",
  );
  const cleared = await read();
  assert.equal(cleared.leaderPod, "");
  assert.equal(cleared.forgingEnabled, false);
});

Deno.test(
  "a missing CardanoLeader is an error the caller can count, not a hang",
  opts,
  async () => {
    await setup("exists");
    const missing = new KubeCardanoLeader({
      clock: systemClock,
      kc: loadKubeConfig((await sharedControlPlane()).adminKubeconfig),
      namespace: NS,
      name: "does-not-exist",
      pod: "pod-a",
      timeoutMs: 3000,
    });
    await assert.rejects(
      missing.report({ leaderPod: "pod-a", forgingEnabled: false, reason: "X", message: "m" }),
    );
  },
);

Deno.test("transitions are recorded as Events on the CardanoLeader", opts, async () => {
  const { kc, reporter } = await setup("events");
  await reporter("pod-e").event("Normal", "LeaseAcquired", "pod-e holds the lease");
  const events = await kc.makeApiClient(CoreV1Api).listNamespacedEvent({
    namespace: NS,
    fieldSelector: "involvedObject.name=events",
  });
  const event = events.items.find((e) => e.reason === "LeaseAcquired");
  assert.equal(event?.involvedObject.kind, "CardanoLeader");
  assert.equal(event?.source?.host, "pod-e");
});

Deno.test(
  "the last leader for the fence: the pod the status names, else the newest other claimant, never this pod",
  opts,
  async () => {
    const { kc, reporter } = await setup("last-leader");
    const objects = kc.makeApiClient(CustomObjectsApi);
    const patch = (status: Record<string, unknown>) =>
      objects.patchNamespacedCustomObjectStatus(
        { ...CARDANO_LEADER, namespace: NS, name: "last-leader", body: { status } },
        requestOptions(5000, PatchStrategy.MergePatch),
      );
    assert.equal(await reporter("pod-c").lastLeader(), "", "nothing written yet");
    // Each replica's own entry, as lib/kube/control.ts writes it.
    const entry = (pod: string, leader: boolean, forging: boolean, heartbeat: string) => ({
      identity: `${pod}_x`,
      phase: forging ? "forging" : leader ? "fencing" : "standby",
      leader,
      forging,
      nodeFound: true,
      fence: "idle",
      reason: "x",
      since: heartbeat,
      heartbeat,
    });
    await patch({
      replicas: {
        "pod-a": entry("pod-a", true, true, "2026-12-02T00:00:10Z"),
        "pod-b": entry("pod-b", false, false, "2026-12-02T00:00:20Z"),
        "pod-d": entry("pod-d", true, false, "2026-12-02T00:00:05Z"),
      },
    });
    assert.equal(await reporter("pod-c").lastLeader(), "pod-a", "the newest claimant");
    assert.equal(await reporter("pod-a").lastLeader(), "pod-d", "never this pod's own entry");
    await patch({ leaderPod: "pod-b" });
    assert.equal(await reporter("pod-c").lastLeader(), "pod-b", "the status names it");
    // Our own name in the status (our write naming us landed first) is no lead: the entries are.
    await patch({ leaderPod: "pod-c" });
    assert.equal(await reporter("pod-c").lastLeader(), "pod-a");
    const missing = new KubeCardanoLeader({
      clock: systemClock,
      kc,
      namespace: NS,
      name: "does-not-exist",
      pod: "pod-c",
      timeoutMs: 3000,
    });
    assert.equal(await missing.lastLeader(), "", "a missing CardanoLeader names nobody");
  },
);

Deno.test(
  "a claim names this pod as leader in one write; a missing CardanoLeader is no error",
  opts,
  async () => {
    const { read, reporter, kc } = await setup("claim");
    await reporter("pod-a").report({
      leaderPod: "pod-a",
      forgingEnabled: true,
      reason: "Forging",
      message: "m",
    });
    await reporter("pod-b").claim(5000);
    const claimed = await read();
    assert.equal(claimed.leaderPod, "pod-b");
    assert.equal(await reporter("pod-c").lastLeader(), "pod-b");
    const missing = new KubeCardanoLeader({
      clock: systemClock,
      kc,
      namespace: NS,
      name: "does-not-exist",
      pod: "pod-b",
      timeoutMs: 3000,
    });
    await missing.claim(3000);
  },
);

const WALL = Date.parse("2026-01-01T00:00:00Z");

Deno.test("a pause's until becomes a monotonic end, and a request's at an age", () => {
  const view = toControlView(
    {
      spec: {
        pause: {
          reason: "upgrade",
          by: "alice",
          at: "2026-01-01T00:00:00Z",
          until: "2026-01-01T00:10:00Z",
        },
        handover: { id: "h1", to: "p-1", by: "bob", at: "2025-12-31T23:59:30Z" },
      },
      status: {
        handover: { id: "h0", to: "p-2", result: "released", at: "2025-12-31T23:00:00Z" },
      },
    },
    5_000,
    WALL,
  );
  assert.deepEqual(view, {
    pause: { reason: "upgrade", by: "alice", endsAt: 5_000 + 600_000 },
    handover: { id: "h1", to: "p-1", by: "bob", ageMs: 30_000 },
    handledId: "h0",
    lastHandover: { id: "h0", to: "p-2", reason: "handover", result: "released" },
  });
});

Deno.test("a pause without until has no end; an unreadable at makes a request stale", () => {
  const view = toControlView(
    {
      spec: {
        pause: { reason: "x", by: "a", at: "2026-01-01T00:00:00Z" },
        handover: { id: "h1", to: "", by: "b", at: "garbage" },
      },
    },
    0,
    WALL,
  );
  assert.deepEqual(view.pause, { reason: "x", by: "a" });
  assert.equal(view.handover?.ageMs, Infinity);
  assert.deepEqual(toControlView({ spec: {} }, 0, WALL), {});
  assert.deepEqual(toControlView(undefined, 0, WALL), {});
});

/** The shipped manifests in `namespace`: the sidecar's store under its Role, and an admin. */
async function installed(namespace: string) {
  const cp = await sharedControlPlane();
  const kubeconfig = await installForgeManager(cp, namespace);
  return {
    store: new KubeCardanoLeader({
      kc: loadKubeConfig(kubeconfig),
      namespace,
      name: "cardano-leader",
      pod: "p-0",
      clock: systemClock,
    }),
    admin: cp.admin().makeApiClient(CustomObjectsApi),
    ref: { ...CARDANO_LEADER, namespace, name: "cardano-leader" },
  };
}

Deno.test(
  "the store reads the spec, publishes a replica entry and a handover result the CRD accepts",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const { store, admin, ref } = await installed("control-store-test");
    const obj = await admin.getNamespacedCustomObject(ref) as Record<string, unknown>;
    const pause = { reason: "upgrade", by: "alice", at: new Date(WALL).toISOString() };
    await admin.replaceNamespacedCustomObject({ ...ref, body: { ...obj, spec: { pause } } });
    assert.deepEqual((await store.read(5000)).pause, { reason: "upgrade", by: "alice" });

    const entry = {
      identity: "p-0_abc",
      phase: "forging" as const,
      leader: true,
      forging: true,
      nodeFound: true,
      fence: "idle" as const,
      reason: "startup",
      sync: "lagging" as const,
      tipLagSlots: 412,
      since: new Date(WALL).toISOString(),
      heartbeat: new Date(WALL + 1000).toISOString(),
    };
    await store.publishReplica("p-0", entry, 5000);
    await store.publishReplica("p-1", { ...entry, identity: "p-1_def", leader: false }, 5000);
    await store.reportHandover({ id: "h1", to: "p-1", result: "released", at: entry.since }, 5000);
    assert.deepEqual((await store.read(5000)).lastHandover, {
      id: "h1",
      to: "p-1",
      reason: "handover",
      result: "released",
    });
    // The target's own write once it forges; a leader's own handover names its reason.
    await store.reportHandover({
      id: "h1",
      to: "p-1",
      reason: "sync",
      result: "done",
      at: entry.heartbeat,
    }, 5000);
    const status = (await admin.getNamespacedCustomObjectStatus(ref) as {
      status: { replicas: Record<string, unknown>; handover: unknown };
    }).status;
    assert.deepEqual(Object.keys(status.replicas).sort(), ["p-0", "p-1"]);
    assert.deepEqual(status.replicas["p-0"], entry);
    assert.deepEqual(status.handover, {
      id: "h1",
      to: "p-1",
      reason: "sync",
      result: "done",
      at: entry.heartbeat,
    });
    assert.equal((await store.read(5000)).handledId, "h1");
  },
);

Deno.test(
  "the store's watch delivers a request at once under the shipped Role, and an empty spec when the object goes",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const { store, admin, ref } = await installed("control-watch-test");
    const reads: ControlView[] = [];
    const stop = new AbortController();
    try {
      store.watch((read) => reads.push(read), stop.signal);
      await waitUntil("the first event", () => reads.length > 0, 10_000);
      const obj = await admin.getNamespacedCustomObject(ref) as Record<string, unknown>;
      const handover = { id: "h-9", to: "p-2", by: "bob", at: new Date(WALL).toISOString() };
      const sentAt = performance.now();
      await admin.replaceNamespacedCustomObject({ ...ref, body: { ...obj, spec: { handover } } });
      await waitUntil(
        "the handover through the watch",
        () => reads.at(-1)?.handover?.id === "h-9",
        5_000,
      );
      assert.ok(performance.now() - sentAt < 2_000, "the watch was slower than a poll");
      await admin.deleteNamespacedCustomObject(ref);
      await waitUntil("the deletion", () => reads.at(-1)?.handover === undefined, 5_000);
      assert.deepEqual(reads.at(-1), {});
    } finally {
      stop.abort();
    }
  },
);
