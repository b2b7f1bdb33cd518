/**
 * The sidecar's loop: it owns the timers, calls the pure election step, and performs what it
 * decides on the Lease, the credential files and the node. Every safety rule lives in
 * `election.ts`; what lives here is ordering:
 * - forging starts only while leading, after the fence (if any) proved the previous holder's node
 *   stopped, with the node found and its socket accepting: place the keys, then SIGHUP;
 * - forging stops by unlinking the keys, then SIGHUP, and a deadline watchdog does it at the end
 *   of the term whatever the API server is doing;
 * - a planned shutdown stops forging FIRST and only then releases the Lease.
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import type { Config } from "./config.ts";
import type { CredentialStore } from "./credentials.ts";
import {
  decide,
  type Decision,
  demoted,
  type DemoteReason,
  type ElectionState,
  initialState,
  isLeading,
  type LeaseRecord,
  needsProbation,
  type Observation,
  observe,
  termDeadline,
  writeFailed,
  written,
} from "./election.ts";
import type { Fence } from "./fence.ts";
import type { HealthView } from "./http_handler.ts";
import { abortableSleep, LeaseConflict, type LeaseStore } from "./lease_store.ts";
import { errorText, type Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { type NodeInfo, type NodeProcess, SignalError } from "./node_process.ts";
import type { StatusReporter } from "./status.ts";

/** Everything the loop talks to. */
export interface ForgeManagerDeps {
  config: Config;
  identity: string;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  leases: LeaseStore;
  credentials: CredentialStore;
  node: NodeProcess;
  socketAccepts: (path: string) => Promise<boolean>;
  status: StatusReporter | undefined;
  fence: Fence | undefined;
}

/** The sidecar. Create it, then `await run(signal)`; abort the signal for a planned shutdown. */
export class ForgeManager implements HealthView {
  readonly #d: ForgeManagerDeps;
  readonly #log: Logger;
  #state: ElectionState;
  /** Keys placed and the node signalled with them. */
  #forging = false;
  /** The last stop unlinked every key and reached the node (or the node was absent). */
  #stopConfirmed = false;
  /** Increments at every acquisition; a fence or promotion of an older term is void. */
  #epoch = 0;
  #fenceOkEpoch = -1;
  #fenceAbort: AbortController | undefined;
  #node: NodeInfo | undefined;
  #nodeReady = false;
  /** Node processes (`pid:startTicks`) already reported as running without the flag. */
  #warnedUnsafe = new Set<string>();
  #startupDone = false;
  #observedOnce = false;
  #lastTick = 0;
  #lastRenewWall: number | undefined;
  #lastPodUid: string | undefined;
  /** A warning about unusable rotated sources was logged (once per change). */
  #rotationWarned = false;
  #lastWrittenAt: number | undefined;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  /** Serializes every action on the keys and the node. */
  #nodeLock: Promise<unknown> = Promise.resolve();
  #statusChain: Promise<unknown> = Promise.resolve();

  constructor(deps: ForgeManagerDeps) {
    this.#d = deps;
    this.#log = deps.log.with({ lease: deps.config.leaseName, identity: deps.identity });
    this.#state = initialState(deps.identity);
  }

  // ---- HealthView -------------------------------------------------------------------------
  startupDone(): boolean {
    return this.#startupDone;
  }
  ready(): boolean {
    return this.#startupDone && this.#observedOnce;
  }
  alive(): boolean {
    const stale = this.#d.clock.monotonic() - this.#lastTick;
    return this.#lastTick === 0 || stale < Math.max(30_000, 4 * this.#d.config.sleepIntervalMs);
  }
  summary(): Record<string, unknown> {
    const seen = this.#state.seen?.observation;
    return {
      pod: this.#d.config.podName,
      identity: this.#d.identity,
      leader: this.leading,
      forging: this.#forging,
      holder: seen?.kind === "present" ? seen.record.holder : undefined,
      nodePid: this.#node?.pid,
    };
  }
  /** Whether we hold the lease with time left. */
  get leading(): boolean {
    return isLeading(this.#state, this.#d.clock.monotonic(), this.#d.config);
  }
  /** Whether the node was given the keys and signalled. */
  get forging(): boolean {
    return this.#forging;
  }
  /** Whether the last stop of the node (unlink + SIGHUP) was confirmed and it has not forged since. */
  get stopConfirmed(): boolean {
    return this.#stopConfirmed && !this.#forging;
  }
  /** The wall time of the last successful renew (ms), for the metrics gauge. */
  get lastRenewWall(): number | undefined {
    return this.#lastRenewWall;
  }

  // ---- main loop --------------------------------------------------------------------------

  /** Runs until `signal` aborts, then performs the end of term and returns. */
  async run(signal: AbortSignal): Promise<void> {
    const { config, clock } = this.#d;
    await this.#startup(signal);
    const watchAbort = new AbortController();
    signal.addEventListener("abort", () => {
      watchAbort.abort();
      this.#wake?.();
    }, { once: true });
    this.#d.leases.watch((obs) => {
      if (this.#state.term === undefined) this.#observe(obs);
      this.#wake?.();
    }, watchAbort.signal);

    let nextPoll = 0;
    let nextNodeCheck = 0;
    const nodeCheckMs = Math.min(config.sleepIntervalMs, 2000);
    while (!signal.aborted) {
      let now = clock.monotonic();
      this.#lastTick = now;
      if (now >= nextNodeCheck) {
        await this.#checkNode();
        await this.#followRotation();
        nextNodeCheck = clock.monotonic() + nodeCheckMs;
      }
      now = clock.monotonic();
      if (this.#state.term === undefined && now >= nextPoll) {
        await this.#read(Math.min(config.sleepIntervalMs, 5000));
        nextPoll = clock.monotonic() + config.sleepIntervalMs;
      }
      now = clock.monotonic();
      const decision = decide(this.#state, now, config);
      switch (decision.kind) {
        case "demote":
          await this.#demote(decision.reason);
          break;
        case "renew":
        case "acquire":
          await this.#write(decision);
          break;
        case "wait": {
          await this.#maybePromote();
          const leader = this.#state.term !== undefined;
          const until = Math.min(decision.until, nextNodeCheck, leader ? Infinity : nextPoll);
          await this.#sleep(until - clock.monotonic(), signal);
          break;
        }
      }
    }
    await this.#endOfTerm();
    watchAbort.abort();
  }

  async #startup(signal: AbortSignal): Promise<void> {
    const { config, credentials } = this.#d;
    if (config.startAsNonProducing) {
      // The node exits at boot without credential files, even when non-producing.
      try {
        const { changed } = await credentials.place();
        this.#log.info("provisioned credentials for node startup", { changed });
      } catch (err) {
        this.#log.error("cannot provision credentials for node startup", { err });
      }
    }
    this.#startupDone = true;
    if (!config.disableSocketCheck) {
      this.#log.info("waiting for the node socket to accept connections", {
        path: config.nodeSocket,
      });
      const until = this.#d.clock.monotonic() + config.socketWaitTimeoutMs;
      while (!(await this.#d.socketAccepts(config.nodeSocket))) {
        if (signal.aborted) return;
        if (this.#d.clock.monotonic() > until) {
          throw new Error(
            `Cannot start: node socket ${config.nodeSocket} did not accept a connection within SOCKET_WAIT_TIMEOUT=${
              config.socketWaitTimeoutMs / 1000
            } s`,
          );
        }
        await abortableSleep(500, signal);
      }
    }
    // Stand by: whatever this pod did before, its node must not forge until we lead.
    this.#node = await this.#findNode();
    this.#nodeReady = this.#node !== undefined;
    await this.#stopForging("startup");
    this.#log.info("standing by", { pid: this.#node?.pid, nonProducing: this.#node?.nonProducing });
  }

  #observe(obs: Observation): void {
    this.#observedOnce = true;
    if (obs.kind === "present" && obs.record.holder !== "") {
      this.#lastPodUid = obs.record.holderPodUid;
      this.#lastWrittenAt = obs.record.writtenAt;
    }
    this.#state = observe(this.#state, obs, this.#d.clock.monotonic());
  }

  async #read(timeoutMs: number): Promise<void> {
    try {
      this.#observe(await this.#d.leases.read(timeoutMs));
    } catch (err) {
      this.#log.warn("cannot read the lease", { err });
    }
  }

  async #write(decision: Extract<Decision, { kind: "renew" | "acquire" }>): Promise<void> {
    const { clock, config, leases, metrics } = this.#d;
    const wasLeading = this.#state.term !== undefined;
    const sentAt = clock.monotonic();
    // A leader's request must not outlive its term; a follower's gets a plain bound.
    const timeoutMs = decision.kind === "renew"
      ? Math.min(decision.deadline - sentAt, config.renewDeadlineMs)
      : Math.min(config.renewDeadlineMs, 5000);
    const operation = decision.kind === "renew" ? "renew" : decision.record ? "acquire" : "create";
    const previousPodUid = decision.kind === "acquire"
      ? decision.record?.holderPodUid ?? this.#lastPodUid
      : undefined;
    const previousWrittenAt = decision.kind === "acquire"
      ? decision.record?.writtenAt ?? this.#lastWrittenAt
      : undefined;
    try {
      const record = await leases.claim({
        record: decision.record,
        identity: this.#d.identity,
        podUid: config.podUid,
        durationSeconds: config.leaseDurationMs / 1000,
        timeoutMs,
      });
      this.#observedOnce = true;
      // Read the term AFTER the await: the deadline watchdog may have ended it meanwhile, and a
      // late success then starts a new term (counted from its send time) that must be announced.
      const held = this.#state.term !== undefined;
      const probation = !held && needsProbation(decision, this.#d.identity)
        ? { timing: config }
        : undefined;
      this.#state = written(this.#state, record, sentAt, clock.monotonic(), probation);
      this.#lastRenewWall = clock.wall().getTime();
      this.#armWatchdog();
      if (!held) {
        this.#acquired(
          decision.kind === "acquire"
            ? decision
            : { kind: "acquire", record, previousHolder: "", proofNeeded: false },
          record,
          previousPodUid,
          previousWrittenAt,
          probation !== undefined,
        );
      }
    } catch (err) {
      this.#state = writeFailed(this.#state, clock.monotonic());
      if (wasLeading) metrics.renewFailures.inc();
      if (err instanceof LeaseConflict) {
        this.#log.info(`lost the race to ${operation} the lease; reading it again`, {
          err: err.message,
        });
        await this.#read(Math.min(config.sleepIntervalMs, 5000));
      } else {
        this.#log.warn(`cannot ${operation} the lease`, { err });
      }
    }
  }

  #acquired(
    decision: Extract<Decision, { kind: "acquire" }>,
    record: LeaseRecord,
    previousPodUid: string | undefined,
    previousWrittenAt: number | undefined,
    probation: boolean,
  ): void {
    const { metrics, config } = this.#d;
    this.#epoch++;
    const epoch = this.#epoch;
    metrics.leadershipChanges.inc();
    metrics.leaderStatus.set({ pod: config.podName }, 1);
    this.#log.info("became leader", {
      previous: decision.previousHolder,
      proofNeeded: decision.proofNeeded,
      transitions: record.transitions,
      ...(probation
        ? { probationSeconds: (config.leaseDurationMs + config.acquireDelayMs) / 1000 }
        : {}),
    });
    this.#setStatus({
      leaderPod: config.podName,
      forgingEnabled: false,
      reason: "LeaseAcquired",
      message: `${this.#d.identity} holds lease ${config.leaseName}`,
      leaseTransitions: record.transitions,
    });
    const fence = this.#d.fence;
    // A create with no holder we know of: the Lease may have been deleted by hand under a leader
    // whose sidecar is gone and whose node still forges. The CardanoLeader status outlives the
    // Lease: the pod it names is fenced like a previous holder.
    const unknownCreate = decision.record === undefined && decision.previousHolder === "";
    if (fence === undefined || (!decision.proofNeeded && !unknownCreate)) {
      this.#fenceOkEpoch = epoch;
      return;
    }
    this.#fenceAbort?.abort();
    const abort = new AbortController();
    this.#fenceAbort = abort;
    const prove = async (): Promise<void> => {
      let previous = decision.previousHolder;
      let uid = previousPodUid;
      let writtenAt = previousWrittenAt;
      if (unknownCreate) {
        const last = await this.#lastForgerFromStatus();
        if (last === undefined) {
          metrics.fenceWaits.inc({ outcome: "no_previous" });
          if (this.#epoch === epoch) this.#fenceOkEpoch = epoch;
          return;
        }
        previous = `${last}_status`;
        uid = undefined;
        writtenAt = undefined;
      }
      this.#log.info("fence: proving the previous leader's node stopped before forging", {
        previous,
      });
      const outcome = await fence.prove(previous, uid, abort.signal, writtenAt);
      if (outcome.proven) {
        metrics.fenceWaits.inc({ outcome: outcome.how });
        this.#log.info("fence: previous leader's node is stopped", { previous, how: outcome.how });
        if (this.#epoch === epoch) this.#fenceOkEpoch = epoch;
      } else {
        metrics.fenceWaits.inc({ outcome: "unproven" });
        this.#log.warn("fence: no proof; not forging", { why: outcome.why });
      }
    };
    prove().catch((err) => {
      metrics.fenceWaits.inc({ outcome: "error" });
      this.#log.error("fence failed; not forging", { err });
    }).finally(() => {
      this.#wake?.();
    });
  }

  /**
   * The pod the CardanoLeader status names as leader, if any. Unreadable status (no CRD, no
   * object) counts as none, logged: the status is best effort and never blocks on its own.
   */
  async #lastForgerFromStatus(): Promise<string | undefined> {
    const status = this.#d.status;
    if (status === undefined) return undefined;
    try {
      const pod = await status.lastLeader();
      return pod === "" ? undefined : pod;
    } catch (err) {
      this.#d.metrics.statusUpdateFailures.inc();
      this.#log.warn("cannot read the CardanoLeader status to find the last forger", { err });
      return undefined;
    }
  }

  #armWatchdog(): void {
    clearTimeout(this.#watchdog);
    const deadline = termDeadline(this.#state, this.#d.config);
    if (deadline === undefined) return;
    this.#watchdog = setTimeout(() => {
      // A timer may fire before the deadline by the clock that judges the term (Deno truncates a
      // fractional delay to whole milliseconds): then wait for the rest instead of doing nothing.
      if (this.#d.clock.monotonic() < deadline) this.#armWatchdog();
      else if (!isLeading(this.#state, this.#d.clock.monotonic(), this.#d.config)) {
        void this.#demote("renew_deadline");
      }
    }, Math.max(0, deadline - this.#d.clock.monotonic()));
  }

  /** Stops forging and leaves the term (idempotent: a second call for the same term is a no-op). */
  async #demote(reason: DemoteReason, holdOffMs = 0, keepBootKeys = false): Promise<void> {
    const wasLeading = this.#state.term !== undefined;
    this.#epoch++;
    this.#fenceAbort?.abort();
    clearTimeout(this.#watchdog);
    this.#state = demoted(this.#state, this.#d.clock.monotonic(), holdOffMs);
    if (wasLeading) {
      this.#d.metrics.leadershipChanges.inc();
      this.#d.metrics.leaderStatus.set({ pod: this.#d.config.podName }, 0);
      this.#log.warn("stopped leading", { reason });
    }
    if (this.#forging || wasLeading) {
      this.#d.metrics.demotions.inc({ reason });
      if (keepBootKeys) {
        // The node process is new, non-producing, and was never signalled by us: it does not
        // forge, and it reads the key files while it boots (it exits without them). Leave them;
        // the standby path unlinks them and signals once its socket accepts.
        this.#stopConfirmed = true;
      } else {
        await this.#stopForging(reason);
      }
      this.#setStatus(
        {
          leaderPod: "",
          forgingEnabled: false,
          reason: `Demoted_${reason}`,
          message: `${this.#d.config.podName} stopped forging: ${reason}`,
        },
        this.#d.config.podName,
      );
    }
  }

  /** Places the keys and signals the node, when everything allows it. */
  async #maybePromote(): Promise<void> {
    const now = this.#d.clock.monotonic();
    if (this.#forging || !isLeading(this.#state, now, this.#d.config)) return;
    if (this.#fenceOkEpoch !== this.#epoch) return; // the fence has not proven it yet
    if (this.#node === undefined || !this.#nodeReady) {
      const booting = this.#node !== undefined && this.#node.nonProducing && !this.#forging;
      await this.#stepAside(
        "cannot_forge",
        booting
          ? `the node process (pid ${this.#node?.pid}) restarted and is not ready yet`
          : "the node process is not running or not ready",
        booting,
      );
      // As when the node exits (#checkNode): the step aside unlinked the keys, and a node that
      // is not running needs them to boot again (it boots non-producing).
      if (this.#node === undefined) await this.#provisionForRestart();
      return;
    }
    const epoch = this.#epoch;
    await this.#withNodeLock(async () => {
      if (epoch !== this.#epoch || !this.leading) return; // demoted meanwhile
      try {
        const { changed, facts } = await this.#d.credentials.place();
        if (epoch !== this.#epoch || !this.leading) {
          await this.#d.credentials.remove(); // the term ended while we wrote: take them back
          return;
        }
        await this.#hangup("promote");
        this.#forging = true;
        this.#stopConfirmed = false;
        this.#d.metrics.forgingEnabled.set({ pod: this.#d.config.podName }, 1);
        this.#log.info("forging enabled", {
          changed,
          opcertCounter: facts.issueCounter,
          pid: this.#node?.pid,
        });
      } catch (err) {
        this.#log.error("cannot start forging", { err });
        throw err;
      }
    }).then(() => {
      if (this.#forging) {
        this.#setStatus({
          leaderPod: this.#d.config.podName,
          forgingEnabled: true,
          reason: "Forging",
          message: `${this.#d.config.podName} forges`,
        });
      }
    }, async (err) => {
      await this.#stepAside("cannot_forge", errorText(err));
    });
  }

  /** A leader that cannot forge hands the lease on, and waits before competing again. */
  async #stepAside(reason: DemoteReason, why: string, keepBootKeys = false): Promise<void> {
    const record = this.#state.seen?.observation.kind === "present"
      ? this.#state.seen.observation.record
      : undefined;
    this.#log.error("stepping aside: this replica cannot forge", { reason, why });
    void this.#d.status?.event("Warning", "CannotForge", `${this.#d.config.podName}: ${why}`)
      .catch(() => this.#d.metrics.statusUpdateFailures.inc());
    const holdOff = 2 * this.#d.config.leaseDurationMs;
    const wasLeading = this.#state.term !== undefined;
    await this.#demote(reason, holdOff, keepBootKeys);
    if (wasLeading && record !== undefined && record.holder === this.#d.identity) {
      await this.#release(record, 3000);
    }
  }

  async #release(record: LeaseRecord, timeoutMs: number): Promise<void> {
    try {
      const released = await this.#d.leases.release(
        record,
        this.#d.identity,
        this.#stopConfirmed,
        timeoutMs,
      );
      this.#observe({ kind: "present", record: released });
      this.#log.info("released the lease", { clean: this.#stopConfirmed });
    } catch (err) {
      this.#log.warn("cannot release the lease; it will expire", { err });
    }
  }

  /** Planned shutdown: stop forging first, then release, so a standby may take over at once. */
  async #endOfTerm(): Promise<void> {
    clearTimeout(this.#watchdog);
    this.#fenceAbort?.abort();
    const record = this.#state.seen?.observation.kind === "present"
      ? this.#state.seen.observation.record
      : undefined;
    const deadline = termDeadline(this.#state, this.#d.config);
    const wasLeading = this.#state.term !== undefined;
    await this.#demote("shutdown"); // unlinks and signals only if we led or forged
    if (wasLeading && record !== undefined && record.holder === this.#d.identity) {
      const left = (deadline ?? 0) - this.#d.clock.monotonic();
      await this.#release(record, Math.max(500, Math.min(3000, left > 0 ? left : 3000)));
    }
    const bound = new AbortController();
    await Promise.race([this.#statusChain, abortableSleep(2000, bound.signal)]);
    bound.abort(); // do not keep the process alive for the rest of the bound
  }

  // ---- the node ---------------------------------------------------------------------------

  async #findNode(): Promise<NodeInfo | undefined> {
    try {
      const node = await this.#d.node.find();
      this.#d.metrics.nodeNonProducing.set(node === undefined ? -1 : node.nonProducing ? 1 : 0);
      return node;
    } catch (err) {
      this.#log.error("cannot look for the node process", { err });
      return this.#node;
    }
  }

  /** Follows the node process: restarts re-apply the current state; an unsafe node is stopped. */
  async #checkNode(): Promise<void> {
    const { config } = this.#d;
    const node = await this.#findNode();
    const before = this.#node;
    const same = node !== undefined && before !== undefined && node.pid === before.pid &&
      node.startTicks === before.startTicks;
    if (node === undefined) {
      if (before !== undefined) {
        this.#log.warn("the node process is gone", { pid: before.pid });
        this.#node = undefined;
        this.#nodeReady = false;
        if (this.#forging || this.leading) {
          await this.#stepAside("cannot_forge", `node pid ${before.pid} exited`);
        }
        await this.#provisionForRestart();
      }
      return;
    }
    if (!same) {
      this.#log.info("found the node process", { pid: node.pid, nonProducing: node.nonProducing });
      this.#node = node;
      this.#nodeReady = false;
      this.#forging = false;
      this.#d.metrics.forgingEnabled.set({ pod: config.podName }, 0);
    }
    const processKey = `${node.pid}:${node.startTicks}`;
    if (!node.nonProducing && !this.leading && !this.#warnedUnsafe.has(processKey)) {
      this.#warnedUnsafe.add(processKey);
      this.#log.error(
        "UNSAFE: the node runs without --start-as-non-producing-node (or --non-producing-node before 10.5.1) and this replica is not the leader; removing its keys",
        { pid: node.pid },
      );
      this.#d.metrics.demotions.inc({ reason: "unsafe_node" });
      void this.#d.status?.event(
        "Warning",
        "UnsafeNode",
        `${config.podName}: node runs without the non-producing flag`,
      )
        .catch(() => this.#d.metrics.statusUpdateFailures.inc());
      await this.#stopForging("unsafe_node");
    }
    if (!this.#nodeReady) {
      const ready = config.disableSocketCheck || await this.#d.socketAccepts(config.nodeSocket);
      if (ready) {
        this.#nodeReady = true;
        if (!same && before !== undefined) {
          this.#log.info("the node restarted; re-applying the current state", { pid: node.pid });
        }
        if (!this.leading) await this.#stopForging("node_restart");
        // A leader re-places the keys and signals on the next promotion check.
      }
    }
  }

  /**
   * While forging, follows the sources (a rotated KES key and certificate in the Secret): when
   * they change and are valid as a set, places them and signals the node. A set that does not
   * validate (a rotation half done, a mismatched KES key) leaves the node with what it has.
   */
  async #followRotation(): Promise<void> {
    if (!this.#forging) return;
    let differ = false;
    try {
      differ = await this.#d.credentials.sourcesDiffer();
    } catch (err) {
      this.#log.warn("cannot compare the source keys with the placed ones", { err });
    }
    if (!differ) return;
    const epoch = this.#epoch;
    await this.#withNodeLock(async () => {
      if (!this.#forging || epoch !== this.#epoch) return;
      try {
        await this.#d.credentials.check();
      } catch (err) {
        if (!this.#rotationWarned) {
          this.#rotationWarned = true;
          this.#log.warn("the source keys changed but cannot be used; the node keeps its keys", {
            err,
          });
        }
        return;
      }
      this.#rotationWarned = false;
      try {
        const { changed, facts } = await this.#d.credentials.place();
        await this.#hangup("rotate");
        this.#log.info("placed rotated keys and signalled the node", {
          changed,
          opcertCounter: facts.issueCounter,
          kesStartPeriod: facts.kesStartPeriod,
          hotKey: facts.hotKeyId,
        });
      } catch (err) {
        // place() removed the whole set on a write failure, or the signal failed: stop cleanly.
        this.#log.error("cannot place rotated keys; stepping aside", { err });
        throw err;
      }
    }).catch(async (err) => {
      if (this.#forging) await this.#stepAside("cannot_forge", errorText(err));
    });
  }

  /** Places the keys for a node that is not running: it exits at boot without them. */
  async #provisionForRestart(): Promise<void> {
    if (!this.#d.config.startAsNonProducing) return;
    // Its restart needs credential files to boot; it boots non-producing.
    await this.#d.credentials.place().catch((err) =>
      this.#log.error("cannot provision credentials for the node's restart", { err })
    );
  }

  /** Unlinks the keys, then SIGHUPs the node. Records whether both certainly happened. */
  async #stopForging(reason: string): Promise<void> {
    await this.#withNodeLock(async () => {
      const wasForging = this.#forging;
      this.#forging = false;
      this.#d.metrics.forgingEnabled.set({ pod: this.#d.config.podName }, 0);
      let confirmed = true;
      try {
        await this.#d.credentials.remove();
      } catch (err) {
        confirmed = false;
        this.#log.error("cannot remove the credential files", { err, reason });
      }
      const node = this.#node ?? await this.#findNode();
      if (node !== undefined) {
        try {
          await this.#hangup(reason, node);
        } catch (err) {
          // Logged and counted in #hangup. A node that has exited cannot forge (a native
          // sidecar's node stops before it on pod shutdown), so that still confirms the stop.
          const exited = err instanceof SignalError &&
            (err.reason === "not_found" || err.reason === "replaced");
          if (!exited) confirmed = false;
        }
      }
      this.#stopConfirmed = confirmed;
      if (wasForging) this.#log.info("forging disabled", { reason, confirmed });
    }).catch(() => {});
  }

  /** Sends SIGHUP to `known`, or to the node as last found (looking for it if need be). */
  async #hangup(reason: string, known?: NodeInfo): Promise<void> {
    const node = known ?? this.#node ?? await this.#findNode();
    if (node === undefined) {
      this.#d.metrics.signalFailures.inc({ reason: "not_found" });
      throw new SignalError(
        "not_found",
        `Cannot signal ${this.#d.config.nodeProcessName}: no such process`,
      );
    }
    try {
      await this.#d.node.hangup(node);
      this.#d.metrics.sighups.inc({ reason });
      this.#log.debug("sent SIGHUP", { pid: node.pid, reason });
    } catch (err) {
      const why = err instanceof SignalError ? err.reason : "error";
      this.#d.metrics.signalFailures.inc({ reason: why });
      this.#log.error("cannot signal the node", { pid: node.pid, reason, err });
      throw err;
    }
  }

  #withNodeLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#nodeLock.then(fn, fn);
    this.#nodeLock = run.catch(() => {});
    return run;
  }

  #setStatus(update: Parameters<StatusReporter["report"]>[0], onlyIfLeaderIs?: string): void {
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
    void status.event("Normal", update.reason, update.message).catch(() =>
      this.#d.metrics.statusUpdateFailures.inc()
    );
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const stop = new AbortController();
      const done = () => {
        stop.abort();
        this.#wake = undefined;
        resolve();
      };
      this.#wake = done;
      signal.addEventListener("abort", done, { once: true, signal: stop.signal });
      abortableSleep(ms, stop.signal).then(done);
    });
  }
}
