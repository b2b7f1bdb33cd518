/**
 * A cluster's standing (lib/forging/standing.ts): the override, its expiry, Disabled, the health
 * penalty, and the priority delay. A table over the pure rules.
 */

import assert from "node:assert/strict";
import {
  HEALTH_PENALTY,
  MAX_PRIORITY_STEPS,
  priorityDelayMs,
  standing,
} from "../../lib/forging/standing.ts";
import type { ForgeClusterSpec } from "../../lib/kube/forge_cluster.ts";

const NOW = Date.parse("2026-12-04T12:00:00Z");
const HEALTH = { enabled: true, intervalMs: 30_000, timeoutMs: 5000, failureThreshold: 3 };

Deno.test("standing: the spec, an override in force or expired, Disabled, and the health penalty", () => {
  const rows: [string, ForgeClusterSpec, number, string, number, string][] = [
    // name, spec, health failures, state, priority, reason
    [
      "plain",
      { forgeState: "Priority-based", priority: 2 },
      0,
      "Priority-based",
      2,
      "base_configuration",
    ],
    ["disabled", { forgeState: "Disabled", priority: 1 }, 0, "Disabled", 1, "cluster_disabled"],
    [
      "override in force",
      {
        forgeState: "Priority-based",
        priority: 2,
        override: {
          enabled: true,
          reason: "drill",
          expiresAtMs: NOW + 1,
          forceState: "Enabled",
          forcePriority: 1,
        },
      },
      9,
      "Enabled",
      1,
      "manual_override",
    ],
    [
      "override expired",
      {
        forgeState: "Priority-based",
        priority: 2,
        override: { enabled: true, reason: "drill", expiresAtMs: NOW, forceState: "Disabled" },
      },
      0,
      "Priority-based",
      2,
      "override_expired",
    ],
    [
      "override not enabled",
      {
        forgeState: "Enabled",
        priority: 3,
        override: { enabled: false, reason: "", forceState: "Disabled" },
      },
      0,
      "Enabled",
      3,
      "base_configuration",
    ],
    [
      "health below its threshold",
      { forgeState: "Priority-based", priority: 1, healthCheck: HEALTH },
      2,
      "Priority-based",
      1,
      "base_configuration",
    ],
    [
      "health at its threshold",
      { forgeState: "Priority-based", priority: 1, healthCheck: HEALTH },
      3,
      "Priority-based",
      1 + HEALTH_PENALTY,
      "health_degraded",
    ],
    [
      "Enabled ignores health",
      { forgeState: "Enabled", priority: 1, healthCheck: HEALTH },
      9,
      "Enabled",
      1,
      "base_configuration",
    ],
    [
      "a disabled health check counts nothing",
      { forgeState: "Priority-based", priority: 1, healthCheck: { ...HEALTH, enabled: false } },
      9,
      "Priority-based",
      1,
      "base_configuration",
    ],
  ];
  for (const [name, spec, failures, state, priority, reason] of rows) {
    const st = standing(spec, { failures, message: "HTTP 503" }, NOW);
    assert.deepEqual([st.state, st.priority, st.reason], [state, priority, reason], name);
  }
});

Deno.test("the priority delay: one step per priority below the highest, at most nine", () => {
  assert.equal(priorityDelayMs(1, 10_000, MAX_PRIORITY_STEPS), 0);
  assert.equal(priorityDelayMs(3, 10_000, MAX_PRIORITY_STEPS), 20_000);
  assert.equal(priorityDelayMs(1 + HEALTH_PENALTY, 10_000, MAX_PRIORITY_STEPS), 90_000);
});
