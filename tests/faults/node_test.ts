/**
 * Fault suite, scenarios 9 and 10 (issue 4): the leader's node process restarting (new PID) or
 * killed (absent, its socket file left behind, refusing connections); a standby whose node is
 * absent handed the Lease; two sidecar processes started with the same POD_NAME; a rolling
 * restart of every replica (the kubelet terminates each pod gracefully, the StatefulSet brings
 * it back, one after the other). Any overlap above 0 ms fails the suite.
 */

import assert from "node:assert/strict";
import { FaultCluster, nowMs, secs } from "../support/fault_cluster.ts";
import { faultClusterTest, faultTest } from "../support/fault_suite.ts";
import { socketAccepts } from "../support/sim_node_process.ts";
import { sleep } from "../support/wait.ts";

/** Waits until replica `key`'s sidecar logs that it found a node process again. */
async function nodeFound(c: FaultCluster, key: string, sinceMs: number): Promise<void> {
  await c.waitFor(`${key} to find its node again`, async () => {
    const text = await Deno.readTextFile(c.current(key).pod.sidecarLog);
    return text.split("\n").some((line) =>
        line.includes('"found the node process"') &&
        new Date(JSON.parse(line).ts).getTime() >= sinceMs
      )
      ? true
      : undefined;
  }, 20_000);
}

faultClusterTest("fault suite 9: the node restarting, absent, a stale socket", {
  namespace: "faults-node",
  table: "fault suite 9 (node restart, absent node, stale socket; FENCE=pod)",
}, async (c, t) => {
  let absent = ""; // the replica whose node was killed in 9b
  await t.step("9a: the leader's node restarts (new PID)", async () => {
    const leader = await c.waitSingleForger(10_000);
    const wallAt = Date.now();
    const faultAt = nowMs();
    c.current(leader).pod.restartNode();
    await nodeFound(c, leader, wallAt);
    // A restart the sidecar sees as a new PID (faster than its 1 s look) keeps the term and
    // re-applies the keys once the new socket accepts; one it sees as an exit steps aside.
    const next = await c.waitStoppedThenSingle(faultAt, leader, 20_000);
    const f = await c.record(
      "9a leader's node restarted",
      faultAt,
      leader,
      next === leader ? "same replica leads on with the new node" : `${next} leads`,
    );
    assert.equal(f.overlapMs, 0);
    assert.ok(f.resumedMs !== null && f.resumedMs < 10_000, `forging again ${f.resumedMs} ms`);
    assert.deepEqual(await c.forgersDuring(1500), [next]);
  });

  await t.step("9b: the leader's node is killed; its socket file stays, refusing", async () => {
    const leader = await c.waitSingleForger(10_000);
    const inc = c.current(leader);
    absent = leader;
    const faultAt = nowMs();
    await inc.pod.killNode();
    const socket = `${inc.dir}/ipc/node.socket`;
    const stale = (await Deno.lstat(socket)).isSocket && !(await socketAccepts(socket));
    const next = await c.waitSingleForger(20_000, [leader]);
    const f = await c.record(
      "9b leader's node killed (stale socket)",
      faultAt,
      leader,
      `${next} leads; stale socket file ${stale ? "present, refusing" : "?"}`,
    );
    assert.equal(f.overlapMs, 0);
    assert.ok(stale, "the socket file stays and refuses connections");
    // The node comes back (its container restarts): the replica is a standby again.
    const wallAt = Date.now();
    inc.pod.restartNode();
    await nodeFound(c, leader, wallAt);
    assert.deepEqual(await c.forgersDuring(1500), [next]);
  });

  await t.step("9c: a standby whose node is absent is handed the Lease", async () => {
    const leader = await c.waitSingleForger(10_000);
    // Not the replica of 9b: it stepped aside less than two lease durations ago.
    const standby = c.replicas().map((r) => r.key).find((k) => k !== leader && k !== absent)!;
    const inc = c.current(standby);
    await inc.pod.killNode();
    await sleep(2500); // its sidecar notices (it looks every second)
    const identity = await c.identityOf(standby);
    const faultAt = nowMs();
    const wallAt = Date.now();
    await c.editLease((l) => l.spec!.holderIdentity = identity);
    await c.waitFor(`${standby} to step aside`, async () => {
      const events = await c.logEvents(wallAt);
      return events.some((e) => e.startsWith(`${inc.label}: stepped aside`)) ? true : undefined;
    }, 20_000);
    const next = await c.waitSingleForger(20_000, [standby]);
    const f = await c.figures(faultAt, leader);
    c.rows.push({
      scenario: "9c standby with absent node handed the Lease",
      ...f,
      takeoverMs: f.resumedMs,
      note: `${standby} stepped aside without forging; ${next} forges`,
    });
    assert.equal(f.overlapMs, 0);
    // Its node comes back: it needs the key files to boot (non-producing), so stepping aside
    // must not leave it without them.
    const wallBack = Date.now();
    inc.pod.restartNode();
    await nodeFound(c, standby, wallBack);
    assert.deepEqual(await c.forgersDuring(1500), [next]);
  });

  await t.step("steady: exactly one forger", async () => {
    await c.waitSingleForger(10_000);
    assert.equal((await c.figures(nowMs(), "")).overlapMs, 0);
  });
});

faultTest("fault suite 10: same POD_NAME twice; a rolling restart", {
  table: "fault suite 10 (same POD_NAME; rolling restart; FENCE=pod)",
}, async ({ t, cp, rows }) => {
  await t.step("10a: two sidecar processes with POD_NAME forge-1 (and forge-0)", async () => {
    await using c = await FaultCluster.start({
      cp,
      namespace: "faults-twins",
      names: ["forge-0", "forge-1"],
    });
    // A second forge-1 outside any Pod object (a copy started by hand with a POD_UID of its own).
    await c.startReplica("forge-1-twin", { podName: "forge-1", podObject: false });
    await c.waitSingleForger(30_000);
    assert.deepEqual(await c.forgersDuring(3000), [await c.waitSingleForger(1000)]);
    const ids = await Promise.all(["forge-1", "forge-1-twin"].map((k) => c.identityOf(k)));
    assert.notEqual(ids[0], ids[1], "unique identities");
    // Planned handovers and pod deaths, whoever leads: each time exactly one takes over.
    for (let round = 0; round < 3; round++) {
      const leader = await c.waitSingleForger(10_000);
      const inc = c.current(leader);
      const faultAt = nowMs();
      const graceful = round === 1;
      const how = graceful ? "terminated (SIGTERM)" : "pod killed";
      c.kubelet.termination = graceful ? "graceful" : "kill";
      if (inc.uid !== undefined) await c.deletePod(leader);
      else if (graceful) await inc.pod.terminate();
      else await inc.pod.kill();
      if (inc.uid === undefined && !graceful) {
        // The copy outside any Pod died without a handover. Nothing in the API can prove its
        // node stopped (its claimed pod name belongs to a pod that existed before its last
        // write), so the others fail safe: nobody forges until an operator acts.
        await sleep(12_000);
        const f = await c.figures(faultAt, leader);
        rows.push({
          scenario: `10a twins: ${leader} (POD_NAME ${inc.podName}, no Pod) ${how}`,
          ...f,
          note: "nobody forges: unprovable, fails safe",
        });
        assert.equal(f.overlapMs, 0);
        assert.equal(f.takeoverMs, null);
        break;
      }
      const next = await c.waitSingleForger(30_000, [leader]);
      const f = await c.figures(faultAt, leader);
      rows.push({
        scenario: `10a twins: ${leader} (POD_NAME ${inc.podName}) ${how}`,
        ...f,
        note: `${next} took over`,
      });
      assert.equal(f.overlapMs, 0);
      if (inc.uid !== undefined) await c.recreate(leader);
      else await c.startReplica(leader, { podName: inc.podName, podObject: false });
    }
    assert.equal((await c.figures(nowMs(), "")).overlapMs, 0);
  });

  await t.step("10b: rolling restart of all three replicas", async () => {
    await using c = await FaultCluster.start({ cp, namespace: "faults-rolling" });
    await c.waitSingleForger(30_000);
    c.kubelet.termination = "graceful";
    const startAt = nowMs();
    const gaps: string[] = [];
    // As a StatefulSet rolls: highest ordinal first, each pod back and ready before the next.
    for (const key of ["forge-2", "forge-1", "forge-0"]) {
      const leading = (await c.forgers()).includes(key);
      const faultAt = nowMs();
      await c.deletePod(key);
      await c.recreate(key);
      await c.waitSingleForger(20_000);
      const f = await c.figures(faultAt, key);
      gaps.push(
        leading ? `${key} (leader) handed over in ${secs(f.takeoverMs)}` : `${key}: no gap`,
      );
      assert.equal(f.overlapMs, 0);
      if (leading) {
        assert.ok(f.takeoverMs !== null && f.takeoverMs < 3000, `handover ${f.takeoverMs} ms`);
      }
    }
    const endAt = nowMs();
    const intervals = await c.intervals();
    const forged = intervals.reduce(
      (sum, i) => sum + Math.max(0, Math.min(i.end, endAt) - Math.max(i.start, startAt)),
      0,
    );
    const f = await c.figures(startAt, "");
    rows.push({
      scenario: "10b rolling restart (graceful, one by one)",
      overlapMs: f.overlapMs,
      takeoverMs: null,
      note: `${secs(endAt - startAt)}; forging ${
        (100 * forged / (endAt - startAt)).toFixed(1)
      }% of it; ${gaps.join(", ")}`,
    });
    assert.equal(f.overlapMs, 0);
  });
});

/**
 * Two processes with the same POD_NAME, one of them outside any Pod object (a copy started by
 * hand, with a POD_UID of its own), and the leading one's sidecar is SIGKILLed while its node
 * keeps the keys. Whichever led, nobody may forge beside its node: a copy's fence deletes the
 * real pod; the real pod's fence sees a holder whose UID is not that of a pod that existed
 * before its last write, cannot prove it stopped, and waits. (Before these rules: 6.4 s of
 * overlap and growing.)
 */
for (const killed of ["forge-1", "forge-1-twin"] as const) {
  faultTest(
    `same POD_NAME twice (one a copy outside any Pod): ${killed}'s sidecar killed while leading`,
    { table: `twins + ${killed} sidecar SIGKILL` },
    async ({ cp, rows }) => {
      await using c = await FaultCluster.start({
        cp,
        namespace: `twins-${killed === "forge-1" ? "pod" : "copy"}`,
        names: ["forge-1"],
      });
      await c.startReplica("forge-1-twin", { podName: "forge-1", podObject: false });
      let leader = await c.waitSingleForger(30_000);
      if (leader !== killed) {
        // A planned handover puts the other one in front, then its sidecar comes back.
        c.current(leader).pod.signalSidecar("SIGTERM");
        const previous = leader;
        leader = await c.waitSingleForger(30_000, [previous]);
        c.current(previous).pod.restartSidecar();
        await sleep(3000);
      }
      assert.equal(leader, killed);
      const faultAt = nowMs();
      c.current(leader).pod.signalSidecar("SIGKILL");
      await sleep(12_000);
      const f = await c.figures(faultAt, leader);
      rows.push({ scenario: "G1", ...f });
      assert.equal(f.overlapMs, 0);
      if (killed === "forge-1") {
        // The copy's fence deleted the real pod (its node with it), then the copy forged.
        assert.notEqual(f.stoppedMs, null);
        assert.notEqual(f.takeoverMs, null);
      } else {
        // Nothing can stop a node outside the Pod model: the copy's node forges on alone, and
        // the real pod holds the Lease without forging (its fence cannot prove anything).
        assert.equal(f.stoppedMs, null);
        assert.equal(f.takeoverMs, null);
      }
    },
  );
}
