import assert from "node:assert/strict";
import {
  kesPeriodAt,
  kesPeriodOfSlot,
  kesPeriodStatus,
  kesTimingFromGenesis,
  kesTimingFromGenesisFile,
  loadKesTiming,
  MAINNET_KES_TIMING,
  NETWORK_KES_TIMING,
  slotAt,
} from "../../lib/cardano/kes_period.ts";

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
  const status = kesPeriodStatus(MAINNET_KES_TIMING, 868, { nowMs: NEW_YEAR_2024 });
  assert.deepEqual(status, {
    currentPeriod: 868,
    periodSource: "clock",
    clockPeriod: 868,
    startPeriod: 868,
    endPeriod: 930,
    remainingPeriods: 62,
    expiresAtMs: Date.parse("2024-04-02T21:44:51Z"),
    state: "valid",
  });
  // Period 868 began 2023-12-31T21:44:51Z; 62 periods of 36 hours (93 days) later it expires.
  assert.equal((status.expiresAtMs - Date.parse("2023-12-31T21:44:51Z")) / 3_600_000, 62 * 36);
});

Deno.test("a certificate is valid from its start period until start + maxKESEvolutions", () => {
  const periodStart = (period: number) => SHELLEY_START + (period * 129600 - 4492800) * 1000;
  const table: [string, number, number, string][] = [
    ["not yet valid", periodStart(867), 62, "not_yet_valid"],
    ["first period", periodStart(868), 62, "valid"],
    ["last period", periodStart(929), 1, "valid"],
    ["last second", periodStart(930) - 1000, 1, "valid"],
    ["expired", periodStart(930), 0, "expired"],
    ["long expired", periodStart(1000), 0, "expired"],
  ];
  for (const [name, now, remaining, state] of table) {
    const status = kesPeriodStatus(MAINNET_KES_TIMING, 868, { nowMs: now });
    assert.equal(status.remainingPeriods, remaining, name);
    assert.equal(status.state, state, name);
  }
});

Deno.test("the node's own KES period wins over the clock's when it reports one", () => {
  // The clock says 868; a node that says 930 (its clock or ours is off) decides: expired.
  const fromNode = kesPeriodStatus(MAINNET_KES_TIMING, 868, {
    nowMs: NEW_YEAR_2024,
    nodeKesPeriod: 930,
  });
  assert.equal(fromNode.periodSource, "node");
  assert.equal(fromNode.currentPeriod, 930);
  assert.equal(fromNode.clockPeriod, 868);
  assert.equal(fromNode.state, "expired");
  assert.equal(fromNode.remainingPeriods, 0);
  // The expiry is a property of the certificate and the genesis, whoever tells the period.
  assert.equal(fromNode.expiresAtMs, Date.parse("2024-04-02T21:44:51Z"));
  // A node period that is not a period is ignored.
  for (const bad of [NaN, -1, 1.5]) {
    const status = kesPeriodStatus(MAINNET_KES_TIMING, 868, {
      nowMs: NEW_YEAR_2024,
      nodeKesPeriod: bad,
    });
    assert.equal(status.periodSource, "clock", String(bad));
  }
  // Before the era only the node can say; without it the clock cannot either.
  const early = kesPeriodStatus(MAINNET_KES_TIMING, 0, { nowMs: 0, nodeKesPeriod: 5 });
  assert.equal(early.clockPeriod, undefined);
  assert.equal(early.currentPeriod, 5);
  assert.throws(() => kesPeriodStatus(MAINNET_KES_TIMING, 0, { nowMs: 0 }), RangeError);
});

Deno.test("preprod and preview map their wall clocks to slots from their own Shelley starts", () => {
  // preprod: systemStart 2022-06-01, 4 Byron epochs of 21600 slots of 20 s before Shelley.
  const preprod = NETWORK_KES_TIMING.preprod;
  assert.equal(preprod.eraStartMs, Date.parse("2022-06-01T00:00:00Z") + 4 * 21600 * 20_000);
  assert.equal(preprod.eraStartSlot, 4 * 21600);
  assert.equal(slotAt(preprod, Date.parse("2022-06-22T00:00:00Z")), 86400 + 86400);
  // preview starts in Shelley-based eras at slot 0.
  const preview = NETWORK_KES_TIMING.preview;
  assert.equal(slotAt(preview, Date.parse("2022-10-26T00:00:00Z")), 86400);
  assert.equal(kesPeriodAt(preview, Date.parse("2022-10-26T12:00:00Z")), 1);
  for (const timing of Object.values(NETWORK_KES_TIMING)) {
    assert.equal(timing.slotsPerKESPeriod, 129600);
    assert.equal(timing.maxKESEvolutions, 62);
    assert.equal(timing.slotLengthMs, 1000);
  }
});

Deno.test("a genesis file of a known network gets that network's Byron offset", () => {
  const file = (networkMagic: number, systemStart: string) => ({
    ...MAINNET_GENESIS,
    networkMagic,
    systemStart,
  });
  assert.deepEqual(
    kesTimingFromGenesisFile(file(764824073, "2017-09-23T21:44:51Z")),
    MAINNET_KES_TIMING,
  );
  assert.deepEqual(
    kesTimingFromGenesisFile(file(1, "2022-06-01T00:00:00Z")),
    NETWORK_KES_TIMING.preprod,
  );
  assert.deepEqual(
    kesTimingFromGenesisFile(file(2, "2022-10-25T00:00:00Z")),
    NETWORK_KES_TIMING.preview,
  );
  // An unknown network (a private testnet) starts in Shelley at slot 0.
  const own = kesTimingFromGenesisFile({ ...file(42, "2026-01-01T00:00:00Z"), slotLength: 0.2 });
  assert.equal(own.eraStartSlot, 0);
  assert.equal(own.slotLengthMs, 200);
  assert.equal(slotAt(own, Date.parse("2026-01-01T00:00:01Z")), 5);
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

Deno.test("the configured timing is the genesis file's when one is set, else the network's", async () => {
  assert.deepEqual(
    await loadKesTiming({ network: "preview", shelleyGenesisFile: undefined }),
    NETWORK_KES_TIMING.preview,
  );
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/shelley-genesis.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({ ...MAINNET_GENESIS, networkMagic: 1, systemStart: "2022-06-01T00:00:00Z" }),
    );
    assert.deepEqual(
      await loadKesTiming({ network: "mainnet", shelleyGenesisFile: file }),
      NETWORK_KES_TIMING.preprod,
    );
    await Deno.writeTextFile(file, "{");
    await assert.rejects(
      loadKesTiming({ network: "mainnet", shelleyGenesisFile: file }),
      /Cannot read the shelley genesis .*shelley-genesis\.json: it is not valid JSON/,
    );
    await Deno.writeTextFile(file, JSON.stringify({ ...MAINNET_GENESIS, maxKESEvolutions: 0 }));
    await assert.rejects(
      loadKesTiming({ network: "mainnet", shelleyGenesisFile: file }),
      /maxKESEvolutions is 0, expected a positive integer \(in .*shelley-genesis\.json\)/,
    );
    await assert.rejects(
      loadKesTiming({ network: "mainnet", shelleyGenesisFile: `${dir}/missing.json` }),
      /Cannot read the shelley genesis .*missing\.json/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
