/**
 * Simulated kubelets for fake Nodes, so that the real kube-controller-manager (StatefulSet
 * controller, garbage collector, ...) drives pods that really run. tests/support/kubelet.ts plays
 * the kubelet for Pod objects a test creates itself; this one runs the pods the controllers
 * create, from their spec:
 *
 * - Nodes: registers one Node object per fake node (Ready, capacity, addresses) and keeps its
 *   Ready heartbeat (every 10 s) and its Lease in `kube-node-lease` (every 10 s, 40 s long) fresh,
 *   until {@linkcode FakeNode.stopReporting}.
 * - Scheduling: no kube-scheduler runs, so the kubelets bind every pending pod (the pods/binding
 *   subresource, as the scheduler does) to the reporting node with the fewest pods: the dummy
 *   example's preferred anti-affinity spreads them one per node.
 * - A pod is a PID namespace with PID 1 a pause process (`unshare --pid --fork --mount-proc`),
 *   so its containers share it as with `shareProcessNamespace: true` (tests/support/pod.ts does
 *   the same). Each container enters it (`nsenter --pid --mount`) in a mount namespace of its own
 *   whose root (`chroot`) is a tmpfs holding the host's top-level folders as its "image" (minus
 *   /tmp and /run, which start empty, and whatever the spec mounts over), with the container's
 *   volumeMounts mounted at their mountPath (readOnly honoured).
 * - Volumes, as folders under the pod's folder: `secret` and `configMap` (read through the API,
 *   items and defaultMode honoured; with the pod's fsGroup the kubelet's rule: files get group
 *   read (0400 becomes 0440) and group fsGroup), `emptyDir` (mode 0777; `medium: Memory` is a
 *   tmpfs with the sizeLimit, so copies of the keys vanish with the pod), `projected` with
 *   `serviceAccountToken` (a real TokenRequest for the pod's service account, bound to the pod,
 *   with the spec's expirationSeconds and path), `configMap` items and `downwardAPI` items.
 * - Environment: `value`, and `valueFrom.fieldRef` (metadata.name, metadata.namespace,
 *   metadata.uid, spec.nodeName, spec.serviceAccountName, status.podIP, status.hostIP);
 *   KUBERNETES_SERVICE_HOST/PORT name the node's own route to the API server (a TCP proxy per
 *   node, so a test can cut a node off); the "image" environment is PATH, HOME and DENO_DIR.
 * - Containers start in the kubelet's order: init containers one by one; a native sidecar (an
 *   init container with `restartPolicy: Always`) counts as done once its startupProbe succeeds,
 *   and it keeps running; then the main containers. Startup, readiness and liveness probes
 *   (httpGet, with their period, timeout and thresholds; named ports) run as the kubelet runs
 *   them; a failed liveness or startup probe restarts the container (SIGTERM, the pod's grace
 *   period, SIGKILL). A container that exits is restarted (restartPolicy Always) after the
 *   kubelet's back-off (10 s, doubling, 300 s at most).
 * - Status: phase, conditions (PodScheduled, PodReadyToStartContainers, Initialized,
 *   ContainersReady, Ready), a status per container (waiting, running with startedAt, terminated
 *   with exitCode, reason, startedAt and finishedAt; restartCount, started, ready, lastState).
 * - Termination, on `deletionTimestamp`: SIGTERM to the main containers, then, once they have
 *   exited, to the sidecars in reverse order, all within the deletion's grace period
 *   (`metadata.deletionGracePeriodSeconds`, which `kubectl delete` takes from
 *   terminationGracePeriodSeconds); SIGKILL to whatever still runs when it is over; the statuses
 *   terminated; then the object deleted with `gracePeriodSeconds: 0` and a UID precondition, as the
 *   kubelet's status manager does. A pod whose object vanished (a forced delete) is killed.
 *
 * What a container runs: its image is not used. The container named `forge-manager`, and any
 * container of the image `forge-manager:<tag>` (the guard: `args: [guard]`), runs
 * `deno run -P=forge-manager main.ts` of this checkout with its `args` (the permission set it
 * ships with); any other container runs its own `command` and `args` under /bin/sh of the host,
 * with the Deno binary on its PATH as the `denoland/deno` image has it: the dummy example's `cardano-node`
 * container so starts the simulated node (tests/support/sim_node.ts) from its ConfigMap exactly
 * as in a cluster. A container's stdout is its log (`<pod folder>/<container>.log`), stderr
 * goes to `<container>.stderr.log`: the simulated node's stdout is its forging record
 * (tests/support/forging_log.ts), and the kubelet appends a `killed` line after SIGKILL-ing it.
 *
 * What it does NOT do: pull images or check image names; cgroups (no CPU or memory limits, no
 * OOM kills, no ephemeral-storage limits except a Memory emptyDir's size); pod networking (every
 * pod shares the host's network namespace: each declared containerPort gets a free host port, an
 * env var whose value is that port number is given the host port instead, probes use it, and
 * podIP is a made-up 10.244.x.y nobody can reach); runAsUser/runAsGroup, capabilities, seccomp,
 * readOnlyRootFilesystem (everything runs as the test's user, root); exec and tcpSocket probes,
 * preStop and postStart hooks; token rotation (the projected token is written once; the dummy
 * example's lasts 3607 s); the atomic `..data` symlink layout of Secret volumes and their
 * updates; evictions, node pressure and the node lifecycle controller (a node that stops
 * reporting is not marked NotReady: its pods just stay); image contents (a Deno container fetches
 * its npm packages at start, through the machine's CA store, DENO_CERT=$SSL_CERT_FILE); CSI, PVCs and every other volume type;
 * kubectl logs/exec (the logs are files). Unsupported fields in a spec make the pod fail with a
 * message naming them.
 *
 * Needs root (unshare, nsenter, mount, chroot), `-P=dev`.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import type { ControlPlane } from "./control_plane.ts";
import { appendKilled, nowMs } from "./forging_log.ts";
import { containerId, describe, isStatus, watchPods } from "./kubelet.ts";
import { children, freePort } from "./pod.ts";
import { TcpProxy } from "./tcp_proxy.ts";
import { sleep } from "./wait.ts";

const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const MERGE = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
const BACKOFF_MS = 10_000;
const BACKOFF_MAX_MS = 300_000;
const HEARTBEAT_MS = 10_000;

/** A line of a kubelet's log, for a test's report. */
export interface NodeKubeletEvent {
  /** Milliseconds since the epoch (the forging records' clock). */
  t: number;
  node: string;
  pod: string;
  uid: string;
  what: string;
  detail?: string;
}

/** One pod a kubelet ran (every incarnation is kept, for the forging figures). */
export interface RunPod {
  namespace: string;
  name: string;
  uid: string;
  node: string;
  dir: string;
  /** `<name>/<first 8 of uid>`: the node's label in the forging figures. */
  label: string;
  /** The log of container `name` (for the simulated node: its forging record). */
  log(container: string): string;
  /** Host port of containerPort `port` (the kubelet maps every declared port). */
  hostPort(port: number): number | undefined;
  /** Resolves once the pod's processes are all gone (terminated or killed). */
  readonly stopped: Promise<void>;
}

interface ContainerState {
  spec: k8s.V1Container;
  sidecar: boolean;
  init: boolean;
  proc?: Deno.ChildProcess;
  exited?: Promise<Deno.CommandStatus>;
  running: boolean;
  startedAt?: Date;
  started: boolean;
  ready: boolean;
  restartCount: number;
  id?: string;
  terminated?: k8s.V1ContainerStateTerminated;
  lastTerminated?: k8s.V1ContainerStateTerminated;
  waitingReason?: string;
  /** Bumped on every (re)start: probes and restart loops of an earlier run stop. */
  generation: number;
  /** Set when the kubelet itself stops the container (no restart, no back-off). */
  stopping: boolean;
}

interface PodState extends RunPod {
  spec: k8s.V1PodSpec;
  pod: k8s.V1Pod;
  ports: Map<number, number>;
  namedPorts: Map<string, number>;
  pause?: Deno.ChildProcess;
  pausePid?: number;
  containers: ContainerState[];
  terminating: boolean;
  gone: boolean;
  podIP: string;
  startTime: Date;
  initialized: boolean;
  failed?: string;
  statusQueue: Promise<void>;
  stoppedResolve: () => void;
}

/** Options of {@linkcode FakeNodes.start}. */
export interface FakeNodesOptions {
  cp: ControlPlane;
  /** The fake nodes' names. */
  nodes: readonly string[];
  /** A folder for the pods' files (created). */
  dir: string;
  /** Receives the kubelets' log lines (default: kept in `events` only). */
  log?: (event: NodeKubeletEvent) => void;
}

/** One fake node: its Node object, its route to the API server and its kubelet. */
export interface FakeNode {
  readonly name: string;
  /** The node's route to the API server: its pods' KUBERNETES_SERVICE_PORT. */
  readonly proxy: TcpProxy;
  /** Whether the kubelet reports (heartbeats, acts on its pods) and its pods reach the API. */
  readonly reporting: boolean;
  /**
   * The node drops off the network: no heartbeat, no Lease renewal, its kubelet no longer sees
   * the API server (a deletion is not carried out), and its pods' connections to the API server
   * hang. Its processes run on.
   */
  stopReporting(): void;
  /** The node is back: heartbeats resume and a pending deletion is carried out. */
  resumeReporting(): void;
}

function signal(pid: number | undefined, sig: Deno.Signal): void {
  if (pid === undefined) return;
  try {
    Deno.kill(pid, sig);
  } catch {
    // gone
  }
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}

/** The kubelet's rule for file modes under fsGroup: read-only files get group read. */
export function fsGroupMode(mode: number, fsGroup: number | undefined): number {
  return fsGroup === undefined ? mode : mode | 0o440;
}

/**
 * Resolves `path` as a process chrooted into a copy of the host's folders would: symlinks of
 * the host (e.g. /var/run -> /run) are followed inside that root, never outside it.
 */
export function resolveInImage(path: string, lstat = Deno.lstatSync, readLink = Deno.readLinkSync) {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  const out: string[] = [];
  for (let hops = 0; parts.length > 0;) {
    const part = parts.shift()!;
    if (part === "..") {
      out.pop();
      continue;
    }
    const candidate = `/${[...out, part].join("/")}`;
    let link: string | undefined;
    try {
      if (lstat(candidate).isSymlink) link = readLink(candidate);
    } catch {
      // not on the host: a new folder of the container's own
    }
    if (link === undefined) {
      out.push(part);
      continue;
    }
    if (++hops > 40) throw new Error(`Cannot resolve ${path}: too many symlinks`);
    if (link.startsWith("/")) out.length = 0;
    parts.unshift(...link.split("/").filter((p) => p !== "" && p !== "."));
  }
  return `/${out.join("/")}`;
}

/** The simulated kubelets of a set of fake nodes, and the scheduler's binding. */
export class FakeNodes implements AsyncDisposable {
  readonly events: NodeKubeletEvent[] = [];
  /** Every pod run so far, by UID, in start order. */
  readonly pods = new Map<string, RunPod>();
  readonly #cp: ControlPlane;
  readonly #kc: k8s.KubeConfig;
  readonly #core: k8s.CoreV1Api;
  readonly #coordination: k8s.CoordinationV1Api;
  readonly #dir: string;
  readonly #log: ((event: NodeKubeletEvent) => void) | undefined;
  readonly #nodes = new Map<string, FakeNode & { reporting: boolean }>();
  readonly #state = new Map<string, PodState>();
  readonly #binding = new Set<string>();
  readonly #pendingBinds = new Map<string, string>(); // uid -> node, bound but not started
  readonly #stop = new AbortController();
  #loops: Promise<void>[] = [];
  #podCount = 0;

  private constructor(opts: FakeNodesOptions) {
    this.#cp = opts.cp;
    this.#kc = opts.cp.admin();
    this.#core = this.#kc.makeApiClient(k8s.CoreV1Api);
    this.#coordination = this.#kc.makeApiClient(k8s.CoordinationV1Api);
    this.#dir = opts.dir;
    this.#log = opts.log;
  }

  /** Registers the nodes and starts their kubelets. */
  static async start(opts: FakeNodesOptions): Promise<FakeNodes> {
    const nodes = new FakeNodes(opts);
    await Deno.mkdir(opts.dir, { recursive: true });
    for (const [i, name] of opts.nodes.entries()) await nodes.#register(name, i);
    nodes.#loops = [
      watchPods(nodes.#kc, "/api/v1/pods", (pod) => nodes.#seen(pod), nodes.#stop.signal),
      nodes.#resyncLoop(),
      nodes.#heartbeatLoop(),
    ];
    return nodes;
  }

  /** The fake node `name`. */
  node(name: string): FakeNode {
    const node = this.#nodes.get(name);
    if (node === undefined) throw new Error(`Cannot find fake node ${name}: not registered`);
    return node;
  }

  /** The running (not yet stopped) pod of that namespace and name, if any. */
  running(namespace: string, name: string): RunPod | undefined {
    return [...this.#state.values()].find((p) =>
      p.namespace === namespace && p.name === name && !p.gone
    );
  }

  /** The forging record of every incarnation of every pod: label -> record path. */
  records(container = "cardano-node"): Record<string, string> {
    return Object.fromEntries([...this.pods.values()].map((p) => [p.label, p.log(container)]));
  }

  async stop(): Promise<void> {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    await Promise.allSettled(this.#loops);
    await Promise.allSettled([...this.#state.values()].map((p) => this.#killAll(p)));
    for (const node of this.#nodes.values()) await node.proxy.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #event(pod: Pick<PodState, "node" | "name" | "uid">, what: string, detail?: string): void {
    const event: NodeKubeletEvent = {
      t: nowMs(),
      node: pod.node,
      pod: pod.name,
      uid: pod.uid,
      what,
      ...(detail === undefined ? {} : { detail }),
    };
    this.events.push(event);
    this.#log?.(event);
  }

  /** Sleeps `ms`, or less if the kubelets stop meanwhile. */
  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#stop.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }

  // ---- nodes ----

  async #register(name: string, index: number): Promise<void> {
    const proxy = TcpProxy.start({ hostname: this.#cp.host, port: this.#cp.port });
    const node = {
      name,
      proxy,
      reporting: true,
      stopReporting: () => {
        node.reporting = false;
        proxy.blackhole();
        this.#event({ node: name, name: "-", uid: "-" }, "node_stopped_reporting");
      },
      resumeReporting: () => {
        node.reporting = true;
        proxy.heal();
        this.#event({ node: name, name: "-", uid: "-" }, "node_resumed_reporting");
        void this.#heartbeat(node).catch(() => {});
        void this.#resync().catch(() => {});
      },
    };
    this.#nodes.set(name, node);
    await this.#core.createNode({
      body: {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name,
          labels: {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
          },
        },
        spec: { podCIDR: `10.244.${index}.0/24` },
      },
    });
    await this.#heartbeat(node);
  }

  async #heartbeat(node: { name: string; reporting: boolean }): Promise<void> {
    if (!node.reporting) return;
    const now = new Date();
    const condition = (type: string, status: string, reason: string) => ({
      type,
      status,
      reason,
      message: `simulated kubelet: ${reason}`,
      lastHeartbeatTime: now,
      lastTransitionTime: now,
    });
    const resources = { cpu: "2", memory: "4Gi", pods: "110", "ephemeral-storage": "20Gi" };
    await this.#core.patchNodeStatus({
      name: node.name,
      body: {
        status: {
          capacity: resources,
          allocatable: resources,
          addresses: [{ type: "InternalIP", address: "127.0.0.1" }, {
            type: "Hostname",
            address: node.name,
          }],
          conditions: [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            condition("Ready", "True", "KubeletReady"),
          ],
          nodeInfo: {
            kubeletVersion: "v1.34.4-simulated",
            kubeProxyVersion: "",
            containerRuntimeVersion: "simulated://1",
            operatingSystem: "linux",
            architecture: "amd64",
            osImage: "the test machine",
            kernelVersion: Deno.osRelease(),
            machineID: "",
            systemUUID: "",
            bootID: "",
          },
        },
      },
    }, MERGE);
    const lease = { namespace: "kube-node-lease", name: node.name };
    const spec = {
      holderIdentity: node.name,
      leaseDurationSeconds: 40,
      renewTime: new k8s.V1MicroTime(),
    };
    try {
      const current = await this.#coordination.readNamespacedLease(lease);
      await this.#coordination.replaceNamespacedLease({
        ...lease,
        body: { ...current, spec: { ...current.spec, ...spec } },
      });
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      await this.#coordination.createNamespacedLease({
        namespace: lease.namespace,
        body: { metadata: { name: node.name }, spec },
      });
    }
  }

  async #heartbeatLoop(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      await this.#pause(HEARTBEAT_MS);
      for (const node of this.#nodes.values()) {
        if (this.#stop.signal.aborted) return;
        await this.#heartbeat(node).catch(() => {}); // API server away: next time
      }
    }
  }

  // ---- observing pods ----

  async #resync(): Promise<void> {
    const list = await this.#core.listPodForAllNamespaces();
    const seen = new Set<string>();
    for (const pod of list.items) {
      if (pod.metadata?.uid !== undefined) seen.add(pod.metadata.uid);
      this.#seen(pod);
    }
    // An object that vanished without our confirmation (a forced delete): kill what runs.
    for (const state of this.#state.values()) {
      if (state.gone || state.terminating || seen.has(state.uid)) continue;
      if (!this.#nodes.get(state.node)?.reporting) continue;
      state.terminating = true;
      this.#event(state, "object_vanished", "killing its processes");
      void this.#terminate(state, 0, false);
    }
  }

  async #resyncLoop(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        await this.#resync();
      } catch {
        // API server away: try again
      }
      await this.#pause(1000);
    }
  }

  #seen(pod: k8s.V1Pod): void {
    if (this.#stop.signal.aborted) return;
    const uid = pod.metadata?.uid;
    if (uid === undefined || pod.spec === undefined) return;
    const nodeName = pod.spec.nodeName;
    if (nodeName === undefined) {
      if (pod.metadata?.deletionTimestamp === undefined) void this.#bind(pod);
      return;
    }
    const node = this.#nodes.get(nodeName);
    if (node === undefined || !node.reporting) return;
    const state = this.#state.get(uid);
    if (state === undefined) {
      if (pod.metadata?.deletionTimestamp !== undefined) {
        // Never started here (e.g. deleted while pending): confirm at once.
        void this.#confirmDeletion({ ...podKey(pod, nodeName), uid });
        return;
      }
      void this.#startPod(pod, nodeName).catch((err) =>
        this.#event({ ...podKey(pod, nodeName), uid }, "error", `start: ${describe(err)}`)
      );
      return;
    }
    state.pod = pod;
    if (pod.metadata?.deletionTimestamp !== undefined && !state.terminating) {
      state.terminating = true;
      const grace = pod.metadata.deletionGracePeriodSeconds ??
        pod.spec.terminationGracePeriodSeconds ?? 30;
      this.#event(state, "deletion_seen", `grace ${grace} s`);
      void this.#terminate(state, grace, true);
    }
  }

  /** The scheduler's part: binds a pending pod to the reporting node with the fewest pods. */
  async #bind(pod: k8s.V1Pod): Promise<void> {
    const uid = pod.metadata!.uid!;
    if (this.#binding.has(uid)) return;
    this.#binding.add(uid);
    const load = new Map<string, number>();
    for (const [name, node] of this.#nodes) if (node.reporting) load.set(name, 0);
    for (const state of this.#state.values()) {
      if (!state.gone && load.has(state.node)) load.set(state.node, load.get(state.node)! + 1);
    }
    for (const node of this.#pendingBinds.values()) {
      if (load.has(node)) load.set(node, load.get(node)! + 1);
    }
    const target = [...load.entries()].sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))[0];
    if (target === undefined) {
      this.#binding.delete(uid);
      return;
    }
    // Count it at once, so pods created together spread.
    this.#pendingBinds.set(uid, target[0]);
    try {
      await this.#core.createNamespacedPodBinding({
        name: pod.metadata!.name!,
        namespace: pod.metadata!.namespace!,
        body: {
          apiVersion: "v1",
          kind: "Binding",
          metadata: { name: pod.metadata!.name!, uid },
          target: { apiVersion: "v1", kind: "Node", name: target[0] },
        },
      });
      this.#event({ ...podKey(pod, target[0]), uid }, "bound");
      // Counted as pending until its kubelet starts it.
      setTimeout(() => this.#pendingBinds.delete(uid), 5000);
    } catch (err) {
      this.#binding.delete(uid);
      this.#pendingBinds.delete(uid);
      if (!isStatus(err, 409) && !isStatus(err, 404)) {
        this.#event({ ...podKey(pod, target[0]), uid }, "error", `bind: ${describe(err)}`);
      }
    }
  }

  // ---- running a pod ----

  async #startPod(pod: k8s.V1Pod, nodeName: string): Promise<void> {
    const uid = pod.metadata!.uid!;
    const name = pod.metadata!.name!;
    const namespace = pod.metadata!.namespace!;
    const spec = pod.spec!;
    const dir = `${this.#dir}/${namespace}.${name}.${uid.slice(0, 8)}`;
    await Deno.mkdir(dir, { recursive: true });
    const ports = new Map<number, number>();
    const namedPorts = new Map<string, number>();
    const containers: ContainerState[] = [];
    for (
      const [init, list] of [[true, spec.initContainers ?? []], [false, spec.containers]] as const
    ) {
      for (const c of list) {
        for (const p of c.ports ?? []) {
          const host = freePort();
          ports.set(p.containerPort, host);
          if (p.name !== undefined) namedPorts.set(p.name, p.containerPort);
        }
        containers.push({
          spec: c,
          init,
          sidecar: init && c.restartPolicy === "Always",
          running: false,
          started: false,
          ready: false,
          restartCount: 0,
          generation: 0,
          stopping: false,
        });
      }
    }
    const stopped = Promise.withResolvers<void>();
    const index = this.#podCount++;
    const state: PodState = {
      namespace,
      name,
      uid,
      node: nodeName,
      dir,
      label: `${name}/${uid.slice(0, 8)}`,
      log: (container) => `${dir}/${container}.log`,
      hostPort: (port) => ports.get(port),
      stopped: stopped.promise,
      stoppedResolve: stopped.resolve,
      spec,
      pod,
      ports,
      namedPorts,
      containers,
      terminating: false,
      gone: false,
      podIP: `10.244.${[...this.#nodes.keys()].indexOf(nodeName)}.${(index % 250) + 2}`,
      startTime: new Date(),
      initialized: false,
      statusQueue: Promise.resolve(),
    };
    this.#state.set(uid, state);
    this.pods.set(uid, state);
    this.#event(state, "starting", dir);
    for (const c of containers) await Deno.writeTextFile(state.log(c.spec.name), "");
    this.#writeStatus(state);
    try {
      this.#checkSupported(spec);
      await this.#startPause(state);
      await this.#makeVolumes(state);
    } catch (err) {
      state.failed = err instanceof Error ? err.message : String(err);
      this.#event(state, "error", state.failed);
      for (const c of containers) c.waitingReason = "CreateContainerConfigError";
      this.#writeStatus(state);
      return;
    }
    this.#writeStatus(state);
    // Init containers in order: a sidecar is done once started (its startupProbe passed).
    for (const c of containers.filter((c) => c.init)) {
      if (state.terminating) return;
      await this.#runContainer(state, c);
      if (c.sidecar) await this.#until(state, () => c.started);
      else {
        const status = await c.exited!;
        if (!status.success) {
          state.failed = `init container ${c.spec.name} exited with code ${status.code}`;
          this.#event(state, "error", state.failed);
          this.#writeStatus(state);
          return;
        }
      }
    }
    if (state.terminating) return;
    state.initialized = true;
    for (const c of containers.filter((c) => !c.init)) await this.#runContainer(state, c);
    this.#writeStatus(state);
  }

  /** Waits until `ok()` or the pod is terminating. */
  async #until(state: PodState, ok: () => boolean): Promise<void> {
    while (!ok() && !state.terminating && !this.#stop.signal.aborted) await sleep(50);
  }

  #checkSupported(spec: k8s.V1PodSpec): void {
    const unsupported: string[] = [];
    if (spec.hostNetwork) unsupported.push("hostNetwork");
    for (const v of spec.volumes ?? []) {
      if (!v.secret && !v.emptyDir && !v.projected && !v.configMap) {
        unsupported.push(`volume ${v.name} (only secret, configMap, emptyDir, projected)`);
      }
    }
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      for (const e of c.env ?? []) {
        if (e.valueFrom !== undefined && e.valueFrom.fieldRef === undefined) {
          unsupported.push(`env ${e.name} of ${c.name} (only value and fieldRef)`);
        }
      }
      if (c.envFrom !== undefined) unsupported.push(`envFrom of ${c.name}`);
      if (c.lifecycle !== undefined) unsupported.push(`lifecycle hooks of ${c.name}`);
      for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe]) {
        if (probe !== undefined && probe.httpGet === undefined) {
          unsupported.push(`a probe of ${c.name} that is not httpGet`);
        }
      }
    }
    if (unsupported.length > 0) {
      throw new Error(`Cannot run the pod: the simulated kubelet lacks ${unsupported.join(", ")}`);
    }
  }

  async #startPause(state: PodState): Promise<void> {
    const pause = new Deno.Command("unshare", {
      args: ["--pid", "--fork", "--mount-proc", "--kill-child", "/bin/sleep", "infinity"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    state.pause = pause;
    for (let i = 0; i < 500 && state.pausePid === undefined; i++) {
      state.pausePid = children(pause.pid)[0];
      if (state.pausePid === undefined) await sleep(10);
    }
    if (state.pausePid === undefined) throw new Error("the pause process did not start");
    // /proc of the new PID namespace is mounted by unshare a moment after the fork.
    for (let i = 0; i < 500; i++) {
      const out = await this.#inPod(state, ["/bin/sh", "-c", "ls /proc | grep -c '^[0-9]'"]);
      if (out.trim() === "1") return;
      await sleep(10);
    }
    throw new Error("the pod's /proc did not appear");
  }

  /** Runs a command in the pod's mount namespace (that of its pause process). */
  async #inPod(state: PodState, command: string[]): Promise<string> {
    const out = await new Deno.Command("nsenter", {
      args: [`--target=${state.pausePid}`, "--mount", "--", ...command],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      throw new Error(
        `Cannot run ${command.join(" ")} in pod ${state.name}: ${
          new TextDecoder().decode(out.stderr).trim()
        }`,
      );
    }
    return text;
  }

  #field(state: PodState, path: string): string {
    const meta = state.pod.metadata!;
    switch (path) {
      case "metadata.name":
        return state.name;
      case "metadata.namespace":
        return state.namespace;
      case "metadata.uid":
        return state.uid;
      case "spec.nodeName":
        return state.node;
      case "spec.serviceAccountName":
        return state.spec.serviceAccountName ?? "default";
      case "status.podIP":
        return state.podIP;
      case "status.hostIP":
        return "127.0.0.1";
      default: {
        const label = /^metadata\.labels\['(.+)'\]$/.exec(path)?.[1];
        if (label !== undefined) return meta.labels?.[label] ?? "";
        throw new Error(`Cannot resolve fieldRef ${path}: not supported by the simulated kubelet`);
      }
    }
  }

  async #writeFile(path: string, data: string | Uint8Array, mode: number, fsGroup?: number) {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    await Deno.writeFile(path, bytes, { mode });
    await Deno.chmod(path, fsGroupMode(mode, fsGroup));
    if (fsGroup !== undefined) await Deno.chown(path, 0, fsGroup);
  }

  async #makeVolumes(state: PodState): Promise<void> {
    const fsGroup = state.spec.securityContext?.fsGroup;
    const decode = (b64: string) => Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
    for (const v of state.spec.volumes ?? []) {
      const dir = `${state.dir}/volumes/${v.name}`;
      await Deno.mkdir(dir, { recursive: true });
      if (v.emptyDir !== undefined) {
        await Deno.chmod(dir, 0o777);
        if (v.emptyDir.medium === "Memory") {
          const size = v.emptyDir.sizeLimit === undefined
            ? []
            : [`size=${toBytes(v.emptyDir.sizeLimit)}`];
          await this.#inPod(state, [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            ["mode=0777", ...size].join(","),
            `emptydir-${v.name}`,
            dir,
          ]);
        }
      } else if (v.secret !== undefined) {
        const secret = await this.#core.readNamespacedSecret({
          namespace: state.namespace,
          name: v.secret.secretName!,
        });
        const data = secret.data ?? {};
        const items: k8s.V1KeyToPath[] = v.secret.items ??
          Object.keys(data).map((key) => ({ key, path: key }));
        for (const item of items) {
          const value = data[item.key];
          if (value === undefined) {
            throw new Error(`Secret ${v.secret.secretName} has no ${item.key}`);
          }
          await this.#writeFile(
            `${dir}/${item.path}`,
            decode(value),
            item.mode ?? v.secret.defaultMode ?? 0o644,
            fsGroup,
          );
        }
      } else if (v.configMap !== undefined) {
        await this.#configMapFiles(
          state,
          dir,
          v.configMap,
          v.configMap.defaultMode ?? 0o644,
          fsGroup,
        );
      } else if (v.projected !== undefined) {
        const mode = v.projected.defaultMode ?? 0o644;
        for (const source of v.projected.sources ?? []) {
          if (source.serviceAccountToken !== undefined) {
            const sa = source.serviceAccountToken;
            const answer = await this.#core.createNamespacedServiceAccountToken({
              namespace: state.namespace,
              name: state.spec.serviceAccountName ?? "default",
              body: {
                spec: {
                  audiences: sa.audience === undefined ? [] : [sa.audience],
                  expirationSeconds: sa.expirationSeconds ?? 3607,
                  boundObjectRef: {
                    apiVersion: "v1",
                    kind: "Pod",
                    name: state.name,
                    uid: state.uid,
                  },
                },
              },
            });
            await this.#writeFile(`${dir}/${sa.path}`, answer.status?.token ?? "", mode, fsGroup);
            this.#event(
              state,
              "token_requested",
              `for ${state.spec.serviceAccountName ?? "default"}`,
            );
          } else if (source.configMap !== undefined) {
            await this.#configMapFiles(state, dir, source.configMap, mode, fsGroup);
          } else if (source.downwardAPI !== undefined) {
            for (const item of source.downwardAPI.items ?? []) {
              if (item.fieldRef === undefined) {
                throw new Error(`downwardAPI item ${item.path}: only fieldRef`);
              }
              await this.#writeFile(
                `${dir}/${item.path}`,
                this.#field(state, item.fieldRef.fieldPath),
                item.mode ?? mode,
                fsGroup,
              );
            }
          } else {
            throw new Error(
              `projected volume ${v.name}: only serviceAccountToken, configMap, downwardAPI`,
            );
          }
        }
      }
      if (fsGroup !== undefined) await Deno.chown(dir, 0, fsGroup);
    }
  }

  async #configMapFiles(
    state: PodState,
    dir: string,
    ref: k8s.V1ConfigMapVolumeSource | k8s.V1ConfigMapProjection,
    mode: number,
    fsGroup: number | undefined,
  ): Promise<void> {
    const cm = await this.#core.readNamespacedConfigMap({
      namespace: state.namespace,
      name: ref.name!,
    });
    const data = cm.data ?? {};
    const items = ref.items ??
      Object.keys(data).map((key) => ({ key, path: key, mode: undefined }));
    for (const item of items) {
      const value = data[item.key];
      if (value === undefined) throw new Error(`ConfigMap ${ref.name} has no ${item.key}`);
      await this.#writeFile(`${dir}/${item.path}`, value, item.mode ?? mode, fsGroup);
    }
  }

  #env(state: PodState, c: k8s.V1Container): Record<string, string> {
    const node = this.#nodes.get(state.node)!;
    const home = Deno.env.get("HOME") ?? "/root";
    const env: Record<string, string> = {
      // The "image" environment.
      PATH: `/deno-image/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
      HOME: home,
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${home}/.cache/deno`,
      DENO_NO_UPDATE_CHECK: "1",
      NO_COLOR: "1",
      // The machine's CA store, as an image has its own: the dummy example's simulated node
      // fetches its two npm packages (pinned by the ConfigMap's deno.json) at start.
      ...(Deno.env.get("SSL_CERT_FILE") === undefined
        ? { DENO_TLS_CA_STORE: "system" }
        : { DENO_CERT: Deno.env.get("SSL_CERT_FILE")! }),
      // What the kubelet adds for the "kubernetes" Service: here the node's own route.
      KUBERNETES_SERVICE_HOST: "127.0.0.1",
      KUBERNETES_SERVICE_PORT: String(node.proxy.port),
      KUBERNETES_SERVICE_PORT_HTTPS: String(node.proxy.port),
      HOSTNAME: state.name,
    };
    for (const e of c.env ?? []) {
      let value = e.value ?? "";
      if (e.valueFrom?.fieldRef !== undefined) {
        value = this.#field(state, e.valueFrom.fieldRef.fieldPath);
      }
      const port = Number(value);
      if (/^\d+$/.test(value) && state.ports.has(port)) value = String(state.ports.get(port));
      env[e.name] = value;
    }
    return env;
  }

  /** The container's command line, inside its root. */
  #command(c: k8s.V1Container): string[] {
    if (c.name === "forge-manager" || c.image?.startsWith("forge-manager:")) {
      return [
        Deno.execPath(),
        "run",
        "-P=forge-manager",
        "--no-prompt",
        "--config",
        `${REPO}/deno.json`,
        `${REPO}/main.ts`,
        ...(c.args ?? []),
      ];
    }
    const argv = [...(c.command ?? []), ...(c.args ?? [])];
    if (argv.length === 0) {
      throw new Error(`Cannot run container ${c.name}: no command (images are not used)`);
    }
    return argv;
  }

  /** The shell script that builds the container's root and executes its command in it. */
  async #containerScript(state: PodState, c: k8s.V1Container): Promise<string> {
    const root = `${state.dir}/rootfs-${c.name}`;
    await Deno.mkdir(root, { recursive: true });
    const mounts = (c.volumeMounts ?? []).map((m) => ({
      source: `${state.dir}/volumes/${m.name}${m.subPath ? `/${m.subPath}` : ""}`,
      target: resolveInImage(m.mountPath),
      readOnly: m.readOnly === true,
    }));
    const hidden = new Set([
      "proc",
      "tmp",
      "run",
      "sys",
      "dev",
      "deno-image",
      ...mounts.map((m) => m.target.split("/")[1]!),
    ]);
    const lines = [
      "set -eu",
      `R=${shellQuote(root)}`,
      `mount -t tmpfs -o mode=0755 rootfs "$R"`,
    ];
    for (const entry of Deno.readDirSync("/")) {
      if (hidden.has(entry.name)) continue;
      const name = shellQuote(entry.name);
      if (entry.isSymlink) lines.push(`ln -s "$(readlink /${entry.name})" "$R"/${name}`);
      else if (entry.isDirectory) {
        lines.push(`mkdir "$R"/${name}`, `mount --rbind /${name} "$R"/${name}`);
      }
    }
    for (const d of ["proc", "sys", "dev"]) {
      lines.push(`mkdir "$R/${d}"`, `mount --rbind /${d} "$R/${d}"`);
    }
    lines.push(`mkdir -m 1777 "$R/tmp"`, `mkdir -m 0755 "$R/run"`);
    for (const m of mounts) {
      const target = `"$R"${shellQuote(m.target)}`;
      lines.push(`mkdir -p ${target}`, `mount --bind ${shellQuote(m.source)} ${target}`);
      if (m.readOnly) lines.push(`mount -o remount,bind,ro ${target}`);
    }
    // This checkout and the Deno binary the forge-manager container runs, at their own paths,
    // wherever they are: under /tmp or /run the container's own folders would hide them.
    for (const [path, kind] of [[REPO, "dir"], [Deno.execPath(), "file"]] as const) {
      if (!hidden.has(path.split("/")[1]!)) continue;
      if (kind === "file" && path.startsWith(`${REPO}/`)) continue; // inside the checkout's bind
      const target = `"$R"${shellQuote(path)}`;
      if (kind === "dir") lines.push(`mkdir -p ${target}`);
      else lines.push(`mkdir -p "$(dirname ${target})"`, `touch ${target}`);
      lines.push(`mount --bind ${shellQuote(path)} ${target}`);
      lines.push(`mount -o remount,bind,ro ${target}`);
    }
    // The Deno binary on PATH, as the denoland/deno image has it.
    lines.push(`mkdir -p "$R/deno-image/bin"`, `touch "$R/deno-image/bin/deno"`);
    lines.push(`mount --bind ${shellQuote(Deno.execPath())} "$R/deno-image/bin/deno"`);
    lines.push(
      `cd "$R"`,
      `exec chroot "$R" /bin/sh -c 'cd / && exec "$@"' sh ${
        this.#command(c).map(shellQuote).join(" ")
      }`,
    );
    return lines.join("\n");
  }

  async #runContainer(state: PodState, c: ContainerState): Promise<void> {
    if (state.terminating || this.#stop.signal.aborted) return;
    let script: string;
    let env: Record<string, string>;
    try {
      script = await this.#containerScript(state, c.spec);
      env = this.#env(state, c.spec);
    } catch (err) {
      c.waitingReason = "CreateContainerError";
      this.#event(state, "error", `container ${c.spec.name}: ${describe(err)}`);
      this.#writeStatus(state);
      return;
    }
    const log = await Deno.open(state.log(c.spec.name), {
      append: true,
      create: true,
      write: true,
    });
    const err = await Deno.open(`${state.dir}/${c.spec.name}.stderr.log`, {
      append: true,
      create: true,
      write: true,
    });
    const proc = new Deno.Command("/usr/bin/nsenter", {
      args: [
        `--target=${state.pausePid}`,
        "--pid",
        "--mount",
        "--",
        "/usr/bin/unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        script,
      ],
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Chunk by chunk, unbuffered: the tests read the logs while the containers run.
    const pipe = async (stream: ReadableStream<Uint8Array>, file: Deno.FsFile) => {
      try {
        for await (const chunk of stream) {
          for (let at = 0; at < chunk.length;) at += file.writeSync(chunk.subarray(at));
        }
      } catch {
        // the process ended
      } finally {
        file.close();
      }
    };
    const piped = Promise.all([pipe(proc.stdout, log), pipe(proc.stderr, err)]);
    c.generation++;
    c.proc = proc;
    c.exited = proc.status.then(async (status) => {
      await piped;
      return status;
    });
    c.running = true;
    c.stopping = false;
    c.started = false;
    c.ready = false;
    c.startedAt = new Date();
    c.id = containerId();
    c.terminated = undefined;
    c.waitingReason = undefined;
    this.#event(state, "container_started", c.spec.name);
    this.#writeStatus(state);
    const generation = c.generation;
    void this.#probe(state, c, generation);
    void c.exited.then((status) => this.#exited(state, c, generation, status));
  }

  #containerPid(c: ContainerState): number | undefined {
    return c.proc === undefined || !c.running ? undefined : children(c.proc.pid)[0];
  }

  async #exited(
    state: PodState,
    c: ContainerState,
    generation: number,
    status: Deno.CommandStatus,
  ) {
    if (generation !== c.generation) return;
    c.running = false;
    c.ready = false;
    const code = status.signal === null ? status.code : 128 + signalNumber(status.signal);
    c.terminated = {
      exitCode: code,
      reason: code === 0 ? "Completed" : "Error",
      startedAt: c.startedAt,
      finishedAt: new Date(),
      containerID: c.id,
      ...(status.signal === null ? {} : { signal: signalNumber(status.signal) }),
    };
    this.#event(state, "container_exited", `${c.spec.name} code ${code}`);
    this.#writeStatus(state);
    if (
      c.stopping || state.terminating || this.#stop.signal.aborted ||
      !c.init && state.spec.restartPolicy === "Never"
    ) return;
    if (c.init && !c.sidecar) return;
    // restartPolicy Always: the kubelet's back-off, then the container again.
    const backoff = Math.min(BACKOFF_MS * 2 ** c.restartCount, BACKOFF_MAX_MS);
    c.lastTerminated = c.terminated;
    c.waitingReason = "CrashLoopBackOff";
    this.#writeStatus(state);
    await sleep(backoff);
    if (generation !== c.generation || state.terminating || this.#stop.signal.aborted) return;
    c.restartCount++;
    await this.#runContainer(state, c);
  }

  async #httpProbe(state: PodState, probe: k8s.V1Probe): Promise<boolean> {
    const get = probe.httpGet!;
    const containerPort = typeof get.port === "number"
      ? get.port
      : Number.isNaN(Number(get.port))
      ? state.namedPorts.get(get.port)
      : Number(get.port);
    const port = containerPort === undefined ? undefined : state.ports.get(containerPort);
    if (port === undefined) return false;
    try {
      const res = await fetch(`http://127.0.0.1:${port}${get.path ?? "/"}`, {
        signal: AbortSignal.timeout((probe.timeoutSeconds ?? 1) * 1000),
      });
      await res.body?.cancel();
      return res.status >= 200 && res.status < 400;
    } catch {
      return false;
    }
  }

  /** Startup, then readiness and liveness probes, as the kubelet's prober runs them. */
  async #probe(state: PodState, c: ContainerState, generation: number): Promise<void> {
    const live = () => generation === c.generation && c.running && !this.#stop.signal.aborted;
    const startup = c.spec.startupProbe;
    if (startup !== undefined) {
      await sleep((startup.initialDelaySeconds ?? 0) * 1000);
      let failures = 0;
      while (live() && !c.started) {
        if (await this.#httpProbe(state, startup)) c.started = true;
        else if (++failures >= (startup.failureThreshold ?? 3)) {
          this.#event(state, "startup_probe_failed", c.spec.name);
          void this.#restartContainer(state, c);
          return;
        } else await sleep((startup.periodSeconds ?? 10) * 1000);
      }
    } else c.started = true;
    if (!live()) return;
    this.#event(state, "container_started_probe_ok", c.spec.name);
    if (c.spec.readinessProbe === undefined) c.ready = true;
    this.#writeStatus(state);
    const loop = async (probe: k8s.V1Probe, onResult: (ok: boolean) => boolean) => {
      await sleep((probe.initialDelaySeconds ?? 0) * 1000);
      let failures = 0;
      let successes = 0;
      while (live()) {
        const ok = await this.#httpProbe(state, probe);
        if (!live()) return;
        if (ok) {
          failures = 0;
          if (++successes >= (probe.successThreshold ?? 1) && onResult(true)) return;
        } else {
          successes = 0;
          if (++failures >= (probe.failureThreshold ?? 3) && onResult(false)) return;
        }
        await sleep((probe.periodSeconds ?? 10) * 1000);
      }
    };
    const readiness = c.spec.readinessProbe;
    if (readiness !== undefined) {
      void loop(readiness, (ok) => {
        if (c.ready !== ok) {
          c.ready = ok;
          this.#event(state, ok ? "ready" : "not_ready", c.spec.name);
          this.#writeStatus(state);
        }
        return false;
      });
    }
    const liveness = c.spec.livenessProbe;
    if (liveness !== undefined) {
      void loop(liveness, (ok) => {
        if (ok) return false;
        this.#event(state, "liveness_probe_failed", c.spec.name);
        void this.#restartContainer(state, c);
        return true;
      });
    }
  }

  /** Stops one container (SIGTERM, grace, SIGKILL) and starts it again. */
  async #restartContainer(state: PodState, c: ContainerState): Promise<void> {
    if (state.terminating) return;
    await this.#stopContainer(state, c, state.spec.terminationGracePeriodSeconds ?? 30);
    if (state.terminating || this.#stop.signal.aborted) return;
    c.lastTerminated = c.terminated;
    c.restartCount++;
    await this.#runContainer(state, c);
  }

  /** SIGTERM, then SIGKILL after `graceSeconds`; resolves once the container exited. */
  async #stopContainer(
    state: PodState,
    c: ContainerState,
    graceSeconds: number,
    deadline?: number,
  ) {
    if (!c.running || c.exited === undefined) return;
    c.stopping = true;
    const until = deadline ?? performance.now() + graceSeconds * 1000;
    signal(this.#containerPid(c), "SIGTERM");
    this.#event(state, "sigterm", c.spec.name);
    const timeout = Math.max(0, until - performance.now());
    const killed = await Promise.race([
      c.exited.then(() => false),
      sleep(timeout).then(() => true),
    ]);
    if (killed) await this.#kill(state, c);
  }

  async #kill(state: PodState, c: ContainerState): Promise<void> {
    if (!c.running || c.exited === undefined) return;
    c.stopping = true;
    signal(this.#containerPid(c), "SIGKILL");
    signal(c.proc?.pid, "SIGKILL");
    await c.exited;
    this.#event(state, "sigkill", c.spec.name);
    if (c.spec.name === "cardano-node") await appendKilled(state.log(c.spec.name));
  }

  /**
   * The kubelet's termination: main containers first, then the sidecars in reverse order, all
   * within `graceSeconds`; SIGKILL after it; then (if `confirm`) the object deleted.
   */
  async #terminate(state: PodState, graceSeconds: number, confirm: boolean): Promise<void> {
    const deadline = performance.now() + graceSeconds * 1000;
    const mains = state.containers.filter((c) => !c.init);
    await Promise.all(mains.map((c) => this.#stopContainer(state, c, graceSeconds, deadline)));
    for (const c of state.containers.filter((c) => c.sidecar).reverse()) {
      await this.#stopContainer(state, c, graceSeconds, deadline);
    }
    await this.#killAll(state);
    this.#event(state, "terminated");
    this.#writeStatus(state);
    await state.statusQueue;
    if (confirm) await this.#confirmDeletion(state);
  }

  async #killAll(state: PodState): Promise<void> {
    await Promise.all(state.containers.map((c) => this.#kill(state, c)));
    if (state.pause !== undefined) {
      signal(state.pause.pid, "SIGKILL");
      await state.pause.status;
    }
    state.gone = true;
    state.stoppedResolve();
  }

  async #confirmDeletion(state: Pick<PodState, "namespace" | "name" | "uid" | "node">) {
    while (!this.#stop.signal.aborted) {
      if (!this.#nodes.get(state.node)?.reporting) {
        await sleep(200);
        continue;
      }
      try {
        await this.#core.deleteNamespacedPod({
          name: state.name,
          namespace: state.namespace,
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: { uid: state.uid } },
        });
        break;
      } catch (err) {
        if (isStatus(err, 404) || isStatus(err, 409)) break; // gone, or replaced already
        this.#event(state, "error", `delete: ${describe(err)}`);
        await sleep(200);
      }
    }
    this.#event(state, "deleted");
  }

  // ---- status ----

  #containerStatus(c: ContainerState): k8s.V1ContainerStatus {
    const state: k8s.V1ContainerState = c.running
      ? { running: { startedAt: c.startedAt } }
      : c.waitingReason !== undefined || c.terminated === undefined
      ? { waiting: { reason: c.waitingReason ?? "PodInitializing" } }
      : { terminated: c.terminated };
    return {
      name: c.spec.name,
      image: c.spec.image ?? "",
      imageID: "",
      ...(c.id === undefined ? {} : { containerID: c.id }),
      ready: c.ready,
      started: c.running && c.started,
      restartCount: c.restartCount,
      state,
      ...(c.lastTerminated === undefined ? {} : { lastState: { terminated: c.lastTerminated } }),
    };
  }

  #status(state: PodState): k8s.V1PodStatus {
    const now = new Date();
    const condition = (type: string, ok: boolean) => ({
      type,
      status: ok ? "True" : "False",
      lastTransitionTime: now,
    });
    const mains = state.containers.filter((c) => !c.init);
    const sidecars = state.containers.filter((c) => c.sidecar);
    const containersReady = mains.every((c) => c.ready);
    const ready = containersReady && sidecars.every((c) => c.ready) && !state.gone;
    const anyRunning = state.containers.some((c) => c.running);
    return {
      phase: state.failed !== undefined && !anyRunning
        ? "Failed"
        : state.initialized
        ? "Running"
        : "Pending",
      ...(state.failed === undefined ? {} : { message: state.failed }),
      hostIP: "127.0.0.1",
      hostIPs: [{ ip: "127.0.0.1" }],
      podIP: state.podIP,
      podIPs: [{ ip: state.podIP }],
      startTime: state.startTime,
      conditions: [
        condition("PodReadyToStartContainers", state.pausePid !== undefined && !state.gone),
        condition("Initialized", state.initialized),
        condition("ContainersReady", containersReady),
        condition("Ready", ready),
        condition("PodScheduled", true),
      ],
      initContainerStatuses: state.containers.filter((c) => c.init).map((c) =>
        this.#containerStatus(c)
      ),
      containerStatuses: mains.map((c) => this.#containerStatus(c)),
    };
  }

  /** Queues a status write (merge patch of the whole status, in order, best effort). */
  #writeStatus(state: PodState): void {
    state.statusQueue = state.statusQueue.then(async () => {
      if (!this.#nodes.get(state.node)?.reporting || this.#stop.signal.aborted) return;
      try {
        await this.#core.patchNamespacedPodStatus({
          name: state.name,
          namespace: state.namespace,
          body: { metadata: { uid: state.uid }, status: this.#status(state) },
        }, MERGE);
      } catch (err) {
        if (!isStatus(err, 404) && !isStatus(err, 409)) {
          this.#event(state, "error", `status: ${describe(err)}`);
        }
      }
    });
  }
}

function podKey(pod: k8s.V1Pod, node: string) {
  return { namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, node };
}

function signalNumber(name: string): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[name] ?? 0;
}

/** A Kubernetes quantity (16Mi, 64M, 1Gi) in bytes. */
export function toBytes(quantity: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|K|M|G|k)?$/.exec(quantity);
  if (m === null) {
    throw new Error(`Cannot read quantity ${quantity}: expected digits and Ki/Mi/Gi/K/M/G`);
  }
  const unit =
    { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, k: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ""] ?? 1;
  return Number(m[1]) * unit;
}
