/**
 * Reads the record files the simulated cardano-node writes (one JSON line per event, see
 * `sim_node.ts`) and answers the questions a failover test asks: when did each node forge, how
 * long did two nodes forge at once, and how long after a fault did some node forge again.
 *
 * A node killed with SIGKILL cannot record its end, so the harness appends a `killed` event
 * with {@linkcode appendKilled} right after the kill (the launcher's `kill("SIGKILL")` does it).
 * An interval with no end is cut at the last recorded time (or `until`) and marked `open`.
 *
 * The analysis functions are pure; reading and appending need read/write on the record files.
 *
 * @module
 */

/** One record line, as written by the simulator or {@linkcode appendKilled}. */
export interface ForgingRecord {
  /** Milliseconds since the epoch. */
  t: number;
  /** The process; `null` on a `killed` line that applies to whatever ran with this record. */
  pid: number | null;
  event: string;
  /** Whether the node forges after this event. */
  forging: boolean;
  detail?: string;
  /** `forged`: the pool's leader slot the node forged in (sim_node.ts `--leader-slots`). */
  slot?: number;
}

/** A record line tagged with the node (record file) it came from. */
export interface NodeRecord extends ForgingRecord {
  node: string;
}

/** A time span during which one node process forged: [start, end). */
export interface ForgingInterval {
  node: string;
  pid: number;
  start: number;
  end: number;
  /** The event that ended it, or `"open"` if it was still forging at the end of the records. */
  endedBy: string;
}

/** A time span during which more than one node process forged. */
export interface OverlapWindow {
  start: number;
  end: number;
  /** `node#pid` of each process forging during the window. */
  forgers: string[];
}

/** The current time with sub-millisecond resolution, on the simulator's clock. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Appends a `killed` event to a record: call it right after SIGKILL-ing the node that writes
 * it. Needs write permission on `record`.
 *
 * @param pid the killed process; omit to end whatever interval is open in this record
 */
export async function appendKilled(record: string, t = nowMs(), pid?: number): Promise<void> {
  const line: ForgingRecord = { t, pid: pid ?? null, event: "killed", forging: false };
  await Deno.writeTextFile(record, JSON.stringify(line) + "\n", { append: true, create: true });
}

/**
 * Parses a record's text. A last line without its newline (a process killed mid-write) is
 * skipped; any other malformed line throws.
 */
export function parseForgingRecords(text: string, node: string): NodeRecord[] {
  const lines = text.split("\n");
  lines.pop(); // "" after the final newline, or an unfinished line
  return lines.filter((line) => line.trim() !== "").map((line, index) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new Error(`Cannot parse record ${node}: line ${index + 1} is not JSON`);
    }
    const record = value as Partial<ForgingRecord>;
    if (
      typeof record.t !== "number" || typeof record.event !== "string" ||
      typeof record.forging !== "boolean" ||
      !(typeof record.pid === "number" || record.pid === null)
    ) {
      throw new Error(
        `Cannot parse record ${node}: line ${index + 1} lacks t, pid, event, forging`,
      );
    }
    return { ...(record as ForgingRecord), node };
  });
}

/**
 * Reads record files. Each file is one node, named by its path unless `paths` maps names to
 * paths. A file that does not exist yet yields no records. Needs read permission.
 */
export async function readForgingRecords(
  paths: readonly string[] | Readonly<Record<string, string>>,
): Promise<NodeRecord[]> {
  const entries = Array.isArray(paths)
    ? paths.map((path) => [path, path] as const)
    : Object.entries(paths);
  const records: NodeRecord[] = [];
  for (const [node, path] of entries) {
    let text = "";
    try {
      text = await Deno.readTextFile(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    records.push(...parseForgingRecords(text, node));
  }
  return records;
}

/**
 * The pool's leader slots some node forged in (its `forged` records), each with the nodes that
 * did: one node is a block; none (absent) is a block lost; two are a fork. Pure.
 */
export function forgedSlots(records: readonly NodeRecord[]): Map<number, string[]> {
  const slots = new Map<number, string[]>();
  for (const r of records) {
    if (r.event !== "forged" || r.slot === undefined) continue;
    slots.set(r.slot, [...slots.get(r.slot) ?? [], r.node]);
  }
  return slots;
}

/** Options of {@linkcode forgingIntervals}. */
export interface IntervalOptions {
  /** Where open intervals end (default: the latest record time). */
  until?: number;
  /** Kill times the harness knows about, as if `killed` lines were in the records. */
  killed?: readonly { node: string; t: number; pid?: number }[];
}

/**
 * Turns records into forging intervals per node process. An interval starts at the first event
 * with `forging: true` (a forging `start`, an `enable`) and ends at the next event with
 * `forging: false` (`disable`, `exit`), at `killed`, or at a new `start` of the same pid.
 */
export function forgingIntervals(
  records: readonly NodeRecord[],
  options: IntervalOptions = {},
): ForgingInterval[] {
  const all: NodeRecord[] = [
    ...records,
    ...(options.killed ?? []).map((kill) => ({
      node: kill.node,
      pid: kill.pid ?? null,
      t: kill.t,
      event: "killed",
      forging: false,
    })),
  ];
  // Stable: records of one process keep their file order when times are equal.
  const ordered = all.map((record, index) => ({ record, index }))
    .sort((a, b) => a.record.t - b.record.t || a.index - b.index)
    .map(({ record }) => record);

  const open = new Map<string, { node: string; pid: number; start: number }>();
  const intervals: ForgingInterval[] = [];
  const close = (key: string, end: number, endedBy: string) => {
    const interval = open.get(key);
    if (!interval) return;
    open.delete(key);
    intervals.push({ ...interval, end, endedBy });
  };
  for (const record of ordered) {
    if (record.pid === null) {
      for (const [key, interval] of open) {
        if (interval.node === record.node) close(key, record.t, record.event);
      }
      continue;
    }
    const key = `${record.node}#${record.pid}`;
    if (record.event === "start") close(key, record.t, "restart");
    if (record.forging && !open.has(key)) {
      open.set(key, { node: record.node, pid: record.pid, start: record.t });
    } else if (!record.forging) {
      close(key, record.t, record.event);
    }
  }
  const until = options.until ?? Math.max(-Infinity, ...ordered.map((record) => record.t));
  for (const key of [...open.keys()]) close(key, until, "open");
  return intervals.sort((a, b) => a.start - b.start);
}

/** The windows during which more than one node process forged, in time order. */
export function overlapWindows(intervals: readonly ForgingInterval[]): OverlapWindow[] {
  const points = [...new Set(intervals.flatMap((i) => [i.start, i.end]))].sort((a, b) => a - b);
  const windows: OverlapWindow[] = [];
  for (let i = 0; i + 1 < points.length; i++) {
    const start = points[i]!;
    const end = points[i + 1]!;
    const forgers = intervals.filter((interval) => interval.start <= start && interval.end >= end)
      .map((interval) => `${interval.node}#${interval.pid}`);
    if (forgers.length < 2) continue;
    const last = windows.at(-1);
    if (last && last.end === start && sameMembers(last.forgers, forgers)) last.end = end;
    else windows.push({ start, end, forgers });
  }
  return windows;
}

/** Total time in ms during which more than one node process forged. */
export function totalOverlapMs(intervals: readonly ForgingInterval[]): number {
  return overlapWindows(intervals).reduce((sum, window) => sum + window.end - window.start, 0);
}

/** The intervals that cover time `t`. */
export function forgingAt(intervals: readonly ForgingInterval[], t: number): ForgingInterval[] {
  return intervals.filter((interval) => interval.start <= t && t < interval.end);
}

/**
 * Time in ms from `faultTime` until some node forges again (0 if one is forging at that very
 * moment), or `null` if none does within the records.
 *
 * @param exclude node names to ignore, e.g. the faulty node if it could look alive at faultTime
 */
export function takeoverMs(
  intervals: readonly ForgingInterval[],
  faultTime: number,
  exclude: readonly string[] = [],
): number | null {
  let best: number | null = null;
  for (const interval of intervals) {
    if (exclude.includes(interval.node) || interval.end <= faultTime) continue;
    const from = Math.max(interval.start, faultTime);
    if (best === null || from < best) best = from;
  }
  return best === null ? null : best - faultTime;
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item) => b.includes(item));
}

/**
 * The stretches of `[from, to)` during which no node forged, in time order: the forging gaps of
 * a step (a pod deletion, a rolling restart) measured from the nodes' own records.
 */
export function forgingGaps(
  intervals: readonly ForgingInterval[],
  from: number,
  to: number,
): { start: number; end: number }[] {
  const covering = intervals.filter((i) => i.end > from && i.start < to)
    .map((i) => ({ start: Math.max(i.start, from), end: Math.min(i.end, to) }))
    .sort((a, b) => a.start - b.start);
  const gaps: { start: number; end: number }[] = [];
  let at = from;
  for (const interval of covering) {
    if (interval.start > at) gaps.push({ start: at, end: interval.start });
    at = Math.max(at, interval.end);
  }
  if (at < to) gaps.push({ start: at, end: to });
  return gaps;
}

/** The longest forging gap in `[from, to)` in ms (0 if some node forged throughout). */
export function longestGapMs(
  intervals: readonly ForgingInterval[],
  from: number,
  to: number,
): number {
  return Math.max(0, ...forgingGaps(intervals, from, to).map((g) => g.end - g.start));
}
