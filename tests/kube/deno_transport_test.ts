/**
 * lib/kube/deno_transport.ts without an API server: the mapping of client-node's connection
 * options to Deno's client, and requests and watches against a local HTTP server that records
 * what arrives. tests/kube/kube_transport_test.ts runs the same transport against the real API
 * server (TLS, client certificate, token, exec plugin, restart).
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { ApiException, CoreV1Api, PatchStrategy, type V1Namespace } from "@kubernetes/client-node";
import { denoClientOptions, watchOnce } from "../../lib/kube/deno_transport.ts";
import { ForgeKubeConfig, requestOptions, watchOne } from "../../lib/kube/kube_client.ts";

const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const HTTPS = "https://127.0.0.1:6443";

Deno.test("client-node's connection options become Deno's: CA, client certificate, proxy, HTTP/1.1 only", () => {
  const tls = { ca: Buffer.from(PEM), cert: "CERT", key: "KEY" };
  assert.deepEqual(denoClientOptions(HTTPS, { type: "none" }), { http1: true, http2: false });
  assert.deepEqual(
    denoClientOptions(HTTPS, { type: "agent", connect: { ...tls, keepAlive: true } }),
    { http1: true, http2: false, caCerts: [PEM], cert: "CERT", key: "KEY" },
  );
  assert.deepEqual(
    denoClientOptions(HTTPS, {
      type: "proxy",
      uri: "http://proxy.example:3128",
      requestTls: { ca: PEM },
      connect: {},
    }),
    { http1: true, http2: false, proxy: { url: "http://proxy.example:3128" }, caCerts: [PEM] },
  );
  assert.deepEqual(
    denoClientOptions(HTTPS, {
      type: "socks",
      uri: "socks5h://proxy.example:1080",
      requestTls: {},
    }),
    { http1: true, http2: false, proxy: { url: "socks5h://proxy.example:1080" } },
  );
  // Over plain http, insecure-skip-tls-verify (which client-node requires there) means nothing.
  assert.deepEqual(
    denoClientOptions("http://127.0.0.1:8001", {
      type: "agent",
      connect: { rejectUnauthorized: false },
    }),
    { http1: true, http2: false },
  );
});

Deno.test("what Deno's client cannot do is refused, naming the kubeconfig field and the way out", () => {
  const refused: [Parameters<typeof denoClientOptions>[1], RegExp][] = [
    [
      { type: "agent", connect: { rejectUnauthorized: false } },
      /insecure-skip-tls-verify.*KUBE_TRANSPORT=undici/,
    ],
    [
      { type: "agent", connect: { servername: "api.internal" } },
      /tls-server-name "api.internal".*KUBE_TRANSPORT=undici/,
    ],
    [{ type: "agent", connect: { pfx: "x" } }, /PKCS#12/],
    [{ type: "agent", connect: { cert: "CERT" } }, /needs both client-certificate and client-key/],
    [
      { type: "socks", uri: "socks4://proxy:1080", requestTls: {} },
      /proxy-url "socks4:\/\/proxy:1080"/,
    ],
  ];
  for (const [options, message] of refused) {
    assert.throws(() => denoClientOptions(HTTPS, options), message);
  }
});

Deno.test("a kubeconfig Deno's client cannot serve is refused when the client is made, not at each request", () => {
  const kubeconfig = (cluster: Record<string, unknown>, transport: "deno" | "undici") => {
    const kc = new ForgeKubeConfig(transport);
    kc.loadFromOptions({
      clusters: [{ name: "c", server: HTTPS, skipTLSVerify: false, ...cluster }],
      users: [{ name: "u", token: "t" }],
      contexts: [{ name: "x", cluster: "c", user: "u" }],
      currentContext: "x",
    });
    return kc;
  };
  assert.throws(
    () => kubeconfig({ skipTLSVerify: true }, "deno").checkTransport(),
    /insecure-skip-tls-verify/,
  );
  assert.throws(
    () => kubeconfig({ tlsServerName: "api.internal" }, "deno").checkTransport(),
    /tls-server-name "api.internal"/,
  );
  assert.throws(
    () => kubeconfig({ proxyUrl: "socks4://p:1080" }, "deno").checkTransport(),
    /proxy-url "socks4:\/\/p:1080"/,
  );
  kubeconfig({}, "deno").checkTransport();
  kubeconfig({ proxyUrl: "http://p:3128" }, "deno").checkTransport();
  kubeconfig({ skipTLSVerify: true, tlsServerName: "api.internal" }, "undici").checkTransport();
});

/** A local HTTP server answering with `handler`; its kubeconfig (plain http, a token). */
function fakeApiServer(handler: (req: Request) => Response | Promise<Response>) {
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    // A watch the client dropped ends its response stream with an error: expected here.
    onError: () => new Response(null, { status: 500 }),
  }, handler);
  const kc = new ForgeKubeConfig("deno");
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${server.addr.port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t0ken" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return {
    kc,
    async [Symbol.asyncDispose]() {
      kc.closeConnections();
      await server.shutdown();
    },
  };
}

Deno.test("client-node's API sends its requests through Deno's fetch with its headers, body and answers", async () => {
  const seen: { method: string; path: string; headers: Headers; body: string }[] = [];
  await using api = fakeApiServer(async (req) => {
    const url = new URL(req.url);
    seen.push({
      method: req.method,
      path: url.pathname,
      headers: req.headers,
      body: await req.text(),
    });
    if (url.pathname.endsWith("/missing")) {
      return Response.json({ kind: "Status", code: 404, reason: "NotFound" }, { status: 404 });
    }
    return Response.json({ apiVersion: "v1", kind: "Namespace", metadata: { name: "cardano" } });
  });
  const core = api.kc.makeApiClient(CoreV1Api);
  const read: V1Namespace = await core.readNamespace({ name: "cardano" }, requestOptions(5000));
  assert.equal(read.metadata?.name, "cardano");
  await core.patchNamespace(
    { name: "cardano", body: { metadata: { labels: { a: "b" } } } },
    requestOptions(5000, PatchStrategy.MergePatch),
  );
  await assert.rejects(
    core.readNamespace({ name: "missing" }),
    (err: unknown) =>
      err instanceof ApiException && err.code === 404 && /NotFound/.test(String(err.body)),
  );
  assert.deepEqual(seen.map((s) => `${s.method} ${s.path}`), [
    "GET /api/v1/namespaces/cardano",
    "PATCH /api/v1/namespaces/cardano",
    "GET /api/v1/namespaces/missing",
  ]);
  for (const s of seen) {
    assert.equal(s.headers.get("authorization"), "Bearer t0ken");
    assert.match(s.headers.get("user-agent") ?? "", /^forge-manager\//);
  }
  assert.equal(seen[1]!.headers.get("content-type"), "application/merge-patch+json");
  assert.deepEqual(JSON.parse(seen[1]!.body), { metadata: { labels: { a: "b" } } });
});

Deno.test("a request's timeout aborts it over Deno's fetch", async () => {
  const hung = Promise.withResolvers<Response>();
  await using api = fakeApiServer(() => hung.promise);
  const core = api.kc.makeApiClient(CoreV1Api);
  const t0 = performance.now();
  await assert.rejects(
    core.readNamespace({ name: "x" }, requestOptions(100)),
    /abort|timed? ?out/i,
  );
  assert.ok(performance.now() - t0 < 5000, "the request was not aborted by its timeout");
  hung.resolve(new Response("late"));
});

/** Events as a watch stream sends them, one JSON object a line. */
function line(type: string, name: string): string {
  return JSON.stringify({ type, object: { metadata: { name } } }) + "\n";
}

Deno.test("a watch over fetch parses newline-delimited events split anywhere and skips a bad line", async () => {
  const queries: string[] = [];
  await using api = fakeApiServer((req) => {
    queries.push(new URL(req.url).search);
    const text = line("ADDED", "a") + "not json\n" + line("MODIFIED", "b") + line("DELETED", "c");
    // Chunks cut through the lines.
    const chunks = [text.slice(0, 7), text.slice(7, 50), text.slice(50)];
    return new Response(ReadableStream.from(chunks).pipeThrough(new TextEncoderStream()));
  });
  const events: string[] = [];
  const url = new URL(`${api.kc.getCurrentCluster()!.server}/api/v1/namespaces?watch=true`);
  await watchOnce({
    kc: api.kc,
    url,
    onEvent: (type, object) =>
      events.push(`${type} ${(object as { metadata: { name: string } }).metadata.name}`),
    signal: new AbortController().signal,
  });
  assert.deepEqual(events, ["ADDED a", "MODIFIED b", "DELETED c"]);
  assert.deepEqual(queries, ["?watch=true"]);
});

Deno.test("a watch over fetch fails on an error status, on silence and on abort", async () => {
  await using denied = fakeApiServer(() => new Response("forbidden", { status: 403 }));
  const url = (kc: ForgeKubeConfig) =>
    new URL(`${kc.getCurrentCluster()!.server}/api/v1/pods?watch=true`);
  const never = new AbortController().signal;
  await assert.rejects(
    watchOnce({ kc: denied.kc, url: url(denied.kc), onEvent: () => {}, signal: never }),
    /Cannot watch \/api\/v1\/pods: HTTP 403/,
  );
  const silent = new TransformStream<Uint8Array, Uint8Array>();
  await using quiet = fakeApiServer(() => new Response(silent.readable));
  await assert.rejects(
    watchOnce({ kc: quiet.kc, url: url(quiet.kc), onEvent: () => {}, signal: never, idleMs: 50 }),
    (err: unknown) => err instanceof DOMException && err.name === "TimeoutError",
  );
  const abort = new AbortController();
  const open = new TransformStream<Uint8Array, Uint8Array>();
  await using held = fakeApiServer(() => new Response(open.readable));
  const watching = watchOnce({
    kc: held.kc,
    url: url(held.kc),
    onEvent: () => {},
    signal: abort.signal,
  });
  setTimeout(() => abort.abort(), 20);
  await assert.rejects(watching);
  await silent.writable.abort().catch(() => {});
  await open.writable.abort().catch(() => {});
});

Deno.test("watchOne over fetch counts each start, watches again after rewatchMs and turns DELETED into undefined", async () => {
  let starts = 0;
  await using api = fakeApiServer((req) => {
    assert.equal(new URL(req.url).searchParams.get("fieldSelector"), "metadata.name=forge");
    starts++;
    // Each watch sends one event and ends, as a server-side timeout does.
    return new Response(starts === 1 ? line("ADDED", "forge") : line("DELETED", "forge"));
  });
  const signal = new AbortController();
  const events: string[] = [];
  let counted = 0;
  const done = Promise.withResolvers<void>();
  watchOne<{ metadata: { name: string } }>({
    kc: api.kc,
    path: "/apis/coordination.k8s.io/v1/namespaces/cardano/leases",
    name: "forge",
    onEvent: (phase, obj) => {
      events.push(`${phase} ${obj?.metadata.name}`);
      if (events.length === 3) done.resolve();
    },
    signal: signal.signal,
    count: () => counted++,
    rewatchMs: 10,
  });
  await done.promise;
  signal.abort();
  assert.deepEqual(events, ["ADDED forge", "DELETED undefined", "DELETED undefined"]);
  assert.equal(starts, 3);
  assert.equal(counted, starts, "count() is called once per watch started");
});
