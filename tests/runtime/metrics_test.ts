import assert from "node:assert/strict";
import { validateCredentialSet } from "../../lib/cardano/cardano_keys.ts";
import { judgeCredentials } from "../../lib/forging/credential_verdict.ts";
import { confirmForging } from "../../lib/forging/forging_confirmation.ts";
import { MAINNET_KES_TIMING } from "../../lib/cardano/kes_period.ts";
import {
  createMetrics,
  credentialMetricValues,
  forgingConfirmationValues,
  recordCredentialMetrics,
  recordForgingConfirmation,
} from "../../lib/runtime/metrics.ts";
import { makeColdKey, makeCredentialSet } from "../support/keys.ts";

const LABELS = { kes: "kes.skey", vrf: "vrf.skey", opcert: "node.cert" };
const NEW_YEAR_2024 = Date.parse("2024-01-01T00:00:00Z"); // mainnet KES period 868

function metrics() {
  return createMetrics({
    version: "test",
    pod: "p-0",
    namespace: "ns",
    lease: "l",
    identity: "p-0_x",
    lastRenewAt: () => undefined,
  });
}

function check(
  opts: Parameters<typeof makeCredentialSet>[0],
  poolId?: string,
  nodeKesPeriod?: number,
) {
  const facts = validateCredentialSet(makeCredentialSet(opts), LABELS);
  return judgeCredentials(
    facts,
    MAINNET_KES_TIMING,
    { nowMs: NEW_YEAR_2024, nodeKesPeriod },
    poolId,
  );
}

/** The exposition lines of the series whose names start with `prefix`. */
async function series(m: ReturnType<typeof metrics>, prefix: string): Promise<string[]> {
  return (await m.registry.metrics()).split("\n").filter((l) => l.startsWith(prefix)).sort();
}

Deno.test("no credential or confirmation series exist before the first check", async () => {
  const m = metrics();
  assert.deepEqual(await series(m, "forge_manager_kes_"), []);
  assert.deepEqual(await series(m, "forge_manager_opcert_"), []);
  assert.deepEqual(await series(m, "forge_manager_credentials_valid"), []);
  assert.deepEqual(await series(m, "forge_manager_node_forging_confirmed"), []);
});

Deno.test("a valid certificate exports its counter, start, periods left and expiry", async () => {
  const m = metrics();
  const c = check({ counter: 7, kesStartPeriod: 860 });
  const values = credentialMetricValues(c);
  assert.deepEqual(values, {
    hotKey: c.hotKeyId,
    kesPeriodsRemaining: 54,
    kesExpiryTimestampSeconds: Date.parse("2024-03-21T21:44:51Z") / 1000,
    opcertIssueCounter: 7,
    opcertKesStartPeriod: 860,
    kesCurrentPeriod: { source: "clock", value: 868 },
    credentialsValid: { reason: "valid", value: 1 },
  });
  recordCredentialMetrics(m, values);
  const h = `hot_key="${c.hotKeyId}"`;
  assert.deepEqual(await series(m, "forge_manager_kes_"), [
    'forge_manager_kes_current_period{source="clock"} 868',
    `forge_manager_kes_expiry_timestamp_seconds{${h}} ${values.kesExpiryTimestampSeconds}`,
    `forge_manager_kes_periods_remaining{${h}} 54`,
  ]);
  assert.deepEqual(await series(m, "forge_manager_opcert_"), [
    `forge_manager_opcert_issue_counter{${h}} 7`,
    `forge_manager_opcert_kes_start_period{${h}} 860`,
  ]);
  assert.deepEqual(await series(m, "forge_manager_credentials_valid"), [
    'forge_manager_credentials_valid{reason="valid"} 1',
  ]);
});

Deno.test("each verdict is one credentials_valid series; a rotation leaves no stale hot_key", async () => {
  const m = metrics();
  const first = check({ kesStartPeriod: 860 });
  recordCredentialMetrics(m, credentialMetricValues(first));
  const cold = makeColdKey();
  const table: [ReturnType<typeof check>, string][] = [
    [check({ kesStartPeriod: 806 }), 'forge_manager_credentials_valid{reason="expired"} 0'],
    [check({ kesStartPeriod: 869 }), 'forge_manager_credentials_valid{reason="not_yet_valid"} 0'],
    [check({ signature: "zero" }), 'forge_manager_credentials_valid{reason="bad_signature"} 0'],
    [
      check({ kesStartPeriod: 860 }, cold.poolId),
      'forge_manager_credentials_valid{reason="pool_mismatch"} 0',
    ],
  ];
  for (const [c, line] of table) {
    recordCredentialMetrics(m, credentialMetricValues(c));
    assert.deepEqual(await series(m, "forge_manager_credentials_valid"), [line]);
    const counters = await series(m, "forge_manager_opcert_issue_counter");
    assert.deepEqual(counters, [`forge_manager_opcert_issue_counter{hot_key="${c.hotKeyId}"} 0`]);
  }
  // The node's period, when known, is the one exported.
  recordCredentialMetrics(
    m,
    credentialMetricValues(check({ kesStartPeriod: 860 }, undefined, 870)),
  );
  assert.deepEqual(await series(m, "forge_manager_kes_current_period"), [
    'forge_manager_kes_current_period{source="node"} 870',
  ]);
  // A set that cannot be read keeps only the invalid flag.
  recordCredentialMetrics(m, credentialMetricValues({ invalid: "KES key does not match" }));
  assert.deepEqual(await series(m, "forge_manager_credentials_valid"), [
    'forge_manager_credentials_valid{reason="invalid"} 0',
  ]);
  assert.deepEqual(await series(m, "forge_manager_kes_"), []);
  assert.deepEqual(await series(m, "forge_manager_opcert_"), []);
});

Deno.test("node-confirmed forging is one series per state, the current one 1", async () => {
  const m = metrics();
  const mismatch = confirmForging(false, [
    { atMs: 0, slotNum: 0, forged: 1 },
    { atMs: 1, slotNum: 10, forged: 2 },
  ]);
  assert.deepEqual(forgingConfirmationValues(mismatch), { confirmed: 0, mismatch: 1, unknown: 0 });
  recordForgingConfirmation(m, mismatch);
  assert.deepEqual(await series(m, "forge_manager_node_forging_confirmed"), [
    'forge_manager_node_forging_confirmed{state="confirmed"} 0',
    'forge_manager_node_forging_confirmed{state="mismatch"} 1',
    'forge_manager_node_forging_confirmed{state="unknown"} 0',
  ]);
  recordForgingConfirmation(m, confirmForging(true, []));
  assert.deepEqual(await series(m, "forge_manager_node_forging_confirmed"), [
    'forge_manager_node_forging_confirmed{state="confirmed"} 0',
    'forge_manager_node_forging_confirmed{state="mismatch"} 0',
    'forge_manager_node_forging_confirmed{state="unknown"} 1',
  ]);
});
