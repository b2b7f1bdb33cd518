/**
 * The inbox of a loop that sleeps between events: events posted from callbacks (watches, sockets,
 * signals) wait in order, and `next` gives the first of them, or a tick at the loop's own next
 * wake-up time when nothing comes first. The sidecar's step loop and the guard's both run on it.
 *
 * @module
 */

import type { Clock } from "./clock.ts";

export class WakeQueue<E> {
  readonly #clock: Clock;
  readonly #tick: E;
  readonly #queue: E[] = [];
  #wake: (() => void) | undefined;

  /** `tick` is the event `next` gives when the wake-up time comes first. */
  constructor(clock: Clock, tick: E) {
    this.#clock = clock;
    this.#tick = tick;
  }

  /** Queues an event, and wakes a pending `next`. */
  post(event: E): void {
    this.#queue.push(event);
    this.#wake?.();
  }

  /** Whether no event waits. */
  empty(): boolean {
    return this.#queue.length === 0;
  }

  /**
   * The next queued event, or, when none waits, the first to come of a posted event and a tick at
   * `wakeAt(now)` (monotonic; undefined: no tick). Asked only when nothing waits.
   */
  next(wakeAt: (now: number) => number | undefined): Promise<E> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    const now = this.#clock.monotonic();
    const at = wakeAt(now);
    return new Promise((resolve) => {
      let cancel = () => {};
      const done = (event: E) => {
        cancel();
        this.#wake = undefined;
        resolve(event);
      };
      this.#wake = () => done(this.#queue.shift() ?? this.#tick);
      // At least 1 ms: a wake-up time already due must not spin the loop at one instant.
      if (at !== undefined) {
        cancel = this.#clock.timer(Math.max(1, at - now), () => done(this.#tick));
      }
    });
  }
}
