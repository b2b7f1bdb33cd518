/**
 * What the manifests' tests share (tests/manifests/): the rendered objects as plain JSON and the
 * StatefulSet's containers, the pinned kubectl and its kustomize, and the shared control plane with
 * the shipped CRDs installed, reached with plain JSON over HTTPS ({@linkcode RawApi}), with helpers
 * for the RBAC checks (an HTTP status from a call, the first event of a watch, waiting until a
 * ServiceAccount's rules apply).
 *
 * Needs: read of the repository, run (bash for build.sh, kubectl), and what the shared control
 * plane needs (the `dev` permission set has it all).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  ApiException,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  Watch,
} from "@kubernetes/client-node";
import { REPO_ROOT } from "../../tools/dummy_example.ts";
import { builtTool } from "./built_tools.ts";
import { type ControlPlane, sharedControlPlane } from "./control_plane.ts";
import { waitUntil } from "./wait.ts";
import { parseYaml } from "./yaml.ts";

/** Test options for tests on the shared control plane: client-node keeps connections open. */
export const integration = { sanitizeResources: false, sanitizeOps: false };

/** A Kubernetes object as plain JSON (exactly what the YAML says). */
// deno-lint-ignore no-explicit-any
export type Obj = Record<string, any> & {
  apiVersion: string;
  kind: string;
  // deno-lint-ignore no-explicit-any
  metadata: { name: string; namespace?: string; [key: string]: any };
};

/** An object with the file it came from. */
export interface Rendered {
  file: string;
  obj: Obj;
}

/** A file of the repository, by its path relative to the root. */
export function readRepo(path: string): Promise<string> {
  return Deno.readTextFile(`${REPO_ROOT}/${path}`);
}

/** The one object of `kind` (and `name`) among `objects`; fails unless exactly one matches. */
export function find(objects: Rendered[], kind: string, name?: string): Obj {
  const found = objects.filter((r) =>
    r.obj.kind === kind && (name === undefined || r.obj.metadata.name === name)
  );
  assert.equal(found.length, 1, `expected one ${kind} ${name ?? ""}, found ${found.length}`);
  return found[0]!.obj;
}

// deno-lint-ignore no-explicit-any
export type Json = Record<string, any>;

/** The StatefulSet's pod spec. */

export function podSpec(sts: Obj): Record<string, unknown> & {
  initContainers: Json[];
  containers: Json[];
  // deno-lint-ignore no-explicit-any
  volumes: Record<string, any>[];
} {
  return sts.spec.template.spec;
}

/** The guard's init container. */
export function guardOf(sts: Obj): Json {
  const guard = podSpec(sts).initContainers.find((c) => c.name === "forge-manager-guard");
  assert.ok(guard !== undefined, "no forge-manager-guard init container");
  return guard;
}

/** forge-manager's init container. */
export function sidecarOf(sts: Obj): Json {
  const sidecar = podSpec(sts).initContainers.find((c) => c.name === "forge-manager");
  assert.ok(sidecar, "the StatefulSet has no forge-manager init container");
  return sidecar;
}

/** cardano-node's container. */
export function nodeOf(sts: Obj): Json {
  const node = podSpec(sts).containers.find((c) => c.name === "cardano-node");
  assert.ok(node, "the StatefulSet has no cardano-node container");
  return node;
}

/** The value following `flag` in an argument list. */
export function flagValue(args: string[], flag: string): string | undefined {
  const at = args.indexOf(flag);
  return at < 0 ? undefined : args[at + 1];
}

/** What `kubectl kustomize dir` renders, with the pinned kubectl (tests/support/built_tools.ts). */
export async function kustomize(dir: string): Promise<Rendered[]> {
  const out = await kubectl(["kustomize", `${REPO_ROOT}/${dir}`]);
  return (parseYaml(out) as Obj[]).map((obj) => ({ file: `kubectl kustomize ${dir}`, obj }));
}

/** Runs the pinned kubectl; returns its stdout, or fails the test with its stderr. */
export async function kubectl(args: string[], env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command(await builtTool("kubectl"), {
    args,
    env: { KUBECONFIG: "/dev/null", ...env }, // never the user's cluster
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `kubectl ${args.join(" ")}: exit code ${out.code}: ${stderr}`);
  return new TextDecoder().decode(out.stdout);
}

/** Plain JSON over HTTPS with a kubeconfig's bearer token: no client-side model in between. */
export class RawApi {
  readonly #server: string;
  readonly #token: string;
  readonly #client: Deno.HttpClient;
  readonly #resources = new Map<string, { name: string; namespaced: boolean } | null>();

  constructor(kc: KubeConfig, ca: string) {
    const cluster = kc.getCurrentCluster();
    const token = kc.getCurrentUser()?.token;
    assert.ok(cluster && token, "the kubeconfig needs a cluster and a bearer token");
    this.#server = cluster.server;
    this.#token = token;
    this.#client = Deno.createHttpClient({ caCerts: [ca] });
  }

  async request(
    method: string,
    path: string,
    opts: { body?: unknown; accept?: string; contentType?: string } = {},
  ): Promise<{ status: number; body: Obj }> {
    const res = await fetch(`${this.#server}${path}`, {
      method,
      client: this.#client,
      headers: {
        Authorization: `Bearer ${this.#token}`,
        Accept: opts.accept ?? "application/json",
        ...(opts.body === undefined
          ? {}
          : { "Content-Type": opts.contentType ?? "application/json" }),
      },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) };
    } catch {
      return { status: res.status, body: { message: text } as unknown as Obj };
    }
  }

  /** The REST resource of a kind (from discovery), or null when the API does not serve it. */
  async resource(apiVersion: string, kind: string) {
    const key = `${apiVersion}/${kind}`;
    if (!this.#resources.has(key)) {
      const prefix = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      const { status, body } = await this.request("GET", prefix);
      const found = status === 200
        ? (body.resources as Json[]).find((r) => r.kind === kind && !r.name.includes("/"))
        : undefined;
      this.#resources.set(key, found ? { name: found.name, namespaced: found.namespaced } : null);
    }
    return this.#resources.get(key)!;
  }

  /** The collection path of `obj`, in `namespace` if the kind is namespaced. */
  async collection(obj: Obj, namespace?: string): Promise<string> {
    const resource = await this.resource(obj.apiVersion, obj.kind);
    assert.ok(resource, `the API server does not serve ${obj.apiVersion} ${obj.kind}`);
    const prefix = obj.apiVersion.includes("/")
      ? `/apis/${obj.apiVersion}`
      : `/api/${obj.apiVersion}`;
    const ns = obj.metadata.namespace ?? namespace;
    if (resource.namespaced) {
      assert.ok(ns, `${obj.kind} ${obj.metadata.name} needs a namespace`);
      return `${prefix}/namespaces/${ns}/${resource.name}`;
    }
    return `${prefix}/${resource.name}`;
  }

  /**
   * Creates `obj` as `kubectl apply` would validate it: strict field validation (unknown or
   * duplicate fields are errors). With `dryRun`, the server validates, defaults and admits
   * it without storing it.
   */
  async create(obj: Obj, opts: { namespace?: string; dryRun?: boolean } = {}) {
    const query = `fieldValidation=Strict${opts.dryRun ? "&dryRun=All" : ""}`;
    return this.request("POST", `${await this.collection(obj, opts.namespace)}?${query}`, {
      body: obj,
    });
  }
}

let namespaceCount = 0;
/** A namespace name no other test of this process uses. */
export function uniqueNamespace(purpose: string): string {
  return `manifests-${purpose}-${Date.now().toString(36)}-${namespaceCount++}`;
}

/** The shared control plane, its admin (plain JSON) and its CA (PEM). */
export interface Cluster {
  cp: ControlPlane;
  admin: RawApi;
  ca: string;
}

let clusterPromise: Promise<Cluster> | undefined;

/**
 * The shared control plane with every CRD of manifests/crd.yaml installed (created for real,
 * Established).
 */
export function cluster(): Promise<Cluster> {
  clusterPromise ??= (async () => {
    const cp = await sharedControlPlane();
    const ca = await Deno.readTextFile(cp.caFile);
    const admin = new RawApi(cp.admin(), ca);
    for (const crd of parseYaml(await readRepo("manifests/crd.yaml")) as Obj[]) {
      const created = await admin.create(crd);
      if (created.status === 409) {
        // Another test file installed it: replace it with the shipped one.
        const path = `${await admin.collection(crd)}/${crd.metadata.name}`;
        const current = await admin.request("GET", path);
        const body = {
          ...crd,
          metadata: { ...crd.metadata, resourceVersion: current.body.metadata.resourceVersion },
        };
        const replaced = await admin.request("PUT", `${path}?fieldValidation=Strict`, { body });
        assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
      } else {
        assert.equal(created.status, 201, JSON.stringify(created.body));
      }
      const kind = crd.spec.names.kind as string;
      await waitUntil(`the ${kind} CRD to be Established`, async () => {
        const { body } = await admin.request(
          "GET",
          `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
        );
        return (body.status?.conditions as Json[] | undefined)?.some((c) =>
          c.type === "Established" && c.status === "True"
        ) && await admin.resource("cardano.io/v1", kind) !== null;
      }, { timeoutMs: 20_000, intervalMs: 100 });
    }
    return { cp, admin, ca };
  })();
  return clusterPromise;
}

/** Dry-runs (or, for a CRD, checks the installed copy of) every object; returns the failures. */
export async function dryRunAll(admin: RawApi, objects: Rendered[], namespace?: string) {
  const failures: string[] = [];
  for (const { file, obj } of objects) {
    if (obj.kind === "CustomResourceDefinition") continue; // installed for real by cluster()
    const { status, body } = await admin.create(obj, { namespace, dryRun: true });
    if (status !== 201) {
      failures.push(`${file}: ${obj.kind} ${obj.metadata.name}: HTTP ${status}: ${body.message}`);
    }
  }
  return failures;
}

/** A Pod labelled as the shipped StatefulSet's (not scheduled: deleting it removes it at once). */
export function pod(name: string): Obj {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels: { "app.kubernetes.io/name": "cardano-producer" } },
    spec: { containers: [{ name: "cardano-node", image: "example.invalid/cardano-node:0" }] },
  };
}

/**
 * Waits until ServiceAccount `serviceAccount` (default forge-manager) of `namespace` may do `attrs`
 * there: bindings reach the authorizer asynchronously.
 */
export async function waitAllowed(
  admin: RawApi,
  namespace: string,
  attrs: { verb: string; resource: string; group?: string; subresource?: string; name?: string },
  serviceAccount = "forge-manager",
) {
  const user = `system:serviceaccount:${namespace}:${serviceAccount}`;
  await waitUntil(`${user} to be allowed to ${attrs.verb} ${attrs.resource}`, async () => {
    const review = await admin.request(
      "POST",
      "/apis/authorization.k8s.io/v1/subjectaccessreviews",
      {
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user,
            groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`],
            resourceAttributes: { namespace, group: "", ...attrs },
          },
        },
      },
    );
    return review.body.status?.allowed === true;
  }, { timeoutMs: 20_000, intervalMs: 100 });
}

/** Awaits `call` and returns the HTTP status of its ApiException (or 200 if it succeeded). */
export async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 200;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

/** Starts a watch and resolves with the first event's type and name, or the error's status. */
export async function firstWatchEvent(
  kc: KubeConfig,
  path: string,
  query: Record<string, string>,
): Promise<string> {
  const { promise, resolve } = Promise.withResolvers<string>();
  const controller = await new Watch(kc).watch(
    path,
    query,
    (type, obj) => resolve(`${type} ${obj.metadata?.name}`),
    (err) => {
      const code = (err as { statusCode?: number; code?: number } | null)?.statusCode ??
        (err as { code?: number } | null)?.code;
      resolve(err === null ? "closed" : `error ${code ?? String(err)}`);
    },
  ).catch((err) => {
    resolve(
      `error ${
        err instanceof ApiException ? err.code : (err as { statusCode?: number }).statusCode ?? err
      }`,
    );
    return undefined;
  });
  const timeout = setTimeout(() => resolve("timeout"), 10_000);
  try {
    return await promise;
  } finally {
    clearTimeout(timeout);
    controller?.abort();
  }
}

/** Request options of a merge patch (client-node). */
export const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

/** What a kustomization reads, found by following its folders (bases and components). */
export interface KustomizationInputs {
  /** Every file read: resources, patches and generators' files (relative to the repository). */
  files: string[];
  /** Every kustomization.yaml read, this one first. */
  kustomizations: string[];
}

/**
 * The files `kubectl kustomize dir` reads: its `resources` (a folder is read as a kustomization in
 * turn), its `components`, its `patches` given by `path` and its `configMapGenerator` files.
 * Fails on any other field that names files. Needs read access to the repository.
 */
export async function kustomizationInputs(dir: string): Promise<KustomizationInputs> {
  const path = `${dir}/kustomization.yaml`;
  const [k] = parseYaml(await readRepo(path)) as [Json];
  for (const field of ["bases", "patchesStrategicMerge", "patchesJson6902", "secretGenerator"]) {
    assert.equal(k[field], undefined, `${path}: "${field}" is not followed here`);
  }
  const out: KustomizationInputs = { files: [], kustomizations: [path] };
  const follow = async (ref: string) => {
    const target = normalize(`${dir}/${ref}`);
    if ((await Deno.stat(`${REPO_ROOT}/${target}`)).isDirectory) {
      const inner = await kustomizationInputs(target);
      out.files.push(...inner.files);
      out.kustomizations.push(...inner.kustomizations);
    } else {
      out.files.push(target);
    }
  };
  for (const ref of [...(k.resources ?? []), ...(k.components ?? [])] as string[]) {
    await follow(ref);
  }
  for (const patch of (k.patches ?? []) as Json[]) {
    if (patch.path !== undefined) await follow(patch.path);
  }
  for (const gen of (k.configMapGenerator ?? []) as Json[]) {
    for (const file of (gen.files ?? []) as string[]) await follow(file);
  }
  return out;
}

/** `a/b/../c` -> `a/c` (paths relative to the repository). */
function normalize(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== "." && part !== "") parts.push(part);
  }
  return parts.join("/");
}
