/**
 * Virtual time for in-process tests of the loop: a {@linkcode Clock} whose time moves only when
 * the test says so, firing the timers that fall due in order, with the code under test allowed
 * to settle (real I/O included) between two timers. No test waits for real time to pass.
 *
 * @module
 */

import type { Clock } from "../../lib/base/clock.ts";

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/** A clock that stands still until `advance()` moves it. */
export class VirtualClock implements Clock {
  #now: number;
  readonly #wallOrigin: number;
  readonly #early: number;
  #timers: Timer[] = [];
  #seq = 0;

  /**
   * `origin`: the monotonic reading at start (processes share no zero). `timersEarly`: timers
   * fire this fraction of their delay early, as a timer truncated to whole milliseconds (or a
   * clock that runs slightly slower than the timers) does; 0.005 fires a 1 s timer 5 ms early.
   */
  constructor(opts: { origin?: number; timersEarly?: number } = {}) {
    this.#now = opts.origin ?? 1_000_000;
    this.#wallOrigin = Date.parse("2026-12-01T00:00:00Z") - this.#now;
    this.#early = opts.timersEarly ?? 0;
  }

  monotonic(): number {
    return this.#now;
  }
  wall(): Date {
    return new Date(this.#wallOrigin + this.#now);
  }
  timer(ms: number, fn: () => void): () => void {
    const timer = { at: this.#now + Math.max(0, ms) * (1 - this.#early), seq: this.#seq++, fn };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer);
    };
  }

  /** When the next timer is due, if any. */
  get nextAt(): number | undefined {
    return this.#timers.length === 0 ? undefined : Math.min(...this.#timers.map((t) => t.at));
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way, each at its own time, and
   * awaiting `settle` before the first and after each one.
   */
  async advance(ms: number, settle: () => Promise<void>): Promise<void> {
    const end = this.#now + ms;
    await settle();
    for (;;) {
      const due = this.#timers.filter((t) => t.at <= end)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#now = Math.max(this.#now, due.at);
      due.fn();
      await settle();
    }
    this.#now = end;
    await settle();
  }

  /** Moves time forward by `ms` without firing anything: a process frozen for that long. */
  jump(ms: number): void {
    this.#now += ms;
  }
}
