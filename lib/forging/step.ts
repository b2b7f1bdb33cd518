/**
 * Forging as a pure state machine: `step(state, event, now) -> { state, effects }`, with no
 * await, no timers and no `Deno.*`. The loop (`runtime/forge_manager.ts`) is its one writer: it
 * feeds it events (timer ticks, Lease reads, writes and watch events, fence results, node checks,
 * the results of its own effects, shutdown) and hands the effects to the runner
 * (`runtime/effects.ts`), which performs them in order and turns every result into the next
 * event.
 *
 * This file is the dispatch: each event goes to the concern it belongs to (`lease.ts`,
 * `node.ts`, `promotion.ts`, `stopping.ts`, `verdicts.ts`, `operations.ts`), then `settle` runs
 * every rule that depends on time (`due.ts`). The state is `state.ts`, the events, effects and
 * transitions `events.ts`.
 *
 * Every rule that decides whether this replica's node may forge lives in this folder, in these
 * files or in the election step they drive (`election.ts`):
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

import { decide, initialState, termDeadline } from "./election.ts";
import { DUE, isDue } from "./due.ts";
import {
  bootKeys,
  type Effect,
  type ForgingEvent,
  isOpsEvent,
  report,
  type Step,
} from "./events.ts";
import {
  afterRelease,
  fenceByBound,
  fenceDone,
  leaseWriteFailed,
  leaseWritten,
  observed,
  readLease,
  renewNow,
  settleElection,
} from "./lease.ts";
import { guardEvent } from "./guard.ts";
import { globalEvent, globalWake, settleGlobal } from "./global.ts";
import { isGlobalEvent } from "./global_events.ts";
import { initialGlobal } from "./global_state.ts";
import { checkNode, decoysDue, decoysPlaced, nodeChecked, socketProbed } from "./node.ts";
import {
  applyOps,
  beforeEvent,
  mayPromote,
  pause,
  retireIfDeleted,
  settleRequests,
} from "./operations.ts";
import {
  keysPlaced,
  keysPlaceFailed,
  promote,
  promotionAnswered,
  signalled,
  sourcesChecked,
} from "./promotion.ts";
import {
  CREDENTIAL_CHECK_MS,
  type ForgingConfig,
  type ForgingState,
  mayForgeNow,
  NODE_METRICS_MS,
  nodeCheckInterval,
} from "./state.ts";
import { stopResult } from "./stopping.ts";
import { plan, SCHEDULE_READ_MS, scheduleRead, settlePlanned } from "./slot_wait.ts";
import { credentialsChecked, nodeMetricsRead } from "./verdicts.ts";
import { settleSync, syncHoldsPromotion } from "./sync.ts";
import { settlePreferred } from "./preferred.ts";

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
    ...(cfg.global !== undefined ? { global: initialGlobal(cfg.global, now) } : {}),
  };
  const effects: Effect[] = [];
  // The node exits at boot without credential files, even when non-producing.
  if (cfg.startAsNonProducing) effects.push(bootKeys(cfg));
  if (cfg.socketCheck) effects.push(report({ kind: "waiting_for_socket" }));
  return settle(state, now, effects);
}

/** Advances the machine by one event. Pure: the same inputs always give the same result. */
export function step(state: ForgingState, event: ForgingEvent, now: number): Step {
  const fx: Effect[] = [];
  const next = apply(state, event, now, fx);
  return settle(next, now, fx);
}

/**
 * When the loop must wake up next without an event (monotonic), or undefined for never: the
 * renew deadline always counts, whatever is in flight, and so do the election's wait and every
 * rule of {@linkcode DUE}.
 */
export function nextWake(state: ForgingState, now: number): number | undefined {
  const phase = state.phase;
  if (phase.kind === "done") return undefined;
  if (phase.kind === "starting") return DUE.socket(state);
  const times: (number | undefined)[] = [termDeadline(state.election, state.cfg)];
  if (state.leaseBusy === undefined) {
    const d = decide(state.election, now, state.cfg);
    if (d.kind === "wait") times.push(d.until);
  }
  for (const rule of Object.values(DUE)) times.push(rule(state));
  times.push(...globalWake(state, now));
  const due = times.filter((t): t is number => t !== undefined);
  return due.length === 0 ? undefined : Math.min(...due);
}

// ---- events -------------------------------------------------------------------------------

function apply(s: ForgingState, e: ForgingEvent, now: number, fx: Effect[]): ForgingState {
  if (isOpsEvent(e)) return applyOps(s, e, now, fx);
  if (isGlobalEvent(e)) return globalEvent(s, e, now, fx);
  s = beforeEvent(s, e, fx);
  switch (e.kind) {
    case "tick":
      return s;
    case "shutdown":
      // A forging leader's shutdown may wait for one of the pool's slots (SHUTDOWN_SLOT_WAIT).
      return plan(s, { trigger: "shutdown" }, now, fx);
    case "schedule_read":
      return scheduleRead(
        { ...s, scheduleBusy: false, nextScheduleReadAt: now + SCHEDULE_READ_MS },
        e,
        now,
        fx,
      );
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
      return promotionAnswered(s, e.term, "claimed", now, fx);
    case "guard_armed":
      return promotionAnswered(s, e.term, "armed", now, fx);
    case "guard_arm_failed":
    case "guard_link":
    case "guard_fired":
    case "guard_state":
      return guardEvent(s, e, now, fx);
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
    case "decoys_placed":
      return decoysPlaced(s, e.changed, fx);
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
        now,
        fx,
      );
  }
}

// ---- what is due now ----------------------------------------------------------------------

/** Runs every rule that depends on time: the election's decision, polls, node checks, promotion. */
function settle(s: ForgingState, now: number, fx: Effect[]): Step {
  let next = s;
  const phase = next.phase;
  if (phase.kind === "done") return { state: next, effects: fx };
  if (phase.kind === "starting") {
    if (!phase.provisioned) return { state: next, effects: fx };
    if (isDue(DUE.socket(next), now)) {
      fx.push({ kind: "probe_socket" });
      next = { ...next, phase: { ...phase, socket: "probing" } };
    } else if (phase.socket === "accepted" && !next.nodeCheckBusy) {
      fx.push({ kind: "check_node" });
      next = { ...next, nodeCheckBusy: true };
    }
    return { state: next, effects: fx };
  }

  // The election, a fence proven by the previous holder's guard bound, a follower's read; the
  // election across clusters.
  next = settleElection(next, now, fx);
  next = settleGlobal(next, now, fx);
  if (isDue(DUE.fenceBound(next), now)) next = fenceByBound(next, fx);
  // The node (and, while forging, the sources of a rotation).
  if (isDue(DUE.node(next), now)) next = checkNode(next, fx);
  // The credentials' verdict (the KES window moves with time) and the node's own account.
  if (isDue(DUE.credentials(next), now)) {
    fx.push({ kind: "check_credentials" });
    next = { ...next, credentialCheckBusy: true };
  }
  if (isDue(DUE.metrics(next), now)) {
    fx.push({ kind: "read_node_metrics" });
    next = { ...next, metricsBusy: true };
  }
  // The pool's leader schedule, read again as it may change (a new epoch's).
  if (isDue(DUE.schedule(next), now)) {
    fx.push({ kind: "read_schedule" });
    next = { ...next, scheduleBusy: true };
  }
  // An operator's pause begins or ends; a standby whose Pod is being deleted (seen while it was
  // still starting, say) never competes again.
  if (next.cfg.operations) next = retireIfDeleted(pause(next, now, fx));
  // A planned end of term that waited for one of the pool's slots, or whose term a fault ended.
  next = settlePlanned(next, now, fx);
  // A leader whose node lags hands over to a synced standby, or says it forges unsynced; the
  // preferred replica gets the term back once it has been ready and synced long enough.
  next = settleSync(next, now, fx);
  next = settlePreferred(next, now, fx);

  // Stepping aside ends; promotion begins.
  if (isDue(DUE.aside(next), now)) next = { ...next, phase: { kind: "standby" } };
  const p = next.phase;
  if (
    p.kind === "awaiting_node" && mayForgeNow(next, now) && mayPromote(next, now) &&
    !syncHoldsPromotion(next, now)
  ) {
    // Not while the Lease still says this term owes a proof: a successor would prove the earlier
    // holder only, not us.
    if (next.leaseCarries === undefined) next = promote(next, p.term, now, fx);
    else next = renewNow(next, now, fx);
  }
  // The decoys come back after a stop, unless a promotion has begun (its keys take their place;
  // queued after the promotion's placement, they would cover the pool's keys before the SIGHUP).
  if (isDue(DUE.decoys(next), now)) next = decoysDue(next, fx);
  // A follower's read, last: a term that ended above (a promotion that stepped aside, a planned
  // handover) reads as a follower at once.
  if (isDue(DUE.lease(next), now)) next = readLease(next, now, fx);
  // Requests for the operations (the CardanoLeader's spec, our Pod) and this replica's published
  // state: after the promotion, so that none of them starts beside its placement.
  next = settleRequests(next, now, fx);
  return { state: next, effects: fx };
}
