/**
 * What goes in and out of the forging step: the events it takes (timer ticks, I/O results,
 * shutdown), the effects it asks the runner to perform, and the transitions telemetry turns into
 * logs, metrics, status and Events. Plain data only.
 *
 * @module
 */

import type { FencePending, LeaseRecord, Observation } from "../kube/lease_store.ts";
import type {
  ControlView,
  HandoverReason,
  HandoverResult,
  ReplicaView,
} from "../kube/cardano_leader.ts";
import type { Sync } from "./sync.ts";
import type { PlannedRequest } from "./slot_wait.ts";

/** What a planned end of term is. */
/** What a slot wait is for: a planned end of term, or (`cluster`) a handover between clusters. */
export type PlannedTrigger = PlannedRequest["trigger"] | "cluster";
import type { FenceOutcome } from "../kube/fence.ts";
import type { NodeInfo, SignalFailure } from "../core/node_process.ts";
import type { SignalReason, StopReason } from "./stop_reasons.ts";
import type { CredentialFacts } from "../cardano/cardano_keys.ts";
import type { CredentialCheck } from "./credential_verdict.ts";
import type { ForgingConfirmation } from "./forging_confirmation.ts";
import type { NodeMetricsSample } from "../node/node_metrics.ts";
import type { GlobalEffect, GlobalEvent, GlobalTransition } from "./global_events.ts";
import type {
  ForgingConfig,
  ForgingState,
  HolderFacts,
  LeaseRelease,
  PlacedKeys,
  WriteDecision,
} from "./state.ts";

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
  /** The decoys are in place (a failure comes as `keys_place_failed` with purpose `boot`). */
  | { kind: "decoys_placed"; changed: string[] }
  | { kind: "credentials_checked"; facts?: CredentialFacts; error?: string; wallMs: number }
  | { kind: "node_metrics_read"; sample?: NodeMetricsSample; error?: string }
  | { kind: "keys_place_failed"; purpose: PlacePurpose; error: string }
  | { kind: "keys_removed"; stop: number; ok: boolean; error?: string }
  /** The guard holds a deadline for term `term`: the promotion's SIGHUP may go. */
  | { kind: "guard_armed"; term: number }
  | { kind: "guard_arm_failed"; term: number; error: string }
  /** The guard's connection came up or went down (refused counts as down). */
  | { kind: "guard_link"; up: boolean; error?: string }
  /** The guard removed the keys and signalled the node itself. */
  | { kind: "guard_fired"; reason: string; ok: boolean; error?: string }
  /** The guard's own state (armed, its stops by reason), for metrics and status. */
  | { kind: "guard_state"; armed: boolean; demotions: Record<string, number> }
  /** The leader schedule read (its slots, or why not), at wall time `wallMs`. */
  | { kind: "schedule_read"; wallMs: number; slots?: number[]; error?: string }
  | {
    kind: "signalled";
    reason: SignalReason;
    stop?: number;
    pid?: number;
    outcome: "ok" | "no_node" | SignalFailure;
    error?: string;
  }
  | OpsEvent
  | GlobalEvent;

/** How a fence ended, including the runs that needed no pod at all. */
export type FenceResult = FenceOutcome | { proven: true; how: "no_previous" | "guard_bound" } | {
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
  | LeaseRelease
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
  | { kind: "read_schedule" }
  | { kind: "read_node_metrics" }
  | { kind: "place_keys"; purpose: Exclude<PlacePurpose, "boot"> }
  /**
   * What the node boots on: the pool's keys, or with `decoys` the decoy set (answered by
   * `decoys_placed`).
   */
  | { kind: "place_keys"; purpose: "boot"; decoys?: true }
  /** Asks the guard to hold a deadline now (before the promotion's SIGHUP); answered by an event. */
  | { kind: "arm_guard"; term: number; timeoutMs: number }
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
  | OpsEffect
  | GlobalEffect;

/** What telemetry (`telemetry.ts`) turns into logs, metrics, status and Events. */
export type Transition =
  | { kind: "boot_keys_placed"; changed: string[]; decoys?: true }
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
  | { kind: "guard_link"; up: boolean; error?: string }
  | { kind: "guard_arm_failed"; error: string }
  | { kind: "guard_fired"; reason: string; ok: boolean; error?: string; wasForging: boolean }
  | { kind: "guard_state"; armed: boolean; demotions: Record<string, number> }
  | { kind: "credentials_unreadable"; error: string }
  | {
    kind: "forging_confirmation";
    asked: boolean;
    confirmation: ForgingConfirmation;
    changed: boolean;
  }
  /** The node's sync at a reading of its metrics (sync.ts). */
  | { kind: "sync_judged"; sync: Sync; changed: boolean }
  /** Forging while the tip lags and no synced standby waits: begun (`active`) or ended. */
  | { kind: "unsynced_forging"; active: boolean; lagSlots?: number }
  /** The schedule read: how many slots lie ahead; `next` (debug logs only) the next one. */
  | { kind: "schedule_loaded"; upcoming: number; changed: boolean; next?: number }
  | { kind: "schedule_unusable"; error: string }
  /** A planned end of term waits for a slot (`slot` for debug logs only). */
  | { kind: "slot_wait_started"; trigger: PlannedTrigger; waitMs: number; slot?: number }
  | {
    kind: "slot_wait_ended";
    trigger: PlannedTrigger;
    outcome: "passed" | "bound" | "cancelled";
    waitedMs: number;
  }
  | OpsTransition
  | GlobalTransition;

/** The operations' events. */
export type OpsEvent =
  /** `watched`: from the watch, not an answer to `read_control`. */
  | { kind: "control_read"; control: ControlView; watched?: boolean }
  | { kind: "control_read_failed"; error: string }
  /** `watched`: from the watch, not an answer to `check_pod`. */
  | { kind: "pod_checked"; watched?: boolean }
  /** `graceMs`: the deletion's grace period, when the Pod says (deletionGracePeriodSeconds). */
  | { kind: "pod_terminating"; watched?: boolean; graceMs?: number }
  | { kind: "pod_check_failed"; error: string };

/** The operations' effects. */
export type OpsEffect =
  | { kind: "read_control"; timeoutMs: number }
  | { kind: "check_pod"; timeoutMs: number }
  | { kind: "publish_replica"; replica: ReplicaView }
  /** Writes status.handover: the leader's result, or `done` from the target once it forges. */
  | {
    kind: "report_handover";
    id: string;
    to: string;
    reason: HandoverReason;
    result: HandoverResult;
  };

/** The operations' transitions (telemetry.ts). */
export type OpsTransition =
  | { kind: "control_read_failed"; error: string }
  | { kind: "pause_started"; reason: string; by: string }
  | { kind: "pause_ended" }
  | { kind: "paused_leader"; reason: string; by: string; wasForging: boolean }
  | { kind: "resumed_leader" }
  | { kind: "handover_started"; id: string; to: string; by: string; reason: HandoverReason }
  | {
    kind: "handover_done";
    id: string;
    to: string;
    reason: HandoverReason;
    result: HandoverResult;
  }
  /** This replica took a handover's release and forges: the handover is done. */
  | { kind: "handover_completed"; id: string }
  | { kind: "pod_terminating"; leading: boolean }
  | { kind: "pod_check_failed"; error: string };

/** The result of one step. */
export interface Step {
  state: ForgingState;
  effects: Effect[];
}

const OPS_EVENTS: ReadonlySet<ForgingEvent["kind"]> = new Set([
  "control_read",
  "control_read_failed",
  "pod_checked",
  "pod_terminating",
  "pod_check_failed",
]);

/** Whether `e` is one of the operations' events (`operations.ts` handles those). */
export function isOpsEvent(e: ForgingEvent): e is OpsEvent {
  return OPS_EVENTS.has(e.kind);
}

/** The placement of what the node boots on: the decoys with `cfg.decoys`, else the pool's keys. */
export function bootKeys(cfg: ForgingConfig): Effect {
  return cfg.decoys ? { kind: "place_keys", purpose: "boot", decoys: true } : {
    kind: "place_keys",
    purpose: "boot",
  };
}

/** The effect that hands `transition` to telemetry. */
export function report(transition: Transition): Effect {
  return { kind: "report", transition };
}
