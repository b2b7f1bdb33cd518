/**
 * The guard as the worker reaches it: through the privileged core, which holds the guard's
 * socket (lib/core/guard_link.ts). Pings are answered here at once, from the forging state as it
 * is now (the loop registers how); arming is a request answered by the guard; everything else the
 * guard reports arrives as notices for the loop.
 *
 * @module
 */

import type { Clock } from "../base/clock.ts";
import type { FromWorker, GuardNotice } from "../core/worker_protocol.ts";

/** What the loop and the effect runner use of the guard. */
export interface GuardPort {
  /** Arms the guard; resolves once it holds a deadline, rejects with the reason otherwise. */
  arm(timeoutMs: number): Promise<void>;
  /** Calls `onNotice` with the guard's link, fired and state notices. */
  watch(onNotice: (notice: Exclude<GuardNotice, { kind: "ping" | "armed" }>) => void): void;
  /** How to answer pings: called once per ping, at once. */
  answerWith(answer: () => { armed: boolean; leftMs: number }): void;
  /** Seconds since the last ping answered "armed", or undefined when not armed. */
  heartbeatAge(): number | undefined;
}

/** The worker's side of the guard, over `postMessage` to the core. */
export class RpcGuard implements GuardPort {
  readonly #post: (message: FromWorker) => void;
  readonly #clock: Clock;
  readonly #pending = new Map<number, (result: { ok: boolean; error?: string }) => void>();
  #next = 1;
  #answer: () => { armed: boolean; leftMs: number } = () => ({ armed: false, leftMs: 0 });
  #onNotice: ((notice: Exclude<GuardNotice, { kind: "ping" | "armed" }>) => void) | undefined;
  /** Notices that came before the loop watched (the link comes up while the worker starts). */
  readonly #early: Exclude<GuardNotice, { kind: "ping" | "armed" }>[] = [];
  #lastArmedAnswer: number | undefined;

  constructor(post: (message: FromWorker) => void, clock: Clock) {
    this.#post = post;
    this.#clock = clock;
  }

  /** Feed every guard notice from the core here. */
  deliver(notice: GuardNotice): void {
    switch (notice.kind) {
      case "ping": {
        const { armed, leftMs } = this.#answer();
        this.#lastArmedAnswer = armed ? this.#clock.monotonic() : undefined;
        this.#post({ op: "guard_pong", seq: notice.seq, armed, leftMs });
        return;
      }
      case "armed": {
        const settle = this.#pending.get(notice.id);
        this.#pending.delete(notice.id);
        settle?.({ ok: notice.ok, ...(notice.error !== undefined ? { error: notice.error } : {}) });
        return;
      }
      default:
        if (this.#onNotice !== undefined) this.#onNotice(notice);
        else this.#early.push(notice);
    }
  }

  arm(timeoutMs: number): Promise<void> {
    const id = this.#next++;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const cancel = this.#clock.timer(timeoutMs, () => {
      this.#pending.delete(id);
      reject(new Error(`the guard did not answer within ${timeoutMs} ms`));
    });
    this.#pending.set(id, ({ ok, error }) => {
      cancel();
      if (ok) resolve();
      else reject(new Error(error ?? "the guard refused to arm"));
    });
    this.#post({ op: "guard_arm", id });
    return promise;
  }

  watch(onNotice: (notice: Exclude<GuardNotice, { kind: "ping" | "armed" }>) => void): void {
    this.#onNotice = onNotice;
    for (const notice of this.#early.splice(0)) onNotice(notice);
  }

  answerWith(answer: () => { armed: boolean; leftMs: number }): void {
    this.#answer = answer;
  }

  heartbeatAge(): number | undefined {
    const at = this.#lastArmedAnswer;
    return at === undefined ? undefined : (this.#clock.monotonic() - at) / 1000;
  }
}
