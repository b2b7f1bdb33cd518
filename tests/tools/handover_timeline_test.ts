/**
 * tools/handover_timeline.ts: the benchmark's per-handover timeline, from JSON log lines and
 * forging records written before and after the SIGTERM.
 */

import assert from "node:assert/strict";
import { handoverTimeline } from "../../tools/handover_timeline.ts";

const AT = Date.parse("2025-01-01T00:00:10.000Z");
const line = (ms: number, msg: string, fields: Record<string, unknown> = {}) =>
  JSON.stringify({ ts: new Date(AT + ms).toISOString(), level: "info", msg, ...fields });

Deno.test("each step is the first matching line or record after the SIGTERM, in ms after it", () => {
  const oldLog = [
    line(-5000, "sent SIGHUP", { reason: "promote" }), // an earlier term: before the SIGTERM
    line(2, "shutting down: handing over leadership"),
    line(9, "sent SIGHUP", { reason: "shutdown" }),
    line(30, "released the lease", { clean: true }),
    "not json",
  ].join("\n");
  const newLog = [
    line(-3000, "lease watch event", { holder: "old" }),
    line(25, "lease watch event", { holder: "" }),
    line(41, "became leader"),
    line(70, "sent SIGHUP", { reason: "promote" }),
  ].join("\n");
  const timeline = handoverTimeline({
    at: AT,
    oldLog,
    newLog,
    oldRecords: [{ t: AT + 12, pid: 1, event: "disable", forging: false }],
    newRecords: [
      { t: AT - 9000, pid: 2, event: "enable", forging: true },
      { t: AT + 74, pid: 2, event: "enable", forging: true },
    ],
  });
  assert.deepEqual(timeline, {
    sigtermReceived: 2,
    oldNodeDisabled: 12,
    oldSighupSent: 9,
    releaseWritten: 30,
    standbySawRelease: 25,
    acquireWritten: 41,
    newSighupSent: 70,
    newNodeEnabled: 74,
  });
});

Deno.test("a step with no line (info-level logs) is left out, not guessed", () => {
  const timeline = handoverTimeline({
    at: AT,
    oldLog: line(1, "shutting down: handing over leadership"),
    newLog: line(40, "became leader"),
    oldRecords: [],
    newRecords: [],
  });
  assert.deepEqual(timeline, { sigtermReceived: 1, acquireWritten: 40 });
});
