/**
 * Telemetry derived from the forging machine's transitions, in one place: every log line,
 * metric update, CardanoLeader status write and Kubernetes Event the loop causes comes from
 * {@linkcode Telemetry.apply}, so a log line, a metric and a status reason can never disagree.
 * Status and Events are best effort: they are chained, bounded at shutdown, and never awaited by
 * a forging decision.
 *
 * @module
 */

import type { Clock } from "../base/clock.ts";
import type { Transition } from "../forging/events.ts";
import type { Logger } from "../base/log.ts";
import type { Metrics } from "./metrics.ts";
import type { StatusReporter, StatusUpdate } from "../kube/cardano_leader.ts";
import { STOP_REASONS } from "../forging/stop_reasons.ts";
import { GLOBAL } from "./global_telemetry.ts";
import {
  credentialMetricValues,
  recordCredentialMetrics,
  recordForgingConfirmation,
} from "./metrics.ts";
import { GUARD, OPS, SCHEDULE, SYNC } from "./telemetry_ops.ts";

/** What telemetry needs to know about this replica. */
export interface TelemetryDeps {
  podName: string;
  identity: string;
  leaseName: string;
  nodeSocket: string;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  status: StatusReporter | undefined;
  /**
   * Resolves once the keys and node effects queued so far are done (the runner's lane), with the
   * release a stop leads to: status writes and Events start after them, so their requests' CPU
   * does not delay an unlink, a placement or a release on the worker's one thread. Never waits
   * on a status write in return.
   */
  afterKeys?: () => Promise<void>;
}

/** What a handler may use. */
export interface Context {
  d: TelemetryDeps;
  log: Logger;
  metrics: Metrics;
  pod: { pod: string };
  status(update: StatusUpdate, onlyIfLeaderIs?: string): void;
  event(type: "Normal" | "Warning", reason: string, message: string): void;
  renewed(): void;
  /** Counts the guard's stops by reason, from its running totals (which restart with it). */
  guardDemotions(totals: Record<string, number>): void;
}

/** One handler per transition kind. */
export type Handlers = {
  [K in Transition["kind"]]: (t: Extract<Transition, { kind: K }>, c: Context) => void;
};

/** Start-up, the Lease and the fence. */
const LEASE: Pick<
  Handlers,
  | "boot_keys_placed"
  | "waiting_for_socket"
  | "socket_timeout"
  | "standing_by"
  | "lease_read_failed"
  | "lease_write_failed"
  | "renewed"
  | "became_leader"
  | "stopped_leading"
  | "released"
  | "release_failed"
  | "fence_started"
  | "leader_claim_failed"
  | "fence_done"
> = {
  boot_keys_placed: (t, c) =>
    t.decoys
      ? c.log.info("placed the decoy credentials the node boots on (no pool's keys)", {
        changed: t.changed,
      })
      : c.log.info("provisioned credentials for node startup", { changed: t.changed }),
  waiting_for_socket: (_, c) =>
    c.log.info("waiting for the node socket to accept connections", { path: c.d.nodeSocket }),
  socket_timeout: (t, c) => c.log.error(t.error),
  standing_by: (t, c) => c.log.info("standing by", { pid: t.pid, nonProducing: t.nonProducing }),
  lease_read_failed: (t, c) => c.log.warn("cannot read the lease", { err: t.error }),
  lease_write_failed: (t, c) => {
    if (t.leading) c.metrics.renewFailures.inc();
    if (t.conflict) {
      c.log.info(`lost the race to ${t.operation} the lease; reading it again`, { err: t.error });
    } else c.log.warn(`cannot ${t.operation} the lease`, { err: t.error });
  },
  renewed: (_, c) => c.renewed(),
  became_leader: (t, c) => {
    c.metrics.leadershipChanges.inc();
    c.metrics.leaderStatus.set(c.pod, 1);
    c.log.info("became leader", {
      previous: t.previous,
      proofNeeded: t.proofNeeded,
      transitions: t.transitions,
      ...(t.probationSeconds !== undefined ? { probationSeconds: t.probationSeconds } : {}),
    });
    c.status({
      leaderPod: c.d.podName,
      forgingEnabled: false,
      reason: "LeaseAcquired",
      message: `${c.d.identity} holds lease ${c.d.leaseName}`,
      leaseTransitions: t.transitions,
    });
  },
  stopped_leading: (t, c) => {
    c.metrics.leadershipChanges.inc();
    c.metrics.leaderStatus.set(c.pod, 0);
    c.log.warn("stopped leading", { reason: t.reason });
  },
  released: (t, c) => c.log.info("released the lease", { clean: t.clean }),
  release_failed: (t, c) =>
    c.log.warn("cannot release the lease; it will expire", { err: t.error }),
  fence_started: (t, c) =>
    c.log.info("fence: proving the previous leader's node stopped before forging", {
      previous: t.previous,
    }),
  leader_claim_failed: (t, c) => {
    c.metrics.statusUpdateFailures.inc();
    c.log.warn(
      "cannot name this pod in the CardanoLeader status before forging; forging all the same",
      { err: t.error },
    );
  },
  fence_done: (t, c) => {
    const outcome = t.outcome;
    if (outcome.proven) {
      c.metrics.fenceWaits.inc({ outcome: outcome.how });
      if (outcome.how !== "no_previous") {
        c.log.info("fence: previous leader's node is stopped", {
          previous: t.previous,
          how: outcome.how,
        });
      }
    } else if ("error" in outcome) {
      c.metrics.fenceWaits.inc({ outcome: "error" });
      c.log.error("fence failed; not forging", { err: outcome.why });
    } else {
      c.metrics.fenceWaits.inc({ outcome: "unproven" });
      c.log.warn("fence: no proof; not forging", { why: outcome.why });
    }
  },
};

/** Forging starts and stops, keys and signals. */
const FORGING: Pick<
  Handlers,
  | "demoted"
  | "stepping_aside"
  | "forging_enabled"
  | "forging_disabled"
  | "forging_lost"
  | "rotated"
  | "rotation_unusable"
  | "keys_remove_failed"
  | "place_failed"
  | "signal_sent"
  | "signal_failed"
> = {
  demoted: (t, c) => {
    const row = STOP_REASONS[t.reason];
    c.metrics.demotions.inc({ reason: row.metric });
    c.metrics.forgingEnabled.set(c.pod, 0);
    c.status({
      leaderPod: "",
      forgingEnabled: false,
      reason: row.status,
      message: `${c.d.podName} stopped forging: ${row.text}`,
    }, c.d.podName);
  },
  stepping_aside: (t, c) => {
    c.log.error("stepping aside: this replica cannot forge", { reason: t.reason, why: t.why });
    c.event(
      "Warning",
      t.reason === "bad_credentials" ? "CredentialsCannotForge" : "CannotForge",
      `${c.d.podName}: ${t.why}`,
    );
  },
  forging_enabled: (t, c) => {
    c.metrics.forgingEnabled.set(c.pod, 1);
    c.log.info("forging enabled", {
      changed: t.placed.changed,
      opcertCounter: t.placed.facts.issueCounter,
      pid: t.pid,
    });
    c.status({
      leaderPod: c.d.podName,
      forgingEnabled: true,
      reason: "Forging",
      message: `${c.d.podName} forges`,
    });
  },
  forging_disabled: (t, c) => {
    c.metrics.forgingEnabled.set(c.pod, 0);
    c.log.info("forging disabled", { reason: t.reason, confirmed: t.confirmed });
  },
  forging_lost: (t, c) => {
    c.metrics.forgingEnabled.set(c.pod, 0);
    c.log.info("a new node process was never given the keys: forging again once ready", {
      pid: t.pid,
    });
  },
  rotated: (t, c) =>
    c.log.info("placed rotated keys and signalled the node", {
      changed: t.placed.changed,
      opcertCounter: t.placed.facts.issueCounter,
      kesStartPeriod: t.placed.facts.kesStartPeriod,
      hotKey: t.placed.facts.hotKeyId,
    }),
  rotation_unusable: (t, c) =>
    c.log.warn("the source keys changed but cannot be used; the node keeps its keys", {
      err: t.problem,
    }),
  keys_remove_failed: (t, c) =>
    c.log.error("cannot remove the credential files", { err: t.error, reason: t.reason }),
  place_failed: (t, c) =>
    c.log.error(
      t.purpose === "boot"
        ? "cannot provision credentials for the node's boot"
        : t.purpose === "promote"
        ? "cannot start forging"
        : "cannot place rotated keys; stepping aside",
      { err: t.error },
    ),
  signal_sent: (t, c) => {
    c.metrics.sighups.inc({ reason: t.reason });
    c.log.debug("sent SIGHUP", { pid: t.pid, reason: t.reason });
  },
  signal_failed: (t, c) => {
    c.metrics.signalFailures.inc({ reason: t.failure });
    c.log.error("cannot signal the node", { pid: t.pid, reason: t.reason, err: t.error });
  },
};

/** The node process. */
const NODE: Pick<
  Handlers,
  | "node_found"
  | "node_gone"
  | "node_restarted"
  | "node_check_failed"
  | "effect_failed"
  | "node_flag"
  | "unsafe_node"
> = {
  node_found: (t, c) =>
    c.log.info("found the node process", { pid: t.pid, nonProducing: t.nonProducing }),
  node_gone: (t, c) => c.log.warn("the node process is gone", { pid: t.pid }),
  node_restarted: (t, c) =>
    c.log.info("the node restarted; re-applying the current state", { pid: t.pid }),
  node_check_failed: (t, c) => c.log.error("cannot look for the node process", { err: t.error }),
  effect_failed: (t, c) =>
    c.log.error("an effect failed unexpectedly", { effect: t.effect, err: t.error }),
  node_flag: (t, c) => c.metrics.nodeNonProducing.set(t.value),
  unsafe_node: (t, c) => {
    c.log.error(
      "UNSAFE: the node runs without --start-as-non-producing-node (or --non-producing-node before 10.5.1) and this replica is not the leader; removing its keys",
      { pid: t.pid },
    );
    c.metrics.demotions.inc({ reason: STOP_REASONS.unsafe_node.metric });
    c.event(
      "Warning",
      STOP_REASONS.unsafe_node.status,
      `${c.d.podName}: node runs without the non-producing flag`,
    );
  },
};

/** The credentials' verdict and the node's own account of forging. */
const WITNESSES: Pick<
  Handlers,
  "credentials_judged" | "credentials_unreadable" | "forging_confirmation"
> = {
  credentials_judged: (t, c) => {
    recordCredentialMetrics(c.metrics, credentialMetricValues(t.check));
    if (!t.changed) return;
    const fields = {
      verdict: t.check.verdict,
      why: t.check.reason,
      opcertCounter: t.check.issueCounter,
      kesStartPeriod: t.check.kesStartPeriod,
      kesPeriodsRemaining: t.check.kes.remainingPeriods,
    };
    if (t.check.verdict === "valid") return c.log.info("the credentials can forge", fields);
    c.log.error("the credentials cannot forge", fields);
    c.event("Warning", "CredentialsCannotForge", `${c.d.podName}: ${t.check.reason}`);
  },
  credentials_unreadable: (t, c) => {
    recordCredentialMetrics(c.metrics, credentialMetricValues({ invalid: t.error }));
    c.log.debug("cannot judge the source credentials", { err: t.error });
  },
  forging_confirmation: (t, c) => {
    recordForgingConfirmation(c.metrics, t.confirmation);
    if (!t.changed) return;
    const fields = { asked: t.asked ? "forging" : "not forging", why: t.confirmation.why };
    if (t.confirmation.state !== "mismatch") {
      return c.log.info(`the node's metrics: ${t.confirmation.state}`, fields);
    }
    c.log.warn("the node's metrics contradict the forging state asked for", fields);
    c.event("Warning", "ForgingNotConfirmed", `${c.d.podName}: ${t.confirmation.why}`);
  },
};

/** Every transition's handler: the type requires one per kind. */
const HANDLERS: Handlers = {
  ...LEASE,
  ...FORGING,
  ...NODE,
  ...WITNESSES,
  ...OPS,
  ...GUARD,
  ...GLOBAL,
  ...SYNC,
  ...SCHEDULE,
};

/** Turns transitions into logs, metrics, status and Events. */
export class Telemetry {
  readonly #d: TelemetryDeps;
  readonly #log: Logger;
  #statusChain: Promise<unknown> = Promise.resolve();
  #lastRenewWall: number | undefined;
  #guardTotals: Record<string, number> = {};

  readonly #context: Context;

  constructor(deps: TelemetryDeps) {
    this.#d = deps;
    this.#log = deps.log.with({ lease: deps.leaseName, identity: deps.identity });
    this.#context = {
      d: deps,
      log: this.#log,
      metrics: deps.metrics,
      pod: { pod: deps.podName },
      status: (update, onlyIfLeaderIs) => this.#status(update, onlyIfLeaderIs),
      event: (type, reason, message) => this.#event(type, reason, message),
      renewed: () => (this.#lastRenewWall = deps.clock.wall().getTime()),
      guardDemotions: (totals) => {
        for (const [reason, total] of Object.entries(totals)) {
          const before = this.#guardTotals[reason] ?? 0;
          // A lower total is a guard that restarted and counts from 0 again.
          const added = total >= before ? total - before : total;
          if (added > 0) deps.metrics.guardDemotions.inc({ reason }, added);
        }
        this.#guardTotals = { ...totals };
      },
    };
  }

  /** The wall time (ms) of the last successful renew, for the seconds-since-renew gauge. */
  get lastRenewWall(): number | undefined {
    return this.#lastRenewWall;
  }

  /** Reports one transition. */
  apply(t: Transition): void {
    (HANDLERS[t.kind] as (t: Transition, c: Context) => void)(t, this.#context);
  }

  /** Waits for pending status writes, at most `ms` of real time. */
  async flush(ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#statusChain,
      new Promise((resolve) => (timer = setTimeout(resolve, ms))),
    ]);
    clearTimeout(timer);
  }

  #status(update: StatusUpdate, onlyIfLeaderIs?: string): void {
    const status = this.#d.status;
    if (status === undefined) return;
    const afterKeys = this.#afterKeys();
    this.#statusChain = this.#statusChain.then(() => afterKeys).then(() =>
      status.report(update, onlyIfLeaderIs).catch((err) => {
        this.#d.metrics.statusUpdateFailures.inc();
        this.#log.warn(
          "cannot update CardanoLeader status (forging decisions do not depend on it)",
          { err },
        );
      })
    );
    this.#event("Normal", update.reason, update.message);
  }

  #event(type: "Normal" | "Warning", reason: string, message: string): void {
    const status = this.#d.status;
    if (status === undefined) return;
    void this.#afterKeys().then(() => status.event(type, reason, message)).catch(() =>
      this.#d.metrics.statusUpdateFailures.inc()
    );
  }

  #afterKeys(): Promise<void> {
    return (this.#d.afterKeys?.() ?? Promise.resolve()).catch(() => {});
  }
}
