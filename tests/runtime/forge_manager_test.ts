/**
 * The ForgeManager loop in-process, in virtual time: real credential files in a temp dir
 * (FileCredentialStore), real metrics, the shortest timings the config accepts
 * (LEASE_DURATION=2, RENEW_DEADLINE=1, ACQUIRE_DELAY=2, SLEEP_INTERVAL=0.2: the leader renews
 * every 200 ms), and small fakes for the Lease, the node, the status, the fence and the socket
 * (tests/support/fakes.ts). Time moves only through `h.run(ms)` and `h.until(...)`
 * (tests/support/virtual_clock.ts), which fire the loop's timers in order and let its real I/O
 * settle between them; no test waits for real time to pass.
 */

import assert from "node:assert/strict";
import type { CredentialName } from "../../lib/core/config.ts";
import { type Config, parseConfig } from "../../lib/core/config.ts";
import { FileCredentialStore } from "../../lib/node/credentials.ts";
import { type DecoyCredentials, makeDecoyCredentials } from "../../lib/cardano/decoy_keys.ts";
import { ForgeManager } from "../../lib/runtime/forge_manager.ts";
import { createHandler } from "../../lib/runtime/http_handler.ts";
import { createMetrics, type Metrics } from "../../lib/runtime/metrics.ts";
import type { NodeInfo, SignalFailure } from "../../lib/core/node_process.ts";
import {
  ControlledFence,
  FakeGuard,
  FakeLeaseStore,
  FakeNode,
  type HangupRecord,
  Journal,
  type RecordFields,
  recordingLogger,
  RecordingStatus,
} from "../support/fakes.ts";
import { VirtualClock } from "../support/virtual_clock.ts";
import {
  cborHexOf,
  type CredentialSet,
  makeCredentialSet,
  writeCredentialSet,
} from "../support/keys.ts";

const POD = "producer-0";
const IDENTITY = `${POD}_self`;
const OTHER = "producer-1_other";
const NODE: NodeInfo = { pid: 4242, startTicks: 1000, nonProducing: true };
const NAMES: readonly CredentialName[] = ["kes", "vrf", "opcert"];
/** Another replica holds the lease and has just renewed it. */
const HELD_BY_OTHER: RecordFields = {
  holder: OTHER,
  durationMs: 2000,
  transitions: 3,
  holderPodUid: "uid-1",
};

interface Options {
  /** The Lease at start (default: held by another replica); "absent" for none. */
  lease?: RecordFields | "absent";
  /** The node at start (default: NODE); null for none running. */
  node?: NodeInfo | null;
  /** The source files (default: a fresh valid set). */
  sources?: CredentialSet;
  /** Extra environment for parseConfig. */
  env?: Record<string, string>;
  /** Inject a fence. */
  fence?: boolean;
  /** Inject a guard (and set GUARD_SOCKET). */
  guard?: boolean;
  /** Enable the socket check, with this first answer. */
  socketAccepts?: boolean;
  clock?: VirtualClock;
}

/** One ForgeManager with its fakes, over a temp dir; `start()` runs it, disposal stops it. */
class Harness implements AsyncDisposable {
  readonly abort = new AbortController();
  readonly journal: Journal;
  readonly store: FakeLeaseStore;
  readonly node: FakeNode;
  readonly status: RecordingStatus;
  readonly fence: ControlledFence | undefined;
  readonly guard: FakeGuard | undefined;
  readonly metrics: Metrics;
  readonly lines: Record<string, unknown>[];
  readonly manager: ForgeManager;
  readonly socket: { accepts: boolean };
  /** The decoy set the store places (with the default DECOY_CREDENTIALS=true), as the worker's. */
  readonly decoys: DecoyCredentials | undefined;
  #run: Promise<void> | undefined;
  runError: unknown;

  constructor(
    readonly dir: string,
    readonly config: Config,
    readonly sources: CredentialSet,
    readonly clock: VirtualClock,
    opts: Options,
  ) {
    this.journal = new Journal(clock);
    this.decoys = config.decoys
      ? makeDecoyCredentials({ kesStartPeriod: 0, withKes: config.credentials.kes !== undefined })
      : undefined;
    this.store = new FakeLeaseStore(
      this.journal,
      opts.lease === "absent" ? undefined : opts.lease ?? HELD_BY_OTHER,
    );
    this.node = new FakeNode(
      this.journal,
      NAMES.map((n) => config.credentials[n]!.target),
      opts.node === null ? undefined : opts.node ?? NODE,
    );
    this.status = new RecordingStatus(this.journal);
    this.fence = opts.fence ? new ControlledFence(this.journal) : undefined;
    this.guard = opts.guard ? new FakeGuard(this.journal) : undefined;
    this.socket = { accepts: opts.socketAccepts ?? true };
    const { log, lines } = recordingLogger();
    this.lines = lines;
    const holder: { manager?: ForgeManager } = {};
    this.metrics = createMetrics({
      version: "test",
      pod: POD,
      namespace: config.namespace,
      lease: config.leaseName,
      identity: IDENTITY,
      lastRenewAt: () => holder.manager?.lastRenewWall,
    });
    this.manager = new ForgeManager({
      config,
      identity: IDENTITY,
      clock,
      log,
      metrics: this.metrics,
      leases: this.store,
      credentials: new FileCredentialStore(config.credentials, (operation, file) => {
        this.metrics.credentialOperations.inc({ operation, file });
        this.journal.add(`credential_${operation}`, { file });
      }, { decoys: this.decoys }),
      node: this.node,
      socketAccepts: () => Promise.resolve(this.socket.accepts),
      status: this.status,
      fence: this.fence,
      guard: this.guard,
    });
    holder.manager = this.manager;
  }

  get ipc(): string {
    return `${this.dir}/ipc`;
  }

  start(): void {
    this.#run = this.manager.run(this.abort.signal).catch((err) => {
      this.runError = err;
    });
  }

  /** A planned shutdown: abort the signal and wait for run() to return. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.#run;
  }

  /** The other replica hands the lease over cleanly (a marked release). */
  handOver(): void {
    this.store.edit({ holder: "", durationMs: 1000, releasedBy: OTHER, holderPodUid: undefined });
  }

  /** Standby, then a clean handover: resolves once forging (keys placed, node signalled). */
  async becomeForger(): Promise<void> {
    await this.until("standing by with the lease read", () => this.manager.ready());
    this.handOver();
    await this.until("forging", () => this.manager.forging);
  }

  /** How many of the three target files hold the pool's keys (decoys do not count). */
  async keysOnDisk(): Promise<number> {
    let n = 0;
    for (const name of NAMES) {
      const text = await Deno.readTextFile(this.config.credentials[name]!.target).catch(() => "");
      if (text === this.sources[name]) n++;
    }
    return n;
  }

  /** The value of a metric (summed over the series matching `labels`); 0 when none. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = this.metrics.registry.getSingleMetric(name);
    assert.ok(metric !== undefined, `no metric ${name}`);
    const { values } = await metric.get();
    return values
      .filter((v) =>
        Object.entries(labels).every(([key, value]) =>
          (v.labels as Record<string, unknown>)[key] === value
        )
      )
      .reduce((sum, v) => sum + v.value, 0);
  }

  /** The log lines whose msg starts with `prefix`. */
  logged(prefix: string): Record<string, unknown>[] {
    return this.lines.filter((l) => String(l.msg).startsWith(prefix));
  }

  /** Lets the loop and its effects finish what they can without time passing. */
  async settle(): Promise<void> {
    let quiet = 0;
    for (let i = 0; i < 5000 && quiet < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      quiet = this.manager.idle() ? quiet + 1 : 0;
    }
  }

  /** Lets `ms` of virtual time pass, the loop's timers firing on the way. */
  async run(ms: number): Promise<void> {
    await this.clock.advance(ms, () => this.settle());
    if (this.runError !== undefined) throw this.runError;
  }

  /**
   * Moves virtual time from timer to timer until `condition` holds; fails naming `what` when it
   * does not within `withinMs` of virtual time.
   */
  async until(
    what: string,
    condition: () => boolean | Promise<boolean>,
    withinMs = 2000,
  ): Promise<void> {
    const end = this.clock.monotonic() + withinMs;
    await this.settle();
    while (!(await condition())) {
      if (this.runError !== undefined) throw this.runError;
      const next = this.clock.nextAt;
      if (next === undefined || next > end) {
        assert.fail(`not within ${withinMs} ms of virtual time: ${what}`);
      }
      await this.clock.advance(Math.max(0, next - this.clock.monotonic()), () => this.settle());
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.status.reportMode = "ok";
    this.status.eventMode = "ok";
    this.status.unhang();
    this.store.faults = {};
    this.store.unhang();
    this.abort.abort();
    await this.#run;
    this.fence?.settle({ proven: false, why: "test over" });
    await Deno.remove(this.dir, { recursive: true });
    if (this.runError !== undefined) throw this.runError;
  }
}

/** Builds a harness over a fresh temp dir (`secrets/` holds the sources, `ipc/` the targets). */
async function harness(opts: Options = {}): Promise<Harness> {
  const dir = await Deno.makeTempDir({ prefix: "forge-manager-test-" });
  await Deno.mkdir(`${dir}/secrets`);
  await Deno.mkdir(`${dir}/ipc`);
  const sources = opts.sources ?? makeCredentialSet({ counter: 5 });
  await writeCredentialSet(`${dir}/secrets`, sources);
  const config = parseConfig({
    POD_NAME: POD,
    POD_UID: "uid-0",
    LEASE_DURATION: "2",
    RENEW_DEADLINE: "1",
    ACQUIRE_DELAY: "2",
    SLEEP_INTERVAL: "0.2",
    SOURCE_KES_KEY: `${dir}/secrets/kes.skey`,
    SOURCE_VRF_KEY: `${dir}/secrets/vrf.skey`,
    SOURCE_OP_CERT: `${dir}/secrets/node.cert`,
    TARGET_KES_KEY: `${dir}/ipc/kes.skey`,
    TARGET_VRF_KEY: `${dir}/ipc/vrf.skey`,
    TARGET_OP_CERT: `${dir}/ipc/node.cert`,
    NODE_SOCKET: `${dir}/ipc/node.socket`,
    DISABLE_SOCKET_CHECK: opts.socketAccepts === undefined ? "true" : "false",
    SOCKET_WAIT_TIMEOUT: "5",
    ...(opts.guard ? { GUARD_SOCKET: `${dir}/guard.sock`, GUARD_REACTION: "0.5" } : {}),
    ...opts.env,
  });
  return new Harness(dir, config, sources, opts.clock ?? new VirtualClock(), opts);
}

/** The first hangup after index `from` matching `match`. */
function hangupAfter(
  h: Harness,
  from: number,
  match: (r: HangupRecord) => boolean = () => true,
): HangupRecord | undefined {
  return h.node.hangups.slice(from).find(match);
}

// ---- acquiring and forging --------------------------------------------------------------------

Deno.test("a single manager creates the lease at once, waits out its probation, then places the keys and signals once", async () => {
  const clock = new VirtualClock();
  await using h = await harness({ lease: "absent", clock });
  h.start();
  const startedAt = clock.monotonic();
  // An absent Lease is created at once: the create's probation is the one wait (README).
  await h.until("the create", () => h.store.callsOf("create").some((c) => c.outcome === "ok"));
  const created = h.store.callsOf("create")[0]!;
  assert.ok(created.at - startedAt < 100, `created ${created.at - startedAt} ms after start`);
  assert.equal(h.store.record?.holder, IDENTITY);
  assert.equal(h.store.record?.holderPodUid, "uid-0");
  assert.equal(await h.metric("cardano_leader_status", { pod: POD }), 1);
  // Probation: it holds and renews, but may forge only LEASE_DURATION + ACQUIRE_DELAY after.
  await h.until("3.5 s of probation", () => clock.monotonic() >= created.doneAt! + 3500, 5000);
  assert.equal(h.manager.forging, false);
  assert.equal(await h.keysOnDisk(), 0);
  assert.ok(h.store.callsOf("renew").filter((c) => c.outcome === "ok").length >= 10);

  await h.until("forging", () => h.manager.forging, 1500);
  const promote = h.node.delivered.at(-1)!;
  assert.ok(promote.at >= created.doneAt! + 4000, "forged before the probation ended");
  assert.ok(promote.at <= created.doneAt! + 4000 + 300, "forged late after the probation");
  assert.equal(promote.keysPresent, 3, "signalled before all three files were in place");
  for (const name of NAMES) {
    const target = h.config.credentials[name]!.target;
    assert.equal(await Deno.readTextFile(target), h.sources[name], name);
    assert.equal((await Deno.stat(target)).mode! & 0o777, 0o600, `${name} mode`);
  }
  await h.run(600); // three more renewals
  // Startup: the decoys placed for the node's boot, removed, signalled (the promotion came before
  // they were due again). Then the promotion: the three files written, then exactly one SIGHUP.
  assert.deepEqual(
    h.journal.sequence("credential_write", "credential_decoy", "credential_remove", "hangup"),
    [
      ...["credential_decoy", "credential_decoy", "credential_decoy"],
      ...["credential_remove", "credential_remove", "credential_remove", "hangup"],
      ...["credential_write", "credential_write", "credential_write", "hangup"],
    ],
  );
  assert.deepEqual(h.node.hangups.map((r) => r.keysPresent), [0, 3]);
  assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "promote" }), 1);
  assert.equal(await h.metric("cardano_forging_enabled", { pod: POD }), 1);
  assert.equal(await h.metric("cardano_leader_status", { pod: POD }), 1);
  assert.equal(await h.metric("cardano_leadership_changes_total"), 1);
});

Deno.test("a standby at startup removes the keys its pod still has and signals its node once", async () => {
  await using h = await harness({ env: { START_AS_NON_PRODUCING: "false" } });
  await writeCredentialSet(h.ipc, h.sources); // left by an earlier leader in this pod
  assert.equal(await h.keysOnDisk(), 3);
  h.start();
  await h.until("the lease read", () => h.manager.ready());
  await h.run(600); // three node checks and polls

  assert.equal(await h.keysOnDisk(), 0);
  assert.deepEqual(h.node.hangups.map((r) => [r.pid, r.keysPresent, r.outcome]), [
    [NODE.pid, 0, "ok"],
  ]);
  assert.deepEqual(h.journal.sequence("credential_remove", "hangup"), [
    "credential_remove",
    "credential_remove",
    "credential_remove",
    "hangup",
  ]);
  assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "startup" }), 1);
  assert.equal(await h.metric("cardano_forging_enabled", { pod: POD }), 0);
  assert.equal(await h.metric("cardano_leader_status", { pod: POD }), 0);
  assert.equal(h.store.callsOf("create", "acquire", "renew").length, 0, "claimed a held lease");
});

Deno.test("a demoted leader unlinks the keys before it signals the node", async () => {
  await using h = await harness();
  h.start();
  await h.becomeForger();
  const before = h.node.hangups.length;
  h.store.edit({ holder: "producer-2_thief" }); // someone else wrote the lease

  await h.until("forging stopped", () => !h.manager.forging && h.node.hangups.length > before);
  const stop = h.node.hangups[before]!;
  assert.equal(stop.keysPresent, 0, "the node was signalled while the keys were still on disk");
  assert.equal(stop.outcome, "ok");
  assert.equal(await h.keysOnDisk(), 0);
  assert.equal(await h.metric("forge_manager_demotions_total", { reason: "lease_taken" }), 1);
  assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "lease_taken" }), 1);
  assert.equal(await h.metric("cardano_forging_enabled", { pod: POD }), 0);
  assert.equal(await h.metric("cardano_leader_status", { pod: POD }), 0);
  assert.equal(h.store.callsOf("release").length, 0, "released a lease someone else holds");
});

// ---- the renew deadline -----------------------------------------------------------------------

/** Forges, then makes every claim hang; returns the stop and the deadline it must meet. */
async function hangRenewals(h: Harness): Promise<{ stop: HangupRecord; deadline: number }> {
  await h.becomeForger();
  await h.run(450); // a couple of renewals
  const before = h.node.hangups.length;
  h.store.faults.claim = "hang";
  await h.until(
    "forging stopped",
    () => h.node.hangups.length > before && !h.manager.forging,
    3000,
  );
  const stop = h.node.hangups[before]!;
  const renewed = h.store.callsOf("acquire", "renew").filter((c) => c.outcome === "ok").at(-1)!;
  // The manager takes its send time just before the request reaches the store.
  return { stop, deadline: renewed.at + h.config.renewDeadlineMs };
}

Deno.test("when renewals hang, the watchdog stops forging by the renew deadline", async () => {
  await using h = await harness();
  h.start();
  const { stop, deadline } = await hangRenewals(h);

  assert.ok(stop.at <= deadline + 100, `stopped ${stop.at - deadline} ms after the deadline`);
  assert.ok(stop.at >= deadline - 20, `stopped ${deadline - stop.at} ms before the deadline`);
  assert.equal(stop.keysPresent, 0);
  assert.equal(h.store.hanging, 1, "the stop waited for the hung request");
  const hung = h.store.calls.find((c) => c.outcome === "pending")!;
  assert.ok(hung.timeoutMs <= deadline - hung.at + 1, "a renew may not outlive the term");
  assert.equal(await h.keysOnDisk(), 0);
  assert.equal(await h.metric("forge_manager_demotions_total", { reason: "renew_deadline" }), 1);
  assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "renew_deadline" }), 1);
  assert.equal(await h.metric("cardano_forging_enabled", { pod: POD }), 0);
  assert.equal(await h.metric("cardano_leader_status", { pod: POD }), 0);
});

Deno.test("the watchdog stops forging even when its timer wakes before the deadline", async () => {
  // A clock 0.5 % slower than the timers: the watchdog's timer fires 5 ms "early" by the clock
  // that judges the term, as a timer truncated to whole milliseconds does by up to 1 ms.
  await using h = await harness({ clock: new VirtualClock({ timersEarly: 0.005 }) });
  h.start();
  const { stop, deadline } = await hangRenewals(h);

  assert.ok(stop.at <= deadline + 100, `stopped ${stop.at - deadline} ms after the deadline`);
  assert.equal(stop.keysPresent, 0);
  assert.equal(h.store.hanging, 1, "the stop waited for the hung request");
});

// ---- planned shutdown and stepping aside ------------------------------------------------------

Deno.test("a planned shutdown unlinks the keys, signals the node, then releases the lease marked clean", async () => {
  await using h = await harness();
  h.start();
  await h.becomeForger();
  const from = h.journal.entries.length;
  await h.stop();

  const after = h.journal.entries.slice(from).map((e) => e.what)
    .filter((w) => ["credential_remove", "hangup", "release"].includes(w));
  assert.deepEqual(after, [
    "credential_remove",
    "credential_remove",
    "credential_remove",
    "hangup",
    "release",
  ]);
  assert.equal(h.node.hangups.at(-1)!.keysPresent, 0);
  const release = h.store.callsOf("release")[0]!;
  assert.equal(release.clean, true);
  assert.equal(release.outcome, "ok");
  assert.equal(h.store.record?.holder, "");
  assert.equal(h.store.record?.releasedBy, IDENTITY);
  assert.equal(await h.metric("forge_manager_demotions_total", { reason: "shutdown" }), 1);
  assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "shutdown" }), 1);
  assert.equal(await h.metric("cardano_forging_enabled", { pod: POD }), 0);
  assert.equal(await h.metric("cardano_leader_status", { pod: POD }), 0);
});

for (
  const [reason, clean] of [
    ["not_found", true],
    ["replaced", true],
    ["refused", false],
    ["error", false],
  ] as [SignalFailure, boolean][]
) {
  Deno.test(`a shutdown whose SIGHUP fails with ${reason} releases ${clean ? "clean" : "NOT clean"}`, async () => {
    await using h = await harness();
    h.start();
    await h.becomeForger();
    h.node.failNext.push(reason); // e.g. not_found: the node exited first (native sidecar order)
    await h.stop();

    assert.equal(await h.keysOnDisk(), 0);
    assert.equal(h.store.callsOf("release")[0]?.clean, clean);
    assert.equal(h.store.record?.releasedBy, clean ? IDENTITY : undefined);
    assert.equal(await h.metric("forge_manager_signal_failures_total", { reason }), 1);
    assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "shutdown" }), 0);
    assert.equal(await h.metric("cardano_forging_enabled", { pod: POD }), 0);
  });
}

Deno.test("a refused SIGHUP on promotion is counted, never counts as forging, and the leader steps aside without a clean release", async () => {
  await using h = await harness();
  h.start();
  await h.until("the lease read", () => h.manager.ready());
  h.node.refuse = "refused";
  h.handOver();

  await h.until("the release", () => h.store.callsOf("release").length > 0);
  assert.equal(h.manager.forging, false);
  assert.equal(h.logged("forging enabled").length, 0);
  assert.equal(await h.metric("cardano_forging_enabled", { pod: POD }), 0);
  assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "promote" }), 0);
  // The promotion's SIGHUP and the stop's SIGHUP were both refused.
  assert.equal(await h.metric("forge_manager_signal_failures_total", { reason: "refused" }), 2);
  assert.equal(await h.keysOnDisk(), 0, "the keys placed for the promotion stayed on disk");
  assert.equal(h.store.callsOf("release")[0]!.clean, false, "an unconfirmed stop released clean");
  assert.equal(h.store.record?.holder, "");
  assert.equal(h.store.record?.releasedBy, undefined);
  assert.equal(await h.metric("forge_manager_demotions_total", { reason: "cannot_forge" }), 1);
  assert.equal(await h.metric("cardano_leader_status", { pod: POD }), 0);
  const aside = h.logged("stepping aside");
  assert.equal(aside.length, 1);
  assert.equal(aside[0]!.reason, "cannot_forge");
  assert.match(String(aside[0]!.why), /refused/);
  // It stays out (two lease durations) although the lease is free.
  await h.run(500);
  assert.equal(h.store.callsOf("acquire", "create").length, 1);
});

Deno.test("a SIGHUP refused only on promotion still ends in a clean release once the stop is confirmed", async () => {
  await using h = await harness();
  h.start();
  await h.until("the lease read", () => h.manager.ready());
  h.node.failNext.push("refused");
  h.handOver();

  await h.until("the release", () => h.store.callsOf("release").length > 0);
  assert.equal(h.store.callsOf("release")[0]!.clean, true);
  assert.equal(h.node.hangups.at(-1)!.outcome, "ok");
  assert.equal(h.node.hangups.at(-1)!.keysPresent, 0);
  assert.equal(await h.metric("forge_manager_signal_failures_total", { reason: "refused" }), 1);
  assert.equal(await h.metric("cardano_forging_enabled", { pod: POD }), 0);
});

Deno.test("a leader whose source keys are invalid steps aside and says why", async () => {
  // A KES key from one set with the certificate of another: the hot key does not match.
  const sources = { ...makeCredentialSet(), opcert: makeCredentialSet().opcert };
  await using h = await harness({ sources });
  h.start();
  await h.until("the lease read", () => h.manager.ready());
  h.handOver();

  await h.until("the release", () => h.store.callsOf("release").length > 0);
  const aside = h.logged("stepping aside");
  assert.equal(aside.length, 1);
  assert.equal(aside[0]!.reason, "cannot_forge");
  assert.match(String(aside[0]!.why), /does not match the operational certificate's hot key/);
  assert.match(String(aside[0]!.why), /node\.cert/, "the reason names the file");
  const warning = h.status.events.find((e) => e.reason === "CannotForge");
  assert.equal(warning?.type, "Warning");
  assert.match(warning!.message, /does not match/);
  assert.equal(h.manager.forging, false);
  assert.equal(await h.keysOnDisk(), 0);
  assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "promote" }), 0);
  assert.equal(await h.metric("forge_manager_demotions_total", { reason: "cannot_forge" }), 1);
  assert.equal(h.store.callsOf("release")[0]!.clean, true, "keys removed and node signalled");
  // No key material in any log line.
  const text = JSON.stringify(h.lines).toLowerCase();
  for (const name of NAMES) {
    const hex = cborHexOf(sources[name]);
    for (let i = 0; i + 16 <= hex.length; i += 16) {
      assert.ok(!text.includes(hex.slice(i, i + 16)), `${name} key material in the logs`);
    }
  }
});

// ---- the node ---------------------------------------------------------------------------------

Deno.test("a standby whose node runs without the non-producing flag removes the keys and signals at once", async () => {
  await using h = await harness();
  h.start();
  await h.until("the lease read", () => h.manager.ready());
  await writeCredentialSet(h.ipc, h.sources); // keys on disk, e.g. provisioned for a restart
  const unsafe = { pid: 5000, startTicks: 2000, nonProducing: false };
  const from = h.node.hangups.length;
  const changedAt = h.clock.monotonic();
  h.node.info = unsafe; // the node restarted without --start-as-non-producing-node

  await h.until("a SIGHUP to the new node", () => hangupAfter(h, from) !== undefined);
  const first = hangupAfter(h, from)!;
  assert.equal(first.pid, unsafe.pid);
  assert.equal(first.keysPresent, 0, "signalled before the keys were removed");
  assert.ok(first.at - changedAt < 500, `took ${first.at - changedAt} ms`);
  assert.equal(await h.keysOnDisk(), 0);
  assert.equal(await h.metric("forge_manager_demotions_total", { reason: "unsafe_node" }), 1);
  assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "unsafe_node" }), 1);
  assert.equal(await h.metric("forge_manager_node_non_producing_flag"), 0);
  assert.equal(h.status.events.filter((e) => e.reason === "UnsafeNode").length, 1);
  await h.run(500); // more node checks: counted and reported once per process
  assert.equal(await h.metric("forge_manager_demotions_total", { reason: "unsafe_node" }), 1);
  assert.equal(h.logged("UNSAFE").length, 1);
});

Deno.test("a node restart makes a leader place the keys again and signal the new process", async () => {
  await using h = await harness();
  h.start();
  await h.becomeForger();
  const from = h.node.hangups.length;
  const restarted = { pid: 5001, startTicks: 3000, nonProducing: true };
  h.node.info = restarted;

  await h.until(
    "a SIGHUP to the new node",
    () => hangupAfter(h, from, (r) => r.pid === restarted.pid) !== undefined,
  );
  await h.until("forging again", () => h.manager.forging);
  const resignal = hangupAfter(h, from)!;
  assert.equal(resignal.pid, restarted.pid);
  assert.equal(resignal.keysPresent, 3);
  assert.equal(resignal.outcome, "ok");
  assert.equal(h.node.hangups.length, from + 1, "one SIGHUP for the new process");
  assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "promote" }), 2);
  assert.equal(await h.metric("cardano_forging_enabled", { pod: POD }), 1);
  assert.equal(await h.metric("forge_manager_demotions_total"), 0);
  assert.equal(h.store.record?.holder, IDENTITY);
  // Placed again (same content: left as is, mode checked) before the signal.
  const since = h.journal.entries.findIndex((e) => e.what === "hangup" && e.detail.pid === 5001);
  const placed = h.journal.entries.slice(0, since).map((e) => e.what).slice(-3);
  assert.deepEqual(placed, [
    "credential_unchanged",
    "credential_unchanged",
    "credential_unchanged",
  ]);
});

Deno.test("a leader whose node restarts and is not ready yet steps aside cleanly and leaves the keys it boots with", async () => {
  // Without decoys the booting node reads the pool's keys; with them, see the decoys' tests.
  await using h = await harness({ socketAccepts: true, env: { DECOY_CREDENTIALS: "false" } });
  h.start();
  await h.becomeForger();
  const from = h.node.hangups.length;
  h.socket.accepts = false; // a real node replays its ledger before it opens its socket
  h.node.info = { pid: 5003, startTicks: 5000, nonProducing: true };

  await h.until("the release", () => h.store.callsOf("release").length > 0);
  assert.equal(
    h.store.callsOf("release")[0]!.clean,
    true,
    "a booting non-producing node does not forge",
  );
  assert.equal(h.manager.forging, false);
  assert.equal(await h.keysOnDisk(), 3, "removed the keys a booting node reads at start");
  assert.equal(h.node.hangups.length, from, "signalled a node that is not ready");

  h.socket.accepts = true;
  await h.until("the standby stop", () => h.node.hangups.length > from);
  const stop = h.node.hangups[from]!;
  assert.equal(stop.pid, 5003);
  assert.equal(stop.keysPresent, 0, "signalled before the keys were removed");
  assert.equal(await h.keysOnDisk(), 0);
});

Deno.test("a node restart makes a standby signal the new process once its socket accepts", async () => {
  await using h = await harness({ socketAccepts: true });
  h.start();
  await h.until("the lease read", () => h.manager.ready());
  const from = h.node.hangups.length;
  h.socket.accepts = false;
  h.node.info = { pid: 5002, startTicks: 4000, nonProducing: true };
  await h.run(600); // three node checks: the new process is found but its socket refuses
  assert.equal(h.node.hangups.length, from, "signalled a node whose socket does not accept");

  const readyAt = h.clock.monotonic();
  h.socket.accepts = true;
  await h.until("a SIGHUP to the new node", () => h.node.hangups.length > from);
  const signal = h.node.hangups[from]!;
  assert.equal(signal.pid, 5002);
  assert.equal(signal.keysPresent, 0);
  assert.ok(signal.at - readyAt < 500, `took ${signal.at - readyAt} ms`);
  assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "node_restart" }), 1);
});

Deno.test("the node disappearing makes a leader step aside, then provision keys for its restart", async () => {
  // START_AS_NON_PRODUCING=true by default; without decoys its boot files are the pool's keys.
  await using h = await harness({ env: { DECOY_CREDENTIALS: "false" } });
  h.start();
  await h.becomeForger();
  const hangups = h.node.hangups.length;
  const from = h.journal.entries.length;
  h.node.info = undefined;

  await h.until("the release", () => h.store.callsOf("release").length > 0);
  await h.until(
    "keys provisioned for the restart",
    () => h.journal.entries.slice(from).filter((e) => e.what === "credential_write").length === 3,
  );
  assert.equal(await h.keysOnDisk(), 3);
  assert.equal(h.node.hangups.length, hangups, "signalled a node that is gone");
  const order = h.journal.entries.slice(from).map((e) => e.what)
    .filter((w) => ["credential_remove", "credential_write", "release"].includes(w));
  assert.deepEqual(order, [
    "credential_remove",
    "credential_remove",
    "credential_remove",
    "release",
    "credential_write",
    "credential_write",
    "credential_write",
  ]);
  assert.equal(h.store.callsOf("release")[0]!.clean, true);
  assert.match(String(h.logged("stepping aside")[0]?.why), /exited/);
  assert.equal(await h.metric("forge_manager_demotions_total", { reason: "cannot_forge" }), 1);
  assert.equal(await h.metric("forge_manager_node_non_producing_flag"), -1);
  assert.equal(await h.metric("cardano_forging_enabled", { pod: POD }), 0);
  assert.equal(await h.metric("cardano_leader_status", { pod: POD }), 0);

  // The node comes back (non-producing): as a standby, the keys go and it is signalled.
  h.node.info = { pid: 5003, startTicks: 5000, nonProducing: true };
  await h.until("a SIGHUP to the new node", () => h.node.hangups.length > hangups);
  assert.equal(h.node.hangups[hangups]!.pid, 5003);
  assert.equal(h.node.hangups[hangups]!.keysPresent, 0);
});

// ---- the fence --------------------------------------------------------------------------------

Deno.test("a leader does not forge until the fence proves the previous node stopped", async () => {
  const clock = new VirtualClock();
  await using h = await harness({ fence: true, clock });
  h.start();
  await h.until("the lease read", () => h.manager.ready());
  await h.run(4100); // the other replica stopped renewing long ago: its lease expired

  await h.until("the acquisition", () => h.store.callsOf("acquire").length > 0);
  await h.until("the fence asked", () => h.fence!.calls.length > 0);
  assert.deepEqual(h.fence!.calls, [{ previousHolder: OTHER, previousPodUid: "uid-1" }]);
  await h.run(500);
  assert.equal(h.manager.forging, false);
  assert.equal(await h.keysOnDisk(), 0);
  assert.equal(h.store.record?.holder, IDENTITY, "it holds and renews meanwhile");
  assert.equal(await h.metric("cardano_leader_status", { pod: POD }), 1);
  assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "promote" }), 0);

  const provenAt = clock.monotonic();
  h.fence!.settle({ proven: true, how: "pod_gone" });
  await h.until("forging", () => h.manager.forging, 1000);
  assert.ok(h.node.delivered.at(-1)!.at - provenAt < 300);
  assert.equal(h.node.delivered.at(-1)!.keysPresent, 3);
  assert.equal(await h.metric("forge_manager_fence_checks_total", { outcome: "pod_gone" }), 1);
});

Deno.test("a create with no known previous holder fences the pod the CardanoLeader status names", async () => {
  const clock = new VirtualClock();
  await using h = await harness({ lease: "absent", fence: true, clock });
  // The Lease was deleted by hand under a leader whose sidecar died: only the status remembers it.
  h.status.leaderPod = "producer-9";
  h.start();
  await h.until("the lease read", () => h.manager.ready());
  await h.run(4000);
  await h.until("the create", () => h.store.callsOf("create").some((c) => c.outcome === "ok"));
  await h.until("the fence asked", () => h.fence!.calls.length > 0);
  assert.deepEqual(h.fence!.calls, [{
    previousHolder: "producer-9_status",
    previousPodUid: undefined,
  }]);
  await h.run(4500); // past the create's probation (real time): only the fence holds it back
  assert.equal(h.manager.forging, false);
  h.fence!.settle({ proven: true, how: "pod_deleted" });
  await h.until("forging", () => h.manager.forging, 2000);
});

Deno.test("an absent Lease is not created while the CardanoLeader status cannot be read", async () => {
  // The status is the only trace of a holder whose Lease was deleted under its dead sidecar: a
  // create without reading it could forge beside that holder's node.
  const clock = new VirtualClock();
  await using h = await harness({ lease: "absent", fence: true, clock });
  h.status.reportMode = "fail";
  h.start();
  await h.run(12_000);
  assert.equal(h.store.callsOf("create").length, 0, "created without asking whom to fence");
  assert.ok(h.logged("cannot read the lease").some((l) => String(l.err).includes("CardanoLeader")));
  h.status.leaderPod = "producer-9";
  h.status.reportMode = "ok";
  await h.until("the create", () => h.store.callsOf("create").some((c) => c.outcome === "ok"));
  await h.until("the fence asked", () => h.fence!.calls.length > 0);
  assert.equal(h.fence!.calls[0]!.previousHolder, "producer-9_status");
});

Deno.test("a create with no known previous holder and an empty status needs no fence", async () => {
  const clock = new VirtualClock();
  await using h = await harness({ lease: "absent", fence: true, clock });
  h.start();
  await h.until("the lease read", () => h.manager.ready());
  await h.run(4000);
  await h.until("the create", () => h.store.callsOf("create").some((c) => c.outcome === "ok"));
  await h.until("forging after the probation", () => h.manager.forging, 6000);
  assert.equal(h.fence!.calls.length, 0);
  assert.equal(await h.metric("forge_manager_fence_checks_total", { outcome: "no_previous" }), 1);
});

Deno.test("a leader follows a key rotation: a valid new set is placed and signalled, a half-done one is left alone", async () => {
  await using h = await harness();
  h.start();
  await h.becomeForger();
  const dir = h.config.credentials.kes!.source.replace(/\/[^/]*$/, "");
  const target = h.config.credentials.kes!.target;
  const before = await Deno.readTextFile(target);
  const hangups = h.node.delivered.length;

  // Half done: a new KES key whose certificate has not arrived yet (they do not match).
  const rotated = makeCredentialSet({ counter: 1 });
  await Deno.writeTextFile(h.config.credentials.kes!.source, rotated.kes);
  await h.run(600); // several node checks
  assert.equal(
    await Deno.readTextFile(target),
    before,
    "placed a KES key its certificate does not match",
  );
  assert.equal(h.node.delivered.length, hangups);
  assert.equal(h.manager.forging, true);
  assert.equal(h.logged("the source keys changed but cannot be used").length, 1, "warned once");

  // The rest of the rotation arrives: the whole set is placed, then the node is signalled.
  await writeCredentialSet(dir, rotated);
  await h.until("the rotation signal", () => h.node.delivered.length > hangups);
  assert.equal(await Deno.readTextFile(target), rotated.kes);
  assert.equal(await Deno.readTextFile(h.config.credentials.opcert.target), rotated.opcert);
  assert.equal(h.node.delivered.at(-1)!.keysPresent, 3);
  assert.equal(await h.metric("cardano_sighup_signals_total", { reason: "rotate" }), 1);
  assert.equal(h.manager.forging, true);
  await h.run(600);
  assert.equal(h.node.delivered.length, hangups + 1, "signalled again with nothing new");
});

// ---- status -----------------------------------------------------------------------------------

Deno.test("the CardanoLeader status is reported on acquire, forging and demotion", async () => {
  await using h = await harness();
  h.start();
  await h.becomeForger();
  h.store.edit({ holder: "producer-2_thief" });
  await h.until("the demotion reported", () => h.status.reports.length >= 3);

  assert.deepEqual(h.status.reports.map((r) => r.update.reason), [
    "LeaseAcquired",
    "Forging",
    "Demoted_lease_taken",
  ]);
  const [acquired, forging, demoted] = h.status.reports;
  assert.deepEqual(
    { ...acquired!.update, message: undefined },
    {
      leaderPod: POD,
      forgingEnabled: false,
      reason: "LeaseAcquired",
      message: undefined,
      leaseTransitions: 4,
    },
  );
  assert.equal(acquired!.onlyIfLeaderIs, undefined);
  assert.equal(forging!.update.leaderPod, POD);
  assert.equal(forging!.update.forgingEnabled, true);
  assert.equal(demoted!.update.leaderPod, "");
  assert.equal(demoted!.update.forgingEnabled, false);
  assert.equal(demoted!.onlyIfLeaderIs, POD, "a demoted leader clears only its own claim");
  assert.deepEqual(
    h.status.events.map((e) => [e.type, e.reason]),
    [["Normal", "LeaseAcquired"], ["Normal", "Forging"], ["Normal", "Demoted_lease_taken"]],
  );
});

Deno.test("status writes and Events start only after the keys have moved, at promotion and at shutdown (after the release)", async () => {
  // One worker thread serves both: a request's CPU beside an unlink or a placement delays it.
  await using h = await harness();
  h.start();
  await h.until("standing by with the lease read", () => h.manager.ready());
  let from = h.journal.entries.length;
  h.handOver();
  await h.until("forging", () => h.manager.forging);
  await h.run(300);
  const moved = (from: number, keys: string) =>
    h.journal.entries.slice(from).map((e) => e.what)
      .filter((w) => [keys, "hangup", "release", "status_report", "status_event"].includes(w));
  const promotion = moved(from, "credential_write");
  const claimed = h.journal.entries.slice(from).map((e) => e.what)
    .filter((w) => w === "status_claim" || w === "hangup");
  assert.deepEqual(claimed, ["status_claim", "hangup"], "signalled before the status named it");
  assert.deepEqual(promotion.slice(0, 3), [
    "credential_write",
    "credential_write",
    "credential_write",
  ]);
  assert.ok(promotion.includes("status_report"), JSON.stringify(promotion));

  from = h.journal.entries.length;
  h.store.faults.release = "hang"; // answered (with an error) only when unhung below
  const stopped = h.stop();
  await h.until("the release sent", () => h.store.hanging > 0);
  await h.run(200);
  assert.ok(!moved(from, "x").includes("status_report"), "a status write beside the release");
  h.store.unhang();
  await stopped;
  const stop = moved(from, "credential_remove");
  assert.deepEqual(stop.slice(0, 5), [
    "credential_remove",
    "credential_remove",
    "credential_remove",
    "hangup",
    "release",
  ]);
  assert.ok(stop.includes("status_report"), JSON.stringify(stop));
});

Deno.test("a status write that hangs or fails never blocks forging", async () => {
  await using h = await harness();
  h.status.reportMode = "hang";
  h.status.eventMode = "fail";
  h.start();
  await h.becomeForger();
  assert.equal(h.status.reports.length, 1, "the LeaseAcquired report is still pending");
  assert.equal(await h.metric("cardano_forging_enabled", { pod: POD }), 1);

  h.status.reportMode = "fail";
  h.status.unhang();
  await h.until(
    "the failures counted",
    async () => await h.metric("forge_manager_status_update_failures_total") >= 4,
  );
  assert.equal(h.manager.forging, true);
  assert.equal(h.manager.leading, true);
  assert.equal(h.logged("cannot update CardanoLeader status").length, 2);
});

// ---- HTTP -------------------------------------------------------------------------------------

Deno.test("/startup-status, /readyz and /healthz follow the loop", async () => {
  const clock = new VirtualClock();
  await using h = await harness({ clock });
  const handler = createHandler(h.metrics.registry, h.manager);
  const get = async (path: string, method = "GET") => {
    const res = await handler(new Request(`http://sidecar${path}`, { method }));
    const text = await res.text();
    return { status: res.status, text };
  };

  assert.equal((await get("/startup-status")).status, 503);
  assert.equal((await get("/readyz")).status, 503);
  assert.equal((await get("/healthz")).status, 200);

  h.store.faults.read = "error"; // the lease cannot be read yet
  h.start();
  await h.until("startup done", () => h.manager.startupDone());
  const startup = await get("/startup-status");
  assert.equal(startup.status, 200);
  assert.deepEqual(JSON.parse(startup.text), { ok: true, startupDone: true });
  await h.run(300);
  assert.equal((await get("/readyz")).status, 503, "ready before the lease was ever read");

  h.store.faults = {};
  await h.until("ready", () => h.manager.ready());
  const ready = await get("/readyz");
  assert.equal(ready.status, 200);
  const body = JSON.parse(ready.text);
  assert.equal(body.ok, true);
  assert.equal(body.pod, POD);
  assert.equal(body.holder, OTHER);
  assert.equal(body.leader, false);
  assert.equal(body.forging, false);
  assert.equal(body.nodePid, NODE.pid);

  const metrics = await get("/metrics");
  assert.equal(metrics.status, 200);
  assert.match(metrics.text, /^cardano_forging_enabled\{pod="producer-0"\} 0$/m);
  assert.match(metrics.text, /^cardano_sighup_signals_total\{reason="startup"\} 1$/m);
  assert.equal((await get("/healthz", "POST")).status, 405);
  assert.equal((await get("/nowhere")).status, 404);

  // A loop stuck on a request for 30 s is not alive; it is again once the request returns.
  h.store.faults.read = "hang";
  await h.until("a read hanging", () => h.store.hanging > 0);
  assert.equal((await get("/healthz")).status, 200);
  await h.run(31_000);
  assert.equal((await get("/healthz")).status, 503);
  h.store.faults = {};
  h.store.unhang();
  await h.until("alive again", async () => (await get("/healthz")).status === 200);
});

// ---- the guard --------------------------------------------------------------------------------

Deno.test("with a guard: its bound on every claim, the guard armed before the SIGHUP, answers that track the term", async () => {
  const clock = new VirtualClock();
  await using h = await harness({ guard: true, clock });
  h.start();
  await h.becomeForger();
  const what = h.journal.entries.map((e) => e.what);
  assert.ok(what.indexOf("guard_arm") >= 0, "armed");
  assert.ok(what.indexOf("guard_arm") < what.lastIndexOf("hangup"), "armed before the SIGHUP");
  // RENEW_DEADLINE (1 s) + GUARD_REACTION (0.5 s): what a successor may wait for.
  assert.equal(h.store.record?.guardBoundMs, 1500);
  const answer = h.guard!.ping();
  assert.equal(answer.armed, true);
  assert.ok(answer.leftMs > 0 && answer.leftMs <= 1000, `left ${answer.leftMs} ms`);
  await h.stop();
  assert.deepEqual(h.guard!.ping(), { armed: false, leftMs: 0 }, "disarmed by the confirmed stop");
  assert.equal(h.store.record?.guardBoundMs, undefined, "a clean release drops the bound");
});

Deno.test("with a guard that cannot be armed, the leader steps aside without ever signalling to forge", async () => {
  const clock = new VirtualClock();
  await using h = await harness({ guard: true, clock });
  h.guard!.armError = "no guard is connected";
  h.start();
  await h.until("standing by with the lease read", () => h.manager.ready());
  h.handOver();
  await h.until("stepped aside", () => h.store.record?.holder === "" && h.guard!.arms > 0);
  assert.equal(h.manager.forging, false);
  assert.ok(!h.node.hangups.some((r) => r.keysPresent > 0), "never SIGHUPed with the keys");
  assert.equal(await h.metric("forge_manager_demotions_total", { reason: "guard" }), 1);
});

Deno.test("a guard that goes away while forging makes the leader step aside at once", async () => {
  const clock = new VirtualClock();
  await using h = await harness({ guard: true, clock });
  h.start();
  await h.becomeForger();
  h.guard!.notify({ kind: "link", up: false, error: "the guard closed the connection" });
  await h.until("stopped forging", () => !h.manager.forging);
  await h.until("released", () => h.store.record?.holder === "");
  assert.equal(h.node.hangups.at(-1)!.keysPresent, 0);
  assert.equal(await h.metric("forge_manager_guard_armed"), -1);
});
