/**
 * Forging as a pure state machine: `step(state, event, now) -> { state, effects }`, with no
 * await, no timers and no `Deno.*`. The loop (`forge_manager.ts`) is its one writer: it feeds it
 * events (timer ticks, Lease reads, writes and watch events, fence results, node checks, the
 * results of its own effects, shutdown) and hands the effects to the runner (`effects.ts`), which
 * performs them in order and turns every result into the next event.
 *
 * Every rule that decides whether this replica's node may forge lives here or in the election
 * step it drives (`election.ts`):
 * - forging starts only in a term of ours that `isLeading` (held, past probation, before the
 *   renew deadline), after the fence proved the previous holder's node stopped (or none was
 *   needed), with the node found and ready: place the keys, then SIGHUP (two effects, the second
 *   only once the first succeeded and the term still allows it);
 * - forging stops by unlinking the keys, then SIGHUP; at the renew deadline whatever the API
 *   server does (the deadline is a wake-up time of its own, and lease requests never block it);
 * - a leader releases the Lease only after its stop's results came back, marked clean only when
 *   the unlink and the SIGHUP both succeeded (or the node had exited);
 * - a leader that cannot forge steps aside for two lease durations; a booting node keeps the
 *   key files it reads at start (it exits without them, and boots non-producing);
 * - a node that runs without the non-producing flag on a replica that does not lead is stopped;
 * - results that belong to an earlier term (a fence, a key placement) change nothing.
 *
 * @module
 */

import {
  decide,
  type Decision,
  demoted,
  type ElectionState,
  type ElectionTiming,
  initialState,
  isLeading,
  needsProbation,
  observe,
  termDeadline,
  writeFailed,
  written,
} from "./election.ts";
import type { FencePending, LeaseRecord, Observation } from "../kube/lease_store.ts";
import type { FenceOutcome } from "../kube/fence.ts";
import type { NodeInfo, SignalFailure } from "../core/node_process.ts";
import type { SignalReason, StopReason } from "./stop_reasons.ts";
import type { CredentialFacts } from "../cardano/cardano_keys.ts";
import { type CredentialCheck, judgeCredentials, mayForge } from "./credential_verdict.ts";
import {
  type ConfirmationState,
  confirmForging,
  type ForgingConfirmation,
} from "./forging_confirmation.ts";
import type { KesTiming } from "../cardano/kes_period.ts";
import type { NodeMetricsSample } from "../node/node_metrics.ts";
import type { ControlView, HandoverResult, ReplicaView } from "../kube/cardano_leader.ts";

/** What the step needs of the configuration. Durations in milliseconds. */
export interface ForgingConfig extends ElectionTiming {
  identity: string;
  podName: string;
  /** Prove the previous holder's node stopped before forging (FENCE=pod). */
  fence: boolean;
  /** The node boots non-producing and needs key files to start (START_AS_NON_PRODUCING). */
  startAsNonProducing: boolean;
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
   * Operator requests (see "operations" below): read the CardanoLeader spec (pause, handover),
   * publish this replica's state, and (with `fence`) end the term when our own Pod is deleted.
   */
  operations?: boolean;
}

/** How often the credentials are judged (the KES window moves with time), in ms. */
export const CREDENTIAL_CHECK_MS = 60_000;
/** How often the node's metrics are read, in ms (and soon after every signal). */
export const NODE_METRICS_MS = 10_000;
/** Readings kept since the last signal (two minutes at one a 10 s). */
const MAX_SAMPLES = 12;

/** What the last non-empty holder recorded on the Lease, for the fence. */
export interface HolderFacts {
  podUid?: string;
  writtenAt?: number;
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
  | { kind: "retire" };

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
  /** Holding the Lease; the fence is proving the previous holder's node stopped. */
  | { kind: "fencing"; term: number }
  /** Holding the Lease, proof done; waiting for probation to end, then for the node. */
  | { kind: "awaiting_node"; term: number }
  /**
   * Placing the keys (`placing`), then signalling the node (`signalling`); `claimed` once the
   * write naming this pod in the status was answered (or failed, or timed out): the SIGHUP waits
   * for both, keys placed and claim answered.
   */
  | {
    kind: "promoting";
    term: number;
    step: "placing" | "signalling";
    facts?: PlacedKeys;
    claimed?: boolean;
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
  }
  /** Holding the Lease (and renewing it) during an operator's pause; the node does not forge. */
  | { kind: "paused"; term: number }
  /** Our Pod is being deleted: the term ended; never competing again in this process. */
  | { kind: "retired" }
  /** Releasing the Lease at shutdown. */
  | { kind: "releasing" }
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
interface PendingStop {
  id: number;
  reason: StopReason;
  removed?: boolean;
  signal?: "ok" | "exited" | "failed" | "none";
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
  readonly deferredRelease?: Extract<Effect, { kind: "release_lease" }>;
  /**
   * While this term's fence has not proven the previous holder's node stopped: that holder, as
   * every write of the term carries it (so a successor inherits the proof to make).
   */
  readonly owed?: FencePending;
  /** The obligation our last successful write put on the Lease; forging waits until it is gone. */
  readonly leaseCarries?: FencePending;
  /** Operator requests and this replica's published state (with `cfg.operations`). */
  readonly ops?: OpsState;
}

/** Events: timer ticks, I/O results, and shutdown. Plain data only. */
export type ForgingEvent =
  | { kind: "tick" }
  | { kind: "shutdown" }
  | { kind: "socket_probed"; accepts: boolean }
  | { kind: "lease_read"; observation: Observation }
  | { kind: "lease_read_failed"; error: string }
  | { kind: "lease_watched"; observation: Observation }
  | {
    kind: "lease_written";
    decision: WriteDecision;
    record: LeaseRecord;
    sentAt: number;
    previous?: HolderFacts;
    fencePending?: FencePending;
  }
  | { kind: "lease_write_failed"; decision: WriteDecision; conflict: boolean; error: string }
  | { kind: "lease_released"; record: LeaseRecord; clean: boolean }
  | { kind: "lease_release_failed"; error: string }
  | { kind: "fence_done"; term: number; previous: string; outcome: FenceResult }
  /** The claim was answered (`error`: it failed or timed out; forging goes on). */
  | { kind: "leader_claimed"; term: number; error?: string }
  | { kind: "node_checked"; node: NodeInfo | undefined; accepts: boolean }
  | { kind: "node_check_failed"; error: string }
  | { kind: "sources_checked"; differ: boolean; problem?: string }
  /** The rotated sources could not even be compared with the placed keys. */
  | { kind: "sources_compare_failed"; error: string }
  /** An effect failed outside its own result events (an adapter's bug, a best-effort write). */
  | { kind: "effect_failed"; effect: Effect["kind"]; error: string }
  | { kind: "keys_placed"; purpose: PlacePurpose; placed: PlacedKeys; wallMs?: number }
  | { kind: "credentials_checked"; facts?: CredentialFacts; error?: string; wallMs: number }
  | { kind: "node_metrics_read"; sample?: NodeMetricsSample; error?: string }
  | { kind: "keys_place_failed"; purpose: PlacePurpose; error: string }
  | { kind: "keys_removed"; stop: number; ok: boolean; error?: string }
  | {
    kind: "signalled";
    reason: SignalReason;
    stop?: number;
    pid?: number;
    outcome: "ok" | "no_node" | SignalFailure;
    error?: string;
  }
  | OpsEvent;

/** How a fence ended, including the runs that needed no pod at all. */
export type FenceResult = FenceOutcome | { proven: true; how: "no_previous" } | {
  proven: false;
  why: string;
  error: true;
};

/** Why keys are placed. */
export type PlacePurpose = "promote" | "rotate" | "boot";

/** What the runner performs, in the order given. */
export type Effect =
  | { kind: "probe_socket" }
  | { kind: "read_lease"; timeoutMs: number }
  | {
    kind: "write_lease";
    decision: WriteDecision;
    deadline: number;
    maxTimeoutMs: number;
    /**
     * The previous holder's facts as known when the write was decided (a watch event of our own
     * write may arrive before its response; it must not stand in for the previous holder).
     */
    previous?: HolderFacts;
    /** The fence obligation this write puts on the Lease (none: it is removed). */
    fencePending?: FencePending;
  }
  | {
    kind: "release_lease";
    record: LeaseRecord;
    clean: boolean;
    timeoutMs: number;
    /** With `clean`: the rest of the releaser's probation (ms), for followers to wait out. */
    waitMs?: number;
    fencePending?: FencePending;
    handoverTo?: string;
  }
  | {
    kind: "start_fence";
    term: number;
    previousHolder: string;
    previousPodUid?: string;
    previousWrittenAt?: number;
    /** Proof enough when the previous holder was our own pod (see `FenceRequest`). */
    ownNodeStopped: boolean;
  }
  | { kind: "cancel_fence"; term: number }
  | { kind: "check_node"; readyKey?: string }
  | { kind: "check_sources" }
  | { kind: "check_credentials" }
  | { kind: "read_node_metrics" }
  | { kind: "place_keys"; purpose: PlacePurpose }
  | { kind: "remove_keys"; stop: number }
  | { kind: "signal"; reason: SignalReason; node?: NodeInfo; stop?: number }
  /**
   * Names this pod in the CardanoLeader status (one write, no read), before the promotion's
   * SIGHUP: after a Lease deleted by hand under a dead sidecar, that name is all a successor has
   * to fence (election.ts). Answered by `leader_claimed` within `timeoutMs` whatever happens; a
   * write that fails does not stop the promotion (it is reported).
   */
  | { kind: "claim_leader"; term: number; timeoutMs: number }
  | { kind: "report"; transition: Transition }
  | OpsEffect;

/** What telemetry (`telemetry.ts`) turns into logs, metrics, status and Events. */
export type Transition =
  | { kind: "boot_keys_placed"; changed: string[] }
  | { kind: "waiting_for_socket" }
  | { kind: "socket_timeout"; error: string }
  | { kind: "standing_by"; pid?: number; nonProducing?: boolean }
  | { kind: "lease_read_failed"; error: string }
  | {
    kind: "lease_write_failed";
    operation: string;
    conflict: boolean;
    leading: boolean;
    error: string;
  }
  | { kind: "renewed" }
  | {
    kind: "became_leader";
    previous: string;
    proofNeeded: boolean;
    transitions: number;
    probationSeconds?: number;
  }
  | { kind: "stopped_leading"; reason: StopReason }
  | { kind: "demoted"; reason: StopReason }
  | { kind: "stepping_aside"; reason: StopReason; why: string }
  | { kind: "released"; clean: boolean }
  | { kind: "release_failed"; error: string }
  | { kind: "fence_started"; previous: string }
  | { kind: "leader_claim_failed"; error: string }
  | { kind: "fence_done"; outcome: FenceResult; previous: string }
  | { kind: "forging_enabled"; placed: PlacedKeys; pid?: number }
  | { kind: "forging_disabled"; reason: StopReason; confirmed: boolean }
  | { kind: "forging_lost"; pid: number }
  | { kind: "rotated"; placed: PlacedKeys }
  | { kind: "rotation_unusable"; problem: string }
  | { kind: "keys_remove_failed"; reason: StopReason; error: string }
  | { kind: "signal_sent"; reason: SignalReason; pid?: number }
  | {
    kind: "signal_failed";
    reason: SignalReason;
    failure: SignalFailure;
    pid?: number;
    error: string;
  }
  | { kind: "place_failed"; purpose: PlacePurpose; error: string }
  | { kind: "node_found"; pid: number; nonProducing: boolean }
  | { kind: "node_gone"; pid: number }
  | { kind: "node_restarted"; pid: number }
  | { kind: "node_check_failed"; error: string }
  | { kind: "effect_failed"; effect: Effect["kind"]; error: string }
  | { kind: "node_flag"; value: -1 | 0 | 1 }
  | { kind: "unsafe_node"; pid: number }
  | { kind: "credentials_judged"; check: CredentialCheck; changed: boolean }
  | { kind: "credentials_unreadable"; error: string }
  | {
    kind: "forging_confirmation";
    asked: boolean;
    confirmation: ForgingConfirmation;
    changed: boolean;
  }
  | OpsTransition;

/** The result of one step. */
export interface Step {
  state: ForgingState;
  effects: Effect[];
}

/** How often the node is looked for (and rotated sources compared), at most. */
export function nodeCheckInterval(cfg: ForgingConfig): number {
  return Math.min(cfg.sleepIntervalMs, 2000);
}

const LEADING_PHASES: ReadonlySet<Phase["kind"]> = new Set([
  "fencing",
  "awaiting_node",
  "promoting",
  "forging",
  "paused",
]);

/** The initial state, and the effects that start it (boot keys, the socket wait). */
export function start(cfg: ForgingConfig, now: number): Step {
  const state: ForgingState = {
    cfg,
    election: initialState(cfg.identity),
    phase: {
      kind: "starting",
      provisioned: !cfg.startAsNonProducing,
      socket: cfg.socketCheck ? "waiting" : "accepted",
      probeAt: now,
      giveUpAt: now + cfg.socketWaitTimeoutMs,
    },
    node: { kind: "unknown" },
    term: 0,
    nextPollAt: now,
    observedOnce: false,
    nodeCheckBusy: false,
    nextNodeCheckAt: now,
    stopCount: 0,
    stopConfirmed: false,
    warnedUnsafe: [],
    rotationWarned: false,
    nextCredentialCheckAt: now,
    samples: [],
    nextMetricsAt: now,
  };
  const effects: Effect[] = [];
  // The node exits at boot without credential files, even when non-producing.
  if (cfg.startAsNonProducing) effects.push({ kind: "place_keys", purpose: "boot" });
  if (cfg.socketCheck) effects.push(report({ kind: "waiting_for_socket" }));
  return settle(state, now, effects);
}

/** Advances the machine by one event. Pure: the same inputs always give the same result. */
export function step(state: ForgingState, event: ForgingEvent, now: number): Step {
  const fx: Effect[] = [];
  const next = apply(state, event, now, fx);
  return settle(next, now, fx);
}

/** Whether the node was given the keys and signalled (and not stopped since). */
export function isForging(state: ForgingState): boolean {
  return state.phase.kind === "forging";
}

/** Whether this replica holds a term that allows forging now. */
export function leadsNow(state: ForgingState, now: number): boolean {
  return isLeading(state.election, now, state.cfg);
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

/**
 * When the loop must wake up next without an event (monotonic), or undefined for never:
 * the renew deadline always counts, whatever is in flight.
 */
export function nextWake(state: ForgingState, now: number): number | undefined {
  const times: number[] = [];
  const phase = state.phase;
  if (phase.kind === "done") return undefined;
  if (phase.kind === "starting") {
    return phase.provisioned && phase.socket === "waiting" ? phase.probeAt : undefined;
  }
  const deadline = termDeadline(state.election, state.cfg);
  if (deadline !== undefined) times.push(deadline);
  if (state.leaseBusy === undefined) {
    const d = decide(state.election, now, state.cfg);
    if (d.kind === "wait") times.push(d.until);
    if (state.election.term === undefined && !keysMoving(state)) times.push(state.nextPollAt);
  }
  if (!state.nodeCheckBusy) times.push(state.nextNodeCheckAt);
  if (phase.kind === "stepped_aside") times.push(phase.until);
  if (state.cfg.kesTiming !== undefined && !state.credentialCheckBusy) {
    times.push(state.nextCredentialCheckAt);
  }
  if (state.cfg.nodeMetrics && !state.metricsBusy) times.push(state.nextMetricsAt);
  times.push(...opsWakes(state));
  return times.length === 0 ? undefined : Math.min(...times);
}

// ---- events -------------------------------------------------------------------------------

function apply(s: ForgingState, e: ForgingEvent, now: number, fx: Effect[]): ForgingState {
  if (isOpsEvent(e)) return applyOps(s, e, now, fx);
  s = beforeEvent(s, e, fx);
  switch (e.kind) {
    case "tick":
      return s;
    case "shutdown":
      return shutdown(s, now, fx);
    case "socket_probed":
      return socketProbed(s, e.accepts, now, fx);
    case "lease_watched":
      // A leader learns of its own writes from their responses; a watch may lag behind them.
      if (s.phase.kind === "starting" || s.election.term !== undefined) return s;
      // An absence is acted on only from a read, which also asks the CardanoLeader status whom
      // to fence (election.ts): read at once.
      if (e.observation.kind === "absent") return { ...s, nextPollAt: now };
      return observed(s, e.observation, now);
    case "lease_read":
      return {
        ...observed(s, e.observation, now),
        leaseBusy: undefined,
        nextPollAt: now + s.cfg.sleepIntervalMs,
      };
    case "lease_read_failed":
      fx.push(report({ kind: "lease_read_failed", error: e.error }));
      return { ...s, leaseBusy: undefined, nextPollAt: now + s.cfg.sleepIntervalMs };
    case "lease_written":
      return leaseWritten(s, e, now, fx);
    case "lease_write_failed":
      return leaseWriteFailed(s, e, now, fx);
    case "lease_released":
      fx.push(report({ kind: "released", clean: e.clean }));
      return afterRelease(observed(s, { kind: "present", record: e.record }, now));
    case "lease_release_failed":
      fx.push(report({ kind: "release_failed", error: e.error }));
      return afterRelease(s);
    case "fence_done":
      fx.push(report({ kind: "fence_done", outcome: e.outcome, previous: e.previous }));
      return fenceDone(s, e.term, e.outcome);
    case "leader_claimed":
      if (e.error !== undefined) fx.push(report({ kind: "leader_claim_failed", error: e.error }));
      return leaderClaimed(s, e.term, now, fx);
    case "node_checked":
      return nodeChecked(
        { ...s, nodeCheckBusy: false, nextNodeCheckAt: now + nodeCheckInterval(s.cfg) },
        e,
        now,
        fx,
      );
    case "node_check_failed":
      fx.push(report({ kind: "node_check_failed", error: e.error }));
      return { ...s, nodeCheckBusy: false, nextNodeCheckAt: now + nodeCheckInterval(s.cfg) };
    case "sources_checked":
      return sourcesChecked(s, e, fx);
    case "sources_compare_failed":
      fx.push(report({ kind: "rotation_unusable", problem: `cannot compare: ${e.error}` }));
      return s;
    case "effect_failed":
      fx.push(report({ kind: "effect_failed", effect: e.effect, error: e.error }));
      return s;
    case "keys_placed":
      return keysPlaced(s, e.purpose, e.placed, e.wallMs, now, fx);
    case "keys_place_failed":
      return keysPlaceFailed(s, e.purpose, e.error, now, fx);
    case "keys_removed":
      if (!e.ok) {
        fx.push(
          report({
            kind: "keys_remove_failed",
            reason: s.stop?.reason ?? "cannot_forge",
            error: e.error ?? "",
          }),
        );
      }
      return stopResult(s, e.stop, { removed: e.ok }, now, fx);
    case "signalled":
      return signalled(s, e, now, fx);
    case "credentials_checked":
      return credentialsChecked(
        { ...s, credentialCheckBusy: false, nextCredentialCheckAt: now + CREDENTIAL_CHECK_MS },
        e,
        now,
        fx,
      );
    case "node_metrics_read":
      return nodeMetricsRead(
        { ...s, metricsBusy: false, nextMetricsAt: now + NODE_METRICS_MS },
        e,
        fx,
      );
  }
}

function report(transition: Transition): Effect {
  return { kind: "report", transition };
}

function observed(s: ForgingState, observation: Observation, now: number): ForgingState {
  const lastHolder = observation.kind === "present" && observation.record.holder !== ""
    ? { podUid: observation.record.holderPodUid, writtenAt: observation.record.writtenAt }
    : s.lastHolder;
  return {
    ...s,
    election: observe(s.election, observation, now),
    observedOnce: true,
    ...(lastHolder !== undefined ? { lastHolder } : {}),
  };
}

// ---- start-up -----------------------------------------------------------------------------

function socketProbed(s: ForgingState, accepts: boolean, now: number, fx: Effect[]): ForgingState {
  const phase = s.phase;
  if (phase.kind !== "starting") return s;
  if (accepts) return { ...s, phase: { ...phase, socket: "accepted" } };
  if (now > phase.giveUpAt) {
    const error =
      `Cannot start: node socket did not accept a connection within SOCKET_WAIT_TIMEOUT=${
        s.cfg.socketWaitTimeoutMs / 1000
      } s`;
    fx.push(report({ kind: "socket_timeout", error }));
    return { ...s, phase: { kind: "done", error } };
  }
  return { ...s, phase: { ...phase, socket: "waiting", probeAt: now + 500 } };
}

/** The first node check at start: stand by, with the node stopped whatever it did before. */
function started(
  s: ForgingState,
  node: NodeInfo | undefined,
  now: number,
  fx: Effect[],
): ForgingState {
  const view: NodeView = node === undefined
    ? { kind: "absent" }
    : { kind: "present", info: node, ready: true };
  fx.push(report({ kind: "node_flag", value: flagOf(node) }));
  const base: ForgingState = { ...s, node: view, phase: { kind: "standby" } };
  return beginStop(base, "startup", { kind: "standby", announce: true }, now, fx, {
    wasForging: false,
  });
}

// ---- the Lease ----------------------------------------------------------------------------

function leaseWritten(
  s: ForgingState,
  e: Extract<ForgingEvent, { kind: "lease_written" }>,
  now: number,
  fx: Effect[],
): ForgingState {
  const held = s.election.term !== undefined;
  const probation = !held && needsProbation(e.decision, s.cfg.identity);
  const election = written(
    s.election,
    e.record,
    e.sentAt,
    now,
    probation ? { timing: s.cfg } : undefined,
  );
  let next: ForgingState = {
    ...s,
    election,
    leaseBusy: undefined,
    observedOnce: true,
    leaseCarries: e.fencePending,
  };
  fx.push(report({ kind: "renewed" }));
  if (next.deferredRelease !== undefined) {
    // The stop is done and its release waited for this answer: release the newest version.
    fx.push({ ...next.deferredRelease, record: e.record });
    return { ...next, deferredRelease: undefined, election: demoted(next.election, now) };
  }
  if (held) return next;
  const decision: Extract<Decision, { kind: "acquire" }> = e.decision.kind === "acquire"
    ? e.decision
    : { kind: "acquire", record: e.record, previousHolder: "", proofNeeded: false };
  const phase = s.phase.kind;
  if (
    phase === "stopping" || phase === "releasing" || phase === "done" || phase === "stepped_aside"
  ) {
    // A write sent before we decided to stop came back late: the term is ours, but we are on
    // our way out. Leave it again; the release (if one is due) goes to this newer record.
    next = { ...next, election: demoted(next.election, now) };
    if (s.phase.kind === "stopping" && s.phase.release !== undefined) {
      next = { ...next, phase: { ...s.phase, release: { ...s.phase.release, record: e.record } } };
    }
    return next;
  }
  return acquired(next, decision, e.record, probation, e.previous, fx);
}

function acquired(
  s: ForgingState,
  decision: Extract<Decision, { kind: "acquire" }>,
  record: LeaseRecord,
  probation: boolean,
  previous: HolderFacts | undefined,
  fx: Effect[],
): ForgingState {
  const term = s.term + 1;
  fx.push(report({
    kind: "became_leader",
    previous: decision.previousHolder,
    proofNeeded: decision.proofNeeded,
    transitions: record.transitions,
    ...(probation
      ? { probationSeconds: (s.cfg.leaseDurationMs + s.cfg.acquireDelayMs) / 1000 }
      : {}),
  }));
  if (!s.cfg.fence || !decision.proofNeeded) {
    // A create with no holder known, not even from the CardanoLeader status (read with the
    // absence, see election.ts): nobody to fence.
    if (s.cfg.fence && decision.record === undefined && decision.previousHolder === "") {
      fx.push(report({
        kind: "fence_done",
        previous: "",
        outcome: { proven: true, how: "no_previous" },
      }));
    }
    return { ...s, term, phase: { kind: "awaiting_node", term } };
  }
  const facts = fenceFacts(decision, previous);
  fx.push(report({ kind: "fence_started", previous: decision.previousHolder }), {
    kind: "start_fence",
    term,
    previousHolder: decision.previousHolder,
    ...optional("previousPodUid", facts.podUid),
    ...optional("previousWrittenAt", facts.writtenAt),
    ownNodeStopped: s.stopConfirmed && !isForging(s),
  });
  // Until the proof, every write of this term tells a successor whom it still has to prove.
  return { ...s, term, phase: { kind: "fencing", term }, owed: facts };
}

/** Whom an acquisition must prove stopped: the obligation it inherited, or the last holder. */
function fenceFacts(
  decision: Extract<Decision, { kind: "acquire" }>,
  previous: HolderFacts | undefined,
): FencePending {
  if (decision.pending !== undefined) return decision.pending;
  const podUid = decision.record?.holderPodUid ?? previous?.podUid;
  const writtenAt = decision.record?.writtenAt ?? previous?.writtenAt;
  return {
    holder: decision.previousHolder,
    ...(podUid !== undefined ? { podUid } : {}),
    ...(writtenAt !== undefined ? { writtenAt } : {}),
  };
}

/**
 * The obligation a write carries: an acquisition that will have to fence carries it from the
 * first write; a renew while the term still owes a proof carries it.
 */
function owedBy(s: ForgingState, d: WriteDecision): FencePending | undefined {
  if (d.kind === "renew") return s.owed;
  if (!s.cfg.fence || !d.proofNeeded) return undefined;
  return fenceFacts(d, d.record === undefined ? s.lastHolder : undefined);
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

function leaseWriteFailed(
  s: ForgingState,
  e: Extract<ForgingEvent, { kind: "lease_write_failed" }>,
  now: number,
  fx: Effect[],
): ForgingState {
  const operation = e.decision.kind === "renew"
    ? "renew"
    : e.decision.record
    ? "acquire"
    : "create";
  fx.push(report({
    kind: "lease_write_failed",
    operation,
    conflict: e.conflict,
    leading: e.decision.kind === "renew",
    error: e.error,
  }));
  let next: ForgingState = { ...s, election: writeFailed(s.election, now), leaseBusy: undefined };
  if (next.deferredRelease !== undefined) {
    fx.push(next.deferredRelease);
    next = { ...next, deferredRelease: undefined };
  }
  if (!e.conflict) return next;
  // Lost a race: read the Lease again at once.
  fx.push({ kind: "read_lease", timeoutMs: readTimeout(s.cfg) });
  return { ...next, leaseBusy: { op: "read", since: now } };
}

function readTimeout(cfg: ForgingConfig): number {
  return Math.min(cfg.sleepIntervalMs, 5000);
}

function afterRelease(s: ForgingState): ForgingState {
  return s.phase.kind === "releasing" ? { ...s, phase: { kind: "done" } } : s;
}

// ---- the fence ----------------------------------------------------------------------------

function fenceDone(s: ForgingState, term: number, outcome: FenceResult): ForgingState {
  if (s.phase.kind !== "fencing" || s.phase.term !== term || !outcome.proven) return s;
  // Proven: the next renew takes the obligation off the Lease, and forging waits for it.
  const { owed: _proven, ...rest } = s;
  return { ...rest, phase: { kind: "awaiting_node", term } };
}

// ---- the node -----------------------------------------------------------------------------

function processKey(node: NodeInfo): string {
  return `${node.pid}:${node.startTicks}`;
}

function flagOf(node: NodeInfo | undefined): -1 | 0 | 1 {
  return node === undefined ? -1 : node.nonProducing ? 1 : 0;
}

function nodeChecked(
  s: ForgingState,
  e: Extract<ForgingEvent, { kind: "node_checked" }>,
  now: number,
  fx: Effect[],
): ForgingState {
  if (s.phase.kind === "starting") return started(s, e.node, now, fx);
  if (s.phase.kind === "done") return s;
  fx.push(report({ kind: "node_flag", value: flagOf(e.node) }));
  const before = s.node.kind === "present" ? s.node.info : undefined;
  const node = e.node;
  if (node === undefined) {
    if (before === undefined) return { ...s, node: { kind: "absent" } };
    fx.push(report({ kind: "node_gone", pid: before.pid }));
    const gone: ForgingState = { ...s, node: { kind: "absent" } };
    if (
      isForging(s) || s.phase.kind === "promoting" ||
      (LEADING_PHASES.has(s.phase.kind) && leadsNow(s, now))
    ) {
      return stepAside(gone, `node pid ${before.pid} exited`, now, fx, { provision: true });
    }
    if (s.cfg.startAsNonProducing) fx.push({ kind: "place_keys", purpose: "boot" });
    return gone;
  }
  let next = s;
  const same = before !== undefined && processKey(before) === processKey(node);
  if (!same) {
    fx.push(report({ kind: "node_found", pid: node.pid, nonProducing: node.nonProducing }));
    next = { ...next, node: { kind: "present", info: node, ready: false } };
    // The new process was never given the keys by us: it is not forging. A leader places them
    // again and signals once the node is ready.
    if (next.phase.kind === "forging") {
      fx.push(report({ kind: "forging_lost", pid: node.pid }));
      next = { ...next, phase: { kind: "awaiting_node", term: next.phase.term } };
    }
  }
  const key = processKey(node);
  if (!node.nonProducing && !leadsNow(next, now) && !next.warnedUnsafe.includes(key)) {
    fx.push(report({ kind: "unsafe_node", pid: node.pid }));
    next = { ...next, warnedUnsafe: [...next.warnedUnsafe.slice(-15), key] };
    next = stopNode(next, "unsafe_node", fx);
  }
  const view = next.node;
  if (view.kind === "present" && !view.ready && (e.accepts || !s.cfg.socketCheck)) {
    next = { ...next, node: { ...view, ready: true } };
    if (!same && before !== undefined) fx.push(report({ kind: "node_restarted", pid: node.pid }));
    // A leader places the keys and signals at its next promotion; anyone else stops the node
    // (once: an unsafe node was stopped just above).
    if (!leadsNow(next, now) && next.stop === s.stop) next = stopNode(next, "node_restart", fx);
  }
  return next;
}

// ---- keys and signals ---------------------------------------------------------------------

function sourcesChecked(
  s: ForgingState,
  e: Extract<ForgingEvent, { kind: "sources_checked" }>,
  fx: Effect[],
): ForgingState {
  const phase = s.phase;
  if (phase.kind !== "forging" || phase.rotation !== undefined || !e.differ) return s;
  if (e.problem !== undefined) {
    if (s.rotationWarned) return s;
    fx.push(report({ kind: "rotation_unusable", problem: e.problem }));
    return { ...s, rotationWarned: true };
  }
  fx.push({ kind: "place_keys", purpose: "rotate" });
  return { ...s, rotationWarned: false, phase: { ...phase, rotation: { step: "placing" } } };
}

function keysPlaced(
  s: ForgingState,
  purpose: PlacePurpose,
  placed: PlacedKeys,
  wallMs: number | undefined,
  now: number,
  fx: Effect[],
): ForgingState {
  const phase = s.phase;
  if (purpose === "boot") {
    fx.push(report({ kind: "boot_keys_placed", changed: placed.changed }));
    return phase.kind === "starting" ? { ...s, phase: { ...phase, provisioned: true } } : s;
  }
  const ours = (purpose === "promote" && phase.kind === "promoting" && phase.step === "placing") ||
    (purpose === "rotate" && phase.kind === "forging" && phase.rotation?.step === "placing");
  const check = ours && wallMs !== undefined ? judge(s, placed.facts, wallMs) : undefined;
  if (check !== undefined && !mayForge(check)) {
    // Placed but never signalled: the step-aside's stop unlinks them again.
    return badCredentials({ ...s, credentials: check }, check, now, fx);
  }
  if (purpose === "promote" && phase.kind === "promoting" && phase.step === "placing") {
    // The term may have ended while we wrote: then settle() demotes, and the stop it starts runs
    // after this placement and unlinks the keys again.
    if (!leadsNow(s, now)) return s;
    if (!phase.claimed) return { ...s, phase: { ...phase, facts: placed } }; // the claim next
    fx.push({ kind: "signal", reason: "promote", ...nodeOf(s) });
    return { ...s, phase: { ...phase, step: "signalling", facts: placed } };
  }
  if (purpose === "rotate" && phase.kind === "forging" && phase.rotation?.step === "placing") {
    fx.push({ kind: "signal", reason: "rotate", ...nodeOf(s) });
    return { ...s, phase: { ...phase, rotation: { step: "signalling", facts: placed } } };
  }
  return s;
}

/** The claim was answered: signal now if the keys are already placed. */
function leaderClaimed(s: ForgingState, term: number, now: number, fx: Effect[]): ForgingState {
  const phase = s.phase;
  if (phase.kind !== "promoting" || phase.term !== term || phase.step !== "placing") return s;
  if (phase.facts === undefined) return { ...s, phase: { ...phase, claimed: true } };
  if (!leadsNow(s, now)) return s; // settle() demotes; its stop unlinks the placed keys
  fx.push({ kind: "signal", reason: "promote", ...nodeOf(s) });
  return { ...s, phase: { ...phase, claimed: true, step: "signalling" } };
}

function keysPlaceFailed(
  s: ForgingState,
  purpose: PlacePurpose,
  error: string,
  now: number,
  fx: Effect[],
): ForgingState {
  fx.push(report({ kind: "place_failed", purpose, error }));
  const phase = s.phase;
  if (purpose === "boot") {
    return phase.kind === "starting" ? { ...s, phase: { ...phase, provisioned: true } } : s;
  }
  const ours = (purpose === "promote" && phase.kind === "promoting") ||
    (purpose === "rotate" && phase.kind === "forging" && phase.rotation !== undefined);
  // place() removed the whole set on a write failure: stop cleanly and let another lead.
  return ours ? stepAside(s, error, now, fx, { provision: false }) : s;
}

function nodeOf(s: ForgingState): { node?: NodeInfo } {
  return s.node.kind === "present" ? { node: s.node.info } : {};
}

function signalled(
  s: ForgingState,
  e: Extract<ForgingEvent, { kind: "signalled" }>,
  now: number,
  fx: Effect[],
): ForgingState {
  if (e.outcome === "ok") {
    fx.push(report({ kind: "signal_sent", reason: e.reason, ...optional("pid", e.pid) }));
  } else if (e.outcome !== "no_node") {
    fx.push(report({
      kind: "signal_failed",
      reason: e.reason,
      failure: e.outcome,
      ...optional("pid", e.pid),
      error: e.error ?? e.outcome,
    }));
  }
  if (e.outcome === "ok") {
    // What the node's metrics say counts from this signal on; read them again soon.
    s = { ...s, samples: [], nextMetricsAt: Math.min(s.nextMetricsAt, now + 2000) };
  }
  if (e.stop !== undefined) {
    // A node that has exited cannot forge (a native sidecar's node stops before it on pod
    // shutdown), so that still confirms the stop.
    const signal = e.outcome === "ok"
      ? "ok"
      : e.outcome === "no_node"
      ? "none"
      : e.outcome === "not_found" || e.outcome === "replaced"
      ? "exited"
      : "failed";
    return stopResult(s, e.stop, { signal }, now, fx);
  }
  const phase = s.phase;
  const failed = e.outcome !== "ok";
  if (e.reason === "promote" && phase.kind === "promoting" && phase.step === "signalling") {
    if (failed) return stepAside(s, e.error ?? e.outcome, now, fx, { provision: false });
    if (phase.facts !== undefined) {
      fx.push(report({ kind: "forging_enabled", placed: phase.facts, ...optional("pid", e.pid) }));
    }
    return {
      ...s,
      stopConfirmed: false,
      phase: { kind: "forging", term: phase.term },
      ...optional("placed", phase.facts?.facts),
    };
  }
  if (e.reason === "rotate" && phase.kind === "forging" && phase.rotation?.step === "signalling") {
    if (failed) return stepAside(s, e.error ?? e.outcome, now, fx, { provision: false });
    if (phase.rotation.facts !== undefined) {
      fx.push(report({ kind: "rotated", placed: phase.rotation.facts }));
    }
    return {
      ...s,
      phase: { kind: "forging", term: phase.term },
      ...optional("placed", phase.rotation.facts?.facts),
    };
  }
  return s;
}

// ---- the credentials' verdict and the node's own account --------------------------------

/** Judges a set, or undefined when KES checks are off (or the clock is before Shelley). */
function judge(
  s: ForgingState,
  facts: CredentialFacts,
  wallMs: number,
): CredentialCheck | undefined {
  const timing = s.cfg.kesTiming;
  if (timing === undefined) return undefined;
  try {
    return judgeCredentials(
      facts,
      timing,
      { nowMs: wallMs, nodeKesPeriod: s.nodeKesPeriod },
      s.cfg.poolId,
    );
  } catch {
    return undefined;
  }
}

/** A leader whose certificate cannot forge steps aside, so that one with good keys may lead. */
function badCredentials(
  s: ForgingState,
  check: CredentialCheck,
  now: number,
  fx: Effect[],
): ForgingState {
  return stepAside(s, check.reason, now, fx, { provision: false, reason: "bad_credentials" });
}

function credentialsChecked(
  s: ForgingState,
  e: Extract<ForgingEvent, { kind: "credentials_checked" }>,
  now: number,
  fx: Effect[],
): ForgingState {
  if (e.facts === undefined) {
    // Unreadable or inconsistent sources (a rotation half done): the placed set is left alone,
    // as for a rotation; a promotion refuses them when it places.
    fx.push(report({ kind: "credentials_unreadable", error: e.error ?? "unknown" }));
    return s;
  }
  const check = judge(s, e.facts, e.wallMs);
  if (check === undefined) return s;
  fx.push(
    report({
      kind: "credentials_judged",
      check,
      changed: s.credentials?.verdict !== check.verdict,
    }),
  );
  const next: ForgingState = { ...s, credentials: check };
  const phase = next.phase;
  // The placed set, judged again as time passes: a certificate that expires stops forging.
  const same = next.placed !== undefined && next.placed.hotKeyId === e.facts.hotKeyId &&
    next.placed.issueCounter === e.facts.issueCounter;
  if (!mayForge(check) && phase.kind === "forging" && phase.rotation === undefined && same) {
    return badCredentials(next, check, now, fx);
  }
  return next;
}

function nodeMetricsRead(
  s: ForgingState,
  e: Extract<ForgingEvent, { kind: "node_metrics_read" }>,
  fx: Effect[],
): ForgingState {
  const asked = isForging(s);
  const samples = e.sample === undefined ? s.samples : [...s.samples, e.sample].slice(-MAX_SAMPLES);
  const confirmation: ForgingConfirmation = e.sample === undefined
    ? { state: "unknown", why: e.error ?? "no reading of the node's metrics" }
    : confirmForging(asked, samples);
  fx.push(report({
    kind: "forging_confirmation",
    asked,
    confirmation,
    changed: confirmation.state !== s.confirmation,
  }));
  return {
    ...s,
    samples,
    confirmation: confirmation.state,
    ...optional("nodeKesPeriod", e.sample?.currentKESPeriod ?? s.nodeKesPeriod),
  };
}

// ---- stopping -----------------------------------------------------------------------------

/** Unlinks the keys, then signals the node (if one is known or found). The phase is unchanged. */
function stopNode(s: ForgingState, reason: StopReason, fx: Effect[]): ForgingState {
  const id = s.stopCount + 1;
  fx.push({ kind: "remove_keys", stop: id }, { kind: "signal", reason, stop: id, ...nodeOf(s) });
  return { ...s, stopCount: id, stop: { id, reason } };
}

/**
 * Leaves the term (if any) and stops the node; `after` runs once both results are in. With
 * `keepKeys`, the node is a booting, never-signalled, non-producing process that reads the key
 * files at start: nothing is unlinked and the stop counts as confirmed at once.
 */
function beginStop(
  s: ForgingState,
  reason: StopReason,
  after: AfterStop,
  now: number,
  fx: Effect[],
  opts: {
    holdOffMs?: number;
    keepKeys?: boolean;
    wasForging?: boolean;
    releaseTimeoutMs?: number;
  } = {},
): ForgingState {
  const wasLeading = s.election.term !== undefined;
  const wasForging = opts.wasForging ?? (isForging(s) || s.phase.kind === "promoting");
  const probationLeftMs = s.election.term !== undefined ? s.election.term.forgeFrom - now : 0;
  const seen = s.election.seen?.observation;
  const ours = seen?.kind === "present" && seen.record.holder === s.cfg.identity
    ? seen.record
    : undefined;
  if (s.phase.kind === "fencing") fx.push({ kind: "cancel_fence", term: s.phase.term });
  if (wasLeading) fx.push(report({ kind: "stopped_leading", reason }));
  if (wasLeading || wasForging) fx.push(report({ kind: "demoted", reason }));
  let next: ForgingState = {
    ...s,
    election: wasLeading || (opts.holdOffMs ?? 0) > 0
      ? demoted(s.election, now, opts.holdOffMs)
      : s.election,
    phase: {
      kind: "stopping",
      reason,
      after,
      wasForging,
      ...(probationLeftMs > 0 ? { probationLeftMs } : {}),
      ...(wasLeading && ours !== undefined && after.kind !== "standby"
        ? {
          release: {
            record: ours,
            timeoutMs: opts.releaseTimeoutMs ?? 3000,
            ...optional("fencePending", s.owed ?? s.leaseCarries),
          },
        }
        : {}),
    },
  };
  if (wasLeading) {
    // The term is over; what it owed travels with its release (above), or stays on the Lease.
    const { owed: _owed, leaseCarries: _carries, ...rest } = next;
    next = rest;
  }
  if (opts.keepKeys) {
    next = { ...next, stop: undefined, stopConfirmed: true };
    return finishStop(next, true, now, fx);
  }
  return stopNode(next, reason, fx);
}

/** A leader that cannot forge hands the lease on, and waits before competing again. */
function stepAside(
  s: ForgingState,
  why: string,
  now: number,
  fx: Effect[],
  opts: { provision: boolean; keepKeys?: boolean; reason?: StopReason },
): ForgingState {
  const reason = opts.reason ?? "cannot_forge";
  fx.push(report({ kind: "stepping_aside", reason, why }));
  return beginStop(s, reason, { kind: "step_aside", provision: opts.provision }, now, fx, {
    holdOffMs: 2 * s.cfg.leaseDurationMs,
    keepKeys: opts.keepKeys ?? false,
  });
}

function stopResult(
  s: ForgingState,
  id: number,
  result: { removed?: boolean; signal?: PendingStop["signal"] },
  now: number,
  fx: Effect[],
): ForgingState {
  const stop = s.stop;
  if (stop === undefined || stop.id !== id) return s;
  const merged: PendingStop = { ...stop, ...result };
  if (merged.removed === undefined || merged.signal === undefined) return { ...s, stop: merged };
  const confirmed = merged.removed && merged.signal !== "failed";
  return finishStop({ ...s, stop: undefined, stopConfirmed: confirmed }, confirmed, now, fx);
}

function finishStop(s: ForgingState, confirmed: boolean, now: number, fx: Effect[]): ForgingState {
  const phase = s.phase;
  if (phase.kind !== "stopping") return s;
  if (phase.wasForging) {
    fx.push(report({ kind: "forging_disabled", reason: phase.reason, confirmed }));
  }
  const release = phase.release;
  if (release !== undefined) {
    const effect: Extract<Effect, { kind: "release_lease" }> = {
      kind: "release_lease",
      record: release.record,
      clean: confirmed,
      timeoutMs: release.timeoutMs,
      ...optional("fencePending", release.fencePending),
      ...(confirmed && phase.probationLeftMs !== undefined
        ? { waitMs: phase.probationLeftMs }
        : {}),
      ...optional("handoverTo", release.handoverTo),
    };
    // A renew sent before the stop may still commit: release after its answer, on the newest
    // version, or the release would conflict with our own write.
    if (s.leaseBusy?.op === "write") s = { ...s, deferredRelease: effect };
    else fx.push(effect);
  }
  switch (phase.after.kind) {
    case "standby":
      if (phase.after.announce) {
        const info = s.node.kind === "present" ? s.node.info : undefined;
        fx.push(report({
          kind: "standing_by",
          ...optional("pid", info?.pid),
          ...optional("nonProducing", info?.nonProducing),
        }));
      }
      return { ...s, phase: { kind: "standby" } };
    case "step_aside":
      if (phase.after.provision && s.cfg.startAsNonProducing && s.node.kind !== "present") {
        // A node that is not running needs the key files to boot again (it boots non-producing).
        fx.push({ kind: "place_keys", purpose: "boot" });
      }
      return { ...s, phase: { kind: "stepped_aside", until: s.election.notBefore ?? now } };
    case "shutdown":
      return { ...s, phase: release !== undefined ? { kind: "releasing" } : { kind: "done" } };
    case "retire":
      return { ...s, phase: { kind: "retired" } };
  }
}

function shutdown(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const phase = s.phase;
  switch (phase.kind) {
    case "starting":
    case "standby":
    case "stepped_aside":
    case "retired":
      if (s.election.term === undefined) return { ...s, phase: { kind: "done" } };
      break;
    case "stopping":
      if (phase.after.kind === "shutdown") return s;
      return {
        ...s,
        phase: {
          ...phase,
          after: { kind: "shutdown" },
          release: phase.release ?? ownRelease(s, 3000),
        },
      };
    case "releasing":
    case "done":
      return s;
  }
  const deadline = termDeadline(s.election, s.cfg);
  const left = (deadline ?? 0) - now;
  return beginStop(s, "shutdown", { kind: "shutdown" }, now, fx, {
    releaseTimeoutMs: Math.max(500, Math.min(3000, left > 0 ? left : 3000)),
  });
}

function ownRelease(s: ForgingState, timeoutMs: number): Release | undefined {
  const seen = s.election.seen?.observation;
  return seen?.kind === "present" && seen.record.holder === s.cfg.identity
    ? { record: seen.record, timeoutMs }
    : undefined;
}

// ---- what is due now ----------------------------------------------------------------------

/** Runs every rule that depends on time: the election's decision, polls, node checks, promotion. */
function settle(s: ForgingState, now: number, fx: Effect[]): Step {
  let next = s;
  const phase = next.phase;
  if (phase.kind === "done") return { state: next, effects: fx };
  if (phase.kind === "starting") {
    if (!phase.provisioned) return { state: next, effects: fx };
    if (phase.socket === "waiting" && now >= phase.probeAt) {
      fx.push({ kind: "probe_socket" });
      next = { ...next, phase: { ...phase, socket: "probing" } };
    } else if (phase.socket === "accepted" && !next.nodeCheckBusy) {
      fx.push({ kind: "check_node" });
      next = { ...next, nodeCheckBusy: true };
    }
    return { state: next, effects: fx };
  }

  // The election.
  const d = decide(next.election, now, next.cfg);
  if (d.kind === "demote") {
    next = LEADING_PHASES.has(next.phase.kind)
      ? beginStop(next, d.reason, { kind: "standby" }, now, fx)
      : { ...next, election: demoted(next.election, now) };
  } else if (
    (d.kind === "renew" || d.kind === "acquire") && next.leaseBusy === undefined &&
    writable(next, d)
  ) {
    fx.push({
      kind: "write_lease",
      decision: d,
      deadline: d.kind === "renew" ? d.deadline : Infinity,
      maxTimeoutMs: d.kind === "renew"
        ? next.cfg.renewDeadlineMs
        : Math.min(next.cfg.renewDeadlineMs, 5000),
      ...optional("previous", next.lastHolder),
      ...optional("fencePending", owedBy(next, d)),
    });
    next = { ...next, leaseBusy: { op: "write", since: now } };
  }
  if (
    next.election.term === undefined && next.leaseBusy === undefined &&
    now >= next.nextPollAt && !keysMoving(next)
  ) {
    fx.push({ kind: "read_lease", timeoutMs: readTimeout(next.cfg) });
    next = { ...next, leaseBusy: { op: "read", since: now } };
  }

  // The node (and, while forging, the sources of a rotation).
  if (!next.nodeCheckBusy && now >= next.nextNodeCheckAt) {
    const view = next.node;
    fx.push({
      kind: "check_node",
      ...optional(
        "readyKey",
        view.kind === "present" && view.ready ? processKey(view.info) : undefined,
      ),
    });
    if (next.phase.kind === "forging" && next.phase.rotation === undefined) {
      fx.push({ kind: "check_sources" });
    }
    next = { ...next, nodeCheckBusy: true };
  }

  // The credentials' verdict (the KES window moves with time) and the node's own account.
  if (
    next.cfg.kesTiming !== undefined && !next.credentialCheckBusy &&
    now >= next.nextCredentialCheckAt
  ) {
    fx.push({ kind: "check_credentials" });
    next = { ...next, credentialCheckBusy: true };
  }
  if (next.cfg.nodeMetrics && !next.metricsBusy && now >= next.nextMetricsAt) {
    fx.push({ kind: "read_node_metrics" });
    next = { ...next, metricsBusy: true };
  }
  // An operator's pause begins or ends; a standby whose Pod is being deleted (seen while it was
  // still starting, say) never competes again.
  if (next.cfg.operations) next = retireIfDeleted(pause(next, now, fx));

  // Stepping aside ends; promotion begins.
  const p = next.phase;
  if (p.kind === "stepped_aside" && now >= p.until) next = { ...next, phase: { kind: "standby" } };
  if (p.kind === "awaiting_node" && leadsNow(next, now) && mayPromote(next, now)) {
    // Not while the Lease still says this term owes a proof: a successor would prove the earlier
    // holder only, not us.
    if (next.leaseCarries === undefined) next = promote(next, p.term, now, fx);
    else next = renewNow(next, now, fx);
  }
  // Requests for the operations (the CardanoLeader's spec, our Pod) and this replica's published
  // state: after the promotion, so that none of them starts beside its placement.
  next = settleRequests(next, now, fx);
  return { state: next, effects: fx };
}

/**
 * Lease writes are not sent while a stop is under way or after shutdown began; a replica whose
 * credentials cannot forge does not compete for the Lease (a renew is still sent: the leader
 * steps aside through its own transition).
 */
function writable(s: ForgingState, d: Decision): boolean {
  const k = s.phase.kind;
  if (k === "stopping" || k === "releasing" || k === "retired") return false;
  return d.kind !== "acquire" || s.credentials === undefined || mayForge(s.credentials);
}

/** Sends a renew at once (without the settled obligation), unless a write is in flight. */
function renewNow(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const seen = s.election.seen?.observation;
  const deadline = termDeadline(s.election, s.cfg);
  if (s.leaseBusy !== undefined || seen?.kind !== "present" || deadline === undefined) return s;
  const decision: WriteDecision = { kind: "renew", record: seen.record, deadline };
  fx.push({
    kind: "write_lease",
    decision,
    deadline,
    maxTimeoutMs: s.cfg.renewDeadlineMs,
    ...optional("fencePending", s.owed),
  });
  return { ...s, leaseBusy: { op: "write", since: now } };
}

function promote(s: ForgingState, term: number, now: number, fx: Effect[]): ForgingState {
  if (s.credentials !== undefined && !mayForge(s.credentials)) {
    return badCredentials(s, s.credentials, now, fx);
  }
  const view = s.node;
  if (view.kind === "present" && view.ready) {
    // The claim goes out first and runs beside the placement; the SIGHUP waits for both.
    fx.push({ kind: "claim_leader", term, timeoutMs: Math.min(readTimeout(s.cfg), 2000) }, {
      kind: "place_keys",
      purpose: "promote",
    });
    return { ...s, phase: { kind: "promoting", term, step: "placing" } };
  }
  if (view.kind === "present" && view.info.nonProducing) {
    return stepAside(
      s,
      `the node process (pid ${view.info.pid}) restarted and is not ready yet`,
      now,
      fx,
      {
        provision: false,
        keepKeys: true,
      },
    );
  }
  return stepAside(s, "the node process is not running or not ready", now, fx, { provision: true });
}

// ---- operations: pause, handover, our Pod's deletion, the published state ----------------
//
// With `cfg.operations`, every replica reads the CardanoLeader's spec every SLEEP_INTERVAL
// (`read_control`; a failed read keeps the last known value) and publishes its own state
// (`publish_replica`). The rules:
// - a pause (spec.pause, active until `until` passes) holds a leader in `paused`: keys unlinked,
//   node signalled, the Lease still renewed; a replica that acquires during a pause does not
//   promote; no term promotes before the spec was read once (a pause survives restarts);
// - a handover (spec.handover, a new id) ends a leader's term as a shutdown does, releasing
//   clean and naming the target (only that pod takes the release at once, see election.ts),
//   then steps aside; ids are remembered, and status.handover.id counts as handled;
// - our own Pod's deletion (read while leading, FENCE=pod) ends the term at once, releasing
//   clean to any standby, and the process never competes again (`retired`).

/** How often an unchanged replica state is published again (ms). */
export const REPLICA_HEARTBEAT_MS = 10_000;

/**
 * The CardanoLeader and our Pod are watched (every change arrives at once); a read is the
 * backstop for a watch gone quiet. After a watch event the next read of the CardanoLeader waits
 * this long (our own heartbeats modify it every REPLICA_HEARTBEAT_MS, so a live watch keeps it
 * from ever coming), after a read only SLEEP_INTERVAL. Our Pod is read this often while leading.
 */
export const WATCHED_READ_MS = 30_000;

/** A handover request older than this when a leader first sees it is not acted on. */
export const HANDOVER_MAX_AGE_MS = 60_000;

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
  readonly pendingHandover?: { id: string; to: string };
  readonly podCheckBusy?: boolean;
  readonly nextPodCheckAt?: number;
  readonly podTerminating?: boolean;
  /** Whether the active pause was reported (pause_started) and not yet its end. */
  readonly pauseSeen?: boolean;
  readonly published?: string;
  readonly nextPublishAt?: number;
  readonly lastReason?: string;
}

/** The operations' events. */
export type OpsEvent =
  /** `watched`: from the watch, not an answer to `read_control`. */
  | { kind: "control_read"; control: ControlView; watched?: boolean }
  | { kind: "control_read_failed"; error: string }
  /** `watched`: from the watch, not an answer to `check_pod`. */
  | { kind: "pod_checked"; watched?: boolean }
  | { kind: "pod_terminating"; watched?: boolean }
  | { kind: "pod_check_failed"; error: string };

/** The operations' effects. */
export type OpsEffect =
  | { kind: "read_control"; timeoutMs: number }
  | { kind: "check_pod"; timeoutMs: number }
  | { kind: "publish_replica"; replica: ReplicaView }
  | { kind: "report_handover"; id: string; result: HandoverResult };

/** The operations' transitions (telemetry.ts). */
export type OpsTransition =
  | { kind: "control_read_failed"; error: string }
  | { kind: "pause_started"; reason: string; by: string }
  | { kind: "pause_ended" }
  | { kind: "paused_leader"; reason: string; by: string; wasForging: boolean }
  | { kind: "resumed_leader" }
  | { kind: "handover_started"; id: string; to: string; by: string }
  | { kind: "handover_done"; id: string; to: string; result: HandoverResult }
  | { kind: "pod_terminating"; leading: boolean }
  | { kind: "pod_check_failed"; error: string };

const OPS_EVENTS: ReadonlySet<ForgingEvent["kind"]> = new Set([
  "control_read",
  "control_read_failed",
  "pod_checked",
  "pod_terminating",
  "pod_check_failed",
]);

function isOpsEvent(e: ForgingEvent): e is OpsEvent {
  return OPS_EVENTS.has(e.kind);
}

/** Whether a pause is in force at `now` (monotonic). */
export function pauseActive(control: ControlView | undefined, now: number): boolean {
  const pause = control?.pause;
  return pause !== undefined && (pause.endsAt === undefined || now < pause.endsAt);
}

/** Whether this state holds the Lease in a phase of a term. */
function holdsTerm(s: ForgingState): boolean {
  return s.election.term !== undefined && LEADING_PHASES.has(s.phase.kind);
}

/** Whether a term may promote now: the spec was read once and no pause is in force. */
function mayPromote(s: ForgingState, now: number): boolean {
  if (!s.cfg.operations) return true;
  return s.ops?.control !== undefined && !pauseActive(s.ops.control, now);
}

function withOps(s: ForgingState, ops: OpsState): ForgingState {
  return { ...s, ops };
}

function applyOps(s: ForgingState, e: OpsEvent, now: number, fx: Effect[]): ForgingState {
  const ops = s.ops ?? {};
  const due = now + s.cfg.sleepIntervalMs;
  switch (e.kind) {
    case "control_read": {
      if (!e.watched && ops.controlReadStale) {
        // A watch event came after this read was sent: keep what it said.
        return withOps(s, { ...ops, controlBusy: false, controlReadStale: false });
      }
      const next = e.watched
        ? {
          ...ops,
          control: e.control,
          nextControlReadAt: now + WATCHED_READ_MS,
          controlReadStale: ops.controlBusy === true,
        }
        : { ...ops, control: e.control, controlBusy: false, nextControlReadAt: due };
      return handover(withOps(s, next), e.control, now, fx);
    }
    case "control_read_failed":
      fx.push(report({ kind: "control_read_failed", error: e.error }));
      // The last known requests stay in force; with none known, there are none.
      return withOps(s, {
        ...ops,
        control: ops.control ?? {},
        controlBusy: false,
        nextControlReadAt: due,
      });
    case "pod_checked":
      return withOps(s, {
        ...ops,
        ...(e.watched ? {} : { podCheckBusy: false }),
        nextPodCheckAt: now + WATCHED_READ_MS,
      });
    case "pod_check_failed":
      fx.push(report({ kind: "pod_check_failed", error: e.error }));
      return withOps(s, {
        ...ops,
        podCheckBusy: false,
        nextPodCheckAt: now + nodeCheckInterval(s.cfg),
      });
    case "pod_terminating": {
      const next = withOps(s, { ...ops, ...(e.watched ? {} : { podCheckBusy: false }) });
      // Seen once is enough: a deletion is never undone.
      return ops.podTerminating ? next : podTerminating(next, now, fx);
    }
  }
}

/** Results that belong to a handover in progress (its release), before the usual handling. */
function beforeEvent(s: ForgingState, e: ForgingEvent, fx: Effect[]): ForgingState {
  const pending = s.ops?.pendingHandover;
  if (pending === undefined) return s;
  if (e.kind !== "lease_released" && e.kind !== "lease_release_failed") return s;
  const result: HandoverResult = e.kind === "lease_release_failed"
    ? "release_failed"
    : e.clean
    ? "released"
    : "released_unclean";
  fx.push(report({ kind: "handover_done", id: pending.id, to: pending.to, result }));
  fx.push({ kind: "report_handover", id: pending.id, result });
  const { pendingHandover: _done, ...ops } = s.ops!;
  return withOps(s, ops);
}

function handover(s: ForgingState, control: ControlView, now: number, fx: Effect[]): ForgingState {
  const h = control.handover;
  const ops = s.ops ?? {};
  const handled = ops.handled ?? [];
  if (h === undefined || handled.includes(h.id) || h.id === control.handledId) return s;
  // A clean release lets the target forge without proof; mid-fence, the previous holder's node
  // is not proven stopped yet: act on the request once the fence is done (it is read again).
  if (s.phase.kind === "fencing") return s;
  let next = withOps(s, { ...ops, handled: [...handled.slice(-15), h.id] });
  if (!holdsTerm(s)) return next;
  const done = (result: HandoverResult): ForgingState => {
    fx.push(report({ kind: "handover_done", id: h.id, to: h.to, result }));
    fx.push({ kind: "report_handover", id: h.id, result });
    return next;
  };
  if (h.ageMs > HANDOVER_MAX_AGE_MS) return done("stale");
  if (h.to === s.cfg.podName) return done("already_leader");
  fx.push(report({ kind: "handover_started", id: h.id, to: h.to, by: h.by }));
  next = beginStop(next, "handover", { kind: "step_aside", provision: false }, now, fx, {
    holdOffMs: 2 * s.cfg.leaseDurationMs,
  });
  const phase = next.phase;
  if (phase.kind !== "stopping" || phase.release === undefined) return done("release_failed");
  return {
    ...next,
    phase: {
      ...phase,
      release: { ...phase.release, ...optional("handoverTo", h.to || undefined) },
    },
    ops: { ...next.ops, pendingHandover: { id: h.id, to: h.to } },
  };
}

function retireIfDeleted(s: ForgingState): ForgingState {
  const k = s.phase.kind;
  return s.ops?.podTerminating && (k === "standby" || k === "stepped_aside")
    ? { ...s, phase: { kind: "retired" } }
    : s;
}

function podTerminating(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const leading = holdsTerm(s);
  fx.push(report({ kind: "pod_terminating", leading }));
  const next = withOps(s, { ...s.ops, podTerminating: true });
  const phase = next.phase;
  if (leading) {
    const deadline = termDeadline(next.election, next.cfg);
    const left = (deadline ?? 0) - now;
    return beginStop(next, "pod_terminating", { kind: "retire" }, now, fx, {
      releaseTimeoutMs: Math.max(500, Math.min(3000, left > 0 ? left : 3000)),
    });
  }
  if (phase.kind === "stopping" && phase.after.kind !== "shutdown") {
    return { ...next, phase: { ...phase, after: { kind: "retire" } } };
  }
  if (phase.kind === "standby" || phase.kind === "stepped_aside") {
    return { ...next, phase: { kind: "retired" } };
  }
  return next;
}

/** The time-driven part of the operations, run by `settle`. */
function settleRequests(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  if (!s.cfg.operations) return s;
  if (keysMoving(s)) return rememberReason(s, now); // requests wait until the keys have moved
  let ops: OpsState = s.ops ?? {};
  if (!ops.controlBusy && now >= (ops.nextControlReadAt ?? now)) {
    fx.push({ kind: "read_control", timeoutMs: readTimeout(s.cfg) });
    ops = { ...ops, controlBusy: true };
  }
  if (podCheckDue(s, ops, now)) {
    fx.push({ kind: "check_pod", timeoutMs: readTimeout(s.cfg) });
    ops = { ...ops, podCheckBusy: true };
  }
  return publish(withOps(s, ops), now, fx);
}

function podCheckDue(s: ForgingState, ops: OpsState, now: number): boolean {
  return s.cfg.fence && holdsTerm(s) && !ops.podTerminating && !ops.podCheckBusy &&
    now >= (ops.nextPodCheckAt ?? now);
}

function pause(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const ops = s.ops ?? {};
  const active = pauseActive(ops.control, now);
  let next = s;
  if (active !== (ops.pauseSeen ?? false)) {
    const p = ops.control?.pause;
    fx.push(report(
      active && p !== undefined
        ? { kind: "pause_started", reason: p.reason, by: p.by }
        : { kind: "pause_ended" },
    ));
    next = withOps(next, { ...ops, pauseSeen: active });
  }
  const phase = next.phase;
  if (
    active && (phase.kind === "awaiting_node" || phase.kind === "promoting" ||
      phase.kind === "forging")
  ) {
    const p = ops.control!.pause!;
    const wasForging = phase.kind !== "awaiting_node";
    fx.push(report({ kind: "paused_leader", reason: p.reason, by: p.by, wasForging }));
    next = { ...next, phase: { kind: "paused", term: phase.term } };
    // Keys placed (or being placed) and perhaps signalled: unlink, then SIGHUP, on the lane.
    if (wasForging) next = stopNode(next, "paused", fx);
    return next;
  }
  if (!active && phase.kind === "paused") {
    fx.push(report({ kind: "resumed_leader" }));
    return { ...next, phase: { kind: "awaiting_node", term: phase.term } };
  }
  return next;
}

/** This replica's state as `status` shows it. */
export function replicaView(s: ForgingState, now: number): ReplicaView {
  const phase = s.phase;
  const reason = phase.kind === "stopping"
    ? phase.reason
    : phase.kind === "paused"
    ? "paused"
    : phase.kind === "retired"
    ? "pod_terminating"
    : s.ops?.lastReason ?? "";
  return {
    phase: phase.kind,
    leader: leadsNow(s, now),
    forging: isForging(s),
    nodeFound: s.node.kind === "present",
    fence: !s.cfg.fence ? "off" : phase.kind === "fencing" ? "proving" : "idle",
    reason,
  };
}

/** Keeps the reason of the last stop, which the published state shows after it. */
function rememberReason(s: ForgingState, now: number): ForgingState {
  const reason = replicaView(s, now).reason;
  const ops = s.ops ?? {};
  return reason === ops.lastReason ? s : withOps(s, { ...ops, lastReason: reason });
}

function publish(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const view = replicaView(s, now);
  const key = JSON.stringify(view);
  const ops = s.ops ?? {};
  if (key === ops.published && now < (ops.nextPublishAt ?? now)) return rememberReason(s, now);
  fx.push({ kind: "publish_replica", replica: view });
  return withOps(s, {
    ...ops,
    published: key,
    // A change is published at once; an unchanged state only as a heartbeat, well within the
    // 30 s after which `forge-manager status` calls an entry stale.
    nextPublishAt: now + Math.max(s.cfg.sleepIntervalMs, REPLICA_HEARTBEAT_MS),
    lastReason: view.reason,
  });
}

/** The operations' wake-up times (only those `pause` and `settleRequests` would act on). */
function opsWakes(s: ForgingState): number[] {
  if (!s.cfg.operations) return [];
  if (keysMoving(s)) return pauseWakes(s); // the phase's end wakes the loop anyway
  const ops = s.ops ?? {};
  const times: number[] = [];
  if (!ops.controlBusy && ops.nextControlReadAt !== undefined) times.push(ops.nextControlReadAt);
  if (ops.nextPublishAt !== undefined) times.push(ops.nextPublishAt);
  if (
    s.cfg.fence && holdsTerm(s) && !ops.podTerminating && !ops.podCheckBusy &&
    ops.nextPodCheckAt !== undefined
  ) times.push(ops.nextPodCheckAt);
  return [...times, ...pauseWakes(s)];
}

function pauseWakes(s: ForgingState): number[] {
  const ops = s.ops ?? {};
  const endsAt = ops.control?.pause?.endsAt;
  return endsAt !== undefined && ops.pauseSeen ? [endsAt] : [];
}
