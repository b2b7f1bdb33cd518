/**
 * Fault suite, scenario 8 (issue 4): a replica becomes leader while its source keys are missing,
 * corrupt or mismatched (a KES key from another credential set), or while its target folder is
 * not writable (a read-only bind mount inside the pod's mount namespace: root ignores mode bits).
 * It must never give its node keys, step aside (release the Lease), and let a replica with good
 * keys lead. Which replica leads is a race, so the test hands the Lease to the faulty replica as
 * an admin would (`holderIdentity` set to its identity): it re-acquires its own record, on
 * probation (LEASE_DURATION + ACQUIRE_DELAY), and then tries to forge. Any overlap above 0 ms
 * fails the suite.
 */

import assert from "node:assert/strict";
import { type FaultCluster, nowMs } from "../support/fault_cluster.ts";
import { faultClusterTest } from "../support/fault_suite.ts";
import { readForgingRecords } from "../support/forging_log.ts";
import { makeCredentialSet } from "../support/keys.ts";
import { sleep } from "../support/wait.ts";

type Fault = {
  name: string;
  apply: (c: FaultCluster, key: string) => Promise<() => Promise<void>>;
};

const KES = (c: FaultCluster, key: string) => `${c.current(key).dir}/secrets/kes.skey`;

const FAULTS: Fault[] = [
  {
    name: "source KES key missing",
    async apply(c, key) {
      const text = await Deno.readTextFile(KES(c, key));
      await Deno.remove(KES(c, key));
      return () => Deno.writeTextFile(KES(c, key), text, { mode: 0o600 });
    },
  },
  {
    name: "source KES key corrupt (truncated)",
    async apply(c, key) {
      const text = await Deno.readTextFile(KES(c, key));
      await Deno.writeTextFile(KES(c, key), text.slice(0, text.length / 2));
      return () => Deno.writeTextFile(KES(c, key), text, { mode: 0o600 });
    },
  },
  {
    name: "KES key from another set (mismatched)",
    async apply(c, key) {
      const text = await Deno.readTextFile(KES(c, key));
      await Deno.writeTextFile(KES(c, key), makeCredentialSet().kes);
      return () => Deno.writeTextFile(KES(c, key), text, { mode: 0o600 });
    },
  },
  {
    name: "target folder read-only",
    async apply(c, key) {
      const pod = c.current(key).pod;
      const ipc = `${c.current(key).dir}/ipc`;
      await pod.inMountNamespace(["mount", "--bind", ipc, ipc]);
      await pod.inMountNamespace(["mount", "-o", "remount,bind,ro", ipc]);
      // Proof that the sidecar's view is read-only (root ignores mode bits, not a ro mount).
      const probe = await pod.inMountNamespace(["sh", "-c", `touch ${ipc}/.probe 2>&1 || true`]);
      assert.match(probe, /Read-only file system/);
      // The stop that follows cannot unlink the files in place (the decoys, placed again after
      // the last stop): unconfirmed, it leaves the next leader to fence this pod, which may
      // delete it; its mount namespace goes with it, and there is nothing left to unmount.
      return async () => {
        if (pod.pids().init === undefined) return;
        await pod.inMountNamespace(["umount", ipc]);
      };
    },
  },
];

faultClusterTest(
  "fault suite 8: a leader with bad keys or an unwritable target steps aside",
  {
    namespace: "faults-keys",
    table:
      "fault suite 8 (bad keys; 'forging again' and 'takeover' count from handing the Lease over)",
  },
  async (c, t) => {
    const steppedAside = new Map<string, number>();
    for (const [i, fault] of FAULTS.entries()) {
      await t.step(`8${"abcd"[i]}: ${fault.name}`, async () => {
        const leader = await c.waitSingleForger(10_000);
        // A standby that has not stepped aside lately (a replica that steps aside stays out for
        // two lease durations, 8 s, and would not take the Lease back).
        const faulty = c.replicas().map((r) => r.key).filter((k) => k !== leader)
          .sort((a, b) => (steppedAside.get(a) ?? 0) - (steppedAside.get(b) ?? 0))[0]!;
        const wait = (steppedAside.get(faulty) ?? 0) + 9000 - Date.now();
        if (wait > 0) await sleep(wait);
        if ((await c.forgers())[0] !== leader) throw new Error("the leader changed meanwhile");
        const identity = await c.identityOf(faulty);
        assert.ok(identity !== undefined);
        const restore = await fault.apply(c, faulty);
        const faultAt = nowMs();
        const wallAt = Date.now();
        await c.editLease((l) => l.spec!.holderIdentity = identity);
        await c.waitFor(`${faulty} to step aside`, async () => {
          const events = await c.logEvents(wallAt);
          return events.some((e) => e.startsWith(`${c.current(faulty).label}: stepped aside`))
            ? true
            : undefined;
        }, 20_000);
        steppedAside.set(faulty, Date.now());
        const next = await c.waitSingleForger(20_000, [faulty]);
        const f = await c.figures(faultAt, leader);
        const records = await readForgingRecords([c.current(faulty).pod.record]);
        const enabled = records.filter((r) => r.t > faultAt && r.event === "enable");
        const events = await c.logEvents(wallAt);
        const aside = (events.find((e) => e.includes("stepped aside")) ?? "")
          .replace(/\/\S*\/([^/\s]+)/g, "$1"); // file names, not the temp folders
        c.rows.push({
          scenario: `8 ${fault.name}`,
          overlapMs: f.overlapMs,
          stoppedMs: f.stoppedMs,
          resumedMs: f.resumedMs,
          takeoverMs: f.resumedMs,
          note: `Lease handed to ${faulty}: ${aside.replace(/^[^:]+: /, "").slice(0, 110)}; ` +
            `${next} forges`,
        });
        await restore();
        // A pod the fence deleted (above) comes back as the StatefulSet would bring it.
        if (c.current(faulty).pod.pids().init === undefined) await c.recreate(faulty);
        assert.equal(f.overlapMs, 0);
        assert.deepEqual(enabled, [], `${faulty}'s node was never given keys`);
        assert.notEqual(next, faulty);
        assert.ok(
          f.stoppedMs !== null && f.stoppedMs < 2500,
          `old leader stopped ${f.stoppedMs}`,
        );
      });
    }

    await t.step("steady: the repaired replicas are healthy standbys", async () => {
      await sleep(1000);
      await c.waitSingleForger(10_000);
      assert.equal((await c.figures(nowMs(), "")).overlapMs, 0);
    });
  },
);
