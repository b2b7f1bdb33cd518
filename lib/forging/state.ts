/**
 * The forging step's state: its configuration, its phases and everything it remembers between
 * events, with the predicates every concern of the step asks of it. Pure data; the step
 * (`step.ts`) is its one writer.
 *
 * @module
 */

import {
  type Decision,
  type ElectionState,
  type ElectionTiming,
  isLeading,
  termDeadline,
} from "./election.ts";
import type { FencePending, LeaseRecord } from "../kube/lease_store.ts";
import type { ControlView } from "../kube/cardano_leader.ts";
import type { NodeInfo } from "../core/node_process.ts";
import type { StopReason } from "./stop_reasons.ts";
import type { CredentialFacts } from "../cardano/cardano_keys.ts";
import type { CredentialCheck } from "./credential_verdict.ts";
import type { ConfirmationState } from "./forging_confirmation.ts";
import type { KesTiming } from "../cardano/kes_period.ts";
import type { NodeMetricsSample } from "../node/node_metrics.ts";
import {
  globalAllows,
  globalDeadline,
  type GlobalForgingConfig,
  type GlobalState,
} from "./global_state.ts";
import type { Handover } from "./handover.ts";
import type { Planned, Schedule } from "./slot_wait.ts";

/** What the step needs of the configuration. Durations in milliseconds. */
export interface ForgingConfig extends ElectionTiming {
  identity: string;
  podName: string;
  /** Prove the previous holder's node stopped before forging (FENCE=pod or guard). */
  fence: boolean;
  /**
   * FENCE=guard: a previous holder's guard bound (on the Lease), passed since the last renew of
   * it we saw, is proof too: its guard has stopped its node by then without anyone's answer.
   */
  fenceBound?: boolean;
  /** This replica forges only with its guard armed (GUARD_SOCKET; lib/forging/guard.ts). */
  guard?: boolean;
  /** The node boots non-producing and needs key files to start (START_AS_NON_PRODUCING). */
  startAsNonProducing: boolean;
  /**
   * The node boots on decoys (DECOY_CREDENTIALS): they are what the boot placement writes, and
   * every stop places them again once the node has handled its SIGHUP, so that the pool's keys
   * are in the node's folder only from a promotion to the next stop.
   */
  decoys?: boolean;
  /** Wait for the node socket at start (false: DISABLE_SOCKET_CHECK). */
  socketCheck: boolean;
  socketWaitTimeoutMs: number;
  /** The network's KES timing; without it certificates are not judged (KES checks off). */
  kesTiming?: KesTiming;
  /** POOL_ID as 56 hex digits, if configured. */
  poolId?: string;
  /** Read the node's metrics to confirm the forging state asked for. */
  nodeMetrics?: boolean;
  /**
   * Operator requests (`operations.ts`): read the CardanoLeader spec (pause, handover),
   * publish this replica's state, and (with `fence`) end the term when our own Pod is deleted.
   */
  operations?: boolean;
  /**
   * The election across clusters (`global.ts`): this replica forges only while it also holds
   * the coordination cluster's Lease, which only its cluster's local leader competes for.
   */
  global?: GlobalForgingConfig;
  /**
   * Sync-aware election (`sync.ts`, with `nodeMetrics` and `kesTiming`): a node whose tip lags
   * the wall clock's slot by more than this many slots leaves forging to a synced standby.
   */
  maxTipLagSlots?: number;
  /**
   * The return to the preferred replica (`preferred.ts`): after it has stood by ready and synced
   * this long (ms).
   */
  preferredStableMs?: number;
  /**
   * The pool's leader schedule (`slot_wait.ts`, LEADER_SCHEDULE_FILE, with `kesTiming`): planned
   * ends of term wait while a slot is within `marginMs`; a shutdown at most `shutdownWaitMs`.
   */
  schedule?: { marginMs: number; shutdownWaitMs: number };
}

/** How often the credentials are judged (the KES window moves with time), in ms. */
export const CREDENTIAL_CHECK_MS = 60_000;

/** How often the node's metrics are read, in ms (and soon after every signal). */
export const NODE_METRICS_MS = 10_000;

/**
 * How long after a stop's SIGHUP the decoys are placed, in ms. cardano-node reads the files on a
 * thread of its own some time after the signal (a garbage collection can hold it back for a
 * second or more); decoys in place by then would be enabled instead of forging being disabled.
 * That is safe (they belong to no pool, so it never leads) but the node would run leadership
 * checks and its metrics would say it forges while it should not.
 */
export const DECOY_SETTLE_MS = 5000;

/** Readings kept since the last signal (two minutes at one a 10 s). */
export const MAX_SAMPLES = 12;

/** What the last non-empty holder recorded on the Lease, for the fence. */
export interface HolderFacts {
  podUid?: string;
  writtenAt?: number;
  guardBoundMs?: number;
}

/** A lease write the election decided. */
export type WriteDecision = Extract<Decision, { kind: "renew" | "acquire" }>;

/** The node as last seen. */
export type NodeView =
  | { kind: "unknown" }
  | { kind: "absent" }
  | { kind: "present"; info: NodeInfo; ready: boolean };

/** What happens once a stop's results are in. */
export type AfterStop =
  | { kind: "standby"; announce?: boolean }
  | { kind: "step_aside"; provision: boolean }
  | { kind: "shutdown" }
  /** Our Pod is being deleted: never compete again in this process. */
  | { kind: "retire" }
  /**
   * The coordination Lease is lost or handed on, the local term goes on: this replica stays its
   * cluster's candidate (awaiting_node) and may compete again.
   */
  | { kind: "candidate" };

/**
 * The forging states. `term` numbers our terms (one per acquisition) so that a result of an
 * earlier term is recognised and ignored.
 */
export type Phase =
  /** Placing the boot keys, then waiting for the node socket, then the first node check. */
  | {
    kind: "starting";
    provisioned: boolean;
    socket: "waiting" | "probing" | "accepted";
    probeAt: number;
    giveUpAt: number;
  }
  /** Not holding the Lease; the node does not forge. */
  | { kind: "standby" }
  /** Not competing for the Lease until `until`, after stepping aside. */
  | { kind: "stepped_aside"; until: number }
  /**
   * Holding the Lease; the fence is proving the previous holder's node stopped, through the API,
   * or (FENCE=guard) by time once `boundAt` (monotonic) has come.
   */
  | { kind: "fencing"; term: number; boundAt?: number }
  /** Holding the Lease, proof done; waiting for probation to end, then for the node. */
  | { kind: "awaiting_node"; term: number }
  /**
   * Placing the keys (`placing`), then signalling the node (`signalling`); `claimed` once the
   * write naming this pod in the status was answered (or failed, or timed out); `armed` once the
   * guard holds a deadline (with a guard): the SIGHUP waits for all three.
   */
  | {
    kind: "promoting";
    term: number;
    step: "placing" | "signalling";
    facts?: PlacedKeys;
    claimed?: boolean;
    armed?: boolean;
  }
  /** The node has the keys and was signalled; `rotation` while new sources are placed. */
  | {
    kind: "forging";
    term: number;
    rotation?: { step: "placing" | "signalling"; facts?: PlacedKeys };
  }
  /** Unlinking the keys and signalling the node; `after` says what comes next. */
  | {
    kind: "stopping";
    reason: StopReason;
    after: AfterStop;
    wasForging: boolean;
    release?: Release;
    /**
     * The term was still on probation for this long: its release passes the rest on, because its
     * own clean stop says nothing of a deleted Lease's last holder (election.ts).
     */
    probationLeftMs?: number;
    /**
     * With `after` candidate: the coordination Lease is released once the stop is in (clean if
     * confirmed), to `handoverTo` if set. Every other stop of a term releases it anyway.
     */
    globalRelease?: { handoverTo?: string; holdOffMs?: number };
  }
  /** Holding the Lease (and renewing it) during an operator's pause; the node does not forge. */
  | { kind: "paused"; term: number }
  /** Our Pod is being deleted: the term ended; never competing again in this process. */
  | { kind: "retired" }
  /**
   * Releasing the Lease at shutdown. `afterWrite`: a replica without a term stopped with an
   * acquire in flight; its answer decides (won: release at once, lost: done).
   */
  | { kind: "releasing"; afterWrite?: true }
  /** Finished (after shutdown), or failed to start. */
  | { kind: "done"; error?: string };

/** Every phase name, for the README's state diagram test. */
export const PHASES = [
  "starting",
  "standby",
  "stepped_aside",
  "fencing",
  "awaiting_node",
  "promoting",
  "forging",
  "stopping",
  "paused",
  "retired",
  "releasing",
  "done",
] as const satisfies readonly Phase["kind"][];

/** What a placement returned. */
export interface PlacedKeys {
  changed: string[];
  facts: CredentialFacts;
}

/** A release to send once a stop is confirmed. */
export interface Release {
  record: LeaseRecord;
  timeoutMs: number;
  /** The fence obligation still open when the term ended: the next holder inherits it. */
  fencePending?: FencePending;
  /** A planned handover: the only pod that may take the release at once. */
  handoverTo?: string;
}

/** One stop of the node in progress: its id tags the results of its two effects. */
export interface PendingStop {
  id: number;
  reason: StopReason;
  removed?: boolean;
  signal?: "ok" | "exited" | "failed" | "none";
}

/**
 * The release of the Lease as the runner performs it (the effect `release_lease`); kept in the
 * state while a lease write it must follow is in flight.
 */
export interface LeaseRelease {
  kind: "release_lease";
  record: LeaseRecord;
  clean: boolean;
  timeoutMs: number;
  /** With `clean`: the rest of the releaser's probation (ms), for followers to wait out. */
  waitMs?: number;
  fencePending?: FencePending;
  handoverTo?: string;
}

/** The whole state. Treat as immutable. */
export interface ForgingState {
  readonly cfg: ForgingConfig;
  readonly election: ElectionState;
  readonly phase: Phase;
  readonly node: NodeView;
  /** The number of the latest term (incremented at each acquisition). */
  readonly term: number;
  /** The lease read or write in flight, and since when (one at a time). */
  readonly leaseBusy?: { op: "read" | "write"; since: number };
  readonly nextPollAt: number;
  /** Whether the Lease was ever read or written successfully. */
  readonly observedOnce: boolean;
  /** The pod UID and write time the last non-empty holder recorded, for the fence. */
  readonly lastHolder?: HolderFacts;
  readonly nodeCheckBusy: boolean;
  readonly nextNodeCheckAt: number;
  readonly stop?: PendingStop;
  readonly stopCount: number;
  /** The last stop of the node unlinked every key and reached it (or it had exited). */
  readonly stopConfirmed: boolean;
  /** When the decoys are placed again after a stop (with `cfg.decoys`), until they are. */
  readonly decoysDueAt?: number;
  /** Node processes (`pid:startTicks`) already reported as running without the flag. */
  readonly warnedUnsafe: readonly string[];
  /** The unusable rotated sources were reported (once per change). */
  readonly rotationWarned: boolean;
  /** The last judgement of the source credentials, and when the next is due. */
  readonly credentials?: CredentialCheck;
  readonly credentialCheckBusy?: boolean;
  readonly nextCredentialCheckAt: number;
  /** The facts of the set placed for forging (to judge it again as time passes). */
  readonly placed?: CredentialFacts;
  /** The node's metrics since the last signal, the latest KES period it reported, the verdict. */
  readonly samples: readonly NodeMetricsSample[];
  readonly nodeKesPeriod?: number;
  readonly metricsBusy?: boolean;
  readonly nextMetricsAt: number;
  readonly confirmation?: ConfirmationState;
  /** A release waiting for the answer to a lease write that was in flight when it was due. */
  readonly deferredRelease?: LeaseRelease;
  /**
   * While this term's fence has not proven the previous holder's node stopped: that holder, as
   * every write of the term carries it (so a successor inherits the proof to make).
   */
  readonly owed?: FencePending;
  /** The obligation our last successful write put on the Lease; forging waits until it is gone. */
  readonly leaseCarries?: FencePending;
  /** Operator requests and this replica's published state (with `cfg.operations`). */
  readonly ops?: OpsState;
  /**
   * Keys may be in place for forging: from a promotion's arming until a stop confirms (what the
   * guard is told in every answer; with `cfg.guard`).
   */
  readonly guardWanted?: boolean;
  /** The term this replica took from a handover's release naming it (its target). */
  readonly handoverTerm?: number;
  /** The guard's connection, as last reported (with `cfg.guard`). */
  readonly guardLink?: "up" | "down";
  /** Whether the guard last reported itself armed. */
  readonly guardArmed?: boolean;
  /** The election across clusters (with `cfg.global`). */
  readonly global?: GlobalState;
  /** The node's tip at the last reading that had one: its lag in slots, and when (monotonic). */
  readonly tip?: { lagSlots: number; at: number };
  /** The sync last reported (telemetry reports each change once). */
  readonly syncReported?: string;
  /** A standby that is not synced defers its acquisition until then (sync.ts). */
  readonly acquireDeferral?: number;
  /** Since when it defers for the Lease version first seen at `observedAt`. */
  readonly deferredSince?: { observedAt: number; since: number };
  /** Forging while lagging with no synced standby (reported once when it starts and ends). */
  readonly unsyncedForging?: boolean;
  /** The pool's leader schedule as last read (`cfg.schedule`), its read in flight, the next. */
  readonly schedule?: Schedule;
  readonly scheduleBusy?: boolean;
  readonly nextScheduleReadAt?: number;
  /** The last problem reading the schedule (reported once per change). */
  readonly scheduleError?: string;
  /** A planned end of term waiting for one of the pool's slots to pass. */
  readonly planned?: Planned;
}

/** The operations' part of the state. */
export interface OpsState {
  /** The last CardanoLeader read (kept when a read fails); undefined before the first answer. */
  readonly control?: ControlView;
  readonly controlBusy?: boolean;
  /** A watch event came while a read was in flight: that read's answer may be older. */
  readonly controlReadStale?: boolean;
  readonly nextControlReadAt?: number;
  /** Handover ids seen (acted on, or seen while not leading). */
  readonly handled?: readonly string[];
  readonly pendingHandover?: Handover;
  /** The handover this replica, its target, last reported done. */
  readonly doneReported?: string;
  /** The preferred replica, and since when it has been seen ready and synced without a break. */
  readonly preferredReady?: { pod: string; since: number };
  readonly podCheckBusy?: boolean;
  readonly nextPodCheckAt?: number;
  readonly podTerminating?: boolean;
  /** Whether the active pause was reported (pause_started) and not yet its end. */
  readonly pauseSeen?: boolean;
  readonly published?: string;
  readonly nextPublishAt?: number;
  /** The reason of the last stop (or `resumed` after a pause), shown after the stop's phase. */
  readonly lastReason?: string;
}

/** The phases of a term of ours (holding the Lease). */
export const LEADING_PHASES: ReadonlySet<Phase["kind"]> = new Set([
  "fencing",
  "awaiting_node",
  "promoting",
  "forging",
  "paused",
]);

/** How often the node is looked for (and rotated sources compared), at most. */
export function nodeCheckInterval(cfg: ForgingConfig): number {
  return Math.min(cfg.sleepIntervalMs, 2000);
}

/** The bound of a read (the Lease, the CardanoLeader, our Pod), in ms. */
export function readTimeout(cfg: ForgingConfig): number {
  return Math.min(cfg.sleepIntervalMs, 5000);
}

/** Whether the node was given the keys and signalled (and not stopped since). */
export function isForging(state: ForgingState): boolean {
  return state.phase.kind === "forging";
}

/** Whether this replica holds a (local) term that allows forging now. */
export function leadsNow(state: ForgingState, now: number): boolean {
  return isLeading(state.election, now, state.cfg);
}

/**
 * Whether this replica may forge now: a local term that allows it and, across clusters, the
 * coordination Lease won for that term.
 */
export function mayForgeNow(state: ForgingState, now: number): boolean {
  return leadsNow(state, now) && globalAllows(state.global, state.term, now, state.cfg);
}

/** When the right to forge ends (monotonic): the earlier of the two terms' deadlines. */
export function forgeDeadline(state: ForgingState): number | undefined {
  const local = termDeadline(state.election, state.cfg);
  if (state.cfg.global === undefined || local === undefined) return local;
  const global = globalDeadline(state.global, state.cfg);
  return global === undefined || state.global?.forTerm !== state.term
    ? undefined
    : Math.min(local, global);
}

/** Whether the start-up work the node waits for (boot keys) is done. */
export function startupDone(state: ForgingState): boolean {
  return state.phase.kind !== "starting" || state.phase.provisioned;
}

/**
 * Whether keys are moving (being placed for a promotion, unlinked and signalled for a stop, or
 * the Lease being released after one): no background API request (a Lease read, the operator
 * requests, our Pod, the published state) starts meanwhile. One worker thread serves both, and
 * client-node spends a few ms of CPU on each request: measured, a concurrent request or two made
 * the unlink or the placement of a planned handover 30-100 ms slower. Each of these phases ends
 * with its effects' answers or timeouts, so the pause is bounded.
 */
export function keysMoving(s: ForgingState): boolean {
  const phase = s.phase;
  return phase.kind === "promoting" || phase.kind === "releasing" ||
    (phase.kind === "stopping" && s.stop !== undefined) ||
    (phase.kind === "forging" && phase.rotation !== undefined);
}

/** Whether this state holds the Lease in a phase of a term. */
export function holdsTerm(s: ForgingState): boolean {
  return s.election.term !== undefined && LEADING_PHASES.has(s.phase.kind);
}

/** A node process's identity: PID and start time (a recycled PID is another process). */
export function processKey(node: NodeInfo): string {
  return `${node.pid}:${node.startTicks}`;
}

/** The node as a signal effect names it, when one is known. */
export function nodeOf(s: ForgingState): { node?: NodeInfo } {
  return s.node.kind === "present" ? { node: s.node.info } : {};
}

/** `{ [key]: value }`, or `{}` when the value is undefined (for optional fields). */
export function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/**
 * The operator's requests in force: this cluster's CardanoLeader's and, across clusters, a
 * pause on the coordination cluster's (it pauses the pool everywhere). Undefined until this
 * cluster's spec was read once.
 */
export function controlOf(s: ForgingState): ControlView | undefined {
  const local = s.ops?.control;
  const globalPause = s.global?.control?.pause;
  if (local === undefined || globalPause === undefined || local.pause !== undefined) return local;
  return { ...local, pause: globalPause };
}

/** The state with its operations' part replaced. */
export function withOps(s: ForgingState, ops: OpsState): ForgingState {
  return { ...s, ops };
}
