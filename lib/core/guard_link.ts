/**
 * The sidecar's end of the guard's socket, in the privileged core: it connects to the guard
 * (and reconnects while the guard restarts), says hello, and relays. The guard's pings go to the
 * worker, which answers them from its live forging state; the core never answers for it, so a
 * worker that hangs lets the guard's deadline pass. Arming requests go the other way. What the
 * guard reports (armed, fired, its state) and whether it is connected reach the worker as
 * notices.
 *
 * @module
 */

import { type Clock, sleep } from "../base/clock.ts";
import { errorText, type Logger } from "../base/log.ts";
import { type FromGuard, lineOf, LineReader, type ToGuard } from "./guard_protocol.ts";
import type { GuardNotice } from "./worker_protocol.ts";

/** How long the link waits before it connects again. */
const RECONNECT_MS = 500;

/** Options of {@linkcode GuardLink}. */
export interface GuardLinkOptions {
  /** The guard's socket (GUARD_SOCKET). */
  path: string;
  /** The first message of every connection. */
  hello: Extract<ToGuard, { op: "hello" }>;
  clock: Clock;
  log: Logger;
  /** Delivers a notice to the worker. */
  notify: (notice: GuardNotice) => void;
}

/** The core's connection to the guard. Call `start()` once; `bye()` or `close()` at the end. */
export class GuardLink {
  readonly #o: GuardLinkOptions;
  #conn: Deno.UnixConn | undefined;
  #closed = false;
  /** Whether the worker was last told the link is up (notices only on a change). */
  #up: boolean | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(options: GuardLinkOptions) {
    this.#o = options;
  }

  /** Connects, and keeps reconnecting until closed. */
  start(): void {
    void this.#loop();
  }

  /** Forwards an arming request; fails it at once when no guard is connected. */
  arm(id: number): void {
    if (this.#conn === undefined) {
      this.#o.notify({ kind: "armed", id, ok: false, error: "no guard is connected" });
      return;
    }
    this.#send({ op: "arm", id });
  }

  /** Forwards the worker's answer to ping `seq`. */
  pong(seq: number, armed: boolean, leftMs: number): void {
    this.#send({ op: "pong", seq, armed, leftMs });
  }

  /** A clean goodbye (the last stop was confirmed), then the connection closes. */
  async bye(): Promise<void> {
    this.#send({ op: "bye" });
    await this.#writing;
    this.close();
  }

  /** Closes the connection for good: if the guard is armed, it acts (the sidecar is gone). */
  close(): void {
    this.#closed = true;
    try {
      this.#conn?.close();
    } catch { /* closed already */ }
    this.#conn = undefined;
  }

  #link(up: boolean, error?: string): void {
    if (this.#up === up) return;
    this.#up = up;
    this.#o.notify({ kind: "link", up, ...(error !== undefined ? { error } : {}) });
  }

  #send(message: ToGuard): void {
    const conn = this.#conn;
    if (conn === undefined) return;
    const bytes = lineOf(message);
    // One write after another, in order: a stream keeps them in order only if we do.
    this.#writing = this.#writing.then(async () => {
      try {
        let written = 0;
        while (written < bytes.length) written += await conn.write(bytes.subarray(written));
      } catch (err) {
        this.#o.log.warn("cannot write to the guard", { err });
        try {
          conn.close();
        } catch { /* closed already */ }
      }
    });
  }

  async #loop(): Promise<void> {
    const { path, clock, log } = this.#o;
    while (!this.#closed) {
      let conn: Deno.UnixConn;
      try {
        conn = await Deno.connect({ transport: "unix", path });
      } catch (err) {
        this.#link(false, `cannot connect to the guard at ${path}: ${errorText(err)}`);
        await sleep(clock, RECONNECT_MS);
        continue;
      }
      if (this.#closed) {
        conn.close();
        break;
      }
      this.#conn = conn;
      this.#send(this.#o.hello);
      const why = await this.#read(conn);
      if (this.#conn === conn) this.#conn = undefined;
      if (!this.#closed) {
        log.warn("the guard's connection closed", { err: why });
        this.#link(false, why);
        await sleep(clock, RECONNECT_MS);
      }
    }
  }

  /** Reads until the connection ends; returns why it ended. */
  async #read(conn: Deno.UnixConn): Promise<string> {
    const reader = new LineReader();
    const buffer = new Uint8Array(4096);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) return "the guard closed the connection";
        const { values, errors } = reader.feed(buffer.subarray(0, n));
        for (const error of errors) this.#o.log.warn("bad message from the guard", { err: error });
        for (const value of values) this.#received(value as FromGuard);
      }
    } catch (err) {
      return errorText(err);
    }
  }

  #received(message: FromGuard): void {
    const notify = this.#o.notify;
    switch (message?.op) {
      case "ping":
        return notify({ kind: "ping", seq: message.seq });
      case "armed":
        return notify({
          kind: "armed",
          id: message.id,
          ok: message.ok === true,
          ...(message.error !== undefined ? { error: message.error } : {}),
        });
      case "fired":
        return notify({
          kind: "fired",
          reason: message.reason,
          ok: message.ok === true,
          ...(message.error !== undefined ? { error: message.error } : {}),
        });
      case "state":
        // The guard accepted us (it sends its state right after our hello): the link is up.
        this.#link(true);
        return notify({ kind: "state", armed: message.armed, demotions: message.demotions });
      case "refused":
        this.#o.log.error("the guard refused this sidecar", { err: message.reason });
        this.#link(false, `the guard refused this sidecar: ${message.reason}`);
        return;
      default:
        this.#o.log.warn("unknown message from the guard", {
          op: String((message as { op?: unknown })?.op),
        });
    }
  }
}
