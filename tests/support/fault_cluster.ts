/**
 * A forge-manager deployment for the fault-injection suite: the shipped CRD and Roles in a
 * namespace, a simulated kubelet (tests/support/kubelet.ts) that owns one Pod object per replica,
 * a TCP proxy per replica in front of the API server (tests/support/tcp_proxy.ts), and the
 * replicas themselves (tests/support/pod.ts: main.ts beside a simulated cardano-node in a PID
 * namespace of its own), each with `POD_UID` set to its Pod object's UID.
 *
 * A replica can have several incarnations: when its Pod object is gone, {@linkcode
 * FaultCluster.recreate} plays the StatefulSet controller (same name, new UID, new processes,
 * a new folder and forging record). Every figure comes from the simulated nodes' own records of
 * every incarnation.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import type { ControlPlane } from "./control_plane.ts";
import {
  forgedSlots,
  type ForgingInterval,
  forgingIntervals,
  nowMs,
  readForgingRecords,
  takeoverMs,
  totalOverlapMs,
} from "./forging_log.ts";
import { type CredentialSet, makeCredentialSet } from "./keys.ts";
import { SimKubelet } from "./kubelet.ts";
import { metricValue, type Pod, type PodOptions, startPod } from "./pod.ts";
import { FAST_TIMING, installForgeManager, type PoolNames, poolNames } from "./replicas.ts";
import { TcpProxy } from "./tcp_proxy.ts";
import { sleep, waitUntil } from "./wait.ts";

export { nowMs };

/** The Lease every replica uses (the default LEASE_NAME). */
export const LEASE_NAME = "cardano-node-leader";
/** Annotation of a clean release (lib/kube/lease_store.ts). */
const RELEASED_BY = "forge-manager.cardano.io/released-by";

/** One run of a replica's processes: one Pod object (unless `podObject` is false). */
export interface Incarnation {
  /** The replica's key in the cluster (the pod name, unless two replicas share a POD_NAME). */
  key: string;
  podName: string;
  n: number;
  /** `<key>/<n>`: the node's label in the forging figures. */
  label: string;
  uid: string | undefined;
  pod: Pod;
  dir: string;
}

/** Options of {@linkcode FaultCluster.start}. */
export interface FaultClusterOptions {
  cp: ControlPlane;
  namespace: string;
  /** Replica names (default forge-0, forge-1, forge-2). */
  names?: string[];
  /** Sidecar environment for every replica, on top of the fast timings. */
  env?: Record<string, string>;
  /** Extra sidecar environment per replica. */
  envOf?: (key: string) => Record<string, string>;
  /** How long each simulated node takes to shut down after SIGTERM, in ms (default 0). */
  nodeShutdownMs?: number;
  /**
   * Create the Lease released cleanly before the replicas start, so the first one leads at once
   * instead of after the create probation (LEASE_DURATION + ACQUIRE_DELAY). Default true.
   */
  seedReleasedLease?: boolean;
  /** Runs `forge-manager guard` in every pod beside the sidecar (tests/support/pod.ts). */
  guard?: boolean;
  /** A pool of its own in a namespace shared with another (its names carry the suffix). */
  pool?: PoolNames;
  /**
   * Each replica's node on the chain's clock (pod.ts `chain`), by replica key and the cluster's
   * folder: its lag and schedule files live there, so they outlive an incarnation.
   */
  chain?: (key: string, root: string) => PodOptions["chain"];
  /**
   * The pool's credential set every replica shares (default: a fresh dummy one for mainnet);
   * several clusters of one pool share it too.
   */
  credentials?: CredentialSet;
}

/** The figures of one fault. */
export interface Figures {
  /** Milliseconds during which two or more nodes forged, over the whole run so far. */
  overlapMs: number;
  /** From the fault until a node of another replica forges (null: none did). */
  takeoverMs: number | null;
  /**
   * From the fault until the forging under way at the fault on the faulty replica stopped
   * (0 if it was not forging; null: still forging).
   */
  stoppedMs: number | null;
  /** From the fault until a node (any replica, the faulty one too) starts forging anew. */
  resumedMs: number | null;
}

/** A row of a scenario's table. */
export interface Row {
  scenario: string;
  overlapMs: number;
  takeoverMs: number | null;
  stoppedMs?: number | null;
  resumedMs?: number | null;
  note?: string;
}

/** Seconds with two decimals, or "none". */
export function secs(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? "none" : `${(ms / 1000).toFixed(2)} s`;
}

/** Prints a table of rows (console.log, so CI logs show it). */
export function printTable(title: string, rows: readonly Row[]): void {
  const header = [
    "scenario",
    "overlap",
    "old forger stopped",
    "forging again",
    "takeover by another",
    "note",
  ];
  const body = rows.map((r) => [
    r.scenario,
    `${r.overlapMs.toFixed(0)} ms`,
    r.stoppedMs === undefined ? "-" : secs(r.stoppedMs),
    r.resumedMs === undefined ? "-" : secs(r.resumedMs),
    secs(r.takeoverMs),
    r.note ?? "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ");
  console.log(
    [
      "",
      `== ${title}`,
      line(header),
      widths.map((w) => "-".repeat(w)).join("-|-"),
      ...body.map(line),
      "",
    ].join("\n"),
  );
}

/** A deployment of replicas on the control plane, with its kubelet and proxies. */
export class FaultCluster implements AsyncDisposable {
  readonly cp: ControlPlane;
  readonly namespace: string;
  readonly root: string;
  readonly kubelet: SimKubelet;
  readonly credentials: CredentialSet;
  readonly incarnations: Incarnation[] = [];
  readonly rows: Row[] = [];
  readonly #kubeconfigText: string;
  readonly #proxies = new Map<string, TcpProxy>();
  readonly #env: Record<string, string>;
  readonly #envOf: (key: string) => Record<string, string>;
  readonly #nodeShutdownMs: number | undefined;
  readonly #guard: boolean;
  readonly #chain: FaultClusterOptions["chain"];
  readonly #coord: k8s.CoordinationV1Api;
  readonly #core: k8s.CoreV1Api;
  /** This deployment's Lease and CardanoLeader (the shipped names, or its pool's). */
  readonly leaseName: string;
  readonly cardanoLeaderName: string;

  private constructor(
    opts: FaultClusterOptions,
    root: string,
    kubeconfigText: string,
  ) {
    this.cp = opts.cp;
    this.namespace = opts.namespace;
    this.root = root;
    this.#kubeconfigText = kubeconfigText;
    this.#env = opts.env ?? {};
    this.#envOf = opts.envOf ?? (() => ({}));
    this.#nodeShutdownMs = opts.nodeShutdownMs;
    this.#guard = opts.guard ?? false;
    const names = poolNames(opts.pool);
    this.leaseName = names.lease;
    this.cardanoLeaderName = names.cardanoLeader;
    this.#env = {
      ...(opts.pool !== undefined
        ? { LEASE_NAME: names.lease, CARDANO_LEADER_NAME: names.cardanoLeader }
        : {}),
      ...this.#env,
    };
    this.#chain = opts.chain;
    this.credentials = opts.credentials ?? makeCredentialSet();
    const admin = opts.cp.admin();
    this.kubelet = new SimKubelet({ kc: admin, namespace: opts.namespace });
    this.#coord = admin.makeApiClient(k8s.CoordinationV1Api);
    this.#core = admin.makeApiClient(k8s.CoreV1Api);
  }

  /** Installs forge-manager into the namespace and starts the replicas (in parallel). */
  static async start(opts: FaultClusterOptions): Promise<FaultCluster> {
    const kubeconfig = await installForgeManager(opts.cp, opts.namespace, opts.pool);
    const root = await Deno.makeTempDir({ prefix: `fm-faults-${opts.namespace}-` });
    const cluster = new FaultCluster(opts, root, await Deno.readTextFile(kubeconfig));
    try {
      if (opts.seedReleasedLease ?? true) await cluster.seedReleasedLease();
      const names = opts.names ?? ["forge-0", "forge-1", "forge-2"];
      await Promise.all(names.map((name) => cluster.startReplica(name)));
    } catch (err) {
      await cluster.dispose();
      throw err;
    }
    return cluster;
  }

  /** Creates the Lease as cleanly released (see {@linkcode FaultClusterOptions}). */
  async seedReleasedLease(): Promise<void> {
    await this.#coord.createNamespacedLease({
      namespace: this.namespace,
      body: {
        metadata: {
          name: this.leaseName,
          namespace: this.namespace,
          annotations: { [RELEASED_BY]: "fault-suite-seed" },
        },
        spec: { holderIdentity: "", leaseDurationSeconds: 1 },
      },
    });
  }

  /** The proxy in front of the API server for replica `key` (created on first use). */
  proxy(key: string): TcpProxy {
    let proxy = this.#proxies.get(key);
    if (proxy === undefined) {
      proxy = TcpProxy.start({ hostname: this.cp.host, port: this.cp.port });
      this.#proxies.set(key, proxy);
    }
    return proxy;
  }

  /** Every proxy. */
  proxies(): TcpProxy[] {
    return [...this.#proxies.values()];
  }

  /**
   * Starts a new incarnation of replica `key`: its Pod object (unless `podObject` is false),
   * its processes with POD_UID set, and reports it Running.
   */
  async startReplica(
    key: string,
    opts: { podName?: string; podObject?: boolean; env?: Record<string, string> } = {},
  ): Promise<Incarnation> {
    const podName = opts.podName ?? key;
    const n = this.incarnations.filter((i) => i.key === key).length;
    const dir = `${this.root}/${key}.${n}`;
    await Deno.mkdir(dir, { recursive: true });
    const kubeconfig = `${this.root}/${key}.kubeconfig`;
    const proxy = this.proxy(key);
    await Deno.writeTextFile(
      kubeconfig,
      this.#kubeconfigText.replace(/server: "[^"]*"/, `server: ${JSON.stringify(proxy.server)}`),
      { mode: 0o600 },
    );
    const uid = (opts.podObject ?? true) ? await this.kubelet.createPod(podName) : undefined;
    const pod = await startPod({
      name: podName,
      dir,
      credentials: this.credentials,
      ...(this.#nodeShutdownMs !== undefined ? { nodeShutdownMs: this.#nodeShutdownMs } : {}),
      guard: this.#guard,
      ...(this.#chain !== undefined ? { chain: this.#chain(key, this.root) } : {}),
      env: {
        NAMESPACE: this.namespace,
        KUBECONFIG: kubeconfig,
        ...FAST_TIMING,
        ...(uid !== undefined ? { POD_UID: uid } : {}),
        ...this.#env,
        ...this.#envOf(key),
        ...opts.env,
      },
    });
    const incarnation: Incarnation = { key, podName, n, label: `${key}/${n}`, uid, pod, dir };
    this.incarnations.push(incarnation);
    if (uid !== undefined) await this.kubelet.running(uid, pod);
    return incarnation;
  }

  /** The latest incarnation of replica `key`. */
  current(key: string): Incarnation {
    const found = this.incarnations.filter((i) => i.key === key).at(-1);
    if (found === undefined) throw new Error(`No replica ${key}`);
    return found;
  }

  /** The latest incarnation of every replica. */
  replicas(): Incarnation[] {
    const keys = [...new Set(this.incarnations.map((i) => i.key))];
    return keys.map((k) => this.current(k));
  }

  /** Deletes replica `key`'s Pod object as `kubectl delete pod` does (graceful; the kubelet acts). */
  async deletePod(key: string): Promise<void> {
    const inc = this.current(key);
    await this.#core.deleteNamespacedPod({
      name: inc.podName,
      namespace: this.namespace,
      body: { preconditions: { uid: inc.uid } },
    });
  }

  /** Waits until the kubelet has killed replica `key`'s pod and deleted its object. */
  async waitGone(key: string, timeoutMs = 30_000): Promise<void> {
    const inc = this.current(key);
    if (inc.uid === undefined) throw new Error(`Replica ${key} has no Pod object`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.kubelet.gone(inc.uid),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Pod ${inc.podName} not gone within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** The StatefulSet controller's part: once replica `key`'s pod is gone, a new one. */
  async recreate(key: string): Promise<Incarnation> {
    await this.waitGone(key);
    const previous = this.current(key);
    return await this.startReplica(key, { podName: previous.podName });
  }

  // ---- figures ---------------------------------------------------------------------------

  /** Forging intervals of every incarnation so far, labelled `<key>/<n>`. */
  async intervals(): Promise<ForgingInterval[]> {
    const records = await readForgingRecords(
      Object.fromEntries(this.incarnations.map((i) => [i.label, i.pod.record])),
    );
    return forgingIntervals(records, { until: nowMs() });
  }

  /** The pool's leader slots forged so far (sim_node.ts `--leader-slots`), by the node labels. */
  async forgedSlots(): Promise<Map<number, string[]>> {
    return forgedSlots(
      await readForgingRecords(
        Object.fromEntries(this.incarnations.map((i) => [i.label, i.pod.record])),
      ),
    );
  }

  /** Keys of the replicas whose node forges now. */
  async forgers(): Promise<string[]> {
    const open = (await this.intervals()).filter((i) => i.endedBy === "open");
    return [...new Set(open.map((i) => i.node.slice(0, i.node.lastIndexOf("/"))))];
  }

  /** Waits until exactly one replica forges (not one of `excluding`) and returns its key. */
  async waitSingleForger(timeoutMs: number, excluding: readonly string[] = []): Promise<string> {
    let forgers: string[] = [];
    return await waitUntil(`one forger (not ${excluding.join(", ") || "-"})`, async () => {
      forgers = await this.forgers();
      return forgers.length === 1 && !excluding.includes(forgers[0]!) ? forgers[0]! : undefined;
    }, {
      timeoutMs,
      detail: async () => `forging now: ${forgers.join(", ") || "none"}\n${await this.logTail()}`,
    });
  }

  /** {@linkcode waitUntil} `check` holds, with the replicas' log tails in the timeout's message. */
  waitFor<T>(
    what: string,
    check: () => Promise<T | undefined | false>,
    timeoutMs: number,
  ): Promise<Exclude<T, undefined | false>> {
    return waitUntil(what, check, { timeoutMs, detail: () => this.logTail() });
  }

  /**
   * Waits until the forging that was under way at `faultAt` on replica `faulty` has stopped, and
   * then until exactly one replica forges (the faulty one may lead again). Returns its key.
   */
  async waitStoppedThenSingle(faultAt: number, faulty: string, timeoutMs: number) {
    const deadline = Date.now() + timeoutMs;
    await this.waitFor(`${faulty}'s node to stop forging`, async () => {
      return (await this.figures(faultAt, faulty)).stoppedMs !== null ? true : undefined;
    }, timeoutMs);
    return await this.waitSingleForger(Math.max(1000, deadline - Date.now()));
  }

  /** Asserts nobody forges for `ms` (polling); returns the forgers seen, if any. */
  async forgersDuring(ms: number): Promise<string[]> {
    const seen = new Set<string>();
    const until = Date.now() + ms;
    while (Date.now() < until) {
      for (const f of await this.forgers()) seen.add(f);
      await sleep(100);
    }
    return [...seen];
  }

  /** The figures of a fault at `faultAt` on replica `faulty`. */
  async figures(faultAt: number, faulty: string): Promise<Figures> {
    const intervals = await this.intervals();
    const mine = this.incarnations.filter((i) => i.key === faulty).map((i) => i.label);
    // The faulty replica's forging that was under way at the fault (not a later term of it).
    const ownOpen = intervals.filter((i) =>
      mine.includes(i.node) && i.start <= faultAt && i.end > faultAt
    );
    const stillOpen = ownOpen.some((i) => i.endedBy === "open");
    const stoppedAt = ownOpen.length === 0 ? faultAt : Math.max(...ownOpen.map((i) => i.end));
    const starts = intervals.filter((i) => i.start > faultAt).map((i) => i.start);
    return {
      overlapMs: totalOverlapMs(intervals),
      takeoverMs: takeoverMs(intervals, faultAt, mine),
      stoppedMs: stillOpen ? null : Math.max(0, stoppedAt - faultAt),
      resumedMs: starts.length === 0 ? null : Math.min(...starts) - faultAt,
    };
  }

  /** Records a row for the table: the figures of a fault, and a note. */
  async record(scenario: string, faultAt: number, faulty: string, note = ""): Promise<Figures> {
    const f = await this.figures(faultAt, faulty);
    this.rows.push({ scenario, ...f, note });
    return f;
  }

  /** The last lines of every current sidecar log (for failure messages). */
  async logTail(lines = 12): Promise<string> {
    const parts: string[] = [];
    for (const inc of this.replicas()) {
      const text = await Deno.readTextFile(inc.pod.sidecarLog).catch(() => "");
      parts.push(`--- ${inc.label} sidecar log (last ${lines} lines)`);
      parts.push(...text.trimEnd().split("\n").slice(-lines));
      if (inc.pod.guardLog === "") continue;
      const guard = await Deno.readTextFile(inc.pod.guardLog).catch(() => "");
      parts.push(`--- ${inc.label} guard log (last ${lines} lines)`);
      parts.push(...guard.trimEnd().split("\n").slice(-lines));
    }
    for (const [key, proxy] of this.#proxies) {
      parts.push(`--- proxy of ${key}: ${JSON.stringify(proxy.stats)}`);
    }
    return parts.join("\n");
  }

  /**
   * The fence proofs and the leadership and step-aside events logged by every sidecar since
   * `sinceMs` (wall clock), oldest first: `<key>: <message> (<details>)`.
   */
  async logEvents(sinceMs: number): Promise<string[]> {
    const events: { t: number; text: string }[] = [];
    for (const inc of this.incarnations) {
      const text = await Deno.readTextFile(inc.pod.sidecarLog).catch(() => "");
      for (const line of text.split("\n")) {
        if (!line.startsWith("{")) continue;
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line);
        } catch {
          continue;
        }
        const t = new Date(String(entry.ts)).getTime();
        const msg = String(entry.msg);
        if (t < sinceMs) continue;
        if (msg.startsWith("fence: previous")) {
          events.push({ t, text: `${inc.label}: fence ${entry.how} (${entry.previous})` });
        } else if (msg === "fence: no proof; not forging" || msg === "fence failed; not forging") {
          events.push({ t, text: `${inc.label}: fence unproven` });
        } else if (msg === "became leader") {
          events.push({ t, text: `${inc.label}: leader after ${entry.previous || "-"}` });
        } else if (msg.startsWith("stepping aside")) {
          events.push({ t, text: `${inc.label}: stepped aside (${entry.why})` });
        } else if (msg === "stopped leading") {
          events.push({ t, text: `${inc.label}: stopped leading (${entry.reason})` });
        }
      }
    }
    return events.sort((a, b) => a.t - b.t).map((e) => e.text);
  }

  /** How the last fence proof since `sinceMs` went, e.g. "forge-1/0: fence pod_deleted". */
  async lastFence(sinceMs: number): Promise<string> {
    const fences = (await this.logEvents(sinceMs)).filter((e) => e.includes(": fence "));
    return fences.at(-1)?.replace(/ \(.*\)$/, "") ?? "no fence";
  }

  /**
   * A Pod object of some other application on a node of its own, run by the kubelet (no
   * processes: deleting it only records that the kubelet stopped it). Returns its UID.
   */
  async startBystander(name: string): Promise<string> {
    const uid = await this.kubelet.createPod(name, { labels: { app: "bystander" } });
    let killed = false;
    const stub = {
      name,
      kill: () => {
        killed = true;
        return Promise.resolve();
      },
      terminate: () => {
        killed = true;
        return Promise.resolve();
      },
      terminateNode: () => Promise.resolve(),
      terminateSidecar: () => {
        killed = true;
        return Promise.resolve();
      },
      get killed() {
        return killed;
      },
    };
    await this.kubelet.running(uid, stub as unknown as Pod);
    return uid;
  }

  // ---- the Lease and identities ----------------------------------------------------------

  async readLease(): Promise<k8s.V1Lease | undefined> {
    try {
      return await this.#coord.readNamespacedLease({
        name: this.leaseName,
        namespace: this.namespace,
      });
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 404) return undefined;
      throw err;
    }
  }

  /** A hand edit: read, change, replace (conditional, retried on conflict). */
  async editLease(change: (lease: k8s.V1Lease) => void): Promise<k8s.V1Lease> {
    for (let attempt = 0;; attempt++) {
      const lease = await this.readLease();
      if (lease === undefined) throw new Error("Cannot edit the Lease: it does not exist");
      change(lease);
      try {
        return await this.#coord.replaceNamespacedLease({
          name: this.leaseName,
          namespace: this.namespace,
          body: lease,
        });
      } catch (err) {
        if (!(err instanceof k8s.ApiException && err.code === 409) || attempt > 20) throw err;
      }
    }
  }

  async deleteLease(): Promise<void> {
    await this.#coord.deleteNamespacedLease({ name: this.leaseName, namespace: this.namespace });
  }

  /** The holder's replica key, from the Lease (undefined when empty). */
  async holderKey(): Promise<string | undefined> {
    const holder = (await this.readLease())?.spec?.holderIdentity ?? "";
    if (holder === "") return undefined;
    for (const inc of this.replicas()) {
      if (await this.identityOf(inc.key) === holder) return inc.key;
    }
    return holder;
  }

  /** The sidecar identity of replica `key` (from its forge_manager_info metric). */
  async identityOf(key: string): Promise<string | undefined> {
    const pod = this.current(key).pod;
    try {
      const text = await (await fetch(`http://127.0.0.1:${pod.metricsPort}/metrics`)).text();
      return text.match(/^forge_manager_info\{[^}]*identity="([^"]+)"/m)?.[1];
    } catch {
      return undefined;
    }
  }

  /** A metric of replica `key`'s sidecar. */
  metric(key: string, series: string): Promise<number | undefined> {
    return metricValue(this.current(key).pod, series);
  }

  /** Whether the Pod object `name` exists, and its UID. */
  async podObject(name: string): Promise<k8s.V1Pod | undefined> {
    try {
      return await this.#core.readNamespacedPod({ name, namespace: this.namespace });
    } catch (err) {
      if (err instanceof k8s.ApiException && err.code === 404) return undefined;
      throw err;
    }
  }

  // ---- tear-down -------------------------------------------------------------------------

  async dispose(): Promise<void> {
    await Promise.allSettled(this.incarnations.map((i) => i.pod.kill()));
    await this.kubelet.stop();
    await Promise.allSettled(this.proxies().map((p) => p.close()));
    // FAULTS_KEEP=1 keeps the folder (logs, forging records) for a look after a failure.
    if (Deno.env.get("FAULTS_KEEP") === "1") console.log(`kept ${this.root}`);
    else await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }
}
