/**
 * The sidecar's configuration: read once from environment variables, validated once, and
 * refused as a whole (with every problem named) when anything is wrong or unsafe.
 *
 * `lib/` never reads `Deno.env`; `main.ts` passes `Deno.env.toObject()` in.
 *
 * @module
 */

import { type KubeTransport, parseKubeTransport } from "./kube_transport.ts";
import { type GlobalConfig, type PoolNames, readGlobal, readPoolNames } from "./cluster_config.ts";
import { NETWORK_NAMES, type NetworkName } from "../cardano/kes_period.ts";
import { LOG_LEVELS, type LogLevel } from "../base/log.ts";
import { parsePoolId } from "../cardano/pool_id.ts";
import { CONFIG_DEFAULTS, EnvReader, normalizePath } from "./variables.ts";

export { CONFIG_DEFAULTS, normalizePath };

/** The three forging credential files, each copied from `source` to `target`. */
export type CredentialName = "kes" | "vrf" | "opcert";

/** Where one credential file comes from and where the node reads it. */
export interface CredentialPaths {
  source: string;
  target: string;
}

/**
 * The credential files forge-manager manages: the VRF key and the certificate always, the KES key
 * unless a KES agent supplies it to the node (KES_AGENT_SOCKET).
 */
export type CredentialPathSet =
  & { readonly kes?: CredentialPaths }
  & Readonly<Record<"vrf" | "opcert", CredentialPaths>>;

/** The validated configuration. Durations are milliseconds. */
export interface Config {
  namespace: string;
  podName: string;
  /** The pod's UID (POD_UID), written on the Lease so the fence can tell a recreated pod. */
  podUid: string;
  nodeSocket: string;
  credentials: CredentialPathSet;
  /**
   * The KES agent's service socket, as the node is given it (`--shelley-kes-agent-socket`): the
   * node takes its KES key from the agent, and `credentials` has no `kes` (KES_AGENT_SOCKET).
   * The sidecar never connects to it (the agent serves its key to whoever connects).
   */
  kesAgentSocket: string | undefined;
  leaseName: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  /** How often the leader renews (derived: min(SLEEP_INTERVAL, RENEW_DEADLINE / 4)). */
  retryPeriodMs: number;
  /** How often a follower re-reads the Lease besides watching it (SLEEP_INTERVAL). */
  sleepIntervalMs: number;
  acquireDelayMs: number;
  metricsHost: string;
  metricsPort: number;
  startAsNonProducing: boolean;
  /**
   * The node boots on decoy credentials made at start, and the pool's keys enter its folder only
   * at promotion (DECOY_CREDENTIALS; only with START_AS_NON_PRODUCING).
   */
  decoys: boolean;
  disableSocketCheck: boolean;
  cardanoLeaderName: string;
  nodeProcessName: string;
  /** The node's container in the pod spec (the fence reads its status in other replicas' pods). */
  nodeContainerName: string;
  socketWaitTimeoutMs: number;
  logLevel: LogLevel;
  /** A kubeconfig file (standalone binary on a VM); undefined means in-cluster. */
  kubeconfig: string | undefined;
  /** How client-node's requests travel (KUBE_TRANSPORT; see {@linkcode KubeTransport}). */
  kubeTransport: KubeTransport;
  /**
   * Before forging, a new leader proves the previous holder's node stopped: `pod` through the
   * API only (lib/kube/fence.ts); `guard` also by time, once the previous holder's guard bound
   * has passed since its last renew we saw (a lost machine then needs no answer); `off`: never.
   */
  fence: "pod" | "guard" | "off";
  /**
   * The guard's unix socket (GUARD_SOCKET): with it, this replica forges only with its guard
   * armed (lib/core/guard.ts); undefined: no guard.
   */
  guardSocket: string | undefined;
  /** How long the guard may take to stop the node once its deadline passed (GUARD_REACTION). */
  guardReactionMs: number;
  /** The network whose genesis parameters time the KES periods (NETWORK). */
  network: NetworkName;
  /** A shelley-genesis.json to read the KES timing from instead (SHELLEY_GENESIS_FILE). */
  shelleyGenesisFile: string | undefined;
  /** The pool the certificate must belong to, 56 lower-case hex digits (POOL_ID). */
  poolId: string | undefined;
  /** cardano-node's Prometheus endpoint (NODE_METRICS_URL). */
  nodeMetricsUrl: string;
  /** The pool's name and ticker (POOL_NAME, POOL_TICKER), for labels and status. */
  pool: PoolNames;
  /** The election across clusters (GLOBAL_KUBECONFIG); undefined: this cluster alone. */
  global: GlobalConfig | undefined;
  /**
   * How far the node's tip (its metrics' slotNum) may lag the wall clock's slot for the replica
   * to count as synced (MAX_TIP_LAG_SLOTS).
   */
  maxTipLagSlots: number;
  /** How long the preferred replica must have been ready and synced before the return to it. */
  preferredStableMs: number;
  /** The pool's leader schedule (LEADER_SCHEDULE_FILE): planned handovers avoid its slots. */
  leaderScheduleFile: string | undefined;
  /** How close to one of the pool's slots a planned handover waits (LEADER_SLOT_MARGIN). */
  leaderSlotMarginMs: number;
  /** How long a shutdown may wait for one of the pool's slots to pass (SHUTDOWN_SLOT_WAIT). */
  shutdownSlotWaitMs: number;
}

/** Thrown when the configuration is invalid; `problems` lists every rule that failed. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Cannot start with this configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

/** The smallest time a leader is given to stop forging before anyone else may start. */
export const MIN_STOP_BUDGET_MS = 3000;

/**
 * The least margin between the guard's bound (RENEW_DEADLINE + GUARD_REACTION) and the earliest
 * takeover (LEASE_DURATION + ACQUIRE_DELAY after the last renew a standby saw): it covers clock
 * rates that differ (a 1 % difference is 0.17 s over 17 s) with room to spare.
 */
export const MIN_GUARD_MARGIN_MS = 2000;

/** The guard's bound with this configuration: its node stops this long after its last renew. */
export function guardBoundMs(config: Pick<Config, "renewDeadlineMs" | "guardReactionMs">): number {
  return config.renewDeadlineMs + config.guardReactionMs;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

const OBJECT_NAME = "a Kubernetes object name (DNS subdomain)";

/** Who this replica is and which objects it uses. */
function readNames(r: EnvReader) {
  const namespace = r.name("NAMESPACE", DNS_LABEL, "a Kubernetes namespace name (DNS label)");
  const podName = r.get("POD_NAME");
  if (podName === "") {
    r.problems.push(
      'POD_NAME="": is required (in a pod, set it from the downward API metadata.name)',
    );
  } else if (!DNS_SUBDOMAIN.test(podName)) {
    r.fail("POD_NAME", podName, "must be a pod name (lower-case DNS subdomain)");
  }
  const leaseName = r.name("LEASE_NAME", DNS_SUBDOMAIN, OBJECT_NAME);
  const cardanoLeaderName = r.name("CARDANO_LEADER_NAME", DNS_SUBDOMAIN, OBJECT_NAME);
  return { namespace, podName, podUid: r.get("POD_UID"), leaseName, cardanoLeaderName };
}

/**
 * KES_AGENT_SOCKET, when set, with its rule: no KES key file beside it (the sidecar's and the
 * guard's).
 */
export function readKesAgentSocket(r: EnvReader): string | undefined {
  const agent = r.get("KES_AGENT_SOCKET") === "" ? undefined : r.path("KES_AGENT_SOCKET");
  if (agent !== undefined) {
    // The node takes its KES key from the agent: a KES file named here would never be read, and
    // an operator who sets one believes forge-manager moves it.
    for (const name of ["SOURCE_KES_KEY", "TARGET_KES_KEY"] as const) {
      const value = r.env[name]?.trim() ?? "";
      if (value !== "") {
        r.fail(
          name,
          value,
          "must not be set with KES_AGENT_SOCKET (the node takes its KES key from the agent; " +
            "forge-manager then manages only the VRF key and the certificate)",
        );
      }
    }
  }
  return agent;
}

/** The credential files, the node socket and the KES agent's socket: absolute, all different. */
function readFiles(r: EnvReader) {
  const agent = readKesAgentSocket(r);
  const pair = (source: keyof typeof CONFIG_DEFAULTS, target: keyof typeof CONFIG_DEFAULTS) => ({
    source: r.path(source),
    target: r.path(target),
  });
  const credentials: CredentialPathSet = {
    ...(agent === undefined ? { kes: pair("SOURCE_KES_KEY", "TARGET_KES_KEY") } : {}),
    vrf: pair("SOURCE_VRF_KEY", "TARGET_VRF_KEY"),
    opcert: pair("SOURCE_OP_CERT", "TARGET_OP_CERT"),
  };
  const varNames: Record<CredentialName, [string, string]> = {
    kes: ["SOURCE_KES_KEY", "TARGET_KES_KEY"],
    vrf: ["SOURCE_VRF_KEY", "TARGET_VRF_KEY"],
    opcert: ["SOURCE_OP_CERT", "TARGET_OP_CERT"],
  };
  const seen = new Map<string, string>();
  for (const [cred, paths] of Object.entries(credentials) as [CredentialName, CredentialPaths][]) {
    const [sourceVar, targetVar] = varNames[cred];
    for (const [varName, p] of [[sourceVar, paths.source], [targetVar, paths.target]]) {
      const other = seen.get(p!);
      if (other !== undefined) {
        r.fail(varName!, p!, `is the same file as ${other}; every source and target must differ`);
      }
      seen.set(p!, varName!);
    }
  }
  const nodeSocket = r.path("NODE_SOCKET");
  if (seen.has(nodeSocket)) {
    r.fail("NODE_SOCKET", nodeSocket, `is the same file as ${seen.get(nodeSocket)}`);
  }
  seen.set(nodeSocket, "NODE_SOCKET");
  if (agent !== undefined && seen.has(agent)) {
    r.fail("KES_AGENT_SOCKET", agent, `is the same file as ${seen.get(agent)}`);
  }
  return { credentials, nodeSocket, kesAgentSocket: agent };
}

/** The election's timing, and the rules that keep it safe. */
function readTiming(r: EnvReader) {
  // leaseDurationSeconds is an int32 on the Lease; an hour is already far beyond any useful value.
  const leaseDurationMs = r.seconds("LEASE_DURATION", 2, true, 3600);
  const renewDeadlineMs = r.seconds("RENEW_DEADLINE", 1);
  const sleepIntervalMs = r.seconds("SLEEP_INTERVAL", 0.1);
  const acquireDelayMs = r.seconds("ACQUIRE_DELAY", 0);
  const socketWaitTimeoutMs = r.seconds("SOCKET_WAIT_TIMEOUT", 1);
  const guardReactionMs = r.seconds("GUARD_REACTION", 0.1, false, 10);
  if (renewDeadlineMs >= leaseDurationMs) {
    r.problems.push(
      `RENEW_DEADLINE=${r.get("RENEW_DEADLINE")}: must be below LEASE_DURATION=${
        r.get("LEASE_DURATION")
      } (a leader must stop forging before its lease can expire)`,
    );
  } else if (leaseDurationMs + acquireDelayMs - renewDeadlineMs < MIN_STOP_BUDGET_MS) {
    r.problems.push(
      `RENEW_DEADLINE=${r.get("RENEW_DEADLINE")}: must leave a leader at least ${
        MIN_STOP_BUDGET_MS / 1000
      } s to stop forging: LEASE_DURATION (${r.get("LEASE_DURATION")}) + ACQUIRE_DELAY (${
        r.get("ACQUIRE_DELAY")
      }) - RENEW_DEADLINE must be >= ${MIN_STOP_BUDGET_MS / 1000}`,
    );
  }
  if (sleepIntervalMs >= leaseDurationMs) {
    r.fail(
      "SLEEP_INTERVAL",
      r.get("SLEEP_INTERVAL"),
      `must be below LEASE_DURATION=${r.get("LEASE_DURATION")}`,
    );
  }
  return {
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs: Math.min(sleepIntervalMs, renewDeadlineMs / 4),
    sleepIntervalMs,
    acquireDelayMs,
    socketWaitTimeoutMs,
    guardReactionMs,
  };
}

/**
 * With a guard: the earliest takeover (LEASE_DURATION + ACQUIRE_DELAY after the last renew a
 * standby saw) must come later than the guard's bound (RENEW_DEADLINE + GUARD_REACTION), with a
 * margin; and its socket must be none of the files the sidecar writes.
 */
function checkGuard(
  r: EnvReader,
  timing: ReturnType<typeof readTiming>,
  guardSocket: string | undefined,
  files: ReturnType<typeof readFiles>,
): void {
  if (guardSocket === undefined) return;
  const slack = timing.leaseDurationMs + timing.acquireDelayMs - guardBoundMs(timing);
  if (Number.isFinite(slack) && slack < MIN_GUARD_MARGIN_MS) {
    r.problems.push(
      `GUARD_REACTION=${
        JSON.stringify(r.get("GUARD_REACTION"))
      }: the guard's bound RENEW_DEADLINE (${
        r.get("RENEW_DEADLINE")
      }) + GUARD_REACTION must stay at least ${
        MIN_GUARD_MARGIN_MS / 1000
      } s below LEASE_DURATION (${r.get("LEASE_DURATION")}) + ACQUIRE_DELAY (${
        r.get("ACQUIRE_DELAY")
      }): a standby could otherwise take over before a lost leader's guard has stopped its node`,
    );
  }
  const taken = [
    ...Object.values(files.credentials).flatMap((c) => [c.source, c.target]),
    files.nodeSocket,
  ];
  if (taken.includes(guardSocket)) {
    r.fail("GUARD_SOCKET", guardSocket, "must differ from every credential file and NODE_SOCKET");
  }
}

/** The HTTP endpoint, the log, the fence and how to reach the API server. */
function readService(r: EnvReader, podName: string) {
  const portRaw = r.get("METRICS_PORT");
  const metricsPort = Number(portRaw);
  if (!/^\d+$/.test(portRaw) || metricsPort < 1 || metricsPort > 65535) {
    r.fail("METRICS_PORT", portRaw, "must be a TCP port from 1 to 65535");
  }
  const logLevel = r.get("LOG_LEVEL").toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    r.fail("LOG_LEVEL", r.get("LOG_LEVEL"), `must be one of ${LOG_LEVELS.join(", ")}`);
  }
  const fence = r.get("FENCE").toLowerCase();
  if (fence !== "pod" && fence !== "guard" && fence !== "off") {
    r.fail("FENCE", r.get("FENCE"), "must be pod, guard or off");
  }
  const guardSocket = r.get("GUARD_SOCKET") === "" ? undefined : r.path("GUARD_SOCKET");
  if (fence === "guard" && guardSocket === undefined) {
    r.problems.push(
      'GUARD_SOCKET="": is required with FENCE=guard (the takeover by time relies on the guard ' +
        "on every leader's machine; run `forge-manager guard` beside the node and name its socket)",
    );
  }
  if (fence === "pod" && r.get("POD_UID") === "" && podName !== "") {
    r.problems.push(
      'POD_UID="": is required with FENCE=pod (set it from the downward API metadata.uid; ' +
        "outside Kubernetes there are no Pods to fence: set FENCE=off knowingly)",
    );
  }
  const kubeconfig = r.get("KUBECONFIG");
  if (kubeconfig !== "" && !kubeconfig.startsWith("/")) {
    r.fail("KUBECONFIG", kubeconfig, "must be an absolute path to one kubeconfig file");
  }
  const transport = parseKubeTransport(r.get("KUBE_TRANSPORT"));
  if ("problem" in transport) r.problems.push(transport.problem);
  return {
    metricsHost: r.get("METRICS_HOST"),
    metricsPort,
    logLevel,
    fence: fence as "pod" | "guard" | "off",
    guardSocket,
    kubeconfig: kubeconfig === "" ? undefined : kubeconfig,
    kubeTransport: "transport" in transport ? transport.transport : "deno",
  };
}

/** NODE_PROCESS_NAME, as /proc/PID/comm shows it. */
export function readNodeProcessName(r: EnvReader): string {
  const nodeProcessName = r.get("NODE_PROCESS_NAME");
  if (nodeProcessName.includes("/") || nodeProcessName.length > 15) {
    r.fail(
      "NODE_PROCESS_NAME",
      nodeProcessName,
      "must be a process name as in /proc/PID/comm (no '/', at most 15 characters)",
    );
  }
  return nodeProcessName;
}

/** The node process, and what the credentials are judged by. */
function readNode(r: EnvReader) {
  const nodeProcessName = readNodeProcessName(r);
  const network = r.get("NETWORK").toLowerCase() as NetworkName;
  if (!NETWORK_NAMES.includes(network)) {
    r.fail("NETWORK", r.get("NETWORK"), `must be one of ${NETWORK_NAMES.join(", ")}`);
  }
  const shelleyGenesisFile = r.get("SHELLEY_GENESIS_FILE") === ""
    ? undefined
    : r.path("SHELLEY_GENESIS_FILE");
  let poolId: string | undefined;
  if (r.get("POOL_ID") !== "") {
    try {
      poolId = parsePoolId(r.get("POOL_ID"));
    } catch (err) {
      r.fail(
        "POOL_ID",
        r.get("POOL_ID"),
        `must be a pool id, 56 hex digits or bech32 pool1... (${
          (err as Error).message.replace(/^Cannot read the pool id: /, "")
        })`,
      );
    }
  }
  const nodeMetricsUrl = r.get("NODE_METRICS_URL");
  if (metricsHostPort(nodeMetricsUrl) === undefined) {
    r.fail(
      "NODE_METRICS_URL",
      nodeMetricsUrl,
      "must be an http:// URL with a host (cardano-node's Prometheus endpoint)",
    );
  }
  const nodeContainerName = r.name(
    "NODE_CONTAINER_NAME",
    DNS_LABEL,
    "a container name (lower-case DNS label, at most 63 characters)",
  );
  return {
    nodeProcessName,
    network,
    shelleyGenesisFile,
    poolId,
    nodeMetricsUrl,
    nodeContainerName,
    ...readBoot(r),
    disableSocketCheck: r.bool("DISABLE_SOCKET_CHECK"),
  };
}

/** What the node boots on: nothing of ours, the pool's keys, or decoys. */
function readBoot(r: EnvReader) {
  const startAsNonProducing = r.bool("START_AS_NON_PRODUCING");
  const decoys = r.bool("DECOY_CREDENTIALS");
  // Decoys are what a non-producing node boots on; a node started otherwise gets no files from
  // us at boot, so the default gives way, and only an explicit request is a contradiction.
  if (decoys && !startAsNonProducing && (r.env.DECOY_CREDENTIALS?.trim() ?? "") !== "") {
    r.fail(
      "DECOY_CREDENTIALS",
      r.get("DECOY_CREDENTIALS"),
      "needs START_AS_NON_PRODUCING=true (decoys are what a non-producing node boots on); " +
        "set DECOY_CREDENTIALS=false",
    );
  }
  return { startAsNonProducing, decoys: decoys && startAsNonProducing };
}

/** Which replica forges when: sync, the preferred replica's return, the leader schedule. */
function readHandovers(r: EnvReader) {
  return {
    // A slot a second on every public network: 1e9 slots is some 30 years, beyond any use.
    maxTipLagSlots: r.count("MAX_TIP_LAG_SLOTS", 1, 1e9),
    preferredStableMs: r.seconds("PREFERRED_STABLE", 0),
    leaderScheduleFile: r.get("LEADER_SCHEDULE_FILE") === ""
      ? undefined
      : r.path("LEADER_SCHEDULE_FILE"),
    leaderSlotMarginMs: r.seconds("LEADER_SLOT_MARGIN", 0, false, 600),
    shutdownSlotWaitMs: r.seconds("SHUTDOWN_SLOT_WAIT", 0, false, 600),
  };
}

/**
 * Parses and validates the configuration from an environment map.
 *
 * @throws {ConfigError} naming each variable, its value and the rule it breaks.
 */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const r = new EnvReader(env);
  const names = readNames(r);
  const files = readFiles(r);
  const timing = readTiming(r);
  const service = readService(r, names.podName);
  checkGuard(r, timing, service.guardSocket, files);
  const node = readNode(r);
  const pool = readPoolNames(r);
  const global = readGlobal(r, names, service);
  const handovers = readHandovers(r);
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return { ...names, ...files, ...timing, ...service, ...node, pool, global, ...handovers };
}

/**
 * The `host:port` of an http(s) URL (port defaulted by scheme), or undefined if `url` is not an
 * http(s) URL with a host. The sandbox grants the node metrics endpoint by this pair.
 */
export function metricsHostPort(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if ((parsed.protocol !== "http:" && parsed.protocol !== "https:") || parsed.hostname === "") {
    return undefined;
  }
  const port = parsed.port !== "" ? parsed.port : parsed.protocol === "https:" ? "443" : "80";
  return `${parsed.hostname}:${port}`;
}

/**
 * Whether this replica proves a previous holder's node stopped through Pods (the fence, its own
 * Pod's deletion, the node container check): FENCE=pod, and FENCE=guard inside a pod (POD_UID
 * set); a VM (no POD_UID) proves by the guard's bound alone.
 */
export function usesPodFence(config: Pick<Config, "fence" | "podUid">): boolean {
  return config.fence === "pod" || (config.fence === "guard" && config.podUid !== "");
}
