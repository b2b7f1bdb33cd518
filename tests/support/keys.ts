/**
 * Throwaway forging credentials for tests, generated the way cardano-cli generates real ones, so
 * every check forge-manager makes meets the real structure:
 * - the KES key is a real Sum6KES signing key (cardano-base's layout: sk_0 || r_1 || vk_0 ||
 *   vk_1 at each of six levels, seeds expanded with Blake2b-256, Ed25519 leaves), 608 bytes;
 * - the VRF key is a seed and the verification key it derives (libsodium's Praos VRF keys are
 *   Ed25519 key pairs), 64 bytes;
 * - the operational certificate is signed by a freshly generated Ed25519 cold key over the
 *   bytes cardano-ledger signs.
 * They are nobody's keys and cannot forge for any registered pool; every envelope says so. The
 * keys and the certificate come from lib/cardano/decoy_keys.ts, which makes the sidecar's decoys
 * the same way; this module adds the test options (counter, start period, a bad signature) and
 * the test description.
 *
 * @module
 */

import {
  type CredentialTriple,
  KES_KEY_TYPE,
  OPCERT_TYPE,
  VRF_KEY_TYPE,
} from "../../lib/cardano/cardano_keys.ts";
import { cborBytes } from "../../lib/cardano/cbor.ts";
import {
  type ColdKey,
  makeColdKey,
  makeKesKey,
  makeVrfKey,
  opCertCbor,
  randomBytes,
  signOpCert,
  textEnvelope,
} from "../../lib/cardano/decoy_keys.ts";
import { kesPeriodAt, MAINNET_KES_TIMING } from "../../lib/cardano/kes_period.ts";

export { cborArray, cborBytes, cborUint } from "../../lib/cardano/cbor.ts";
export { toHex } from "../../lib/base/bytes.ts";
export { type ColdKey, makeColdKey, randomBytes };

/** The description every test envelope carries. */
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

/**
 * Makes a consistent credential set and returns it with its public facts: a real KES key, a
 * real VRF key and a certificate for them signed by the pool's cold key. Needs no permissions.
 */
export function makePoolCredentials(opts: CredentialSetOptions = {}): PoolCredentials {
  const cold = opts.cold ?? makeColdKey();
  const kes = makeKesKey();
  const vrf = makeVrfKey();
  const fields = {
    hotVkey: kes.vk,
    issueCounter: opts.counter ?? 0,
    kesStartPeriod: opts.kesStartPeriod ?? kesPeriodAt(MAINNET_KES_TIMING, Date.now()),
  };
  const coldSignature = opts.signature === "zero"
    ? new Uint8Array(64)
    : signOpCert(opts.signature === "other_key" ? makeColdKey() : cold, fields);
  return {
    set: {
      kes: envelope(KES_KEY_TYPE, cborBytes(kes.sk)),
      vrf: envelope(VRF_KEY_TYPE, cborBytes(vrf.sk)),
      opcert: envelope(OPCERT_TYPE, opCertCbor({ ...fields, coldSignature, coldVkey: cold.vkey })),
    },
    cold,
    kesVkey: kes.vk,
    vrfVkey: vrf.vk,
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
  return textEnvelope(type, cbor, description);
}

/** The cborHex field of an envelope text (for tests that look for leaks). */
export function cborHexOf(text: string): string {
  return (JSON.parse(text) as { cborHex: string }).cborHex;
}
