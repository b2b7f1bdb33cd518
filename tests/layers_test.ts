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

/**
 * The folders of lib/, bottom up: a module imports from its own folder or from a lower layer,
 * never from a higher one, and never from a sibling of its own layer (node/ and kube/ are two
 * independent adapters).
 */
const LAYERS: readonly (readonly string[])[] = [
  ["base"], // log, clock, bytes, version, identities: used by every layer
  ["cardano"], // keys, CBOR, bech32, KES periods: Cardano's formats
  ["core"], // the privileged core: config, sandbox, /proc and signals, the commands' core halves
  ["node", "kube"], // the adapters: cardano-node's files, metrics and socket; the API server
  ["forging"], // the pure decisions: the election, the forging step, stop reasons, verdicts
  ["runtime"], // the loop, the effect runner, telemetry, metrics, HTTP, the worker
  ["cli"], // the operator commands' worker halves
];

/** The folders from which the pure step may import values; from the others, types only. */
const PURE = ["forging", "base", "cardano"];

interface LocalImport {
  from: string;
  to: string;
  typeOnly: boolean;
}

/** Every relative import of every module under lib/, read as text (type-only ones marked). */
async function libImports(): Promise<LocalImport[]> {
  const found: LocalImport[] = [];
  const statement =
    /(?:^|\n)\s*(?:import|export)\s+(type\s+)?([^"';]*?)\s*from\s*"(\.{1,2}\/[^"]+)"/g;
  for (const file of await filesUnder("lib")) {
    const text = await Deno.readTextFile(`${REPO}${file}`);
    for (const [, typeKeyword, names, specifier] of text.matchAll(statement)) {
      const braced = /^\{([^}]*)\}$/.exec(names!.trim())?.[1];
      const allTypes = braced !== undefined &&
        braced.split(",").map((n) => n.trim()).filter((n) => n !== "")
          .every((n) => n.startsWith("type "));
      const to = new URL(specifier!, `file://${REPO}${file}`).pathname.slice(REPO.length);
      found.push({ from: file, to, typeOnly: typeKeyword !== undefined || allTypes });
    }
  }
  return found;
}

async function filesUnder(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(`${REPO}${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) files.push(...await filesUnder(path));
    else if (entry.name.endsWith(".ts")) files.push(path);
  }
  return files.sort();
}

/** The layer folder of a module under lib/ (`lib/core/cli/x.ts` -> `core`). */
function folderOf(path: string): string {
  return path.split("/")[1] ?? "";
}

function rankOf(folder: string): number {
  return LAYERS.findIndex((layer) => layer.includes(folder));
}

Deno.test("every module of lib/ lives in a layer folder, and no file exceeds 500 lines", async () => {
  for (const file of await filesUnder("lib")) {
    assert.ok(rankOf(folderOf(file)) >= 0, `${file} is in no layer folder`);
    const lines = (await Deno.readTextFile(`${REPO}${file}`)).split("\n").length - 1;
    assert.ok(lines <= 500, `${file} has ${lines} lines (split it by concern)`);
  }
});

Deno.test("lib/ imports only downwards: its own folder or a lower layer, never a sibling", async () => {
  const imports = await libImports();
  assert.ok(imports.length > 100, "the imports were read");
  const wrong = imports.filter(({ from, to }) => {
    const [a, b] = [folderOf(from), folderOf(to)];
    return a !== b && rankOf(b) >= rankOf(a);
  }).map(({ from, to }) => `${from} imports ${to}`);
  assert.deepEqual(wrong, []);
});

Deno.test("the pure step imports values only from lib/forging/, lib/base/ and lib/cardano/", async () => {
  const imports = (await libImports()).filter((i) => folderOf(i.from) === "forging");
  assert.ok(imports.some((i) => i.typeOnly && folderOf(i.to) === "kube"), "the types are seen");
  const values = imports.filter((i) => !i.typeOnly && !PURE.includes(folderOf(i.to)))
    .map(({ from, to }) => `${from} imports values from ${to}`);
  assert.deepEqual(values, []);
});
