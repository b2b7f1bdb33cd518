/**
 * Time as the sidecar sees it. Decisions use only the monotonic clock, so a wall clock that
 * jumps (NTP step, a skewed node) can never shorten a lease. The wall clock is used for what
 * humans read (renewTime, lastTransitionTime) and nothing else. The clock also owns timers, so
 * tests run the real loop in virtual time.
 *
 * @module
 */

/** A source of time and timers, injected so tests can step it. */
export interface Clock {
  /** Milliseconds on a monotonic clock with an arbitrary origin. */
  monotonic(): number;
  /** The wall-clock time, for human-readable timestamps only. */
  wall(): Date;
  /** Calls `fn` once, `ms` from now (by this clock); returns a function that cancels it. */
  timer(ms: number, fn: () => void): () => void;
}

/** The real clock: `performance.now()`, `new Date()` and `setTimeout`. */
export const systemClock: Clock = {
  monotonic: () => performance.now(),
  wall: () => new Date(),
  timer(ms, fn) {
    const id = setTimeout(fn, Math.max(0, ms));
    return () => clearTimeout(id);
  },
};

/** Resolves after `ms` by `clock`, or at once when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      cancel();
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const cancel = clock.timer(ms, done);
    signal?.addEventListener("abort", done, { once: true });
  });
}
