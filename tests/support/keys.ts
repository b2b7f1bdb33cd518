/**
 * Dummy forging credentials for tests: text envelopes shaped exactly like cardano-cli's (a
 * 608-byte KES key, a 64-byte VRF key and an operational certificate whose hot key matches the
 * KES key) but filled with random bytes. They are NOT real keys and cannot forge anything; every
 * envelope says so in its description.
 *
 * @module
 */

import { blake2b256 } from "../../lib/blake2b.ts";
import {
  type CredentialTriple,
  KES_KEY_BYTES,
  KES_KEY_TYPE,
  OPCERT_TYPE,
  VRF_KEY_BYTES,
  VRF_KEY_TYPE,
} from "../../lib/cardano_keys.ts";

/** The description every dummy envelope carries. */
export const DUMMY_DESCRIPTION = "forge-manager test key, not a real key";

/** The file names {@linkcode writeCredentialSet} uses, as the node's usual names. */
export const CREDENTIAL_FILE_NAMES: CredentialTriple<string> = {
  kes: "kes.skey",
  vrf: "vrf.skey",
  opcert: "node.cert",
};

/** Options of {@linkcode makeCredentialSet}. */
export interface CredentialSetOptions {
  /** The certificate's issue counter (default 0). */
  counter?: number;
  /** The certificate's first KES period (default 0). */
  kesStartPeriod?: number;
  /** Sign with random bytes instead of zeros (default false). */
  randomSignature?: boolean;
}

/** A consistent dummy credential set: the three file texts. */
export type CredentialSet = CredentialTriple<string>;

/**
 * Makes a consistent set of dummy credential texts: random KES and VRF keys and a certificate
 * whose hot key is the KES key's verification key. Needs no permissions.
 */
export function makeCredentialSet(opts: CredentialSetOptions = {}): CredentialSet {
  const kesBytes = randomBytes(KES_KEY_BYTES);
  const hotVkey = blake2b256(kesBytes.subarray(KES_KEY_BYTES - 64));
  const signature = opts.randomSignature ? randomBytes(64) : new Uint8Array(64);
  const opcert = cborArray([
    cborArray([
      cborBytes(hotVkey),
      cborUint(opts.counter ?? 0),
      cborUint(opts.kesStartPeriod ?? 0),
      cborBytes(signature),
    ]),
    cborBytes(randomBytes(32)),
  ]);
  return {
    kes: envelope(KES_KEY_TYPE, cborBytes(kesBytes)),
    vrf: envelope(VRF_KEY_TYPE, cborBytes(randomBytes(VRF_KEY_BYTES))),
    opcert: envelope(OPCERT_TYPE, opcert),
  };
}

/**
 * Writes a credential set (a fresh dummy one by default) into `dir` as `kes.skey`, `vrf.skey`
 * and `node.cert`, each with mode 0600, and returns their paths. Needs write permission on
 * `dir`.
 */
export async function writeCredentialSet(
  dir: string,
  set: CredentialSet = makeCredentialSet(),
): Promise<CredentialTriple<string>> {
  const paths: CredentialTriple<string> = {
    kes: `${dir}/${CREDENTIAL_FILE_NAMES.kes}`,
    vrf: `${dir}/${CREDENTIAL_FILE_NAMES.vrf}`,
    opcert: `${dir}/${CREDENTIAL_FILE_NAMES.opcert}`,
  };
  for (const kind of ["kes", "vrf", "opcert"] as const) {
    await Deno.writeTextFile(paths[kind], set[kind], { mode: 0o600 });
    await Deno.chmod(paths[kind], 0o600); // mode only applies when the file is created
  }
  return paths;
}

/** A text envelope as cardano-cli writes it (4-space indent, trailing newline). */
export function envelope(type: string, cbor: Uint8Array, description = DUMMY_DESCRIPTION): string {
  return JSON.stringify({ type, description, cborHex: toHex(cbor) }, null, 4) + "\n";
}

/** The cborHex field of an envelope text (for tests that look for leaks). */
export function cborHexOf(text: string): string {
  return (JSON.parse(text) as { cborHex: string }).cborHex;
}

/** CBOR byte string (major type 2) with the shortest length header. */
export function cborBytes(bytes: Uint8Array): Uint8Array {
  return concat(header(2, bytes.length), bytes);
}

/** CBOR unsigned integer (major type 0). */
export function cborUint(value: number): Uint8Array {
  return header(0, value);
}

/** CBOR definite-length array (major type 4) of already-encoded items. */
export function cborArray(items: Uint8Array[]): Uint8Array {
  return concat(header(4, items.length), ...items);
}

/** Random bytes from `crypto.getRandomValues`. */
export function randomBytes(length: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(length));
}

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function header(major: number, value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`Cannot encode CBOR header: value is ${value}, expected a uint`);
  }
  const type = major << 5;
  if (value < 24) return Uint8Array.of(type | value);
  if (value < 0x100) return Uint8Array.of(type | 24, value);
  if (value < 0x10000) return Uint8Array.of(type | 25, value >> 8, value & 0xff);
  if (value < 0x100000000) {
    return Uint8Array.of(
      type | 26,
      value >>> 24,
      (value >> 16) & 0xff,
      (value >> 8) & 0xff,
      value & 0xff,
    );
  }
  const out = new Uint8Array(9);
  out[0] = type | 27;
  new DataView(out.buffer).setBigUint64(1, BigInt(value));
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
