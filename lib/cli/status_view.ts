/**
 * What `forge-manager status` shows, and the checks `handover` makes before it changes anything:
 * pure functions of what was read (the Lease, the CardanoLeader, the replicas' Pods) and the
 * wall-clock time of the read. Our own code only, no npm imports.
 *
 * @module
 */

import {
  type CardanoLeaderSpec,
  type HandoverStatus,
  REPLICA_FRESH_MS,
  type ReplicaEntry,
} from "../kube/cardano_leader.ts";

/** A cluster's entry on the coordination cluster's CardanoLeader (its local leader writes it). */
export interface ClusterFields {
  /** The cluster's local leader. */
  pod: string;
  ready: boolean;
  state: string;
  priority: number;
  region?: string;
}

/** Whether an entry is a cluster's (across clusters) rather than a pod's. */
export function isClusterEntry(entry: ReplicaEntry): entry is ReplicaEntry & ClusterFields {
  const e = entry as Partial<ClusterFields>;
  return typeof e.pod === "string" && typeof e.priority === "number" &&
    typeof e.state === "string";
}

/** A replica entry older than this is not counted as a running forge-manager. */
export const FRESH_MS = REPLICA_FRESH_MS;

/** What the command read, as plain data. */
export interface StatusInputs {
  namespace: string;
  leaseName: string;
  /** The Lease, or undefined when it does not exist. */
  lease?: {
    holder: string;
    acquireTime?: string;
    renewTime?: string;
    transitions: number;
    releasedBy?: string;
    handoverTo?: string;
  };
  spec: CardanoLeaderSpec;
  replicas: Record<string, ReplicaEntry>;
  lastHandover?: HandoverStatus;
  /** Each pod's Ready condition (undefined: no such Pod). */
  pods: Record<string, { ready: boolean } | undefined>;
}

/** One replica's row (a cluster's, on the coordination cluster). */
export interface ReplicaRow extends ReplicaEntry {
  pod: string;
  /** A cluster's row: its local leader, state, priority and region. */
  cluster?: { candidate: string; state: string; priority: number; region: string };
  /** The Pod's Ready condition; undefined when the Pod does not exist. */
  ready: boolean | undefined;
  /** Whether the entry's heartbeat is recent (the sidecar runs). */
  fresh: boolean;
  heartbeatAgeMs: number;
  sinceAgeMs: number;
}

/** The whole picture. */
export interface StatusModel {
  namespace: string;
  lease: {
    name: string;
    exists: boolean;
    holder: string;
    holderPod: string;
    termAgeMs?: number;
    renewAgeMs?: number;
    transitions: number;
    releasedBy?: string;
    handoverTo?: string;
  };
  pause?: {
    reason: string;
    by: string;
    at: string;
    until?: string;
    active: boolean;
  };
  handoverRequest?: CardanoLeaderSpec["handover"];
  lastHandover?: HandoverStatus;
  /** spec.preferredReplica; "" for none. */
  preferred: string;
  replicas: ReplicaRow[];
  /** The pods that exist (their Pod objects), entry or not. */
  podsSeen: string[];
  /** The pool's next leader slot as the fresh entries say (a schedule is configured). */
  nextSlot?: { at: string; inMs: number };
}

function podOf(identity: string): string {
  const at = identity.lastIndexOf("_");
  return at < 0 ? identity : identity.slice(0, at);
}

function age(now: number, time: string | undefined): number | undefined {
  const t = time === undefined ? NaN : Date.parse(time);
  return Number.isFinite(t) ? Math.max(0, now - t) : undefined;
}

/** Whether a pause is in force at wall time `now`. */
export function pauseInForce(spec: CardanoLeaderSpec, now: number): boolean {
  const p = spec.pause;
  if (p === undefined) return false;
  const until = p.until === undefined ? NaN : Date.parse(p.until);
  return !Number.isFinite(until) || now < until;
}

/** Builds the picture from what was read at wall time `now`. Pure. */
export function statusModel(inputs: StatusInputs, now: number): StatusModel {
  const lease = inputs.lease;
  const holder = lease?.holder ?? "";
  const replicas = Object.entries(inputs.replicas).map(([pod, entry]): ReplicaRow => {
    const heartbeatAgeMs = age(now, entry.heartbeat) ?? Infinity;
    const cluster = isClusterEntry(entry)
      ? {
        candidate: entry.pod,
        state: entry.state,
        priority: entry.priority,
        region: entry.region ?? "",
      }
      : undefined;
    return {
      ...entry,
      ...(cluster !== undefined ? { cluster } : {}),
      pod,
      ready: inputs.pods[pod]?.ready,
      fresh: heartbeatAgeMs < FRESH_MS,
      heartbeatAgeMs,
      sinceAgeMs: age(now, entry.since) ?? Infinity,
    };
  }).sort((a, b) => a.pod.localeCompare(b.pod));
  const p = inputs.spec.pause;
  const termAgeMs = holder === "" ? undefined : age(now, lease?.acquireTime);
  const renewAgeMs = age(now, lease?.renewTime);
  return {
    namespace: inputs.namespace,
    lease: {
      name: inputs.leaseName,
      exists: lease !== undefined,
      holder,
      holderPod: holder === "" ? "" : podOf(holder),
      ...(termAgeMs !== undefined ? { termAgeMs } : {}),
      ...(renewAgeMs !== undefined ? { renewAgeMs } : {}),
      transitions: lease?.transitions ?? 0,
      ...(lease?.releasedBy !== undefined ? { releasedBy: lease.releasedBy } : {}),
      ...(lease?.handoverTo !== undefined ? { handoverTo: lease.handoverTo } : {}),
    },
    ...(p !== undefined ? { pause: { ...p, active: pauseInForce(inputs.spec, now) } } : {}),
    ...(inputs.spec.handover !== undefined ? { handoverRequest: inputs.spec.handover } : {}),
    ...(inputs.lastHandover !== undefined ? { lastHandover: inputs.lastHandover } : {}),
    preferred: inputs.spec.preferredReplica ?? "",
    replicas,
    podsSeen: Object.entries(inputs.pods).filter(([, p]) => p !== undefined).map(([n]) => n).sort(),
    ...nextSlotOf(replicas, now),
  };
}

/** The earliest next leader slot still ahead among the fresh entries, if any says one. */
function nextSlotOf(rows: ReplicaRow[], now: number): Pick<StatusModel, "nextSlot"> {
  const ahead = rows.filter((r) => r.fresh && r.nextSlotAt !== undefined)
    .map((r) => ({ at: r.nextSlotAt!, inMs: Date.parse(r.nextSlotAt!) - now }))
    .filter((n) => Number.isFinite(n.inMs) && n.inMs >= 0)
    .sort((a, b) => a.inMs - b.inMs);
  return ahead[0] !== undefined ? { nextSlot: ahead[0] } : {};
}

/** What `prefer` would do (and what the return waits for now), or why it is refused. */
export type PreferPlan =
  | { ok: true; pod: string; was: string; now: string }
  | { ok: false; reason: string };

/** The checks before `prefer POD` (`pod` undefined: `--clear`). Pure. */
export function planPrefer(model: StatusModel, pod: string | undefined): PreferPlan {
  const was = model.preferred;
  if (pod === undefined) {
    return was === ""
      ? { ok: false, reason: "no preferred replica is set" }
      : { ok: true, pod: "", was, now: "the Lease stays where it is" };
  }
  if (pod === was) return { ok: false, reason: `${pod} is preferred already` };
  const row = model.replicas.find((r) => r.pod === pod);
  if (row === undefined && !model.podsSeen.includes(pod)) {
    return {
      ok: false,
      reason: `${pod} is not a replica: no Pod and no replica entry of that name`,
    };
  }
  return { ok: true, pod, was, now: returnOutlook(model, pod, row) };
}

/** Where the preferred pod stands now, and what the return to it waits for. */
function returnOutlook(model: StatusModel, pod: string, row: ReplicaRow | undefined): string {
  const stable = "for the sidecars' PREFERRED_STABLE";
  if (model.lease.holderPod === pod) return "it leads now";
  if (row === undefined || !row.fresh) {
    return `it runs no forge-manager now: the leader hands the term to it once it has stood by ready and synced ${stable}`;
  }
  if (row.sync === "lagging") {
    return `its node lags the chain now (${
      row.tipLagSlots ?? "?"
    } slots): the term returns to it once it has been synced ${stable}`;
  }
  if (row.phase === "standby" && row.nodeFound && row.sync === "synced") {
    return `it stands by ready and synced: the leader hands the term to it once it has been so ${stable}`;
  }
  const why = row.sync !== "synced"
    ? `its sync is ${row.sync ?? "not published"}`
    : `phase ${row.phase}`;
  return `it is not ready and synced now (${why}): the term returns to it once it has been so ${stable}`;
}

/** What a handover would do (and what to know about its target), or why it is refused. */
export type HandoverPlan =
  | { ok: true; from: string; to: string; note?: string }
  | { ok: false; reason: string };

/** What `status` says of a replica's sync: `synced 3`, `lagging 412`, `unknown`, `-`. */
export function syncText(row: Pick<ReplicaRow, "sync" | "tipLagSlots" | "fresh">): string {
  if (!row.fresh || row.sync === undefined) return "-";
  return row.sync === "unknown" ? "unknown" : `${row.sync} ${row.tipLagSlots ?? "?"}`;
}

/** The checks before a handover; `to` undefined picks a ready standby. Pure. */
export function planHandover(model: StatusModel, to: string | undefined): HandoverPlan {
  const from = model.lease.holderPod;
  if (from === "") {
    return { ok: false, reason: `there is no leader: Lease ${model.lease.name} has no holder` };
  }
  if (model.pause?.active) {
    return {
      ok: false,
      reason: `the deployment is paused by ${model.pause.by} (${model.pause.reason}): resume first`,
    };
  }
  const problem = (row: ReplicaRow | undefined, pod: string): string | undefined => {
    if (row === undefined || !row.fresh) {
      return `${pod} is not running forge-manager (no replica entry updated in the last ${
        FRESH_MS / 1000
      } s)`;
    }
    if (row.ready !== true) {
      if (row.cluster !== undefined) return `cluster ${pod}'s local leader is not ready`;
      return row.ready === undefined ? `${pod} has no Pod` : `${pod} is not ready`;
    }
    if (row.cluster !== undefined) {
      // A cluster: its entry says whether its local leader could forge once it holds the Lease.
      if (row.cluster.state === "Disabled") return `cluster ${pod} is Disabled`;
      return undefined;
    }
    if (row.phase === "stepped_aside") return `${pod} is stepping aside after its own term`;
    if (row.phase === "retired") return `${pod} is being deleted`;
    if (row.phase !== "standby") return `${pod} is not standing by (phase ${row.phase})`;
    if (row.sync === "lagging") {
      return `${pod}'s node lags the chain (${
        row.tipLagSlots ?? "?"
      } slots behind the wall clock's slot): hand over to a synced replica`;
    }
    return undefined;
  };
  // Unknown is no refusal (the sidecars promote such a replica too), but worth saying.
  const note = (row: ReplicaRow): Partial<Extract<HandoverPlan, { ok: true }>> =>
    row.sync === "unknown"
      ? { note: `${row.pod}'s sync is unknown (its node's metrics could not be read)` }
      : {};
  if (to !== undefined) {
    if (to === from) return { ok: false, reason: `${to} is the leader already` };
    const row = model.replicas.find((r) => r.pod === to);
    const why = problem(row, to);
    return why === undefined ? { ok: true, from, to, ...note(row!) } : { ok: false, reason: why };
  }
  // A synced standby first; one whose sync is unknown only when no synced one is ready.
  const candidates = model.replicas.filter((r) => r.pod !== from)
    .sort((a, b) => Number(b.sync === "synced") - Number(a.sync === "synced"));
  const ready = candidates.find((r) => problem(r, r.pod) === undefined);
  if (ready !== undefined) return { ok: true, from, to: ready.pod, ...note(ready) };
  const reasons = candidates.map((r) => problem(r, r.pod)).join("; ");
  return { ok: false, reason: `no standby is ready${reasons === "" ? "" : `: ${reasons}`}` };
}

/** `1.2s`, `3m04s`, `2h05m`, `3d04h`. */
export function formatAge(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "-";
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor(s / 3600) % 24)}h`;
}

const yesNo = (b: boolean | undefined, none = "-") => b === undefined ? none : b ? "yes" : "no";

/** The table. */
export function renderStatus(model: StatusModel, now: number): string {
  const l = model.lease;
  const lines: string[] = [];
  if (!l.exists) lines.push(`Lease ${model.namespace}/${l.name}: does not exist`);
  else if (l.holder === "") {
    lines.push(
      `Lease ${model.namespace}/${l.name}: no holder (released ${
        l.releasedBy !== undefined ? `cleanly by ${l.releasedBy}` : "uncleanly"
      }${l.handoverTo !== undefined ? `, handed to ${l.handoverTo}` : ""}, ${
        formatAge(l.renewAgeMs)
      } ago), ${l.transitions} transitions`,
    );
  } else {
    lines.push(
      `Lease ${model.namespace}/${l.name}: held by ${l.holderPod} (${l.holder}), term ${
        formatAge(l.termAgeMs)
      }, renewed ${formatAge(l.renewAgeMs)} ago, ${l.transitions} transitions`,
    );
  }
  const p = model.pause;
  if (p === undefined) lines.push("Pause: none");
  else {
    const until = p.until === undefined
      ? "until resumed"
      : `until ${p.until} (${
        p.active ? `in ${formatAge(Date.parse(p.until) - now)}` : "passed: not in force"
      })`;
    lines.push(`Pause: by ${p.by} at ${p.at}, ${until}: ${p.reason}`);
  }
  lines.push(`Preferred: ${model.preferred === "" ? "none" : model.preferred}`);
  if (model.nextSlot !== undefined) {
    lines.push(`Next leader slot: in ${formatAge(model.nextSlot.inMs)} (${model.nextSlot.at})`);
  }
  const header = [
    "POD",
    "READY",
    "LEADER",
    "FORGING",
    "NODE",
    "SYNC",
    "FENCE",
    "GUARD",
    "PHASE",
    "SINCE",
    "REASON",
    "HEARTBEAT",
  ];
  const rows = model.replicas.map((r) => [
    r.pod,
    r.ready === undefined ? "gone" : yesNo(r.ready),
    yesNo(r.fresh ? r.leader : undefined),
    yesNo(r.fresh ? r.forging : undefined),
    r.fresh ? (r.nodeFound ? "found" : "absent") : "-",
    syncText(r),
    r.fence,
    r.fresh ? r.guard ?? "-" : "-",
    r.phase,
    formatAge(r.sinceAgeMs),
    r.reason || "-",
    r.fresh ? `${formatAge(r.heartbeatAgeMs)} ago` : `stale (${formatAge(r.heartbeatAgeMs)})`,
  ]);
  // On the coordination cluster each row is a cluster: who leads it, and where it stands.
  if (model.replicas.some((r) => r.cluster !== undefined)) {
    header.splice(0, 1, "CLUSTER", "CANDIDATE", "STATE", "PRIORITY", "REGION");
    model.replicas.forEach((r, i) =>
      rows[i]!.splice(
        1,
        0,
        r.cluster?.candidate ?? "-",
        r.cluster?.state ?? "-",
        String(r.cluster?.priority ?? "-"),
        r.cluster?.region || "-",
      )
    );
  }
  if (rows.length === 0) lines.push("No replica has published its state yet.");
  else {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
    const line = (cells: string[]) =>
      cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
    lines.push(line(header), ...rows.map(line));
  }
  const h = model.lastHandover;
  if (h !== undefined) {
    const to = h.to === undefined ? "" : ` to ${h.to === "" ? "any standby" : h.to}`;
    // An operator's request says nothing more; the leader's own say why (sync, preferred).
    const why = h.reason === undefined || h.reason === "handover" ? "" : ` (${h.reason})`;
    lines.push(`Last handover: ${h.id}${to}${why}: ${h.result} at ${h.at}`);
  }
  return lines.join("\n");
}
