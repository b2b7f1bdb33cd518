/**
 * The return to the preferred replica (lib/forging/preferred.ts) as tables over the real step:
 * only the forging leader starts it, by a planned handover, once the preferred replica has stood by
 * ready and synced for the stable period without a break; never a race.
 */

import assert from "node:assert/strict";
import type { ForgingEvent } from "../../lib/forging/events.ts";
import type { PeerView } from "../../lib/kube/cardano_leader.ts";
import type { ForgingConfig } from "../../lib/forging/state.ts";
import { nextWake } from "../../lib/forging/step.ts";
import {
  type Machine,
  ME,
  opsForger,
  opsStandby,
  OTHER,
  present,
  rec,
} from "../support/machine.ts";

const STABLE = 60_000;
const CFG: Partial<ForgingConfig> = { preferredStableMs: STABLE };
const P = "producer-1";

function peer(change: Partial<PeerView> = {}): PeerView {
  return {
    phase: "standby",
    nodeFound: true,
    sync: "synced",
    tipLagSlots: 2,
    freshUntil: 1e12,
    ...change,
  };
}

function preferring(p: PeerView, preferred = P): ForgingEvent {
  return { kind: "control_read", control: { preferred, replicas: { [P]: p } } };
}

/** Keeps the term alive (answers renews) while ticking to `until`, in steps of 2 s. */
function runTo(m: Machine, until: number): void {
  while (m.now < until && m.phase === "forging") {
    m.feed({ kind: "tick" }, Math.min(until, m.now + 2_000));
    const write = m.effects.find((e) => e.kind === "write_lease");
    if (write?.kind === "write_lease") {
      m.feed({
        kind: "lease_written",
        decision: write.decision,
        record: rec(ME, String(m.now)),
        sentAt: m.now,
      });
    }
  }
}

/** The planned handover under way, if any: `<to> (<reason>)`. */
function handedTo(m: Machine): string | undefined {
  const h = m.state.ops?.pendingHandover;
  return h === undefined ? undefined : `${h.to} (${h.reason})`;
}

Deno.test("the forging leader hands back to the preferred replica after its stable period", () => {
  const m = opsForger(CFG);
  const seenAt = m.now + 1;
  m.feed(preferring(peer()), seenAt);
  assert.equal(handedTo(m), undefined, "returned before the stable period");
  assert.ok(nextWake(m.state, m.now)! <= seenAt + STABLE, "no wake-up for the return");
  runTo(m, seenAt + STABLE - 1);
  assert.equal(m.phase, "forging");
  m.feed({ kind: "tick" }, seenAt + STABLE);
  assert.equal(handedTo(m), `${P} (preferred)`);
  assert.ok(m.did.includes("signal:preferred"), m.did.join());
  // A renew sent in the same step: the release waits for its answer.
  const renew = m.effects.find((e) => e.kind === "write_lease");
  m.answerStop();
  if (renew?.kind === "write_lease") {
    m.feed({
      kind: "lease_written",
      decision: renew.decision,
      record: rec(ME, "19"),
      sentAt: m.now,
    });
  }
  const release = m.effect("release_lease");
  assert.equal(release.clean, true);
  assert.equal(release.handoverTo, P);
  assert.equal(m.phase, "stepped_aside");
  m.feed({ kind: "lease_released", record: rec("", "20", { releasedBy: ME }), clean: true });
  const reported = m.effect("report_handover");
  assert.equal(reported.reason, "preferred");
  assert.equal(reported.result, "released");
});

Deno.test("a break in the preferred replica's readiness starts its stable period again", () => {
  const breaks: [string, PeerView][] = [
    ["lagging", peer({ sync: "lagging", tipLagSlots: 900 })],
    ["of unknown sync", peer({ sync: "unknown" })],
    ["not standing by", peer({ phase: "starting" })],
    ["without its node", peer({ nodeFound: false })],
  ];
  for (const [what, broken] of breaks) {
    const m = opsForger(CFG);
    m.feed(preferring(peer()), m.now + 1);
    runTo(m, m.now + STABLE / 2);
    m.feed(preferring(broken), m.now);
    const readyAgain = m.now + 1_000;
    runTo(m, readyAgain);
    m.feed(preferring(peer()), readyAgain);
    runTo(m, readyAgain + STABLE - 1);
    assert.equal(m.phase, "forging", `returned early after a break (${what})`);
    runTo(m, readyAgain + STABLE);
    assert.equal(handedTo(m), `${P} (preferred)`, what);
  }
});

Deno.test("a preferred replica whose entry goes stale is not handed the term", () => {
  const m = opsForger(CFG);
  const seenAt = m.now + 1;
  m.feed(preferring(peer({ freshUntil: seenAt + 30_000 })), seenAt);
  runTo(m, seenAt + STABLE);
  assert.equal(m.phase, "forging", "handed to a replica that stopped publishing");
  assert.equal(m.state.ops?.preferredReady, undefined, "the count was not started again");
});

Deno.test("never a race: the preferred replica itself never takes a held Lease early", () => {
  // This replica is the preferred one, standing by; OTHER leads and renews.
  const m = opsStandby({ ...CFG, podName: P, identity: `${P}_self` });
  m.feed({ kind: "control_read", control: { preferred: P } });
  for (let i = 1; i <= 10; i++) {
    const held = present(rec(OTHER, String(10 + i)));
    m.feed({ kind: "lease_watched", observation: held }, m.now + 2_000);
    if (m.did.includes("read_lease")) m.feed({ kind: "lease_read", observation: held });
    assert.ok(!m.did.some((d) => d.startsWith("write")), "took the Lease early");
  }
  // The leader's clean release naming it is taken at once.
  m.feed({
    kind: "lease_watched",
    observation: present(rec("", "30", { releasedBy: OTHER, handoverTo: P })),
  });
  assert.ok(m.did.includes("write:acquire"), m.did.join());
});

Deno.test("no return without a preferred replica, to itself, or while not forging", () => {
  const none = opsForger(CFG);
  none.feed({ kind: "control_read", control: { replicas: { [P]: peer() } } }, none.now + 1);
  runTo(none, none.now + 2 * STABLE);
  assert.equal(none.phase, "forging");
  const self = opsForger(CFG);
  self.feed(preferring(peer(), "producer-0"), self.now + 1);
  runTo(self, self.now + 2 * STABLE);
  assert.equal(self.phase, "forging");
  // Paused: not forging, so no return; it comes once forging again and the period has passed.
  const paused = opsForger(CFG);
  paused.feed({
    kind: "control_read",
    control: { preferred: P, replicas: { [P]: peer() }, pause: { reason: "x", by: "a" } },
  }, paused.now + 1);
  assert.equal(paused.phase, "paused");
  assert.equal(handedTo(paused), undefined);
  // Without the setting (a sidecar of an older configuration), nothing.
  const off = opsForger();
  off.feed(preferring(peer()), off.now + 1);
  runTo(off, off.now + 2 * STABLE);
  assert.equal(off.phase, "forging");
});
