/**
 * Item 4 end to end: the pool's keys reach a node only while its replica leads. Two copies of
 * main.ts under the shipped permission set, each in its own PID namespace beside a simulated
 * cardano-node that knows which pool has stake, on the real control plane. A sampler reads every
 * file in each pod's node folder (`ipc/`) every 20 ms and looks for the pool's key material in it
 * (the whole cborHex of each of the pool's three files, so a temp file counts too), while a
 * standby lives its whole life: boot, node restart, promotion, demotion.
 */

import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { isDecoyEnvelope } from "../../lib/cardano/decoy_keys.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { readForgingRecords } from "../support/forging_log.ts";
import { cborHexOf } from "../support/keys.ts";
import type { Pod } from "../support/pod.ts";
import { installForgeManager, startReplicas } from "../support/replicas.ts";
import { forgersNow, nowMs, waitForSingleForger } from "../support/scenario.ts";
import { sleep, waitUntil } from "../support/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const NAMES = ["kes.skey", "vrf.skey", "node.cert"];

/** What one read of a pod's node folder found. */
interface Sample {
  t: number;
  pod: string;
  /** Files holding any of the pool's key material. */
  pool: string[];
  /** The credential files that are decoys. */
  decoys: string[];
}

/** Reads every file of `pod`'s node folder and compares it with the pool's files. */
async function inspect(pod: Pod, poolHex: readonly string[]): Promise<Sample> {
  const t = nowMs();
  const pool: string[] = [];
  const decoys: string[] = [];
  for await (const entry of Deno.readDir(`${pod.dir}/ipc`)) {
    if (!entry.isFile) continue; // the node's socket
    const text = await Deno.readTextFile(`${pod.dir}/ipc/${entry.name}`).catch(() => "");
    if (poolHex.some((hex) => text.includes(hex))) pool.push(entry.name);
    if (NAMES.includes(entry.name) && isDecoyEnvelope(text)) decoys.push(entry.name);
  }
  return { t, pod: pod.name, pool: pool.sort(), decoys: decoys.sort() };
}

/** Samples every pod's node folder until stopped. */
function sampler(pods: readonly Pod[], poolHex: readonly string[]) {
  const samples: Sample[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      for (const pod of pods) samples.push(await inspect(pod, poolHex));
      await sleep(20);
    }
  })();
  return {
    samples,
    async stop() {
      running = false;
      await done;
    },
  };
}

/** Asks the leader to hand over to `to` (what `forge-manager handover --to` writes). */
async function handover(cp: Awaited<ReturnType<typeof sharedControlPlane>>, to: string) {
  const api = cp.admin().makeApiClient(k8s.CustomObjectsApi);
  await api.patchNamespacedCustomObject(
    {
      group: "cardano.io",
      version: "v1",
      plural: "cardanoleaders",
      namespace: NAMESPACE,
      name: "cardano-leader",
      body: {
        spec: {
          handover: { id: crypto.randomUUID(), to, by: "test", at: new Date().toISOString() },
        },
      },
    },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
  );
}

const NAMESPACE = "it-decoys";

Deno.test(
  "a standby's node folder holds the pool's key bytes only while it leads: boot, node restart, promotion, demotion",
  opts,
  async () => {
    const cp = await sharedControlPlane();
    const kubeconfig = await installForgeManager(cp, NAMESPACE);
    const root = await Deno.makeTempDir({ prefix: "fm-decoys-" });
    const pods = await startReplicas({ count: 2, root, namespace: NAMESPACE, kubeconfig });
    const poolHex = await Promise.all(
      NAMES.map(async (n) => cborHexOf(await Deno.readTextFile(`${pods[0]!.dir}/secrets/${n}`))),
    );
    const seen = sampler(pods, poolHex);
    try {
      const leader = await waitForSingleForger(pods, 30_000);
      const standby = pods.find((p) => p !== leader)!;
      const decoysIn = (pod: Pod) =>
        waitUntil(`${pod.name}'s node folder to hold the decoys`, async () => {
          const s = await inspect(pod, poolHex);
          return s.decoys.length === 3 && s.pool.length === 0 ? s : undefined;
        }, 20_000);

      // Boot: the standby's node booted on the decoys its sidecar made; they never lead.
      await decoysIn(standby);
      const booted = (await readForgingRecords([standby.record]))[0]!;
      assert.equal(booted.event, "start");
      const log = await Deno.readTextFile(standby.sidecarLog);
      const made = log.split("\n").find((l) => l.includes("made the decoy credentials"));
      assert.ok(made !== undefined, "the sidecar did not say it made decoys");
      const decoyPool = (JSON.parse(made) as { decoyPool: string }).decoyPool;
      assert.match(booted.detail!, new RegExp(`pool ${decoyPool}, which has no stake`));

      // Node restart: the new process boots on the decoys too; its stop brings them back.
      const restartedAt = nowMs();
      standby.restartNode();
      await waitUntil("the standby's node to start again", async () => {
        const records = await readForgingRecords([standby.record]);
        return records.some((r) => r.t > restartedAt && r.event === "start");
      }, 30_000);
      await waitUntil("the restarted node's stop", async () => {
        const records = await readForgingRecords([standby.record]);
        return records.some((r) => r.t > restartedAt && r.event === "disable");
      }, 20_000);
      await decoysIn(standby);

      // Promotion: the pool's keys, all three, in its folder while it forges.
      const promotedAt = nowMs();
      await handover(cp, standby.name);
      await waitForSingleForger(pods, 20_000, [leader.name]);
      const leading = await inspect(standby, poolHex);
      assert.deepEqual(
        leading.pool,
        NAMES.slice().sort(),
        "the leader's node lacks the pool's keys",
      );
      for (const name of NAMES) {
        const placed = await Deno.readFile(`${standby.dir}/ipc/${name}`);
        const pool = await Deno.readFile(`${standby.dir}/secrets/${name}`);
        assert.deepEqual(placed, pool, `${name} is not the pool's, byte for byte`);
      }
      await decoysIn(leader); // the old leader's folder: decoys again after its stop

      // Demotion: back to the first pod (past its two lease durations of stepping aside).
      await sleep(8_500);
      const demotedAt = nowMs();
      await handover(cp, leader.name);
      await waitForSingleForger(pods, 20_000, [standby.name]);
      await decoysIn(standby);
      assert.deepEqual(await forgersNow(pods), [leader.name]);
      await seen.stop();
      assert.ok(seen.samples.length > 500, `only ${seen.samples.length} samples`);

      // Over the whole life, the standby's folder held the pool's material only between the
      // request that promoted it and its node's disable that ended its term (unlink, then SIGHUP).
      const records = await readForgingRecords([standby.record]);
      const disabled = records.find((r) => r.t > demotedAt && r.event === "disable");
      assert.ok(disabled !== undefined, "the standby's node was never disabled at demotion");
      const standbyPool = seen.samples.filter((s) => s.pod === standby.name && s.pool.length > 0);
      assert.ok(standbyPool.length > 0, "the sampler never saw the leader's keys: vacuous");
      for (const s of standbyPool) {
        assert.ok(
          s.t >= promotedAt && s.t <= disabled.t,
          `the standby held ${s.pool.join(", ")} at ${s.t}, outside its term ` +
            `[${promotedAt}, ${disabled.t}]`,
        );
      }
      // The first pod likewise: its material left before its own disable at the first handover.
      const firstRecords = await readForgingRecords([leader.record]);
      const firstOff = firstRecords.find((r) => r.t > promotedAt && r.event === "disable")!;
      for (const s of seen.samples.filter((s) => s.pod === leader.name && s.pool.length > 0)) {
        assert.ok(s.t <= firstOff.t || s.t >= demotedAt, `${leader.name} held keys at ${s.t}`);
      }
      // And no simulated node ever forged with the decoys.
      for (const pod of pods) {
        const all = await readForgingRecords([pod.record]);
        assert.ok(all.every((r) => r.event !== "enable_no_stake"), `${pod.name} enabled decoys`);
      }
    } finally {
      await seen.stop();
      await Promise.all(pods.map((p) => p.kill()));
      await Deno.remove(root, { recursive: true });
    }
  },
);
