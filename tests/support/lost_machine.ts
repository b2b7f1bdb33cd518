/**
 * The leader's machine lost to the cluster, four ways, on a {@linkcode FaultCluster} whose pods run
 * the guard with FENCE=guard: used by the fault suite (tests/faults/lost_machine_test.ts, which
 * asserts the bounds) and by the benchmark (`deno task bench --lost`, which reports them). In
 * each, the leader's simulated kubelet stops reporting, so no API proof can come; the takeover
 * rests on the guard's bound alone. After each, the machine comes back and its pod is replaced.
 *
 * @module
 */

import { type FaultCluster, type Figures, nowMs } from "./fault_cluster.ts";
import { sleep } from "./wait.ts";

/** The shipped timings, with the guard's fence. */
export const SHIPPED_GUARDED = {
  FENCE: "guard",
  LEASE_DURATION: "15",
  RENEW_DEADLINE: "10",
  ACQUIRE_DELAY: "2",
  SLEEP_INTERVAL: "5",
};

/** LEASE_DURATION + ACQUIRE_DELAY + a few seconds (the watch, the write, the promotion). */
export const TAKEOVER_BOUND_MS = (15 + 2 + 5) * 1000;
/** RENEW_DEADLINE + GUARD_REACTION: the old node has stopped by then (plus a second of slack). */
export const STOP_BOUND_MS = (10 + 1 + 1) * 1000;

/** One way to lose the leader's machine. */
export interface LostMachine {
  /** The row's name in the tables. */
  scenario: string;
  /** What stopped the old node. */
  note: string;
  /** Cuts the leader `key` (its pod `pod`) off; called at the fault's time. */
  fault(c: FaultCluster, key: string, pod: string): Promise<void>;
  /** Undoes what the machine can undo before it is restored (a frozen sidecar thaws). */
  after?(c: FaultCluster, key: string): void;
}

/** The four scenarios of issue 17, (a) to (d). */
export const LOST_MACHINES: readonly LostMachine[] = [
  {
    scenario: "11a machine powered off",
    note: "no API proof possible",
    async fault(c, key, pod) {
      c.kubelet.partition(pod);
      await c.current(key).pod.kill(); // every process of the machine, at once
      await c.deletePod(key); // as the node lifecycle controller would, after its toleration
    },
  },
  {
    scenario: "11b machine cut off, processes running",
    note: "its own deadline and its guard stopped it",
    fault(c, key, pod) {
      c.proxy(key).blackhole();
      c.kubelet.partition(pod);
      return Promise.resolve();
    },
  },
  {
    scenario: "11c cut off, sidecar frozen",
    note: "its guard stopped it",
    fault(c, key, pod) {
      c.proxy(key).blackhole();
      c.kubelet.partition(pod);
      c.current(key).pod.signalSidecar("SIGSTOP");
      return Promise.resolve();
    },
    after: (c, key) => c.current(key).pod.signalSidecar("SIGCONT"),
  },
  {
    scenario: "11d sidecar killed",
    note: "its guard stopped it at once",
    fault(c, key, pod) {
      c.kubelet.partition(pod);
      c.current(key).pod.signalSidecar("SIGKILL");
      return Promise.resolve();
    },
  },
];

/** What one lost machine cost. */
export interface LostFigures extends Figures {
  scenario: string;
  lost: string;
  next: string;
  /** The lost incarnation's guard log (its pod is replaced before this returns). */
  guardLog: string;
}

/**
 * Loses the current leader's machine as `lost` says, waits for another replica to forge (at most
 * the bound plus 10 s), records the row, then brings the machine back and its pod replaced.
 * Returns the figures; the caller judges them.
 */
export async function loseLeaderMachine(c: FaultCluster, lost: LostMachine): Promise<LostFigures> {
  const key = await c.waitSingleForger(40_000);
  const { podName: pod, pod: { guardLog } } = c.current(key);
  const faultAt = nowMs();
  await lost.fault(c, key, pod);
  const next = await c.waitSingleForger(TAKEOVER_BOUND_MS + 10_000, [key]);
  await sleep(1000); // both nodes' records settle
  const f = await c.record(lost.scenario, faultAt, key, `${next} forges; ${lost.note}`);
  lost.after?.(c, key);
  await restore(c, key);
  return { ...f, scenario: lost.scenario, lost: key, next, guardLog };
}

/** Brings a lost replica's machine back and its pod replaced. */
async function restore(c: FaultCluster, key: string): Promise<void> {
  c.proxy(key).heal();
  c.kubelet.heal(c.current(key).podName);
  // The guard's bound proved it stopped, so nothing deleted its pod: replace it as an operator
  // (or the node lifecycle controller) would.
  if ((await c.podObject(c.current(key).podName))?.metadata?.deletionTimestamp === undefined) {
    await c.deletePod(key);
  }
  await c.waitGone(key, 30_000);
  await c.recreate(key);
  await sleep(2000);
}
