/**
 * The forging state machine as tables: given a state reached by real events, this event, expect
 * this phase and these effects in this order. Pure: no I/O, no timers, no waiting.
 */

import assert from "node:assert/strict";
import type { ForgingEvent } from "../../lib/forging/events.ts";
import { WATCHED_READ_MS } from "../../lib/forging/operations.ts";
import { isForging, PHASES } from "../../lib/forging/state.ts";
import { nextWake } from "../../lib/forging/step.ts";
import { kesPeriodAt, MAINNET_KES_TIMING } from "../../lib/cardano/kes_period.ts";
import { STOP_REASONS, type StopReason } from "../../lib/forging/stop_reasons.ts";
import {
  FACTS,
  forger,
  Machine,
  ME,
  NODE,
  opsForger,
  opsStandby,
  OTHER,
  present,
  rec,
  standby,
} from "../support/machine.ts";

Deno.test("a standby starts by unlinking the keys, then signalling its node, and stands by", () => {
  const m = new Machine({ startAsNonProducing: true, socketCheck: true });
  assert.deepEqual(m.did, ["place_keys:boot", "report:waiting_for_socket"]);
  m.feed({ kind: "keys_placed", purpose: "boot", placed: FACTS });
  assert.deepEqual(m.did, ["report:boot_keys_placed", "probe_socket"]);
  m.feed({ kind: "socket_probed", accepts: false }, 1_100);
  assert.deepEqual(m.did, []);
  assert.equal(nextWake(m.state, m.now), 1_600, "the socket is probed again 500 ms later");
  m.feed({ kind: "tick" }, 1_600);
  assert.deepEqual(m.did, ["probe_socket"]);
  m.feed({ kind: "socket_probed", accepts: true }, 1_650);
  assert.deepEqual(m.did, ["check_node"]);
  m.feed({ kind: "node_checked", node: NODE, accepts: true });
  // The Lease is read once the keys are gone (no request starts while keys move).
  assert.deepEqual(m.did, ["report:node_flag", "remove_keys", "signal:startup"]);
  m.answerStop();
  assert.deepEqual(m.did, ["report:signal_sent", "report:standing_by", "read_lease"]);
  assert.equal(m.phase, "standby");
  assert.equal(m.state.stopConfirmed, true);
});

Deno.test("a node socket that never accepts ends the start with an error naming the timeout", () => {
  const m = new Machine({ socketCheck: true });
  m.feed({ kind: "socket_probed", accepts: false }, 1_000 + 5_001);
  assert.equal(m.phase, "done");
  assert.match(String((m.state.phase as { error?: string }).error), /SOCKET_WAIT_TIMEOUT=5 s/);
});

Deno.test("a promotion names this pod in the status first, and its SIGHUP waits for that write", () => {
  // After a Lease deleted by hand under a dead sidecar the status is all a successor can fence.
  for (const claimFirst of [true, false]) {
    const m = standby();
    m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
    const write = m.effect("write_lease");
    m.feed({
      kind: "lease_written",
      decision: write.decision,
      record: rec(ME, "12"),
      sentAt: m.now,
    });
    const order = m.did.filter((d) => d === "claim_leader" || d.startsWith("place_keys"));
    assert.deepEqual(order, ["claim_leader", "place_keys:promote"]);
    const term = m.effect("claim_leader").term;
    if (claimFirst) m.feed({ kind: "leader_claimed", term });
    m.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
    if (!claimFirst) {
      assert.ok(!m.did.includes("signal:promote"), "signalled before the claim was answered");
      m.feed({ kind: "leader_claimed", term: term - 1 }); // an earlier term's answer
      assert.ok(!m.did.includes("signal:promote"), "an earlier term's claim counted");
      m.feed({ kind: "leader_claimed", term });
    }
    assert.deepEqual(m.did, ["signal:promote"]);
  }
});

Deno.test("what the runner could not do outside an effect's own result is reported by the step", () => {
  // Telemetry only through report: the runner posts these as events instead of logging them.
  const m = forger();
  m.feed({ kind: "sources_compare_failed", error: "EIO" });
  assert.deepEqual(m.did, ["report:rotation_unusable"]);
  const unusable = m.effect("report").transition;
  assert.deepEqual(unusable, { kind: "rotation_unusable", problem: "cannot compare: EIO" });
  m.feed({ kind: "effect_failed", effect: "publish_replica", error: "403" });
  assert.deepEqual(m.effect("report").transition, {
    kind: "effect_failed",
    effect: "publish_replica",
    error: "403",
  });
  assert.equal(m.phase, "forging", "neither changes the forging state");
  const p = standby();
  p.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  p.feed({
    kind: "lease_written",
    decision: p.effect("write_lease").decision,
    record: rec(ME, "12"),
    sentAt: p.now,
  });
  p.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
  p.feed({ kind: "leader_claimed", term: p.state.term, error: "no answer within 2000 ms" });
  assert.deepEqual(p.did, ["report:leader_claim_failed", "signal:promote"]);
});

Deno.test("a clean handover is taken at once, and forging starts with place-then-signal", () => {
  const m = forger();
  assert.equal(isForging(m.state), true);
  assert.deepEqual(m.did, ["report:signal_sent", "report:forging_enabled"]);
});

Deno.test("the fence learns from the step whether our own node's last stop was confirmed", () => {
  // The own-Pod proof: only a confirmed stop (unlink and SIGHUP both done) counts.
  for (const [signal, confirmed] of [["ok", true], ["refused", false]] as const) {
    const m = new Machine({ fence: true });
    m.feed({ kind: "node_checked", node: NODE, accepts: true });
    m.answerStop(signal);
    m.feed({ kind: "lease_read", observation: present(rec(OTHER, "10")) }, m.now + 1);
    m.feed({ kind: "tick" }, m.now + 17_002);
    const write = m.effect("write_lease");
    m.feed({
      kind: "lease_written",
      decision: write.decision,
      record: rec(ME, "12"),
      sentAt: m.now,
    });
    assert.equal(m.effect("start_fence").ownNodeStopped, confirmed, `startup SIGHUP ${signal}`);
  }
});

Deno.test("an acquisition that needs proof fences first, and a proof of an earlier term is ignored", () => {
  const m = standby({ fence: true });
  m.feed({ kind: "tick" }, 1_000 + 17_001 + 1); // held by OTHER, unchanged for LEASE + DELAY
  const write = m.effect("write_lease");
  assert.equal(write.decision.kind, "acquire");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.equal(m.phase, "fencing");
  assert.deepEqual(m.did, [
    "report:renewed",
    "report:became_leader",
    "report:fence_started",
    "start_fence",
  ]);
  assert.equal(m.effect("start_fence").previousHolder, OTHER);
  assert.equal(m.effect("start_fence").ownNodeStopped, true, "the startup stop was confirmed");
  const term = m.effect("start_fence").term;

  m.feed({
    kind: "fence_done",
    term: term - 1,
    previous: OTHER,
    outcome: { proven: true, how: "pod_gone" },
  });
  assert.equal(m.phase, "fencing", "a proof for another term counted");
  m.feed({ kind: "fence_done", term, previous: OTHER, outcome: { proven: false, why: "x" } });
  assert.equal(m.phase, "fencing", "no proof counted as proof");
  m.feed({ kind: "fence_done", term, previous: OTHER, outcome: { proven: true, how: "pod_gone" } });
  assert.equal(m.phase, "promoting");
  assert.deepEqual(m.did, ["report:fence_done", "claim_leader", "place_keys:promote"]);
});

/** Each way a term ends: the stop's effects, in order, and what follows. */
const ENDINGS: {
  name: string;
  end: (m: Machine) => void;
  reason: StopReason;
  then: string;
}[] = [
  {
    name: "the renew deadline passes (a renew hangs)",
    end: (m) => {
      m.feed({ kind: "tick" }, m.now + 2_000); // due: a renew goes out and hangs
      assert.equal(m.effect("write_lease").decision.kind, "renew");
      m.feed({ kind: "tick" }, m.now + 8_000); // 10 s after the last renew was sent
    },
    reason: "renew_deadline",
    then: "standby",
  },
  {
    name: "another replica takes the Lease",
    end: (m) => {
      m.feed({ kind: "tick" }, m.now + 2_000);
      const w = m.effect("write_lease");
      m.feed({ kind: "lease_write_failed", decision: w.decision, conflict: true, error: "409" });
      m.feed({ kind: "lease_read", observation: present(rec("producer-2_x", "20")) });
    },
    reason: "lease_taken",
    then: "standby",
  },
  {
    name: "the Lease is deleted",
    end: (m) => {
      m.feed({ kind: "tick" }, m.now + 2_000);
      const w = m.effect("write_lease");
      m.feed({ kind: "lease_write_failed", decision: w.decision, conflict: true, error: "409" });
      m.feed({ kind: "lease_read", observation: { kind: "absent" } });
    },
    reason: "lease_deleted",
    then: "standby",
  },
  {
    name: "a planned shutdown",
    end: (m) => m.feed({ kind: "shutdown" }),
    reason: "shutdown",
    then: "releasing",
  },
  {
    name: "the node exits",
    end: (m) => m.feed({ kind: "node_checked", node: undefined, accepts: true }, m.now + 1_000),
    reason: "cannot_forge",
    then: "stepped_aside",
  },
];

for (const ending of ENDINGS) {
  Deno.test(`when ${ending.name}, the keys are unlinked before the SIGHUP, and ${ending.then} follows`, () => {
    const m = forger();
    ending.end(m);
    assert.equal(m.phase, "stopping");
    const order = m.did.filter((d) => ["remove_keys", `signal:${ending.reason}`].includes(d));
    assert.deepEqual(order, ["remove_keys", `signal:${ending.reason}`]);
    assert.ok(m.did.includes("report:demoted"));
    assert.ok(
      !m.did.some((d) => d.startsWith("release")),
      "released before the stop was confirmed",
    );
    m.answerStop();
    assert.equal(m.phase, ending.then);
    const releases = m.did.filter((d) => d.startsWith("release"));
    assert.deepEqual(releases, ending.then === "standby" ? [] : ["release:clean"]);
    assert.equal(STOP_REASONS[ending.reason].metric, ending.reason);
  });
}

Deno.test("a stop whose SIGHUP is refused releases unclean; a node that exited still counts as stopped", () => {
  for (const [outcome, clean] of [["refused", false], ["not_found", true]] as const) {
    const m = forger();
    m.feed({ kind: "shutdown" });
    m.answerStop(outcome);
    assert.deepEqual(m.did.filter((d) => d.startsWith("release")), [
      clean ? "release:clean" : "release:unclean",
    ]);
    assert.equal(m.state.stopConfirmed, clean);
  }
});

Deno.test("a placement that comes back after the term ended is not followed by a promoting SIGHUP", () => {
  const m = standby();
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  const w = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: w.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.equal(m.phase, "promoting");
  m.answerClaim();
  const effects = m.feed(
    { kind: "keys_placed", purpose: "promote", placed: FACTS },
    m.now + 10_001,
  );
  assert.ok(!effects.some((e) => e.kind === "signal" && e.reason === "promote"));
  assert.equal(m.phase, "stopping");
  assert.deepEqual(m.did.filter((d) => d === "remove_keys" || d.startsWith("signal")), [
    "remove_keys",
    "signal:renew_deadline",
  ]);
});

Deno.test("a renew in flight does not hold back the stop at the deadline", () => {
  const m = forger();
  m.feed({ kind: "tick" }, m.now + 2_000);
  assert.equal(m.effect("write_lease").decision.kind, "renew");
  assert.equal(nextWake(m.state, m.now), m.now + 8_000, "the deadline is the next wake-up");
  m.feed({ kind: "tick" }, m.now + 8_000);
  assert.deepEqual(m.did.filter((d) => d === "remove_keys" || d.startsWith("signal")), [
    "remove_keys",
    "signal:renew_deadline",
  ]);
});

Deno.test("a late renew that answers after the stop began starts no term", () => {
  const m = forger();
  m.feed({ kind: "tick" }, m.now + 2_000);
  const renew = m.effect("write_lease");
  const sentAt = m.now;
  m.feed({ kind: "shutdown" });
  m.feed({ kind: "lease_written", decision: renew.decision, record: rec(ME, "13"), sentAt });
  assert.equal(m.phase, "stopping");
  assert.equal(m.state.election.term, undefined);
  m.answerStop();
  assert.equal(m.effect("release_lease").record.resourceVersion, "13", "released an old version");
});

Deno.test("a standby's node without the non-producing flag is stopped once per process", () => {
  const m = standby();
  const unsafe = { ...NODE, pid: 99, nonProducing: false };
  m.feed({ kind: "node_checked", node: unsafe, accepts: true }, m.now + 2_000);
  assert.deepEqual(m.did.filter((d) => d !== "report:node_flag"), [
    "report:node_found",
    "report:unsafe_node",
    "remove_keys",
    "signal:unsafe_node",
    "report:node_restarted",
  ]);
  m.answerStop();
  m.feed({ kind: "node_checked", node: unsafe, accepts: true }, m.now + 2_000);
  assert.deepEqual(m.did.filter((d) => d !== "report:node_flag"), [], "reported twice");
});

Deno.test("a leader whose node is booting steps aside at once, keeping the keys it boots with", () => {
  const m = standby({ socketCheck: true });
  m.feed({ kind: "node_checked", node: { ...NODE, pid: 77 }, accepts: false }, m.now + 2_000);
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  const w = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: w.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.equal(m.phase, "stepped_aside");
  assert.ok(!m.did.includes("remove_keys"), "unlinked the keys a booting node reads");
  assert.ok(m.did.includes("release:clean"));
});

Deno.test("a leader whose node is gone steps aside and provisions boot keys after the release", () => {
  const m = forger({ startAsNonProducing: true });
  m.feed({ kind: "node_checked", node: undefined, accepts: true }, m.now + 2_000);
  m.answerStop("not_found");
  assert.deepEqual(m.did.filter((d) => d.startsWith("release") || d.startsWith("place")), [
    "release:clean",
    "place_keys:boot",
  ]);
  assert.equal(m.phase, "stepped_aside");
  m.feed({ kind: "tick" }, m.now + 30_000);
  assert.equal(m.phase, "standby", "stepped aside for good");
});

Deno.test("a rotation places a valid new set, then signals; an unusable one is reported once", () => {
  const m = forger();
  m.feed({ kind: "sources_checked", differ: true, problem: "mismatch" });
  m.feed({ kind: "sources_checked", differ: true, problem: "mismatch" });
  assert.deepEqual(m.did, [], "reported twice");
  m.feed({ kind: "sources_checked", differ: true });
  assert.deepEqual(m.did, ["place_keys:rotate"]);
  m.feed({ kind: "keys_placed", purpose: "rotate", placed: FACTS });
  assert.deepEqual(m.did, ["signal:rotate"]);
  m.feed({ kind: "signalled", reason: "rotate", pid: NODE.pid, outcome: "ok" });
  assert.deepEqual(m.did, ["report:signal_sent", "report:rotated"]);
  assert.equal(m.phase, "forging");
});

Deno.test("every phase is listed once, and every stop reason has a row", () => {
  assert.equal(new Set(PHASES).size, PHASES.length);
  for (const [reason, row] of Object.entries(STOP_REASONS)) {
    assert.equal(row.metric, reason);
    assert.ok(row.status !== "" && row.text !== "", reason);
  }
});

Deno.test("the README's state diagram names exactly the phases of the code", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const diagram = readme.match(/```mermaid\nstateDiagram-v2\n([\s\S]*?)```/)?.[1];
  assert.ok(diagram !== undefined, "no stateDiagram-v2 in README.md");
  const named = new Set<string>();
  for (const line of diagram.split("\n")) {
    const edge = line.match(/^\s*(\S+)\s+-->\s+([^:\s]+)/);
    if (edge === null) continue;
    for (const state of [edge[1]!, edge[2]!]) if (state !== "[*]") named.add(state);
  }
  assert.deepEqual([...named].sort(), [...PHASES].sort());
});

Deno.test("the fence gets the previous holder's pod UID as known when the create was decided", () => {
  // Our own create's watch event may arrive before its response: it must not stand in for the
  // previous holder (whose pod the fence proves stopped).
  const m = new Machine({ fence: true });
  m.feed({ kind: "node_checked", node: NODE, accepts: true });
  m.answerStop();
  m.feed({ kind: "lease_read", observation: present(rec(OTHER, "10", { holderPodUid: "uid-1" })) });
  m.feed({ kind: "lease_watched", observation: { kind: "absent" } }, m.now + 1);
  m.effect("read_lease"); // an absence is acted on from a read (which asks the status too)
  m.feed({ kind: "lease_read", observation: { kind: "absent" } });
  const create = m.effect("write_lease"); // at once: the create is on probation instead
  assert.equal(create.decision.kind, "acquire");
  const mine = rec(ME, "11", { holderPodUid: "uid-me" });
  m.feed({ kind: "lease_watched", observation: present(mine) });
  m.feed({
    kind: "lease_written",
    decision: create.decision,
    record: mine,
    sentAt: m.now,
    ...(create.previous !== undefined ? { previous: create.previous } : {}),
  });
  const fence = m.effect("start_fence");
  assert.equal(fence.previousHolder, OTHER);
  assert.equal(fence.previousPodUid, "uid-1");
});

// ---- the credentials' verdict and the node's own account --------------------------------------

const WALL = Date.parse("2026-12-02T00:00:00Z");
const PERIOD = kesPeriodAt(MAINNET_KES_TIMING, WALL);
/** Public facts of a set whose certificate starts at `start` (signed by the pool's cold key). */
function factsFrom(start: number): Extract<ForgingEvent, { kind: "keys_placed" }>["placed"] {
  return {
    changed: ["kes", "vrf", "opcert"],
    facts: {
      issueCounter: 3,
      kesStartPeriod: start,
      hotKeyId: `ab${start}`,
      poolId: "00".repeat(28),
      signatureValid: true,
      vrfKeyConsistent: true,
    },
  };
}
const KES = { kesTiming: MAINNET_KES_TIMING };

Deno.test("a promotion whose placed certificate has expired steps aside without the promoting SIGHUP", () => {
  const m = standby(KES);
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  const w = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: w.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.equal(m.phase, "promoting");
  m.answerClaim();
  m.feed({ kind: "keys_placed", purpose: "promote", placed: factsFrom(PERIOD - 62), wallMs: WALL });
  assert.ok(!m.did.includes("signal:promote"), "signalled an expired certificate into forging");
  assert.deepEqual(m.did.filter((d) => d === "remove_keys" || d.startsWith("signal")), [
    "remove_keys",
    "signal:bad_credentials",
  ]);
  assert.equal(m.state.phase.kind, "stopping");
  m.answerStop();
  assert.equal(m.phase, "stepped_aside");
  assert.ok(m.did.includes("release:clean"));
});

Deno.test("a forging leader whose certificate expires as time passes steps aside at the next check", () => {
  const m = forger(KES);
  // The promotion placed a set valid until PERIOD + 1; judged again once the clock is past it.
  m.state = { ...m.state, placed: factsFrom(PERIOD - 61).facts };
  m.feed({ kind: "credentials_checked", facts: factsFrom(PERIOD - 61).facts, wallMs: WALL });
  assert.equal(m.phase, "forging", "a certificate with a period left stepped aside");
  const later = WALL + 2 * 36 * 3600_000;
  m.feed({ kind: "credentials_checked", facts: factsFrom(PERIOD - 61).facts, wallMs: later });
  assert.equal(m.phase, "stopping");
  assert.ok(m.did.includes("report:credentials_judged"));
  assert.equal(m.state.stop?.reason, "bad_credentials");
});

Deno.test("a standby whose credentials cannot forge does not compete for a free Lease", () => {
  const m = standby(KES);
  m.feed({ kind: "credentials_checked", facts: factsFrom(PERIOD + 5).facts, wallMs: WALL });
  assert.equal(m.state.credentials?.verdict, "not_yet_valid");
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  assert.ok(!m.did.some((d) => d.startsWith("write")), "a replica with bad keys competed");
  m.feed({ kind: "credentials_checked", facts: factsFrom(PERIOD).facts, wallMs: WALL });
  assert.equal(m.effect("write_lease").decision.kind, "acquire", "fixed keys do not compete again");
});

Deno.test("the node's metrics are judged after each signal, and a change is reported once", () => {
  const m = forger({ nodeMetrics: true });
  const sample = (at: number, slot: number, aboutToLead: number) => ({
    atMs: at,
    slotNum: slot,
    aboutToLead,
    forgingEnabled: 1,
    currentKESPeriod: PERIOD,
  });
  m.feed({ kind: "node_metrics_read", sample: sample(0, 100, 10) });
  m.feed({ kind: "node_metrics_read", sample: sample(10_000, 110, 10) });
  const first = m.effect("report").transition;
  assert.equal(first.kind, "forging_confirmation");
  assert.equal(m.state.samples.length, 2);
  assert.equal(m.state.nodeKesPeriod, PERIOD);
  const before = m.state.confirmation;
  m.feed({ kind: "node_metrics_read", sample: sample(20_000, 120, 10) });
  const again = m.effect("report").transition as Extract<
    typeof first,
    { kind: "forging_confirmation" }
  >;
  assert.equal(again.changed, m.state.confirmation !== before);
  m.feed({ kind: "shutdown" });
  m.feed({ kind: "keys_removed", stop: m.state.stop!.id, ok: true });
  m.feed({ kind: "signalled", reason: "shutdown", stop: m.state.stop!.id, outcome: "ok" });
  assert.equal(m.state.samples.length, 0, "readings from before the signal were kept");
});

Deno.test("a term still on probation passes the rest of it on with its clean release", () => {
  // Its own node stopped, but the probation guards against a holder of a deleted Lease that may
  // still forge: the next replica must wait out the rest of it (no fence needed for this pod).
  const m = standby();
  m.feed({ kind: "lease_read", observation: { kind: "absent" } }, m.now + 1);
  const create = m.effect("write_lease");
  m.feed({
    kind: "lease_written",
    decision: create.decision,
    record: rec(ME, "11"),
    sentAt: m.now,
  });
  assert.equal(m.phase, "awaiting_node", "a created term waits out its probation");
  const probationEnds = m.state.election.term!.forgeFrom;
  m.feed({ kind: "shutdown" }, m.now + 1_000);
  const stoppedAt = m.now;
  m.answerStop();
  const release = m.effect("release_lease");
  assert.equal(release.clean, true);
  assert.equal(release.waitMs, probationEnds - stoppedAt);
});

Deno.test("a release waits for the answer to a renew that was in flight when the stop began", () => {
  const m = forger();
  m.feed({ kind: "tick" }, m.now + 2_000);
  const renew = m.effect("write_lease");
  const sentAt = m.now;
  m.feed({ kind: "shutdown" });
  m.answerStop();
  assert.ok(!m.did.some((d) => d.startsWith("release")), "released under a pending renew");
  assert.equal(m.phase, "releasing");
  m.feed({ kind: "lease_written", decision: renew.decision, record: rec(ME, "14"), sentAt });
  assert.equal(m.effect("release_lease").record.resourceVersion, "14", "released an old version");
  assert.equal(m.state.election.term, undefined, "the late renew started a term");
});

// ---- the fence's obligation travels with the Lease --------------------------------------------

Deno.test("an acquisition that must fence puts the obligation on the Lease, and forging waits until a renew takes it off", () => {
  const m = standby({ fence: true });
  m.feed({ kind: "tick" }, 1_000 + 17_002); // held by OTHER, unchanged for LEASE + DELAY
  const acquire = m.effect("write_lease");
  assert.equal(acquire.fencePending?.holder, OTHER, "the first write names whom to prove");
  m.writtenCarrying(acquire, "12");
  const term = m.effect("start_fence").term;
  m.feed({ kind: "tick" }, m.now + 2_500); // a renew while fencing still carries it
  const renew = m.effect("write_lease");
  assert.equal(renew.fencePending?.holder, OTHER);
  m.writtenCarrying(renew, "13");
  m.feed({ kind: "fence_done", term, previous: OTHER, outcome: { proven: true, how: "pod_gone" } });
  assert.ok(!m.did.includes("place_keys:promote"), "forged while the Lease said it owed a proof");
  const clearing = m.effect("write_lease");
  assert.equal(clearing.fencePending, undefined, "the renew after the proof still carries it");
  m.feed({
    kind: "lease_written",
    decision: clearing.decision,
    record: rec(ME, "14"),
    sentAt: m.now,
  });
  assert.deepEqual(m.did.filter((d) => d.startsWith("place")), ["place_keys:promote"]);
});

Deno.test("a term that ends before its fence proved anything passes the obligation on with its release", () => {
  const m = standby({ fence: true });
  m.feed({ kind: "tick" }, 1_000 + 17_002);
  const acquire = m.effect("write_lease");
  m.writtenCarrying(acquire, "12");
  assert.equal(m.phase, "fencing");
  m.feed({ kind: "shutdown" }, m.now + 100);
  m.answerStop();
  const release = m.effect("release_lease");
  assert.equal(release.clean, true, "its own node is stopped");
  assert.equal(release.fencePending?.holder, OTHER, "the successor would not prove OTHER");
});

Deno.test("a Lease absent with no holder ever seen: its create already owes the proof of the pod the status names", () => {
  // The Lease was deleted under a dead sidecar: only the CardanoLeader status remembers it. The
  // obligation is on the create itself, so a successor inherits it if we stop before the proof.
  const m = standby({ fence: true }, { kind: "absent", lastLeader: "producer-9" });
  const create = m.effect("write_lease");
  assert.equal(create.decision.kind, "acquire");
  assert.equal(create.fencePending?.holder, "producer-9_status");
  m.writtenCarrying(create, "11");
  const fence = m.effect("start_fence");
  assert.equal(fence.previousHolder, "producer-9_status");
  assert.equal(fence.previousPodUid, undefined);
  m.feed({ kind: "shutdown" }, m.now + 100);
  m.answerStop();
  assert.equal(m.effect("release_lease").fencePending?.holder, "producer-9_status");
});

Deno.test("a Lease absent after a holder was seen fences that holder, not the pod the status names", () => {
  const m = standby({ fence: true });
  m.feed({ kind: "lease_read", observation: { kind: "absent", lastLeader: "producer-9" } });
  const create = m.effect("write_lease");
  assert.equal(create.fencePending?.holder, OTHER);
});

Deno.test("a Lease absent with no holder seen and a status naming nobody is created without a fence", () => {
  const m = standby({ fence: true }, { kind: "absent" });
  const create = m.effect("write_lease");
  assert.equal(create.fencePending, undefined);
  m.feed({
    kind: "lease_written",
    decision: create.decision,
    record: rec(ME, "11"),
    sentAt: m.now,
  });
  assert.ok(!m.did.includes("start_fence"));
  assert.equal(m.phase, "awaiting_node");
});

Deno.test("an absence seen on the watch is acted on only after a read", () => {
  const m = standby({ fence: true });
  m.feed({ kind: "lease_watched", observation: { kind: "absent" } }, m.now + 1);
  assert.deepEqual(m.did.filter((d) => d.startsWith("write")), [], "created from the watch");
  assert.ok(m.did.includes("read_lease"));
});

// ---- operations: pause, handover, our Pod's deletion -------------------------------------

const OPS_NOISE = new Set(["read_control", "publish_replica", "check_node", "check_sources"]);
/** The effects of the last step without the periodic reads and publications. */
function acts(m: Machine): string[] {
  return m.did.filter((d) => !OPS_NOISE.has(d) && d !== "report:node_flag");
}
const HANDOVER = { id: "h-1", to: "producer-2", by: "alice", ageMs: 1_000 };
const PAUSE = { reason: "node upgrade", by: "alice" };

Deno.test("a handover ends the term like a shutdown, releases clean to the target, then steps aside", () => {
  const m = opsForger();
  m.feed({ kind: "control_read", control: { handover: HANDOVER } }, m.now + 1);
  assert.deepEqual(acts(m), [
    "report:handover_started",
    "report:stopped_leading",
    "report:demoted",
    "remove_keys",
    "signal:handover",
  ]);
  assert.equal(m.phase, "stopping");
  m.answerStop();
  const release = m.effect("release_lease");
  assert.equal(release.clean, true);
  assert.equal(release.handoverTo, "producer-2");
  assert.equal(m.phase, "stepped_aside");
  m.feed({ kind: "lease_released", record: rec("", "13", { releasedBy: ME }), clean: true });
  assert.deepEqual(acts(m), ["report:handover_done", "report_handover", "report:released"]);
  assert.equal(m.effect("report_handover").result, "released");
  // The same request read again is not handled twice.
  m.feed({ kind: "control_read", control: { handover: HANDOVER } }, m.now + 60_000);
  assert.ok(!m.did.includes("report:handover_started"), "handled twice");
});

Deno.test("a handover whose stop is unconfirmed releases unclean, so nobody takes it at once", () => {
  const m = opsForger();
  m.feed({ kind: "control_read", control: { handover: HANDOVER } }, m.now + 1);
  m.answerStop("refused");
  assert.equal(m.effect("release_lease").clean, false);
  m.feed({ kind: "lease_released", record: rec("", "13"), clean: false });
  assert.equal(m.effect("report_handover").result, "released_unclean");
});

Deno.test("a handover is not acted on when handled already, stale, or aimed at the leader itself", () => {
  const cases: [Partial<typeof HANDOVER>, string | undefined, string][] = [
    [{}, "h-1", "none"],
    [{ ageMs: 61_000 }, undefined, "stale"],
    [{ to: "producer-0" }, undefined, "already_leader"],
  ];
  for (const [change, handledId, result] of cases) {
    const m = opsForger();
    m.feed({
      kind: "control_read",
      control: { handover: { ...HANDOVER, ...change }, ...(handledId ? { handledId } : {}) },
    }, m.now + 1);
    assert.equal(m.phase, "forging", result);
    const reported = m.effects.find((e) => e.kind === "report_handover");
    assert.equal(reported === undefined ? "none" : reported.result, result);
  }
});

Deno.test("a handover seen while standing by is remembered, and not acted on after becoming leader", () => {
  const m = standby({ operations: true });
  m.feed({ kind: "control_read", control: { handover: HANDOVER } });
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  const write = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
  m.answerClaim();
  m.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
  m.feed({ kind: "signalled", reason: "promote", pid: NODE.pid, outcome: "ok" });
  m.feed({ kind: "tick" }, m.now + 5_000);
  m.feed({ kind: "control_read", control: { handover: HANDOVER } });
  assert.equal(m.phase, "forging");
});

Deno.test("no term promotes before the spec was read once (a pause survives restarts)", () => {
  const m = standby({ operations: true });
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  const write = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.equal(m.phase, "awaiting_node");
  assert.ok(!m.did.includes("place_keys:promote"), "promoted before reading the spec");
  m.feed({ kind: "control_read", control: {} });
  assert.ok(m.did.includes("place_keys:promote"));
});

Deno.test("a pause stops the leader's node, keeps renewing the Lease, and ends at its until", () => {
  const m = opsForger();
  const until = m.now + 60_000;
  m.feed({ kind: "control_read", control: { pause: { ...PAUSE, endsAt: until } } }, m.now + 1);
  assert.deepEqual(acts(m), [
    "report:pause_started",
    "report:paused_leader",
    "remove_keys",
    "signal:paused",
  ]);
  assert.equal(m.phase, "paused");
  m.answerStop();
  assert.ok(!m.did.some((d) => d.startsWith("release")), "released during a pause");
  assert.equal(m.state.stopConfirmed, true);
  m.feed({ kind: "tick" }, m.now + 2_000);
  const renew = m.effect("write_lease");
  assert.equal(renew.decision.kind, "renew");
  m.feed({ kind: "lease_written", decision: renew.decision, record: rec(ME, "13"), sentAt: m.now });
  assert.equal(m.phase, "paused");
  // Keep renewing up to the pause's end, then it promotes again.
  while (m.now + 2_000 < until) {
    m.feed({ kind: "tick" }, m.now + 2_000);
    const w = m.effects.find((e) => e.kind === "write_lease");
    if (w !== undefined) {
      m.feed({
        kind: "lease_written",
        decision: w.decision,
        record: rec(ME, String(m.now)),
        sentAt: m.now,
      });
    }
    assert.equal(m.phase, "paused");
  }
  assert.ok(nextWake(m.state, m.now)! <= until, "no wake-up at the pause's end");
  m.feed({ kind: "tick" }, until);
  assert.deepEqual(acts(m).filter((d) => !d.startsWith("write")), [
    "report:pause_ended",
    "report:resumed_leader",
    "claim_leader",
    "place_keys:promote",
  ]);
});

Deno.test("a replica that acquires during a pause does not promote, and a failed read keeps the pause", () => {
  const m = opsStandby();
  m.feed({ kind: "control_read", control: { pause: PAUSE } });
  assert.deepEqual(acts(m), ["report:pause_started"]);
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  const write = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.equal(m.phase, "paused");
  assert.ok(!m.did.includes("place_keys:promote"));
  assert.ok(!m.did.includes("remove_keys"), "stopped a node it never started");
  m.feed({ kind: "control_read_failed", error: "timeout" }, m.now + 1_000);
  assert.equal(m.phase, "paused");
  m.feed({ kind: "control_read", control: {} }, m.now + 1_000);
  assert.ok(m.did.includes("place_keys:promote"), "resume did not promote");
});

Deno.test("a leader whose Pod is being deleted releases clean at once and never competes again", () => {
  const m = opsForger({ fence: true });
  assert.equal(m.state.ops?.podCheckBusy, true, "the Pod is not read from the term's start");
  m.feed({ kind: "pod_checked" });
  // The watch tells first; a read is the backstop.
  assert.equal(m.state.ops?.nextPodCheckAt, m.now + WATCHED_READ_MS);
  m.feed({ kind: "tick" }, m.now + 2_000);
  const renew = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: renew.decision, record: rec(ME, "13"), sentAt: m.now });
  m.feed({ kind: "pod_terminating" });
  assert.deepEqual(acts(m).filter((d) => !d.startsWith("write")), [
    "report:pod_terminating",
    "report:stopped_leading",
    "report:demoted",
    "remove_keys",
    "signal:pod_terminating",
  ]);
  m.answerStop();
  const release = m.effect("release_lease");
  assert.equal(release.clean, true);
  assert.equal(release.handoverTo, undefined, "a deletion's release named a target");
  assert.equal(m.phase, "retired");
  // A clean release by someone else later is not taken.
  m.feed({ kind: "lease_read", observation: present(rec("", "20", { releasedBy: OTHER })) });
  m.feed({ kind: "tick" }, m.now + 60_000);
  assert.ok(!m.did.some((d) => d.startsWith("write")), "a retired replica competed");
  m.feed({ kind: "shutdown" });
  assert.equal(m.phase, "done");
});

Deno.test("no background request starts while keys move: a promotion's placement, a shutdown's unlink and release", () => {
  const requests = (m: Machine) =>
    m.did.filter((d) => ["read_control", "publish_replica", "check_pod", "read_lease"].includes(d));
  const m = opsStandby({ fence: true });
  m.feed({ kind: "tick" }, m.now + 5_000);
  m.feed({ kind: "lease_read", observation: present(rec(OTHER, "10")) });
  m.feed({ kind: "control_read", control: {} });
  // The next reads are due when the clean release is seen.
  const release = present(rec("", "11", { releasedBy: OTHER }));
  m.feed({ kind: "lease_watched", observation: release }, m.now + 5_000);
  const write = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.ok(m.did.includes("place_keys:promote"));
  assert.deepEqual(requests(m), [], "a request beside the placement");
  assert.equal(nextWake(m.state, m.now)! > m.now, true, "woke at once for a deferred request");
  m.answerClaim();
  m.feed({ kind: "keys_placed", purpose: "promote", placed: FACTS });
  assert.deepEqual(requests(m), []);
  m.feed({ kind: "signalled", reason: "promote", pid: NODE.pid, outcome: "ok" });
  assert.equal(m.phase, "forging");
  assert.ok(requests(m).includes("publish_replica"), "the new state is published once forging");

  m.feed({ kind: "shutdown" }, m.now + 6_000);
  assert.deepEqual(m.did.filter((d) => d === "remove_keys" || d.startsWith("signal")), [
    "remove_keys",
    "signal:shutdown",
  ]);
  assert.deepEqual(requests(m), [], "a request beside the unlink");
  m.answerStop();
  assert.ok(m.did.includes("release:clean"));
  assert.deepEqual(requests(m), [], "a request beside the release");
});

Deno.test("a watched CardanoLeader change counts as a read: the read in flight is stale, the next one waits 30 s", () => {
  const m = opsStandby();
  m.feed({ kind: "tick" }, m.now + 5_000);
  assert.ok(m.did.includes("read_control"), "the read is due");
  const watchedAt = m.now + 10;
  m.feed({ kind: "control_read", control: { pause: PAUSE }, watched: true }, watchedAt);
  assert.ok(m.did.includes("report:pause_started"));
  // The read sent before the change answers with the older spec: it must not end the pause.
  m.feed({ kind: "control_read", control: {} }, watchedAt + 20);
  assert.ok(!m.did.includes("report:pause_ended"), "an older read ended the pause");
  assert.deepEqual(m.state.ops?.control, { pause: PAUSE });
  m.feed({ kind: "tick" }, watchedAt + WATCHED_READ_MS - 1);
  assert.ok(!m.did.includes("read_control"), "read again while the watch speaks");
  m.feed({ kind: "tick" }, watchedAt + WATCHED_READ_MS);
  assert.ok(m.did.includes("read_control"), "no backstop read after a quiet watch");
  m.feed({ kind: "control_read", control: {} });
  assert.ok(m.did.includes("report:pause_ended"));
});

Deno.test("our Pod's deletion seen on the watch retires a standby once, even one still starting", () => {
  const m = opsStandby({ fence: true });
  m.feed({ kind: "pod_terminating", watched: true });
  assert.equal(m.phase, "retired");
  assert.deepEqual(m.did.filter((d) => d === "report:pod_terminating"), ["report:pod_terminating"]);
  m.feed({ kind: "pod_terminating", watched: true });
  assert.deepEqual(m.did.filter((d) => d === "report:pod_terminating"), [], "reported twice");

  const early = new Machine({ operations: true, fence: true });
  early.feed({ kind: "pod_terminating", watched: true }); // before the first node check
  early.feed({ kind: "node_checked", node: NODE, accepts: true });
  early.answerStop();
  assert.equal(early.phase, "retired", "a deleted replica stood by");
  early.feed({ kind: "lease_read", observation: present(rec("", "11", { releasedBy: OTHER })) });
  assert.ok(!early.did.some((d) => d.startsWith("write")), "a retired replica competed");
});

Deno.test("a replica publishes its state when it changes and as a heartbeat", () => {
  const m = opsForger();
  const published = m.effects.filter((e) => e.kind === "publish_replica");
  assert.equal(published.length, 1);
  assert.deepEqual(published[0]!.kind === "publish_replica" && published[0]!.replica, {
    phase: "forging",
    leader: true,
    forging: true,
    nodeFound: true,
    fence: "off",
    guard: "off",
    reason: "startup",
  });
  m.feed({ kind: "tick" }, m.now + 5_000);
  assert.ok(!m.did.includes("publish_replica"), "published an unchanged state early");
  const renew = m.effect("write_lease"); // answered, so the term goes on
  m.feed({ kind: "lease_written", decision: renew.decision, record: rec(ME, "13"), sentAt: m.now });
  m.feed({ kind: "tick" }, m.now + 5_001); // REPLICA_HEARTBEAT_MS (10 s) after the last one
  assert.equal(m.phase, "forging");
  assert.ok(m.did.includes("publish_replica"), "no heartbeat");
});

Deno.test("a handover waits while the fence proves the previous holder stopped, then runs", () => {
  const m = standby({ operations: true, fence: true });
  m.feed({ kind: "control_read", control: {} });
  m.feed({ kind: "tick" }, m.now + 17_002); // held by OTHER, unchanged for LEASE + DELAY
  const write = m.effect("write_lease");
  m.feed({ kind: "lease_written", decision: write.decision, record: rec(ME, "12"), sentAt: m.now });
  assert.equal(m.phase, "fencing");
  const term = m.effect("start_fence").term;
  m.feed({ kind: "control_read", control: { handover: HANDOVER } });
  assert.equal(m.phase, "fencing", "handed over before the fence proved anything");
  m.feed({ kind: "fence_done", term, previous: OTHER, outcome: { proven: true, how: "pod_gone" } });
  m.feed({ kind: "control_read", control: { handover: HANDOVER } });
  assert.ok(m.did.includes("report:handover_started"), JSON.stringify(m.did));
});

Deno.test("a standby shut down with its acquire in flight releases what that acquire won, clean", () => {
  // A scale-down deletes the leader and a standby at once: the standby may have answered the
  // leader's clean release with an acquire. Exiting before its answer would leave the Lease held
  // by a process that is gone, and every other replica would wait a whole term.
  const m = standby({ fence: true });
  m.feed({ kind: "tick" }, 1_000 + 17_002);
  const acquire = m.effect("write_lease");
  assert.equal(acquire.decision.kind, "acquire");
  m.feed({ kind: "shutdown" }, m.now + 10);
  assert.equal(m.phase, "releasing", "done now would leave the acquire's result behind");
  assert.deepEqual(m.did.filter((d) => !d.startsWith("report")), []);
  m.writtenCarrying(acquire, "12");
  const release = m.effect("release_lease");
  assert.equal(release.clean, true, "nothing was placed or signalled");
  assert.equal(release.record.resourceVersion, "12");
  assert.equal(release.fencePending?.holder, OTHER, "the obligation it took on is passed on");
  assert.ok(!m.did.some((d) => d.startsWith("place") || d.startsWith("signal")), m.did.join());
  m.feed({ kind: "lease_released", record: rec("", "13", { releasedBy: ME }), clean: true });
  assert.equal(m.phase, "done");
});

Deno.test("a standby shut down with its acquire in flight is done when the acquire loses", () => {
  const m = standby();
  m.feed({ kind: "lease_watched", observation: present(rec("", "11", { releasedBy: OTHER })) });
  const acquire = m.effect("write_lease");
  m.feed({ kind: "shutdown" }, m.now + 10);
  assert.equal(m.phase, "releasing");
  m.feed({ kind: "lease_write_failed", decision: acquire.decision, conflict: true, error: "409" });
  assert.equal(m.phase, "done");
  assert.ok(!m.did.includes("release:clean"), "it won nothing: nothing to release");
});

Deno.test("a standby shut down with no write in flight is done at once", () => {
  const m = standby();
  m.feed({ kind: "shutdown" }, m.now + 10);
  assert.equal(m.phase, "done");
});

Deno.test("a create won after shutdown passes its probation on with the release", () => {
  const m = standby({}, { kind: "absent" });
  const create = m.effect("write_lease");
  m.feed({ kind: "shutdown" }, m.now + 10);
  m.feed({
    kind: "lease_written",
    decision: create.decision,
    record: rec(ME, "11"),
    sentAt: m.now,
  });
  const release = m.effect("release_lease");
  // A deleted Lease's last holder may still forge: the successor waits out the rest.
  assert.equal(release.waitMs, 15_000 + 2_000, "LEASE_DURATION + ACQUIRE_DELAY");
});
