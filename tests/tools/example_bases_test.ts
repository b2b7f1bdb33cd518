/**
 * The generated bases of the kustomize overlays under manifests/examples/ (tools/example_bases.ts)
 * are current: a change to manifests/ fails here until they are regenerated.
 *
 * Needs: read of the repository.
 */
import assert from "node:assert/strict";
import { exampleBases, renderExampleBases } from "../../tools/example_bases.ts";
import { REPO_ROOT } from "../../tools/dummy_example.ts";

const REGENERATE = "deno run --allow-read --allow-write=manifests/examples tools/example_bases.ts";

Deno.test("every generated copy under manifests/examples/ equals what tools/example_bases.ts makes now", async () => {
  const generated = await renderExampleBases();
  assert.ok(generated.size > 0);
  for (const [path, text] of generated) {
    let current: string;
    try {
      current = await Deno.readTextFile(`${REPO_ROOT}/${path}`);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) assert.fail(`${path} is missing: run ${REGENERATE}`);
      throw err;
    }
    assert.equal(current, text, `${path} is stale: run ${REGENERATE}`);
  }
});

Deno.test("a generated base holds nothing but its copies and their kustomization", async () => {
  for (const { dir, files, baseOf } of await exampleBases()) {
    if (baseOf === undefined) continue; // a copy beside hand-written files
    const present: string[] = [];
    for await (const entry of Deno.readDir(`${REPO_ROOT}/${dir}`)) present.push(entry.name);
    assert.deepEqual(
      present.sort(),
      [...files, "kustomization.yaml"].sort(),
      `${dir}: a file there is no longer a copy of manifests/ (remove it) or one is missing (run ${REGENERATE})`,
    );
  }
});

Deno.test("the second pool's base is manifests/ without the CRD; the clusters' base is all of it", async () => {
  const bases = new Map((await exampleBases()).map((b) => [b.dir, b.files]));
  const all = bases.get("manifests/examples/multi-cluster/base");
  assert.deepEqual(all, [
    "crd.yaml",
    "rbac.yaml",
    "cardanoleader.yaml",
    "statefulset.yaml",
    "pdb.yaml",
    "service.yaml",
  ]);
  assert.deepEqual(
    bases.get("manifests/examples/second-pool/base"),
    all.filter((f) => f !== "crd.yaml"),
  );
  assert.deepEqual(bases.get("manifests/examples/multi-cluster/coordination"), ["crd.yaml"]);
});
