/**
 * The permissions of the sandboxed worker that runs everything except process discovery and
 * signalling: the election, the Kubernetes client, the credential files, the metrics server.
 *
 * The privileged core (main.ts, lib/core/) computes them once at start from the configuration
 * and can never widen them afterwards. What the worker may NOT do is as important as what it may:
 * no subprocesses (but a kubeconfig's exec credential plugin, by its name only) and no signals
 * (a scoped `run` does not allow `Deno.kill`), no /proc (reads are limited to the listed paths),
 * no FFI, no remote imports, and network access only to the listed `host:port` pairs.
 *
 * @module
 */

/** What the worker must reach, each list exact (paths are files or folders). */
export interface SandboxGrants {
  /** Files and folders the worker may read (source keys, target folder, kubeconfig, CA). */
  read: readonly string[];
  /** Files and folders the worker may write (the target folder of the credentials). */
  write: readonly string[];
  /** `host:port` pairs the worker may connect to or listen on (API server, metrics port). */
  net: readonly string[];
  /** Programs the worker may run: only a kubeconfig's exec credential plugin, if it has one. */
  run?: readonly string[];
}

/**
 * Turns the grants into the permission object of `new Worker(..., {deno: {permissions}})`.
 *
 * `env` is unscoped because client-node's `debug` dependency enumerates the environment, and
 * `sys` is limited to `uid`, which client-node needs to load a kubeconfig or the service-account
 * files (without it, it silently falls back to http://localhost:8080).
 */
export function sandboxPermissions(grants: SandboxGrants): Deno.PermissionOptionsObject {
  return {
    read: unique(grants.read),
    write: unique(grants.write),
    net: unique(grants.net),
    env: true,
    sys: ["uid"],
    run: grants.run !== undefined && grants.run.length > 0 ? unique(grants.run) : false,
    ffi: false,
    import: false,
  };
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items.filter((item) => item !== ""))];
}
