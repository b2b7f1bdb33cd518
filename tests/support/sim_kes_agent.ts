/**
 * A simulated KES agent (IOG's kes-agent, see /work/shared/notes/cardano-node.md) and the node's
 * side of it, for the simulated cardano-node's `--shelley-kes-agent-socket`.
 *
 * The real agent holds the KES signing key in locked memory and pushes it to every node connected
 * to its service socket, when the node connects and whenever a key is installed or dropped
 * (`drop-key` is agent-wide). Here the service socket is a unix socket on which the agent writes
 * one JSON line per push, `{"kes": <the key's text envelope>}` or `{"kes": null}` once dropped;
 * the node keeps the last key it received while the agent is away (as the real node does: it
 * needs the agent only to get a key) and reconnects.
 *
 * Needs read/write on the socket's folder and net `unix:` to it (tests run with -A).
 *
 * @module
 */

import { hotKeyId, parseKesKey } from "../../lib/cardano/cardano_keys.ts";

/** A running simulated agent. */
export interface SimKesAgent extends AsyncDisposable {
  readonly socket: string;
  /** Installs a key (a KES signing key's text envelope) and pushes it to every connected node. */
  install(kes: string): void;
  /** Drops the key, on every connected node too. */
  drop(): void;
  /** How many nodes are connected now. */
  connected(): number;
  close(): Promise<void>;
}

/**
 * Starts an agent serving `socket` (a stale socket file is replaced), with `kes` installed if
 * given. Needs write on the socket's folder.
 */
export function startSimKesAgent(opts: { socket: string; kes?: string }): SimKesAgent {
  try {
    Deno.removeSync(opts.socket);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const listener = Deno.listen({ transport: "unix", path: opts.socket });
  const conns = new Set<Deno.Conn>();
  let key: string | null = opts.kes ?? null;
  const encoder = new TextEncoder();
  const push = (conn: Deno.Conn) =>
    conn.write(encoder.encode(JSON.stringify({ kes: key }) + "\n")).catch(() => {
      conns.delete(conn);
      conn.close();
    });
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        conns.add(conn);
        void push(conn);
      }
    } catch {
      // closed
    }
  })();
  const agent: SimKesAgent = {
    socket: opts.socket,
    install(kes) {
      key = kes;
      for (const conn of conns) void push(conn);
    },
    drop() {
      key = null;
      for (const conn of conns) void push(conn);
    },
    connected: () => conns.size,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      conns.clear();
      await accepting;
    },
    [Symbol.asyncDispose]: () => agent.close(),
  };
  return agent;
}

/**
 * The node's side: connects to the agent's socket (again every `retryMs` while it cannot, or after
 * the agent went away) and reports each key it receives by its hot key id (the first 8 hex digits
 * of Blake2b-256 of its verification key, as the certificate's), or undefined once dropped. A key
 * the node cannot parse counts as none. Returns a function that stops it.
 */
export function followKesAgent(
  socket: string,
  onKey: (hotKeyId: string | undefined) => void,
  retryMs = 100,
): () => void {
  let stopped = false;
  let conn: Deno.Conn | undefined;
  (async () => {
    while (!stopped) {
      try {
        conn = await Deno.connect({ transport: "unix", path: socket });
        let buffered = "";
        for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) {
          buffered += chunk;
          let newline: number;
          while ((newline = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, newline);
            buffered = buffered.slice(newline + 1);
            onKey(keyIdOf(line));
          }
        }
      } catch {
        // not listening yet, or gone: try again
      }
      conn = undefined;
      if (!stopped) await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  })();
  return () => {
    stopped = true;
    try {
      conn?.close();
    } catch {
      // already closed
    }
  };
}

function keyIdOf(line: string): string | undefined {
  try {
    const kes = (JSON.parse(line) as { kes?: unknown }).kes;
    return typeof kes === "string" ? hotKeyId(parseKesKey(kes, "the agent's key").vkey) : undefined;
  } catch {
    return undefined;
  }
}
