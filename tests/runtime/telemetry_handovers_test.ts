/**
 * lib/runtime/telemetry_ops.ts for issue 20's transitions: the leader schedule is sensitive (a
 * slot's number reaches debug logs only, and no Event), the waits are logged and counted, and the
 * sync shows in the metrics.
 */

import assert from "node:assert/strict";
import { createLogger, type LogLevel } from "../../lib/base/log.ts";
import { systemClock } from "../../lib/base/clock.ts";
import type { Transition } from "../../lib/forging/events.ts";
import type { StatusReporter } from "../../lib/kube/cardano_leader.ts";
import { createMetrics } from "../../lib/runtime/metrics.ts";
import { Telemetry } from "../../lib/runtime/telemetry.ts";

const SLOT = 173_456_789;

/** A telemetry at `level` whose log lines, Events and metrics the test reads. */
function telemetry(level: LogLevel) {
  const lines: string[] = [];
  const events: string[] = [];
  const metrics = createMetrics({
    version: "test",
    pod: "p-0",
    namespace: "ns",
    lease: "l",
    identity: "p-0_x",
    lastRenewAt: () => undefined,
  });
  const status = {
    report: () => Promise.resolve(),
    event: (_type: string, reason: string, message: string) => {
      events.push(`${reason}: ${message}`);
      return Promise.resolve();
    },
    lastLeader: () => Promise.resolve(""),
    claim: () => Promise.resolve(),
  } as StatusReporter;
  const t = new Telemetry({
    podName: "p-0",
    identity: "p-0_x",
    leaseName: "l",
    nodeSocket: "/ipc/node.socket",
    clock: systemClock,
    log: createLogger(level, (line) => lines.push(line)),
    metrics,
    status,
  });
  return { t, lines, events, metrics };
}

const SCHEDULE_TRANSITIONS: Transition[] = [
  { kind: "schedule_loaded", upcoming: 12, changed: true, next: SLOT },
  { kind: "slot_wait_started", trigger: "handover", waitMs: 7_200, slot: SLOT },
  { kind: "slot_wait_ended", trigger: "handover", outcome: "passed", waitedMs: 7_250 },
  { kind: "schedule_unusable", error: "Cannot read the leader schedule: line 3 is not a slot" },
];

Deno.test("a slot's number reaches debug logs only, never info, an Event or a metric", async () => {
  const info = telemetry("info");
  for (const t of SCHEDULE_TRANSITIONS) info.t.apply(t);
  await new Promise((resolve) => setTimeout(resolve, 10));
  const text = [...info.lines, ...info.events, await info.metrics.registry.metrics()].join("\n");
  assert.ok(!text.includes(String(SLOT)), "a slot at info level, in an Event or a metric");
  assert.ok(info.lines.some((l) => l.includes("waits for one of the pool's leader slots")));
  assert.deepEqual(info.events, [], "a wait in an Event says that a slot is near");
  // At debug level the slot is there: the check above can fail.
  const debug = telemetry("debug");
  for (const t of SCHEDULE_TRANSITIONS) debug.t.apply(t);
  assert.ok(debug.lines.some((l) => l.includes(String(SLOT))));
});

Deno.test("waits are counted by trigger and outcome, with the time spent; the schedule's size shown", async () => {
  const { t, metrics } = telemetry("info");
  for (const tr of SCHEDULE_TRANSITIONS) t.apply(tr);
  t.apply({ kind: "slot_wait_ended", trigger: "shutdown", outcome: "bound", waitedMs: 20_000 });
  const text = await metrics.registry.metrics();
  assert.match(text, /^forge_manager_slot_waits_total\{trigger="handover",outcome="passed"\} 1$/m);
  assert.match(text, /^forge_manager_slot_waits_total\{trigger="shutdown",outcome="bound"\} 1$/m);
  assert.match(text, /^forge_manager_slot_wait_seconds_total\{trigger="handover"\} 7\.25$/m);
  assert.match(text, /^forge_manager_leader_schedule_slots 12$/m);
});

Deno.test("the node's sync and forging unsynced show in the metrics", async () => {
  const { t, metrics, events } = telemetry("info");
  const before = await metrics.registry.metrics();
  assert.match(before, /^forge_manager_node_tip_lag_slots -1$/m);
  assert.match(before, /^forge_manager_node_sync\{state="unknown"\} 1$/m);
  t.apply({ kind: "sync_judged", sync: { state: "lagging", lagSlots: 412 }, changed: true });
  t.apply({ kind: "unsynced_forging", active: true, lagSlots: 412 });
  const text = await metrics.registry.metrics();
  assert.match(text, /^forge_manager_node_tip_lag_slots 412$/m);
  assert.match(text, /^forge_manager_node_sync\{state="lagging"\} 1$/m);
  assert.match(text, /^forge_manager_node_sync\{state="synced"\} 0$/m);
  assert.match(text, /^forge_manager_forging_unsynced 1$/m);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(events.some((e) => e.startsWith("ForgingUnsynced: ")), events.join("\n"));
});
