/**
 * A minimal, strict CBOR (RFC 8949) decoder for the shapes inside Cardano text envelopes:
 * unsigned integers, byte strings and arrays, all with definite lengths. Anything else (negative
 * integers, text, maps, tags, floats, indefinite lengths) and any trailing byte is rejected. The
 * matching encoders (shortest headers, as cardano-cli writes them) build the decoy credentials
 * (`decoy_keys.ts`) and the tests' key sets.
 *
 * Error messages give offsets and CBOR types, never the bytes themselves, so they are safe to
 * log even when the input is key material.
 *
 * Pure: needs no permissions.
 *
 * @module
 */

/** A decoded CBOR item: unsigned integer, byte string or array. */
export type CborItem = bigint | Uint8Array | CborItem[];

/** Thrown for input that is not exactly one supported, well-formed CBOR item. */
export class CborError extends Error {
  override name = "CborError";
}

const MAX_DEPTH = 16;

/**
 * Decodes exactly one CBOR item that fills `bytes` completely.
 *
 * @throws {CborError} on truncated input, trailing bytes, unsupported types or indefinite
 * lengths.
 */
export function decodeCbor(bytes: Uint8Array): CborItem {
  const reader = { bytes, offset: 0 };
  const item = readItem(reader, 0);
  if (reader.offset !== bytes.length) {
    throw new CborError(
      `${
        bytes.length - reader.offset
      } trailing byte(s) after the item ending at offset ${reader.offset}`,
    );
  }
  return item;
}

/** A short, non-secret description of an item's shape, for error messages ("bytes(32)"). */
export function describeCbor(item: CborItem): string {
  if (typeof item === "bigint") return "uint";
  if (item instanceof Uint8Array) return `bytes(${item.length})`;
  return `array(${item.length})`;
}

interface Reader {
  bytes: Uint8Array;
  offset: number;
}

function readItem(reader: Reader, depth: number): CborItem {
  if (depth > MAX_DEPTH) {
    throw new CborError(`nesting deeper than ${MAX_DEPTH} at offset ${reader.offset}`);
  }
  const start = reader.offset;
  const initial = readByte(reader);
  const major = initial >> 5;
  const argument = readArgument(reader, initial & 0x1f, start);
  switch (major) {
    case 0:
      return argument;
    case 2: {
      const length = toLength(reader, argument, start);
      const value = reader.bytes.slice(reader.offset, reader.offset + length);
      reader.offset += length;
      return value;
    }
    case 4: {
      // Every element takes at least one byte, which bounds the length before allocating.
      const length = toLength(reader, argument, start);
      const items: CborItem[] = [];
      for (let i = 0; i < length; i++) items.push(readItem(reader, depth + 1));
      return items;
    }
    default:
      throw new CborError(`unsupported CBOR major type ${major} at offset ${start}`);
  }
}

function readByte(reader: Reader): number {
  const byte = reader.bytes[reader.offset];
  if (byte === undefined) {
    throw new CborError(`input ends at offset ${reader.offset} in the middle of an item`);
  }
  reader.offset++;
  return byte;
}

function readArgument(reader: Reader, info: number, start: number): bigint {
  if (info < 24) return BigInt(info);
  if (info > 27) {
    const what = info === 31 ? "indefinite length" : `reserved additional info ${info}`;
    throw new CborError(`unsupported ${what} at offset ${start}`);
  }
  const size = 1 << (info - 24); // 1, 2, 4 or 8 bytes, big-endian
  let value = 0n;
  for (let i = 0; i < size; i++) value = (value << 8n) | BigInt(readByte(reader));
  return value;
}

function toLength(reader: Reader, argument: bigint, start: number): number {
  const remaining = reader.bytes.length - reader.offset;
  if (argument > BigInt(remaining)) {
    throw new CborError(
      `item at offset ${start} declares length ${argument} but only ${remaining} byte(s) remain`,
    );
  }
  return Number(argument);
}

/** CBOR byte string (major type 2) with the shortest length header. */
export function cborBytes(bytes: Uint8Array): Uint8Array {
  return concatBytes(header(2, bytes.length), bytes);
}

/** CBOR unsigned integer (major type 0). */
export function cborUint(value: number): Uint8Array {
  return header(0, value);
}

/** CBOR definite-length array (major type 4) of already-encoded items. */
export function cborArray(items: readonly Uint8Array[]): Uint8Array {
  return concatBytes(header(4, items.length), ...items);
}

/** The concatenation of `parts`. */
export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function header(major: number, value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`Cannot encode a CBOR header: value is ${value}, expected a uint`);
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
