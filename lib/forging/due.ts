/**
 * When each time-driven rule of the step is next due (monotonic ms), or undefined while it is not
 * (its request in flight, not configured, not in this phase). `settle` (`step.ts`) acts on a
 * rule whose time has come; `nextWake` wakes the loop at the earliest of them. Each rule is
 * written once, here, so the two cannot disagree. An undefined `next...At` is due at once. While
 * starting only the socket's rule runs; once done, none.
 *
 * @module
 */

import { controlOf, type ForgingState, holdsTerm, keysMoving } from "./state.ts";
import { localLeader } from "./global_cluster.ts";
import { returnDueAt } from "./preferred.ts";

type Rule = (s: ForgingState) => number | undefined;

/** Whether the start-up is over and the process not done: every rule but the socket's. */
function running(s: ForgingState): boolean {
  return s.phase.kind !== "starting" && s.phase.kind !== "done";
}

/** Whether the election across clusters runs its requests now: configured, no keys moving. */
function globalRuns(s: ForgingState): boolean {
  return running(s) && s.global !== undefined && !keysMoving(s);
}

/** Whether this cluster's local leader does its part across clusters now. */
function clusterWork(s: ForgingState): boolean {
  return globalRuns(s) && localLeader(s);
}

/** Whether the operations' requests run now: configured, and no keys moving. */
function requestsRun(s: ForgingState): boolean {
  return running(s) && s.cfg.operations === true && !keysMoving(s);
}

/** Every time-driven rule, by name. */
export const DUE = {
  /** A standby that is not synced stops deferring its acquisition to a synced one (sync.ts). */
  deferral: (s) =>
    running(s) && s.election.term === undefined && s.leaseBusy === undefined
      ? s.acquireDeferral
      : undefined,
  /** Probing the node socket at start, after the boot keys are placed. */
  socket: (s) => {
    const p = s.phase;
    return p.kind === "starting" && p.provisioned && p.socket === "waiting" ? p.probeAt : undefined;
  },
  /** A follower's read of the Lease (a leader learns from its own writes' answers). */
  lease: (s) =>
    running(s) && s.election.term === undefined && s.leaseBusy === undefined && !keysMoving(s)
      ? s.nextPollAt
      : undefined,
  /** Looking for the node (and, while forging, comparing the sources of a rotation). */
  node: (s) => running(s) && !s.nodeCheckBusy ? s.nextNodeCheckAt : undefined,
  /** Judging the source credentials again (the KES window moves with time). */
  credentials: (s) =>
    running(s) && s.cfg.kesTiming !== undefined && !s.credentialCheckBusy
      ? s.nextCredentialCheckAt
      : undefined,
  /** Reading the node's metrics (its own account of forging). */
  metrics: (s) => running(s) && s.cfg.nodeMetrics && !s.metricsBusy ? s.nextMetricsAt : undefined,
  /** FENCE=guard: the previous holder's guard bound, after which the fence counts as proven. */
  fenceBound: (s) => s.phase.kind === "fencing" ? s.phase.boundAt : undefined,
  /** Placing the decoys again after a stop, once no stop is in flight (`cfg.decoys`). */
  decoys: (s) => running(s) && s.stop === undefined ? s.decoysDueAt : undefined,
  /** The end of stepping aside. */
  aside: (s) => s.phase.kind === "stepped_aside" ? s.phase.until : undefined,
  /** Reading the CardanoLeader's spec (the operator's requests). */
  control: (s) =>
    requestsRun(s) && !s.ops?.controlBusy ? s.ops?.nextControlReadAt ?? -Infinity : undefined,
  /** Reading our own Pod while leading (FENCE=pod): its deletion ends the term. */
  pod: (s) => {
    const ops = s.ops ?? {};
    return requestsRun(s) && s.cfg.fence && holdsTerm(s) && !ops.podTerminating &&
        !ops.podCheckBusy
      ? ops.nextPodCheckAt ?? -Infinity
      : undefined;
  },
  /** Publishing this replica's state again, unchanged (a heartbeat; a change goes out at once). */
  publish: (s) => requestsRun(s) ? s.ops?.nextPublishAt ?? -Infinity : undefined,
  /** Reading the pool's leader schedule again (it changes with each epoch). */
  schedule: (s) =>
    running(s) && s.cfg.schedule !== undefined && !s.scheduleBusy
      ? s.nextScheduleReadAt ?? -Infinity
      : undefined,
  /** A planned end of term waiting for one of the pool's slots: when it runs. */
  planned: (s) => running(s) ? s.planned?.until : undefined,
  /** The return to the preferred replica, once it has stood by ready and synced long enough. */
  preferred: (s) => returnDueAt(s),
  /** The end of an operator's pause with an `until`, once its start was seen. */
  pauseEnd: (s) => {
    const endsAt = controlOf(s)?.pause?.endsAt;
    return running(s) && s.cfg.operations && s.ops?.pauseSeen && endsAt !== undefined
      ? endsAt
      : undefined;
  },
  /** A follower's read of the coordination Lease (a holder learns from its own writes). */
  globalRead: (s) =>
    globalRuns(s) && s.global!.busy === undefined && s.global!.election.term === undefined
      ? s.global!.nextReadAt
      : undefined,
  /** The local leader's read of the other clusters' entries and the operator's requests. */
  membersRead: (s) =>
    clusterWork(s) && !s.global!.membersBusy ? s.global!.nextMembersReadAt : undefined,
  /** Reading this cluster's CardanoForgeCluster (the local leader's). */
  clusterRead: (s) =>
    clusterWork(s) && !s.global!.clusterBusy ? s.global!.nextClusterReadAt : undefined,
  /** The health check its spec asks for (the local leader's). */
  health: (s) =>
    clusterWork(s) && !s.global!.healthBusy && s.global!.spec?.healthCheck?.enabled === true
      ? s.global!.nextHealthAt
      : undefined,
  /** This cluster's entry across clusters and its resource's status, again unchanged. */
  publishCluster: (s) =>
    clusterWork(s) && s.global!.specRead
      ? Math.min(s.global!.nextPublishAt, s.global!.nextReportAt)
      : undefined,
} satisfies Record<string, Rule>;

/** Whether a rule's time `at` has come by `now`. */
export function isDue(at: number | undefined, now: number): boolean {
  return at !== undefined && now >= at;
}
