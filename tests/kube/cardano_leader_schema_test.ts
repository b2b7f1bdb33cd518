/**
 * lib/kube/cardano_leader_schema.ts: the step's view of the other replicas' entries and of the
 * preferred replica (pure; the reads and writes are tested against the API server in
 * cardano_leader_test.ts).
 */

import assert from "node:assert/strict";
import { REPLICA_FRESH_MS, toControlView } from "../../lib/kube/cardano_leader_schema.ts";

const WALL = Date.parse("2026-12-01T00:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();

Deno.test("the replicas' entries become peers whose freshness is monotonic, from the read", () => {
  const entry = {
    identity: "x",
    phase: "standby",
    leader: false,
    forging: false,
    nodeFound: true,
    fence: "idle" as const,
    reason: "startup",
    since: iso(WALL - 60_000),
  };
  const view = toControlView(
    {
      spec: { preferredReplica: "p-1" },
      status: {
        replicas: {
          "p-1": { ...entry, sync: "synced", tipLagSlots: 4, heartbeat: iso(WALL - 5_000) },
          // An older sidecar publishes no sync: unknown.
          "p-2": { ...entry, heartbeat: iso(WALL - 1_000) },
          // A heartbeat from the future (a clock ahead) counts as now, never as longer.
          "p-3": { ...entry, phase: "forging", sync: "lagging", heartbeat: iso(WALL + 9_000) },
          "p-4": { ...entry, heartbeat: "garbage" },
        },
      },
    },
    1_000,
    WALL,
  );
  assert.equal(view.preferred, "p-1");
  assert.deepEqual(view.replicas, {
    "p-1": {
      phase: "standby",
      nodeFound: true,
      sync: "synced",
      tipLagSlots: 4,
      freshUntil: 1_000 + REPLICA_FRESH_MS - 5_000,
    },
    "p-2": {
      phase: "standby",
      nodeFound: true,
      sync: "unknown",
      freshUntil: 1_000 + REPLICA_FRESH_MS - 1_000,
    },
    "p-3": {
      phase: "forging",
      nodeFound: true,
      sync: "lagging",
      freshUntil: 1_000 + REPLICA_FRESH_MS,
    },
  });
  assert.equal(toControlView({ spec: { preferredReplica: "" } }, 0, WALL).preferred, undefined);
});
