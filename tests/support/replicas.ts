/**
 * A forge-manager deployment on the local control plane for integration tests, the demo and the
 * benchmark: a namespace with the shipped CRD, Role, fence Role and CardanoLeader object, an
 * identity bound to those Roles, and N simulated pods sharing one credential set.
 *
 * @module
 */

import { loadAllYaml } from "@kubernetes/client-node";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { ControlPlane } from "./control_plane.ts";
import { type CredentialSet, makeCredentialSet } from "./keys.ts";
import { type Pod, startPod } from "./pod.ts";

const MANIFESTS = new URL("../../manifests/", import.meta.url).pathname;

/** Fast timings for tests (the production defaults are 15/10/2/5 s). */
export const FAST_TIMING = {
  LEASE_DURATION: "4",
  RENEW_DEADLINE: "2",
  ACQUIRE_DELAY: "1",
  SLEEP_INTERVAL: "1",
};

async function manifest(file: string): Promise<KubernetesObject[]> {
  return loadAllYaml(await Deno.readTextFile(`${MANIFESTS}${file}`)) as KubernetesObject[];
}

/** A pool of its own in a shared namespace: its Lease and CardanoLeader names (see `suffix`). */
export interface PoolNames {
  /** Appended to the shipped names of the Roles, ServiceAccount, Lease and CardanoLeader. */
  suffix: string;
}

/** The shipped names with a pool's suffix: what manifests/examples/second-pool's overlay makes. */
export function poolNames(pool: PoolNames | undefined) {
  const s = pool?.suffix ?? "";
  return {
    lease: `cardano-node-leader${s}`,
    cardanoLeader: `cardano-leader${s}`,
    role: `forge-manager${s}`,
    fenceRole: `forge-manager-fence${s}`,
    serviceAccount: `forge-manager-test${s}`,
  };
}

/**
 * Installs the shipped CRD, RBAC and CardanoLeader object into `namespace` and returns a
 * kubeconfig for the shipped ServiceAccount's Roles. With `pool`, the Roles, their names and
 * resourceNames, and the CardanoLeader carry its suffix (a second pool beside the first).
 */
export async function installForgeManager(
  cp: ControlPlane,
  namespace: string,
  pool?: PoolNames,
): Promise<string> {
  const names = poolNames(pool);
  const suffix = pool?.suffix ?? "";
  await cp.ensureNamespace(namespace);
  for (const obj of await manifest("crd.yaml")) await cp.apply(obj);
  for (const obj of [...await manifest("rbac.yaml"), ...await manifest("cardanoleader.yaml")]) {
    if (obj.kind === "CustomResourceDefinition") continue;
    obj.metadata = { ...obj.metadata, namespace, name: `${obj.metadata?.name}${suffix}` };
    const o = obj as {
      subjects?: { namespace?: string; name?: string }[];
      roleRef?: { name: string };
      rules?: { resourceNames?: string[] }[];
    };
    for (const subject of o.subjects ?? []) {
      subject.namespace = namespace;
      subject.name = `${subject.name}${suffix}`;
    }
    if (o.roleRef !== undefined) o.roleRef.name = `${o.roleRef.name}${suffix}`;
    for (const rule of o.rules ?? []) {
      if (rule.resourceNames) rule.resourceNames = rule.resourceNames.map((n) => `${n}${suffix}`);
    }
    await cp.apply(obj);
  }
  const kubeconfig = await cp.mintIdentity({
    namespace,
    serviceAccount: names.serviceAccount,
    roleName: names.role,
  });
  // The fence's own Role, bound to the same identity.
  await cp.apply({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: `${names.serviceAccount}-fence`, namespace },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: names.fenceRole },
    subjects: [{ kind: "ServiceAccount", name: names.serviceAccount, namespace }],
  } as KubernetesObject);
  return kubeconfig;
}

/** Starts `count` pods named `<prefix>-<i>` under `root`, one after the other. */
export async function startReplicas(opts: {
  count: number;
  root: string;
  namespace: string;
  kubeconfig: string;
  prefix?: string;
  env?: Record<string, string>;
  /** The pool's credential set, shared by every pod (default: a fresh dummy set). */
  credentials?: CredentialSet;
  /** Each pod's KES agent socket, by pod name (KES agent mode; see PodOptions). */
  kesAgentSocket?: (pod: string) => string;
}): Promise<Pod[]> {
  const credentials = opts.credentials ?? makeCredentialSet();
  const pods: Pod[] = [];
  for (let i = 0; i < opts.count; i++) {
    const name = `${opts.prefix ?? "forge"}-${i}`;
    pods.push(
      await startPod({
        name,
        dir: `${opts.root}/${name}`,
        credentials,
        ...(opts.kesAgentSocket ? { kesAgentSocket: opts.kesAgentSocket(name) } : {}),
        env: {
          NAMESPACE: opts.namespace,
          KUBECONFIG: opts.kubeconfig,
          ...FAST_TIMING,
          ...opts.env,
        },
      }),
    );
  }
  return pods;
}
