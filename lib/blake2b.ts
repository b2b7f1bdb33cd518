/**
 * BLAKE2b (RFC 7693), unkeyed, in plain TypeScript: Cardano hashes KES verification keys with
 * Blake2b-256, and neither Web Crypto nor `node:crypto` offers a 256-bit BLAKE2b (the param
 * block includes the output length, so truncating `blake2b512` gives a different digest).
 *
 * Pure: needs no permissions.
 *
 * @module
 */

const IV32 = new Uint32Array([
  0xf3bcc908,
  0x6a09e667,
  0x84caa73b,
  0xbb67ae85,
  0xfe94f82b,
  0x3c6ef372,
  0x5f1d36f1,
  0xa54ff53a,
  0xade682d1,
  0x510e527f,
  0x2b3e6c1f,
  0x9b05688c,
  0xfb41bd6b,
  0x1f83d9ab,
  0x137e2179,
  0x5be0cd19,
]);

// Message word schedule for the 12 rounds (rounds 10 and 11 repeat 0 and 1).
const SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
].map((row) => row.map((i) => i * 2));

const BLOCK_BYTES = 128;

/**
 * Hashes `data` with unkeyed BLAKE2b and returns `outLength` bytes (1 to 64, default 64).
 *
 * @throws {RangeError} if `outLength` is outside 1..64.
 */
export function blake2b(data: Uint8Array, outLength = 64): Uint8Array {
  if (!Number.isInteger(outLength) || outLength < 1 || outLength > 64) {
    throw new RangeError(`Cannot hash with BLAKE2b: output length is ${outLength}, expected 1-64`);
  }
  // State h as 8 little-endian 64-bit words, each stored as (low, high) 32-bit halves.
  const h = new Uint32Array(IV32);
  h[0] = h[0]! ^ (0x01010000 ^ outLength); // param block: depth 1, fanout 1, no key

  const block = new Uint8Array(BLOCK_BYTES);
  const m = new Uint32Array(32);
  const v = new Uint32Array(32);
  let counter = 0; // bytes hashed so far; safe as a number far beyond any input we get

  let offset = 0;
  // Compress every full block except the last one (the last block must carry the final flag).
  while (data.length - offset > BLOCK_BYTES) {
    block.set(data.subarray(offset, offset + BLOCK_BYTES));
    counter += BLOCK_BYTES;
    compress(h, block, m, v, counter, false);
    offset += BLOCK_BYTES;
  }
  block.fill(0);
  block.set(data.subarray(offset));
  counter += data.length - offset;
  compress(h, block, m, v, counter, true);

  const out = new Uint8Array(outLength);
  for (let i = 0; i < outLength; i++) {
    out[i] = h[i >> 2]! >>> (8 * (i & 3));
  }
  return out;
}

/** Blake2b-256: {@linkcode blake2b} with a 32-byte output. Pure. */
export function blake2b256(data: Uint8Array): Uint8Array {
  return blake2b(data, 32);
}

function compress(
  h: Uint32Array,
  block: Uint8Array,
  m: Uint32Array,
  v: Uint32Array,
  counter: number,
  last: boolean,
): void {
  for (let i = 0; i < 32; i++) {
    const j = i * 4;
    m[i] = block[j]! | (block[j + 1]! << 8) | (block[j + 2]! << 16) | (block[j + 3]! << 24);
  }
  v.set(h, 0);
  v.set(IV32, 16);
  // v[12..13] ^= t (128-bit counter; the high 64 bits stay zero for inputs below 2^53 bytes)
  v[24] = v[24]! ^ (counter >>> 0);
  v[25] = v[25]! ^ Math.floor(counter / 0x100000000);
  if (last) {
    v[28] = ~v[28]!;
    v[29] = ~v[29]!;
  }
  for (let round = 0; round < 12; round++) {
    const s = SIGMA[round]!;
    mix(v, m, 0, 8, 16, 24, s[0]!, s[1]!);
    mix(v, m, 2, 10, 18, 26, s[2]!, s[3]!);
    mix(v, m, 4, 12, 20, 28, s[4]!, s[5]!);
    mix(v, m, 6, 14, 22, 30, s[6]!, s[7]!);
    mix(v, m, 0, 10, 20, 30, s[8]!, s[9]!);
    mix(v, m, 2, 12, 22, 24, s[10]!, s[11]!);
    mix(v, m, 4, 14, 16, 26, s[12]!, s[13]!);
    mix(v, m, 6, 8, 18, 28, s[14]!, s[15]!);
  }
  for (let i = 0; i < 16; i++) {
    h[i] = h[i]! ^ v[i]! ^ v[i + 16]!;
  }
}

/** v[a] += v[b] + x, as 64-bit words stored in (low, high) pairs. */
function add3(v: Uint32Array, a: number, b: number, xLo: number, xHi: number): void {
  const lo = v[a]! + v[b]! + xLo;
  // Carries: count how many times the 32-bit low sum wrapped.
  const carry = Math.floor(lo / 0x100000000);
  v[a] = lo;
  v[a + 1] = v[a + 1]! + v[b + 1]! + xHi + carry;
}

/** v[a] = rotr64(v[a] ^ v[b], n) for n in {16, 24, 32, 63}. */
function xorRotr(v: Uint32Array, a: number, b: number, n: number): void {
  const lo = v[a]! ^ v[b]!;
  const hi = v[a + 1]! ^ v[b + 1]!;
  if (n === 32) {
    v[a] = hi;
    v[a + 1] = lo;
  } else if (n < 32) {
    v[a] = (lo >>> n) | (hi << (32 - n));
    v[a + 1] = (hi >>> n) | (lo << (32 - n));
  } else {
    const k = n - 32;
    v[a] = (hi >>> k) | (lo << (32 - k));
    v[a + 1] = (lo >>> k) | (hi << (32 - k));
  }
}

/** The G mixing function of RFC 7693 section 3.1, on word offsets a, b, c, d. */
function mix(
  v: Uint32Array,
  m: Uint32Array,
  a: number,
  b: number,
  c: number,
  d: number,
  ix: number,
  iy: number,
): void {
  add3(v, a, b, m[ix]!, m[ix + 1]!);
  xorRotr(v, d, a, 32);
  add3(v, c, d, 0, 0);
  xorRotr(v, b, c, 24);
  add3(v, a, b, m[iy]!, m[iy + 1]!);
  xorRotr(v, d, a, 16);
  add3(v, c, d, 0, 0);
  xorRotr(v, b, c, 63);
}
