/**
 * The dummy example (manifests/examples/dummy/) installed the way docs/deploy.md tells a user, with
 * our pinned kubectl, on a private control plane that runs kube-controller-manager, with three
 * fake Nodes whose simulated kubelets (tests/support/node_kubelet.ts) run the pods the real
 * StatefulSet controller creates. The operator's steps (delete the leader's pod, a rolling
 * restart, a scale down and up, a node that stops reporting) each return their figures from the
 * simulated nodes' own forging records: the overlap (whole run so far) and the forging gaps of
 * the step. Used by tests/e2e/cluster_test.ts and `deno task bench --cluster`.
 *
 * Needs root and `-P=dev`.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { builtTool } from "./built_tools.ts";
import { type ControlPlane, MANIFEST_CONTROLLERS, startControlPlane } from "./control_plane.ts";
import {
  forgingGaps,
  type ForgingInterval,
  forgingIntervals,
  nowMs,
  readForgingRecords,
  totalOverlapMs,
} from "./forging_log.ts";
import { FakeNodes } from "./node_kubelet.ts";
import { sleep, waitUntil } from "./wait.ts";

const REPO = fileURLToPath(new URL("../../", import.meta.url));
/** The dummy example's namespace and objects. */
export const NAMESPACE = "cardano-test";
export const STATEFULSET = "cardano-producer";
const LEADER = "cardano-leader";

/** The figures of one step. */
export interface StepFigures {
  step: string;
  /** How long the step took, from its command until it was complete (ms). */
  durationMs: number;
  /** ms during which two or more nodes forged, over the whole run so far (must be 0). */
  overlapMs: number;
  /** The longest stretch of the step during which no node forged (ms). */
  longestGapMs: number;
  /** All the stretches without a forger during the step, summed (ms). */
  totalGapMs: number;
  leaderBefore: string | undefined;
  leaderAfter: string | undefined;
}

/** The running dummy example. */
export class DummyCluster implements AsyncDisposable {
  readonly cp: ControlPlane;
  readonly nodes: FakeNodes;
  readonly kubectlPath: string;
  readonly dir: string;
  readonly log: (line: string) => void;

  private constructor(
    cp: ControlPlane,
    nodes: FakeNodes,
    kubectl: string,
    dir: string,
    log: (line: string) => void,
  ) {
    this.cp = cp;
    this.nodes = nodes;
    this.kubectlPath = kubectl;
    this.dir = dir;
    this.log = log;
  }

  /** Starts the control plane (with the controllers) and three fake nodes; applies nothing. */
  static async start(
    opts: { log?: (line: string) => void; nodes?: string[] } = {},
  ): Promise<DummyCluster> {
    const log = opts.log ?? ((line: string) => console.error(line));
    const kubectl = await builtTool("kubectl");
    const cp = await startControlPlane({ controllers: MANIFEST_CONTROLLERS, log: () => {} });
    const dir = await Deno.makeTempDir({ prefix: "forge-manager-e2e-" });
    try {
      const nodes = await FakeNodes.start({
        cp,
        nodes: opts.nodes ?? ["node-a", "node-b", "node-c"],
        dir,
        log: (e) => log(`kubelet ${e.node} ${e.pod} ${e.what}${e.detail ? ` ${e.detail}` : ""}`),
      });
      return new DummyCluster(cp, nodes, kubectl, dir, log);
    } catch (err) {
      await cp.stop();
      throw err;
    }
  }

  /** Runs our kubectl against the control plane as the admin; returns stdout, throws on failure. */
  async kubectl(...args: string[]): Promise<string> {
    const out = await new Deno.Command(this.kubectlPath, {
      args,
      cwd: REPO,
      env: { KUBECONFIG: this.cp.adminKubeconfig },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    if (!out.success) {
      throw new Error(
        `Cannot run kubectl ${args.join(" ")}: exit ${out.code}: ${
          new TextDecoder().decode(out.stderr).trim()
        }`,
      );
    }
    this.log(`$ kubectl ${args.join(" ")}\n${stdout.trimEnd()}`);
    return stdout;
  }

  /** `kubectl -n cardano-test ...` */
  k(...args: string[]): Promise<string> {
    return this.kubectl("-n", NAMESPACE, ...args);
  }

  /** The install of docs/deploy.md ("Trying it without a chain"), verbatim. */
  async install(): Promise<void> {
    await this.kubectl("apply", "-f", "manifests/examples/dummy/crd.yaml");
    await this.kubectl(
      "wait",
      "--for=condition=Established",
      "crd/cardanoleaders.cardano.io",
      "--timeout=60s",
    );
    await this.kubectl("apply", "-k", "manifests/examples/dummy/");
  }

  /** `kubectl rollout status` of the StatefulSet, waited to completion. */
  async rolloutStatus(timeoutSeconds = 300): Promise<void> {
    await this.k("rollout", "status", `statefulset/${STATEFULSET}`, `--timeout=${timeoutSeconds}s`);
  }

  /** Every forging interval of every pod incarnation so far. */
  async intervals(): Promise<ForgingInterval[]> {
    return forgingIntervals(await readForgingRecords(this.nodes.records()), { until: nowMs() });
  }

  /** The pods whose node forges now (labels `<pod>/<uid8>`). */
  async forgers(): Promise<string[]> {
    return (await this.intervals()).filter((i) => i.endedBy === "open").map((i) => i.node);
  }

  /** Waits until exactly one node forges (and `ok` holds for its pod name); returns the pod name. */
  async singleForger(
    timeoutMs: number,
    ok: (pod: string) => boolean = () => true,
  ): Promise<string> {
    return await waitUntil("exactly one node to forge", async () => {
      const forgers = await this.forgers();
      const pod = forgers[0]?.split("/")[0];
      return forgers.length === 1 && pod !== undefined && ok(pod) ? pod : undefined;
    }, { timeoutMs, intervalMs: 100, detail: async () => `forgers: ${await this.forgers()}` });
  }

  /** `kubectl get cardanoleader`: the LEADER column. */
  async leaderShown(): Promise<string> {
    const out = await this.k("get", "cardanoleader", LEADER, "--no-headers");
    return out.trim().split(/\s+/)[1] ?? "";
  }

  /** The UID of pod `name` (kubectl get -o jsonpath). */
  async uid(name: string): Promise<string> {
    return (await this.k("get", "pod", name, "-o", "jsonpath={.metadata.uid}")).trim();
  }

  /** Runs `action` as one step and returns its figures; it ends once a node forges again. */
  async step(
    name: string,
    action: () => Promise<void>,
    settle: { timeoutMs: number } = { timeoutMs: 120_000 },
  ): Promise<StepFigures> {
    const leaderBefore = (await this.forgers())[0]?.split("/")[0];
    const start = nowMs();
    await action();
    const leaderAfter = await this.singleForger(settle.timeoutMs);
    const end = nowMs();
    const intervals = await this.intervals();
    const gaps = forgingGaps(intervals, start, end);
    const figures: StepFigures = {
      step: name,
      durationMs: end - start,
      overlapMs: totalOverlapMs(intervals),
      longestGapMs: Math.max(0, ...gaps.map((g) => g.end - g.start)),
      totalGapMs: gaps.reduce((sum, g) => sum + g.end - g.start, 0),
      leaderBefore,
      leaderAfter,
    };
    this.log(`step ${name}: ${JSON.stringify(figures)}`);
    return figures;
  }

  async stop(): Promise<void> {
    await this.nodes.stop();
    await this.cp.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** The shipped timings: LEASE_DURATION 15 + ACQUIRE_DELAY 2. */
export const LEASE_TAKEOVER_MS = 17_000;
/** The time a takeover may take beyond that: the watch, the acquire write, the promotion. */
export const TAKEOVER_MARGIN_MS = 5_000;

/**
 * The operator's steps on the installed, rolled-out example, in order: the first leader (shown by
 * `kubectl get cardanoleader`), `kubectl delete pod` of the leader (recreated with a new UID),
 * `kubectl rollout restart` waited with `kubectl rollout status`, `kubectl scale` to 1 and back to
 * 3, and the leader's node that stops reporting: nobody else may forge from then until the lease
 * has been taken over plus 30 s (the bound), then the node comes back. Throws when an invariant
 * of a step fails; returns each step's figures.
 */
export async function operatorSteps(cluster: DummyCluster): Promise<StepFigures[]> {
  // First leader: the Lease is created, so LEASE_DURATION + ACQUIRE_DELAY of probation.
  let leader = await cluster.singleForger(90_000);
  await waitUntil(
    "kubectl get cardanoleader to show the forger",
    async () => (await cluster.leaderShown()) === leader,
    20_000,
  );
  const figures: StepFigures[] = [];

  // 1. kubectl delete pod of the leader: recreated under the same name with a new UID.
  const oldUid = await cluster.uid(leader);
  const deleted = leader;
  figures.push(
    await cluster.step("delete leader pod", async () => {
      await cluster.k("delete", "pod", deleted);
    }),
  );
  await cluster.rolloutStatus();
  const newUid = await cluster.uid(deleted);
  if (newUid === oldUid) throw new Error("Cannot confirm the recreation: the pod kept its UID");
  leader = figures.at(-1)!.leaderAfter!;

  // 2. kubectl rollout restart, waited to completion.
  figures.push(
    await cluster.step("rolling restart", async () => {
      await cluster.k("rollout", "restart", `statefulset/${STATEFULSET}`);
      await cluster.rolloutStatus();
    }),
  );

  // 3. Scale to 1 and back to 3.
  figures.push(
    await cluster.step("scale to 1", async () => {
      await cluster.k("scale", `statefulset/${STATEFULSET}`, "--replicas=1");
      await waitUntil(
        "one pod left",
        async () => (await cluster.k("get", "pods", "-o", "name")).trim().split("\n").length === 1,
        120_000,
      );
    }),
  );
  if (figures.at(-1)!.leaderAfter !== `${STATEFULSET}-0`) {
    throw new Error(
      `After the scale to 1, ${figures.at(-1)!.leaderAfter} forges, not ${STATEFULSET}-0`,
    );
  }
  figures.push(
    await cluster.step("scale to 3", async () => {
      await cluster.k("scale", `statefulset/${STATEFULSET}`, "--replicas=3");
      await cluster.rolloutStatus();
    }),
  );

  // 4. The leader's node stops reporting: its pod stays and no API proof can come; the cut-off
  // leader stops at its renew deadline (it and its guard), and a standby takes over once the
  // guard's bound has passed, which FENCE=guard counts as proof.
  leader = figures.at(-1)!.leaderAfter!;
  const lost = cluster.nodes.running(NAMESPACE, leader)!;
  const node = cluster.nodes.node(lost.node);
  let cutAt = 0;
  figures.push(
    await cluster.step("node stops reporting", async () => {
      cutAt = nowMs();
      node.stopReporting();
      const until = cutAt + LEASE_TAKEOVER_MS + TAKEOVER_MARGIN_MS;
      for (;;) {
        const forgers = await cluster.forgers();
        if (forgers.some((f) => f !== lost.label)) {
          if (forgers.includes(lost.label)) throw new Error(`Two nodes forge: ${forgers}`);
          break;
        }
        if (nowMs() > until) {
          throw new Error(
            `Nobody took over within ${(until - cutAt) / 1000} s of the lost node (forging: ${
              forgers.join(", ") || "none"
            })`,
          );
        }
        await sleep(250);
      }
      node.resumeReporting();
    }, { timeoutMs: 180_000 }),
  );
  await cluster.rolloutStatus();

  return figures;
}
