/**
 * The guard's protocol: JSON lines over the guard's unix stream socket, between the guard
 * (`forge-manager guard`, lib/core/guard.ts) and the sidecar's privileged core
 * (lib/core/guard_link.ts), which relays the pings to the worker that holds the forging state.
 * One connection at a time; a stream socket keeps every message in order.
 *
 * The guard never trusts an unsolicited "armed": its deadline is always anchored on a ping it
 * sent itself. The answer says how long the sender's term had left when it answered, and the
 * guard counts that from when it SENT the ping, so any delay on the way (the core, the worker, a
 * full socket buffer, a guard that was descheduled) only brings its deadline earlier.
 *
 * @module
 */

/** Messages from the sidecar (its core) to the guard. */
export type ToGuard =
  /**
   * First message of a connection: what the sidecar manages (the guard refuses a sidecar whose
   * targets or node differ from its own configuration) and how often to ask while armed.
   */
  | { op: "hello"; targets: string[]; nodeProcessName: string; pingMs: number }
  /** The sidecar is about to give its node the keys: ping now, and answer `armed` after it. */
  | { op: "arm"; id: number }
  /** The answer to ping `seq`: whether keys may be in place, and the term's time left then. */
  | { op: "pong"; seq: number; armed: boolean; leftMs: number }
  /** A clean goodbye: the sidecar's last stop was confirmed, nothing to do when it goes. */
  | { op: "bye" };

/** Messages from the guard to the sidecar. */
export type FromGuard =
  /** How long the sender's term has left now; answer with `pong` and the same `seq`. */
  | { op: "ping"; seq: number }
  /** Arming request `id` settled: `ok` when the guard now holds a deadline in the future. */
  | { op: "armed"; id: number; ok: boolean; error?: string }
  /** The guard removed the keys and signalled the node itself (`ok`: both succeeded). */
  | { op: "fired"; reason: GuardFireReason; ok: boolean; error?: string }
  /** The guard's state, sent on every change: for metrics and `status`. */
  | { op: "state"; armed: boolean; demotions: Record<GuardFireReason, number> }
  /** The guard will not serve this sidecar (its configuration differs); it never arms. */
  | { op: "refused"; reason: string };

/** Why the guard stopped the node itself (the label of forge_manager_guard_demotions_total). */
export type GuardFireReason =
  /** No answer extended the deadline in time: the sidecar's term ended, or it froze. */
  | "deadline"
  /** The sidecar's connection closed while armed: it died (SIGKILL, OOM kill, crash). */
  | "sidecar_gone"
  /** The guard started with its state file saying it was armed (it died or was restarted). */
  | "restarted_armed"
  /** The guard was told to stop (SIGTERM) while armed. */
  | "guard_stopping";

/** Every fire reason, for zeroed metric series. */
export const GUARD_FIRE_REASONS: readonly GuardFireReason[] = [
  "deadline",
  "sidecar_gone",
  "restarted_armed",
  "guard_stopping",
];

/** The longest line either side accepts (a sane bound against a confused peer). */
export const MAX_LINE_BYTES = 64 * 1024;

/** Splits a byte stream into JSON lines; a line that does not parse is reported, not thrown. */
export class LineReader {
  #buffer = "";
  readonly #decoder = new TextDecoder();

  /** Feeds bytes; returns the complete lines' values, and errors for lines that did not parse. */
  feed(chunk: Uint8Array): { values: unknown[]; errors: string[] } {
    this.#buffer += this.#decoder.decode(chunk, { stream: true });
    const values: unknown[] = [];
    const errors: string[] = [];
    let at: number;
    while ((at = this.#buffer.indexOf("\n")) >= 0) {
      const line = this.#buffer.slice(0, at);
      this.#buffer = this.#buffer.slice(at + 1);
      if (line.trim() === "") continue;
      try {
        values.push(JSON.parse(line));
      } catch {
        errors.push(`not a JSON line: ${JSON.stringify(line.slice(0, 80))}`);
      }
    }
    if (this.#buffer.length > MAX_LINE_BYTES) {
      errors.push(`a line longer than ${MAX_LINE_BYTES} bytes`);
      this.#buffer = "";
    }
    return { values, errors };
  }
}

/** One message as a line. */
export function lineOf(message: ToGuard | FromGuard): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(message) + "\n");
}
