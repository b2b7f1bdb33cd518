/**
 * lib/cardano/leader_schedule.ts: the schedule forms an operator has at hand (cncli leaderlog,
 * cardano-cli leadership-schedule, a plain list), and errors that never show a slot.
 */

import assert from "node:assert/strict";
import { parseLeaderSchedule, ScheduleError } from "../../lib/cardano/leader_schedule.ts";
import {
  MAINNET_KES_TIMING,
  NETWORK_KES_TIMING,
  slotAt,
  slotStartMs,
} from "../../lib/cardano/kes_period.ts";

/** The shape `cncli leaderlog` prints (cardano-community/cncli, USAGE.md and its LeaderLog). */
const LEADERLOG = {
  status: "ok",
  epoch: 227,
  epochNonce: "0e534dd41bb80bfff4a16d038eb52280e9beac7545cc32c9bfc253a6d92010d1",
  consensus: "praos",
  epochSlots: 2,
  epochSlotsIdeal: 2.1,
  maxPerformance: 95.2,
  poolId: "00beef284975ef87856c1343f6bf50172253177fdebc756524d43fc1",
  sigma: 0.0028,
  activeStake: 1,
  totalActiveStake: 2,
  d: 0,
  f: 0.05,
  assignedSlots: [
    { no: 2, slot: 13106185, slotInEpoch: 405385, at: "2020-11-06T06:21:16-08:00" },
    { no: 1, slot: 13083245, slotInEpoch: 382445, at: "2020-11-05T23:58:56-08:00" },
  ],
};

Deno.test("cncli leaderlog's JSON, one epoch or several, gives its slots in order", () => {
  assert.deepEqual(parseLeaderSchedule(JSON.stringify(LEADERLOG, null, 2)), [13083245, 13106185]);
  const next = { ...LEADERLOG, epoch: 228, assignedSlots: [{ no: 1, slot: 13500000 }] };
  assert.deepEqual(parseLeaderSchedule(JSON.stringify([next, LEADERLOG])), [
    13083245,
    13106185,
    13500000,
  ]);
});

Deno.test("cardano-cli's leadership-schedule JSON, {slot}, numbers, and a plain list", () => {
  const cli = [
    { slotNumber: 4126, slotTime: "2021-12-29T17:27:00.298001755Z" },
    { slotNumber: 4073, slotTime: "2021-12-29T17:26:54.998001755Z" },
  ];
  assert.deepEqual(parseLeaderSchedule(JSON.stringify(cli)), [4073, 4126]);
  assert.deepEqual(parseLeaderSchedule('[{"slot": 9}, 7, 9]'), [7, 9]);
  assert.deepEqual(parseLeaderSchedule("# epoch 500\n\n 1200 \n1100\n1200\n"), [1100, 1200]);
  assert.deepEqual(parseLeaderSchedule(""), [], "an empty schedule: nothing to wait for");
  assert.deepEqual(parseLeaderSchedule(JSON.stringify({ ...LEADERLOG, assignedSlots: [] })), []);
});

Deno.test("a bad schedule is refused naming the line or entry, never a slot", () => {
  const cases: [string, RegExp][] = [
    ["1100\n12x00\n", /line 2 is not a slot number/],
    ["1100\n-5\n", /line 2 is not a slot number/],
    ["1100\n1.5\n", /line 2 is not a slot number/],
    ['{"status": "error", "errorMessage": "Query returned no rows"}', /Query returned no rows/],
    ['{"assignedSlots": [{"slot": 5}, {"no": 2}]}', /assignedSlots\[1\] has no slot/],
    ['{"epoch": 3}', /the object has no slot/],
    ['[5, "77777"]', /entry 1 is not a slot number/],
    ['[5, {"slotNumber": -1}]', /entry 1 has no slot/],
    ['{"assignedSlots": [', /not valid JSON/],
  ];
  for (const [text, reason] of cases) {
    assert.throws(() => parseLeaderSchedule(text), (err: unknown) => {
      assert.ok(err instanceof ScheduleError, String(err));
      assert.match(err.message, reason);
      assert.doesNotMatch(err.message, /77777|12x00/, "a slot in the message");
      return true;
    });
  }
});

Deno.test("a slot's start is the inverse of the slot at a time", () => {
  for (
    const timing of [MAINNET_KES_TIMING, NETWORK_KES_TIMING.preprod, NETWORK_KES_TIMING.preview]
  ) {
    const slot = slotAt(timing, Date.parse("2026-12-01T10:00:00.400Z"));
    const start = slotStartMs(timing, slot);
    assert.equal(slotAt(timing, start), slot);
    assert.equal(slotAt(timing, start - 1), slot - 1);
    assert.ok(start <= Date.parse("2026-12-01T10:00:00.400Z"));
  }
  assert.equal(slotStartMs(MAINNET_KES_TIMING, 4492800), Date.UTC(2020, 6, 29, 21, 44, 51));
});
