import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { blake2b, blake2b256 } from "../lib/blake2b.ts";

const text = new TextEncoder();

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("blake2b-512 of 'abc' matches RFC 7693 appendix A", () => {
  assert.equal(
    hex(blake2b(text.encode("abc"))),
    "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1" +
      "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
  );
});

Deno.test("blake2b-256 matches the known vectors", () => {
  const table: [string, string][] = [
    ["", "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"],
    ["abc", "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"],
    [
      "The quick brown fox jumps over the lazy dog",
      "01718cec35cd3d796dd00020e0bfecb473ad23457d063b75eff29c0ffa2e58a9",
    ],
  ];
  for (const [input, expected] of table) {
    assert.equal(hex(blake2b256(text.encode(input))), expected, JSON.stringify(input));
  }
});

Deno.test("blake2b-512 agrees with node:crypto on every length around the block boundaries", () => {
  const data = new Uint8Array(600);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
  for (let length = 0; length <= data.length; length++) {
    const input = data.subarray(0, length);
    const expected = createHash("blake2b512").update(input).digest("hex");
    assert.equal(hex(blake2b(input)), expected, `length ${length}`);
  }
});

Deno.test("blake2b rejects output lengths outside 1-64", () => {
  for (const bad of [0, 65, 1.5, -1]) {
    assert.throws(() => blake2b(new Uint8Array(), bad), RangeError);
  }
  assert.equal(blake2b(new Uint8Array(), 1).length, 1);
});
