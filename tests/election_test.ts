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
  type LeaseRecord,
  needsProbation,
  type Observation,
  observe,
  podOf,
  termDeadline,
  writeFailed,
  written,
} from "../lib/election.ts";
import { newIdentity } from "../lib/identity.ts";

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
    name: "an absent lease is waited out from when absence was first seen, then created, " +
      "with proof needed for the last holder",
    steps: [
      { observe: present(rec(OTHER, "10")), at: 0 },
      { observe: ABSENT, at: 4_000 },
      { observe: ABSENT, at: 10_000 },
    ],
    decisions: [
      [10_000, wait(4_000 + WAIT, "lease_absent")],
      [4_000 + WAIT, {
        kind: "acquire",
        record: undefined,
        previousHolder: OTHER,
        proofNeeded: true,
      }],
    ],
  },
  {
    name: "an absent lease whose holder was never seen is created without proof",
    steps: [{ observe: ABSENT, at: 0 }],
    decisions: [
      [WAIT - 1, wait(WAIT, "lease_absent")],
      [WAIT, { kind: "acquire", record: undefined, previousHolder: "", proofNeeded: false }],
    ],
  },
  {
    name: "a lease that reappears after being absent restarts the wait",
    steps: [
      { observe: ABSENT, at: 0 },
      { observe: present(rec(OTHER, "20")), at: 5_000 },
      { observe: ABSENT, at: 6_000 },
    ],
    decisions: [[WAIT, wait(6_000 + WAIT, "lease_absent")]],
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

// ---- the safety property, by simulation ----------------------------------------------------

/** mulberry32: a small deterministic PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A minimal binary heap of timed events, ordered by (time, insertion). */
class EventQueue {
  #heap: { at: number; seq: number; run: () => void }[] = [];
  #seq = 0;
  push(at: number, run: () => void): void {
    const heap = this.#heap;
    heap.push({ at, seq: this.#seq++, run });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(i, parent)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }
  pop(): { at: number; run: () => void } | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && this.#less(l, m)) m = l;
        if (r < heap.length && this.#less(r, m)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
  #less(i: number, j: number): boolean {
    const a = this.#heap[i]!;
    const b = this.#heap[j]!;
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }
}

interface SimOptions {
  seed: number;
  /** Simulated time, ms. */
  durationMs: number;
  timing: ElectionTiming;
  /** How many times the lease may be deleted by hand (more than one: see the ABA test). */
  maxDeletes: number;
  /** Receives a line per server commit and per write, for debugging a failing seed. */
  trace?: (line: string) => void;
}

interface Interval {
  who: number;
  start: number;
  end: number;
}

interface SimResult {
  intervals: Interval[];
  /** Successful acquisitions, by how they were made. */
  acquired: { create: number; released: number; expired: number; own: number };
  /** Acquisitions made while another participant's known term was still running. */
  earlyAcquires: string[];
}

/**
 * One leader and two followers share one in-memory Lease with resourceVersions. Every request
 * and response may be delayed or dropped, renews may be slow, leaders sometimes step aside
 * cleanly (release with releasedBy) and the lease is sometimes edited by hand. Each participant
 * drives only decide/observe/written/writeFailed/demoted, like the loop in forge_manager.ts,
 * on its own monotonic clock (global time + a random origin).
 */
function simulate(opts: SimOptions): SimResult {
  const rand = prng(opts.seed);
  const T = opts.timing;
  const queue = new EventQueue();
  let t = 0;

  // The server.
  let stored: LeaseRecord | undefined;
  let revision = 0;
  const trace = opts.trace ?? (() => {});
  const commit = (record: LeaseRecord | undefined): void => {
    trace(`${t.toFixed(0)} commit ${record ? JSON.stringify(record) : "deleted"}`);
    stored = record;
    for (const p of parts) {
      // Watch events: delayed, sometimes lost.
      if (rand() < 0.2) continue;
      const obs: Observation = record === undefined ? ABSENT : present(record);
      queue.push(t + delay(), () => p.onWatch(obs));
    }
  };

  // Network behaviour of this schedule.
  const slowness = rand();
  const dropRate = rand() * 0.3;
  const noTimeouts = rand() < 0.3; // responses are accepted however late they come
  /** A message delay in whole milliseconds (integer times keep `t + origin` exact). */
  function delay(): number {
    const r = rand();
    if (r < 0.7) return Math.floor(rand() * 200);
    if (r < 0.95) return Math.floor(rand() * 3_000 * (0.5 + slowness));
    return Math.floor(rand() * 15_000 * slowness); // a hung request
  }

  /** Sends a request: it may be lost on the way there or back. */
  function request<R>(
    p: Participant,
    timeoutMs: number,
    serve: () => R,
    onReply: (reply: R | undefined) => void,
  ): void {
    const id = ++p.requestId;
    const sentAt = t;
    let answered = false;
    const finish = (reply: R | undefined): void => {
      if (answered || p.requestId !== id) return;
      answered = true;
      onReply(reply);
    };
    queue.push(sentAt + (noTimeouts ? 30_000 : timeoutMs), () => finish(undefined));
    if (rand() < dropRate || p.partitionedAt(t)) return;
    queue.push(t + delay(), () => {
      const reply = serve();
      if (rand() < dropRate) return;
      queue.push(t + delay(), () => {
        if (p.partitionedAt(t)) return;
        finish(reply);
      });
    });
  }

  type WriteReply = { ok: true; record: LeaseRecord } | { ok: false };
  function claim(identity: string, base: LeaseRecord | undefined): WriteReply {
    if (base === undefined) {
      if (stored !== undefined) return { ok: false };
      const record = rec(identity, String(++revision), { durationMs: T.leaseDurationMs });
      commit(record);
      return { ok: true, record };
    }
    if (stored === undefined || stored.resourceVersion !== base.resourceVersion) {
      return { ok: false };
    }
    const record: LeaseRecord = {
      holder: identity,
      durationMs: T.leaseDurationMs,
      transitions: stored.transitions + (stored.holder === identity ? 0 : 1),
      resourceVersion: String(++revision),
    };
    commit(record);
    return { ok: true, record };
  }
  function release(identity: string, base: LeaseRecord): WriteReply {
    if (stored === undefined || stored.resourceVersion !== base.resourceVersion) {
      return { ok: false };
    }
    const record = rec("", String(++revision), {
      durationMs: 1_000,
      transitions: stored.transitions,
      releasedBy: identity,
    });
    commit(record);
    return { ok: true, record };
  }

  const intervals: Interval[] = [];
  const earlyAcquires: string[] = [];
  const acquiredBy = { create: 0, released: 0, expired: 0, own: 0 };

  class Participant {
    state: ElectionState;
    readonly origin = Math.floor(rand() * 1e9) - 5e8;
    busy = false;
    requestId = 0;
    wakeId = 0;
    nextPoll = 0;
    open: Interval | undefined;
    readonly partition: [number, number];

    constructor(readonly index: number, readonly identity: string) {
      this.state = initialState(identity);
      const from = rand() * opts.durationMs;
      this.partition = rand() < 0.5 ? [from, from + rand() * 30_000] : [0, 0];
    }
    local(): number {
      return t + this.origin;
    }
    partitionedAt(at: number): boolean {
      return at >= this.partition[0] && at < this.partition[1];
    }
    /** Replaces the state, and keeps the record of leading intervals (global time). */
    set(next: ElectionState): void {
      this.state = next;
      const deadline = termDeadline(next, T);
      const open = this.open;
      if (deadline === undefined) {
        if (open !== undefined) open.end = Math.min(open.end, t);
        this.open = undefined;
        return;
      }
      const end = deadline - this.origin;
      if (open !== undefined && open.end > t) {
        open.end = end;
        return;
      }
      this.open = undefined;
      // A term on probation may forge only from forgeFrom: its leading interval starts there.
      const start = Math.max(t, (forgeFrom(next) ?? -Infinity) - this.origin);
      if (end > start) {
        this.open = { who: this.index, start, end };
        intervals.push(this.open);
      }
    }
    onWatch(obs: Observation): void {
      if (this.partitionedAt(t)) return;
      if (this.state.term === undefined) this.set(observe(this.state, obs, this.local()));
      this.tick();
    }
    wakeAt(at: number): void {
      const id = ++this.wakeId;
      queue.push(Math.max(at, t), () => {
        if (this.wakeId === id) this.tick();
      });
    }
    read(): void {
      this.busy = true;
      const snapshot = (): Observation => (stored === undefined ? ABSENT : present(stored));
      request(this, Math.min(T.sleepIntervalMs, 5_000), snapshot, (obs) => {
        this.busy = false;
        if (obs !== undefined) this.set(observe(this.state, obs, this.local()));
        this.nextPoll = this.local() + T.sleepIntervalMs;
        this.tick();
      });
    }
    tick(): void {
      if (this.busy) return;
      const now = this.local();
      if (this.state.term === undefined && now >= this.nextPoll) return this.read();
      const decision = decide(this.state, now, T);
      switch (decision.kind) {
        case "demote":
          trace(`${t.toFixed(0)} ${this.index} demotes: ${decision.reason}`);
          this.set(demoted(this.state, now));
          return this.tick();
        case "renew":
        case "acquire":
          return this.write(decision);
        case "wait": {
          if (this.state.term !== undefined && rand() < 0.01) return this.stepAside();
          const leader = this.state.term !== undefined;
          return this.wakeAt(
            Math.min(decision.until, leader ? Infinity : this.nextPoll) - this.origin,
          );
        }
      }
    }
    write(decision: Extract<Decision, { kind: "renew" | "acquire" }>): void {
      this.busy = true;
      const sentAt = this.local();
      const timeoutMs = decision.kind === "renew"
        ? Math.min(decision.deadline - sentAt, T.renewDeadlineMs)
        : Math.min(T.renewDeadlineMs, 5_000);
      // The watchdog: a leader demotes at its deadline even while a write hangs.
      const deadline = termDeadline(this.state, T);
      if (deadline !== undefined) {
        queue.push(deadline - this.origin, () => {
          if (this.state.term !== undefined && !isLeading(this.state, this.local(), T)) {
            this.set(demoted(this.state, this.local()));
          }
        });
      }
      trace(
        `${
          t.toFixed(0)
        } ${this.index} sends ${decision.kind} on ${decision.record?.resourceVersion}`,
      );
      request(this, timeoutMs, () => claim(this.identity, decision.record), (reply) => {
        this.busy = false;
        trace(`${t.toFixed(0)} ${this.index} ${decision.kind} ${reply?.ok ? "ok" : "failed"}`);
        if (reply?.ok) {
          const before = this.state.term;
          const probation = needsProbation(decision, this.identity) ? { timing: T } : undefined;
          this.set(written(this.state, reply.record, sentAt, this.local(), probation));
          if (before === undefined) this.acquired(decision);
        } else {
          this.set(writeFailed(this.state, this.local()));
          if (reply !== undefined) return this.read(); // a conflict: read again
        }
        this.tick();
      });
    }
    acquired(decision: Decision): void {
      if (decision.kind !== "acquire") acquiredBy.own++; // a late renew after the watchdog
      else if (decision.record === undefined) acquiredBy.create++;
      else if (decision.record.holder === this.identity) acquiredBy.own++;
      else if (decision.record.releasedBy) acquiredBy.released++;
      else acquiredBy.expired++;
      // Forging may start at the acquisition, or at the end of probation.
      const myStart = Math.max(t, (forgeFrom(this.state) ?? -Infinity) - this.origin);
      for (const other of parts) {
        const deadline = other === this ? undefined : termDeadline(other.state, T);
        const otherFrom = forgeFrom(other.state) ?? -Infinity;
        if (deadline !== undefined && otherFrom < deadline && deadline - other.origin > myStart) {
          earlyAcquires.push(
            `seed ${opts.seed}: ${this.index} acquired at ${t} while ${other.index} leads until ${
              deadline - other.origin
            }`,
          );
        }
      }
    }
    /** A clean end of term: stop leading first, then release marked as ours. */
    stepAside(): void {
      const seen = this.state.seen?.observation;
      this.set(demoted(this.state, this.local(), 2 * T.leaseDurationMs));
      if (seen?.kind !== "present" || seen.record.holder !== this.identity) return this.tick();
      this.busy = true;
      request(this, 3_000, () => release(this.identity, seen.record), (reply) => {
        this.busy = false;
        if (reply?.ok) this.set(observe(this.state, present(reply.record), this.local()));
        this.tick();
      });
    }
  }

  const parts = [0, 1, 2].map((i) => new Participant(i, `pod-${i}_${(i + 1) * 1111}`));
  // Participant 0 starts as the leader.
  const leader = parts[0]!;
  const first = claim(leader.identity, undefined);
  assert.ok(first.ok);
  leader.set(written(leader.state, first.record, leader.local(), leader.local()));
  for (const p of parts) p.nextPoll = p.local() + Math.floor(rand() * T.sleepIntervalMs);
  for (const p of parts) queue.push(Math.floor(rand() * 1_000), () => p.tick());

  // Hand edits: a cleared holder, a shortened duration, a deletion.
  let deletes = 0;
  for (let i = 0; i < 4; i++) {
    queue.push(Math.floor(rand() * opts.durationMs), () => {
      if (stored === undefined) return;
      const r = rand();
      if (r < 0.4) commit({ ...stored, holder: "", resourceVersion: String(++revision) });
      else if (r < 0.8) {
        commit({ ...stored, durationMs: 1_000, resourceVersion: String(++revision) });
      } else if (deletes < opts.maxDeletes) {
        deletes++;
        commit(undefined);
      }
    });
  }

  let events = 0;
  for (let event = queue.pop(); event !== undefined; event = queue.pop()) {
    if (event.at > opts.durationMs) break;
    if (++events > 100_000) throw new Error(`seed ${opts.seed}: the simulation does not advance`);
    t = event.at;
    event.run();
  }
  return { intervals, acquired: acquiredBy, earlyAcquires };
}

function overlaps(intervals: Interval[]): string[] {
  const found: string[] = [];
  for (const a of intervals) {
    for (const b of intervals) {
      if (a.who < b.who && a.start < b.end && b.start < a.end) {
        found.push(`${a.who} [${a.start}, ${a.end}) overlaps ${b.who} [${b.start}, ${b.end})`);
      }
    }
  }
  return found;
}

/** How many times leadership passed from one participant to another. */
function handovers(intervals: Interval[]): number {
  const sorted = [...intervals].sort((a, b) => a.start - b.start);
  return sorted.filter((x, i) => i > 0 && x.who !== sorted[i - 1]!.who).length;
}

Deno.test("safety: leading intervals never overlap across thousands of random schedules", () => {
  const total = { handovers: 0, create: 0, released: 0, expired: 0, own: 0 };
  for (let seed = 1; seed <= 3_000; seed++) {
    const result = simulate({ seed, durationMs: 120_000, timing: TIMING, maxDeletes: 1 });
    assert.deepEqual(result.earlyAcquires, [], `seed ${seed}`);
    assert.deepEqual(overlaps(result.intervals), [], `seed ${seed}`);
    total.handovers += handovers(result.intervals);
    for (const key of ["create", "released", "expired", "own"] as const) {
      total[key] += result.acquired[key];
    }
  }
  // Not vacuous: leadership changed hands thousands of times, by every path of the step.
  assert.ok(total.handovers > 3_000, JSON.stringify(total));
  for (const count of Object.values(total)) assert.ok(count > 100, JSON.stringify(total));
});

Deno.test("the simulation finds overlaps when followers wait less than the leader's renew deadline", () => {
  // A timing that config validation refuses: renewDeadline (10 s) above leaseDuration (4 s).
  const broken: ElectionTiming = { ...TIMING, leaseDurationMs: 4_000, acquireDelayMs: 0 };
  let found = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const result = simulate({ seed, durationMs: 120_000, timing: broken, maxDeletes: 1 });
    found += overlaps(result.intervals).length;
  }
  assert.ok(found > 0);
});

// ---- known bug: a create has no precondition on the absence it was decided on --------------
//
// "absent" is not a version: absent -> (a create the follower never saw) -> deleted again looks
// like one unchanged absence, and `create` succeeds whenever the Lease is missing at commit time,
// so the follower leads while the leader of the unseen lease is still inside its term. A create
// that hangs, times out on the client and commits later does the same through the lost-response
// rule (our own record is re-acquired at once). Needs the lease deleted twice (or deleted once
// while the very first create hangs). Enable these tests once lib/election.ts closes the hole.

Deno.test({
  name: "a follower that missed a create and a second deletion does not forge alongside its " +
    "creator (a create is on probation)",
  fn() {
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
  },
});

Deno.test({
  name: "leading intervals never overlap even when the lease is deleted by hand several times",
  fn() {
    for (let seed = 1; seed <= 6_000; seed++) {
      const result = simulate({ seed, durationMs: 120_000, timing: TIMING, maxDeletes: 4 });
      // e.g. seeds 41, 1553, 1702, 3430 (a create that committed after the client gave up)
      assert.deepEqual(result.earlyAcquires, [], `seed ${seed}`);
      assert.deepEqual(overlaps(result.intervals), [], `seed ${seed}`);
    }
  },
});
