/**
 * KES agent mode end to end: two copies of main.ts with KES_AGENT_SOCKET, under the shipped
 * permission set, each beside a simulated cardano-node started with --shelley-kes-agent-socket and
 * a simulated KES agent of its own holding the pool's KES key, on the real control plane. The
 * Secret holds no KES key; forge-manager moves only the VRF key and the certificate.
 */

import assert from "node:assert/strict";
import { isDecoyEnvelope } from "../../lib/cardano/decoy_keys.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { exists } from "../support/fs.ts";
import { makeCredentialSet } from "../support/keys.ts";
import { metricValue, type Pod } from "../support/pod.ts";
import { installForgeManager, startReplicas } from "../support/replicas.ts";
import { figures, nowMs, waitForSingleForger } from "../support/scenario.ts";
import { startSimKesAgent } from "../support/sim_kes_agent.ts";
import { waitUntil } from "../support/wait.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

/** The files in a pod's node folder, but the node's socket. */
async function folder(pod: Pod): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(`${pod.dir}/ipc`)) if (e.isFile) names.push(e.name);
  return names.sort();
}

Deno.test(
  "with a KES agent, only the leader's node gets the VRF key and the certificate, and it forges with the agent's key",
  opts,
  async () => {
    const cp = await sharedControlPlane();
    const namespace = "it-kes-agent";
    const kubeconfig = await installForgeManager(cp, namespace);
    const root = await Deno.makeTempDir({ prefix: "fm-kes-agent-" });
    await Deno.mkdir(`${root}/agents`);
    const set = makeCredentialSet();
    const socket = (pod: string) => `${root}/agents/${pod}.socket`;
    // One agent per pod, as the example's kes-agent sidecar; each holds the certificate's key.
    const agents = ["forge-0", "forge-1"].map((pod) =>
      startSimKesAgent({ socket: socket(pod), kes: set.kes })
    );
    const pods = await startReplicas({
      count: 2,
      root,
      namespace,
      kubeconfig,
      credentials: set,
      kesAgentSocket: socket,
    });
    try {
      assert.equal(await exists(`${pods[0]!.dir}/secrets/kes.skey`), false);
      const leader = await waitForSingleForger(pods, 30_000);
      const standby = pods.find((p) => p !== leader)!;
      // The leader's folder: the pool's VRF key and certificate, no KES key file.
      assert.deepEqual(await folder(leader), ["node.cert", "vrf.skey"]);
      for (const name of ["vrf.skey", "node.cert"]) {
        assert.equal(
          await Deno.readTextFile(`${leader.dir}/ipc/${name}`),
          await Deno.readTextFile(`${leader.dir}/secrets/${name}`),
          name,
        );
      }
      // The standby's: decoys of the two, once they are back after its startup stop.
      await waitUntil("the standby's decoys", async () => {
        const names = await folder(standby);
        if (names.join() !== "node.cert,vrf.skey") return false;
        for (const name of names) {
          if (!isDecoyEnvelope(await Deno.readTextFile(`${standby.dir}/ipc/${name}`))) return false;
        }
        return true;
      }, 20_000);
      // The KES facts come from the certificate: the sidecar judges and exports them as with files.
      const valid = await waitUntil(
        "the leader's credential verdict",
        () => metricValue(leader, 'forge_manager_credentials_valid{reason="valid"}'),
        20_000,
      );
      assert.equal(valid, 1);
      // A planned handover moves forging to the other node, which has the key from its own agent.
      const faultAt = nowMs();
      await leader.terminate();
      await waitForSingleForger([standby], 15_000);
      const { overlapMs, takeoverMs } = await figures(pods, faultAt, leader);
      assert.equal(overlapMs, 0);
      assert.ok(takeoverMs !== null && takeoverMs < 5000, `takeover ${takeoverMs} ms`);
      assert.deepEqual(await folder(standby), ["node.cert", "vrf.skey"]);
    } finally {
      await Promise.all(pods.map((p) => p.kill()));
      await Promise.all(agents.map((a) => a.close()));
      await Deno.remove(root, { recursive: true });
    }
  },
);
