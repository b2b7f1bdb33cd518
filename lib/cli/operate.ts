/**
 * `forge-manager status | handover | prefer | pause | resume`, run in the command worker (see
 * lib/core/cli/operate_args.ts for the command lines). Every write is a replace of the
 * CardanoLeader conditional on the resourceVersion read, so two operators cannot race silently;
 * every action also creates an Event naming who did what and why. `by` is the user the
 * kubeconfig authenticates as (SelfSubjectReview), or the kubeconfig's user name when that is
 * refused.
 *
 * Needs the forge-manager-operator Role; read of the kubeconfig and its files, net to its API
 * server.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import {
  CARDANO_LEADER,
  type CardanoLeaderSpec,
  type HandoverStatus,
  type ReplicaEntry,
} from "../kube/cardano_leader.ts";
import { loadKubeConfig, statusOf } from "../kube/kube_client.ts";
import { HANDOVER_TO_ANNOTATION, RELEASED_BY_ANNOTATION } from "../kube/lease_store.ts";
import { errorText } from "../base/log.ts";
import { type CommandIo, EXIT_FAILED, EXIT_OK } from "../core/cli/command.ts";
import type { KubeTarget, OperateOptions } from "../core/cli/operate_args.ts";
import {
  formatAge,
  isClusterEntry,
  pauseInForce,
  planHandover,
  planPrefer,
  renderStatus,
  type StatusInputs,
  statusModel,
} from "./status_view.ts";
import { sleep, systemClock } from "../base/clock.ts";

/** How much longer than --timeout a handover waits while its leader waits for a slot. */
const SLOT_WAIT_GRACE_MS = 60_000;

/** A refusal or failure the command reports as its reason (exit 1). */
class Refused extends Error {}

interface CardanoLeaderObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec?: CardanoLeaderSpec;
  status?: { replicas?: Record<string, ReplicaEntry>; handover?: HandoverStatus };
}

/** Prints a command's result as --output asks: the JSON object, or the text. */
function reporter(io: CommandIo, output: string | undefined) {
  return (result: Record<string, unknown>, text: string) =>
    io.out(output === "json" ? JSON.stringify(result) : text);
}

/** A refused request: says why, and that nothing was changed. */
function refused(report: ReturnType<typeof reporter>, reason: string): number {
  report({ result: "refused", reason }, `Refused: ${reason}. Nothing was changed.`);
  return EXIT_FAILED;
}

/** The deployment as the operator's kubeconfig reaches it. */
class Deployment {
  readonly kc: k8s.KubeConfig;
  readonly namespace: string;
  readonly #t: KubeTarget;
  readonly #objects: k8s.CustomObjectsApi;
  readonly #core: k8s.CoreV1Api;
  readonly #coord: k8s.CoordinationV1Api;

  constructor(t: KubeTarget) {
    this.#t = t;
    const kc = loadKubeConfig(t.kubeconfig, {
      ...(t.context !== undefined ? { context: t.context } : {}),
      transport: t.transport,
    });
    kc.checkTransport();
    this.kc = kc;
    this.namespace = t.namespace ?? this.kc.getContextObject(this.kc.currentContext)?.namespace ??
      "default";
    this.#objects = this.kc.makeApiClient(k8s.CustomObjectsApi);
    this.#core = this.kc.makeApiClient(k8s.CoreV1Api);
    this.#coord = this.kc.makeApiClient(k8s.CoordinationV1Api);
  }

  #ref() {
    return { ...CARDANO_LEADER, namespace: this.namespace, name: this.#t.cardanoLeader };
  }

  async cardanoLeader(): Promise<CardanoLeaderObject> {
    try {
      return await this.#objects.getNamespacedCustomObject(this.#ref()) as CardanoLeaderObject;
    } catch (err) {
      throw new Refused(
        `Cannot read CardanoLeader ${this.namespace}/${this.#t.cardanoLeader}: ${describe(err)}`,
      );
    }
  }

  /**
   * Replaces the spec, conditional on the version read. The sidecars patch the status all along,
   * which moves the resourceVersion too: on a conflict the object is read again and the replace
   * retried only if its spec is still the one `obj` had; a spec changed meanwhile (another
   * operator) refuses, with nothing written.
   */
  async replaceSpec(obj: CardanoLeaderObject, spec: CardanoLeaderSpec): Promise<void> {
    const name = `CardanoLeader ${this.namespace}/${this.#t.cardanoLeader}`;
    const expected = JSON.stringify(obj.spec ?? {});
    let current = obj;
    for (let attempt = 0; attempt < 10; attempt++) {
      const { status: _status, ...rest } = current;
      try {
        await this.#objects.replaceNamespacedCustomObject({
          ...this.#ref(),
          body: { ...rest, spec },
        });
        return;
      } catch (err) {
        if (statusOf(err) !== 409) throw new Refused(`Cannot write ${name}: ${describe(err)}`);
      }
      current = await this.cardanoLeader();
      if (JSON.stringify(current.spec ?? {}) !== expected) {
        throw new Refused(
          `Cannot write ${name}: its spec changed since it was read (another operator?); nothing was changed, run the command again`,
        );
      }
    }
    throw new Refused(`Cannot write ${name}: it kept changing (10 conflicts); nothing was changed`);
  }

  async lease(): Promise<StatusInputs["lease"]> {
    try {
      const lease = await this.#coord.readNamespacedLease({
        name: this.#t.lease,
        namespace: this.namespace,
      });
      const a = lease.metadata?.annotations ?? {};
      const holder = lease.spec?.holderIdentity ?? "";
      const time = (t: Date | string | undefined) =>
        t === undefined ? undefined : new Date(t).toISOString();
      const acquireTime = time(lease.spec?.acquireTime as Date | undefined);
      const renewTime = time(lease.spec?.renewTime as Date | undefined);
      return {
        holder,
        ...(acquireTime !== undefined ? { acquireTime } : {}),
        ...(renewTime !== undefined ? { renewTime } : {}),
        transitions: lease.spec?.leaseTransitions ?? 0,
        ...(holder === "" && a[RELEASED_BY_ANNOTATION]
          ? { releasedBy: a[RELEASED_BY_ANNOTATION] }
          : {}),
        ...(holder === "" && a[HANDOVER_TO_ANNOTATION]
          ? { handoverTo: a[HANDOVER_TO_ANNOTATION] }
          : {}),
      };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw new Refused(`Cannot read Lease ${this.namespace}/${this.#t.lease}: ${describe(err)}`);
    }
  }

  async podReady(name: string): Promise<{ ready: boolean } | undefined> {
    try {
      const pod = await this.#core.readNamespacedPod({ name, namespace: this.namespace });
      if (pod.metadata?.deletionTimestamp !== undefined) return { ready: false };
      const ready = pod.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
      return { ready };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw new Refused(`Cannot read Pod ${this.namespace}/${name}: ${describe(err)}`);
    }
  }

  /** Everything `status` shows; `extra` pods are looked up too (a command's target). */
  async inputs(extra: string[] = []): Promise<{ inputs: StatusInputs; obj: CardanoLeaderObject }> {
    const [obj, lease] = await Promise.all([this.cardanoLeader(), this.lease()]);
    const replicas = obj.status?.replicas ?? {};
    const names = new Set([...Object.keys(replicas), ...extra]);
    const holder = lease?.holder ?? "";
    if (holder !== "") names.add(holder.slice(0, Math.max(0, holder.lastIndexOf("_"))) || holder);
    const pods: StatusInputs["pods"] = {};
    await Promise.all([...names].map(async (n) => {
      // On the coordination cluster an entry is a cluster's: there is no Pod to read, its own
      // entry says whether its candidate is ready.
      const entry = replicas[n];
      pods[n] = entry !== undefined && isClusterEntry(entry)
        ? { ready: entry.ready === true }
        : await this.podReady(n);
    }));
    return {
      obj,
      inputs: {
        namespace: this.namespace,
        leaseName: this.#t.lease,
        ...(lease !== undefined ? { lease } : {}),
        spec: obj.spec ?? {},
        replicas,
        ...(obj.status?.handover !== undefined ? { lastHandover: obj.status.handover } : {}),
        pods,
      },
    };
  }

  /** Who the kubeconfig authenticates as. */
  async whoAmI(): Promise<string> {
    try {
      const review = await this.kc.makeApiClient(k8s.AuthenticationV1Api).createSelfSubjectReview({
        body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
      });
      const name = review.status?.userInfo?.username;
      if (name !== undefined && name !== "") return name;
    } catch {
      // Refused or not served: fall back to the kubeconfig's user name.
    }
    return this.kc.getCurrentUser()?.name ?? "unknown";
  }

  async event(reason: string, message: string, by: string): Promise<void> {
    const now = new Date();
    try {
      await this.#core.createNamespacedEvent({
        namespace: this.namespace,
        body: {
          metadata: { generateName: `${this.#t.cardanoLeader}.`, namespace: this.namespace },
          involvedObject: {
            apiVersion: `${CARDANO_LEADER.group}/${CARDANO_LEADER.version}`,
            kind: "CardanoLeader",
            name: this.#t.cardanoLeader,
            namespace: this.namespace,
          },
          type: "Normal",
          reason,
          message,
          count: 1,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: "forge-manager-cli" },
          reportingComponent: "forge-manager-cli",
          reportingInstance: by.slice(0, 128),
        },
      });
    } catch {
      // The request itself is recorded in the spec (with who and when); the Event is a courtesy.
    }
  }
}

function optionalNote(note: string | undefined): { note?: string } {
  return note === undefined ? {} : { note };
}

function describe(err: unknown): string {
  const code = statusOf(err);
  if (code === 403) {
    return "forbidden (does the kubeconfig's user have the forge-manager-operator Role?)";
  }
  if (code === 404) return "not found (wrong namespace or name?)";
  return code !== undefined ? `HTTP ${code}` : errorText(err);
}

async function status(
  o: Extract<OperateOptions, { command: "status" }>,
  d: Deployment,
  io: CommandIo,
): Promise<number> {
  for (;;) {
    const { inputs } = await d.inputs();
    const now = Date.now();
    const model = statusModel(inputs, now);
    io.out(o.output === "json" ? JSON.stringify(model) : renderStatus(model, now));
    if (!o.watch) return EXIT_OK;
    await sleep(systemClock, 2000);
    if (o.output === "text") io.out("");
  }
}

async function handover(
  o: Extract<OperateOptions, { command: "handover" }>,
  d: Deployment,
  io: CommandIo,
): Promise<number> {
  const { inputs, obj } = await d.inputs();
  const plan = planHandover(statusModel(inputs, Date.now()), o.to);
  const report = reporter(io, o.output);
  if (!plan.ok) return refused(report, plan.reason);
  const note = plan.note === undefined ? "" : ` Note: ${plan.note}.`;
  if (o.dryRun) {
    report(
      { result: "dry_run", from: plan.from, to: plan.to, ...optionalNote(plan.note) },
      `Dry run: would hand over from ${plan.from} to ${plan.to}. Nothing was changed.${note}`,
    );
    return EXIT_OK;
  }
  const by = await d.whoAmI();
  const id = crypto.randomUUID().slice(0, 8);
  const started = Date.now();
  await d.replaceSpec(obj, {
    ...obj.spec,
    handover: { id, to: plan.to, by, at: new Date(started).toISOString() },
  });
  await d.event(
    "HandoverRequested",
    `${by} asked ${plan.from} to hand over to ${plan.to} (request ${id})`,
    by,
  );
  let saidWaiting = false;
  for (;;) {
    const { inputs: now } = await d.inputs();
    const holder = now.lease?.holder ?? "";
    const target = now.replicas[plan.to];
    const elapsedMs = Date.now() - started;
    if (holder.startsWith(`${plan.to}_`) && target?.forging === true) {
      report(
        { result: "done", id, from: plan.from, to: plan.to, elapsedMs },
        `Handed over from ${plan.from} to ${plan.to} in ${formatAge(elapsedMs)} (request ${id}).`,
      );
      return EXIT_OK;
    }
    // The leader writes released, then the target done once it holds the Lease and forges.
    const result = now.lastHandover?.id === id ? now.lastHandover.result : undefined;
    if (result !== undefined && result !== "released" && result !== "done") {
      report(
        { result: "failed", id, from: plan.from, to: plan.to, leader: result },
        `Failed: the leader answered ${result} to request ${id}.`,
      );
      return EXIT_FAILED;
    }
    // A leader that waits for one of the pool's slots to pass hands over after it (at most
    // 60 s): the command waits too, and says so once (no slot: the schedule is sensitive).
    const waiting = now.replicas[plan.from]?.reason === "slot_wait_handover";
    if (waiting && !saidWaiting && o.output === "text") {
      io.out(`${plan.from} waits for one of the pool's leader slots to pass before it hands over.`);
    }
    saidWaiting ||= waiting;
    if (elapsedMs > o.timeoutMs && !(waiting && elapsedMs < o.timeoutMs + SLOT_WAIT_GRACE_MS)) {
      const seen = holder === "" ? "the Lease has no holder" : `the Lease is held by ${holder}`;
      report(
        { result: "timeout", id, from: plan.from, to: plan.to, holder },
        `Timed out after ${formatAge(o.timeoutMs)}: ${seen}, ${plan.to} ${
          target?.forging ? "forges" : "does not forge"
        } (request ${id}; the sidecars go on with it).`,
      );
      return EXIT_FAILED;
    }
    await sleep(systemClock, 200);
  }
}

async function prefer(
  o: Extract<OperateOptions, { command: "prefer" }>,
  d: Deployment,
  io: CommandIo,
): Promise<number> {
  const { inputs, obj } = await d.inputs(o.pod !== undefined ? [o.pod] : []);
  const plan = planPrefer(statusModel(inputs, Date.now()), o.pod);
  const report = reporter(io, o.output);
  if (!plan.ok) return refused(report, plan.reason);
  const was = plan.was === "" ? "none" : plan.was;
  const what = plan.pod === "" ? `no preferred replica` : `${plan.pod} as the preferred replica`;
  if (o.dryRun) {
    report(
      { result: "dry_run", preferred: plan.pod, was: plan.was, now: plan.now },
      `Dry run: would set ${what} (was: ${was}); ${plan.now}. Nothing was changed.`,
    );
    return EXIT_OK;
  }
  const by = await d.whoAmI();
  const { preferredReplica: _old, ...spec } = obj.spec ?? {};
  await d.replaceSpec(obj, plan.pod === "" ? spec : { ...spec, preferredReplica: plan.pod });
  await d.event(
    "PreferRequested",
    plan.pod === ""
      ? `${by} cleared the preferred replica (was ${was})`
      : `${by} prefers ${plan.pod} (was ${was})`,
    by,
  );
  report(
    { result: "done", preferred: plan.pod, was: plan.was, now: plan.now },
    `Set ${what} (was: ${was}); ${plan.now}.`,
  );
  return EXIT_OK;
}

async function pause(
  o: Extract<OperateOptions, { command: "pause" }>,
  d: Deployment,
  io: CommandIo,
): Promise<number> {
  const obj = await d.cardanoLeader();
  const spec = obj.spec ?? {};
  const now = Date.now();
  if (spec.pause !== undefined && pauseInForce(spec, now)) {
    throw new Refused(
      `already paused by ${spec.pause.by} at ${spec.pause.at}: ${spec.pause.reason} (resume first)`,
    );
  }
  const by = await d.whoAmI();
  const until = o.forMs !== undefined ? new Date(now + o.forMs).toISOString() : undefined;
  await d.replaceSpec(obj, {
    ...spec,
    pause: {
      reason: o.reason,
      by,
      at: new Date(now).toISOString(),
      ...(until !== undefined ? { until } : {}),
    },
  });
  await d.event(
    "PauseRequested",
    `${by} paused forging${until !== undefined ? ` until ${until}` : ""}: ${o.reason}`,
    by,
  );
  for (;;) {
    const { inputs } = await d.inputs();
    const model = statusModel(inputs, Date.now());
    const forging = model.replicas.filter((r) => r.fresh && r.forging).map((r) => r.pod);
    if (forging.length === 0) {
      io.out(
        `Paused by ${by}${
          until !== undefined ? ` until ${until}` : " until resumed"
        }: ${o.reason}. No replica forges.`,
      );
      return EXIT_OK;
    }
    if (Date.now() - now > o.timeoutMs) {
      io.out(
        `Paused, but ${forging.join(", ")} still report${
          forging.length === 1 ? "s" : ""
        } forging after ${formatAge(o.timeoutMs)}.`,
      );
      return EXIT_FAILED;
    }
    await sleep(systemClock, 200);
  }
}

async function resume(d: Deployment, io: CommandIo): Promise<number> {
  const obj = await d.cardanoLeader();
  const { pause: current, ...rest } = obj.spec ?? {};
  if (current === undefined) throw new Refused("not paused");
  const by = await d.whoAmI();
  await d.replaceSpec(obj, rest);
  await d.event(
    "ResumeRequested",
    `${by} resumed forging (paused by ${current.by}: ${current.reason})`,
    by,
  );
  io.out(`Resumed (the pause by ${current.by} was: ${current.reason}).`);
  return EXIT_OK;
}

/** Runs one operator command. */
export async function run(o: OperateOptions, io: CommandIo): Promise<number> {
  try {
    const d = new Deployment(o.target);
    switch (o.command) {
      case "status":
        return await status(o, d, io);
      case "handover":
        return await handover(o, d, io);
      case "prefer":
        return await prefer(o, d, io);
      case "pause":
        return await pause(o, d, io);
      case "resume":
        return await resume(d, io);
    }
  } catch (err) {
    io.err(`forge-manager ${o.command}: ${err instanceof Refused ? err.message : errorText(err)}`);
    return EXIT_FAILED;
  }
}
