/**
 * The timeline of one planned handover, from the sidecars' JSON logs (`ts`, ms) and the
 * simulated nodes' forging records (`t`): each step's time after the SIGTERM. Pure; the
 * benchmark reads the files. Needs LOG_LEVEL=debug for "sent SIGHUP" and "lease watch event".
 *
 * @module
 */

import type { ForgingRecord } from "../tests/support/forging_log.ts";

/** The steps of a planned handover, in order, as ms after the old leader's SIGTERM. */
export interface HandoverTimeline {
  sigtermReceived?: number;
  /** The old node saw its keys gone (its "disable" record): the unlink preceded this. */
  oldNodeDisabled?: number;
  oldSighupSent?: number;
  releaseWritten?: number;
  standbySawRelease?: number;
  acquireWritten?: number;
  newSighupSent?: number;
  /** The new node read the keys it was given (its "enable" record): the keys were placed. */
  newNodeEnabled?: number;
}

interface LogLine {
  ts: string;
  msg: string;
  [field: string]: unknown;
}

function lines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // not one of ours
    }
  }
  return out;
}

/**
 * The first time at or after `at` (epoch ms) of a log line matching `pred`, as ms after `at`.
 */
function first(log: LogLine[], at: number, pred: (l: LogLine) => boolean): number | undefined {
  for (const l of log) {
    const t = Date.parse(l.ts);
    if (t >= at - 1 && pred(l)) return t - at;
  }
  return undefined;
}

/** Builds the timeline of the handover that began at `at` (epoch ms, when SIGTERM was sent). */
export function handoverTimeline(opts: {
  at: number;
  oldLog: string;
  newLog: string;
  oldRecords: ForgingRecord[];
  newRecords: ForgingRecord[];
}): HandoverTimeline {
  const { at } = opts;
  const oldLog = lines(opts.oldLog);
  const newLog = lines(opts.newLog);
  const rec = (records: ForgingRecord[], event: string) => {
    const r = records.find((r) => r.t >= at && r.event === event);
    return r === undefined ? undefined : r.t - at;
  };
  const t: HandoverTimeline = {
    sigtermReceived: first(oldLog, at, (l) => l.msg === "shutting down: handing over leadership"),
    oldNodeDisabled: rec(opts.oldRecords, "disable"),
    oldSighupSent: first(oldLog, at, (l) => l.msg === "sent SIGHUP" && l.reason !== "promote"),
    releaseWritten: first(oldLog, at, (l) => l.msg === "released the lease"),
    standbySawRelease: first(
      newLog,
      at,
      (l) => l.msg === "lease watch event" && (l.holder === "" || l.holder === undefined),
    ),
    acquireWritten: first(newLog, at, (l) => l.msg === "became leader"),
    newSighupSent: first(newLog, at, (l) => l.msg === "sent SIGHUP"),
    newNodeEnabled: rec(opts.newRecords, "enable"),
  };
  return Object.fromEntries(Object.entries(t).filter(([, v]) => v !== undefined));
}
