/**
 * Splits the test files under tests/ into the unit set (`deno task test:unit`: no control plane,
 * no built tool, no root, no sidecar processes) and the integration set, by what each file needs,
 * read from its local module graph: a file that reaches one of {@linkcode INTEGRATION_NEEDS} is an
 * integration test, every other one is a unit test. No list to maintain: a new test file lands in
 * the right set by what it imports. `deno task test` runs both.
 *
 *     deno run --allow-read tools/test_sets.ts unit|integration   # the set's files, one a line
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { localModuleGraph } from "./module_graph.ts";

/** The repository root, without a trailing slash. */
const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");

/** Modules whose reach makes a test file an integration test, and what they bring. */
export const INTEGRATION_NEEDS: Readonly<Record<string, string>> = {
  "tests/support/control_plane.ts": "the control plane (etcd and kube-apiserver)",
  "tests/support/pod.ts": "sidecar processes in pods of their own (root: unshare, nsenter)",
  "tests/support/built_tools.ts":
    "a tool built from Go modules (promtool, Prometheus, kubectl): minutes on a fresh machine",
};

/** The two sets, paths relative to the repository root, sorted. */
export interface TestSets {
  unit: string[];
  /** Each integration test file with the needs it reaches. */
  integration: { file: string; needs: string[] }[];
}

/** Whether `name` is a file `deno test` picks up in a folder (`*_test.ts`, `*.test.ts`, ...). */
export function isTestFile(name: string): boolean {
  return /(?:^|[._])test\.(?:ts|tsx|mts|js|jsx|mjs)$/.test(name);
}

/** The test files under `root`/tests and the set each belongs to. Needs read access to `root`. */
export async function testSets(root: string = REPO_ROOT): Promise<TestSets> {
  const sets: TestSets = { unit: [], integration: [] };
  for (const file of await testFiles(root, "tests")) {
    const graph = await localModuleGraph(file, root);
    const needs = graph.filter((m) => m in INTEGRATION_NEEDS);
    if (needs.length === 0) sets.unit.push(file);
    else sets.integration.push({ file, needs });
  }
  return sets;
}

async function testFiles(root: string, dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(`${root}/${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) found.push(...await testFiles(root, path));
    else if (entry.isFile && isTestFile(entry.name)) found.push(path);
  }
  return found.sort();
}

if (import.meta.main) {
  const which = Deno.args[0];
  if (which !== "unit" && which !== "integration") {
    console.error("Usage: deno run --allow-read tools/test_sets.ts unit|integration");
    Deno.exit(2);
  }
  const sets = await testSets();
  const files = which === "unit" ? sets.unit : sets.integration.map((i) => i.file);
  console.log(files.join("\n"));
}
