/**
 * Fault suite, scenarios 1 to 3 (issue 4): the leader's pod dies; the leader's sidecar is killed
 * while its node keeps forging (restarted soon, or never); the leader's sidecar is frozen past the
 * lease duration, with a kubelet that SIGKILLs the pod, one that is partitioned, and one that
 * follows the real termination order with the shipped grace period (3c, issue 13). Three
 * replicas (main.ts beside simulated nodes) on the real control plane, Pod objects owned by a
 * simulated kubelet, FENCE=pod (the default). Every figure comes from the simulated nodes' own
 * records; any overlap above 0 ms fails the suite.
 */

import assert from "node:assert/strict";
import { nowMs, secs } from "../support/fault_cluster.ts";
import { faultClusterTest } from "../support/fault_suite.ts";
import { sleep } from "../support/wait.ts";

faultClusterTest("fault suite 1-3: pod death, killed sidecar, frozen sidecar", {
  namespace: "faults-pod",
  table: "fault suite 1-3 (pods, killed and frozen sidecars; FENCE=pod)",
  // Each simulated node takes 5 s to shut down on SIGTERM (only 3c's kubelet sends it).
  nodeShutdownMs: 5000,
}, async (c, t) => {
  await t.step("1: the leader's pod is deleted; its kubelet SIGKILLs it", async () => {
    const leader = await c.waitSingleForger(10_000);
    const faultAt = nowMs();
    await c.deletePod(leader);
    await c.waitSingleForger(30_000, [leader]);
    const f = await c.record("1 leader pod deleted (kubelet kills it)", faultAt, leader);
    assert.equal(f.overlapMs, 0);
    assert.ok(f.takeoverMs !== null);
    await c.recreate(leader);
  });

  await t.step(
    "2a: the leader's sidecar is SIGKILLed, its node keeps the keys; restarted after 1.5 s",
    async () => {
      const leader = await c.waitSingleForger(10_000);
      const faultAt = nowMs();
      c.current(leader).pod.signalSidecar("SIGKILL");
      await sleep(1500);
      c.current(leader).pod.restartSidecar();
      // The restarted sidecar stops its node at start (unlink + SIGHUP). Then another replica
      // leads once the lease expired and the fence removed the old pod, or the restarted
      // sidecar itself leads again (its own pod, whose node it stopped).
      await c.waitFor("the old node to stop forging", async () => {
        const f = await c.figures(faultAt, leader);
        return f.stoppedMs !== null ? true : undefined;
      }, 20_000);
      const next = await c.waitSingleForger(30_000);
      const f = await c.record(
        "2a sidecar SIGKILL, restarted after 1.5 s",
        faultAt,
        leader,
        next === leader ? "same pod leads again" : `${next} leads`,
      );
      assert.equal(f.overlapMs, 0);
      assert.ok(f.stoppedMs !== null, "the old node must stop forging");
      if (next !== leader) await c.recreate(leader);
    },
  );

  await t.step(
    "2b: the leader's sidecar is SIGKILLed and never restarted: the fence deletes its pod",
    async () => {
      const leader = await c.waitSingleForger(10_000);
      const faultAt = nowMs();
      c.current(leader).pod.signalSidecar("SIGKILL");
      const next = await c.waitSingleForger(30_000, [leader]);
      const f = await c.record(
        "2b sidecar SIGKILL, never restarted",
        faultAt,
        leader,
        `${next} leads after the fence deleted ${leader}`,
      );
      assert.equal(f.overlapMs, 0);
      assert.ok(f.takeoverMs !== null);
      assert.ok(f.stoppedMs !== null && f.stoppedMs <= f.takeoverMs!);
      await c.recreate(leader);
    },
  );

  await t.step(
    "3a: the leader's sidecar is frozen (SIGSTOP) for 8 s, past the lease; then SIGCONT",
    async () => {
      const leader = await c.waitSingleForger(10_000);
      const inc = c.current(leader);
      const faultAt = nowMs();
      inc.pod.signalSidecar("SIGSTOP");
      const next = await c.waitSingleForger(30_000, [leader]);
      const left = 8000 - (nowMs() - faultAt);
      if (left > 0) await sleep(left);
      inc.pod.signalSidecar("SIGCONT");
      await sleep(500);
      const f = await c.record(
        "3a sidecar SIGSTOP 8 s, then SIGCONT",
        faultAt,
        leader,
        `${next} leads after the fence deleted ${leader}`,
      );
      assert.equal(f.overlapMs, 0);
      assert.ok(f.takeoverMs !== null);
      await c.recreate(leader);
    },
  );

  await t.step(
    "3b: frozen sidecar and a partitioned kubelet: nobody else forges until the kubelet returns",
    async () => {
      const leader = await c.waitSingleForger(10_000);
      const inc = c.current(leader);
      c.kubelet.partition(inc.podName);
      const faultAt = nowMs();
      inc.pod.signalSidecar("SIGSTOP");
      // Past the lease and the fence's delete: the old node forges on (its sidecar is frozen),
      // the new leader cannot prove it stopped, so nobody else may forge.
      const others = await c.forgersDuring(8000);
      assert.deepEqual(others, [leader], "only the frozen leader's node forges");
      const contAt = nowMs();
      inc.pod.signalSidecar("SIGCONT");
      // The resumed sidecar sees its term is over and stops its node; still nobody else.
      const during = await c.forgersDuring(3000);
      const resumed = await c.figures(contAt, leader);
      assert.deepEqual(during.filter((k) => k !== leader), []);
      assert.ok(resumed.stoppedMs !== null, "the resumed sidecar stops its node");
      const healAt = nowMs();
      c.kubelet.heal(inc.podName);
      const next = await c.waitSingleForger(30_000, [leader]);
      const healed = await c.figures(healAt, leader);
      const f = await c.record(
        "3b SIGSTOP + partitioned kubelet",
        faultAt,
        leader,
        `resumed sidecar stopped its node in ${secs(resumed.stoppedMs)}; ${next} forges ${
          secs(healed.takeoverMs)
        } after the kubelet returned`,
      );
      assert.equal(f.overlapMs, 0);
      await c.recreate(leader);
    },
  );

  await t.step(
    "3c: frozen sidecar, a kubelet in the real order (the node first, 5 s to shut down; grace " +
      "120 s): the standby forges once the kubelet reports the node's exit, not at the grace end",
    async () => {
      const leader = await c.waitSingleForger(10_000);
      const inc = c.current(leader);
      c.kubelet.termination = "ordered";
      try {
        const faultAt = nowMs();
        const wallAt = Date.now();
        inc.pod.signalSidecar("SIGSTOP");
        const next = await c.waitSingleForger(60_000, [leader]);
        // The frozen sidecar still holds the pod: the proof did not wait for the pod to go.
        const held = await c.podObject(inc.podName);
        const nodeExit = c.kubelet.eventsOf(inc.podName).find((e) =>
          e.uid === inc.uid && e.what === "node_exited"
        );
        const fence = await c.lastFence(wallAt);
        const f = await c.record(
          "3c SIGSTOP, kubelet in the real order, node 5 s to stop, grace 120 s",
          faultAt,
          leader,
          `${next} forges after ${fence.replace(/^.*: fence /, "")}; the node exited ` +
            `${secs(nodeExit ? nodeExit.t - faultAt : null)} after the freeze; pod still ` +
            "terminating at the takeover",
        );
        assert.equal(f.overlapMs, 0);
        assert.ok(f.takeoverMs !== null && nodeExit !== undefined);
        assert.ok(nodeExit.t <= faultAt + f.takeoverMs!, "the node exited before the takeover");
        assert.equal(held?.metadata?.uid, inc.uid, "the old pod is still there");
        assert.notEqual(held?.metadata?.deletionTimestamp, undefined, "and terminating");
        assert.equal(held?.metadata?.deletionGracePeriodSeconds, 120);
        assert.match(fence, /fence node_terminated$/);
        // Lease (4 s) + acquire delay (1 s) + the node's shutdown (5 s) + reads: far below the
        // grace period the pod's deletion would have cost.
        assert.ok(f.takeoverMs! < 20_000, `takeover ${secs(f.takeoverMs)}`);
        // Thawed, the sidecar handles the kubelet's SIGTERM and exits; the pod goes.
        inc.pod.signalSidecar("SIGCONT");
        await c.recreate(leader);
      } finally {
        c.kubelet.termination = "kill";
      }
    },
  );

  await t.step("steady: exactly one forger after all faults", async () => {
    await c.waitSingleForger(30_000);
    const f = await c.figures(nowMs(), "");
    assert.equal(f.overlapMs, 0);
  });
});
