/**
 * The multi-cluster example (manifests/examples/multi-cluster/) checked as
 * tests/manifests/manifests_test.ts checks manifests/: statically on what the pinned kubectl's
 * kustomize renders for each cluster (eu-west, us-east) and for the coordination cluster, and on
 * the shared control plane: every object accepted with strict field validation, and least
 * privilege proven with the ServiceAccounts' own tokens (what a coordination member, an operator
 * and a cluster's sidecar may do succeeds, everything else gets 403).
 *
 * Needs: read of the repository, run (kubectl, and what the shared control plane needs: the `dev`
 * permission set has it all).
 */
import assert from "node:assert/strict";
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  V1MicroTime,
} from "@kubernetes/client-node";
import { type Config, parseConfig } from "../../lib/core/config.ts";
import { MULTI_CLUSTER_DIR } from "../../tools/example_bases.ts";
import { REPO_ROOT } from "../../tools/dummy_example.ts";
import { builtTool } from "../support/built_tools.ts";
import {
  cluster,
  dryRunAll,
  find,
  firstWatchEvent,
  guardOf,
  integration,
  type Json,
  kubectl,
  kustomize,
  mergePatch,
  type Obj,
  podSpec,
  readRepo,
  type Rendered,
  sidecarOf,
  statusOf,
  uniqueNamespace,
  waitAllowed,
} from "../support/manifests.ts";

const CLUSTERS = ["eu-west", "us-east"] as const;
type ClusterName = typeof CLUSTERS[number];
const COORDINATION_NAMESPACE = "cardano-coordination";

const shipped = await kustomize("manifests");
const overlays = new Map<ClusterName, Rendered[]>();
for (const name of CLUSTERS) overlays.set(name, await kustomize(`${MULTI_CLUSTER_DIR}/${name}`));
const coordination = await kustomize(`${MULTI_CLUSTER_DIR}/coordination`);

const key = (o: Obj) => `${o.kind}/${o.metadata.name}`;

/** What each cluster's overlay adds to the sidecar's environment. */
const ADDED_ENV = [
  "GLOBAL_KUBECONFIG",
  "GLOBAL_NAMESPACE",
  "GLOBAL_LEASE_NAME",
  "GLOBAL_CARDANO_LEADER_NAME",
  "CLUSTER_NAME",
  "CLUSTER_REGION",
  "CLUSTER_PRIORITY",
];

function sidecarEnv(objects: Rendered[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of sidecarOf(find(objects, "StatefulSet")).env as Json[]) {
    if (e.value !== undefined) env[e.name] = e.value;
  }
  return env;
}

const shippedEnv = sidecarEnv(shipped);

/** The sidecar's configuration as forge-manager parses it (the downward API's values filled in). */
function sidecarConfig(objects: Rendered[]): Config {
  return parseConfig({
    ...sidecarEnv(objects),
    NAMESPACE: "cardano",
    POD_NAME: "cardano-producer-0",
    POD_UID: "0b5a4a4e-8d9e-4a59-9c1b-4d39b1f2b2a1",
  });
}

// ---------------------------------------------------------------------------------------------
// What kustomize renders
// ---------------------------------------------------------------------------------------------

Deno.test("each cluster's overlay is manifests/ plus its CardanoForgeCluster, the Role to it and the coordination cluster on the sidecar", () => {
  for (const [name, objects] of overlays) {
    assert.deepEqual(
      objects.map((r) => key(r.obj)).sort(),
      [
        ...shipped.map((r) => key(r.obj)),
        `CardanoForgeCluster/${name}`,
        "Role/forge-manager-cluster",
        "RoleBinding/forge-manager-cluster",
      ].sort(),
      name,
    );
    const byKey = new Map(objects.map((r) => [key(r.obj), r.obj]));
    for (const { obj } of shipped) {
      if (obj.kind === "StatefulSet") continue;
      assert.deepEqual(byKey.get(key(obj)), obj, `${name}: ${key(obj)}`);
    }
    // The StatefulSet: the shipped one plus the variables, one mount and one volume.
    const sts = structuredClone(find(objects, "StatefulSet"));
    const sidecar = sidecarOf(sts);
    const added = (sidecar.env as Json[]).filter((e) => !e.valueFrom && !(e.name in shippedEnv));
    const expected = name === "eu-west" ? [...ADDED_ENV, "HEALTH_CHECK_ENDPOINT"] : ADDED_ENV;
    assert.deepEqual(added.map((e) => e.name), expected, `${name}: the variables added`);
    sidecar.env = (sidecar.env as Json[]).filter((e) => !added.includes(e));
    sidecar.volumeMounts = (sidecar.volumeMounts as Json[]).filter((m) =>
      m.name !== "coordination"
    );
    const spec = podSpec(sts);
    spec.volumes = spec.volumes.filter((v) => v.name !== "coordination");
    assert.deepEqual(sts, find(shipped, "StatefulSet"), `${name}: the StatefulSet`);
  }
});

Deno.test("a cluster's CLUSTER_NAME is its CardanoForgeCluster's name and the only one its Role allows; priority and region agree", () => {
  const priorities: Record<string, number> = {};
  for (const [name, objects] of overlays) {
    const config = sidecarConfig(objects);
    const global = config.global;
    assert.ok(global, `${name}: GLOBAL_KUBECONFIG turns the election across clusters on`);
    assert.equal(global.cluster, name);
    assert.equal(config.fence, "guard");
    assert.equal(config.guardSocket, guardConfigSocket(objects));
    const forgeCluster = find(objects, "CardanoForgeCluster");
    assert.equal(forgeCluster.metadata.name, global.cluster);
    assert.equal(global.forgeClusterName, forgeCluster.metadata.name);
    assert.deepEqual(find(objects, "Role", "forge-manager-cluster").rules, [
      {
        apiGroups: ["cardano.io"],
        resources: ["cardanoforgeclusters"],
        resourceNames: [name],
        verbs: ["get"],
      },
      {
        apiGroups: ["cardano.io"],
        resources: ["cardanoforgeclusters/status"],
        resourceNames: [name],
        verbs: ["get", "patch"],
      },
    ]);
    const binding = find(objects, "RoleBinding", "forge-manager-cluster");
    assert.deepEqual(binding.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "Role",
      name: "forge-manager-cluster",
    });
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: podSpec(find(objects, "StatefulSet")).serviceAccountName },
    ]);
    // CLUSTER_PRIORITY and CLUSTER_REGION apply only while the object is missing: the same.
    assert.equal(global.priority, forgeCluster.spec.priority, `${name}: priority`);
    assert.equal(global.region, forgeCluster.spec.region, `${name}: region`);
    assert.equal(global.healthEndpoint, forgeCluster.spec.healthCheck?.endpoint, `${name}: health`);
    priorities[name] = forgeCluster.spec.priority;
    // Where the coordination cluster's objects are: the names its Role allows.
    assert.equal(global.namespace, COORDINATION_NAMESPACE);
    assert.equal(global.leaseName, memberNames("leases")[0]);
    assert.equal(global.cardanoLeaderName, find(coordination, "CardanoLeader").metadata.name);
    assert.deepEqual(memberNames("cardanoleaders"), [global.cardanoLeaderName]);
  }
  assert.deepEqual(priorities, { "eu-west": 1, "us-east": 2 });
  assert.ok(
    [...overlays.values()].some((o) => find(o, "CardanoForgeCluster").spec.healthCheck?.endpoint),
    "one cluster shows a health check",
  );
});

function guardConfigSocket(objects: Rendered[]): string {
  const env = guardOf(find(objects, "StatefulSet")).env as Json[];
  return env.find((e) => e.name === "GUARD_SOCKET")!.value;
}

/** The names the coordination member Role allows on `resource`. */
function memberNames(resource: string): string[] {
  return (find(coordination, "Role", "forge-manager-member").rules as Json[])
    .filter((r) => r.resources.includes(resource) && r.resourceNames)
    .flatMap((r) => r.resourceNames);
}

Deno.test("GLOBAL_KUBECONFIG is in a read-only mount of the Secret, in forge-manager's container only", () => {
  for (const [name, objects] of overlays) {
    const sts = find(objects, "StatefulSet");
    const spec = podSpec(sts);
    const sidecar = sidecarOf(sts);
    const path = sidecarEnv(objects).GLOBAL_KUBECONFIG!;
    const mount = (sidecar.volumeMounts as Json[]).find((m) => path.startsWith(`${m.mountPath}/`));
    assert.ok(mount, `${name}: ${path} is in no mount of the sidecar`);
    assert.equal(mount.readOnly, true);
    assert.equal(mount.subPath, undefined, "a subPath mount would not follow a changed Secret");
    const volume = spec.volumes.find((v) => v.name === mount.name);
    assert.deepEqual(volume?.secret, {
      secretName: "forge-manager-coordination",
      items: [{ key: "kubeconfig", path: path.slice(mount.mountPath.length + 1) }],
      defaultMode: 0o400,
    });
    // No other container mounts it: not the node, not the guard.
    const others = [...spec.initContainers, ...spec.containers].filter((c) => c !== sidecar);
    assert.deepEqual(others.map((c) => c.name).sort(), [
      "cardano-node",
      "forge-manager-guard",
    ]);
    for (const c of others) {
      assert.ok(
        !(c.volumeMounts as Json[]).some((m) => m.name === mount.name),
        `${name}: ${c.name} mounts the coordination kubeconfig`,
      );
    }
  }
});

Deno.test("the coordination cluster: one namespace, the CRDs of manifests/, the CardanoLeader, a ServiceAccount and binding per cluster, and two Roles with exactly their verbs", () => {
  const kinds = coordination.map((r) => key(r.obj)).sort();
  assert.deepEqual(
    kinds,
    [
      "CardanoLeader/cardano-leader",
      "CustomResourceDefinition/cardanoforgeclusters.cardano.io",
      "CustomResourceDefinition/cardanoleaders.cardano.io",
      `Namespace/${COORDINATION_NAMESPACE}`,
      "Role/forge-manager-member",
      "Role/forge-manager-operator",
      ...CLUSTERS.map((c) => `RoleBinding/forge-manager-member-${c}`),
      ...CLUSTERS.map((c) => `ServiceAccount/forge-${c}`),
    ].sort(),
  );
  for (const { obj } of coordination) {
    if (obj.kind === "CustomResourceDefinition" || obj.kind === "Namespace") {
      assert.equal(obj.metadata.namespace, undefined);
    } else {
      assert.equal(obj.metadata.namespace, COORDINATION_NAMESPACE, key(obj));
    }
  }
  const crds = (objects: Rendered[]) =>
    objects.filter((r) => r.obj.kind === "CustomResourceDefinition").map((r) => r.obj);
  assert.deepEqual(crds(coordination), crds(shipped));
  assert.deepEqual(find(coordination, "Role", "forge-manager-member").rules, [
    {
      apiGroups: ["coordination.k8s.io"],
      resources: ["leases"],
      resourceNames: ["cardano-node-leader"],
      verbs: ["get", "update"],
    },
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["create"] },
    {
      apiGroups: ["cardano.io"],
      resources: ["cardanoleaders"],
      resourceNames: ["cardano-leader"],
      verbs: ["get"],
    },
    {
      apiGroups: ["cardano.io"],
      resources: ["cardanoleaders/status"],
      resourceNames: ["cardano-leader"],
      verbs: ["get", "patch"],
    },
  ]);
  assert.deepEqual(find(coordination, "Role", "forge-manager-operator").rules, [
    { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "list", "watch"] },
    {
      apiGroups: ["cardano.io"],
      resources: ["cardanoleaders"],
      resourceNames: ["cardano-leader"],
      verbs: ["get", "update"],
    },
    {
      apiGroups: ["cardano.io"],
      resources: ["cardanoleaders/status"],
      resourceNames: ["cardano-leader"],
      verbs: ["get"],
    },
  ]);
  for (const c of CLUSTERS) {
    assert.equal(
      find(coordination, "ServiceAccount", `forge-${c}`).automountServiceAccountToken,
      false,
    );
    const binding = find(coordination, "RoleBinding", `forge-manager-member-${c}`);
    assert.deepEqual(binding.roleRef, {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "Role",
      name: "forge-manager-member",
    });
    assert.deepEqual(binding.subjects, [
      { kind: "ServiceAccount", name: `forge-${c}`, namespace: COORDINATION_NAMESPACE },
    ]);
  }
});

// ---------------------------------------------------------------------------------------------
// On the API server
// ---------------------------------------------------------------------------------------------

/** `objects` with every mention of the coordination namespace replaced by `namespace`. */
function moved(objects: Rendered[], namespace: string): Rendered[] {
  return objects.map(({ file, obj }) => ({
    file,
    obj: JSON.parse(
      JSON.stringify(obj).replaceAll(`"${COORDINATION_NAMESPACE}"`, JSON.stringify(namespace)),
    ),
  }));
}

const LEADERS = { group: "cardano.io", version: "v1", plural: "cardanoleaders" };
const FORGE_CLUSTERS = { group: "cardano.io", version: "v1", plural: "cardanoforgeclusters" };

interface Coordination {
  namespace: string;
  otherNamespace: string;
  /** Each cluster's identity there (its ServiceAccount's token, bound by the shipped binding). */
  members: Record<ClusterName, KubeConfig>;
  operator: KubeConfig;
}

let coordinationPromise: Promise<Coordination> | undefined;

/**
 * The coordination cluster's objects created for real (strict field validation) in a namespace of
 * their own, bait the member Role must not reach (another Lease, a Secret, the same Lease and
 * CardanoLeader in another namespace), and tokens of each cluster's ServiceAccount and of an
 * operator bound to forge-manager-operator.
 */
function coordinationCluster(): Promise<Coordination> {
  coordinationPromise ??= (async () => {
    const { cp, admin } = await cluster();
    const namespace = uniqueNamespace("coordination");
    const otherNamespace = uniqueNamespace("not-coordination");
    const objects = moved(coordination, namespace)
      .filter((r) => r.obj.kind !== "CustomResourceDefinition"); // installed by cluster()
    // The Namespace first, as kubectl apply sends it.
    for (const { obj } of objects) {
      const res = await admin.create(obj);
      assert.equal(res.status, 201, `${key(obj)}: HTTP ${res.status}: ${res.body.message}`);
      if (obj.kind === "Namespace") await cp.ensureNamespace(namespace);
    }
    await cp.ensureNamespace(otherNamespace);
    const lease = (name: string): Obj => ({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name },
      spec: { holderIdentity: "someone-else", leaseDurationSeconds: 15 },
    });
    const baits: [Obj, string][] = [
      [lease("other-pool-leader"), namespace],
      [{
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "coordination-secret" },
        stringData: { token: "not a token" },
      }, namespace],
      [lease("cardano-node-leader"), otherNamespace],
      [
        { ...find(coordination, "CardanoLeader"), metadata: { name: "cardano-leader" } },
        otherNamespace,
      ],
    ];
    for (const [obj, ns] of baits) {
      const res = await admin.create(obj, { namespace: ns });
      assert.equal(res.status, 201, `${key(obj)}: ${res.body.message}`);
    }
    for (const c of CLUSTERS) {
      const last = {
        verb: "patch",
        resource: "cardanoleaders",
        subresource: "status",
        group: "cardano.io",
        name: "cardano-leader",
      };
      await waitAllowed(admin, namespace, last, `forge-${c}`);
    }
    const identity = async (serviceAccount: string, roleName?: string) => {
      const kc = new KubeConfig();
      kc.loadFromFile(
        await cp.mintIdentity({ namespace, serviceAccount, ...(roleName ? { roleName } : {}) }),
      );
      return kc;
    };
    return {
      namespace,
      otherNamespace,
      members: {
        "eu-west": await identity("forge-eu-west"),
        "us-east": await identity("forge-us-east"),
      },
      operator: await identity("operator-alice", "forge-manager-operator"),
    };
  })();
  return coordinationPromise;
}

Deno.test({
  name:
    "the API server accepts every object of the multi-cluster example with strict field validation",
  ...integration,
  async fn() {
    // The coordination cluster's objects are created for real, each answered 201.
    await coordinationCluster();
    // Each cluster's objects, in a namespace of its own (they are two clusters).
    const { cp, admin } = await cluster();
    for (const [name, objects] of overlays) {
      const namespace = uniqueNamespace(name);
      await cp.ensureNamespace(namespace);
      assert.deepEqual(await dryRunAll(admin, objects, namespace), [], name);
    }
  },
});

Deno.test({
  name:
    "a coordination member may create, read and update the Lease and read and patch the CardanoLeader's status",
  ...integration,
  async fn() {
    const { namespace, members } = await coordinationCluster();
    const kc = members["eu-west"];
    const coord = kc.makeApiClient(CoordinationV1Api);
    const objects = kc.makeApiClient(CustomObjectsApi);
    const name = "cardano-node-leader";
    const now = new V1MicroTime();
    // The first local leader to compete creates the Lease (allowed or already there).
    const created = await statusOf(coord.createNamespacedLease({
      namespace,
      body: {
        metadata: { name },
        spec: {
          holderIdentity: "eu-west_abc",
          leaseDurationSeconds: 15,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: 0,
        },
      },
    }));
    assert.ok(created === 200 || created === 409, `create: ${created}`);
    const read = await coord.readNamespacedLease({ name, namespace });
    read.spec!.renewTime = new V1MicroTime();
    const renewed = await coord.replaceNamespacedLease({ name, namespace, body: read });
    assert.notEqual(renewed.metadata?.resourceVersion, read.metadata?.resourceVersion);
    // A stale replace is a conflict, not a refusal: the lost race the election expects.
    assert.equal(
      await statusOf(coord.replaceNamespacedLease({ name, namespace, body: read })),
      409,
    );

    const leader = { ...LEADERS, namespace, name: "cardano-leader" };
    await objects.getNamespacedCustomObject(leader);
    const at = new Date().toISOString();
    const entry = {
      identity: "eu-west_abc",
      phase: "leading",
      leader: true,
      forging: true,
      nodeFound: true,
      fence: "idle",
      guard: "armed",
      reason: "elected",
      since: at,
      heartbeat: at,
      pod: "cardano-producer-0",
      ready: true,
      state: "Priority-based",
      priority: 1,
      region: "eu-west-1",
    };
    const current = await objects.getNamespacedCustomObjectStatus(leader) as Obj;
    await objects.patchNamespacedCustomObjectStatus({
      ...leader,
      body: {
        // As the sidecar's conditional write: the resourceVersion read, in a merge patch.
        metadata: { resourceVersion: current.metadata.resourceVersion },
        status: {
          replicas: { "eu-west": entry },
          leaderPod: "cardano-producer-0",
          handover: { id: "h-0", result: "released", at },
        },
      },
    }, mergePatch);
    // us-east's identity, bound by its own RoleBinding, writes its own entry beside it.
    const usEast = members["us-east"].makeApiClient(CustomObjectsApi);
    const patched = await usEast.patchNamespacedCustomObjectStatus({
      ...leader,
      body: {
        status: {
          replicas: { "us-east": { ...entry, identity: "us-east_def", priority: 2, pod: "x-0" } },
        },
      },
    }, mergePatch) as Obj;
    assert.deepEqual(Object.keys(patched.status.replicas).sort(), ["eu-west", "us-east"]);
    // Kubernetes cannot limit create by name: another Lease may be created (docs/deploy.md says
    // so), but not read or updated afterwards.
    const stray = "created-by-mistake";
    await coord.createNamespacedLease({ namespace, body: { metadata: { name: stray }, spec: {} } });
    assert.equal(await statusOf(coord.readNamespacedLease({ name: stray, namespace })), 403);
  },
});

Deno.test({
  name: "a coordination member gets 403 for everything else",
  ...integration,
  async fn() {
    const { namespace, otherNamespace, members } = await coordinationCluster();
    const kc = members["us-east"];
    const coord = kc.makeApiClient(CoordinationV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const objects = kc.makeApiClient(CustomObjectsApi);
    const lease = "cardano-node-leader";
    const leader = { ...LEADERS, namespace, name: "cardano-leader" };
    const other = { metadata: { name: "other-pool-leader" }, spec: { holderIdentity: "me" } };
    const body = { apiVersion: "cardano.io/v1", kind: "CardanoLeader", metadata: { name: "x" } };
    const refused: [string, Promise<unknown>][] = [
      ["delete the Lease", coord.deleteNamespacedLease({ name: lease, namespace })],
      [
        "patch the Lease (only conditional replaces are granted)",
        coord.patchNamespacedLease({ name: lease, namespace, body: { spec: {} } }, mergePatch),
      ],
      ["list Leases", coord.listNamespacedLease({ namespace })],
      [
        "read another Lease",
        coord.readNamespacedLease({ name: "other-pool-leader", namespace }),
      ],
      [
        "update another Lease",
        coord.replaceNamespacedLease({ name: "other-pool-leader", namespace, body: other }),
      ],
      [
        "update the CardanoLeader's spec",
        objects.replaceNamespacedCustomObject({
          ...leader,
          body: { ...body, metadata: { name: "cardano-leader" }, spec: { handover: {} } },
        }),
      ],
      [
        "patch the CardanoLeader's spec",
        objects.patchNamespacedCustomObject({ ...leader, body: { spec: {} } }, mergePatch),
      ],
      [
        "replace the CardanoLeader's status (only merge patches are granted)",
        objects.replaceNamespacedCustomObjectStatus({
          ...leader,
          body: { ...body, metadata: { name: "cardano-leader" }, status: {} },
        }),
      ],
      ["list CardanoLeaders", objects.listNamespacedCustomObject({ ...LEADERS, namespace })],
      [
        "create a CardanoLeader",
        objects.createNamespacedCustomObject({ ...LEADERS, namespace, body }),
      ],
      ["delete the CardanoLeader", objects.deleteNamespacedCustomObject(leader)],
      ["read a Secret", core.readNamespacedSecret({ name: "coordination-secret", namespace })],
      ["list Secrets", core.listNamespacedSecret({ namespace })],
      [
        "create an Event",
        core.createNamespacedEvent({
          namespace,
          body: { metadata: { generateName: "x." }, involvedObject: { name: "cardano-leader" } },
        }),
      ],
      ["list pods", core.listNamespacedPod({ namespace })],
      [
        "read the Lease in another namespace",
        coord.readNamespacedLease({ name: lease, namespace: otherNamespace }),
      ],
      [
        "create a Lease in another namespace",
        coord.createNamespacedLease({ namespace: otherNamespace, body: other }),
      ],
      [
        "patch the CardanoLeader status in another namespace",
        objects.patchNamespacedCustomObjectStatus(
          { ...leader, namespace: otherNamespace, body: { status: { leaderPod: "x" } } },
          mergePatch,
        ),
      ],
      ["list namespaces", core.listNamespace()],
    ];
    const got = await Promise.all(
      refused.map(async ([what, call]) => [what, await statusOf(call)]),
    );
    assert.deepEqual(got, refused.map(([what]) => [what, 403]));
    const leases = `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`;
    assert.equal(await firstWatchEvent(kc, leases, {}), "error 403", "a watch of every Lease");
    assert.equal(
      await firstWatchEvent(kc, leases, { fieldSelector: `metadata.name=${lease}` }),
      "error 403",
      "a watch of the Lease (it is polled)",
    );
  },
});

Deno.test({
  name:
    "the coordination operator Role reads every cluster's state and writes spec.handover, and nothing the sidecars write",
  ...integration,
  async fn() {
    const { namespace, operator } = await coordinationCluster();
    const coord = operator.makeApiClient(CoordinationV1Api);
    const objects = operator.makeApiClient(CustomObjectsApi);
    await coord.listNamespacedLease({ namespace });
    assert.equal(
      await firstWatchEvent(
        operator,
        `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
        { fieldSelector: "metadata.name=other-pool-leader" },
      ),
      "ADDED other-pool-leader",
    );
    const leader = { ...LEADERS, namespace, name: "cardano-leader" };
    await objects.getNamespacedCustomObjectStatus(leader);
    const current = await objects.getNamespacedCustomObject(leader) as Obj;
    const handover = {
      id: "h-1",
      to: "us-east",
      by: "operator-alice",
      at: new Date().toISOString(),
    };
    const replaced = await objects.replaceNamespacedCustomObject({
      ...leader,
      body: { ...current, spec: { ...current.spec, handover } },
    }) as Obj;
    assert.deepEqual(replaced.spec.handover, handover);
    const refused: [string, Promise<unknown>][] = [
      [
        "patch the status",
        objects.patchNamespacedCustomObjectStatus(
          { ...leader, body: { status: { leaderPod: "x" } } },
          mergePatch,
        ),
      ],
      [
        "create a Lease",
        coord.createNamespacedLease({ namespace, body: { metadata: { name: "op" }, spec: {} } }),
      ],
      ["delete the CardanoLeader", objects.deleteNamespacedCustomObject(leader)],
      ["delete a Lease", coord.deleteNamespacedLease({ name: "other-pool-leader", namespace })],
    ];
    const got = await Promise.all(
      refused.map(async ([what, call]) => [what, await statusOf(call)]),
    );
    assert.deepEqual(got, refused.map(([what]) => [what, 403]));
  },
});

Deno.test({
  name:
    "a cluster's sidecar may read its CardanoForgeCluster and patch its status, and gets 403 for the rest",
  ...integration,
  async fn() {
    const { cp, admin } = await cluster();
    const namespace = uniqueNamespace("eu-west-rbac");
    await cp.ensureNamespace(namespace);
    const objects = overlays.get("eu-west")!;
    const wanted = new Set(["ServiceAccount", "Role", "RoleBinding", "CardanoForgeCluster"]);
    const baits = [find(overlays.get("us-east")!, "CardanoForgeCluster")];
    for (const obj of [...objects.map((r) => r.obj).filter((o) => wanted.has(o.kind)), ...baits]) {
      const res = await admin.create(obj, { namespace });
      assert.equal(res.status, 201, `${key(obj)}: HTTP ${res.status}: ${res.body.message}`);
    }
    const last = {
      verb: "patch",
      resource: "cardanoforgeclusters",
      subresource: "status",
      group: "cardano.io",
      name: "eu-west",
    };
    await waitAllowed(admin, namespace, last);
    const kc = new KubeConfig();
    kc.loadFromFile(await cp.mintIdentity({ namespace, serviceAccount: "forge-manager" }));
    const api = kc.makeApiClient(CustomObjectsApi);
    const mine = { ...FORGE_CLUSTERS, namespace, name: "eu-west" };
    const read = await api.getNamespacedCustomObject(mine) as Obj;
    assert.equal(read.spec.priority, 1);
    await api.getNamespacedCustomObjectStatus(mine);
    const at = new Date().toISOString();
    const status = {
      effectiveState: "Priority-based",
      effectivePriority: 1,
      activeLeader: "eu-west/cardano-producer-0",
      localLeader: "cardano-producer-0",
      reason: "priority",
      message: "competes at priority 1",
      healthStatus: { healthy: true, lastProbeTime: at, consecutiveFailures: 0, message: "200" },
      conditions: [{
        type: "ForgingAllowed",
        status: "True",
        reason: "Priority",
        message: "competes at priority 1",
        lastTransitionTime: at,
      }],
      lastUpdateTime: at,
    };
    const patched = await api.patchNamespacedCustomObjectStatus(
      { ...mine, body: { status } },
      mergePatch,
    ) as Obj;
    assert.deepEqual(patched.status, status);
    const theirs = { ...FORGE_CLUSTERS, namespace, name: "us-east" };
    const refused: [string, Promise<unknown>][] = [
      ["read another cluster's", api.getNamespacedCustomObject(theirs)],
      [
        "patch another cluster's status",
        api.patchNamespacedCustomObjectStatus({ ...theirs, body: { status } }, mergePatch),
      ],
      [
        "patch its own spec",
        api.patchNamespacedCustomObject({ ...mine, body: { spec: { priority: 1 } } }, mergePatch),
      ],
      ["update its own", api.replaceNamespacedCustomObject({ ...mine, body: read })],
      [
        "replace its own status (only merge patches are granted)",
        api.replaceNamespacedCustomObjectStatus({ ...mine, body: { ...read, status } }),
      ],
      ["list them", api.listNamespacedCustomObject({ ...FORGE_CLUSTERS, namespace })],
      ["delete its own", api.deleteNamespacedCustomObject(mine)],
      [
        "create one",
        api.createNamespacedCustomObject({
          ...FORGE_CLUSTERS,
          namespace,
          body: { ...read, metadata: { name: "mine" } },
        }),
      ],
    ];
    const got = await Promise.all(
      refused.map(async ([what, call]) => [what, await statusOf(call)]),
    );
    assert.deepEqual(got, refused.map(([what]) => [what, 403]));
  },
});

Deno.test({
  name:
    "the steps of docs/deploy.md across clusters give the cluster a Secret whose kubeconfig is its member identity, and apply every object",
  ...integration,
  async fn() {
    const { cp, admin: rawAdmin } = await cluster();
    const doc = await readRepo("docs/deploy.md");
    const section = doc.slice(
      doc.indexOf("### Installing across clusters"),
      doc.indexOf("### RBAC in the coordination cluster"),
    );
    // The commands as the guide gives them (the heredoc's service-account-token Secret needs the
    // token controller, which this control plane does not run).
    const coordinationSteps = [
      "kubectl --context coordination apply -f manifests/examples/multi-cluster/coordination/crd.yaml",
      "kubectl --context coordination wait --for=condition=Established crd/cardanoleaders.cardano.io",
      "kubectl --context coordination apply -k manifests/examples/multi-cluster/coordination/",
      "TOKEN=$(kubectl --context coordination -n cardano-coordination create token forge-eu-west --duration=8760h)",
      "kubectl --context coordination config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d > coordination-ca.crt",
      "kubectl config --kubeconfig=eu-west.kubeconfig set-cluster coordination --server=https://coordination.example.net:6443 --certificate-authority=coordination-ca.crt --embed-certs=true",
      'kubectl config --kubeconfig=eu-west.kubeconfig set-credentials forge-eu-west --token="$TOKEN"',
      "kubectl config --kubeconfig=eu-west.kubeconfig set-context coordination --cluster=coordination --user=forge-eu-west --namespace=cardano-coordination",
      "kubectl config --kubeconfig=eu-west.kubeconfig use-context coordination",
    ];
    const clusterSteps = [
      "kubectl --context eu-west -n cardano create secret generic forge-manager-coordination --from-file=kubeconfig=eu-west.kubeconfig",
      "kubectl --context eu-west apply -f manifests/examples/multi-cluster/base/crd.yaml",
      "kubectl --context eu-west wait --for=condition=Established crd/cardanoleaders.cardano.io crd/cardanoforgeclusters.cardano.io",
      "kubectl --context eu-west -n cardano apply -k manifests/examples/multi-cluster/eu-west/",
    ];
    const checks = [
      "kubectl --kubeconfig=eu-west.kubeconfig auth can-i update lease/cardano-node-leader   # yes",
      "kubectl --kubeconfig=eu-west.kubeconfig auth can-i list leases                        # no",
    ];
    for (const line of [...coordinationSteps, ...clusterSteps, ...checks]) {
      assert.ok(section.includes(line), `docs/deploy.md: ${line}`);
    }

    const dir = await Deno.makeTempDir({ prefix: "forge-manager-multi-cluster-" });
    try {
      // Both contexts the guide names, on the shared control plane as its admin; the cluster's
      // namespace a fresh one instead of cardano.
      const namespace = uniqueNamespace("eu-west-install");
      const kubeconfig = `${dir}/contexts.kubeconfig`;
      await Deno.copyFile(cp.adminKubeconfig, kubeconfig);
      const admin = cp.admin();
      const env = { KUBECONFIG: kubeconfig };
      for (const context of ["coordination", "eu-west"]) {
        await kubectl([
          "config",
          "set-context",
          context,
          `--cluster=${admin.getCurrentCluster()!.name}`,
          `--user=${admin.getCurrentUser()!.name}`,
        ], env);
      }
      await kubectl(["create", "namespace", namespace], env);
      const run = async (lines: string[]) => {
        const script = lines.map((line) =>
          line.replace(/(?<= )manifests\//g, `${REPO_ROOT}/manifests/`)
            .replace(" -n cardano ", ` -n ${namespace} `)
            .replace("https://coordination.example.net:6443", cp.server)
            .replace(/\s+# .*$/, "")
        ).join("\n");
        const out = await new Deno.Command("bash", {
          args: ["-c", `set -euo pipefail\n${script}`],
          cwd: dir,
          env: {
            PATH: `${(await builtTool("kubectl")).replace(/\/kubectl$/, "")}:/usr/bin:/bin`,
            KUBECONFIG: kubeconfig,
          },
          clearEnv: true,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = (b: Uint8Array) => new TextDecoder().decode(b);
        return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
      };
      const steps = await run([...coordinationSteps, ...clusterSteps]);
      assert.equal(steps.code, 0, steps.stderr);
      // Bindings reach the authorizer asynchronously.
      const last = {
        verb: "patch",
        resource: "cardanoleaders",
        subresource: "status",
        group: "cardano.io",
        name: "cardano-leader",
      };
      await waitAllowed(rawAdmin, COORDINATION_NAMESPACE, last, "forge-eu-west");
      assert.deepEqual(
        [await run([checks[0]!]), await run([checks[1]!])].map((r) => r.stdout.trim()),
        ["yes", "no"],
      );

      // The Secret's kubeconfig, as the sidecar will read it: self-contained, the member identity.
      const secret = JSON.parse(
        await kubectl(
          ["-n", namespace, "get", "secret", "forge-manager-coordination", "-o", "json"],
          env,
        ),
      );
      assert.deepEqual(Object.keys(secret.data), ["kubeconfig"]);
      const member = new KubeConfig();
      member.loadFromString(atob(secret.data.kubeconfig));
      assert.ok(member.getCurrentCluster()?.caData, "the CA is embedded");
      assert.equal(member.getCurrentCluster()?.caFile, undefined);
      const coord = member.makeApiClient(CoordinationV1Api);
      const ns = COORDINATION_NAMESPACE;
      assert.equal(
        await statusOf(coord.readNamespacedLease({ name: "cardano-node-leader", namespace: ns })),
        404,
        "allowed, not created yet",
      );
      assert.equal(await statusOf(coord.listNamespacedLease({ namespace: ns })), 403);
      const leader = await member.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
        ...LEADERS,
        namespace: ns,
        name: "cardano-leader",
      }) as Obj;
      assert.equal(leader.metadata.name, "cardano-leader");

      // Every object of the overlay is there, as the admin sees it.
      for (const { obj } of overlays.get("eu-west")!) {
        const scope = obj.kind === "CustomResourceDefinition" ? [] : ["-n", namespace];
        const got = JSON.parse(
          await kubectl(
            ["get", obj.kind.toLowerCase(), obj.metadata.name, ...scope, "-o", "json"],
            env,
          ),
        );
        assert.equal(got.metadata.name, obj.metadata.name, key(obj));
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
