/**
 * Fault suite, scenarios 5a and 5b (issue 4): the API server down for a while, and etcd
 * restarted (killed like a crash). These stop the control plane itself, so they run on a private
 * one. The issue asks for "a minute" of API server outage; the suite scales it to 15 s with the
 * fast test timings (LEASE_DURATION=4, RENEW_DEADLINE=2): 15 s is already more than three lease
 * durations, so a longer outage only adds waiting. Any overlap above 0 ms fails the suite.
 */

import assert from "node:assert/strict";
import { nowMs, secs } from "../support/fault_cluster.ts";
import { faultClusterTest } from "../support/fault_suite.ts";

const OUTAGE_MS = 15_000;

faultClusterTest("fault suite 5a, 5b: API server down, etcd restarted", {
  namespace: "faults-api",
  table: "fault suite 5a, 5b (private control plane; FENCE=pod)",
  privateControlPlane: true,
}, async (c, t) => {
  await t.step(`5a: the API server is down for ${OUTAGE_MS / 1000} s`, async () => {
    const leader = await c.waitSingleForger(10_000);
    const faultAt = nowMs();
    await c.cp.stopApiServer();
    const stoppedIn = nowMs() - faultAt;
    const during = await c.forgersDuring(OUTAGE_MS - stoppedIn);
    await c.cp.startApiServer();
    const backAt = nowMs();
    const after = await c.figures(faultAt, leader);
    // The leader stops by its renew deadline; nobody can take the lease meanwhile.
    assert.ok(after.stoppedMs !== null && after.stoppedMs < 3000, `${after.stoppedMs} ms`);
    assert.deepEqual(during.filter((k) => k !== leader), [], "nobody else forges meanwhile");
    const next = await c.waitSingleForger(30_000);
    const f = await c.record(
      `5a API server down ${OUTAGE_MS / 1000} s`,
      faultAt,
      leader,
      `${next} forges ${secs(nowMs() - backAt)} after the API server was ready again (` +
        `${next === leader ? "the same replica" : "another replica"})`,
    );
    assert.equal(f.overlapMs, 0);
    if (next !== leader) await c.recreate(leader);
  });

  await t.step("5b: etcd is killed and restarted", async () => {
    const leader = await c.waitSingleForger(10_000);
    const faultAt = nowMs();
    await c.cp.restartEtcd();
    const backAt = nowMs();
    const next = await c.waitSingleForger(30_000);
    const f = await c.record(
      "5b etcd killed and restarted",
      faultAt,
      leader,
      `etcd + API ready in ${secs(backAt - faultAt)}; ${next} ${
        next === leader ? "kept or regained the lease" : "took over"
      }`,
    );
    assert.equal(f.overlapMs, 0);
    if (next !== leader) await c.recreate(leader);
  });

  await t.step("steady: exactly one forger after all faults", async () => {
    await c.waitSingleForger(30_000);
    assert.equal((await c.figures(nowMs(), "")).overlapMs, 0);
  });
});
