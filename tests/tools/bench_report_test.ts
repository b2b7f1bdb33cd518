/** tools/bench_report.ts: the benchmark's tables from its figures. */

import assert from "node:assert/strict";
import {
  BEFORE,
  benchReport,
  type BenchResult,
  type SetResult,
  TARGETS,
  type Transport,
} from "../../tools/bench_report.ts";

const MIB = 2 ** 20;

function set(transport: Transport, cpu: number, sighup: number, peak: number): SetResult {
  const stats = (x: number) => ({ n: 2, median: x, p95: 2 * x, max: 2 * x });
  const reading = { usage: peak * MIB, peak: peak * MIB, anon: (peak - 5) * MIB, oomKills: 0 };
  const guardReading = { usage: 30 * MIB, peak: 35 * MIB, anon: 20 * MIB, oomKills: 0 };
  return {
    transport,
    namespace: `cardano-bench-${transport}`,
    handoverMs: stats(sighup + 10),
    sigtermToNewSighupMs: stats(sighup),
    timelines: [],
    failoverMs: stats(15_000),
    overlapMsTotal: 0,
    steady: [
      {
        pod: `bench-${transport}-0`,
        role: "leader",
        guard: { rssMiB: 40, cpuPercent: 0.02 },
        rssMiB: peak + 40,
        anonMiB: peak - 5,
        cpuPercent: cpu,
        apiRequestsPerSecond: 0.5,
        apiRequestsByOperation: "renew 0.40",
        threads: "worker-2 0.20 % (10.0/s), V8 DefaultWorke 0.02 % (2.0/s)",
      },
      {
        pod: `bench-${transport}-1`,
        role: "standby",
        guard: { rssMiB: 41, cpuPercent: 0.03 },
        rssMiB: peak + 38,
        anonMiB: peak - 6,
        cpuPercent: cpu - 0.1,
        apiRequestsPerSecond: 0.3,
        apiRequestsByOperation: "get 0.20",
        threads: "worker-2 0.15 % (7.0/s), deno 0.03 % (1.0/s)",
      },
    ],
    firstForgerMs: 19_000,
    memory: {
      cgroups: true,
      phases: { "start-up": { a: reading }, handovers: { a: reading }, steady: { a: reading } },
      oomKills: 0,
    },
    guardMemory: {
      cgroups: true,
      phases: { "start-up": { a: guardReading }, handovers: {}, steady: { a: guardReading } },
      oomKills: 0,
    },
  };
}

function run(sets: SetResult[]): BenchResult {
  return {
    date: "2026-12-05T00:00:00.000Z",
    timing: { LEASE_DURATION: "15", RENEW_DEADLINE: "10", ACQUIRE_DELAY: "2", SLEEP_INTERVAL: "5" },
    rounds: 2,
    loadAverage: { before: 0.5, after: 0.4 },
    steadySeconds: 60,
    limit: { quantity: "128Mi", bytes: 128 * MIB, requests: "64Mi" },
    guardLimit: { quantity: "96Mi", bytes: 96 * MIB, requests: "64Mi" },
    sets,
    targets: { ...TARGETS, failoverMaxMs: 17_000 },
    before: BEFORE,
  };
}

Deno.test("two sets get their own tables and a side-by-side one, the before (undici) first, beside the targets", () => {
  // The after is listed first in the run: the table still puts the before first.
  const text = benchReport(run([set("deno", 0.3, 40, 105), set("undici", 0.45, 80, 118)]));
  assert.match(text, /forge-manager benchmark, KUBE_TRANSPORT=deno/);
  assert.match(text, /forge-manager benchmark, KUBE_TRANSPORT=undici/);
  const side = text.slice(text.indexOf("before and after, one run, side by side"));
  assert.match(side, /figure\s+undici \(before\)\s+deno \(after\)\s+target/);
  assert.match(side, /SIGTERM -> new SIGHUP median \(ms\)\s+80\s+40\s+<= 50/);
  assert.match(side, /SIGTERM -> new SIGHUP p95 \(ms\)\s+160\s+80\s+<= 100/);
  assert.match(side, /CPU % leader\s+0\.45\s+0\.30\s+<= 0\.2/);
  assert.match(side, /worker thread wake-ups\/s leader\s+10\.0\s+10\.0/);
  assert.match(side, /all threads wake-ups\/s, mean\s+10\.0\s+10\.0/);
  assert.match(side, /cgroup peak MiB, handovers\s+118\.0\s+105\.0\s+limit 128Mi/);
  assert.match(side, /OOM kills\s+0\s+0\s+0/);
  // The guard beside each sidecar, as shipped.
  assert.match(side, /guard CPU %\s+0\.02-0\.03\s+0\.02-0\.03/);
  assert.match(side, /guard cgroup peak MiB, any phase\s+35\.0\s+35\.0\s+limit 96Mi/);
  assert.match(text, /guard memory under limits\.memory 96Mi/);
});

Deno.test("one set prints only its own table", () => {
  const text = benchReport(run([set("deno", 0.1, 40, 100)]));
  assert.match(text, /KUBE_TRANSPORT=deno/);
  assert.doesNotMatch(text, /side by side/);
  assert.match(
    text,
    /SIGTERM -> new SIGHUP \(ms\)\s+40\s+80\s+80\s+median <= 50 ok, p95 <= 100 ok/,
  );
});
