/**
 * Fault suite 12 (issue 18): one pool across two clusters, with a coordination cluster; three
 * real control planes on this machine (tests/support/multi_cluster.ts), two replicas per cluster,
 * each with the guard and FENCE=guard. Fast timings: lease 4 s, renew deadline 2 s, acquire delay
 * 1 s, guard reaction 1 s, PRIORITY_DELAY 2 s, RETURN_STABLE 5 s. `east` has priority 1, `west`
 * priority 2. In order:
 * (a) priority at start: east forges, west never did;
 * (b) east cut off whole (its API server and the coordinator unreachable from every east replica):
 *     east's node stops by its guard's bound, west takes over after the Lease ran out plus its
 *     priority delay;
 * (c) east back: the pool returns to it by a planned handover once it has been ready for
 *     RETURN_STABLE, never by a race;
 * (d) an operator hands the pool to west (forge-manager handover --to west, pointed at the
 *     coordinator), and status there shows both clusters;
 * (e) the operator swaps the priorities: the pool moves to west by a planned handover; then west
 *     is Disabled: it hands the pool to east at once, and never forges while Disabled;
 * (f) an override Disabling east that expires: west forges meanwhile, east gets the pool back
 *     after the expiry (by a planned handover);
 * (g) the coordinator gone longer than a lease: every holder stops at its renew deadline, nobody
 *     forges while it is gone, then exactly one.
 * Every step fails on any overlap above 0 ms, from every simulated node's own record.
 */

import assert from "node:assert/strict";
import { FAULT_TEST_OPTIONS } from "../support/fault_suite.ts";
import { COORDINATION_NAMESPACE, MultiCluster } from "../support/multi_cluster.ts";
import { nowMs, printTable, type Row, secs } from "../support/fault_cluster.ts";
import { runMain } from "../support/run_main.ts";
import { sleep, waitUntil } from "../support/wait.ts";

/** LEASE_DURATION + ACQUIRE_DELAY + PRIORITY_DELAY (west) + slack for the write and promotion. */
const TAKEOVER_BOUND_MS = (4 + 1 + 2 + 3) * 1000;
/** RENEW_DEADLINE + GUARD_REACTION + slack. */
const STOP_BOUND_MS = (2 + 1 + 1) * 1000;

Deno.test("fault suite 12: one pool across clusters", FAULT_TEST_OPTIONS, async (t) => {
  await using pool = await MultiCluster.start({
    namespace: "cardano",
    clusters: [
      { name: "east", priority: 1 },
      { name: "west", priority: 2 },
    ],
  });
  const rows: Row[] = [];
  const forgersSince = async (at: number) =>
    (await pool.intervals()).filter((i) => i.end > at).map((i) => i.node);

  await t.step("12a priority respected at start", async () => {
    await pool.waitSingleForger(60_000, "east");
    // West's candidate is up and has seen the Lease too, and never took it.
    await sleep(5_000);
    assert.deepEqual(await pool.forgers(), [(await pool.forgers())[0]]);
    assert.ok(!(await forgersSince(0)).some((n) => n.startsWith("west:")), "west forged");
    assert.equal(await pool.overlapMs(), 0);
    rows.push({ scenario: "12a start: priority 1 forges", overlapMs: 0, takeoverMs: null });
  });

  await t.step(
    "12b a whole cluster cut off: the other takes over after the guard's bound",
    async () => {
      const faultAt = nowMs();
      pool.cutOff("east");
      await pool.waitSingleForger(30_000, "west");
      const intervals = await pool.intervals();
      const eastStopped = Math.max(
        ...intervals.filter((i) => i.node.startsWith("east:") && i.start < faultAt).map((i) =>
          i.end
        ),
      );
      const stoppedMs = eastStopped - faultAt;
      const takeover = await pool.takeoverMs(faultAt, "east");
      const overlap = await pool.overlapMs();
      rows.push({
        scenario: "12b east cut off whole",
        overlapMs: overlap,
        takeoverMs: takeover,
        stoppedMs,
        note: "west took over after the bound",
      });
      assert.equal(overlap, 0, "two nodes forged at once");
      assert.ok(stoppedMs <= STOP_BOUND_MS, `east's node forged on for ${secs(stoppedMs)}`);
      assert.ok(takeover !== null && takeover <= TAKEOVER_BOUND_MS, `takeover ${secs(takeover)}`);
      // Its guard stopped it: nothing else on east could be reached.
      assert.ok(takeover! >= (4 + 1) * 1000, `west took over before the Lease ran out`);
    },
  );

  await t.step(
    "12c the higher-priority cluster back: the pool returns by a planned handover",
    async () => {
      const back = nowMs();
      pool.restore("east");
      await pool.waitSingleForger(40_000, "east");
      const intervals = await pool.intervals();
      const westEnd = Math.max(
        ...intervals.filter((i) => i.node.startsWith("west:")).map((i) => i.end),
      );
      const eastStart = Math.min(
        ...intervals.filter((i) => i.node.startsWith("east:") && i.start > back).map((i) =>
          i.start
        ),
      );
      const overlap = await pool.overlapMs();
      rows.push({
        scenario: "12c east back: return by handover",
        overlapMs: overlap,
        takeoverMs: eastStart - back,
        note: `gap ${secs(eastStart - westEnd)} between west's stop and east's start`,
      });
      assert.equal(overlap, 0);
      // Not before RETURN_STABLE, and as a handover: a short gap, not a Lease run out.
      assert.ok(eastStart - back >= 5_000, `returned after ${secs(eastStart - back)}`);
      assert.ok(eastStart - westEnd < 3_000, `a gap of ${secs(eastStart - westEnd)}`);
    },
  );

  await t.step(
    "12d an operator hands the pool to the other cluster; status shows both",
    async () => {
      const operator = await pool.coordinator.mintIdentity({
        namespace: COORDINATION_NAMESPACE,
        serviceAccount: "operator",
        roleName: "forge-manager-operator",
      });
      const fm = (...args: string[]) =>
        runMain([...args, "--kubeconfig", operator, "-n", COORDINATION_NAMESPACE]);
      const status = await fm("status");
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /^CLUSTER\s+CANDIDATE\s+STATE\s+PRIORITY\s+REGION/m);
      assert.match(status.stdout, /^east\s+c\d\s+Priority-based\s+1\s/m);
      assert.match(status.stdout, /^west\s+c\d\s+Priority-based\s+2\s/m);
      console.log(status.stdout);
      const at = nowMs();
      const handover = await fm("handover", "--to", "west", "--timeout", "30s");
      if (handover.code !== 0) console.log(await pool.logTail(40));
      assert.equal(handover.code, 0, handover.stdout + handover.stderr);
      assert.match(handover.stdout, /Handed over from east to west/);
      const westAt = nowMs();
      // East keeps priority 1: once ready for RETURN_STABLE it gets the pool back (an operator
      // who moves the pool for longer changes the priorities too).
      await pool.waitSingleForger(30_000, "east");
      const overlap = await pool.overlapMs();
      rows.push({
        scenario: "12d command: handover east -> west",
        overlapMs: overlap,
        takeoverMs: westAt - at,
        note: `east (priority 1) took it back ${secs(nowMs() - westAt)} later`,
      });
      assert.equal(overlap, 0);
    },
  );

  await t.step(
    "12e new priorities move the pool; a Disabled cluster hands it on and never forges",
    async () => {
      // An operator makes west the preferred cluster: the pool moves there by a planned handover.
      const moved = nowMs();
      await pool.patchForgeCluster("west", { priority: 1 });
      await pool.patchForgeCluster("east", { priority: 2 });
      await pool.waitSingleForger(30_000, "west");
      rows.push({
        scenario: "12e priorities swapped: pool moves to west",
        overlapMs: await pool.overlapMs(),
        takeoverMs: await pool.takeoverMs(moved, "east"),
        note: "a planned handover after RETURN_STABLE",
      });
      // Then west is Disabled: it hands the pool to anyone, at once, and never forges again.
      const at = nowMs();
      await pool.patchForgeCluster("west", { forgeState: "Disabled" });
      await pool.waitSingleForger(20_000, "east");
      const handedAt = nowMs();
      await sleep(8_000);
      const intervals = await pool.intervals();
      assert.ok(
        !intervals.some((i) => i.node.startsWith("west:") && i.start > handedAt - 1_000),
        "west forged while Disabled",
      );
      const overlap = await pool.overlapMs();
      rows.push({
        scenario: "12e west Disabled: hands to east",
        overlapMs: overlap,
        takeoverMs: await pool.takeoverMs(at, "west"),
      });
      assert.equal(overlap, 0);
      await pool.patchForgeCluster("west", { forgeState: "Priority-based", priority: 2 });
      await pool.patchForgeCluster("east", { priority: 1 });
    },
  );

  await t.step("12f an override that expires stops applying", async () => {
    const at = nowMs();
    const expiresAt = new Date(Date.now() + 12_000).toISOString();
    await pool.patchForgeCluster("east", {
      override: { enabled: true, reason: "maintenance drill", expiresAt, forceState: "Disabled" },
    });
    await pool.waitSingleForger(20_000, "west");
    const westAt = nowMs();
    // Back to east once the override expired and east has been ready for RETURN_STABLE.
    await pool.waitSingleForger(40_000, "east");
    const eastAt = nowMs();
    assert.ok(eastAt >= Date.parse(expiresAt) - 500, "east forged before its override expired");
    const overlap = await pool.overlapMs();
    rows.push({
      scenario: "12f override Disabled east, expired",
      overlapMs: overlap,
      takeoverMs: westAt - at,
      note: `east back ${secs(eastAt - Date.parse(expiresAt))} after the expiry`,
    });
    assert.equal(overlap, 0);
  });

  await t.step(
    "12g the coordinator gone longer than a lease: nobody forges, then exactly one",
    async () => {
      const at = nowMs();
      await pool.coordinator.stopApiServer();
      // Every holder stops at its renew deadline (2 s) plus its guard's reaction.
      await waitUntil(
        "nobody forges",
        async () => (await pool.forgers()).length === 0 || undefined,
        {
          timeoutMs: STOP_BOUND_MS + 2_000,
        },
      );
      const stoppedMs = nowMs() - at;
      const quiet = nowMs();
      await sleep(6_000); // longer than a lease
      assert.ok(
        !(await pool.intervals()).some((i) => i.start > quiet),
        "someone forged while the coordinator was gone",
      );
      const back = nowMs();
      await pool.coordinator.startApiServer();
      await pool.waitSingleForger(40_000);
      const overlap = await pool.overlapMs();
      rows.push({
        scenario: "12g coordinator gone 6 s+",
        overlapMs: overlap,
        takeoverMs: null,
        stoppedMs,
        resumedMs: nowMs() - back,
        note: "resumed = after the coordinator came back",
      });
      assert.equal(overlap, 0);
    },
  );

  printTable("fault suite 12 (one pool across two clusters; lease 4 s, deadline 2 s)", rows);
});
