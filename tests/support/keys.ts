/**
 * Throwaway forging credentials for tests, generated the way cardano-cli generates real ones, so
 * every check forge-manager makes meets the real structure:
 * - the KES key is a real Sum6KES signing key (cardano-base's layout: sk_0 || r_1 || vk_0 ||
 *   vk_1 at each of six levels, seeds expanded with Blake2b-256, Ed25519 leaves), 608 bytes;
 * - the VRF key is a seed and the verification key it derives (libsodium's Praos VRF keys are
 *   Ed25519 key pairs), 64 bytes;
 * - the operational certificate is signed by a freshly generated Ed25519 cold key over the
 *   bytes cardano-ledger signs.
 * They are nobody's keys and cannot forge for any registered pool; every envelope says so.
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import { blake2b } from "@noble/hashes/blake2.js";
import {
  type CredentialTriple,
  KES_KEY_BYTES,
  KES_KEY_TYPE,
  OPCERT_TYPE,
  opCertSignable,
  poolIdOf,
  VRF_KEY_TYPE,
} from "../../lib/cardano/cardano_keys.ts";
import { kesPeriodAt, MAINNET_KES_TIMING } from "../../lib/cardano/kes_period.ts";

/** The description every test envelope carries. */
export const DUMMY_DESCRIPTION = "forge-manager test key, not a real key";

/** The file names {@linkcode writeCredentialSet} uses, as the node's usual names. */
export const CREDENTIAL_FILE_NAMES: CredentialTriple<string> = {
  kes: "kes.skey",
  vrf: "vrf.skey",
  opcert: "node.cert",
};

/** A pool's cold key pair (the seed is the signing key). */
export interface ColdKey {
  seed: Uint8Array;
  vkey: Uint8Array;
  /** Blake2b-224 of `vkey`, hex. */
  poolId: string;
}

/** Options of {@linkcode makeCredentialSet}. */
export interface CredentialSetOptions {
  /** The certificate's issue counter (default 0). */
  counter?: number;
  /**
   * The certificate's first KES period (default: mainnet's current period by the wall clock, so
   * that a default set can forge now; give one to test expiry).
   */
  kesStartPeriod?: number;
  /** The pool's cold key (default: a fresh one). */
  cold?: ColdKey;
  /**
   * How the certificate is signed: by `cold` (default), by another cold key while naming
   * `cold` (`"other_key"`), or with 64 zero bytes (`"zero"`).
   */
  signature?: "valid" | "other_key" | "zero";
}

/** A consistent credential set: the three file texts. */
export type CredentialSet = CredentialTriple<string>;

/** A credential set with the public facts a test compares against. */
export interface PoolCredentials {
  set: CredentialSet;
  cold: ColdKey;
  /** The KES verification key (the certificate's hot key). */
  kesVkey: Uint8Array;
  /** The VRF verification key. */
  vrfVkey: Uint8Array;
}

/** A fresh cold key pair. */
export function makeColdKey(seed: Uint8Array = randomBytes(32)): ColdKey {
  const vkey = ed25519.getPublicKey(seed);
  return { seed, vkey, poolId: poolIdOf(vkey) };
}

/**
 * A real Sum6KES signing key (608 bytes) and its verification key, from a 32-byte seed, as
 * cardano-base's `genKeyKES` for `Sum6KES Ed25519DSIGN Blake2b_256` at period 0.
 */
export function makeKesKey(seed: Uint8Array = randomBytes(32)): { sk: Uint8Array; vk: Uint8Array } {
  const gen = (seed: Uint8Array, depth: number): { sk: Uint8Array; vk: Uint8Array } => {
    if (depth === 0) return { sk: seed.slice(), vk: ed25519.getPublicKey(seed) };
    const r0 = blake2b(concat(Uint8Array.of(1), seed), { dkLen: 32 });
    const r1 = blake2b(concat(Uint8Array.of(2), seed), { dkLen: 32 });
    const left = gen(r0, depth - 1);
    const right = gen(r1, depth - 1);
    return {
      sk: concat(left.sk, r1, left.vk, right.vk),
      vk: blake2b(concat(left.vk, right.vk), { dkLen: 32 }),
    };
  };
  const key = gen(seed, 6);
  if (key.sk.length !== KES_KEY_BYTES) throw new Error(`Sum6KES key is ${key.sk.length} bytes`);
  return key;
}

/**
 * Makes a consistent credential set and returns it with its public facts: a real KES key, a
 * real VRF key and a certificate for them signed by the pool's cold key. Needs no permissions.
 */
export function makePoolCredentials(opts: CredentialSetOptions = {}): PoolCredentials {
  const cold = opts.cold ?? makeColdKey();
  const kes = makeKesKey();
  const vrfSeed = randomBytes(32);
  const vrfVkey = ed25519.getPublicKey(vrfSeed);
  const counter = opts.counter ?? 0;
  const kesStartPeriod = opts.kesStartPeriod ?? kesPeriodAt(MAINNET_KES_TIMING, Date.now());
  const signable = opCertSignable({ hotVkey: kes.vk, issueCounter: counter, kesStartPeriod });
  const signature = opts.signature === "zero"
    ? new Uint8Array(64)
    : ed25519.sign(signable, opts.signature === "other_key" ? randomBytes(32) : cold.seed);
  const opcert = cborArray([
    cborArray([
      cborBytes(kes.vk),
      cborUint(counter),
      cborUint(kesStartPeriod),
      cborBytes(signature),
    ]),
    cborBytes(cold.vkey),
  ]);
  return {
    set: {
      kes: envelope(KES_KEY_TYPE, cborBytes(kes.sk)),
      vrf: envelope(VRF_KEY_TYPE, cborBytes(concat(vrfSeed, vrfVkey))),
      opcert: envelope(OPCERT_TYPE, opcert),
    },
    cold,
    kesVkey: kes.vk,
    vrfVkey,
  };
}

/** {@linkcode makePoolCredentials}, the file texts only. Needs no permissions. */
export function makeCredentialSet(opts: CredentialSetOptions = {}): CredentialSet {
  return makePoolCredentials(opts).set;
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

/** The concatenation of `parts`. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
