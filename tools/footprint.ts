/**
 * `deno run -P=dev --no-prompt tools/footprint.ts`: one small measurement of the sidecar's
 * footprint, for comparing V8 flags or a change without running the whole benchmark. Starts the
 * local control plane and `--replicas` simulated pods (production timings), waits for a leader,
 * then samples each sidecar process: resident memory, CPU over `--seconds` (with the load
 * average beside it: CPU figures are noisy on a busy machine), the CPU and the context switches
 * (wake-ups) per second per thread, and API requests per second.
 *
 * Usage: deno run -P=dev --no-prompt tools/footprint.ts [--replicas N] [--seconds S]
 *          [--v8-flags FLAGS]   (default: deno.json's `start` task's; "none" for none)
 */

import { parseArgs } from "node:util";
import { startControlPlane } from "../tests/support/control_plane.ts";
import { installForgeManager } from "../tests/support/replicas.ts";
import { type Pod, shippedV8Flags, startPod } from "../tests/support/pod.ts";
import { makeCredentialSet } from "../tests/support/keys.ts";
import { waitForSingleForger } from "../tests/support/scenario.ts";
import { sleep } from "../tests/support/wait.ts";
import { apiRequests, loadAverage, procStat, threadSwitches, threadTicks } from "./proc_figures.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    replicas: { type: "string", default: "2" },
    seconds: { type: "string", default: "30" },
    "v8-flags": { type: "string" },
  },
});
const flagsArg = values["v8-flags"];
const v8Flags = flagsArg === undefined ? shippedV8Flags() : flagsArg === "none" ? "" : flagsArg;
const timing = {
  LEASE_DURATION: "15",
  RENEW_DEADLINE: "10",
  ACQUIRE_DELAY: "2",
  SLEEP_INTERVAL: "5",
};

const cp = await startControlPlane();
const root = await Deno.makeTempDir({ prefix: "forge-manager-footprint-" });
const pods: Pod[] = [];
try {
  const kubeconfig = await installForgeManager(cp, "cardano-footprint");
  const credentials = makeCredentialSet();
  for (let i = 0; i < Number(values.replicas); i++) {
    pods.push(
      await startPod({
        name: `fp-${i}`,
        dir: `${root}/fp-${i}`,
        credentials,
        v8Flags,
        env: { NAMESPACE: "cardano-footprint", KUBECONFIG: kubeconfig, ...timing },
      }),
    );
  }
  const leader = await waitForSingleForger(pods, 90_000);
  await sleep(5000);
  const pids = pods.map((p) => p.pids().sidecar!);
  const before = await Promise.all(pods.map(async (p, i) => ({
    stat: procStat(pids[i]!),
    threads: threadTicks(pids[i]!),
    switches: threadSwitches(pids[i]!),
    requests: await apiRequests(p.metricsPort),
  })));
  const loadBefore = loadAverage();
  const t0 = performance.now();
  await sleep(Number(values.seconds) * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const loadAfter = loadAverage();
  const rows = await Promise.all(pods.map(async (p, i) => {
    const now = procStat(pids[i]!);
    const threads = threadTicks(pids[i]!);
    const perThread = Object.fromEntries(
      Object.entries(threads).map(([name, ticks]) => [
        name,
        Number(((ticks - (before[i]!.threads[name] ?? 0)) / seconds).toFixed(3)), // % of a core
      ]).filter(([, pct]) => (pct as number) > 0),
    );
    const switches = threadSwitches(pids[i]!);
    const wakeups = Object.fromEntries(
      Object.entries(switches).map(([name, n]) => [
        name,
        Number(((n - (before[i]!.switches[name] ?? 0)) / seconds).toFixed(1)),
      ]).filter(([, rate]) => (rate as number) > 0),
    );
    return {
      pod: p.name,
      role: p === leader ? "leader" : "standby",
      rssMiB: Number((now.rssBytes / 2 ** 20).toFixed(1)),
      cpuPercent: Number(
        ((100 * (now.cpuSeconds - before[i]!.stat.cpuSeconds)) / seconds).toFixed(3),
      ),
      apiRequestsPerSecond: Number(
        (((await apiRequests(p.metricsPort)) - before[i]!.requests) / seconds).toFixed(3),
      ),
      cpuPercentByThread: perThread,
      contextSwitchesPerSecondByThread: wakeups,
    };
  }));
  console.log(JSON.stringify(
    { v8Flags, seconds: Number(seconds.toFixed(1)), loadBefore, loadAfter, sidecars: rows },
    null,
    2,
  ));
} finally {
  await Promise.all(pods.map((p) => p.kill()));
  await cp.stop();
  await Deno.remove(root, { recursive: true }).catch(() => {});
}
