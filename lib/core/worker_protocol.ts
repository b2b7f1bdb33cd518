/**
 * Messages between the privileged core (main.ts) and the sandboxed worker (lib/runtime/worker.ts).
 * Plain data only: the worker never receives a capability it could use to escape its sandbox.
 *
 * @module
 */

import type { Config } from "./config.ts";
import type { CoreReply, CoreRequest } from "./node_process.ts";

/** What the core relays from the guard (lib/core/guard_link.ts) to the worker. */
export type GuardNotice =
  /** The guard asks for the term's time left; answer with `guard_pong` and the same `seq`. */
  | { kind: "ping"; seq: number }
  /** Arming request `id` settled. */
  | { kind: "armed"; id: number; ok: boolean; error?: string }
  /** The guard removed the keys and signalled the node itself. */
  | { kind: "fired"; reason: string; ok: boolean; error?: string }
  /** The guard's state: armed, and its stops by reason since it started. */
  | { kind: "state"; armed: boolean; demotions: Record<string, number> }
  /** The guard's connection came up (its hello accepted) or went down. */
  | { kind: "link"; up: boolean; error?: string };

/** Core to worker. */
export type ToWorker =
  | { op: "probe"; kubeconfig: string; context?: string }
  | { op: "start"; config: Config; identity: string }
  | { op: "reply"; reply: CoreReply }
  | { op: "guard"; notice: GuardNotice }
  | { op: "shutdown" };

/** Worker to core. */
export type FromWorker =
  /** `commands`: the kubeconfig's exec credential plugin, which the worker must be able to run. */
  | { op: "probed"; server: string; files: string[]; commands: string[] }
  | { op: "probe_failed"; message: string }
  | { op: "request"; request: CoreRequest }
  | { op: "listening"; port: number }
  /** Asks the guard to arm (before a promotion's SIGHUP). */
  | { op: "guard_arm"; id: number }
  /** The answer to the guard's ping `seq`, from the forging state as it is now. */
  | { op: "guard_pong"; seq: number; armed: boolean; leftMs: number }
  /** `safe`: the last stop of the node was confirmed and it has not forged since. */
  | { op: "done"; ok: boolean; message?: string; safe?: boolean };
