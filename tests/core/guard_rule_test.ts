/**
 * lib/core/guard_rule.ts as tables: given the guard's state reached by real events, this event at
 * this time, these actions in this order. Pure: no I/O, no timers.
 */

import assert from "node:assert/strict";
import {
  type GuardAction,
  type GuardEvent,
  type GuardState,
  guardStep,
  guardWake,
  initialGuardState,
} from "../../lib/core/guard_rule.ts";

/** A guard driven by events, keeping the actions of the last step. */
class Guard {
  state: GuardState = initialGuardState();
  actions: GuardAction[] = [];
  feed(event: GuardEvent, at: number): this {
    ({ state: this.state, actions: this.actions } = guardStep(this.state, event, at));
    return this;
  }
  /** The last step's actions as short strings. */
  get did(): string[] {
    return this.actions.map((a) =>
      a.kind === "send"
        ? `send:${a.message.op}`
        : a.kind === "fire"
        ? `fire:${a.reason}`
        : a.kind === "persist"
        ? `persist:${a.armed}`
        : a.kind
    );
  }
  /** The seq of the last ping sent. */
  get lastPing(): number {
    return this.state.seq;
  }
}

/** A guard with a sidecar connected and accepted (pings every 1 s). */
function connected(): Guard {
  return new Guard()
    .feed({ kind: "started", armedBefore: false }, 0)
    .feed({ kind: "connected" }, 0)
    .feed({ kind: "hello", ok: true, pingMs: 1000 }, 0);
}

/** A guard armed at t=1000 with a ping sent at 1000 answered `leftMs` later than that. */
function armed(leftMs = 10_000): Guard {
  const g = connected().feed({ kind: "arm", id: 1 }, 1000);
  assert.deepEqual(g.did, ["send:ping"]);
  g.feed({ kind: "pong", seq: g.lastPing, armed: true, leftMs }, 1005);
  return g;
}

Deno.test("arming: a ping goes out, and only its answer arms, persisted before the sidecar hears", () => {
  const g = armed(10_000);
  assert.deepEqual(g.did, ["persist:true", "send:state", "send:armed"]);
  const ack = g.actions.at(-1)!;
  assert.deepEqual(ack, { kind: "send", message: { op: "armed", id: 1, ok: true } });
  assert.equal(g.state.armed, true);
  // Counted from when the ping was SENT (1000), not from the answer (1005).
  assert.equal(g.state.deadline, 11_000);
  // The next ping one interval after this answer: it comes before the deadline.
  assert.equal(guardWake(g.state), 2005);
});

Deno.test("the deadline passes without a newer answer: the guard stops the node, once", () => {
  const g = armed(10_000);
  g.feed({ kind: "tick" }, 2005); // the next ping, never answered (the sidecar froze)
  assert.deepEqual(g.did, ["send:ping"]);
  g.feed({ kind: "tick" }, 10_999);
  assert.ok(!g.did.some((d) => d.startsWith("fire")), "not before the deadline");
  g.feed({ kind: "tick" }, 11_000);
  assert.deepEqual(g.did, ["fire:deadline", "persist:false", "send:state"]);
  assert.equal(g.state.armed, false);
  assert.equal(g.state.demotions.deadline, 1);
  g.feed({ kind: "tick" }, 20_000);
  assert.deepEqual(g.did, [], "disarmed after firing: nothing more");
  assert.equal(guardWake(g.state), undefined);
});

Deno.test("answers extend the deadline only from their own ping's send time", () => {
  const g = armed(10_000);
  g.feed({ kind: "tick" }, 2005);
  const seq = g.lastPing;
  // A slow answer (8 s after its ping) with 10 s left: the deadline is 2005 + 10000, not 20000.
  g.feed({ kind: "pong", seq, armed: true, leftMs: 10_000 }, 10_000);
  assert.equal(g.state.deadline, 12_005);
  // An unsolicited or stale answer changes nothing.
  g.feed({ kind: "pong", seq: seq - 1, armed: true, leftMs: 60_000 }, 10_100);
  assert.equal(g.state.deadline, 12_005);
  g.feed({ kind: "pong", seq: 999, armed: false, leftMs: 0 }, 10_100);
  assert.equal(g.state.armed, true, "an unsolicited disarm is ignored too");
});

Deno.test("a newer ping supersedes one in flight: the older answer is ignored", () => {
  const g = armed(10_000);
  g.feed({ kind: "tick" }, 2005);
  const first = g.lastPing;
  g.feed({ kind: "tick" }, 3005);
  assert.deepEqual(g.did, ["send:ping"]);
  g.feed({ kind: "pong", seq: first, armed: true, leftMs: 10_000 }, 3100);
  assert.equal(g.state.deadline, 11_000, "the superseded ping's answer did not count");
  g.feed({ kind: "pong", seq: g.lastPing, armed: true, leftMs: 10_000 }, 3100);
  assert.equal(g.state.deadline, 13_005);
});

Deno.test("the sidecar's answer 'not armed' disarms (its stop was confirmed)", () => {
  const g = armed();
  g.feed({ kind: "tick" }, 2005);
  g.feed({ kind: "pong", seq: g.lastPing, armed: false, leftMs: 0 }, 2006);
  assert.deepEqual(g.did, ["persist:false", "send:state"]);
  assert.equal(g.state.armed, false);
  g.feed({ kind: "disconnected" }, 3000);
  assert.deepEqual(g.did, [], "a disarmed guard does nothing when the sidecar goes");
});

Deno.test("the sidecar dies while armed: the guard stops the node at once", () => {
  const g = armed();
  g.feed({ kind: "disconnected" }, 1500);
  assert.deepEqual(g.did, ["fire:sidecar_gone", "persist:false"]);
  assert.equal(g.state.demotions.sidecar_gone, 1);
});

Deno.test("a clean goodbye disarms, so the connection's end does nothing", () => {
  const g = armed();
  g.feed({ kind: "bye" }, 1500);
  assert.deepEqual(g.did, ["persist:false", "send:state"]);
  g.feed({ kind: "disconnected" }, 1501);
  assert.deepEqual(g.did, []);
});

Deno.test("a guard that starts armed (it died or was restarted while armed) stops the node", () => {
  const g = new Guard().feed({ kind: "started", armedBefore: true }, 0);
  assert.deepEqual(g.did, ["fire:restarted_armed", "persist:false"]);
  assert.equal(g.state.armed, false);
  const fresh = new Guard().feed({ kind: "started", armedBefore: false }, 0);
  assert.deepEqual(fresh.did, [], "a fresh guard leaves the start-up provisioning alone");
});

Deno.test("a guard told to stop while armed stops the node first; disarmed, it just exits", () => {
  assert.deepEqual(armed().feed({ kind: "stop" }, 1500).did, [
    "fire:guard_stopping",
    "persist:false",
    "send:state",
    "exit",
  ]);
  assert.deepEqual(connected().feed({ kind: "stop" }, 1500).did, ["exit"]);
});

Deno.test("an answer with no time left arms nothing: the arming fails and the guard acts", () => {
  const g = connected().feed({ kind: "arm", id: 7 }, 1000);
  g.feed({ kind: "pong", seq: g.lastPing, armed: true, leftMs: 0 }, 1002);
  assert.deepEqual(g.did, [
    "persist:true",
    "send:state",
    "send:armed",
    "fire:deadline",
    "persist:false",
    "send:state",
  ]);
  const ack = g.actions[2]!;
  assert.deepEqual(ack, {
    kind: "send",
    message: { op: "armed", id: 7, ok: false, error: "the term had no time left" },
  });
});

Deno.test("arming before the hello, or after a refused hello, fails and says why", () => {
  const early = new Guard().feed({ kind: "connected" }, 0).feed({ kind: "arm", id: 1 }, 1);
  assert.deepEqual(early.actions, [{
    kind: "send",
    message: {
      op: "armed",
      id: 1,
      ok: false,
      error: "the guard has not accepted this sidecar (no hello yet)",
    },
  }]);
  const refused = new Guard().feed({ kind: "connected" }, 0)
    .feed({ kind: "hello", ok: false, pingMs: 1000, reason: "targets differ" }, 0);
  assert.deepEqual(refused.did, ["send:refused"]);
  refused.feed({ kind: "arm", id: 2 }, 1);
  assert.equal(
    (refused.actions[0] as { message: { error?: string } }).message.error,
    "targets differ",
  );
  assert.equal(refused.state.armed, false);
});

Deno.test("a sidecar that reconnects while the guard is armed is asked at once", () => {
  const g = armed();
  // The connection failed without the process dying: the guard acted on the close...
  g.feed({ kind: "disconnected" }, 1500);
  assert.equal(g.state.armed, false);
  // ...and a new connection arms again only through a new ping's answer.
  g.feed({ kind: "connected" }, 1600).feed({ kind: "hello", ok: true, pingMs: 1000 }, 1600);
  assert.deepEqual(g.did, ["send:state"], "disarmed: no ping until the sidecar asks to arm");
});

Deno.test("the ping interval is bounded whatever a hello asks", () => {
  const slow = new Guard().feed({ kind: "connected" }, 0)
    .feed({ kind: "hello", ok: true, pingMs: 3_600_000 }, 0);
  assert.equal(slow.state.pingMs, 10_000);
  const fast = new Guard().feed({ kind: "connected" }, 0)
    .feed({ kind: "hello", ok: true, pingMs: 1 }, 0);
  assert.equal(fast.state.pingMs, 100);
});
