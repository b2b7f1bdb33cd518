/**
 * Starts the simulated cardano-node (`sim_node.ts`) as a child process whose name is exactly
 * `cardano-node` (`/proc/PID/comm`), as the forge manager's process discovery expects: the
 * Deno binary is run through a symlink named `cardano-node`, and Linux names a process after
 * the file it executed.
 *
 * Needs run permission for the Deno binary, read/write on the temp dir (the symlink), and
 * whatever the simulator needs (it runs with -A).
 *
 * @module
 */

import { appendKilled, nowMs } from "./forging_log.ts";
import { waitUntil } from "./wait.ts";

const SIM_NODE = new URL("./sim_node.ts", import.meta.url).pathname;

/** Options of {@linkcode startSimNode}. */
export interface SimNodeOptions {
  /** Working directory of the node (default: the current one). */
  dir?: string;
  /** The credential paths the node is given (no `kes` with `kesAgentSocket`). */
  kes?: string;
  vrf: string;
  cert: string;
  /** Take the KES key from a KES agent at this socket (`--shelley-kes-agent-socket`). */
  kesAgentSocket?: string;
  /** The pool with stake (`--pool-id`): any other pool's credentials never forge. */
  poolId?: string;
  /** The local socket path; waited for before `startSimNode` returns. */
  socket: string;
  /** The record file the node appends its events to. */
  record: string;
  /** Start not forging (`--start-as-non-producing-node`). */
  nonProducing: boolean;
  /** Use the pre-10.5.1 flag `--non-producing-node` instead (default false). */
  legacyNonProducingFlag?: boolean;
  /** Simulated ledger replay before the socket opens, in ms (default 0). */
  replayMs?: number;
  /** How long a shutdown takes after SIGTERM, in ms (default 0: at once). */
  shutdownMs?: number;
  /** How long to wait for the socket (default 20 s). */
  timeoutMs?: number;
  /** Wait until the socket accepts a connection before returning (default true). */
  waitForSocket?: boolean;
  /** Serve the node's metrics on this loopback port (see sim_node.ts for the flags below). */
  metricsPort?: number;
  /** Slot length of the simulated tip in ms (default 1000). */
  slotMs?: number;
  /** Lead (and forge) every Kth slot while forging (default never). */
  leaderEvery?: number;
  /** The current KES period the node reports (default: the certificate's start). */
  kesPeriod?: number;
  /** `new`: counters end in `_counter`, as under the new tracing system. */
  metricsNaming?: "legacy" | "new";
  /** A known-wrong `forging_enabled` gauge: stale across SIGHUPs, or always 1. */
  forgingGauge?: "truthful" | "stale" | "always-one";
  /** Count leadership checks even when not forging (cardano-node #6576). */
  checksWhenIdle?: boolean;
  /** The tip follows this network's wall-clock slot (`--network`). */
  network?: "mainnet" | "preprod" | "preview";
  /** A file holding how many slots the tip lags (`--lag-file`). */
  lagFile?: string;
  /** A file holding the pool's leader slots (`--leader-slots`). */
  leaderSlotsFile?: string;
}

/** A running simulated node. */
export interface SimNode extends AsyncDisposable {
  readonly pid: number;
  readonly record: string;
  readonly socket: string;
  /** Resolves when the process ends. */
  readonly exited: Promise<Deno.CommandStatus>;
  /**
   * Sends a signal; a no-op once the process has ended. After SIGKILL it appends a `killed`
   * event to the record (the node cannot), timed right after the kill.
   */
  kill(signal: Deno.Signal): Promise<void>;
  /** What the process wrote to stderr so far. */
  stderr(): string;
}

/**
 * The path of a symlink named `cardano-node` to the running Deno binary, created once in a
 * per-user directory under `$TMPDIR` (or /tmp) and replaced atomically if it points elsewhere.
 */
export async function cardanoNodeExecutable(): Promise<string> {
  const base = Deno.env.get("TMPDIR") ?? "/tmp";
  const dir = `${base}/forge-manager-sim-node-${Deno.uid()}`;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await Deno.lstat(dir);
  if (!info.isDirectory || info.uid !== Deno.uid() || ((info.mode ?? 0) & 0o022) !== 0) {
    throw new Error(`Cannot use ${dir} for the cardano-node symlink: not a private directory`);
  }
  const link = `${dir}/cardano-node`;
  const target = Deno.execPath();
  try {
    if (await Deno.readLink(link) === target) return link;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const temp = `${dir}/.cardano-node.${crypto.randomUUID()}`;
  await Deno.symlink(target, temp);
  await Deno.rename(temp, link); // atomic, so concurrent test processes never see a gap
  return link;
}

/**
 * Starts a simulated node and waits until its socket accepts a connection.
 *
 * @throws {Error} with the node's stderr if it exits first (e.g. missing credentials), or on
 * timeout (the process is then killed)
 */
export async function startSimNode(options: SimNodeOptions): Promise<SimNode> {
  const args = [
    "run",
    "-A",
    "--quiet",
    "--no-lock",
    SIM_NODE,
    "run",
    "--socket-path",
    options.socket,
    ...(options.kes === undefined ? [] : ["--shelley-kes-key", options.kes]),
    ...(options.kesAgentSocket === undefined
      ? []
      : ["--shelley-kes-agent-socket", options.kesAgentSocket]),
    "--shelley-vrf-key",
    options.vrf,
    "--shelley-operational-certificate",
    options.cert,
    "--record",
    options.record,
    ...(options.poolId === undefined ? [] : ["--pool-id", options.poolId]),
    ...(options.nonProducing
      ? [options.legacyNonProducingFlag ? "--non-producing-node" : "--start-as-non-producing-node"]
      : []),
    ...(options.replayMs ? ["--replay-ms", String(options.replayMs)] : []),
    ...(options.metricsPort === undefined ? [] : ["--metrics-port", String(options.metricsPort)]),
    ...(options.slotMs === undefined ? [] : ["--slot-ms", String(options.slotMs)]),
    ...(options.leaderEvery === undefined ? [] : ["--leader-every", String(options.leaderEvery)]),
    ...(options.kesPeriod === undefined ? [] : ["--kes-period", String(options.kesPeriod)]),
    ...(options.metricsNaming === undefined ? [] : ["--metrics-naming", options.metricsNaming]),
    ...(options.forgingGauge === undefined ? [] : ["--forging-gauge", options.forgingGauge]),
    ...(options.checksWhenIdle ? ["--checks-when-idle"] : []),
    ...(options.network === undefined ? [] : ["--network", options.network]),
    ...(options.lagFile === undefined ? [] : ["--lag-file", options.lagFile]),
    ...(options.leaderSlotsFile === undefined ? [] : ["--leader-slots", options.leaderSlotsFile]),
    ...(options.shutdownMs ? ["--shutdown-ms", String(options.shutdownMs)] : []),
  ];
  const child = new Deno.Command(await cardanoNodeExecutable(), {
    args,
    cwd: options.dir,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();

  let stderrText = "";
  const stderrDone = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) stderrText += decoder.decode(chunk, { stream: true });
  })();
  let ended = false;
  const exited = child.status.then(async (status) => {
    ended = true;
    await stderrDone.catch(() => {});
    return status;
  });

  const node: SimNode = {
    pid: child.pid,
    record: options.record,
    socket: options.socket,
    exited,
    async kill(signal: Deno.Signal) {
      if (ended) return;
      try {
        child.kill(signal);
      } catch (error) {
        if (ended || error instanceof TypeError) return; // exited meanwhile
        throw error;
      }
      if (signal === "SIGKILL") await appendKilled(options.record, nowMs(), child.pid);
    },
    stderr: () => stderrText,
    async [Symbol.asyncDispose]() {
      await node.kill("SIGTERM");
      await exited;
    },
  };

  if (options.waitForSocket === false) return node;
  try {
    await waitUntil(`the simulated cardano-node's socket ${options.socket} to accept`, async () => {
      if (ended) {
        const status = await exited;
        throw new Error(
          `Cannot start the simulated cardano-node: it exited with code ${status.code} ` +
            `before its socket accepted a connection; stderr: ${stderrText.trim()}`,
        );
      }
      return await socketAccepts(options.socket);
    }, {
      timeoutMs: options.timeoutMs ?? 20_000,
      intervalMs: 10,
      detail: () => `stderr: ${stderrText.trim()}`,
    });
  } catch (err) {
    await node.kill("SIGKILL");
    await exited;
    throw err;
  }
  return node;
}

/** Whether a unix socket at `path` accepts a connection now. */
export async function socketAccepts(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** The name of process `pid` (`/proc/PID/comm` without the newline). Needs read on /proc. */
export async function processName(pid: number): Promise<string> {
  return (await Deno.readTextFile(`/proc/${pid}/comm`)).trimEnd();
}

/**
 * Whether process `pid` has a handler for signal number `signo` (the SigCgt mask of
 * `/proc/PID/status`); SIGHUP (1) sent before that would kill it. Needs read on /proc.
 */
export async function catchesSignal(pid: number, signo: number): Promise<boolean> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const mask = status.match(/^SigCgt:\s*([0-9a-f]+)$/m)?.[1];
  if (mask === undefined) throw new Error(`Cannot read SigCgt of process ${pid}`);
  return ((BigInt(`0x${mask}`) >> BigInt(signo - 1)) & 1n) === 1n;
}
