/**
 * The election across clusters' side of the effect runner: the coordination cluster's Lease and
 * CardanoLeader, this cluster's CardanoForgeCluster and its health check. Like the rest of the
 * runner (`effects.ts`), it decides nothing; every result becomes an event, and a write that
 * only shows state (an entry, a status, a name) is best effort.
 *
 * @module
 */

import type { Clock } from "../base/clock.ts";
import { sleep } from "../base/clock.ts";
import { errorText } from "../base/log.ts";
import type { Effect, ForgingEvent } from "../forging/events.ts";
import type { GlobalEffect } from "../forging/global_events.ts";
import type { KubeCardanoLeader, ReplicaEntry } from "../kube/cardano_leader.ts";
import type { KubeCoordination } from "../kube/coordination.ts";
import type { ForgeClusterStore } from "../kube/forge_cluster.ts";
import { LeaseConflict, type LeaseStore } from "../kube/lease_store.ts";

/** What the election across clusters acts on. */
export interface GlobalPorts {
  /** The coordination Lease. */
  leases: LeaseStore;
  /** Reads of the coordination CardanoLeader (requests, the clusters' entries). */
  coordination: KubeCoordination;
  /** Writes to it: this cluster's entry, the pool's leader, a handover's result. */
  cardanoLeader: KubeCardanoLeader;
  /** This cluster's CardanoForgeCluster. */
  forgeCluster: ForgeClusterStore;
  /** Probes the health check's endpoint (an HTTP GET; 2xx is healthy). */
  checkHealth: (endpoint: string, timeoutMs: number) => Promise<{ ok: boolean; message: string }>;
  /** Our identity on the coordination Lease (`<cluster>_<suffix>`). */
  identity: string;
  /** Our guard's bound, written on every write of the coordination Lease. */
  guardBoundMs: number;
  cluster: string;
  pod: string;
  leaseDurationSeconds: number;
}

/** Performs the election across clusters' effects; results come back through `post`. */
export class GlobalEffects {
  readonly #p: GlobalPorts;
  readonly #clock: Clock;
  readonly #post: (event: ForgingEvent) => void;
  /** The last write of this cluster's entry (one at a time, in order). */
  #publishing: Promise<unknown> = Promise.resolve();
  /** The last published (phase, reason) and since when (wall, RFC 3339). */
  #published: { key: string; since: string } | undefined;

  constructor(ports: GlobalPorts, clock: Clock, post: (event: ForgingEvent) => void) {
    this.#p = ports;
    this.#clock = clock;
    this.#post = post;
  }

  async run(e: GlobalEffect): Promise<void> {
    const p = this.#p;
    switch (e.kind) {
      case "read_global":
        try {
          const observation = await p.leases.read(e.timeoutMs);
          return this.#post({ kind: "global_read", observation });
        } catch (err) {
          return this.#post({ kind: "global_read_failed", error: errorText(err) });
        }
      case "read_members":
        try {
          const view = await p.coordination.read(e.timeoutMs);
          return this.#post({ kind: "members_read", control: view.control, members: view.members });
        } catch (err) {
          return this.#post({ kind: "members_read_failed", error: errorText(err) });
        }
      case "write_global":
        return await this.#write(e);
      case "release_global":
        try {
          const record = await p.leases.release(e.record, p.identity, e.clean, e.timeoutMs, {
            ...(e.waitMs !== undefined ? { waitMs: e.waitMs } : {}),
            ...(e.handoverTo !== undefined ? { handoverTo: e.handoverTo } : {}),
          });
          return this.#post({ kind: "global_released", record, clean: e.clean });
        } catch (err) {
          return this.#post({ kind: "global_release_failed", error: errorText(err) });
        }
      case "claim_global":
        return await this.#bestEffort(e, () => p.cardanoLeader.claim(5000));
      case "publish_member": {
        const now = this.#clock.wall().toISOString();
        const key = `${e.entry.phase}/${e.entry.reason}`;
        if (this.#published?.key !== key) this.#published = { key, since: now };
        const entry: ReplicaEntry & typeof e.entry = {
          ...e.entry,
          identity: p.identity,
          since: this.#published.since,
          heartbeat: now,
        };
        const write = this.#publishing.then(() =>
          this.#bestEffort(e, () => p.cardanoLeader.publishReplica(p.cluster, entry, 5000))
        );
        this.#publishing = write;
        return await write;
      }
      case "report_global_handover":
        return await this.#bestEffort(e, () =>
          p.cardanoLeader.reportHandover(
            { id: e.id, result: e.result, at: this.#clock.wall().toISOString() },
            5000,
          ));
      case "read_cluster":
        try {
          const spec = await p.forgeCluster.read(e.timeoutMs);
          return this.#post({
            kind: "cluster_read",
            ...(spec !== undefined ? { spec } : {}),
            wallMs: this.#clock.wall().getTime(),
          });
        } catch (err) {
          return this.#post({ kind: "cluster_read_failed", error: errorText(err) });
        }
      case "report_cluster": {
        const r = e.report;
        const now = this.#clock.wall().toISOString();
        const condition = (type: string, ok: boolean, reason: string, message: string) => ({
          type,
          status: ok ? "True" as const : "False" as const,
          reason,
          message,
          lastTransitionTime: now,
        });
        return await this.#bestEffort(e, () =>
          p.forgeCluster.report({
            effectiveState: r.standing.state,
            effectivePriority: r.standing.priority,
            activeLeader: r.activeLeader,
            localLeader: r.localLeader,
            reason: r.standing.reason,
            message: r.standing.message,
            ...(r.health !== undefined
              ? { healthStatus: { ...r.health, lastProbeTime: now } }
              : {}),
            conditions: [
              condition(
                "ForgingAllowed",
                r.standing.state !== "Disabled",
                r.standing.reason,
                r.standing.message,
              ),
              condition(
                "OverrideActive",
                r.standing.reason === "manual_override",
                r.standing.overrideExpired ? "Expired" : r.standing.reason,
                r.standing.overrideExpired
                  ? "the override's expiresAt has passed: it no longer applies"
                  : r.standing.message,
              ),
              ...(r.health !== undefined
                ? [condition(
                  "HealthCheckPassing",
                  r.health.healthy,
                  r.health.healthy ? "Healthy" : "Failing",
                  r.health.message,
                )]
                : []),
            ],
            lastUpdateTime: now,
          }, 5000));
      }
      case "check_health": {
        const { ok, message } = await p.checkHealth(e.endpoint, e.timeoutMs).catch((err) => ({
          ok: false,
          message: errorText(err),
        }));
        return this.#post({ kind: "health_checked", ok, message });
      }
    }
  }

  async #write(e: Extract<GlobalEffect, { kind: "write_global" }>): Promise<void> {
    const p = this.#p;
    // The term is measured from when the request is SENT: take the time right before it.
    const sentAt = this.#clock.monotonic();
    const timeoutMs = Math.min(e.deadline - sentAt, e.maxTimeoutMs);
    if (timeoutMs <= 0) {
      return this.#post({
        kind: "global_write_failed",
        decision: e.decision,
        conflict: false,
        error: "the term ended before the request could be sent",
      });
    }
    try {
      const record = await raceTimeout(
        p.leases.claim({
          record: e.decision.record,
          identity: p.identity,
          podUid: "",
          durationSeconds: p.leaseDurationSeconds,
          timeoutMs,
          guardBoundMs: p.guardBoundMs,
        }),
        this.#clock,
        timeoutMs,
      );
      this.#post({ kind: "global_written", decision: e.decision, record, sentAt });
    } catch (err) {
      this.#post({
        kind: "global_write_failed",
        decision: e.decision,
        conflict: err instanceof LeaseConflict,
        error: err instanceof LeaseConflict ? err.message : errorText(err),
      });
    }
  }

  /** A write that only shows state: a failure is reported, never an event of its own. */
  async #bestEffort(e: Effect, write: () => Promise<void>): Promise<void> {
    await write().catch((err) =>
      this.#post({ kind: "effect_failed", effect: e.kind, error: errorText(err) })
    );
  }
}

/** `work`, or a rejection once `ms` have passed (a hung connection must not hold a term). */
async function raceTimeout<T>(work: Promise<T>, clock: Clock, ms: number): Promise<T> {
  const timer = new AbortController();
  // sleep() resolves when aborted too: only a real timeout rejects.
  const late = sleep(clock, ms + 500, timer.signal).then(() => {
    if (!timer.signal.aborted) throw new Error(`no answer within ${ms} ms`);
    return undefined as never;
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    timer.abort();
  }
}
