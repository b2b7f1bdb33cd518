/**
 * A long-running child process (etcd, kube-apiserver) in its own process group, whose output is
 * kept in a log file and a short in-memory tail for error messages.
 *
 * Needs `--allow-run` for the binary (and `setpriv` on Linux), `--allow-write` for the log file.
 *
 * @module
 */

/** Options of {@linkcode ManagedProcess.spawn}. */
export interface SpawnOptions {
  /** Short name used in log lines and error messages ("etcd"). */
  name: string;
  /** Executable path. */
  command: string;
  args: readonly string[];
  /** File that receives stdout and stderr (appended). */
  logFile: string;
  /** Called with every output line, prefixed with the name. */
  log?: (line: string) => void;
}

const TAIL_LINES = 40;

/** Whether `setpriv --pdeathsig` is usable, so children die with us even on SIGKILL. */
let setprivPath: string | null | undefined;

function findSetpriv(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = null;
  if (Deno.build.os !== "linux") return setprivPath;
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    try {
      const path = `${dir}/setpriv`;
      if (Deno.statSync(path).isFile) {
        setprivPath = path;
        break;
      }
    } catch {
      // not in this folder
    }
  }
  return setprivPath;
}

/** A child process we own: started detached (its own process group) and always awaited. */
export class ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly #child: Deno.ChildProcess;
  readonly #pumps: Promise<void>;
  readonly #tail: string[] = [];
  #status: Deno.CommandStatus | undefined;
  readonly status: Promise<Deno.CommandStatus>;

  private constructor(child: Deno.ChildProcess, opts: SpawnOptions, file: Deno.FsFile) {
    this.name = opts.name;
    this.#child = child;
    this.pid = child.pid;
    const pump = (stream: ReadableStream<Uint8Array>) =>
      this.#pump(stream, file, opts.log).catch(() => {/* the process is gone */});
    this.#pumps = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => file.close());
    this.status = child.status.then((status) => (this.#status = status));
  }

  /**
   * Starts `command` in a new process group. On Linux it is wrapped in `setpriv --pdeathsig KILL`
   * so that it is killed when the thread that started it ends, even if that process is SIGKILLed.
   */
  static async spawn(opts: SpawnOptions): Promise<ManagedProcess> {
    const file = await Deno.open(opts.logFile, { create: true, append: true });
    const setpriv = findSetpriv();
    const [command, args] = setpriv
      ? [setpriv, ["--pdeathsig", "KILL", "--", opts.command, ...opts.args]]
      : [opts.command, [...opts.args]];
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(command, {
        args,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        detached: true,
      }).spawn();
    } catch (err) {
      file.close();
      throw new Error(`Cannot start ${opts.name} as ${opts.command}: ${err}`, { cause: err });
    }
    return new ManagedProcess(child, opts, file);
  }

  /** True until the process has exited (and been reaped). */
  get running(): boolean {
    return this.#status === undefined;
  }

  /** The last output lines, for error messages. */
  tail(lines = 15): string {
    return this.#tail.slice(-lines).join("\n");
  }

  /** Sends `signal` to the process group, ignoring a group that is already gone. */
  signal(signal: Deno.Signal): void {
    if (!this.running) return;
    try {
      Deno.kill(-this.pid, signal);
    } catch {
      try {
        Deno.kill(this.pid, signal);
      } catch {
        // already exited
      }
    }
  }

  /**
   * Stops the process: `signal`, then SIGKILL after `graceMs`. Resolves once it has exited and its
   * output has been written out.
   */
  async stop(signal: Deno.Signal = "SIGKILL", graceMs = 10_000): Promise<Deno.CommandStatus> {
    this.signal(signal);
    if (signal !== "SIGKILL") {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        this.status.then(() => false),
        new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), graceMs)),
      ]);
      clearTimeout(timer);
      if (timedOut) this.signal("SIGKILL");
    }
    const status = await this.status;
    await this.#pumps;
    return status;
  }

  /** For `unload` and signal handlers, which cannot await: SIGKILL the group now. */
  killSync(): void {
    this.signal("SIGKILL");
  }

  async #pump(
    stream: ReadableStream<Uint8Array>,
    file: Deno.FsFile,
    log: ((line: string) => void) | undefined,
  ): Promise<void> {
    const encoder = new TextEncoder();
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      let bytes = encoder.encode(chunk);
      while (bytes.length > 0) bytes = bytes.subarray(await file.write(bytes));
      const parts = (pending + chunk).split("\n");
      pending = parts.pop() ?? "";
      for (const line of parts) this.#line(line, log);
    }
    if (pending !== "") this.#line(pending, log);
  }

  #line(line: string, log: ((line: string) => void) | undefined): void {
    this.#tail.push(line);
    if (this.#tail.length > TAIL_LINES) this.#tail.shift();
    log?.(`[${this.name}] ${line}`);
  }
}
