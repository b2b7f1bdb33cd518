/**
 * A real Prometheus (pinned, built by tools/controlplane/build.sh) for tests: it scrapes given
 * targets on 127.0.0.1, with the `namespace` and `pod` target labels the shipped ServiceMonitor
 * gives each target, optionally evaluates rule files, and answers PromQL over its HTTP API.
 *
 * ```ts
 * await using prom = await startPrometheus({
 *   targets: [{ address: "127.0.0.1:8000", labels: { namespace: "cardano", pod: "p-0" } }],
 * });
 * const samples = await prom.query("up");
 * ```
 *
 * Data lives in a temp dir named `forge-manager-cp-prometheus-*`, so CI's leftover check
 * (.ci/run, which looks for `forge-manager-cp-` in command lines) also catches a Prometheus a test
 * forgot. Stopping (also `await using`) kills it and removes the dir; it runs under `setpriv
 * --pdeathsig KILL` (tests/support/_managed_process.ts), so it dies with the test process.
 *
 * Needs: run (bash for build.sh, prometheus, setpriv), read/write of the temp dir, net to
 * 127.0.0.1.
 *
 * @module
 */
import { builtTool } from "./built_tools.ts";
import { ManagedProcess } from "./_managed_process.ts";

/** A scrape target: `host:port` and its target labels. */
export interface Target {
  address: string;
  labels: Record<string, string>;
}

/** One series of a query result: its labels and its value (instant) or values (range). */
export interface Series {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

/** A running Prometheus. */
export interface Prometheus extends AsyncDisposable {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** An instant query (`/api/v1/query`) at `time` (seconds since the epoch; default now). */
  query(expr: string, time?: number): Promise<Series[]>;
  /** A range query (`/api/v1/query_range`), times in seconds since the epoch. */
  queryRange(expr: string, start: number, end: number, stepSeconds: number): Promise<Series[]>;
  /** Kills it and removes its data; idempotent. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startPrometheus}. */
export interface PrometheusOptions {
  targets: readonly Target[];
  /** Scrape and rule evaluation interval in seconds (default 1). */
  intervalSeconds?: number;
  /** Rules files by name (their text, YAML or JSON), evaluated every interval. */
  ruleFiles?: Record<string, string>;
}

const READY_MS = 30_000;

/** Starts Prometheus on a free loopback port and resolves once `/-/ready` answers 200. */
export async function startPrometheus(opts: PrometheusOptions): Promise<Prometheus> {
  const binary = await builtTool("prometheus");
  const dir = await Deno.makeTempDir({ prefix: "forge-manager-cp-prometheus-" });
  try {
    const interval = `${opts.intervalSeconds ?? 1}s`;
    const rules = Object.keys(opts.ruleFiles ?? {});
    for (const [name, text] of Object.entries(opts.ruleFiles ?? {})) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    // JSON is YAML.
    await Deno.writeTextFile(
      `${dir}/prometheus.yml`,
      JSON.stringify({
        global: { scrape_interval: interval, evaluation_interval: interval },
        rule_files: rules,
        scrape_configs: [{
          job_name: "forge-manager",
          metrics_path: "/metrics",
          static_configs: opts.targets.map((t) => ({ targets: [t.address], labels: t.labels })),
        }],
      }),
    );
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const url = `http://127.0.0.1:${port}`;
    const proc = await ManagedProcess.spawn({
      name: "prometheus",
      command: binary,
      args: [
        `--config.file=${dir}/prometheus.yml`,
        `--storage.tsdb.path=${dir}/data`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      logFile: `${dir}/prometheus.log`,
    });
    const prom = new RunningPrometheus(url, dir, proc);
    try {
      await prom.waitReady();
    } catch (err) {
      await prom.stop();
      throw err;
    }
    return prom;
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}

class RunningPrometheus implements Prometheus {
  readonly url: string;
  readonly #dir: string;
  readonly #proc: ManagedProcess;
  #stopping: Promise<void> | undefined;

  constructor(url: string, dir: string, proc: ManagedProcess) {
    this.url = url;
    this.#dir = dir;
    this.#proc = proc;
  }

  async waitReady(): Promise<void> {
    const deadline = performance.now() + READY_MS;
    let last = "no attempt yet";
    while (performance.now() < deadline) {
      if (!this.#proc.running) {
        throw new Error(`Cannot start prometheus: it exited; last output:\n${this.#proc.tail()}`);
      }
      try {
        const res = await fetch(`${this.url}/-/ready`, { signal: AbortSignal.timeout(2_000) });
        await res.body?.cancel();
        if (res.ok) return;
        last = `HTTP ${res.status}`;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(
      `Cannot start prometheus: ${this.url}/-/ready did not answer 200 within ` +
        `${READY_MS / 1000} s; last error: ${last}; last output:\n${this.#proc.tail()}`,
    );
  }

  query(expr: string, time?: number): Promise<Series[]> {
    const params = new URLSearchParams({ query: expr });
    if (time !== undefined) params.set("time", String(time));
    return this.#api("query", params);
  }

  queryRange(expr: string, start: number, end: number, stepSeconds: number): Promise<Series[]> {
    return this.#api(
      "query_range",
      new URLSearchParams({
        query: expr,
        start: String(start),
        end: String(end),
        step: String(stepSeconds),
      }),
    );
  }

  async #api(endpoint: string, params: URLSearchParams): Promise<Series[]> {
    const res = await fetch(`${this.url}/api/v1/${endpoint}`, {
      method: "POST",
      body: params,
      signal: AbortSignal.timeout(10_000),
    });
    const body = await res.json() as {
      status: string;
      error?: string;
      data?: { resultType: string; result: Series[] };
    };
    if (body.status !== "success" || body.data === undefined) {
      throw new Error(`Cannot query prometheus: ${params.get("query")}: ${body.error}`);
    }
    return body.data.result;
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#proc.stop("SIGKILL");
      await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
    })();
    return this.#stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
