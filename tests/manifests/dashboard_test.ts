/**
 * The Grafana dashboard (manifests/monitoring/forge-manager-dashboard.json) against a real
 * Prometheus (tests/support/prometheus.ts) that scrapes three sidecars every second, with the
 * target labels the ServiceMonitor gives (`namespace`, `pod`) and the shipped alert rules loaded:
 * across a planned handover, every panel's query returns data and the data says what the
 * simulated nodes' own records say (one forger, who leads, a transition, the leader's renew age,
 * no signal failures), and MultipleForgers never fires.
 *
 * Grafana's variables are replaced as Grafana would: `$namespace` by the namespace,
 * `$__rate_interval` by a window that holds the handover.
 *
 * Needs the `dev` permission set (control plane, simulated pods as root, prometheus).
 *
 * @module
 */
import assert from "node:assert/strict";
import { sharedControlPlane } from "../support/control_plane.ts";
import { type Prometheus, startPrometheus } from "../support/prometheus.ts";
import { installForgeManager, startReplicas } from "../support/replicas.ts";
import { figures, forgersNow, nowMs, waitForSingleForger } from "../support/scenario.ts";
import { sleep, waitUntil } from "../support/wait.ts";
import { parseYaml } from "../support/yaml.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const REPO_ROOT = new URL("../../", import.meta.url).pathname;

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

const dashboard = JSON.parse(
  await Deno.readTextFile(`${REPO_ROOT}manifests/monitoring/forge-manager-dashboard.json`),
) as Json;
const [rule] = parseYaml(
  await Deno.readTextFile(`${REPO_ROOT}manifests/monitoring/prometheusrule.yaml`),
) as [Json];

/** Each panel's queries with Grafana's variables replaced. */
function panelQueries(namespace: string, rateInterval: string): Map<string, string[]> {
  return new Map((dashboard.panels as Json[]).map((p) => [
    p.title as string,
    (p.targets as Json[]).map((t) =>
      (t.expr as string).replaceAll("$namespace", namespace)
        .replaceAll("$__rate_interval", rateInterval)
    ),
  ]));
}

const values = (series: { value?: [number, string] }[]) => series.map((s) => Number(s.value?.[1]));

Deno.test(
  "every dashboard panel returns data from a real Prometheus scraping three sidecars, and MultipleForgers never fires",
  opts,
  async () => {
    const namespace = "dashboard";
    const cp = await sharedControlPlane();
    const kubeconfig = await installForgeManager(cp, namespace);
    const root = await Deno.makeTempDir({ prefix: "fm-dashboard-" });
    const pods = await startReplicas({ count: 3, root, namespace, kubeconfig });
    let prom: Prometheus | undefined;
    try {
      const startedAt = Date.now() / 1000;
      prom = await startPrometheus({
        targets: pods.map((p) => ({
          address: `127.0.0.1:${p.metricsPort}`,
          labels: { namespace, pod: p.name },
        })),
        ruleFiles: { "rules.yaml": JSON.stringify({ groups: rule.spec.groups }) },
      });
      const first = await waitForSingleForger(pods, 30_000);
      // Prometheus scrapes its first round a few seconds after start: the handover must be seen.
      const ready = prom;
      await waitUntil("Prometheus to scrape every sidecar twice", async () => {
        const got = await ready.query('count_over_time(up{job="forge-manager"}[1m]) >= 2');
        return got.length === pods.length ? true : undefined;
      }, 20_000);
      // A planned handover: the leader's pod stops (SIGTERM: it stops forging, then releases).
      const handoverAt = nowMs();
      await first.terminate();
      const second = await waitForSingleForger(pods, 30_000, [first.name]);
      // Scrapes of the new state on every target.
      const p = prom;
      await waitUntil("Prometheus to see the new leader forging", async () => {
        const got = await p.query(`cardano_forging_enabled{pod="${second.name}"} == 1`);
        return got.length === 1 ? true : undefined;
      }, 15_000);
      await sleep(3_000);
      const endedAt = Date.now() / 1000;
      const window = `${Math.ceil(endedAt - startedAt) + 5}s`;
      const queries = panelQueries(namespace, window);
      const results = new Map<string, Json[]>();
      for (const [title, exprs] of queries) {
        for (const expr of exprs) {
          const got = await prom.query(expr);
          assert.ok(got.length > 0, `panel "${title}" has no data: ${expr}`);
          results.set(title, [...(results.get(title) ?? []), ...got]);
        }
      }
      assert.deepEqual([...queries.keys()].sort(), [
        "Forgers",
        "Forging by pod",
        "Leader",
        "Leader by pod",
        "Leader's renew age",
        "Leadership transitions",
        "Signal failures",
      ]);
      const live = pods.filter((x) => x !== first).map((x) => x.name).sort();
      const byPod = (title: string) =>
        Object.fromEntries(results.get(title)!.map((s) => [s.metric.pod, Number(s.value[1])]));
      assert.deepEqual(values(results.get("Forgers")!), [1]);
      assert.deepEqual(results.get("Leader")!.map((s) => s.metric.pod), [second.name]);
      assert.deepEqual(
        byPod("Forging by pod"),
        Object.fromEntries(live.map((n) => [n, n === second.name ? 1 : 0])),
      );
      assert.deepEqual(
        byPod("Leader by pod"),
        Object.fromEntries(live.map((n) => [n, n === second.name ? 1 : 0])),
      );
      const transitions = byPod("Leadership transitions");
      assert.ok(transitions[second.name]! >= 1, `transitions ${JSON.stringify(transitions)}`);
      const age = results.get("Leader's renew age")!;
      assert.deepEqual(age.map((s) => s.metric.pod), [second.name]);
      assert.ok(values(age)[0]! >= 0 && values(age)[0]! < 10, `renew age ${values(age)}`);
      assert.deepEqual(byPod("Signal failures"), Object.fromEntries(live.map((n) => [n, 0])));

      // The namespace variable's query (label_values) lists the namespace.
      const labelValues = await fetch(
        `${prom.url}/api/v1/label/namespace/values?match[]=cardano_forging_enabled`,
      ).then((r) => r.json());
      assert.ok(labelValues.data.includes(namespace), JSON.stringify(labelValues));

      // The alert rules were evaluated all along; MultipleForgers never fired.
      const rules = await fetch(`${prom.url}/api/v1/rules`).then((r) => r.json());
      const evaluated = (rules.data.groups as Json[]).flatMap((g) => g.rules as Json[]);
      assert.equal(evaluated.length, rule.spec.groups.flatMap((g: Json) => g.rules).length);
      for (const r of evaluated) {
        assert.equal(r.health, "ok", `${r.name}: ${r.lastError}`);
        assert.ok(Date.parse(r.lastEvaluation) / 1000 > startedAt, `${r.name} was evaluated`);
      }
      const fired = await prom.queryRange(
        'ALERTS{alertname="MultipleForgers",alertstate="firing"}',
        startedAt,
        Date.now() / 1000,
        1,
      );
      assert.deepEqual(fired, []);
      // And the nodes' own records agree: never two forgers.
      assert.equal((await figures(pods, handoverAt, first)).overlapMs, 0);
      assert.deepEqual(await forgersNow(pods), [second.name]);
    } finally {
      await prom?.stop();
      await Promise.all(pods.map((x) => x.kill()));
      await Deno.remove(root, { recursive: true });
    }
  },
);
