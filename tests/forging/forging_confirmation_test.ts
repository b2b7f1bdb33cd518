import assert from "node:assert/strict";
import { confirmForging } from "../../lib/forging/forging_confirmation.ts";
import type { NodeMetricsSample } from "../../lib/node/node_metrics.ts";

const KES = { currentKESPeriod: 868, remainingKESPeriods: 55, opcertStartKESPeriod: 861 };

/** Two readings 10 slots apart; `after` is what changed in the second. */
function readings(
  before: Partial<NodeMetricsSample>,
  after: Partial<NodeMetricsSample> = {},
): NodeMetricsSample[] {
  const first = { atMs: 0, slotNum: 1000, ...before };
  return [first, { ...first, atMs: 10_000, slotNum: 1010, ...after }];
}

type Row = [string, boolean, NodeMetricsSample[], "confirmed" | "mismatch" | "unknown", RegExp];

const TABLE: Row[] = [
  // Asked to forge.
  [
    "forging: gauge 1, KES loaded, a check every slot",
    true,
    readings({ forgingEnabled: 1, ...KES, aboutToLead: 50 }, { aboutToLead: 60 }),
    "confirmed",
    /^10 leadership check\(s\) in 10 slot\(s\)$/,
  ],
  [
    "forging: led a slot and forged, whatever the gauge says",
    true,
    readings({ forgingEnabled: 0, aboutToLead: 5, nodeIsLeader: 1, forged: 1 }, {
      aboutToLead: 15,
      nodeIsLeader: 2,
      forged: 2,
    }),
    "confirmed",
    /led 1 slot\(s\) and forged 1 block\(s\)/,
  ],
  [
    "forging with a stale 0 gauge after SIGHUP (#5751): the loop runs",
    true,
    readings({ forgingEnabled: 0, ...KES, aboutToLead: 0 }, { aboutToLead: 10 }),
    "confirmed",
    /stale gauge \(cardano-node #5751\)/,
  ],
  [
    "not forging although asked: no KES gauges at all",
    true,
    readings({ forgingEnabled: 1 }),
    "mismatch",
    /no KES gauges: the node has not loaded forging credentials \(forging_enabled reads 1\)/,
  ],
  [
    "not forging although asked: the gauge says 1 but the loop stands still",
    true,
    readings({ forgingEnabled: 1, ...KES, aboutToLead: 50 }),
    "mismatch",
    /no leadership check in 10 slot\(s\): the forging loop does not run/,
  ],
  [
    "asked to forge, too soon to tell",
    true,
    [{ atMs: 0, slotNum: 1000, forgingEnabled: 1, ...KES }],
    "unknown",
    /advanced 0 slot\(s\), fewer than the 5 needed/,
  ],
  // Asked not to forge.
  [
    "standby: never loaded credentials, gauge 0",
    false,
    readings({ forgingEnabled: 0 }),
    "confirmed",
    /^no KES gauges: the node holds no forging credentials$/,
  ],
  [
    "standby at a first non-producing start whose gauge reads 1 (#6113)",
    false,
    readings({ forgingEnabled: 1 }),
    "confirmed",
    /known-wrong gauge \(cardano-node #6113, #6576\)/,
  ],
  [
    "standby after a handover: KES gauges left behind (#5751), no checks",
    false,
    readings({ forgingEnabled: 0, ...KES, aboutToLead: 900 }),
    "confirmed",
    /^no leadership check in 10 slot\(s\)$/,
  ],
  [
    "standby whose gauge stayed at 1 after SIGHUP, no checks",
    false,
    readings({ forgingEnabled: 1, ...KES, aboutToLead: 900 }),
    "confirmed",
    /forging_enabled reads 1, a stale gauge/,
  ],
  [
    "standby that forged a block",
    false,
    readings({ forgingEnabled: 0, forged: 3 }, { forged: 4 }),
    "mismatch",
    /forged 1 block\(s\) although it should not forge/,
  ],
  [
    "standby that checks leadership every slot with the gauge at 1",
    false,
    readings({ forgingEnabled: 1, ...KES, aboutToLead: 0 }, { aboutToLead: 10 }),
    "mismatch",
    /forges although it should not .*#6576/,
  ],
  [
    "standby whose checks go on while the gauge reads 0: the series disagree",
    false,
    readings({ forgingEnabled: 0, ...KES, aboutToLead: 0 }, { aboutToLead: 10 }),
    "unknown",
    /the series disagree/,
  ],
  [
    "standby on a node without the gauge (before 8.11) that checks leadership",
    false,
    readings({ ...KES, aboutToLead: 0 }, { aboutToLead: 10 }),
    "mismatch",
    /forging_enabled is not exported/,
  ],
  // Either way.
  ["no reading at all", false, [], "unknown", /endpoint unreachable/],
  [
    "a node restart between readings",
    true,
    readings({ ...KES, aboutToLead: 500 }, { aboutToLead: 3 }),
    "unknown",
    /went down between readings/,
  ],
  [
    "a node that exports no slot number",
    false,
    [{ atMs: 0, ...KES, aboutToLead: 1 }, { atMs: 1, ...KES, aboutToLead: 1 }],
    "unknown",
    /exports no slotNum/,
  ],
];

for (const [name, asked, samples, state, why] of TABLE) {
  Deno.test(`node-confirmed forging, ${name}: ${state}`, () => {
    const result = confirmForging(asked, samples);
    assert.equal(result.state, state, result.why);
    assert.match(result.why, why);
  });
}

Deno.test("how many slots make a standing counter evidence is a parameter", () => {
  const samples = readings({ forgingEnabled: 1, ...KES, aboutToLead: 5 });
  assert.equal(confirmForging(true, samples, { minSlots: 11 }).state, "unknown");
  assert.equal(confirmForging(true, samples, { minSlots: 10 }).state, "mismatch");
});
