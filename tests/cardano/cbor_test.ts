import assert from "node:assert/strict";
import {
  cborArray,
  cborBytes,
  CborError,
  cborUint,
  decodeCbor,
  describeCbor,
} from "../../lib/cardano/cbor.ts";

function bytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

Deno.test("decodes unsigned integers of every header size", () => {
  const table: [string, bigint][] = [
    ["00", 0n],
    ["17", 23n],
    ["1818", 24n],
    ["1903e8", 1000n],
    ["1a000f4240", 1000000n],
    ["1b000000e8d4a51000", 1000000000000n],
    ["1bffffffffffffffff", 18446744073709551615n],
  ];
  for (const [hex, expected] of table) assert.equal(decodeCbor(bytes(hex)), expected, hex);
});

Deno.test("decodes byte strings and nested arrays", () => {
  assert.deepEqual(decodeCbor(bytes("43010203")), Uint8Array.of(1, 2, 3));
  assert.deepEqual(decodeCbor(bytes("40")), new Uint8Array());
  assert.deepEqual(decodeCbor(bytes("8182410105")), [[Uint8Array.of(1), 5n]]);
  assert.deepEqual(decodeCbor(bytes("80")), []);
  const long = decodeCbor(bytes("590100" + "ab".repeat(256)));
  assert.ok(long instanceof Uint8Array && long.length === 256);
});

Deno.test("rejects malformed or unsupported input with offsets, not contents", () => {
  const table: [string, string, RegExp][] = [
    ["empty input", "", /input ends at offset 0/],
    ["trailing byte", "4101ff", /1 trailing byte\(s\) after the item ending at offset 2/],
    ["truncated byte string", "4301", /declares length 3 but only 1 byte\(s\) remain/],
    ["truncated header", "19ff", /input ends at offset 2/],
    ["truncated array", "830101", /declares length 3 but only 2 byte\(s\) remain/],
    ["huge array length", "9bffffffffffffffff", /declares length/],
    ["negative integer", "20", /unsupported CBOR major type 1/],
    ["text string", "6161", /unsupported CBOR major type 3/],
    ["map", "a0", /unsupported CBOR major type 5/],
    ["tag", "d818", /unsupported CBOR major type 6/],
    ["simple value", "f6", /unsupported CBOR major type 7/],
    ["indefinite byte string", "5f4101ff", /unsupported indefinite length at offset 0/],
    ["indefinite array", "9f01ff", /unsupported indefinite length/],
    ["reserved additional info", "1c", /reserved additional info 28/],
    ["deep nesting", "81".repeat(40) + "00", /nesting deeper than 16/],
  ];
  for (const [name, hex, message] of table) {
    assert.throws(() => decodeCbor(bytes(hex)), (error: unknown) => {
      assert.ok(error instanceof CborError, name);
      assert.match(error.message, message, name);
      return true;
    });
  }
});

Deno.test("describes items by type and size only", () => {
  assert.equal(describeCbor(5n), "uint");
  assert.equal(describeCbor(new Uint8Array(32)), "bytes(32)");
  assert.equal(describeCbor([1n, 2n]), "array(2)");
});

Deno.test("encodes with the shortest headers, and what it encodes decodes to the same items", () => {
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  assert.equal(hex(cborUint(0)), "00");
  assert.equal(hex(cborUint(23)), "17");
  assert.equal(hex(cborUint(24)), "1818");
  assert.equal(hex(cborUint(1000)), "1903e8");
  assert.equal(hex(cborUint(1_000_000)), "1a000f4240");
  assert.equal(hex(cborUint(1_000_000_000_000)), "1b000000e8d4a51000");
  assert.equal(hex(cborBytes(new Uint8Array(608))).slice(0, 6), "590260");
  assert.equal(hex(cborBytes(new Uint8Array(64))).slice(0, 4), "5840");
  const item = cborArray([cborArray([cborBytes(Uint8Array.of(1, 2)), cborUint(7)]), cborUint(9)]);
  assert.deepEqual(decodeCbor(item), [[Uint8Array.of(1, 2), 7n], 9n]);
  assert.throws(() => cborUint(-1), /Cannot encode a CBOR header: value is -1/);
  assert.throws(() => cborUint(1.5), /expected a uint/);
});
