/**
 * Bech32 (BIP 173) decoding and encoding, for Cardano's `pool1...` ids. Small and our own on
 * purpose: the configuration (parsed by the privileged core, which imports no npm code) accepts
 * a bech32 `POOL_ID`. Bech32m (BIP 350) is not accepted: Cardano uses plain bech32.
 *
 * Pure: needs no permissions.
 *
 * @module
 */

const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATORS = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

/** Thrown for a string that is not valid bech32; the message says which rule failed. */
export class Bech32Error extends Error {
  override name = "Bech32Error";
}

/** A decoded bech32 string: its human-readable prefix and its data bytes. */
export interface Bech32 {
  prefix: string;
  bytes: Uint8Array;
}

function polymod(values: number[]): number {
  let checksum = 1;
  for (const value of values) {
    const top = checksum >>> 25;
    checksum = ((checksum & 0x1ffffff) << 5) ^ value;
    for (let i = 0; i < 5; i++) {
      if ((top >>> i) & 1) checksum ^= GENERATORS[i]!;
    }
  }
  return checksum >>> 0;
}

function expandPrefix(prefix: string): number[] {
  const out: number[] = [];
  for (const char of prefix) out.push(char.charCodeAt(0) >> 5);
  out.push(0);
  for (const char of prefix) out.push(char.charCodeAt(0) & 31);
  return out;
}

/** Regroups `data` from `from`-bit to `to`-bit words; `pad` as BIP 173's convertbits. */
function convertBits(data: Iterable<number>, from: number, to: number, pad: boolean): number[] {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  const max = (1 << to) - 1;
  for (const value of data) {
    acc = (acc << from) | value;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >>> bits) & max);
    }
    acc &= (1 << bits) - 1;
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & max);
  } else if (bits >= from || ((acc << (to - bits)) & max) !== 0) {
    throw new Bech32Error("Cannot decode bech32: the data has non-zero padding");
  }
  return out;
}

/**
 * Decodes a bech32 string (any length up to `maxLength`, default 1023 as Cardano allows).
 *
 * @throws {Bech32Error} for mixed case, a missing separator, a character outside the charset,
 * a wrong checksum or bad padding
 */
export function decodeBech32(text: string, maxLength = 1023): Bech32 {
  if (text.length > maxLength) {
    throw new Bech32Error(`Cannot decode bech32: ${text.length} characters, at most ${maxLength}`);
  }
  if (text !== text.toLowerCase() && text !== text.toUpperCase()) {
    throw new Bech32Error("Cannot decode bech32: it mixes upper and lower case");
  }
  const lower = text.toLowerCase();
  const separator = lower.lastIndexOf("1");
  if (separator < 1 || separator + 7 > lower.length) {
    throw new Bech32Error(
      "Cannot decode bech32: expected prefix, '1' and at least 6 checksum characters",
    );
  }
  const prefix = lower.slice(0, separator);
  for (const char of prefix) {
    const code = char.charCodeAt(0);
    if (code < 33 || code > 126) {
      throw new Bech32Error("Cannot decode bech32: the prefix has a character outside 33-126");
    }
  }
  const values: number[] = [];
  for (let i = separator + 1; i < lower.length; i++) {
    const value = CHARSET.indexOf(lower[i]!);
    if (value < 0) {
      throw new Bech32Error(
        `Cannot decode bech32: character ${JSON.stringify(lower[i])} at ${i} is not in the charset`,
      );
    }
    values.push(value);
  }
  if (polymod([...expandPrefix(prefix), ...values]) !== 1) {
    throw new Bech32Error("Cannot decode bech32: the checksum is wrong (a typo?)");
  }
  return { prefix, bytes: Uint8Array.from(convertBits(values.slice(0, -6), 5, 8, false)) };
}

/** Encodes `bytes` under `prefix` (lower case). Pure. */
export function encodeBech32(prefix: string, bytes: Uint8Array): string {
  const words = convertBits(bytes, 8, 5, true);
  const mod = polymod([...expandPrefix(prefix), ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  const checksum = Array.from({ length: 6 }, (_, i) => (mod >>> (5 * (5 - i))) & 31);
  return `${prefix}1${[...words, ...checksum].map((w) => CHARSET[w]).join("")}`;
}
