/**
 * Telemetry derived from the forging machine's transitions, in one place: every log line,
 * metric update, CardanoLeader status write and Kubernetes Event the loop causes comes from
 * {@linkcode Telemetry.apply}, so a log line, a metric and a status reason can never disagree.
 * Status and Events are best effort: they are chained, bounded at shutdown, and never awaited by
 * a forging decision.
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import type { Transition } from "./forging.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { StatusReporter, StatusUpdate } from "./status.ts";
import { STOP_REASONS } from "./stop_reasons.ts";

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
}

/** Turns transitions into logs, metrics, status and Events. */
export class Telemetry {
  readonly #d: TelemetryDeps;
  readonly #log: Logger;
  #statusChain: Promise<unknown> = Promise.resolve();
  #lastRenewWall: number | undefined;

  constructor(deps: TelemetryDeps) {
    this.#d = deps;
    this.#log = deps.log.with({ lease: deps.leaseName, identity: deps.identity });
  }

  /** The wall time (ms) of the last successful renew, for the seconds-since-renew gauge. */
  get lastRenewWall(): number | undefined {
    return this.#lastRenewWall;
  }

  /** Reports one transition. */
  apply(t: Transition): void {
    const { metrics } = this.#d;
    const pod = { pod: this.#d.podName };
    const log = this.#log;
    switch (t.kind) {
      case "boot_keys_placed":
        return log.info("provisioned credentials for node startup", { changed: t.changed });
      case "waiting_for_socket":
        return log.info("waiting for the node socket to accept connections", {
          path: this.#d.nodeSocket,
        });
      case "socket_timeout":
        return log.error(t.error);
      case "standing_by":
        return log.info("standing by", { pid: t.pid, nonProducing: t.nonProducing });
      case "lease_read_failed":
        return log.warn("cannot read the lease", { err: t.error });
      case "lease_write_failed":
        if (t.leading) metrics.renewFailures.inc();
        if (t.conflict) {
          return log.info(`lost the race to ${t.operation} the lease; reading it again`, {
            err: t.error,
          });
        }
        return log.warn(`cannot ${t.operation} the lease`, { err: t.error });
      case "renewed":
        this.#lastRenewWall = this.#d.clock.wall().getTime();
        return;
      case "became_leader":
        metrics.leadershipChanges.inc();
        metrics.leaderStatus.set(pod, 1);
        log.info("became leader", {
          previous: t.previous,
          proofNeeded: t.proofNeeded,
          transitions: t.transitions,
          ...(t.probationSeconds !== undefined ? { probationSeconds: t.probationSeconds } : {}),
        });
        return this.#status({
          leaderPod: this.#d.podName,
          forgingEnabled: false,
          reason: "LeaseAcquired",
          message: `${this.#d.identity} holds lease ${this.#d.leaseName}`,
          leaseTransitions: t.transitions,
        });
      case "stopped_leading":
        metrics.leadershipChanges.inc();
        metrics.leaderStatus.set(pod, 0);
        return log.warn("stopped leading", { reason: t.reason });
      case "demoted": {
        const row = STOP_REASONS[t.reason];
        metrics.demotions.inc({ reason: row.metric });
        metrics.forgingEnabled.set(pod, 0);
        return this.#status({
          leaderPod: "",
          forgingEnabled: false,
          reason: row.status,
          message: `${this.#d.podName} stopped forging: ${row.text}`,
        }, this.#d.podName);
      }
      case "stepping_aside":
        log.error("stepping aside: this replica cannot forge", {
          reason: "cannot_forge",
          why: t.why,
        });
        return this.#event("Warning", "CannotForge", `${this.#d.podName}: ${t.why}`);
      case "released":
        return log.info("released the lease", { clean: t.clean });
      case "release_failed":
        return log.warn("cannot release the lease; it will expire", { err: t.error });
      case "fence_started":
        return log.info("fence: proving the previous leader's node stopped before forging", {
          previous: t.previous,
        });
      case "fence_done":
        return this.#fenceDone(t);
      case "status_read_failed":
        metrics.statusUpdateFailures.inc();
        return log.warn("cannot read the CardanoLeader status to find the last forger", {
          err: t.error,
        });
      case "forging_enabled":
        metrics.forgingEnabled.set(pod, 1);
        log.info("forging enabled", {
          changed: t.placed.changed,
          opcertCounter: t.placed.facts.issueCounter,
          pid: t.pid,
        });
        return this.#status({
          leaderPod: this.#d.podName,
          forgingEnabled: true,
          reason: "Forging",
          message: `${this.#d.podName} forges`,
        });
      case "forging_disabled":
        metrics.forgingEnabled.set(pod, 0);
        return log.info("forging disabled", { reason: t.reason, confirmed: t.confirmed });
      case "forging_lost":
        metrics.forgingEnabled.set(pod, 0);
        return log.info("a new node process was never given the keys: forging again once ready", {
          pid: t.pid,
        });
      case "rotated":
        return log.info("placed rotated keys and signalled the node", {
          changed: t.placed.changed,
          opcertCounter: t.placed.facts.issueCounter,
          kesStartPeriod: t.placed.facts.kesStartPeriod,
          hotKey: t.placed.facts.hotKeyId,
        });
      case "rotation_unusable":
        return log.warn("the source keys changed but cannot be used; the node keeps its keys", {
          err: t.problem,
        });
      case "keys_remove_failed":
        return log.error("cannot remove the credential files", { err: t.error, reason: t.reason });
      case "place_failed":
        return log.error(
          t.purpose === "boot"
            ? "cannot provision credentials for the node's boot"
            : t.purpose === "promote"
            ? "cannot start forging"
            : "cannot place rotated keys; stepping aside",
          { err: t.error },
        );
      case "signal_sent":
        metrics.sighups.inc({ reason: t.reason });
        return log.debug("sent SIGHUP", { pid: t.pid, reason: t.reason });
      case "signal_failed":
        metrics.signalFailures.inc({ reason: t.failure });
        return log.error("cannot signal the node", { pid: t.pid, reason: t.reason, err: t.error });
      case "node_found":
        return log.info("found the node process", { pid: t.pid, nonProducing: t.nonProducing });
      case "node_gone":
        return log.warn("the node process is gone", { pid: t.pid });
      case "node_restarted":
        return log.info("the node restarted; re-applying the current state", { pid: t.pid });
      case "node_check_failed":
        return log.error("cannot look for the node process", { err: t.error });
      case "effect_failed":
        return log.error("an effect failed unexpectedly", { effect: t.effect, err: t.error });
      case "node_flag":
        return metrics.nodeNonProducing.set(t.value);
      case "unsafe_node":
        log.error(
          "UNSAFE: the node runs without --start-as-non-producing-node (or --non-producing-node before 10.5.1) and this replica is not the leader; removing its keys",
          { pid: t.pid },
        );
        metrics.demotions.inc({ reason: STOP_REASONS.unsafe_node.metric });
        return this.#event(
          "Warning",
          STOP_REASONS.unsafe_node.status,
          `${this.#d.podName}: node runs without the non-producing flag`,
        );
    }
  }

  #fenceDone(t: Extract<Transition, { kind: "fence_done" }>): void {
    const { metrics } = this.#d;
    const outcome = t.outcome;
    if (outcome.proven) {
      metrics.fenceWaits.inc({ outcome: outcome.how });
      if (outcome.how !== "no_previous") {
        this.#log.info("fence: previous leader's node is stopped", {
          previous: t.previous,
          how: outcome.how,
        });
      }
    } else if ("error" in outcome) {
      metrics.fenceWaits.inc({ outcome: "error" });
      this.#log.error("fence failed; not forging", { err: outcome.why });
    } else {
      metrics.fenceWaits.inc({ outcome: "unproven" });
      this.#log.warn("fence: no proof; not forging", { why: outcome.why });
    }
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
    this.#statusChain = this.#statusChain.then(() =>
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
    void this.#d.status?.event(type, reason, message).catch(() =>
      this.#d.metrics.statusUpdateFailures.inc()
    );
  }
}
