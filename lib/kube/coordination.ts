/**
 * The coordination cluster's CardanoLeader as the election across clusters reads it: the
 * operator's requests (a handover between clusters) and each cluster's entry, which that
 * cluster's local leader merge-patches into `status.replicas.<cluster>` (its candidate, whether
 * it is ready, its effective state and priority, its region, a heartbeat). One GET reads both.
 * The writes (entries, the leader's name, a handover's result) are `KubeCardanoLeader`'s.
 *
 * @module
 */

import * as k8s from "@kubernetes/client-node";
import { requestOptions, statusOf } from "./kube_client.ts";
import { CARDANO_LEADER, type ControlView, toControlView } from "./cardano_leader.ts";
import { FORGE_STATES, type ForgeState } from "./forge_cluster.ts";
import type { Clock } from "../base/clock.ts";

/** One cluster's entry, as read (see `MemberView` in lib/forging/global_state.ts). */
export interface ClusterEntry {
  cluster: string;
  pod: string;
  phase: string;
  ready: boolean;
  state: ForgeState;
  priority: number;
  region: string;
  heartbeat: string;
}

/** What one read of the coordination CardanoLeader gives. */
export interface CoordinationView {
  control: ControlView;
  members: ClusterEntry[];
}

/** The entries that name a cluster (written by a sidecar across clusters), parsed. Pure. */
export function toClusterEntries(
  replicas: Record<string, Record<string, unknown>> | undefined,
): ClusterEntry[] {
  const entries: ClusterEntry[] = [];
  for (const [cluster, e] of Object.entries(replicas ?? {})) {
    const state = FORGE_STATES.find((s) => s === e.state);
    if (typeof e.pod !== "string" || typeof e.priority !== "number" || state === undefined) {
      continue; // not an entry of the election across clusters
    }
    entries.push({
      cluster,
      pod: e.pod,
      phase: typeof e.phase === "string" ? e.phase : "",
      ready: e.ready === true,
      state,
      priority: e.priority,
      region: typeof e.region === "string" ? e.region : "",
      heartbeat: typeof e.heartbeat === "string" ? e.heartbeat : "",
    });
  }
  return entries;
}

/** Reads the coordination CardanoLeader (an absent one: no requests, no entries). */
export class KubeCoordination {
  readonly #objects: k8s.CustomObjectsApi;
  readonly #namespace: string;
  readonly #name: string;
  readonly #clock: Clock;
  readonly #count: (op: string) => void;

  constructor(opts: {
    kc: k8s.KubeConfig;
    namespace: string;
    name: string;
    clock: Clock;
    count?: (op: string) => void;
  }) {
    this.#objects = opts.kc.makeApiClient(k8s.CustomObjectsApi);
    this.#namespace = opts.namespace;
    this.#name = opts.name;
    this.#clock = opts.clock;
    this.#count = opts.count ?? (() => {});
  }

  async read(timeoutMs: number): Promise<CoordinationView> {
    this.#count("coordination_get");
    type Stored = Parameters<typeof toControlView>[0] & {
      status?: { replicas?: Record<string, Record<string, unknown>> };
    };
    let obj: Stored | undefined;
    try {
      obj = await this.#objects.getNamespacedCustomObject(
        { ...CARDANO_LEADER, namespace: this.#namespace, name: this.#name },
        requestOptions(timeoutMs),
      ) as Stored;
    } catch (err) {
      if (statusOf(err) !== 404) {
        throw new Error(`Cannot read CardanoLeader ${this.#namespace}/${this.#name}`, {
          cause: err,
        });
      }
    }
    return {
      control: toControlView(
        obj,
        this.#clock.monotonic(),
        this.#clock.wall().getTime(),
      ),
      members: toClusterEntries(obj?.status?.replicas),
    };
  }
}
