/**
 * `forge-manager status | handover | pause | resume` end to end: main.ts spawned under the
 * shipped permission set with an operator's kubeconfig (bound to the shipped
 * forge-manager-operator Role), against three real sidecars beside simulated nodes, with Pod
 * objects run by the simulated kubelet. Every assertion about forging comes from the simulated
 * nodes' own records.
 */

import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { FaultCluster, nowMs } from "../support/fault_cluster.ts";
import { FAULT_TEST_OPTIONS } from "../support/fault_suite.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { sleep, waitUntil } from "../support/wait.ts";
import { totalOverlapMs } from "../support/forging_log.ts";
import { type Ran, runMain } from "../support/run_main.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

function fm(kubeconfig: string, namespace: string, args: string[]): Promise<Ran> {
  return runMain([...args, "--kubeconfig", kubeconfig, "-n", namespace]);
}

/** A cluster of three replicas with one forger, and an operator's kubeconfig. */
async function deployment(namespace: string, opts: { nodeShutdownMs?: number } = {}) {
  const cp = await sharedControlPlane();
  const c = await FaultCluster.start({ cp, namespace, ...opts });
  const operator = await cp.mintIdentity({
    namespace,
    serviceAccount: "operator",
    roleName: "forge-manager-operator",
  });
  await c.waitSingleForger(30_000);
  const run = (...args: string[]) => fm(operator, namespace, args);
  const json = async (...args: string[]) => {
    const r = await run(...args, "--output", "json");
    assert.equal(r.code, 0, r.stderr + r.stdout);
    return JSON.parse(r.stdout);
  };
  /** Until every replica has published a fresh entry. */
  const published = () =>
    waitUntil("three fresh replica entries", async () => {
      const s = await json("status");
      return s.replicas.filter((r: { fresh: boolean }) => r.fresh).length === 3 ? s : undefined;
    }, 15_000);
  return { c, cp, operator, run, json, published };
}

async function cardanoLeader(c: FaultCluster) {
  const api = c.cp.admin().makeApiClient(k8s.CustomObjectsApi);
  return await api.getNamespacedCustomObject({
    group: "cardano.io",
    version: "v1",
    plural: "cardanoleaders",
    namespace: c.namespace,
    name: "cardano-leader",
  }) as {
    metadata: { resourceVersion: string; generation: number };
    spec?: Record<string, unknown>;
  };
}

Deno.test(
  "status shows the holder and every replica; refusals and a dry run change nothing",
  FAULT_TEST_OPTIONS,
  async () => {
    const d = await deployment("op-status");
    await using _c = d.c;
    const status = await d.published();
    const leader = await d.c.holderKey();
    assert.equal(status.lease.holderPod, leader);
    assert.deepEqual(status.replicas.map((r: { pod: string }) => r.pod), [
      "forge-0",
      "forge-1",
      "forge-2",
    ]);
    for (const r of status.replicas) {
      assert.equal(r.ready, true, r.pod);
      assert.equal(r.leader, r.pod === leader, r.pod);
      assert.equal(r.forging, r.pod === leader, r.pod);
      assert.equal(r.nodeFound, true, r.pod);
    }
    const text = await d.run("status");
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`held by ${leader} `));
    assert.match(
      text.stdout,
      /^POD\s+READY\s+LEADER\s+FORGING\s+NODE\s+SYNC\s+FENCE\s+GUARD\s+PHASE/m,
    );
    console.log(text.stdout);

    // The sidecars write the status all along; the spec's generation moves only with the spec.
    const before = await cardanoLeader(d.c);
    const standby = status.replicas.find((r: { pod: string }) => r.pod !== leader).pod;
    const refusals: [string[], RegExp][] = [
      [["handover", "--to", leader!], /is the leader already/],
      [["handover", "--to", "forge-9"], /forge-9 is not running forge-manager/],
    ];
    for (const [args, reason] of refusals) {
      const r = await d.run(...args);
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout, reason);
      assert.match(r.stdout, /Nothing was changed/);
    }
    const dry = await d.run("handover", "--to", standby, "--dry-run");
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`would hand over from ${leader} to ${standby}`));
    const after = await cardanoLeader(d.c);
    assert.equal(after.metadata.generation, before.metadata.generation, "a dry run wrote");
    assert.deepEqual(after.spec, before.spec, "a refusal or dry run wrote");
    await sleep(2_000);
    assert.deepEqual(await d.c.forgers(), [leader], "a refusal or dry run moved the leader");

    // --watch prints the table again until interrupted.
    const watch = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-P=forge-manager",
        "--no-prompt",
        `--config=${CONFIG}`,
        MAIN,
        "status",
        "--watch",
        "--kubeconfig",
        d.operator,
        "-n",
        d.c.namespace,
      ],
      env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/root" },
      clearEnv: true,
      stdout: "piped",
      stderr: "null",
    }).spawn();
    let seen = "";
    const reader = watch.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      await waitUntil("two tables from --watch", async () => {
        const { value, done } = await reader.read();
        seen += value ?? "";
        return done || (seen.match(/^Lease /gm) ?? []).length >= 2;
      }, 20_000);
      assert.ok((seen.match(/^Lease /gm) ?? []).length >= 2, seen);
    } finally {
      watch.kill("SIGKILL");
      await reader.cancel().catch(() => {});
      await watch.status;
    }

    // Usage errors are exit 2.
    assert.equal((await d.run("pause")).code, 2);
    assert.equal((await d.run("handover", "--timeout", "soon")).code, 2);
  },
);

Deno.test(
  "a handover to a named standby: it forges within a second or two, the third never does, no overlap",
  FAULT_TEST_OPTIONS,
  async () => {
    const d = await deployment("op-handover");
    await using _c = d.c;
    const status = await d.published();
    const leader = status.lease.holderPod as string;
    const others = ["forge-0", "forge-1", "forge-2"].filter((p) => p !== leader);
    const [target, third] = [others[1]!, others[0]!];
    const at = nowMs();
    const r = await d.json("handover", "--to", target, "--timeout", "20s");
    assert.equal(r.result, "done", JSON.stringify(r));
    assert.equal(r.to, target);
    assert.deepEqual(await d.c.forgers(), [target]);
    const intervals = await d.c.intervals();
    assert.equal(totalOverlapMs(intervals), 0, "two forged at once");
    const stopped = intervals.filter((i) => i.node.startsWith(`${leader}/`)).at(-1)!.end;
    const started = intervals.find((i) => i.node.startsWith(`${target}/`))!.start;
    console.log(
      `handover ${leader} -> ${target}: command ${r.elapsedMs} ms, forging gap ${
        (started - stopped).toFixed(0)
      } ms`,
    );
    assert.ok(started - stopped < 2_000, `forging gap ${started - stopped} ms`);
    // The third replica must not win, now or in the next lease durations.
    await sleep(6_000);
    assert.deepEqual(await d.c.forgers(), [target]);
    assert.ok(
      !(await d.c.intervals()).some((i) => i.node.startsWith(`${third}/`) && i.start > at),
      `${third} forged`,
    );
    // The leader wrote released; the target, holding the Lease and forging, wrote done.
    const last = await d.c.waitFor("the handover shown done", async () => {
      const s = await d.json("status");
      return s.lastHandover?.result === "done" ? s.lastHandover : undefined;
    }, 15_000);
    assert.equal(last.id, r.id);
    assert.equal(last.to, target);
    assert.match(
      (await d.run("status")).stdout,
      new RegExp(`^Last handover: ${r.id} to ${target}: done`, "m"),
    );
  },
);

Deno.test(
  "a pause stops every forger, shows in status and metrics, and ends by itself after --for",
  FAULT_TEST_OPTIONS,
  async () => {
    const d = await deployment("op-pause");
    await using _c = d.c;
    await d.published();
    const leader = await d.c.holderKey();
    const p = await d.run("pause", "--reason", "node upgrade", "--for", "14s");
    assert.equal(p.code, 0, p.stderr + p.stdout);
    assert.match(p.stdout, /No replica forges/);
    const pausedAt = nowMs();
    assert.deepEqual(await d.c.forgers(), []);
    const h = await d.run("handover");
    assert.equal(h.code, 1, h.stdout);
    assert.match(h.stdout, /paused/);
    assert.equal((await d.run("pause", "--reason", "again")).code, 1, "paused twice");
    const s = await d.json("status");
    assert.equal(s.pause.active, true);
    assert.equal(s.pause.reason, "node upgrade");
    assert.match(s.pause.by, /operator/);
    assert.equal(s.lease.holderPod, leader, "the leader gave up the Lease during a pause");
    for (const key of ["forge-0", "forge-1", "forge-2"]) {
      assert.equal(await d.c.metric(key, "forge_manager_paused"), 1, key);
    }
    assert.deepEqual(await d.c.forgers(), []);
    const back = await d.c.waitSingleForger(20_000);
    const resumedAt = nowMs();
    assert.equal(back, leader, "the pause moved the leader");
    console.log(
      `pause --for 14s: forging again ${
        (resumedAt - pausedAt).toFixed(0)
      } ms after the command returned`,
    );
    assert.ok(resumedAt - pausedAt > 9_000, `resumed after ${resumedAt - pausedAt} ms`);
    // The pause's reason ends with it: the forging leader's entry says why it forges again.
    const row = await d.c.waitFor("the leader's entry forging again", async () => {
      const s = await d.json("status");
      return s.replicas.find((r: { pod: string; forging: boolean }) =>
        r.pod === leader && r.forging
      );
    }, 15_000);
    assert.equal(row.reason, "resumed");
    assert.equal((await d.run("resume")).code, 0, "resume of an expired pause");
    assert.equal((await d.run("resume")).code, 1, "resume twice");
    const events = await d.c.cp.admin().makeApiClient(k8s.CoreV1Api).listNamespacedEvent({
      namespace: d.c.namespace,
    });
    const reasons = events.items.map((e) => e.reason);
    assert.ok(reasons.includes("PauseRequested"), reasons.join(","));
    assert.ok(reasons.includes("ResumeRequested"), reasons.join(","));
  },
);

Deno.test(
  "a pause holds across restarts of every replica, until resumed",
  FAULT_TEST_OPTIONS,
  async () => {
    const d = await deployment("op-restart");
    await using _c = d.c;
    await d.published();
    assert.equal((await d.run("pause", "--reason", "kes rotation")).code, 0);
    for (const key of ["forge-0", "forge-1", "forge-2"]) {
      await d.c.deletePod(key);
    }
    for (const key of ["forge-0", "forge-1", "forge-2"]) await d.c.recreate(key);
    await d.published();
    // Lease duration + acquire delay twice over: somebody holds the Lease, nobody forges.
    const end = Date.now() + 12_000;
    while (Date.now() < end) {
      assert.deepEqual(await d.c.forgers(), []);
      await sleep(500);
    }
    const s = await d.json("status");
    assert.notEqual(s.lease.holderPod, "", "nobody took the Lease");
    assert.equal((await d.run("resume")).code, 0);
    await d.c.waitSingleForger(15_000);
  },
);

Deno.test(
  "the sidecar's own identity can neither pause nor hand over; the operator's can",
  FAULT_TEST_OPTIONS,
  async () => {
    const d = await deployment("op-rbac");
    await using _c = d.c;
    await d.published();
    const sidecar = `${d.c.root}/forge-0.kubeconfig`;
    const pause = await fm(sidecar, d.c.namespace, ["pause", "--reason", "x"]);
    assert.equal(pause.code, 1);
    assert.match(pause.stderr, /forbidden/);
    const status = await d.json("status");
    const standby = status.replicas.find((r: { pod: string }) => r.pod !== status.lease.holderPod);
    const handover = await fm(sidecar, d.c.namespace, ["handover", "--to", standby.pod]);
    assert.equal(handover.code, 1, handover.stdout);
    assert.match(handover.stderr, /forbidden/);
    assert.equal((await cardanoLeader(d.c)).spec?.handover, undefined);
  },
);

Deno.test(
  "a leader whose Pod is deleted hands over at once, while its node still shuts down",
  FAULT_TEST_OPTIONS,
  async () => {
    // The kubelet in the real order: SIGTERM to the node, which takes 15 s to shut down and
    // forges on meanwhile; the native sidecar gets its SIGTERM only after the node exited.
    const d = await deployment("op-delete", { nodeShutdownMs: 15_000 });
    await using _c = d.c;
    await d.published();
    const leader = (await d.c.holderKey())!;
    d.c.kubelet.termination = "ordered";
    const at = nowMs();
    await d.c.deletePod(leader);
    const next = await d.c.waitSingleForger(10_000, [leader]);
    const intervals = await d.c.intervals();
    const stopped = intervals.filter((i) => i.node.startsWith(`${leader}/`)).at(-1)!.end;
    const started = intervals.find((i) => i.node.startsWith(`${next}/`))!.start;
    console.log(
      `pod deletion ${leader} -> ${next}: old stopped ${
        (stopped - at).toFixed(0)
      } ms after the delete, gap ${(started - stopped).toFixed(0)} ms, new forger ${
        (started - at).toFixed(0)
      } ms after the delete`,
    );
    assert.equal(totalOverlapMs(intervals), 0);
    assert.ok(started - at < 3_000, `a standby forged ${started - at} ms after the delete`);
    const nodeExit = await waitUntil("the old node's exit", () => {
      const e = d.c.kubelet.eventsOf(leader).find((e) => e.what === "node_exited");
      return Promise.resolve(e);
    }, 30_000);
    assert.ok(nodeExit.t > started, "the handover waited for the node's shutdown");
    // The deleted pod's sidecar never competes again while it lives on.
    await sleep(6_000);
    assert.deepEqual(await d.c.forgers(), [next]);
  },
);
