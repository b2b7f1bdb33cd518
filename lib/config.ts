/**
 * The sidecar's configuration: read once from environment variables, validated once, and
 * refused as a whole (with every problem named) when anything is wrong or unsafe.
 *
 * `lib/` never reads `Deno.env`; `main.ts` passes `Deno.env.toObject()` in.
 *
 * @module
 */

import { NETWORK_NAMES, type NetworkName } from "./kes_period.ts";
import { LOG_LEVELS, type LogLevel } from "./log.ts";
import { parsePoolId } from "./pool_id.ts";

/** The three forging credential files, each copied from `source` to `target`. */
export type CredentialName = "kes" | "vrf" | "opcert";

/** Where one credential file comes from and where the node reads it. */
export interface CredentialPaths {
  source: string;
  target: string;
}

/** The validated configuration. Durations are milliseconds. */
export interface Config {
  namespace: string;
  podName: string;
  /** The pod's UID (POD_UID), written on the Lease so the fence can tell a recreated pod. */
  podUid: string;
  nodeSocket: string;
  credentials: Record<CredentialName, CredentialPaths>;
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
  disableSocketCheck: boolean;
  cardanoLeaderName: string;
  nodeProcessName: string;
  /** The node's container in the pod spec (the fence reads its status in other replicas' pods). */
  nodeContainerName: string;
  socketWaitTimeoutMs: number;
  logLevel: LogLevel;
  /** A kubeconfig file (standalone binary on a VM); undefined means in-cluster. */
  kubeconfig: string | undefined;
  /** `pod`: prove the previous leader's node stopped before forging (see lib/fence.ts). */
  fence: "pod" | "off";
  /** The network whose genesis parameters time the KES periods (NETWORK). */
  network: NetworkName;
  /** A shelley-genesis.json to read the KES timing from instead (SHELLEY_GENESIS_FILE). */
  shelleyGenesisFile: string | undefined;
  /** The pool the certificate must belong to, 56 lower-case hex digits (POOL_ID). */
  poolId: string | undefined;
  /** cardano-node's Prometheus endpoint (NODE_METRICS_URL). */
  nodeMetricsUrl: string;
}

/** Thrown when the configuration is invalid; `problems` lists every rule that failed. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Cannot start with this configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

/** Every variable the sidecar reads, with its default ("" = required or optional, see docs). */
export const CONFIG_DEFAULTS = {
  NAMESPACE: "default",
  POD_NAME: "",
  POD_UID: "",
  NODE_SOCKET: "/ipc/node.socket",
  SOURCE_KES_KEY: "/secrets/kes.skey",
  TARGET_KES_KEY: "/ipc/kes.skey",
  SOURCE_VRF_KEY: "/secrets/vrf.skey",
  TARGET_VRF_KEY: "/ipc/vrf.skey",
  SOURCE_OP_CERT: "/secrets/node.cert",
  TARGET_OP_CERT: "/ipc/node.cert",
  LEASE_NAME: "cardano-node-leader",
  LEASE_DURATION: "15",
  RENEW_DEADLINE: "10",
  SLEEP_INTERVAL: "5",
  ACQUIRE_DELAY: "2",
  METRICS_HOST: "0.0.0.0",
  METRICS_PORT: "8000",
  START_AS_NON_PRODUCING: "true",
  DISABLE_SOCKET_CHECK: "false",
  CARDANO_LEADER_NAME: "cardano-leader",
  NODE_PROCESS_NAME: "cardano-node",
  NODE_CONTAINER_NAME: "cardano-node",
  SOCKET_WAIT_TIMEOUT: "600",
  LOG_LEVEL: "info",
  KUBECONFIG: "",
  FENCE: "pod",
  NETWORK: "mainnet",
  SHELLEY_GENESIS_FILE: "",
  POOL_ID: "",
  NODE_METRICS_URL: "http://127.0.0.1:12798/metrics",
} as const;

/** The smallest time a leader is given to stop forging before anyone else may start. */
export const MIN_STOP_BUDGET_MS = 3000;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** `/a/./b//c/../d/` -> `/a/b/d`, lexically (the core avoids node: modules: they cost memory). */
export function normalizePath(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return "/" + parts.join("/");
}

/**
 * Parses and validates the configuration from an environment map.
 *
 * @throws {ConfigError} naming each variable, its value and the rule it breaks.
 */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const problems: string[] = [];
  const get = (name: keyof typeof CONFIG_DEFAULTS): string => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? CONFIG_DEFAULTS[name] : value.trim();
  };
  const fail = (name: string, value: string, rule: string) =>
    problems.push(`${name}=${JSON.stringify(value)}: ${rule}`);

  function seconds(
    name: keyof typeof CONFIG_DEFAULTS,
    min: number,
    integer = false,
    max = 86_400,
  ): number {
    const raw = get(name);
    const value = Number(raw);
    if (!/^\d+(\.\d+)?$/.test(raw) || !Number.isFinite(value)) {
      fail(name, raw, "must be a number of seconds");
      return NaN;
    }
    if (integer && !Number.isInteger(value)) fail(name, raw, "must be a whole number of seconds");
    if (value < min) fail(name, raw, `must be at least ${min} s`);
    if (value > max) fail(name, raw, `must be at most ${max} s`);
    return value * 1000;
  }
  function bool(name: keyof typeof CONFIG_DEFAULTS): boolean {
    const raw = get(name).toLowerCase();
    if (["true", "1", "yes", "on"].includes(raw)) return true;
    if (["false", "0", "no", "off"].includes(raw)) return false;
    fail(name, raw, "must be true or false");
    return false;
  }
  function path(name: keyof typeof CONFIG_DEFAULTS): string {
    const raw = get(name);
    if (!raw.startsWith("/")) fail(name, raw, "must be an absolute path");
    // One spelling per file (/ipc/./kes.skey is /ipc/kes.skey), so duplicates cannot hide.
    return raw.startsWith("/") ? normalizePath(raw) : raw;
  }
  function name(varName: keyof typeof CONFIG_DEFAULTS, pattern: RegExp, what: string): string {
    const raw = get(varName);
    if (!pattern.test(raw)) fail(varName, raw, `must be ${what}`);
    return raw;
  }

  const namespace = name("NAMESPACE", DNS_LABEL, "a Kubernetes namespace name (DNS label)");
  const podNameRaw = get("POD_NAME");
  if (podNameRaw === "") {
    problems.push(
      'POD_NAME="": is required (in a pod, set it from the downward API metadata.name)',
    );
  } else if (!DNS_SUBDOMAIN.test(podNameRaw)) {
    fail("POD_NAME", podNameRaw, "must be a pod name (lower-case DNS subdomain)");
  }
  const leaseName = name("LEASE_NAME", DNS_SUBDOMAIN, "a Kubernetes object name (DNS subdomain)");
  const cardanoLeaderName = name(
    "CARDANO_LEADER_NAME",
    DNS_SUBDOMAIN,
    "a Kubernetes object name (DNS subdomain)",
  );

  const credentials: Record<CredentialName, CredentialPaths> = {
    kes: { source: path("SOURCE_KES_KEY"), target: path("TARGET_KES_KEY") },
    vrf: { source: path("SOURCE_VRF_KEY"), target: path("TARGET_VRF_KEY") },
    opcert: { source: path("SOURCE_OP_CERT"), target: path("TARGET_OP_CERT") },
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
        fail(varName!, p!, `is the same file as ${other}; every source and target must differ`);
      }
      seen.set(p!, varName!);
    }
  }
  const nodeSocket = path("NODE_SOCKET");
  if (seen.has(nodeSocket)) {
    fail("NODE_SOCKET", nodeSocket, `is the same file as ${seen.get(nodeSocket)}`);
  }

  // leaseDurationSeconds is an int32 on the Lease; an hour is already far beyond any useful value.
  const leaseDurationMs = seconds("LEASE_DURATION", 2, true, 3600);
  const renewDeadlineMs = seconds("RENEW_DEADLINE", 1);
  const sleepIntervalMs = seconds("SLEEP_INTERVAL", 0.1);
  const acquireDelayMs = seconds("ACQUIRE_DELAY", 0);
  const socketWaitTimeoutMs = seconds("SOCKET_WAIT_TIMEOUT", 1);
  if (renewDeadlineMs >= leaseDurationMs) {
    problems.push(
      `RENEW_DEADLINE=${get("RENEW_DEADLINE")}: must be below LEASE_DURATION=${
        get("LEASE_DURATION")
      } (a leader must stop forging before its lease can expire)`,
    );
  } else if (leaseDurationMs + acquireDelayMs - renewDeadlineMs < MIN_STOP_BUDGET_MS) {
    problems.push(
      `RENEW_DEADLINE=${get("RENEW_DEADLINE")}: must leave a leader at least ${
        MIN_STOP_BUDGET_MS / 1000
      } s to stop forging: LEASE_DURATION (${get("LEASE_DURATION")}) + ACQUIRE_DELAY (${
        get("ACQUIRE_DELAY")
      }) - RENEW_DEADLINE must be >= ${MIN_STOP_BUDGET_MS / 1000}`,
    );
  }
  if (sleepIntervalMs >= leaseDurationMs) {
    fail(
      "SLEEP_INTERVAL",
      get("SLEEP_INTERVAL"),
      `must be below LEASE_DURATION=${get("LEASE_DURATION")}`,
    );
  }

  const portRaw = get("METRICS_PORT");
  const metricsPort = Number(portRaw);
  if (!/^\d+$/.test(portRaw) || metricsPort < 1 || metricsPort > 65535) {
    fail("METRICS_PORT", portRaw, "must be a TCP port from 1 to 65535");
  }
  const logLevel = get("LOG_LEVEL").toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    fail("LOG_LEVEL", get("LOG_LEVEL"), `must be one of ${LOG_LEVELS.join(", ")}`);
  }
  const fence = get("FENCE").toLowerCase();
  if (fence !== "pod" && fence !== "off") fail("FENCE", get("FENCE"), "must be pod or off");
  if (fence === "pod" && get("POD_UID") === "" && podNameRaw !== "") {
    problems.push(
      'POD_UID="": is required with FENCE=pod (set it from the downward API metadata.uid; ' +
        "outside Kubernetes there are no Pods to fence: set FENCE=off knowingly)",
    );
  }
  const kubeconfig = get("KUBECONFIG");
  if (kubeconfig !== "" && !kubeconfig.startsWith("/")) {
    fail("KUBECONFIG", kubeconfig, "must be an absolute path to one kubeconfig file");
  }
  const nodeProcessName = get("NODE_PROCESS_NAME");
  if (nodeProcessName.includes("/") || nodeProcessName.length > 15) {
    fail(
      "NODE_PROCESS_NAME",
      nodeProcessName,
      "must be a process name as in /proc/PID/comm (no '/', at most 15 characters)",
    );
  }
  const network = get("NETWORK").toLowerCase() as NetworkName;
  if (!NETWORK_NAMES.includes(network)) {
    fail("NETWORK", get("NETWORK"), `must be one of ${NETWORK_NAMES.join(", ")}`);
  }
  const shelleyGenesisFile = get("SHELLEY_GENESIS_FILE") === ""
    ? undefined
    : path("SHELLEY_GENESIS_FILE");
  let poolId: string | undefined;
  if (get("POOL_ID") !== "") {
    try {
      poolId = parsePoolId(get("POOL_ID"));
    } catch (err) {
      fail(
        "POOL_ID",
        get("POOL_ID"),
        `must be a pool id, 56 hex digits or bech32 pool1... (${
          (err as Error).message.replace(/^Cannot read the pool id: /, "")
        })`,
      );
    }
  }
  const nodeMetricsUrl = get("NODE_METRICS_URL");
  if (metricsHostPort(nodeMetricsUrl) === undefined) {
    fail(
      "NODE_METRICS_URL",
      nodeMetricsUrl,
      "must be an http:// URL with a host (cardano-node's Prometheus endpoint)",
    );
  }
  const nodeContainerName = name(
    "NODE_CONTAINER_NAME",
    DNS_LABEL,
    "a container name (lower-case DNS label, at most 63 characters)",
  );
  const startAsNonProducing = bool("START_AS_NON_PRODUCING");
  const disableSocketCheck = bool("DISABLE_SOCKET_CHECK");

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    namespace,
    podName: podNameRaw,
    podUid: get("POD_UID"),
    nodeSocket,
    credentials,
    leaseName,
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs: Math.min(sleepIntervalMs, renewDeadlineMs / 4),
    sleepIntervalMs,
    acquireDelayMs,
    metricsHost: get("METRICS_HOST"),
    metricsPort,
    startAsNonProducing,
    disableSocketCheck,
    cardanoLeaderName,
    nodeProcessName,
    nodeContainerName,
    socketWaitTimeoutMs,
    logLevel,
    kubeconfig: kubeconfig === "" ? undefined : kubeconfig,
    fence: fence as "pod" | "off",
    network,
    shelleyGenesisFile,
    poolId,
    nodeMetricsUrl,
  };
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
