/**
 * The sidecar's loop: the one writer of the forging state. It takes events from one queue
 * (the results of effects, Lease watch events, shutdown) or a timer at the state's next wake-up
 * time, advances the pure machine (`forging.ts`), and hands the effects to the runner
 * (`effects.ts`). It decides nothing itself; telemetry comes from `telemetry.ts`.
 *
 * @module
 */

import { WakeQueue } from "../base/wake_queue.ts";
import type { Clock } from "../base/clock.ts";
import { type Config, guardBoundMs } from "../core/config.ts";
import type { GlobalConfig } from "../core/cluster_config.ts";
import type { GlobalForgingConfig } from "../forging/global_state.ts";
import type { GlobalPorts } from "./global_effects.ts";
import type { ControlStore, StatusReporter } from "../kube/cardano_leader.ts";
import type { CredentialStore } from "../node/credentials.ts";
import { EffectRunner } from "./effects.ts";
import type { Fence } from "../kube/fence.ts";
import type { ForgingEvent, Step } from "../forging/events.ts";
import { type ForgingState, isForging, leadsNow, startupDone } from "../forging/state.ts";
import { nextWake, start, step } from "../forging/step.ts";
import { guardAnswer } from "../forging/guard.ts";
import type { GuardPort } from "./guard_port.ts";
import type { HealthView } from "./http_handler.ts";
import type { LeaseStore } from "../kube/lease_store.ts";
import type { Logger } from "../base/log.ts";
import type { Metrics } from "./metrics.ts";
import type { NodeProcess } from "../core/node_process.ts";
import type { OwnPod } from "../kube/own_pod.ts";
import { Telemetry } from "./telemetry.ts";
import { podEvent } from "./ops_effects.ts";
import type { KesTiming } from "../cardano/kes_period.ts";
import type { NodeMetricsRead } from "../node/node_metrics.ts";

/** Everything the loop talks to. */
export interface ForgeManagerDeps {
  config: Config;
  identity: string;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  leases: LeaseStore;
  credentials: CredentialStore;
  node: NodeProcess;
  socketAccepts: (path: string) => Promise<boolean>;
  status: StatusReporter | undefined;
  fence: Fence | undefined;
  /** The network's KES timing: certificates are judged with it (none: KES checks off). */
  kesTiming?: KesTiming;
  /** Reads the node's metrics to confirm forging (none: not read). */
  readNodeMetrics?: () => Promise<NodeMetricsRead>;
  /** Operator requests (pause, handover) and the published replica state; undefined: none. */
  control?: ControlStore | undefined;
  /** Our own Pod, for the handover at its deletion (FENCE=pod). */
  ownPod?: OwnPod | undefined;
  /** The guard on this machine (GUARD_SOCKET): forging then waits for it to be armed. */
  guard?: GuardPort | undefined;
  /** The coordination cluster and this cluster's CardanoForgeCluster (GLOBAL_KUBECONFIG). */
  global?: GlobalPorts | undefined;
  /** Reads the pool's leader schedule (LEADER_SCHEDULE_FILE): its slots, or why not. */
  readSchedule?: () => Promise<{ slots: number[] } | { error: string }>;
}

/**
 * The step's configuration across clusters. Our identity there is `<cluster>_<suffix>`: its
 * "pod" part (`podOf`) is the cluster, so a release handed to a cluster may be taken at once by
 * whichever replica is that cluster's local leader then.
 */
export function globalForgingConfig(
  config: Config,
  global: GlobalConfig,
  identity: string,
): GlobalForgingConfig {
  return {
    identity: `${global.cluster}_${identity.slice(identity.lastIndexOf("_") + 1)}`,
    cluster: global.cluster,
    region: global.region,
    priority: global.priority,
    priorityDelayMs: global.priorityDelayMs,
    returnStableMs: global.returnStableMs,
    guardBoundMs: guardBoundMs(config),
    ...(global.healthEndpoint !== undefined ? { healthEndpoint: global.healthEndpoint } : {}),
  };
}

/** How long shutdown waits for the last release and status writes. */
const DRAIN_MS = 3000;

/** The sidecar. Create it, then `await run(signal)`; abort the signal for a planned shutdown. */
export class ForgeManager implements HealthView {
  readonly #d: ForgeManagerDeps;
  readonly #telemetry: Telemetry;
  readonly #runner: EffectRunner;
  #state: ForgingState | undefined;
  readonly #inbox: WakeQueue<ForgingEvent>;
  #lastStepAt = 0;

  constructor(deps: ForgeManagerDeps) {
    this.#d = deps;
    this.#inbox = new WakeQueue<ForgingEvent>(deps.clock, { kind: "tick" });
    this.#telemetry = new Telemetry({
      podName: deps.config.podName,
      identity: deps.identity,
      leaseName: deps.config.leaseName,
      nodeSocket: deps.config.nodeSocket,
      clock: deps.clock,
      log: deps.log,
      metrics: deps.metrics,
      status: deps.status,
      afterKeys: () => this.#runner.afterKeys(),
    });
    const readNodeMetrics = deps.readNodeMetrics ??
      (() => Promise.resolve({ ok: false as const, error: "node metrics are not read" }));
    this.#runner = new EffectRunner(
      { ...deps, telemetry: this.#telemetry, readNodeMetrics },
      (e) => this.#post(e),
    );
  }

  /** Runs until `signal` aborts, then performs the end of term and returns. */
  async run(signal: AbortSignal): Promise<void> {
    const { clock, config, identity, leases } = this.#d;
    this.#advance(start({
      ...config,
      identity,
      // FENCE=guard proves by time where no API proof comes (a VM has no fence adapter at all).
      fence: this.#d.fence !== undefined || config.fence === "guard",
      fenceBound: config.fence === "guard",
      guard: this.#d.guard !== undefined,
      socketCheck: !config.disableSocketCheck,
      ...(this.#d.kesTiming !== undefined ? { kesTiming: this.#d.kesTiming } : {}),
      ...(config.poolId !== undefined ? { poolId: config.poolId } : {}),
      nodeMetrics: this.#d.readNodeMetrics !== undefined,
      operations: this.#d.control !== undefined,
      global: config.global === undefined || this.#d.global === undefined
        ? undefined
        : globalForgingConfig(config, config.global, identity),
      // Sync needs the node's tip (its metrics) and the wall clock's slot (the genesis timing).
      ...(this.#d.readNodeMetrics !== undefined && this.#d.kesTiming !== undefined
        ? { maxTipLagSlots: config.maxTipLagSlots }
        : {}),
      preferredStableMs: config.preferredStableMs,
      // Slot waits need the schedule and the slots' times (the genesis timing).
      ...(this.#d.readSchedule !== undefined && this.#d.kesTiming !== undefined
        ? {
          schedule: {
            marginMs: config.leaderSlotMarginMs,
            shutdownWaitMs: config.shutdownSlotWaitMs,
          },
        }
        : {}),
    }, clock.monotonic()));
    const watch = new AbortController();
    leases.watch((observation) => this.#post({ kind: "lease_watched", observation }), watch.signal);
    this.#d.control?.watch(
      (control) => this.#post({ kind: "control_read", control, watched: true }),
      watch.signal,
    );
    this.#d.guard?.answerWith(() => guardAnswer(this.#state!, clock.monotonic()));
    this.#d.guard?.watch((notice) => {
      switch (notice.kind) {
        case "link":
          return this.#post({
            kind: "guard_link",
            up: notice.up,
            ...(notice.error !== undefined ? { error: notice.error } : {}),
          });
        case "fired":
          return this.#post({
            kind: "guard_fired",
            reason: notice.reason,
            ok: notice.ok,
            ...(notice.error !== undefined ? { error: notice.error } : {}),
          });
        case "state":
          return this.#post({
            kind: "guard_state",
            armed: notice.armed,
            demotions: notice.demotions,
          });
      }
    });
    this.#d.ownPod?.watch((deletion) => this.#post(podEvent(deletion, true)), watch.signal);
    const onAbort = () => this.#post({ kind: "shutdown" });
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    try {
      while (this.#state?.phase.kind !== "done") {
        const event = await this.#next();
        this.#advance(step(this.#state!, event, clock.monotonic()));
      }
    } finally {
      watch.abort();
      signal.removeEventListener("abort", onAbort);
      await this.#runner.drain(DRAIN_MS);
    }
    const phase = this.#state.phase;
    if (phase.error !== undefined) throw new Error(phase.error);
  }

  #advance({ state, effects }: Step): void {
    this.#state = state;
    this.#lastStepAt = this.#d.clock.monotonic();
    this.#runner.run(effects);
  }

  #post(event: ForgingEvent): void {
    this.#inbox.post(event);
  }

  /** The next queued event, or a tick at the state's next wake-up time. */
  #next(): Promise<ForgingEvent> {
    return this.#inbox.next((now) => nextWake(this.#state!, now));
  }

  /** Whether the runner has nothing queued and no event waits (for tests in virtual time). */
  idle(): boolean {
    return this.#inbox.empty() && this.#runner.idle();
  }

  // ---- HealthView -------------------------------------------------------------------------
  startupDone(): boolean {
    return this.#state !== undefined && startupDone(this.#state);
  }
  ready(): boolean {
    return this.startupDone() && this.#state!.observedOnce;
  }
  alive(): boolean {
    const now = this.#d.clock.monotonic();
    const limit = Math.max(30_000, 4 * this.#d.config.sleepIntervalMs);
    const busy = this.#state?.leaseBusy;
    // A loop that stopped stepping, or a Lease request that never returns, is not alive.
    return (this.#lastStepAt === 0 || now - this.#lastStepAt < limit) &&
      (busy === undefined || now - busy.since < limit);
  }
  summary(): Record<string, unknown> {
    const s = this.#state;
    const seen = s?.election.seen?.observation;
    return {
      pod: this.#d.config.podName,
      identity: this.#d.identity,
      phase: s?.phase.kind,
      leader: this.leading,
      forging: this.forging,
      holder: seen?.kind === "present" ? seen.record.holder : undefined,
      nodePid: s?.node.kind === "present" ? s.node.info.pid : undefined,
    };
  }
  /** Whether we hold the lease with time left (and past any probation). */
  get leading(): boolean {
    return this.#state !== undefined && leadsNow(this.#state, this.#d.clock.monotonic());
  }
  /** Whether the node was given the keys and signalled. */
  get forging(): boolean {
    return this.#state !== undefined && isForging(this.#state);
  }
  /**
   * Whether keys may still be in place for forging (from a promotion's arming until a stop
   * confirms): the guard must then act if this process goes.
   */
  get keysAtRisk(): boolean {
    return this.#state?.guardWanted === true;
  }
  /** The wall time of the last successful renew (ms), for the metrics gauge. */
  get lastRenewWall(): number | undefined {
    return this.#telemetry.lastRenewWall;
  }
}
