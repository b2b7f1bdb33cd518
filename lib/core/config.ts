/**
 * The sidecar's configuration: read once from environment variables, validated once, and
 * refused as a whole (with every problem named) when anything is wrong or unsafe.
 *
 * `lib/` never reads `Deno.env`; `main.ts` passes `Deno.env.toObject()` in.
 *
 * @module
 */

import { NETWORK_NAMES, type NetworkName } from "../cardano/kes_period.ts";
import { LOG_LEVELS, type LogLevel } from "../base/log.ts";
import { parsePoolId } from "../cardano/pool_id.ts";

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
  /** `pod`: prove the previous leader's node stopped before forging (see lib/kube/fence.ts). */
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

/** Reads variables with their defaults and collects every problem, each naming its variable. */
class EnvReader {
  readonly problems: string[] = [];
  constructor(readonly env: Record<string, string | undefined>) {}

  get(name: keyof typeof CONFIG_DEFAULTS): string {
    const value = this.env[name];
    return value === undefined || value.trim() === "" ? CONFIG_DEFAULTS[name] : value.trim();
  }
  fail(name: string, value: string, rule: string): void {
    this.problems.push(`${name}=${JSON.stringify(value)}: ${rule}`);
  }
  seconds(name: keyof typeof CONFIG_DEFAULTS, min: number, integer = false, max = 86_400): number {
    const raw = this.get(name);
    const value = Number(raw);
    if (!/^\d+(\.\d+)?$/.test(raw) || !Number.isFinite(value)) {
      this.fail(name, raw, "must be a number of seconds");
      return NaN;
    }
    if (integer && !Number.isInteger(value)) {
      this.fail(name, raw, "must be a whole number of seconds");
    }
    if (value < min) this.fail(name, raw, `must be at least ${min} s`);
    if (value > max) this.fail(name, raw, `must be at most ${max} s`);
    return value * 1000;
  }
  bool(name: keyof typeof CONFIG_DEFAULTS): boolean {
    const raw = this.get(name).toLowerCase();
    if (["true", "1", "yes", "on"].includes(raw)) return true;
    if (["false", "0", "no", "off"].includes(raw)) return false;
    this.fail(name, raw, "must be true or false");
    return false;
  }
  path(name: keyof typeof CONFIG_DEFAULTS): string {
    const raw = this.get(name);
    if (!raw.startsWith("/")) this.fail(name, raw, "must be an absolute path");
    // One spelling per file (/ipc/./kes.skey is /ipc/kes.skey), so duplicates cannot hide.
    return raw.startsWith("/") ? normalizePath(raw) : raw;
  }
  name(varName: keyof typeof CONFIG_DEFAULTS, pattern: RegExp, what: string): string {
    const raw = this.get(varName);
    if (!pattern.test(raw)) this.fail(varName, raw, `must be ${what}`);
    return raw;
  }
}

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

/** The credential files and the node socket: absolute, and all different. */
function readFiles(r: EnvReader) {
  const credentials: Record<CredentialName, CredentialPaths> = {
    kes: { source: r.path("SOURCE_KES_KEY"), target: r.path("TARGET_KES_KEY") },
    vrf: { source: r.path("SOURCE_VRF_KEY"), target: r.path("TARGET_VRF_KEY") },
    opcert: { source: r.path("SOURCE_OP_CERT"), target: r.path("TARGET_OP_CERT") },
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
  return { credentials, nodeSocket };
}

/** The election's timing, and the rules that keep it safe. */
function readTiming(r: EnvReader) {
  // leaseDurationSeconds is an int32 on the Lease; an hour is already far beyond any useful value.
  const leaseDurationMs = r.seconds("LEASE_DURATION", 2, true, 3600);
  const renewDeadlineMs = r.seconds("RENEW_DEADLINE", 1);
  const sleepIntervalMs = r.seconds("SLEEP_INTERVAL", 0.1);
  const acquireDelayMs = r.seconds("ACQUIRE_DELAY", 0);
  const socketWaitTimeoutMs = r.seconds("SOCKET_WAIT_TIMEOUT", 1);
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
  };
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
  if (fence !== "pod" && fence !== "off") r.fail("FENCE", r.get("FENCE"), "must be pod or off");
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
  return {
    metricsHost: r.get("METRICS_HOST"),
    metricsPort,
    logLevel,
    fence: fence as "pod" | "off",
    kubeconfig: kubeconfig === "" ? undefined : kubeconfig,
  };
}

/** The node process, and what the credentials are judged by. */
function readNode(r: EnvReader) {
  const nodeProcessName = r.get("NODE_PROCESS_NAME");
  if (nodeProcessName.includes("/") || nodeProcessName.length > 15) {
    r.fail(
      "NODE_PROCESS_NAME",
      nodeProcessName,
      "must be a process name as in /proc/PID/comm (no '/', at most 15 characters)",
    );
  }
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
    startAsNonProducing: r.bool("START_AS_NON_PRODUCING"),
    disableSocketCheck: r.bool("DISABLE_SOCKET_CHECK"),
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
  const node = readNode(r);
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return { ...names, ...files, ...timing, ...service, ...node };
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
