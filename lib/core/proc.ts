/**
 * The privileged part: find cardano-node in the (shared) PID namespace and send it SIGHUP.
 * Our own code only, no npm imports. Needs `--allow-all`: Deno refuses any /proc read under
 * narrower flags, and `Deno.kill` needs an unscoped `--allow-run` (see README, "Permissions").
 *
 * A process matches when /proc/PID/comm equals the name exactly, or the basename of
 * /proc/PID/exe does; never by a command-line substring (SIGHUP kills a wrapper shell).
 *
 * At idle the node is looked for every few seconds: the process found last is checked first
 * (its pid, with the same start time), and all of /proc is scanned only when it is gone, or
 * once per {@linkcode FULL_SCAN_EVERY_MS} to still notice a second process of the same name.
 *
 * @module
 */

import { type NodeInfo, type NodeProcess, SignalError } from "./node_process.ts";

/** Flags with which cardano-node starts without forging (the second before node 10.5.1). */
export const NON_PRODUCING_FLAGS = ["--start-as-non-producing-node", "--non-producing-node"];

/** How often `find` scans all of /proc although the node found last still runs (ms). */
export const FULL_SCAN_EVERY_MS = 60_000;

/** Reads /proc to find and signal processes named `name`. */
export class ProcNodeProcess implements NodeProcess {
  readonly #name: string;
  readonly #proc: string;
  readonly #now: () => number;
  readonly #fullScanEveryMs: number;
  #known: NodeInfo | undefined;
  #lastScanAt = -Infinity;

  /**
   * @param proc the proc mount (tests may point elsewhere)
   * @param opts `now` (monotonic ms) and the full-scan period, for tests
   */
  constructor(
    name: string,
    proc = "/proc",
    opts: { now?: () => number; fullScanEveryMs?: number } = {},
  ) {
    this.#name = name;
    this.#proc = proc;
    this.#now = opts.now ?? (() => performance.now());
    this.#fullScanEveryMs = opts.fullScanEveryMs ?? FULL_SCAN_EVERY_MS;
  }

  find(): Promise<NodeInfo | undefined> {
    const known = this.#known;
    if (known !== undefined && this.#now() - this.#lastScanAt < this.#fullScanEveryMs) {
      const now = this.#inspect(known.pid);
      if (now !== undefined && now.startTicks === known.startTicks) return Promise.resolve(now);
    }
    return this.#scan();
  }

  #scan(): Promise<NodeInfo | undefined> {
    this.#lastScanAt = this.#now();
    this.#known = undefined;
    const found: NodeInfo[] = [];
    for (const entry of Deno.readDirSync(this.#proc)) {
      if (!/^\d+$/.test(entry.name)) continue;
      const pid = Number(entry.name);
      const info = this.#inspect(pid);
      if (info !== undefined) found.push(info);
    }
    if (found.length > 1) {
      return Promise.reject(
        new SignalError(
          "error",
          `Cannot choose a ${this.#name} process: ${found.length} match (pids ${
            found.map((n) => n.pid).join(", ")
          })`,
        ),
      );
    }
    this.#known = found[0];
    return Promise.resolve(found[0]);
  }

  hangup(node: NodeInfo): Promise<void> {
    const now = this.#inspect(node.pid);
    if (now === undefined) {
      return Promise.reject(
        new SignalError("not_found", `Cannot signal ${this.#name} pid ${node.pid}: it has exited`),
      );
    }
    if (now.startTicks !== node.startTicks) {
      return Promise.reject(
        new SignalError(
          "replaced",
          `Cannot signal ${this.#name} pid ${node.pid}: the pid now belongs to a newer process`,
        ),
      );
    }
    try {
      Deno.kill(node.pid, "SIGHUP");
      return Promise.resolve();
    } catch (err) {
      const reason = err instanceof Deno.errors.NotFound
        ? "not_found"
        : err instanceof Deno.errors.PermissionDenied
        ? "refused"
        : "error";
      return Promise.reject(
        new SignalError(reason, `Cannot signal ${this.#name} pid ${node.pid}: ${String(err)}`),
      );
    }
  }

  /** The node's identity if `pid` is a matching process, else undefined. */
  #inspect(pid: number): NodeInfo | undefined {
    try {
      const comm = Deno.readTextFileSync(`${this.#proc}/${pid}/comm`).trimEnd();
      let matches = comm === this.#name;
      if (!matches) {
        try {
          const exe = Deno.readLinkSync(`${this.#proc}/${pid}/exe`);
          matches = exe.slice(exe.lastIndexOf("/") + 1) === this.#name;
        } catch {
          // exe is unreadable for processes of other users; comm decides then.
        }
      }
      if (!matches) return undefined;
      const stat = Deno.readTextFileSync(`${this.#proc}/${pid}/stat`);
      // Field 22 (starttime) counts from after the ")" that closes comm, which may hold spaces.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const startTicks = Number(fields[19]);
      const args = Deno.readTextFileSync(`${this.#proc}/${pid}/cmdline`).split("\0");
      return { pid, startTicks, nonProducing: nonProducing(args, `${this.#proc}/${pid}/cwd`) };
    } catch {
      return undefined; // exited while we looked
    }
  }
}

/**
 * Whether a cardano-node command line boots without forging: one of {@linkcode NON_PRODUCING_FLAGS},
 * or `StartAsNonProducingNode: true` in the file named by `--config`.
 */
export function nonProducing(args: readonly string[], cwd = "."): boolean {
  if (args.some((arg) => NON_PRODUCING_FLAGS.includes(arg))) return true;
  const at = args.indexOf("--config");
  const configPath = at >= 0 ? args[at + 1] : args.find((a) => a.startsWith("--config="))?.slice(9);
  if (configPath === undefined) return false;
  try {
    const text = Deno.readTextFileSync(
      configPath.startsWith("/") ? configPath : `${cwd}/${configPath}`,
    );
    return /^\s*"?StartAsNonProducingNode"?\s*:\s*true\b/m.test(text);
  } catch {
    return false;
  }
}
