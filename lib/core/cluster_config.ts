/**
 * Which pool this replica forges for and where it stands among the pool's clusters: the pool's
 * names (POOL_NAME, POOL_TICKER: labels and status only), and with GLOBAL_KUBECONFIG the
 * election across clusters (README, "Several clusters"): this cluster's name, its
 * CardanoForgeCluster, and the Lease and CardanoLeader in the coordination cluster.
 *
 * @module
 */

import type { EnvReader } from "./variables.ts";

/** The election across clusters, as configured (GLOBAL_KUBECONFIG set). */
export interface GlobalConfig {
  /** This cluster's name among the pool's clusters (CLUSTER_NAME). */
  cluster: string;
  /** Its region, for people (CLUSTER_REGION; the CardanoForgeCluster's spec.region wins). */
  region: string;
  /** Its priority until its CardanoForgeCluster says otherwise (CLUSTER_PRIORITY; 1 highest). */
  priority: number;
  /** The CardanoForgeCluster object in this namespace (FORGE_CLUSTER_NAME). */
  forgeClusterName: string;
  /** The coordination cluster's kubeconfig (GLOBAL_KUBECONFIG). */
  kubeconfig: string;
  /** Its namespace, Lease and CardanoLeader (GLOBAL_NAMESPACE, GLOBAL_LEASE_NAME, ...). */
  namespace: string;
  leaseName: string;
  cardanoLeaderName: string;
  /** Added per priority step to a lower-priority cluster's wait (PRIORITY_DELAY). */
  priorityDelayMs: number;
  /**
   * How long a higher-priority cluster must have been ready before the Lease goes back to it by
   * a planned handover (RETURN_STABLE).
   */
  returnStableMs: number;
  /** The health check's endpoint, the only one the sandbox may reach (HEALTH_CHECK_ENDPOINT). */
  healthEndpoint: string | undefined;
}

/** The pool's names, for labels and status (none is used to decide anything). */
export interface PoolNames {
  /** POOL_NAME: the pool's name as its metadata gives it. */
  name: string | undefined;
  /** POOL_TICKER: 3 to 5 upper-case letters or digits. */
  ticker: string | undefined;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** POOL_NAME and POOL_TICKER. */
export function readPoolNames(r: EnvReader): PoolNames {
  const name = r.get("POOL_NAME");
  // A label value: printable, and no longer than the pool metadata's own limit.
  const printable = [...name].every((c) => c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) !== 0x7f);
  if (name.length > 50 || !printable) {
    r.fail("POOL_NAME", name, "must be at most 50 printable characters");
  }
  const ticker = r.get("POOL_TICKER");
  if (ticker !== "" && !/^[A-Z0-9]{3,5}$/.test(ticker)) {
    r.fail("POOL_TICKER", ticker, "must be 3 to 5 upper-case letters or digits");
  }
  return { name: name === "" ? undefined : name, ticker: ticker === "" ? undefined : ticker };
}

/**
 * The election across clusters, if GLOBAL_KUBECONFIG is set: it needs CLUSTER_NAME, and the
 * guard (a cluster cannot ask another region for proof that its node stopped: the takeover rests
 * on the guard's bound, README "Several clusters").
 */
export function readGlobal(
  r: EnvReader,
  local: { namespace: string; leaseName: string; cardanoLeaderName: string },
  guard: { fence: string; guardSocket: string | undefined },
): GlobalConfig | undefined {
  const kubeconfig = r.get("GLOBAL_KUBECONFIG");
  const cluster = r.get("CLUSTER_NAME");
  if (kubeconfig === "") {
    // Without the coordination cluster these say nothing: refuse them rather than ignore them.
    for (const name of ["CLUSTER_NAME", "FORGE_CLUSTER_NAME", "GLOBAL_LEASE_NAME"] as const) {
      if ((r.env[name]?.trim() ?? "") !== "") {
        r.fail(name, r.get(name), "needs GLOBAL_KUBECONFIG (the election across clusters)");
      }
    }
    return undefined;
  }
  if (!kubeconfig.startsWith("/")) {
    r.fail("GLOBAL_KUBECONFIG", kubeconfig, "must be an absolute path to one kubeconfig file");
  }
  if (cluster === "") {
    r.problems.push(
      'CLUSTER_NAME="": is required with GLOBAL_KUBECONFIG (this cluster\'s name among the ' +
        "pool's clusters, a DNS label)",
    );
  } else if (!DNS_LABEL.test(cluster)) {
    r.fail("CLUSTER_NAME", cluster, "must be a lower-case DNS label (at most 63 characters)");
  }
  if (guard.fence !== "guard" || guard.guardSocket === undefined) {
    r.problems.push(
      `GLOBAL_KUBECONFIG=${
        JSON.stringify(kubeconfig)
      }: needs FENCE=guard and GUARD_SOCKET (a cluster cannot prove that another region's node ` +
        "stopped: the takeover across clusters waits for the previous holder's guard bound)",
    );
  }
  const priorityRaw = r.get("CLUSTER_PRIORITY");
  const priority = Number(priorityRaw);
  if (!/^\d+$/.test(priorityRaw) || priority < 1 || priority > 999) {
    r.fail("CLUSTER_PRIORITY", priorityRaw, "must be a whole number from 1 (highest) to 999");
  }
  const orLocal = (
    name: "GLOBAL_NAMESPACE" | "GLOBAL_LEASE_NAME" | "GLOBAL_CARDANO_LEADER_NAME",
    fallback: string,
    pattern: RegExp,
    what: string,
  ) => {
    const value = r.get(name) === "" ? fallback : r.get(name);
    if (!pattern.test(value)) r.fail(name, value, `must be ${what}`);
    return value;
  };
  const forgeClusterName = r.get("FORGE_CLUSTER_NAME") === ""
    ? cluster
    : r.get("FORGE_CLUSTER_NAME");
  // Derived from CLUSTER_NAME, it is checked with it; only one set explicitly is checked here.
  if (r.get("FORGE_CLUSTER_NAME") !== "" && !DNS_SUBDOMAIN.test(forgeClusterName)) {
    r.fail("FORGE_CLUSTER_NAME", forgeClusterName, "must be a Kubernetes object name");
  }
  const healthEndpoint = r.get("HEALTH_CHECK_ENDPOINT");
  if (healthEndpoint !== "" && !/^https?:\/\/[^/?#]+/.test(healthEndpoint)) {
    r.fail(
      "HEALTH_CHECK_ENDPOINT",
      healthEndpoint,
      "must be an http:// or https:// URL with a host",
    );
  }
  return {
    cluster,
    region: r.get("CLUSTER_REGION"),
    priority,
    forgeClusterName,
    kubeconfig,
    namespace: orLocal("GLOBAL_NAMESPACE", local.namespace, DNS_LABEL, "a namespace name"),
    leaseName: orLocal("GLOBAL_LEASE_NAME", local.leaseName, DNS_SUBDOMAIN, "an object name"),
    cardanoLeaderName: orLocal(
      "GLOBAL_CARDANO_LEADER_NAME",
      local.cardanoLeaderName,
      DNS_SUBDOMAIN,
      "an object name",
    ),
    priorityDelayMs: r.seconds("PRIORITY_DELAY", 0, false, 600),
    returnStableMs: r.seconds("RETURN_STABLE", 0, false, 86_400),
    healthEndpoint: healthEndpoint === "" ? undefined : healthEndpoint,
  };
}
