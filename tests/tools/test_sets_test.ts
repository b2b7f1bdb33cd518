/**
 * tools/test_sets.ts: `deno task test:unit` runs every test file that reaches neither the control
 * plane nor the pod harness, and `deno task test` all of them; each file is in exactly one set.
 */

import assert from "node:assert/strict";
import { isTestFile, testSets } from "../../tools/test_sets.ts";

Deno.test("a test file is integration when any module it imports reaches the control plane, a built tool or the pods", async () => {
  await using tmp = await tempRepo({
    "tests/pure_test.ts": 'import { exists } from "./support/fs.ts";\n',
    "tests/support/fs.ts": "export const exists = 1;\n",
    "tests/indirect_test.ts": 'import type { X } from "./support/helper.ts";\n',
    "tests/support/helper.ts": 'export { sharedControlPlane } from "./control_plane.ts";\n',
    "tests/support/control_plane.ts": 'import "npm:left-alone@1";\n',
    "tests/support/pods_test.ts": 'import { startPod } from "./pod.ts";\n',
    "tests/support/pod.ts": "export const startPod = 1;\n",
    "tests/rules_test.ts": 'import { builtTool } from "./support/built_tools.ts";\n',
    "tests/support/built_tools.ts": "export const builtTool = 1;\n",
    "tests/README.md": "not a test\n",
  });
  const sets = await testSets(tmp.path);
  assert.deepEqual(sets.unit, ["tests/pure_test.ts"]);
  assert.deepEqual(sets.integration, [
    { file: "tests/indirect_test.ts", needs: ["tests/support/control_plane.ts"] },
    { file: "tests/rules_test.ts", needs: ["tests/support/built_tools.ts"] },
    { file: "tests/support/pods_test.ts", needs: ["tests/support/pod.ts"] },
  ]);
});

Deno.test("every test file of the repository is in exactly one set", async () => {
  const sets = await testSets();
  const integration = sets.integration.map((i) => i.file);
  const all = [...sets.unit, ...integration];
  assert.equal(new Set(all).size, all.length, "no file in both sets");
  assert.ok(sets.unit.includes("tests/forging/election_test.ts"));
  assert.ok(sets.unit.includes("tests/layers_test.ts"));
  for (const fault of all.filter((f) => f.startsWith("tests/faults/"))) {
    assert.ok(integration.includes(fault), `${fault} needs the control plane`);
  }
  assert.ok(integration.includes("tests/runtime/forge_manager_integration_test.ts"));
  // promtool is built from Go modules (minutes on a fresh machine): not in the unit set.
  assert.ok(integration.includes("tests/manifests/prometheus_rules_test.ts"));
});

Deno.test("test files are named as deno test finds them", () => {
  for (const name of ["a_test.ts", "a.test.ts", "test.ts", "a_test.mts"]) {
    assert.equal(isTestFile(name), true, name);
  }
  for (const name of ["latest.ts", "a_test.ts.bak", "contest.ts"]) {
    assert.equal(isTestFile(name), false, name);
  }
});

async function tempRepo(files: Record<string, string>) {
  const path = await Deno.makeTempDir({ prefix: "fm-test-sets-" });
  for (const [file, text] of Object.entries(files)) {
    await Deno.mkdir(`${path}/${file.slice(0, file.lastIndexOf("/"))}`, { recursive: true });
    await Deno.writeTextFile(`${path}/${file}`, text);
  }
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}
