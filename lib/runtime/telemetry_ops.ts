/**
 * Telemetry of the operator's requests (pause, handover, our Pod's deletion) and of the guard:
 * their handlers of {@linkcode Handlers}, used by `telemetry.ts`.
 *
 * @module
 */

import { STOP_REASONS } from "../forging/stop_reasons.ts";
import type { Handlers } from "./telemetry.ts";
import { recordSync } from "./metrics_handovers.ts";

/** Why a handover started, for its Event: "request h-1 by alice", "sync-ab12-3 by forge-0". */
const HANDOVER_WHY = {
  handover: "requested by",
  sync: "its node lags the chain, by",
  preferred: "the preferred replica is ready, by",
} as const;

/** The node's sync, and forging while it lags with no synced standby (sync.ts). */
export const SYNC: Pick<Handlers, "sync_judged" | "unsynced_forging"> = {
  sync_judged: (t, c) => {
    recordSync(c.metrics, t.sync);
    if (!t.changed) return;
    const fields = { lagSlots: t.sync.lagSlots };
    if (t.sync.state === "lagging") c.log.warn("the node's tip lags the chain", fields);
    else if (t.sync.state === "synced") c.log.info("the node is synced", fields);
    else c.log.info("the node's sync is unknown (no recent reading of its slotNum)");
  },
  unsynced_forging: (t, c) => {
    c.metrics.unsyncedForging.set(t.active ? 1 : 0);
    if (!t.active) return c.log.info("no longer forging unsynced");
    c.log.warn("forging while the node's tip lags: no synced standby to hand over to", {
      lagSlots: t.lagSlots,
    });
    c.event(
      "Warning",
      "ForgingUnsynced",
      `${c.d.podName} forges ${t.lagSlots ?? "?"} slots behind the chain: no synced standby`,
    );
  },
};

/**
 * The leader schedule and the waits for its slots (slot_wait.ts). The schedule is sensitive: a
 * slot's number goes to debug logs only, and the waits (which say that some slot is near) to logs
 * and metrics, not to Events.
 */
export const SCHEDULE: Pick<
  Handlers,
  "schedule_loaded" | "schedule_unusable" | "slot_wait_started" | "slot_wait_ended"
> = {
  schedule_loaded: (t, c) => {
    c.metrics.scheduleUpcoming.set(t.upcoming);
    if (!t.changed) return;
    c.log.info("read the pool's leader schedule", { upcoming: t.upcoming });
    c.log.debug("the next leader slot", { slot: t.next });
  },
  schedule_unusable: (t, c) =>
    c.log.warn("cannot read the leader schedule; planned handovers go by the last one read", {
      err: t.error,
    }),
  slot_wait_started: (t, c) => {
    c.log.info("a planned end of term waits for one of the pool's leader slots to pass", {
      trigger: t.trigger,
      waitMs: Math.round(t.waitMs),
    });
    c.log.debug("the slot waited for", { slot: t.slot });
  },
  slot_wait_ended: (t, c) => {
    c.metrics.slotWaits.inc({ trigger: t.trigger, outcome: t.outcome });
    c.metrics.slotWaitSeconds.inc({ trigger: t.trigger }, t.waitedMs / 1000);
    const fields = { trigger: t.trigger, outcome: t.outcome, waitedMs: Math.round(t.waitedMs) };
    if (t.outcome === "bound") {
      c.log.warn("a planned end of term ran out of time waiting for a leader slot to pass", fields);
    } else c.log.info("a planned end of term waited for a leader slot", fields);
  },
};

/** Operator requests: pause, handover, our Pod's deletion. */
export const OPS: Pick<
  Handlers,
  | "control_read_failed"
  | "pause_started"
  | "pause_ended"
  | "paused_leader"
  | "resumed_leader"
  | "handover_started"
  | "handover_done"
  | "handover_completed"
  | "pod_terminating"
  | "pod_check_failed"
> = {
  control_read_failed: (t, c) => {
    c.metrics.controlReadFailures.inc();
    c.log.warn("cannot read the CardanoLeader spec; the last known requests stay in force", {
      err: t.error,
    });
  },
  pause_started: (t, c) => {
    c.metrics.paused.set(1);
    c.log.info("forging is paused by an operator", { by: t.by, why: t.reason });
  },
  pause_ended: (_, c) => {
    c.metrics.paused.set(0);
    c.log.info("the operator's pause ended");
  },
  paused_leader: (t, c) => {
    c.metrics.forgingEnabled.set(c.pod, 0);
    if (t.wasForging) c.metrics.demotions.inc({ reason: STOP_REASONS.paused.metric });
    c.log.warn("paused: not forging, keeping the lease", { by: t.by, why: t.reason });
    c.status({
      leaderPod: c.d.podName,
      forgingEnabled: false,
      reason: STOP_REASONS.paused.status,
      message: `${c.d.podName} holds the lease, paused by ${t.by}: ${t.reason}`,
    });
  },
  resumed_leader: (_, c) => {
    c.log.info("resumed: forging again once the node is ready");
    c.event("Normal", "Resumed", `${c.d.podName} resumes forging`);
  },
  handover_started: (t, c) => {
    const why = HANDOVER_WHY[t.reason];
    c.log.info("handing the term over", {
      id: t.id,
      to: t.to || "any standby",
      by: t.by,
      reason: t.reason,
    });
    c.event(
      "Normal",
      "HandoverStarted",
      `${c.d.podName} hands over to ${t.to || "any standby"} (${t.id}: ${why} ${t.by})`,
    );
  },
  handover_done: (t, c) => {
    c.metrics.handovers.inc({ reason: t.reason, result: t.result });
    c.log.info("handover handled", { id: t.id, to: t.to, reason: t.reason, result: t.result });
    c.event(
      t.result === "released" || t.result === "already_leader" ? "Normal" : "Warning",
      "HandoverDone",
      `${c.d.podName}: handover ${t.id} to ${t.to || "any standby"}: ${t.result}`,
    );
  },
  handover_completed: (t, c) => {
    c.log.info("a handover to this replica is done: it holds the lease and forges", { id: t.id });
    c.event("Normal", "HandoverCompleted", `${c.d.podName} holds the lease and forges (${t.id})`);
  },
  pod_terminating: (t, c) => {
    c.log.warn("this replica's Pod is being deleted: ending the term now, not competing again", {
      leading: t.leading,
    });
    if (t.leading) c.event("Normal", "PodTerminating", `${c.d.podName} hands over at deletion`);
  },
  pod_check_failed: (t, c) => c.log.warn("cannot read this replica's Pod", { err: t.error }),
};

/** The guard on this machine (lib/core/guard.ts). */
export const GUARD: Pick<
  Handlers,
  "guard_link" | "guard_arm_failed" | "guard_fired" | "guard_state"
> = {
  guard_link: (t, c) => {
    c.metrics.guardArmed.set(t.up ? 0 : -1);
    if (t.up) c.log.info("connected to the guard");
    else c.log.warn("no guard connected: this replica will not forge", { err: t.error });
  },
  guard_arm_failed: (t, c) => c.log.error("the guard could not be armed", { err: t.error }),
  guard_fired: (t, c) => {
    const fields = { reason: t.reason, ok: t.ok, wasForging: t.wasForging, err: t.error };
    if (t.wasForging) c.log.error("the guard stopped the node while this replica forged", fields);
    else c.log.warn("the guard stopped the node", fields);
    c.event("Warning", "GuardStoppedNode", `the guard stopped ${c.d.podName}'s node (${t.reason})`);
  },
  guard_state: (t, c) => {
    c.metrics.guardArmed.set(t.armed ? 1 : 0);
    c.guardDemotions(t.demotions);
  },
};
