/**
 * The port through which the sidecar finds cardano-node and signals it. The worker reaches the
 * real implementation (lib/core/proc.ts, which needs /proc and `Deno.kill`) through
 * {@linkcode RpcNodeProcess}; tests may use the core implementation directly.
 *
 * @module
 */

/** A running node process, identified so that a recycled PID is never signalled. */
export interface NodeInfo {
  pid: number;
  /** Start time in clock ticks since boot (/proc/PID/stat field 22): PID + start = identity. */
  startTicks: number;
  /** Whether it runs with the non-producing flag (or config key) and so boots without forging. */
  nonProducing: boolean;
}

/** Why a signal could not be delivered (a metric label). */
export type SignalFailure = "not_found" | "refused" | "replaced" | "error";

/** Thrown when a signal was not delivered. A failed signal is never treated as success. */
export class SignalError extends Error {
  constructor(readonly reason: SignalFailure, message: string) {
    super(message);
    this.name = "SignalError";
  }
}

/** Finds and signals the node. */
export interface NodeProcess {
  /** The node process, undefined when none runs. Throws when several match. */
  find(): Promise<NodeInfo | undefined>;
  /** Sends SIGHUP to exactly that process. @throws {SignalError} */
  hangup(node: NodeInfo): Promise<void>;
}

/** Messages from the worker to the core. */
export type CoreRequest =
  | { id: number; op: "find" }
  | { id: number; op: "hangup"; node: NodeInfo };

/** Replies from the core to the worker. */
export type CoreReply =
  | { id: number; ok: true; node?: NodeInfo }
  | { id: number; ok: false; reason: SignalFailure; message: string };

/** How long the worker waits for the core's answer before it counts the call as failed. */
export const CORE_REPLY_TIMEOUT_MS = 3000;

/**
 * The worker side of the core's node RPC (over `postMessage`). Every call carries a timeout: a
 * lost reply fails the call (reason `error`) instead of holding the effect lane forever.
 */
export class RpcNodeProcess implements NodeProcess {
  readonly #post: (req: CoreRequest) => void;
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, (reply: CoreReply) => void>();
  #next = 1;

  constructor(post: (req: CoreRequest) => void, timeoutMs = CORE_REPLY_TIMEOUT_MS) {
    this.#post = post;
    this.#timeoutMs = timeoutMs;
  }

  /** Feed every reply message from the core here. A reply that came too late is dropped. */
  deliver(reply: CoreReply): void {
    const resolve = this.#pending.get(reply.id);
    this.#pending.delete(reply.id);
    resolve?.(reply);
  }

  #call(req: { op: "find" } | { op: "hangup"; node: NodeInfo }): Promise<CoreReply> {
    const id = this.#next++;
    const { promise, resolve } = Promise.withResolvers<CoreReply>();
    const timer = setTimeout(() => {
      this.#pending.delete(id);
      resolve({
        id,
        ok: false,
        reason: "error",
        message: `Cannot ${req.op} the node: the core did not answer within ${this.#timeoutMs} ms`,
      });
    }, this.#timeoutMs);
    this.#pending.set(id, (reply) => {
      clearTimeout(timer);
      resolve(reply);
    });
    this.#post({ ...req, id } as CoreRequest);
    return promise;
  }

  async find(): Promise<NodeInfo | undefined> {
    const reply = await this.#call({ op: "find" });
    if (!reply.ok) throw new SignalError(reply.reason, reply.message);
    return reply.node;
  }

  async hangup(node: NodeInfo): Promise<void> {
    const reply = await this.#call({ op: "hangup", node });
    if (!reply.ok) throw new SignalError(reply.reason, reply.message);
  }
}
