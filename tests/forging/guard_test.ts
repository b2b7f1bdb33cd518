/**
 * The step with a guard (lib/forging/guard.ts, promotion.ts) and FENCE=guard (lease.ts): the
 * promotion's SIGHUP waits for the guard's arming; what the guard is told; a guard that goes
 * away; and a fence proven by the previous holder's guard bound instead of an API answer. Tables
 * over the real step: no I/O, no timers.
 */

import assert from "node:assert/strict";
import { guardAnswer, guardView } from "../../lib/forging/guard.ts";
import { isForging } from "../../lib/forging/state.ts";
import { nextWake } from "../../lib/forging/step.ts";
import {
  FACTS,
  forger,
  Machine,
  ME,
  NODE,
  OTHER,
  present,
  rec,
  standby,
} from "../support/machine.ts";

const GUARDED = { guard: true } as const;

/** A guarded standby that took a clean handover: claim, arming and placement are under way. */
function promoting(): Machine {
  const m = standby(GUARDED);
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  m.feed({
    kind: "lease_written",
    decision: m.effect("write_lease").decision,
    record: rec(ME, "12"),
    sentAt: m.now,
  });
  return m;
}

Deno.test("a guarded promotion arms the guard beside the claim and the placement", () => {
  const m = promoting();
  assert.deepEqual(m.did, [
    "report:renewed",
    "report:became_leader",
    "claim_leader",
    "arm_guard",
    "place_keys:promote",
  ]);
  assert.equal(guardAnswer(m.state, m.now).armed, true, "armed from the request on");
});

Deno.test("its SIGHUP waits for the guard's arming, whatever the order of the answers", () => {
  const orders = [
    ["claim", "keys", "armed"],
    ["armed", "claim", "keys"],
    ["keys", "armed", "claim"],
  ] as const;
  for (const order of orders) {
    const m = promoting();
    const term = m.effect("arm_guard").term;
    for (const [i, answer] of order.entries()) {
      if (answer === "claim") m.feed({ kind: "leader_claimed", term });
      if (answer === "armed") m.feed({ kind: "guard_armed", term });
      if (answer === "keys") m.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
      const last = i === order.length - 1;
      assert.equal(m.did.includes("signal:promote"), last, `${order.join(", ")} at ${answer}`);
    }
    // An earlier term's arming never counts.
    const other = promoting();
    other.feed({ kind: "leader_claimed", term });
    other.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
    other.feed({ kind: "guard_armed", term: term - 1 });
    assert.ok(!other.did.includes("signal:promote"), "an earlier term's arming counted");
  }
});

Deno.test("a guard that cannot be armed makes the leader step aside: unlink, SIGHUP, release", () => {
  const m = promoting();
  const term = m.effect("arm_guard").term;
  m.feed({ kind: "leader_claimed", term });
  m.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
  m.feed({ kind: "guard_arm_failed", term, error: "no guard is connected" });
  assert.deepEqual(m.did, [
    "report:guard_arm_failed",
    "report:stepping_aside",
    "report:stopped_leading",
    "report:demoted",
    "remove_keys",
    "signal:guard",
  ]);
  assert.equal(m.phase, "stopping");
});

/** A guarded forger: promoted with the guard armed. */
function guardedForger(): Machine {
  const m = promoting();
  const term = m.effect("arm_guard").term;
  m.feed({ kind: "leader_claimed", term });
  m.feed({ kind: "guard_armed", term });
  m.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
  m.feed({ kind: "signalled", reason: "promote", pid: NODE.pid, outcome: "ok" });
  assert.equal(isForging(m.state), true);
  return m;
}

Deno.test("the guard is told the term's time left while keys may be in place, and nothing after a confirmed stop", () => {
  const m = guardedForger();
  const deadline = m.state.election.term!.renewSentAt + 10_000;
  assert.deepEqual(guardAnswer(m.state, m.now + 1_000), {
    armed: true,
    leftMs: deadline - m.now - 1_000,
  });
  m.feed({ kind: "shutdown" });
  assert.equal(guardAnswer(m.state, m.now).armed, true, "still armed while the stop is under way");
  m.answerStop("ok");
  assert.deepEqual(guardAnswer(m.state, m.now), { armed: false, leftMs: 0 });
});

Deno.test("an unconfirmed stop keeps the guard armed with no time left: it acts at once", () => {
  const m = guardedForger();
  m.feed({ kind: "shutdown" });
  m.answerStop("refused");
  assert.deepEqual(guardAnswer(m.state, m.now), { armed: true, leftMs: 0 });
  // The guard's own stop, reported, counts as the confirmation that was missing.
  m.feed({ kind: "guard_fired", reason: "deadline", ok: true });
  assert.deepEqual(guardAnswer(m.state, m.now), { armed: false, leftMs: 0 });
  assert.equal(m.state.stopConfirmed, true);
});

Deno.test("a guard that goes away while forging makes the leader step aside at once", () => {
  const m = guardedForger();
  m.feed({ kind: "guard_link", up: false, error: "the guard closed the connection" });
  assert.deepEqual(m.did.slice(0, 2), ["report:guard_link", "report:stepping_aside"]);
  assert.ok(m.did.includes("remove_keys") && m.did.includes("signal:guard"));
  assert.equal(m.phase, "stopping");
  // On a standby the same only changes what is reported.
  const s = standby(GUARDED);
  s.feed({ kind: "guard_link", up: false });
  assert.deepEqual(s.did, ["report:guard_link"]);
  assert.equal(s.phase, "standby");
});

Deno.test("the guard stopping the node while we forge ends forging the same way", () => {
  const m = guardedForger();
  m.feed({ kind: "guard_fired", reason: "deadline", ok: true });
  assert.deepEqual(m.did.slice(0, 2), ["report:guard_fired", "report:stepping_aside"]);
  assert.equal(m.phase, "stopping");
});

Deno.test("status shows the guard: off, absent until connected, then idle or armed as it reports", () => {
  assert.equal(guardView(standby().state), "off");
  const m = standby(GUARDED);
  assert.equal(guardView(m.state), "absent");
  m.feed({ kind: "guard_link", up: true });
  assert.equal(guardView(m.state), "idle");
  m.feed({ kind: "guard_state", armed: true, demotions: {} });
  assert.equal(guardView(m.state), "armed");
  m.feed({ kind: "guard_link", up: false });
  assert.equal(guardView(m.state), "absent");
});

Deno.test("without a guard nothing waits for one", () => {
  const m = forger();
  assert.ok(!m.effects.some((e) => e.kind === "arm_guard"));
  assert.deepEqual(guardAnswer(m.state, m.now), { armed: false, leftMs: 0 });
});

// ---- FENCE=guard: the previous holder's guard bound proves its node stopped ----------------

const BOUND = { fence: true, fenceBound: true, guard: true } as const;

/** A guarded standby of FENCE=guard that saw `holder`'s record at 1001 (one read). */
function boundStandby(extra: Parameters<typeof rec>[2] = {}): Machine {
  return standby(BOUND, present(rec(OTHER, "10", extra)));
}

Deno.test("an expired holder that wrote its guard bound is proven stopped by time: no API fence", () => {
  const m = boundStandby({ guardBoundMs: 11_000 });
  m.feed({ kind: "tick" }, 1_001 + 17_000); // unchanged for LEASE + DELAY since first seen
  const write = m.effect("write_lease");
  assert.equal(write.decision.kind, "acquire");
  assert.equal(write.fencePending, undefined, "no obligation: the bound has passed already");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.ok(!m.did.includes("start_fence"), m.did.join());
  const done = m.effects.find((e) => e.kind === "report" && e.transition.kind === "fence_done");
  assert.deepEqual(
    (done as { transition: unknown }).transition,
    { kind: "fence_done", previous: OTHER, outcome: { proven: true, how: "guard_bound" } },
  );
  assert.ok(m.did.includes("arm_guard"), "straight to the promotion");
});

Deno.test("a holder without a guard bound needs the API's proof, as with FENCE=pod", () => {
  const m = boundStandby();
  m.feed({ kind: "tick" }, 1_001 + 17_000);
  const write = m.effect("write_lease");
  assert.deepEqual(write.fencePending, { holder: OTHER });
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.ok(m.did.includes("start_fence"));
  assert.equal(m.phase, "fencing");
  assert.equal((m.state.phase as { boundAt?: number }).boundAt, undefined);
});

Deno.test("a bound longer than the wait is waited for, unless the API proves it first", () => {
  for (const proofFirst of [false, true]) {
    const m = boundStandby({ guardBoundMs: 25_000 }); // a holder with a longer deadline
    m.feed({ kind: "tick" }, 1_001 + 17_000);
    const write = m.effect("write_lease");
    assert.equal(write.fencePending?.guardBoundMs, 25_000, "the obligation carries the bound");
    m.writtenCarrying(write, "12");
    assert.equal(m.phase, "fencing");
    assert.equal((m.state.phase as { boundAt?: number }).boundAt, 1_001 + 25_000);
    assert.ok(nextWake(m.state, m.now)! <= 1_001 + 25_000, "the loop wakes in time for it");
    const term = m.effect("start_fence").term;
    if (proofFirst) {
      m.feed({
        kind: "fence_done",
        term,
        previous: OTHER,
        outcome: { proven: true, how: "pod_gone" },
      }, 20_000);
      assert.equal(m.phase, "awaiting_node");
      continue;
    }
    m.feed({ kind: "tick" }, 1_001 + 25_000 - 1);
    assert.equal(m.phase, "fencing", "not before the bound");
    const renew = m.effect("write_lease"); // a renew fell due meanwhile: it carries the obligation
    assert.equal(renew.fencePending?.holder, OTHER);
    m.feed({ kind: "tick" }, 1_001 + 25_000);
    assert.deepEqual(m.did.slice(0, 2), ["cancel_fence", "report:fence_done"]);
    assert.equal(m.phase, "awaiting_node");
    // The Lease still carries the obligation: a renew without it goes out before any promotion.
    m.writtenCarrying(renew, "13");
    assert.ok(!m.did.includes("arm_guard"));
    assert.equal(m.effect("write_lease").fencePending, undefined);
  }
});

Deno.test("FENCE=pod ignores a guard bound on the Lease", () => {
  const m = standby({ fence: true, guard: true }, present(rec(OTHER, "10", { guardBoundMs: 1 })));
  m.feed({ kind: "tick" }, 1_001 + 17_000);
  const write = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.ok(m.did.includes("start_fence"));
  assert.equal(m.phase, "fencing");
});
