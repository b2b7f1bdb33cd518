/**
 * The guard's configuration (`forge-manager guard`): the same variable names and defaults as the
 * sidecar's, so one ConfigMap or unit file can serve both.
 *
 * @module
 */

import { LOG_LEVELS, type LogLevel } from "../base/log.ts";
import { ConfigError, readKesAgentSocket, readNodeProcessName } from "./config.ts";
import { CONFIG_DEFAULTS, EnvReader } from "./variables.ts";

/** The guard's configuration (`forge-manager guard`): what it protects and where it listens. */
export interface GuardConfig {
  /** Its unix socket (GUARD_SOCKET), in a folder shared with the sidecar only. */
  socket: string;
  /** Where it keeps whether it is armed (GUARD_STATE_FILE; default beside the socket). */
  stateFile: string;
  /**
   * The key files it unlinks (TARGET_KES_KEY, TARGET_VRF_KEY, TARGET_OP_CERT; without the KES key
   * when a KES agent supplies it, as the sidecar's).
   */
  targets: string[];
  /** The node's process name (NODE_PROCESS_NAME). */
  nodeProcessName: string;
  logLevel: LogLevel;
}

/** The variables the guard reads (the same names, and defaults, as the sidecar's). */
export const GUARD_VARIABLES = [
  "GUARD_SOCKET",
  "GUARD_STATE_FILE",
  "TARGET_KES_KEY",
  "TARGET_VRF_KEY",
  "TARGET_OP_CERT",
  "KES_AGENT_SOCKET",
  "NODE_PROCESS_NAME",
  "LOG_LEVEL",
] as const satisfies readonly (keyof typeof CONFIG_DEFAULTS)[];

/**
 * Parses and validates the guard's configuration from an environment map.
 *
 * @throws {ConfigError} naming each variable, its value and the rule it breaks.
 */
export function parseGuardConfig(env: Record<string, string | undefined>): GuardConfig {
  const r = new EnvReader(env);
  let socket = "";
  if (r.get("GUARD_SOCKET") === "") {
    r.problems.push('GUARD_SOCKET="": is required (the unix socket the sidecar connects to)');
  } else {
    socket = r.path("GUARD_SOCKET");
  }
  const stateFile = r.get("GUARD_STATE_FILE") === ""
    ? `${socket.slice(0, Math.max(0, socket.lastIndexOf("/")))}/guard-state.json`
    : r.path("GUARD_STATE_FILE");
  // With a KES agent the sidecar manages no KES file, and its hello names only the other two.
  const agent = readKesAgentSocket(r);
  const targets = [
    ...(agent === undefined ? [r.path("TARGET_KES_KEY")] : []),
    r.path("TARGET_VRF_KEY"),
    r.path("TARGET_OP_CERT"),
  ];
  if (new Set(targets).size !== targets.length) {
    r.problems.push(
      agent === undefined
        ? "TARGET_KES_KEY, TARGET_VRF_KEY and TARGET_OP_CERT: must be three different files"
        : "TARGET_VRF_KEY and TARGET_OP_CERT: must be two different files",
    );
  }
  if (socket !== "" && [...targets, stateFile].includes(socket)) {
    r.fail("GUARD_SOCKET", socket, "must differ from the TARGET_* files and GUARD_STATE_FILE");
  }
  const nodeProcessName = readNodeProcessName(r);
  const logLevel = r.get("LOG_LEVEL").toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    r.fail("LOG_LEVEL", r.get("LOG_LEVEL"), `must be one of ${LOG_LEVELS.join(", ")}`);
  }
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return { socket, stateFile, targets, nodeProcessName, logLevel };
}
