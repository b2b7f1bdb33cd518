/**
 * The Lease as the election sees it: read, conditional claim (replace carrying the
 * resourceVersion read, or create), release, and a watch. A lost race comes back as
 * {@linkcode LeaseConflict}. There is no unconditional write anywhere.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { requestOptions, statusOf, watchOne } from "./kube_client.ts";

/** Annotation set by our end-of-term handover: who released, after it stopped forging. */
export const RELEASED_BY_ANNOTATION = "forge-manager.cardano.io/released-by";
/** Annotation naming the earlier holder whose node the holder has not yet proven stopped. */
export const FENCE_PENDING_ANNOTATION = "forge-manager.cardano.io/fence-pending";
/** Annotation on a clean release made on probation: the milliseconds of it left (election.ts). */
export const RELEASE_WAIT_ANNOTATION = "forge-manager.cardano.io/release-wait-ms";
/** Annotation set by a planned handover's release: the only pod that may take it at once. */
export const HANDOVER_TO_ANNOTATION = "forge-manager.cardano.io/handover-to";
/** Annotation naming the holder's pod UID, so the fence can tell a recreated pod. */
export const HOLDER_POD_UID_ANNOTATION = "forge-manager.cardano.io/holder-pod-uid";
/**
 * Annotation of a holder that forges only with its guard armed: its bound in milliseconds
 * (RENEW_DEADLINE + GUARD_REACTION), within which its node has stopped after its last renew.
 */
export const GUARD_BOUND_ANNOTATION = "forge-manager.cardano.io/guard-bound-ms";

/**
 * A holder whose node is still to be proven stopped, carried on the Lease by a holder that took
 * it over but has not proven that yet (and so has not forged): whoever comes next must prove it.
 */
export interface FencePending {
  /** The identity whose node is not proven stopped. */
  holder: string;
  /** Its pod UID and its last write (API server time), as the fence needs them. */
  podUid?: string;
  writtenAt?: number;
  /** Its guard's bound (ms), when it wrote one: with FENCE=guard, time proves it stopped. */
  guardBoundMs?: number;
}

/** The parts of a coordination.k8s.io/v1 Lease the election reads (`forging/election.ts`). */
export interface LeaseRecord {
  /** holderIdentity; "" when released or never held. */
  holder: string;
  /** leaseDurationSeconds as written, in milliseconds. */
  durationMs: number;
  transitions: number;
  resourceVersion: string;
  /** The identity that released the lease through its end-of-term handover, if any. */
  releasedBy?: string;
  /**
   * With `releasedBy`: the releaser was still on probation, and this many milliseconds of it were
   * left when it released. A follower waits them out from when it first saw the release.
   */
  releaseWaitMs?: number;
  /**
   * The pod a planned handover released the lease to (with `releasedBy`): only that pod may take
   * it at once; every other replica waits it out as an unmarked release.
   */
  handoverTo?: string;
  /** The holder's pod UID, when the holder wrote it (used by the fence, not by the election). */
  holderPodUid?: string;
  /** The holder has not forged: it still had to prove this earlier holder's node stopped. */
  fencePending?: FencePending;
  /**
   * The holder forges only with its guard armed, and its node has stopped within this many ms of
   * its last renew (kept on an unclean release: it is still the one to prove).
   */
  guardBoundMs?: number;
  /**
   * When the record was last written, by the API server's clock (ms since the epoch, whole
   * seconds; from managedFields). Used by the fence only, never to judge expiry.
   */
  writtenAt?: number;
}

/** What one read of the Lease returned. */
export type Observation =
  | { kind: "present"; record: LeaseRecord }
  | {
    kind: "absent";
    /**
     * The pod the CardanoLeader status names as the last leader (never our own), read right after
     * the absence was seen: the only trace of a holder whose Lease was deleted under its dead
     * sidecar. Used only when this process saw no holder itself.
     */
    lastLeader?: string;
  };

/** Another writer changed the Lease first (HTTP 409), or created it first. */
export class LeaseConflict extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "LeaseConflict";
  }
}

/** Arguments of a claim (acquire or renew). */
export interface ClaimArgs {
  /** The record to replace, conditional on its resourceVersion; undefined creates the Lease. */
  record: LeaseRecord | undefined;
  identity: string;
  podUid: string;
  durationSeconds: number;
  timeoutMs: number;
  /** Written while our fence has not proven the earlier holder's node stopped; else removed. */
  fencePending?: FencePending;
  /** Our guard's bound, when we run with a guard (written on every claim; else removed). */
  guardBoundMs?: number;
}

/** What else a release carries. */
export interface ReleaseOptions {
  /** With `clean`: the rest of the releaser's probation (ms), for followers to wait out. */
  waitMs?: number;
  /** The fence obligation still open: it passes to whoever takes the Lease next. */
  fencePending?: FencePending;
  /** With `clean`: a planned handover, the only pod that may take the release at once. */
  handoverTo?: string;
}

/** The port through which the election reads and writes its Lease. */
export interface LeaseStore {
  read(timeoutMs: number): Promise<Observation>;
  /** @throws {LeaseConflict} when the record changed since it was read. */
  claim(args: ClaimArgs): Promise<LeaseRecord>;
  /**
   * Writes an empty holder, conditional on the record. With `clean` (the keys were unlinked and
   * the node signalled), the release is marked as ours so a standby may take it at once, or after
   * `waitMs` (the rest of a probation) from when it sees it; with `handoverTo` as well, only
   * that pod may take it at once (a planned handover).
   */
  release(
    record: LeaseRecord,
    identity: string,
    clean: boolean,
    timeoutMs: number,
    opts?: ReleaseOptions,
  ): Promise<LeaseRecord>;
  /** Calls `onChange` with each observed change until `signal` aborts; reconnects by itself. */
  watch(onChange: (observation: Observation) => void, signal: AbortSignal): void;
}

function setPending(annotations: Record<string, string>, pending: FencePending | undefined): void {
  if (pending === undefined) delete annotations[FENCE_PENDING_ANNOTATION];
  else annotations[FENCE_PENDING_ANNOTATION] = JSON.stringify(pending);
}

/**
 * The fence obligation an annotation holds. One that cannot be read (a hand edit) still names
 * someone to prove stopped: its text as the holder, whose pod the fence then looks for.
 */
function parsePending(text: string | undefined): FencePending | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as Partial<FencePending>;
    if (typeof value.holder === "string" && value.holder !== "") {
      return {
        holder: value.holder,
        ...(typeof value.podUid === "string" ? { podUid: value.podUid } : {}),
        ...(typeof value.writtenAt === "number" ? { writtenAt: value.writtenAt } : {}),
        ...(boundOf(value.guardBoundMs) !== undefined
          ? { guardBoundMs: boundOf(value.guardBoundMs)! }
          : {}),
      };
    }
  } catch {
    // fall through
  }
  return { holder: text === "" ? "unreadable" : text.slice(0, 253) };
}

/**
 * A guard bound as written (a count of milliseconds below an hour); anything else (a hand edit) is
 * no bound at all, which leaves only the API's proof: safe, if slower.
 */
function boundOf(value: unknown): number | undefined {
  const n = typeof value === "string" && /^\d{1,7}$/.test(value) ? Number(value) : value;
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n < 3_600_000 ? n : undefined;
}

/** Converts a V1Lease into the election's record. */
export function toRecord(lease: k8s.V1Lease): LeaseRecord {
  const spec = lease.spec ?? {};
  const releasedBy = lease.metadata?.annotations?.[RELEASED_BY_ANNOTATION];
  const waitText = lease.metadata?.annotations?.[RELEASE_WAIT_ANNOTATION];
  const fencePending = parsePending(lease.metadata?.annotations?.[FENCE_PENDING_ANNOTATION]);
  // Anything but a plain count of milliseconds (a hand edit) is read as the longest wait there is.
  const releaseWaitMs = waitText === undefined
    ? undefined
    : /^\d{1,9}$/.test(waitText)
    ? Number(waitText)
    : 999_999_999;
  const holderPodUid = lease.metadata?.annotations?.[HOLDER_POD_UID_ANNOTATION];
  const guardBoundMs = boundOf(lease.metadata?.annotations?.[GUARD_BOUND_ANNOTATION]);
  const handoverTo = lease.metadata?.annotations?.[HANDOVER_TO_ANNOTATION];
  const released = releasedBy !== undefined && (spec.holderIdentity ?? "") === "";
  const times = (lease.metadata?.managedFields ?? [])
    .map((m) => m.time === undefined ? NaN : new Date(m.time).getTime())
    .filter((t) => Number.isFinite(t));
  return {
    holder: spec.holderIdentity ?? "",
    durationMs: (spec.leaseDurationSeconds ?? 0) * 1000,
    transitions: spec.leaseTransitions ?? 0,
    resourceVersion: lease.metadata?.resourceVersion ?? "",
    ...(releasedBy !== undefined && (spec.holderIdentity ?? "") === "" ? { releasedBy } : {}),
    ...(releasedBy !== undefined && releaseWaitMs !== undefined ? { releaseWaitMs } : {}),
    ...(released && handoverTo !== undefined && handoverTo !== "" ? { handoverTo } : {}),
    ...(holderPodUid !== undefined ? { holderPodUid } : {}),
    ...(fencePending !== undefined ? { fencePending } : {}),
    ...(guardBoundMs !== undefined ? { guardBoundMs } : {}),
    ...(times.length > 0 ? { writtenAt: Math.max(...times) } : {}),
  };
}

/** A LeaseStore on a real API server through client-node. */
export class KubeLeaseStore implements LeaseStore {
  readonly #api: k8s.CoordinationV1Api;
  readonly #kc: k8s.KubeConfig;
  readonly #namespace: string;
  readonly #name: string;
  readonly #now: () => Date;
  /** The last full object seen, so a replace keeps fields we do not own (labels, ...). */
  #last: k8s.V1Lease | undefined;
  readonly #count: (operation: string) => void;
  readonly #watched: (phase: string, record: LeaseRecord | undefined) => void;

  /**
   * `count` is called once per request sent, with its operation (get, renew, watch, ...);
   * `watched` with each watch event as it arrives (for a debug log line with its time).
   */
  constructor(opts: {
    kc: k8s.KubeConfig;
    namespace: string;
    name: string;
    now?: () => Date;
    count?: (operation: string) => void;
    watched?: (phase: string, record: LeaseRecord | undefined) => void;
  }) {
    this.#kc = opts.kc;
    this.#api = opts.kc.makeApiClient(k8s.CoordinationV1Api);
    this.#namespace = opts.namespace;
    this.#name = opts.name;
    this.#now = opts.now ?? (() => new Date());
    this.#count = opts.count ?? (() => {});
    this.#watched = opts.watched ?? (() => {});
  }

  async read(timeoutMs: number): Promise<Observation> {
    this.#count("get");
    try {
      const lease = await this.#api.readNamespacedLease(
        { name: this.#name, namespace: this.#namespace },
        requestOptions(timeoutMs),
      );
      this.#last = lease;
      return { kind: "present", record: toRecord(lease) };
    } catch (err) {
      if (statusOf(err) === 404) {
        this.#last = undefined;
        return { kind: "absent" };
      }
      throw new Error(`Cannot read Lease ${this.#namespace}/${this.#name}`, { cause: err });
    }
  }

  async claim(args: ClaimArgs): Promise<LeaseRecord> {
    const now = new k8s.V1MicroTime(this.#now().getTime());
    const annotations = { ...this.#base(args.record)?.metadata?.annotations };
    delete annotations[RELEASED_BY_ANNOTATION];
    delete annotations[RELEASE_WAIT_ANNOTATION];
    setPending(annotations, args.fencePending);
    delete annotations[HANDOVER_TO_ANNOTATION];
    if (args.podUid !== "") annotations[HOLDER_POD_UID_ANNOTATION] = args.podUid;
    else delete annotations[HOLDER_POD_UID_ANNOTATION];
    if (args.guardBoundMs !== undefined) {
      annotations[GUARD_BOUND_ANNOTATION] = String(Math.ceil(args.guardBoundMs));
    } else delete annotations[GUARD_BOUND_ANNOTATION];

    if (args.record === undefined) {
      this.#count("create");
      const body: k8s.V1Lease = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: this.#name, namespace: this.#namespace, annotations },
        spec: {
          holderIdentity: args.identity,
          leaseDurationSeconds: args.durationSeconds,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: 0,
        },
      };
      try {
        const created = await this.#api.createNamespacedLease(
          { namespace: this.#namespace, body },
          requestOptions(args.timeoutMs),
        );
        this.#last = created;
        return toRecord(created);
      } catch (err) {
        if (statusOf(err) === 409) {
          throw new LeaseConflict(`Lease ${this.#name} was created by another replica`, {
            cause: err,
          });
        }
        throw new Error(`Cannot create Lease ${this.#namespace}/${this.#name}`, { cause: err });
      }
    }

    const base = this.#base(args.record);
    const spec = base?.spec ?? {};
    const sameHolder = args.record.holder === args.identity;
    const body = this.#replacement(base, args.record, annotations, {
      ...spec,
      holderIdentity: args.identity,
      leaseDurationSeconds: args.durationSeconds,
      acquireTime: sameHolder && spec.acquireTime !== undefined
        ? new k8s.V1MicroTime(new Date(spec.acquireTime).getTime())
        : now,
      renewTime: now,
      leaseTransitions: sameHolder ? args.record.transitions : args.record.transitions + 1,
    });
    return await this.#replace(body, args.timeoutMs, sameHolder ? "renew" : "acquire");
  }

  async release(
    record: LeaseRecord,
    identity: string,
    clean: boolean,
    timeoutMs: number,
    opts: ReleaseOptions = {},
  ): Promise<LeaseRecord> {
    const waitMs = opts.waitMs ?? 0;
    const handoverTo = opts.handoverTo;
    const base = this.#base(record);
    const annotations: Record<string, string> = { ...base?.metadata?.annotations };
    setPending(annotations, opts.fencePending);
    if (clean) annotations[RELEASED_BY_ANNOTATION] = identity;
    else delete annotations[RELEASED_BY_ANNOTATION];
    if (clean && waitMs > 0) annotations[RELEASE_WAIT_ANNOTATION] = String(Math.ceil(waitMs));
    else delete annotations[RELEASE_WAIT_ANNOTATION];
    if (clean && handoverTo !== undefined && handoverTo !== "") {
      annotations[HANDOVER_TO_ANNOTATION] = handoverTo;
    } else delete annotations[HANDOVER_TO_ANNOTATION];
    if (clean) {
      delete annotations[HOLDER_POD_UID_ANNOTATION];
      delete annotations[GUARD_BOUND_ANNOTATION];
    }
    const spec = base?.spec ?? {};
    const body = this.#replacement(base, record, annotations, {
      holderIdentity: "",
      leaseDurationSeconds: 1,
      leaseTransitions: record.transitions,
      renewTime: new k8s.V1MicroTime(this.#now().getTime()),
      ...(spec.acquireTime !== undefined
        ? { acquireTime: new k8s.V1MicroTime(new Date(spec.acquireTime).getTime()) }
        : {}),
    });
    return await this.#replace(body, timeoutMs, "release");
  }

  watch(onChange: (observation: Observation) => void, signal: AbortSignal): void {
    watchOne<k8s.V1Lease>({
      kc: this.#kc,
      path: `/apis/coordination.k8s.io/v1/namespaces/${this.#namespace}/leases`,
      name: this.#name,
      onEvent: (phase, obj) => {
        if (obj === undefined) {
          this.#watched(phase, undefined);
          onChange({ kind: "absent" });
        } else {
          const record = toRecord(obj);
          this.#watched(phase, record);
          onChange({ kind: "present", record });
        }
      },
      signal,
      count: () => this.#count("watch"),
    });
  }

  /** A replace of `record`, conditional on its resourceVersion, keeping metadata we do not own. */
  #replacement(
    base: k8s.V1Lease | undefined,
    record: LeaseRecord,
    annotations: Record<string, string>,
    spec: k8s.V1LeaseSpec,
  ): k8s.V1Lease {
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        ...base?.metadata,
        name: this.#name,
        namespace: this.#namespace,
        resourceVersion: record.resourceVersion,
        annotations,
      },
      spec,
    };
  }

  /** The full object to build a write on: the last one seen if it is this version. */
  #base(record: LeaseRecord | undefined): k8s.V1Lease | undefined {
    if (record === undefined || this.#last === undefined) return undefined;
    return this.#last.metadata?.resourceVersion === record.resourceVersion ? this.#last : undefined;
  }

  async #replace(body: k8s.V1Lease, timeoutMs: number, op: string): Promise<LeaseRecord> {
    this.#count(op);
    try {
      const written = await this.#api.replaceNamespacedLease(
        { name: this.#name, namespace: this.#namespace, body },
        requestOptions(timeoutMs),
      );
      this.#last = written;
      return toRecord(written);
    } catch (err) {
      const status = statusOf(err);
      if (status === 409 || status === 404) {
        throw new LeaseConflict(
          `Lease ${this.#name} changed since resourceVersion ${body.metadata?.resourceVersion} (${op})`,
          { cause: err },
        );
      }
      throw new Error(`Cannot ${op} Lease ${this.#namespace}/${this.#name}`, { cause: err });
    }
  }
}
