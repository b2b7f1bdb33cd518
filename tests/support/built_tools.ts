/**
 * The pinned tools the tests run, built from Go modules by tools/controlplane/build.sh once and
 * cached by version (tools/controlplane/versions.env): kube-apiserver, etcd, kubectl (with its
 * built-in kustomize), kube-controller-manager, prometheus and promtool. Never the `kubectl` on
 * PATH, whose version nobody pinned.
 *
 * ```ts
 * const kubectl = await builtTool("kubectl");
 * ```
 *
 * Needs `--allow-run=bash` (build.sh) and read of the cache folder.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** A binary tools/controlplane/build.sh knows how to build. */
export type Tool =
  | "etcd"
  | "kube-apiserver"
  | "kubectl"
  | "kube-controller-manager"
  | "prometheus"
  | "promtool";

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
const script = `${repoRoot}tools/controlplane/build.sh`;
const built = new Map<string, Promise<string>>();

/**
 * Returns the folder build.sh prints for `tools` (all of one folder: the Kubernetes components
 * and etcd, or Prometheus' two), building what is missing first; its progress streams to stderr.
 * Concurrent callers of one set share one build. Throws an Error starting with `Cannot get the
 * <what>` that ends with `howTo` when it cannot.
 */
export function builtToolsFolder(
  tools: readonly Tool[],
  what = "tools",
  howTo = "Install Go 1.26+ and put it on PATH: build.sh builds them from Go modules.",
): Promise<string> {
  const key = tools.join(" ");
  let promise = built.get(key);
  if (promise === undefined) {
    promise = build(tools, what, howTo);
    built.set(key, promise);
    promise.catch(() => built.delete(key));
  }
  return promise;
}

/** The path of one built tool (see {@linkcode builtToolsFolder}). */
export async function builtTool(tool: Tool): Promise<string> {
  return `${await builtToolsFolder([tool], tool)}/${tool}`;
}

async function build(tools: readonly Tool[], what: string, howTo: string): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("bash", {
      args: [script, ...tools],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).output();
  } catch (err) {
    throw new Error(`Cannot get the ${what}: cannot run bash ${script}: ${err}`, { cause: err });
  }
  if (!output.success) {
    throw new Error(
      `Cannot get the ${what}: ${script} exited with code ${output.code} ` +
        `(its messages are above). ${howTo}`,
    );
  }
  const dir = new TextDecoder().decode(output.stdout).trim().split("\n").pop() ?? "";
  for (const name of tools) {
    try {
      await Deno.stat(`${dir}/${name}`);
    } catch {
      throw new Error(
        `Cannot get the ${what}: ${script} printed "${dir}", which has no ${name}. ${howTo}`,
      );
    }
  }
  return dir;
}
