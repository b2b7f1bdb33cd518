/**
 * The node as the step sees it: the socket wait and the first check at start (stand by with the
 * node stopped, whatever it did before), then every check: a node gone (a leader steps aside), a
 * new process (never given the keys by us: a forging leader places them again), one without the
 * non-producing flag on a replica that does not lead (stopped at once), one that became ready.
 *
 * @module
 */

import type { NodeInfo } from "../core/node_process.ts";
import { bootKeys, type Effect, type ForgingEvent, report } from "./events.ts";
import {
  type ForgingState,
  isForging,
  LEADING_PHASES,
  leadsNow,
  mayForgeNow,
  type NodeView,
  optional,
  processKey,
} from "./state.ts";
import { beginStop, stepAside, stopNode } from "./stopping.ts";

// ---- start-up -----------------------------------------------------------------------------

/** The node socket at start: accepted, or probed again, or given up after the timeout. */
export function socketProbed(
  s: ForgingState,
  accepts: boolean,
  now: number,
  fx: Effect[],
): ForgingState {
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
export function started(
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

// ---- the node -----------------------------------------------------------------------------

function flagOf(node: NodeInfo | undefined): -1 | 0 | 1 {
  return node === undefined ? -1 : node.nonProducing ? 1 : 0;
}

/** A node check's result, in any phase but start-up and done. */
export function nodeChecked(
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
    if (s.cfg.startAsNonProducing) fx.push(bootKeys(s.cfg));
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
  if (!node.nonProducing && !mayForgeNow(next, now) && !next.warnedUnsafe.includes(key)) {
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
    if (!mayForgeNow(next, now) && next.stop === s.stop) next = stopNode(next, "node_restart", fx);
  }
  return next;
}

/** The decoys are in place: at start, the start-up wait ends. */
export function decoysPlaced(s: ForgingState, changed: string[], fx: Effect[]): ForgingState {
  fx.push(report({ kind: "boot_keys_placed", changed, decoys: true }));
  const phase = s.phase;
  return phase.kind === "starting" ? { ...s, phase: { ...phase, provisioned: true } } : s;
}

/**
 * The decoys are due again after a stop: placed, unless a promotion has begun since (queued after
 * its placement they would cover the pool's keys before its SIGHUP) or has made the node forge
 * (the pool's keys stay until the next stop, which brings the decoys back).
 */
export function decoysDue(s: ForgingState, fx: Effect[]): ForgingState {
  const { decoysDueAt: _due, ...rest } = s;
  if (s.phase.kind === "promoting" || s.phase.kind === "forging") return rest;
  fx.push(bootKeys(s.cfg));
  return rest;
}

/** Looks for the node (and, while forging, compares the sources of a rotation). */
export function checkNode(s: ForgingState, fx: Effect[]): ForgingState {
  const view = s.node;
  fx.push({
    kind: "check_node",
    ...optional(
      "readyKey",
      view.kind === "present" && view.ready ? processKey(view.info) : undefined,
    ),
  });
  if (s.phase.kind === "forging" && s.phase.rotation === undefined) {
    fx.push({ kind: "check_sources" });
  }
  return { ...s, nodeCheckBusy: true };
}
