/**
 * Reads what cardano-node says about forging from its Prometheus endpoint (by default
 * `http://127.0.0.1:12798/metrics`; containers of one pod share the loopback): a pure parser of
 * the text format, and a small fetch adapter.
 *
 * Series, each accepted with the suffixes the node's two tracing systems use (`_int`,
 * `_counter`, `_real` or none) after the prefix `cardano_node_metrics_`:
 * `forging_enabled`, `slotNum`, `currentKESPeriod`, `remainingKESPeriods`,
 * `operationalCertificateStartKESPeriod`, `operationalCertificateExpiryKESPeriod`,
 * `Forge_forged`, `Forge_forge_about_to_lead` (legacy) or `Forge_about_to_lead`,
 * `Forge_node_is_leader`, `Forge_adopted`, `Forge_could_not_forge`.
 *
 * None of them is reliable alone (see lib/forging/forging_confirmation.ts); this module only
 * reads them.
 *
 * @module
 */

/** One reading of the node's metrics; a series the node did not export is undefined. */
export interface NodeMetricsSample {
  /** When it was read (the caller's clock, ms). */
  atMs: number;
  /** `forging_enabled`: 1 while forging, by the node's own account (since node 8.11). */
  forgingEnabled?: number;
  /** `slotNum`: the slot of the node's chain tip. */
  slotNum?: number;
  /** `currentKESPeriod` (present once forging credentials were loaded). */
  currentKESPeriod?: number;
  /** `remainingKESPeriods`. */
  remainingKESPeriods?: number;
  /** `operationalCertificateStartKESPeriod`. */
  opcertStartKESPeriod?: number;
  /** `operationalCertificateExpiryKESPeriod`. */
  opcertExpiryKESPeriod?: number;
  /** `Forge_forged`: blocks forged (counter). */
  forged?: number;
  /** `Forge_about_to_lead` / `Forge_forge_about_to_lead`: leadership checks, one a slot. */
  aboutToLead?: number;
  /** `Forge_node_is_leader`: slots this node led (counter). */
  nodeIsLeader?: number;
  /** `Forge_adopted`: forged blocks adopted (counter). */
  adopted?: number;
  /** `Forge_could_not_forge`: led slots it could not forge (counter). */
  couldNotForge?: number;
}

type Field = Exclude<keyof NodeMetricsSample, "atMs">;

const PREFIX = "cardano_node_metrics_";
const SUFFIXES = ["_int", "_counter", "_real", ""];
const BASES: Record<string, Field> = {
  forging_enabled: "forgingEnabled",
  slotNum: "slotNum",
  currentKESPeriod: "currentKESPeriod",
  remainingKESPeriods: "remainingKESPeriods",
  operationalCertificateStartKESPeriod: "opcertStartKESPeriod",
  operationalCertificateExpiryKESPeriod: "opcertExpiryKESPeriod",
  Forge_forged: "forged",
  Forge_forge_about_to_lead: "aboutToLead",
  Forge_about_to_lead: "aboutToLead",
  Forge_node_is_leader: "nodeIsLeader",
  Forge_adopted: "adopted",
  Forge_could_not_forge: "couldNotForge",
};

function fieldOf(name: string): Field | undefined {
  if (!name.startsWith(PREFIX)) return undefined;
  const rest = name.slice(PREFIX.length);
  for (const suffix of SUFFIXES) {
    if (suffix !== "" && !rest.endsWith(suffix)) continue;
    const field = BASES[rest.slice(0, rest.length - suffix.length)];
    if (field !== undefined) return field;
  }
  return undefined;
}

/**
 * Parses Prometheus text exposition (0.0.4) and picks the forging series. Comments, other
 * series and malformed lines are skipped; labels are ignored (the node exports these series
 * without labels). Pure.
 */
export function parseNodeMetrics(text: string, atMs: number): NodeMetricsSample {
  const sample: NodeMetricsSample = { atMs };
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+-?\d+)?$/);
    if (match === null) continue;
    const field = fieldOf(match[1]!);
    if (field === undefined) continue;
    const value = Number(match[3]);
    if (Number.isNaN(value) && match[3] !== "NaN") continue;
    sample[field] = value;
  }
  return sample;
}

/** The outcome of one read of the node's metrics. */
export type NodeMetricsRead =
  | { ok: true; sample: NodeMetricsSample }
  | { ok: false; error: string };

/** What {@linkcode readNodeMetrics} needs; tests pass fakes. */
export interface NodeMetricsReadOptions {
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
  /** Give up after this long (default 2000 ms). */
  timeoutMs?: number;
  /** The clock stamped on the sample (default `Date.now`). */
  now?: () => number;
}

/**
 * Fetches and parses the node's metrics. Never throws for an unreachable or failing endpoint:
 * the result says why, so the caller reports "unknown" rather than guessing. Needs net
 * permission for the endpoint's `host:port`.
 */
export async function readNodeMetrics(
  url: string,
  opts: NodeMetricsReadOptions = {},
): Promise<NodeMetricsRead> {
  const doFetch = opts.fetch ?? fetch;
  const now = opts.now ?? Date.now;
  try {
    const response = await doFetch(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 2000) });
    if (!response.ok) {
      await response.body?.cancel();
      return {
        ok: false,
        error: `Cannot read the node's metrics at ${url}: HTTP ${response.status}`,
      };
    }
    return { ok: true, sample: parseNodeMetrics(await response.text(), now()) };
  } catch (err) {
    const why = err instanceof DOMException && err.name === "TimeoutError"
      ? `no answer within ${opts.timeoutMs ?? 2000} ms`
      : err instanceof Error
      ? `${err.name}: ${err.message}`
      : String(err);
    return { ok: false, error: `Cannot read the node's metrics at ${url}: ${why}` };
  }
}
