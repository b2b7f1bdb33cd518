/**
 * Fault suite, scenario 7 (issue 4): the Lease edited by hand. Deleted; its holder replaced by a
 * ghost (a replica that no longer exists) or by a foreign identity naming a pod of another
 * application; its leaseDurationSeconds shortened (ignored: followers wait at least their own
 * LEASE_DURATION) or lengthened (honoured). Edits are what `kubectl edit` does: a replace of the
 * whole object carrying its resourceVersion, touching only the field named. Three replicas on
 * the shared control plane, FENCE=pod. Any overlap above 0 ms fails the suite.
 */

import assert from "node:assert/strict";
import { nowMs } from "../support/fault_cluster.ts";
import { faultClusterTest } from "../support/fault_suite.ts";
import { sleep } from "../support/wait.ts";

const LEASE_MS = 4000;
const ACQUIRE_DELAY_MS = 1000;
/** Slack for comparing the test's clock with the nodes' records (both wall-based, ~ms apart). */
const SLACK_MS = 100;

faultClusterTest("fault suite 7: the Lease edited by hand", {
  namespace: "faults-lease",
  table: "fault suite 7 (Lease hand edits; FENCE=pod)",
}, async (c, t) => {
  await t.step("7a: the Lease is deleted", async () => {
    const leader = await c.waitSingleForger(10_000);
    // Steady for a moment, so every standby has seen the holder (a standby that never saw one
    // creates the Lease without a fence proof: safe while the old sidecar runs, see the end).
    assert.deepEqual(await c.forgersDuring(1500), [leader]);
    const faultAt = nowMs();
    const wallAt = Date.now();
    await c.deleteLease();
    const next = await c.waitStoppedThenSingle(faultAt, leader, 40_000);
    const f = await c.record(
      "7a Lease deleted",
      faultAt,
      leader,
      `recreated; ${next} forges after the create probation; ${
        (await c.lastFence(wallAt)).replace("no fence", "creator never saw a holder")
      }`,
    );
    assert.equal(f.overlapMs, 0);
    assert.ok(f.stoppedMs !== null && f.stoppedMs < 2500, `stopped after ${f.stoppedMs}`);
    // Created at once, then on probation for LEASE_DURATION + ACQUIRE_DELAY (the one wait).
    const min = LEASE_MS + ACQUIRE_DELAY_MS - 500 - SLACK_MS;
    assert.ok(f.resumedMs !== null && f.resumedMs >= min, `forging again ${f.resumedMs} ms`);
    if (c.kubelet.alive(c.current(leader).uid!) === false) await c.recreate(leader);
  });

  await t.step(
    "7b: the holder is edited to a ghost (a replica that no longer exists)",
    async () => {
      const leader = await c.waitSingleForger(10_000);
      const faultAt = nowMs();
      const wallAt = Date.now();
      await c.editLease((l) => l.spec!.holderIdentity = "forge-9_0badc0de");
      const next = await c.waitStoppedThenSingle(faultAt, leader, 30_000);
      const f = await c.record(
        "7b holder edited to a ghost",
        faultAt,
        leader,
        `${next} forges; ${await c.lastFence(wallAt)}`,
      );
      assert.equal(f.overlapMs, 0);
      assert.ok(f.stoppedMs !== null && f.stoppedMs < 2500, `stopped after ${f.stoppedMs}`);
      const min = LEASE_MS + ACQUIRE_DELAY_MS - SLACK_MS;
      assert.ok(f.resumedMs !== null && f.resumedMs >= min, `forging again ${f.resumedMs} ms`);
    },
  );

  await t.step(
    "7c: the holder is edited to a foreign identity naming another application's pod",
    async () => {
      await c.startBystander("wallet-api");
      const leader = await c.waitSingleForger(10_000);
      const faultAt = nowMs();
      const wallAt = Date.now();
      await c.editLease((l) => l.spec!.holderIdentity = "wallet-api_1");
      const next = await c.waitStoppedThenSingle(faultAt, leader, 30_000);
      const bystander = await c.podObject("wallet-api");
      const f = await c.record(
        "7c holder edited to another app's pod",
        faultAt,
        leader,
        `${next} forges; ${await c.lastFence(wallAt)}; wallet-api pod ${
          bystander === undefined ? "DELETED by the fence" : "left alone"
        }`,
      );
      assert.equal(f.overlapMs, 0);
      assert.ok(f.stoppedMs !== null && f.stoppedMs < 2500, `stopped after ${f.stoppedMs}`);
      const min = LEASE_MS + ACQUIRE_DELAY_MS - SLACK_MS;
      assert.ok(f.resumedMs !== null && f.resumedMs >= min, `forging again ${f.resumedMs} ms`);
    },
  );

  await t.step("7d: leaseDurationSeconds shortened to 1 while the leader runs", async () => {
    const leader = await c.waitSingleForger(10_000);
    const transitions = (await c.readLease())?.spec?.leaseTransitions;
    const faultAt = nowMs();
    await c.editLease((l) => l.spec!.leaseDurationSeconds = 1);
    const seen = await c.forgersDuring(4000);
    const lease = await c.readLease();
    const f = await c.record(
      "7d duration shortened to 1 s, leader alive",
      faultAt,
      leader,
      `leader kept forging; the Lease says ${lease?.spec?.leaseDurationSeconds} s again`,
    );
    assert.equal(f.overlapMs, 0);
    assert.deepEqual(seen, [leader]);
    assert.equal(lease?.spec?.leaseTransitions, transitions);
    assert.equal(lease?.spec?.leaseDurationSeconds, LEASE_MS / 1000, "the leader rewrote it");
  });

  for (
    const [label, seconds, expectMs] of [
      ["7e", 1, LEASE_MS + ACQUIRE_DELAY_MS],
      ["7f", 10, 10_000 + ACQUIRE_DELAY_MS],
    ] as const
  ) {
    const what = seconds === 1 ? "shortened to 1 s (ignored)" : "lengthened to 10 s (honoured)";
    await t.step(`${label}: the leader's pod dies, then the duration is ${what}`, async () => {
      const leader = await c.waitSingleForger(10_000);
      // An unplanned death: the sidecar goes first, so it cannot see its Pod's deletion (it
      // watches it) and hand over cleanly; the kubelet then kills the node with the Pod.
      c.current(leader).pod.signalSidecar("SIGKILL");
      await c.deletePod(leader);
      await c.waitGone(leader);
      const faultAt = nowMs();
      await c.editLease((l) => l.spec!.leaseDurationSeconds = seconds);
      const next = await c.waitSingleForger(30_000, [leader]);
      const f = await c.record(
        `${label} pod deleted, duration ${what}`,
        faultAt,
        leader,
        `${next} took over; expected >= ${expectMs / 1000} s after the edit`,
      );
      assert.equal(f.overlapMs, 0);
      assert.ok(
        f.takeoverMs !== null && f.takeoverMs >= expectMs - SLACK_MS,
        `takeover ${f.takeoverMs} ms after the edit, expected >= ${expectMs}`,
      );
      await c.recreate(leader);
    });
  }

  await t.step("steady: exactly one forger after all edits", async () => {
    await c.waitSingleForger(30_000);
    assert.equal((await c.figures(nowMs(), "")).overlapMs, 0);
  });
});

/**
 * The leader's sidecar is SIGKILLed (its node keeps forging), the Lease is deleted by hand, and
 * the standbys are fresh processes that never saw the old holder (here: their sidecars restarted
 * after the deletion). One creates the Lease; with no previous holder to go by, its fence takes
 * the pod the CardanoLeader status still names (the dead sidecar could not clear it) and deletes
 * it before forging. (Before that rule: 4.3 s of overlap and growing.)
 */
faultClusterTest(
  "leader sidecar killed, Lease deleted, standbys that never saw the holder: the status names the pod to fence",
  { namespace: "gap-create", table: "deleted Lease, no known holder" },
  async (c) => {
    const leader = await c.waitSingleForger(30_000);
    const faultAt = nowMs();
    c.current(leader).pod.signalSidecar("SIGKILL");
    for (const r of c.replicas()) if (r.key !== leader) r.pod.signalSidecar("SIGKILL");
    await c.deleteLease();
    for (const r of c.replicas()) if (r.key !== leader) r.pod.restartSidecar();
    await sleep(16_000);
    const f = await c.figures(faultAt, leader);
    c.rows.push({ scenario: "G2", ...f });
    assert.equal(f.overlapMs, 0);
    assert.notEqual(f.stoppedMs, null, "the old node still forges: its pod was never fenced");
    assert.notEqual(f.takeoverMs, null, "nobody took over");
  },
);
