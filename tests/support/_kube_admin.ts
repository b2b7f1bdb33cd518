/**
 * Admin-side operations on a test control plane, shared by private and shared instances:
 * kubeconfig files, namespaces, identities (ServiceAccount + RBAC + TokenRequest) and `apply`.
 *
 * Needs read/write of the control plane's folder and net access to the API server.
 *
 * @module
 */
import {
  ApiException,
  ApiextensionsV1Api,
  AuthenticationV1Api,
  AuthorizationV1Api,
  type Cluster,
  CoreV1Api,
  type DispatcherOptions,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  RbacAuthorizationV1Api,
  type V1PolicyRule,
} from "@kubernetes/client-node";
import { waitUntil } from "./wait.ts";

/** Options of {@linkcode KubeAdmin.mintIdentity}. */
export interface MintIdentityOptions {
  namespace: string;
  serviceAccount: string;
  /** Rules of a Role created (or replaced) in `namespace` and bound to the ServiceAccount. */
  rules?: V1PolicyRule[];
  /** Name of that Role (default: the ServiceAccount's name); without `rules`, an existing Role. */
  roleName?: string;
  /** An existing ClusterRole, bound in `namespace` only (a RoleBinding, not cluster-wide). */
  clusterRoleName?: string;
  /** Token lifetime (default one day; the API server's minimum is 600 s). */
  expirationSeconds?: number;
}

const WAIT_MS = 15_000;

/**
 * A KubeConfig whose connections speak HTTP/1.1 only.
 *
 * client-node 2.0.1 hands its TLS options to an undici 8 Agent, which offers HTTP/2 by default,
 * and kube-apiserver accepts it. Under Deno 2.9.6 (node:http2 on nghttp2) a GOAWAY from a
 * stopping API server then crashes the whole process: SIGSEGV, or an abort on nghttp2's
 * assertion in find_stream_on_goaway_func. Fault-injection tests stop the API server, so the
 * admin client must not use HTTP/2. undici's connector takes `allowH2` from the `connect`
 * options, which client-node exposes through `createDispatcherOptions`.
 */
export class Http1KubeConfig extends KubeConfig {
  override createDispatcherOptions(
    cluster: Cluster | null,
    agentOptions: Parameters<KubeConfig["createDispatcherOptions"]>[1],
  ): DispatcherOptions {
    const options = super.createDispatcherOptions(cluster, agentOptions);
    if (options.type !== "agent" && options.type !== "proxy") return options;
    return {
      ...options,
      connect: { ...options.connect, allowH2: false } as typeof options.connect,
    };
  }
}

/**
 * Writes a kubeconfig with one cluster (verified with `caFile`) and one user: a bearer token, or a
 * client certificate and its key (files).
 */
export async function writeKubeconfig(
  path: string,
  opts:
    & { server: string; caFile: string; user: string }
    & (
      | { token: string }
      | { certFile: string; keyFile: string }
    ),
): Promise<void> {
  const q = JSON.stringify; // a JSON string is a valid YAML double-quoted scalar
  const text = [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "  - name: forge-manager-test",
    "    cluster:",
    `      server: ${q(opts.server)}`,
    `      certificate-authority: ${q(opts.caFile)}`,
    "users:",
    `  - name: ${q(opts.user)}`,
    "    user:",
    ...("token" in opts ? [`      token: ${q(opts.token)}`] : [
      `      client-certificate: ${q(opts.certFile)}`,
      `      client-key: ${q(opts.keyFile)}`,
    ]),
    "contexts:",
    "  - name: forge-manager-test",
    "    context:",
    "      cluster: forge-manager-test",
    `      user: ${q(opts.user)}`,
    "current-context: forge-manager-test",
    "",
  ].join("\n");
  await Deno.writeTextFile(path, text, { mode: 0o600 });
}

/** Whether `err` is an {@linkcode ApiException} with HTTP status `code`. */
export function isApiError(err: unknown, code: number): boolean {
  return err instanceof ApiException && err.code === code;
}

async function ignoreConflict(create: () => Promise<unknown>): Promise<void> {
  try {
    await create();
  } catch (err) {
    if (!isApiError(err, 409)) throw err;
  }
}

/**
 * Polls `attempt` every 100 ms until it returns a value other than `undefined`; an error it
 * throws counts as "not yet" (the API server may still be catching up).
 */
async function poll<T>(
  what: string,
  attempt: () => Promise<T | undefined>,
  timeoutMs = WAIT_MS,
): Promise<T> {
  let last: unknown = "no answer yet";
  return await waitUntil(what, async () => {
    try {
      const value = await attempt();
      if (value !== undefined) return { value };
      last = "condition not met";
    } catch (err) {
      last = err;
    }
    return undefined;
  }, { timeoutMs, intervalMs: 100, detail: () => `last result: ${describe(last)}` })
    .then((found) => found.value);
}

function describe(value: unknown): string {
  if (value instanceof ApiException) return `HTTP ${value.code}: ${String(value.body)}`;
  return value instanceof Error ? value.message : String(value);
}

/** The admin (system:masters) operations on one control plane. */
export class KubeAdmin {
  readonly #kubeconfig: string;
  readonly #server: string;
  readonly #caFile: string;
  readonly #identityDir: string;
  #config: KubeConfig | undefined;

  constructor(opts: { adminKubeconfig: string; server: string; caFile: string; dir: string }) {
    this.#kubeconfig = opts.adminKubeconfig;
    this.#server = opts.server;
    this.#caFile = opts.caFile;
    this.#identityDir = `${opts.dir}/identities`;
  }

  /** The admin kubeconfig, loaded (cached). */
  config(): KubeConfig {
    if (this.#config === undefined) {
      const config = new Http1KubeConfig();
      config.loadFromFile(this.#kubeconfig);
      this.#config = config;
    }
    return this.#config;
  }

  /** Creates the namespace and its `default` ServiceAccount (no controller-manager does it). */
  async ensureNamespace(name: string): Promise<void> {
    const core = this.config().makeApiClient(CoreV1Api);
    await ignoreConflict(() => core.createNamespace({ body: { metadata: { name } } }));
    await ignoreConflict(() =>
      core.createNamespacedServiceAccount({
        namespace: name,
        body: { metadata: { name: "default" } },
      })
    );
  }

  /**
   * Creates the object, or replaces it (with the current resourceVersion) if it exists. For a
   * CustomResourceDefinition, also waits until it is Established.
   */
  async apply<T extends KubernetesObject>(obj: T): Promise<T> {
    const api = KubernetesObjectApi.makeApiClient(this.config());
    const header = {
      apiVersion: obj.apiVersion ?? "",
      kind: obj.kind ?? "",
      metadata: { name: obj.metadata?.name ?? "", namespace: obj.metadata?.namespace },
    };
    let result: T;
    try {
      const existing = await api.read(header);
      const body = {
        ...obj,
        metadata: { ...obj.metadata, resourceVersion: existing.metadata?.resourceVersion },
      };
      result = await api.replace(body);
    } catch (err) {
      if (!isApiError(err, 404)) {
        throw new Error(`Cannot apply ${header.kind} ${header.metadata.name}: ${describe(err)}`, {
          cause: err,
        });
      }
      result = await api.create(obj);
    }
    if (obj.kind === "CustomResourceDefinition" && obj.apiVersion?.startsWith("apiextensions")) {
      await this.waitForCrd(header.metadata.name);
    }
    return result;
  }

  /** Waits until the CustomResourceDefinition `name` has condition Established=True. */
  async waitForCrd(name: string): Promise<void> {
    const ext = this.config().makeApiClient(ApiextensionsV1Api);
    await poll(`CustomResourceDefinition ${name} to be Established`, async () => {
      const crd = await ext.readCustomResourceDefinition({ name });
      const established = crd.status?.conditions?.some((c) =>
        c.type === "Established" && c.status === "True"
      );
      return established ? true : undefined;
    });
  }

  /**
   * Creates the namespace, the ServiceAccount and its RBAC, waits until the authorizer allows every
   * rule, mints a token with the TokenRequest API, writes a kubeconfig (mode 0600) and checks
   * that the API server authenticates it. Returns the kubeconfig's path.
   */
  async mintIdentity(opts: MintIdentityOptions): Promise<string> {
    const { namespace, serviceAccount } = opts;
    const config = this.config();
    const core = config.makeApiClient(CoreV1Api);
    const rbac = config.makeApiClient(RbacAuthorizationV1Api);
    await this.ensureNamespace(namespace);
    await ignoreConflict(() =>
      core.createNamespacedServiceAccount({
        namespace,
        body: { metadata: { name: serviceAccount } },
      })
    );

    const granted: V1PolicyRule[] = [];
    const bind = async (kind: "Role" | "ClusterRole", name: string) => {
      await this.apply({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: `${serviceAccount}-${kind.toLowerCase()}-${name}`, namespace },
        subjects: [{ kind: "ServiceAccount", name: serviceAccount, namespace }],
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind, name },
      });
    };
    if (opts.rules !== undefined) {
      const name = opts.roleName ?? serviceAccount;
      await this.apply({
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: { name, namespace },
        rules: opts.rules,
      });
      granted.push(...opts.rules);
      await bind("Role", name);
    } else if (opts.roleName !== undefined) {
      const role = await rbac.readNamespacedRole({ name: opts.roleName, namespace });
      granted.push(...role.rules ?? []);
      await bind("Role", opts.roleName);
    }
    if (opts.clusterRoleName !== undefined) {
      const role = await rbac.readClusterRole({ name: opts.clusterRoleName });
      granted.push(...role.rules ?? []);
      await bind("ClusterRole", opts.clusterRoleName);
    }
    await this.#waitForRules(namespace, serviceAccount, granted);

    const request = await core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: opts.expirationSeconds ?? 86_400 } },
    });
    const token = request.status?.token;
    if (!token) {
      throw new Error(`Cannot mint a token for ${namespace}/${serviceAccount}: empty TokenRequest`);
    }
    await Deno.mkdir(this.#identityDir, { recursive: true });
    const path = `${this.#identityDir}/${namespace}.${serviceAccount}.kubeconfig`;
    const user = `system:serviceaccount:${namespace}:${serviceAccount}`;
    await writeKubeconfig(path, { server: this.#server, caFile: this.#caFile, user, token });

    const minted = new Http1KubeConfig();
    minted.loadFromFile(path);
    const authn = minted.makeApiClient(AuthenticationV1Api);
    await poll(`the minted token of ${user} to authenticate`, async () => {
      const review = await authn.createSelfSubjectReview({ body: {} });
      const name = review.status?.userInfo?.username;
      if (name !== user) throw new Error(`authenticated as ${name}, expected ${user}`);
      return true;
    });
    return path;
  }

  /** RBAC bindings reach the authorizer's cache asynchronously: wait until every rule applies. */
  async #waitForRules(namespace: string, serviceAccount: string, rules: V1PolicyRule[]) {
    const authz = this.config().makeApiClient(AuthorizationV1Api);
    const user = `system:serviceaccount:${namespace}:${serviceAccount}`;
    for (const rule of rules) {
      const verb = rule.verbs[0];
      const resourceRef = rule.resources?.[0];
      if (verb === undefined || resourceRef === undefined) continue; // e.g. nonResourceURLs
      const [resource, subresource] = resourceRef.split("/", 2);
      const attributes = {
        namespace,
        verb,
        group: rule.apiGroups?.[0] ?? "",
        resource,
        subresource,
        name: rule.resourceNames?.[0],
      };
      await poll(`${user} to be allowed to ${verb} ${resourceRef} in ${namespace}`, async () => {
        const review = await authz.createSubjectAccessReview({
          body: {
            spec: {
              user,
              groups: [
                "system:serviceaccounts",
                `system:serviceaccounts:${namespace}`,
                "system:authenticated",
              ],
              resourceAttributes: attributes,
            },
          },
        });
        return review.status?.allowed ? true : undefined;
      });
    }
  }
}
