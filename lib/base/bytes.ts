/**
 * Byte helpers shared by the key parsing and the file handling. Our own code, no imports.
 *
 * @module
 */

/** Whether `a` and `b` hold the same bytes. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
