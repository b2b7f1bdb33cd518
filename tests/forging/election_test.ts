import assert from "node:assert/strict";
import {
  decide,
  type Decision,
  demoted,
  type ElectionState,
  type ElectionTiming,
  forgeFrom,
  initialState,
  isLeading,
  needsProbation,
  observe,
  termDeadline,
  writeFailed,
  written,
} from "../../lib/forging/election.ts";
import { newIdentity, podOf } from "../../lib/base/identity.ts";
import type { LeaseRecord, Observation } from "../../lib/kube/lease_store.ts";
import {
  ACQUIRE_PATHS,
  type AcquirePath,
  handovers,
  overlaps,
  simulate,
} from "../support/simulation.ts";

/** Default-like timing: a follower waits 15 + 2 = 17 s, a leader stops 10 s after a renew. */
const TIMING: ElectionTiming = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_500,
  acquireDelayMs: 2_000,
  sleepIntervalMs: 5_000,
};
const WAIT = TIMING.leaseDurationMs + TIMING.acquireDelayMs;
/** The retry backoff after a failed write: min(1 s, retryPeriod). */
const BACKOFF = 1_000;

const ME = "pod-a_0000000a";
const OTHER = "pod-b_0000000b";

function rec(
  holder: string,
  resourceVersion: string,
  extra: Partial<LeaseRecord> = {},
): LeaseRecord {
  return { holder, durationMs: 15_000, transitions: 0, resourceVersion, ...extra };
}
const present = (record: LeaseRecord): Observation => ({ kind: "present", record });
const ABSENT: Observation = { kind: "absent" };

// ---- table-driven cases ---------------------------------------------------------------------

/** One input to the state, at a monotonic time. */
type Step =
  | { observe: Observation; at: number }
  | { written: LeaseRecord; sentAt: number; at: number }
  | { failedAt: number }
  | { demotedAt: number; holdOffMs?: number };

interface Case {
  name: string;
  identity?: string;
  steps: Step[];
  /** The decision expected at each time, after all steps. */
  decisions: [number, Decision][];
  /** Whether the state counts as leading at each time. */
  leading?: [number, boolean][];
}

function apply(identity: string, steps: Step[], origin: number): ElectionState {
  let state = initialState(identity);
  for (const step of steps) {
    if ("observe" in step) state = observe(state, step.observe, origin + step.at);
    else if ("written" in step) {
      state = written(state, step.written, origin + step.sentAt, origin + step.at);
    } else if ("failedAt" in step) state = writeFailed(state, origin + step.failedAt);
    else state = demoted(state, origin + step.demotedAt, step.holdOffMs);
  }
  return state;
}

function shifted(decision: Decision, origin: number): Decision {
  switch (decision.kind) {
    case "wait":
      return { ...decision, until: decision.until + origin };
    case "renew":
      return { ...decision, deadline: decision.deadline + origin };
    case "acquire":
      return { ...decision, observedAt: decision.observedAt + origin };
    default:
      return decision;
  }
}

const wait = (until: number, reason: string): Decision => ({ kind: "wait", until, reason });

const CASES: Case[] = [
  {
    name: "a participant that has read nothing yet waits one sleep interval",
    steps: [],
    decisions: [[500, wait(500 + TIMING.sleepIntervalMs, "not_observed")]],
    leading: [[500, false]],
  },
  {
    name: "a follower waits until the record it observed has been unchanged for " +
      "leaseDuration + acquireDelay, then acquires with that record",
    steps: [
      { observe: present(rec(OTHER, "10")), at: 1_000 },
      // Reading the same version again does not restart the wait.
      { observe: present(rec(OTHER, "10")), at: 9_000 },
      { observe: present(rec(OTHER, "10")), at: 17_500 },
    ],
    decisions: [
      [1_000, wait(1_000 + WAIT, "held")],
      [1_000 + WAIT - 1, wait(1_000 + WAIT, "held")],
      [1_000 + WAIT, {
        kind: "acquire",
        record: rec(OTHER, "10"),
        previousHolder: OTHER,
        proofNeeded: true,
        observedAt: 1_000,
      }],
    ],
    leading: [[1_000 + WAIT, false]],
  },
  {
    name: "a changed resourceVersion restarts the wait, and the acquire carries the new record",
    steps: [
      { observe: present(rec(OTHER, "10")), at: 1_000 },
      { observe: present(rec(OTHER, "11")), at: 9_000 },
    ],
    decisions: [
      [1_000 + WAIT, wait(9_000 + WAIT, "held")],
      [9_000 + WAIT, {
        kind: "acquire",
        record: rec(OTHER, "11"),
        previousHolder: OTHER,
        proofNeeded: true,
        observedAt: 9_000,
      }],
    ],
  },
  {
    name: "a hand-shortened leaseDurationSeconds does not shorten the wait",
    steps: [{ observe: present(rec(OTHER, "10", { durationMs: 1_000 })), at: 1_000 }],
    decisions: [
      [2_000, wait(1_000 + WAIT, "held")],
      [1_000 + WAIT - 1, wait(1_000 + WAIT, "held")],
      [1_000 + WAIT, {
        kind: "acquire",
        record: rec(OTHER, "10", { durationMs: 1_000 }),
        previousHolder: OTHER,
        proofNeeded: true,
        observedAt: 1_000,
      }],
    ],
  },
  {
    name: "a lengthened leaseDurationSeconds lengthens the wait",
    steps: [{ observe: present(rec(OTHER, "10", { durationMs: 60_000 })), at: 1_000 }],
    decisions: [
      [1_000 + WAIT, wait(1_000 + 60_000 + TIMING.acquireDelayMs, "held")],
      [1_000 + 60_000 + TIMING.acquireDelayMs, {
        kind: "acquire",
        record: rec(OTHER, "10", { durationMs: 60_000 }),
        previousHolder: OTHER,
        proofNeeded: true,
        observedAt: 1_000,
      }],
    ],
  },
  {
    name: "a release marked releasedBy is taken at once and needs no proof",
    steps: [
      { observe: present(rec(OTHER, "10")), at: 0 },
      { observe: present(rec("", "11", { durationMs: 1_000, releasedBy: OTHER })), at: 3_000 },
    ],
    decisions: [[3_000, {
      kind: "acquire",
      record: rec("", "11", { durationMs: 1_000, releasedBy: OTHER }),
      previousHolder: OTHER,
      proofNeeded: false,
      observedAt: 3_000,
    }]],
  },
  {
    name: "an empty holder without releasedBy is waited out, and the last holder needs proof",
    steps: [
      { observe: present(rec(OTHER, "10")), at: 0 },
      { observe: present(rec("", "11", { durationMs: 1_000 })), at: 3_000 },
    ],
    decisions: [
      [3_000, wait(3_000 + WAIT, "unexplained_release")],
      [3_000 + WAIT, {
        kind: "acquire",
        record: rec("", "11", { durationMs: 1_000 }),
        previousHolder: OTHER,
        proofNeeded: true,
        observedAt: 3_000,
      }],
    ],
  },
  {
    name: "an empty releasedBy counts as an unexplained release",
    steps: [
      { observe: present(rec(OTHER, "10")), at: 0 },
      { observe: present(rec("", "11", { releasedBy: "" })), at: 3_000 },
    ],
    decisions: [[3_000, wait(3_000 + WAIT, "unexplained_release")]],
  },
  {
    name: "a handover release naming this pod is taken at once and needs no proof",
    steps: [
      { observe: present(rec(OTHER, "10")), at: 0 },
      { observe: present(rec("", "11", { releasedBy: OTHER, handoverTo: "pod-a" })), at: 3_000 },
    ],
    decisions: [[3_000, {
      kind: "acquire",
      record: rec("", "11", { releasedBy: OTHER, handoverTo: "pod-a" }),
      previousHolder: OTHER,
      proofNeeded: false,
      observedAt: 3_000,
    }]],
  },
  {
    name: "a handover release naming another pod is waited out like an unmarked release, " +
      "then taken without proof (it was clean)",
    steps: [
      { observe: present(rec(OTHER, "10")), at: 0 },
      { observe: present(rec("", "11", { releasedBy: OTHER, handoverTo: "pod-c" })), at: 3_000 },
    ],
    decisions: [
      [3_000, wait(3_000 + WAIT, "handed_to_other")],
      [3_000 + WAIT - 1, wait(3_000 + WAIT, "handed_to_other")],
      [3_000 + WAIT, {
        kind: "acquire",
        record: rec("", "11", { releasedBy: OTHER, handoverTo: "pod-c" }),
        previousHolder: OTHER,
        proofNeeded: false,
        observedAt: 3_000,
      }],
    ],
    leading: [[3_000 + WAIT, false]],
  },
  {
    name: "a handover target is matched by pod name, not by a pod whose name merely starts with it",
    identity: "pod-a-1_0000000c",
    steps: [
      { observe: present(rec("", "11", { releasedBy: OTHER, handoverTo: "pod-a" })), at: 3_000 },
    ],
    decisions: [[3_000, wait(3_000 + WAIT, "handed_to_other")]],
  },
  {
    name: "a handover target in a hold-off waits for it like any other acquisition",
    steps: [
      { written: rec(ME, "30"), sentAt: 1_000, at: 1_100 },
      { demotedAt: 2_000, holdOffMs: 30_000 },
      { observe: present(rec("", "31", { releasedBy: OTHER, handoverTo: "pod-a" })), at: 3_000 },
    ],
    decisions: [[3_000, wait(32_000, "stepped_aside")]],
  },
  {
    name: "an absent lease is created at once (the create is on probation instead), with proof " +
      "needed for the last holder",
    steps: [
      { observe: present(rec(OTHER, "10")), at: 0 },
      { observe: ABSENT, at: 4_000 },
    ],
    decisions: [
      [4_000, {
        kind: "acquire",
        record: undefined,
        previousHolder: OTHER,
        proofNeeded: true,
        observedAt: 4_000,
      }],
    ],
  },
  {
    name: "an absent lease whose holder was never seen is created at once, without proof",
    steps: [{ observe: ABSENT, at: 0 }],
    decisions: [
      [0, {
        kind: "acquire",
        record: undefined,
        previousHolder: "",
        proofNeeded: false,
        observedAt: 0,
      }],
    ],
  },
  {
    name: "a lease that reappears after being absent is waited out from its reappearance",
    steps: [
      { observe: ABSENT, at: 0 },
      { observe: present(rec(OTHER, "20")), at: 5_000 },
    ],
    decisions: [[5_500, wait(5_000 + WAIT, "held")]],
  },
  {
    name: "a clean release that carries a fence obligation makes its taker prove that holder",
    steps: [{
      observe: present(rec("", "40", {
        releasedBy: "producer-2_x",
        fencePending: { holder: OTHER, podUid: "uid-1", writtenAt: 5_000 },
      })),
      at: 0,
    }],
    decisions: [[0, {
      kind: "acquire",
      record: rec("", "40", {
        releasedBy: "producer-2_x",
        fencePending: { holder: OTHER, podUid: "uid-1", writtenAt: 5_000 },
      }),
      previousHolder: OTHER,
      proofNeeded: true,
      observedAt: 0,
      pending: { holder: OTHER, podUid: "uid-1", writtenAt: 5_000 },
    }]],
  },
  {
    name: "an obligation seen before the Lease was deleted is owed by its creator",
    steps: [
      { observe: present(rec("producer-2_x", "41", { fencePending: { holder: OTHER } })), at: 0 },
      { observe: ABSENT, at: 1_000 },
    ],
    decisions: [[1_000, {
      kind: "acquire",
      record: undefined,
      previousHolder: OTHER,
      proofNeeded: true,
      observedAt: 1_000,
      pending: { holder: OTHER },
    }]],
  },
  {
    name: "a leader renews after retryPeriod using its observed record",
    identity: ME,
    steps: [{ written: rec(ME, "30"), sentAt: 1_000, at: 1_200 }],
    decisions: [
      [1_200, wait(1_000 + TIMING.retryPeriodMs, "renew_later")],
      [1_000 + TIMING.retryPeriodMs, {
        kind: "renew",
        record: rec(ME, "30"),
        deadline: 1_000 + TIMING.renewDeadlineMs,
      }],
    ],
    leading: [[1_200, true]],
  },
  {
    name: "a leader demotes with renew_deadline at exactly renewSentAt + renewDeadline",
    identity: ME,
    steps: [{ written: rec(ME, "30"), sentAt: 1_000, at: 1_200 }],
    decisions: [
      [10_999, { kind: "renew", record: rec(ME, "30"), deadline: 11_000 }],
      [11_000, { kind: "demote", reason: "renew_deadline" }],
      [50_000, { kind: "demote", reason: "renew_deadline" }],
    ],
    leading: [[10_999, true], [11_000, false]],
  },
  {
    name: "a slow renew that succeeds late ends its term at sentAt + renewDeadline, not later",
    identity: ME,
    steps: [
      { written: rec(ME, "30"), sentAt: 0, at: 100 },
      { written: rec(ME, "31"), sentAt: 2_500, at: 9_000 },
    ],
    decisions: [
      [9_000, { kind: "renew", record: rec(ME, "31"), deadline: 12_500 }],
      [12_500, { kind: "demote", reason: "renew_deadline" }],
    ],
    leading: [[12_499, true], [12_500, false]],
  },
  {
    name: "a renew whose response arrives after its deadline demotes at once",
    identity: ME,
    steps: [
      { written: rec(ME, "30"), sentAt: 0, at: 100 },
      { written: rec(ME, "31"), sentAt: 2_500, at: 13_000 },
    ],
    decisions: [[13_000, { kind: "demote", reason: "renew_deadline" }]],
    leading: [[13_000, false]],
  },
  {
    name: "a leader whose retry backoff runs past its deadline wakes at the deadline",
    identity: ME,
    steps: [
      { written: rec(ME, "30"), sentAt: 1_000, at: 1_100 },
      { failedAt: 10_500 },
    ],
    decisions: [
      [10_500, wait(11_000, "renew_later")],
      [11_000, { kind: "demote", reason: "renew_deadline" }],
    ],
  },
  {
    name: "a leader that observes another holder demotes with lease_taken",
    identity: ME,
    steps: [
      { written: rec(ME, "30"), sentAt: 1_000, at: 1_100 },
      { observe: present(rec(OTHER, "31")), at: 2_000 },
    ],
    decisions: [[2_000, { kind: "demote", reason: "lease_taken" }]],
  },
  {
    name: "a leader that observes an empty holder demotes with lease_released",
    identity: ME,
    steps: [
      { written: rec(ME, "30"), sentAt: 1_000, at: 1_100 },
      { observe: present(rec("", "31", { releasedBy: OTHER })), at: 2_000 },
    ],
    decisions: [[2_000, { kind: "demote", reason: "lease_released" }]],
  },
  {
    name: "a leader that observes the lease absent demotes with lease_deleted",
    identity: ME,
    steps: [
      { written: rec(ME, "30"), sentAt: 1_000, at: 1_100 },
      { observe: ABSENT, at: 2_000 },
    ],
    decisions: [[2_000, { kind: "demote", reason: "lease_deleted" }]],
  },
  {
    name: "a leader that reads its own newer version (its lost write) renews with that version",
    identity: ME,
    steps: [
      { written: rec(ME, "30"), sentAt: 1_000, at: 1_100 },
      { failedAt: 3_600 },
      { observe: present(rec(ME, "31")), at: 3_700 },
    ],
    decisions: [
      [3_700, wait(3_600 + BACKOFF, "renew_later")],
      [3_600 + BACKOFF, { kind: "renew", record: rec(ME, "31"), deadline: 11_000 }],
    ],
    // Its term still dates from the last write it KNOWS succeeded.
    leading: [[10_999, true], [11_000, false]],
  },
  {
    name: "a record holding our own identity (a lost response) is re-acquired without proof",
    identity: ME,
    steps: [{ observe: present(rec(ME, "30")), at: 1_000 }],
    decisions: [[1_000, {
      kind: "acquire",
      record: rec(ME, "30"),
      previousHolder: "",
      proofNeeded: false,
      observedAt: 1_000,
    }]],
    leading: [[1_000, false]],
  },
  {
    name: "a leader demoted at its deadline may re-claim its own unchanged record at once " +
      "(conditional on its version)",
    identity: ME,
    steps: [
      { written: rec(ME, "30"), sentAt: 1_000, at: 1_100 },
      { demotedAt: 11_000 },
    ],
    decisions: [[11_000, {
      kind: "acquire",
      record: rec(ME, "30"),
      previousHolder: "",
      proofNeeded: false,
      observedAt: 1_100,
    }]],
    leading: [[11_000, false]],
  },
  {
    name: "after a failed acquire the next write waits for the backoff",
    steps: [
      { observe: present(rec(OTHER, "10")), at: 0 },
      { failedAt: WAIT + 50 },
    ],
    decisions: [
      [WAIT + 50, wait(WAIT + 50 + BACKOFF, "backoff")],
      [WAIT + 50 + BACKOFF, {
        kind: "acquire",
        record: rec(OTHER, "10"),
        previousHolder: OTHER,
        proofNeeded: true,
        observedAt: 0,
      }],
    ],
  },
  {
    name: "after a failed renew the next renew waits for the backoff",
    identity: ME,
    steps: [
      { written: rec(ME, "30"), sentAt: 1_000, at: 1_100 },
      { failedAt: 3_600 },
    ],
    decisions: [
      [3_600, wait(3_600 + BACKOFF, "renew_later")],
      [3_600 + BACKOFF, { kind: "renew", record: rec(ME, "30"), deadline: 11_000 }],
    ],
  },
  {
    name: "a successful write clears an earlier failure",
    identity: ME,
    steps: [
      { observe: present(rec(OTHER, "10")), at: 0 },
      { failedAt: WAIT },
      { written: rec(ME, "12"), sentAt: WAIT + 10, at: WAIT + 20 },
    ],
    decisions: [[WAIT + 10 + TIMING.retryPeriodMs, {
      kind: "renew",
      record: rec(ME, "12"),
      deadline: WAIT + 10 + TIMING.renewDeadlineMs,
    }]],
  },
  {
    name: "demoted with a hold-off prevents acquisition before now + holdOff",
    identity: ME,
    steps: [
      { written: rec(ME, "30"), sentAt: 1_000, at: 1_100 },
      { demotedAt: 5_000, holdOffMs: 30_000 },
      { observe: present(rec("", "31", { releasedBy: OTHER })), at: 6_000 },
    ],
    decisions: [
      [6_000, wait(35_000, "stepped_aside")],
      [34_999, wait(35_000, "stepped_aside")],
      [35_000, {
        kind: "acquire",
        record: rec("", "31", { releasedBy: OTHER }),
        previousHolder: OTHER,
        proofNeeded: false,
        observedAt: 6_000,
      }],
    ],
    leading: [[5_000, false], [6_000, false]],
  },
  {
    name: "a leader demoted without hold-off stops leading at once",
    identity: ME,
    steps: [
      { written: rec(ME, "30"), sentAt: 1_000, at: 1_100 },
      { demotedAt: 2_000 },
    ],
    decisions: [],
    leading: [[2_000, false], [3_000, false]],
  },
];

/** Clock origins: monotonic clocks of different processes share no zero. */
const ORIGINS = [0, 7_654_321, -3_000_000, 1e12];

for (const c of CASES) {
  Deno.test(c.name, () => {
    for (const origin of ORIGINS) {
      const state = apply(c.identity ?? ME, c.steps, origin);
      for (const [at, expected] of c.decisions) {
        assert.deepEqual(
          decide(state, origin + at, TIMING),
          shifted(expected, origin),
          `at ${at} (clock origin ${origin})`,
        );
      }
      for (const [at, expected] of c.leading ?? []) {
        assert.equal(
          isLeading(state, origin + at, TIMING),
          expected,
          `leading at ${at} (clock origin ${origin})`,
        );
      }
    }
  });
}

// ---- rules that need more than one state ---------------------------------------------------

Deno.test("expiry is measured from the first observation, so followers with different clock origins act alike", () => {
  // The record carries no time the step reads: the same record observed by two followers whose
  // monotonic clocks have different origins (and whose wall clocks may disagree by minutes).
  const record = rec(OTHER, "10");
  const originA = 1_000;
  const originB = 86_400_000 + 1_234;
  let a = initialState("pod-c_0000000c");
  let b = initialState("pod-d_0000000d");
  for (const step of [0, 4_000, 12_000]) {
    a = observe(a, present(record), originA + step);
    b = observe(b, present(record), originB + step);
  }
  for (const at of [0, 5_000, WAIT - 1, WAIT, WAIT + 1]) {
    const da = decide(a, originA + at, TIMING);
    const db = decide(b, originB + at, TIMING);
    assert.equal(da.kind, db.kind, `at ${at}`);
    if (da.kind === "wait" && db.kind === "wait") {
      assert.equal(da.until - originA, db.until - originB);
    }
    assert.equal(da.kind, at < WAIT ? "wait" : "acquire", `at ${at}`);
  }
  // A follower that first sees the record late waits the full time from then, however old
  // the record is.
  const late = observe(initialState("pod-e_0000000e"), present(record), 500_000);
  assert.deepEqual(decide(late, 500_000 + WAIT - 1, TIMING), wait(500_000 + WAIT, "held"));
});

Deno.test("two processes of the same pod never both count as leading for one record", () => {
  const first = newIdentity("pod-a");
  const second = newIdentity("pod-a");
  assert.notEqual(first, second);
  assert.equal(podOf(first), "pod-a");
  assert.equal(podOf(second), "pod-a");

  const record = rec(first, "40");
  const writer = written(initialState(first), record, 1_000, 1_100);
  const other = observe(initialState(second), present(record), 1_100);

  assert.equal(isLeading(writer, 1_100, TIMING), true);
  assert.equal(termDeadline(writer, TIMING), 11_000);
  assert.equal(isLeading(other, 1_100, TIMING), false);
  assert.equal(termDeadline(other, TIMING), undefined);
  // The second process treats its namesake as any other holder: it waits, then needs proof.
  assert.deepEqual(decide(other, 1_100, TIMING), wait(1_100 + WAIT, "held"));
  assert.deepEqual(decide(other, 1_100 + WAIT, TIMING), {
    kind: "acquire",
    record,
    previousHolder: first,
    proofNeeded: true,
    observedAt: 1_100,
  });
});

Deno.test("the step is pure: it never changes the state it is given", () => {
  const state = Object.freeze(observe(initialState(ME), present(rec(OTHER, "1")), 0));
  const before = structuredClone(state);
  decide(state, WAIT, TIMING);
  observe(state, ABSENT, 10);
  written(state, rec(ME, "2"), 10, 20);
  writeFailed(state, 30);
  demoted(state, 40, 1_000);
  assert.deepEqual(state, before);
});

// ---- a create has no precondition on the absence it was decided on ------------------------
//
// "absent" is not a version: absent -> (a create the follower never saw) -> deleted again looks
// like one unchanged absence, and a create succeeds whenever the Lease is missing at commit time.
// A create that hangs, times out on the client and commits later is re-acquired at once through
// the lost-response rule (our own record). Probation covers both for the term begun that way: it
// may forge only once every holder of a since-deleted Lease has stopped (the wait before a create
// covers the rest: a clean handover made during probation, see the README). This test checks the
// rule on the pure step; the simulation below checks the whole on the nodes, with the Lease
// deleted by hand up to four times and creates that commit late.

Deno.test("a follower that missed a create and a second deletion does not forge alongside its creator (a create is on probation)", () => {
  // F polls every 5 s; its watch lost the events in between.
  let follower = observe(initialState(ME), ABSENT, 0);
  let creator = observe(initialState(OTHER), ABSENT, 0);
  creator = written(creator, rec(OTHER, "5"), WAIT, WAIT + 100, { timing: TIMING }); // creates
  creator = written(creator, rec(OTHER, "6"), WAIT + 2_500, WAIT + 2_600); // renews
  // The lease is deleted by hand at WAIT + 3_000; F sees only absence, before and after.
  follower = observe(follower, ABSENT, 15_000);
  follower = observe(follower, ABSENT, WAIT + 3_100);
  // F creates the lease at once (it never saw a holder), but the create is on probation.
  const decision = decide(follower, WAIT + 3_100, TIMING);
  assert.equal(decision.kind, "acquire");
  assert.equal(needsProbation(decision, ME), true);
  follower = written(follower, rec(ME, "7"), WAIT + 3_100, WAIT + 3_200, { timing: TIMING });
  const now = WAIT + 3_200;
  assert.ok(!(isLeading(follower, now, TIMING) && isLeading(creator, now, TIMING)));
  // F may forge only after the creator's term has certainly ended.
  assert.ok(forgeFrom(follower)! >= termDeadline(creator, TIMING)!);
  assert.equal(isLeading(follower, forgeFrom(follower)! - 1, TIMING), false);
});

Deno.test("a renew answered only after its term ended begins a term on probation", () => {
  // F's term began with a create that was answered after 4 s: it is on probation. Its renew is
  // answered only after F's deadline (a client timeout that fired late), when F has stopped.
  let f = observe(initialState(ME), ABSENT, 0);
  f = written(f, rec(ME, "5"), 0, 4_000, { timing: TIMING });
  const renew = decide(f, 4_000, TIMING);
  assert.equal(renew.kind, "renew");
  f = demoted(f, 10_000);
  // The forging step asks only for a write that begins a term: this answer begins one on our own
  // record, which must wait out a probation again (the first one was forgotten with the term),
  // or F could forge beside a holder of a Lease deleted just before its create.
  assert.equal(needsProbation(renew, ME), true);
  f = written(f, rec(ME, "6"), 4_000, 10_500, { timing: TIMING });
  assert.equal(isLeading(f, 10_500, TIMING), false);
  assert.equal(forgeFrom(f), 10_500 + WAIT);
});

// ---- the safety property, by simulation ----------------------------------------------------
//
// tests/support/simulation.ts: three pods, each a sidecar driving the real forging step (and
// through it the real election step) as the loop does, against a simulated API server, network
// and cardano-node, under faults. Overlap is measured from what the simulated NODES did.

/** Simulated time per schedule. */
const SCHEDULE_MS = 120_000;

interface Totals {
  schedules: number;
  overlaps: string[];
  acquired: Record<AcquirePath, number>;
  handovers: Record<string, number>;
  faults: Record<string, number>;
  forgingMs: number;
  /** Forging intervals by pod (pods 0 and 2 boot on decoys, pod 1 on the pool's keys). */
  forgedBy: number[];
}

function runSchedules(
  seeds: number,
  opts: { timing: ElectionTiming; maxDeletes: number; firstSeed?: number },
): Totals {
  const totals: Totals = {
    schedules: 0,
    overlaps: [],
    acquired: { create: 0, released: 0, expired: 0, own: 0 },
    handovers: {},
    faults: {},
    forgingMs: 0,
    forgedBy: [0, 0, 0],
  };
  const first = opts.firstSeed ?? 1;
  for (let seed = first; seed < first + seeds; seed++) {
    const result = simulate({
      seed,
      durationMs: SCHEDULE_MS,
      timing: opts.timing,
      maxDeletes: opts.maxDeletes,
    });
    totals.schedules++;
    for (const overlap of overlaps(result.forging)) {
      totals.overlaps.push(`seed ${seed}: ${overlap}`);
    }
    for (const path of ACQUIRE_PATHS) totals.acquired[path] += result.acquired[path];
    for (const [path, n] of Object.entries(handovers(result.forging))) {
      totals.handovers[path] = (totals.handovers[path] ?? 0) + n;
    }
    for (const [fault, n] of Object.entries(result.faults)) {
      totals.faults[fault] = (totals.faults[fault] ?? 0) + n;
    }
    for (const interval of result.forging) {
      totals.forgingMs += interval.end - interval.start;
      totals.forgedBy[interval.pod] = (totals.forgedBy[interval.pod] ?? 0) + 1;
    }
  }
  return totals;
}

/** Not vacuous: forging changed nodes by every path, under every kind of fault. */
function assertNotVacuous(totals: Totals, scale: number): void {
  const summary = JSON.stringify({ ...totals, overlaps: totals.overlaps.length });
  assert.equal(totals.handovers.none, undefined, `a node forged under no term: ${summary}`);
  for (const path of ACQUIRE_PATHS) {
    assert.ok(totals.acquired[path] > 300 * scale, `acquired by ${path}: ${summary}`);
  }
  // Forging moved to another node, counted by how the new forger's term began.
  assert.ok((totals.handovers.expired ?? 0) > 500 * scale, summary);
  assert.ok((totals.handovers.released ?? 0) > 100 * scale, summary);
  assert.ok((totals.handovers.create ?? 0) > 30 * scale, summary);
  assert.ok((totals.handovers.own ?? 0) > 10 * scale, summary);
  // Every pod forged often, those that boot on decoys as the one that boots on the pool's keys.
  for (const [pod, n] of totals.forgedBy.entries()) {
    assert.ok(n > 500 * scale, `pod ${pod} forged ${n} times: ${summary}`);
  }
  for (
    const fault of [
      "partition",
      "holder_cleared",
      "duration_shortened",
      "deleted",
      "rotation",
      "sources_unusable",
      "node_restart",
      "sidecar_restart",
      "pod_restart",
      "pod_crash",
    ]
  ) {
    assert.ok((totals.faults[fault] ?? 0) > 100 * scale, `${fault}: ${summary}`);
  }
}

Deno.test("safety: no two nodes ever forge at once across thousands of random schedules", () => {
  const totals = runSchedules(3_000, { timing: TIMING, maxDeletes: 1 });
  assert.deepEqual(totals.overlaps, []);
  assertNotVacuous(totals, 1);
});

Deno.test("no two nodes ever forge at once even when the lease is deleted by hand several times", () => {
  const totals = runSchedules(6_000, { timing: TIMING, maxDeletes: 4, firstSeed: 100_001 });
  assert.deepEqual(totals.overlaps, []);
  assertNotVacuous(totals, 2);
  assert.ok(totals.faults.deleted! > 3_000, JSON.stringify(totals.faults));
});

Deno.test("the simulation finds overlaps when followers wait less than the leader's renew deadline", () => {
  // A timing that config validation refuses: renewDeadline (10 s) above leaseDuration (4 s).
  const broken: ElectionTiming = { ...TIMING, leaseDurationMs: 4_000, acquireDelayMs: 0 };
  const totals = runSchedules(300, { timing: broken, maxDeletes: 1 });
  assert.ok(totals.overlaps.length > 0);
});
