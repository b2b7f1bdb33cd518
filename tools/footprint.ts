/**
 * `deno run -P=dev --no-prompt tools/footprint.ts`: one small measurement of the sidecar's
 * footprint, for comparing V8 flags, transports or a change without running the whole benchmark.
 * Starts the local control plane and, per KUBE_TRANSPORT in `--transports`, `--replicas`
 * simulated pods in a namespace of their own (production timings), waits for each set's leader,
 * then samples every sidecar over the same window: resident and anonymous memory, CPU over
 * `--seconds` (with the load average beside it: CPU figures are noisy on a busy machine), the CPU
 * and the context switches (wake-ups) per second per thread, and API requests per second.
 *
 * Usage: deno run -P=dev --no-prompt tools/footprint.ts [--replicas N] [--seconds S]
 *          [--transports undici,deno]   (default: both, the before and the after of issue 19)
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
    transports: { type: "string", default: "undici,deno" },
    "v8-flags": { type: "string" },
  },
});
const flagsArg = values["v8-flags"];
const v8Flags = flagsArg === undefined ? shippedV8Flags() : flagsArg === "none" ? "" : flagsArg;
const transports = values.transports.split(",").map((t) => t.trim()).filter((t) => t !== "");
for (const t of transports) {
  if (t !== "undici" && t !== "deno") {
    console.error(`Cannot measure: --transports has ${JSON.stringify(t)}, expected undici or deno`);
    Deno.exit(2);
  }
}
const timing = {
  LEASE_DURATION: "15",
  RENEW_DEADLINE: "10",
  ACQUIRE_DELAY: "2",
  SLEEP_INTERVAL: "5",
};

const cp = await startControlPlane();
const root = await Deno.makeTempDir({ prefix: "forge-manager-footprint-" });
const pods: Pod[] = [];
const transportOf = new Map<Pod, string>();
const leaders = new Set<Pod>();
try {
  const credentials = makeCredentialSet();
  for (const transport of transports) {
    const namespace = `cardano-footprint-${transport}`;
    const kubeconfig = await installForgeManager(cp, namespace);
    const set: Pod[] = [];
    for (let i = 0; i < Number(values.replicas); i++) {
      const pod = await startPod({
        name: `fp-${transport}-${i}`,
        dir: `${root}/fp-${transport}-${i}`,
        credentials,
        v8Flags,
        env: { NAMESPACE: namespace, KUBECONFIG: kubeconfig, KUBE_TRANSPORT: transport, ...timing },
      });
      set.push(pod);
      transportOf.set(pod, transport);
    }
    pods.push(...set);
    leaders.add(await waitForSingleForger(set, 90_000));
  }
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
      transport: transportOf.get(p),
      role: leaders.has(p) ? "leader" : "standby",
      rssMiB: Number((now.rssBytes / 2 ** 20).toFixed(1)),
      anonMiB: Number((now.anonBytes / 2 ** 20).toFixed(1)),
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
