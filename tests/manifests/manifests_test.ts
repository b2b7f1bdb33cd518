/**
 * The deployment files (Containerfile, manifests/, manifests/examples/dummy/) checked twice:
 * statically (they agree with each other and with the code) and against a real kube-apiserver
 * (every object is accepted with strict field validation, the CRD's schema rejects bad status,
 * and the shipped RBAC allows exactly what forge-manager does, refusing the rest with 403).
 *
 * The kustomizations use no transformers, so "rendering" one is reading the files its
 * `resources` list; {@linkcode render} refuses any other kustomize field rather than ignore it.
 * A test checks that kustomize (the pinned kubectl's, tests/support/built_tools.ts) renders the
 * same objects, and the API-server tests apply what kustomize renders.
 *
 * Needs: read of the repository, run (bash for build.sh, kubectl, the simulated node), write of a temp
 * dir, and what the shared control plane needs (the `dev` permission set has it all).
 */
import assert from "node:assert/strict";
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  type CoreV1Event,
  CustomObjectsApi,
  KubeConfig,
  V1MicroTime,
} from "@kubernetes/client-node";
import { validateCredentialSet } from "../../lib/cardano/cardano_keys.ts";
import { judgeCredentials } from "../../lib/forging/credential_verdict.ts";
import { kesTimingFromGenesisFile } from "../../lib/cardano/kes_period.ts";
import { parseConfig } from "../../lib/core/config.ts";
import { parseGuardConfig } from "../../lib/core/guard_config.ts";
import { createMetrics } from "../../lib/runtime/metrics.ts";
import { VERSION } from "../../lib/base/version.ts";
import {
  configMapKey,
  COPIED_MANIFESTS,
  DUMMY_DIR,
  DUMMY_NAMESPACE,
  renderDummyExample,
  REPO_ROOT,
} from "../../tools/dummy_example.ts";
import { KES_AGENT_DIR, renderKesAgentExample } from "../../tools/kes_agent_example.ts";
import { EXAMPLE_OVERLAYS } from "../../tools/example_bases.ts";
import { exists } from "../support/fs.ts";
import {
  cluster,
  dryRunAll,
  find,
  firstWatchEvent,
  flagValue,
  guardOf,
  integration,
  type Json,
  kubectl,
  kustomizationInputs,
  kustomize,
  mergePatch,
  nodeOf,
  type Obj,
  pod,
  podSpec,
  readRepo,
  type Rendered,
  sidecarOf,
  statusOf,
  uniqueNamespace,
  waitAllowed,
} from "../support/manifests.ts";
import { waitUntil } from "../support/wait.ts";
import { parseYaml } from "../support/yaml.ts";

// ---------------------------------------------------------------------------------------------
// Reading the manifests
// ---------------------------------------------------------------------------------------------

const KUSTOMIZATION_FIELDS = new Set(["apiVersion", "kind", "resources", "configMapGenerator"]);

/** The objects `kubectl apply -k dir` would send, in order (relative paths from the repo). */
async function render(dir: string): Promise<Rendered[]> {
  const path = `${dir}/kustomization.yaml`;
  const [kustomization] = parseYaml(await readRepo(path)) as [Record<string, unknown>];
  for (const field of Object.keys(kustomization)) {
    assert.ok(
      KUSTOMIZATION_FIELDS.has(field),
      `${path} uses "${field}", which this test's renderer does not implement`,
    );
  }
  const out: Rendered[] = [];
  for (const resource of kustomization.resources as string[]) {
    const file = `${dir}/${resource}`;
    const info = await Deno.stat(`${REPO_ROOT}/${file}`);
    if (info.isDirectory) {
      out.push(...await render(file));
      continue;
    }
    for (const obj of parseYaml(await readRepo(file)) as Obj[]) out.push({ file, obj });
  }
  // Generated ConfigMaps: whole files as keys, a fixed name (no hash suffix) and labels only.
  for (const gen of (kustomization.configMapGenerator ?? []) as Json[]) {
    const { name, files, options, ...rest } = gen;
    const { disableNameSuffixHash, labels, ...otherOptions } = options ?? {};
    assert.deepEqual(rest, {}, `${path}: configMapGenerator ${name} uses fields not implemented`);
    assert.deepEqual(otherOptions, {}, `${path}: configMapGenerator ${name} options`);
    assert.equal(disableNameSuffixHash, true, `${path}: ${name} needs a fixed name`);
    const data: Record<string, string> = {};
    for (const f of files as string[]) data[f] = await readRepo(`${dir}/${f}`);
    const obj: Obj = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name, ...(labels ? { labels } : {}) },
      data,
    };
    out.push({ file: `${dir}/${(files as string[]).join(",")}`, obj });
  }
  return out;
}

const BASE = "manifests";
const MONITORING = "manifests/monitoring";
const base = await render(BASE);
const dummy = await render(DUMMY_DIR);
const monitoring = await render(MONITORING);
const kesAgent = await render(KES_AGENT_DIR);

// ---------------------------------------------------------------------------------------------
// Static checks
// ---------------------------------------------------------------------------------------------

Deno.test("every YAML file under manifests/ is listed by a kustomization", async () => {
  const listed = new Set([...base, ...dummy, ...monitoring, ...kesAgent].map((r) => r.file));
  const kustomizations = new Set(
    [BASE, MONITORING, DUMMY_DIR, KES_AGENT_DIR].map((d) => `${d}/kustomization.yaml`),
  );
  // The overlays (with transformers, which render() does not implement): what kustomize reads.
  for (const dir of EXAMPLE_OVERLAYS) {
    const inputs = await kustomizationInputs(dir);
    for (const file of inputs.files) listed.add(file);
    for (const file of inputs.kustomizations) kustomizations.add(file);
  }
  const orphans: string[] = [];
  async function walk(dir: string) {
    for await (const entry of Deno.readDir(`${REPO_ROOT}/${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (/\.ya?ml$/.test(entry.name) && !listed.has(path) && !kustomizations.has(path)) {
        orphans.push(path);
      }
    }
  }
  await walk(BASE);
  assert.deepEqual(orphans, [], "files that `kubectl apply -k` would never apply");
});

Deno.test("kubectl kustomize renders the same objects as this test reads", async () => {
  for (
    const [dir, objects] of [
      [BASE, base],
      [DUMMY_DIR, dummy],
      [MONITORING, monitoring],
      [KES_AGENT_DIR, kesAgent],
    ] as const
  ) {
    const rendered = (await kustomize(dir)).map((r) => r.obj);
    const key = (o: Obj) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
    const byKey = new Map(rendered.map((o) => [key(o), o]));
    assert.equal(byKey.size, rendered.length, `${dir}: kustomize renders an object twice`);
    assert.deepEqual(
      [...byKey.keys()].sort(),
      objects.map((r) => key(r.obj)).sort(),
      `${dir}: kustomize renders other objects`,
    );
    for (const { obj } of objects) assert.deepEqual(byKey.get(key(obj)), obj, key(obj));
  }
});

Deno.test("the StatefulSet's sidecar configuration is valid and names the objects the Role allows", () => {
  for (const objects of [base, dummy, kesAgent]) {
    const sts = find(objects, "StatefulSet");
    const sidecar = sidecarOf(sts);
    const node = nodeOf(sts);
    const env: Record<string, string> = {};
    const fieldRefs: Record<string, string> = {};
    for (const e of sidecar.env as Json[]) {
      if (e.value !== undefined) env[e.name] = e.value;
      else fieldRefs[e.name] = e.valueFrom.fieldRef.fieldPath;
    }
    assert.deepEqual(fieldRefs, {
      NAMESPACE: "metadata.namespace",
      POD_NAME: "metadata.name",
      POD_UID: "metadata.uid",
    });
    const config = parseConfig({
      ...env,
      NAMESPACE: "cardano",
      POD_NAME: "cardano-producer-0",
      POD_UID: "0b5a4a4e-8d9e-4a59-9c1b-4d39b1f2b2a1",
    });

    const role = find(objects, "Role", "forge-manager");
    const namesFor = (resource: string) =>
      (role.rules as Json[]).filter((r) => r.resources.includes(resource))
        .flatMap((r) => r.resourceNames ?? []);
    assert.deepEqual(namesFor("leases"), [config.leaseName]);
    assert.deepEqual(namesFor("cardanoleaders"), [config.cardanoLeaderName]);
    assert.deepEqual(namesFor("cardanoleaders/status"), [config.cardanoLeaderName]);
    assert.equal(find(objects, "CardanoLeader").metadata.name, config.cardanoLeaderName);
    assert.equal(config.fence, "guard");
    assert.equal(config.guardSocket, "/run/forge-manager-guard/guard.sock");
    assert.equal(config.nodeProcessName, "cardano-node");
    // The fence reads the node container's status by this name in the other replicas' pods.
    // (the pod's only main container; the sidecar is an init container).
    assert.equal(env.NODE_CONTAINER_NAME, config.nodeContainerName);
    assert.deepEqual(podSpec(sts).containers.map((c) => c.name), [config.nodeContainerName]);

    // Files: sources in the read-only Secret mount, targets and socket in the shared ipc mount,
    // and the node is given exactly those targets and that socket.
    const mount = (c: Json, volume: string) =>
      (c.volumeMounts as Json[]).find((m) => m.name === volume)?.mountPath;
    const secrets = mount(sidecar, "forging-keys");
    const ipc = mount(sidecar, "ipc");
    assert.equal(mount(node, "ipc"), ipc);
    assert.equal(mount(node, "forging-keys"), undefined, "the node must not mount the Secret");
    const args = node.args as string[];
    assert.equal(flagValue(args, "--socket-path"), config.nodeSocket);
    assert.ok(config.nodeSocket.startsWith(`${ipc}/`));
    const flags = {
      kes: "--shelley-kes-key",
      vrf: "--shelley-vrf-key",
      opcert: "--shelley-operational-certificate",
    } as const;
    for (const kind of ["kes", "vrf", "opcert"] as const) {
      const paths = config.credentials[kind];
      if (paths === undefined) {
        // A KES agent: the node is given the agent's socket instead, the same the sidecar names.
        assert.equal(flagValue(args, flags[kind]), undefined, "a KES key file beside the agent");
        assert.equal(flagValue(args, "--shelley-kes-agent-socket"), config.kesAgentSocket);
        continue;
      }
      const { source, target } = paths;
      assert.ok(source.startsWith(`${secrets}/`), `${kind} source ${source}`);
      assert.ok(target.startsWith(`${ipc}/`), `${kind} target ${target}`);
      assert.equal(flagValue(args, flags[kind]), target);
    }
    assert.ok(args.includes("--start-as-non-producing-node"));

    // HTTP: one port, used by the probes, the Service and (by name) the ServiceMonitor.
    const port = (sidecar.ports as Json[]).find((p) => p.name === "metrics");
    assert.equal(port?.containerPort, config.metricsPort);
    assert.deepEqual(
      ["startupProbe", "livenessProbe", "readinessProbe"].map((p) => [
        sidecar[p].httpGet.path,
        sidecar[p].httpGet.port,
      ]),
      [["/startup-status", "metrics"], ["/healthz", "metrics"], ["/readyz", "metrics"]],
    );
  }
});

Deno.test("the pods are hardened and forge-manager runs as a native sidecar that may signal the node", () => {
  for (const objects of [base, dummy, kesAgent]) {
    const sts = find(objects, "StatefulSet");
    const spec = podSpec(sts);
    assert.equal(spec.shareProcessNamespace, true);
    assert.equal(spec.serviceAccountName, "forge-manager");
    assert.equal(spec.automountServiceAccountToken, false);
    assert.deepEqual(spec.securityContext, {
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      fsGroup: 10001,
      fsGroupChangePolicy: "OnRootMismatch",
      seccompProfile: { type: "RuntimeDefault" },
    });
    const sidecar = sidecarOf(sts);
    assert.equal(sidecar.restartPolicy, "Always");
    for (const c of [sidecar, guardOf(sts), nodeOf(sts)]) {
      // Same UID for both (the pod's), so no CAP_KILL is needed to send SIGHUP.
      assert.equal(c.securityContext.runAsUser, undefined, c.name);
      assert.deepEqual(c.securityContext, {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      }, c.name);
    }
    // As measured by the benchmark (README "Measured"): the request holds the memory at rest over
    // Deno's fetch, the limit keeps real headroom over the peak of either transport.
    assert.equal(sidecar.resources.requests.memory, "104Mi");
    assert.equal(sidecar.resources.limits.memory, "192Mi");

    const volume = (name: string) => spec.volumes.find((v) => v.name === name);
    assert.deepEqual(volume("forging-keys")?.secret, {
      secretName: "cardano-forging-keys",
      defaultMode: 0o400,
    });
    assert.deepEqual(volume("ipc")?.emptyDir, { medium: "Memory", sizeLimit: "16Mi" });
    const token = volume("kube-api-access")?.projected.sources[0].serviceAccountToken;
    assert.equal(token?.path, "token");
    // The API token is mounted in the sidecar only.
    const mountsToken = (c: Json) =>
      (c.volumeMounts as Json[]).some((m) => m.name === "kube-api-access");
    assert.ok(mountsToken(sidecar));
    assert.ok(!spec.containers.some(mountsToken));
    assert.ok(
      (sidecar.volumeMounts as Json[]).find((m) => m.name === "forging-keys")?.readOnly,
    );
    // A planned handover (node stop, then sidecar release) fits in the grace period.
    assert.ok((spec.terminationGracePeriodSeconds as number) >= 60);
    assert.equal(sts.spec.replicas, 3);
  }
  const anti = podSpec(find(base, "StatefulSet")).affinity as Json;
  assert.ok(anti.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution);
});

Deno.test("the guard runs first, from forge-manager's image, guarding the same files with no network or token", () => {
  for (const objects of [base, dummy]) {
    const sts = find(objects, "StatefulSet");
    const spec = podSpec(sts);
    const guard = guardOf(sts);
    const sidecar = sidecarOf(sts);
    const names = (spec.initContainers as Json[]).map((c) => c.name);
    // Native sidecars start in order and stop in reverse: the guard outlives forge-manager.
    assert.ok(names.indexOf("forge-manager-guard") < names.indexOf("forge-manager"));
    assert.equal(guard.restartPolicy, "Always");
    assert.equal(guard.image, sidecar.image, "the same image");
    assert.deepEqual(guard.args, ["guard"]);
    assert.equal(guard.ports, undefined, "no network");
    const env = (c: Json) => Object.fromEntries((c.env as Json[]).map((e) => [e.name, e.value]));
    const guardConfig = parseGuardConfig(env(guard));
    const sidecarConfig = parseConfig({
      ...env(sidecar),
      POD_NAME: "cardano-producer-0",
      POD_UID: "0b5a4a4e-8d9e-4a59-9c1b-4d39b1f2b2a1",
    });
    assert.equal(sidecarConfig.fence, "guard");
    assert.equal(sidecarConfig.guardSocket, guardConfig.socket);
    assert.deepEqual(
      guardConfig.targets,
      Object.values(sidecarConfig.credentials).map((c) => c.target),
      "the guard unlinks the files forge-manager places",
    );
    assert.equal(guardConfig.nodeProcessName, sidecarConfig.nodeProcessName);
    const mounts = (c: Json) =>
      Object.fromEntries(
        (c.volumeMounts as Json[]).map((m) => [m.name, m.mountPath]),
      );
    assert.deepEqual(mounts(guard), {
      ipc: "/ipc",
      guard: "/run/forge-manager-guard",
      "guard-tmp": "/tmp",
    }, "keys' folder and its own: no Secret, no API token");
    assert.equal(mounts(sidecar).guard, "/run/forge-manager-guard");
    assert.ok(!spec.containers.some((c: Json) => "guard" in mounts(c)), "the node cannot reach it");
    const volume = spec.volumes.find((v: Json) => v.name === "guard");
    assert.deepEqual(volume?.emptyDir, { medium: "Memory", sizeLimit: "1Mi" });
    assert.ok(guard.resources.limits.memory !== undefined);
  }
});

Deno.test("the PodDisruptionBudget and the Service select the StatefulSet's pods", () => {
  for (const objects of [base, dummy, kesAgent]) {
    const sts = find(objects, "StatefulSet");
    const labels = sts.spec.template.metadata.labels;
    const matches = (selector: Record<string, string>) =>
      Object.entries(selector).every(([k, v]) => labels[k] === v);
    const pdb = find(objects, "PodDisruptionBudget");
    assert.equal(pdb.spec.maxUnavailable, 1);
    assert.ok(matches(pdb.spec.selector.matchLabels));
    const service = find(objects, "Service");
    assert.ok(matches(service.spec.selector));
    assert.equal(sts.spec.serviceName, service.metadata.name);
    assert.equal(service.spec.ports[0].targetPort, "metrics");
    assert.equal(service.spec.publishNotReadyAddresses, true);
  }
});

Deno.test("the dummy example's generated copies and simulator are up to date", async () => {
  for (const [name, text] of await renderDummyExample()) {
    assert.equal(
      await readRepo(`${DUMMY_DIR}/${name}`),
      text,
      `${DUMMY_DIR}/${name} is stale: run ` +
        "deno run --allow-read --allow-write=manifests/examples/dummy tools/dummy_example.ts",
    );
  }
  // And, object by object, the copies are the originals in namespace cardano-test.
  for (const file of COPIED_MANIFESTS) {
    const originals = base.filter((r) => r.file === `${BASE}/${file}`).map((r) => r.obj);
    const copies = dummy.filter((r) => r.file === `${DUMMY_DIR}/${file}`).map((r) => r.obj);
    assert.deepEqual(
      copies.map(({ metadata: { namespace: _, ...metadata }, ...rest }) => ({ ...rest, metadata })),
      originals,
    );
    for (const copy of copies) {
      if (copy.kind !== "CustomResourceDefinition") {
        assert.equal(copy.metadata.namespace, DUMMY_NAMESPACE);
      }
    }
  }
});

Deno.test("the KES agent example: copies up to date, and its StatefulSet is the real one plus the agent", async () => {
  for (const [name, text] of await renderKesAgentExample()) {
    assert.equal(
      await readRepo(`${KES_AGENT_DIR}/${name}`),
      text,
      `${KES_AGENT_DIR}/${name} is stale: run deno run --allow-read ` +
        "--allow-write=manifests/examples/kes-agent tools/kes_agent_example.ts",
    );
  }
  for (const file of COPIED_MANIFESTS) {
    assert.deepEqual(
      kesAgent.filter((r) => r.file === `${KES_AGENT_DIR}/${file}`).map((r) => r.obj),
      base.filter((r) => r.file === `${BASE}/${file}`).map((r) => r.obj),
      file,
    );
  }
  const real = find(base, "StatefulSet");
  const withAgent = find(kesAgent, "StatefulSet");
  const spec = podSpec(withAgent);
  const agent = spec.initContainers[0]!;
  assert.equal(agent.name, "kes-agent", "the agent starts first, before the node needs it");
  assert.equal(agent.restartPolicy, "Always");
  const args = agent.args as string[];
  const socket = flagValue(args, "--service-address")!;
  const sidecar = sidecarOf(withAgent);
  const node = nodeOf(withAgent);
  // One socket, named alike by the agent, the node and the sidecar.
  assert.equal(flagValue(node.args, "--shelley-kes-agent-socket"), socket);
  assert.equal(sidecar.env.find((e: Json) => e.name === "KES_AGENT_SOCKET")?.value, socket);
  // The guard names it too, or it would refuse the sidecar's hello (two files, not three).
  const guard = spec.initContainers.find((c) => c.name === "forge-manager-guard")!;
  assert.equal(guard.env.find((e: Json) => e.name === "KES_AGENT_SOCKET")?.value, socket);
  const mounts = (c: Json) => (c.volumeMounts as Json[]).map((m) => m.name);
  // The service socket's volume: the agent's and the node's, never the sidecar's (the agent gives
  // its key to whoever connects); the control socket's: the agent's only.
  const service = (agent.volumeMounts as Json[]).find((m) => socket.startsWith(`${m.mountPath}/`));
  assert.ok(service, "the service socket is in no volume of the agent");
  const control = (agent.volumeMounts as Json[]).find((m) =>
    flagValue(args, "--control-address")!.startsWith(`${m.mountPath}/`)
  );
  assert.ok(control && control.name !== service.name);
  assert.ok(mounts(node).includes(service.name));
  assert.ok(!mounts(sidecar).includes(service.name), "the sidecar can reach the agent");
  assert.ok(!mounts(node).includes(control.name) && !mounts(sidecar).includes(control.name));
  assert.ok(!mounts(agent).includes("forging-keys") && !mounts(agent).includes("kube-api-access"));
  for (const name of [service.name, control.name]) {
    assert.equal(spec.volumes.find((v) => v.name === name)?.emptyDir?.medium, "Memory", name);
  }
  const [major, minor, patch] = (node.image as string).split(":")[1]!.split(".").map(Number);
  assert.ok(major! * 1e6 + minor! * 1e3 + patch! >= 10_007_001, `${node.image} predates 10.7.1`);
  assert.deepEqual(agent.securityContext, {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
  });
  // Everything else is the real StatefulSet: the sidecar but for its variable, the node but for
  // its image, its KES flag and the agent's volume, the pod but for the agent and its volumes.
  const withoutAgent = (sts: Obj) => {
    const { initContainers, containers, volumes, ...pod } = podSpec(sts);
    const agentVolumes = new Set([service.name, control.name, "kes-agent-cold-vkey"]);
    const { template: _t, ...rest } = sts.spec;
    return {
      rest,
      pod,
      initContainers: initContainers.filter((c) => c.name !== "kes-agent").map((c) => ({
        ...c,
        env: c.env.filter((e: Json) => e.name !== "KES_AGENT_SOCKET"),
      })),
      containers: containers.map((c) => {
        const { image: _image, ...others } = c;
        const args = (c.args as string[]).filter((a, i, all) =>
          ![a, all[i - 1]].some((x) =>
            x === "--shelley-kes-agent-socket" || x === "--shelley-kes-key"
          )
        );
        return {
          ...others,
          args,
          volumeMounts: c.volumeMounts.filter((m: Json) => !agentVolumes.has(m.name)),
        };
      }),
      volumes: volumes.filter((v) => !agentVolumes.has(v.name)),
    };
  };
  assert.deepEqual(withoutAgent(withAgent), withoutAgent(real));
});

Deno.test("the dummy StatefulSet differs from the real one only by its node, volumes, spread and network", () => {
  const real = find(base, "StatefulSet");
  const sim = find(dummy, "StatefulSet");
  // The sidecar is the same but for the dummy network's genesis (env and mount).
  const withoutGenesis = (c: Json) => ({
    ...c,
    env: c.env.filter((e: { name: string }) => e.name !== "SHELLEY_GENESIS_FILE"),
    volumeMounts: c.volumeMounts.filter((m: { name: string }) => m.name !== "genesis"),
  });
  assert.deepEqual(withoutGenesis(sidecarOf(sim)), sidecarOf(real));
  const strip = (sts: Obj) => {
    const { containers: _c, volumes, affinity: _a, initContainers, ...rest } = podSpec(sts);
    const pod = {
      ...rest,
      initContainers: initContainers.map((c: Json) =>
        c.name === "forge-manager" ? withoutGenesis(c) : c
      ),
    };
    const { volumeClaimTemplates: _v, template: _t, ...spec } = sts.spec;
    return {
      pod,
      spec,
      shared: volumes.filter((v) =>
        ["forging-keys", "ipc", "tmp", "kube-api-access", "guard", "guard-tmp"].includes(v.name)
      ),
    };
  };
  assert.deepEqual(strip(sim), strip(real));
  assert.equal(sim.metadata.namespace, DUMMY_NAMESPACE);
  assert.equal(real.metadata.namespace, undefined);
  // The simulated node is started with the real node's socket and credential flags.
  const realArgs = nodeOf(real).args as string[];
  const simArgs = nodeOf(sim).args as string[];
  for (
    const flag of [
      "--socket-path",
      "--shelley-kes-key",
      "--shelley-vrf-key",
      "--shelley-operational-certificate",
    ]
  ) {
    assert.equal(flagValue(simArgs, flag), flagValue(realArgs, flag), flag);
  }
  assert.ok(simArgs.includes("--start-as-non-producing-node"));
  // The simulator runs on the Deno version the tests run it on.
  assert.equal(nodeOf(sim).image, `docker.io/denoland/deno:${Deno.version.deno}`);
});

Deno.test("the dummy Secret holds a credential set that can forge on the dummy network, and says it is not real", () => {
  const secret = find(dummy, "Secret", "cardano-forging-keys");
  const data = secret.stringData as Record<string, string>;
  assert.deepEqual(Object.keys(data).sort(), ["kes.skey", "node.cert", "vrf.skey"]);
  const texts = { kes: data["kes.skey"]!, vrf: data["vrf.skey"]!, opcert: data["node.cert"]! };
  // Throws on a malformed envelope or a KES key that is not the certificate's hot key.
  const facts = validateCredentialSet(texts, {
    kes: "kes.skey",
    vrf: "vrf.skey",
    opcert: "node.cert",
  });
  // The sidecar judges it by the genesis the example mounts: it must be valid for decades.
  const genesis = find(dummy, "ConfigMap", "dummy-genesis");
  const timing = kesTimingFromGenesisFile(JSON.parse(genesis.data["shelley-genesis.json"]));
  for (const year of [2026, 2040]) {
    const check = judgeCredentials(facts, timing, { nowMs: Date.UTC(year, 11, 2) });
    assert.equal(check.verdict, "valid", `${year}: ${check.reason}`);
  }
  const env = sidecarOf(find(dummy, "StatefulSet")).env;
  assert.equal(
    env.find((e: { name: string }) => e.name === "SHELLEY_GENESIS_FILE")?.value,
    "/genesis/shelley-genesis.json",
  );
  for (const text of Object.values(texts)) {
    assert.match(JSON.parse(text).description, /^DUMMY .*never use it/);
  }
  // The simulated node forges only with this pool's keys, not with the sidecar's decoys.
  assert.equal(flagValue(nodeOf(find(dummy, "StatefulSet")).args, "--pool-id"), facts.poolId);
  assert.equal(secret.metadata.labels["forge-manager.cardano.io/dummy"], "true");
  // The real manifests never carry keys.
  assert.ok(!base.some((r) => r.obj.kind === "Secret"));
});

Deno.test({
  name: "the dummy example's simulated node starts from its ConfigMap with the dummy keys",
  ...integration,
  async fn() {
    // Lay out the container as its start script does, with /ipc and /work in a temp dir, and
    // place the keys as forge-manager's startup provisioning would (mode 0600).
    await using tmp = await tempDir();
    const sts = find(dummy, "StatefulSet");
    const node = nodeOf(sts);
    const configMap = find(dummy, "ConfigMap", "sim-node");
    const script = node.command[2] as string;
    assert.match(script, /sed 's\|__\|\/\|g'/, "the start script must restore '/' from '__'");
    for (const [key, text] of Object.entries(configMap.data as Record<string, string>)) {
      const path = `${tmp.path}/work/sim/${key.replaceAll("__", "/")}`;
      assert.equal(configMapKey(path.slice(`${tmp.path}/work/sim/`.length)), key);
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      await Deno.writeTextFile(path, text);
    }
    const entry = script.match(/(\/work\/sim\/\S+\.ts)/)?.[1];
    assert.ok(entry, "the start script names the simulator's entry module");
    const secret = find(dummy, "Secret", "cardano-forging-keys").stringData;
    await Deno.mkdir(`${tmp.path}/ipc`);
    for (const name of ["kes.skey", "vrf.skey", "node.cert"]) {
      await Deno.writeTextFile(`${tmp.path}/ipc/${name}`, secret[name], { mode: 0o600 });
    }
    const record = `${tmp.path}/record.jsonl`;
    const args = (node.args as string[]).map((arg) =>
      arg === "/dev/stdout" ? record : arg.replace(/^\/ipc\//, `${tmp.path}/ipc/`)
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--no-prompt", `${tmp.path}${entry}`, ...args],
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const socket = flagValue(args, "--socket-path")!;
    await waitUntil("the simulated node to open its socket", () => exists(socket), 20_000);
    child.kill("SIGTERM");
    const out = await child.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const events = (await Deno.readTextFile(record)).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(events.map((e) => [e.event, e.forging]), [["start", false], ["exit", false]]);
  },
});

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "forge-manager-manifests-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

Deno.test("the Containerfile builds with the pinned Deno and ships only the binary as UID 10001", async () => {
  const text = await readRepo("Containerfile");
  const denoJson = JSON.parse(await readRepo("deno.json"));
  const stages = text.split(/^FROM /m).slice(1).map((s) => `FROM ${s}`);
  assert.equal(stages.length, 2, "two stages: build and runtime");
  const [build, runtime] = stages as [string, string];

  // Build: the official Deno image at the version the tests run on, native to the build
  // machine, cross-compiling with the deno.json task of the target architecture.
  assert.match(
    text,
    new RegExp(`^ARG DENO_VERSION=${Deno.version.deno.replaceAll(".", "\\.")}$`, "m"),
  );
  assert.match(
    build,
    /^FROM --platform=\$BUILDPLATFORM docker\.io\/denoland\/deno:\$\{DENO_VERSION\} AS build$/m,
  );
  assert.match(build, /deno install --frozen/);
  for (const [docker, deno] of [["amd64", "x86_64"], ["arm64", "aarch64"]]) {
    assert.match(build, new RegExp(`${docker}\\) arch=${deno} ;;`));
    assert.ok(denoJson.tasks[`compile:${deno}`], `deno.json has no task compile:${deno}`);
    assert.match(
      denoJson.tasks[`compile:${deno}`],
      new RegExp(`-o dist/forge-manager-linux-${deno} `),
    );
  }
  assert.match(build, /deno task "compile:\$arch"/);

  // Runtime: distroless with glibc, no shell (so no RUN), the binary only, as UID 10001.
  assert.match(runtime, /^FROM gcr\.io\/distroless\/cc-debian12:nonroot$/m);
  assert.doesNotMatch(runtime, /^RUN /m);
  assert.match(runtime, /^COPY --from=build \/out\/forge-manager \/forge-manager$/m);
  assert.match(runtime, /^USER 10001:10001$/m);
  assert.match(runtime, /^EXPOSE 8000$/m);
  assert.match(runtime, /^ENTRYPOINT \["\/forge-manager"\]$/m);
  for (const label of ["title", "description", "source", "licenses", "version"]) {
    assert.match(runtime, new RegExp(`org\\.opencontainers\\.image\\.${label}=`));
  }

  // One version everywhere: deno.json, lib/base/version.ts, the image label and the manifests' tag.
  assert.match(text, new RegExp(`^ARG VERSION=${denoJson.version}$`, "m"));
  assert.equal(VERSION, denoJson.version);
  for (const objects of [base, dummy]) {
    assert.equal(
      sidecarOf(find(objects, "StatefulSet")).image,
      `forge-manager:${denoJson.version}`,
    );
  }
});

Deno.test("the alert rules use only metrics that forge-manager exports", async () => {
  const metrics = createMetrics({
    version: VERSION,
    pod: "p",
    namespace: "n",
    lease: "l",
    identity: "i",
    lastRenewAt: () => undefined,
  });
  const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
  const rule = find(monitoring, "PrometheusRule");
  const rules = rule.spec.groups.flatMap((g: Json) => g.rules) as Json[];
  const names = rules.map((r) => r.alert);
  for (
    const required of [
      "MultipleForgers",
      "NoForger",
      "ForgeManagerSignalFailures",
      "ForgeManagerRenewFailures",
    ]
  ) {
    assert.ok(names.includes(required), `missing alert ${required}`);
  }
  assert.equal(new Set(names).size, names.length, "alert names are unique");
  for (const r of rules) {
    assert.equal(typeof r.expr, "string", r.alert);
    assert.ok(["critical", "warning"].includes(r.labels?.severity), `${r.alert} severity`);
    assert.ok(r.annotations?.summary, `${r.alert} summary`);
    if (r.for !== undefined) assert.match(r.for, /^\d+[smh]$/, `${r.alert} for`);
    let depth = 0;
    for (const ch of r.expr as string) {
      depth += ch === "(" ? 1 : ch === ")" ? -1 : 0;
      assert.ok(depth >= 0, `${r.alert}: unbalanced parentheses`);
    }
    assert.equal(depth, 0, `${r.alert}: unbalanced parentheses`);
    const metricNames = (r.expr as string).match(/\b(cardano|forge_manager|process)_[a-z_]+/g) ??
      [];
    assert.ok(metricNames.length > 0, `${r.alert} uses no metric`);
    for (const name of metricNames) {
      assert.ok(exported.has(name), `${r.alert} uses ${name}, which forge-manager does not export`);
    }
  }
  const multiple = rules.find((r) => r.alert === "MultipleForgers")!;
  // By pool: two pools that set POOL_ID may share a namespace.
  assert.match(multiple.expr, /^sum by \(namespace, pool_id\) \(cardano_forging_enabled\) > 1$/);
  const signal = rules.find((r) => r.alert === "ForgeManagerSignalFailures")!;
  assert.match(signal.expr, /increase\(forge_manager_signal_failures_total\[/);

  const monitor = find(monitoring, "ServiceMonitor");
  const service = find(base, "Service");
  assert.deepEqual(monitor.spec.selector.matchLabels, {
    "app.kubernetes.io/name": service.metadata.labels["app.kubernetes.io/name"],
  });
  assert.equal(monitor.spec.endpoints[0].port, service.spec.ports[0].name);
  assert.equal(monitor.spec.endpoints[0].path, "/metrics");
});

Deno.test("the Grafana dashboard's queries use only metrics that forge-manager exports", async () => {
  const metrics = createMetrics({
    version: VERSION,
    pod: "p",
    namespace: "n",
    lease: "l",
    identity: "i",
    lastRenewAt: () => undefined,
  });
  const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
  const map = find(monitoring, "ConfigMap", "forge-manager-dashboard");
  assert.equal(map.metadata.labels.grafana_dashboard, "1");
  const dashboard = JSON.parse(map.data["forge-manager-dashboard.json"]);
  assert.equal(dashboard.uid, "forge-manager");
  const titles = (dashboard.panels as Json[]).map((p) => p.title);
  assert.equal(new Set(titles).size, titles.length, "panel titles are unique");
  for (const panel of dashboard.panels as Json[]) {
    assert.ok(panel.targets?.length > 0, `${panel.title} has no query`);
    for (const t of panel.targets as Json[]) {
      const names = (t.expr as string).match(/\b(cardano|forge_manager|process)_[a-z_]+/g) ?? [];
      assert.ok(names.length > 0, `${panel.title} uses no metric`);
      for (const name of names) {
        assert.ok(exported.has(name), `${panel.title} uses ${name}, which is not exported`);
      }
      assert.match(t.expr, /namespace="\$namespace"/, `${panel.title} is not per namespace`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Against the API server
// ---------------------------------------------------------------------------------------------

Deno.test({
  name: "the API server accepts every object of manifests/ with strict field validation",
  ...integration,
  async fn() {
    const { cp, admin } = await cluster();
    const namespace = uniqueNamespace("base");
    await cp.ensureNamespace(namespace);
    assert.deepEqual(await dryRunAll(admin, await kustomize(BASE), namespace), []);
  },
});

Deno.test({
  name: "the API server accepts every object of the KES agent example with strict field validation",
  ...integration,
  async fn() {
    const { cp, admin } = await cluster();
    const namespace = uniqueNamespace("kes-agent");
    await cp.ensureNamespace(namespace);
    assert.deepEqual(await dryRunAll(admin, await kustomize(KES_AGENT_DIR), namespace), []);
  },
});

Deno.test({
  name: "the API server accepts every object of the dummy example with strict field validation",
  ...integration,
  async fn() {
    const { cp, admin } = await cluster();
    const rendered = await kustomize(DUMMY_DIR);
    const isNs = (r: Rendered) => r.obj.kind === "Namespace";
    // The Namespace first (dry-run), then the namespace for real so its objects can be admitted.
    assert.deepEqual(await dryRunAll(admin, rendered.filter(isNs)), []);
    await cp.ensureNamespace(find(rendered, "Namespace").metadata.name);
    assert.deepEqual(await dryRunAll(admin, rendered.filter((r) => !isNs(r))), []);
  },
});

Deno.test({
  name: "the install commands of docs/deploy.md create every object of manifests/ with kubectl",
  ...integration,
  async fn() {
    const { cp } = await cluster();
    const namespace = uniqueNamespace("install");
    const env = { KUBECONFIG: cp.adminKubeconfig };
    const doc = await readRepo("docs/deploy.md");
    // The three commands as the guide gives them, with its namespace replaced by a fresh one.
    const commands = [
      "kubectl apply -f manifests/crd.yaml",
      "kubectl wait --for=condition=Established crd/cardanoleaders.cardano.io",
      "kubectl -n cardano apply -k manifests/",
    ];
    for (const command of commands) assert.ok(doc.includes(command), `deploy.md: ${command}`);
    await kubectl(["create", "namespace", namespace], env);
    for (const command of commands) {
      const args = command.split(" ").slice(1).map((a) => a === "cardano" ? namespace : a)
        .map((a) => a.startsWith("manifests/") ? `${REPO_ROOT}/${a}` : a);
      await kubectl(args, env);
    }
    // Every rendered object exists, as the admin sees it.
    for (const { obj } of await kustomize(BASE)) {
      const kind = obj.kind.toLowerCase();
      const ns = obj.kind === "CustomResourceDefinition" ? [] : ["-n", namespace];
      const got = JSON.parse(
        await kubectl(["get", kind, obj.metadata.name, ...ns, "-o", "json"], env),
      );
      assert.equal(got.metadata.name, obj.metadata.name, `${obj.kind} ${obj.metadata.name}`);
    }
    const table = await kubectl(["-n", namespace, "get", "cl"], env);
    assert.match(table, /^NAME\s+LEADER\s+FORGING\s+PREFERRED\s+LAST TRANSITION\s+AGE$/m);
    assert.match(table, /^cardano-leader\s/m);
  },
});

Deno.test({
  name:
    "the monitoring objects are dry-run where their kinds are served (the dashboard's ConfigMap), else checked statically",
  ...integration,
  async fn() {
    const { cp, admin } = await cluster();
    const rendered = await kustomize(MONITORING);
    const served: Rendered[] = [];
    const unserved: Rendered[] = [];
    for (const r of rendered) {
      (await admin.resource(r.obj.apiVersion, r.obj.kind) === null ? unserved : served).push(r);
    }
    // The test control plane has no Prometheus Operator: "the alert rules use only metrics that
    // forge-manager exports" and tests/manifests/prometheus_rules_test.ts check those objects.
    assert.ok(unserved.every((r) => r.obj.apiVersion === "monitoring.coreos.com/v1"));
    assert.deepEqual(served.map((r) => r.obj.kind), ["ConfigMap"]);
    const namespace = uniqueNamespace("monitoring");
    await cp.ensureNamespace(namespace);
    assert.deepEqual(await dryRunAll(admin, served, namespace), []);
  },
});

Deno.test({
  name:
    "kubectl get cardanoleader shows the leader, forging and transition columns; cl is a short name",
  ...integration,
  async fn() {
    const { cp, admin } = await cluster();
    const namespace = uniqueNamespace("columns");
    await cp.ensureNamespace(namespace);
    const cr = find(base, "CardanoLeader");
    assert.equal((await admin.create(cr, { namespace })).status, 201);
    const path = `${await admin.collection(cr, namespace)}/${cr.metadata.name}/status`;
    const patched = await admin.request("PATCH", path, {
      contentType: "application/merge-patch+json",
      body: {
        status: {
          leaderPod: "cardano-producer-1",
          forgingEnabled: true,
          lastTransitionTime: "2025-01-02T03:04:05Z",
        },
      },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));

    const table = await admin.request("GET", await admin.collection(cr, namespace), {
      accept: "application/json;as=Table;v=v1;g=meta.k8s.io",
    });
    assert.equal(table.status, 200);
    assert.deepEqual(
      (table.body.columnDefinitions as Json[]).map((c) => c.name),
      ["Name", "Leader", "Forging", "Preferred", "Last Transition", "Age"],
    );
    const cells = (table.body.rows as Json[])[0]!.cells as unknown[];
    assert.deepEqual(cells.slice(0, 3), ["cardano-leader", "cardano-producer-1", true]);

    const discovery = await admin.request("GET", "/apis/cardano.io/v1");
    const resources = discovery.body.resources as Json[];
    const main = resources.find((r) => r.name === "cardanoleaders");
    assert.deepEqual(main?.shortNames, ["cl", "cleader"]);
    assert.equal(main?.namespaced, true);
    assert.ok(resources.some((r) => r.name === "cardanoleaders/status"));
  },
});

Deno.test({
  name: "the CardanoLeader schema rejects a malformed status with 422 and stores a good one",
  ...integration,
  async fn() {
    const { cp, admin } = await cluster();
    const namespace = uniqueNamespace("schema");
    await cp.ensureNamespace(namespace);
    const cr = find(base, "CardanoLeader");
    assert.equal((await admin.create(cr, { namespace })).status, 201);
    const path = `${await admin.collection(cr, namespace)}/${cr.metadata.name}/status`;
    const patch = (status: unknown) =>
      admin.request("PATCH", path, {
        contentType: "application/merge-patch+json",
        body: { status },
      });
    const condition = {
      type: "Forging",
      status: "True",
      reason: "LeaseAcquired",
      message: "cardano-producer-0 holds the lease and its node forges",
      lastTransitionTime: "2025-06-01T12:00:00.123Z",
      observedGeneration: 1,
    };
    const good = {
      leaderPod: "cardano-producer-0",
      forgingEnabled: true,
      lastTransitionTime: "2025-06-01T12:00:00.123Z",
      leaseTransitions: 4,
      conditions: [condition],
    };
    const stored = await patch(good);
    assert.equal(stored.status, 200, JSON.stringify(stored.body));
    assert.deepEqual(stored.body.status, good);

    const bad: [string, unknown][] = [
      ["forgingEnabled is not a boolean", { forgingEnabled: "yes" }],
      ["lastTransitionTime is not a date-time", { lastTransitionTime: "not-a-date" }],
      ["leaderPod is not a string", { leaderPod: 7 }],
      ["leaseTransitions is negative", { leaseTransitions: -1 }],
      ["leaseTransitions is not an integer", { leaseTransitions: 1.5 }],
      ["a condition status is not True/False/Unknown", {
        conditions: [{ ...condition, status: "Maybe" }],
      }],
      ["a condition has no reason", {
        conditions: [{ ...condition, reason: undefined }],
      }],
      ["a condition reason is not CamelCase", {
        conditions: [{ ...condition, reason: "lease acquired" }],
      }],
      ["a condition time is not a date-time", {
        conditions: [{ ...condition, lastTransitionTime: "yesterday" }],
      }],
      ["two conditions have the same type", { conditions: [condition, condition] }],
    ];
    for (const [why, status] of bad) {
      const res = await patch(JSON.parse(JSON.stringify(status)));
      assert.equal(res.status, 422, `${why}: expected 422, got ${res.status}`);
      assert.equal(res.body.reason, "Invalid", why);
    }
    const after = await admin.request("GET", path);
    assert.deepEqual(after.body.status, good, "a rejected patch changed nothing");

    // Status written through the main resource is ignored (status subresource), and fields
    // the schema does not know are pruned, not stored.
    const main = path.slice(0, -"/status".length);
    const viaMain = await admin.request("PATCH", main, {
      contentType: "application/merge-patch+json",
      body: { status: { leaderPod: "intruder" } },
    });
    assert.equal(viaMain.status, 200);
    assert.equal(viaMain.body.status.leaderPod, "cardano-producer-0");
    const pruned = await patch({ colour: "red" });
    assert.equal(pruned.status, 200);
    assert.equal(pruned.body.status.colour, undefined);
  },
});

// ---- RBAC ----------------------------------------------------------------------------------

interface RbacFixture {
  namespace: string;
  otherNamespace: string;
  kc: KubeConfig;
}

let rbacPromise: Promise<RbacFixture> | undefined;

/**
 * A namespace with the shipped rbac.yaml and cardanoleader.yaml created for real, bait objects
 * that the Role must not reach (another Lease, another CardanoLeader, a Secret, the same names in
 * another namespace), and a kubeconfig holding a TokenRequest token of the shipped
 * ServiceAccount, bound by the shipped RoleBindings only.
 */
function rbacFixture(): Promise<RbacFixture> {
  rbacPromise ??= (async () => {
    const { cp, admin } = await cluster();
    const namespace = uniqueNamespace("rbac");
    const otherNamespace = uniqueNamespace("elsewhere");
    await cp.ensureNamespace(namespace);
    await cp.ensureNamespace(otherNamespace);
    const shipped = base.filter((r) => r.file === `${BASE}/rbac.yaml`).map((r) => r.obj);
    for (const obj of [...shipped, find(base, "CardanoLeader")]) {
      const res = await admin.create(obj, { namespace });
      assert.equal(res.status, 201, `${obj.kind} ${obj.metadata.name}: ${res.body.message}`);
    }
    const lease = (name: string) => ({
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name },
      spec: { holderIdentity: "someone-else", leaseDurationSeconds: 15 },
    });
    const baits: [Obj, string][] = [
      [lease("other-lease"), namespace],
      [{ ...find(base, "CardanoLeader"), metadata: { name: "other-leader" } }, namespace],
      [{
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "cardano-forging-keys" },
        stringData: { "kes.skey": "not a key" },
      }, namespace],
      [lease("cardano-node-leader"), otherNamespace],
      [find(base, "CardanoLeader"), otherNamespace],
      [pod("cardano-producer-9"), otherNamespace],
    ];
    for (const [obj, ns] of baits) {
      const res = await admin.create(obj, { namespace: ns });
      assert.equal(res.status, 201, `${obj.kind} ${obj.metadata.name}: ${res.body.message}`);
    }
    // Bindings reach the authorizer asynchronously: wait until the last rule of each Role applies.
    await waitAllowed(admin, namespace, { verb: "create", resource: "events" });
    await waitAllowed(admin, namespace, { verb: "delete", resource: "pods" });
    const kubeconfig = await cp.mintIdentity({ namespace, serviceAccount: "forge-manager" });
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    return { namespace, otherNamespace, kc };
  })();
  return rbacPromise;
}

Deno.test({
  name: "the shipped Role allows every call forge-manager makes",
  ...integration,
  async fn() {
    const { namespace, kc } = await rbacFixture();
    const coord = kc.makeApiClient(CoordinationV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const objects = kc.makeApiClient(CustomObjectsApi);
    const name = "cardano-node-leader";
    const now = new V1MicroTime();

    // The first pod creates the Lease, then reads, watches and renews it.
    const created = await coord.createNamespacedLease({
      namespace,
      body: {
        metadata: { name },
        spec: {
          holderIdentity: "cardano-producer-0",
          leaseDurationSeconds: 15,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: 0,
        },
      },
    });
    const read = await coord.readNamespacedLease({ name, namespace });
    assert.equal(read.metadata?.resourceVersion, created.metadata?.resourceVersion);
    read.spec!.renewTime = new V1MicroTime();
    const renewed = await coord.replaceNamespacedLease({ name, namespace, body: read });
    assert.notEqual(renewed.metadata?.resourceVersion, read.metadata?.resourceVersion);
    assert.equal(
      await firstWatchEvent(kc, `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`, {
        fieldSelector: `metadata.name=${name}`,
      }),
      `ADDED ${name}`,
    );

    // The CardanoLeader: read it, and write its status by merge patch and by update.
    const group = { group: "cardano.io", version: "v1", plural: "cardanoleaders" };
    const leader = { ...group, namespace, name: "cardano-leader" };
    await objects.getNamespacedCustomObject(leader);
    const status = {
      leaderPod: "cardano-producer-0",
      forgingEnabled: true,
      lastTransitionTime: new Date().toISOString(),
      leaseTransitions: 0,
      conditions: [{
        type: "Forging",
        status: "True",
        reason: "LeaseAcquired",
        message: "leader",
        lastTransitionTime: new Date().toISOString(),
      }],
    };
    await objects.patchNamespacedCustomObjectStatus({ ...leader, body: { status } }, mergePatch);
    const current = await objects.getNamespacedCustomObjectStatus(leader) as Obj;
    assert.equal(current.status.leaderPod, "cardano-producer-0");
    current.status.forgingEnabled = false;
    const replaced = await objects.replaceNamespacedCustomObjectStatus({
      ...leader,
      body: current,
    });
    assert.equal((replaced as Obj).status.forgingEnabled, false);

    // An Event about the change.
    const event: CoreV1Event = {
      metadata: { generateName: "cardano-leader." },
      involvedObject: {
        apiVersion: "cardano.io/v1",
        kind: "CardanoLeader",
        name: "cardano-leader",
        namespace,
      },
      reason: "LeaderElected",
      message: "cardano-producer-0 leads",
      type: "Normal",
      source: { component: "forge-manager" },
    };
    await core.createNamespacedEvent({ namespace, body: event });

    // Kubernetes cannot limit create by name: creating a Lease of another name is allowed.
    // (docs/deploy.md says so.) It still cannot be read or renewed afterwards.
    const stray = "created-by-mistake";
    await coord.createNamespacedLease({ namespace, body: { metadata: { name: stray }, spec: {} } });
    assert.equal(await statusOf(coord.readNamespacedLease({ name: stray, namespace })), 403);
  },
});

Deno.test({
  name: "the shipped Role refuses everything forge-manager does not need with 403",
  ...integration,
  async fn() {
    const { namespace, otherNamespace, kc } = await rbacFixture();
    const coord = kc.makeApiClient(CoordinationV1Api);
    const core = kc.makeApiClient(CoreV1Api);
    const objects = kc.makeApiClient(CustomObjectsApi);
    const lease = "cardano-node-leader";
    const group = { group: "cardano.io", version: "v1", plural: "cardanoleaders" };
    await coord.readNamespacedLease({ name: lease, namespace }).catch(async (err) => {
      // The allow test creates it; if it runs alone, create it here as the sidecar would.
      if (!(err instanceof ApiException && err.code === 404)) throw err;
      await coord.createNamespacedLease({
        namespace,
        body: { metadata: { name: lease }, spec: {} },
      });
    });
    const body = { metadata: { name: "other-lease" }, spec: {} };
    const refused: [string, Promise<unknown>][] = [
      ["read another Lease", coord.readNamespacedLease({ name: "other-lease", namespace })],
      [
        "update another Lease",
        coord.replaceNamespacedLease({ name: "other-lease", namespace, body }),
      ],
      ["delete the Lease", coord.deleteNamespacedLease({ name: lease, namespace })],
      [
        "patch the Lease",
        coord.patchNamespacedLease({ name: lease, namespace, body: { spec: {} } }, mergePatch),
      ],
      ["list every Lease", coord.listNamespacedLease({ namespace })],
      ["read a Secret", core.readNamespacedSecret({ name: "cardano-forging-keys", namespace })],
      ["list Secrets", core.listNamespacedSecret({ namespace })],
      [
        "read the Lease in another namespace",
        coord.readNamespacedLease({ name: lease, namespace: otherNamespace }),
      ],
      [
        "create a Lease in another namespace",
        coord.createNamespacedLease({ namespace: otherNamespace, body }),
      ],
      [
        "read pods in another namespace",
        core.readNamespacedPod({ name: "cardano-producer-9", namespace: otherNamespace }),
      ],
      [
        "create an Event in another namespace",
        core.createNamespacedEvent({
          namespace: otherNamespace,
          body: { metadata: { generateName: "x." }, involvedObject: { name: "x" } },
        }),
      ],
      [
        "patch another CardanoLeader's status",
        objects.patchNamespacedCustomObjectStatus(
          { ...group, namespace, name: "other-leader", body: { status: { leaderPod: "x" } } },
          mergePatch,
        ),
      ],
      [
        "read another CardanoLeader",
        objects.getNamespacedCustomObject({ ...group, namespace, name: "other-leader" }),
      ],
      [
        "patch the CardanoLeader's spec",
        objects.patchNamespacedCustomObject(
          { ...group, namespace, name: "cardano-leader", body: { spec: {} } },
          mergePatch,
        ),
      ],
      [
        "create a CardanoLeader",
        objects.createNamespacedCustomObject({
          ...group,
          namespace,
          body: { apiVersion: "cardano.io/v1", kind: "CardanoLeader", metadata: { name: "mine" } },
        }),
      ],
      [
        "delete the CardanoLeader",
        objects.deleteNamespacedCustomObject({ ...group, namespace, name: "cardano-leader" }),
      ],
      [
        "write the CardanoLeader status in another namespace",
        objects.patchNamespacedCustomObjectStatus(
          { ...group, namespace: otherNamespace, name: "cardano-leader", body: { status: {} } },
          mergePatch,
        ),
      ],
      ["create a pod", core.createNamespacedPod({ namespace, body: pod("intruder") })],
      ["list namespaces", core.listNamespace()],
    ];
    const got = await Promise.all(
      refused.map(async ([what, call]) => [what, await statusOf(call)]),
    );
    assert.deepEqual(got, refused.map(([what]) => [what, 403]));
    assert.equal(
      await firstWatchEvent(kc, `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`, {}),
      "error 403",
      "a watch of every Lease is refused",
    );
  },
});

Deno.test({
  name: "the fence Role lets forge-manager read and delete pods of its namespace only",
  ...integration,
  async fn() {
    const { namespace, kc } = await rbacFixture();
    const { admin } = await cluster();
    const created = await admin.create(pod("cardano-producer-1"), { namespace });
    assert.equal(created.status, 201, created.body.message);
    const core = kc.makeApiClient(CoreV1Api);
    const got = await core.readNamespacedPod({ name: "cardano-producer-1", namespace });
    assert.equal(got.metadata?.uid, created.body.metadata.uid);
    const list = await core.listNamespacedPod({
      namespace,
      labelSelector: "app.kubernetes.io/name=cardano-producer",
    });
    assert.deepEqual(list.items.map((p) => p.metadata?.name), ["cardano-producer-1"]);
    assert.equal(
      await firstWatchEvent(kc, `/api/v1/namespaces/${namespace}/pods`, {
        fieldSelector: "metadata.name=cardano-producer-1",
      }),
      "ADDED cardano-producer-1",
    );
    // Not scheduled to any node, so it is removed at once.
    await core.deleteNamespacedPod({ name: "cardano-producer-1", namespace });
    assert.equal(
      await statusOf(core.readNamespacedPod({ name: "cardano-producer-1", namespace })),
      404,
    );
    assert.equal(
      await statusOf(core.readNamespacedSecret({ name: "cardano-forging-keys", namespace })),
      403,
    );
    assert.equal(
      await statusOf(core.patchNamespacedPod(
        { name: "cardano-producer-1", namespace, body: { metadata: { labels: { a: "b" } } } },
        mergePatch,
      )),
      403,
    );
  },
});

Deno.test({
  name:
    "the fence Role variant of docs/deploy.md lets forge-manager delete the StatefulSet's pods and no other",
  ...integration,
  async fn() {
    const { cp, admin } = await cluster();
    const doc = await readRepo("docs/deploy.md");
    const section = doc.slice(doc.indexOf("### Limiting the fence's delete"));
    const block = section.match(/```yaml\n([\s\S]*?)```/)?.[1];
    assert.ok(block, "docs/deploy.md has the variant's YAML block");
    const [variant] = parseYaml(block) as [Obj];
    // The shipped Role with delete split off and limited to the StatefulSet's pod names.
    const shipped = find(base, "Role", "forge-manager-fence");
    const sts = find(base, "StatefulSet");
    const names = Array.from({ length: sts.spec.replicas }, (_, i) => `${sts.metadata.name}-${i}`);
    assert.deepEqual(variant.metadata, shipped.metadata);
    assert.deepEqual(variant.rules, [
      { ...shipped.rules[0], verbs: shipped.rules[0].verbs.filter((v: string) => v !== "delete") },
      { ...shipped.rules[0], resourceNames: names, verbs: ["delete"] },
    ]);

    const namespace = uniqueNamespace("fence-names");
    await cp.ensureNamespace(namespace);
    assert.equal((await admin.create(variant, { namespace })).status, 201);
    const kc = new KubeConfig();
    kc.loadFromFile(
      await cp.mintIdentity({
        namespace,
        serviceAccount: "forge-manager",
        roleName: variant.metadata.name,
      }),
    );
    const core = kc.makeApiClient(CoreV1Api);
    const outsiders = [`${sts.metadata.name}-${names.length}`, "cardano-relay-0"];
    for (const name of [...names, ...outsiders]) {
      const created = await admin.create(pod(name), { namespace });
      assert.equal(created.status, 201, created.body.message);
    }
    // Reading stays namespace-wide: the fence reads the previous holder's pod by name.
    const listed = await core.listNamespacedPod({ namespace });
    assert.equal(listed.items.length, names.length + outsiders.length);
    for (const name of outsiders) {
      assert.equal((await core.readNamespacedPod({ name, namespace })).metadata?.name, name);
      assert.equal(await statusOf(core.deleteNamespacedPod({ name, namespace })), 403, name);
    }
    // Not scheduled to any node, so each is removed at once.
    for (const name of names) {
      assert.equal(await statusOf(core.deleteNamespacedPod({ name, namespace })), 200, name);
      assert.equal(await statusOf(core.readNamespacedPod({ name, namespace })), 404, name);
    }
    assert.equal(
      await statusOf(core.deleteCollectionNamespacedPod({ namespace })),
      403,
      "deleting every pod at once is refused",
    );
  },
});
