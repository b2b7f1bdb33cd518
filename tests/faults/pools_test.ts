/**
 * Fault suite 13 (issue 18): two pools side by side in one namespace, each with its own Lease,
 * CardanoLeader, Roles and identity (the names manifests/examples/second-pool/ gives the second
 * pool: the shipped ones with the suffix -pool-b) and its own credential set, three replicas
 * each. While the first pool hands over (forge-manager handover, pointed at its CardanoLeader),
 * loses its leader's pod, and is paused and resumed, the second pool's forger forges on without a
 * break; then the same the other way round. Fails on any overlap within a pool, on any gap in the
 * other pool's forging, and on a forger of one pool using the other's Lease.
 */

import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { FAULT_TEST_OPTIONS } from "../support/fault_suite.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { FaultCluster, nowMs, printTable, type Row, secs } from "../support/fault_cluster.ts";
import { runMain } from "../support/run_main.ts";
import { poolNames } from "../support/replicas.ts";
import { sleep } from "../support/wait.ts";

const NAMESPACE = "two-pools";

/** The pool's forger's intervals since `at`: one, still open, means it never stopped. */
async function unbroken(pool: FaultCluster, since: number): Promise<string | undefined> {
  const intervals = (await pool.intervals()).filter((i) => i.end > since);
  if (intervals.length === 1 && intervals[0]!.endedBy === "open" && intervals[0]!.start < since) {
    return undefined;
  }
  return intervals.map((i) => `${i.node} ${i.start}-${i.end} (${i.endedBy})`).join("; ") ||
    "nobody forged";
}

Deno.test(
  "fault suite 13: two pools in one namespace never disturb each other",
  FAULT_TEST_OPTIONS,
  async (t) => {
    const cp = await sharedControlPlane();
    await using a = await FaultCluster.start({
      cp,
      namespace: NAMESPACE,
      names: ["a-0", "a-1", "a-2"],
    });
    await using b = await FaultCluster.start({
      cp,
      namespace: NAMESPACE,
      names: ["b-0", "b-1", "b-2"],
      pool: { suffix: "-pool-b" },
    });
    const rows: Row[] = [];
    const pools = { a, b };
    await t.step("13a each pool elects its own forger, on its own Lease", async () => {
      const [fa, fb] = await Promise.all([a.waitSingleForger(30_000), b.waitSingleForger(30_000)]);
      assert.ok(fa.startsWith("a-") && fb.startsWith("b-"), `${fa}, ${fb}`);
      assert.notEqual(a.leaseName, b.leaseName);
      assert.equal((await a.readLease())?.spec?.holderIdentity?.startsWith(`${fa}_`), true);
      assert.equal((await b.readLease())?.spec?.holderIdentity?.startsWith(`${fb}_`), true);
    });

    for (const [name, pool, other] of [["a", a, b], ["b", b, a]] as const) {
      const names = poolNames(pool === b ? { suffix: "-pool-b" } : undefined);
      const operator = await cp.mintIdentity({
        namespace: NAMESPACE,
        serviceAccount: `operator-${name}`,
        roleName: names.role.replace("forge-manager", "forge-manager-operator"),
      });
      await t.step(
        `13b pool ${name} hands over, loses its leader's pod, pauses: the other forges on`,
        async () => {
          const since = nowMs();
          // A planned handover with the operator's command, pointed at this pool's CardanoLeader.
          const from = await pool.waitSingleForger(10_000);
          const handover = await runMain([
            "handover",
            "--kubeconfig",
            operator,
            "-n",
            NAMESPACE,
            "--lease",
            pool.leaseName,
            "--cardano-leader",
            pool.cardanoLeaderName,
            "--timeout",
            "30s",
          ]);
          assert.equal(handover.code, 0, handover.stdout + handover.stderr);
          const to = await pool.waitSingleForger(10_000, [from]);
          // Its new leader's pod is lost: killed, then its Pod deleted.
          const killedAt = nowMs();
          await pool.current(to).pod.kill();
          await pool.deletePod(to);
          const next = await pool.waitSingleForger(30_000, [to]);
          const takeover = (await pool.figures(killedAt, to)).takeoverMs;
          await pool.recreate(to);
          // Paused, then resumed.
          const pause = await runMain([
            "pause",
            "--kubeconfig",
            operator,
            "-n",
            NAMESPACE,
            "--cardano-leader",
            pool.cardanoLeaderName,
            "--lease",
            pool.leaseName,
            "--reason",
            "two-pools test",
          ]);
          assert.equal(pause.code, 0, pause.stdout + pause.stderr);
          assert.deepEqual(await pool.forgersDuring(3_000), [], "a paused pool forged");
          const resume = await runMain([
            "resume",
            "--kubeconfig",
            operator,
            "-n",
            NAMESPACE,
            "--cardano-leader",
            pool.cardanoLeaderName,
            "--lease",
            pool.leaseName,
          ]);
          assert.equal(resume.code, 0, resume.stdout + resume.stderr);
          await pool.waitSingleForger(20_000);
          const gap = await unbroken(other, since);
          const overlap = (await pool.figures(since, next)).overlapMs;
          const otherOverlap = (await other.figures(since, next)).overlapMs;
          rows.push({
            scenario: `13b pool ${name}: handover, lost pod, pause`,
            overlapMs: Math.max(overlap, otherOverlap),
            takeoverMs: takeover,
            note: gap === undefined ? "the other pool forged on without a break" : `other: ${gap}`,
          });
          assert.equal(overlap, 0, `pool ${name}: two forgers`);
          assert.equal(otherOverlap, 0);
          assert.equal(gap, undefined, `the other pool's forging broke: ${gap}`);
          assert.ok(takeover !== null, `no takeover after ${secs(takeover)}`);
        },
      );
    }

    await t.step("13c the Leases: each names only its own pool's replicas", async () => {
      await sleep(1_000);
      const api = cp.admin().makeApiClient(k8s.CoordinationV1Api);
      for (const [name, pool] of Object.entries(pools)) {
        const lease = await api.readNamespacedLease({ name: pool.leaseName, namespace: NAMESPACE });
        assert.ok(
          lease.spec?.holderIdentity?.startsWith(`${name}-`),
          `${lease.spec?.holderIdentity}`,
        );
      }
    });
    printTable("fault suite 13 (two pools in one namespace; lease 4 s, deadline 2 s)", rows);
  },
);
