/**
 * Time as the election sees it. Decisions use only the monotonic clock, so a wall clock that
 * jumps (NTP step, a skewed node) can never shorten a lease. The wall clock is used for what
 * humans read (renewTime, lastTransitionTime) and nothing else.
 *
 * @module
 */

/** A source of time, injected so tests can step it. */
export interface Clock {
  /** Milliseconds on a monotonic clock with an arbitrary origin. */
  monotonic(): number;
  /** The wall-clock time, for human-readable timestamps only. */
  wall(): Date;
}

/** The real clock: `performance.now()` and `new Date()`. */
export const systemClock: Clock = {
  monotonic: () => performance.now(),
  wall: () => new Date(),
};
