/**
 * The step's verdicts on the credentials and on the node's own account: a set placed for forging
 * is judged again as time passes (a certificate that expires stops forging), a leader whose
 * certificate cannot forge steps aside, and the node's metrics since the last signal confirm (or
 * not) the forging state asked for.
 *
 * @module
 */

import type { CredentialFacts } from "../cardano/cardano_keys.ts";
import { type CredentialCheck, judgeCredentials, mayForge } from "./credential_verdict.ts";
import { confirmForging, type ForgingConfirmation } from "./forging_confirmation.ts";
import { type Effect, type ForgingEvent, report } from "./events.ts";
import { type ForgingState, isForging, MAX_SAMPLES, optional } from "./state.ts";
import { stepAside } from "./stopping.ts";
import { syncOf, tipLag } from "./sync.ts";
import type { NodeMetricsSample } from "../node/node_metrics.ts";

// ---- the credentials' verdict and the node's own account --------------------------------

/** Judges a set, or undefined when KES checks are off (or the clock is before Shelley). */
export function judge(
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
export function badCredentials(
  s: ForgingState,
  check: CredentialCheck,
  now: number,
  fx: Effect[],
): ForgingState {
  return stepAside(s, check.reason, now, fx, { provision: false, reason: "bad_credentials" });
}

/** The sources judged again: a forging set that can no longer forge steps aside. */
export function credentialsChecked(
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

/**
 * A reading of the node's metrics: the node's own account of the forging state asked for, and its
 * tip (sync.ts).
 */
export function nodeMetricsRead(
  s: ForgingState,
  e: Extract<ForgingEvent, { kind: "node_metrics_read" }>,
  now: number,
  fx: Effect[],
): ForgingState {
  s = tipRead(s, e.sample, now, fx);
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

/** The tip in a reading (kept until a newer one has it; it ages out), and the sync it makes. */
function tipRead(
  s: ForgingState,
  sample: NodeMetricsSample | undefined,
  now: number,
  fx: Effect[],
): ForgingState {
  if (s.cfg.maxTipLagSlots === undefined) return s;
  const lagSlots = sample === undefined ? undefined : tipLag(s, sample);
  const next = lagSlots === undefined ? s : { ...s, tip: { lagSlots, at: now } };
  const sync = syncOf(next, now);
  fx.push(report({ kind: "sync_judged", sync, changed: sync.state !== s.syncReported }));
  return { ...next, syncReported: sync.state };
}
