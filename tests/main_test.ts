/**
 * The entry point as operators meet it, run under the shipped permission set (`-P=forge-manager`):
 * --help, --version, and refusing a bad configuration with a message that names the problem.
 */

import assert from "node:assert/strict";
import { VERSION } from "../lib/base/version.ts";
import { runMain } from "./support/run_main.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

const run = runMain;

Deno.test("--version prints the version, which is deno.json's", async () => {
  const { code, stdout } = await run(["--version"]);
  assert.equal(code, 0);
  assert.equal(stdout.trim(), `forge-manager ${VERSION}`);
  const denoJson = JSON.parse(await Deno.readTextFile(CONFIG)) as { version: string };
  assert.equal(denoJson.version, VERSION);
});

Deno.test("--help lists every environment variable with its default", async () => {
  const { code, stdout } = await run(["--help"]);
  assert.equal(code, 0);
  for (const name of ["POD_NAME", "LEASE_DURATION", "RENEW_DEADLINE", "TARGET_KES_KEY", "FENCE"]) {
    assert.match(stdout, new RegExp(`^  ${name} `, "m"));
  }
  assert.match(stdout, /LEASE_DURATION\s+\[15\]/);
});

Deno.test("an unknown argument is refused with exit code 2", async () => {
  const { code, stderr } = await run(["--frobnicate"]);
  assert.equal(code, 2);
  assert.match(stderr, /unknown argument "--frobnicate"/);
});

Deno.test("a bad configuration is refused before anything starts, naming each problem", async () => {
  const { code, stderr, stdout } = await run([], {
    LEASE_DURATION: "15",
    RENEW_DEADLINE: "15",
    TARGET_VRF_KEY: "/ipc/kes.skey",
  });
  assert.equal(code, 2);
  assert.match(stderr, /POD_NAME="": is required/);
  assert.match(stderr, /RENEW_DEADLINE=15: must be below LEASE_DURATION=15/);
  assert.match(stderr, /TARGET_VRF_KEY="\/ipc\/kes.skey": is the same file as TARGET_KES_KEY/);
  assert.equal(stdout, "");
});

Deno.test("with the pod fence on, a replica without POD_UID refuses to start", async () => {
  const { code, stderr } = await run([], { POD_NAME: "forge-0" });
  assert.equal(code, 2);
  assert.match(stderr, /POD_UID="": is required with FENCE=pod/);
  const off = await run([], { POD_NAME: "forge-0", FENCE: "off" });
  assert.doesNotMatch(off.stderr + off.stdout, /POD_UID/);
});

Deno.test("outside a pod and without KUBECONFIG it says how to reach the API server", async () => {
  const { code, stderr, stdout } = await run([], { POD_NAME: "forge-0", POD_UID: "uid-0" });
  assert.equal(code, 2);
  assert.match(
    stdout + stderr,
    /KUBERNETES_SERVICE_HOST is not set \(outside a pod, set KUBECONFIG\)/,
  );
});

/** The module specifiers of `entry`'s graph, static and literal dynamic imports alike. */
async function moduleGraph(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `--config=${CONFIG}`, entry],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  return graph.modules.map((m) => m.specifier);
}

Deno.test("the privileged core imports no npm package, not even through a command's spec", async () => {
  const core = await moduleGraph(MAIN);
  assert.ok(core.some((s) => s.endsWith("/lib/core/cli/commands.ts")), "the dispatcher is in it");
  assert.deepEqual(core.filter((s) => !s.startsWith("file://")), []);
  // The same probe sees npm code where it is: in the command worker's graph.
  const worker = await moduleGraph(new URL("../lib/cli/worker.ts", import.meta.url).pathname);
  assert.ok(worker.some((s) => s.startsWith("npm:/@noble/")), worker.join("\n"));
});

Deno.test("every shipped entry point carries the same V8 flags, and they keep WebAssembly", async () => {
  const tasks = (JSON.parse(await Deno.readTextFile(CONFIG)) as { tasks: Record<string, string> })
    .tasks;
  const flagsOf = (task: string) => /--v8-flags=(\S+)/.exec(tasks[task] ?? "")?.[1];
  const flags = flagsOf("start");
  assert.ok(flags !== undefined, "the start task sets --v8-flags");
  // The Containerfile's entrypoint is the compile tasks' output, which bakes the flags in.
  assert.equal(flagsOf("compile:x86_64"), flags);
  assert.equal(flagsOf("compile:aarch64"), flags);
  // undici (client-node's HTTP client) parses responses with WebAssembly; --jitless (implied by
  // --lite-mode) removes it and the worker could not reach the API server.
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `--v8-flags=${flags}`, "console.log(typeof WebAssembly.instantiate)"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "function");
});
