import assert from "node:assert/strict";
import { Bech32Error, decodeBech32, encodeBech32 } from "../../lib/cardano/bech32.ts";
import { parsePoolId, poolIdBech32 } from "../../lib/cardano/pool_id.ts";

/** A mainnet pool, as explorers list it in both spellings. */
const POOL_BECH32 = "pool1pu5jlj4q9w9jlxeu370a3c9myx47md5j5m2str0naunn2q3lkdy";
const POOL_HEX = "0f292fcaa02b8b2f9b3c8f9fd8e0bb21abedb692a6d5058df3ef2735";

Deno.test("bech32 accepts BIP 173's valid test vectors", () => {
  for (
    const text of [
      "A12UEL5L",
      "a12uel5l",
      "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
      "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
      "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    ]
  ) {
    const decoded = decodeBech32(text);
    assert.equal(encodeBech32(decoded.prefix, decoded.bytes), text.toLowerCase(), text);
  }
});

Deno.test("bech32 refuses BIP 173's invalid test vectors, saying why", () => {
  const table: [string, RegExp][] = [
    ["pzry9x0s0muk", /expected prefix, '1'/],
    ["1pzry9x0s0muk", /expected prefix, '1'/],
    ["x1b4n0q5v", /character "b" at 2 is not in the charset/],
    ["li1dgmt3", /at least 6 checksum characters/],
    ["A1G7SGD8", /checksum is wrong/],
    ["a12UEL5L", /mixes upper and lower case/],
    [`${String.fromCharCode(0x7f)}1axkwrx`, /outside 33-126/],
    [POOL_BECH32.slice(0, -1) + "x", /checksum is wrong/],
  ];
  for (const [text, message] of table) {
    assert.throws(() => decodeBech32(text), (err) => {
      assert.ok(err instanceof Bech32Error, text);
      assert.match(err.message, message, text);
      return true;
    });
  }
});

Deno.test("a pool id is accepted in hex or bech32 and comes back as lower-case hex", () => {
  assert.equal(parsePoolId(POOL_BECH32), POOL_HEX);
  assert.equal(parsePoolId(POOL_BECH32.toUpperCase()), POOL_HEX);
  assert.equal(parsePoolId(POOL_HEX.toUpperCase()), POOL_HEX);
  assert.equal(parsePoolId(` ${POOL_HEX}\n`), POOL_HEX);
  assert.equal(poolIdBech32(POOL_HEX), POOL_BECH32);
});

Deno.test("a pool id of the wrong length, prefix or checksum is refused, naming the rule", () => {
  const table: [string, RegExp][] = [
    [POOL_HEX.slice(2), /54 hex digits, expected 56/],
    [encodeBech32("stake", new Uint8Array(28)), /prefix is "stake", expected "pool"/],
    [encodeBech32("pool", new Uint8Array(32)), /holds 32 bytes, expected 28/],
    [POOL_BECH32.replace("pu5", "pu6"), /checksum is wrong/],
    ["my-pool", /expected 56 hex digits or bech32 pool1/],
  ];
  for (const [text, message] of table) assert.throws(() => parsePoolId(text), message, text);
});
