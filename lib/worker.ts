/**
 * The sandboxed worker: everything except finding and signalling the node runs here, under the
 * permissions the core computed (lib/sandbox.ts): the election, client-node, prom-client, the
 * credential files, the HTTP endpoints. Started by main.ts; never run directly.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { systemClock } from "./clock.ts";
import type { Config } from "./config.ts";
import { KubeControlStore } from "./control.ts";
import { FileCredentialStore } from "./credentials.ts";
import { PodFence } from "./fence.ts";
import { ForgeManager } from "./forge_manager.ts";
import { createHandler } from "./http_handler.ts";
import { apiServerHostPort, loadKubeConfig } from "./kube_client.ts";
import { loadKesTiming } from "./kes_period.ts";
import { KubeLeaseStore } from "./lease_store.ts";
import { createLogger, errorText } from "./log.ts";
import { createMetrics } from "./metrics.ts";
import { readNodeMetrics } from "./node_metrics.ts";
import { RpcNodeProcess } from "./node_process.ts";
import { checkNodeContainer } from "./pod_check.ts";
import { KubeOwnPod } from "./own_pod.ts";
import { socketAccepts } from "./socket_check.ts";
import { KubeStatusReporter } from "./status.ts";
import { VERSION } from "./version.ts";
import type { FromWorker, ToWorker } from "./worker_protocol.ts";

const post = (msg: FromWorker) => self.postMessage(msg);
const shutdown = new AbortController();
let rpc: RpcNodeProcess | undefined;

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const msg = event.data;
  switch (msg.op) {
    case "probe":
      probe(msg.kubeconfig, msg.context);
      break;
    case "start":
      start(msg.config, msg.identity).then(
        () => post({ op: "done", ok: true }),
        (err) => post({ op: "done", ok: false, message: errorText(err) }),
      );
      break;
    case "reply":
      rpc?.deliver(msg.reply);
      break;
    case "shutdown":
      shutdown.abort();
      break;
  }
};

/** Reads a kubeconfig and tells the core which server and files the real worker needs. */
function probe(path: string, context?: string): void {
  try {
    const kc = loadKubeConfig(path, context);
    const cluster = kc.getCurrentCluster();
    const user = kc.getCurrentUser();
    const files = [path, cluster?.caFile, user?.certFile, user?.keyFile]
      .filter((f): f is string => typeof f === "string" && f !== "");
    post({ op: "probed", server: apiServerHostPort(kc), files });
  } catch (err) {
    post({ op: "probe_failed", message: errorText(err) });
  }
}

async function start(config: Config, identity: string): Promise<void> {
  const log = createLogger(config.logLevel, undefined, { pod: config.podName });
  const kc = loadKubeConfig(config.kubeconfig);
  rpc = new RpcNodeProcess((request) => post({ op: "request", request }));
  const holder: { manager?: ForgeManager } = {};
  const metrics = createMetrics({
    version: VERSION,
    pod: config.podName,
    namespace: config.namespace,
    lease: config.leaseName,
    identity,
    lastRenewAt: () => holder.manager?.lastRenewWall,
  });
  const count = (operation: string) => metrics.apiRequests.inc({ operation });
  // The certificate's KES window is judged by the network's genesis timing (a bad genesis file
  // fails the start, naming it).
  const kesTiming = await loadKesTiming(config);
  if (config.fence === "pod") {
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
  const manager = new ForgeManager({
    config,
    identity,
    clock: systemClock,
    kesTiming,
    readNodeMetrics: () => readNodeMetrics(config.nodeMetricsUrl),
    log,
    metrics,
    leases: new KubeLeaseStore({
      kc,
      namespace: config.namespace,
      name: config.leaseName,
      count,
      watched: (phase, record) =>
        log.debug("lease watch event", {
          phase,
          holder: record?.holder,
          releasedBy: record?.releasedBy,
          resourceVersion: record?.resourceVersion,
        }),
    }),
    credentials: new FileCredentialStore(
      config.credentials,
      (operation, file) => metrics.credentialOperations.inc({ operation, file }),
    ),
    node: rpc,
    socketAccepts: (path) => socketAccepts(path),
    status: new KubeStatusReporter({
      kc,
      namespace: config.namespace,
      name: config.cardanoLeaderName,
      pod: config.podName,
      count,
    }),
    fence: config.fence === "pod"
      ? new PodFence({
        kc,
        namespace: config.namespace,
        ownPod: config.podName,
        ownPodUid: config.podUid,
        nodeContainer: config.nodeContainerName,
        ownNodeStopped: () => holder.manager?.stopConfirmed ?? false,
        onEvent: (outcome, detail) => log.info("fence", { outcome, detail }),
        count,
      })
      : undefined,
    control: new KubeControlStore({
      kc,
      namespace: config.namespace,
      name: config.cardanoLeaderName,
      count,
    }),
    ownPod: config.fence === "pod"
      ? new KubeOwnPod({
        kc,
        namespace: config.namespace,
        name: config.podName,
        uid: config.podUid,
        count,
      })
      : undefined,
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
    nodeContainer: config.nodeContainerName,
    leaseDuration: config.leaseDurationMs / 1000,
    renewDeadline: config.renewDeadlineMs / 1000,
  });
  try {
    await manager.run(shutdown.signal);
    log.info("forge-manager stopped");
  } finally {
    await server.shutdown();
  }
}
