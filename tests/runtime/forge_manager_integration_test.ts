/**
 * The sidecar end to end: three copies of main.ts under the shipped permission set, each in its
 * own PID namespace beside a simulated cardano-node, on the real control plane, with the
 * shipped Roles. Every assertion about forging comes from the simulated nodes' own records.
 */

import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { sharedControlPlane } from "../support/control_plane.ts";
import { execPluginKubeconfig } from "../support/exec_plugin.ts";
import { installForgeManager, startReplicas } from "../support/replicas.ts";
import { metricValue, type Pod } from "../support/pod.ts";
import { figures, forgersNow, nowMs, waitForSingleForger } from "../support/scenario.ts";
import { sleep, waitUntil } from "../support/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function deployment(
  namespace: string,
  opts: { count?: number; env?: Record<string, string> } = {},
) {
  const cp = await sharedControlPlane();
  const kubeconfig = await installForgeManager(cp, namespace);
  const root = await Deno.makeTempDir({ prefix: `fm-${namespace}-` });
  const pods = await startReplicas({
    count: opts.count ?? 3,
    root,
    namespace,
    kubeconfig,
    ...(opts.env !== undefined ? { env: opts.env } : {}),
  });
  return {
    cp,
    pods,
    async [Symbol.asyncDispose]() {
      await Promise.all(pods.map((p) => p.kill()));
      await Deno.remove(root, { recursive: true });
    },
  };
}

async function leaderStatus(cp: Awaited<ReturnType<typeof sharedControlPlane>>, namespace: string) {
  const api = cp.admin().makeApiClient(k8s.CustomObjectsApi);
  const obj = await api.getNamespacedCustomObjectStatus({
    group: "cardano.io",
    version: "v1",
    plural: "cardanoleaders",
    namespace,
    name: "cardano-leader",
  }) as { status?: { leaderPod?: string; forgingEnabled?: boolean; lastTransitionTime?: string } };
  return obj.status ?? {};
}

Deno.test(
  "exactly one of three replicas forges, and the CardanoLeader status names it",
  opts,
  async () => {
    await using d = await deployment("it-one");
    const leader = await waitForSingleForger(d.pods, 30_000);
    // Stays single for a few renew periods.
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(await forgersNow(d.pods), [leader.name]);
      await sleep(300);
    }
    for (const pod of d.pods) {
      const forging = await metricValue(pod, `cardano_forging_enabled{pod="${pod.name}"}`);
      assert.equal(forging, pod === leader ? 1 : 0, `${pod.name} cardano_forging_enabled`);
    }
    const status = await waitUntil("CardanoLeader status", async () => {
      const s = await leaderStatus(d.cp, "it-one");
      return s.forgingEnabled === true ? s : undefined;
    }, 10_000);
    assert.equal(status.leaderPod, leader.name);
    // Only the leader's ipc folder holds the pool's keys (the standbys' nodes boot on decoys).
    for (const pod of d.pods) {
      const placed = await Deno.readTextFile(`${pod.dir}/ipc/kes.skey`).catch(() => "");
      const pool = await Deno.readTextFile(`${pod.dir}/secrets/kes.skey`);
      assert.equal(placed === pool, pod === leader, `${pod.name} has the pool's keys`);
    }
    await assertNoUndici(d.pods);
  },
);

/**
 * Every API request and watch of these running sidecars went through Deno's fetch: their worker
 * counts undici's requests and connections (its diagnostics channels) and both are 0. Every timer
 * undici arms (its 500 ms timer wheel, connect, header, body and keep-alive timeouts) belongs to
 * such a request or connection, so none exists either.
 */
async function assertNoUndici(pods: Pod[]): Promise<void> {
  for (const pod of pods) {
    assert.equal(await metricValue(pod, "forge_manager_undici_requests_total"), 0, pod.name);
    assert.equal(await metricValue(pod, "forge_manager_undici_connections_total"), 0, pod.name);
  }
}

Deno.test(
  "with KUBE_TRANSPORT=undici a sidecar leads over client-node's own stack, and its undici counters show it",
  opts,
  async () => {
    // The counters assertNoUndici reads are not zero by construction: this stack moves them.
    await using d = await deployment("it-undici", { count: 1, env: { KUBE_TRANSPORT: "undici" } });
    await waitForSingleForger(d.pods, 30_000);
    const requests = await metricValue(d.pods[0]!, "forge_manager_undici_requests_total");
    const connections = await metricValue(d.pods[0]!, "forge_manager_undici_connections_total");
    assert.ok(requests !== undefined && requests > 0, `undici requests: ${requests}`);
    assert.ok(connections !== undefined && connections > 0, `undici connections: ${connections}`);
  },
);

Deno.test("killing the leader's pod gives a new single forger, with no overlap", opts, async () => {
  await using d = await deployment("it-kill");
  const leader = await waitForSingleForger(d.pods, 30_000);
  const faultAt = nowMs();
  await leader.kill();
  const next = await waitForSingleForger(d.pods.filter((p) => p !== leader), 30_000);
  assert.notEqual(next.name, leader.name);
  const { overlapMs, takeoverMs } = await figures(d.pods, faultAt, leader);
  assert.equal(overlapMs, 0);
  assert.ok(takeoverMs !== null);
});

Deno.test(
  "SIGTERM on the leader hands over: the old forger stops before the new one starts",
  opts,
  async () => {
    await using d = await deployment("it-term");
    const leader = await waitForSingleForger(d.pods, 30_000);
    const faultAt = nowMs();
    await leader.terminate();
    const others: Pod[] = d.pods.filter((p) => p !== leader);
    const next = await waitForSingleForger(others, 10_000);
    const { overlapMs, takeoverMs } = await figures(d.pods, faultAt, leader);
    assert.equal(overlapMs, 0);
    assert.ok(takeoverMs !== null && takeoverMs < 3000, `handover took ${takeoverMs} ms`);
    assert.notEqual(next.name, leader.name);
    // The old leader's node ended forging through a disable (keys unlinked + SIGHUP), not a kill.
    const text = await Deno.readTextFile(leader.record);
    assert.match(text, /"event":"disable"/);
  },
);

Deno.test(
  "a sidecar on a VM whose kubeconfig authenticates through an exec credential plugin leads and forges",
  opts,
  async () => {
    // EKS and GKE kubeconfigs carry no credential, only a plugin to run: the core grants the
    // worker that one program (and nothing else) from what the probe read in the kubeconfig.
    const cp = await sharedControlPlane();
    const namespace = "it-exec";
    const minted = await installForgeManager(cp, namespace);
    const root = await Deno.makeTempDir({ prefix: "fm-it-exec-" });
    const { kubeconfig, plugin, runs } = await execPluginKubeconfig(minted, root);
    const pods = await startReplicas({ count: 1, root, namespace, kubeconfig });
    try {
      const leader = await waitForSingleForger(pods, 30_000);
      assert.equal(leader, pods[0]);
      assert.ok((await Deno.readTextFile(runs)).includes("run"), "the plugin never ran");
      const log = await Deno.readTextFile(pods[0]!.sidecarLog);
      const started = log.split("\n").find((l) => l.includes("starting the sandboxed worker"));
      assert.deepEqual((JSON.parse(started!) as { run: string[] }).run, [plugin]);
    } finally {
      await Promise.all(pods.map((p) => p.kill()));
      await Deno.remove(root, { recursive: true });
    }
  },
);
