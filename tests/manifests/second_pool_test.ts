/**
 * The second pool's overlay (manifests/examples/second-pool/) checked twice, as
 * tests/manifests/manifests_test.ts checks manifests/: statically on what the pinned kubectl's
 * kustomize renders (every name its own, the names its sidecar uses are the ones its Roles allow,
 * no selector of either pool selects the other's pods, and its StatefulSet is the shipped one but
 * for those), and on the shared control plane: both pools' objects created together in one
 * namespace with strict field validation, and each pool's identities refused (403) on the other
 * pool's Lease, CardanoLeader and pods.
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
import { parseConfig } from "../../lib/core/config.ts";
import { SECOND_POOL_DIR } from "../../tools/example_bases.ts";
import {
  cluster,
  find,
  firstWatchEvent,
  integration,
  type Json,
  kustomize,
  mergePatch,
  type Obj,
  pod,
  podSpec,
  type Rendered,
  sidecarOf,
  statusOf,
  uniqueNamespace,
  waitAllowed,
} from "../support/manifests.ts";

const SUFFIX = "-pool-b";

const poolA = (await kustomize("manifests")).filter((r) =>
  r.obj.kind !== "CustomResourceDefinition"
);
const poolB = await kustomize(SECOND_POOL_DIR);

const key = (o: Obj) => `${o.kind}/${o.metadata.name}`;
const clone = (o: Obj): Obj => structuredClone(o);

/** The sidecar's configuration as forge-manager parses it (the downward API's values filled in). */
function sidecarConfig(objects: Rendered[]) {
  const env: Record<string, string> = {};
  for (const e of sidecarOf(find(objects, "StatefulSet")).env as Json[]) {
    if (e.value !== undefined) env[e.name] = e.value;
  }
  return parseConfig({
    ...env,
    NAMESPACE: "cardano",
    POD_NAME: `${find(objects, "StatefulSet").metadata.name}-0`,
    POD_UID: "0b5a4a4e-8d9e-4a59-9c1b-4d39b1f2b2a1",
  });
}

/** The names a Role grants on `resource` (every rule naming it, in order). */
function namesFor(role: Obj, resource: string): string[] {
  return (role.rules as Json[]).filter((r) => r.resources.includes(resource))
    .flatMap((r) => r.resourceNames ?? ["*"]);
}

// ---------------------------------------------------------------------------------------------
// What kustomize renders
// ---------------------------------------------------------------------------------------------

Deno.test("pool B has each object of the first pool but the CRD, every one under a name of its own", () => {
  assert.ok(!poolB.some((r) => r.obj.kind === "CustomResourceDefinition"), "no CRD in pool B");
  assert.deepEqual(
    poolB.map((r) => key(r.obj)).sort(),
    poolA.map((r) => `${key(r.obj)}${SUFFIX}`).sort(),
  );
  const namesA = new Set(poolA.map((r) => key(r.obj)));
  for (const { obj } of poolB) {
    assert.ok(!namesA.has(key(obj)), `${key(obj)} is also the first pool's`);
    assert.equal(obj.metadata.namespace, undefined, "like manifests/, it goes where -n says");
    assert.equal(obj.metadata.labels["app.kubernetes.io/instance"], "pool-b", key(obj));
  }
});

Deno.test("pool B's sidecar uses the Lease and CardanoLeader its Roles allow, its own pool, keys and node configuration", () => {
  const a = sidecarConfig(poolA);
  const b = sidecarConfig(poolB);
  assert.notEqual(b.leaseName, a.leaseName);
  assert.notEqual(b.cardanoLeaderName, a.cardanoLeaderName);
  for (const [objects, config, suffix] of [[poolA, a, ""], [poolB, b, SUFFIX]] as const) {
    const sts = find(objects, "StatefulSet");
    const account = podSpec(sts).serviceAccountName as string;
    assert.equal(account, `forge-manager${suffix}`);
    const role = find(objects, "Role", `forge-manager${suffix}`);
    assert.deepEqual(namesFor(role, "leases"), [config.leaseName, "*"], "get/watch/update, create");
    assert.deepEqual(namesFor(role, "cardanoleaders"), [config.cardanoLeaderName]);
    assert.deepEqual(namesFor(role, "cardanoleaders/status"), [config.cardanoLeaderName]);
    assert.equal(find(objects, "CardanoLeader").metadata.name, config.cardanoLeaderName);
    const operator = find(objects, "Role", `forge-manager-operator${suffix}`);
    assert.deepEqual(namesFor(operator, "cardanoleaders"), [config.cardanoLeaderName]);
    assert.deepEqual(namesFor(operator, "cardanoleaders/status"), [config.cardanoLeaderName]);
    // Each RoleBinding binds a Role of its pool to its pool's ServiceAccount only.
    for (const binding of objects.filter((r) => r.obj.kind === "RoleBinding").map((r) => r.obj)) {
      assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: account }]);
      find(objects, "Role", binding.roleRef.name);
    }
    find(objects, "ServiceAccount", account);
    assert.equal(sts.spec.serviceName, find(objects, "Service").metadata.name);
    assert.equal(config.fence, "guard");
  }
  assert.equal(a.poolId, undefined, "the first pool stays as shipped");
  assert.match(b.poolId!, /^[0-9a-f]{56}$/);
  assert.deepEqual(b.pool, { name: "Example Pool B", ticker: "POOLB" });

  const volumes = (objects: Rendered[]) =>
    Object.fromEntries(
      podSpec(find(objects, "StatefulSet")).volumes.map((v) => [v.name, v]),
    );
  assert.equal(volumes(poolB)["forging-keys"].secret.secretName, `cardano-forging-keys${SUFFIX}`);
  assert.equal(volumes(poolB)["node-config"].configMap.name, `cardano-node-config${SUFFIX}`);
  // Pool B's fence deletes its own pods only: one name per replica.
  const stsB = find(poolB, "StatefulSet");
  const fence = find(poolB, "Role", `forge-manager-fence${SUFFIX}`);
  assert.deepEqual(fence.rules, [
    { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] },
    {
      apiGroups: [""],
      resources: ["pods"],
      resourceNames: Array.from(
        { length: stsB.spec.replicas },
        (_, i) => `${stsB.metadata.name}-${i}`,
      ),
      verbs: ["delete"],
    },
  ]);
});

/** Whether `selector` (matchLabels only) selects `labels`. */
function selects(selector: Json, labels: Record<string, string>): boolean {
  assert.equal(selector.matchExpressions, undefined, "matchExpressions are not evaluated here");
  const match = selector.matchLabels ?? selector;
  assert.ok(Object.keys(match).length > 0, "an empty selector selects everything");
  return Object.entries(match).every(([k, v]) => labels[k] === v);
}

/** Every pod selector of a pool: StatefulSet, PodDisruptionBudget, Service, anti-affinity. */
function selectors(objects: Rendered[]): [string, Json][] {
  const sts = find(objects, "StatefulSet");
  const anti = podSpec(sts).affinity as Json;
  const terms = anti.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution as Json[];
  return [
    ["StatefulSet", sts.spec.selector],
    ["PodDisruptionBudget", find(objects, "PodDisruptionBudget").spec.selector],
    ["Service", find(objects, "Service").spec.selector],
    ...terms.map((t, i) => [`anti-affinity ${i}`, t.labelSelector] as [string, Json]),
  ];
}

Deno.test("no selector of either pool selects the other pool's pods; each selects its own", () => {
  const pools = [["A", poolA], ["B", poolB]] as const;
  for (const [name, objects] of pools) {
    const own = find(objects, "StatefulSet").spec.template.metadata.labels;
    for (const [otherName, other] of pools) {
      if (other === objects) continue;
      const theirs = find(other, "StatefulSet").spec.template.metadata.labels;
      for (const [what, selector] of selectors(objects)) {
        assert.ok(selects(selector, own), `pool ${name}'s ${what} misses its own pods`);
        assert.ok(!selects(selector, theirs), `pool ${name}'s ${what} selects pool ${otherName}'s`);
      }
    }
  }
});

Deno.test("pool B's objects are the first pool's but for their names, labels and what they name", () => {
  /** Pool B's object with each expected difference checked and set back to pool A's value. */
  const undo = (b: Obj): Obj => {
    const o = clone(b);
    o.metadata.name = o.metadata.name.slice(0, -SUFFIX.length);
    delete o.metadata.labels["app.kubernetes.io/instance"];
    const backName = (labels: Json) => {
      if (labels["app.kubernetes.io/name"] === `cardano-producer${SUFFIX}`) {
        labels["app.kubernetes.io/name"] = "cardano-producer";
      }
    };
    backName(o.metadata.labels);
    switch (o.kind) {
      case "StatefulSet": {
        const spec = o.spec;
        backName(spec.selector.matchLabels);
        backName(spec.template.metadata.labels);
        delete spec.template.metadata.labels["app.kubernetes.io/instance"];
        // The instance label reaches the chain database's claims too (kustomize's templates).
        for (const claim of spec.volumeClaimTemplates) {
          assert.deepEqual(claim.metadata.labels, { "app.kubernetes.io/instance": "pool-b" });
          delete claim.metadata.labels;
        }
        for (
          const t of spec.template.spec.affinity.podAntiAffinity
            .requiredDuringSchedulingIgnoredDuringExecution
        ) {
          backName(t.labelSelector.matchLabels);
        }
        spec.serviceName = spec.serviceName.slice(0, -SUFFIX.length);
        spec.template.spec.serviceAccountName = spec.template.spec.serviceAccountName.slice(
          0,
          -SUFFIX.length,
        );
        const sidecar = sidecarOf(o);
        const pool = sidecar.env.filter((e: Json) => e.name.startsWith("POOL_"));
        assert.deepEqual(pool.map((e: Json) => e.name), ["POOL_ID", "POOL_NAME", "POOL_TICKER"]);
        sidecar.env = sidecar.env.filter((e: Json) => !e.name.startsWith("POOL_")).map((
          e: Json,
        ) =>
          ["LEASE_NAME", "CARDANO_LEADER_NAME"].includes(e.name)
            ? { ...e, value: e.value.slice(0, -SUFFIX.length) }
            : e
        );
        for (const v of spec.template.spec.volumes) {
          if (v.secret?.secretName === `cardano-forging-keys${SUFFIX}`) {
            v.secret.secretName = "cardano-forging-keys";
          }
          if (v.configMap?.name === `cardano-node-config${SUFFIX}`) {
            v.configMap.name = "cardano-node-config";
          }
        }
        break;
      }
      case "PodDisruptionBudget":
        backName(o.spec.selector.matchLabels);
        break;
      case "Service":
        backName(o.spec.selector);
        break;
      case "RoleBinding":
        o.roleRef.name = o.roleRef.name.slice(0, -SUFFIX.length);
        for (const s of o.subjects) s.name = s.name.slice(0, -SUFFIX.length);
        break;
      case "Role":
        for (const rule of o.rules) {
          if (rule.resourceNames !== undefined && rule.verbs.join() !== "delete") {
            rule.resourceNames = rule.resourceNames.map((n: string) => n.slice(0, -SUFFIX.length));
          }
        }
        if (o.metadata.name === "forge-manager-fence") {
          // The fence's delete, limited to pool B's pods (checked by the test above).
          o.rules = [{ ...o.rules[0], verbs: [...o.rules[0].verbs, "delete"] }];
        }
        break;
    }
    return o;
  };
  const byKey = new Map(poolA.map((r) => [key(r.obj), r.obj]));
  for (const { obj } of poolB) {
    const a = byKey.get(key(obj).slice(0, -SUFFIX.length));
    assert.deepEqual(undo(obj), a, key(obj));
  }
});

// ---------------------------------------------------------------------------------------------
// On the API server
// ---------------------------------------------------------------------------------------------

interface TwoPools {
  namespace: string;
  otherNamespace: string;
  /** Each pool's sidecar identity (its ServiceAccount's token, bound by its RoleBindings only). */
  a: KubeConfig;
  b: KubeConfig;
}

let twoPools: Promise<TwoPools> | undefined;

/**
 * One namespace holding both pools' objects, created for real with strict field validation, each
 * pool's Lease (held by someone), a pod of each pool, and a token of each pool's ServiceAccount.
 */
function bothPools(): Promise<TwoPools> {
  twoPools ??= (async () => {
    const { cp, admin } = await cluster();
    const namespace = uniqueNamespace("two-pools");
    const otherNamespace = uniqueNamespace("pool-b-elsewhere");
    await cp.ensureNamespace(namespace);
    await cp.ensureNamespace(otherNamespace);
    for (const { obj } of [...poolA, ...poolB]) {
      const res = await admin.create(obj, { namespace });
      assert.equal(res.status, 201, `${key(obj)}: HTTP ${res.status}: ${res.body.message}`);
    }
    const leases: [string, string][] = [
      ["cardano-node-leader", namespace],
      [`cardano-node-leader${SUFFIX}`, namespace],
      [`cardano-node-leader${SUFFIX}`, otherNamespace],
    ];
    for (const [name, ns] of leases) {
      const lease = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name },
        spec: { holderIdentity: "someone", leaseDurationSeconds: 15 },
      };
      assert.equal((await admin.create(lease, { namespace: ns })).status, 201);
    }
    for (const name of ["cardano-producer-0", `cardano-producer${SUFFIX}-0`]) {
      assert.equal((await admin.create(pod(name), { namespace })).status, 201);
    }
    // Bindings reach the authorizer asynchronously: wait for the last rule of each Role.
    for (const suffix of ["", SUFFIX]) {
      const account = `forge-manager${suffix}`;
      await waitAllowed(admin, namespace, { verb: "create", resource: "events" }, account);
      const last = { verb: "delete", resource: "pods", name: `cardano-producer${suffix}-2` };
      await waitAllowed(admin, namespace, last, account);
    }
    const identity = async (serviceAccount: string) => {
      const kc = new KubeConfig();
      kc.loadFromFile(await cp.mintIdentity({ namespace, serviceAccount }));
      return kc;
    };
    return {
      namespace,
      otherNamespace,
      a: await identity("forge-manager"),
      b: await identity(`forge-manager${SUFFIX}`),
    };
  })();
  return twoPools;
}

Deno.test({
  name:
    "the API server accepts both pools' objects together in one namespace with strict field validation",
  ...integration,
  async fn() {
    // Every object of both pools created for real (201), none refused as AlreadyExists.
    const { namespace } = await bothPools();
    const { admin } = await cluster();
    const names = await admin.request(
      "GET",
      `/apis/apps/v1/namespaces/${namespace}/statefulsets`,
    );
    assert.deepEqual(
      (names.body.items as Obj[]).map((s) => s.metadata.name).sort(),
      ["cardano-producer", `cardano-producer${SUFFIX}`],
    );
  },
});

const LEADERS = { group: "cardano.io", version: "v1", plural: "cardanoleaders" };

Deno.test({
  name: "each pool's sidecar may use its own Lease and CardanoLeader",
  ...integration,
  async fn() {
    const { namespace, a, b } = await bothPools();
    for (const [kc, suffix] of [[a, ""], [b, SUFFIX]] as const) {
      const coord = kc.makeApiClient(CoordinationV1Api);
      const name = `cardano-node-leader${suffix}`;
      const lease = await coord.readNamespacedLease({ name, namespace });
      lease.spec!.renewTime = new V1MicroTime();
      await coord.replaceNamespacedLease({ name, namespace, body: lease });
      const objects = kc.makeApiClient(CustomObjectsApi);
      const leader = { ...LEADERS, namespace, name: `cardano-leader${suffix}` };
      await objects.getNamespacedCustomObject(leader);
      await objects.patchNamespacedCustomObjectStatus(
        { ...leader, body: { status: { leaderPod: `cardano-producer${suffix}-0` } } },
        mergePatch,
      );
    }
  },
});

Deno.test({
  name: "a pool's sidecar gets 403 for the other pool's Lease, CardanoLeader and, for pool B, pods",
  ...integration,
  async fn() {
    const { namespace, otherNamespace, a, b } = await bothPools();
    const refusals = (kc: KubeConfig, other: string): [string, Promise<unknown>][] => {
      const coord = kc.makeApiClient(CoordinationV1Api);
      const objects = kc.makeApiClient(CustomObjectsApi);
      const lease = `cardano-node-leader${other}`;
      const leader = { ...LEADERS, namespace, name: `cardano-leader${other}` };
      const body = {
        metadata: { name: lease },
        spec: { holderIdentity: "intruder", leaseDurationSeconds: 15 },
      };
      return [
        ["get the other pool's Lease", coord.readNamespacedLease({ name: lease, namespace })],
        [
          "update the other pool's Lease",
          coord.replaceNamespacedLease({ name: lease, namespace, body }),
        ],
        ["read the other pool's CardanoLeader", objects.getNamespacedCustomObject(leader)],
        [
          "patch the other pool's CardanoLeader status",
          objects.patchNamespacedCustomObjectStatus(
            { ...leader, body: { status: { leaderPod: "intruder" } } },
            mergePatch,
          ),
        ],
      ];
    };
    const coordB = b.makeApiClient(CoordinationV1Api);
    const refused: [string, Promise<unknown>][] = [
      ...refusals(a, SUFFIX).map(([w, p]) => [`pool A: ${w}`, p] as [string, Promise<unknown>]),
      ...refusals(b, "").map(([w, p]) => [`pool B: ${w}`, p] as [string, Promise<unknown>]),
      [
        "pool B: delete a pod of pool A",
        b.makeApiClient(CoreV1Api).deleteNamespacedPod({ name: "cardano-producer-0", namespace }),
      ],
      [
        "pool B: its own Lease's name in another namespace",
        coordB.readNamespacedLease({
          name: `cardano-node-leader${SUFFIX}`,
          namespace: otherNamespace,
        }),
      ],
    ];
    const got = await Promise.all(
      refused.map(async ([what, call]) => [what, await statusOf(call)]),
    );
    assert.deepEqual(got, refused.map(([what]) => [what, 403]));
    // A watch by name reads too: refused on the other pool's Lease.
    assert.equal(
      await firstWatchEvent(b, `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`, {
        fieldSelector: "metadata.name=cardano-node-leader",
      }),
      "error 403",
    );
    // Pool B's fence may delete its own pods (not scheduled: removed at once).
    const core = b.makeApiClient(CoreV1Api);
    assert.equal(
      await statusOf(core.deleteNamespacedPod({ name: `cardano-producer${SUFFIX}-0`, namespace })),
      200,
    );
  },
});

Deno.test({
  name: "pool B's operator Role may change pool B's CardanoLeader spec and not pool A's",
  ...integration,
  async fn() {
    const { namespace } = await bothPools();
    const { cp } = await cluster();
    const kc = new KubeConfig();
    kc.loadFromFile(
      await cp.mintIdentity({
        namespace,
        serviceAccount: "operator-of-pool-b",
        roleName: `forge-manager-operator${SUFFIX}`,
      }),
    );
    const objects = kc.makeApiClient(CustomObjectsApi);
    const handover = {
      id: "h-1",
      by: "operator-of-pool-b",
      at: new Date().toISOString(),
    };
    const mine = { ...LEADERS, namespace, name: `cardano-leader${SUFFIX}` };
    const current = await objects.getNamespacedCustomObject(mine) as Obj;
    const replaced = await objects.replaceNamespacedCustomObject({
      ...mine,
      body: { ...current, spec: { handover } },
    }) as Obj;
    assert.equal(replaced.spec.handover.id, "h-1");
    const theirs = { ...LEADERS, namespace, name: "cardano-leader" };
    assert.equal(await statusOf(objects.getNamespacedCustomObject(theirs)), 403);
    assert.equal(
      await statusOf(objects.replaceNamespacedCustomObject({
        ...theirs,
        body: { ...current, metadata: { name: "cardano-leader" }, spec: { handover } },
      })),
      403,
    );
  },
});
