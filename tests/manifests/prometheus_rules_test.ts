/**
 * The shipped alert rules (manifests/monitoring/prometheusrule.yaml) checked by Prometheus' own
 * tool, promtool (built at the pinned version by tools/controlplane/build.sh):
 *
 * - `promtool check rules` on the PrometheusRule's `spec` (its groups, as a rules file);
 * - `promtool test rules` on every rule-test file in tests/manifests/prometheus/ (each names
 *   `rule_files: [rules.yaml]`, the extracted groups, unchanged: annotations included);
 * - every alert of the PrometheusRule is named by at least one rule test.
 *
 * A new rule test is a new file in tests/manifests/prometheus/; nothing here lists them.
 *
 * Needs: read of the repository, run (bash for build.sh, promtool), write of a temp dir.
 *
 * @module
 */
import assert from "node:assert/strict";
import { builtTool } from "../support/built_tools.ts";
import { parseYaml } from "../support/yaml.ts";

const REPO_ROOT = new URL("../../", import.meta.url).pathname;
const RULE = "manifests/monitoring/prometheusrule.yaml";
const TESTS = "tests/manifests/prometheus";
/** The name every rule-test file gives in `rule_files`. */
const RULES_FILE = "rules.yaml";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

const [rule] = parseYaml(await Deno.readTextFile(`${REPO_ROOT}${RULE}`)) as [Json];
const testFiles: string[] = [];
for await (const entry of Deno.readDir(`${REPO_ROOT}${TESTS}`)) {
  if (entry.isFile && /\.ya?ml$/.test(entry.name)) testFiles.push(entry.name);
}
testFiles.sort();

/** A temp dir holding rules.yaml (the PrometheusRule's groups) and copies of the test files. */
async function workspace(
  groups: unknown = rule.spec.groups,
): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "forge-manager-rules-" });
  // JSON is YAML: promtool reads it as it reads the operator's rendering.
  await Deno.writeTextFile(`${path}/${RULES_FILE}`, JSON.stringify({ groups }, null, 2));
  for (const name of testFiles) {
    await Deno.copyFile(`${REPO_ROOT}${TESTS}/${name}`, `${path}/${name}`);
  }
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

async function promtool(cwd: string, ...args: string[]): Promise<{ ok: boolean; out: string }> {
  const out = await new Deno.Command(await builtTool("promtool"), {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, out: text };
}

Deno.test("the PrometheusRule is a Prometheus rules file promtool accepts", async () => {
  assert.equal(rule.kind, "PrometheusRule");
  await using ws = await workspace();
  const { ok, out } = await promtool(ws.path, "check", "rules", RULES_FILE);
  assert.ok(ok, out);
  const alerts = rule.spec.groups.flatMap((g: Json) => g.rules).length;
  assert.match(out, new RegExp(`SUCCESS: ${alerts} rules found`));
});

for (const name of testFiles) {
  Deno.test(`promtool test rules passes ${TESTS}/${name}`, async () => {
    const [test] = parseYaml(await Deno.readTextFile(`${REPO_ROOT}${TESTS}/${name}`)) as [Json];
    assert.deepEqual(test.rule_files, [RULES_FILE], `${name} must test ${RULES_FILE} only`);
    await using ws = await workspace();
    const { ok, out } = await promtool(ws.path, "test", "rules", name);
    assert.ok(ok, out);
    assert.match(out, /SUCCESS/);
  });
}

Deno.test("every alert of the PrometheusRule has a rule test", async () => {
  const tested = new Set<string>();
  for (const name of testFiles) {
    const [test] = parseYaml(await Deno.readTextFile(`${REPO_ROOT}${TESTS}/${name}`)) as [Json];
    for (const t of test.tests as Json[]) {
      for (const a of (t.alert_rule_test ?? []) as Json[]) tested.add(a.alertname);
    }
  }
  const alerts = (rule.spec.groups as Json[]).flatMap((g) => g.rules as Json[])
    .map((r) => r.alert).filter((a): a is string => a !== undefined);
  assert.deepEqual(alerts.filter((a) => !tested.has(a)), [], "alerts no rule test names");
});

Deno.test("the rule tests fail when MultipleForgers or NoForger loses its `for`", async () => {
  // The tests must be able to fail: the same tests against the rules without their hold times.
  for (const alert of ["MultipleForgers", "NoForger"]) {
    const groups = structuredClone(rule.spec.groups) as Json[];
    const target = groups.flatMap((g) => g.rules as Json[]).find((r) => r.alert === alert);
    assert.ok(target?.for, `${alert} has a for`);
    delete target.for;
    await using ws = await workspace(groups);
    const files = testFiles.filter((f) =>
      Deno.readTextFileSync(`${REPO_ROOT}${TESTS}/${f}`).includes(`alertname: ${alert}`)
    );
    assert.ok(files.length > 0, `no rule test names ${alert}`);
    const { ok, out } = await promtool(ws.path, "test", "rules", ...files);
    assert.ok(!ok, `the rule tests of ${alert} still pass without its for:\n${out}`);
    assert.match(out, new RegExp(`alertname: ${alert}`));
  }
});
