/**
 * The sandboxed worker: everything except finding and signalling the node runs here, under the
 * permissions the core computed (lib/core/sandbox.ts): the election, client-node, prom-client, the
 * credential files, the HTTP endpoints. Started by main.ts; never run directly.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { systemClock } from "../base/clock.ts";
import { type Config, usesPodFence } from "../core/config.ts";
import { KubeCardanoLeader } from "../kube/cardano_leader.ts";
import { FileCredentialStore } from "../node/credentials.ts";
import { PodFence } from "../kube/fence.ts";
import { ForgeManager, globalForgingConfig } from "./forge_manager.ts";
import type { GlobalPorts } from "./global_effects.ts";
import { KubeCoordination } from "../kube/coordination.ts";
import { KubeForgeCluster } from "../kube/forge_cluster.ts";
import { createHandler } from "./http_handler.ts";
import { apiServerHostPort, loadKubeConfig, observeUndici } from "../kube/kube_client.ts";
import { kesPeriodAt, type KesTiming, loadKesTiming } from "../cardano/kes_period.ts";
import { type DecoyCredentials, makeDecoyCredentials } from "../cardano/decoy_keys.ts";
import { parseLeaderSchedule, ScheduleError } from "../cardano/leader_schedule.ts";
import { KubeLeaseStore } from "../kube/lease_store.ts";
import { createLogger, errorText } from "../base/log.ts";
import { createMetrics } from "./metrics.ts";
import { readNodeMetrics } from "../node/node_metrics.ts";
import { RpcNodeProcess } from "../core/node_process.ts";
import { RpcGuard } from "./guard_port.ts";
import { checkNodeContainer } from "../kube/pod_check.ts";
import { KubeOwnPod } from "../kube/own_pod.ts";
import { socketAccepts } from "../node/socket_check.ts";
import { VERSION } from "../base/version.ts";
import type { FromWorker, ToWorker } from "../core/worker_protocol.ts";

const post = (msg: FromWorker) => self.postMessage(msg);
const shutdown = new AbortController();
let rpc: RpcNodeProcess | undefined;
let guard: RpcGuard | undefined;

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const msg = event.data;
  switch (msg.op) {
    case "probe":
      probe(msg.kubeconfig, msg.context);
      break;
    case "start":
      start(msg.config, msg.identity).then(
        (safe) => post({ op: "done", ok: true, safe }),
        (err) => post({ op: "done", ok: false, message: errorText(err) }),
      );
      break;
    case "reply":
      rpc?.deliver(msg.reply);
      break;
    case "guard":
      guard?.deliver(msg.notice);
      break;
    case "shutdown":
      shutdown.abort();
      break;
  }
};

/** Reads a kubeconfig and tells the core which server and files the real worker needs. */
function probe(path: string, context?: string): void {
  try {
    const kc = loadKubeConfig(path, context !== undefined ? { context } : {});
    const cluster = kc.getCurrentCluster();
    const user = kc.getCurrentUser();
    const files = [path, cluster?.caFile, user?.certFile, user?.keyFile]
      .filter((f): f is string => typeof f === "string" && f !== "");
    post({ op: "probed", server: apiServerHostPort(kc), files, commands: execCommands(user) });
  } catch (err) {
    post({ op: "probe_failed", message: errorText(err) });
  }
}

/**
 * The exec credential plugin of a kubeconfig user (`user.exec.command`, or the older
 * `auth-provider.config.exec`), as client-node runs it: the one program the worker may start.
 */
function execCommands(user: unknown): string[] {
  const u = user as {
    exec?: { command?: unknown };
    authProvider?: { config?: { exec?: { command?: unknown } } };
  } | null;
  const command = u?.exec?.command ?? u?.authProvider?.config?.exec?.command;
  return typeof command === "string" && command !== "" ? [command] : [];
}

/** The Kubernetes side of the sidecar: Lease, status, fence, operator requests, own Pod. */
function kubeAdapters(
  config: Config,
  kc: ReturnType<typeof loadKubeConfig>,
  log: ReturnType<typeof createLogger>,
  count: (operation: string) => void,
) {
  const where = { kc, namespace: config.namespace, count };
  const cardanoLeader = new KubeCardanoLeader({
    ...where,
    name: config.cardanoLeaderName,
    pod: config.podName,
    clock: systemClock,
  });
  return {
    leases: new KubeLeaseStore({
      ...where,
      name: config.leaseName,
      watched: (phase, record) =>
        log.debug("lease watch event", {
          phase,
          holder: record?.holder,
          releasedBy: record?.releasedBy,
          resourceVersion: record?.resourceVersion,
        }),
    }),
    status: cardanoLeader,
    fence: usesPodFence(config)
      ? new PodFence({
        ...where,
        ownPod: config.podName,
        ownPodUid: config.podUid,
        nodeContainer: config.nodeContainerName,
        onEvent: (outcome, detail) => log.info("fence", { outcome, detail }),
      })
      : undefined,
    control: cardanoLeader,
    ownPod: usesPodFence(config)
      ? new KubeOwnPod({ ...where, name: config.podName, uid: config.podUid })
      : undefined,
  };
}

/** With the pod fence: the configured node container must exist in this pod's spec. */
async function checkContainer(
  config: Config,
  kc: ReturnType<typeof loadKubeConfig>,
  log: ReturnType<typeof createLogger>,
  count: (operation: string) => void,
): Promise<void> {
  if (!usesPodFence(config)) return;
  // Refuses to start (ConfigError) when this pod has no container of that name.
  const check = await checkNodeContainer({
    kc,
    namespace: config.namespace,
    pod: config.podName,
    container: config.nodeContainerName,
    count,
  });
  if (!check.checked) {
    log.warn("cannot check NODE_CONTAINER_NAME against this pod's spec; going on", {
      container: config.nodeContainerName,
      why: check.why,
    });
  }
}

/**
 * The decoy set the node boots on while this replica does not lead (DECOY_CREDENTIALS), made
 * once, in memory: its certificate starts in the current KES period (0 before Shelley), and it
 * has no KES key when a KES agent supplies the node's.
 */
function makeDecoys(
  config: Config,
  kesTiming: KesTiming,
  log: ReturnType<typeof createLogger>,
): DecoyCredentials | undefined {
  if (!config.decoys) return undefined;
  let kesStartPeriod = 0;
  try {
    kesStartPeriod = Math.max(0, kesPeriodAt(kesTiming, Date.now()));
  } catch {
    // Before the Shelley era: any period will do, the node does not judge it at boot.
  }
  const decoys = makeDecoyCredentials({
    kesStartPeriod,
    withKes: config.credentials.kes !== undefined,
  });
  // The throwaway pool's id is public and tells an operator a decoy from the pool's keys.
  log.info("made the decoy credentials the node boots on while not leading", {
    decoyPool: decoys.poolId,
  });
  return decoys;
}

/**
 * The coordination cluster (its own kubeconfig, GLOBAL_KUBECONFIG) and this cluster's
 * CardanoForgeCluster, with the election across clusters; else undefined.
 */
function globalAdapters(
  config: Config,
  kc: ReturnType<typeof loadKubeConfig>,
  identity: string,
  count: (operation: string) => void,
): GlobalPorts | undefined {
  const global = config.global;
  if (global === undefined) return undefined;
  const gkc = loadKubeConfig(global.kubeconfig);
  const counted = (operation: string) => count(`global_${operation}`);
  const where = { kc: gkc, namespace: global.namespace, count: counted };
  const fc = globalForgingConfig(config, global, identity);
  return {
    leases: new KubeLeaseStore({ ...where, name: global.leaseName }),
    coordination: new KubeCoordination({
      ...where,
      name: global.cardanoLeaderName,
      clock: systemClock,
    }),
    cardanoLeader: new KubeCardanoLeader({
      ...where,
      name: global.cardanoLeaderName,
      pod: `${global.cluster}/${config.podName}`,
      clock: systemClock,
    }),
    forgeCluster: new KubeForgeCluster({
      kc,
      namespace: config.namespace,
      name: global.forgeClusterName,
      fallbackPriority: global.priority,
      count,
    }),
    checkHealth: probeHealth,
    identity: fc.identity,
    guardBoundMs: fc.guardBoundMs,
    cluster: global.cluster,
    pod: config.podName,
    leaseDurationSeconds: config.leaseDurationMs / 1000,
  };
}

/** The health check's probe: an HTTP GET within `timeoutMs`; a 2xx answer is healthy. */
async function probeHealth(
  endpoint: string,
  timeoutMs: number,
): Promise<{ ok: boolean; message: string }> {
  try {
    const response = await fetch(endpoint, { signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return { ok: response.ok, message: `HTTP ${response.status}` };
  } catch (err) {
    return { ok: false, message: errorText(err) };
  }
}

/**
 * The labels every series carries: the pool once POOL_ID names it (several pools can share a
 * namespace and a Prometheus; without POOL_ID the series keep the seed's labels), the cluster in
 * an election across clusters.
 */
export function metricLabels(config: Config): Record<string, string> {
  return {
    ...(config.poolId !== undefined ? { network: config.network, pool_id: config.poolId } : {}),
    ...(config.global !== undefined ? { cluster: config.global.cluster } : {}),
  };
}

/**
 * Reads and parses the pool's leader schedule. A problem names the file and where in it, never a
 * slot (the schedule is sensitive).
 */
async function readSchedule(path: string): Promise<{ slots: number[] } | { error: string }> {
  try {
    return { slots: parseLeaderSchedule(await Deno.readTextFile(path)) };
  } catch (err) {
    return {
      error: err instanceof ScheduleError
        ? `${err.message} (in ${path})`
        : `Cannot read the leader schedule ${path}: ${err instanceof Error ? err.name : "error"}`,
    };
  }
}

/** Runs the sidecar; resolves with whether it left no keys at risk (its last stop confirmed). */
async function start(config: Config, identity: string): Promise<boolean> {
  const log = createLogger(config.logLevel, undefined, { pod: config.podName });
  const kc = loadKubeConfig(config.kubeconfig, { transport: config.kubeTransport });
  kc.checkTransport();
  rpc = new RpcNodeProcess((request) => post({ op: "request", request }));
  if (config.guardSocket !== undefined) guard = new RpcGuard(post, systemClock);
  const holder: { manager?: ForgeManager } = {};
  const metrics = createMetrics({
    version: VERSION,
    pod: config.podName,
    namespace: config.namespace,
    lease: config.leaseName,
    identity,
    ...(config.pool.name !== undefined ? { poolName: config.pool.name } : {}),
    ...(config.pool.ticker !== undefined ? { poolTicker: config.pool.ticker } : {}),
    labels: metricLabels(config),
    global: config.global !== undefined,
    lastRenewAt: () => holder.manager?.lastRenewWall,
    guardHeartbeatAge: () => guard?.heartbeatAge(),
  });
  const count = (operation: string) => metrics.apiRequests.inc({ operation });
  // Which HTTP stack carries the requests, visible on /metrics (tests/runtime/ check it).
  observeUndici({
    onRequest: () => metrics.undiciRequests.inc(),
    onConnection: () => metrics.undiciConnections.inc(),
  });
  // The certificate's KES window is judged by the network's genesis timing (a bad genesis file
  // fails the start, naming it).
  const kesTiming = await loadKesTiming(config);
  await checkContainer(config, kc, log, count);
  const manager = new ForgeManager({
    config,
    identity,
    clock: systemClock,
    kesTiming,
    readNodeMetrics: () => readNodeMetrics(config.nodeMetricsUrl),
    log,
    metrics,
    credentials: new FileCredentialStore(
      config.credentials,
      (operation, file) => metrics.credentialOperations.inc({ operation, file }),
      { decoys: makeDecoys(config, kesTiming, log) },
    ),
    node: rpc,
    socketAccepts: (path) => socketAccepts(path),
    ...kubeAdapters(config, kc, log, count),
    guard,
    global: globalAdapters(config, kc, identity, count),
    ...(config.leaderScheduleFile !== undefined
      ? { readSchedule: () => readSchedule(config.leaderScheduleFile!) }
      : {}),
  });
  holder.manager = manager;
  const server = Deno.serve({
    hostname: config.metricsHost,
    port: config.metricsPort,
    onListen: ({ port }) => post({ op: "listening", port }),
  }, createHandler(metrics.registry, manager));
  log.info("forge-manager starting", {
    version: VERSION,
    namespace: config.namespace,
    lease: config.leaseName,
    fence: config.fence,
    decoys: config.decoys,
    kesAgentSocket: config.kesAgentSocket,
    kubeTransport: config.kubeTransport,
    nodeContainer: config.nodeContainerName,
    leaseDuration: config.leaseDurationMs / 1000,
    renewDeadline: config.renewDeadlineMs / 1000,
    guard: config.guardSocket ?? "none",
    maxTipLagSlots: config.maxTipLagSlots,
    leaderSchedule: config.leaderScheduleFile ?? "none",
  });
  try {
    await manager.run(shutdown.signal);
    log.info("forge-manager stopped");
    return !manager.keysAtRisk;
  } finally {
    await server.shutdown();
  }
}
