/**
 * `deno task demo`: forge-manager's main job on a machine with no cluster. Starts the local
 * control plane (building it the first time, with progress), three replicas beside simulated
 * cardano-nodes, shows live who holds the lease and who forges, kills the leader's pod, shows the
 * takeover with its measured time, performs a planned handover (SIGTERM), and exits cleanly.
 */

import { startControlPlane } from "../tests/support/control_plane.ts";
import { installForgeManager, startReplicas } from "../tests/support/replicas.ts";
import { metricValue, type Pod } from "../tests/support/pod.ts";
import { figures, forgersNow, nowMs, waitForSingleForger } from "../tests/support/scenario.ts";
import { sleep } from "../tests/support/wait.ts";

const enc = new TextEncoder();
const say = (line: string) => Deno.stdout.writeSync(enc.encode(line + "\n"));

async function view(pods: Pod[], label: string): Promise<void> {
  const forgers = await forgersNow(pods);
  const cells = await Promise.all(pods.map(async (p) => {
    const leader = await metricValue(p, `cardano_leader_status{pod="${p.name}"}`);
    const state = leader === undefined ? "down   " : leader === 1 ? "LEADER " : "standby";
    return `${p.name} ${state} ${forgers.includes(p.name) ? "FORGING" : "-------"}`;
  }));
  say(`  ${new Date().toISOString().slice(11, 23)}  ${cells.join(" | ")}  ${label}`);
}

async function watch(pods: Pod[], ms: number, label = ""): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await view(pods, label);
    await sleep(500);
  }
}

say("forge-manager demo: a local kube-apiserver + etcd, three replicas, simulated cardano-nodes.");
say("Starting the control plane (the first run builds it from Go modules: several minutes)...");
const cp = await startControlPlane();
const root = await Deno.makeTempDir({ prefix: "forge-manager-demo-" });
let pods: Pod[] = [];
try {
  const kubeconfig = await installForgeManager(cp, "cardano-demo");
  say("Starting three replicas (forge-manager + simulated node in its own PID namespace each)...");
  pods = await startReplicas({ count: 3, root, namespace: "cardano-demo", kubeconfig });
  say(
    "Lease duration 4 s, renew deadline 2 s, acquire delay 1 s (demo timings; production: 15/10/2).",
  );
  const leader = await waitForSingleForger(pods, 30_000);
  await watch(pods, 2000, "steady state");

  say(`\n1) Killing ${leader.name}'s whole pod (sidecar and node, SIGKILL)...`);
  const killedAt = nowMs();
  await leader.kill();
  const survivors = pods.filter((p) => p !== leader);
  const next = await waitForSingleForger(survivors, 30_000);
  const failover = await figures(pods, killedAt, leader);
  await view(pods, "after failover");
  say(
    `   ${next.name} took over in ${
      (failover.takeoverMs! / 1000).toFixed(2)
    } s; overlap ${failover.overlapMs} ms`,
  );

  say(`\n2) Planned handover: SIGTERM to ${next.name}'s forge-manager...`);
  const termAt = nowMs();
  await next.terminate();
  const third = await waitForSingleForger(survivors.filter((p) => p !== next), 10_000);
  const handover = await figures(pods, termAt, next);
  await view(pods, "after handover");
  say(
    `   ${third.name} took over in ${
      (handover.takeoverMs! / 1000).toFixed(3)
    } s; overlap ${handover.overlapMs} ms`,
  );
  await watch(pods, 1500, "steady state");
  say(
    `\nOverlap over the whole run: ${
      (await figures(pods, termAt, next)).overlapMs
    } ms (two forgers at once: never).`,
  );
} finally {
  say("Stopping everything...");
  await Promise.all(pods.map((p) => p.kill()));
  await cp.stop();
  await Deno.remove(root, { recursive: true }).catch(() => {});
  say("Done: no process and no files left behind.");
}
