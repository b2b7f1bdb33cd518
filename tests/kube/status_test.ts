/**
 * lib/kube/status.ts against the real API server, with the shipped CRD: status through the status
 * subresource, lastTransitionTime only on real transitions, a pod clearing only its own claim,
 * the last leader the fence reads back, and Events.
 */

import assert from "node:assert/strict";
import { CoreV1Api, CustomObjectsApi, loadAllYaml, PatchStrategy } from "@kubernetes/client-node";
import type { KubernetesObject } from "@kubernetes/client-node";
import { loadKubeConfig, requestOptions } from "../../lib/kube/kube_client.ts";
import { CARDANO_LEADER, KubeStatusReporter } from "../../lib/kube/status.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { sleep } from "../support/wait.ts";

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
  const reporter = (pod: string) => new KubeStatusReporter({ kc, namespace: NS, name, pod });
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
    const missing = new KubeStatusReporter({
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
    const missing = new KubeStatusReporter({
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
    const missing = new KubeStatusReporter({
      kc,
      namespace: NS,
      name: "does-not-exist",
      pod: "pod-b",
      timeoutMs: 3000,
    });
    await missing.claim(3000);
  },
);
