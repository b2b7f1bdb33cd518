/**
 * A simulated pod for integration tests, the demo and the benchmark: a PID namespace of its own
 * (`unshare --pid --fork --mount-proc`, like `shareProcessNamespace: true`) holding forge-manager
 * (`main.ts` under the shipped permission set) and the simulated cardano-node, with real files:
 * `<dir>/secrets` (sources), `<dir>/ipc` (targets and socket), the node's forging record and
 * the sidecar's log. The harness signals the processes by their host PIDs.
 *
 * Needs to run as root (unshare) with `-P=dev`.
 *
 * @module
 */

import { appendKilled } from "./forging_log.ts";
import { exists } from "./fs.ts";
import { validateCredentialSet } from "../../lib/cardano/cardano_keys.ts";
import { type CredentialSet, makeCredentialSet, writeCredentialSet } from "./keys.ts";
import { sleep, waitUntil } from "./wait.ts";

const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const INIT = new URL("./pod_init.ts", import.meta.url).pathname;

/** Options of {@linkcode startPod}. */
export interface PodOptions {
  name: string;
  /** A folder for this pod's files (created). */
  dir: string;
  /** Environment for forge-manager on top of the computed paths (KUBECONFIG, NAMESPACE, ...). */
  env: Record<string, string>;
  /** The credential set (default: a fresh dummy set; share one set across replicas). */
  credentials?: CredentialSet;
  /** Start the node before the sidecar. */
  nodeFirst?: boolean;
  /**
   * A KES agent's socket (a simulated agent the test runs, `sim_kes_agent.ts`): the node takes its
   * KES key from it (`--shelley-kes-agent-socket`), the sidecar gets `KES_AGENT_SOCKET`, and the
   * pod's Secret holds no KES key.
   */
  kesAgentSocket?: string;
  /** How long the node takes to shut down after SIGTERM, in ms (default 0: at once). */
  nodeShutdownMs?: number;
  /**
   * Run in-cluster: these service-account files appear at the in-cluster path inside the pod's
   * mount namespace (set KUBERNETES_SERVICE_HOST/PORT in `env`, and no KUBECONFIG).
   */
  serviceAccount?: { token: string; ca: string; namespace: string };
  /** The sidecar's V8 flags (default: those of deno.json's `start` task, as shipped). */
  v8Flags?: string;
  /**
   * The folder for the placed keys and the node socket (created; default `<dir>/ipc`). The
   * shipped StatefulSet mounts it as tmpfs (an emptyDir with `medium: Memory`).
   */
  ipc?: string;
  /**
   * A memory cgroup's `cgroup.procs` file: the sidecar joins it as it starts (every start), so its
   * whole life is charged there, as a container's is under `limits.memory`
   * (tools/memory_cgroup.ts).
   */
  sidecarCgroupProcs?: string;
  /**
   * Runs `forge-manager guard` in the pod too, started before the sidecar and restarted when it
   * exits (as a kubelet runs a native sidecar), its socket at `<dir>/guard/guard.sock`; the sidecar
   * gets GUARD_SOCKET (set FENCE in `env`). A memory cgroup's `cgroup.procs` for it, optional.
   */
  guard?: boolean | { cgroupProcs?: string };
  /**
   * The node on the chain's clock (sim_node.ts `--network`): it serves its metrics, the sidecar
   * reads them (NODE_METRICS_URL, NETWORK), its tip lags by what `lagFile` says, and it forges
   * (and records) the pool's slots in `leaderSlotsFile`.
   */
  chain?: {
    network: "mainnet" | "preprod" | "preview";
    lagFile?: string;
    leaderSlotsFile?: string;
  };
}

/** The `--v8-flags` value of deno.json's `start` task ("" when it has none). */
export function shippedV8Flags(): string {
  const denoJson = JSON.parse(Deno.readTextFileSync(`${REPO}/deno.json`)) as {
    tasks: Record<string, string>;
  };
  return /--v8-flags=(\S+)/.exec(denoJson.tasks.start ?? "")?.[1] ?? "";
}

/** A running simulated pod. */
export interface Pod extends AsyncDisposable {
  readonly name: string;
  readonly dir: string;
  readonly record: string;
  readonly sidecarLog: string;
  readonly metricsPort: number;
  /** The guard's log (empty without a guard). */
  readonly guardLog: string;
  /** Host PIDs of the processes in the pod (undefined when not running). */
  pids(): { init?: number; node?: number; sidecar?: number; guard?: number };
  /** Sends a signal to the sidecar (forge-manager's core process). */
  signalSidecar(signal: Deno.Signal): void;
  /** Sends a signal to the guard process (none without a guard). */
  signalGuard(signal: Deno.Signal): void;
  /** Starts the sidecar again after it was killed. */
  restartSidecar(): void;
  /** Restarts the node process (new PID). */
  restartNode(): void;
  /**
   * SIGKILLs the node process alone (the sidecar runs on; a stale socket file stays), and records
   * the kill. {@linkcode restartNode} starts a new one.
   */
  killNode(): Promise<void>;
  /**
   * Runs a command inside the pod's mount namespace (nsenter), e.g. a read-only bind mount that
   * vanishes with the pod. Returns its output; throws if it fails.
   */
  inMountNamespace(command: string[]): Promise<string>;
  /** SIGKILLs everything in the pod at once (the pod dies), and records the kill. */
  kill(): Promise<void>;
  /** Planned stop: SIGTERM to the sidecar, then the node. */
  terminate(): Promise<void>;
  /**
   * SIGTERM to the node alone, as a kubelet stops a main container; resolves once the node
   * process has exited (it is not started again). Resolves at once when no node runs.
   */
  terminateNode(): Promise<void>;
  /**
   * SIGTERM to the sidecar alone, as a kubelet stops a native sidecar; resolves once it has
   * exited (never, while it is frozen). Resolves at once when no sidecar runs.
   */
  terminateSidecar(): Promise<void>;
  readonly exited: Promise<Deno.CommandStatus>;
}

/** Returns the host PIDs of the children of `pid` (none once it is gone). */
export function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      const text = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`).trim();
      if (text !== "") out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return out;
}

function comm(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
  } catch {
    return "";
  }
}

/** Whether `pid` runs `forge-manager guard` (its command line ends with `guard`). */
function isGuard(pid: number): boolean {
  try {
    const args = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter((a) => a !== "");
    return args.at(-1) === "guard";
  } catch {
    return false;
  }
}

/** Whether `pid` has exited and waits to be reaped. */
function zombie(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true; // gone
  }
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Starts a pod and waits until its node is up. */
export async function startPod(opts: PodOptions): Promise<Pod> {
  const secrets = `${opts.dir}/secrets`;
  const ipc = opts.ipc ?? `${opts.dir}/ipc`;
  await Deno.mkdir(secrets, { recursive: true });
  await Deno.mkdir(ipc, { recursive: true });
  const credentials = opts.credentials ?? makeCredentialSet();
  const paths = await writeCredentialSet(secrets, credentials);
  const agent = opts.kesAgentSocket;
  if (agent !== undefined) await Deno.remove(paths.kes); // the agent holds it
  // The simulated node is told which pool has stake: any other set (the sidecar's decoys) loads
  // but never forges, as on the chain.
  const poolId = validateCredentialSet(credentials, paths).poolId;
  const metricsPort = freePort();
  const nodeMetricsPort = opts.chain !== undefined ? freePort() : undefined;
  const record = `${opts.dir}/forging.jsonl`;
  const sidecarLog = `${opts.dir}/forge-manager.log`;
  const guardLog = `${opts.dir}/guard.log`;
  const guardSocket = `${opts.dir}/guard/guard.sock`;
  if (opts.guard) await Deno.mkdir(`${opts.dir}/guard`, { recursive: true });
  const target = { kes: `${ipc}/kes.skey`, vrf: `${ipc}/vrf.skey`, cert: `${ipc}/node.cert` };
  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
    DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`,
    POD_NAME: opts.name,
    NODE_SOCKET: `${ipc}/node.socket`,
    ...(agent === undefined
      ? { SOURCE_KES_KEY: paths.kes, TARGET_KES_KEY: target.kes }
      : { KES_AGENT_SOCKET: agent }),
    SOURCE_VRF_KEY: paths.vrf,
    SOURCE_OP_CERT: paths.opcert,
    TARGET_VRF_KEY: target.vrf,
    TARGET_OP_CERT: target.cert,
    METRICS_HOST: "127.0.0.1",
    METRICS_PORT: String(metricsPort),
    // A pod without an object in the API (no simulated kubelet): a UID of its own all the same.
    POD_UID: crypto.randomUUID(),
    ...(opts.guard ? { GUARD_SOCKET: guardSocket } : {}),
    ...(opts.chain !== undefined
      ? {
        NETWORK: opts.chain.network,
        NODE_METRICS_URL: `http://127.0.0.1:${nodeMetricsPort}/metrics`,
      }
      : {}),
    ...opts.env,
  };
  const guardOptions = typeof opts.guard === "object" ? opts.guard : {};
  // The guard reads the sidecar's names: the same targets, node and socket.
  const guardEnv = Object.fromEntries(
    [
      "PATH",
      "HOME",
      "DENO_DIR",
      "GUARD_SOCKET",
      "TARGET_KES_KEY",
      "TARGET_VRF_KEY",
      "TARGET_OP_CERT",
      "NODE_PROCESS_NAME",
      "LOG_LEVEL",
    ].filter((k) => env[k] !== undefined).map((k) => [k, env[k]!]),
  );
  const spec = {
    repo: REPO,
    env,
    sidecarLog,
    metricsPort,
    nodeFirst: opts.nodeFirst ?? false,
    v8Flags: opts.v8Flags ?? shippedV8Flags(),
    ...(opts.guard
      ? {
        guard: {
          env: guardEnv,
          log: guardLog,
          ...(guardOptions.cgroupProcs !== undefined
            ? { cgroupProcs: guardOptions.cgroupProcs }
            : {}),
        },
      }
      : {}),
    ...(opts.sidecarCgroupProcs !== undefined ? { cgroupProcs: opts.sidecarCgroupProcs } : {}),
    ...(opts.serviceAccount !== undefined ? { serviceAccount: opts.serviceAccount } : {}),
    node: {
      ...target,
      ...(agent === undefined ? {} : { kes: undefined, kesAgentSocket: agent }),
      socket: `${ipc}/node.socket`,
      record,
      poolId,
      dir: opts.dir,
      ...(opts.nodeShutdownMs !== undefined ? { shutdownMs: opts.nodeShutdownMs } : {}),
      ...(opts.chain !== undefined
        ? {
          metricsPort: nodeMetricsPort,
          network: opts.chain.network,
          ...(opts.chain.lagFile !== undefined ? { lagFile: opts.chain.lagFile } : {}),
          ...(opts.chain.leaderSlotsFile !== undefined
            ? { leaderSlotsFile: opts.chain.leaderSlotsFile }
            : {}),
        }
        : {}),
    },
  };
  const child = new Deno.Command("unshare", {
    args: [
      "--pid",
      "--fork",
      "--mount-proc",
      "--kill-child",
      Deno.execPath(),
      "run",
      "-A",
      INIT,
      JSON.stringify(spec),
    ],
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const exited = child.status;

  const pids = () => {
    const init = children(child.pid)[0];
    if (init === undefined) return {};
    let node: number | undefined;
    let sidecar: number | undefined;
    let guard: number | undefined;
    for (const pid of children(init)) {
      const name = comm(pid);
      if (name === "cardano-node") node = pid;
      else if (name !== "" && isGuard(pid)) guard = pid;
      else if (name !== "") sidecar = pid;
    }
    return { init, node, sidecar, guard };
  };
  /** Sends `signal` to the host process `pid` and resolves once that process is gone. */
  const stopProcess = async (pid: number | undefined, signal: Deno.Signal) => {
    if (pid === undefined) return;
    const name = comm(pid);
    try {
      Deno.kill(pid, signal);
    } catch { /* gone */ }
    while (name !== "" && comm(pid) === name && !zombie(pid)) await sleep(20);
  };
  const signalInit = (signal: Deno.Signal) => {
    const { init } = pids();
    if (init !== undefined) Deno.kill(init, signal);
  };

  const ready = `${opts.dir}/pod.ready`;
  let hasExited = false;
  void exited.then(() => hasExited = true);
  const logTail = async () => (await Deno.readTextFile(sidecarLog).catch(() => "")).slice(-3000);
  await waitUntil(`pod ${opts.name} to be ready`, async () => {
    if (await exists(ready)) return true;
    if (hasExited) throw new Error(`Cannot start pod ${opts.name}: it exited\n${await logTail()}`);
    return false;
  }, { timeoutMs: 60_000, detail: logTail });

  let killed = false;
  const pod: Pod = {
    name: opts.name,
    dir: opts.dir,
    record,
    sidecarLog,
    guardLog: opts.guard ? guardLog : "",
    metricsPort,
    exited,
    pids,
    signalSidecar(signal) {
      const { sidecar } = pids();
      if (sidecar !== undefined) Deno.kill(sidecar, signal);
    },
    signalGuard(signal) {
      const { guard } = pids();
      if (guard !== undefined) Deno.kill(guard, signal);
    },
    restartSidecar: () => signalInit("SIGWINCH"),
    terminateNode: () => stopProcess(pids().node, "SIGTERM"),
    terminateSidecar: () => stopProcess(pids().sidecar, "SIGTERM"),
    restartNode: () => signalInit("SIGUSR2"),
    async killNode() {
      const { node } = pids();
      if (node === undefined) return;
      try {
        Deno.kill(node, "SIGKILL");
      } catch { /* gone */ }
      for (let i = 0; comm(node) === "cardano-node" && i < 200; i++) await sleep(10);
      await appendKilled(record);
    },
    async inMountNamespace(command) {
      const { init } = pids();
      if (init === undefined) throw new Error(`Cannot enter pod ${opts.name}: it is not running`);
      const out = await new Deno.Command("nsenter", {
        args: [`--target=${init}`, "--mount", "--", ...command],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      if (!out.success) {
        throw new Error(`Cannot run ${command.join(" ")} in pod ${opts.name}: ${text.trim()}`);
      }
      return text;
    },
    async kill() {
      if (killed) return;
      killed = true;
      const { node } = pids();
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await exited;
      // With PID 1 of the namespace gone, the kernel kills the rest; wait for the node to vanish.
      for (let i = 0; node !== undefined && comm(node) === "cardano-node" && i < 200; i++) {
        await sleep(10);
      }
      // Timed after the node vanished (conservative: a later end can only add overlap). No pid:
      // the record holds the node's pid inside its namespace, not the host pid.
      await appendKilled(record);
    },
    async terminate() {
      if (killed) return;
      signalInit("SIGTERM");
      const timeout = setTimeout(() => void pod.kill(), 20_000);
      await exited;
      clearTimeout(timeout);
      killed = true;
    },
    async [Symbol.asyncDispose]() {
      await pod.kill();
    },
  };
  return pod;
}

/** Reads a pod's metrics page and returns the value of one series, e.g.
 * `cardano_forging_enabled{pod="forge-0"}` (undefined if absent or unreachable). */
export async function metricValue(pod: Pod, series: string): Promise<number | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${pod.metricsPort}/metrics`);
    for (const line of (await res.text()).split("\n")) {
      const sp = line.lastIndexOf(" ");
      if (line.slice(0, sp) === series) return Number(line.slice(sp + 1));
    }
  } catch {
    // not listening
  }
  return undefined;
}
