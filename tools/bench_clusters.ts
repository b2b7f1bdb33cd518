/**
 * `deno task bench --clusters`: one pool across two clusters and a coordination cluster (issue
 * 18; tests/support/multi_cluster.ts: three control planes, two replicas per cluster with the
 * guard and FENCE=guard), the shipped timings (lease 15 s, renew deadline 10 s, acquire delay
 * 2 s, PRIORITY_DELAY 10 s) but RETURN_STABLE 20 s (60 s shipped: only the wait before each
 * return grows). Per round:
 * - a planned handover between clusters (the coordination CardanoLeader's spec.handover, as
 *   `forge-manager handover --to west` writes it): from the request to the new forger, and the
 *   gap between the old node's stop and the new node's start; then the return to the
 *   priority-1 cluster (a planned handover of its own), its gap;
 * - a failover: the forging cluster cut off whole (its API server and the coordinator): when its
 *   node stopped (its guard) and when the other cluster forged, beside the bounds; then the
 *   return once it is back.
 * Prints each figure beside its target, and the overlap over the whole run (target 0). Writes
 * the figures as JSON.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { COORDINATION_NAMESPACE, MultiCluster } from "../tests/support/multi_cluster.ts";
import { nowMs } from "../tests/support/fault_cluster.ts";

/** The shipped timings, but a shorter RETURN_STABLE (the bench waits for every return). */
const TIMING = {
  LEASE_DURATION: "15",
  RENEW_DEADLINE: "10",
  ACQUIRE_DELAY: "2",
  SLEEP_INTERVAL: "5",
  PRIORITY_DELAY: "10",
  RETURN_STABLE: "20",
};
/** A planned handover's gap between the old node's stop and the new node's start. */
const HANDOVER_GAP_TARGET_MS = 5_000;
/** RENEW_DEADLINE + GUARD_REACTION + 1 s: the cut-off cluster's node has stopped by then. */
const STOP_BOUND_MS = (10 + 1 + 1) * 1000;
/**
 * LEASE_DURATION + ACQUIRE_DELAY + PRIORITY_DELAY after the last renew the candidate saw, which it
 * polls every retry period (2.5 s), + 5 s for the write and the promotion: the other cluster
 * forges by then.
 */
const FAILOVER_BOUND_MS = (15 + 2 + 10 + 2.5 + 5) * 1000;

interface Round {
  handoverMs: number;
  handoverGapMs: number;
  returnGapMs: number;
  failoverStoppedMs: number;
  failoverMs: number;
  failoverReturnGapMs: number;
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
  return { median: at(0.5), max: s[s.length - 1] ?? NaN };
}

/** The gap between the last stop of `from`'s nodes before `to` started, and that start. */
async function gap(pool: MultiCluster, from: string, to: string, since: number): Promise<number> {
  const intervals = await pool.intervals();
  const start = Math.min(
    ...intervals.filter((i) => i.node.startsWith(`${to}:`) && i.start > since).map((i) => i.start),
  );
  const stop = Math.max(
    ...intervals.filter((i) => i.node.startsWith(`${from}:`) && i.end <= start).map((i) => i.end),
  );
  return start - stop;
}

async function requestHandover(pool: MultiCluster, to: string): Promise<void> {
  const api = pool.coordinator.admin().makeApiClient(k8s.CustomObjectsApi);
  await api.patchNamespacedCustomObject(
    {
      group: "cardano.io",
      version: "v1",
      plural: "cardanoleaders",
      namespace: COORDINATION_NAMESPACE,
      name: "cardano-leader",
      body: {
        spec: {
          handover: {
            id: crypto.randomUUID().slice(0, 8),
            to,
            by: "bench",
            at: new Date().toISOString(),
          },
        },
      },
    },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
  );
}

/** Runs the benchmark across clusters and prints its table. */
export async function benchClusters(rounds: number, out: string): Promise<void> {
  await using pool = await MultiCluster.start({
    namespace: "cardano-bench",
    clusters: [{ name: "east", priority: 1 }, { name: "west", priority: 2 }],
    env: TIMING,
  });
  await pool.waitSingleForger(90_000, "east");
  const runs: Round[] = [];
  for (let r = 0; r < rounds; r++) {
    // A planned handover east -> west, then the return to east.
    const asked = nowMs();
    await requestHandover(pool, "west");
    await pool.waitSingleForger(60_000, "west");
    const handoverMs = nowMs() - asked;
    const handoverGapMs = await gap(pool, "east", "west", asked);
    const westAt = nowMs();
    await pool.waitSingleForger(120_000, "east");
    const returnGapMs = await gap(pool, "west", "east", westAt);
    // A failover: east cut off whole; west takes over after the bound; east comes back.
    const faultAt = nowMs();
    pool.cutOff("east");
    await pool.waitSingleForger(90_000, "west");
    const intervals = await pool.intervals();
    const failoverStoppedMs = Math.max(
      ...intervals.filter((i) => i.node.startsWith("east:") && i.start < faultAt).map((i) => i.end),
    ) - faultAt;
    const failoverMs = (await pool.takeoverMs(faultAt, "east")) ?? Infinity;
    const backAt = nowMs();
    pool.restore("east");
    await pool.waitSingleForger(180_000, "east");
    const failoverReturnGapMs = await gap(pool, "west", "east", backAt);
    const round = {
      handoverMs,
      handoverGapMs,
      returnGapMs,
      failoverStoppedMs,
      failoverMs,
      failoverReturnGapMs,
    };
    runs.push(round);
    console.error(
      `round ${r + 1}/${rounds}: ` +
        Object.entries(round).map(([k, v]) => `${k} ${(v / 1000).toFixed(2)} s`).join(", "),
    );
  }
  const overlapMs = await pool.overlapMs();
  await Deno.mkdir(out.replace(/\/[^/]*$/, ""), { recursive: true }).catch(() => {});
  await Deno.writeTextFile(
    out,
    JSON.stringify({ date: new Date().toISOString(), rounds, timing: TIMING, runs, overlapMs }) +
      "\n",
  );
  const f = (ms: number) => (ms / 1000).toFixed(2).padStart(7);
  const ok = (good: boolean) => (good ? "ok" : "MISSED");
  const line = (name: string, key: keyof Round, target?: number) => {
    const s = stats(runs.map((x) => x[key]));
    console.log(
      `${name.padEnd(52)} ${f(s.median)} ${f(s.max)}${
        target === undefined ? "" : `   <= ${target / 1000} s ${ok(s.max <= target)}`
      }`,
    );
  };
  console.log(
    `\none pool across two clusters (${rounds} rounds; lease 15 s, PRIORITY_DELAY 10 s, ` +
      "RETURN_STABLE 20 s; seconds, median and max)",
  );
  line("planned handover: request to the new forger", "handoverMs");
  line(
    "planned handover: gap from the old stop to the new start",
    "handoverGapMs",
    HANDOVER_GAP_TARGET_MS,
  );
  line("return to priority 1 (planned): gap", "returnGapMs", HANDOVER_GAP_TARGET_MS);
  line("failover: the cut-off cluster's node stopped", "failoverStoppedMs", STOP_BOUND_MS);
  line("failover: the other cluster forges", "failoverMs", FAILOVER_BOUND_MS);
  line("failover, then return (planned): gap", "failoverReturnGapMs", HANDOVER_GAP_TARGET_MS);
  console.log(
    `overlap of two forgers over the whole run: ${overlapMs.toFixed(0)} ms   (target 0) ${
      ok(overlapMs === 0)
    }`,
  );
  console.log(`figures written to ${out}`);
}
