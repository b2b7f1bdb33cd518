/**
 * Parses and validates the three forging credential files of a Cardano stake pool, given their
 * text: the KES signing key, the VRF signing key and the operational certificate, each a JSON
 * text envelope `{type, description, cborHex}`. It checks what cardano-node checks on start and
 * on SIGHUP (type, CBOR shape, sizes, and that the KES key matches the certificate's hot key), so
 * we never publish a set the node would refuse.
 *
 * It also derives what the node does not check but the chain does: whether the pool's cold key
 * really signed the certificate (Ed25519 over the hot key, the counter and the start period, as
 * cardano-ledger's `OCertSignable` defines the bytes) and the pool id (Blake2b-224 of the cold
 * verification key). The cryptography is `@noble/hashes` and `@noble/curves` (audited).
 *
 * Results hold only public material (verification keys, counter, start period): the signing key
 * bytes are dropped as soon as they are checked. Error messages name the file by the label the
 * caller passes (usually its path) and NEVER contain key material: no cborHex, no bytes, and no
 * text copied from the file except a sanitized, shortened `type`.
 *
 * Pure: needs no permissions; callers read the files.
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import { blake2b } from "@noble/hashes/blake2.js";
import { CborError, type CborItem, decodeCbor, describeCbor } from "./cbor.ts";
import { equalBytes, toHex } from "../base/bytes.ts";

/** Text envelope type of a KES signing key (Sum6KES over Ed25519, 64 periods). */
export const KES_KEY_TYPE = "KesSigningKey_ed25519_kes_2^6";
/** Text envelope type of a VRF signing key. */
export const VRF_KEY_TYPE = "VrfSigningKey_PraosVRF";
/** Text envelope type of an operational certificate. */
export const OPCERT_TYPE = "NodeOperationalCertificate";

/** Size of a serialized Sum6KES signing key; it ends with the two child verification keys. */
export const KES_KEY_BYTES = 608;
/** Size of a VRF signing key: 32-byte seed then 32-byte verification key. */
export const VRF_KEY_BYTES = 64;

/** Which credential a message or error is about. */
export type CredentialKind = "kes" | "vrf" | "opcert";

/** One value per credential: file texts, labels (paths) and so on. */
export interface CredentialTriple<T> {
  kes: T;
  vrf: T;
  opcert: T;
}

/** A credential set as forge-manager manages it: no KES key when a KES agent holds it. */
export type CredentialSet<T> =
  & Partial<Pick<CredentialTriple<T>, "kes">>
  & Omit<
    CredentialTriple<T>,
    "kes"
  >;

/** Thrown when a credential file cannot be used. The message is safe to log. */
export class CredentialError extends Error {
  override name = "CredentialError";
  /** The credential at fault; `"set"` when each is valid alone but they do not belong together. */
  readonly credential: CredentialKind | "set";
  /** The caller's label (usually the path) of the file at fault. */
  readonly label: string;

  constructor(message: string, credential: CredentialKind | "set", label: string) {
    super(message);
    this.credential = credential;
    this.label = label;
  }
}

/** A checked KES signing key, reduced to its public part. */
export interface KesKey {
  /** The KES verification key (32 bytes): Blake2b-256 of the key's last 64 bytes. */
  readonly vkey: Uint8Array;
}

/** A checked VRF signing key, reduced to its public part. */
export interface VrfKey {
  /** The VRF verification key (32 bytes): the key's last 32 bytes. */
  readonly vkey: Uint8Array;
  /**
   * Whether the verification key is the one its seed derives (libsodium's Praos VRF derives it
   * as an Ed25519 public key); false means a corrupt or hand-assembled key file.
   */
  readonly consistent: boolean;
}

/** A checked operational certificate (all of it is public, it is published in block headers). */
export interface OpCert {
  /** The hot KES verification key (32 bytes) the cold key delegates to. */
  readonly hotVkey: Uint8Array;
  /** The issue counter; on chain it must be exactly one more than the last one that minted. */
  readonly issueCounter: number;
  /** The first KES period the certificate is valid in. */
  readonly kesStartPeriod: number;
  /** The cold key's signature (64 bytes) over {@linkcode opCertSignable}. */
  readonly coldSignature: Uint8Array;
  /** The pool's cold verification key (32 bytes). */
  readonly coldVkey: Uint8Array;
}

/** Non-secret facts about a valid credential set, fine to log and export as metrics. */
export interface CredentialFacts {
  /** The certificate's issue counter. */
  issueCounter: number;
  /** The certificate's first valid KES period. */
  kesStartPeriod: number;
  /**
   * The first 8 hex digits of Blake2b-256 of the hot KES verification key: enough to tell two
   * certificates apart in a log line, too short to be mistaken for a key.
   */
  hotKeyId: string;
  /** The pool id: Blake2b-224 of the certificate's cold verification key, 56 hex digits. */
  poolId: string;
  /** Whether the cold key's signature over the certificate verifies. */
  signatureValid: boolean;
  /** Whether the VRF key's verification half is the one its seed derives. */
  vrfKeyConsistent: boolean;
}

const NOUNS: Record<CredentialKind, string> = {
  kes: "KES key",
  vrf: "VRF key",
  opcert: "operational certificate",
};

const OPCERT_SHAPE =
  "[[hot_kes_vkey bytes(32), issue_counter uint, kes_start_period uint, cold_sig bytes(64)], " +
  "cold_vkey bytes(32)]";

/**
 * Parses a KES signing key text envelope and derives its verification key.
 *
 * @param text the file's content
 * @param label how to name the file in errors, usually its path
 * @throws {CredentialError} if the file is not a valid `KesSigningKey_ed25519_kes_2^6` envelope
 */
export function parseKesKey(text: string, label: string): KesKey {
  const bytes = readByteString(text, "kes", label, KES_KEY_TYPE, KES_KEY_BYTES);
  // cardano-base SumKES: sk_0 || r_1 || vk_0 || vk_1, and vk = Blake2b-256(vk_0 || vk_1).
  const vkey = blake2b(bytes.subarray(KES_KEY_BYTES - 64), { dkLen: 32 });
  bytes.fill(0);
  return { vkey };
}

/**
 * Parses a VRF signing key text envelope.
 *
 * @param text the file's content
 * @param label how to name the file in errors, usually its path
 * @throws {CredentialError} if the file is not a valid `VrfSigningKey_PraosVRF` envelope
 */
export function parseVrfKey(text: string, label: string): VrfKey {
  const bytes = readByteString(text, "vrf", label, VRF_KEY_TYPE, VRF_KEY_BYTES);
  const vkey = bytes.slice(32);
  const derived = ed25519.getPublicKey(bytes.subarray(0, 32));
  bytes.fill(0);
  return { vkey, consistent: equalBytes(derived, vkey) };
}

/**
 * Parses an operational certificate text envelope.
 *
 * @param text the file's content
 * @param label how to name the file in errors, usually its path
 * @throws {CredentialError} if the file is not a valid `NodeOperationalCertificate` envelope
 */
export function parseOpCert(text: string, label: string): OpCert {
  const item = readCbor(text, "opcert", label, OPCERT_TYPE);
  const fail = (reason: string) => credentialError("opcert", label, reason);
  const wrongShape = () => fail(`expected CBOR ${OPCERT_SHAPE}, found ${describeShape(item)}`);
  if (!Array.isArray(item) || item.length !== 2) throw wrongShape();
  const [body, coldVkey] = item;
  if (!Array.isArray(body) || body.length !== 4) throw wrongShape();
  const [hotVkey, counter, period, signature] = body;
  if (
    !isBytes(hotVkey, 32) || typeof counter !== "bigint" || typeof period !== "bigint" ||
    !isBytes(signature, 64) || !isBytes(coldVkey, 32)
  ) {
    throw wrongShape();
  }
  return {
    hotVkey,
    issueCounter: toSafeNumber(counter, "issue_counter", fail),
    kesStartPeriod: toSafeNumber(period, "kes_start_period", fail),
    coldSignature: signature,
    coldVkey,
  };
}

/**
 * Validates a whole credential set as cardano-node does before forging with it: each file on
 * its own, then that the KES key is the certificate's hot key. Checks in the order KES key,
 * VRF key, certificate, match, and throws the first problem found.
 *
 * Without a KES key (`texts.kes` undefined: a KES agent supplies the node's key), the VRF key and
 * the certificate are checked alone; the facts come from the certificate as always, and whether
 * the agent's key is the certificate's hot key is for the agent to check when the key is
 * installed.
 *
 * @param texts the files' contents
 * @param labels how to name each file in errors, usually their paths
 * @returns non-secret facts about the set
 * @throws {CredentialError} for the first unusable file, or with `credential: "set"` on a
 * KES key / certificate mismatch
 */
export function validateCredentialSet(
  texts: CredentialSet<string>,
  labels: CredentialSet<string>,
): CredentialFacts {
  const kes = texts.kes === undefined ? undefined : parseKesKey(texts.kes, labels.kes ?? "KES key");
  const vrf = parseVrfKey(texts.vrf, labels.vrf);
  const opcert = parseOpCert(texts.opcert, labels.opcert);
  if (kes !== undefined && !equalBytes(kes.vkey, opcert.hotVkey)) {
    const label = labels.kes ?? "KES key";
    throw new CredentialError(
      `Cannot use KES key ${label} with operational certificate ${labels.opcert}: ` +
        "KES key does not match the operational certificate's hot key",
      "set",
      label,
    );
  }
  return {
    issueCounter: opcert.issueCounter,
    kesStartPeriod: opcert.kesStartPeriod,
    hotKeyId: hotKeyId(opcert.hotVkey),
    poolId: poolIdOf(opcert.coldVkey),
    signatureValid: verifyOpCertSignature(opcert),
    vrfKeyConsistent: vrf.consistent,
  };
}

/**
 * The bytes the cold key signs, as cardano-ledger's `OCertSignable` defines them (not CBOR):
 * the raw hot KES verification key (32 bytes), then the issue counter and the KES start period,
 * each as an 8-byte big-endian unsigned integer. 48 bytes.
 */
export function opCertSignable(
  opcert: Pick<OpCert, "hotVkey" | "issueCounter" | "kesStartPeriod">,
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(48);
  out.set(opcert.hotVkey, 0);
  const view = new DataView(out.buffer);
  view.setBigUint64(32, BigInt(opcert.issueCounter));
  view.setBigUint64(40, BigInt(opcert.kesStartPeriod));
  return out;
}

/**
 * Whether the certificate's cold-key signature verifies: Ed25519 (RFC 8032, strict: no
 * non-canonical encodings, as libsodium, which cardano-node uses) of {@linkcode opCertSignable}
 * under the certificate's cold verification key. Pure.
 */
export function verifyOpCertSignature(opcert: OpCert): boolean {
  try {
    return ed25519.verify(opcert.coldSignature, opCertSignable(opcert), opcert.coldVkey, {
      zip215: false,
    });
  } catch {
    return false; // a cold key that is not a point on the curve verifies nothing
  }
}

/** The pool id of a cold verification key: Blake2b-224, as 56 lower-case hex digits. Pure. */
export function poolIdOf(coldVkey: Uint8Array): string {
  return toHex(blake2b(coldVkey, { dkLen: 28 }));
}

/** The short id of a hot KES key used in logs: 8 hex digits of its Blake2b-256. Pure. */
export function hotKeyId(hotVkey: Uint8Array): string {
  return toHex(blake2b(hotVkey, { dkLen: 32 })).slice(0, 8);
}

function credentialError(kind: CredentialKind, label: string, reason: string): CredentialError {
  return new CredentialError(`Cannot use ${NOUNS[kind]} ${label}: ${reason}`, kind, label);
}

function readByteString(
  text: string,
  kind: CredentialKind,
  label: string,
  type: string,
  size: number,
): Uint8Array {
  const item = readCbor(text, kind, label, type);
  if (!isBytes(item, size)) {
    throw credentialError(
      kind,
      label,
      `expected a CBOR byte string of ${size} bytes, found ${describeShape(item)}`,
    );
  }
  return item;
}

function readCbor(text: string, kind: CredentialKind, label: string, type: string): CborItem {
  const cborHex = readEnvelope(text, kind, label, type);
  const bytes = decodeHex(cborHex, kind, label);
  try {
    return decodeCbor(bytes);
  } catch (error) {
    if (error instanceof CborError) {
      throw credentialError(kind, label, `cborHex is not valid CBOR: ${error.message}`);
    }
    throw error;
  } finally {
    bytes.fill(0);
  }
}

/** Checks the envelope and returns its cborHex. */
function readEnvelope(text: string, kind: CredentialKind, label: string, type: string): string {
  const fail = (reason: string) => credentialError(kind, label, reason);
  if (text.trim() === "") throw fail("file is empty");
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch {
    // The SyntaxError's message quotes the input, so it is neither shown nor kept as cause.
    throw fail("file is not valid JSON (truncated or corrupt?)");
  }
  if (typeof envelope !== "object" || envelope === null || Array.isArray(envelope)) {
    throw fail("file is not a text envelope: expected a JSON object {type, description, cborHex}");
  }
  const fields = envelope as Record<string, unknown>;
  if (typeof fields.type !== "string") throw fail("field type is missing or not a string");
  if (fields.type !== type) {
    throw fail(`type is ${sanitize(fields.type)}, expected ${type}`);
  }
  if (typeof fields.description !== "string") {
    throw fail("field description is missing or not a string");
  }
  if (typeof fields.cborHex !== "string") throw fail("field cborHex is missing or not a string");
  return fields.cborHex;
}

function decodeHex(hex: string, kind: CredentialKind, label: string): Uint8Array {
  if (hex.length % 2 !== 0) {
    throw credentialError(kind, label, `cborHex is not valid hex: odd length ${hex.length}`);
  }
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) {
    const high = hexDigit(hex.charCodeAt(2 * i));
    const low = hexDigit(hex.charCodeAt(2 * i + 1));
    if (high < 0 || low < 0) {
      bytes.fill(0);
      const at = high < 0 ? 2 * i : 2 * i + 1;
      throw credentialError(kind, label, `cborHex is not valid hex: bad character at index ${at}`);
    }
    bytes[i] = (high << 4) | low;
  }
  return bytes;
}

function hexDigit(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30; // 0-9
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10; // a-f, A-F
  return -1;
}

/** Quotes a value read from the file, shortened, with any long hex run removed. */
function sanitize(value: string): string {
  const short = value.length > 64 ? `${value.slice(0, 64)}...` : value;
  return JSON.stringify(short.replace(/[0-9a-fA-F]{16,}/g, "<hex>"));
}

/** Describes a CBOR item's structure (types and sizes only, never contents). */
function describeShape(item: CborItem, depth = 0): string {
  if (!Array.isArray(item)) return describeCbor(item);
  if (depth >= 2 || item.length > 8) return describeCbor(item);
  return `[${item.map((child) => describeShape(child, depth + 1)).join(", ")}]`;
}

function isBytes(item: CborItem | undefined, size: number): item is Uint8Array {
  return item instanceof Uint8Array && item.length === size;
}

function toSafeNumber(value: bigint, field: string, fail: (reason: string) => Error): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`${field} is implausibly large`);
  return Number(value);
}
