/**
 * Whether a credential set may forge now, judged from its public facts: the cold key's
 * signature, the pool id and the KES window. The one verdict the sidecar, its metrics and
 * `forge-manager check-credentials` all use, so they can never disagree.
 *
 * Verdicts in the order they are checked (the first that applies wins):
 * - `bad_signature`: the pool's cold key did not sign this certificate; the chain rejects every
 *   block it would forge.
 * - `pool_mismatch`: the certificate belongs to another pool than `POOL_ID`.
 * - `not_yet_valid`: the current KES period is before the certificate's start period.
 * - `expired`: the current KES period is at or past start + maxKESEvolutions.
 * - `valid`: none of the above.
 *
 * Pure: needs no permissions.
 *
 * @module
 */

import type { CredentialFacts } from "../cardano/cardano_keys.ts";
import { type KesPeriodStatus, kesPeriodStatus, type KesTiming } from "../cardano/kes_period.ts";

/** The verdicts, good first. */
export const CREDENTIAL_VERDICTS = [
  "valid",
  "expired",
  "not_yet_valid",
  "bad_signature",
  "pool_mismatch",
] as const;

/** One of {@linkcode CREDENTIAL_VERDICTS}. */
export type CredentialVerdict = typeof CREDENTIAL_VERDICTS[number];

/** The facts the verdict needs (all public; `validateCredentialSet` returns them). */
export type VerdictFacts = Pick<
  CredentialFacts,
  "issueCounter" | "kesStartPeriod" | "hotKeyId" | "poolId" | "signatureValid"
>;

/** A judged credential set: the verdict, why, and the numbers behind it. */
export interface CredentialCheck {
  verdict: CredentialVerdict;
  /** One sentence for logs, status and the command's report; never key material. */
  reason: string;
  issueCounter: number;
  kesStartPeriod: number;
  hotKeyId: string;
  poolId: string;
  /** The configured pool id, if any (hex). */
  expectedPoolId: string | undefined;
  /** The KES window, periods left and expiry. */
  kes: KesPeriodStatus;
  /** `kes.expiresAtMs` as a Unix time in seconds. */
  expiresAtUnix: number;
}

/** What "now" is for the verdict: the wall clock, and the node's KES period when known. */
export interface VerdictTime {
  nowMs: number;
  /** `cardano_node_metrics_currentKESPeriod_int` when the node's metrics were read. */
  nodeKesPeriod?: number | undefined;
}

/**
 * Judges a credential set. Pure.
 *
 * @param facts the set's public facts (from `validateCredentialSet` or `CredentialStore.check`)
 * @param timing the network's KES timing
 * @param now the wall clock, and the node's current KES period when its metrics were read
 * @param expectedPoolId `POOL_ID` as 56 lower-case hex digits, if configured
 * @throws {RangeError} only when no node period is given and the clock is before the Shelley era
 */
export function judgeCredentials(
  facts: VerdictFacts,
  timing: KesTiming,
  now: VerdictTime,
  expectedPoolId?: string,
): CredentialCheck {
  const kes = kesPeriodStatus(timing, facts.kesStartPeriod, now);
  const period = `${
    kes.periodSource === "node" ? "the node's" : "the clock's"
  } KES period ${kes.currentPeriod}`;
  const window = `[${kes.startPeriod}, ${kes.endPeriod})`;
  let verdict: CredentialVerdict;
  let reason: string;
  if (!facts.signatureValid) {
    verdict = "bad_signature";
    reason = "the cold key's signature over the operational certificate does not verify " +
      "(the certificate was altered, or not issued by this cold key)";
  } else if (expectedPoolId !== undefined && facts.poolId !== expectedPoolId) {
    verdict = "pool_mismatch";
    reason = `the certificate's cold key is pool ${facts.poolId}, POOL_ID is ${expectedPoolId}`;
  } else if (kes.state === "not_yet_valid") {
    verdict = "not_yet_valid";
    reason = `${period} is before the certificate's window ${window}`;
  } else if (kes.state === "expired") {
    verdict = "expired";
    reason = `${period} is past the certificate's window ${window}: it expired ${
      new Date(kes.expiresAtMs).toISOString()
    }`;
  } else {
    verdict = "valid";
    reason = `${period} is inside the certificate's window ${window}, ${kes.remainingPeriods} ` +
      `period(s) left, expires ${new Date(kes.expiresAtMs).toISOString()}`;
  }
  return {
    verdict,
    reason,
    issueCounter: facts.issueCounter,
    kesStartPeriod: facts.kesStartPeriod,
    hotKeyId: facts.hotKeyId,
    poolId: facts.poolId,
    expectedPoolId,
    kes,
    expiresAtUnix: Math.floor(kes.expiresAtMs / 1000),
  };
}

/** Whether a judged set may forge: only a `valid` one. Pure. */
export function mayForge(check: CredentialCheck): boolean {
  return check.verdict === "valid";
}
