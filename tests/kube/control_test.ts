/**
 * lib/kube/control.ts: the step's view of the CardanoLeader's requests (pure), and the store against
 * the real API server with the shipped CRD: reads, the watch, replica entries and the handover
 * result.
 */

import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { type ControlRead, KubeControlStore, toControlView } from "../../lib/kube/control.ts";
import { loadKubeConfig } from "../../lib/kube/kube_client.ts";
import { CARDANO_LEADER } from "../../lib/kube/status.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { installForgeManager } from "../support/replicas.ts";
import { waitUntil } from "../support/wait.ts";

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
      handled: { id: "h0", result: "released", at: "2025-12-31T23:00:00Z" },
    },
    5_000,
    WALL,
  );
  assert.deepEqual(view, {
    pause: { reason: "upgrade", by: "alice", endsAt: 5_000 + 600_000 },
    handover: { id: "h1", to: "p-1", by: "bob", ageMs: 30_000 },
    handledId: "h0",
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
});

/** The shipped manifests in `namespace`: the sidecar's store under its Role, and an admin. */
async function installed(namespace: string) {
  const cp = await sharedControlPlane();
  const kubeconfig = await installForgeManager(cp, namespace);
  return {
    store: new KubeControlStore({
      kc: loadKubeConfig(kubeconfig),
      namespace,
      name: "cardano-leader",
    }),
    admin: cp.admin().makeApiClient(k8s.CustomObjectsApi),
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
    assert.deepEqual((await store.read(5000)).spec, { pause });

    const entry = {
      identity: "p-0_abc",
      phase: "forging" as const,
      leader: true,
      forging: true,
      nodeFound: true,
      fence: "idle" as const,
      reason: "startup",
      since: new Date(WALL).toISOString(),
      heartbeat: new Date(WALL + 1000).toISOString(),
    };
    await store.publishReplica("p-0", entry, 5000);
    await store.publishReplica("p-1", { ...entry, identity: "p-1_def", leader: false }, 5000);
    await store.reportHandover({ id: "h1", result: "released", at: entry.since }, 5000);
    const status = (await admin.getNamespacedCustomObjectStatus(ref) as {
      status: { replicas: Record<string, unknown>; handover: unknown };
    }).status;
    assert.deepEqual(Object.keys(status.replicas).sort(), ["p-0", "p-1"]);
    assert.deepEqual(status.replicas["p-0"], entry);
    assert.deepEqual((await store.read(5000)).handled, {
      id: "h1",
      result: "released",
      at: entry.since,
    });
  },
);

Deno.test(
  "the store's watch delivers a request at once under the shipped Role, and an empty spec when the object goes",
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    const { store, admin, ref } = await installed("control-watch-test");
    const reads: ControlRead[] = [];
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
        () => reads.at(-1)?.spec.handover?.id === "h-9",
        5_000,
      );
      assert.ok(performance.now() - sentAt < 2_000, "the watch was slower than a poll");
      await admin.deleteNamespacedCustomObject(ref);
      await waitUntil("the deletion", () => reads.at(-1)?.spec.handover === undefined, 5_000);
      assert.deepEqual(reads.at(-1), { spec: {} });
    } finally {
      stop.abort();
    }
  },
);
