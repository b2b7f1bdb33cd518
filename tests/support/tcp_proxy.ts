/**
 * A TCP proxy on 127.0.0.1 in front of the API server, one per replica, so a test can cut one
 * replica off (black-hole), heal it, or make its API server answer slowly. It forwards bytes
 * and knows nothing of TLS: the sidecar still verifies the API server's certificate, which is
 * issued for 127.0.0.1, so a different port on the same address is fine.
 *
 * - {@linkcode TcpProxy.blackhole}: nothing is forwarded any more, in either direction, and new
 *   connections are accepted but go nowhere. Connections stay open and hang, as behind a network
 *   partition. Bytes that arrive meanwhile are held, not dropped (TCP retransmits across a short
 *   partition), and delivered on {@linkcode TcpProxy.heal}; a client that gave up has closed its
 *   side by then, and the close is delivered after those bytes.
 * - {@linkcode TcpProxy.setResponseDelay}: every chunk from the API server to the client is
 *   delivered `ms` later (order kept). Requests reach the API server at once, so writes commit
 *   on time and the client learns of it late: a slow API server as the client sees it.
 *
 * Needs `--allow-net=127.0.0.1`.
 *
 * @module
 */

import { sleep } from "./wait.ts";

/** Where the proxy forwards to. */
export interface ProxyTarget {
  hostname: string;
  port: number;
}

/** Counters for a test's report. */
export interface ProxyStats {
  connections: number;
  bytesUp: number;
  bytesDown: number;
  /** Connections to the API server that failed, and the last error. */
  upstreamErrors: number;
  lastUpstreamError?: string;
}

interface Gate {
  open: boolean;
  wait: Promise<void>;
  release: () => void;
}

function openGate(): Gate {
  return { open: true, wait: Promise.resolve(), release: () => {} };
}

function closedGate(): Gate {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { open: false, wait: promise, release: resolve };
}

/** A running proxy. Dispose it (or call close) to stop it and drop every connection. */
export class TcpProxy implements AsyncDisposable {
  readonly port: number;
  readonly target: ProxyTarget;
  readonly stats: ProxyStats = { connections: 0, bytesUp: 0, bytesDown: 0, upstreamErrors: 0 };
  readonly #listener: Deno.Listener;
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  #gate: Gate = openGate();
  #responseDelayMs = 0;
  #closed = false;

  private constructor(listener: Deno.Listener, target: ProxyTarget) {
    this.#listener = listener;
    this.port = (listener.addr as Deno.NetAddr).port;
    this.target = target;
    this.#track(this.#accept());
  }

  /** Starts a proxy on a free port of 127.0.0.1 forwarding to `target`. */
  static start(target: ProxyTarget): TcpProxy {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return new TcpProxy(listener, target);
  }

  /** `https://127.0.0.1:<port>` */
  get server(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** Whether the proxy forwards now. */
  get forwarding(): boolean {
    return this.#gate.open;
  }

  /** Stops forwarding (both directions, all connections, new ones too); connections hang. */
  blackhole(): void {
    if (this.#gate.open) this.#gate = closedGate();
  }

  /** Forwards again, delivering what was held. */
  heal(): void {
    const gate = this.#gate;
    this.#gate = openGate();
    gate.release();
  }

  /** Delays every chunk from the API server to the client by `ms` (0: no delay). */
  setResponseDelay(ms: number): void {
    this.#responseDelayMs = ms;
  }

  /** Closes every open connection (the clients see a reset), keeping the listener. */
  dropConnections(): void {
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    this.#conns.clear();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch { /* closed */ }
    this.dropConnections();
    this.heal();
    await Promise.allSettled([...this.#tasks]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.catch(() => {}).finally(() => this.#tasks.delete(task));
  }

  #register(conn: Deno.Conn): void {
    if (this.#closed) {
      try {
        conn.close();
      } catch { /* closed */ }
      return;
    }
    this.#conns.add(conn);
  }

  #forget(conn: Deno.Conn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch { /* closed */ }
  }

  async #accept(): Promise<void> {
    try {
      for await (const client of this.#listener) {
        this.stats.connections++;
        this.#register(client);
        this.#track(this.#serve(client));
      }
    } catch {
      // listener closed
    }
  }

  async #serve(client: Deno.Conn): Promise<void> {
    // A partitioned network does not let the connection through either: wait before dialing.
    await this.#waitOpen();
    if (this.#closed || !this.#conns.has(client)) return;
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect(this.target);
    } catch (err) {
      this.stats.upstreamErrors++;
      this.stats.lastUpstreamError = String(err);
      this.#forget(client);
      return;
    }
    this.#register(upstream);
    await Promise.allSettled([
      this.#pump(client, upstream, "up"),
      this.#pump(upstream, client, "down"),
    ]);
    this.#forget(client);
    this.#forget(upstream);
  }

  async #waitOpen(): Promise<void> {
    while (!this.#gate.open && !this.#closed) await this.#gate.wait;
  }

  /**
   * Copies `from` to `to`. Reading never stops (held bytes queue here); writing waits for the
   * gate and, downstream, for the delay. EOF is passed on as a half close after the queued bytes.
   */
  async #pump(from: Deno.Conn, to: Deno.Conn, direction: "up" | "down"): Promise<void> {
    const queue: { data: Uint8Array | null; due: number }[] = [];
    let wake: (() => void) | undefined;
    const push = (data: Uint8Array | null) => {
      const delay = direction === "down" ? this.#responseDelayMs : 0;
      queue.push({ data, due: performance.now() + delay });
      wake?.();
    };
    const reader = (async () => {
      const buf = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          const n = await from.read(buf);
          if (n === null) break;
          push(buf.slice(0, n));
        }
      } catch {
        // reset or closed
      }
      push(null);
    })();
    try {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((r) => wake = r);
        const item = queue.shift()!;
        const wait = item.due - performance.now();
        if (wait > 0) await sleep(wait);
        await this.#waitOpen();
        if (this.#closed) return;
        if (item.data === null) {
          try {
            await to.closeWrite();
          } catch { /* closed */ }
          return;
        }
        let written = 0;
        while (written < item.data.length) {
          written += await to.write(item.data.subarray(written));
        }
        if (direction === "up") this.stats.bytesUp += item.data.length;
        else this.stats.bytesDown += item.data.length;
      }
    } catch {
      // the other side is gone: end both
      this.#forget(from);
      this.#forget(to);
    } finally {
      await reader;
    }
  }
}
