/**
 * Messages between the privileged core (main.ts) and the sandboxed worker (lib/runtime/worker.ts).
 * Plain data only: the worker never receives a capability it could use to escape its sandbox.
 *
 * @module
 */

import type { Config } from "./config.ts";
import type { CoreReply, CoreRequest } from "./node_process.ts";

/** Core to worker. */
export type ToWorker =
  | { op: "probe"; kubeconfig: string; context?: string }
  | { op: "start"; config: Config; identity: string }
  | { op: "reply"; reply: CoreReply }
  | { op: "shutdown" };

/** Worker to core. */
export type FromWorker =
  /** `commands`: the kubeconfig's exec credential plugin, which the worker must be able to run. */
  | { op: "probed"; server: string; files: string[]; commands: string[] }
  | { op: "probe_failed"; message: string }
  | { op: "request"; request: CoreRequest }
  | { op: "listening"; port: number }
  | { op: "done"; ok: boolean; message?: string };
