/**
 * PID 1 of a simulated pod (run by tests/support/pod.ts inside `unshare --pid --mount-proc`), so
 * the sidecar sees only its own node in /proc, as with `shareProcessNamespace: true`.
 *
 * Like a native sidecar, forge-manager starts first; the node starts once /startup-status
 * answers 200. Signals from the test harness:
 * - SIGWINCH: start the sidecar again (after the harness killed it; not SIGUSR1, which makes
 *   Deno open its inspector);
 * - SIGUSR2: restart the node (SIGTERM, then a new process with a new PID; a start that fails
 *   is retried with a back-off, as a kubelet restarts a crashing container);
 * - SIGTERM: stop the sidecar (planned shutdown), then the node, then the guard, then exit.
 *
 * With a guard (`forge-manager guard`), it starts first and is started again whenever it exits,
 * after half a second, as a kubelet restarts a native sidecar.
 *
 * @module
 */

import { type SimNode, startSimNode } from "./sim_node_process.ts";
import { sleep, waitUntil } from "./wait.ts";

interface PodSpec {
  repo: string;
  env: Record<string, string>;
  sidecarLog: string;
  metricsPort: number;
  node: {
    /** Absent with a KES agent. */
    kes?: string;
    /** The KES agent's socket (`--shelley-kes-agent-socket`). */
    kesAgentSocket?: string;
    vrf: string;
    cert: string;
    socket: string;
    record: string;
    /** The pool with stake (the sim node's --pool-id). */
    poolId?: string;
    dir: string;
    /** How long the node takes to shut down after SIGTERM (ms). */
    shutdownMs?: number;
    /** The node on the chain's clock (pod.ts `chain`): its metrics port and files. */
    metricsPort?: number;
    network?: "mainnet" | "preprod" | "preview";
    lagFile?: string;
    leaderSlotsFile?: string;
  };
  /** Start the node before the sidecar (for a sidecar with START_AS_NON_PRODUCING=false). */
  nodeFirst?: boolean;
  /** Service-account files to show at the in-cluster path, as the kubelet would. */
  serviceAccount?: { token: string; ca: string; namespace: string };
  /** The sidecar's `--v8-flags` value ("" for none). */
  v8Flags: string;
  /** A memory cgroup's `cgroup.procs`: the sidecar joins it before it execs (all its life). */
  cgroupProcs?: string;
  /** The guard's environment and log, when the pod runs one. */
  guard?: { env: Record<string, string>; log: string; cgroupProcs?: string };
}

const spec = JSON.parse(Deno.args[0]!) as PodSpec;

/**
 * Shows the service-account files at /var/run/secrets/kubernetes.io/serviceaccount inside this
 * pod's own mount namespace only: a tmpfs over /run (where /var/run points), nothing on the host.
 */
async function mountServiceAccount(sa: NonNullable<PodSpec["serviceAccount"]>): Promise<void> {
  const mount = await new Deno.Command("mount", { args: ["-t", "tmpfs", "pod-run", "/run"] })
    .output();
  if (!mount.success) {
    throw new Error(`cannot mount a tmpfs on /run: ${new TextDecoder().decode(mount.stderr)}`);
  }
  const dir = "/run/secrets/kubernetes.io/serviceaccount";
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/token`, sa.token);
  await Deno.writeTextFile(`${dir}/ca.crt`, sa.ca);
  await Deno.writeTextFile(`${dir}/namespace`, sa.namespace);
}

if (spec.serviceAccount !== undefined) await mountServiceAccount(spec.serviceAccount);
let sidecar: Deno.ChildProcess | undefined;
let node: SimNode | undefined;
let guard: Deno.ChildProcess | undefined;
let terminating = false;

/** `command`, joining the memory cgroup `procs` first when there is one (same PID after exec). */
function inCgroup(command: string[], procs: string | undefined): string[] {
  return procs === undefined
    ? command
    : ["sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, ...command];
}

/** Spawns `program` with only `env`, its stdout and stderr appended to `log`. */
function spawnLogged(
  program: string,
  args: string[],
  env: Record<string, string>,
  log: Deno.FsFile,
): Deno.ChildProcess {
  const child = new Deno.Command(program, {
    args,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const pipe = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeTo(new WritableStream({ write: (chunk) => void log.write(chunk) })).catch(() => {});
  void pipe(child.stdout);
  void pipe(child.stderr);
  return child;
}

/** Starts the guard, and again whenever it exits while the pod runs. */
async function startGuard(g: NonNullable<PodSpec["guard"]>): Promise<void> {
  const log = await Deno.open(g.log, { append: true, create: true, write: true });
  const [program, ...args] = inCgroup([
    Deno.execPath(),
    "run",
    "-P=forge-manager",
    "--no-prompt",
    "--config",
    `${spec.repo}/deno.json`,
    `${spec.repo}/main.ts`,
    "guard",
  ], g.cgroupProcs);
  guard = spawnLogged(program!, args, g.env, log);
  void guard.status.then(async () => {
    if (terminating) return;
    await sleep(500);
    if (!terminating) await startGuard(g);
  });
  // The sidecar connects when the socket exists (it also retries, as across a guard restart).
  await waitUntil("the guard's socket", async () => {
    try {
      await Deno.lstat(g.env.GUARD_SOCKET!);
      return true;
    } catch {
      return false;
    }
  }, 30_000);
}

async function startSidecar(): Promise<void> {
  const log = await Deno.open(spec.sidecarLog, { append: true, create: true, write: true });
  // In a memory cgroup: the shell joins it, then execs the sidecar (same PID, charged from start).
  const [program, ...args] = inCgroup([
    Deno.execPath(),
    "run",
    "-P=forge-manager",
    "--no-prompt",
    ...(spec.v8Flags === "" ? [] : [`--v8-flags=${spec.v8Flags}`]),
    "--config",
    `${spec.repo}/deno.json`,
    `${spec.repo}/main.ts`,
  ], spec.cgroupProcs);
  sidecar = spawnLogged(program!, args, spec.env, log);
}

async function startupDone(): Promise<void> {
  await waitUntil("the sidecar's /startup-status to answer 200", async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${spec.metricsPort}/startup-status`);
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false; // not listening yet
    }
  }, 30_000);
}

async function startNode(): Promise<void> {
  node = await startSimNode({ ...spec.node, nonProducing: true, timeoutMs: 30_000 });
}

Deno.addSignalListener("SIGWINCH", () => void startSidecar());
/**
 * Restarts the node as a kubelet restarts a container: a start that fails (e.g. the node exits
 * at boot because a credential file is missing) is tried again after a growing back-off
 * (0.5 s, 1 s, 2 s, capped at 4 s, like CrashLoopBackOff but shorter), until it runs.
 */
async function restartNode(): Promise<void> {
  await node?.kill("SIGTERM");
  await node?.exited;
  for (let backoff = 500;; backoff = Math.min(2 * backoff, 4000)) {
    try {
      await startNode();
      return;
    } catch (err) {
      console.error(`pod_init: node start failed, retrying in ${backoff} ms: ${err}`);
      await sleep(backoff);
    }
  }
}

Deno.addSignalListener("SIGUSR2", () => void restartNode());
Deno.addSignalListener("SIGTERM", async () => {
  terminating = true;
  try {
    sidecar?.kill("SIGTERM");
  } catch { /* already gone */ }
  await sidecar?.status;
  await node?.kill("SIGTERM");
  await node?.exited;
  try {
    guard?.kill("SIGTERM");
  } catch { /* already gone */ }
  await guard?.status;
  Deno.exit(0);
});

if (spec.guard !== undefined) await startGuard(spec.guard);
if (spec.nodeFirst) {
  await startNode();
  await startSidecar();
} else {
  await startSidecar();
  await startupDone();
  await startNode();
}
await Deno.writeTextFile(`${spec.node.dir}/pod.ready`, "ready\n");
setInterval(() => {}, 1 << 30); // PID 1 stays until told to stop
