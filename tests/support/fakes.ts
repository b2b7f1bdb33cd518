/**
 * Small fakes of the ports `ForgeManager` talks to, for in-process tests of its loop: an in-memory
 * Lease with resourceVersions and conflicts, a node process that records every SIGHUP (and whether
 * the keys were on disk at that moment), a recording status reporter, a fence the test settles,
 * and a logger that keeps its lines (the clock is tests/support/virtual_clock.ts). All of them write to one shared
 * {@linkcode Journal}, so a test can check the order of operations across ports.
 *
 * The credentials are NOT faked: tests use `FileCredentialStore` on real files in a temp dir.
 * Needs read permission on the credential targets (the node fake looks at them).
 *
 * @module
 */

import type { Clock } from "../../lib/base/clock.ts";
import type { LeaseRecord, Observation } from "../../lib/kube/lease_store.ts";
import type { Fence, FenceOutcome, FenceRequest } from "../../lib/kube/fence.ts";
import type { GuardPort } from "../../lib/runtime/guard_port.ts";
import type { GuardNotice } from "../../lib/core/worker_protocol.ts";
import {
  type ClaimArgs,
  LeaseConflict,
  type LeaseStore,
  type ReleaseOptions,
} from "../../lib/kube/lease_store.ts";
import { createLogger, type Logger, type LogLevel } from "../../lib/base/log.ts";
import {
  type NodeInfo,
  type NodeProcess,
  SignalError,
  type SignalFailure,
} from "../../lib/core/node_process.ts";
import type { StatusReporter, StatusUpdate } from "../../lib/kube/cardano_leader.ts";

// ---- clock and journal ------------------------------------------------------------------------

/** One thing a fake saw, with the clock's time. */
export interface JournalEntry {
  at: number;
  what: string;
  detail: Record<string, unknown>;
}

/** The shared, ordered record of what the fakes (and the credential hook) saw. */
export class Journal {
  readonly entries: JournalEntry[] = [];
  constructor(readonly clock: Clock) {}

  add(what: string, detail: Record<string, unknown> = {}): void {
    this.entries.push({ at: this.clock.monotonic(), what, detail });
  }
  /** The entries whose `what` is one of `whats`. */
  only(...whats: string[]): JournalEntry[] {
    return this.entries.filter((e) => whats.includes(e.what));
  }
  /** The `what`s in order, e.g. `["credential_remove", "hangup", "release"]`. */
  sequence(...whats: string[]): string[] {
    return this.only(...whats).map((e) => e.what);
  }
}

// ---- the Lease --------------------------------------------------------------------------------

/** What an injected fault does to a request: reject, conflict, or never answer until `unhang()`. */
export type Fault = "error" | "conflict" | "hang";

/** One request the store received. */
export interface StoreCall {
  op: "read" | "create" | "acquire" | "renew" | "release";
  /** Clock time at which the request arrived (after the manager took its send time). */
  at: number;
  timeoutMs: number;
  outcome: "pending" | "ok" | "conflict" | "error";
  /** Clock time at which it was answered. */
  doneAt?: number;
  identity?: string;
  clean?: boolean;
}

/** Fields of a record a test writes; the store assigns the resourceVersion. */
export type RecordFields = Omit<LeaseRecord, "resourceVersion">;

/**
 * An in-memory Lease with the API server's rules that matter here: every write gets a new
 * resourceVersion, a write carrying an older one is a {@linkcode LeaseConflict}, a create over an
 * existing Lease is a conflict, and every change reaches the watchers (own writes included).
 * `faults` makes requests fail, conflict or hang (ignoring their timeout, like a stuck connection).
 */
export class FakeLeaseStore implements LeaseStore {
  readonly calls: StoreCall[] = [];
  faults: Partial<Record<"read" | "claim" | "release", Fault>> = {};
  readonly #journal: Journal;
  readonly #clock: Clock;
  #record: LeaseRecord | undefined;
  #version = 100;
  readonly #watchers = new Set<(obs: Observation) => void>();
  readonly #hung: (() => void)[] = [];

  constructor(journal: Journal, initial?: RecordFields) {
    this.#journal = journal;
    this.#clock = journal.clock;
    if (initial !== undefined) this.#record = this.#stamp(initial);
  }

  /** The Lease as stored now, undefined when absent. */
  get record(): LeaseRecord | undefined {
    return this.#record === undefined ? undefined : { ...this.#record };
  }
  /** Requests that are hanging now. */
  get hanging(): number {
    return this.#hung.length;
  }
  /** The calls of one kind. */
  callsOf(...ops: StoreCall["op"][]): StoreCall[] {
    return this.calls.filter((c) => ops.includes(c.op));
  }

  // ---- what another writer (a hand edit, another replica) does ----

  /** Replaces the Lease (or creates it) with `fields`, as another writer would. */
  put(fields: RecordFields): LeaseRecord {
    this.#record = this.#stamp(fields);
    this.#journal.add("lease_put", { holder: fields.holder });
    this.#notify();
    return { ...this.#record };
  }
  /** Changes some fields of the existing Lease (a new resourceVersion). */
  edit(change: Partial<RecordFields>): LeaseRecord {
    const { resourceVersion: _rv, ...current } = this.#record ?? {
      holder: "",
      durationMs: 0,
      transitions: 0,
      resourceVersion: "",
    };
    return this.put({ ...current, ...change });
  }
  /** Deletes the Lease. */
  delete(): void {
    this.#record = undefined;
    this.#journal.add("lease_delete");
    this.#notify();
  }
  /** Answers every hanging request with an error. */
  unhang(): void {
    for (const fail of this.#hung.splice(0)) fail();
  }

  // ---- LeaseStore ----

  read(timeoutMs: number): Promise<Observation> {
    return this.#request(
      { op: "read", timeoutMs },
      "read",
      () =>
        this.#record === undefined
          ? { kind: "absent" }
          : { kind: "present", record: { ...this.#record } },
    );
  }

  claim(args: ClaimArgs): Promise<LeaseRecord> {
    const op = args.record === undefined
      ? "create"
      : args.record.holder === args.identity
      ? "renew"
      : "acquire";
    return this.#request(
      { op, timeoutMs: args.timeoutMs, identity: args.identity },
      "claim",
      () => {
        const current = this.#record;
        if (args.record === undefined) {
          if (current !== undefined) throw new LeaseConflict("fake: the Lease already exists");
          return this.#write({
            holder: args.identity,
            durationMs: args.durationSeconds * 1000,
            transitions: 0,
            ...(args.podUid !== "" ? { holderPodUid: args.podUid } : {}),
            ...(args.fencePending !== undefined ? { fencePending: args.fencePending } : {}),
            ...(args.guardBoundMs !== undefined ? { guardBoundMs: args.guardBoundMs } : {}),
          });
        }
        this.#precondition(args.record);
        const same = current!.holder === args.identity;
        return this.#write({
          holder: args.identity,
          durationMs: args.durationSeconds * 1000,
          transitions: same ? current!.transitions : current!.transitions + 1,
          ...(args.podUid !== "" ? { holderPodUid: args.podUid } : {}),
          ...(args.fencePending !== undefined ? { fencePending: args.fencePending } : {}),
          ...(args.guardBoundMs !== undefined ? { guardBoundMs: args.guardBoundMs } : {}),
        });
      },
    );
  }

  release(
    record: LeaseRecord,
    identity: string,
    clean: boolean,
    timeoutMs: number,
    opts: ReleaseOptions = {},
  ): Promise<LeaseRecord> {
    const waitMs = opts.waitMs ?? 0;
    return this.#request({ op: "release", timeoutMs, identity, clean }, "release", () => {
      this.#precondition(record);
      const current = this.#record!;
      return this.#write({
        holder: "",
        durationMs: 1000,
        transitions: current.transitions,
        ...(clean ? { releasedBy: identity } : {}),
        ...(clean && waitMs > 0 ? { releaseWaitMs: Math.ceil(waitMs) } : {}),
        ...(opts.fencePending !== undefined ? { fencePending: opts.fencePending } : {}),
        ...(!clean && current.holderPodUid !== undefined
          ? { holderPodUid: current.holderPodUid }
          : {}),
        ...(!clean && current.guardBoundMs !== undefined
          ? { guardBoundMs: current.guardBoundMs }
          : {}),
      });
    });
  }

  watch(onChange: (observation: Observation) => void, signal: AbortSignal): void {
    if (signal.aborted) return;
    this.#watchers.add(onChange);
    signal.addEventListener("abort", () => this.#watchers.delete(onChange), { once: true });
  }

  // ---- internals ----

  #stamp(fields: RecordFields): LeaseRecord {
    return { ...fields, resourceVersion: String(++this.#version) };
  }
  #precondition(record: LeaseRecord): void {
    if (this.#record === undefined || this.#record.resourceVersion !== record.resourceVersion) {
      throw new LeaseConflict(
        `fake: Lease changed since resourceVersion ${record.resourceVersion} (now ${
          this.#record?.resourceVersion ?? "absent"
        })`,
      );
    }
  }
  #write(fields: RecordFields): LeaseRecord {
    this.#record = this.#stamp(fields);
    this.#notify();
    return { ...this.#record };
  }
  #notify(): void {
    const obs: Observation = this.#record === undefined
      ? { kind: "absent" }
      : { kind: "present", record: { ...this.#record } };
    // A watch event arrives after the write's commit, asynchronously.
    queueMicrotask(() => {
      for (const watcher of this.#watchers) watcher(obs);
    });
  }

  async #request<T>(
    base: Pick<StoreCall, "op" | "timeoutMs" | "identity" | "clean">,
    kind: "read" | "claim" | "release",
    perform: () => T,
  ): Promise<T> {
    const call: StoreCall = { ...base, at: this.#clock.monotonic(), outcome: "pending" };
    this.calls.push(call);
    this.#journal.add(base.op, { identity: base.identity, clean: base.clean });
    const finish = (outcome: StoreCall["outcome"]) => {
      call.outcome = outcome;
      call.doneAt = this.#clock.monotonic();
    };
    await Promise.resolve(); // answered asynchronously, like any request
    const fault = this.faults[kind];
    if (fault === "hang") {
      await new Promise<void>((resolve) => this.#hung.push(resolve));
      finish("error");
      throw new Error(`fake: ${base.op} request hung and was dropped`);
    }
    if (fault === "error") {
      finish("error");
      throw new Error(`fake: ${base.op} request failed (injected)`);
    }
    if (fault === "conflict") {
      finish("conflict");
      throw new LeaseConflict(`fake: ${base.op} conflict (injected)`);
    }
    try {
      const result = perform();
      finish("ok");
      return result;
    } catch (err) {
      finish(err instanceof LeaseConflict ? "conflict" : "error");
      throw err;
    }
  }
}

// ---- the node ---------------------------------------------------------------------------------

/** One SIGHUP the node fake received. */
export interface HangupRecord {
  at: number;
  pid: number;
  startTicks: number;
  /** How many of the credential targets existed when the signal was sent. */
  keysPresent: number;
  /** "ok" or why it was not delivered. */
  outcome: "ok" | SignalFailure;
}

/**
 * cardano-node as the port sees it. `info` is what `find()` returns (undefined: not running).
 * `hangup()` behaves like the core's: a node that is gone is `not_found`, one with another
 * pid/start time is `replaced`; `refuse` (every call) or `failNext` (the next calls) force a
 * failure. Each call records whether the keys were on disk at that moment.
 */
export class FakeNode implements NodeProcess {
  info: NodeInfo | undefined;
  /** Every hangup fails with this reason while set. */
  refuse: SignalFailure | undefined;
  /** The next hangups fail with these reasons, one each, before `refuse` applies. */
  readonly failNext: SignalFailure[] = [];
  /** `find()` throws while set. */
  findError: Error | undefined;
  readonly hangups: HangupRecord[] = [];
  readonly #targets: readonly string[];
  readonly #journal: Journal;

  constructor(journal: Journal, targets: readonly string[], info?: NodeInfo) {
    this.#journal = journal;
    this.#targets = targets;
    this.info = info;
  }

  /** SIGHUPs that were delivered. */
  get delivered(): HangupRecord[] {
    return this.hangups.filter((h) => h.outcome === "ok");
  }

  find(): Promise<NodeInfo | undefined> {
    if (this.findError !== undefined) return Promise.reject(this.findError);
    return Promise.resolve(this.info === undefined ? undefined : { ...this.info });
  }

  hangup(node: NodeInfo): Promise<void> {
    const keysPresent = this.#targets.filter(existsNow).length;
    const outcome: HangupRecord["outcome"] = this.failNext.shift() ?? this.refuse ??
      (this.info === undefined
        ? "not_found"
        : this.info.pid !== node.pid || this.info.startTicks !== node.startTicks
        ? "replaced"
        : "ok");
    const at = this.#journal.clock.monotonic();
    this.hangups.push({ at, pid: node.pid, startTicks: node.startTicks, keysPresent, outcome });
    this.#journal.add("hangup", { pid: node.pid, keysPresent, outcome });
    if (outcome !== "ok") {
      return Promise.reject(new SignalError(outcome, `fake: SIGHUP to ${node.pid}: ${outcome}`));
    }
    return Promise.resolve();
  }
}

function existsNow(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

// ---- status, fence, logger --------------------------------------------------------------------

/** How the status fake answers: succeed, reject, or never answer until `unhang()`. */
export type StatusMode = "ok" | "fail" | "hang";

/** A StatusReporter that records what it was asked to report. */
export class RecordingStatus implements StatusReporter {
  readonly reports: { update: StatusUpdate; onlyIfLeaderIs?: string }[] = [];
  readonly events: { type: "Normal" | "Warning"; reason: string; message: string }[] = [];
  reportMode: StatusMode = "ok";
  eventMode: StatusMode = "ok";
  /** The leader the status names, as the real subresource would hold it after the reports. */
  leaderPod = "";
  readonly #hung: (() => void)[] = [];
  readonly #journal: Journal;

  constructor(journal: Journal) {
    this.#journal = journal;
  }

  report(update: StatusUpdate, onlyIfLeaderIs?: string): Promise<void> {
    this.reports.push(onlyIfLeaderIs === undefined ? { update } : { update, onlyIfLeaderIs });
    this.#journal.add("status_report", { reason: update.reason });
    if (
      this.reportMode === "ok" &&
      (onlyIfLeaderIs === undefined || onlyIfLeaderIs === this.leaderPod)
    ) {
      this.leaderPod = update.leaderPod;
    }
    return this.#answer(this.reportMode);
  }
  /** The pods that claimed the status, in order (the fake has no pod of its own: `claimAs`). */
  readonly claims: string[] = [];
  claimAs = "producer-0";
  claim(_timeoutMs: number): Promise<void> {
    this.claims.push(this.claimAs);
    this.#journal.add("status_claim", { pod: this.claimAs });
    if (this.reportMode === "ok") this.leaderPod = this.claimAs;
    return this.#answer(this.reportMode);
  }
  lastLeader(): Promise<string> {
    this.#journal.add("status_read", { leaderPod: this.leaderPod });
    return this.reportMode === "fail"
      ? Promise.reject(new Error("fake: status read failed"))
      : Promise.resolve(this.leaderPod);
  }
  event(type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
    this.events.push({ type, reason, message });
    this.#journal.add("status_event", { type, reason });
    return this.#answer(this.eventMode);
  }
  /** Fails every hanging call. */
  unhang(): void {
    for (const fail of this.#hung.splice(0)) fail();
  }
  #answer(mode: StatusMode): Promise<void> {
    if (mode === "fail") return Promise.reject(new Error("fake: status write failed"));
    if (mode === "hang") {
      return new Promise((_, reject) =>
        this.#hung.push(() => reject(new Error("fake: status write hung")))
      );
    }
    return Promise.resolve();
  }
}

/** A fence whose proofs the test settles with `settle()`; an aborted proof ends unproven. */
export class ControlledFence implements Fence {
  readonly calls: { previousHolder: string; previousPodUid: string | undefined }[] = [];
  readonly #pending: ((outcome: FenceOutcome) => void)[] = [];
  readonly #journal: Journal;

  constructor(journal: Journal) {
    this.#journal = journal;
  }

  /** Proofs still waiting. */
  get pending(): number {
    return this.#pending.length;
  }

  prove(previous: FenceRequest, signal: AbortSignal): Promise<FenceOutcome> {
    const { holder: previousHolder, podUid: previousPodUid } = previous;
    this.calls.push({ previousHolder, previousPodUid });
    this.#journal.add("fence_prove", { previousHolder });
    return new Promise((resolve) => {
      const settle = (outcome: FenceOutcome) => {
        const at = this.#pending.indexOf(settle);
        if (at >= 0) this.#pending.splice(at, 1);
        resolve(outcome);
      };
      this.#pending.push(settle);
      signal.addEventListener("abort", () => settle({ proven: false, why: "fake: aborted" }), {
        once: true,
      });
    });
  }
  /** Ends every waiting proof with `outcome`. */
  settle(outcome: FenceOutcome): void {
    for (const settle of [...this.#pending]) settle(outcome);
  }
}

/** A logger that keeps every line as a parsed object (all levels), printing nothing. */
export function recordingLogger(level: LogLevel = "debug"): {
  log: Logger;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger(level, (line) => lines.push(JSON.parse(line)));
  return { log, lines };
}

/**
 * A guard the test drives: arming answers at once (or fails with `armError`), `ping()` asks the
 * loop what the real guard would be told, and `notify()` sends what the guard would report.
 */
export class FakeGuard implements GuardPort {
  readonly #journal: Journal;
  #answer: () => { armed: boolean; leftMs: number } = () => ({ armed: false, leftMs: 0 });
  #onNotice: ((n: Exclude<GuardNotice, { kind: "ping" | "armed" }>) => void) | undefined;
  /** When set, arming fails with this error. */
  armError: string | undefined;
  arms = 0;

  constructor(journal: Journal) {
    this.#journal = journal;
  }

  arm(_timeoutMs: number): Promise<void> {
    this.arms++;
    this.#journal.add("guard_arm", { error: this.armError });
    return this.armError === undefined
      ? Promise.resolve()
      : Promise.reject(new Error(this.armError));
  }

  watch(onNotice: (n: Exclude<GuardNotice, { kind: "ping" | "armed" }>) => void): void {
    this.#onNotice = onNotice;
  }

  answerWith(answer: () => { armed: boolean; leftMs: number }): void {
    this.#answer = answer;
  }

  heartbeatAge(): number | undefined {
    return undefined;
  }

  /** What the loop answers a ping now. */
  ping(): { armed: boolean; leftMs: number } {
    return this.#answer();
  }

  /** Delivers a notice as the core would. */
  notify(notice: Exclude<GuardNotice, { kind: "ping" | "armed" }>): void {
    this.#onNotice?.(notice);
  }
}
