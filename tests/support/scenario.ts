/**
 * Helpers shared by the integration tests, the fault suite, the demo and the benchmark: who
 * forges now (from the simulated nodes' own records), waiting for exactly one forger, and the
 * overlap and takeover figures of a run.
 *
 * @module
 */

import {
  type ForgingInterval,
  forgingIntervals,
  nowMs,
  readForgingRecords,
  takeoverMs,
  totalOverlapMs,
} from "./forging_log.ts";
import type { Pod } from "./pod.ts";
import { waitUntil } from "./wait.ts";

/** Forging intervals of every pod's node so far. */
export async function intervalsOf(pods: readonly Pod[]): Promise<ForgingInterval[]> {
  const records = await readForgingRecords(Object.fromEntries(pods.map((p) => [p.name, p.record])));
  return forgingIntervals(records, { until: nowMs() });
}

/** Names of the pods whose node forges now, according to the nodes' records. */
export async function forgersNow(pods: readonly Pod[]): Promise<string[]> {
  const intervals = await intervalsOf(pods);
  return [...new Set(intervals.filter((i) => i.endedBy === "open").map((i) => i.node))];
}

/** Waits until exactly one pod forges (other than `excluding`) and returns it. */
export function waitForSingleForger(
  pods: readonly Pod[],
  timeoutMs: number,
  excluding: readonly string[] = [],
): Promise<Pod> {
  return waitUntil(`exactly one forger (not ${excluding.join(", ") || "-"})`, async () => {
    const forgers = await forgersNow(pods);
    if (forgers.length !== 1 || excluding.includes(forgers[0]!)) return undefined;
    return pods.find((p) => p.name === forgers[0]);
  }, timeoutMs);
}

/**
 * The figures of a fault: overlap over the whole run, and takeover from `faultAt` until a node
 * other than the faulty pod's (`faulty`) forges.
 */
export async function figures(
  pods: readonly Pod[],
  faultAt: number,
  faulty: Pod,
): Promise<{ overlapMs: number; takeoverMs: number | null }> {
  const intervals = await intervalsOf(pods);
  return {
    overlapMs: totalOverlapMs(intervals),
    takeoverMs: takeoverMs(intervals, faultAt, [faulty.name]),
  };
}

export { nowMs };
