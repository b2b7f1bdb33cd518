/**
 * One set of the benchmark's sidecars: three simulated pods in a namespace of their own (their
 * own Lease and CardanoLeader) whose sidecars all run with one `KUBE_TRANSPORT`, so two sets, one
 * per transport, run side by side in one benchmark under the same machine load: the before and
 * the after of issue 19 in one run. Each pod runs as shipped: the guard beside its sidecar, the
 * sidecar with FENCE=guard; each sidecar and each guard runs in a memory cgroup of its own with its
 * container's `limits.memory` in the StatefulSet (tools/bench_memory.ts).
 *
 * @module
 */

import type { ControlPlane } from "../tests/support/control_plane.ts";
import { rulesEnv } from "./bench_rules.ts";
import type { NetworkName } from "../lib/cardano/kes_period.ts";
import { installForgeManager } from "../tests/support/replicas.ts";
import { type Pod, startPod } from "../tests/support/pod.ts";
import type { CredentialSet } from "../tests/support/keys.ts";
import { figures, intervalsOf, nowMs, waitForSingleForger } from "../tests/support/scenario.ts";
import { readForgingRecords, totalOverlapMs } from "../tests/support/forging_log.ts";
import { sleep } from "../tests/support/wait.ts";
import { type HandoverTimeline, handoverTimeline } from "./handover_timeline.ts";
import type { SteadyRow, Transport } from "./bench_report.ts";
import type { MemoryCgroup, MemoryReading } from "./memory_cgroup.ts";
import { type MemoryPhase, sidecarCgroup } from "./bench_memory.ts";
import {
  apiRequestsByOperation,
  procStat,
  rateBreakdown,
  threadSwitches,
  threadTicks,
} from "./proc_figures.ts";

/** What every set shares: the control plane, where pods live, their keys and timings. */
export interface BenchContext {
  cp: ControlPlane;
  /** A folder for the pods' files. */
  root: string;
  /** A tmpfs for the keys' folders, as shipped, or undefined for the disk. */
  shm: string | undefined;
  credentials: CredentialSet;
  timing: Record<string, string>;
  /** `limits.memory` of the forge-manager container, in bytes (0: no cgroups). */
  limitBytes: number;
  /** `limits.memory` of the forge-manager-guard container, in bytes (0: no cgroups). */
  guardLimitBytes: number;
  /**
   * Issue 20's rounds (tools/bench_rules.ts): the nodes run on this network's clock, and each
   * set's pods read their leader schedule from `<root>/leader-slots-<transport>`.
   */
  chainNetwork?: NetworkName;
}

interface Sample {
  stat: ReturnType<typeof procStat>;
  guard: ReturnType<typeof procStat>;
  ticks: Record<string, number>;
  switches: Record<string, number>;
  requests: Record<string, number>;
}

const sum = (ops: Record<string, number>) => Object.values(ops).reduce((a, b) => a + b, 0);

/** Three replicas whose sidecars use one transport, and what was measured of them. */
export class BenchSet {
  readonly transport: Transport;
  readonly namespace: string;
  /** The three pods alive now (slots 0-2). */
  readonly live: Pod[] = [];
  /** Every pod this set ever started (killed ones too), for the overlap over the whole run. */
  readonly everyPod: Pod[] = [];
  readonly cgroups = new Map<Pod, MemoryCgroup>();
  readonly guardCgroups = new Map<Pod, MemoryCgroup>();
  readonly memory = emptyPhases();
  readonly guardMemory = emptyPhases();
  readonly handovers: number[] = [];
  readonly timelines: HandoverTimeline[] = [];
  readonly failovers: number[] = [];
  firstForgerMs = NaN;
  leader: Pod | undefined;
  /** The pool's leader schedule the set's pods read (empty until issue 20's rounds write it). */
  readonly slotsFile: string;
  /** The set's kubeconfig (the shipped Roles), for an operator's identity beside it. */
  get kubeconfig(): string {
    return this.#kubeconfig;
  }
  readonly #ctx: BenchContext;
  readonly #kubeconfig: string;
  #generation = 0;
  #deployedAt = 0;
  #steady: Sample[] = [];

  private constructor(ctx: BenchContext, transport: Transport, kubeconfig: string) {
    this.#ctx = ctx;
    this.transport = transport;
    this.namespace = `cardano-bench-${transport}`;
    this.#kubeconfig = kubeconfig;
    this.slotsFile = `${ctx.root}/leader-slots-${transport}`;
  }

  /** Installs the shipped objects in the set's namespace and starts its three pods. */
  static async start(ctx: BenchContext, transport: Transport): Promise<BenchSet> {
    const kubeconfig = await installForgeManager(ctx.cp, `cardano-bench-${transport}`);
    const set = new BenchSet(ctx, transport, kubeconfig);
    await Deno.writeTextFile(set.slotsFile, "");
    set.#deployedAt = nowMs();
    for (let slot = 0; slot < 3; slot++) set.live.push(await set.#newPod(slot));
    return set;
  }

  async #newPod(slot: number): Promise<Pod> {
    const name = `bench-${this.transport}-${slot}`;
    const folder = `${name}-${this.#generation++}`;
    // The benchmark's pid in the names: a cgroup left by an earlier run cannot collide.
    const cgroup = this.#ctx.limitBytes === 0
      ? undefined
      : await sidecarCgroup(`forge-manager-bench-${Deno.pid}-${folder}`, this.#ctx.limitBytes);
    const guardCgroup = this.#ctx.guardLimitBytes === 0 ? undefined : await sidecarCgroup(
      `forge-manager-bench-guard-${Deno.pid}-${folder}`,
      this.#ctx.guardLimitBytes,
    );
    const pod = await startPod({
      name,
      dir: `${this.#ctx.root}/${folder}`,
      ...(this.#ctx.shm !== undefined ? { ipc: `${this.#ctx.shm}/${folder}` } : {}),
      ...(cgroup !== undefined ? { sidecarCgroupProcs: cgroup.procsFile } : {}),
      // As shipped: the guard beside each sidecar, FENCE=guard.
      guard: guardCgroup !== undefined ? { cgroupProcs: guardCgroup.procsFile } : true,
      credentials: this.#ctx.credentials,
      ...(this.#ctx.chainNetwork !== undefined
        ? { chain: { network: this.#ctx.chainNetwork, leaderSlotsFile: this.slotsFile } }
        : {}),
      // debug: "sent SIGHUP" and "lease watch event" carry the timeline's steps.
      env: {
        NAMESPACE: this.namespace,
        KUBECONFIG: this.#kubeconfig,
        LOG_LEVEL: "debug",
        FENCE: "guard",
        KUBE_TRANSPORT: this.transport,
        ...(this.#ctx.chainNetwork !== undefined ? rulesEnv(this.slotsFile) : {}),
        ...this.#ctx.timing,
      },
    });
    this.everyPod.push(pod);
    if (cgroup !== undefined) this.cgroups.set(pod, cgroup);
    if (guardCgroup !== undefined) this.guardCgroups.set(pod, guardCgroup);
    return pod;
  }

  /** Waits for the fresh deployment's first forger and notes when its node was enabled. */
  async firstLeader(timeoutMs: number): Promise<void> {
    this.leader = await waitForSingleForger(this.live, timeoutMs);
    const firstEnable = (await readForgingRecords(this.live.map((p) => p.record)))
      .filter((r) => r.event === "enable").map((r) => r.t).sort((a, b) => a - b)[0];
    this.firstForgerMs = firstEnable === undefined ? NaN : firstEnable - this.#deployedAt;
  }

  /** Reads the cgroups (sidecars' and guards') of the live pods into `phase`; new peaks. */
  async memoryPhase(phase: MemoryPhase): Promise<void> {
    const both = [[this.cgroups, this.memory], [this.guardCgroups, this.guardMemory]] as const;
    for (const [groups, figures] of both) {
      for (const pod of this.live) {
        const cg = groups.get(pod);
        if (cg === undefined) continue;
        figures[phase][pod.name] = await cg.read();
        await cg.resetPeak();
      }
    }
  }

  /**
   * A planned handover: SIGTERM to the leader's sidecar until another node forges, its timeline
   * from the logs; the sidecar is started again in its pod. Returns a line for the log.
   */
  async handover(): Promise<string> {
    const leader = this.leader!;
    const at = nowMs();
    leader.signalSidecar("SIGTERM");
    const next = await waitForSingleForger(this.live, 30_000, [leader.name]);
    const { takeoverMs } = await figures(this.everyPod, at, leader);
    this.handovers.push(takeoverMs!);
    await sleep(200); // the last log lines reach the files
    const records = await readForgingRecords({ old: leader.record, new: next.record });
    const timeline = handoverTimeline({
      at,
      oldLog: await Deno.readTextFile(leader.sidecarLog),
      newLog: await Deno.readTextFile(next.sidecarLog),
      oldRecords: records.filter((x) => x.node === "old"),
      newRecords: records.filter((x) => x.node === "new"),
    });
    this.timelines.push(timeline);
    leader.restartSidecar();
    this.leader = next;
    return `${leader.name} -> ${next.name} in ${takeoverMs!.toFixed(0)} ms; timeline (ms after ` +
      `SIGTERM): ${Object.entries(timeline).map(([k, v]) => `${k} ${v!.toFixed(0)}`).join(", ")}`;
  }

  /** An unplanned failover: the leader's pod killed until another node forges; a new pod. */
  async failover(timeoutMs: number): Promise<string> {
    const leader = this.leader!;
    const at = nowMs();
    await leader.kill();
    const next = await waitForSingleForger(this.live.filter((p) => p !== leader), timeoutMs);
    const { takeoverMs } = await figures(this.everyPod, at, leader);
    this.failovers.push(takeoverMs!);
    const slot = this.live.indexOf(leader);
    this.live[slot] = await this.#newPod(slot);
    this.leader = next;
    return `${leader.name} -> ${next.name} in ${(takeoverMs! / 1000).toFixed(2)} s`;
  }

  /** Starts the steady-state window: samples every live sidecar. */
  async steadyStart(): Promise<void> {
    this.#steady = await Promise.all(this.live.map((p) => this.#sample(p)));
  }

  /** Ends the steady-state window of `seconds`: each sidecar's figures over it. */
  async steadyEnd(seconds: number): Promise<SteadyRow[]> {
    return await Promise.all(this.live.map(async (p, i) => {
      const before = this.#steady[i]!;
      const now = await this.#sample(p);
      return {
        pod: p.name,
        role: p === this.leader ? "leader" : "standby",
        guard: {
          rssMiB: now.guard.rssBytes / 2 ** 20,
          cpuPercent: (100 * (now.guard.cpuSeconds - before.guard.cpuSeconds)) / seconds,
        },
        rssMiB: now.stat.rssBytes / 2 ** 20,
        anonMiB: now.stat.anonBytes / 2 ** 20,
        cpuPercent: (100 * (now.stat.cpuSeconds - before.stat.cpuSeconds)) / seconds,
        apiRequestsPerSecond: (sum(now.requests) - sum(before.requests)) / seconds,
        apiRequestsByOperation: rateBreakdown(before.requests, now.requests, seconds),
        // Where the CPU goes: per thread, its share of a core and its wake-ups per second (each
        // costs 0.2-0.4 ms of CPU on this kind of VM: README, "Where idle CPU goes").
        threads: byThread(before, now, seconds),
      };
    }));
  }

  async #sample(p: Pod): Promise<Sample> {
    const pid = p.pids().sidecar!;
    return {
      stat: procStat(pid),
      guard: procStat(p.pids().guard!),
      ticks: threadTicks(pid),
      switches: threadSwitches(pid),
      requests: await apiRequestsByOperation(p.metricsPort),
    };
  }

  /** Milliseconds during which two of this set's nodes forged at once, over the whole run. */
  async overlapMs(): Promise<number> {
    return totalOverlapMs(await intervalsOf(this.everyPod));
  }

  /** OOM kills in `cgroups` (this set's sidecars' or guards'). */
  async oomKills(cgroups: Map<Pod, MemoryCgroup>): Promise<number> {
    const readings = await Promise.all([...cgroups.values()].map((cg) => cg.read()));
    return readings.reduce((n, r) => n + r.oomKills, 0);
  }

  /** Kills every pod and removes the cgroups. */
  async stop(): Promise<void> {
    await Promise.all(this.everyPod.map((p) => p.kill()));
    await Promise.all(
      [...this.cgroups.values(), ...this.guardCgroups.values()].map((cg) => cg.remove()),
    );
  }
}

function emptyPhases(): Record<MemoryPhase, Record<string, MemoryReading>> {
  return { "start-up": {}, handovers: {}, steady: {} };
}

/** Per thread name, `name cpu% (wake-ups/s)`, busiest first. */
function byThread(before: Sample, after: Sample, seconds: number): string {
  return Object.keys(after.ticks)
    .map((name) => ({
      name,
      cpu: (after.ticks[name]! - (before.ticks[name] ?? 0)) / seconds, // ticks of 10 ms: % of a core
      wakeups: ((after.switches[name] ?? 0) - (before.switches[name] ?? 0)) / seconds,
    }))
    .filter((t) => t.cpu > 0 || t.wakeups > 0)
    .sort((a, b) => b.cpu - a.cpu)
    .map((t) => `${t.name} ${t.cpu.toFixed(2)} % (${t.wakeups.toFixed(1)}/s)`)
    .join(", ");
}
