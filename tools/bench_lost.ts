/**
 * `deno task bench --lost`: the leader's machine lost, four ways (issue 17, scenarios 11a-d of the
 * fault suite: powered off, cut off, cut off with the sidecar frozen, the sidecar killed), each
 * with its kubelet silent so that no API proof can come, on the local control plane with the
 * simulated kubelet and the shipped timings (lease 15 s) and FENCE=guard, `rounds` times. Prints,
 * per scenario, when the old node stopped and when another replica forged, beside the bounds
 * (RENEW_DEADLINE + GUARD_REACTION, LEASE_DURATION + ACQUIRE_DELAY + 5 s), and the overlap over
 * the whole run (target 0). Writes the figures as JSON.
 *
 * @module
 */

import { startControlPlane } from "../tests/support/control_plane.ts";
import { FaultCluster } from "../tests/support/fault_cluster.ts";
import {
  loseLeaderMachine,
  LOST_MACHINES,
  type LostFigures,
  SHIPPED_GUARDED,
  STOP_BOUND_MS,
  TAKEOVER_BOUND_MS,
} from "../tests/support/lost_machine.ts";

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
  return { n: s.length, median: at(0.5), p95: at(0.95), max: s[s.length - 1] ?? NaN };
}

/** Runs the lost-machine benchmark and prints its table. */
export async function benchLost(rounds: number, out: string): Promise<void> {
  const all: LostFigures[] = [];
  await using cp = await startControlPlane({ log: () => {} });
  await using c = await FaultCluster.start({
    cp,
    namespace: "cardano-bench-lost",
    env: SHIPPED_GUARDED,
    guard: true,
  });
  await c.waitSingleForger(40_000);
  for (let r = 0; r < rounds; r++) {
    for (const lost of LOST_MACHINES) {
      const f = await loseLeaderMachine(c, lost);
      all.push(f);
      console.error(
        `round ${r + 1}/${rounds} ${lost.scenario}: stopped ${
          ((f.stoppedMs ?? NaN) / 1000).toFixed(2)
        } s, ` +
          `another forges ${((f.takeoverMs ?? NaN) / 1000).toFixed(2)} s after the fault`,
      );
    }
  }
  const overlapMs = all.at(-1)?.overlapMs ?? NaN; // over the whole run, from every node's records
  await Deno.mkdir(out.replace(/\/[^/]*$/, ""), { recursive: true }).catch(() => {});
  await Deno.writeTextFile(
    out,
    JSON.stringify({ date: new Date().toISOString(), rounds, runs: all }, null, 2) + "\n",
  );

  const f = (ms: number) => (ms / 1000).toFixed(2).padStart(7);
  const ok = (good: boolean) => (good ? "ok" : "MISSED");
  console.log(
    `\nthe leader's machine lost (${rounds} rounds, lease 15 s, FENCE=guard; from the fault, s)`,
  );
  console.log(
    "scenario                                old node stopped (median/max)   another forges (median/max)",
  );
  for (const lost of LOST_MACHINES) {
    const runs = all.filter((x) => x.scenario === lost.scenario);
    const stopped = stats(runs.map((x) => x.stoppedMs ?? Infinity));
    const taken = stats(runs.map((x) => x.takeoverMs ?? Infinity));
    console.log(
      `${lost.scenario.padEnd(39)} ${f(stopped.median)} ${f(stopped.max)} <= ${
        STOP_BOUND_MS / 1000
      } ${ok(stopped.max <= STOP_BOUND_MS)}   ${f(taken.median)} ${f(taken.max)} <= ${
        TAKEOVER_BOUND_MS / 1000
      } ${ok(taken.max <= TAKEOVER_BOUND_MS)}`,
    );
  }
  console.log(
    `overlap, whole run (ms) ${overlapMs.toFixed(0).padStart(8)}   = 0 ${ok(overlapMs === 0)}`,
  );
  console.log(`\nfigures written to ${out}`);
}
