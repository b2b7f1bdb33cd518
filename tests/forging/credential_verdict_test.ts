import assert from "node:assert/strict";
import { validateCredentialSet } from "../../lib/cardano/cardano_keys.ts";
import { judgeCredentials, mayForge } from "../../lib/forging/credential_verdict.ts";
import { MAINNET_KES_TIMING } from "../../lib/cardano/kes_period.ts";
import { makeColdKey, makePoolCredentials } from "../support/keys.ts";

const LABELS = { kes: "kes.skey", vrf: "vrf.skey", opcert: "node.cert" };
const NEW_YEAR_2024 = Date.parse("2024-01-01T00:00:00Z"); // mainnet KES period 868

function factsOf(opts: Parameters<typeof makePoolCredentials>[0]) {
  return validateCredentialSet(makePoolCredentials(opts).set, LABELS);
}

Deno.test("judges real credential sets: the first problem that applies decides", () => {
  const cold = makeColdKey();
  const other = makeColdKey();
  const table: [string, Parameters<typeof makePoolCredentials>[0], string | undefined, string][] = [
    ["valid", { cold, kesStartPeriod: 860 }, cold.poolId, "valid"],
    ["valid without POOL_ID", { cold, kesStartPeriod: 860 }, undefined, "valid"],
    ["expired", { cold, kesStartPeriod: 868 - 62 }, cold.poolId, "expired"],
    ["not yet valid", { cold, kesStartPeriod: 869 }, cold.poolId, "not_yet_valid"],
    ["another pool's certificate", { cold, kesStartPeriod: 860 }, other.poolId, "pool_mismatch"],
    ["forged signature", { cold, signature: "other_key" }, other.poolId, "bad_signature"],
    [
      "expired and badly signed",
      { cold, kesStartPeriod: 1, signature: "zero" },
      undefined,
      "bad_signature",
    ],
  ];
  for (const [name, opts, poolId, verdict] of table) {
    const check = judgeCredentials(
      factsOf(opts),
      MAINNET_KES_TIMING,
      { nowMs: NEW_YEAR_2024 },
      poolId,
    );
    assert.equal(check.verdict, verdict, `${name}: ${check.reason}`);
    assert.equal(mayForge(check), verdict === "valid", name);
  }
});

Deno.test("a valid check carries the window, periods left and expiry as a Unix time", () => {
  const cold = makeColdKey();
  const facts = factsOf({ cold, counter: 4, kesStartPeriod: 868 });
  const check = judgeCredentials(facts, MAINNET_KES_TIMING, { nowMs: NEW_YEAR_2024 }, cold.poolId);
  assert.equal(check.issueCounter, 4);
  assert.equal(check.kesStartPeriod, 868);
  assert.equal(check.poolId, cold.poolId);
  assert.equal(check.kes.remainingPeriods, 62);
  assert.equal(check.expiresAtUnix, Date.parse("2024-04-02T21:44:51Z") / 1000);
  assert.equal(
    check.reason,
    "the clock's KES period 868 is inside the certificate's window [868, 930), 62 period(s) " +
      "left, expires 2024-04-02T21:44:51.000Z",
  );
});

Deno.test("the node's KES period decides over the clock's, and the reason says whose it was", () => {
  const facts = factsOf({ kesStartPeriod: 868 });
  const now = { nowMs: NEW_YEAR_2024, nodeKesPeriod: 930 };
  const check = judgeCredentials(facts, MAINNET_KES_TIMING, now);
  assert.equal(check.verdict, "expired");
  assert.match(check.reason, /^the node's KES period 930 is past the certificate's window/);
  assert.match(check.reason, /expired 2024-04-02T21:44:51.000Z$/);
});

Deno.test("reasons name the pools of a mismatch and never carry key material", () => {
  const cold = makeColdKey();
  const other = makeColdKey();
  const check = judgeCredentials(
    factsOf({ cold }),
    MAINNET_KES_TIMING,
    { nowMs: NEW_YEAR_2024 },
    other.poolId,
  );
  assert.equal(
    check.reason,
    `the certificate's cold key is pool ${cold.poolId}, POOL_ID is ${other.poolId}`,
  );
  const bad = judgeCredentials(factsOf({ signature: "zero" }), MAINNET_KES_TIMING, {
    nowMs: NEW_YEAR_2024,
  });
  assert.doesNotMatch(bad.reason, /[0-9a-f]{16}/);
});
