/**
 * A simulated cardano-node for tests: it follows the real node's rules for forging credentials
 * (see /work/shared/notes/cardano-node.md) and records every forging state change, so a test
 * can tell exactly when, and for how long, each node would have forged.
 *
 * Start it through `sim_node_process.ts`, which runs it under a process named `cardano-node`.
 * Arguments, as the real node's:
 *
 *     [run] --socket-path P (--shelley-kes-key K | --shelley-kes-agent-socket A)
 *       --shelley-vrf-key V --shelley-operational-certificate C --record R [--pool-id ID]
 *       [--start-as-non-producing-node | --non-producing-node] [--replay-ms N] [--shutdown-ms N]
 *
 * `--record R` (sim only) appends one JSON line per event to R. `--pool-id ID` (sim only, 56 hex
 * digits) is the pool that has stake: credentials of any other pool (the sidecar's decoys) load as
 * the real node loads them, but a pool without stake never leads a slot, so the node records
 * `enable_no_stake` and never forging with them. Without it, every valid set counts as the pool's.
 * `--shelley-kes-agent-socket A` (cardano-node 10.7.1+) takes the KES key from a KES agent
 * instead of a file (`sim_kes_agent.ts`): the node then forges only while the agent has given it
 * the certificate's hot key (`agent_key` records each key it receives or loses). `--replay-ms N` (sim only) waits
 * N ms before "consensus starts" (the socket opens), like a ledger replay: SIGHUP has no effect
 * then. `--shutdown-ms N` (sim only) makes a shutdown take N ms, like the real node closing its
 * database: it records `terminating` on SIGTERM/SIGINT, forges on meanwhile (the conservative
 * reading) and records `exit` only when it exits. `--topology`, `--database-path`, `--config`,
 * `--host-addr` and `--port` are accepted and ignored.
 *
 * Metrics (sim only; the real node takes its Prometheus port from its config file):
 * `--metrics-port P` serves the node's forging series on `http://127.0.0.1:P/metrics` (see
 * lib/node/node_metrics.ts). The tip advances one slot every `--slot-ms N` (default 1000); while
 * forging, each slot counts one leadership check (`Forge_forge_about_to_lead`), and every
 * `--leader-every K`th slot (default 0: never) it leads and forges. The KES gauges appear once
 * credentials were first used for forging and keep their values after forging stops (as
 * cardano-node #5751 reports); `--kes-period N` is the current KES period (default: the
 * certificate's start). `--metrics-naming new` spells the counters `Forge_about_to_lead_counter`,
 * `Forge_forged_counter`, ... as the new tracing system does. Known-wrong variants:
 * `--forging-gauge stale` keeps `forging_enabled` at its start value across SIGHUPs (#5751),
 * `--forging-gauge always-one` reads 1 even when not forging (#6113, #6576), and
 * `--checks-when-idle` counts leadership checks even when not forging (#6576).
 *
 * The chain's clock (sim only): `--network mainnet|preprod|preview` makes the tip follow the wall
 * clock's slot of that network (its genesis timing, lib/cardano/kes_period.ts) instead of counting
 * from 1000, one slot per slot length; `--lag-file F` holds how many slots the tip lags it (read
 * at every slot; absent or empty: 0), so a test makes a node fall behind by writing a number.
 * `--leader-slots F` holds the pool's leader slots (any form lib/cardano/leader_schedule.ts reads,
 * read again at every slot): at each of them the node leads, and if it forges for the pool it
 * records `forged` with the slot (`slot`), so a test can tell a block lost at a scheduled slot (no
 * node recorded it) from one forged twice.
 *
 * - Start: exits 1 if a credential file is missing or invalid (even when non-producing, as the
 *   real node) or if the VRF key is readable by others; then forges unless non-producing.
 * - SIGHUP: all files valid -> enable; a file does NOT EXIST -> disable; any other problem
 *   (parse error, half-written, permission denied, KES/certificate mismatch) -> keep the state
 *   and record a `reconfigure_error`. With a KES agent the files are the VRF key and the
 *   certificate.
 * - SIGTERM/SIGINT: records `exit` and exits 0 (after `--shutdown-ms`, if given).
 *
 * Needs read on the credential files, write on the record and socket paths (run with -A).
 *
 * @module
 */

import {
  CredentialError,
  type CredentialKind,
  type CredentialSet,
  validateCredentialSet,
} from "../../lib/cardano/cardano_keys.ts";
import { followKesAgent } from "./sim_kes_agent.ts";
import {
  NETWORK_KES_TIMING,
  NETWORK_NAMES,
  type NetworkName,
  slotAt,
} from "../../lib/cardano/kes_period.ts";
import { parseLeaderSchedule } from "../../lib/cardano/leader_schedule.ts";

/** One line of the record file. */
export interface SimNodeEvent {
  /** Milliseconds since the epoch, sub-millisecond resolution. */
  t: number;
  pid: number;
  event:
    | "start"
    | "enable"
    | "enable_no_stake"
    | "disable"
    | "reconfigure_error"
    | "sighup"
    | "agent_key"
    | "terminating"
    | "exit"
    | "forged";
  /** Whether the node forges for the pool after this event. */
  forging: boolean;
  detail?: string;
  /** `forged`: the leader slot it forged in. */
  slot?: number;
}

/** How the simulated `forging_enabled` gauge behaves. */
export type ForgingGauge = "truthful" | "stale" | "always-one";

/** The simulated metrics endpoint. */
export interface SimMetricsArgs {
  port: number;
  slotMs: number;
  leaderEvery: number;
  kesPeriod: number | undefined;
  naming: "legacy" | "new";
  forgingGauge: ForgingGauge;
  checksWhenIdle: boolean;
  /** The tip follows this network's wall-clock slot (undefined: it counts from 1000). */
  network: NetworkName | undefined;
  /** A file holding how many slots the tip lags (with `network`). */
  lagFile: string | undefined;
  /** A file holding the pool's leader slots. */
  leaderSlotsFile: string | undefined;
}

/** The parsed command line. */
export interface SimNodeArgs {
  socketPath: string;
  /** The credential files; no `kes` with a KES agent. */
  credentials: CredentialSet<string>;
  /** The KES agent's socket (`--shelley-kes-agent-socket`), if the KES key comes from one. */
  kesAgentSocket: string | undefined;
  /** The pool with stake (`--pool-id`); undefined: any valid set counts as the pool's. */
  poolId: string | undefined;
  record: string;
  nonProducing: boolean;
  replayMs: number;
  /** Undefined without `--metrics-port`. */
  metrics: SimMetricsArgs | undefined;
  /** How long a shutdown takes after SIGTERM/SIGINT. */
  shutdownMs: number;
}

const CREDENTIAL_FLAGS: Record<string, CredentialKind> = {
  "--shelley-kes-key": "kes",
  "--shelley-vrf-key": "vrf",
  "--shelley-operational-certificate": "opcert",
};
const IGNORED_FLAGS = new Set([
  "--topology",
  "--database-path",
  "--config",
  "--host-addr",
  "--port",
]);

/**
 * Parses the simulator's command line.
 *
 * @throws {Error} naming the flag for an unknown flag, a missing value or a missing option
 */
export function parseSimNodeArgs(args: readonly string[]): SimNodeArgs {
  const rest = args[0] === "run" ? args.slice(1) : [...args];
  const credentials: Partial<Record<CredentialKind, string>> = {};
  let socketPath: string | undefined;
  let kesAgentSocket: string | undefined;
  let poolId: string | undefined;
  let record: string | undefined;
  let nonProducing = false;
  let replayMs = 0;
  let metricsPort: number | undefined;
  const metrics: Omit<SimMetricsArgs, "port"> = {
    slotMs: 1000,
    leaderEvery: 0,
    kesPeriod: undefined,
    naming: "legacy",
    forgingGauge: "truthful",
    checksWhenIdle: false,
    network: undefined,
    lagFile: undefined,
    leaderSlotsFile: undefined,
  };
  const count = (flag: string, value: string, min: number): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < min) {
      throw new Error(`Cannot parse arguments: ${flag} is ${value}, expected an integer >= ${min}`);
    }
    return n;
  };
  let shutdownMs = 0;
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i]!;
    if (flag === "--start-as-non-producing-node" || flag === "--non-producing-node") {
      nonProducing = true;
      continue;
    }
    if (flag === "--checks-when-idle") {
      metrics.checksWhenIdle = true;
      continue;
    }
    const value = rest[i + 1];
    if (value === undefined || value.startsWith("--")) {
      throw new Error(`Cannot parse arguments: ${flag} needs a value`);
    }
    i++;
    const kind = CREDENTIAL_FLAGS[flag];
    if (kind) credentials[kind] = value;
    else if (flag === "--socket-path") socketPath = value;
    else if (flag === "--shelley-kes-agent-socket") kesAgentSocket = value;
    else if (flag === "--pool-id") {
      if (!/^[0-9a-f]{56}$/.test(value)) {
        throw new Error(`Cannot parse arguments: --pool-id is ${value}, expected 56 hex digits`);
      }
      poolId = value;
    } else if (flag === "--record") record = value;
    else if (flag === "--replay-ms") {
      replayMs = Number(value);
      if (!Number.isSafeInteger(replayMs) || replayMs < 0) {
        throw new Error(`Cannot parse arguments: --replay-ms is ${value}, expected ms >= 0`);
      }
    } else if (flag === "--metrics-port") metricsPort = count(flag, value, 1);
    else if (flag === "--slot-ms") metrics.slotMs = count(flag, value, 1);
    else if (flag === "--leader-every") metrics.leaderEvery = count(flag, value, 0);
    else if (flag === "--kes-period") metrics.kesPeriod = count(flag, value, 0);
    else if (flag === "--metrics-naming") {
      if (value !== "legacy" && value !== "new") {
        throw new Error(
          `Cannot parse arguments: --metrics-naming is ${value}, expected legacy|new`,
        );
      }
      metrics.naming = value;
    } else if (flag === "--forging-gauge") {
      if (value !== "truthful" && value !== "stale" && value !== "always-one") {
        throw new Error(
          `Cannot parse arguments: --forging-gauge is ${value}, expected truthful|stale|always-one`,
        );
      }
      metrics.forgingGauge = value;
    } else if (flag === "--network") {
      if (!NETWORK_NAMES.includes(value as NetworkName)) {
        throw new Error(
          `Cannot parse arguments: --network is ${value}, expected ${NETWORK_NAMES.join("|")}`,
        );
      }
      metrics.network = value as NetworkName;
    } else if (flag === "--lag-file") metrics.lagFile = value;
    else if (flag === "--leader-slots") metrics.leaderSlotsFile = value;
    else if (flag === "--shutdown-ms") {
      shutdownMs = Number(value);
      if (!Number.isSafeInteger(shutdownMs) || shutdownMs < 0) {
        throw new Error(`Cannot parse arguments: --shutdown-ms is ${value}, expected ms >= 0`);
      }
    } else if (!IGNORED_FLAGS.has(flag)) {
      throw new Error(`Cannot parse arguments: unknown flag ${flag}`);
    }
  }
  if (kesAgentSocket !== undefined && credentials.kes !== undefined) {
    throw new Error(
      "Cannot parse arguments: give --shelley-kes-key or --shelley-kes-agent-socket, not both",
    );
  }
  const missing = [
    ...(socketPath === undefined ? ["--socket-path"] : []),
    ...(record === undefined ? ["--record"] : []),
    ...Object.entries(CREDENTIAL_FLAGS).filter(([, kind]) =>
      credentials[kind] === undefined && !(kind === "kes" && kesAgentSocket !== undefined)
    ).map(([flag]) => flag),
  ];
  if (missing.length > 0) {
    throw new Error(`Cannot parse arguments: missing ${missing.join(", ")}`);
  }
  return {
    socketPath: socketPath!,
    credentials: {
      ...(credentials.kes !== undefined ? { kes: credentials.kes } : {}),
      vrf: credentials.vrf!,
      opcert: credentials.opcert!,
    },
    kesAgentSocket,
    poolId,
    record: record!,
    nonProducing,
    replayMs,
    metrics: metricsPort === undefined ? undefined : { port: metricsPort, ...metrics },
    shutdownMs,
  };
}

/** A valid set as the node loaded it. */
export interface LoadedSet {
  kesStartPeriod: number;
  poolId: string;
  /** The certificate's hot key id (8 hex digits). */
  hotKeyId: string;
}

/** What reading the credential files found, by the real node's SIGHUP rules. */
export type ReadOutcome =
  | ({ kind: "valid"; detail: string } & LoadedSet)
  | { kind: "missing"; detail: string }
  | { kind: "error"; detail: string };

/**
 * Reads and validates the credential files (no KES key with a KES agent). A missing file wins
 * over any other problem, as in cardano-node, where a missing file means "do not forge". Needs
 * read permission.
 */
export async function readCredentials(paths: CredentialSet<string>): Promise<ReadOutcome> {
  const texts: Partial<Record<CredentialKind, string>> = {};
  const missing: string[] = [];
  const errors: string[] = [];
  for (const kind of ["kes", "vrf", "opcert"] as const) {
    const path = paths[kind];
    if (path === undefined) continue;
    try {
      texts[kind] = await Deno.readTextFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) missing.push(path);
      else errors.push(`Cannot read ${path}: ${(error as Error).name}`);
    }
  }
  if (missing.length > 0) {
    return { kind: "missing", detail: `credential file does not exist: ${missing.join(", ")}` };
  }
  if (errors.length > 0) return { kind: "error", detail: errors.join("; ") };
  try {
    const facts = validateCredentialSet(texts as CredentialSet<string>, paths);
    return {
      kind: "valid",
      detail: `issue counter ${facts.issueCounter}, KES start period ${facts.kesStartPeriod}`,
      kesStartPeriod: facts.kesStartPeriod,
      poolId: facts.poolId,
      hotKeyId: facts.hotKeyId,
    };
  } catch (error) {
    if (error instanceof CredentialError) return { kind: "error", detail: error.message };
    throw error;
  }
}

/** The simulator; exported so a test could drive it in-process, normally run by `main`. */
export class SimNode {
  #args: SimNodeArgs;
  /** Whether the forging loop runs (with whatever set was loaded last). */
  #enabled = false;
  /** The set loaded last (at start, or by a SIGHUP that found a valid one). */
  #loaded: LoadedSet | undefined;
  /** The hot key id of the key the KES agent gave (undefined: none yet, or dropped). */
  #agentKey: string | undefined;
  #stopAgent: (() => void) | undefined;
  #consensusStarted = false;
  #queue: Promise<void> = Promise.resolve();
  #listener: Deno.Listener | undefined;
  #metricsServer: Deno.HttpServer | undefined;
  #slotTimer: ReturnType<typeof setInterval> | undefined;
  #slot = 1000;
  /** With `--network`: the last wall-clock slot handled. */
  #wallSlot: number | undefined;
  #aboutToLead = 0;
  #leader = 0;
  #forged = 0;
  /** The certificate's start period once credentials were used for forging (the KES gauges). */
  #kesStart: number | undefined;
  #gaugeAtStart = 0;

  constructor(args: SimNodeArgs) {
    this.#args = args;
  }

  /** The node's metrics in Prometheus text format, as the simulated variants would show them. */
  metricsText(): string {
    const m = this.#args.metrics;
    if (m === undefined) return "";
    const gauge = m.forgingGauge === "always-one"
      ? 1
      : m.forgingGauge === "stale"
      ? this.#gaugeAtStart
      : this.#enabled
      ? 1
      : 0;
    const counter = (name: string) =>
      m.naming === "new"
        ? `cardano_node_metrics_Forge_${name}_counter`
        : `cardano_node_metrics_Forge_${
          name === "about_to_lead" ? "forge_about_to_lead" : name
        }_int`;
    const lines = [
      `cardano_node_metrics_slotNum_int ${this.#tip()}`,
      `cardano_node_metrics_forging_enabled ${gauge}`,
    ];
    if (this.#kesStart !== undefined) {
      const current = m.kesPeriod ?? this.#kesStart;
      const expiry = this.#kesStart + 62;
      lines.push(
        `cardano_node_metrics_currentKESPeriod_int ${current}`,
        `cardano_node_metrics_remainingKESPeriods_int ${Math.max(0, expiry - current)}`,
        `cardano_node_metrics_operationalCertificateStartKESPeriod_int ${this.#kesStart}`,
        `cardano_node_metrics_operationalCertificateExpiryKESPeriod_int ${expiry}`,
      );
    }
    // Counters appear once they first count, as in the node.
    if (this.#aboutToLead > 0) lines.push(`${counter("about_to_lead")} ${this.#aboutToLead}`);
    if (this.#leader > 0) lines.push(`${counter("node_is_leader")} ${this.#leader}`);
    if (this.#forged > 0) lines.push(`${counter("forged")} ${this.#forged}`);
    return lines.join("\n") + "\n";
  }

  #tick(): void {
    const m = this.#args.metrics!;
    if (m.network === undefined) {
      this.#slot++;
      this.#onSlot(this.#slot, false);
      return;
    }
    // The chain's clock: every wall-clock slot since the last tick, each once.
    const now = slotAt(NETWORK_KES_TIMING[m.network], Date.now());
    const leaders = this.#leaderSlots();
    for (let slot = (this.#wallSlot ?? now - 1) + 1; slot <= now; slot++) {
      this.#onSlot(slot, leaders.has(slot));
    }
    this.#wallSlot = now;
  }

  /** One slot: a leadership check while forging; a lead (and a block) in the pool's slots. */
  #onSlot(slot: number, scheduled: boolean): void {
    const m = this.#args.metrics!;
    // Any loaded set runs leadership checks; only the pool's (with stake) ever leads.
    if (this.#enabled || m.checksWhenIdle) this.#aboutToLead++;
    const leads = scheduled || (m.leaderEvery > 0 && slot % m.leaderEvery === 0);
    if (this.forging && leads) {
      this.#leader++;
      this.#forged++;
      if (scheduled) this.record("forged", `slot ${slot}`, slot);
    }
  }

  /** The tip: with `--network`, the wall clock's slot less the lag in `--lag-file`. */
  #tip(): number {
    const m = this.#args.metrics!;
    if (m.network === undefined) return this.#slot;
    const slot = slotAt(NETWORK_KES_TIMING[m.network], Date.now());
    return slot - this.#readNumber(m.lagFile);
  }

  #readNumber(file: string | undefined): number {
    if (file === undefined) return 0;
    try {
      const n = Number(Deno.readTextFileSync(file).trim() || "0");
      return Number.isSafeInteger(n) ? n : 0;
    } catch {
      return 0; // no file: no lag
    }
  }

  /** The pool's leader slots (`--leader-slots`), read again each time (a test may change them). */
  #leaderSlots(): Set<number> {
    const file = this.#args.metrics!.leaderSlotsFile;
    if (file === undefined) return new Set();
    try {
      return new Set(parseLeaderSchedule(Deno.readTextFileSync(file)));
    } catch {
      return new Set();
    }
  }

  #serveMetrics(): void {
    const m = this.#args.metrics;
    if (m === undefined) return;
    // On the chain's clock, a tick every 100 ms handles each new slot soon after it begins.
    this.#slotTimer = setInterval(() => this.#tick(), m.network === undefined ? m.slotMs : 100);
    this.#metricsServer = Deno.serve(
      { hostname: "127.0.0.1", port: m.port, onListen: () => {} },
      (request) =>
        new URL(request.url).pathname === "/metrics"
          ? new Response(this.metricsText(), { headers: { "content-type": "text/plain" } })
          : new Response("not found", { status: 404 }),
    );
  }

  /**
   * Whether the node forges for the pool now: forging is enabled, with the pool's set (a pool
   * without stake never leads), and with a KES agent, the agent gave it the certificate's key.
   */
  get forging(): boolean {
    const set = this.#loaded;
    return this.#enabled && set !== undefined && this.#ours(set) &&
      (this.#args.kesAgentSocket === undefined || this.#agentKey === set.hotKeyId);
  }

  #ours(set: LoadedSet): boolean {
    return this.#args.poolId === undefined || set.poolId === this.#args.poolId;
  }

  /** Why a loaded set never leads, for the record. */
  #noStake(set: LoadedSet): string {
    return `credentials of pool ${set.poolId}, which has no stake: loaded, never leads`;
  }

  /**
   * Checks the credentials as the real node does at start, then "replays the ledger", starts
   * forging (unless non-producing) and opens the socket.
   *
   * @returns an error message if the node must exit instead
   */
  async start(): Promise<string | undefined> {
    const outcome = await readCredentials(this.#args.credentials);
    if (outcome.kind !== "valid") return outcome.detail;
    const vrfMode = (await Deno.stat(this.#args.credentials.vrf)).mode ?? 0;
    if (vrfMode & 0o004) {
      return `VRF private key file ${this.#args.credentials.vrf} is readable by others ` +
        `(mode ${(vrfMode & 0o777).toString(8)}); expected no "other" permissions`;
    }
    if (this.#args.replayMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, this.#args.replayMs));
    }
    this.#loaded = outcome;
    this.#enabled = !this.#args.nonProducing;
    if (this.#enabled) this.#kesStart = outcome.kesStartPeriod;
    this.#gaugeAtStart = this.#enabled ? 1 : 0;
    this.#consensusStarted = true;
    this.#serveMetrics();
    this.record(
      "start",
      [
        this.#args.nonProducing ? "non-producing" : outcome.detail,
        ...(this.#ours(outcome) ? [] : [this.#noStake(outcome)]),
      ].join("; "),
    );
    const agent = this.#args.kesAgentSocket;
    if (agent !== undefined) {
      this.#stopAgent = followKesAgent(agent, (key) => this.#agentKeyChanged(key));
    }
    await this.#listen();
    return undefined;
  }

  /** Handles a SIGHUP: queued, so overlapping signals are handled one after the other. */
  sighup(): Promise<void> {
    this.#queue = this.#queue.then(() => this.#reconfigure());
    return this.#queue;
  }

  /** Records `event` with the current forging state. */
  record(event: SimNodeEvent["event"], detail?: string, slot?: number): void {
    const line: SimNodeEvent = {
      t: performance.timeOrigin + performance.now(),
      pid: Deno.pid,
      event,
      forging: this.forging,
      ...(detail === undefined ? {} : { detail }),
      ...(slot === undefined ? {} : { slot }),
    };
    // One write with O_APPEND, so lines from several processes never interleave.
    Deno.writeTextFileSync(this.#args.record, JSON.stringify(line) + "\n", {
      append: true,
      create: true,
    });
  }

  /** Stops forging, records `exit`, closes the socket. */
  stop(signal: string): void {
    this.#enabled = false;
    this.#stopAgent?.();
    this.record("exit", signal);
    clearInterval(this.#slotTimer);
    void this.#metricsServer?.shutdown();
    try {
      this.#listener?.close();
    } catch {
      // already closed
    }
  }

  async #reconfigure(): Promise<void> {
    if (!this.#consensusStarted) {
      this.record("sighup", "Changing block forging is not effective until consensus has started");
      return;
    }
    this.record("sighup");
    const outcome = await readCredentials(this.#args.credentials);
    if (outcome.kind === "valid") {
      this.#enabled = true;
      this.#loaded = outcome;
      this.#kesStart = outcome.kesStartPeriod;
      if (this.#ours(outcome)) {
        const waiting = this.#args.kesAgentSocket !== undefined && !this.forging;
        this.record(
          "enable",
          waiting ? `${outcome.detail}; no KES key from the agent for it` : outcome.detail,
        );
      } else this.record("enable_no_stake", this.#noStake(outcome));
    } else if (outcome.kind === "missing") {
      this.#enabled = false;
      this.record("disable", outcome.detail);
    } else {
      this.record("reconfigure_error", `${outcome.detail}; block forging is not reconfigured`);
    }
  }

  /** The KES agent gave a key (its hot key id), or dropped it (undefined). */
  #agentKeyChanged(key: string | undefined): void {
    if (key === this.#agentKey) return;
    this.#agentKey = key;
    this.record("agent_key", key === undefined ? "no KES key" : `KES key ${key}`);
  }

  async #listen(): Promise<void> {
    const path = this.#args.socketPath;
    try {
      const info = await Deno.lstat(path);
      if (!info.isSocket) throw new Error(`Cannot open socket ${path}: a non-socket file is there`);
      await Deno.remove(path); // stale socket of an earlier run
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const listener = Deno.listen({ transport: "unix", path });
    this.#listener = listener;
    (async () => {
      try {
        for await (const conn of listener) conn.close();
      } catch {
        // listener closed
      }
    })();
  }
}

/** Runs the simulator: parse, install signals, start, wait for SIGTERM/SIGINT. */
async function main(args: string[]): Promise<number> {
  let parsed: SimNodeArgs;
  try {
    parsed = parseSimNodeArgs(args);
  } catch (error) {
    console.error(`cardano-node (simulated): ${(error as Error).message}`);
    return 2;
  }
  const node = new SimNode(parsed);
  // Install the handlers first: SIGHUP's default action would kill the process.
  Deno.addSignalListener("SIGHUP", () => void node.sighup());
  const stopped = new Promise<string>((resolve) => {
    Deno.addSignalListener("SIGTERM", () => resolve("SIGTERM"));
    Deno.addSignalListener("SIGINT", () => resolve("SIGINT"));
  });
  const failure = await Promise.race([node.start(), stopped.then(() => "stopped")]);
  if (failure === "stopped") {
    node.stop("signal before start");
    return 0;
  }
  if (failure !== undefined) {
    console.error(`cardano-node (simulated): ${failure}`);
    node.record("exit", `startup failed: ${failure}`);
    return 1;
  }
  const signal = await stopped;
  if (parsed.shutdownMs > 0) {
    node.record("terminating", signal);
    await new Promise((resolve) => setTimeout(resolve, parsed.shutdownMs));
  }
  node.stop(signal);
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
