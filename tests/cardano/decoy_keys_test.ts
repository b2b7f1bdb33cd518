import assert from "node:assert/strict";
import {
  parseOpCert,
  validateCredentialSet,
  verifyOpCertSignature,
} from "../../lib/cardano/cardano_keys.ts";
import {
  DECOY_DESCRIPTION,
  DECOY_MARK,
  isDecoyEnvelope,
  makeDecoyCredentials,
} from "../../lib/cardano/decoy_keys.ts";
import { cborHexOf, makeCredentialSet } from "../support/keys.ts";

const LABELS = { kes: "kes.skey", vrf: "vrf.skey", opcert: "node.cert" };

Deno.test("a decoy set passes every check the node makes, and its cold key signed it", () => {
  const decoy = makeDecoyCredentials({ kesStartPeriod: 1578 });
  const facts = validateCredentialSet({ ...decoy, kes: decoy.kes! }, LABELS);
  assert.equal(facts.signatureValid, true);
  assert.equal(facts.vrfKeyConsistent, true);
  assert.equal(facts.kesStartPeriod, 1578);
  assert.equal(facts.issueCounter, 0);
  assert.equal(facts.poolId, decoy.poolId);
});

Deno.test("every decoy envelope says it is a decoy; a pool's keys and other text are not", () => {
  const decoy = makeDecoyCredentials({ kesStartPeriod: 0 });
  for (const text of [decoy.kes!, decoy.vrf, decoy.opcert]) {
    assert.equal(JSON.parse(text).description, DECOY_DESCRIPTION);
    assert.ok(DECOY_DESCRIPTION.startsWith(DECOY_MARK));
    assert.match(DECOY_DESCRIPTION, /belongs to no pool/);
    assert.equal(isDecoyEnvelope(text), true);
  }
  const real = makeCredentialSet();
  for (const text of [real.kes, real.vrf, real.opcert, "", "{", "[]", '{"description":1}']) {
    assert.equal(isDecoyEnvelope(text), false, text);
  }
});

Deno.test("each decoy set is new: another cold key (another pool id) and other key bytes", () => {
  const a = makeDecoyCredentials({ kesStartPeriod: 10 });
  const b = makeDecoyCredentials({ kesStartPeriod: 10 });
  assert.notEqual(a.poolId, b.poolId);
  assert.match(a.poolId, /^[0-9a-f]{56}$/);
  for (const kind of ["kes", "vrf", "opcert"] as const) {
    assert.notEqual(cborHexOf(a[kind]!), cborHexOf(b[kind]!), kind);
  }
});

Deno.test("a decoy set for a KES agent has no KES key; its certificate still verifies", () => {
  const decoy = makeDecoyCredentials({ kesStartPeriod: 5, withKes: false });
  assert.equal(decoy.kes, undefined);
  const opcert = parseOpCert(decoy.opcert, LABELS.opcert);
  assert.equal(verifyOpCertSignature(opcert), true);
  assert.equal(opcert.kesStartPeriod, 5);
});
