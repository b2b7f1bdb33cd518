/**
 * Does the node confirm the forging state it was asked for? A pure judgement over samples of
 * the node's metrics (lib/node/node_metrics.ts), taken after the signal, oldest first.
 *
 * No single series is reliable, so several are weighed, strongest first:
 * 1. The leader and forged counters (`Forge_node_is_leader`, `Forge_forged`): a node that led a
 *    slot or forged a block since the first sample certainly forges. They rarely move (a pool
 *    leads a few slots an epoch), so their silence proves nothing.
 * 2. The KES gauges (`currentKESPeriod`, ...): absent until forging credentials were loaded at
 *    least once. Absent means "never loaded"; present means little, because the node keeps the
 *    last values after forging is disabled (cardano-node #5751).
 * 3. Leadership checks (`Forge_about_to_lead`): the forging loop counts one a slot while it
 *    runs, so a counter that stands still while the tip's slot moves on means the loop does not
 *    run. But node 11.0.1 started with `--start-as-non-producing-node` counts them anyway
 *    (cardano-node #6576).
 * 4. The `forging_enabled` gauge: reads 1 at a first non-producing start (#6113, #6576) and has
 *    been stale after SIGHUP; a tie-breaker only.
 *
 * A verdict the series cannot support is `unknown`, with the reason, never a guess.
 *
 * Pure: needs no permissions.
 *
 * @module
 */

import type { NodeMetricsSample } from "../node/node_metrics.ts";

/** The states, as exported in `forge_manager_node_forging_confirmed{state}`. */
export const CONFIRMATION_STATES = ["confirmed", "mismatch", "unknown"] as const;

/** One of {@linkcode CONFIRMATION_STATES}. */
export type ConfirmationState = typeof CONFIRMATION_STATES[number];

/** The judgement and why, in one sentence fit for a log line and a status condition. */
export interface ForgingConfirmation {
  state: ConfirmationState;
  why: string;
}

/** Options of {@linkcode confirmForging}. */
export interface ConfirmOptions {
  /**
   * How many slots the tip must advance between the first and last sample before a standing
   * leadership-check counter counts as evidence (default 5).
   */
  minSlots?: number;
}

/** A counter's increase from `first` to `last`; undefined if it went down (a node restart). */
function increase(first: number | undefined, last: number | undefined): number | undefined {
  // A counter the node has not exported yet has not counted anything yet.
  const a = first ?? 0;
  const b = last ?? 0;
  return b >= a ? b - a : undefined;
}

/**
 * Judges whether the node confirms `asked` (true: forging; false: not forging). Pure.
 *
 * @param asked the state the node was signalled into
 * @param samples readings of the node's metrics since the signal, oldest first
 */
export function confirmForging(
  asked: boolean,
  samples: readonly NodeMetricsSample[],
  opts: ConfirmOptions = {},
): ForgingConfirmation {
  const minSlots = opts.minSlots ?? 5;
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (first === undefined || last === undefined) {
    return { state: "unknown", why: "no reading of the node's metrics (endpoint unreachable?)" };
  }
  const led = increase(first.nodeIsLeader, last.nodeIsLeader);
  const forged = increase(first.forged, last.forged);
  const checks = increase(first.aboutToLead, last.aboutToLead);
  if (led === undefined || forged === undefined || checks === undefined) {
    return { state: "unknown", why: "the node's counters went down between readings (restart?)" };
  }
  const slots = first.slotNum !== undefined && last.slotNum !== undefined
    ? last.slotNum - first.slotNum
    : undefined;
  const kesLoaded = last.currentKESPeriod !== undefined ||
    last.remainingKESPeriods !== undefined || last.opcertStartKESPeriod !== undefined;
  const gauge = last.forgingEnabled;
  const gaugeText = gauge === undefined
    ? "forging_enabled is not exported"
    : `forging_enabled reads ${gauge}`;
  // Whether the forging loop runs, when enough slots passed to tell.
  const loop = slots === undefined || slots < minSlots ? undefined : checks > 0;
  const slotText = slots === undefined
    ? "the node exports no slotNum"
    : `the tip advanced ${slots} slot(s), fewer than the ${minSlots} needed to judge`;
  const activity = led > 0 || forged > 0
    ? `the node led ${led} slot(s) and forged ${forged} block(s)`
    : undefined;

  if (asked) {
    if (activity !== undefined) return { state: "confirmed", why: activity };
    if (!kesLoaded) {
      return {
        state: "mismatch",
        why: `no KES gauges: the node has not loaded forging credentials (${gaugeText})`,
      };
    }
    if (loop === true) {
      return {
        state: "confirmed",
        why: `${checks} leadership check(s) in ${slots} slot(s)` +
          (gauge === 0 ? `; ${gaugeText}, a stale gauge (cardano-node #5751)` : ""),
      };
    }
    if (loop === false) {
      return {
        state: "mismatch",
        why:
          `no leadership check in ${slots} slot(s): the forging loop does not run (${gaugeText})`,
      };
    }
    return { state: "unknown", why: `${slotText}; ${gaugeText}` };
  }

  if (activity !== undefined) {
    return { state: "mismatch", why: `${activity} although it should not forge` };
  }
  if (!kesLoaded) {
    return {
      state: "confirmed",
      why: "no KES gauges: the node holds no forging credentials" +
        (gauge === 1 ? `; ${gaugeText}, a known-wrong gauge (cardano-node #6113, #6576)` : ""),
    };
  }
  if (loop === false) {
    return {
      state: "confirmed",
      why: `no leadership check in ${slots} slot(s)` +
        (gauge === 1 ? `; ${gaugeText}, a stale gauge (cardano-node #6113)` : ""),
    };
  }
  if (loop === true) {
    if (gauge === 0) {
      return {
        state: "unknown",
        why: `${checks} leadership check(s) in ${slots} slot(s) while forging_enabled reads 0: ` +
          "the series disagree",
      };
    }
    return {
      state: "mismatch",
      why: `${checks} leadership check(s) in ${slots} slot(s) and ${gaugeText}: the node ` +
        "forges although it should not (node 11.0.1 started non-producing and never signalled " +
        "looks the same, cardano-node #6576)",
    };
  }
  return { state: "unknown", why: `${slotText}; ${gaugeText}` };
}
