/**
 * client-node's generated API over Deno's own `fetch` instead of client-node's undici stack.
 *
 * client-node keeps what it does well: its API classes, models and serialization, and its
 * kubeconfig handling (`KubeConfig.applySecurityAuthentication` still sets the bearer token, runs
 * an exec credential plugin, re-reads a projected service-account token and reads the CA and
 * client certificate files on every request). Only the bytes travel differently: the TLS
 * material client-node would hand to an undici Agent becomes a `Deno.HttpClient`
 * ({@linkcode denoClientOptions}), and {@linkcode DenoHttpLibrary} sends each request with it.
 * Why: undici's 500 ms timer wheel runs while any connection is pooled or a watch is open, its 4 s
 * keep-alive makes most requests pay a new TLS handshake, and a request through it costs about
 * twice the CPU of the same request through Deno's `fetch` (README, "Where idle CPU goes").
 *
 * HTTP/1.1 only: over HTTP/2 every request shares one connection, and a connection that dies
 * silently (a peer gone without a FIN) then swallows every later request until the kernel gives
 * up on it, minutes later (kubernetes#125530); over HTTP/1.1 only the request on it times out.
 * Deno's fetch itself survives an HTTP/2 GOAWAY (the crash that made the undici transport drop h2
 * is in Deno's node:http2, which this does not use); tests/kube/kube_transport_test.ts checks
 * both.
 *
 * Needs net to the API server (and to a kubeconfig's proxy), as the undici transport did.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import * as k8s from "@kubernetes/client-node";

/** The `Deno.createHttpClient` options for one set of TLS material and proxy. */
export type DenoClientOptions = Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem>;

type TlsOptions = {
  ca?: unknown;
  cert?: unknown;
  key?: unknown;
  pfx?: unknown;
  passphrase?: unknown;
  rejectUnauthorized?: boolean;
  servername?: string;
};

/** A PEM value client-node holds as a string, a Buffer, or a list of either. */
function pemOf(value: unknown, what: string): string {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return new TextDecoder().decode(value);
  if (Array.isArray(value)) return value.map((v) => pemOf(v, what)).join("\n");
  throw new Error(`Cannot use the kubeconfig's ${what}: it is not PEM text`);
}

/**
 * Maps what client-node would give an undici dispatcher (`KubeConfig.createDispatcherOptions`)
 * to `Deno.createHttpClient` options, or throws naming what Deno's client cannot do: skipping
 * certificate verification (`insecure-skip-tls-verify`), another TLS server name
 * (`tls-server-name`), a PKCS#12 bundle, a SOCKS4 proxy. For those, `KUBE_TRANSPORT=undici`
 * keeps client-node's own stack.
 *
 * Note: `caCerts` are trusted in addition to Deno's root store (client-node's CA replaces Node's);
 * and Deno's fetch honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY from the environment (as client-go
 * and kubectl do) where the kubeconfig names no proxy of its own.
 */
export function denoClientOptions(
  server: string,
  options: k8s.DispatcherOptions,
): DenoClientOptions {
  const client: DenoClientOptions = { http1: true, http2: false };
  if (options.type === "none") return client;
  if (options.type === "proxy" || options.type === "socks") {
    if (!/^(https?|socks5h?):\/\//.test(options.uri)) {
      throw new Error(
        `Cannot use the kubeconfig's proxy-url ${
          JSON.stringify(options.uri)
        }: Deno's fetch supports http, https, socks5 and socks5h proxies (KUBE_TRANSPORT=undici supports others)`,
      );
    }
    client.proxy = { url: options.uri };
  }
  // Over plain http the TLS options (set by insecure-skip-tls-verify) mean nothing.
  if (!server.startsWith("https:")) return client;
  const tls: TlsOptions = options.type === "agent" ? options.connect : options.requestTls;
  if (tls.rejectUnauthorized === false) {
    throw new Error(
      "Cannot use the kubeconfig's insecure-skip-tls-verify: Deno's fetch always verifies the " +
        "API server's certificate (give the cluster's certificate-authority, or set KUBE_TRANSPORT=undici)",
    );
  }
  if (tls.servername !== undefined) {
    throw new Error(
      `Cannot use the kubeconfig's tls-server-name ${
        JSON.stringify(tls.servername)
      }: Deno's fetch checks the certificate against the server's host (set KUBE_TRANSPORT=undici)`,
    );
  }
  if (tls.pfx !== undefined || tls.passphrase !== undefined) {
    throw new Error(
      "Cannot use a PKCS#12 client certificate: Deno's fetch takes PEM (set KUBE_TRANSPORT=undici)",
    );
  }
  if (tls.ca !== undefined) client.caCerts = [pemOf(tls.ca, "certificate-authority")];
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new Error(
      "Cannot use the kubeconfig's client certificate: it needs both client-certificate and client-key",
    );
  }
  if (tls.cert !== undefined && tls.key !== undefined) {
    client.cert = pemOf(tls.cert, "client-certificate");
    client.key = pemOf(tls.key, "client-key");
  }
  return client;
}

/**
 * One `Deno.HttpClient` (one connection pool) per distinct set of options, kept for the life of
 * the KubeConfig: client-node re-reads the CA and certificate files on every request, so a
 * rotated file gets a new pool and in-flight requests and watches keep theirs.
 */
export class DenoClients {
  readonly #clients = new Map<string, Deno.HttpClient>();

  /** The client for `options`, created on first use. */
  get(options: DenoClientOptions): Deno.HttpClient {
    const key = JSON.stringify(options);
    let client = this.#clients.get(key);
    if (client === undefined) {
      client = Deno.createHttpClient(options);
      this.#clients.set(key, client);
    }
    return client;
  }

  /** How many pools exist (for tests). */
  get size(): number {
    return this.#clients.size;
  }

  /** Closes every pool. */
  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}

/** The `Deno.HttpClient` client-node's authentication put on a request, if any. */
export function clientOf(request: k8s.RequestContext): Deno.HttpClient | undefined {
  const dispatcher: unknown = request.getDispatcher();
  if (dispatcher === undefined) return undefined;
  if (dispatcher instanceof Deno.HttpClient) return dispatcher;
  // An undici Agent here would mean the request skipped our KubeConfig: never send it.
  throw new Error(
    "Cannot send a Kubernetes request over Deno's fetch: its connection options came from " +
      "another KubeConfig (an undici dispatcher)",
  );
}

/**
 * client-node's `HttpLibrary` over Deno's `fetch`: sends the request client-node built (URL,
 * method, headers, body, abort signal) with the `Deno.HttpClient` its authentication chose, and
 * answers client-node's `ResponseContext`.
 */
export class DenoHttpLibrary implements k8s.HttpLibrary {
  send(request: k8s.RequestContext): k8s.Observable<k8s.ResponseContext> {
    return new k8s.Observable(sendOnce(request));
  }
}

async function sendOnce(request: k8s.RequestContext): Promise<k8s.ResponseContext> {
  const client = clientOf(request);
  const body = request.getBody() as BodyInit | undefined;
  const response = await fetch(request.getUrl(), {
    method: request.getHttpMethod(),
    headers: request.getHeaders(),
    ...(body !== undefined ? { body } : {}),
    ...(request.getSignal() !== undefined ? { signal: request.getSignal() } : {}),
    ...(client !== undefined ? { client } : {}),
  });
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => headers[name] = value);
  return new k8s.ResponseContext(response.status, headers, {
    text: () => response.text(),
    binary: async () => Buffer.from(await response.arrayBuffer()),
    stream: () => response.body,
  });
}

/** How long a watch may stay silent before it is dropped (and started again), as client-node's. */
export const WATCH_IDLE_MS = 30_000;

/**
 * One watch over Deno's `fetch`: GETs `url` (a watch URL: `watch=true` and its selectors) with
 * `kc`'s authentication and connection options, and calls `onEvent(type, object)` for each line of
 * the newline-delimited JSON stream (a line that is not JSON is skipped, as client-node's Watch
 * does). Resolves when the server ends the stream; rejects when the request fails or answers
 * other than 200, when nothing arrives for `idleMs` (default {@linkcode WATCH_IDLE_MS}), or when
 * `signal` aborts. The caller decides whether and when to watch again.
 */
export async function watchOnce(opts: {
  kc: k8s.KubeConfig;
  url: URL;
  onEvent: (type: string, object: unknown) => void;
  signal: AbortSignal;
  idleMs?: number;
}): Promise<void> {
  const { kc, url, onEvent, signal, idleMs = WATCH_IDLE_MS } = opts;
  signal.throwIfAborted();
  const request = new k8s.RequestContext(url.toString(), k8s.HttpMethod.GET);
  await kc.applySecurityAuthentication(request);
  const client = clientOf(request);
  const controller = new AbortController();
  const stop = () => controller.abort(signal.reason);
  signal.addEventListener("abort", stop, { once: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  // Re-armed on every chunk: a silent connection (a dead peer) is dropped after idleMs.
  const idle = () => {
    clearTimeout(timer);
    timer = setTimeout(
      () => controller.abort(new DOMException(`watch silent for ${idleMs} ms`, "TimeoutError")),
      idleMs,
    );
  };
  try {
    idle();
    const response = await fetch(url, {
      headers: request.getHeaders(),
      signal: controller.signal,
      ...(client !== undefined ? { client } : {}),
    });
    if (response.status !== 200 || response.body === null) {
      await response.body?.cancel();
      throw new Error(`Cannot watch ${url.pathname}: HTTP ${response.status}`);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let pending = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      idle();
      pending += value;
      let end: number;
      while ((end = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 1);
        const event = parseEvent(line);
        if (event !== undefined) onEvent(event.type, event.object);
      }
    }
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", stop);
    controller.abort();
  }
}

function parseEvent(line: string): { type: string; object: unknown } | undefined {
  if (line.trim() === "") return undefined;
  try {
    const event = JSON.parse(line) as { type?: unknown; object?: unknown };
    return typeof event.type === "string" ? { type: event.type, object: event.object } : undefined;
  } catch {
    return undefined;
  }
}
