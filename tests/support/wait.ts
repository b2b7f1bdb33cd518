/**
 * Waiting in tests: {@linkcode sleep} for a fixed real delay, {@linkcode waitUntil} to poll a
 * condition until it holds or a timeout passes. Every test and support module waits through these
 * two, so a wait always names what it waited for and always ends.
 *
 * @module
 */

/** Resolves after `ms` milliseconds of real time. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Options of {@linkcode waitUntil}. */
export interface WaitOptions {
  /** How long to wait in all, in milliseconds. */
  timeoutMs: number;
  /** Pause between two checks, in milliseconds (default 50). */
  intervalMs?: number;
  /** Text appended to the timeout's message (for example the last state seen, a log's tail). */
  detail?: () => string | Promise<string>;
}

/** What a check returns while its condition does not hold yet. */
type NotYet = undefined | false;

const CHECK_HUNG = Symbol("the check did not return");
/** A check that started before the deadline may still take this long to answer. */
const CHECK_GRACE_MS = 1000;

/**
 * Calls `check` every `intervalMs` until it returns something other than `undefined` or `false`,
 * and returns that. After `timeoutMs` (or if one check hangs past it) throws "Timed out after N ms
 * waiting for <what>", with `detail()` appended. An error thrown by `check` ends the wait with that
 * error. `options` may be just the timeout.
 */
export async function waitUntil<T>(
  what: string,
  check: () => T | NotYet | Promise<T | NotYet>,
  options: number | WaitOptions,
): Promise<Exclude<T, NotYet>> {
  const { timeoutMs, intervalMs = 50, detail } = typeof options === "number"
    ? { timeoutMs: options }
    : options;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await withinMs(
      Promise.resolve(check()),
      Math.max(deadline - performance.now(), CHECK_GRACE_MS),
    );
    if (value !== CHECK_HUNG && value !== undefined && value !== false) {
      return value as Exclude<T, NotYet>;
    }
    const left = deadline - performance.now();
    if (value === CHECK_HUNG || left <= 0) {
      const hung = value === CHECK_HUNG ? " (the last check did not return)" : "";
      const extra = detail === undefined ? "" : `\n${await detail()}`;
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${hung}${extra}`);
    }
    await sleep(Math.min(intervalMs, left));
  }
}

async function withinMs<T>(promise: Promise<T>, ms: number): Promise<T | typeof CHECK_HUNG> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<typeof CHECK_HUNG>((resolve) => {
    timer = setTimeout(() => resolve(CHECK_HUNG), ms);
  });
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}
