/**
 * The effect runner: performs what the forging step (`forging.ts`) returned and turns every
 * result into the next event. It decides nothing.
 *
 * Order: the effects of one step run in the order given, and the batches of successive steps
 * run one after another on one lane. Effects on the keys and the node (place, remove, signal,
 * comparing rotated sources) are awaited there, so an unlink always precedes the SIGHUP that
 * follows it. Lease requests, fences, node checks and reports are started in their turn but not
 * awaited: a hung API server never delays a stop at the renew deadline. Every call to the
 * privileged core carries a timeout (`RpcNodeProcess`), so a lost reply cannot hold the lane.
 *
 * @module
 */

import { type Clock, sleep } from "../base/clock.ts";
import { type Config, guardBoundMs } from "../core/config.ts";
import type { ControlStore, StatusReporter } from "../kube/cardano_leader.ts";
import type { CredentialStore } from "../node/credentials.ts";
import type { Fence } from "../kube/fence.ts";
import type { Observation } from "../kube/lease_store.ts";
import type { Effect, ForgingEvent } from "../forging/events.ts";
import { LeaseConflict, type LeaseStore } from "../kube/lease_store.ts";
import { errorText } from "../base/log.ts";
import type { NodeMetricsRead } from "../node/node_metrics.ts";
import { type NodeInfo, type NodeProcess, SignalError } from "../core/node_process.ts";
import type { OwnPod } from "../kube/own_pod.ts";
import { OpsEffects } from "./ops_effects.ts";
import { GlobalEffects, type GlobalPorts } from "./global_effects.ts";
import type { Telemetry } from "./telemetry.ts";
import type { GuardPort } from "./guard_port.ts";

/** Everything the runner acts on. */
export interface EffectPorts {
  config: Config;
  identity: string;
  clock: Clock;
  leases: LeaseStore;
  credentials: CredentialStore;
  node: NodeProcess;
  socketAccepts: (path: string) => Promise<boolean>;
  fence: Fence | undefined;
  status: StatusReporter | undefined;
  telemetry: Telemetry;
  /** Reads the node's Prometheus endpoint (lib/node/node_metrics.ts). */
  readNodeMetrics: () => Promise<NodeMetricsRead>;
  /** Operator requests and the published replica state (cfg.operations). */
  control?: ControlStore | undefined;
  /** Our own Pod, read while leading with FENCE=pod. */
  ownPod?: OwnPod | undefined;
  /** The guard on this machine (GUARD_SOCKET). */
  guard?: GuardPort | undefined;
  /** The coordination cluster and this cluster's CardanoForgeCluster (GLOBAL_KUBECONFIG). */
  global?: GlobalPorts | undefined;
  /** Reads the pool's leader schedule (LEADER_SCHEDULE_FILE). */
  readSchedule?: () => Promise<{ slots: number[] } | { error: string }>;
}

const LANE_EFFECTS: ReadonlySet<Effect["kind"]> = new Set([
  "place_keys",
  "remove_keys",
  "signal",
  "check_sources",
]);

/** Performs effects; results come back through `post`. */
export class EffectRunner {
  readonly #p: EffectPorts;
  readonly #post: (event: ForgingEvent) => void;
  #lane: Promise<void> = Promise.resolve();
  #queued = 0;
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #fences = new Map<number, AbortController>();
  /** The last claim of the CardanoLeader status (it never rejects: failures are reported). */
  #claiming: Promise<void> = Promise.resolve();
  /** The last release of the Lease (it never rejects: failures are events). */
  #releasing: Promise<void> = Promise.resolve();
  readonly #ops: OpsEffects;
  readonly #global: GlobalEffects | undefined;

  constructor(ports: EffectPorts, post: (event: ForgingEvent) => void) {
    this.#p = ports;
    this.#post = post;
    this.#ops = new OpsEffects(ports, post);
    this.#global = ports.global === undefined
      ? undefined
      : new GlobalEffects(ports.global, ports.clock, post);
  }

  /** Queues one step's effects behind those of earlier steps. */
  run(effects: readonly Effect[]): void {
    if (effects.length === 0) return;
    this.#queued++;
    this.#lane = this.#lane.then(async () => {
      for (const effect of effects) {
        if (LANE_EFFECTS.has(effect.kind)) await this.#perform(effect);
        else this.#track(this.#perform(effect));
      }
    }).finally(() => this.#queued--);
  }

  /**
   * Resolves when the lane is done and stays idle across a turn of the event loop (the step that
   * a lane effect's answer feeds queues the next at once: a placement's SIGHUP follows it), and
   * the promotion's claim and the release a stop leads to are answered: a promotion or a
   * handover's stop is waited out whole. Never rejects.
   */
  async afterKeys(): Promise<void> {
    do {
      await this.#lane;
      await new Promise((resolve) => setTimeout(resolve, 0));
      await this.#claiming;
      await this.#releasing;
    } while (this.#queued > 0);
  }

  /** Whether nothing is queued on the lane (started requests may still be pending). */
  idle(): boolean {
    return this.#queued === 0;
  }

  /** Waits until the lane and every started request are done, at most `ms` of real time. */
  async drain(ms: number): Promise<void> {
    for (const fence of this.#fences.values()) fence.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = new Promise((resolve) => (timer = setTimeout(resolve, ms)));
    await Promise.race([Promise.all([this.#lane, ...this.#inFlight]), bound]);
    clearTimeout(timer);
    await Promise.race([this.#p.telemetry.flush(ms), bound]);
  }

  #track(work: Promise<unknown>): void {
    this.#inFlight.add(work);
    work.finally(() => this.#inFlight.delete(work));
  }

  /** Performs one effect; never throws (every failure becomes an event). */
  async #perform(e: Effect): Promise<void> {
    try {
      await this.#dispatch(e);
    } catch (err) {
      // A bug in an adapter must not stop the lane: count it as a failure of that effect.
      this.#post({ kind: "effect_failed", effect: e.kind, error: errorText(err) });
    }
  }

  async #dispatch(e: Effect): Promise<void> {
    const p = this.#p;
    switch (e.kind) {
      case "report":
        return p.telemetry.apply(e.transition);
      case "probe_socket":
        return this.#post({
          kind: "socket_probed",
          accepts: await p.socketAccepts(p.config.nodeSocket).catch(() => false),
        });
      case "read_lease":
        try {
          return this.#post({
            kind: "lease_read",
            observation: await this.#readLease(e.timeoutMs),
          });
        } catch (err) {
          return this.#post({ kind: "lease_read_failed", error: errorText(err) });
        }
      case "write_lease":
        return await this.#write(e);
      case "release_lease":
        this.#releasing = this.#release(e);
        return await this.#releasing;
      case "claim_leader": {
        const claim = this.#claim(e.timeoutMs);
        this.#claiming = claim.then(() => {});
        const error = await claim;
        return this.#post({
          kind: "leader_claimed",
          term: e.term,
          ...(error !== undefined ? { error } : {}),
        });
      }
      case "start_fence":
        return await this.#fence(e);
      case "arm_guard": {
        if (p.guard === undefined) {
          return this.#post({
            kind: "guard_arm_failed",
            term: e.term,
            error: "no guard configured",
          });
        }
        try {
          await p.guard.arm(e.timeoutMs);
          return this.#post({ kind: "guard_armed", term: e.term });
        } catch (err) {
          return this.#post({ kind: "guard_arm_failed", term: e.term, error: errorText(err) });
        }
      }
      case "cancel_fence":
        this.#fences.get(e.term)?.abort();
        return;
      case "check_node":
        return await this.#checkNode(e.readyKey);
      case "check_sources":
        return await this.#checkSources();
      case "check_credentials":
        return await this.#checkCredentials();
      case "read_node_metrics": {
        const read = await p.readNodeMetrics();
        return this.#post(
          read.ok
            ? { kind: "node_metrics_read", sample: read.sample }
            : { kind: "node_metrics_read", error: read.error },
        );
      }
      case "read_schedule": {
        const read = await (p.readSchedule?.() ??
          Promise.resolve({ error: "no leader schedule is configured" }));
        return this.#post({ kind: "schedule_read", wallMs: p.clock.wall().getTime(), ...read });
      }
      case "place_keys":
      case "remove_keys":
        return await this.#keys(e);
      case "signal":
        return await this.#signal(e);
      case "read_control":
      case "check_pod":
      case "publish_replica":
      case "report_handover":
        return await this.#ops.run(e);
      case "read_global":
      case "read_members":
      case "write_global":
      case "release_global":
      case "claim_global":
      case "publish_member":
      case "report_global_handover":
      case "read_cluster":
      case "report_cluster":
      case "check_health":
        if (this.#global === undefined) {
          throw new Error(`${e.kind}: no coordination cluster configured`);
        }
        return await this.#global.run(e);
    }
  }

  async #release(e: Extract<Effect, { kind: "release_lease" }>): Promise<void> {
    const p = this.#p;
    try {
      const record = await p.leases.release(e.record, p.identity, e.clean, e.timeoutMs, {
        ...(e.waitMs !== undefined ? { waitMs: e.waitMs } : {}),
        ...(e.fencePending !== undefined ? { fencePending: e.fencePending } : {}),
        ...(e.handoverTo !== undefined ? { handoverTo: e.handoverTo } : {}),
      });
      this.#post({ kind: "lease_released", record, clean: e.clean });
    } catch (err) {
      this.#post({ kind: "lease_release_failed", error: errorText(err) });
    }
  }

  async #checkCredentials(): Promise<void> {
    const { credentials, clock } = this.#p;
    try {
      const facts = await credentials.check();
      this.#post({ kind: "credentials_checked", facts, wallMs: clock.wall().getTime() });
    } catch (err) {
      this.#post({
        kind: "credentials_checked",
        error: errorText(err),
        wallMs: clock.wall().getTime(),
      });
    }
  }

  /** Places the pool's keys or the decoys, or removes them; every outcome is an event. */
  async #keys(e: Extract<Effect, { kind: "place_keys" | "remove_keys" }>): Promise<void> {
    const { credentials, clock } = this.#p;
    if (e.kind === "place_keys" && e.purpose === "boot" && e.decoys) {
      try {
        const { changed } = await credentials.placeDecoys();
        this.#post({ kind: "decoys_placed", changed });
      } catch (err) {
        this.#post({ kind: "keys_place_failed", purpose: e.purpose, error: errorText(err) });
      }
      return;
    }
    if (e.kind === "place_keys") {
      try {
        const placed = await credentials.place();
        const wallMs = clock.wall().getTime();
        this.#post({ kind: "keys_placed", purpose: e.purpose, placed, wallMs });
      } catch (err) {
        this.#post({ kind: "keys_place_failed", purpose: e.purpose, error: errorText(err) });
      }
      return;
    }
    try {
      await credentials.remove();
      this.#post({ kind: "keys_removed", stop: e.stop, ok: true });
    } catch (err) {
      this.#post({ kind: "keys_removed", stop: e.stop, ok: false, error: errorText(err) });
    }
  }

  async #write(e: Extract<Effect, { kind: "write_lease" }>): Promise<void> {
    const { decision, deadline, maxTimeoutMs } = e;
    const p = this.#p;
    // The term is measured from when the request is SENT: take the time right before it.
    const sentAt = p.clock.monotonic();
    // A leader's request must not outlive its term; a follower's gets a plain bound.
    const timeoutMs = Math.min(deadline - sentAt, maxTimeoutMs);
    if (timeoutMs <= 0) {
      return this.#post({
        kind: "lease_write_failed",
        decision,
        conflict: false,
        error: "the term ended before the request could be sent",
      });
    }
    try {
      const record = await p.leases.claim({
        record: decision.record,
        identity: p.identity,
        podUid: p.config.podUid,
        durationSeconds: p.config.leaseDurationMs / 1000,
        timeoutMs,
        ...(e.fencePending !== undefined ? { fencePending: e.fencePending } : {}),
        // A guarded holder never forges without its guard armed: its bound is on every write.
        ...(p.config.guardSocket !== undefined ? { guardBoundMs: guardBoundMs(p.config) } : {}),
      });
      this.#post({
        kind: "lease_written",
        decision,
        record,
        sentAt,
        ...(e.previous !== undefined ? { previous: e.previous } : {}),
        ...(e.fencePending !== undefined ? { fencePending: e.fencePending } : {}),
      });
    } catch (err) {
      this.#post({
        kind: "lease_write_failed",
        decision,
        conflict: err instanceof LeaseConflict,
        error: err instanceof LeaseConflict ? err.message : errorText(err),
      });
    }
  }

  async #fence(e: Extract<Effect, { kind: "start_fence" }>): Promise<void> {
    const { fence } = this.#p;
    if (fence === undefined) return;
    const abort = new AbortController();
    this.#fences.set(e.term, abort);
    const previous = e.previousHolder;
    try {
      const outcome = await fence.prove({
        holder: previous,
        ...(e.previousPodUid !== undefined ? { podUid: e.previousPodUid } : {}),
        ...(e.previousWrittenAt !== undefined ? { writtenAt: e.previousWrittenAt } : {}),
        ownNodeStopped: e.ownNodeStopped,
      }, abort.signal);
      this.#post({ kind: "fence_done", term: e.term, previous, outcome });
    } catch (err) {
      this.#post({
        kind: "fence_done",
        term: e.term,
        previous,
        outcome: { proven: false, why: errorText(err), error: true },
      });
    } finally {
      this.#fences.delete(e.term);
    }
  }

  /**
   * One read of the Lease. An absent Lease comes with the pod the CardanoLeader status names as
   * leader (the fence's only lead after a hand deletion, see election.ts). A status that cannot be
   * read fails the read, so the create waits for the next one (a missing CRD or object names
   * nobody: `StatusReporter.lastLeader`); without a fence nobody is asked.
   */
  async #readLease(timeoutMs: number): Promise<Observation> {
    const { leases, status, fence } = this.#p;
    const observation = await leases.read(timeoutMs);
    if (observation.kind !== "absent" || status === undefined || fence === undefined) {
      return observation;
    }
    let pod: string;
    try {
      pod = await status.lastLeader();
    } catch (err) {
      throw new Error(
        `the Lease is absent, and the CardanoLeader status (whom to fence before creating it) ` +
          `cannot be read: ${errorText(err)}`,
      );
    }
    return pod === "" ? observation : { kind: "absent", lastLeader: pod };
  }

  async #checkNode(readyKey: string | undefined): Promise<void> {
    const p = this.#p;
    let node: NodeInfo | undefined;
    try {
      node = await p.node.find();
    } catch (err) {
      return this.#post({ kind: "node_check_failed", error: errorText(err) });
    }
    // The socket is probed only for a process not yet known to be ready.
    const known = node !== undefined && `${node.pid}:${node.startTicks}` === readyKey;
    const accepts = node === undefined || known || p.config.disableSocketCheck
      ? true
      : await p.socketAccepts(p.config.nodeSocket).catch(() => false);
    this.#post({ kind: "node_checked", node, accepts });
  }

  async #checkSources(): Promise<void> {
    const { credentials } = this.#p;
    let differ = false;
    try {
      differ = await credentials.sourcesDiffer();
    } catch (err) {
      return this.#post({ kind: "sources_compare_failed", error: errorText(err) });
    }
    if (!differ) return this.#post({ kind: "sources_checked", differ });
    try {
      await credentials.check();
      this.#post({ kind: "sources_checked", differ });
    } catch (err) {
      this.#post({ kind: "sources_checked", differ, problem: errorText(err) });
    }
  }

  /**
   * The claim, bounded here too: the SIGHUP waits for its answer, and an adapter may hang.
   * Resolves with the error, if any; never rejects.
   */
  async #claim(timeoutMs: number): Promise<string | undefined> {
    const { status, clock } = this.#p;
    if (status === undefined) return undefined;
    const timer = new AbortController();
    const answered = status.claim(timeoutMs).then(() => undefined, (err) => errorText(err));
    const late = sleep(clock, timeoutMs, timer.signal).then(() =>
      `no answer within ${timeoutMs} ms`
    );
    const error = await Promise.race([answered, late]);
    timer.abort();
    return error;
  }

  async #signal(e: Extract<Effect, { kind: "signal" }>): Promise<void> {
    const p = this.#p;
    const stop = e.stop !== undefined ? { stop: e.stop } : {};
    let node = e.node;
    if (node === undefined) {
      try {
        node = await p.node.find();
      } catch (err) {
        return this.#post({
          kind: "signalled",
          reason: e.reason,
          ...stop,
          outcome: "error",
          error: errorText(err),
        });
      }
    }
    if (node === undefined) {
      // Nothing to stop: a node that is not running cannot forge. Nothing to start either.
      return this.#post({
        kind: "signalled",
        reason: e.reason,
        ...stop,
        outcome: e.stop !== undefined ? "no_node" : "not_found",
        error: `Cannot signal ${p.config.nodeProcessName}: no such process`,
      });
    }
    try {
      await p.node.hangup(node);
      this.#post({ kind: "signalled", reason: e.reason, ...stop, pid: node.pid, outcome: "ok" });
    } catch (err) {
      this.#post({
        kind: "signalled",
        reason: e.reason,
        ...stop,
        pid: node.pid,
        outcome: err instanceof SignalError ? err.reason : "error",
        error: errorText(err),
      });
    }
  }
}
