/**
 * What the sandboxed worker may touch, computed by the core from the configuration at start.
 * Our own code only, no npm imports.
 *
 * @module
 */

import { type Config, metricsHostPort } from "./config.ts";
import type { SandboxGrants } from "./sandbox.ts";

/** The in-cluster service-account folder client-node reads. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

function dirOf(path: string): string {
  const at = path.lastIndexOf("/");
  return at <= 0 ? "/" : path.slice(0, at);
}

/**
 * The grants for `config`. `api` is the API server's `host:port` and `kubeFiles` the files its
 * credentials live in (a kubeconfig and what it names, or the service-account folder);
 * `coordination` the same for the coordination cluster (GLOBAL_KUBECONFIG).
 */
export function sandboxGrants(
  config: Config,
  api: string,
  kubeFiles: readonly string[],
  coordination?: { api: string; files: readonly string[] },
): SandboxGrants {
  const creds = Object.values(config.credentials);
  const targetDirs = creds.map((c) => dirOf(c.target));
  const nodeMetrics = metricsHostPort(config.nodeMetricsUrl);
  const health = config.global?.healthEndpoint === undefined
    ? undefined
    : metricsHostPort(config.global.healthEndpoint);
  return {
    read: unique([
      ...creds.map((c) => c.source),
      ...targetDirs,
      config.nodeSocket,
      ...kubeFiles,
      ...(coordination?.files ?? []),
      ...(config.shelleyGenesisFile === undefined ? [] : [config.shelleyGenesisFile]),
      // Read again as it changes (a new epoch's schedule); read only, like the sources.
      ...(config.leaderScheduleFile === undefined ? [] : [config.leaderScheduleFile]),
    ]),
    write: unique([...targetDirs, config.nodeSocket]),
    net: unique([
      api,
      `${config.metricsHost}:${config.metricsPort}`,
      `unix:${config.nodeSocket}`,
      ...(nodeMetrics === undefined ? [] : [nodeMetrics]),
      // Across clusters: the coordination cluster, and the one health-check endpoint.
      ...(coordination === undefined ? [] : [coordination.api]),
      ...(health === undefined ? [] : [health]),
    ]),
  };
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}

/** The API server of an in-cluster pod, from the variables Kubernetes sets. */
export function inClusterApi(env: Record<string, string | undefined>): string {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? "443";
  if (host === undefined || host === "") {
    throw new Error(
      "Cannot find the API server: KUBERNETES_SERVICE_HOST is not set (outside a pod, set KUBECONFIG)",
    );
  }
  return `${host}:${port}`;
}
