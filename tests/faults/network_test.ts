/**
 * Fault suite, scenarios 4 and 5c (issue 4): the leader cut off from the API server (its own TCP
 * proxy black-holed) while everything else runs, then healed; the same with its node's kubelet cut
 * off too; and an API server that answers slowly (every response delayed), within and beyond what
 * the renew deadline allows. Three replicas on the shared control plane, each behind its own
 * proxy, FENCE=pod. Any overlap above 0 ms fails the suite.
 */

import assert from "node:assert/strict";
import { nowMs, secs } from "../support/fault_cluster.ts";
import { faultClusterTest } from "../support/fault_suite.ts";
import { sleep } from "../support/wait.ts";

faultClusterTest("fault suite 4, 5c: partitions and a slow API server", {
  namespace: "faults-net",
  table: "fault suite 4, 5c (partitions, slow API server; FENCE=pod)",
}, async (c, t) => {
  await t.step(
    "4a: the leader's sidecar is cut off from the API server, then healed",
    async () => {
      const leader = await c.waitSingleForger(10_000);
      const faultAt = nowMs();
      c.proxy(leader).blackhole();
      const next = await c.waitSingleForger(30_000, [leader]);
      const f = await c.record(
        "4a leader cut off from the API server",
        faultAt,
        leader,
        `its own watchdog stopped it; ${next} leads after the fence deleted ${leader}`,
      );
      assert.equal(f.overlapMs, 0);
      assert.ok(f.stoppedMs !== null && f.stoppedMs < 2500, `stopped after ${f.stoppedMs} ms`);
      assert.ok(f.takeoverMs !== null);
      c.proxy(leader).heal();
      // The StatefulSet brings the pod back; it joins as a standby through the healed proxy.
      await c.recreate(leader);
      await sleep(2000);
      assert.deepEqual(await c.forgers(), [next]);
    },
  );

  await t.step(
    "4b: the leader's whole node is cut off (sidecar and kubelet): nobody else forges until it returns",
    async () => {
      const leader = await c.waitSingleForger(10_000);
      const inc = c.current(leader);
      const faultAt = nowMs();
      c.proxy(leader).blackhole();
      c.kubelet.partition(inc.podName);
      // The leader stops by its own watchdog; the new leader's fence cannot get its pod deleted.
      await sleep(3000);
      const during = await c.forgersDuring(7000);
      assert.deepEqual(during, [], "nobody forges while the old pod cannot be proven gone");
      // The sidecar's network returns first: it sees the lease taken and stays out; the fence
      // still cannot prove the old node stopped, since the pod object is not gone.
      c.proxy(leader).heal();
      assert.deepEqual(await c.forgersDuring(2000), []);
      const healAt = nowMs();
      c.kubelet.heal(inc.podName);
      const next = await c.waitSingleForger(30_000, [leader]);
      const healed = await c.figures(healAt, leader);
      const f = await c.record(
        "4b leader's node partitioned (sidecar + kubelet)",
        faultAt,
        leader,
        `nobody forged while cut off (safe); ${next} forges ${
          secs(healed.takeoverMs)
        } after the kubelet returned`,
      );
      assert.equal(f.overlapMs, 0);
      assert.ok(f.stoppedMs !== null && f.stoppedMs < 2500, `stopped after ${f.stoppedMs} ms`);
      await c.recreate(leader);
    },
  );

  await t.step(
    "5c: API responses delayed 500 ms (renews land at half the deadline)",
    async () => {
      const leader = await c.waitSingleForger(10_000);
      const failures = await c.metric(leader, "forge_manager_lease_renew_failures_total");
      const faultAt = nowMs();
      for (const p of c.proxies()) p.setResponseDelay(500);
      const seen = await c.forgersDuring(10_000);
      for (const p of c.proxies()) p.setResponseDelay(0);
      const after = await c.metric(leader, "forge_manager_lease_renew_failures_total");
      const f = await c.record(
        "5c API answers 500 ms late for 10 s",
        faultAt,
        leader,
        `forgers seen: ${seen.join(", ")}; renew failures ${(after ?? 0) - (failures ?? 0)}`,
      );
      assert.equal(f.overlapMs, 0);
      assert.deepEqual(seen, [leader], "the leader keeps its term when renews land in time");
      assert.equal(f.stoppedMs, null, "the leader never stopped");
    },
  );

  await t.step(
    "5c: API responses delayed 1.5 s (beyond the 2 s deadline's reach): fail safe",
    async () => {
      const leader = await c.waitSingleForger(10_000);
      const faultAt = nowMs();
      for (const p of c.proxies()) p.setResponseDelay(1500);
      await sleep(10_000);
      const endAt = nowMs();
      for (const p of c.proxies()) p.setResponseDelay(0);
      const intervals = await c.intervals();
      const forgedMs = intervals.reduce(
        (sum, i) => sum + Math.max(0, Math.min(i.end, endAt) - Math.max(i.start, faultAt)),
        0,
      );
      const next = await c.waitSingleForger(30_000);
      const f = await c.record(
        "5c API answers 1.5 s late for 10 s",
        faultAt,
        leader,
        `forging ${(100 * forgedMs / (endAt - faultAt)).toFixed(0)}% of the time; ${next} ` +
          `forges ${secs(nowMs() - endAt)} after the delay ended`,
      );
      assert.equal(f.overlapMs, 0);
      assert.ok(f.stoppedMs !== null, "the leader cannot keep its term");
    },
  );

  await t.step("steady: exactly one forger after all faults", async () => {
    await c.waitSingleForger(30_000);
    assert.equal((await c.figures(nowMs(), "")).overlapMs, 0);
  });
});
