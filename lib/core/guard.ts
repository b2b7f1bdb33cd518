/**
 * The guard process (`forge-manager guard`): the shell around the pure rule in guard_rule.ts. It
 * listens on a unix socket for the one sidecar of its pod (or VM), keeps its state file, runs the
 * rule's timers on its own monotonic clock, and when the rule says so removes the keys and
 * signals the node itself (lib/core/fail_safe.ts). It needs no network and no API server: it
 * reads /proc, unlinks in the keys' folder and sends signals, so it runs with the core's
 * permissions, and is our own code only.
 *
 * One event at a time, in order (one writer of the state, as in the sidecar's loop); every action
 * of a step is done before the next event is taken, so a persist precedes the message it guards.
 *
 * @module
 */

import type { Clock } from "../base/clock.ts";
import { WakeQueue } from "../base/wake_queue.ts";
import { writeFileAtomic } from "../base/atomic_write.ts";
import { errorText, type Logger } from "../base/log.ts";
import type { GuardConfig } from "./guard_config.ts";
import { removeKeysAndSignal } from "./fail_safe.ts";
import {
  type FromGuard,
  type GuardFireReason,
  lineOf,
  LineReader,
  type ToGuard,
} from "./guard_protocol.ts";
import {
  type GuardAction,
  type GuardEvent,
  type GuardState,
  guardStep,
  guardWake,
  initialGuardState,
} from "./guard_rule.ts";
import type { NodeProcess } from "./node_process.ts";

/** What the guard talks to. */
export interface GuardDeps {
  clock: Clock;
  log: Logger;
  node: NodeProcess;
}

/** Runs the guard until `signal` aborts (its SIGTERM); acts on the way out if armed. */
export async function runGuard(
  config: GuardConfig,
  deps: GuardDeps,
  signal: AbortSignal,
): Promise<void> {
  const guard = new GuardProcess(config, deps);
  await guard.run(signal);
}

/** Whether a state file says the guard was armed (a missing or unreadable file: no). */
export async function readArmed(path: string): Promise<boolean> {
  try {
    return (JSON.parse(await Deno.readTextFile(path)) as { armed?: unknown }).armed === true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    // Unreadable is not "disarmed": better one needless stop than a missed one.
    return true;
  }
}

class GuardProcess {
  readonly #cfg: GuardConfig;
  readonly #d: GuardDeps;
  #state: GuardState = initialGuardState();
  readonly #inbox: WakeQueue<GuardEvent>;
  #conn: Deno.UnixConn | undefined;
  #exit = false;

  constructor(config: GuardConfig, deps: GuardDeps) {
    this.#cfg = config;
    this.#d = deps;
    this.#inbox = new WakeQueue<GuardEvent>(deps.clock, { kind: "tick" });
  }

  async run(signal: AbortSignal): Promise<void> {
    const { log } = this.#d;
    const listener = await this.#listen();
    log.info("guard listening", {
      path: this.#cfg.socket,
      targets: this.#cfg.targets,
      node: this.#cfg.nodeProcessName,
    });
    this.#post({ kind: "started", armedBefore: await readArmed(this.#cfg.stateFile) });
    const onAbort = () => this.#post({ kind: "stop" });
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    void this.#accept(listener);
    try {
      while (!this.#exit) {
        const event = await this.#next();
        const { state, actions } = guardStep(this.#state, event, this.#d.clock.monotonic());
        this.#state = state;
        for (const action of actions) await this.#perform(action);
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      listener.close();
      this.#conn?.close();
      await Deno.remove(this.#cfg.socket).catch(() => {});
    }
  }

  async #listen(): Promise<Deno.Listener<Deno.UnixConn, Deno.UnixAddr>> {
    // A socket file left by an earlier guard refuses connections; take its place.
    await Deno.remove(this.#cfg.socket).catch(() => {});
    const listener = Deno.listen({ transport: "unix", path: this.#cfg.socket });
    await Deno.chmod(this.#cfg.socket, 0o600);
    return listener;
  }

  #post(event: GuardEvent): void {
    this.#inbox.post(event);
  }

  #next(): Promise<GuardEvent> {
    return this.#inbox.next(() => guardWake(this.#state));
  }

  async #perform(action: GuardAction): Promise<void> {
    const { log } = this.#d;
    switch (action.kind) {
      case "send":
        return await this.#send(action.message);
      case "persist":
        try {
          await writeFileAtomic(
            this.#cfg.stateFile,
            new TextEncoder().encode(
              JSON.stringify({ armed: action.armed, at: this.#d.clock.wall().toISOString() }) +
                "\n",
            ),
          );
        } catch (err) {
          // Armed and not persisted: a restart would not know it was armed. Say so loudly.
          log.error("guard: cannot write its state file", {
            path: this.#cfg.stateFile,
            armed: action.armed,
            err,
          });
        }
        return;
      case "fire":
        return await this.#fire(action.reason);
      case "exit":
        this.#exit = true;
        return;
    }
  }

  async #fire(reason: GuardFireReason): Promise<void> {
    const result = await removeKeysAndSignal(this.#cfg.targets, this.#d.node);
    const fields = { reason, removed: result.removed, pid: result.pid, errors: result.errors };
    if (result.ok) this.#d.log.warn("guard stopped the node: keys removed, node signalled", fields);
    else this.#d.log.error("guard could not fully stop the node", fields);
    await this.#send({
      op: "fired",
      reason,
      ok: result.ok,
      ...(result.ok ? {} : { error: result.errors.join("; ") }),
    });
  }

  async #send(message: FromGuard): Promise<void> {
    const conn = this.#conn;
    if (conn === undefined) return;
    try {
      const bytes = lineOf(message);
      let written = 0;
      while (written < bytes.length) written += await conn.write(bytes.subarray(written));
    } catch (err) {
      this.#d.log.warn("guard: cannot write to the sidecar", { err });
      this.#drop(conn);
    }
  }

  /** Accepts connections: one sidecar at a time; another is told why and closed. */
  async #accept(listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>): Promise<void> {
    try {
      for await (const conn of listener) {
        if (this.#conn !== undefined) {
          const refused: FromGuard = { op: "refused", reason: "another sidecar is connected" };
          await conn.write(lineOf(refused)).catch(() => {});
          conn.close();
          continue;
        }
        this.#conn = conn;
        this.#post({ kind: "connected" });
        void this.#read(conn);
      }
    } catch (err) {
      if (!this.#exit) this.#d.log.error("guard: the socket stopped accepting", { err });
    }
  }

  async #read(conn: Deno.UnixConn): Promise<void> {
    const reader = new LineReader();
    const buffer = new Uint8Array(4096);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        const { values, errors } = reader.feed(buffer.subarray(0, n));
        for (const error of errors) this.#d.log.warn("guard: bad message", { err: error });
        for (const value of values) this.#received(value as ToGuard);
      }
    } catch (err) {
      this.#d.log.warn("guard: the sidecar's connection failed", { err: errorText(err) });
    }
    this.#drop(conn);
  }

  #drop(conn: Deno.UnixConn): void {
    if (this.#conn !== conn) return;
    this.#conn = undefined;
    try {
      conn.close();
    } catch { /* closed already */ }
    this.#post({ kind: "disconnected" });
  }

  #received(message: ToGuard): void {
    switch (message?.op) {
      case "hello":
        return this.#post({ kind: "hello", ...this.#checkHello(message), pingMs: message.pingMs });
      case "arm":
        return this.#post({ kind: "arm", id: message.id });
      case "pong":
        return this.#post({
          kind: "pong",
          seq: message.seq,
          armed: message.armed === true,
          leftMs: Number.isFinite(message.leftMs) ? message.leftMs : 0,
        });
      case "bye":
        return this.#post({ kind: "bye" });
      default:
        this.#d.log.warn("guard: unknown message", {
          op: String((message as { op?: unknown })?.op),
        });
    }
  }

  /** The sidecar must manage exactly the guard's own targets and node. */
  #checkHello(hello: Extract<ToGuard, { op: "hello" }>): { ok: boolean; reason?: string } {
    const mine = [...this.#cfg.targets].sort().join(", ");
    const theirs = [...(hello.targets ?? [])].sort().join(", ");
    if (mine !== theirs) {
      return {
        ok: false,
        reason:
          `the sidecar's TARGET_* files (${theirs}) differ from the guard's (${mine}): set the same ` +
          "TARGET_KES_KEY, TARGET_VRF_KEY and TARGET_OP_CERT for both",
      };
    }
    if (hello.nodeProcessName !== this.#cfg.nodeProcessName) {
      return {
        ok: false,
        reason: `the sidecar's NODE_PROCESS_NAME=${
          JSON.stringify(hello.nodeProcessName)
        } differs from the guard's ${JSON.stringify(this.#cfg.nodeProcessName)}`,
      };
    }
    return { ok: true };
  }
}
