/**
 * Stopping the node, and what a stop leads to: unlink the keys, then SIGHUP (two effects on the
 * runner's lane, their results matched by the stop's id); once both are in, release the Lease
 * (marked clean only when both succeeded, or the node had exited) and go on as the stop's `after`
 * says: stand by, step aside, shut down or retire. A leader that cannot forge steps aside for
 * two lease durations; shutdown ends the term the same way.
 *
 * @module
 */

import { demoted, termDeadline } from "./election.ts";
import { releaseGlobal } from "./global.ts";
import type { StopReason } from "./stop_reasons.ts";
import { type Effect, report } from "./events.ts";
import {
  type AfterStop,
  DECOY_SETTLE_MS,
  type ForgingState,
  holdsTerm,
  isForging,
  type LeaseRelease,
  nodeOf,
  optional,
  type PendingStop,
  type Phase,
  type Release,
} from "./state.ts";

/** Unlinks the keys, then signals the node (if one is known or found). The phase is unchanged. */
export function stopNode(s: ForgingState, reason: StopReason, fx: Effect[]): ForgingState {
  const id = s.stopCount + 1;
  fx.push({ kind: "remove_keys", stop: id }, { kind: "signal", reason, stop: id, ...nodeOf(s) });
  return { ...s, stopCount: id, stop: { id, reason } };
}

/**
 * Leaves the term (if any) and stops the node; `after` runs once both results are in. With
 * `keepKeys`, the node is a booting, never-signalled, non-producing process that reads the key
 * files at start: nothing is unlinked and the stop counts as confirmed at once.
 */
export function beginStop(
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
  // A stop for the coordination Lease (after: candidate) keeps the local term.
  const wasLeading = after.kind !== "candidate" && s.election.term !== undefined;
  const wasForging = opts.wasForging ?? (isForging(s) || s.phase.kind === "promoting");
  const probationLeftMs = wasLeading ? s.election.term!.forgeFrom - now : 0;
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
    // The booting node was never signalled: the decoys can replace the pool's keys at once.
    next = { ...next, stop: undefined, stopConfirmed: true, ...decoysAfterStop(s, now, 0) };
    return finishStop(next, true, now, fx);
  }
  return stopNode(next, reason, fx);
}

/** A leader that cannot forge hands the lease on, and waits before competing again. */
export function stepAside(
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

/** One half of stop `id` (unlink or SIGHUP); with both in, the stop finishes. */
export function stopResult(
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
  // Unlinked and signalled: the decoys come back once the node has read the folder (or at once
  // when no node runs to read it). A confirmed stop leaves no keys for the guard to guard; an
  // unconfirmed one keeps it armed.
  const settle = merged.signal === "exited" || merged.signal === "none" ? 0 : DECOY_SETTLE_MS;
  const stopped: ForgingState = {
    ...s,
    stop: undefined,
    stopConfirmed: confirmed,
    ...(confirmed ? { guardWanted: false } : {}),
    ...decoysAfterStop(s, now, settle),
  };
  return finishStop(stopped, confirmed, now, fx);
}

/**
 * With decoys, when a stop's end places them again. The latest stop decides: only the node it
 * signalled (or found gone) can still be reading the folder.
 */
function decoysAfterStop(s: ForgingState, now: number, settleMs: number): { decoysDueAt?: number } {
  return s.cfg.decoys ? { decoysDueAt: now + settleMs } : {};
}

function finishStop(s: ForgingState, confirmed: boolean, now: number, fx: Effect[]): ForgingState {
  const phase = s.phase;
  if (phase.kind !== "stopping") return s;
  if (phase.wasForging) {
    fx.push(report({ kind: "forging_disabled", reason: phase.reason, confirmed }));
  }
  const release = phase.release;
  s = releaseGlobalAfterStop(s, phase, confirmed, now, fx);
  if (release !== undefined) {
    const effect: LeaseRelease = {
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
      if (
        phase.after.provision && s.cfg.startAsNonProducing && !s.cfg.decoys &&
        s.node.kind !== "present"
      ) {
        // A node that is not running needs the key files to boot again (it boots non-producing);
        // with decoys, every stop's end places them (decoysAfterStop).
        fx.push({ kind: "place_keys", purpose: "boot" });
      }
      return { ...s, phase: { kind: "stepped_aside", until: s.election.notBefore ?? now } };
    case "shutdown":
      return { ...s, phase: release !== undefined ? { kind: "releasing" } : { kind: "done" } };
    case "retire":
      return { ...s, phase: { kind: "retired" } };
    case "candidate":
      // The local term goes on (unless it ended meanwhile): the cluster's candidate again.
      return {
        ...s,
        phase: s.election.term !== undefined
          ? { kind: "awaiting_node", term: s.term }
          : { kind: "standby" },
      };
  }
}

/**
 * Across clusters, a stop's end releases the coordination Lease (clean only if the stop is
 * confirmed): every end of a local term does, handing it to this cluster (the local successor
 * may take it at once, another cluster waits as for any release); a stop for the Lease itself
 * does as `phase.globalRelease` says.
 */
function releaseGlobalAfterStop(
  s: ForgingState,
  phase: Extract<Phase, { kind: "stopping" }>,
  confirmed: boolean,
  now: number,
  fx: Effect[],
): ForgingState {
  if (s.global?.election.term === undefined) return s;
  if (phase.after.kind !== "candidate") {
    return releaseGlobal(s, confirmed, s.cfg.global!.cluster, now, fx);
  }
  const planned = phase.globalRelease;
  if (planned === undefined) return s;
  return releaseGlobal(s, confirmed, planned.handoverTo, now, fx, planned.holdOffMs ?? 0);
}

/**
 * Our Pod is being deleted: a term ends at once (released clean to any standby), and the process
 * never competes again (`retired`), whatever phase it is in.
 */
export function endTermAtDeletion(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const phase = s.phase;
  if (holdsTerm(s)) {
    const deadline = termDeadline(s.election, s.cfg);
    const left = (deadline ?? 0) - now;
    return beginStop(s, "pod_terminating", { kind: "retire" }, now, fx, {
      releaseTimeoutMs: Math.max(500, Math.min(3000, left > 0 ? left : 3000)),
    });
  }
  if (phase.kind === "stopping" && phase.after.kind !== "shutdown") {
    return { ...s, phase: { ...phase, after: { kind: "retire" } } };
  }
  if (phase.kind === "standby" || phase.kind === "stepped_aside") {
    return { ...s, phase: { kind: "retired" } };
  }
  return s;
}

/** Shutdown: a term ends with its stop and a release; otherwise the process is done. */
export function shutdown(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const phase = s.phase;
  switch (phase.kind) {
    case "starting":
    case "standby":
    case "stepped_aside":
    case "retired":
      if (s.election.term === undefined) {
        // An acquire in flight may still win. Wait for its answer and release what it won:
        // left held by a process that is gone, the Lease would make everyone wait a whole term.
        const phase: Phase = s.leaseBusy?.op === "write"
          ? { kind: "releasing", afterWrite: true }
          : { kind: "done" };
        return { ...s, phase };
      }
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
