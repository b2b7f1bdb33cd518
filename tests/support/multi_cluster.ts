/**
 * A pool across clusters for the tests and the benchmark: a coordination control plane of its own
 * (its namespace, the CRDs, the coordination CardanoLeader, one identity per cluster bound to the
 * member Role), and one {@linkcode FaultCluster} per cluster on a control plane of its own, with
 * the guard and FENCE=guard, its CardanoForgeCluster and the Role to read it. Every replica
 * reaches the coordination cluster through a TCP proxy of its own, so a whole cluster (a region)
 * can be cut off from everything: its own API server and the coordinator. The figures come from
 * every simulated node's own record, of every cluster.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { type KubernetesObject, loadAllYaml, type V1PolicyRule } from "@kubernetes/client-node";
import { type ControlPlane, startControlPlane } from "./control_plane.ts";
import { FaultCluster, nowMs } from "./fault_cluster.ts";
import {
  type ForgingInterval,
  forgingIntervals,
  readForgingRecords,
  takeoverMs,
  totalOverlapMs,
} from "./forging_log.ts";
import { makeCredentialSet } from "./keys.ts";
import { TcpProxy } from "./tcp_proxy.ts";
import { waitUntil } from "./wait.ts";
import { installForgeManager, poolNames } from "./replicas.ts";

/** The coordination cluster's namespace in these tests. */
export const COORDINATION_NAMESPACE = "cardano-coordination";

const COORDINATION_RBAC = new URL(
  "../../manifests/examples/multi-cluster/coordination/rbac.yaml",
  import.meta.url,
).pathname;

/** The shipped member Role of the coordination cluster (what every cluster's sidecars may do). */
async function memberRole(): Promise<KubernetesObject> {
  const objects = loadAllYaml(await Deno.readTextFile(COORDINATION_RBAC)) as KubernetesObject[];
  const role = objects.find((o) =>
    o.kind === "Role" && o.metadata?.name === "forge-manager-member"
  );
  if (role === undefined) throw new Error(`${COORDINATION_RBAC} has no Role forge-manager-member`);
  return { ...role, metadata: { ...role.metadata, namespace: COORDINATION_NAMESPACE } };
}

/** What the local leader may do on its own cluster's CardanoForgeCluster. */
export function forgeClusterRules(name: string): V1PolicyRule[] {
  return [
    {
      apiGroups: ["cardano.io"],
      resources: ["cardanoforgeclusters"],
      resourceNames: [name],
      verbs: ["get"],
    },
    {
      apiGroups: ["cardano.io"],
      resources: ["cardanoforgeclusters/status"],
      resourceNames: [name],
      verbs: ["get", "patch"],
    },
  ];
}

/** One cluster of the pool. */
export interface ClusterSpec {
  name: string;
  /** Its CardanoForgeCluster's spec.priority. */
  priority: number;
  region?: string;
  /** Its CardanoForgeCluster's spec, beyond priority and region. */
  spec?: Record<string, unknown>;
  /** Replica names (default c0, c1: two per cluster). */
  replicas?: string[];
}

/** A running cluster of the pool. */
export interface RunningCluster {
  spec: ClusterSpec;
  cp: ControlPlane;
  fault: FaultCluster;
  /** Each replica's proxy to the coordination cluster. */
  coordinationProxies: Map<string, TcpProxy>;
}

/** Options of {@linkcode MultiCluster.start}. */
export interface MultiClusterOptions {
  clusters: ClusterSpec[];
  /** The local namespace in every cluster. */
  namespace: string;
  /** Sidecar environment for every replica (on top of the fast timings and the guard's). */
  env?: Record<string, string>;
}

/** The pool: a coordinator and its clusters. */
export class MultiCluster implements AsyncDisposable {
  readonly coordinator: ControlPlane;
  readonly clusters = new Map<string, RunningCluster>();
  readonly #root: string;
  readonly #credentials = makeCredentialSet();
  #coordinationAdmin: k8s.CustomObjectsApi;

  private constructor(coordinator: ControlPlane, root: string) {
    this.coordinator = coordinator;
    this.#root = root;
    this.#coordinationAdmin = coordinator.admin().makeApiClient(k8s.CustomObjectsApi);
  }

  /** Starts the coordinator and the clusters (each on a control plane of its own). */
  static async start(opts: MultiClusterOptions): Promise<MultiCluster> {
    const root = await Deno.makeTempDir({ prefix: "fm-multi-cluster-" });
    const coordinator = await startControlPlane({ handleSignals: false });
    const pool = new MultiCluster(coordinator, root);
    try {
      await pool.#installCoordination();
      await Promise.all(opts.clusters.map((c) => pool.#startCluster(c, opts)));
    } catch (err) {
      await pool.dispose();
      throw err;
    }
    return pool;
  }

  async #installCoordination(): Promise<void> {
    // The CRDs, the namespace and the coordination CardanoLeader, and the shipped member Role.
    await installForgeManager(this.coordinator, COORDINATION_NAMESPACE);
    await this.coordinator.apply(await memberRole());
  }

  async #startCluster(spec: ClusterSpec, opts: MultiClusterOptions): Promise<void> {
    const names = poolNames(undefined);
    // Its identity on the coordination cluster, reached through a proxy per replica.
    const identity = await this.coordinator.mintIdentity({
      namespace: COORDINATION_NAMESPACE,
      serviceAccount: `forge-${spec.name}`,
      roleName: "forge-manager-member",
    });
    const identityText = await Deno.readTextFile(identity);
    const replicas = spec.replicas ?? ["c0", "c1"];
    const proxies = new Map<string, TcpProxy>();
    const kubeconfigs = new Map<string, string>();
    for (const key of replicas) {
      const proxy = TcpProxy.start({
        hostname: this.coordinator.host,
        port: this.coordinator.port,
      });
      proxies.set(key, proxy);
      const path = `${this.#root}/${spec.name}-${key}.coordination.kubeconfig`;
      await Deno.writeTextFile(
        path,
        identityText.replace(/server: "[^"]*"/, `server: ${JSON.stringify(proxy.server)}`),
        { mode: 0o600 },
      );
      kubeconfigs.set(key, path);
    }
    const cp = await startControlPlane({ handleSignals: false });
    // Its CardanoForgeCluster, and the Role to read it and write its status.
    await installForgeManager(cp, opts.namespace);
    await cp.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "forge-manager-cluster", namespace: opts.namespace },
      rules: forgeClusterRules(spec.name),
    } as KubernetesObject);
    await cp.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "forge-manager-cluster", namespace: opts.namespace },
      roleRef: {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "Role",
        name: "forge-manager-cluster",
      },
      subjects: [{ kind: "ServiceAccount", name: names.serviceAccount, namespace: opts.namespace }],
    } as KubernetesObject);
    await cp.apply({
      apiVersion: "cardano.io/v1",
      kind: "CardanoForgeCluster",
      metadata: { name: spec.name, namespace: opts.namespace },
      spec: {
        forgeState: "Priority-based",
        priority: spec.priority,
        region: spec.region ?? spec.name,
        ...spec.spec,
      },
    } as KubernetesObject);
    const fault = await FaultCluster.start({
      cp,
      namespace: opts.namespace,
      names: replicas,
      guard: true,
      credentials: this.#credentials,
      env: {
        FENCE: "guard",
        CLUSTER_NAME: spec.name,
        CLUSTER_REGION: spec.region ?? spec.name,
        GLOBAL_NAMESPACE: COORDINATION_NAMESPACE,
        PRIORITY_DELAY: "2",
        RETURN_STABLE: "5",
        ...opts.env,
      },
      envOf: (key) => ({ GLOBAL_KUBECONFIG: kubeconfigs.get(key)! }),
    });
    this.clusters.set(spec.name, { spec, cp, fault, coordinationProxies: proxies });
  }

  cluster(name: string): RunningCluster {
    const c = this.clusters.get(name);
    if (c === undefined) throw new Error(`No cluster ${name}`);
    return c;
  }

  // ---- faults ------------------------------------------------------------------------------

  /** Cuts a whole cluster off: every replica's way to its API server and to the coordinator. */
  cutOff(name: string): void {
    const c = this.cluster(name);
    for (const p of c.fault.proxies()) p.blackhole();
    for (const p of c.coordinationProxies.values()) p.blackhole();
  }

  /** Undoes {@linkcode cutOff}. */
  restore(name: string): void {
    const c = this.cluster(name);
    for (const p of c.fault.proxies()) p.heal();
    for (const p of c.coordinationProxies.values()) p.heal();
  }

  /** Changes a cluster's CardanoForgeCluster spec (merge patch, as `kubectl patch` would). */
  async patchForgeCluster(name: string, spec: Record<string, unknown>): Promise<void> {
    const c = this.cluster(name);
    await c.cp.admin().makeApiClient(k8s.CustomObjectsApi).patchNamespacedCustomObject(
      {
        group: "cardano.io",
        version: "v1",
        plural: "cardanoforgeclusters",
        namespace: c.fault.namespace,
        name,
        body: { spec },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  }

  /** The coordination CardanoLeader as stored. */
  async coordinationLeader(): Promise<Record<string, unknown>> {
    return await this.#coordinationAdmin.getNamespacedCustomObject({
      group: "cardano.io",
      version: "v1",
      plural: "cardanoleaders",
      namespace: COORDINATION_NAMESPACE,
      name: "cardano-leader",
    }) as Record<string, unknown>;
  }

  /** The holder of the coordination Lease ("" none). */
  async globalHolder(): Promise<string> {
    try {
      const lease = await this.coordinator.admin().makeApiClient(k8s.CoordinationV1Api)
        .readNamespacedLease({ name: "cardano-node-leader", namespace: COORDINATION_NAMESPACE });
      return lease.spec?.holderIdentity ?? "";
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 404) return "";
      throw err;
    }
  }

  // ---- figures -----------------------------------------------------------------------------

  /** Forging intervals of every node of every cluster, labelled `<cluster>:<key>/<n>`. */
  async intervals(): Promise<ForgingInterval[]> {
    const files: Record<string, string> = {};
    for (const [name, c] of this.clusters) {
      for (const inc of c.fault.incarnations) files[`${name}:${inc.label}`] = inc.pod.record;
    }
    return forgingIntervals(await readForgingRecords(files), { until: nowMs() });
  }

  /** `<cluster>:<key>` of every node that forges now. */
  async forgers(): Promise<string[]> {
    const open = (await this.intervals()).filter((i) => i.endedBy === "open");
    return [...new Set(open.map((i) => i.node.slice(0, i.node.lastIndexOf("/"))))];
  }

  /** Milliseconds during which two or more nodes forged, in any clusters, so far. */
  async overlapMs(): Promise<number> {
    return totalOverlapMs(await this.intervals());
  }

  /** From `at` until a node outside cluster `from` forges (null: none did). */
  async takeoverMs(at: number, from: string): Promise<number | null> {
    const intervals = await this.intervals();
    const mine = [...new Set(intervals.map((i) => i.node).filter((n) => n.startsWith(`${from}:`)))];
    return takeoverMs(intervals, at, mine);
  }

  /** Waits until exactly one node forges, in cluster `in` if given; returns `<cluster>:<key>`. */
  async waitSingleForger(timeoutMs: number, inCluster?: string): Promise<string> {
    let forgers: string[] = [];
    return await waitUntil(`one forger${inCluster ? ` in ${inCluster}` : ""}`, async () => {
      forgers = await this.forgers();
      return forgers.length === 1 &&
          (inCluster === undefined || forgers[0]!.startsWith(`${inCluster}:`))
        ? forgers[0]!
        : undefined;
    }, {
      timeoutMs,
      detail: async () => `forging now: ${forgers.join(", ") || "none"}\n${await this.logTail()}`,
    });
  }

  /** The last lines of every sidecar log of every cluster. */
  async logTail(lines = 10): Promise<string> {
    const parts: string[] = [];
    for (const [name, c] of this.clusters) {
      parts.push(`===== cluster ${name}`, await c.fault.logTail(lines));
    }
    return parts.join("\n");
  }

  async dispose(): Promise<void> {
    for (const c of this.clusters.values()) {
      await c.fault.dispose().catch(() => {});
      for (const p of c.coordinationProxies.values()) await p.close().catch(() => {});
      await c.cp.stop().catch(() => {});
    }
    await this.coordinator.stop().catch(() => {});
    await Deno.remove(this.#root, { recursive: true }).catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
