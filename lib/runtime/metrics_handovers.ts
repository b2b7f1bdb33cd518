/**
 * The metrics of operator requests and planned handovers (pause, reads of the CardanoLeader spec,
 * handovers by reason), and of the node's sync (sync-aware election). Part of `metrics.ts`'s
 * {@linkcode Metrics}.
 *
 * @module
 */

import { Counter, Gauge, type Registry } from "prom-client";
import type { Metrics } from "./metrics.ts";
import type { Sync } from "../forging/sync.ts";

/** The sync states, one series each. */
const SYNC_STATES = ["synced", "lagging", "unknown"] as const;

/** Operator requests: the pause, reads of the CardanoLeader spec, handovers. */
export function operationsMetrics(
  registers: Registry[],
): Pick<Metrics, "paused" | "controlReadFailures" | "handovers"> {
  return {
    paused: new Gauge({
      name: "forge_manager_paused",
      help: "Whether an operator's pause (CardanoLeader spec.pause) is in force as this replica " +
        "last read it (0 or 1)",
      registers,
    }),
    controlReadFailures: new Counter({
      name: "forge_manager_control_read_failures_total",
      help: "Reads of the CardanoLeader spec that failed (the last known requests stay in force)",
      registers,
    }),
    handovers: new Counter({
      name: "forge_manager_handovers_total",
      help: "Planned handovers this replica handled as leader, by reason (handover: an " +
        "operator's request, sync, preferred) and result (released, released_unclean, " +
        "release_failed, already_leader, stale, target_lagging)",
      labelNames: ["reason", "result"] as const,
      registers,
    }),
  };
}

/** The node's sync: its tip's lag, its state, and forging while it lags. */
export function syncMetrics(
  registers: Registry[],
): Pick<Metrics, "nodeTipLag" | "nodeSync" | "unsyncedForging"> {
  const nodeTipLag = new Gauge({
    name: "forge_manager_node_tip_lag_slots",
    help: "Slots the node's tip (its metrics' slotNum) lags the wall clock's slot at the last " +
      "reading (-1 unknown)",
    registers,
  });
  nodeTipLag.set(-1);
  const nodeSync = new Gauge({
    name: "forge_manager_node_sync",
    help: "The node's sync (MAX_TIP_LAG_SLOTS): one series per state (synced, lagging, " +
      "unknown), the current one 1",
    labelNames: ["state"] as const,
    registers,
  });
  for (const state of SYNC_STATES) nodeSync.set({ state }, state === "unknown" ? 1 : 0);
  const unsyncedForging = new Gauge({
    name: "forge_manager_forging_unsynced",
    help: "1 while this replica forges with its node's tip lagging and no synced standby to " +
      "hand over to",
    registers,
  });
  unsyncedForging.set(0);
  return { nodeTipLag, nodeSync, unsyncedForging };
}

/** The leader schedule and the waits for its slots (no slot's time: the schedule is sensitive). */
export function scheduleMetrics(
  registers: Registry[],
): Pick<Metrics, "scheduleUpcoming" | "slotWaits" | "slotWaitSeconds"> {
  const scheduleUpcoming = new Gauge({
    name: "forge_manager_leader_schedule_slots",
    help: "The pool's leader slots still ahead in the schedule last read (LEADER_SCHEDULE_FILE); " +
      "-1 before one was read, or without a schedule",
    registers,
  });
  scheduleUpcoming.set(-1);
  return {
    scheduleUpcoming,
    slotWaits: new Counter({
      name: "forge_manager_slot_waits_total",
      help: "Planned ends of term that waited for a leader slot to pass, by trigger (handover, " +
        "sync, preferred, shutdown, pod_terminating, cluster: a handover to another cluster) and outcome (passed: the slot passed; " +
        "bound: the time it had ran out first; cancelled: a fault or a more urgent one came)",
      labelNames: ["trigger", "outcome"] as const,
      registers,
    }),
    slotWaitSeconds: new Counter({
      name: "forge_manager_slot_wait_seconds_total",
      help: "Seconds planned ends of term spent waiting for leader slots to pass, by trigger",
      labelNames: ["trigger"] as const,
      registers,
    }),
  };
}

/** Sets the sync metrics from a judgement. */
export function recordSync(metrics: Metrics, sync: Sync): void {
  metrics.nodeTipLag.set(sync.lagSlots ?? -1);
  for (const state of SYNC_STATES) metrics.nodeSync.set({ state }, state === sync.state ? 1 : 0);
}
