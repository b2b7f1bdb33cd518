/**
 * A simulated cardano-node for tests: it follows the real node's rules for forging credentials
 * (see /work/shared/notes/cardano-node.md) and records every forging state change, so a test
 * can tell exactly when, and for how long, each node would have forged.
 *
 * Start it through `sim_node_process.ts`, which runs it under a process named `cardano-node`.
 * Arguments, as the real node's:
 *
 *     [run] --socket-path P --shelley-kes-key K --shelley-vrf-key V
 *       --shelley-operational-certificate C --record R
 *       [--start-as-non-producing-node | --non-producing-node] [--replay-ms N] [--shutdown-ms N]
 *
 * `--record R` (sim only) appends one JSON line per event to R. `--replay-ms N` (sim only) waits
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
 * - Start: exits 1 if a credential file is missing or invalid (even when non-producing, as the
 *   real node) or if the VRF key is readable by others; then forges unless non-producing.
 * - SIGHUP: all files valid -> enable; a file does NOT EXIST -> disable; any other problem
 *   (parse error, half-written, permission denied, KES/certificate mismatch) -> keep the state
 *   and record a `reconfigure_error`.
 * - SIGTERM/SIGINT: records `exit` and exits 0 (after `--shutdown-ms`, if given).
 *
 * Needs read on the credential files, write on the record and socket paths (run with -A).
 *
 * @module
 */

import {
  CredentialError,
  type CredentialKind,
  type CredentialTriple,
  validateCredentialSet,
} from "../../lib/cardano/cardano_keys.ts";

/** One line of the record file. */
export interface SimNodeEvent {
  /** Milliseconds since the epoch, sub-millisecond resolution. */
  t: number;
  pid: number;
  event: "start" | "enable" | "disable" | "reconfigure_error" | "sighup" | "terminating" | "exit";
  /** Whether the node forges after this event. */
  forging: boolean;
  detail?: string;
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
}

/** The parsed command line. */
export interface SimNodeArgs {
  socketPath: string;
  credentials: CredentialTriple<string>;
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
  const credentials: Partial<CredentialTriple<string>> = {};
  let socketPath: string | undefined;
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
    else if (flag === "--record") record = value;
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
    } else if (flag === "--shutdown-ms") {
      shutdownMs = Number(value);
      if (!Number.isSafeInteger(shutdownMs) || shutdownMs < 0) {
        throw new Error(`Cannot parse arguments: --shutdown-ms is ${value}, expected ms >= 0`);
      }
    } else if (!IGNORED_FLAGS.has(flag)) {
      throw new Error(`Cannot parse arguments: unknown flag ${flag}`);
    }
  }
  const missing = [
    ...(socketPath === undefined ? ["--socket-path"] : []),
    ...(record === undefined ? ["--record"] : []),
    ...Object.entries(CREDENTIAL_FLAGS).filter(([, kind]) => credentials[kind] === undefined)
      .map(([flag]) => flag),
  ];
  if (missing.length > 0) {
    throw new Error(`Cannot parse arguments: missing ${missing.join(", ")}`);
  }
  return {
    socketPath: socketPath!,
    credentials: credentials as CredentialTriple<string>,
    record: record!,
    nonProducing,
    replayMs,
    metrics: metricsPort === undefined ? undefined : { port: metricsPort, ...metrics },
    shutdownMs,
  };
}

/** What reading the credential files found, by the real node's SIGHUP rules. */
export type ReadOutcome =
  | { kind: "valid"; detail: string; kesStartPeriod: number }
  | { kind: "missing"; detail: string }
  | { kind: "error"; detail: string };

/**
 * Reads and validates the three credential files. A missing file wins over any other problem,
 * as in cardano-node, where a missing file means "do not forge". Needs read permission.
 */
export async function readCredentials(paths: CredentialTriple<string>): Promise<ReadOutcome> {
  const texts: Partial<CredentialTriple<string>> = {};
  const missing: string[] = [];
  const errors: string[] = [];
  for (const kind of ["kes", "vrf", "opcert"] as const) {
    try {
      texts[kind] = await Deno.readTextFile(paths[kind]);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) missing.push(paths[kind]);
      else errors.push(`Cannot read ${paths[kind]}: ${(error as Error).name}`);
    }
  }
  if (missing.length > 0) {
    return { kind: "missing", detail: `credential file does not exist: ${missing.join(", ")}` };
  }
  if (errors.length > 0) return { kind: "error", detail: errors.join("; ") };
  try {
    const facts = validateCredentialSet(texts as CredentialTriple<string>, paths);
    return {
      kind: "valid",
      detail: `issue counter ${facts.issueCounter}, KES start period ${facts.kesStartPeriod}`,
      kesStartPeriod: facts.kesStartPeriod,
    };
  } catch (error) {
    if (error instanceof CredentialError) return { kind: "error", detail: error.message };
    throw error;
  }
}

/** The simulator; exported so a test could drive it in-process, normally run by `main`. */
export class SimNode {
  #args: SimNodeArgs;
  #forging = false;
  #consensusStarted = false;
  #queue: Promise<void> = Promise.resolve();
  #listener: Deno.Listener | undefined;
  #metricsServer: Deno.HttpServer | undefined;
  #slotTimer: ReturnType<typeof setInterval> | undefined;
  #slot = 1000;
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
      : this.#forging
      ? 1
      : 0;
    const counter = (name: string) =>
      m.naming === "new"
        ? `cardano_node_metrics_Forge_${name}_counter`
        : `cardano_node_metrics_Forge_${
          name === "about_to_lead" ? "forge_about_to_lead" : name
        }_int`;
    const lines = [
      `cardano_node_metrics_slotNum_int ${this.#slot}`,
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
    this.#slot++;
    if (this.#forging || m.checksWhenIdle) this.#aboutToLead++;
    if (this.#forging && m.leaderEvery > 0 && this.#slot % m.leaderEvery === 0) {
      this.#leader++;
      this.#forged++;
    }
  }

  #serveMetrics(): void {
    const m = this.#args.metrics;
    if (m === undefined) return;
    this.#slotTimer = setInterval(() => this.#tick(), m.slotMs);
    this.#metricsServer = Deno.serve(
      { hostname: "127.0.0.1", port: m.port, onListen: () => {} },
      (request) =>
        new URL(request.url).pathname === "/metrics"
          ? new Response(this.metricsText(), { headers: { "content-type": "text/plain" } })
          : new Response("not found", { status: 404 }),
    );
  }

  /** Whether the node forges now. */
  get forging(): boolean {
    return this.#forging;
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
    this.#forging = !this.#args.nonProducing;
    if (this.#forging) this.#kesStart = outcome.kesStartPeriod;
    this.#gaugeAtStart = this.#forging ? 1 : 0;
    this.#consensusStarted = true;
    this.#serveMetrics();
    this.record("start", this.#args.nonProducing ? "non-producing" : outcome.detail);
    await this.#listen();
    return undefined;
  }

  /** Handles a SIGHUP: queued, so overlapping signals are handled one after the other. */
  sighup(): Promise<void> {
    this.#queue = this.#queue.then(() => this.#reconfigure());
    return this.#queue;
  }

  /** Records `event` with the current forging state. */
  record(event: SimNodeEvent["event"], detail?: string): void {
    const line: SimNodeEvent = {
      t: performance.timeOrigin + performance.now(),
      pid: Deno.pid,
      event,
      forging: this.#forging,
      ...(detail === undefined ? {} : { detail }),
    };
    // One write with O_APPEND, so lines from several processes never interleave.
    Deno.writeTextFileSync(this.#args.record, JSON.stringify(line) + "\n", {
      append: true,
      create: true,
    });
  }

  /** Stops forging, records `exit`, closes the socket. */
  stop(signal: string): void {
    this.#forging = false;
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
      this.#forging = true;
      this.#kesStart = outcome.kesStartPeriod;
      this.record("enable", outcome.detail);
    } else if (outcome.kind === "missing") {
      this.#forging = false;
      this.record("disable", outcome.detail);
    } else {
      this.record("reconfigure_error", `${outcome.detail}; block forging is not reconfigured`);
    }
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
