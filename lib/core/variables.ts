/**
 * Every configuration variable with its default, and the reader that validates them: numbers of
 * seconds, booleans, absolute paths and names, collecting every problem (each naming its
 * variable, value and rule) instead of stopping at the first. Shared by the sidecar's
 * configuration (config.ts) and the guard's (guard_config.ts).
 *
 * @module
 */

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
  DECOY_CREDENTIALS: "true",
  KES_AGENT_SOCKET: "",
  DISABLE_SOCKET_CHECK: "false",
  CARDANO_LEADER_NAME: "cardano-leader",
  NODE_PROCESS_NAME: "cardano-node",
  NODE_CONTAINER_NAME: "cardano-node",
  SOCKET_WAIT_TIMEOUT: "600",
  LOG_LEVEL: "info",
  KUBECONFIG: "",
  KUBE_TRANSPORT: "deno",
  FENCE: "pod",
  GUARD_SOCKET: "",
  GUARD_REACTION: "1",
  GUARD_STATE_FILE: "",
  NETWORK: "mainnet",
  SHELLEY_GENESIS_FILE: "",
  POOL_ID: "",
  POOL_NAME: "",
  POOL_TICKER: "",
  CLUSTER_NAME: "",
  CLUSTER_REGION: "",
  CLUSTER_PRIORITY: "1",
  FORGE_CLUSTER_NAME: "",
  GLOBAL_KUBECONFIG: "",
  GLOBAL_NAMESPACE: "",
  GLOBAL_LEASE_NAME: "",
  GLOBAL_CARDANO_LEADER_NAME: "",
  PRIORITY_DELAY: "10",
  RETURN_STABLE: "60",
  HEALTH_CHECK_ENDPOINT: "",
  NODE_METRICS_URL: "http://127.0.0.1:12798/metrics",
  MAX_TIP_LAG_SLOTS: "300",
  PREFERRED_STABLE: "60",
  LEADER_SCHEDULE_FILE: "",
  LEADER_SLOT_MARGIN: "5",
  SHUTDOWN_SLOT_WAIT: "20",
} as const;

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
export class EnvReader {
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
  /** A whole number from `min` to `max` (a count, such as slots). */
  count(name: keyof typeof CONFIG_DEFAULTS, min: number, max: number): number {
    const raw = this.get(name);
    const value = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      this.fail(name, raw, `must be a whole number from ${min} to ${max}`);
      return NaN;
    }
    return value;
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
