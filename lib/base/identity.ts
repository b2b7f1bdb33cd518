/**
 * Identities of participants: `<pod>_<8 hex>`, fresh for every process, so two processes started
 * with the same POD_NAME never both believe they hold the lease.
 *
 * @module
 */

/** A fresh identity for this process. */
export function newIdentity(podName: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `${podName}_${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** The pod name part of an identity `<pod>_<suffix>` (pod names never contain "_"). */
export function podOf(identity: string): string {
  const at = identity.lastIndexOf("_");
  return at < 0 ? identity : identity.slice(0, at);
}
