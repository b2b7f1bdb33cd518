/**
 * A real local Kubernetes control plane (etcd + kube-apiserver, kube-controller-manager on demand,
 * no kubelet) for tests, the demo and benchmarks.
 *
 * ```ts
 * await using cp = await startControlPlane();
 * const kubeconfig = await cp.mintIdentity({ namespace: "cardano", serviceAccount: "forge",
 *   rules: [{ apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "update"] }] });
 * ```
 *
 * What it runs: etcd and kube-apiserver on 127.0.0.1 with free ports, data in a fresh temp dir,
 * `--authorization-mode=RBAC`, TLS with a certificate the API server generates (`--cert-dir`)
 * whose CA is written to {@linkcode ControlPlane.caFile}, a random admin bearer token in group
 * `system:masters` (`--token-auth-file`) and an ECDSA service-account signing key so the
 * TokenRequest API works. All default admission plugins stay on; because no controller-manager
 * runs by default, {@linkcode ControlPlane.ensureNamespace} creates each namespace's `default`
 * ServiceAccount (the ServiceAccount admission plugin rejects Pods without it), and namespaces
 * never finish deleting.
 *
 * On demand (`startControlPlane({ controllers: [...] })` or
 * {@linkcode ControlPlane.startControllerManager}, private instances only), kube-controller-manager
 * runs the named controllers against it with the admin identity: by default
 * {@linkcode MANIFEST_CONTROLLERS}, what the shipped manifests need (the StatefulSet controller
 * creates the pods, the garbage collector removes what a deleted owner leaves, the namespace,
 * ServiceAccount and root-CA publisher controllers make `kubectl apply -k` of a new namespace work,
 * the disruption and EndpointSlice controllers serve the PDB and the headless Service). Its /healthz
 * answers 0.4 s after it starts (measured here); instances without it pay nothing.
 *
 * Permissions: `--allow-run` (bash for tools/controlplane/build.sh, etcd, kube-apiserver,
 * kube-controller-manager, setpriv), `--allow-read`/`--allow-write` (temp dir, build cache), `--allow-net=127.0.0.1`,
 * `--allow-env`. The `dev` permission set has them all.
 *
 * Clean-up: {@linkcode ControlPlane.stop} (also `await using`) kills both process groups, awaits
 * them and removes the temp dir. An `unload` listener and SIGINT/SIGTERM listeners do the same
 * synchronously if a test forgets, and on Linux the children run under `setpriv --pdeathsig KILL`
 * so they die with the process that started them even on SIGKILL.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { KubeConfig, KubernetesObject, V1PolicyRule } from "@kubernetes/client-node";
import { builtToolsFolder } from "./built_tools.ts";
import { KubeAdmin, writeKubeconfig } from "./_kube_admin.ts";
import { ManagedProcess } from "./_managed_process.ts";
import { makeClientCa, makeClientCertificate, opensslAvailable } from "./client_cert.ts";
import { exists } from "./fs.ts";
import { waitUntil } from "./wait.ts";

/** A running local control plane. Disposing it stops it. */
export interface ControlPlane extends AsyncDisposable {
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  readonly host: string;
  readonly port: number;
  /** PEM file of the CA that signed the API server's certificate: the one clients trust. */
  readonly caFile: string;
  /** Kubeconfig file of the admin identity (group `system:masters`). */
  readonly adminKubeconfig: string;
  /**
   * Kubeconfig file of an admin identity (user `admin-cert`, group `system:masters`) that signs in
   * with a client certificate (`client-certificate` and `client-key` files) signed by the CA the
   * API server trusts for clients. Absent when `openssl` was not found at start.
   */
  readonly clientCertKubeconfig: string;
  /** The temp dir holding data, certificates, logs and kubeconfigs. */
  readonly dir: string;
  /** The admin kubeconfig, loaded. */
  admin(): KubeConfig;
  /**
   * Creates the namespace (if missing), a ServiceAccount, optionally a Role with `rules` and a
   * RoleBinding (or binds an existing Role/ClusterRole by name, in the namespace only), waits
   * until RBAC allows the granted rules, mints a token with the TokenRequest API and writes a
   * kubeconfig for it (mode 0600). Returns its path.
   */
  mintIdentity(opts: {
    namespace: string;
    serviceAccount: string;
    rules?: V1PolicyRule[];
    roleName?: string;
    clusterRoleName?: string;
    expirationSeconds?: number;
  }): Promise<string>;
  /** Creates the namespace and its `default` ServiceAccount, if missing. */
  ensureNamespace(name: string): Promise<void>;
  /**
   * Creates the object or replaces it (carrying the current resourceVersion), by its
   * apiVersion/kind. Waits until a CustomResourceDefinition is Established.
   */
  apply<T extends KubernetesObject>(obj: T): Promise<T>;
  /**
   * Starts kube-controller-manager with `controllers` (default {@linkcode MANIFEST_CONTROLLERS})
   * and resolves once its /healthz answers 200; a no-op if it runs. Not on the shared instance.
   */
  startControllerManager(controllers?: readonly string[]): Promise<void>;
  /** Stops kube-controller-manager (SIGTERM, then SIGKILL after 10 s). Not on the shared instance. */
  stopControllerManager(): Promise<void>;
  /** Stops kube-apiserver (SIGTERM, then SIGKILL after 10 s). Not on the shared instance. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port with the same data; waits for /readyz. */
  startApiServer(): Promise<void>;
  /**
   * Kills etcd (SIGKILL, like a crash) and starts it again with the same data; waits for its
   * health and then for the API server's /readyz (its etcd client reconnects within ~3 s).
   */
  restartEtcd(): Promise<void>;
  /** Kills everything and removes the temp dir; idempotent. A no-op on the shared instance. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startControlPlane}. */
export interface StartControlPlaneOptions {
  /**
   * Receives every output line of etcd and kube-apiserver and the timing lines. Without it,
   * output only goes to `<dir>/logs/*.log` and timing lines to stderr.
   */
  log?: (line: string) => void;
  /**
   * Folder holding `etcd` and `kube-apiserver`, and `kube-controller-manager` with `controllers`
   * (default: {@linkcode controlPlaneBinaries}, built by tools/controlplane/build.sh).
   */
  binDir?: string;
  /**
   * Also run kube-controller-manager with these controllers (its names, e.g.
   * `statefulset-controller`; see {@linkcode MANIFEST_CONTROLLERS}). Default: none.
   */
  controllers?: readonly string[];
  /** Install SIGINT/SIGTERM listeners that kill everything and exit (default true). */
  handleSignals?: boolean;
}

const ETCD_READY_MS = 20_000;
const APISERVER_READY_MS = 60_000;
const CONTROLLER_MANAGER_READY_MS = 60_000;

/**
 * The controllers the shipped manifests need to run (kube-controller-manager's names): the
 * StatefulSet controller creates and replaces the pods, the garbage collector deletes what a
 * deleted owner leaves (pods, ControllerRevisions), the namespace controller finishes a
 * `kubectl delete namespace`, the ServiceAccount controller creates a new namespace's `default`
 * account, the root-CA publisher the `kube-root-ca.crt` ConfigMap the pods' projected token
 * volume reads, the disruption controller the PodDisruptionBudget's status and the EndpointSlice
 * controller the headless Service's endpoints.
 */
export const MANIFEST_CONTROLLERS: readonly string[] = [
  "statefulset-controller",
  "garbage-collector-controller",
  "namespace-controller",
  "serviceaccount-controller",
  "root-ca-certificate-publisher-controller",
  "disruption-controller",
  "endpointslice-controller",
];
const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Returns the folder holding `kube-apiserver` and `etcd`: runs tools/controlplane/build.sh, which
 * honours KUBEBUILDER_ASSETS, or builds the pinned versions with Go once (several minutes) and
 * then reuses them. Its progress streams to stderr. Throws an Error that says how to get the
 * binaries when it cannot; it never skips silently. Needs `--allow-run=bash`.
 */
export function controlPlaneBinaries(
  opts: { controllerManager?: boolean } = {},
): Promise<string> {
  return builtToolsFolder(
    opts.controllerManager
      ? ["kube-apiserver", "etcd", "kube-controller-manager"]
      : ["kube-apiserver", "etcd"],
    "control-plane binaries",
    "Install Go 1.26+ and put it on PATH (build.sh then builds kube-apiserver and " +
      "etcd from Go modules), or set KUBEBUILDER_ASSETS to a folder holding both binaries.",
  );
}

/**
 * Starts etcd and kube-apiserver in a fresh temp dir and resolves once `/readyz` answers 200 to
 * the admin. Takes a few seconds once the binaries exist (the first call may build them).
 */
export async function startControlPlane(
  opts: StartControlPlaneOptions = {},
): Promise<ControlPlane> {
  const began = performance.now();
  const withControllers = (opts.controllers?.length ?? 0) > 0;
  const binDir = opts.binDir ??
    await controlPlaneBinaries({ controllerManager: withControllers });
  const built = performance.now();
  const log = opts.log ?? ((line: string) => console.error(line));
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const dir = await Deno.makeTempDir({ prefix: "forge-manager-cp-" });
    const cp = new LocalControlPlane(dir, binDir, opts.log);
    track(cp, opts.handleSignals ?? true); // from the first process on: the safety net applies
    try {
      await cp.boot();
      const apiReadyAt = performance.now();
      if (withControllers) await cp.startControllerManager(opts.controllers);
      const secs = (from: number, to: number) => ((to - from) / 1000).toFixed(2);
      log(
        `control plane ${cp.server} ready in ${secs(built, performance.now())} s ` +
          `(etcd ${secs(built, cp.etcdReadyAt)} s, kube-apiserver ` +
          `${secs(cp.etcdReadyAt, apiReadyAt)} s` +
          (withControllers
            ? `, kube-controller-manager ${secs(apiReadyAt, performance.now())} s`
            : "") +
          `; binaries ${secs(began, built)} s)`,
      );
      return cp;
    } catch (err) {
      lastError = err;
      await cp.stop();
      if (!(err instanceof PortInUseError)) throw err;
    }
  }
  throw lastError;
}

class PortInUseError extends Error {}

/** Where a control plane in `dir` writes its client-certificate admin kubeconfig. */
function clientCertKubeconfigOf(dir: string): string {
  return `${dir}/admin-cert.kubeconfig`;
}

function freePorts(count: number): number[] {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

async function generateServiceAccountKey(): Promise<{ privatePem: string; publicPem: string }> {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  const privateDer = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const publicDer = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  return { privatePem: pem("PRIVATE KEY", privateDer), publicPem: pem("PUBLIC KEY", publicDer) };
}

function pem(label: string, der: Uint8Array): string {
  let binary = "";
  for (const byte of der) binary += String.fromCharCode(byte);
  const lines = btoa(binary).match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The last complete PEM certificate in `text` (kube-apiserver writes leaf, then its CA). */
function lastCertificate(text: string): string | undefined {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  const last = blocks?.at(-1);
  return last === undefined ? undefined : `${last}\n`;
}

class LocalControlPlane implements ControlPlane {
  readonly dir: string;
  readonly host = "127.0.0.1";
  readonly caFile: string;
  readonly adminKubeconfig: string;
  readonly clientCertKubeconfig: string;
  port = 0;
  etcdReadyAt = 0;
  readonly #binDir: string;
  readonly #log: ((line: string) => void) | undefined;
  readonly #token = randomToken();
  #etcdPorts: [number, number] = [0, 0];
  #etcd: ManagedProcess | undefined;
  #apiserver: ManagedProcess | undefined;
  #controllerManager: ManagedProcess | undefined;
  #admin: KubeAdmin | undefined;
  #stopping: Promise<void> | undefined;

  constructor(dir: string, binDir: string, log: ((line: string) => void) | undefined) {
    this.dir = dir;
    this.#binDir = binDir;
    this.#log = log;
    this.caFile = `${dir}/pki/ca.crt`;
    this.adminKubeconfig = `${dir}/admin.kubeconfig`;
    this.clientCertKubeconfig = clientCertKubeconfigOf(dir);
  }

  get server(): string {
    return `https://${this.host}:${this.port}`;
  }

  async boot(): Promise<void> {
    for (const sub of ["pki", "logs", "etcd", "identities"]) {
      await Deno.mkdir(`${this.dir}/${sub}`, { mode: 0o700 });
    }
    const key = await generateServiceAccountKey();
    await Deno.writeTextFile(`${this.dir}/pki/sa.key`, key.privatePem, { mode: 0o600 });
    await Deno.writeTextFile(`${this.dir}/pki/sa.pub`, key.publicPem);
    await Deno.writeTextFile(
      `${this.dir}/pki/tokens.csv`,
      `${this.#token},admin,admin,"system:masters"\n`,
      { mode: 0o600 },
    );
    const [apiPort, clientPort, peerPort] = freePorts(3) as [number, number, number];
    this.port = apiPort;
    this.#etcdPorts = [clientPort, peerPort];
    const pki = `${this.dir}/pki`;
    // Client certificates need openssl; without it only token identities exist.
    const clientCa = await opensslAvailable() ? await makeClientCa(pki) : undefined;
    await this.#startEtcd();
    this.etcdReadyAt = performance.now();
    await this.startApiServer();
    await writeKubeconfig(this.adminKubeconfig, {
      server: this.server,
      caFile: this.caFile,
      user: "admin",
      token: this.#token,
    });
    if (clientCa !== undefined) {
      const cert = await makeClientCertificate(pki, {
        name: "admin-cert",
        user: "admin-cert",
        groups: ["system:masters"],
      });
      await writeKubeconfig(this.clientCertKubeconfig, {
        server: this.server,
        caFile: this.caFile,
        user: "admin-cert",
        ...cert,
      });
    }
    this.#admin = new KubeAdmin({
      adminKubeconfig: this.adminKubeconfig,
      server: this.server,
      caFile: this.caFile,
      dir: this.dir,
    });
  }

  #adminOps(): KubeAdmin {
    if (this.#admin === undefined || this.#stopping !== undefined) {
      throw new Error(`Cannot use control plane ${this.server}: it is not running`);
    }
    return this.#admin;
  }

  admin(): KubeConfig {
    return this.#adminOps().config();
  }

  mintIdentity(opts: Parameters<ControlPlane["mintIdentity"]>[0]): Promise<string> {
    return this.#adminOps().mintIdentity(opts);
  }

  ensureNamespace(name: string): Promise<void> {
    return this.#adminOps().ensureNamespace(name);
  }

  apply<T extends KubernetesObject>(obj: T): Promise<T> {
    return this.#adminOps().apply(obj);
  }

  async #startEtcd(): Promise<void> {
    const [client, peer] = this.#etcdPorts;
    const clientUrl = `http://${this.host}:${client}`;
    const peerUrl = `http://${this.host}:${peer}`;
    const etcd = await ManagedProcess.spawn({
      name: "etcd",
      command: `${this.#binDir}/etcd`,
      args: [
        "--name=forge-manager-test",
        `--data-dir=${this.dir}/etcd`,
        `--listen-client-urls=${clientUrl}`,
        `--advertise-client-urls=${clientUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=forge-manager-test=${peerUrl}`,
        "--unsafe-no-fsync=true", // throw-away data: fsync only slows tests down
        "--log-level=warn",
      ],
      logFile: `${this.dir}/logs/etcd.log`,
      log: this.#log,
    });
    this.#etcd = etcd;
    await this.#waitUntil(etcd, `${clientUrl}/health`, ETCD_READY_MS, async (res) => {
      const body = await res.json() as { health?: string };
      return body.health === "true";
    });
  }

  async startApiServer(): Promise<void> {
    if (this.#apiserver?.running) return;
    const certDir = `${this.dir}/pki`;
    const apiserver = await ManagedProcess.spawn({
      name: "kube-apiserver",
      command: `${this.#binDir}/kube-apiserver`,
      args: [
        `--etcd-servers=http://${this.host}:${this.#etcdPorts[0]}`,
        `--bind-address=${this.host}`,
        `--advertise-address=${this.host}`,
        `--secure-port=${this.port}`,
        `--cert-dir=${certDir}`, // generates a CA and a serving certificate for 127.0.0.1
        `--token-auth-file=${certDir}/tokens.csv`,
        ...(await exists(`${certDir}/client-ca.crt`)
          ? [`--client-ca-file=${certDir}/client-ca.crt`]
          : []),
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        `--service-account-key-file=${certDir}/sa.pub`,
        `--service-account-signing-key-file=${certDir}/sa.key`,
        "--service-cluster-ip-range=10.0.0.0/24",
        // The "kubernetes" Endpoints would carry 127.0.0.1, which validation rejects (loopback);
        // nothing in a test cluster needs it.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
      ],
      logFile: `${this.dir}/logs/kube-apiserver.log`,
      log: this.#log,
    });
    this.#apiserver = apiserver;
    await this.#waitForApiServer(apiserver);
  }

  async #waitForApiServer(apiserver: ManagedProcess): Promise<void> {
    await this.#waitForTls(apiserver, {
      url: `${this.server}/readyz`,
      certFile: `${this.dir}/pki/apiserver.crt`,
      timeoutMs: APISERVER_READY_MS,
      onCa: (ca) => Deno.writeTextFile(this.caFile, ca),
    });
  }

  /**
   * Polls `url` with the admin token until it answers 200, trusting the CA that the process
   * wrote (self-signed at start-up) at the end of `certFile`.
   */
  async #waitForTls(proc: ManagedProcess, opts: {
    url: string;
    certFile: string;
    timeoutMs: number;
    onCa?: (ca: string) => Promise<void>;
  }): Promise<void> {
    let ca: string | undefined;
    let client: Deno.HttpClient | undefined;
    try {
      await this.#waitUntil(
        proc,
        opts.url,
        opts.timeoutMs,
        async (res) => {
          await res.body?.cancel();
          return res.status === 200;
        },
        async () => {
          // The certificate appears early during start-up; re-read it until TLS works.
          let text: string;
          try {
            text = await Deno.readTextFile(opts.certFile);
          } catch {
            return undefined;
          }
          const found = lastCertificate(text);
          if (found === undefined) return undefined;
          if (found !== ca) {
            ca = found;
            client?.close();
            client = Deno.createHttpClient({ caCerts: [ca] });
            await opts.onCa?.(ca);
          }
          return { client, headers: { Authorization: `Bearer ${this.#token}` } };
        },
      );
    } finally {
      client?.close();
    }
  }

  async startControllerManager(
    controllers: readonly string[] = MANIFEST_CONTROLLERS,
  ): Promise<void> {
    if (this.#controllerManager?.running) return;
    const binary = `${this.#binDir}/kube-controller-manager`;
    try {
      await Deno.stat(binary);
    } catch {
      throw new Error(
        `Cannot start kube-controller-manager: ${this.#binDir} has no kube-controller-manager ` +
          "(bash tools/controlplane/build.sh kube-controller-manager builds it there)",
      );
    }
    const certDir = `${this.dir}/pki/kube-controller-manager`;
    await Deno.mkdir(certDir, { recursive: true, mode: 0o700 });
    const [port] = freePorts(1) as [number];
    const kubeconfig = this.adminKubeconfig;
    const kcm = await ManagedProcess.spawn({
      name: "kube-controller-manager",
      command: binary,
      args: [
        `--kubeconfig=${kubeconfig}`,
        // Delegated authentication and authorization of its own /healthz (always allowed).
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        `--controllers=${controllers.join(",")}`,
        "--leader-elect=false", // one instance; no Lease of its own to wait for
        `--bind-address=${this.host}`,
        `--secure-port=${port}`,
        `--cert-dir=${certDir}`,
        `--root-ca-file=${this.caFile}`, // published as kube-root-ca.crt in every namespace
        "--concurrent-statefulset-syncs=1", // one StatefulSet per test: no need for more
        "--profiling=false",
      ],
      logFile: `${this.dir}/logs/kube-controller-manager.log`,
      log: this.#log,
    });
    this.#controllerManager = kcm;
    await this.#waitForTls(kcm, {
      url: `https://${this.host}:${port}/healthz`,
      certFile: `${certDir}/kube-controller-manager.crt`,
      timeoutMs: CONTROLLER_MANAGER_READY_MS,
    });
  }

  async stopControllerManager(): Promise<void> {
    await this.#controllerManager?.stop("SIGTERM", 10_000);
  }

  /** Polls `url` until `ok(response)`, failing fast if `proc` exits. */
  async #waitUntil(
    proc: ManagedProcess,
    url: string,
    timeoutMs: number,
    ok: (res: Response) => Promise<boolean>,
    init: () => Promise<RequestInit | undefined> = () => Promise.resolve({}),
  ): Promise<void> {
    let last = "no attempt yet";
    await waitUntil(`${proc.name} to answer 200 at ${url}`, async () => {
      if (!proc.running) {
        const tail = proc.tail();
        const message = `Cannot start ${proc.name}: it exited with code ${
          (await proc.status).code
        } before ${url} answered; last output:\n${tail}`;
        if (/address already in use/.test(tail)) throw new PortInUseError(message);
        throw new Error(message);
      }
      const options = await init();
      if (options === undefined) {
        last = "its TLS certificate is not written yet";
        return false;
      }
      try {
        const res = await fetch(url, { ...options, signal: AbortSignal.timeout(2_000) });
        if (await ok(res)) return true;
        last = `HTTP ${res.status}`;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      return false;
    }, {
      timeoutMs,
      intervalMs: 100,
      detail: () => `last error: ${last}; last output:\n${proc.tail()}`,
    });
  }

  async stopApiServer(): Promise<void> {
    await this.#apiserver?.stop("SIGTERM", 10_000);
  }

  async restartEtcd(): Promise<void> {
    // SIGKILL, like a crash: a graceful etcd stop waits ~7 s for the API server's watch streams.
    await this.#etcd?.stop("SIGKILL");
    await this.#startEtcd();
    if (this.#apiserver?.running) await this.#waitForApiServer(this.#apiserver);
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const began = performance.now();
    await Promise.all([
      this.#controllerManager?.stop("SIGKILL"),
      this.#apiserver?.stop("SIGKILL"),
      this.#etcd?.stop("SIGKILL"),
    ]);
    await Deno.remove(this.dir, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    untrack(this);
    if (this.port !== 0 && this.#admin !== undefined) {
      const line = `control plane ${this.server} stopped in ${
        ((performance.now() - began) / 1000).toFixed(2)
      } s`;
      (this.#log ?? ((l: string) => console.error(l)))(line);
    }
  }

  /** For `unload` and signal handlers: SIGKILL both groups and remove the dir, synchronously. */
  abandonSync(): void {
    this.#controllerManager?.killSync();
    this.#apiserver?.killSync();
    this.#etcd?.killSync();
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        Deno.removeSync(this.dir, { recursive: true });
        return;
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return;
      }
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

// ---- safety net: instances of this isolate that were not stopped ----

const live = new Set<LocalControlPlane>();
const signalled = new Set<LocalControlPlane>();
let netInstalled = false;

function onUnload(): void {
  for (const cp of live) cp.abandonSync();
  live.clear();
}

function onSigint(): void {
  onUnload();
  Deno.exit(130);
}

function onSigterm(): void {
  onUnload();
  Deno.exit(143);
}

function track(cp: LocalControlPlane, handleSignals: boolean): void {
  live.add(cp);
  if (handleSignals) signalled.add(cp);
  if (!netInstalled) {
    globalThis.addEventListener("unload", onUnload);
    netInstalled = true;
  }
  if (handleSignals && signalled.size === 1) {
    Deno.addSignalListener("SIGINT", onSigint);
    Deno.addSignalListener("SIGTERM", onSigterm);
  }
}

function untrack(cp: LocalControlPlane): void {
  live.delete(cp);
  if (signalled.delete(cp) && signalled.size === 0) {
    Deno.removeSignalListener("SIGINT", onSigint);
    Deno.removeSignalListener("SIGTERM", onSigterm);
  }
}

// ---- one instance shared by every test file of a `deno test` process ----

/** What the supervisor (tools/controlplane.ts --state-file) publishes about its instance. */
export interface SharedControlPlaneState {
  server: string;
  host: string;
  port: number;
  caFile: string;
  adminKubeconfig: string;
  dir: string;
  supervisorPid: number;
}

let shared: Promise<ControlPlane> | undefined;

/**
 * One control plane for the whole `deno test` process. `deno test` runs every test file in its
 * own isolate, so module state cannot carry it: the first caller builds the binaries and spawns
 * tools/controlplane.ts as a supervisor that starts the control plane, publishes it in
 * `$TMPDIR/forge-manager-cp-shared-<pid>/state.json` and tears it down once this process has
 * exited. Later callers (any isolate) connect to it.
 *
 * `stop()` and `await using` are no-ops on it, and the fault-injection methods throw: use
 * {@linkcode startControlPlane} for a private instance in such tests. Test files that use it
 * need `sanitizeResources: false` and `sanitizeOps: false` (client-node keeps connections open).
 */
export function sharedControlPlane(): Promise<ControlPlane> {
  shared ??= connectShared();
  return shared;
}

async function connectShared(): Promise<ControlPlane> {
  const base = `${Deno.env.get("TMPDIR") ?? "/tmp"}/forge-manager-cp-shared-${Deno.pid}`;
  const stateFile = `${base}/state.json`;
  const errorFile = `${base}/error.txt`;
  const pidFile = `${base}/supervisor.pid`;
  let starter = false;
  try {
    await Deno.mkdir(base, { mode: 0o700 });
    starter = true;
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
  if (starter) {
    try {
      const binDir = await controlPlaneBinaries();
      // bash backgrounds the supervisor and exits at once, so this isolate holds no child handle
      // (the supervisor must outlive it) and the supervisor watches this process's pid instead.
      const supervisor = [
        Deno.execPath(),
        "run",
        "-P=dev",
        `--config=${repoRoot}deno.json`,
        `${repoRoot}tools/controlplane.ts`,
        `--bin-dir=${binDir}`,
        `--state-file=${stateFile}`,
        `--watch-pid=${Deno.pid}`,
      ];
      const launched = await new Deno.Command("bash", {
        args: ["-c", '"$@" </dev/null >/dev/null & echo $!', "bash", ...supervisor],
        stdin: "null",
        stdout: "piped",
        stderr: "inherit",
      }).output();
      if (!launched.success) throw new Error(`bash exited with code ${launched.code}`);
      await Deno.writeTextFile(pidFile, new TextDecoder().decode(launched.stdout).trim());
    } catch (err) {
      const message = `Cannot start the shared control plane: ${
        err instanceof Error ? err.message : err
      }`;
      await Deno.writeTextFile(errorFile, message);
      throw new Error(message, { cause: err });
    }
  }
  // A starter in another isolate may still be building the binaries: be patient.
  const state = await waitUntil(`the shared control plane to publish ${stateFile}`, async () => {
    try {
      return JSON.parse(await Deno.readTextFile(stateFile)) as SharedControlPlaneState;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const failure = await Deno.readTextFile(errorFile).catch(() => undefined);
    if (failure !== undefined) throw new Error(failure);
    const pid = Number(await Deno.readTextFile(pidFile).catch(() => "0"));
    if (pid > 0 && Deno.build.os === "linux" && !(await exists(`/proc/${pid}`))) {
      // It may have published its state just before exiting: look once more.
      if (await exists(stateFile)) return undefined;
      throw new Error(
        `Cannot use the shared control plane: its supervisor (tools/controlplane.ts, pid ${pid}) ` +
          "exited without publishing it; its messages are above",
      );
    }
    return undefined;
  }, { timeoutMs: starter ? 120_000 : 45 * 60_000, intervalMs: 100 });
  return new SharedControlPlane(state);
}

class SharedControlPlane implements ControlPlane {
  readonly server: string;
  readonly host: string;
  readonly port: number;
  readonly caFile: string;
  readonly adminKubeconfig: string;
  readonly clientCertKubeconfig: string;
  readonly dir: string;
  readonly #admin: KubeAdmin;

  constructor(state: SharedControlPlaneState) {
    this.server = state.server;
    this.host = state.host;
    this.port = state.port;
    this.caFile = state.caFile;
    this.adminKubeconfig = state.adminKubeconfig;
    this.clientCertKubeconfig = clientCertKubeconfigOf(state.dir);
    this.dir = state.dir;
    this.#admin = new KubeAdmin(state);
  }

  admin(): KubeConfig {
    return this.#admin.config();
  }

  mintIdentity(opts: Parameters<ControlPlane["mintIdentity"]>[0]): Promise<string> {
    return this.#admin.mintIdentity(opts);
  }

  ensureNamespace(name: string): Promise<void> {
    return this.#admin.ensureNamespace(name);
  }

  apply<T extends KubernetesObject>(obj: T): Promise<T> {
    return this.#admin.apply(obj);
  }

  #refuse(what: string): Promise<never> {
    return Promise.reject(
      new Error(
        `Cannot ${what} of the shared control plane: every test file uses it. ` +
          "Start a private one with startControlPlane() for fault injection.",
      ),
    );
  }

  startControllerManager(): Promise<void> {
    return this.#refuse("start a controller manager");
  }

  stopControllerManager(): Promise<void> {
    return this.#refuse("stop the controller manager");
  }

  stopApiServer(): Promise<void> {
    return this.#refuse("stop the API server");
  }

  startApiServer(): Promise<void> {
    return this.#refuse("start the API server");
  }

  restartEtcd(): Promise<void> {
    return this.#refuse("restart etcd");
  }

  stop(): Promise<void> {
    return Promise.resolve(); // the supervisor stops it when this process exits
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
