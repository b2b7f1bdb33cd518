import assert from "node:assert/strict";
import {
  appendKilled,
  forgingAt,
  forgingGaps,
  forgingIntervals,
  longestGapMs,
  type NodeRecord,
  overlapWindows,
  parseForgingRecords,
  readForgingRecords,
  takeoverMs,
  totalOverlapMs,
} from "./forging_log.ts";

/** A record line: node, pid, t, event, forging. */
function r(
  node: string,
  pid: number | null,
  t: number,
  event: string,
  forging: boolean,
): NodeRecord {
  return { node, pid, t, event, forging };
}

Deno.test("a forging start ends at disable", () => {
  const intervals = forgingIntervals([
    r("a", 1, 0, "start", true),
    r("a", 1, 100, "disable", false),
  ]);
  assert.deepEqual(intervals, [{ node: "a", pid: 1, start: 0, end: 100, endedBy: "disable" }]);
});

Deno.test("a non-producing start forges from enable until exit", () => {
  const intervals = forgingIntervals([
    r("a", 1, 0, "start", false),
    r("a", 1, 40, "sighup", false),
    r("a", 1, 50, "enable", true),
    r("a", 1, 90, "sighup", true),
    r("a", 1, 91, "reconfigure_error", true), // a corrupt file keeps it forging
    r("a", 1, 120, "sighup", true),
    r("a", 1, 121, "enable", true), // enabling again does not start a new interval
    r("a", 1, 200, "exit", false),
  ]);
  assert.deepEqual(intervals, [{ node: "a", pid: 1, start: 50, end: 200, endedBy: "exit" }]);
});

Deno.test("an interval without an end stays open until the last record or `until`", () => {
  const records = [r("a", 1, 0, "start", true), r("b", 2, 300, "start", false)];
  assert.deepEqual(forgingIntervals(records), [
    { node: "a", pid: 1, start: 0, end: 300, endedBy: "open" },
  ]);
  assert.equal(forgingIntervals(records, { until: 1000 })[0]!.end, 1000);
});

Deno.test("a killed line ends the interval of its pid, or of the whole record without a pid", () => {
  const withPid = forgingIntervals([r("a", 1, 0, "start", true), r("a", 1, 70, "killed", false)]);
  assert.deepEqual(withPid, [{ node: "a", pid: 1, start: 0, end: 70, endedBy: "killed" }]);
  const withoutPid = forgingIntervals([
    r("a", 1, 0, "start", true),
    r("b", 2, 10, "start", true),
    r("a", null, 70, "killed", false),
    r("b", 2, 100, "exit", false),
  ]);
  assert.deepEqual(withoutPid.map((i) => [i.node, i.end, i.endedBy]), [
    ["a", 70, "killed"],
    ["b", 100, "exit"],
  ]);
});

Deno.test("kill times supplied by the harness end intervals like killed lines", () => {
  const intervals = forgingIntervals(
    [r("a", 1, 0, "start", true), r("b", 2, 500, "start", false)],
    {
      killed: [{ node: "a", t: 250 }],
    },
  );
  assert.deepEqual(intervals, [{ node: "a", pid: 1, start: 0, end: 250, endedBy: "killed" }]);
});

Deno.test("a new start of the same pid closes what was open", () => {
  const intervals = forgingIntervals([
    r("a", 1, 0, "start", true),
    r("a", 1, 50, "start", false),
    r("a", 1, 60, "enable", true),
    r("a", 1, 80, "exit", false),
  ]);
  assert.deepEqual(intervals.map((i) => [i.start, i.end, i.endedBy]), [
    [0, 50, "restart"],
    [60, 80, "exit"],
  ]);
});

Deno.test("records are ordered by time across nodes, keeping file order on ties", () => {
  const intervals = forgingIntervals([
    r("b", 2, 100, "enable", true),
    r("a", 1, 0, "start", true),
    r("a", 1, 50, "enable", true),
    r("a", 1, 50, "disable", false),
    r("b", 2, 150, "exit", false),
  ]);
  assert.deepEqual(intervals.map((i) => [i.node, i.start, i.end]), [["a", 0, 50], ["b", 100, 150]]);
});

Deno.test("measures the overlap where more than one node forged", () => {
  const table: {
    name: string;
    records: NodeRecord[];
    windows: [number, number, number][];
    total: number;
  }[] = [
    {
      name: "clean handover",
      records: [
        r("a", 1, 0, "start", true),
        r("a", 1, 100, "disable", false),
        r("b", 2, 100, "enable", true),
        r("b", 2, 300, "exit", false),
      ],
      windows: [],
      total: 0,
    },
    {
      name: "promoted before the old leader stopped",
      records: [
        r("a", 1, 0, "start", true),
        r("b", 2, 80, "enable", true),
        r("a", null, 130, "killed", false),
        r("b", 2, 300, "exit", false),
      ],
      windows: [[80, 130, 2]],
      total: 50,
    },
    {
      name: "three nodes, merged windows",
      records: [
        r("a", 1, 0, "start", true),
        r("b", 2, 10, "enable", true),
        r("c", 3, 20, "enable", true),
        r("c", 3, 30, "disable", false),
        r("b", 2, 40, "disable", false),
        r("a", 1, 100, "exit", false),
      ],
      windows: [[10, 20, 2], [20, 30, 3], [30, 40, 2]],
      total: 30,
    },
  ];
  for (const { name, records, windows, total } of table) {
    const intervals = forgingIntervals(records);
    assert.deepEqual(
      overlapWindows(intervals).map((w) => [w.start, w.end, w.forgers.length]),
      windows,
      name,
    );
    assert.equal(totalOverlapMs(intervals), total, name);
  }
});

Deno.test("measures the takeover time after a fault", () => {
  const intervals = forgingIntervals([
    r("a", 1, 0, "start", true),
    r("a", 1, 1000, "killed", false),
    r("b", 2, 0, "start", false),
    r("b", 2, 1800, "enable", true),
    r("b", 2, 5000, "exit", false),
  ]);
  assert.equal(takeoverMs(intervals, 1000), 800);
  assert.equal(takeoverMs(intervals, 900), 0, "a still forged at 900");
  assert.equal(takeoverMs(intervals, 900, ["a"]), 900);
  assert.equal(takeoverMs(intervals, 5000), null, "nobody forges after 5000");
  assert.deepEqual(forgingAt(intervals, 1000), []);
  assert.deepEqual(forgingAt(intervals, 1800).map((i) => i.node), ["b"]);
});

Deno.test("parses record text, skipping a last line cut off by a kill", () => {
  const text = '{"t":1,"pid":5,"event":"start","forging":true}\n\n' +
    '{"t":2,"pid":5,"event":"disable","forging":false}\n{"t":3,"pid":5,"ev';
  assert.deepEqual(parseForgingRecords(text, "n"), [
    { node: "n", t: 1, pid: 5, event: "start", forging: true },
    { node: "n", t: 2, pid: 5, event: "disable", forging: false },
  ]);
  assert.deepEqual(parseForgingRecords("", "n"), []);
  assert.throws(
    () => parseForgingRecords("nope\n", "n"),
    /Cannot parse record n: line 1 is not JSON/,
  );
  assert.throws(() => parseForgingRecords('{"t":1}\n', "n"), /line 1 lacks t, pid, event, forging/);
});

Deno.test("reads record files by path or by name, and appends killed lines", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = `${dir}/a.jsonl`;
    await Deno.writeTextFile(a, '{"t":10,"pid":7,"event":"start","forging":true}\n');
    await appendKilled(a, 25, 7);
    await appendKilled(`${dir}/created.jsonl`, 30);
    const byPath = await readForgingRecords([a, `${dir}/missing.jsonl`]);
    assert.deepEqual(forgingIntervals(byPath), [
      { node: a, pid: 7, start: 10, end: 25, endedBy: "killed" },
    ]);
    const byName = await readForgingRecords({ leader: a, other: `${dir}/created.jsonl` });
    assert.deepEqual(byName.map((x) => [x.node, x.event, x.pid]), [
      ["leader", "start", 7],
      ["leader", "killed", 7],
      ["other", "killed", null],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the gaps of a step are the stretches no interval covers, cut to the step", () => {
  const iv = (node: string, start: number, end: number) => ({
    node,
    pid: 1,
    start,
    end,
    endedBy: "x",
  });
  const intervals = [iv("a", 0, 100), iv("b", 150, 300), iv("c", 250, 400), iv("a", 500, 900)];
  assert.deepEqual(forgingGaps(intervals, 50, 600), [{ start: 100, end: 150 }, {
    start: 400,
    end: 500,
  }]);
  assert.equal(longestGapMs(intervals, 50, 600), 100);
  assert.deepEqual(forgingGaps(intervals, 600, 1000), [{ start: 900, end: 1000 }]);
  assert.equal(longestGapMs(intervals, 160, 240), 0);
  assert.deepEqual(forgingGaps([], 0, 10), [{ start: 0, end: 10 }]);
});
