/**
 * The benchmark's tables from its figures (`bench-results/bench.json`, or `deno task bench --print
 * FILE` for a saved run): per set of sidecars the table it has always printed, then, with two
 * sets, the before (KUBE_TRANSPORT=undici) and the after (deno) side by side beside the targets.
 * Every pod runs the guard beside its sidecar, as shipped: its memory and CPU are reported too.
 *
 * @module
 */

import type { RulesFigures } from "./bench_rules.ts";
import { memoryFigures } from "./bench_memory.ts";
import type { MemoryReading } from "./memory_cgroup.ts";
import type { HandoverTimeline } from "./handover_timeline.ts";

/** The values of KUBE_TRANSPORT the benchmark compares: client-node's undici (before), Deno's. */
export type Transport = "undici" | "deno";

/** One sidecar's steady-state figures. */
export interface SteadyRow {
  pod: string;
  role: "leader" | "standby";
  /** The pod's guard (`forge-manager guard`, its own process) over the same window. */
  guard: { rssMiB: number; cpuPercent: number };
  rssMiB: number;
  anonMiB: number;
  cpuPercent: number;
  apiRequestsPerSecond: number;
  apiRequestsByOperation: string;
  /** Per thread: `name cpu% (wake-ups/s)`, busiest first. */
  threads: string;
}

/** The targets: issue 12's, with issue 19's idle CPU and handover (with the claim write). */
export const TARGETS = {
  rssMiB: 100,
  idleCpuPercent: 0.2,
  apiRequestsPerSecond: 1,
  sigtermToNewSighupMedianMs: 50,
  sigtermToNewSighupP95Ms: 100,
  overlapMs: 0,
};
/** The README before issue 12: RSS, CPU of the worst replica, handover to the node forging. */
export const BEFORE = { rssMiB: 161, idleCpuPercent: 0.67, handoverMedianMs: 99 };
/** Which set is the "before" of the side-by-side table. */
const BEFORE_TRANSPORT: Transport = "undici";

/** Median, p95 and max of a sample. */
export interface Stats {
  n: number;
  median: number;
  p95: number;
  max: number;
}

/** Memory cgroup readings per phase (sidecars' or guards'). */
export interface MemoryResult {
  cgroups: boolean;
  phases: Record<"start-up" | "handovers" | "steady", Record<string, MemoryReading>>;
  oomKills: number;
}

/** One set's figures. */
export interface SetResult {
  transport: Transport;
  namespace: string;
  handoverMs: Stats;
  sigtermToNewSighupMs: Stats;
  timelines: HandoverTimeline[];
  failoverMs: Stats;
  overlapMsTotal: number;
  steady: SteadyRow[];
  firstForgerMs: number;
  memory: MemoryResult;
  guardMemory: MemoryResult;
}

/** A whole run, as bench.json holds it. */
export interface BenchResult {
  date: string;
  timing: Record<string, string>;
  rounds: number;
  loadAverage: { before: number; after: number };
  steadySeconds: number;
  /** The forge-manager container's limit the cgroups had. */
  limit: { quantity: string; bytes: number; requests: string };
  /** The forge-manager-guard container's limit the guards' cgroups had. */
  guardLimit: { quantity: string; bytes: number; requests: string };
  sets: SetResult[];
  targets: typeof TARGETS & { failoverMaxMs: number };
  before: typeof BEFORE;
  /** Issue 20's planned handovers (tools/bench_rules.ts), on one set. */
  rules?: { transport: string; figures: RulesFigures };
}

const f = (x: number, d = 0) => x.toFixed(d).padStart(8);
const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");

/** Every table of a run, as text. */
export function benchReport(run: BenchResult): string {
  const parts = run.sets.map((set) => setTable(run, set));
  if (run.sets.length > 1) parts.push(sideBySide(run));
  return parts.join("\n");
}

/** One set's table, as the benchmark printed it before it ran two sets. */
function setTable(run: BenchResult, result: SetResult): string {
  const lines: string[] = [];
  const out = (line: string) => lines.push(line);
  const leaseSeconds = Number(run.timing.LEASE_DURATION);
  out(
    `\nforge-manager benchmark, KUBE_TRANSPORT=${result.transport} (${run.rounds} rounds each, ` +
      `lease ${leaseSeconds} s)`,
  );
  out("                         median       p95       max   target");
  const h = result.sigtermToNewSighupMs;
  out(
    `SIGTERM -> new SIGHUP (ms) ${f(h.median)}  ${f(h.p95)}  ${
      f(h.max)
    }   median <= ${TARGETS.sigtermToNewSighupMedianMs} ${
      verdict(h.median <= TARGETS.sigtermToNewSighupMedianMs)
    }, p95 <= ${TARGETS.sigtermToNewSighupP95Ms} ${
      verdict(h.p95 <= TARGETS.sigtermToNewSighupP95Ms)
    }`,
  );
  out(
    `planned handover (ms)  ${f(result.handoverMs.median)}  ${f(result.handoverMs.p95)}  ${
      f(result.handoverMs.max)
    }   (until the new node's enable record; before: ${BEFORE.handoverMedianMs})`,
  );
  out(
    `unplanned failover (s) ${f(result.failoverMs.median / 1000, 2)}  ${
      f(result.failoverMs.p95 / 1000, 2)
    }  ${f(result.failoverMs.max / 1000, 2)}   max <= ${leaseSeconds + 2} ${
      verdict(result.failoverMs.max <= (leaseSeconds + 2) * 1000)
    }`,
  );
  // One wait for a created Lease (issue 13): lease + acquire delay of probation, plus the pods'
  // start-up; both waits together made it twice that.
  const probation = leaseSeconds + Number(run.timing.ACQUIRE_DELAY);
  const firstTarget = (probation + 5) * 1000;
  out(
    `first forger, fresh deployment (s) ${f(result.firstForgerMs / 1000, 2)}         <= ${
      firstTarget / 1000
    } (probation + start-up; before: 2 x ${probation} + start-up) ${
      verdict(result.firstForgerMs <= firstTarget)
    }`,
  );
  out(
    `overlap, whole run (ms) ${f(result.overlapMsTotal)}                       = 0 ${
      verdict(result.overlapMsTotal === 0)
    }`,
  );
  out(
    `\nsteady state over ${
      run.steadySeconds.toFixed(0)
    } s (load average ${run.loadAverage.before}` +
      ` -> ${run.loadAverage.after}; CPU under load is noisy):`,
  );
  out(
    `targets: RSS <= ${TARGETS.rssMiB} MiB (before ${BEFORE.rssMiB}), CPU <= ${TARGETS.idleCpuPercent} % ` +
      `(before ${BEFORE.idleCpuPercent}), API < ${TARGETS.apiRequestsPerSecond} req/s per replica`,
  );
  out("pod               role       RSS MiB  anon MiB   CPU %   API req/s");
  for (const s of result.steady) {
    const by = (x: number, target: number, unit: string, d: number) =>
      `by ${(x - target).toFixed(d)} ${unit}`;
    const missed = [
      ...(s.rssMiB <= TARGETS.rssMiB ? [] : [`memory ${by(s.rssMiB, TARGETS.rssMiB, "MiB", 0)}`]),
      ...(s.cpuPercent <= TARGETS.idleCpuPercent
        ? []
        : [`cpu ${by(s.cpuPercent, TARGETS.idleCpuPercent, "points", 2)}`]),
      ...(s.apiRequestsPerSecond < TARGETS.apiRequestsPerSecond ? [] : ["api"]),
    ];
    out(
      `${s.pod.padEnd(17)} ${s.role.padEnd(8)} ${f(s.rssMiB, 1)}  ${f(s.anonMiB, 1)} ${
        f(s.cpuPercent, 2)
      } ${f(s.apiRequestsPerSecond, 3)}   ${
        missed.length === 0 ? "ok" : `MISSED: ${missed.join(", ")}`
      }`,
    );
  }
  out("API requests per second by operation:");
  for (const s of result.steady) out(`  ${s.pod.padEnd(17)} ${s.apiRequestsByOperation}`);
  out("CPU (% of a core) and wake-ups per second by thread (README: where idle CPU goes):");
  for (const s of result.steady) out(`  ${s.pod.padEnd(17)} ${s.threads}`);
  out(
    memoryFigures(run.limit, result.memory.cgroups, result.memory.phases, result.memory.oomKills),
  );
  const guard = result.guardMemory;
  out(memoryFigures(run.guardLimit, guard.cgroups, guard.phases, guard.oomKills, "guard"));
  out("guard in the steady state (its own process, beside each sidecar):");
  for (const s of result.steady) {
    out(
      `  ${s.pod.padEnd(17)} ${s.role.padEnd(8)} RSS ${s.guard.rssMiB.toFixed(1)} MiB, CPU ${
        s.guard.cpuPercent.toFixed(2)
      } %`,
    );
  }
  return lines.join("\n");
}

/** The sets side by side: before (client-node's undici) and after (Deno's fetch), and targets. */
function sideBySide(run: BenchResult): string {
  const ordered = [...run.sets].sort((a, b) =>
    Number(b.transport === BEFORE_TRANSPORT) - Number(a.transport === BEFORE_TRANSPORT)
  );
  const leaseSeconds = Number(run.timing.LEASE_DURATION);
  const limit = `limit ${run.limit.quantity}`;
  const guardLimit = `limit ${run.guardLimit.quantity}`;
  const rows: [string, (r: SetResult) => string, string][] = [
    ["SIGTERM -> new SIGHUP median (ms)", (r) => r.sigtermToNewSighupMs.median.toFixed(0), "<= 50"],
    ["SIGTERM -> new SIGHUP p95 (ms)", (r) => r.sigtermToNewSighupMs.p95.toFixed(0), "<= 100"],
    ["planned handover median (ms)", (r) => r.handoverMs.median.toFixed(0), ""],
    ["planned handover p95 (ms)", (r) => r.handoverMs.p95.toFixed(0), ""],
    [
      "unplanned failover max (s)",
      (r) => (r.failoverMs.max / 1000).toFixed(2),
      `<= ${leaseSeconds + 2}`,
    ],
    ["overlap (ms)", (r) => r.overlapMsTotal.toFixed(0), "0"],
    ["CPU % leader", (r) => range(r, "leader", (s) => s.cpuPercent), "<= 0.2"],
    ["CPU % standbys", (r) => range(r, "standby", (s) => s.cpuPercent), "<= 0.2"],
    ["worker thread wake-ups/s leader", (r) => range(r, "leader", workerWakeups, 1), ""],
    ["worker thread wake-ups/s standbys", (r) => range(r, "standby", workerWakeups, 1), ""],
    ["all threads wake-ups/s, mean", (r) => mean(r, allWakeups), ""],
    ["RSS MiB", (r) => range(r, undefined, (s) => s.rssMiB, 0), "<= 100"],
    ["anonymous MiB", (r) => range(r, undefined, (s) => s.anonMiB, 0), ""],
    ["API req/s leader", (r) => range(r, "leader", (s) => s.apiRequestsPerSecond), "< 1"],
    ["API req/s standbys", (r) => range(r, "standby", (s) => s.apiRequestsPerSecond), "< 1"],
    ["cgroup peak MiB, start-up", (r) => peak(r, "start-up", "peak"), limit],
    ["cgroup peak MiB, handovers", (r) => peak(r, "handovers", "peak"), limit],
    ["cgroup peak MiB, steady", (r) => peak(r, "steady", "peak"), limit],
    ["cgroup anonymous MiB, steady", (r) => peak(r, "steady", "anon"), ""],
    ["OOM kills", (r) => String(r.memory.oomKills), "0"],
    ["guard CPU %", (r) => range(r, undefined, (s) => s.guard.cpuPercent), ""],
    ["guard RSS MiB", (r) => range(r, undefined, (s) => s.guard.rssMiB, 0), ""],
    ["guard cgroup peak MiB, any phase", (r) => guardPeak(r), guardLimit],
    ["guard OOM kills", (r) => String(r.guardMemory.oomKills), "0"],
  ];
  const head = ordered.map((r) =>
    `${r.transport} (${r.transport === BEFORE_TRANSPORT ? "before" : "after"})`.padStart(18)
  );
  const lines = [
    `\nbefore and after, one run, side by side (${run.rounds} rounds each; steady state ` +
    `${run.steadySeconds.toFixed(0)} s, load average ${run.loadAverage.before} -> ` +
    `${run.loadAverage.after}):`,
    `${"figure".padEnd(34)}${head.join("")}   target`,
    ...rows.map(([name, value, target]) =>
      `${name.padEnd(34)}${ordered.map((r) => value(r).padStart(18)).join("")}   ${target}`
    ),
  ];
  return lines.join("\n");
}

/** `min-max` (or the one value) of a steady figure over the set's sidecars of `role`. */
function range(
  r: SetResult,
  role: SteadyRow["role"] | undefined,
  pick: (s: SteadyRow) => number,
  digits = 2,
): string {
  const xs = r.steady.filter((s) => role === undefined || s.role === role).map(pick);
  if (xs.length === 0) return "-";
  const [lo, hi] = [Math.min(...xs).toFixed(digits), Math.max(...xs).toFixed(digits)];
  return lo === hi ? lo : `${lo}-${hi}`;
}

function mean(r: SetResult, pick: (s: SteadyRow) => number): string {
  const xs = r.steady.map(pick);
  return (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(1);
}

/** The largest cgroup reading of a phase over the set's sidecars, in MiB. */
function peak(r: SetResult, phase: keyof MemoryResult["phases"], key: "peak" | "anon") {
  const xs = Object.values(r.memory.phases[phase]).map((m) => m[key] / 2 ** 20);
  return xs.length === 0 ? "-" : Math.max(...xs).toFixed(1);
}

/** The largest cgroup peak of the set's guards over every phase, in MiB. */
function guardPeak(r: SetResult) {
  const xs = Object.values(r.guardMemory.phases).flatMap((byPod) =>
    Object.values(byPod).map((m) => m.peak / 2 ** 20)
  );
  return xs.length === 0 ? "-" : Math.max(...xs).toFixed(1);
}

/** The worker thread's wake-ups per second (Deno names it `worker-N`), from `threads`. */
function workerWakeups(s: SteadyRow): number {
  const m = /(?:^|, )worker-\d+ [\d.]+ % \(([\d.]+)\/s\)/.exec(s.threads);
  return m === null ? NaN : Number(m[1]);
}

/** Every thread's wake-ups per second together, from `threads`. */
function allWakeups(s: SteadyRow): number {
  return [...s.threads.matchAll(/\(([\d.]+)\/s\)/g)].reduce((n, m) => n + Number(m[1]), 0);
}
