/**
 * The layers of lib/, read from the real module graph (`deno info --json`).
 *
 * The privileged core (main.ts and every module it imports statically) lives in lib/core/, with
 * the dependency-free helpers of lib/base/ and the Cardano formats of lib/cardano/, and is our own
 * code only: no npm package, no node_modules, nothing remote. The workers main.ts starts by URL
 * (`new Worker(new URL(...))`) are not static imports, so they are not part of it: client-node and
 * prom-client live there.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url));

interface ModuleInfo {
  specifier: string;
  kind?: string;
  dependencies?: {
    specifier: string;
    code?: { specifier?: string };
    type?: { specifier?: string };
  }[];
}

/** Modules in `entry`'s static graph that are not our own code, each with who imports it. */
async function foreignImports(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `--config=${REPO}deno.json`, `${REPO}${entry}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  assert.equal(out.code, 0, `deno info ${entry} failed: ${decode(out.stderr)}`);
  const graph = JSON.parse(decode(out.stdout)) as {
    modules: ModuleInfo[];
    redirects: Record<string, string>;
  };
  const resolve = (s: string) => graph.redirects[s] ?? s;
  const foreign = new Set(
    graph.modules.filter((m) =>
      m.kind === "npm" || /^(npm|jsr|https?):/.test(m.specifier) ||
      m.specifier.includes("/node_modules/")
    ).map((m) => m.specifier),
  );
  const found: string[] = [];
  for (const m of graph.modules) {
    for (const dep of m.dependencies ?? []) {
      for (const target of [dep.code?.specifier, dep.type?.specifier]) {
        if (target !== undefined && foreign.has(resolve(target))) {
          found.push(`${m.specifier.replace(`file://${REPO}`, "")} imports ${dep.specifier}`);
        }
      }
    }
  }
  assert.equal(found.length === 0, foreign.size === 0, `foreign modules: ${[...foreign]}`);
  return [...new Set(found)].sort();
}

Deno.test("main.ts and everything it imports statically use no npm package", async () => {
  assert.deepEqual(await foreignImports("main.ts"), []);
});

/** The folders the privileged core may import from. */
const CORE_FOLDERS = ["lib/core/", "lib/base/", "lib/cardano/"];

Deno.test("main.ts imports statically only from lib/core/, lib/base/ and lib/cardano/", async () => {
  const outside = (await localModules("main.ts")).filter((m) =>
    m !== "main.ts" && !CORE_FOLDERS.some((folder) => m.startsWith(folder))
  );
  assert.deepEqual(outside, []);
});

/** The repository files in `entry`'s static module graph, relative to the repository root. */
async function localModules(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `--config=${REPO}deno.json`, `${REPO}${entry}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: ModuleInfo[] };
  return graph.modules.map((m) => m.specifier).filter((s) => s.startsWith(`file://${REPO}`))
    .map((s) => s.slice(`file://${REPO}`.length)).sort();
}

Deno.test("the check finds npm imports where they are: the worker imports client-node", async () => {
  const found = await foreignImports("lib/runtime/worker.ts");
  assert.ok(found.some((f) => f.endsWith("imports @kubernetes/client-node")), found.join("\n"));
  assert.ok(found.some((f) => f.endsWith("imports prom-client")), found.join("\n"));
});
