/**
 * This cluster and the others, as the election across clusters sees them: this cluster's
 * standing (its CardanoForgeCluster, the health check), the other clusters' entries in the
 * coordination CardanoLeader, and who should hold the coordination Lease instead of us (a
 * higher-priority cluster ready long enough, an operator's request, or anyone when we are
 * Disabled). Everything here is done by this cluster's local leader only. Pure.
 *
 * @module
 */

import type { Effect, ForgingEvent } from "./events.ts";
import { report } from "./events.ts";
import type { GlobalState, Member, MemberView } from "./global_state.ts";
import { type ForgingState, isForging, LEADING_PHASES, leadsNow, readTimeout } from "./state.ts";
import { type HealthCount, type Standing, standing } from "./standing.ts";
import { mayForge } from "./credential_verdict.ts";
import { guardView } from "./guard.ts";
import type { ElectionState } from "./election.ts";

/** How often the CardanoForgeCluster status is written again unchanged, in ms. */
export const CLUSTER_REPORT_MS = 60_000;

/** The global part of the state (only called with `cfg.global`). */
export function g(s: ForgingState): GlobalState {
  return s.global!;
}

/** The state with its global part replaced. */
export function withGlobal(s: ForgingState, global: GlobalState): ForgingState {
  return { ...s, global };
}

/**
 * The coordination election as this cluster's candidate weighs it. The hold-off after handing the
 * Lease on keeps us from racing the cluster we handed it to; it gives way to a release handed back
 * to us, and ends once another holder took the Lease: from then on a failover waits for that
 * holder's term to run out and its guard bound, as any other (a cut-off cluster that had just been
 * handed the pool would otherwise cost up to two lease durations more).
 */
export function candidateElection(s: ForgingState): ElectionState {
  const gs = g(s);
  const seen = gs.election.seen?.observation;
  if (gs.election.notBefore === undefined || seen?.kind !== "present") return gs.election;
  const r = seen.record;
  const handedToUs = r.holder === "" && r.releasedBy !== undefined &&
    r.handoverTo === s.cfg.global!.cluster;
  const takenByAnother = r.holder !== "" && r.holder !== gs.election.identity;
  return handedToUs || takenByAnother ? { ...gs.election, notBefore: undefined } : gs.election;
}

/** Whether this replica is its cluster's local leader (it holds a local term). */
export function localLeader(s: ForgingState): boolean {
  return s.election.term !== undefined && LEADING_PHASES.has(s.phase.kind);
}

/** This cluster's standing now (before the first read of its resource: CLUSTER_PRIORITY). */
export function standingNow(s: ForgingState, now: number): Standing {
  const gs = g(s);
  const cfg = s.cfg.global!;
  const spec = gs.spec ?? { forgeState: "Priority-based" as const, priority: cfg.priority };
  return standing(spec, gs.health, now + (gs.wallOffsetMs ?? 0));
}

/**
 * Whether this replica may compete for the coordination Lease now: its cluster's local leader
 * with its fence done (awaiting its node or the Lease), its node ready, its resource read, and a
 * standing other than Disabled.
 */
export function competes(s: ForgingState, now: number): boolean {
  // The coordination CardanoLeader read once too: a pause of the pool there must be known first.
  // Its local term may forge now (past any probation): it could promote at once once it wins.
  return leadsNow(s, now) && s.phase.kind === "awaiting_node" &&
    s.node.kind === "present" && s.node.ready && g(s).specRead && g(s).control !== undefined &&
    standingNow(s, now).state !== "Disabled" &&
    (s.credentials === undefined || mayForge(s.credentials));
}

/**
 * Whether a member's candidate is alive: its heartbeat, written and read every SLEEP_INTERVAL,
 * moved within three of those intervals. Shorter than a takeover (a Lease and a delay): a holder
 * that has just taken the Lease from a cluster that went silent never counts it alive.
 */
function alive(s: ForgingState, m: Member, now: number): boolean {
  return now - m.changedAt < 3 * s.cfg.sleepIntervalMs;
}

/** The other clusters' entries, as read now (`readySince` kept while they stay ready). */
export function membersRead(
  s: ForgingState,
  views: readonly MemberView[],
  now: number,
): Readonly<Record<string, Member>> {
  const before = g(s).members;
  const members: Record<string, Member> = {};
  for (const view of views) {
    if (view.cluster === s.cfg.global!.cluster) continue;
    const prev = before[view.cluster];
    const changedAt = prev !== undefined && prev.view.heartbeat === view.heartbeat
      ? prev.changedAt
      : now;
    const ready = view.ready && view.state !== "Disabled";
    // Stable means ready at the same standing: a priority that changed (a health check that
    // passes again, an operator's edit) counts from the change, so a flapping check cannot
    // bounce the Lease.
    // A member that was not alive at this read starts over too (it was cut off, or restarted).
    const same = prev !== undefined && prev.view.priority === view.priority &&
      prev.view.state === view.state && alive(s, prev, now);
    const readySince = ready ? (same ? prev.readySince ?? now : now) : undefined;
    members[view.cluster] = {
      view,
      changedAt,
      ...(readySince !== undefined ? { readySince } : {}),
    };
  }
  return members;
}

/**
 * A higher-priority cluster to hand the Lease back to: alive, ready and eligible without a
 * break for RETURN_STABLE, its effective priority strictly better than ours, once our own term
 * has lasted RETURN_STABLE too. The best of them.
 */
export function returnTarget(s: ForgingState, now: number): Member | undefined {
  const mine = standingNow(s, now).priority;
  const stable = s.cfg.global!.returnStableMs;
  // Our own term lasts RETURN_STABLE first: a pool an operator (or a failover) just moved here
  // does not bounce straight back.
  const since = g(s).acquiredAt;
  if (since === undefined || now - since < stable) return undefined;
  return Object.values(g(s).members)
    .filter((m) =>
      alive(s, m, now) && m.readySince !== undefined &&
      now - m.readySince >= stable && m.view.priority < mine
    )
    .sort((a, b) =>
      a.view.priority - b.view.priority || a.view.cluster.localeCompare(b.view.cluster)
    )[0];
}

/** The member a request names (a cluster; "" for the best ready one), if alive and ready. */
export function requestTarget(s: ForgingState, to: string, now: number): Member | undefined {
  return Object.values(g(s).members)
    .filter((m) =>
      (to === "" || m.view.cluster === to) && alive(s, m, now) &&
      m.readySince !== undefined
    )
    .sort((a, b) =>
      a.view.priority - b.view.priority || a.view.cluster.localeCompare(b.view.cluster)
    )[0];
}

/** The health check: a probe of the endpoint, or this replica's own readiness without one. */
export function checkHealth(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const gs = g(s);
  const hc = gs.spec?.healthCheck;
  if (hc === undefined || !hc.enabled) return s;
  const next = { ...gs, nextHealthAt: now + hc.intervalMs };
  if (hc.endpoint === undefined) {
    // Without an endpoint: whether this replica could forge now (node ready, keys usable, guard).
    const ready = s.node.kind === "present" && s.node.ready &&
      (s.credentials === undefined || mayForge(s.credentials)) &&
      (!s.cfg.guard || guardView(s) !== "absent");
    return healthResult(
      withGlobal(s, next),
      ready,
      ready ? "the local leader's node is ready" : "the local leader's node is not ready",
      fx,
    );
  }
  if (hc.endpoint !== s.cfg.global!.healthEndpoint) {
    return healthResult(
      withGlobal(s, next),
      false,
      `endpoint ${hc.endpoint} is not this sidecar's HEALTH_CHECK_ENDPOINT (${
        s.cfg.global!.healthEndpoint ?? "unset"
      }), the only one its sandbox may reach`,
      fx,
    );
  }
  fx.push({ kind: "check_health", endpoint: hc.endpoint, timeoutMs: hc.timeoutMs });
  return withGlobal(s, { ...next, healthBusy: true });
}

/** A health check's result: the count of failures in a row, reported when health changes. */
export function healthResult(
  s: ForgingState,
  ok: boolean,
  message: string,
  fx: Effect[],
): ForgingState {
  const gs = g(s);
  const before = gs.health;
  const health: HealthCount = { failures: ok ? 0 : (before?.failures ?? 0) + 1, message };
  const threshold = gs.spec?.healthCheck?.failureThreshold ?? 1;
  const wasHealthy = before === undefined || before.failures < threshold;
  const healthy = health.failures < threshold;
  if (before === undefined || wasHealthy !== healthy) {
    fx.push(report({ kind: "health_changed", healthy, failures: health.failures, message }));
  }
  return withGlobal(s, { ...gs, health, healthBusy: false });
}

/** The CardanoForgeCluster's spec, read. */
export function clusterRead(
  s: ForgingState,
  e: Extract<ForgingEvent, { kind: "cluster_read" }>,
  now: number,
): ForgingState {
  const gs = g(s);
  const { spec: _old, ...rest } = gs;
  return withGlobal(s, {
    ...rest,
    ...(e.spec !== undefined ? { spec: e.spec } : {}),
    specRead: true,
    clusterBusy: false,
    wallOffsetMs: e.wallMs - now,
    nextClusterReadAt: now + s.cfg.sleepIntervalMs,
  });
}

/** Reports the standing when it changes (log, metrics, the resource's status). */
export function noteStanding(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  const gs = g(s);
  const st = standingNow(s, now);
  const key = `${st.state}/${st.priority}/${st.reason}`;
  if (
    gs.standing !== undefined &&
    `${gs.standing.state}/${gs.standing.priority}/${gs.standing.reason}` === key
  ) {
    return s;
  }
  fx.push(report({ kind: "standing_changed", standing: st }));
  return withGlobal(s, { ...gs, standing: st, nextReportAt: now });
}

/** This cluster's entry for the coordination CardanoLeader, and the CardanoForgeCluster status. */
export function publishCluster(s: ForgingState, now: number, fx: Effect[]): ForgingState {
  let gs = g(s);
  const cfg = s.cfg.global!;
  const st = standingNow(s, now);
  const holds = gs.election.term !== undefined;
  const entry = {
    phase: s.phase.kind,
    leader: holds,
    forging: isForging(s),
    nodeFound: s.node.kind === "present",
    fence: !s.cfg.fence
      ? "off" as const
      : s.phase.kind === "fencing"
      ? "proving" as const
      : "idle" as const,
    guard: guardView(s),
    reason: holds ? "holds the coordination Lease" : competes(s, now) ? "candidate" : s.phase.kind,
    pod: s.cfg.podName,
    ready: competes(s, now) || (holds && LEADING_PHASES.has(s.phase.kind)),
    state: st.state,
    priority: st.priority,
    region: gs.spec?.region ?? cfg.region,
  };
  const key = JSON.stringify(entry);
  if (key !== gs.published || now >= gs.nextPublishAt) {
    fx.push({ kind: "publish_member", entry });
    // A heartbeat every SLEEP_INTERVAL: well inside the window in which others count it alive.
    gs = { ...gs, published: key, nextPublishAt: now + s.cfg.sleepIntervalMs };
  }
  const seen = gs.election.seen?.observation;
  const holder = seen?.kind === "present" ? seen.record.holder : "";
  const holderCluster = holder === "" ? "" : holder.slice(0, holder.lastIndexOf("_"));
  const activeLeader = holderCluster === ""
    ? ""
    : holderCluster === cfg.cluster
    ? `${cfg.cluster}/${s.cfg.podName}`
    : `${holderCluster}/${gs.members[holderCluster]?.view.pod ?? "?"}`;
  const hc = gs.spec?.healthCheck;
  const health = hc?.enabled && gs.health !== undefined
    ? {
      healthy: gs.health.failures < hc.failureThreshold,
      consecutiveFailures: gs.health.failures,
      message: gs.health.message,
    }
    : undefined;
  const report = {
    standing: st,
    activeLeader,
    localLeader: s.cfg.podName,
    ...(health !== undefined ? { health } : {}),
  };
  const reportKey = JSON.stringify(report);
  if (reportKey !== gs.reported || now >= gs.nextReportAt) {
    fx.push({ kind: "report_cluster", report });
    gs = { ...gs, reported: reportKey, nextReportAt: now + CLUSTER_REPORT_MS };
  }
  return withGlobal(s, gs);
}

/** The CardanoForgeCluster read, when due (the local leader's). */
export function readCluster(s: ForgingState, fx: Effect[]): ForgingState {
  fx.push({ kind: "read_cluster", timeoutMs: readTimeout(s.cfg) });
  return withGlobal(s, { ...g(s), clusterBusy: true });
}
