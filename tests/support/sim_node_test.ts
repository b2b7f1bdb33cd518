import assert from "node:assert/strict";
import { type CredentialTriple, validateCredentialSet } from "../../lib/cardano/cardano_keys.ts";

const LABELS = { kes: "kes.skey", vrf: "vrf.skey", opcert: "node.cert" };
import {
  forgingIntervals,
  type NodeRecord,
  nowMs,
  parseForgingRecords,
  readForgingRecords,
} from "./forging_log.ts";
import { makeCredentialSet, makePoolCredentials, writeCredentialSet } from "./keys.ts";
import { makeDecoyCredentials } from "../../lib/cardano/decoy_keys.ts";
import { startSimKesAgent } from "./sim_kes_agent.ts";
import { confirmForging } from "../../lib/forging/forging_confirmation.ts";
import { type NodeMetricsSample, readNodeMetrics } from "../../lib/node/node_metrics.ts";
import { parseSimNodeArgs } from "./sim_node.ts";
import { NETWORK_KES_TIMING, slotAt } from "../../lib/cardano/kes_period.ts";
import {
  catchesSignal,
  processName,
  type SimNode,
  type SimNodeOptions,
  socketAccepts,
  startSimNode,
} from "./sim_node_process.ts";
import { waitUntil } from "./wait.ts";

interface Fixture extends AsyncDisposable {
  dir: string;
  paths: CredentialTriple<string>;
  options: SimNodeOptions;
}

/** A temp dir with a valid credential set and the options to start a node on it. */
async function fixture(nonProducing: boolean): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "sim-node-test-" });
  const paths = await writeCredentialSet(dir, makeCredentialSet({ kesStartPeriod: 0 }));
  return {
    dir,
    paths,
    options: {
      kes: paths.kes,
      vrf: paths.vrf,
      cert: paths.opcert,
      socket: `${dir}/node.socket`,
      record: `${dir}/record.jsonl`,
      nonProducing,
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function records(node: SimNode): Promise<NodeRecord[]> {
  return parseForgingRecords(await Deno.readTextFile(node.record), "node");
}

/** Sends SIGHUP and waits for the outcome event; returns it and the signal-to-record latency. */
async function sighup(node: SimNode): Promise<{ outcome: NodeRecord; latencyMs: number }> {
  const before = (await records(node)).length;
  const sent = nowMs();
  await node.kill("SIGHUP");
  return await waitUntil("the node to record the outcome of a SIGHUP", async () => {
    const all = await records(node);
    const outcome = all.slice(before).find((r) => r.event !== "sighup");
    if (outcome === undefined) return undefined;
    const received = all.slice(before).find((r) => r.event === "sighup")!;
    return { outcome, latencyMs: received.t - sent };
  }, { timeoutMs: 10_000, intervalMs: 5 });
}

Deno.test("the simulated node runs as a process named exactly cardano-node", async () => {
  await using f = await fixture(true);
  await using node = await startSimNode(f.options);
  assert.equal(await processName(node.pid), "cardano-node");
  assert.ok(await catchesSignal(node.pid, 1), "handles SIGHUP once the socket is up");
  const exe = await Deno.readLink(`/proc/${node.pid}/exe`);
  assert.equal(exe, Deno.execPath(), "exe is still the Deno binary; only comm changes");
});

Deno.test("writes dummy credentials with mode 0600", async () => {
  await using f = await fixture(true);
  for (const path of Object.values(f.paths)) {
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600, path);
    assert.match(await Deno.readTextFile(path), /forge-manager test key, not a real key/);
  }
});

Deno.test("follows the real node's SIGHUP rules from a non-producing start", async () => {
  await using f = await fixture(true);
  await using node = await startSimNode(f.options);
  const [start] = await records(node);
  assert.equal(start!.event, "start");
  assert.equal(start!.forging, false);
  assert.equal(start!.pid, node.pid);

  const latencies: number[] = [];
  const step = async (expected: string, forging: boolean) => {
    const { outcome, latencyMs } = await sighup(node);
    latencies.push(latencyMs);
    assert.equal(outcome.event, expected, outcome.detail ?? "");
    assert.equal(outcome.forging, forging, outcome.detail ?? "");
    return outcome;
  };

  // Valid files: enable.
  const enabled = await step("enable", true);
  assert.match(enabled.detail!, /issue counter 0, KES start period 0/);

  // A half-written KES key keeps it forging, and the error never shows key material.
  const kesText = await Deno.readTextFile(f.paths.kes);
  await Deno.writeTextFile(f.paths.kes, kesText.slice(0, kesText.length / 2));
  const corrupt = await step("reconfigure_error", true);
  assert.match(corrupt.detail!, /Cannot use KES key .*kes\.skey: file is not valid JSON/);
  assert.doesNotMatch(corrupt.detail!.replaceAll(f.dir, "<dir>"), /[0-9a-f]{16}/);

  // A KES key that does not match the certificate keeps it forging too.
  await Deno.writeTextFile(f.paths.kes, makeCredentialSet().kes);
  const mismatch = await step("reconfigure_error", true);
  assert.match(mismatch.detail!, /KES key does not match the operational certificate's hot key/);

  // A credential path that cannot be read (a directory here) also keeps the state.
  await Deno.remove(f.paths.kes);
  await Deno.mkdir(f.paths.kes);
  const unreadable = await step("reconfigure_error", true);
  assert.match(unreadable.detail!, /Cannot read .*kes\.skey/);
  await Deno.remove(f.paths.kes);

  // The missing file (unlinked) disables.
  const disabled = await step("disable", false);
  assert.match(disabled.detail!, /does not exist: .*kes\.skey/);

  // Corrupt while disabled keeps it disabled.
  await Deno.writeTextFile(f.paths.kes, "{");
  await step("reconfigure_error", false);

  // A fresh complete set enables again.
  await writeCredentialSet(f.dir, makeCredentialSet({ counter: 1, kesStartPeriod: 868 }));
  const again = await step("enable", true);
  assert.match(again.detail!, /issue counter 1, KES start period 868/);

  await node.kill("SIGTERM");
  assert.equal((await node.exited).code, 0);
  const all = await records(node);
  assert.equal(all.at(-1)!.event, "exit");
  assert.equal(all.at(-1)!.forging, false);
  const intervals = forgingIntervals(all);
  assert.deepEqual(intervals.map((i) => i.endedBy), ["disable", "exit"]);
  for (const latency of latencies) assert.ok(latency < 1000, `SIGHUP handled in ${latency} ms`);
});

Deno.test("starts forging without the non-producing flag", async () => {
  await using f = await fixture(false);
  await using node = await startSimNode(f.options);
  const [start] = await records(node);
  assert.deepEqual([start!.event, start!.forging], ["start", true]);
  await node.kill("SIGKILL");
  await node.exited;
  const intervals = forgingIntervals(await readForgingRecords([node.record]));
  assert.equal(intervals.length, 1);
  assert.equal(intervals[0]!.endedBy, "killed");
});

Deno.test("accepts the pre-10.5.1 --non-producing-node flag", async () => {
  await using f = await fixture(true);
  await using node = await startSimNode({ ...f.options, legacyNonProducingFlag: true });
  const [start] = await records(node);
  assert.deepEqual([start!.event, start!.forging], ["start", false]);
});

Deno.test("refuses to start with unusable credentials, even when non-producing", async () => {
  const table: {
    name: string;
    breakIt: (paths: CredentialTriple<string>) => Promise<void>;
    stderr: RegExp;
  }[] = [
    {
      name: "missing KES key",
      breakIt: (p) => Deno.remove(p.kes),
      stderr: /credential file does not exist: .*kes\.skey/,
    },
    {
      name: "half-written certificate",
      breakIt: async (p) => await Deno.writeTextFile(p.opcert, '{"type": "NodeOpera'),
      stderr: /Cannot use operational certificate .*node\.cert: file is not valid JSON/,
    },
    {
      name: "KES key of another set",
      breakIt: (p) => Deno.writeTextFile(p.kes, makeCredentialSet().kes),
      stderr: /KES key does not match the operational certificate's hot key/,
    },
    {
      name: "VRF key readable by others",
      breakIt: (p) => Deno.chmod(p.vrf, 0o644),
      stderr: /VRF private key file .*vrf\.skey is readable by others \(mode 644\)/,
    },
  ];
  for (const { name, breakIt, stderr } of table) {
    await using f = await fixture(true);
    await breakIt(f.paths);
    await assert.rejects(startSimNode(f.options), (error: Error) => {
      assert.match(
        error.message,
        /exited with code 1 before its socket accepted a connection/,
        name,
      );
      assert.match(error.message, stderr, name);
      return true;
    });
    const all = parseForgingRecords(await Deno.readTextFile(f.options.record), "n");
    assert.deepEqual(all.map((r) => [r.event, r.forging]), [["exit", false]], name);
  }
});

Deno.test("group-readable VRF key is accepted (the real node only warns)", async () => {
  await using f = await fixture(true);
  await Deno.chmod(f.paths.vrf, 0o640);
  await using node = await startSimNode(f.options);
  assert.ok(await socketAccepts(node.socket));
});

Deno.test("replaces a stale socket file left by a crash", async () => {
  await using f = await fixture(true);
  const crashed = await startSimNode(f.options);
  await crashed.kill("SIGKILL");
  await crashed.exited;
  assert.ok((await Deno.lstat(f.options.socket)).isSocket, "the stale socket file remains");
  assert.equal(await socketAccepts(f.options.socket), false, "and refuses connections");
  await using node = await startSimNode(f.options);
  assert.ok(await socketAccepts(node.socket));
  const all = await records(node);
  assert.deepEqual(all.map((r) => [r.event, r.pid]), [
    ["start", crashed.pid],
    ["killed", crashed.pid],
    ["start", node.pid],
  ]);
});

Deno.test("SIGHUP during the simulated ledger replay changes nothing", async () => {
  await using f = await fixture(true);
  await using node = await startSimNode({ ...f.options, replayMs: 500, waitForSocket: false });
  // Signal only once the handler exists: before that SIGHUP's default action kills the process.
  const deadline = performance.now() + 30_000; // generous: a loaded CI machine starts Deno slowly
  const left = () => Math.max(0, deadline - performance.now());
  await waitUntil("a SIGHUP handler", () => catchesSignal(node.pid, 1), {
    timeoutMs: left(),
    intervalMs: 5,
  });
  await node.kill("SIGHUP");
  await waitUntil("the socket to open", () => socketAccepts(node.socket), {
    timeoutMs: left(),
    intervalMs: 10,
  });
  const all = await records(node);
  assert.deepEqual(all.map((r) => [r.event, r.forging]), [["sighup", false], ["start", false]]);
  assert.match(all[0]!.detail!, /not effective until consensus has started/);
});

Deno.test("with --shutdown-ms, SIGTERM ends forging only when the node exits, that long after", async () => {
  await using f = await fixture(false);
  await using node = await startSimNode({ ...f.options, shutdownMs: 700 });
  const sent = nowMs();
  await node.kill("SIGTERM");
  await node.exited;
  const all = await records(node);
  assert.deepEqual(all.map((r) => [r.event, r.forging]), [
    ["start", true],
    ["terminating", true],
    ["exit", false],
  ]);
  assert.ok(all[2]!.t - sent >= 700, `exited ${(all[2]!.t - sent).toFixed(0)} ms after SIGTERM`);
  const [interval] = forgingIntervals(all);
  assert.equal(interval!.end, all[2]!.t, "it forged until it exited");
});

Deno.test("parses the real node's command line", () => {
  const args = parseSimNodeArgs([
    "run",
    "--topology",
    "t.json",
    "--socket-path",
    "/ipc/node.socket",
    "--shelley-kes-key",
    "/k",
    "--shelley-vrf-key",
    "/v",
    "--shelley-operational-certificate",
    "/c",
    "--record",
    "/r",
    "--non-producing-node",
  ]);
  assert.deepEqual(args, {
    socketPath: "/ipc/node.socket",
    credentials: { kes: "/k", vrf: "/v", opcert: "/c" },
    kesAgentSocket: undefined,
    poolId: undefined,
    record: "/r",
    nonProducing: true,
    replayMs: 0,
    metrics: undefined,
    shutdownMs: 0,
  });
  assert.throws(() => parseSimNodeArgs(["--socket-path"]), /--socket-path needs a value/);
  assert.throws(() => parseSimNodeArgs(["--bogus", "x"]), /unknown flag --bogus/);
  assert.throws(
    () => parseSimNodeArgs(["--socket-path", "s"]),
    /missing --record, --shelley-kes-key, --shelley-vrf-key, --shelley-operational-certificate/,
  );
  // With a KES agent (cardano-node 10.7.1+) the KES key is no file; the pool is sim only.
  const agent = ["--socket-path", "s", "--record", "r", "--shelley-vrf-key", "/v"];
  const withAgent = parseSimNodeArgs([
    ...agent,
    "--shelley-operational-certificate",
    "/c",
    "--shelley-kes-agent-socket",
    "/a",
    "--pool-id",
    "ab".repeat(28),
  ]);
  assert.deepEqual(withAgent.credentials, { vrf: "/v", opcert: "/c" });
  assert.equal(withAgent.kesAgentSocket, "/a");
  assert.equal(withAgent.poolId, "ab".repeat(28));
  assert.throws(
    () =>
      parseSimNodeArgs([...agent, "--shelley-kes-agent-socket", "/a", "--shelley-kes-key", "/k"]),
    /give --shelley-kes-key or --shelley-kes-agent-socket, not both/,
  );
  assert.throws(
    () => parseSimNodeArgs([...agent, "--pool-id", "pool1xyz"]),
    /--pool-id is pool1xyz, expected 56 hex digits/,
  );
});

// ---- the metrics endpoint ---------------------------------------------------------------------

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Two readings of the node's metrics: one now, one once the tip has advanced at least `slots`
 * slots (polled, so a loaded machine only makes it slower, never wrong).
 */
async function sampleMetrics(port: number, slots = 10): Promise<NodeMetricsSample[]> {
  const read = async () => {
    const result = await readNodeMetrics(`http://127.0.0.1:${port}/metrics`);
    if (!result.ok) throw new Error(result.error);
    return result.sample;
  };
  const first = await read();
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 30));
    const last = await read();
    if (last.slotNum! - first.slotNum! >= slots) return [first, last];
  }
  throw new Error(`the simulated tip did not advance ${slots} slots within 10 s`);
}

/** A non-producing node serving metrics with 10 ms slots, and a way to signal it. */
async function metricsNode(options: Partial<SimNodeOptions> = {}) {
  const f = await fixture(true);
  const port = freePort();
  const node = await startSimNode({ ...f.options, metricsPort: port, slotMs: 10, ...options });
  return {
    f,
    port,
    node,
    sighup: (node: SimNode) => sighup(node),
    async [Symbol.asyncDispose]() {
      await node[Symbol.asyncDispose]();
      await f[Symbol.asyncDispose]();
    },
  };
}

Deno.test("serves the forging series, which a truthful node moves as it forges", async () => {
  await using n = await metricsNode({ leaderEvery: 4, kesPeriod: 10 });
  const idle = await sampleMetrics(n.port);
  assert.equal(idle[1]!.forgingEnabled, 0);
  assert.equal(idle[1]!.currentKESPeriod, undefined, "no KES gauges before forging");
  assert.equal(idle[1]!.aboutToLead, undefined);
  assert.ok(idle[1]!.slotNum! > idle[0]!.slotNum!, "the tip advances");
  assert.equal(confirmForging(false, idle).state, "confirmed");

  assert.equal((await n.sighup(n.node)).outcome.event, "enable");
  const forging = await sampleMetrics(n.port);
  assert.equal(forging[1]!.forgingEnabled, 1);
  assert.equal(forging[1]!.currentKESPeriod, 10);
  assert.equal(forging[1]!.opcertStartKESPeriod, 0);
  assert.equal(forging[1]!.remainingKESPeriods, 52);
  assert.ok(forging[1]!.aboutToLead! > (forging[0]!.aboutToLead ?? 0), "a check every slot");
  assert.ok(forging[1]!.forged! > 0, "leads and forges every 4th slot");
  assert.equal(confirmForging(true, forging).state, "confirmed");

  await Deno.remove(n.f.paths.kes);
  assert.equal((await n.sighup(n.node)).outcome.event, "disable");
  const stopped = await sampleMetrics(n.port);
  assert.equal(stopped[1]!.forgingEnabled, 0);
  assert.equal(stopped[1]!.currentKESPeriod, 10, "the KES gauges stay behind (#5751)");
  assert.equal(stopped[1]!.aboutToLead, stopped[0]!.aboutToLead, "no more checks");
  assert.equal(confirmForging(false, stopped).state, "confirmed");
});

Deno.test("serves the known-wrong variants, and the cross-check still tells", async () => {
  // A gauge that reads 1 in non-producing mode (#6113, #6576): the gauge alone would lie.
  await using one = await metricsNode({ forgingGauge: "always-one" });
  const lying = await sampleMetrics(one.port);
  assert.equal(lying[1]!.forgingEnabled, 1);
  const judged = confirmForging(false, lying);
  assert.equal(judged.state, "confirmed", judged.why);
  assert.match(judged.why, /known-wrong gauge/);

  // A gauge stuck at its start value after SIGHUP (#5751): forging, but it reads 0.
  await using stale = await metricsNode({ forgingGauge: "stale", metricsNaming: "new" });
  assert.equal((await stale.sighup(stale.node)).outcome.event, "enable");
  const stuck = await sampleMetrics(stale.port);
  assert.equal(stuck[1]!.forgingEnabled, 0);
  assert.ok(
    stuck[1]!.aboutToLead! > (stuck[0]!.aboutToLead ?? 0),
    "read from the _counter spelling",
  );
  const forging = confirmForging(true, stuck);
  assert.equal(forging.state, "confirmed", forging.why);
  assert.match(forging.why, /stale gauge/);

  // 11.0.1 started non-producing (#6576): gauge 1 and leadership checks while it does not forge.
  await using idle = await metricsNode({ forgingGauge: "always-one", checksWhenIdle: true });
  await idle.sighup(idle.node); // enable, so the KES gauges exist as on a real block producer
  await Deno.remove(idle.f.paths.kes);
  await idle.sighup(idle.node); // disable: now it must not forge
  const wrong = confirmForging(false, await sampleMetrics(idle.port));
  assert.equal(wrong.state, "mismatch", wrong.why);
  assert.match(wrong.why, /#6576/);
});

// ---- pools without stake (the sidecar's decoys), and a KES agent ----------------------------

/** Replaces the files in `dir` by `set` (each by rename, as the sidecar writes them). */
async function place(dir: string, set: { kes?: string; vrf: string; opcert: string }) {
  for (
    const [name, text] of [["kes.skey", set.kes], ["vrf.skey", set.vrf], ["node.cert", set.opcert]]
  ) {
    if (text === undefined) continue;
    await Deno.writeTextFile(`${dir}/.${name}.tmp`, text, { mode: 0o600 });
    await Deno.rename(`${dir}/.${name}.tmp`, `${dir}/${name}`);
  }
}

Deno.test("decoys boot the node and load on SIGHUP, but a pool without stake never forges", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sim-node-decoys-" });
  try {
    const pool = makePoolCredentials({ kesStartPeriod: 0 });
    const decoys = makeDecoyCredentials({ kesStartPeriod: 0 });
    const paths = await writeCredentialSet(dir, { ...decoys, kes: decoys.kes! });
    const port = freePort();
    await using node = await startSimNode({
      kes: paths.kes,
      vrf: paths.vrf,
      cert: paths.opcert,
      socket: `${dir}/node.socket`,
      record: `${dir}/record.jsonl`,
      nonProducing: true,
      poolId: pool.cold.poolId,
      metricsPort: port,
      slotMs: 10,
      leaderEvery: 2,
    });
    const start = (await records(node))[0]!;
    assert.equal(start.event, "start");
    assert.match(start.detail!, new RegExp(`pool ${decoys.poolId}, which has no stake`));

    // A SIGHUP with the decoys in place: loaded (the loop runs), never leading.
    let { outcome } = await sighup(node);
    assert.equal(outcome.event, "enable_no_stake");
    assert.equal(outcome.forging, false);
    const [a, b] = await sampleMetrics(port);
    assert.ok(b!.aboutToLead! > (a!.aboutToLead ?? 0), "the forging loop runs on the decoys");
    assert.equal(b!.nodeIsLeader, undefined, "a pool without stake led a slot");
    assert.equal(b!.forged, undefined);

    // The pool's keys over the decoys: forging for the pool.
    await place(dir, pool.set);
    ({ outcome } = await sighup(node));
    assert.deepEqual([outcome.event, outcome.forging], ["enable", true]);
    // Decoys back over them (nothing of ours does this without an unlink first): no longer ours.
    await place(dir, { ...decoys, kes: decoys.kes! });
    ({ outcome } = await sighup(node));
    assert.deepEqual([outcome.event, outcome.forging], ["enable_no_stake", false]);
    await Deno.remove(paths.vrf);
    ({ outcome } = await sighup(node));
    assert.deepEqual([outcome.event, outcome.forging], ["disable", false]);
    const intervals = forgingIntervals(await records(node));
    assert.equal(intervals.length, 1, "forged other than with the pool's keys");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with a KES agent the node forges only with the files and the agent's key for the certificate", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sim-node-agent-" });
  try {
    const pool = makePoolCredentials({ kesStartPeriod: 0 });
    const { kes: _kes, ...files } = pool.set;
    const paths = await writeCredentialSet(dir, { ...pool.set, kes: "never read" });
    await Deno.remove(paths.kes); // no KES key file at all
    const socket = `${dir}/agent.socket`;
    const options: SimNodeOptions = {
      vrf: paths.vrf,
      cert: paths.opcert,
      kesAgentSocket: socket,
      socket: `${dir}/node.socket`,
      record: `${dir}/record.jsonl`,
      nonProducing: true,
      poolId: pool.cold.poolId,
    };
    // Without the certificate it does not start, agent or not.
    await Deno.rename(paths.opcert, `${dir}/cert.away`);
    await assert.rejects(() => startSimNode(options), /credential file does not exist/);
    await Deno.rename(`${dir}/cert.away`, paths.opcert);

    // The agent is not there yet: the node starts, and enabling cannot forge without the key.
    await using node = await startSimNode(options);
    let { outcome } = await sighup(node);
    assert.equal(outcome.event, "enable");
    assert.equal(outcome.forging, false);
    assert.match(outcome.detail!, /no KES key from the agent/);

    /** Waits for the node's record of what the agent gave it, and what that means for forging. */
    const agentGave = async (key: "the pool's" | "another" | "none", forging: boolean) => {
      const id = key === "none" ? undefined : key === "another" ? other : poolKey;
      await waitUntil(`the node to record ${key} key from the agent`, async () => {
        const last = (await records(node)).at(-1)!;
        const detail = id === undefined ? "no KES key" : `KES key ${id}`;
        return last.event === "agent_key" && last.detail === detail && last.forging === forging;
      }, 10_000);
    };
    const otherSet = makeCredentialSet();
    const other = validateCredentialSet(otherSet, LABELS).hotKeyId;
    const poolKey = validateCredentialSet(pool.set, LABELS).hotKeyId;
    // The agent comes with the certificate's key: forging. Dropped: not. Another key: not.
    await using agent = startSimKesAgent({ socket, kes: pool.set.kes });
    await agentGave("the pool's", true);
    agent.drop();
    await agentGave("none", false);
    agent.install(otherSet.kes);
    await agentGave("another", false);
    agent.install(pool.set.kes);
    await agentGave("the pool's", true);

    // Removing the certificate (or the VRF key) disables forging, the agent's key or not.
    await Deno.remove(paths.opcert);
    ({ outcome } = await sighup(node));
    assert.deepEqual([outcome.event, outcome.forging], ["disable", false]);
    await place(dir, files);
    ({ outcome } = await sighup(node));
    assert.deepEqual([outcome.event, outcome.forging], ["enable", true]);
    await Deno.remove(paths.vrf);
    ({ outcome } = await sighup(node));
    assert.deepEqual([outcome.event, outcome.forging], ["disable", false]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("on the chain's clock the tip follows the wall clock's slot, lags as told, and scheduled slots are forged only while forging", async () => {
  const timing = NETWORK_KES_TIMING.preview;
  const wallSlot = () => slotAt(timing, Date.now());
  await using f = await fixture(true);
  const lagFile = `${f.dir}/lag`;
  const slotsFile = `${f.dir}/slots`;
  const first = wallSlot() + 2;
  await Deno.writeTextFile(slotsFile, `${first}\n`);
  await using n = await metricsNode({ network: "preview", lagFile, leaderSlotsFile: slotsFile });
  const tip = async () => {
    const read = await readNodeMetrics(`http://127.0.0.1:${n.port}/metrics`);
    if (!read.ok) throw new Error(read.error);
    return read.sample.slotNum!;
  };
  const before = wallSlot();
  const synced = await tip();
  assert.ok(synced >= before && synced <= wallSlot(), `tip ${synced}, wall slot ${before}`);
  await Deno.writeTextFile(lagFile, "50\n");
  const lagging = await tip();
  assert.ok(
    wallSlot() - lagging >= 50 && wallSlot() - lagging <= 51,
    `lag ${wallSlot() - lagging}`,
  );
  // Not forging (non-producing): the scheduled slot passes without a block.
  await waitUntil("the first scheduled slot to pass", () => wallSlot() > first, 10_000);
  await new Promise((resolve) => setTimeout(resolve, 200)); // the node's tick after it
  const forged = async () => (await records(n.node)).filter((r) => r.event === "forged");
  assert.deepEqual(await forged(), []);
  assert.equal((await n.sighup(n.node)).outcome.event, "enable");
  const next = wallSlot() + 2; // the file is written well before it begins
  await Deno.writeTextFile(slotsFile, `${first}\n${next}\n`);
  const done = await waitUntil("the forged slot's record", async () => {
    const all = await forged();
    return all.length > 0 ? all : undefined;
  }, 10_000);
  assert.deepEqual(done.map((r) => [(r as NodeRecord & { slot?: number }).slot, r.forging]), [
    [next, true],
  ]);
  assert.throws(() => parseSimNodeArgs(["--network", "testnet"]), /--network is testnet/);
});
