/**
 * The guard's rule as a pure step: `(state, event, now) -> { state, actions }`, no I/O, no timers.
 * The guard process (lib/core/guard.ts) owns the socket, the clock, the state file and the node;
 * every decision is here and table-tested (tests/core/guard_rule_test.ts).
 *
 * The guard runs beside the sidecar on the leader's machine, in a process of its own, and needs no
 * network. While ARMED (the sidecar's node may hold the keys for forging) it holds a deadline on
 * its own monotonic clock and stops the node itself (unlink the keys, then SIGHUP) when:
 * - the deadline passes without a newer answer: the sidecar's term ended, or it froze, or its
 *   worker hangs (answers come from the worker's live state, not from the core);
 * - the sidecar's connection closes without a clean goodbye: it died (SIGKILL, OOM kill);
 * - the guard starts and finds it was armed before it died or was restarted (its state file);
 * - the guard itself is told to stop.
 *
 * The deadline: the guard sends `ping` at `sentAt`; the answer says the sidecar's term had
 * `leftMs` left when it answered (its term ends at the send time of its last successful renew plus
 * RENEW_DEADLINE, on its own monotonic clock). The answer came after the ping, so the term ends no
 * earlier than `sentAt + leftMs` on the guard's clock (clock rates equal): that is the deadline.
 * Every delay on the way only makes it earlier; an unsolicited or late answer never extends it.
 * Hence, from the holder's last successful renew, its node stops within RENEW_DEADLINE plus the
 * guard's reaction time (timer lateness, unlink, SIGHUP).
 *
 * Disarmed (a standby, or a leader whose last stop was confirmed), the guard does nothing at all:
 * it never touches the start-up provisioning of a booting node.
 *
 * @module
 */

import type { FromGuard, GuardFireReason } from "./guard_protocol.ts";
import { GUARD_FIRE_REASONS } from "./guard_protocol.ts";

/** The guard's whole state. Treat as immutable. */
export interface GuardState {
  /** A sidecar is connected. */
  readonly connected: boolean;
  /** Its hello was accepted (same targets and node as the guard's own configuration). */
  readonly accepted: boolean;
  /** Why the last hello was refused, for arm requests that come after it. */
  readonly refusal?: string;
  /** Keys may be in place for forging: the deadline applies. */
  readonly armed: boolean;
  /** Monotonic (the guard's clock): stop the node when now reaches it while armed. */
  readonly deadline?: number;
  /** How often to ask while armed (from the hello). */
  readonly pingMs: number;
  readonly seq: number;
  /** The ping in flight: its number, when it was sent, and the arm requests it answers. */
  readonly inFlight?: { seq: number; sentAt: number; arms: readonly number[] };
  readonly nextPingAt?: number;
  /** Stops made by the guard, by reason, since it started. */
  readonly demotions: Readonly<Record<GuardFireReason, number>>;
}

/** What happens to the guard. */
export type GuardEvent =
  /** The process started; `armedBefore`: its state file says it was armed. */
  | { kind: "started"; armedBefore: boolean }
  | { kind: "connected" }
  /** The sidecar's hello, checked by the process against its own configuration. */
  | { kind: "hello"; ok: boolean; pingMs: number; reason?: string }
  | { kind: "arm"; id: number }
  | { kind: "pong"; seq: number; armed: boolean; leftMs: number }
  | { kind: "bye" }
  | { kind: "disconnected" }
  | { kind: "tick" }
  /** SIGTERM or SIGINT to the guard. */
  | { kind: "stop" };

/** What the process must do, in this order. */
export type GuardAction =
  | { kind: "send"; message: FromGuard }
  /** Unlink the keys, then SIGHUP the node; report `fired` to a connected sidecar. */
  | { kind: "fire"; reason: GuardFireReason }
  /** Write the state file (fsync) before anything that follows relies on it. */
  | { kind: "persist"; armed: boolean }
  | { kind: "exit" };

/** The result of one step. */
export interface GuardStep {
  state: GuardState;
  actions: GuardAction[];
}

/** The bounds of a hello's ping interval, in ms. */
export const PING_MS_RANGE = { min: 100, max: 10_000 } as const;

/** The state of a guard that has not started yet. */
export function initialGuardState(): GuardState {
  const demotions = Object.fromEntries(GUARD_FIRE_REASONS.map((r) => [r, 0])) as Record<
    GuardFireReason,
    number
  >;
  return { connected: false, accepted: false, armed: false, pingMs: 1000, seq: 0, demotions };
}

/** Advances the guard by one event at monotonic time `now`. Pure. */
export function guardStep(s: GuardState, e: GuardEvent, now: number): GuardStep {
  const actions: GuardAction[] = [];
  const next = apply(s, e, now, actions);
  return { state: next, actions };
}

/** When the process must wake up without an event (monotonic), or undefined for never. */
export function guardWake(s: GuardState): number | undefined {
  if (!s.armed) return undefined;
  const times = [s.deadline, s.connected && s.accepted ? s.nextPingAt : undefined]
    .filter((t): t is number => t !== undefined);
  return times.length === 0 ? undefined : Math.min(...times);
}

function apply(s: GuardState, e: GuardEvent, now: number, out: GuardAction[]): GuardState {
  switch (e.kind) {
    case "started":
      return e.armedBefore ? fire({ ...s, armed: true }, "restarted_armed", out) : s;
    case "connected":
      return { ...s, connected: true, accepted: false, inFlight: undefined };
    case "hello": {
      if (!e.ok) {
        const reason = e.reason ?? "refused";
        out.push({ kind: "send", message: { op: "refused", reason } });
        return { ...s, accepted: false, refusal: reason };
      }
      const pingMs = Math.min(PING_MS_RANGE.max, Math.max(PING_MS_RANGE.min, e.pingMs));
      out.push({ kind: "send", message: stateMessage(s) });
      // Armed from an earlier connection (a sidecar that reconnected): ask at once.
      const accepted: GuardState = { ...s, accepted: true, refusal: undefined, pingMs };
      return accepted.armed ? ping(accepted, now, [], out) : accepted;
    }
    case "arm":
      if (!s.connected || !s.accepted) {
        out.push({
          kind: "send",
          message: {
            op: "armed",
            id: e.id,
            ok: false,
            error: s.refusal ?? "the guard has not accepted this sidecar (no hello yet)",
          },
        });
        return s;
      }
      // A newer ping supersedes one in flight (an answer to the older one is then ignored).
      return ping(s, now, [...(s.inFlight?.arms ?? []), e.id], out);
    case "pong":
      return pong(s, e, now, out);
    case "bye":
      // The sidecar's last stop was confirmed: nothing to do when its connection closes. A
      // stream keeps order, so a goodbye never overtakes a later arm request.
      return s.armed ? disarm(s, out) : s;
    case "disconnected": {
      const gone: GuardState = { ...s, connected: false, accepted: false, inFlight: undefined };
      return gone.armed ? fire(gone, "sidecar_gone", out) : gone;
    }
    case "tick":
      if (s.armed && s.deadline !== undefined && now >= s.deadline) {
        return fire(s, "deadline", out);
      }
      if (
        s.armed && s.connected && s.accepted && s.nextPingAt !== undefined && now >= s.nextPingAt
      ) {
        return ping(s, now, s.inFlight?.arms ?? [], out);
      }
      return s;
    case "stop": {
      const stopped = s.armed ? fire(s, "guard_stopping", out) : s;
      out.push({ kind: "exit" });
      return stopped;
    }
  }
}

function ping(s: GuardState, now: number, arms: readonly number[], out: GuardAction[]): GuardState {
  const seq = s.seq + 1;
  out.push({ kind: "send", message: { op: "ping", seq } });
  return { ...s, seq, inFlight: { seq, sentAt: now, arms }, nextPingAt: now + s.pingMs };
}

function pong(
  s: GuardState,
  e: Extract<GuardEvent, { kind: "pong" }>,
  now: number,
  out: GuardAction[],
): GuardState {
  const asked = s.inFlight;
  if (asked === undefined || asked.seq !== e.seq) return s; // stale or unsolicited: ignored
  let next: GuardState = { ...s, inFlight: undefined };
  const deadline = asked.sentAt + Math.max(0, e.leftMs);
  if (e.armed) {
    if (!next.armed) {
      // Persisted before anyone is told: a guard that dies now finds it armed when it restarts.
      out.push({ kind: "persist", armed: true });
      next = { ...next, armed: true };
      out.push({ kind: "send", message: stateMessage(next) });
    }
    next = { ...next, deadline, nextPingAt: now + s.pingMs };
  } else if (next.armed) {
    next = disarm(next, out);
  }
  const ok = e.armed && deadline > now;
  for (const id of asked.arms) {
    out.push({
      kind: "send",
      message: ok ? { op: "armed", id, ok } : {
        op: "armed",
        id,
        ok,
        error: e.armed ? "the term had no time left" : "the sidecar answered: not armed",
      },
    });
  }
  // An answer that leaves no time is a deadline already passed.
  return next.armed && deadline <= now ? fire(next, "deadline", out) : next;
}

function disarm(s: GuardState, out: GuardAction[]): GuardState {
  out.push({ kind: "persist", armed: false });
  const next: GuardState = { ...s, armed: false, deadline: undefined, nextPingAt: undefined };
  if (s.connected) out.push({ kind: "send", message: stateMessage(next) });
  return next;
}

function fire(s: GuardState, reason: GuardFireReason, out: GuardAction[]): GuardState {
  out.push({ kind: "fire", reason });
  const counted: GuardState = {
    ...s,
    demotions: { ...s.demotions, [reason]: s.demotions[reason] + 1 },
  };
  return disarm(counted, out);
}

function stateMessage(s: GuardState): FromGuard {
  return { op: "state", armed: s.armed, demotions: { ...s.demotions } };
}
