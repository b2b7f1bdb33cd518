/**
 * The HTTP endpoints on METRICS_PORT, as a plain `(Request) => Response` function.
 *
 * - `/metrics`: Prometheus text format.
 * - `/healthz`: 200 while the election loop is alive (it ticked recently).
 * - `/readyz`: 200 once startup is done and the Lease has been read at least once.
 * - `/startup-status`: 200 once the startup credential provisioning is done (native-sidecar
 *   startup probe: the node container starts only after it).
 *
 * @module
 */

import type { Registry } from "prom-client";

/** What the handler needs to know about the sidecar. */
export interface HealthView {
  startupDone(): boolean;
  ready(): boolean;
  alive(): boolean;
  /** A small JSON summary for humans (no key material). */
  summary(): Record<string, unknown>;
}

/** Creates the request handler. */
export function createHandler(
  registry: Registry,
  health: HealthView,
): (req: Request) => Promise<Response> {
  const json = (ok: boolean, body: Record<string, unknown>) =>
    new Response(JSON.stringify({ ok, ...body }) + "\n", {
      status: ok ? 200 : 503,
      headers: { "content-type": "application/json" },
    });
  return async (req: Request): Promise<Response> => {
    const { pathname } = new URL(req.url);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405 });
    }
    switch (pathname) {
      case "/metrics":
        return new Response(await registry.metrics(), {
          headers: { "content-type": registry.contentType },
        });
      case "/healthz":
        return json(health.alive(), {});
      case "/readyz":
        return json(health.ready(), health.summary());
      case "/startup-status":
        return json(health.startupDone(), { startupDone: health.startupDone() });
      case "/":
        return json(true, health.summary());
      default:
        return new Response("not found\n", { status: 404 });
    }
  };
}
