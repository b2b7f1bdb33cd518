/**
 * `forge-manager status | handover | prefer | pause | resume`: their command lines, help and
 * permissions
 * (the core's half; they run in lib/cli/operate.ts inside a worker that may read exactly the
 * kubeconfig and the files it names, and connect to its API server only). Our own code only, no
 * npm imports.
 *
 * @module
 */

import { type CommandSpec, type Prepared, resolvePath } from "./command.ts";
import { type KubeTransport, parseKubeTransport } from "../kube_transport.ts";

/** What every operator command needs to reach the deployment. */
export interface KubeTarget {
  /** The kubeconfig file, absolute ($KUBECONFIG's first entry, else ~/.kube/config). */
  kubeconfig: string;
  /** The kubeconfig context (default: its current-context). */
  context?: string;
  /** The namespace (default: the context's, else "default"). */
  namespace?: string;
  /** LEASE_NAME of the sidecars. */
  lease: string;
  /** CARDANO_LEADER_NAME of the sidecars. */
  cardanoLeader: string;
  /** How the requests travel: $KUBE_TRANSPORT, as for the sidecar (default `deno`). */
  transport: KubeTransport;
}

/** The parsed command line of one operator command, passed to the worker. */
export type OperateOptions =
  | { command: "status"; target: KubeTarget; output: "text" | "json"; watch: boolean }
  | {
    command: "handover";
    target: KubeTarget;
    to?: string;
    timeoutMs: number;
    dryRun: boolean;
    output: "text" | "json";
  }
  | {
    command: "prefer";
    target: KubeTarget;
    /** The pod to prefer; undefined with `clear`. */
    pod?: string;
    clear: boolean;
    dryRun: boolean;
    output: "text" | "json";
  }
  | {
    command: "pause";
    target: KubeTarget;
    reason: string;
    forMs?: number;
    timeoutMs: number;
  }
  | { command: "resume"; target: KubeTarget };

type OperatePrepared = Prepared<OperateOptions>;

const COMMON_HELP = `Reaching the deployment (as kubectl does):
  --kubeconfig F       the kubeconfig (default: $KUBECONFIG, else ~/.kube/config)
  --context NAME       a context of the kubeconfig (default: its current-context)
  -n, --namespace NS   the namespace of the StatefulSet (default: the context's, else default)
  --lease NAME         the sidecars' LEASE_NAME (default: cardano-node-leader)
  --cardano-leader N   the sidecars' CARDANO_LEADER_NAME (default: cardano-leader)
Needs the forge-manager-operator Role (manifests/rbac.yaml). Reads only the kubeconfig and the
files it names; connects to its API server only.
Exit codes: 0 done, 1 refused or failed (the reason is printed), 2 usage.`;

const HELP: Record<OperateOptions["command"], string> = {
  status: `Usage: forge-manager status [--output json] [--watch] [options]

One table: the Lease holder, its term's age and renew age, each replica (pod, ready, leader,
forging, node found, its node's sync and tip lag, fence, phase, last transition and its reason),
any pause (who, why, until), the preferred replica, the time to the pool's next leader slot (with
a leader schedule) and the last handover. --watch prints it again every 2 s until interrupted.

${COMMON_HELP}`,
  handover:
    `Usage: forge-manager handover [--to POD] [--timeout 30s] [--dry-run] [--output json] [options]

A planned end of term: the leader unlinks its keys, signals its node and releases the Lease to
POD (or to any ready standby); only that pod may take it at once, every other replica waits it
out as an unmarked release. Refused, with nothing changed, when there is no leader, the
deployment is paused, or the target is not ready, not running forge-manager (no fresh replica
entry), stepping aside, the leader itself, or its node lags the chain (SYNC lagging; a target
whose sync is unknown is taken, with a note). Without --to a synced standby is picked first. Waits until the target holds the Lease and forges,
at most --timeout (and up to 60 s more while the leader waits for one of the pool's leader slots
to pass). --dry-run checks everything and changes nothing.

${COMMON_HELP}`,
  prefer: `Usage: forge-manager prefer POD [--dry-run] [--output json] [options]
       forge-manager prefer --clear [--dry-run] [--output json] [options]

Makes POD the preferred replica (spec.preferredReplica): whenever it has stood by ready and
synced for the sidecars' PREFERRED_STABLE (60 s by default), the leader hands the term back to
it by a planned handover; it never takes the Lease by a race. --clear removes the preference.
Refused, with nothing changed, when POD is no replica (no Pod and no replica entry of that name)
or is preferred already, or with --clear when none is set. Says whether POD leads now and, if
not, what the return waits for. --dry-run checks everything and changes nothing.

${COMMON_HELP}`,
  pause: `Usage: forge-manager pause --reason TEXT [--for DURATION] [--timeout 30s] [options]

Nobody forges until resume (or until DURATION has passed, e.g. 30m, 2h): the leader unlinks its
keys and signals its node but keeps the Lease; a replica that acquires it does not forge either.
The pause is kept in the CardanoLeader's spec, so it survives restarts of every replica. Waits
until no replica reports forging, at most --timeout.

${COMMON_HELP}`,
  resume: `Usage: forge-manager resume [options]

Ends a pause: the leader forges again once its node is ready.

${COMMON_HELP}`,
};

/** Parses `30s`, `1500ms`, `10m`, `2h` (or plain seconds). Returns milliseconds, or undefined. */
export function parseDuration(text: string): number | undefined {
  const m = text.trim().match(/^(\d+(?:\.\d+)?)(ms|s|m|h)?$/);
  if (m === null) return undefined;
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? "s") as "ms"];
  const ms = n * unit;
  return Number.isFinite(ms) && ms > 0 ? Math.round(ms) : undefined;
}

const VALUE_FLAGS = new Set([
  "--kubeconfig",
  "--context",
  "--namespace",
  "-n",
  "--lease",
  "--cardano-leader",
  "--output",
  "--to",
  "--timeout",
  "--reason",
  "--for",
]);
const BOOL_FLAGS = new Set(["--watch", "--dry-run", "--clear"]);

const ALLOWED: Record<OperateOptions["command"], readonly string[]> = {
  status: ["--output", "--watch"],
  handover: ["--to", "--timeout", "--dry-run", "--output"],
  prefer: ["--clear", "--dry-run", "--output"],
  pause: ["--reason", "--for", "--timeout"],
  resume: [],
};

/** Parses one operator command's line. Pure. */
export function prepareOperate(
  command: OperateOptions["command"],
  args: readonly string[],
  env: Record<string, string | undefined>,
  cwd: string,
): OperatePrepared {
  const usage = (message: string): OperatePrepared => ({
    kind: "usage",
    message: `Cannot ${command}: ${message} (try forge-manager ${command} --help)`,
  });
  if (args.includes("--help") || args.includes("-h")) return { kind: "help", text: HELP[command] };
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    // `prefer POD`: the one command with an argument that is not a flag.
    if (command === "prefer" && !arg.startsWith("-")) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const [rawFlag, inline] = arg.startsWith("--") && eq > 0
      ? [arg.slice(0, eq), arg.slice(eq + 1)]
      : [arg, undefined];
    const flag = rawFlag === "-n" ? "--namespace" : rawFlag;
    const common = ["--kubeconfig", "--context", "--namespace", "--lease", "--cardano-leader"];
    if (!common.includes(flag) && !ALLOWED[command].includes(flag)) {
      return usage(
        VALUE_FLAGS.has(flag) || BOOL_FLAGS.has(flag)
          ? `${flag} is not an option of ${command}`
          : `unknown argument ${JSON.stringify(arg)}`,
      );
    }
    if (flags.has(flag)) return usage(`${flag} is given twice`);
    if (BOOL_FLAGS.has(flag)) {
      if (inline !== undefined) return usage(`${flag} takes no value`);
      flags.set(flag, "true");
      continue;
    }
    const value = inline ?? args[++i];
    if (value === undefined || value === "") return usage(`${flag} needs a value`);
    flags.set(flag, value);
  }
  const home = env.HOME?.trim() || "/root";
  const fromEnv = env.KUBECONFIG?.split(":").find((p) => p.trim() !== "");
  const kubeconfig = resolvePath(
    flags.get("--kubeconfig") ?? fromEnv ?? `${home}/.kube/config`,
    cwd,
  );
  const transport = parseKubeTransport(env.KUBE_TRANSPORT);
  if ("problem" in transport) return usage(transport.problem);
  const target: KubeTarget = {
    kubeconfig,
    ...(flags.has("--context") ? { context: flags.get("--context")! } : {}),
    ...(flags.has("--namespace") ? { namespace: flags.get("--namespace")! } : {}),
    lease: flags.get("--lease") ?? "cardano-node-leader",
    cardanoLeader: flags.get("--cardano-leader") ?? "cardano-leader",
    transport: transport.transport,
  };
  const output = flags.get("--output") ?? "text";
  if (output !== "text" && output !== "json") {
    return usage(`--output is ${JSON.stringify(output)}, expected json or text`);
  }
  const duration = (flag: string, fallback?: number): number | undefined | "bad" => {
    const text = flags.get(flag);
    if (text === undefined) return fallback;
    return parseDuration(text) ?? "bad";
  };
  const timeoutMs = duration("--timeout", 30_000);
  if (timeoutMs === "bad") return usage(`--timeout ${flags.get("--timeout")} is not a duration`);
  let options: OperateOptions;
  switch (command) {
    case "status":
      options = { command, target, output, watch: flags.has("--watch") };
      break;
    case "handover":
      options = {
        command,
        target,
        ...(flags.has("--to") ? { to: flags.get("--to")! } : {}),
        timeoutMs: timeoutMs!,
        dryRun: flags.has("--dry-run"),
        output,
      };
      break;
    case "prefer": {
      const clear = flags.has("--clear");
      if (positional.length > 1) return usage(`give one pod, not ${positional.join(" ")}`);
      const pod = positional[0];
      if (clear && pod !== undefined) return usage(`give POD or --clear, not both`);
      if (!clear && pod === undefined) return usage("give the pod to prefer, or --clear");
      options = {
        command,
        target,
        ...(pod !== undefined ? { pod } : {}),
        clear,
        dryRun: flags.has("--dry-run"),
        output,
      };
      break;
    }
    case "pause": {
      const reason = flags.get("--reason")?.trim() ?? "";
      if (reason === "") return usage("--reason TEXT is required: say why, for the others");
      const forMs = duration("--for");
      if (forMs === "bad") return usage(`--for ${flags.get("--for")} is not a duration`);
      options = {
        command,
        target,
        reason,
        ...(forMs !== undefined ? { forMs } : {}),
        timeoutMs: timeoutMs!,
      };
      break;
    }
    case "resume":
      options = { command, target };
      break;
  }
  return {
    kind: "run",
    options,
    grants: { read: [kubeconfig] },
    kube: { kubeconfig, ...(target.context !== undefined ? { context: target.context } : {}) },
  };
}

function spec(command: OperateOptions["command"], summary: string): CommandSpec<OperateOptions> {
  return {
    name: command,
    summary,
    prepare: (args, env, cwd) => prepareOperate(command, args, env, cwd),
  };
}

/** `forge-manager status`. */
export const STATUS = spec("status", "the Lease holder, each replica's state and any pause");
/** `forge-manager handover`. */
export const HANDOVER = spec("handover", "a planned end of term to a ready standby (or --to POD)");
/** `forge-manager prefer`. */
export const PREFER = spec("prefer", "the replica the Lease returns to when ready and synced");
/** `forge-manager pause`. */
export const PAUSE = spec("pause", "stop forging everywhere, keeping the Lease (--reason, --for)");
/** `forge-manager resume`. */
export const RESUME = spec("resume", "end a pause");
