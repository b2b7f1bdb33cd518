/**
 * Promotion and the keys: a leader whose term may forge and whose node is ready names itself in
 * the CardanoLeader status (the claim), arms its guard (with one) and places the keys, then
 * SIGHUPs the node once all are answered; while forging, rotated sources are placed and signalled
 * the same way. A placement or signal that fails makes the leader step aside. Results of another
 * term change nothing.
 *
 * @module
 */

import { mayForge } from "./credential_verdict.ts";
import { type Effect, type ForgingEvent, type PlacePurpose, report } from "./events.ts";
import {
  type ForgingState,
  mayForgeNow,
  nodeOf,
  optional,
  type PlacedKeys,
  readTimeout,
} from "./state.ts";
import { armGuard } from "./guard.ts";
import { stepAside, stopResult } from "./stopping.ts";
import { badCredentials, judge } from "./verdicts.ts";

/** A term that may forge begins its promotion: claim and place, or step aside. */
export function promote(s: ForgingState, term: number, now: number, fx: Effect[]): ForgingState {
  if (s.credentials !== undefined && !mayForge(s.credentials)) {
    return badCredentials(s, s.credentials, now, fx);
  }
  const view = s.node;
  if (view.kind === "present" && view.ready) {
    // The claim goes out first and runs beside the arming and the placement; the SIGHUP waits
    // for all of them.
    fx.push({ kind: "claim_leader", term, timeoutMs: Math.min(readTimeout(s.cfg), 2000) });
    const armed = s.cfg.guard ? armGuard(s, term, fx) : s;
    fx.push({ kind: "place_keys", purpose: "promote" });
    return { ...armed, phase: { kind: "promoting", term, step: "placing" } };
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

/** While forging: rotated sources that validate are placed; others are reported once. */
export function sourcesChecked(
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

/** Keys placed: boot keys end the start-up wait; a promotion or rotation signals next. */
export function keysPlaced(
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
    if (!mayForgeNow(s, now)) return s;
    return signalWhenReady(s, { ...phase, facts: placed }, fx);
  }
  if (purpose === "rotate" && phase.kind === "forging" && phase.rotation?.step === "placing") {
    fx.push({ kind: "signal", reason: "rotate", ...nodeOf(s) });
    return { ...s, phase: { ...phase, rotation: { step: "signalling", facts: placed } } };
  }
  return s;
}

/** The claim (`claimed`) or the guard's arming (`armed`) was answered: signal if all are in. */
export function promotionAnswered(
  s: ForgingState,
  term: number,
  answer: "claimed" | "armed",
  now: number,
  fx: Effect[],
): ForgingState {
  const phase = s.phase;
  if (phase.kind !== "promoting" || phase.term !== term || phase.step !== "placing") return s;
  const next = { ...phase, [answer]: true };
  if (next.facts === undefined) return { ...s, phase: next };
  if (!mayForgeNow(s, now)) return s; // settle() demotes; its stop unlinks the placed keys
  return signalWhenReady(s, next, fx);
}

type Promoting = Extract<ForgingState["phase"], { kind: "promoting" }>;

/** SIGHUP once the keys are placed, the claim answered and (with a guard) the guard armed. */
function signalWhenReady(s: ForgingState, phase: Promoting, fx: Effect[]): ForgingState {
  const ready = phase.facts !== undefined && phase.claimed === true &&
    (!s.cfg.guard || phase.armed === true);
  if (!ready) return { ...s, phase };
  fx.push({ kind: "signal", reason: "promote", ...nodeOf(s) });
  return { ...s, phase: { ...phase, step: "signalling" } };
}

/** A placement that failed: a promotion or rotation steps aside. */
export function keysPlaceFailed(
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

/** A SIGHUP's result: a stop's half, a promotion that now forges, or a rotation done. */
export function signalled(
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
