/**
 * A simulated kubelet, so that forge-manager's fence (lib/kube/fence.ts) talks to the real API server
 * exactly as in a cluster. The local control plane has no kubelet and no controllers; this plays
 * the kubelet's part for the simulated pods of tests/support/pod.ts:
 *
 * - {@linkcode SimKubelet.createPod} creates a Pod object bound to a fake node (`spec.nodeName`,
 *   so deletion is graceful: the API server only sets `deletionTimestamp` and waits for the
 *   kubelet), shaped like the shipped StatefulSet's pods: forge-manager as a native sidecar
 *   (an init container with `restartPolicy: Always`), cardano-node as the main container.
 *   The test then starts the processes with `POD_UID` set to the object's UID.
 * - {@linkcode SimKubelet.running} ties the processes to the object and writes a realistic status:
 *   phase Running, conditions, IPs, and a status per container (running, started, ready).
 * - When it sees `deletionTimestamp` on one of its pods (watch, plus a resync every second), it
 *   stops the pod's processes as {@linkcode SimKubelet.termination} says, reports the containers
 *   terminated, and deletes the object with `gracePeriodSeconds: 0` and a UID precondition, as the
 *   kubelet's status manager does. `kill`: SIGKILL of everything at once (a node that loses
 *   power); `graceful`: the harness's planned `terminate()`; `ordered`: the real kubelet's order
 *   for a pod with a native sidecar: SIGTERM to the main container (the node), its exit reported
 *   in the Pod status at once (`state.terminated`, `finishedAt`), then SIGTERM to the sidecar, and
 *   SIGKILL of whatever still runs when the pod's grace period (`deletionGracePeriodSeconds`) ends.
 * - {@linkcode SimKubelet.partition} cuts one pod's node off: its kubelet never sees the deletion,
 *   so the pod runs on and the object stays (Terminating) until {@linkcode SimKubelet.heal}.
 *
 * It uses the admin identity. Needs net to the API server.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import type { Pod } from "./pod.ts";
import { sleep } from "./wait.ts";

/** How the kubelet stops a pod whose object is being deleted (see the module doc). */
export type Termination = "kill" | "graceful" | "ordered";

/** A line of the kubelet's own log, for a test's report. */
export interface KubeletEvent {
  /** Milliseconds since the epoch (the forging records' clock). */
  t: number;
  pod: string;
  uid: string;
  what:
    | "created"
    | "running"
    | "deletion_seen"
    | "node_exited"
    | "sidecar_exited"
    | "killed"
    | "deleted"
    | "error";
  detail?: string;
}

interface Entry {
  name: string;
  uid: string;
  nodeName: string;
  harness?: Pod;
  attached: PromiseWithResolvers<Pod>;
  gone: PromiseWithResolvers<void>;
  terminating: boolean;
  deleted: boolean;
  /** The container statuses last reported while running, by container name. */
  running: Map<string, k8s.V1ContainerStatus>;
}

const nowMs = () => performance.timeOrigin + performance.now();

/** A random container ID as containerd prints it. */
export function containerId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return `containerd://${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Whether `err` is an API answer with HTTP status `code`. */
export function isStatus(err: unknown, code: number): boolean {
  return err instanceof k8s.ApiException && err.code === code;
}

/** The simulated kubelet of every fake node of one namespace. */
export class SimKubelet implements AsyncDisposable {
  readonly namespace: string;
  /** How pods are stopped on deletion (default `kill`: SIGKILL, like a node that loses power). */
  termination: Termination;
  /** `terminationGracePeriodSeconds` of the pods it creates (default 120, the shipped value). */
  terminationGracePeriodSeconds = 120;
  readonly events: KubeletEvent[] = [];
  readonly #core: k8s.CoreV1Api;
  readonly #kc: k8s.KubeConfig;
  readonly #entries = new Map<string, Entry>(); // by uid
  readonly #partitioned = new Set<string>(); // pod names whose node is cut off
  readonly #stop = new AbortController();
  #loops: Promise<void>[] = [];

  constructor(opts: { kc: k8s.KubeConfig; namespace: string; termination?: Termination }) {
    this.#kc = opts.kc;
    this.#core = opts.kc.makeApiClient(k8s.CoreV1Api);
    this.namespace = opts.namespace;
    this.termination = opts.termination ?? "kill";
    this.#loops = [this.#watchLoop(), this.#resyncLoop()];
  }

  #event(entry: Entry, what: KubeletEvent["what"], detail?: string): void {
    this.events.push({
      t: nowMs(),
      pod: entry.name,
      uid: entry.uid,
      what,
      ...(detail !== undefined ? { detail } : {}),
    });
  }

  /**
   * Creates the Pod object (phase Pending) bound to `nodeName` and returns its UID. Start the
   * processes with `POD_UID` set to it, then call {@linkcode running}.
   */
  async createPod(
    name: string,
    opts: { nodeName?: string; labels?: Record<string, string> } = {},
  ): Promise<string> {
    const nodeName = opts.nodeName ?? `sim-node-${name}`;
    const pod = await this.#core.createNamespacedPod({
      namespace: this.namespace,
      body: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name,
          namespace: this.namespace,
          labels: { "app.kubernetes.io/name": "cardano-node", ...opts.labels },
        },
        spec: {
          nodeName,
          shareProcessNamespace: true,
          terminationGracePeriodSeconds: this.terminationGracePeriodSeconds,
          automountServiceAccountToken: false,
          initContainers: [{
            name: "forge-manager",
            image: "forge-manager:test",
            restartPolicy: "Always",
            env: [
              { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
              { name: "POD_UID", valueFrom: { fieldRef: { fieldPath: "metadata.uid" } } },
            ],
          }],
          containers: [{ name: "cardano-node", image: "cardano-node:simulated" }],
        },
      },
    });
    const uid = pod.metadata?.uid;
    if (uid === undefined) throw new Error(`Cannot create pod ${name}: no UID in the answer`);
    const entry: Entry = {
      name,
      uid,
      nodeName,
      attached: Promise.withResolvers<Pod>(),
      gone: Promise.withResolvers<void>(),
      terminating: false,
      deleted: false,
      running: new Map(),
    };
    this.#entries.set(uid, entry);
    this.#event(entry, "created", nodeName);
    return uid;
  }

  /** Ties the running processes to the object `uid` and reports the pod Running and ready. */
  async running(uid: string, harness: Pod): Promise<void> {
    const entry = this.#entry(uid);
    entry.harness = harness;
    entry.attached.resolve(harness);
    this.#event(entry, "running");
    const now = new Date();
    const ready = (name: string) => ({
      name,
      image: name === "forge-manager" ? "forge-manager:test" : "cardano-node:simulated",
      imageID: `sha256:${name === "forge-manager" ? "f".repeat(64) : "c".repeat(64)}`,
      containerID: containerId(),
      ready: true,
      started: true,
      restartCount: 0,
      state: { running: { startedAt: now } },
    });
    const condition = (type: string) => ({ type, status: "True", lastTransitionTime: now });
    entry.running.set("forge-manager", ready("forge-manager"));
    entry.running.set("cardano-node", ready("cardano-node"));
    try {
      await this.#core.patchNamespacedPodStatus(
        {
          name: entry.name,
          namespace: this.namespace,
          body: {
            metadata: { uid },
            status: {
              phase: "Running",
              hostIP: "10.0.0.10",
              podIP: `10.244.0.${(this.#entries.size % 250) + 2}`,
              startTime: now,
              conditions: ["PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"]
                .map(condition)
                .concat([condition("PodScheduled")]),
              initContainerStatuses: [ready("forge-manager")],
              containerStatuses: [ready("cardano-node")],
            },
          },
        },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
    } catch (err) {
      // The object may already be going (a fence can delete a pod that is still starting).
      this.#event(entry, "error", `status update: ${describe(err)}`);
    }
  }

  /** Resolves once the kubelet has killed the pod `uid` and deleted its object. */
  gone(uid: string): Promise<void> {
    return this.#entry(uid).gone.promise;
  }

  /** Whether the kubelet still runs pod `uid` (not yet deleted). */
  alive(uid: string): boolean {
    return !this.#entry(uid).deleted;
  }

  /** Cuts the node of pod `name` off the API server: its deletion is never seen. */
  partition(name: string): void {
    this.#partitioned.add(name);
  }

  /** Reconnects the node of pod `name`; a pending deletion is then carried out. */
  heal(name: string): void {
    this.#partitioned.delete(name);
    void this.#resync().catch(() => {});
  }

  /** The kubelet's log lines for pod `name` (all incarnations). */
  eventsOf(name: string): KubeletEvent[] {
    return this.events.filter((e) => e.pod === name);
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.allSettled(this.#loops);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #entry(uid: string): Entry {
    const entry = this.#entries.get(uid);
    if (entry === undefined) throw new Error(`The kubelet does not run a pod with UID ${uid}`);
    return entry;
  }

  /** Reacts to one observed Pod object. */
  #seen(pod: k8s.V1Pod): void {
    const uid = pod.metadata?.uid;
    const entry = uid === undefined ? undefined : this.#entries.get(uid);
    if (entry === undefined || entry.terminating || entry.deleted) return;
    if (pod.metadata?.deletionTimestamp === undefined) return;
    if (this.#partitioned.has(entry.name)) return;
    entry.terminating = true;
    this.#event(entry, "deletion_seen");
    const graceMs = (pod.metadata?.deletionGracePeriodSeconds ?? 0) * 1000;
    void this.#terminate(entry, graceMs);
  }

  async #terminate(entry: Entry, graceMs: number): Promise<void> {
    const harness = await entry.attached.promise;
    const exits = {
      sidecar: { exitCode: 137, reason: "Error" },
      node: { exitCode: 137, reason: "Error" },
    };
    const finished: { sidecar?: Date; node?: Date } = {};
    if (this.termination === "ordered") {
      const deadline = nowMs() + graceMs;
      if (await this.#within(harness.terminateNode(), deadline)) {
        finished.node = new Date();
        exits.node = { exitCode: 0, reason: "Completed" };
        this.#event(entry, "node_exited");
        await this.#report(entry, { node: { ...exits.node, finishedAt: finished.node } });
        if (await this.#within(harness.terminateSidecar(), deadline)) {
          finished.sidecar = new Date();
          exits.sidecar = { exitCode: 0, reason: "Completed" };
          this.#event(entry, "sidecar_exited");
        }
      }
      if (finished.sidecar === undefined) {
        await harness.kill();
        this.#event(entry, "killed", "grace period over");
      }
    } else {
      if (this.termination === "graceful") {
        await harness.terminate();
        exits.sidecar = exits.node = { exitCode: 0, reason: "Completed" };
      } else await harness.kill();
      this.#event(entry, "killed", this.termination);
    }
    const now = new Date();
    await this.#report(entry, {
      sidecar: { ...exits.sidecar, finishedAt: finished.sidecar ?? now },
      node: { ...exits.node, finishedAt: finished.node ?? now },
    });
    // Confirm the deletion: retried until the API server answers (it may be down for a while).
    while (!this.#stop.signal.aborted) {
      try {
        await this.#core.deleteNamespacedPod({
          name: entry.name,
          namespace: this.namespace,
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: { uid: entry.uid } },
        });
        break;
      } catch (err) {
        if (isStatus(err, 404) || isStatus(err, 409)) break; // gone, or replaced already
        this.#event(entry, "error", `delete: ${describe(err)}`);
        await sleep(200);
      }
    }
    entry.deleted = true;
    this.#event(entry, "deleted");
    entry.gone.resolve();
  }

  /** Whether `work` ends before `deadline` (epoch ms) or the kubelet stops. */
  async #within(work: Promise<void>, deadline: number): Promise<boolean> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), Math.max(0, deadline - nowMs()));
    const stop = () => timeout.abort();
    this.#stop.signal.addEventListener("abort", stop, { once: true });
    const expired = new Promise<boolean>((r) =>
      timeout.signal.addEventListener("abort", () => r(false), { once: true })
    );
    try {
      return await Promise.race([work.then(() => true), expired]);
    } finally {
      clearTimeout(timer);
      this.#stop.signal.removeEventListener("abort", stop);
    }
  }

  /**
   * Reports the containers given as terminated (the others as last reported running), as the
   * kubelet's status manager does. Best effort.
   */
  async #report(
    entry: Entry,
    exited: {
      sidecar?: { exitCode: number; reason: string; finishedAt: Date };
      node?: { exitCode: number; reason: string; finishedAt: Date };
    },
  ): Promise<void> {
    const status = (
      name: string,
      exit: { exitCode: number; reason: string; finishedAt: Date } | undefined,
    ) => {
      const running = entry.running.get(name);
      if (exit === undefined && running !== undefined) return running;
      return {
        name,
        image: name === "forge-manager" ? "forge-manager:test" : "cardano-node:simulated",
        imageID: running?.imageID ?? "",
        ...(running?.containerID !== undefined ? { containerID: running.containerID } : {}),
        ready: false,
        started: false,
        restartCount: running?.restartCount ?? 0,
        state: {
          terminated: {
            ...exit!,
            startedAt: running?.state?.running?.startedAt,
            ...(running?.containerID !== undefined ? { containerID: running.containerID } : {}),
          },
        },
      };
    };
    try {
      await this.#core.patchNamespacedPodStatus(
        {
          name: entry.name,
          namespace: this.namespace,
          body: {
            metadata: { uid: entry.uid },
            status: {
              initContainerStatuses: [status("forge-manager", exited.sidecar)],
              containerStatuses: [status("cardano-node", exited.node)],
            },
          },
        },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
    } catch (err) {
      this.#event(entry, "error", `status update: ${describe(err)}`); // best effort, as the kubelet's
    }
  }

  async #resync(): Promise<void> {
    const list = await this.#core.listNamespacedPod({ namespace: this.namespace });
    for (const pod of list.items) this.#seen(pod);
  }

  async #resyncLoop(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        await this.#resync();
      } catch {
        // API server away: try again
      }
      await sleep(1000);
    }
  }

  #watchLoop(): Promise<void> {
    return watchPods(
      this.#kc,
      `/api/v1/namespaces/${this.namespace}/pods`,
      (pod) => this.#seen(pod),
      this.#stop.signal,
    );
  }
}

/**
 * Watches the Pods at `path` (e.g. `/api/v1/pods`) and calls `onPod` for every added or modified
 * one, re-opening the watch when the API server ends it or goes away, until `stop` aborts. A
 * watch can miss events across a reconnect: pair it with a periodic list.
 */
export async function watchPods(
  kc: k8s.KubeConfig,
  path: string,
  onPod: (pod: k8s.V1Pod) => void,
  stop: AbortSignal,
): Promise<void> {
  const watcher = new k8s.Watch(kc);
  // An aborted watch does not always call `done`: stopping must not wait for it.
  const stopped = new Promise<void>((r) =>
    stop.addEventListener("abort", () => r(), { once: true })
  );
  while (!stop.aborted) {
    const done = Promise.withResolvers<void>();
    try {
      const started = watcher.watch(
        path,
        { allowWatchBookmarks: false },
        (phase: string, obj: k8s.V1Pod) => {
          if (phase === "ADDED" || phase === "MODIFIED") onPod(obj);
        },
        () => done.resolve(),
      );
      const abortOnStop = (abort: AbortController) => {
        if (stop.aborted) abort.abort();
        else stop.addEventListener("abort", () => abort.abort(), { once: true });
      };
      started.then(abortOnStop, () => done.resolve());
      await Promise.race([done.promise, stopped]);
    } catch {
      // API server away
    }
    if (!stop.aborted) await sleep(300);
  }
}

/** A short text for an API or other error, safe to log. */
export function describe(err: unknown): string {
  if (err instanceof k8s.ApiException) return `HTTP ${err.code}`;
  return err instanceof Error ? err.message : String(err);
}
