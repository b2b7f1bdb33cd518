/**
 * Fault suite, scenario 6 (issue 4): one replica's wall clock far off, forward and backward.
 * The skew is real: libfaketime (Debian package `faketime`) is preloaded into that replica's
 * sidecar only (LD_PRELOAD, FAKETIME, FAKETIME_DONT_FAKE_MONOTONIC=1), so Date.now() inside Deno
 * is off while the monotonic clock is not. The first step proves that it works under Deno, and
 * each skewed sidecar's own log timestamps prove the skew reached it.
 *
 * The election never compares wall clocks (a follower times a record version by its own
 * monotonic clock), so a skewed replica must neither take over early as a follower nor keep
 * others out as a leader. Backward skew is limited to 50 min: the local API server's certificate
 * is valid from one hour before it started, and a clock further behind cannot verify it; a
 * replica 2 h behind is checked separately to fail safe (it never leads).
 */

import assert from "node:assert/strict";
import { FaultCluster, nowMs } from "../support/fault_cluster.ts";
import { faultTest } from "../support/fault_suite.ts";
import { exists } from "../support/fs.ts";
import { sleep } from "../support/wait.ts";

/** Debian's path of libfaketime for this machine (package `faketime`). */
const LIBFAKETIME = `/usr/lib/${Deno.build.arch}-linux-gnu/faketime/libfaketime.so.1`;
const skew = (faketime: string) => ({
  LD_PRELOAD: LIBFAKETIME,
  FAKETIME: faketime,
  FAKETIME_DONT_FAKE_MONOTONIC: "1",
});

/** Offset (ms) of a sidecar's wall clock: its last log timestamp against ours. */
async function logClockOffset(logFile: string): Promise<number> {
  const lines = (await Deno.readTextFile(logFile)).trim().split("\n").filter((l) =>
    l.startsWith("{")
  );
  const last = JSON.parse(lines.at(-1)!) as { ts: string };
  const stat = await Deno.stat(logFile);
  return new Date(last.ts).getTime() - stat.mtime!.getTime();
}

faultTest("fault suite 6: one replica's wall clock far off", {
  table: "fault suite 6 (wall clock skew with libfaketime; FENCE=pod)",
}, async ({ t, cp, rows }) => {
  await t.step(
    "libfaketime changes Date.now() inside Deno, not the monotonic clock",
    async () => {
      if (!await exists(LIBFAKETIME)) {
        throw new Error(
          `${LIBFAKETIME} is missing: install libfaketime (apt-get install -y faketime); ` +
            ".ci/run does it",
        );
      }
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "eval",
          "const w = Date.now(); const m = performance.now(); await new Promise((r) => setTimeout(r, 300)); console.log(JSON.stringify({ wall: w, elapsed: performance.now() - m }))",
        ],
        env: skew("+2h"),
        stdout: "piped",
        stderr: "inherit",
      }).output();
      const seen = JSON.parse(new TextDecoder().decode(out.stdout)) as {
        wall: number;
        elapsed: number;
      };
      const offset = seen.wall - Date.now();
      assert.ok(Math.abs(offset - 7_200_000) < 5000, `Date.now() is off by ${offset} ms`);
      assert.ok(
        seen.elapsed >= 290 && seen.elapsed < 1500,
        `monotonic elapsed ${seen.elapsed} ms`,
      );
    },
  );

  /**
   * Starts the skewed replica alone so it leads, then two standbys (one of them skewed the
   * other way); checks the leader keeps its term, fails it over, and fails over again with the
   * skewed replica as a standby.
   */
  const run = async (namespace: string, first: string, firstSkew: string, otherSkew: string) => {
    const envOf = (key: string): Record<string, string> =>
      key === first ? skew(firstSkew) : key === "other" ? skew(otherSkew) : {};
    await using c = await FaultCluster.start({ cp, namespace, names: [first], envOf });
    try {
      assert.equal(await c.waitSingleForger(30_000), first);
      await Promise.all([c.startReplica("other"), c.startReplica("plain")]);
      const offset = await logClockOffset(c.current(first).pod.sidecarLog);
      const otherOffset = await logClockOffset(c.current("other").pod.sidecarLog);
      const lease = await c.readLease();
      const renew = new Date(lease!.spec!.renewTime as unknown as string).getTime();
      const transitions = lease?.spec?.leaseTransitions;
      // The skewed leader keeps its term: no standby takes over, skewed or not.
      const seen = await c.forgersDuring(6000);
      assert.deepEqual(seen, [first], "the skewed leader keeps its term");
      assert.equal((await c.readLease())?.spec?.leaseTransitions, transitions);
      const faultAt = nowMs();
      // An unplanned death: the sidecar goes first, so it cannot see its Pod's deletion (it
      // watches it) and hand over cleanly; the kubelet then kills the node with the Pod.
      c.current(first).pod.signalSidecar("SIGKILL");
      await c.deletePod(first);
      const next = await c.waitSingleForger(30_000, [first]);
      const f1 = await c.figures(faultAt, first);
      rows.push({
        scenario: `6 leader ${firstSkew}, standbys ${otherSkew} and exact`,
        ...f1,
        note: `sidecar clocks ${(offset / 60_000).toFixed(0)} min / ${
          (otherOffset / 60_000).toFixed(0)
        } min off (their logs); Lease renewTime ${
          ((renew - Date.now()) / 60_000).toFixed(0)
        } min off; held 6 s with no transition; ${next} took over`,
      });
      assert.equal(f1.overlapMs, 0);
      assert.ok(Math.abs(renew - Date.now() - offset) < 60_000, "the skewed leader wrote it");
      // Lease timing, not wall time: no takeover before LEASE_DURATION + ACQUIRE_DELAY minus
      // one renew period (the last renew the standbys saw may be up to 0.5 s old).
      assert.ok(f1.takeoverMs !== null && f1.takeoverMs >= 4400, `${f1.takeoverMs} ms`);
      await c.recreate(first);
      // Now the skewed replica is a standby, the other skewed one maybe too.
      const leader = await c.waitSingleForger(10_000);
      const faultAt2 = nowMs();
      c.current(leader).pod.signalSidecar("SIGKILL"); // unplanned, as above
      await c.deletePod(leader);
      const next2 = await c.waitSingleForger(30_000, [leader]);
      const f2 = await c.figures(faultAt2, leader);
      rows.push({
        scenario: `6 standby ${firstSkew} (and ${otherSkew}), leader ${leader} deleted`,
        ...f2,
        note: `${next2} took over`,
      });
      assert.equal(f2.overlapMs, 0);
      assert.ok(f2.takeoverMs !== null && f2.takeoverMs >= 4400, `${f2.takeoverMs} ms`);
      return { offset, otherOffset };
    } catch (err) {
      console.log(await c.logTail());
      throw err;
    }
  };

  await t.step("6a: forward (+2 h) leader, backward (-50 min) and exact standbys", async () => {
    const { offset, otherOffset } = await run("faults-clock-fwd", "fwd", "+2h", "-50m");
    assert.ok(Math.abs(offset - 7_200_000) < 60_000, `the +2h sidecar is ${offset} ms off`);
    assert.ok(Math.abs(otherOffset + 3_000_000) < 60_000, `-50m sidecar: ${otherOffset} ms`);
  });

  await t.step("6b: backward (-50 min) leader, forward (+2 h) and exact standbys", async () => {
    const { offset, otherOffset } = await run("faults-clock-back", "back", "-50m", "+2h");
    assert.ok(Math.abs(offset + 3_000_000) < 60_000, `the -50m sidecar is ${offset} ms off`);
    assert.ok(Math.abs(otherOffset - 7_200_000) < 60_000, `+2h sidecar: ${otherOffset} ms`);
  });

  await t.step(
    "6c: a sidecar 2 h behind cannot verify the API server's certificate",
    async () => {
      await using c = await FaultCluster.start({
        cp,
        namespace: "faults-clock-2h",
        names: ["behind"],
        envOf: () => skew("-2h"),
      });
      await sleep(6000);
      const log = await Deno.readTextFile(c.current("behind").pod.sidecarLog);
      const forgers = await c.forgers();
      const holder = (await c.readLease())?.spec?.holderIdentity ?? "";
      rows.push({
        scenario: "6 a lone replica 2 h behind",
        overlapMs: 0,
        takeoverMs: null,
        note: `never leads (holder "${holder}"); its log: ${
          /not valid yet|NotValidYet|certificate/i.test(log) ? "certificate not valid yet" : "?"
        }`,
      });
      assert.deepEqual(forgers, []);
      assert.equal(holder, "", "the seeded lease is still unclaimed");
      assert.match(log, /not valid yet|NotValidYet|certificate/i);
    },
  );
});
