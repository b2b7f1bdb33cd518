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
 * and back to 3; the leader's node stops reporting (no API proof can come: the old leader stops
 * at its renew deadline, its guard beside it, and a standby takes over once the guard's bound has
 * passed, within LEASE_DURATION + ACQUIRE_DELAY + 5 s), then comes back and the step completes.
 *
 * Needs root (the kubelets' namespaces and mounts); about 2.5 minutes.
 */

import assert from "node:assert/strict";
import {
  DummyCluster,
  LEASE_TAKEOVER_MS,
  operatorSteps,
  STATEFULSET,
  TAKEOVER_MARGIN_MS,
} from "../support/dummy_cluster.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "the dummy example runs under the real StatefulSet controller through delete, rollout, scale and a lost node, never with two forgers",
  opts,
  async () => {
    await using cluster = await DummyCluster.start();
    await cluster.install();
    await cluster.rolloutStatus();
    const pods = (await cluster.k("get", "pods", "-o", "name")).trim().split("\n").sort();
    assert.deepEqual(pods, [0, 1, 2].map((i) => `pod/${STATEFULSET}-${i}`));

    const figures = await operatorSteps(cluster);
    assert.equal(figures.length, 5);
    assert.notEqual(await cluster.leaderShown(), "", "kubectl get cardanoleader names a leader");
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
    // Planned steps hand over cleanly (well under a lease); the lost node is taken over once the
    // guard's bound has passed.
    for (const f of figures.slice(0, 4)) {
      assert.ok(f.longestGapMs < 15_000, `${f.step}: a gap of ${f.longestGapMs} ms`);
    }
    assert.ok(
      figures[4]!.longestGapMs <= LEASE_TAKEOVER_MS + TAKEOVER_MARGIN_MS,
      `the lost node's step left a gap of ${figures[4]!.longestGapMs} ms`,
    );

    // The pods were run from their spec: the Secret volume with defaultMode 0400 under fsGroup
    // 10001 (0440 root:10001), the projected token of a real TokenRequest, memory-backed /ipc.
    const pod = cluster.nodes.running("cardano-test", `${STATEFULSET}-0`)!;
    const kes = await Deno.stat(`${pod.dir}/volumes/forging-keys/kes.skey`);
    assert.equal((kes.mode ?? 0) & 0o777, 0o440);
    assert.equal(kes.gid, 10001);
    const token = await Deno.readTextFile(`${pod.dir}/volumes/kube-api-access/token`);
    const claims = JSON.parse(atob(token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/")));
    assert.equal(claims.sub, "system:serviceaccount:cardano-test:forge-manager");
    assert.equal(claims["kubernetes.io"].pod.name, `${STATEFULSET}-0`);
  },
);
