/**
 * Fault suite, scenario 11 (issue 17): the leader's machine is lost to the cluster, with the
 * shipped timings (lease 15 s, renew deadline 10 s, acquire delay 2 s) and FENCE=guard, each pod
 * running `forge-manager guard` beside its sidecar. The simulated kubelet of the leader's machine
 * stops reporting (partitioned): a Pod deletion is never confirmed and no container exit is ever
 * reported, so no API proof can come. The takeover rests on the guard's bound alone
 * (tests/support/lost_machine.ts):
 * (a) the machine powered off: every process gone, the Pod object stays;
 * (b) the machine cut off with its processes running (sidecar and kubelet cut off from the API);
 * (c) the same with the sidecar frozen (SIGSTOP): only its guard is left to stop the node;
 * (d) the sidecar killed (SIGKILL), its kubelet silent: the guard stops the node at once.
 * Each of (a)-(d) fails on any overlap above 0 ms, from the simulated nodes' own records, on an
 * old node still forging after RENEW_DEADLINE + GUARD_REACTION, and on a takeover later than
 * LEASE_DURATION + ACQUIRE_DELAY + 5 s.
 * (e), in a cluster of its own, freezes the sidecar and the guard together while the node runs:
 * the one case the design does not cover. It checks what the design does guarantee there (the
 * guard acts the moment it thaws) and reports the overlap it costs.
 */

import assert from "node:assert/strict";
import { nowMs, secs } from "../support/fault_cluster.ts";
import { faultClusterTest } from "../support/fault_suite.ts";
import {
  loseLeaderMachine,
  LOST_MACHINES,
  SHIPPED_GUARDED,
  STOP_BOUND_MS,
  TAKEOVER_BOUND_MS,
} from "../support/lost_machine.ts";
import { sleep } from "../support/wait.ts";

faultClusterTest("fault suite 11: the leader's machine lost (FENCE=guard, shipped timings)", {
  namespace: "faults-lost",
  table: "fault suite 11 (lost machine; FENCE=guard with the guard; lease 15 s, deadline 10 s)",
  env: SHIPPED_GUARDED,
  guard: true,
}, async (c, t) => {
  for (const lost of LOST_MACHINES) {
    await t.step(lost.scenario, async () => {
      const f = await loseLeaderMachine(c, lost);
      assert.equal(f.overlapMs, 0, "two nodes forged at once");
      assert.ok(
        f.stoppedMs !== null && f.stoppedMs <= STOP_BOUND_MS,
        `stopped: ${secs(f.stoppedMs)}`,
      );
      assert.ok(
        f.takeoverMs !== null && f.takeoverMs <= TAKEOVER_BOUND_MS,
        `takeover after ${secs(f.takeoverMs)}`,
      );
      if (lost.scenario.startsWith("11c")) {
        // Frozen, the sidecar did nothing: its guard stopped the node at its deadline.
        assert.match(await Deno.readTextFile(f.guardLog), /guard stopped the node.*"deadline"/);
      }
      if (lost.scenario.startsWith("11d")) {
        assert.ok(f.stoppedMs! < 2_000, `the guard took ${secs(f.stoppedMs)}`);
      }
    });
  }
});

faultClusterTest("fault suite 11e: the leader's sidecar and guard frozen together", {
  namespace: "faults-lost-e",
  table: "fault suite 11e (sidecar and guard frozen together: not covered by the design)",
  env: SHIPPED_GUARDED,
  guard: true,
}, async (c, t) => {
  await t.step(
    "11e: both frozen, the node runs on; the guard acts the moment it thaws",
    async () => {
      const key = await c.waitSingleForger(40_000);
      const inc = c.current(key);
      c.kubelet.partition(inc.podName);
      const faultAt = nowMs();
      inc.pod.signalGuard("SIGSTOP");
      inc.pod.signalSidecar("SIGSTOP");
      // A standby takes over after the bound; the frozen machine's node forges on meanwhile.
      const next = await c.waitFor("another replica forging", async () => {
        return (await c.forgers()).find((f) => f !== key);
      }, TAKEOVER_BOUND_MS + 10_000);
      await sleep(3000);
      const thawAt = nowMs();
      inc.pod.signalGuard("SIGCONT");
      await c.waitFor(`${key}'s node to stop`, async () => {
        return (await c.figures(faultAt, key)).stoppedMs !== null ? true : undefined;
      }, 5000);
      const f = await c.record(
        "11e sidecar and guard frozen together",
        faultAt,
        key,
        `${next} took over after the bound; the frozen node forged on until its guard ` +
          "thawed, which stopped it at once (the design's one uncovered case)",
      );
      // What the design guarantees here: the guard acts at once when it runs again.
      assert.ok(
        f.stoppedMs !== null && faultAt + f.stoppedMs - thawAt < 1500,
        "the guard acted late",
      );
      inc.pod.signalSidecar("SIGCONT");
      c.kubelet.heal(inc.podName);
    },
  );
});
