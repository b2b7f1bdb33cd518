import assert from "node:assert/strict";
import { AppsV1Api, CoreV1Api } from "@kubernetes/client-node";
import {
  type ControlPlane,
  controlPlaneBinaries,
  MANIFEST_CONTROLLERS,
  sharedControlPlane,
  startControlPlane,
} from "./control_plane.ts";
import { exists } from "./fs.ts";
import { waitUntil } from "./wait.ts";

// Child processes and client-node connections outlive single awaits by design.
const integration = { sanitizeResources: false, sanitizeOps: false };
const quiet = { log: () => {} };
const moduleUrl = new URL("./control_plane.ts", import.meta.url).href;
const configFile = new URL("../../deno.json", import.meta.url).pathname;

/** Pids of the processes whose command line mentions `dir` (Linux /proc). */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes(dir)) pids.push(Number(entry.name));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** GETs `path` trusting only `caFile`; answers the HTTP status. */
async function get(cp: ControlPlane, path: string, token?: string): Promise<number> {
  const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(cp.caFile)] });
  try {
    const res = await fetch(`${cp.server}${path}`, {
      client,
      headers: token === undefined ? {} : { Authorization: `Bearer ${token}` },
    });
    await res.body?.cancel();
    return res.status;
  } finally {
    client.close();
  }
}

function adminToken(kubeconfig: string): string {
  const match = Deno.readTextFileSync(kubeconfig).match(/token: "([^"]+)"/);
  assert.ok(match?.[1], "the admin kubeconfig has a token");
  return match[1];
}

Deno.test({
  name: "a control plane serves verified TLS to its admin and stopping it leaves nothing behind",
  ignore: Deno.build.os !== "linux",
  ...integration,
  async fn() {
    const cp = await startControlPlane(quiet);
    const { dir } = cp;
    try {
      assert.equal(cp.server, `https://127.0.0.1:${cp.port}`);
      assert.equal(cp.host, "127.0.0.1");
      assert.equal(processesUsing(dir).length, 2, "etcd and kube-apiserver run");
      const token = adminToken(cp.adminKubeconfig);
      assert.equal(await get(cp, "/readyz", token), 200);
      assert.equal(await get(cp, "/api/v1/namespaces", token), 200);
      // As in real clusters, anonymous requests may read /readyz and /version, nothing else.
      assert.equal(await get(cp, "/api/v1/namespaces"), 403);
      assert.equal(await get(cp, "/api/v1/namespaces", "not-a-token"), 401);
      await assert.rejects(
        fetch(`${cp.server}/readyz`), // the system trust store does not know this CA
        (err: Error) => /certificate|UnknownIssuer/i.test(`${err.message} ${err.cause}`),
      );
      const namespaces = await cp.admin().makeApiClient(CoreV1Api).listNamespace();
      assert.ok(namespaces.items.some((ns) => ns.metadata?.name === "kube-system"));
    } finally {
      await cp.stop();
    }
    assert.equal(await exists(dir), false, "the temp dir is removed");
    assert.deepEqual(processesUsing(dir), [], "no process is left");
    await cp.stop(); // idempotent
    assert.throws(() => cp.admin(), /not running/);
  },
});

Deno.test({
  name:
    "with controllers, a StatefulSet gets its pods, a new namespace its ServiceAccount and CA, and deleting the StatefulSet removes its pods",
  ignore: Deno.build.os !== "linux",
  ...integration,
  async fn() {
    await using cp = await startControlPlane({ ...quiet, controllers: MANIFEST_CONTROLLERS });
    assert.equal(processesUsing(cp.dir).length, 3, "etcd, kube-apiserver, kube-controller-manager");
    const core = cp.admin().makeApiClient(CoreV1Api);
    const apps = cp.admin().makeApiClient(AppsV1Api);
    const namespace = "controllers";
    // A plain create, as `kubectl apply` does: the controllers add the rest.
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await waitUntil("the default ServiceAccount and kube-root-ca.crt appear", async () => {
      const [accounts, maps] = await Promise.all([
        core.listNamespacedServiceAccount({ namespace }),
        core.listNamespacedConfigMap({ namespace }),
      ]);
      return accounts.items.some((a) => a.metadata?.name === "default") &&
        maps.items.some((m) => m.metadata?.name === "kube-root-ca.crt");
    }, 20_000);
    const caMap = await core.readNamespacedConfigMap({ name: "kube-root-ca.crt", namespace });
    assert.equal(caMap.data?.["ca.crt"], await Deno.readTextFile(cp.caFile));

    const labels = { app: "sts-test" };
    await apps.createNamespacedStatefulSet({
      namespace,
      body: {
        metadata: { name: "web" },
        spec: {
          replicas: 2,
          serviceName: "web",
          podManagementPolicy: "Parallel", // no kubelet makes pod 0 Ready
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: { containers: [{ name: "c", image: "example.invalid/c:0" }] },
          },
        },
      },
    });
    const podNames = async () =>
      (await core.listNamespacedPod({ namespace })).items.map((p) => p.metadata?.name).sort();
    await waitUntil(
      `the StatefulSet controller creates web-0 and web-1 (got ${await podNames()})`,
      async () => (await podNames()).join() === "web-0,web-1",
      20_000,
    );
    const pod = await core.readNamespacedPod({ name: "web-0", namespace });
    assert.deepEqual(
      pod.metadata?.ownerReferences?.map((o) => [o.kind, o.name, o.controller]),
      [["StatefulSet", "web", true]],
    );
    await apps.deleteNamespacedStatefulSet({
      name: "web",
      namespace,
      propagationPolicy: "Background",
    });
    await waitUntil(
      "the garbage collector deletes the pods",
      async () => (await podNames()).length === 0,
      20_000,
    );
  },
});

Deno.test({
  name: "the shared control plane refuses to start a controller manager",
  ...integration,
  async fn() {
    const cp = await sharedControlPlane();
    await assert.rejects(cp.startControllerManager(), /Cannot start a controller manager/);
  },
});

Deno.test({
  name: "the API server restarts on the same port with the same data, and survives an etcd restart",
  ...integration,
  async fn() {
    await using cp = await startControlPlane(quiet);
    await cp.ensureNamespace("faults");
    await cp.apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "kept", namespace: "faults" },
      data: { answer: "42" },
    });
    const token = adminToken(cp.adminKubeconfig);

    await cp.stopApiServer();
    await assert.rejects(get(cp, "/readyz", token), "nothing listens any more");
    await cp.startApiServer();
    assert.equal(await get(cp, "/readyz", token), 200);
    const core = cp.admin().makeApiClient(CoreV1Api);
    const kept = await core.readNamespacedConfigMap({ name: "kept", namespace: "faults" });
    assert.equal(kept.data?.answer, "42");

    await cp.restartEtcd();
    assert.equal(await get(cp, "/readyz", token), 200);
    const replaced = await cp.apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "kept", namespace: "faults" },
      data: { answer: "43" },
    });
    assert.equal(replaced.data?.answer, "43", "apply replaces an existing object");
  },
});

Deno.test({
  name: "the shared control plane is started once and refuses fault injection",
  ...integration,
  async fn() {
    const first = await sharedControlPlane();
    const second = await sharedControlPlane();
    assert.equal(first, second);
    await first.ensureNamespace("shared-check");
    await assert.rejects(first.stopApiServer(), /shared control plane/);
    await assert.rejects(first.restartEtcd(), /shared control plane/);
    await first.stop(); // a no-op: other test files keep using it
    assert.equal(await get(first, "/readyz", adminToken(first.adminKubeconfig)), 200);
  },
});

/** Runs `code` with `deno eval` (all permissions); returns the child. */
function evalChild(code: string, env?: Record<string, string>): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", `--config=${configFile}`, code],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env,
    clearEnv: env !== undefined,
  }).spawn();
}

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    text += chunk;
    if (text.includes("\n")) break;
  }
  return text.split("\n")[0] ?? "";
}

const forgetful = [
  { how: "exits without stopping it", code: "Deno.exit(0);", exitCode: 0 },
  {
    how: "gets SIGTERM",
    code: "Deno.kill(Deno.pid, 'SIGTERM'); await new Promise(() => {});",
    exitCode: 143,
  },
];
for (const { how, code, exitCode } of forgetful) {
  Deno.test({
    name: `a process that ${how} leaves no process and no temp dir behind`,
    ignore: Deno.build.os !== "linux",
    ...integration,
    async fn() {
      const child = evalChild(
        `import { startControlPlane } from "${moduleUrl}";
         const cp = await startControlPlane({ log: () => {} });
         console.log(cp.dir);
         ${code}`,
      );
      const [dir, status] = await Promise.all([firstLine(child.stdout), child.status]);
      await child.stderr.cancel();
      assert.match(dir, /forge-manager-cp-/);
      await waitUntil("its processes to be gone", () => processesUsing(dir).length === 0, 5_000);
      assert.equal(await exists(dir), false, "the temp dir is removed");
      assert.equal(status.code, exitCode);
    },
  });
}

Deno.test({
  name: "a SIGKILLed process still takes etcd and kube-apiserver with it",
  ignore: Deno.build.os !== "linux",
  ...integration,
  async fn() {
    const child = evalChild(
      `import { startControlPlane } from "${moduleUrl}";
       const cp = await startControlPlane({ log: () => {} });
       console.log(cp.dir);
       await new Promise(() => {});`,
    );
    const dir = await firstLine(child.stdout);
    assert.match(dir, /forge-manager-cp-/);
    assert.equal(processesUsing(dir).length, 2);
    child.kill("SIGKILL");
    await child.status;
    await child.stderr.cancel();
    try {
      await waitUntil(
        "setpriv --pdeathsig to end its processes",
        () => processesUsing(dir).length === 0,
        5_000,
      );
    } finally {
      await Deno.remove(dir, { recursive: true }); // nothing can remove it after a SIGKILL
    }
  },
});

Deno.test({
  name: "without Go or KUBEBUILDER_ASSETS, controlPlaneBinaries says how to get the binaries",
  ...integration,
  async fn() {
    await using tmp = await tempDir();
    // A PATH with only what build.sh needs besides Go.
    await Deno.mkdir(`${tmp.path}/bin`);
    for (const tool of ["bash", "dirname"]) {
      const which = await new Deno.Command("bash", { args: ["-c", `command -v ${tool}`] }).output();
      await Deno.symlink(new TextDecoder().decode(which.stdout).trim(), `${tmp.path}/bin/${tool}`);
    }
    const env = {
      PATH: `${tmp.path}/bin`,
      HOME: tmp.path,
      FORGE_MANAGER_CACHE: tmp.path,
      DENO_DIR: denoDir(), // the npm packages are cached there; there is no network
    };
    const code = `import { controlPlaneBinaries } from "${moduleUrl}";
      try { await controlPlaneBinaries(); } catch (err) { console.log(err.message); }`;

    const noGo = await evalChild(code, env).output();
    const message = new TextDecoder().decode(noGo.stdout);
    assert.match(message, /Cannot get the control-plane binaries/);
    assert.match(message, /Install Go/);
    assert.match(message, /KUBEBUILDER_ASSETS/);
    assert.match(new TextDecoder().decode(noGo.stderr), /no 'go' on PATH/);

    const empty = await evalChild(code, { ...env, KUBEBUILDER_ASSETS: tmp.path }).output();
    assert.match(new TextDecoder().decode(empty.stderr), /has no executable kube-apiserver/);

    const real = await controlPlaneBinaries();
    const assets = await evalChild(
      `import { controlPlaneBinaries } from "${moduleUrl}";
       console.log(await controlPlaneBinaries());`,
      { ...env, KUBEBUILDER_ASSETS: real },
    ).output();
    assert.equal(new TextDecoder().decode(assets.stdout).trim(), real);
  },
});

function denoDir(): string {
  const env = Deno.env.toObject();
  if (env.DENO_DIR) return env.DENO_DIR;
  if (env.XDG_CACHE_HOME) return `${env.XDG_CACHE_HOME}/deno`;
  return `${env.HOME}/.cache/deno`;
}

async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "forge-manager-cp-test-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}
