/**
 * The schedule simulation behind the safety tests of tests/forging/election_test.ts.
 *
 * Three pods share one Lease. Each pod runs a sidecar process that holds a `ForgingState` from the
 * REAL `start()` and advances it only with the REAL `step()` (lib/forging/step.ts, which drives the
 * real election step), as lib/runtime/forge_manager.ts does: one event queue, one writer, and when the
 * queue is empty a timer at `nextWake()` (at least 1 ms away). What is simulated is only what the
 * loop talks to:
 * - the effect runner, with the semantics of lib/runtime/effects.ts: the effects of one step in the order
 *   given and the batches of successive steps one after another on one lane; placing and
 *   removing keys, SIGHUP and comparing rotated sources are awaited on the lane; Lease requests,
 *   node checks and socket probes are started in their turn and not awaited; every result comes
 *   back as the event effects.ts posts. Reports are telemetry and do nothing here. FENCE is off:
 *   no sidecar here dies while its node lives on, which is what plain lease timing needs, so
 *   the fence is never started. KES checks and reading the node's metrics are off too (the
 *   simulated credentials never expire; the nodes serve no metrics);
 * - the API server: one Lease with resourceVersions, replaces conditional on them, a create that
 *   fails on an existing Lease, and a watch whose events come late or not at all;
 * - the network: requests and responses delayed, dropped or hung, the client timeouts the runner
 *   sets (or, in some schedules, none that work), partitions of a pod;
 * - each pod's cardano-node: three key files (placed or unlinked together), SIGHUPs, a process
 *   that exits and is restarted (a new pid) by the kubelet, that boots non-producing, exits at
 *   boot without key files, and whose socket accepts once it has booted;
 * - faults: hand edits of the Lease (holder cleared, duration shortened, deletion), KES rotations
 *   (some half done for a while), source keys unusable for a while, node restarts, planned
 *   restarts of a sidecar or of a whole pod, and crashes of a whole pod.
 *
 * The result is what the NODES did: a node forges from a SIGHUP delivered while all three key
 * files are in place until a SIGHUP delivered with them gone, or until its process exits. Two
 * such intervals on different pods that overlap are two block producers at once.
 *
 * @module
 */

import type { CredentialFacts } from "../../lib/cardano/cardano_keys.ts";
import type { ElectionTiming } from "../../lib/forging/election.ts";
import type { LeaseRecord, Observation } from "../../lib/kube/lease_store.ts";
import type { Effect, ForgingEvent } from "../../lib/forging/events.ts";
import {
  type ForgingConfig,
  type ForgingState,
  startupDone,
  type WriteDecision,
} from "../../lib/forging/state.ts";
import { nextWake, start, step } from "../../lib/forging/step.ts";
import type { NodeInfo } from "../../lib/core/node_process.ts";

/** How a term was begun: a create, a clean handover, waiting out a record, or our own record. */
export type AcquirePath = "create" | "released" | "expired" | "own";

/** Every acquisition path, for tallies. */
export const ACQUIRE_PATHS: readonly AcquirePath[] = ["create", "released", "expired", "own"];

/** One schedule. */
export interface SimOptions {
  seed: number;
  /** Simulated time, ms. */
  durationMs: number;
  timing: ElectionTiming;
  /** How many times the Lease may be deleted by hand. */
  maxDeletes: number;
  /** Receives a line per event worth reading, for debugging a failing seed. */
  trace?: (line: string) => void;
}

/** A node forging: from the SIGHUP that gave it the keys until it stopped (global time, ms). */
export interface ForgingInterval {
  pod: number;
  start: number;
  end: number;
  /** How the latest term of the sidecar that signalled it began ("none": it never held one). */
  path: AcquirePath | "none";
}

/** What one schedule did. */
export interface SimResult {
  /** Every forging interval of every node, from the nodes' own records. */
  forging: ForgingInterval[];
  /** Terms begun, by path. */
  acquired: Record<AcquirePath, number>;
  /** Faults injected, by kind (for non-vacuity). */
  faults: Record<string, number>;
  /** Simulation events run. */
  events: number;
}

/** Runs one schedule. Deterministic: the same options give the same result. */
export function simulate(opts: SimOptions): SimResult {
  return new World(opts).run();
}

/** Pairs of intervals on different pods that overlap, described. */
export function overlaps(intervals: readonly ForgingInterval[]): string[] {
  const found: string[] = [];
  const sorted = [...intervals].sort((a, b) => a.start - b.start);
  for (let i = 0; i < sorted.length; i++) {
    const a = sorted[i]!;
    for (let j = i + 1; j < sorted.length && sorted[j]!.start < a.end; j++) {
      const b = sorted[j]!;
      if (a.pod !== b.pod && b.start < a.end) {
        found.push(
          `pod ${a.pod} [${a.start}, ${a.end}) (${a.path}) overlaps pod ${b.pod} ` +
            `[${b.start}, ${b.end}) (${b.path})`,
        );
      }
    }
  }
  return found;
}

/** Forging moving from one node to another, by the path of the term the new forger held. */
export function handovers(intervals: readonly ForgingInterval[]): Record<string, number> {
  const sorted = [...intervals].sort((a, b) => a.start - b.start);
  const count: Record<string, number> = {};
  for (let i = 1; i < sorted.length; i++) {
    const x = sorted[i]!;
    if (x.pod !== sorted[i - 1]!.pod) count[x.path] = (count[x.path] ?? 0) + 1;
  }
  return count;
}

/** mulberry32: a small deterministic PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A minimal binary heap of timed events, ordered by (time, insertion). */
class EventQueue {
  readonly #heap: { at: number; seq: number; run: () => void }[] = [];
  #seq = 0;

  push(at: number, run: () => void): void {
    const heap = this.#heap;
    const item = { at, seq: this.#seq++, run };
    let i = heap.length;
    heap.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (p.at < at || (p.at === at && p.seq < item.seq)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = item;
  }
  /** The earliest event's time, if any. */
  peek(): number | undefined {
    return this.#heap[0]?.at;
  }
  pop(): (() => void) | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined) return undefined;
    const size = heap.length;
    if (size > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= size) break;
        const r = l + 1;
        let m = l;
        if (r < size && earlier(heap[r]!, heap[l]!)) m = r;
        if (!earlier(heap[m]!, last)) break;
        heap[i] = heap[m]!;
        i = m;
      }
      heap[i] = last;
    }
    return top.run;
  }
}

function earlier(a: { at: number; seq: number }, b: { at: number; seq: number }): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** Effects that effects.ts awaits on its lane. */
const LANE_EFFECTS: ReadonlySet<Effect["kind"]> = new Set([
  "place_keys",
  "remove_keys",
  "signal",
  "check_sources",
]);

const FACTS: CredentialFacts = {
  issueCounter: 0,
  kesStartPeriod: 0,
  hotKeyId: "00000000",
  poolId: "00".repeat(28),
  signatureValid: true,
  vrfKeyConsistent: true,
};
/** The wall clock at the start of every schedule (only effects.ts's `wallMs` fields read it). */
const WALL_ORIGIN_MS = Date.parse("2026-12-01T00:00:00Z");
const KEY_FILES = ["kes", "vrf", "opcert"];

type Reply = { ok: true; record: LeaseRecord } | { ok: false };

/** The API server, the network, the Secret and the pods of one schedule. */
class World {
  t = 0;
  readonly rand: () => number;
  readonly timing: ElectionTiming;
  readonly tracing: boolean;
  readonly #trace: (line: string) => void;
  readonly #queue = new EventQueue();
  readonly #opts: SimOptions;

  // The network of this schedule.
  readonly #slowness: number;
  readonly #dropRate: number;
  /** Responses are accepted however late they come (a client whose timeouts do not work). */
  readonly #noTimeouts: boolean;

  // The API server.
  stored: LeaseRecord | undefined;
  #revision = 0;

  // The Secret the pods' sources come from: a version, and windows when it is not usable.
  sourceVersion = 1;
  #sourcesBroken: [number, number][] = [];

  readonly pods: Pod[] = [];
  readonly forging: ForgingInterval[] = [];
  readonly acquired: Record<AcquirePath, number> = { create: 0, released: 0, expired: 0, own: 0 };
  readonly faults: Record<string, number> = {};

  constructor(opts: SimOptions) {
    this.#opts = opts;
    this.rand = prng(opts.seed);
    this.timing = opts.timing;
    this.tracing = opts.trace !== undefined;
    this.#trace = opts.trace ?? (() => {});
    this.#slowness = this.rand();
    this.#dropRate = this.rand() * 0.3;
    this.#noTimeouts = this.rand() < 0.3;
  }

  trace(line: string): void {
    if (this.tracing) this.#trace(`${this.t} ${line}`);
  }
  at(time: number, run: () => void): void {
    this.#queue.push(Math.max(time, this.t), run);
  }
  after(ms: number, run: () => void): void {
    this.#queue.push(this.t + Math.max(0, ms), run);
  }
  /** A whole number of ms in [from, to). */
  between(from: number, to: number): number {
    return from + Math.floor(this.rand() * (to - from));
  }
  count(fault: string): void {
    this.faults[fault] = (this.faults[fault] ?? 0) + 1;
  }

  /** A message delay in whole milliseconds (integer times keep `t + origin` exact). */
  delay(): number {
    const r = this.rand();
    if (r < 0.7) return Math.floor(this.rand() * 200);
    if (r < 0.95) return Math.floor(this.rand() * 3_000 * (0.5 + this.#slowness));
    return Math.floor(this.rand() * 15_000 * this.#slowness); // a hung request
  }
  /** How long a lane effect (a file write with fsync, a call to the core) takes. */
  laneDelay(): number {
    const r = this.rand();
    return r < 0.97 ? Math.floor(this.rand() * 5) : Math.floor(this.rand() * 300);
  }

  sourcesUsable(): boolean {
    return !this.#sourcesBroken.some(([from, to]) => this.t >= from && this.t < to);
  }

  // ---- the API server ---------------------------------------------------------------------

  commit(record: LeaseRecord | undefined): void {
    if (this.tracing) {
      this.trace(`commit ${record === undefined ? "deleted" : JSON.stringify(record)}`);
    }
    this.stored = record;
    const obs: Observation = record === undefined
      ? { kind: "absent" }
      : { kind: "present", record };
    for (const pod of this.pods) {
      const sidecar = pod.sidecar;
      if (sidecar === undefined || this.rand() < 0.2) continue; // a watch event lost
      this.after(this.delay(), () => {
        if (!pod.partitionedAt(this.t)) sidecar.post({ kind: "lease_watched", observation: obs });
      });
    }
  }
  observation(): Observation {
    return this.stored === undefined
      ? { kind: "absent" }
      : { kind: "present", record: this.stored };
  }
  /** lease_store.ts claim(): create, or replace conditional on the resourceVersion. */
  claim(base: LeaseRecord | undefined, identity: string, podUid: string): Reply {
    const durationMs = this.timing.leaseDurationMs;
    if (base === undefined) {
      if (this.stored !== undefined) return { ok: false };
      const record: LeaseRecord = {
        holder: identity,
        durationMs,
        transitions: 0,
        resourceVersion: String(++this.#revision),
        holderPodUid: podUid,
      };
      this.commit(record);
      return { ok: true, record };
    }
    if (this.stored === undefined || this.stored.resourceVersion !== base.resourceVersion) {
      return { ok: false };
    }
    const record: LeaseRecord = {
      holder: identity,
      durationMs,
      transitions: base.holder === identity ? base.transitions : base.transitions + 1,
      resourceVersion: String(++this.#revision),
      holderPodUid: podUid,
    };
    this.commit(record);
    return { ok: true, record };
  }
  /** lease_store.ts release(): an empty holder, marked as ours when clean. */
  release(base: LeaseRecord, identity: string, clean: boolean, waitMs = 0): Reply {
    const stored = this.stored;
    if (stored === undefined || stored.resourceVersion !== base.resourceVersion) {
      return { ok: false };
    }
    const record: LeaseRecord = {
      holder: "",
      durationMs: 1_000,
      transitions: base.transitions,
      resourceVersion: String(++this.#revision),
      ...(clean ? { releasedBy: identity } : {}),
      ...(clean && waitMs > 0 ? { releaseWaitMs: Math.ceil(waitMs) } : {}),
      ...(!clean && stored.holderPodUid !== undefined ? { holderPodUid: stored.holderPodUid } : {}),
    };
    this.commit(record);
    return { ok: true, record };
  }
  /** A hand edit (kubectl): a new version of the stored record, or a deletion. */
  edit(change: Partial<LeaseRecord> | "delete"): void {
    if (this.stored === undefined) return;
    if (change === "delete") return this.commit(undefined);
    this.commit({ ...this.stored, ...change, resourceVersion: String(++this.#revision) });
  }

  /**
   * Sends a request from `sidecar`: it may be lost on the way there or back, or come too late.
   * `onReply` gets undefined when the client's timeout fires first.
   */
  request<R>(
    sidecar: Sidecar,
    timeoutMs: number,
    serve: () => R,
    onReply: (reply: R | undefined) => void,
  ): void {
    const pod = sidecar.pod;
    let answered = false;
    const finish = (reply: R | undefined): void => {
      if (answered) return;
      answered = true;
      if (!sidecar.exited) onReply(reply);
    };
    this.after(this.#noTimeouts ? 30_000 : timeoutMs, () => finish(undefined));
    if (this.rand() < this.#dropRate || pod.partitionedAt(this.t)) return;
    this.after(this.delay(), () => {
      const reply = serve();
      if (this.rand() < this.#dropRate) return;
      this.after(this.delay(), () => {
        if (!pod.partitionedAt(this.t)) finish(reply);
      });
    });
  }

  // ---- the schedule -----------------------------------------------------------------------

  run(): SimResult {
    const { durationMs, maxDeletes } = this.#opts;
    // A fresh deployment, or a Lease left by an earlier process of pod-0 that is gone.
    if (this.rand() < 0.5) {
      this.stored = {
        holder: "pod-0_gone",
        durationMs: this.timing.leaseDurationMs,
        transitions: 4,
        resourceVersion: String(++this.#revision),
        holderPodUid: "uid-0-old",
      };
    }
    for (let i = 0; i < 3; i++) {
      const pod = new Pod(this, i);
      this.pods.push(pod);
      this.after(this.between(0, 3_000), () => pod.create());
    }
    const anyTime = () => this.between(0, durationMs);

    // Partitions: a pod cut off from the API server for up to 30 s.
    for (const pod of this.pods) {
      if (this.rand() < 0.5) {
        const from = anyTime();
        pod.partition = [from, from + this.between(0, 30_000)];
        this.count("partition");
      }
    }
    // Hand edits: a cleared holder, a shortened duration, a deletion.
    let deletes = 0;
    for (let i = 0; i < 4; i++) {
      this.at(anyTime(), () => {
        if (this.stored === undefined) return;
        const r = this.rand();
        if (r < 0.4) {
          this.count("holder_cleared");
          this.edit({ holder: "" });
        } else if (r < 0.8) {
          this.count("duration_shortened");
          this.edit({ durationMs: 1_000 });
        } else if (deletes < maxDeletes) {
          deletes++;
          this.count("deleted");
          this.edit("delete");
        }
      });
    }
    // The Secret: a KES rotation (sometimes half done for a while), or unusable sources.
    if (this.rand() < 0.3) {
      this.at(anyTime(), () => {
        this.count("rotation");
        this.sourceVersion++;
        if (this.rand() < 0.5) this.#sourcesBroken.push([this.t, this.t + this.between(0, 10_000)]);
      });
    }
    if (this.rand() < 0.2) {
      const from = anyTime();
      this.#sourcesBroken.push([from, from + this.between(0, 20_000)]);
      this.count("sources_unusable");
    }
    // Pods: node restarts, planned restarts of a sidecar or a pod, pod crashes. Mostly aimed
    // at the pod whose node forges at that moment.
    const lifecycle = Math.floor(this.rand() * 4);
    for (let i = 0; i < lifecycle; i++) {
      this.at(anyTime(), () => {
        const forger = this.pods.find((p) => p.node.forgingSince !== undefined);
        const pod = forger !== undefined && this.rand() < 0.7
          ? forger
          : this.pods[Math.floor(this.rand() * 3)]!;
        const r = this.rand();
        if (r < 0.3) pod.restartNode();
        else if (r < 0.6) pod.restartSidecar();
        else if (r < 0.85) pod.restartPod();
        else pod.crash();
      });
    }

    let events = 0;
    for (;;) {
      const at = this.#queue.peek();
      if (at === undefined || at > durationMs) break;
      if (++events > 2_000_000) {
        throw new Error(`seed ${this.#opts.seed}: the simulation does not advance`);
      }
      this.t = at;
      this.#queue.pop()!();
    }
    this.t = durationMs;
    for (const pod of this.pods) pod.node.stopForging();
    return { forging: this.forging, acquired: this.acquired, faults: this.faults, events };
  }
}

/** A pod: its node (which outlives a sidecar restart) and its current sidecar process, if any. */
class Pod {
  readonly node: SimNode;
  sidecar: Sidecar | undefined;
  partition: [number, number] = [0, 0];
  /** Bumped each time the pod is deleted: work of an earlier pod does nothing. */
  generation = 0;
  #processes = 0;
  /** The node container started (it starts once the sidecar's startup probe passes). */
  #nodeLaunched = false;
  /** What to do once the sidecar's loop has ended. */
  #onExit: (() => void) | undefined;

  constructor(readonly world: World, readonly index: number) {
    this.node = new SimNode(world, this);
  }

  partitionedAt(at: number): boolean {
    return at >= this.partition[0] && at < this.partition[1];
  }

  /** A new pod: empty key folder, no node yet; the sidecar starts. */
  create(): void {
    this.world.trace(`pod ${this.index} created`);
    this.#nodeLaunched = false;
    this.#startSidecar();
  }

  #startSidecar(): void {
    this.#onExit = undefined;
    this.sidecar = new Sidecar(this.world, this, ++this.#processes);
  }

  /** Called after every step of the current sidecar. */
  stepped(sidecar: Sidecar): void {
    if (!this.#nodeLaunched && startupDone(sidecar.state)) {
      // The node container starts after the sidecar's startup probe passes.
      this.#nodeLaunched = true;
      const generation = this.generation;
      this.world.after(this.world.between(0, 1_000), () => {
        if (this.generation === generation) this.node.launch();
      });
    }
    if (sidecar.exited && sidecar === this.sidecar) {
      this.sidecar = undefined;
      this.world.trace(`pod ${this.index} sidecar ${sidecar.identity} exited`);
      const next = this.#onExit;
      this.#onExit = undefined;
      next?.();
    }
  }

  /** The node process exits; the kubelet restarts it a little later. */
  restartNode(): void {
    if (this.node.proc === undefined) return;
    this.world.count("node_restart");
    this.world.trace(`pod ${this.index} node restarts`);
    this.node.exit();
    const generation = this.generation;
    this.world.after(this.world.between(500, 5_000), () => {
      if (this.generation === generation) this.node.launch();
    });
  }

  /** A planned shutdown of the sidecar alone; a new sidecar process starts after it. */
  restartSidecar(): void {
    const sidecar = this.sidecar;
    if (sidecar === undefined || this.#onExit !== undefined) return;
    this.world.count("sidecar_restart");
    this.world.trace(`pod ${this.index} sidecar restarts`);
    this.#shutdown(sidecar, () => {
      this.world.after(this.world.between(500, 5_000), () => {
        if (this.sidecar === undefined) this.#startSidecar();
      });
    });
  }

  /** A planned pod restart: the node gets SIGTERM first, then the sidecar; then a new pod. */
  restartPod(): void {
    const sidecar = this.sidecar;
    if (sidecar === undefined || this.#onExit !== undefined) return;
    this.world.count("pod_restart");
    this.world.trace(`pod ${this.index} restarts`);
    const generation = ++this.generation;
    this.#onExit = () => {}; // no other planned restart meanwhile
    this.world.after(this.world.between(0, 2_000), () => {
      if (this.sidecar !== sidecar) return;
      this.node.exit();
      this.world.after(this.world.between(0, 1_000), () => {
        if (this.sidecar !== sidecar) return;
        this.#shutdown(sidecar, () => {
          this.node.clear();
          this.world.after(this.world.between(1_000, 10_000), () => {
            if (this.generation === generation) this.create();
          });
        });
      });
    });
  }

  /** The pod dies at once, node and sidecar (a lost machine); a new pod comes later. */
  crash(): void {
    const sidecar = this.sidecar;
    if (sidecar === undefined) return;
    this.world.count("pod_crash");
    this.world.trace(`pod ${this.index} crashes`);
    const generation = ++this.generation;
    sidecar.kill();
    this.sidecar = undefined;
    this.#onExit = undefined;
    this.node.exit();
    this.node.clear();
    this.world.after(this.world.between(1_000, 10_000), () => {
      if (this.generation === generation) this.create();
    });
  }

  /** SIGTERM to the sidecar; `then` once its loop ended (or it was killed after the grace). */
  #shutdown(sidecar: Sidecar, then: () => void): void {
    this.#onExit = then;
    sidecar.post({ kind: "shutdown" });
    this.world.after(30_000, () => {
      if (this.sidecar !== sidecar) return;
      sidecar.kill();
      this.sidecar = undefined;
      this.#onExit = undefined;
      then();
    });
  }
}

/** One pod's cardano-node, as it behaves for forging. */
class SimNode {
  proc: { info: NodeInfo; readyAt: number } | undefined;
  /**
   * What the three key files in place are (they are placed and unlinked together): the pool's
   * keys, the decoys (a set of no pool: the node boots and reloads with them, never forging for
   * the pool), or none.
   */
  keys: "pool" | "decoys" | undefined;
  keyVersion = 0;
  /** Set while the node forges: since when, and under which path. */
  forgingSince: number | undefined;
  #path: AcquirePath | "none" = "none";
  #pid: number;

  constructor(readonly world: World, readonly pod: Pod) {
    this.#pid = 1000 * (pod.index + 1);
  }

  find(): NodeInfo | undefined {
    return this.proc?.info;
  }
  socketAccepts(): boolean {
    return this.proc !== undefined && this.world.t >= this.proc.readyAt;
  }
  /** The kubelet starts the node container: it boots non-producing, or exits without keys. */
  launch(): void {
    if (this.proc !== undefined) return;
    if (this.keys === undefined) {
      // cardano-node exits at boot without its key files; the kubelet retries.
      const generation = this.pod.generation;
      this.world.after(this.world.between(1_000, 5_000), () => {
        if (this.pod.generation === generation) this.launch();
      });
      return;
    }
    const pid = ++this.#pid;
    this.proc = {
      info: { pid, startTicks: this.world.t, nonProducing: true },
      readyAt: this.world.t + this.world.between(500, 20_000),
    };
    this.world.trace(`pod ${this.pod.index} node ${pid} starts`);
  }
  exit(): void {
    if (this.proc === undefined) return;
    this.world.trace(`pod ${this.pod.index} node ${this.proc.info.pid} exits`);
    this.stopForging();
    this.proc = undefined;
  }
  /** The pod is gone: its key folder (an emptyDir) with it. */
  clear(): void {
    this.keys = undefined;
  }
  /** Places the pool's three files; returns those whose content changed. */
  place(version: number): string[] {
    const changed = this.keys === "pool" && this.keyVersion === version ? [] : KEY_FILES;
    this.keys = "pool";
    this.keyVersion = version;
    return changed;
  }
  /** Places the decoys; returns the files that changed. */
  placeDecoys(): string[] {
    const changed = this.keys === "decoys" ? [] : KEY_FILES;
    this.keys = "decoys";
    return changed;
  }
  remove(): void {
    this.keys = undefined;
  }
  /**
   * Delivers a SIGHUP to exactly `info`: the node forges for the pool iff the pool's files are in
   * place, and stops iff a file is missing. Decoys change nothing here (conservative: the real
   * node would reload them and so stop forging for the pool, which nothing of ours relies on).
   */
  hangup(info: NodeInfo, from: Sidecar): "ok" | "not_found" | "replaced" {
    const proc = this.proc;
    if (proc === undefined) return "not_found";
    if (proc.info.pid !== info.pid || proc.info.startTicks !== info.startTicks) return "replaced";
    if (this.keys === "pool" && this.forgingSince === undefined) {
      this.forgingSince = this.world.t;
      this.#path = from.path ?? "none";
      this.world.trace(`pod ${this.pod.index} FORGES (${this.#path})`);
    } else if (this.keys === undefined) {
      this.stopForging();
    }
    return "ok";
  }
  stopForging(): void {
    if (this.forgingSince === undefined) return;
    this.world.forging.push({
      pod: this.pod.index,
      start: this.forgingSince,
      end: this.world.t,
      path: this.#path,
    });
    this.world.trace(`pod ${this.pod.index} stops forging`);
    this.forgingSince = undefined;
  }
}

/**
 * One sidecar process: the loop of lib/runtime/forge_manager.ts (one queue, one writer, a timer at
 * `nextWake`) around the real step, and the effect runner of lib/runtime/effects.ts against the world.
 */
class Sidecar {
  state: ForgingState;
  readonly identity: string;
  /** The process's monotonic clock: global time plus an origin of its own. */
  readonly origin: number;
  /** How this process's latest term was begun (undefined: it never held one). */
  path: AcquirePath | undefined;
  /** The loop ended (phase done) or the process was killed: nothing is posted any more. */
  exited = false;
  #killed = false;
  readonly #events: ForgingEvent[] = [];
  #draining = false;
  /** When the loop's timer fires (global time), if one is set. */
  #timerAt: number | undefined;
  readonly #lane: (readonly Effect[])[] = [];
  #laneAt = 0;
  #laneBusy = false;

  constructor(readonly world: World, readonly pod: Pod, process: number) {
    this.identity = `pod-${pod.index}_${process}`;
    this.origin = Math.floor(world.rand() * 1e9) - 5e8;
    const cfg: ForgingConfig = {
      ...world.timing,
      identity: this.identity,
      podName: `pod-${pod.index}`,
      fence: false,
      startAsNonProducing: true,
      // Pods 0 and 2 boot on decoys, pod 1 on the pool's keys: both ways in every schedule
      // (chosen by index, so that the schedules' random draws stay as they were).
      decoys: pod.index % 2 === 0,
      socketCheck: true,
      socketWaitTimeoutMs: 600_000,
    };
    world.trace(`${this.identity} starts`);
    this.state = undefined as unknown as ForgingState;
    this.#advance(start(cfg, this.local()));
    // The watch connects: its first event lists the Lease, if there is one.
    world.after(world.delay(), () => {
      if (world.stored !== undefined && !pod.partitionedAt(world.t)) {
        this.post({ kind: "lease_watched", observation: world.observation() });
      }
    });
    if (pod.partition[1] > world.t) {
      // It reconnects once the partition is over.
      world.at(pod.partition[1] + world.delay(), () => {
        if (world.stored !== undefined) {
          this.post({ kind: "lease_watched", observation: world.observation() });
        }
      });
    }
    this.#arm();
  }

  local(): number {
    return this.world.t + this.origin;
  }

  /** The loop's queue: an event wakes the loop (its timer no longer counts) and is stepped. */
  post(event: ForgingEvent): void {
    if (this.exited) return;
    this.#events.push(event);
    if (!this.#draining) this.#drain();
  }

  /** SIGKILL: the process is gone; requests it sent may still reach the server. */
  kill(): void {
    this.exited = true;
    this.#killed = true;
    this.world.trace(`${this.identity} killed`);
  }

  #drain(): void {
    this.#draining = true;
    for (let e = this.#events.shift(); e !== undefined; e = this.#events.shift()) {
      if (this.exited) break;
      this.#step(e);
    }
    this.#draining = false;
    if (!this.exited) this.#arm();
  }

  /**
   * The timer at the next wake-up time, at least 1 ms away, as forge_manager.ts sets it when its
   * queue is empty. A timer already set for that very time is kept (it would tick the same).
   */
  #arm(): void {
    const now = this.local();
    const at = nextWake(this.state, now);
    if (at === undefined) {
      this.#timerAt = undefined;
      return;
    }
    const fireAt = this.world.t + Math.max(1, at - now);
    if (fireAt === this.#timerAt) return;
    this.#timerAt = fireAt;
    this.world.at(fireAt, () => {
      if (this.#timerAt !== fireAt || this.exited) return;
      this.#timerAt = undefined;
      this.#step({ kind: "tick" });
      if (!this.exited) this.#arm();
    });
  }

  #step(event: ForgingEvent): void {
    const before = this.state.term;
    const next = step(this.state, event, this.local());
    if (next.state.term !== before && event.kind === "lease_written") {
      this.path = pathOf(event.decision, this.identity);
      this.world.acquired[this.path]++;
      this.world.trace(`${this.identity} became leader (${this.path})`);
    }
    if (this.world.tracing && next.state.phase.kind !== this.state.phase.kind) {
      this.world.trace(`${this.identity} ${event.kind}: ${next.state.phase.kind}`);
    }
    this.#advance(next);
  }

  #advance({ state, effects }: { state: ForgingState; effects: Effect[] }): void {
    this.state = state;
    this.#run(effects);
    if (state.phase.kind === "done") this.exited = true;
    this.pod.stepped(this);
  }

  // ---- the effect runner (lib/runtime/effects.ts) -------------------------------------------------

  /** Queues one step's effects behind those of earlier steps. */
  #run(effects: readonly Effect[]): void {
    if (effects.length === 0) return;
    this.#lane.push(effects);
    // effects.ts starts an idle lane in a microtask: at this same instant.
    if (!this.#laneBusy) {
      this.#laneBusy = true;
      this.#pump();
    }
  }

  #pump(): void {
    while (!this.#killed) {
      const batch = this.#lane[0];
      if (batch === undefined) {
        this.#laneBusy = false;
        return;
      }
      const effect = batch[this.#laneAt++];
      if (effect === undefined) {
        this.#lane.shift();
        this.#laneAt = 0;
        continue;
      }
      if (LANE_EFFECTS.has(effect.kind)) {
        this.world.after(this.world.laneDelay(), () => {
          if (this.#killed) return;
          this.#performOnLane(effect);
          this.#pump();
        });
        return;
      }
      this.#begin(effect);
    }
  }

  /** The effects awaited on the lane: keys, signals, comparing sources. */
  #performOnLane(e: Effect): void {
    const { world, pod } = this;
    const node = pod.node;
    switch (e.kind) {
      case "place_keys":
        if (e.purpose === "boot" && e.decoys) {
          return this.post({ kind: "decoys_placed", changed: node.placeDecoys() });
        }
        if (!world.sourcesUsable()) {
          // Validation fails before anything is written: the targets stay as they are.
          return this.post({
            kind: "keys_place_failed",
            purpose: e.purpose,
            error: "Cannot use the source keys: simulated invalid set",
          });
        }
        return this.post({
          kind: "keys_placed",
          purpose: e.purpose,
          placed: { changed: node.place(world.sourceVersion), facts: FACTS },
          wallMs: WALL_ORIGIN_MS + world.t,
        });
      case "remove_keys":
        node.remove();
        return this.post({ kind: "keys_removed", stop: e.stop, ok: true });
      case "signal": {
        const stop = e.stop !== undefined ? { stop: e.stop } : {};
        const target = e.node ?? node.find();
        if (target === undefined) {
          return this.post({
            kind: "signalled",
            reason: e.reason,
            ...stop,
            outcome: e.stop !== undefined ? "no_node" : "not_found",
            error: "Cannot signal cardano-node: no such process",
          });
        }
        const outcome = node.hangup(target, this);
        return this.post({
          kind: "signalled",
          reason: e.reason,
          ...stop,
          pid: target.pid,
          outcome,
          ...(outcome !== "ok" ? { error: `simulated SIGHUP: ${outcome}` } : {}),
        });
      }
      case "check_sources": {
        const differ = node.keys !== "pool" || node.keyVersion !== world.sourceVersion;
        if (!differ || world.sourcesUsable()) {
          return this.post({ kind: "sources_checked", differ });
        }
        return this.post({ kind: "sources_checked", differ, problem: "simulated half rotation" });
      }
      default:
        throw new Error(`not a lane effect: ${e.kind}`);
    }
  }

  /** The effects started in their turn and not awaited. */
  #begin(e: Effect): void {
    const { world, pod } = this;
    switch (e.kind) {
      case "report":
      case "start_fence": // FENCE=off: effects.ts has no fence to start
      case "cancel_fence":
        return;
      case "probe_socket":
        return world.after(world.laneDelay(), () => {
          this.post({ kind: "socket_probed", accepts: pod.node.socketAccepts() });
        });
      case "claim_leader": // no CardanoLeader status here: answered after a delay all the same
        return world.after(world.laneDelay(), () => {
          this.post({ kind: "leader_claimed", term: e.term });
        });
      case "check_node":
        return world.after(world.laneDelay(), () => {
          const node = pod.node.find();
          const known = node !== undefined && `${node.pid}:${node.startTicks}` === e.readyKey;
          const accepts = node === undefined || known ? true : pod.node.socketAccepts();
          this.post({ kind: "node_checked", node, accepts });
        });
      case "read_lease":
        return world.request(this, e.timeoutMs, () => world.observation(), (observation) => {
          this.post(
            observation === undefined
              ? { kind: "lease_read_failed", error: "simulated timeout" }
              : { kind: "lease_read", observation },
          );
        });
      case "write_lease":
        return this.#write(e);
      case "check_credentials":
        // Only with KES checks on (cfg.kesTiming), which this simulation leaves off.
        return world.after(world.laneDelay(), () => {
          const wallMs = WALL_ORIGIN_MS + world.t;
          this.post(
            world.sourcesUsable()
              ? { kind: "credentials_checked", facts: FACTS, wallMs }
              : { kind: "credentials_checked", error: "simulated invalid set", wallMs },
          );
        });
      case "read_node_metrics":
        // Only with cfg.nodeMetrics, off here: the simulated nodes serve no metrics.
        return world.after(world.laneDelay(), () => {
          this.post({ kind: "node_metrics_read", error: "node metrics are not read" });
        });
      case "release_lease":
        if (world.tracing) world.trace(`${this.identity} sends release (clean ${e.clean})`);
        return world.request(
          this,
          e.timeoutMs,
          () => world.release(e.record, this.identity, e.clean, e.waitMs ?? 0),
          (reply) => {
            this.post(
              reply?.ok
                ? { kind: "lease_released", record: reply.record, clean: e.clean }
                : { kind: "lease_release_failed", error: reply ? "conflict" : "timeout" },
            );
          },
        );
      default:
        throw new Error(`a lane effect: ${e.kind}`);
    }
  }

  #write(e: Extract<Effect, { kind: "write_lease" }>): void {
    const { decision, deadline, maxTimeoutMs } = e;
    const world = this.world;
    // The term is measured from when the request is SENT.
    const sentAt = this.local();
    const timeoutMs = Math.min(deadline - sentAt, maxTimeoutMs);
    if (timeoutMs <= 0) {
      return this.post({
        kind: "lease_write_failed",
        decision,
        conflict: false,
        error: "the term ended before the request could be sent",
      });
    }
    if (world.tracing) {
      world.trace(`${this.identity} sends ${decision.kind} on ${decision.record?.resourceVersion}`);
    }
    world.request(
      this,
      timeoutMs,
      () => world.claim(decision.record, this.identity, `uid-${this.pod.index}`),
      (reply) => {
        if (world.tracing) {
          world.trace(`${this.identity} ${decision.kind} ${reply?.ok ? "ok" : "failed"}`);
        }
        if (reply?.ok) {
          return this.post({
            kind: "lease_written",
            decision,
            record: reply.record,
            sentAt,
            ...(e.previous !== undefined ? { previous: e.previous } : {}),
          });
        }
        this.post({
          kind: "lease_write_failed",
          decision,
          conflict: reply !== undefined,
          error: reply !== undefined ? "conflict" : "simulated timeout",
        });
      },
    );
  }
}

function pathOf(decision: WriteDecision, identity: string): AcquirePath {
  if (decision.kind === "renew") return "own"; // a renew answered after its term had ended
  const record = decision.record;
  if (record === undefined) return "create";
  if (record.holder === identity) return "own";
  if (record.holder === "" && record.releasedBy !== undefined && record.releasedBy !== "") {
    return "released";
  }
  return "expired";
}
