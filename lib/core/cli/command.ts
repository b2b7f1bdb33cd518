/**
 * The shape of an operator command (`forge-manager <command> ...`). Our own code only, no npm
 * imports: the privileged core (main.ts) imports the specs to parse the arguments and compute
 * the narrow permissions of the worker the command then runs in (lib/cli/worker.ts).
 *
 * A command is two halves: a pure spec here (parse, help, permissions), run by the core, and
 * its runner `lib/cli/<command>.ts`, run in the worker, which may import npm packages.
 *
 * @module
 */

/** Exit code: done. */
export const EXIT_OK = 0;
/** Exit code: refused or failed; the reason was printed. */
export const EXIT_FAILED = 1;
/** Exit code: usage error. */
export const EXIT_USAGE = 2;

/** What a command's worker may touch; everything not listed is denied. */
export interface CommandGrants {
  /** Files and folders it may read. */
  read: readonly string[];
  /** `host:port` pairs it may connect to. */
  net?: readonly string[];
  /**
   * The command uses the Kubernetes client (client-node), which reads the environment and the
   * user id when it loads: env and `sys: ["uid"]` are granted, nothing more.
   */
  kubeClient?: boolean;
  /** Programs it may run: only a kubeconfig's exec credential plugin. */
  run?: readonly string[];
}

/** What parsing a command line gives the core. */
export type Prepared<O> =
  | { kind: "help"; text: string }
  | { kind: "usage"; message: string }
  | {
    kind: "run";
    options: O;
    grants: CommandGrants;
    /** The command talks to the API server through this kubeconfig (and context). */
    kube?: { kubeconfig: string; context?: string };
  };

/** A command as the core sees it. */
export interface CommandSpec<O = unknown> {
  /** The word after `forge-manager`. */
  name: string;
  /** One line for `forge-manager --help`. */
  summary: string;
  /**
   * Parses the arguments after the command name. Pure.
   *
   * @param args the arguments after the command name
   * @param env the environment (for the settings a command shares with the sidecar)
   * @param cwd the working directory, to resolve relative paths
   */
  prepare(
    args: readonly string[],
    env: Record<string, string | undefined>,
    cwd: string,
  ): Prepared<O>;
}

/** Core to command worker (lib/cli/worker.ts). Plain data only. */
export type ToCliWorker = { op: "run"; command: string; options: unknown };
/** Command worker to core. */
export type FromCliWorker = { op: "exit"; code: number } | { op: "crashed"; message: string };

/** Where a command writes: stdout and stderr, one chunk of text per call. */
export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

/**
 * The worker permissions for `grants`: exactly the listed reads and connections, and no write,
 * env, sys, run (so no signals), FFI or remote import.
 */
export function commandPermissions(grants: CommandGrants): Deno.PermissionOptionsObject {
  const unique = (items: readonly string[] | undefined) => [...new Set(items ?? [])];
  const net = unique(grants.net);
  return {
    read: unique(grants.read),
    net: net.length === 0 ? false : net,
    write: false,
    env: grants.kubeClient === true,
    sys: grants.kubeClient === true ? ["uid"] : false,
    run: grants.run !== undefined && grants.run.length > 0 ? unique(grants.run) : false,
    ffi: false,
    import: false,
  };
}

/** An absolute, normalized path: `path` resolved against `cwd`. */
export function resolvePath(path: string, cwd: string): string {
  const joined = path.startsWith("/") ? path : `${cwd}/${path}`;
  const parts: string[] = [];
  for (const part of joined.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return "/" + parts.join("/");
}
