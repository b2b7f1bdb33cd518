/**
 * The step with decoys (DECOY_CREDENTIALS): what the node boots on, when the decoys come back
 * after a stop, and that they never land between a promotion's keys and its SIGHUP. Pure: the
 * real step driven by events, in virtual time.
 */

import assert from "node:assert/strict";
import type { Effect, ForgingEvent } from "../../lib/forging/events.ts";
import { DECOY_SETTLE_MS, type ForgingConfig, type ForgingState } from "../../lib/forging/state.ts";
import { nextWake, start, step } from "../../lib/forging/step.ts";
import type { NodeInfo } from "../../lib/core/node_process.ts";
import type { LeaseRecord } from "../../lib/kube/lease_store.ts";

const ME = "producer-0_me";
const NODE: NodeInfo = { pid: 7, startTicks: 70, nonProducing: true };
const CFG: ForgingConfig = {
  identity: ME,
  podName: "producer-0",
  fence: false,
  startAsNonProducing: true,
  decoys: true,
  socketCheck: false,
  socketWaitTimeoutMs: 5000,
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2000,
  acquireDelayMs: 2000,
  sleepIntervalMs: 5000,
};
const PLACED = {
  changed: ["kes", "vrf", "opcert"],
  facts: { issueCounter: 1, kesStartPeriod: 9, hotKeyId: "0123abcd" },
} as unknown as Extract<ForgingEvent, { kind: "keys_placed" }>["placed"];

function lease(holder: string, rv: string, extra: Partial<LeaseRecord> = {}): LeaseRecord {
  return { holder, durationMs: 15_000, transitions: 1, resourceVersion: rv, ...extra };
}

/** The placements among effects: `decoys`, `boot` (the pool's keys for a boot) or the purpose. */
function placements(effects: readonly Effect[]): string[] {
  return effects.flatMap((e) =>
    e.kind !== "place_keys" ? [] : e.purpose === "boot" && e.decoys ? ["decoys"] : [e.purpose]
  );
}

/** The real step, its state and the effects of its last event. */
class Run {
  state: ForgingState;
  effects: readonly Effect[];
  now = 1000;
  constructor(cfg: Partial<ForgingConfig> = {}) {
    ({ state: this.state, effects: this.effects } = start({ ...CFG, ...cfg }, this.now));
  }
  feed(event: ForgingEvent, at = this.now): this {
    this.now = at;
    ({ state: this.state, effects: this.effects } = step(this.state, event, at));
    return this;
  }
  /** Time passes with nothing happening but the loop's timer. */
  tick(ms: number): this {
    return this.feed({ kind: "tick" }, this.now + ms);
  }
  /** Answers the pending stop: unlinked, and the SIGHUP's outcome. */
  stopAnswered(outcome: "ok" | "not_found" | "refused" = "ok"): this {
    const stop = this.state.stop;
    assert.ok(stop !== undefined, "no stop pending");
    this.feed({ kind: "keys_removed", stop: stop.id, ok: true });
    return this.feed({ kind: "signalled", reason: stop.reason, stop: stop.id, outcome });
  }
  has(kind: Effect["kind"]): boolean {
    return this.effects.some((e) => e.kind === kind);
  }
}

/** Booted on decoys, node found, its startup stop answered (SIGHUP delivered) at `now`. */
function bootedStandby(cfg: Partial<ForgingConfig> = {}): Run {
  const run = new Run(cfg);
  assert.deepEqual(placements(run.effects), ["decoys"]);
  run.feed({ kind: "decoys_placed", changed: ["kes", "vrf", "opcert"] });
  if (run.has("probe_socket")) run.feed({ kind: "socket_probed", accepts: true });
  run.feed({ kind: "node_checked", node: NODE, accepts: true });
  run.stopAnswered("ok");
  run.feed({ kind: "lease_read", observation: { kind: "present", record: lease("other", "5") } });
  return run;
}

Deno.test("the node boots on decoys, and their placement ends the start-up wait", () => {
  const run = new Run({ socketCheck: true });
  assert.deepEqual(placements(run.effects), ["decoys"]);
  assert.equal(run.state.phase.kind === "starting" && run.state.phase.provisioned, false);
  run.feed({ kind: "decoys_placed", changed: ["kes", "vrf", "opcert"] });
  const report = run.effects.find((e) => e.kind === "report");
  assert.deepEqual(report, {
    kind: "report",
    transition: { kind: "boot_keys_placed", changed: ["kes", "vrf", "opcert"], decoys: true },
  });
  assert.ok(run.has("probe_socket"), "the socket is probed once the decoys are in place");
  // Without decoys, the pool's keys are what it boots on (the README's older behaviour).
  assert.deepEqual(placements(new Run({ decoys: false }).effects), ["boot"]);
  assert.deepEqual(placements(new Run({ decoys: false, startAsNonProducing: false }).effects), []);
});

Deno.test("after a stop the decoys come back once the node has had time to read the folder, unsignalled", () => {
  const run = bootedStandby();
  const stoppedAt = run.now - 0; // the startup stop was answered at the same time as the read
  assert.equal(placements(run.effects).length, 0, "placed while the SIGHUP may still be read");
  assert.equal(run.state.decoysDueAt, stoppedAt + DECOY_SETTLE_MS);
  assert.ok(nextWake(run.state, run.now)! <= stoppedAt + DECOY_SETTLE_MS, "no wake-up for them");
  run.tick(DECOY_SETTLE_MS - 1);
  assert.equal(placements(run.effects).length, 0);
  run.feed({ kind: "tick" }, stoppedAt + DECOY_SETTLE_MS);
  assert.deepEqual(placements(run.effects), ["decoys"]);
  assert.ok(!run.has("signal"), "the decoys were signalled: the node would enable them");
  assert.equal(run.state.decoysDueAt, undefined);
  run.tick(60_000);
  assert.equal(placements(run.effects).length, 0, "placed twice");
});

Deno.test("a stop that found the node gone places the decoys at once: nobody reads the folder", () => {
  const run = new Run();
  run.feed({ kind: "decoys_placed", changed: [] });
  run.feed({ kind: "node_checked", node: NODE, accepts: true });
  run.stopAnswered("not_found");
  assert.deepEqual(placements(run.effects), ["decoys"]);
});

Deno.test("a node that restarts on a standby is stopped, then gets the decoys back", () => {
  const run = bootedStandby().tick(DECOY_SETTLE_MS);
  assert.deepEqual(placements(run.effects), ["decoys"]);
  run.feed({ kind: "decoys_placed", changed: ["kes", "vrf", "opcert"] });
  const next: NodeInfo = { pid: 8, startTicks: 80, nonProducing: true };
  run.feed({ kind: "node_checked", node: next, accepts: true }, run.now + 2000);
  assert.deepEqual(run.effects.filter((e) => e.kind !== "report").map((e) => e.kind), [
    "remove_keys",
    "signal",
  ]);
  run.stopAnswered("ok");
  assert.equal(placements(run.effects).length, 0);
  run.tick(DECOY_SETTLE_MS);
  assert.deepEqual(placements(run.effects), ["decoys"]);
});

/**
 * A standby that reads a clean release now and takes it, up to its promotion's placement;
 * returns the placements of those steps, in order.
 */
function promoting(run: Run): string[] {
  run.feed({
    kind: "lease_read",
    observation: { kind: "present", record: lease("", "6", { releasedBy: "other" }) },
  });
  const placed = placements(run.effects);
  const write = run.effects.find((e) => e.kind === "write_lease");
  assert.ok(write !== undefined && write.kind === "write_lease", "no acquire");
  run.feed({
    kind: "lease_written",
    decision: write.decision,
    record: lease(ME, "7"),
    sentAt: run.now,
  });
  return [...placed, ...placements(run.effects)];
}

/** {@linkcode promoting}, then the claim, the keys and the SIGHUP answered: forging. */
function forging(run: Run): Run {
  promoting(run);
  run.feed({ kind: "leader_claimed", term: run.state.term });
  run.feed({ kind: "keys_placed", purpose: "promote", placed: PLACED, wallMs: Date.now() });
  run.feed({ kind: "signalled", reason: "promote", pid: NODE.pid, outcome: "ok" });
  assert.equal(run.state.phase.kind, "forging");
  return run;
}

Deno.test("a promotion before the decoys are due drops them: its keys are never covered", () => {
  const run = bootedStandby();
  assert.deepEqual(promoting(run), ["promote"]);
  run.feed({ kind: "leader_claimed", term: run.state.term });
  run.feed({ kind: "keys_placed", purpose: "promote", placed: PLACED, wallMs: Date.now() });
  assert.ok(run.has("signal"));
  run.tick(DECOY_SETTLE_MS); // the decoys' time passes while promoting
  assert.equal(placements(run.effects).length, 0, "decoys placed over the pool's keys");
  run.feed({ kind: "signalled", reason: "promote", pid: NODE.pid, outcome: "ok" });
  assert.equal(run.state.phase.kind, "forging");
  assert.equal(run.state.decoysDueAt, undefined);
  run.tick(DECOY_SETTLE_MS);
  assert.equal(placements(run.effects).length, 0, "decoys placed while forging");
});

Deno.test("decoys due before a promotion are queued before its keys", () => {
  // On the runner's lane the decoys go first, the pool's keys over them.
  const run = bootedStandby();
  run.now += DECOY_SETTLE_MS;
  assert.deepEqual(promoting(run), ["decoys", "promote"]);
});

Deno.test("a demotion unlinks the pool's keys, signals, and only then brings the decoys back", () => {
  const run = forging(bootedStandby().tick(DECOY_SETTLE_MS));
  run.feed({ kind: "shutdown" });
  assert.deepEqual(run.effects.filter((e) => e.kind !== "report").map((e) => e.kind), [
    "remove_keys",
    "signal",
  ]);
  run.stopAnswered("ok");
  assert.equal(placements(run.effects).length, 0, "decoys placed before the node read the folder");
  assert.ok(run.has("release_lease"));
  run.tick(DECOY_SETTLE_MS);
  assert.deepEqual(placements(run.effects), ["decoys"]);
});

Deno.test("a leader whose node restarted replaces the pool's keys by the decoys at once, unsignalled", () => {
  const run = forging(bootedStandby({ socketCheck: true }).tick(DECOY_SETTLE_MS));
  // A new node process, booting (its socket does not accept yet): it reads the files at start.
  const booting: NodeInfo = { pid: 9, startTicks: 90, nonProducing: true };
  run.feed({ kind: "node_checked", node: booting, accepts: false }, run.now + 2000);
  assert.equal(run.state.phase.kind, "stepped_aside");
  assert.ok(!run.has("remove_keys"), "unlinked the files a booting node reads");
  assert.ok(!run.has("signal"), "signalled a booting node (SIGHUP's default action kills it)");
  assert.deepEqual(placements(run.effects), ["decoys"]);
});
