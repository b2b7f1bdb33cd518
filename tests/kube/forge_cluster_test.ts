/**
 * Reading the CardanoForgeCluster's spec and the coordination CardanoLeader's cluster entries
 * (lib/kube/forge_cluster.ts, lib/kube/coordination.ts): defaults, durations, and what is not
 * an entry of the election across clusters. Pure.
 */

import assert from "node:assert/strict";
import { parseDuration, toForgeClusterSpec } from "../../lib/kube/forge_cluster.ts";
import { toClusterEntries } from "../../lib/kube/coordination.ts";

Deno.test("a CardanoForgeCluster's spec, its defaults filled in", () => {
  assert.deepEqual(toForgeClusterSpec(undefined, 3), { forgeState: "Priority-based", priority: 3 });
  assert.deepEqual(
    toForgeClusterSpec({
      forgeState: "Enabled",
      priority: 2,
      region: "us-east-1",
      healthCheck: { endpoint: "http://health:8080/ok", interval: "1m30s", failureThreshold: 2 },
      override: {
        enabled: true,
        reason: "drill",
        expiresAt: "2026-12-04T13:00:00Z",
        forceState: "Disabled",
        forcePriority: 5,
      },
    }, 3),
    {
      forgeState: "Enabled",
      priority: 2,
      region: "us-east-1",
      healthCheck: {
        enabled: true,
        endpoint: "http://health:8080/ok",
        intervalMs: 90_000,
        timeoutMs: 5000,
        failureThreshold: 2,
      },
      override: {
        enabled: true,
        reason: "drill",
        expiresAtMs: Date.parse("2026-12-04T13:00:00Z"),
        forceState: "Disabled",
        forcePriority: 5,
      },
    },
  );
  // A state the schema would refuse is taken at its default here too.
  assert.equal(toForgeClusterSpec({ forgeState: "Sometimes" }, 1).forgeState, "Priority-based");
});

Deno.test("durations as the CRD writes them", () => {
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("0.5s"), 500);
  assert.equal(parseDuration(""), undefined);
  assert.equal(parseDuration("30"), undefined);
  assert.equal(parseDuration("thirty seconds"), undefined);
});

Deno.test("cluster entries are the replicas entries that carry a cluster's fields", () => {
  const entries = toClusterEntries({
    "eu-west": {
      pod: "cardano-producer-0",
      phase: "forging",
      ready: true,
      state: "Priority-based",
      priority: 1,
      region: "eu-west-1",
      heartbeat: "2026-12-04T12:00:00Z",
    },
    // A replica entry of a single-cluster deployment: no cluster fields.
    "cardano-producer-1": { phase: "standby", heartbeat: "2026-12-04T12:00:00Z" },
    "us-east": { pod: "p", priority: 2, state: "Maybe" },
  });
  assert.deepEqual(entries, [{
    cluster: "eu-west",
    pod: "cardano-producer-0",
    phase: "forging",
    ready: true,
    state: "Priority-based",
    priority: 1,
    region: "eu-west-1",
    heartbeat: "2026-12-04T12:00:00Z",
  }]);
});
