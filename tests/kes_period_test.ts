import assert from "node:assert/strict";
import {
  kesPeriodAt,
  kesPeriodOfSlot,
  kesPeriodStatus,
  kesTimingFromGenesis,
  MAINNET_KES_TIMING,
  slotAt,
} from "../lib/kes_period.ts";

const SHELLEY_START = Date.parse("2020-07-29T21:44:51Z");
const NEW_YEAR_2024 = Date.parse("2024-01-01T00:00:00Z");

/** The KES-related fields of mainnet's shelley-genesis.json. */
const MAINNET_GENESIS = {
  systemStart: "2017-09-23T21:44:51Z",
  slotLength: 1,
  slotsPerKESPeriod: 129600,
  maxKESEvolutions: 62,
  epochLength: 432000,
  networkMagic: 764824073,
};

Deno.test("mainnet's Shelley era starts at slot 4492800 after 20-second Byron slots", () => {
  assert.equal(MAINNET_KES_TIMING.eraStartMs, SHELLEY_START);
  const byronSystemStart = Date.parse(MAINNET_GENESIS.systemStart);
  assert.equal(byronSystemStart + 4492800 * 20_000, SHELLEY_START);
});

Deno.test("maps mainnet wall-clock time to slots and KES periods", () => {
  const table: [string, number, number, number][] = [
    ["Shelley start", SHELLEY_START, 4492800, 34],
    ["one second later", SHELLEY_START + 1000, 4492801, 34],
    ["2024-01-01", NEW_YEAR_2024, 112500909, 868],
  ];
  for (const [name, now, slot, period] of table) {
    assert.equal(slotAt(MAINNET_KES_TIMING, now), slot, name);
    assert.equal(kesPeriodAt(MAINNET_KES_TIMING, now), period, name);
  }
  assert.equal(kesPeriodOfSlot(MAINNET_KES_TIMING, 129599), 0);
  assert.equal(kesPeriodOfSlot(MAINNET_KES_TIMING, 129600), 1);
  assert.throws(() => slotAt(MAINNET_KES_TIMING, SHELLEY_START - 1), RangeError);
});

Deno.test("reports a certificate's remaining periods and expiry", () => {
  const status = kesPeriodStatus(MAINNET_KES_TIMING, 868, NEW_YEAR_2024);
  assert.deepEqual(status, {
    slot: 112500909,
    currentPeriod: 868,
    startPeriod: 868,
    endPeriod: 930,
    remainingPeriods: 62,
    expiresAtMs: Date.parse("2024-04-02T21:44:51Z"),
    valid: true,
  });
  // Period 868 began 2023-12-31T21:44:51Z; 62 periods of 36 hours (93 days) later it expires.
  assert.equal((status.expiresAtMs - Date.parse("2023-12-31T21:44:51Z")) / 3_600_000, 62 * 36);
});

Deno.test("a certificate is valid from its start period until start + maxKESEvolutions", () => {
  const periodStart = (period: number) => SHELLEY_START + (period * 129600 - 4492800) * 1000;
  const table: [string, number, number, boolean][] = [
    ["not yet valid", periodStart(867), 62, false],
    ["first period", periodStart(868), 62, true],
    ["last period", periodStart(929), 1, true],
    ["last second", periodStart(930) - 1000, 1, true],
    ["expired", periodStart(930), 0, false],
    ["long expired", periodStart(1000), 0, false],
  ];
  for (const [name, now, remaining, valid] of table) {
    const status = kesPeriodStatus(MAINNET_KES_TIMING, 868, now);
    assert.equal(status.remainingPeriods, remaining, name);
    assert.equal(status.valid, valid, name);
  }
});

Deno.test("reads the timing from a shelley genesis, with the era start when Byron came first", () => {
  assert.deepEqual(
    kesTimingFromGenesis(MAINNET_GENESIS, { slot: 4492800, timeMs: SHELLEY_START }),
    MAINNET_KES_TIMING,
  );
  const shelleyOnly = kesTimingFromGenesis({
    ...MAINNET_GENESIS,
    systemStart: "2022-10-25T00:00:00Z",
    slotsPerKESPeriod: 129600,
    slotLength: 1,
  });
  assert.equal(shelleyOnly.eraStartSlot, 0);
  assert.equal(shelleyOnly.eraStartMs, Date.parse("2022-10-25T00:00:00Z"));
  assert.equal(slotAt(shelleyOnly, Date.parse("2022-10-26T00:00:00Z")), 86400);
});

Deno.test("refuses a genesis with missing or invalid fields, naming the field", () => {
  const table: [string, unknown, RegExp][] = [
    [
      "missing slotsPerKESPeriod",
      { ...MAINNET_GENESIS, slotsPerKESPeriod: undefined },
      /slotsPerKESPeriod is undefined/,
    ],
    [
      "zero maxKESEvolutions",
      { ...MAINNET_GENESIS, maxKESEvolutions: 0 },
      /maxKESEvolutions is 0, expected a positive integer/,
    ],
    [
      "string slotLength",
      { ...MAINNET_GENESIS, slotLength: "1" },
      /slotLength is "1", expected seconds > 0/,
    ],
    [
      "bad systemStart",
      { ...MAINNET_GENESIS, systemStart: "yesterday" },
      /systemStart is "yesterday"/,
    ],
    ["not an object", null, /slotsPerKESPeriod is undefined/],
  ];
  for (const [name, genesis, message] of table) {
    assert.throws(() => kesTimingFromGenesis(genesis), message, name);
  }
});
