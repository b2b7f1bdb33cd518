/**
 * `deno task bench --cluster`: the operator's steps on the dummy example under the real
 * StatefulSet controller (tests/support/dummy_cluster.ts, the same steps as
 * tests/e2e/cluster_test.ts), `rounds` times, with the shipped timings (lease 15 s). Prints the
 * rows for pod deletion, rolling restart, scale and a node that stops reporting (the longest
 * forging gap of each step, from the simulated nodes' own records) with their targets, and the
 * overlap over the whole run. Writes the figures as JSON.
 *
 * @module
 */

import { DummyCluster, operatorSteps, type StepFigures } from "../tests/support/dummy_cluster.ts";

/** The targets of the cluster rows: the longest gap of a step, in ms. */
export const CLUSTER_TARGETS: Readonly<
  Record<string, { text: string; ok: (ms: number) => boolean }>
> = {
  "delete leader pod": { text: "<= 1000", ok: (ms) => ms <= 1000 },
  "rolling restart": { text: "<= 1000", ok: (ms) => ms <= 1000 },
  "scale to 1": { text: "<= 1000", ok: (ms) => ms <= 1000 },
  "scale to 3": { text: "= 0", ok: (ms) => ms === 0 },
  // The guard's bound: a standby takes over after LEASE_DURATION + ACQUIRE_DELAY (17 s) + 5 s.
  "node stops reporting": { text: "<= 22000", ok: (ms) => ms <= 22_000 },
};

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
  return { n: s.length, median: at(0.5), p95: at(0.95), max: s[s.length - 1] ?? NaN };
}

/** Runs the cluster benchmark and prints its table. */
export async function benchCluster(rounds: number, out: string): Promise<void> {
  const all: StepFigures[] = [];
  const quiet = (line: string) => {
    if (line.startsWith("step ")) console.error(line);
  };
  for (let r = 0; r < rounds; r++) {
    await using cluster = await DummyCluster.start({ log: quiet });
    await cluster.install();
    await cluster.rolloutStatus();
    all.push(...await operatorSteps(cluster));
    console.error(`cluster round ${r + 1}/${rounds} done`);
  }
  const overlapMs = Math.max(0, ...all.map((f) => f.overlapMs));
  const rows = Object.keys(CLUSTER_TARGETS).map((step) => {
    const gaps = all.filter((f) => f.step === step).map((f) => f.longestGapMs);
    return { step, longestGapMs: stats(gaps) };
  });
  await Deno.mkdir(out.replace(/\/[^/]*$/, ""), { recursive: true }).catch(() => {});
  await Deno.writeTextFile(
    out,
    JSON.stringify(
      { date: new Date().toISOString(), rounds, rows, overlapMs, steps: all },
      null,
      2,
    ) +
      "\n",
  );
  const f = (x: number) => x.toFixed(0).padStart(8);
  console.log(
    `\nforge-manager cluster benchmark (${rounds} rounds, lease 15 s, kube-controller-manager)`,
  );
  console.log("longest forging gap (ms)     median       p95       max   target");
  for (const row of rows) {
    const target = CLUSTER_TARGETS[row.step]!;
    const s = row.longestGapMs;
    console.log(
      `${row.step.padEnd(26)} ${f(s.median)}  ${f(s.p95)}  ${f(s.max)}   ${target.text} ${
        target.ok(s.max) ? "ok" : "MISSED"
      }`,
    );
  }
  console.log(
    `overlap, every step (ms)   ${f(overlapMs)}                       = 0 ${
      overlapMs === 0 ? "ok" : "MISSED"
    }`,
  );
  console.log(`\nfigures written to ${out}`);
}
