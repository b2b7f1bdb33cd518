/**
 * Decoy forging credentials: a consistent set made at start, in memory, for the node to boot on
 * while its replica does not lead. cardano-node exits at boot when a credential file it was given
 * is missing, so a standby's node needs SOME set; this one belongs to no pool:
 * - a real Sum6KES signing key (cardano-base's layout: sk_0 || r_1 || vk_0 || vk_1 at each of six
 *   levels, seeds expanded with Blake2b-256, Ed25519 leaves), 608 bytes, from a random seed;
 * - a real Praos VRF key (libsodium's are Ed25519 key pairs: seed then verification key), 64
 *   bytes, from a random seed;
 * - an operational certificate for that KES key, signed by a throwaway Ed25519 cold key over the
 *   bytes cardano-ledger signs (`opCertSignable`).
 * So the node accepts it at start and on SIGHUP (every check it makes passes), and it can never
 * forge for our pool: its cold key is nobody's (no stake, so it never leads a slot) and its VRF
 * key is not the one our pool registered. Every envelope says in its description that it is a
 * decoy. The cold key's seed is dropped once the certificate is signed.
 *
 * The same construction makes the tests' key sets (tests/support/keys.ts), the way cardano-cli
 * makes real ones.
 *
 * Pure but for the randomness (`crypto.getRandomValues`): needs no permissions.
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import { blake2b } from "@noble/hashes/blake2.js";
import { cborArray, cborBytes, cborUint, concatBytes } from "./cbor.ts";
import {
  KES_KEY_BYTES,
  KES_KEY_TYPE,
  OPCERT_TYPE,
  opCertSignable,
  poolIdOf,
  VRF_KEY_TYPE,
} from "./cardano_keys.ts";
import { toHex } from "../base/bytes.ts";

/**
 * How every decoy envelope's description begins: a reader (an operator, `check-credentials`)
 * tells a decoy from a pool's key by it.
 */
export const DECOY_MARK = "forge-manager decoy";

/** The description of each decoy envelope. */
export const DECOY_DESCRIPTION =
  `${DECOY_MARK}: made at start, belongs to no pool, holds no pool's keys`;

/** A cold key pair (the seed is the signing key). */
export interface ColdKey {
  seed: Uint8Array;
  vkey: Uint8Array;
  /** Blake2b-224 of `vkey`, 56 hex digits. */
  poolId: string;
}

/** A signing key and its verification key. */
export interface KeyPair {
  sk: Uint8Array;
  vk: Uint8Array;
}

/** The fields of an operational certificate, in cardano-ledger's order. */
export interface OpCertFields {
  hotVkey: Uint8Array;
  issueCounter: number;
  kesStartPeriod: number;
  coldSignature: Uint8Array;
  coldVkey: Uint8Array;
}

/**
 * A decoy set: the envelopes' texts (`kes` undefined when the KES key comes from a KES agent) and
 * the pool id of its throwaway cold key (public; logged so an operator can tell it apart).
 */
export interface DecoyCredentials {
  kes: string | undefined;
  vrf: string;
  opcert: string;
  poolId: string;
}

/** Random bytes from `crypto.getRandomValues`. */
export function randomBytes(length: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(length));
}

/** A cold key pair from a 32-byte seed (default: a fresh random one). */
export function makeColdKey(seed: Uint8Array = randomBytes(32)): ColdKey {
  const vkey = ed25519.getPublicKey(seed);
  return { seed, vkey, poolId: poolIdOf(vkey) };
}

/**
 * A real Sum6KES signing key (608 bytes) and its verification key, from a 32-byte seed, as
 * cardano-base's `genKeyKES` for `Sum6KES Ed25519DSIGN Blake2b_256` at period 0.
 */
export function makeKesKey(seed: Uint8Array = randomBytes(32)): KeyPair {
  const gen = (seed: Uint8Array, depth: number): KeyPair => {
    if (depth === 0) return { sk: seed.slice(), vk: ed25519.getPublicKey(seed) };
    const r0 = blake2b(concatBytes(Uint8Array.of(1), seed), { dkLen: 32 });
    const r1 = blake2b(concatBytes(Uint8Array.of(2), seed), { dkLen: 32 });
    const left = gen(r0, depth - 1);
    const right = gen(r1, depth - 1);
    return {
      sk: concatBytes(left.sk, r1, left.vk, right.vk),
      vk: blake2b(concatBytes(left.vk, right.vk), { dkLen: 32 }),
    };
  };
  const key = gen(seed, 6);
  if (key.sk.length !== KES_KEY_BYTES) {
    throw new Error(`Cannot make a Sum6KES key: it is ${key.sk.length} bytes, expected 608`);
  }
  return key;
}

/** A Praos VRF key pair from a 32-byte seed: `sk` is the 64-byte seed || verification key. */
export function makeVrfKey(seed: Uint8Array = randomBytes(32)): KeyPair {
  const vk = ed25519.getPublicKey(seed);
  return { sk: concatBytes(seed, vk), vk };
}

/** The cold key's signature over a certificate's fields (Ed25519, as cardano-ledger signs). */
export function signOpCert(
  cold: Pick<ColdKey, "seed">,
  fields: { hotVkey: Uint8Array; issueCounter: number; kesStartPeriod: number },
): Uint8Array {
  return ed25519.sign(opCertSignable(fields), cold.seed);
}

/** A certificate's CBOR: `[[hot_vkey, counter, kes_start_period, cold_sig], cold_vkey]`. */
export function opCertCbor(fields: OpCertFields): Uint8Array {
  return cborArray([
    cborArray([
      cborBytes(fields.hotVkey),
      cborUint(fields.issueCounter),
      cborUint(fields.kesStartPeriod),
      cborBytes(fields.coldSignature),
    ]),
    cborBytes(fields.coldVkey),
  ]);
}

/** A text envelope as cardano-cli writes it (4-space indent, trailing newline). */
export function textEnvelope(type: string, cbor: Uint8Array, description: string): string {
  return JSON.stringify({ type, description, cborHex: toHex(cbor) }, null, 4) + "\n";
}

/**
 * Makes a decoy set (see the module's header): random KES and VRF keys and a certificate for
 * the KES key signed by a throwaway cold key, counter 0.
 *
 * @param opts.kesStartPeriod the certificate's first KES period: the current one, so that the
 *   set looks current to anyone who inspects it (the node does not judge it at boot)
 * @param opts.withKes false when a KES agent supplies the node's KES key: no KES file is made,
 *   and the certificate names a fresh hot key that nothing holds
 */
export function makeDecoyCredentials(
  opts: { kesStartPeriod: number; withKes?: boolean },
): DecoyCredentials {
  const kes = makeKesKey();
  const vrf = makeVrfKey();
  const cold = makeColdKey();
  const fields = { hotVkey: kes.vk, issueCounter: 0, kesStartPeriod: opts.kesStartPeriod };
  const opcert = opCertCbor({
    ...fields,
    coldSignature: signOpCert(cold, fields),
    coldVkey: cold.vkey,
  });
  cold.seed.fill(0); // nothing is ever signed with it again
  const set: DecoyCredentials = {
    kes: opts.withKes === false
      ? undefined
      : textEnvelope(KES_KEY_TYPE, cborBytes(kes.sk), DECOY_DESCRIPTION),
    vrf: textEnvelope(VRF_KEY_TYPE, cborBytes(vrf.sk), DECOY_DESCRIPTION),
    opcert: textEnvelope(OPCERT_TYPE, opcert, DECOY_DESCRIPTION),
    poolId: cold.poolId,
  };
  kes.sk.fill(0);
  vrf.sk.fill(0);
  return set;
}

/**
 * Whether an envelope's text is a forge-manager decoy (its description begins with
 * {@linkcode DECOY_MARK}). False for anything that is not a JSON text envelope.
 */
export function isDecoyEnvelope(text: string): boolean {
  try {
    const description = (JSON.parse(text) as { description?: unknown }).description;
    return typeof description === "string" && description.startsWith(DECOY_MARK);
  } catch {
    return false;
  }
}
