import assert from "node:assert/strict";
import { blake2b } from "@noble/hashes/blake2.js";
import {
  CredentialError,
  type CredentialKind,
  type CredentialTriple,
  KES_KEY_TYPE,
  type OpCert,
  OPCERT_TYPE,
  opCertSignable,
  parseKesKey,
  parseOpCert,
  parseVrfKey,
  poolIdOf,
  validateCredentialSet,
  verifyOpCertSignature,
  VRF_KEY_TYPE,
} from "../../lib/cardano/cardano_keys.ts";
import {
  cborArray,
  cborBytes,
  cborHexOf,
  cborUint,
  envelope,
  makeColdKey,
  makeCredentialSet,
  makePoolCredentials,
  randomBytes,
  toHex,
} from "../support/keys.ts";

const blake2b256 = (data: Uint8Array) => blake2b(data, { dkLen: 32 });

const LABELS: CredentialTriple<string> = {
  kes: "/secrets/kes.skey",
  vrf: "/secrets/vrf.skey",
  opcert: "/secrets/node.cert",
};

/** Replaces the cborHex of an envelope text, keeping its type. */
function withCborHex(text: string, cborHex: string): string {
  const fields = JSON.parse(text) as Record<string, unknown>;
  return JSON.stringify({ ...fields, cborHex });
}

function withType(text: string, type: unknown): string {
  const fields = JSON.parse(text) as Record<string, unknown>;
  return JSON.stringify({ ...fields, type });
}

function opcertWith(parts: Uint8Array[], cold: Uint8Array = cborBytes(randomBytes(32))): string {
  return envelope(OPCERT_TYPE, cborArray([cborArray(parts), cold]));
}

/** Every run of 16 hex characters found in any of the texts, lower-cased. */
function hexWindows(texts: string[]): Set<string> {
  const windows = new Set<string>();
  for (const text of texts) {
    for (const run of text.match(/[0-9a-fA-F]{16,}/g) ?? []) {
      const lower = run.toLowerCase();
      for (let i = 0; i + 16 <= lower.length; i++) windows.add(lower.slice(i, i + 16));
    }
  }
  return windows;
}

function assertNoKeyMaterial(message: string, texts: string[]): void {
  const lower = message.toLowerCase();
  for (const text of texts) {
    const cborHex = text.match(/"cborHex"\s*:\s*"([^"]+)"/)?.[1];
    if (cborHex) assert.ok(!lower.includes(cborHex.toLowerCase()), "message contains a cborHex");
  }
  assert.doesNotMatch(message, /[0-9a-fA-F]{16,}/, "message contains a long hex run");
  for (const window of hexWindows(texts)) {
    assert.ok(!lower.includes(window), `message contains input hex ${window.slice(0, 4)}...`);
  }
}

Deno.test("a consistent set validates and yields its public facts", () => {
  const set = makeCredentialSet({ counter: 7, kesStartPeriod: 868 });
  const facts = validateCredentialSet(set, LABELS);
  assert.equal(facts.issueCounter, 7);
  assert.equal(facts.kesStartPeriod, 868);
  assert.match(facts.hotKeyId, /^[0-9a-f]{8}$/);
  assert.equal(facts.hotKeyId, toHex(blake2b256(parseOpCert(set.opcert, "c").hotVkey)).slice(0, 8));
  assert.equal(facts.signatureValid, true);
  assert.equal(facts.vrfKeyConsistent, true);
  assert.match(facts.poolId, /^[0-9a-f]{56}$/);
});

Deno.test("the parsers return only public parts of the keys", () => {
  const set = makeCredentialSet();
  const kesBytes = Uint8Array.from(
    cborHexOf(set.kes).slice(6).match(/../g)!,
    (pair) => parseInt(pair, 16),
  );
  const kes = parseKesKey(set.kes, LABELS.kes);
  assert.deepEqual(Object.keys(kes), ["vkey"]);
  assert.deepEqual(kes.vkey, blake2b256(kesBytes.subarray(544)));
  const vrf = parseVrfKey(set.vrf, LABELS.vrf);
  assert.deepEqual(Object.keys(vrf), ["vkey", "consistent"]);
  assert.equal(toHex(vrf.vkey), cborHexOf(set.vrf).slice(-64));
});

Deno.test("the KES verification key depends on the last 64 bytes of the key only", () => {
  const bytes = randomBytes(608);
  const text = () => envelope(KES_KEY_TYPE, cborBytes(bytes));
  const original = parseKesKey(text(), "k").vkey;
  bytes[0] = bytes[0]! ^ 0xff; // inside sk_0
  bytes[543] = bytes[543]! ^ 0xff; // last byte of r_1
  assert.deepEqual(parseKesKey(text(), "k").vkey, original);
  bytes[544] = bytes[544]! ^ 0xff; // first byte of vk_0
  assert.notDeepEqual(parseKesKey(text(), "k").vkey, original);
});

Deno.test("parses certificate counters and periods of any header size", () => {
  const hot = cborBytes(randomBytes(32));
  const sig = cborBytes(randomBytes(64));
  for (
    const [counter, period] of [[0, 0], [23, 24], [255, 256], [70000, 868], [2 ** 40, 2 ** 33]]
  ) {
    const cert = parseOpCert(opcertWith([hot, cborUint(counter!), cborUint(period!), sig]), "c");
    assert.equal(cert.issueCounter, counter);
    assert.equal(cert.kesStartPeriod, period);
    assert.equal(cert.hotVkey.length, 32);
    assert.equal(cert.coldSignature.length, 64);
    assert.equal(cert.coldVkey.length, 32);
  }
});

interface BadCase {
  name: string;
  /** Builds the broken set from a valid one. */
  change: (set: CredentialTriple<string>) => Partial<CredentialTriple<string>>;
  credential: CredentialKind | "set";
  message: RegExp;
}

const hot = () => cborBytes(randomBytes(32));
const sig = () => cborBytes(randomBytes(64));

const BAD_CASES: BadCase[] = [
  {
    name: "KES file with the VRF type",
    change: (s) => ({ kes: withType(s.kes, VRF_KEY_TYPE) }),
    credential: "kes",
    message:
      /^Cannot use KES key \/secrets\/kes\.skey: type is "VrfSigningKey_PraosVRF", expected KesSigningKey_ed25519_kes_2\^6$/,
  },
  {
    name: "VRF file with a verification key type",
    change: (s) => ({ vrf: withType(s.vrf, "VrfVerificationKey_PraosVRF") }),
    credential: "vrf",
    message: /^Cannot use VRF key \/secrets\/vrf\.skey: type is "VrfVerificationKey_PraosVRF"/,
  },
  {
    name: "certificate with the KES type",
    change: (s) => ({ opcert: withType(s.opcert, KES_KEY_TYPE) }),
    credential: "opcert",
    message: /^Cannot use operational certificate \/secrets\/node\.cert: type is/,
  },
  {
    name: "type that is itself a long hex string",
    change: (s) => ({ kes: withType(s.kes, cborHexOf(s.kes)) }),
    credential: "kes",
    message: /type is "<hex>\.\.\."/,
  },
  {
    name: "type that is not a string",
    change: (s) => ({ vrf: withType(s.vrf, 42) }),
    credential: "vrf",
    message: /field type is missing or not a string/,
  },
  {
    name: "missing description",
    change: (s) => ({ vrf: JSON.stringify({ type: VRF_KEY_TYPE, cborHex: cborHexOf(s.vrf) }) }),
    credential: "vrf",
    message: /field description is missing/,
  },
  {
    name: "missing cborHex",
    change: () => ({ opcert: JSON.stringify({ type: OPCERT_TYPE, description: "" }) }),
    credential: "opcert",
    message: /field cborHex is missing/,
  },
  {
    name: "bad hex character",
    change: (s) => ({
      kes: withCborHex(s.kes, cborHexOf(s.kes).slice(0, 100) + "zz" + cborHexOf(s.kes).slice(102)),
    }),
    credential: "kes",
    message: /cborHex is not valid hex: bad character at index 100$/,
  },
  {
    name: "odd-length hex",
    change: (s) => ({ vrf: withCborHex(s.vrf, cborHexOf(s.vrf) + "0") }),
    credential: "vrf",
    message: /cborHex is not valid hex: odd length 133$/,
  },
  {
    name: "KES key one byte short",
    change: () => ({ kes: envelope(KES_KEY_TYPE, cborBytes(randomBytes(607))) }),
    credential: "kes",
    message: /expected a CBOR byte string of 608 bytes, found bytes\(607\)$/,
  },
  {
    name: "VRF key of 32 bytes (a verification key's size)",
    change: () => ({ vrf: envelope(VRF_KEY_TYPE, cborBytes(randomBytes(32))) }),
    credential: "vrf",
    message: /expected a CBOR byte string of 64 bytes, found bytes\(32\)$/,
  },
  {
    name: "KES key that is an array",
    change: () => ({ kes: envelope(KES_KEY_TYPE, cborArray([cborUint(1)])) }),
    credential: "kes",
    message: /found \[uint\]$/,
  },
  {
    name: "trailing bytes after the KES key",
    change: (s) => ({ kes: withCborHex(s.kes, cborHexOf(s.kes) + "00") }),
    credential: "kes",
    message: /not valid CBOR: 1 trailing byte\(s\) after the item ending at offset 611$/,
  },
  {
    name: "trailing bytes after the certificate",
    change: (s) => ({ opcert: withCborHex(s.opcert, cborHexOf(s.opcert) + "4100") }),
    credential: "opcert",
    message: /2 trailing byte\(s\)/,
  },
  {
    name: "cborHex cut short",
    change: (s) => ({ vrf: withCborHex(s.vrf, cborHexOf(s.vrf).slice(0, 100)) }),
    credential: "vrf",
    message: /not valid CBOR: item at offset 0 declares length 64 but only 48 byte\(s\) remain$/,
  },
  {
    name: "empty cborHex",
    change: (s) => ({ vrf: withCborHex(s.vrf, "") }),
    credential: "vrf",
    message: /not valid CBOR: input ends at offset 0/,
  },
  {
    name: "indefinite-length byte string",
    change: (s) => ({ vrf: withCborHex(s.vrf, "5f" + cborHexOf(s.vrf) + "ff") }),
    credential: "vrf",
    message: /unsupported indefinite length/,
  },
  {
    name: "certificate with three fields in its body",
    change: () => ({ opcert: opcertWith([hot(), cborUint(0), sig()]) }),
    credential: "opcert",
    message:
      /expected CBOR \[\[hot_kes_vkey bytes\(32\), issue_counter uint, kes_start_period uint, cold_sig bytes\(64\)\], cold_vkey bytes\(32\)\], found \[\[bytes\(32\), uint, bytes\(64\)\], bytes\(32\)\]$/,
  },
  {
    name: "certificate with a 31-byte hot key",
    change: () => ({
      opcert: opcertWith([cborBytes(randomBytes(31)), cborUint(0), cborUint(0), sig()]),
    }),
    credential: "opcert",
    message: /found \[\[bytes\(31\), uint, uint, bytes\(64\)\], bytes\(32\)\]$/,
  },
  {
    name: "certificate whose counter is a byte string",
    change: () => ({
      opcert: opcertWith([hot(), cborBytes(Uint8Array.of(1)), cborUint(0), sig()]),
    }),
    credential: "opcert",
    message: /found \[\[bytes\(32\), bytes\(1\), uint, bytes\(64\)\], bytes\(32\)\]$/,
  },
  {
    name: "certificate without the cold key",
    change: () => ({
      opcert: envelope(
        OPCERT_TYPE,
        cborArray([cborArray([hot(), cborUint(0), cborUint(0), sig()])]),
      ),
    }),
    credential: "opcert",
    message: /found \[\[bytes\(32\), uint, uint, bytes\(64\)\]\]$/,
  },
  {
    name: "certificate with a counter beyond 2^53",
    change: () => ({
      opcert: envelope(
        OPCERT_TYPE,
        cborArray([
          Uint8Array.of(
            0x84,
            ...hot(),
            0x1b,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0x00,
            ...sig(),
          ),
          cborBytes(randomBytes(32)),
        ]),
      ),
    }),
    credential: "opcert",
    message: /issue_counter is implausibly large$/,
  },
  {
    name: "certificate body that is a text string (unsupported CBOR)",
    change: () => ({ opcert: envelope(OPCERT_TYPE, Uint8Array.of(0x82, 0x61, 0x61, 0x40)) }),
    credential: "opcert",
    message: /unsupported CBOR major type 3 at offset 1$/,
  },
  {
    name: "KES key from another set than the certificate",
    change: () => ({ kes: makeCredentialSet().kes }),
    credential: "set",
    message:
      /^Cannot use KES key \/secrets\/kes\.skey with operational certificate \/secrets\/node\.cert: KES key does not match the operational certificate's hot key$/,
  },
  {
    name: "KES key half written",
    change: (s) => ({ kes: s.kes.slice(0, Math.floor(s.kes.length / 2)) }),
    credential: "kes",
    message:
      /^Cannot use KES key \/secrets\/kes\.skey: file is not valid JSON \(truncated or corrupt\?\)$/,
  },
  {
    name: "VRF key cut just before the closing brace",
    change: (s) => ({ vrf: s.vrf.slice(0, s.vrf.lastIndexOf("}")) }),
    credential: "vrf",
    message: /file is not valid JSON/,
  },
  {
    name: "certificate half written",
    change: (s) => ({ opcert: s.opcert.slice(0, 80) }),
    credential: "opcert",
    message: /file is not valid JSON/,
  },
  {
    name: "empty VRF file",
    change: () => ({ vrf: "" }),
    credential: "vrf",
    message: /^Cannot use VRF key \/secrets\/vrf\.skey: file is empty$/,
  },
  {
    name: "KES file holding a JSON array",
    change: (s) => ({ kes: JSON.stringify([cborHexOf(s.kes)]) }),
    credential: "kes",
    message: /file is not a text envelope/,
  },
  {
    name: "certificate file holding null",
    change: () => ({ opcert: "null" }),
    credential: "opcert",
    message: /file is not a text envelope/,
  },
];

Deno.test("rejects unusable credential sets with a message naming the file and the rule", () => {
  for (const bad of BAD_CASES) {
    const valid = makeCredentialSet({ counter: 3, kesStartPeriod: 860 });
    const broken = { ...valid, ...bad.change(valid) };
    assert.throws(
      () => validateCredentialSet(broken, LABELS),
      (error: unknown) => {
        assert.ok(error instanceof CredentialError, `${bad.name}: ${error}`);
        assert.match(error.message, bad.message, bad.name);
        assert.equal(error.credential, bad.credential, bad.name);
        assert.equal(error.label, LABELS[bad.credential === "set" ? "kes" : bad.credential]);
        assertNoKeyMaterial(error.message, [
          valid.kes,
          valid.vrf,
          valid.opcert,
          broken.kes,
          broken.vrf,
          broken.opcert,
        ]);
        assertNoKeyMaterial(String(error.stack), [broken.kes, broken.vrf, broken.opcert]);
        assert.equal(error.cause, undefined, `${bad.name}: no cause that could carry input`);
        return true;
      },
      bad.name,
    );
  }
});

Deno.test("JSON syntax errors are not passed on, because they quote the input", () => {
  const set = makeCredentialSet();
  const hex = cborHexOf(set.kes);
  const corrupt = `{"type": "${KES_KEY_TYPE}", "description": "", "cborHex": x${hex}}`;
  let syntaxMessage = "";
  try {
    JSON.parse(corrupt);
  } catch (error) {
    syntaxMessage = (error as Error).message;
  }
  // Pin the reason for not passing it on: V8's message contains a slice of the file.
  assert.ok(syntaxMessage.includes(hex.slice(0, 8)), syntaxMessage);
  assert.throws(() => parseKesKey(corrupt, "kes"), (error: unknown) => {
    assert.ok(error instanceof CredentialError);
    assert.equal(
      error.message,
      "Cannot use KES key kes: file is not valid JSON (truncated or corrupt?)",
    );
    assert.equal(error.cause, undefined);
    return true;
  });
});

// ---- the cold key's signature and the pool id -----------------------------------------------

Deno.test("the cold key signs the hot key, counter and start period as 8-byte big-endian", () => {
  const hotVkey = Uint8Array.from({ length: 32 }, (_, i) => i);
  const bytes = opCertSignable({ hotVkey, issueCounter: 258, kesStartPeriod: 2 ** 32 + 1 });
  assert.equal(bytes.length, 48);
  assert.deepEqual(bytes.subarray(0, 32), hotVkey);
  assert.equal(toHex(bytes.subarray(32)), "0000000000000102" + "0000000100000001");
});

Deno.test("a certificate signed by its cold key verifies, and Web Crypto agrees", async () => {
  const { set, cold } = makePoolCredentials({ counter: 5, kesStartPeriod: 900 });
  const opcert = parseOpCert(set.opcert, LABELS.opcert);
  assert.deepEqual(opcert.coldVkey, cold.vkey);
  assert.equal(verifyOpCertSignature(opcert), true);
  // An independent implementation (Deno's Web Crypto Ed25519) reads the same bytes the same way.
  const key = await crypto.subtle.importKey(
    "raw",
    new Uint8Array(cold.vkey),
    { name: "Ed25519" },
    false,
    [
      "verify",
    ],
  );
  assert.equal(
    await crypto.subtle.verify(
      { name: "Ed25519" },
      key,
      new Uint8Array(opcert.coldSignature),
      opCertSignable(opcert),
    ),
    true,
  );
});

Deno.test("a signature fails for another key, a changed counter or period, or zeros", () => {
  const cold = makeColdKey();
  const good = parseOpCert(makePoolCredentials({ cold, counter: 5 }).set.opcert, "c");
  const table: [string, OpCert][] = [
    [
      "signed by another cold key",
      parseOpCert(
        makePoolCredentials({ cold, signature: "other_key" }).set.opcert,
        "c",
      ),
    ],
    [
      "zero signature",
      parseOpCert(makePoolCredentials({ cold, signature: "zero" }).set.opcert, "c"),
    ],
    ["counter raised after signing", { ...good, issueCounter: 6 }],
    ["start period moved after signing", { ...good, kesStartPeriod: 1 }],
    ["hot key swapped after signing", { ...good, hotVkey: makePoolCredentials().kesVkey }],
    ["cold key that is not a curve point", { ...good, coldVkey: new Uint8Array(32).fill(0xff) }],
  ];
  assert.equal(verifyOpCertSignature(good), true);
  for (const [name, opcert] of table) assert.equal(verifyOpCertSignature(opcert), false, name);
});

Deno.test("the pool id is Blake2b-224 of the cold verification key", () => {
  const { set, cold } = makePoolCredentials();
  const facts = validateCredentialSet(set, LABELS);
  assert.equal(facts.poolId, toHex(blake2b(cold.vkey, { dkLen: 28 })));
  assert.equal(poolIdOf(cold.vkey), facts.poolId);
  // Blake2b-224 itself (a 28-byte digest is not a truncated longer one).
  assert.equal(
    poolIdOf(new TextEncoder().encode("abc")),
    "9bd237b02a29e43bdd6738afa5b53ff0eee178d6210b618e4511aec8",
  );
});

Deno.test("a KES key made by the Sum6KES construction derives the certificate's hot key", () => {
  const { set, kesVkey } = makePoolCredentials();
  assert.deepEqual(parseKesKey(set.kes, LABELS.kes).vkey, kesVkey);
  assert.deepEqual(parseOpCert(set.opcert, LABELS.opcert).hotVkey, kesVkey);
});

Deno.test("a VRF key whose halves do not belong together is reported, not refused", () => {
  const { set } = makePoolCredentials();
  const bytes = Uint8Array.from(cborHexOf(set.vrf).slice(4).match(/../g)!, (p) => parseInt(p, 16));
  bytes[0] = bytes[0]! ^ 1; // the seed no longer derives the stored verification key
  const vrf = envelope(VRF_KEY_TYPE, cborBytes(bytes));
  assert.equal(parseVrfKey(set.vrf, LABELS.vrf).consistent, true);
  assert.equal(parseVrfKey(vrf, LABELS.vrf).consistent, false);
  assert.equal(validateCredentialSet({ ...set, vrf }, LABELS).vrfKeyConsistent, false);
});

Deno.test("without a KES key (a KES agent holds it) the VRF key and the certificate are the set", () => {
  const set = makeCredentialSet({ counter: 2 });
  const other = makeCredentialSet();
  const { kes: _kes, ...agentSet } = { ...set, kes: other.kes };
  const { kes: _label, ...agentLabels } = LABELS;
  const facts = validateCredentialSet(agentSet, agentLabels);
  assert.deepEqual(facts, validateCredentialSet(set, LABELS));
  // Given, a KES key that is not the certificate's hot key is still refused.
  assert.throws(
    () => validateCredentialSet({ ...set, kes: other.kes }, LABELS),
    /KES key does not match the operational certificate's hot key/,
  );
  assert.throws(
    () => validateCredentialSet({ ...agentSet, opcert: set.vrf }, agentLabels),
    /Cannot use operational certificate \/secrets\/node.cert: type is/,
  );
});
