/**
 * `deno task bench`: measures forge-manager on the local control plane with real processes.
 *
 * - planned handover: SIGTERM to the leader's sidecar, until another node has the keys and was
 *   signalled (its "enable" record); the sidecar is then started again in its pod;
 * - unplanned failover: the leader's whole pod is killed, until another node forges; a fresh pod
 *   replaces it;
 * - steady state: resident memory and CPU of each sidecar process, and Kubernetes API requests
 *   per second per replica (from forge_manager_api_requests_total);
 * - memory under the shipped limit: each sidecar runs in a memory cgroup of its own with the
 *   StatefulSet's `limits.memory` (tools/memory_cgroup.ts, root only), from its first instruction:
 *   the peak during start-up, during the planned handovers (restarts included) and in the steady
 *   state, the anonymous memory at rest, and any OOM kill. The shipped resources rest on these.
 * - the guard, as shipped: each pod runs `forge-manager guard` beside its sidecar, in a memory
 *   cgroup of its own under its container's limit, and the sidecars run with FENCE=guard; its
 *   memory per phase and its RSS and CPU at rest are printed too.
 * - before and after (issue 19): one set of three sidecars per KUBE_TRANSPORT (`undici`,
 *   client-node's own HTTP stack, the before; `deno`, Deno's fetch, the default), each set in a
 *   namespace of its own, run side by side under the same load (tools/bench_set.ts): handovers
 *   and failovers alternate between the sets, and the steady state is one window for both.
 * Overlap (ms during which more than one node of a set forged) is computed over the whole run from
 * the simulated nodes' own records. Each planned handover also gets a timeline (SIGTERM received,
 * old node disabled, SIGHUP sent, release written, standby saw it, acquire written, SIGHUP sent,
 * new node enabled) from the sidecars' debug logs (tools/handover_timeline.ts). Prints a table
 * beside the targets (issue 12) and writes the figures as JSON. CPU figures print the load
 * average beside them: on a busy machine they are noisy.
 *
 * Usage: deno task bench [--rounds N] [--steady SECONDS] [--fast] [--transports LIST]
 *          [--memory-limit Q] [--out FILE]
 *        deno task bench --print FILE
 *        deno task bench --cluster [--rounds N] [--out FILE]
 *        deno task bench --lost [--rounds N] [--out FILE]
 *        deno task bench --clusters [--rounds N] [--out FILE]
 *   --fast uses the test timings (lease 4 s) instead of the production defaults (lease 15 s).
 *   --transports the sets to run, comma-separated (default undici,deno: before and after).
 *   --memory-limit: the sidecars' cgroup limit (default: the StatefulSet's limits.memory; `none`
 *   runs them and their guards without a cgroup, as before the memory figures existed; another
 *   quantity, such as 128Mi, tries a smaller limit: the headroom row says what it leaves).
 *   --print shows a saved run's tables again, without running anything.
 *   --cluster runs instead the operator's steps on the dummy example under the real StatefulSet
 *   controller (tools/bench_cluster.ts): rows for pod deletion, rolling restart, scale and a
 *   node that stops reporting; each round is one fresh cluster (about 2.5 min).
 *   --lost runs instead the leader's machine lost four ways with the guard (tools/bench_lost.ts):
 *   when the old node stopped and another forged, beside the bounds; about 1.5 min a round.
 *   --clusters runs instead one pool across two clusters and a coordination cluster
 *   (tools/bench_clusters.ts): a planned handover between clusters and the return, a whole
 *   cluster cut off and the return; about 3 min a round.
 */

import { parseArgs } from "node:util";
import { startControlPlane } from "../tests/support/control_plane.ts";
import { FAST_TIMING } from "../tests/support/replicas.ts";
import { makeCredentialSet } from "../tests/support/keys.ts";
import { sleep } from "../tests/support/wait.ts";
import { benchCluster } from "./bench_cluster.ts";
import { benchLost } from "./bench_lost.ts";
import { benchClusters } from "./bench_clusters.ts";
import { BENCH_NETWORK, benchRules, rulesReport } from "./bench_rules.ts";
import { kesPeriodAt, NETWORK_KES_TIMING } from "../lib/cardano/kes_period.ts";
import { sidecarLimit } from "./bench_memory.ts";
import {
  BEFORE,
  benchReport,
  type BenchResult,
  type SteadyRow,
  TARGETS,
  type Transport,
} from "./bench_report.ts";
import { BenchSet } from "./bench_set.ts";
import { loadAverage } from "./proc_figures.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "5" },
    steady: { type: "string", default: "60" },
    fast: { type: "boolean", default: false },
    transports: { type: "string", default: "undici,deno" },
    out: { type: "string" },
    print: { type: "string" },
    cluster: { type: "boolean", default: false },
    lost: { type: "boolean", default: false },
    clusters: { type: "boolean", default: false },
    "memory-limit": { type: "string" },
  },
});
if (values.print !== undefined) {
  // A saved run's tables again, without running anything.
  console.log(benchReport(JSON.parse(await Deno.readTextFile(values.print)) as BenchResult));
  Deno.exit(0);
}
if (values.lost) {
  await benchLost(Number(values.rounds ?? "5"), values.out ?? "bench-results/bench-lost.json");
  Deno.exit(0);
}
if (values.clusters) {
  await benchClusters(
    Number(values.rounds ?? "5"),
    values.out ?? "bench-results/bench-clusters.json",
  );
  Deno.exit(0);
}
if (values.cluster) {
  await benchCluster(
    Number(values.rounds ?? "5"),
    values.out ?? "bench-results/bench-cluster.json",
  );
  Deno.exit(0);
}
const out = values.out ?? "bench-results/bench.json";
const rounds = Number(values.rounds);
const steadySeconds = Number(values.steady);
const transports = values.transports.split(",").map((t) => t.trim()).filter((t) => t !== "");
for (const t of transports) {
  if (t !== "undici" && t !== "deno") {
    console.error(
      `Cannot run the benchmark: --transports has ${JSON.stringify(t)}, expected undici or deno`,
    );
    Deno.exit(2);
  }
}
const timing = values.fast
  ? FAST_TIMING
  : { LEASE_DURATION: "15", RENEW_DEADLINE: "10", ACQUIRE_DELAY: "2", SLEEP_INTERVAL: "5" };
const leaseSeconds = Number(timing.LEASE_DURATION);

const log = (line: string) => console.error(line);

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
  return { n: s.length, median: at(0.5), p95: at(0.95), max: s[s.length - 1] ?? NaN };
}

const cp = await startControlPlane();
const root = await Deno.makeTempDir({ prefix: "forge-manager-bench-" });
// The keys' folder on tmpfs, as the shipped StatefulSet has it (emptyDir, medium: Memory): an
// fsync there costs nothing, on a disk it is most of a placement. Deno refuses paths under /dev
// (/dev/shm) without all permissions, so a tmpfs of our own is mounted (needs root).
const shm = await mountTmpfs(`${root}/tmpfs`);
console.log(
  shm !== undefined
    ? "keys' folders on tmpfs, as shipped"
    : "keys' folders on disk (cannot mount a tmpfs: not root?); placements cost fsyncs",
);
const limit = await sidecarLimit(values["memory-limit"]);
// The guard as shipped (its own container's limit); none when the sidecars run without cgroups.
const guardLimit = limit.bytes === 0 ? limit : await sidecarLimit(undefined, "forge-manager-guard");
const sets: BenchSet[] = [];
try {
  const ctx = {
    cp,
    root,
    shm,
    // The nodes run on preview's clock (their sync is known, for issue 20's rounds): a
    // certificate valid on it.
    credentials: makeCredentialSet({
      kesStartPeriod: kesPeriodAt(NETWORK_KES_TIMING[BENCH_NETWORK], Date.now()),
    }),
    chainNetwork: BENCH_NETWORK,
    timing,
    limitBytes: limit.bytes,
    guardLimitBytes: guardLimit.bytes,
  };
  // Fresh deployments: no Lease yet. Each set's first forger comes after the create's probation.
  for (const transport of transports as Transport[]) {
    sets.push(await BenchSet.start(ctx, transport));
  }
  log(`timings: ${JSON.stringify(timing)}; sets ${transports.join(", ")}; waiting for leaders...`);
  const firstForgeTimeout = (3 * leaseSeconds + 30) * 1000;
  await Promise.all(sets.map((set) => set.firstLeader(firstForgeTimeout)));
  for (const set of sets) await set.memoryPhase("start-up");

  // The sets take turns, so both see the same machine over the run.
  for (let r = 0; r < rounds; r++) {
    for (const set of sets) {
      log(`handover ${r + 1}/${rounds} [${set.transport}]: ${await set.handover()}`);
      await sleep(3000); // let the restarted sidecar join as a standby
    }
  }
  for (const set of sets) await set.memoryPhase("handovers");

  for (let r = 0; r < rounds; r++) {
    for (const set of sets) {
      const line = await set.failover((2 * leaseSeconds + 30) * 1000);
      log(`failover ${r + 1}/${rounds} [${set.transport}]: ${line}`);
    }
  }

  // Issue 20's planned handovers, on the shipped transport's set (the last one).
  const ruledSet = sets.at(-1)!;
  const operator = await cp.mintIdentity({
    namespace: ruledSet.namespace,
    serviceAccount: "operator",
    roleName: "forge-manager-operator",
  });
  const ruled = await benchRules({
    live: ruledSet.live,
    leader: ruledSet.leader!,
    slotsFile: ruledSet.slotsFile,
    operator,
    namespace: ruledSet.namespace,
    log,
  }, rounds);
  ruledSet.leader = ruled.leader;

  log(`steady state for ${steadySeconds} s, every set at once...`);
  await sleep(5000);
  const loadBefore = loadAverage();
  for (const set of sets) await set.steadyStart();
  const t0 = performance.now();
  await sleep(steadySeconds * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const steady = new Map<BenchSet, SteadyRow[]>();
  for (const set of sets) steady.set(set, await set.steadyEnd(seconds));
  const loadAfter = loadAverage();
  for (const set of sets) await set.memoryPhase("steady");

  const results = [];
  for (const set of sets) {
    results.push({
      transport: set.transport,
      namespace: set.namespace,
      handoverMs: stats(set.handovers),
      sigtermToNewSighupMs: stats(
        set.timelines.map((t) => t.newSighupSent).filter((x): x is number => x !== undefined),
      ),
      timelines: set.timelines,
      failoverMs: stats(set.failovers),
      overlapMsTotal: await set.overlapMs(),
      steady: steady.get(set)!,
      firstForgerMs: set.firstForgerMs,
      memory: {
        cgroups: set.cgroups.size > 0,
        phases: set.memory,
        oomKills: await set.oomKills(set.cgroups),
      },
      guardMemory: {
        cgroups: set.guardCgroups.size > 0,
        phases: set.guardMemory,
        oomKills: await set.oomKills(set.guardCgroups),
      },
    });
  }
  const result: BenchResult = {
    date: new Date().toISOString(),
    timing,
    rounds,
    loadAverage: { before: loadBefore, after: loadAfter },
    steadySeconds: seconds,
    limit,
    guardLimit,
    sets: results,
    targets: { ...TARGETS, failoverMaxMs: (leaseSeconds + 2) * 1000 },
    before: BEFORE,
    rules: { transport: ruledSet.transport, figures: ruled.figures },
  };
  await Deno.mkdir(out.replace(/\/[^/]*$/, ""), { recursive: true }).catch(() => {});
  await Deno.writeTextFile(out, JSON.stringify(result, null, 2) + "\n");

  console.log(benchReport(result));
  console.log(rulesReport(ruled.figures, ruledSet.transport));
  console.log(`\nfigures written to ${out}`);
} finally {
  await Promise.all(sets.map((set) => set.stop()));
  await cp.stop();
  if (shm !== undefined) await new Deno.Command("umount", { args: [shm] }).output().catch(() => {});
  // BENCH_KEEP=1 keeps the pods' folders (sidecar logs, forging records) for a closer look.
  if (Deno.env.get("BENCH_KEEP") === "1") console.log(`pods kept in ${root}`);
  else await Deno.remove(root, { recursive: true }).catch(() => {});
}

/** Mounts a small tmpfs at `dir` (created); undefined when that is not allowed. */
async function mountTmpfs(dir: string): Promise<string | undefined> {
  await Deno.mkdir(dir, { recursive: true });
  const out = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", dir],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => undefined);
  return out?.success ? dir : undefined;
}
