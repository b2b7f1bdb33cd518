/**
 * Stake pool ids as operators write them: 56 hex digits (the Blake2b-224 hash of the pool's cold
 * verification key) or the same 28 bytes in bech32 under the prefix `pool`. Our own code only, so
 * the configuration can accept either spelling in the privileged core.
 *
 * Pure: needs no permissions.
 *
 * @module
 */

import { Bech32Error, decodeBech32, encodeBech32 } from "./bech32.ts";

/** Bytes in a pool id. */
export const POOL_ID_BYTES = 28;

/**
 * Parses a pool id in hex (56 digits, either case) or bech32 (`pool1...`) and returns its
 * canonical form, 56 lower-case hex digits.
 *
 * @throws {Error} saying which rule the text breaks (never echoing more than its prefix)
 */
export function parsePoolId(text: string): string {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]+$/.test(trimmed)) {
    if (trimmed.length !== POOL_ID_BYTES * 2) {
      throw new Error(
        `Cannot read the pool id: ${trimmed.length} hex digits, expected ${POOL_ID_BYTES * 2}`,
      );
    }
    return trimmed.toLowerCase();
  }
  let decoded;
  try {
    decoded = decodeBech32(trimmed);
  } catch (err) {
    if (err instanceof Bech32Error) {
      throw new Error(
        `Cannot read the pool id: expected 56 hex digits or bech32 pool1...; ${err.message}`,
      );
    }
    throw err;
  }
  if (decoded.prefix !== "pool") {
    throw new Error(
      `Cannot read the pool id: the bech32 prefix is ${
        JSON.stringify(decoded.prefix)
      }, expected "pool"`,
    );
  }
  if (decoded.bytes.length !== POOL_ID_BYTES) {
    throw new Error(
      `Cannot read the pool id: it holds ${decoded.bytes.length} bytes, expected ${POOL_ID_BYTES}`,
    );
  }
  return Array.from(decoded.bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The bech32 spelling (`pool1...`) of a pool id given as 56 hex digits. Pure. */
export function poolIdBech32(hex: string): string {
  const canonical = parsePoolId(hex);
  const bytes = Uint8Array.from(canonical.match(/../g)!, (pair) => parseInt(pair, 16));
  return encodeBech32("pool", bytes);
}
