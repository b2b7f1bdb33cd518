/**
 * `forge-manager check-credentials`: its command line, help and permissions (the core's half;
 * the checks run in lib/cli/check_credentials.ts inside a worker that may read exactly the named
 * files and nothing else). Our own code only, no npm imports.
 *
 * @module
 */

import { NETWORK_NAMES, type NetworkName } from "../../cardano/kes_period.ts";
import { parsePoolId } from "../../cardano/pool_id.ts";
import { type CommandSpec, type Prepared, resolvePath } from "./command.ts";

/** The parsed command line, passed to the worker. */
export interface CheckCredentialsOptions {
  /** The files, absolute; no `kes` when a KES agent holds the KES key (`--kes-agent`). */
  files: { kes?: string; vrf: string; opcert: string };
  /** Where the KES timing comes from. */
  timing: { network: NetworkName } | { genesisFile: string };
  /** The pool the certificate must belong to (hex), if given. */
  poolId: string | undefined;
  output: "text" | "json";
}

/** The file names in a credentials folder, as in the forging Secret. */
export const DIR_FILES = { kes: "kes.skey", vrf: "vrf.skey", opcert: "node.cert" } as const;

/** The command's help text. */
export const CHECK_CREDENTIALS_HELP =
  `Usage: forge-manager check-credentials [DIR | [--kes F] --vrf F --opcert F] [--kes-agent]
         [--network mainnet|preprod|preview | --shelley-genesis F] [--pool-id ID] [--output json]

Checks a forging credential set offline, as the sidecar does before it forges: the file types and
sizes, that the KES key is the operational certificate's hot key, the cold key's signature over
the certificate, the pool id (with --pool-id), and the certificate's KES window at the current
time (issue counter, start period, periods left, expiry date).

  DIR                  a folder holding kes.skey, vrf.skey and node.cert (the forging Secret's keys)
  --kes/--vrf/--opcert the three files, named one by one instead of DIR
  --kes-agent          a KES agent holds the KES key: check the VRF key and the certificate only
                       (DIR then needs no kes.skey; --kes is refused)
  --network NAME       mainnet (default), preprod or preview: built-in genesis parameters
  --shelley-genesis F  read slotsPerKESPeriod, maxKESEvolutions, slotLength and systemStart from F
  --pool-id ID         the pool the certificate must belong to: 56 hex digits or bech32 pool1...
  --output json        one JSON object instead of the report

Without the flags, NETWORK, SHELLEY_GENESIS_FILE, POOL_ID and KES_AGENT_SOCKET (set: --kes-agent)
are read from the environment, as the sidecar reads them. Reads only the named files; no network, no writes.
Exit codes: 0 every check passed, 1 a check failed (the reason is printed), 2 usage.`;

const VALUE_FLAGS = new Set([
  "--kes",
  "--vrf",
  "--opcert",
  "--network",
  "--shelley-genesis",
  "--pool-id",
  "--output",
]);

/** Parses the command line. Pure. */
export function prepareCheckCredentials(
  args: readonly string[],
  env: Record<string, string | undefined>,
  cwd: string,
): Prepared<CheckCredentialsOptions> {
  const usage = (message: string): Prepared<CheckCredentialsOptions> => ({
    kind: "usage",
    message: `Cannot check credentials: ${message} (try forge-manager check-credentials --help)`,
  });
  if (args.includes("--help") || args.includes("-h")) {
    return { kind: "help", text: CHECK_CREDENTIALS_HELP };
  }
  const flags = new Map<string, string>();
  const positional: string[] = [];
  let agent = (env.KES_AGENT_SOCKET?.trim() ?? "") !== "";
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--kes-agent") {
      agent = true;
      continue;
    }
    const eq = arg.indexOf("=");
    const [flag, inline] = arg.startsWith("--") && eq > 0
      ? [arg.slice(0, eq), arg.slice(eq + 1)]
      : [arg, undefined];
    if (!flag.startsWith("-")) {
      positional.push(arg);
      continue;
    }
    if (!VALUE_FLAGS.has(flag)) return usage(`unknown option ${JSON.stringify(flag)}`);
    const value = inline ?? args[++i];
    if (value === undefined || value === "") return usage(`${flag} needs a value`);
    if (flags.has(flag)) return usage(`${flag} is given twice`);
    flags.set(flag, value);
  }
  if (positional.length > 1) return usage(`one DIR at most, got ${positional.length}`);
  if (agent && flags.has("--kes")) {
    return usage(
      "--kes names a KES key file, but a KES agent holds the key (--kes-agent" +
        (args.includes("--kes-agent") ? "" : ", from KES_AGENT_SOCKET") + ")",
    );
  }
  // With a KES agent there is no KES key file to check.
  const wanted = agent ? ["--vrf", "--opcert"] : ["--kes", "--vrf", "--opcert"];
  const named = ["--kes", "--vrf", "--opcert"].filter((f) => flags.has(f));
  let files: CheckCredentialsOptions["files"];
  if (positional.length === 1) {
    if (named.length > 0) return usage(`give DIR or ${named.join(", ")}, not both`);
    const dir = resolvePath(positional[0]!, cwd);
    files = {
      ...(agent ? {} : { kes: `${dir}/${DIR_FILES.kes}` }),
      vrf: `${dir}/${DIR_FILES.vrf}`,
      opcert: `${dir}/${DIR_FILES.opcert}`,
    };
  } else {
    if (named.length !== wanted.length) {
      const missing = wanted.filter((f) => !flags.has(f));
      return usage(
        named.length === 0
          ? `give DIR, or ${wanted.slice(0, -1).join(", ")} and ${wanted.at(-1)}`
          : `missing ${missing.join(", ")}`,
      );
    }
    files = {
      ...(agent ? {} : { kes: resolvePath(flags.get("--kes")!, cwd) }),
      vrf: resolvePath(flags.get("--vrf")!, cwd),
      opcert: resolvePath(flags.get("--opcert")!, cwd),
    };
  }

  const networkFlag = flags.get("--network");
  const genesisFlag = flags.get("--shelley-genesis");
  if (networkFlag !== undefined && genesisFlag !== undefined) {
    return usage("give --network or --shelley-genesis, not both");
  }
  let timing: CheckCredentialsOptions["timing"];
  const genesis = genesisFlag ??
    (networkFlag === undefined && env.SHELLEY_GENESIS_FILE?.trim()
      ? env.SHELLEY_GENESIS_FILE
      : undefined);
  if (genesis !== undefined) {
    timing = { genesisFile: resolvePath(genesis.trim(), cwd) };
  } else {
    const network = (networkFlag ?? (env.NETWORK?.trim() || "mainnet")).toLowerCase();
    if (!NETWORK_NAMES.includes(network as NetworkName)) {
      return usage(
        `network ${JSON.stringify(network)} is not one of ${NETWORK_NAMES.join(", ")}` +
          (networkFlag === undefined ? " (from NETWORK)" : ""),
      );
    }
    timing = { network: network as NetworkName };
  }

  const poolText = flags.get("--pool-id") ?? (env.POOL_ID?.trim() || undefined);
  let poolId: string | undefined;
  if (poolText !== undefined) {
    try {
      poolId = parsePoolId(poolText);
    } catch (err) {
      return usage(
        `${(err as Error).message}${flags.has("--pool-id") ? "" : " (from POOL_ID)"}`,
      );
    }
  }
  const output = flags.get("--output") ?? "text";
  if (output !== "text" && output !== "json") {
    return usage(`--output is ${JSON.stringify(output)}, expected json or text`);
  }
  return {
    kind: "run",
    options: { files, timing, poolId, output },
    grants: {
      read: [
        ...(files.kes === undefined ? [] : [files.kes]),
        files.vrf,
        files.opcert,
        ...("genesisFile" in timing ? [timing.genesisFile] : []),
      ],
    },
  };
}

/** The command as the core dispatches it. */
export const CHECK_CREDENTIALS: CommandSpec<CheckCredentialsOptions> = {
  name: "check-credentials",
  summary: "check a forging credential set offline (types, key match, signature, KES window)",
  prepare: prepareCheckCredentials,
};
