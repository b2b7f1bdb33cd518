/**
 * forge-manager: runs beside cardano-node, elects one block-producing leader through a
 * coordination.k8s.io/v1 Lease, and gives only the leader's node the forging keys.
 *
 * This file is the privileged core: it validates the configuration, starts the sandboxed worker
 * (lib/runtime/worker.ts) with permissions computed from it, finds and signals the node for the worker,
 * and turns SIGTERM/SIGINT into a planned end of term. If the worker dies or hangs on shutdown,
 * the core itself unlinks the keys and signals the node: failing safe.
 *
 * @module
 */

import {
  commandPermissions,
  type CommandSpec,
  EXIT_FAILED,
  EXIT_OK,
  EXIT_USAGE,
  type FromCliWorker,
  type ToCliWorker,
} from "./lib/core/cli/command.ts";
import { COMMANDS } from "./lib/core/cli/commands.ts";
import { type Config, CONFIG_DEFAULTS, ConfigError, parseConfig } from "./lib/core/config.ts";
import { systemClock } from "./lib/base/clock.ts";
import { removeKeysAndSignal } from "./lib/core/fail_safe.ts";
import { runGuard } from "./lib/core/guard.ts";
import { GUARD_VARIABLES, parseGuardConfig } from "./lib/core/guard_config.ts";
import { GuardLink } from "./lib/core/guard_link.ts";
import { inClusterApi, sandboxGrants, SERVICE_ACCOUNT_DIR } from "./lib/core/sandbox_grants.ts";
import { ProcNodeProcess } from "./lib/core/proc.ts";
import { newIdentity } from "./lib/base/identity.ts";
import { createLogger, errorText } from "./lib/base/log.ts";
import type { CoreReply, CoreRequest } from "./lib/core/node_process.ts";
import { SignalError } from "./lib/core/node_process.ts";
import { sandboxPermissions } from "./lib/core/sandbox.ts";
import { VERSION } from "./lib/base/version.ts";
import type { FromWorker, ToWorker } from "./lib/core/worker_protocol.ts";

const WORKER_URL = new URL("./lib/runtime/worker.ts", import.meta.url);
const CLI_WORKER_URL = new URL("./lib/cli/worker.ts", import.meta.url);
/** How long a planned shutdown may take before the core cleans up by itself. */
const SHUTDOWN_BOUND_MS = 8000;

const HELP = `forge-manager ${VERSION}
Runs beside cardano-node; elects one block producer through a Kubernetes Lease and gives only
the leader's node the forging keys (KES key, VRF key, operational certificate).

Usage: forge-manager [--help | --version]      run the sidecar
       forge-manager guard                    run the guard beside the node (see README)
       forge-manager COMMAND [--help] ...     run an operator command

Commands:
${Object.values(COMMANDS).map((c) => `  ${c.name.padEnd(24)} ${c.summary}`).join("\n")}

Configuration is read from environment variables (defaults in brackets):
${Object.entries(CONFIG_DEFAULTS).map(([k, v]) => `  ${k.padEnd(24)} [${v}]`).join("\n")}
See README.md for what each one means. Signals: SIGTERM/SIGINT hand over leadership and exit.
The guard reads ${GUARD_VARIABLES.join(", ")}.`;

function spawnWorker(permissions: Deno.PermissionOptionsObject): Worker {
  return new Worker(WORKER_URL, { type: "module", deno: { permissions } });
}

/** Asks a throw-away worker (read of the kubeconfig only, no network) where the API server is. */
function probeKubeconfig(
  path: string,
  context?: string,
): Promise<{ server: string; files: string[]; commands: string[] }> {
  const worker = spawnWorker({
    read: [path],
    env: true,
    sys: ["uid"],
    net: false,
    write: false,
    run: false,
    ffi: false,
    import: false,
  });
  return new Promise((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<FromWorker>) => {
      worker.terminate();
      if (e.data.op === "probed") {
        resolve({ server: e.data.server, files: e.data.files, commands: e.data.commands });
      } else if (e.data.op === "probe_failed") reject(new Error(e.data.message));
    };
    worker.onerror = (e) => {
      e.preventDefault();
      worker.terminate();
      reject(new Error(`Cannot read KUBECONFIG ${path}: ${e.message}`));
    };
    worker.postMessage(
      {
        op: "probe",
        kubeconfig: path,
        ...(context !== undefined ? { context } : {}),
      } satisfies ToWorker,
    );
  });
}

/** The core's own last resort: unlink the keys and signal the node, with no help from the worker. */
async function failSafe(
  config: Config,
  node: ProcNodeProcess,
  log: ReturnType<typeof createLogger>,
) {
  const targets = Object.values(config.credentials).map((c) => c.target);
  const { ok, ...result } = await removeKeysAndSignal(targets, node);
  if (ok) log.warn("fail-safe: keys removed and node signalled by the core", { ...result });
  else log.error("fail-safe: could not fully stop the node", { ...result });
}

/** `forge-manager guard`: the guard process (lib/core/guard.ts), until SIGTERM or SIGINT. */
async function guardMain(): Promise<number> {
  let config;
  try {
    config = parseGuardConfig(Deno.env.toObject());
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config.logLevel, undefined, { part: "guard" });
  const stop = new AbortController();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => stop.abort());
  }
  try {
    await runGuard(config, {
      clock: systemClock,
      log,
      node: new ProcNodeProcess(config.nodeProcessName),
    }, stop.signal);
  } catch (err) {
    log.error("the guard failed", { err });
    return 1;
  }
  return 0;
}

/**
 * Runs an operator command: parses its arguments here, then runs it in a worker that may touch
 * only what the command's spec grants (lib/core/cli/command.ts). Returns the exit code.
 */
async function runCommand(spec: CommandSpec, args: string[]): Promise<number> {
  const prepared = spec.prepare(args, Deno.env.toObject(), Deno.cwd());
  if (prepared.kind === "help") {
    console.log(prepared.text);
    return EXIT_OK;
  }
  if (prepared.kind === "usage") {
    console.error(prepared.message);
    return EXIT_USAGE;
  }
  let grants = prepared.grants;
  const kube = prepared.kube;
  if (kube !== undefined) {
    // A command that talks to the API server: read the kubeconfig and the files it names, and
    // connect to its server, nothing else (found by a throw-away worker without network).
    try {
      const probed = await probeKubeconfig(kube.kubeconfig, kube.context);
      grants = {
        read: [...grants.read, ...probed.files],
        net: [...(grants.net ?? []), probed.server],
        kubeClient: true,
        run: probed.commands,
      };
    } catch (err) {
      console.error(`forge-manager ${spec.name}: ${errorText(err)}`);
      return EXIT_FAILED;
    }
  }
  const worker = new Worker(CLI_WORKER_URL, {
    type: "module",
    deno: { permissions: commandPermissions(grants) },
  });
  const code = await new Promise<number>((resolve) => {
    worker.onmessage = (e: MessageEvent<FromCliWorker>) => {
      if (e.data.op === "exit") resolve(e.data.code);
      else {
        console.error(`forge-manager ${spec.name}: ${e.data.message}`);
        resolve(EXIT_FAILED);
      }
    };
    worker.onerror = (e) => {
      e.preventDefault();
      console.error(`forge-manager ${spec.name}: the command crashed: ${e.message}`);
      resolve(EXIT_FAILED);
    };
    worker.postMessage(
      { op: "run", command: spec.name, options: prepared.options } satisfies ToCliWorker,
    );
  });
  worker.terminate();
  return code;
}

async function main(args: string[]): Promise<number> {
  if (args[0] === "guard" && args.length === 1) return await guardMain();
  const command = args[0] === undefined ? undefined : COMMANDS[args[0]];
  if (command !== undefined) return await runCommand(command, args.slice(1));
  if (args.includes("--help") || args.includes("-h")) {
    console.log(HELP);
    return 0;
  }
  if (args.includes("--version")) {
    console.log(`forge-manager ${VERSION}`);
    return 0;
  }
  if (args.length > 0) {
    console.error(`Cannot start: unknown argument ${JSON.stringify(args[0])} (try --help)`);
    return 2;
  }
  let config: Config;
  try {
    config = parseConfig(Deno.env.toObject());
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config.logLevel, undefined, { pod: config.podName, part: "core" });
  const identity = newIdentity(config.podName);
  const node = new ProcNodeProcess(config.nodeProcessName);

  let api: string;
  let kubeFiles: string[];
  let commands: string[] = [];
  let coordination: { api: string; files: string[] } | undefined;
  try {
    if (config.kubeconfig !== undefined) {
      const probed = await probeKubeconfig(config.kubeconfig);
      api = probed.server;
      kubeFiles = probed.files;
      commands = probed.commands;
    } else {
      api = inClusterApi(Deno.env.toObject());
      kubeFiles = [SERVICE_ACCOUNT_DIR];
    }
    if (config.global !== undefined) {
      // The coordination cluster, reached with its own kubeconfig: its server and files too.
      const probed = await probeKubeconfig(config.global.kubeconfig);
      coordination = { api: probed.server, files: probed.files };
      commands = [...new Set([...commands, ...probed.commands])];
    }
  } catch (err) {
    log.error("cannot configure the Kubernetes client", { err });
    return 2;
  }
  const grants = { ...sandboxGrants(config, api, kubeFiles, coordination), run: commands };
  log.info("starting the sandboxed worker", {
    read: grants.read,
    write: grants.write,
    net: grants.net,
    run: grants.run,
  });
  const worker = spawnWorker(sandboxPermissions(grants));
  const finished = Promise.withResolvers<{ ok: boolean; message?: string; safe?: boolean }>();
  // The guard's socket is the core's: the worker answers its pings through us, never we for it.
  const guard = config.guardSocket === undefined ? undefined : new GuardLink({
    path: config.guardSocket,
    hello: {
      op: "hello",
      targets: Object.values(config.credentials).map((c) => c.target),
      nodeProcessName: config.nodeProcessName,
      pingMs: config.retryPeriodMs,
    },
    clock: systemClock,
    log,
    notify: (notice) => worker.postMessage({ op: "guard", notice } satisfies ToWorker),
  });

  async function answer(request: CoreRequest): Promise<CoreReply> {
    try {
      if (request.op === "find") {
        const found = await node.find();
        return found === undefined
          ? { id: request.id, ok: true }
          : { id: request.id, ok: true, node: found };
      }
      await node.hangup(request.node);
      return { id: request.id, ok: true };
    } catch (err) {
      return {
        id: request.id,
        ok: false,
        reason: err instanceof SignalError ? err.reason : "error",
        message: errorText(err),
      };
    }
  }

  worker.onmessage = (e: MessageEvent<FromWorker>) => {
    const msg = e.data;
    if (msg.op === "request") {
      answer(msg.request).then((reply) =>
        worker.postMessage({ op: "reply", reply } satisfies ToWorker)
      );
    } else if (msg.op === "guard_pong") {
      guard?.pong(msg.seq, msg.armed, msg.leftMs);
    } else if (msg.op === "guard_arm") {
      guard?.arm(msg.id);
    } else if (msg.op === "done") {
      finished.resolve({
        ok: msg.ok,
        ...(msg.message !== undefined ? { message: msg.message } : {}),
        ...(msg.safe !== undefined ? { safe: msg.safe } : {}),
      });
    } else if (msg.op === "listening") {
      log.info("serving /metrics, /healthz, /readyz, /startup-status", { port: msg.port });
    }
  };
  worker.onerror = (e) => {
    e.preventDefault();
    finished.resolve({ ok: false, message: `worker crashed: ${e.message}` });
  };

  let stopping = false;
  const stop = (signal: Deno.Signal) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down: handing over leadership", { signal });
    worker.postMessage({ op: "shutdown" } satisfies ToWorker);
    setTimeout(
      () => finished.resolve({ ok: false, message: "shutdown took too long" }),
      SHUTDOWN_BOUND_MS,
    );
  };
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));

  worker.postMessage({ op: "start", config, identity } satisfies ToWorker);
  guard?.start();
  const result = await finished.promise;
  worker.terminate();
  if (!result.ok) {
    log.error("the worker ended abnormally; the core removes the keys itself", {
      err: result.message,
    });
    await failSafe(config, node, log);
    guard?.close(); // armed, the guard acts too: the sidecar is gone
    return 1;
  }
  // A confirmed last stop: the guard need not act when we go. Otherwise it does.
  if (result.safe === true) await guard?.bye();
  else guard?.close();
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
