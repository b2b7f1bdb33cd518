/**
 * End to end, the way the README and docs/deploy.md tell a user to do it: our pinned kubectl
 * applies manifests/examples/dummy/ (CRD, wait, `apply -k`) to a private control plane running
 * kube-controller-manager; the real StatefulSet controller creates the pods; simulated kubelets of
 * three fake Nodes (tests/support/node_kubelet.ts) run them from their spec: forge-manager's
 * `main.ts` under `-P=forge-manager` with its env from the downward API, the Secret volume, the
 * projected service-account token, as a native sidecar gating the dummy example's own
 * cardano-node container (the simulated node from its ConfigMap). Default timings (lease 15 s),
 * as shipped.
 *
 * Steps, each with 0 ms overlap from the simulated nodes' own records and its forging gap:
 * `kubectl get cardanoleader` names the forger; `kubectl delete pod` of the leader (same name,
 * new UID); `kubectl rollout restart` waited with `kubectl rollout status`; `kubectl scale` to 1
 * and back to 3; the leader's node stops reporting (the fence fails safe: nobody forges while
 * the old pod cannot be proven gone; bounded here to 30 s beyond the lease takeover), then comes
 * back and the step completes.
 *
 * Needs root (the kubelets' namespaces and mounts); about 4 minutes.
 */

import assert from "node:assert/strict";
import { DummyCluster, STATEFULSET } from "./support/dummy_cluster.ts";
import { nowMs } from "./support/forging_log.ts";
import { sleep, waitUntil } from "./support/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
/** The shipped timings: LEASE_DURATION 15 + ACQUIRE_DELAY 2. */
const LEASE_TAKEOVER_MS = 17_000;

Deno.test(
  "the dummy example runs under the real StatefulSet controller through delete, rollout, scale and a lost node, never with two forgers",
  opts,
  async () => {
    await using cluster = await DummyCluster.start();
    await cluster.install();
    await cluster.rolloutStatus();
    const pods = (await cluster.k("get", "pods", "-o", "name")).trim().split("\n").sort();
    assert.deepEqual(pods, [0, 1, 2].map((i) => `pod/${STATEFULSET}-${i}`));

    // First leader: the Lease is created, so LEASE_DURATION + ACQUIRE_DELAY of probation.
    let leader = await cluster.singleForger(90_000);
    await waitUntil(
      "kubectl get cardanoleader to show the forger",
      async () => (await cluster.leaderShown()) === leader,
      20_000,
    );
    const figures = [];

    // 1. kubectl delete pod of the leader: recreated under the same name with a new UID.
    const oldUid = await cluster.uid(leader);
    const deleted = leader;
    figures.push(
      await cluster.step("delete leader pod", async () => {
        await cluster.k("delete", "pod", deleted);
      }),
    );
    await cluster.rolloutStatus();
    const newUid = await cluster.uid(deleted);
    assert.notEqual(newUid, oldUid, "the controller recreated the pod with a new UID");
    leader = figures.at(-1)!.leaderAfter!;
    assert.notEqual(leader, undefined);

    // 2. kubectl rollout restart, waited to completion.
    figures.push(
      await cluster.step("rolling restart", async () => {
        await cluster.k("rollout", "restart", `statefulset/${STATEFULSET}`);
        await cluster.rolloutStatus();
      }),
    );

    // 3. Scale to 1 and back to 3.
    figures.push(
      await cluster.step("scale to 1", async () => {
        await cluster.k("scale", `statefulset/${STATEFULSET}`, "--replicas=1");
        await waitUntil(
          "one pod left",
          async () =>
            (await cluster.k("get", "pods", "-o", "name")).trim().split("\n").length === 1,
          120_000,
        );
      }),
    );
    assert.equal(figures.at(-1)!.leaderAfter, `${STATEFULSET}-0`);
    figures.push(
      await cluster.step("scale to 3", async () => {
        await cluster.k("scale", `statefulset/${STATEFULSET}`, "--replicas=3");
        await cluster.rolloutStatus();
      }),
    );

    // 4. The leader's node stops reporting: its pod stays, nobody else may forge.
    leader = figures.at(-1)!.leaderAfter!;
    const lost = cluster.nodes.running("cardano-test", leader)!;
    const node = cluster.nodes.node(lost.node);
    let cutAt = 0;
    figures.push(
      await cluster.step("node stops reporting", async () => {
        cutAt = nowMs();
        node.stopReporting();
        // Bounded: the lease takes over, then 30 s more; throughout, nobody but the cut-off
        // leader (until its renew deadline) forges.
        const until = cutAt + LEASE_TAKEOVER_MS + 30_000;
        while (nowMs() < until) {
          const forgers = await cluster.forgers();
          assert.ok(
            forgers.every((f) => f === lost.label),
            `only the cut-off pod may still forge (until its renew deadline): ${forgers}`,
          );
          await sleep(250);
        }
        assert.deepEqual(await cluster.forgers(), [], "the cut-off leader stopped on its own");
        node.resumeReporting();
      }, { timeoutMs: 180_000 }),
    );
    await cluster.rolloutStatus();

    console.log(
      ["step                   duration s   longest gap s   total gap s   overlap ms"]
        .concat(
          figures.map((f) =>
            `${f.step.padEnd(22)} ${(f.durationMs / 1000).toFixed(1).padStart(10)} ${
              (f.longestGapMs / 1000).toFixed(2).padStart(15)
            } ${(f.totalGapMs / 1000).toFixed(2).padStart(13)} ${
              f.overlapMs.toFixed(0).padStart(12)
            }`
          ),
        ).join("\n"),
    );
    for (const f of figures) assert.equal(f.overlapMs, 0, `${f.step}: two nodes forged at once`);
  },
);
