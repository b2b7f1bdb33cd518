/**
 * The operator commands' parsing (lib/core/cli/operate_args.ts) and the pure picture and checks
 * behind `status` and `handover` (lib/cli/status_view.ts).
 */

import assert from "node:assert/strict";
import { parseDuration, prepareOperate } from "../../../lib/core/cli/operate_args.ts";
import {
  planHandover,
  planPrefer,
  renderStatus,
  type StatusInputs,
  statusModel,
} from "../../../lib/cli/status_view.ts";
import type { HandoverStatus, ReplicaEntry } from "../../../lib/kube/cardano_leader.ts";

const ENV = { HOME: "/home/op" };

Deno.test("the kubeconfig comes from --kubeconfig, else KUBECONFIG's first entry, else ~/.kube/config; the transport from KUBE_TRANSPORT", () => {
  const of = (args: string[], env: Record<string, string>) => {
    const p = prepareOperate("status", args, env, "/work");
    assert.equal(p.kind, "run");
    return p.kind === "run" ? p : undefined!;
  };
  assert.equal(of([], ENV).kube?.kubeconfig, "/home/op/.kube/config");
  assert.equal(of([], { ...ENV, KUBECONFIG: "a.yaml:b.yaml" }).kube?.kubeconfig, "/work/a.yaml");
  const p = of(["--kubeconfig=k", "--context", "prod", "-n", "cardano"], ENV);
  assert.deepEqual(p.kube, { kubeconfig: "/work/k", context: "prod" });
  assert.deepEqual(p.grants, { read: ["/work/k"] });
  assert.equal(p.options.target.namespace, "cardano");
  assert.equal(p.options.target.transport, "deno");
  assert.equal(of([], { ...ENV, KUBE_TRANSPORT: "undici" }).options.target.transport, "undici");
  const bad = prepareOperate("status", [], { ...ENV, KUBE_TRANSPORT: "h2" }, "/work");
  assert.equal(bad.kind, "usage");
  if (bad.kind === "usage") {
    assert.match(bad.message, /KUBE_TRANSPORT="h2": must be one of deno, undici/);
  }
});

Deno.test("usage errors name the problem; --help prints each command's help", () => {
  const cases: [string, string[], RegExp][] = [
    ["pause", [], /--reason TEXT is required/],
    ["pause", ["--reason", "x", "--for", "soon"], /--for soon is not a duration/],
    ["handover", ["--timeout", "-1s"], /--timeout -1s is not a duration/],
    ["status", ["--to", "p"], /--to is not an option of status/],
    ["resume", ["extra"], /unknown argument "extra"/],
    ["status", ["--output", "yaml"], /--output is "yaml"/],
    ["handover", ["--to", "a", "--to", "b"], /--to is given twice/],
  ];
  for (const [command, args, message] of cases) {
    const p = prepareOperate(command as "status", args, ENV, "/");
    assert.equal(p.kind, "usage", `${command} ${args.join(" ")}`);
    if (p.kind === "usage") assert.match(p.message, message);
  }
  for (const command of ["status", "handover", "pause", "resume"] as const) {
    const p = prepareOperate(command, ["--help"], ENV, "/");
    assert.equal(p.kind, "help");
    if (p.kind === "help") assert.match(p.text, new RegExp(`^Usage: forge-manager ${command}`));
  }
});

Deno.test("durations: ms, s, m, h, plain seconds; nothing else", () => {
  assert.equal(parseDuration("1500ms"), 1500);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("30"), 30_000);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("1.5h"), 5_400_000);
  for (const bad of ["", "0s", "s", "1d", "-1s", "1 m"]) {
    assert.equal(parseDuration(bad), undefined, bad);
  }
});

const NOW = Date.parse("2026-01-01T12:00:00Z");
const iso = (ago: number) => new Date(NOW - ago).toISOString();
function entry(pod: string, change: Partial<ReplicaEntry> = {}): ReplicaEntry {
  return {
    identity: `${pod}_x`,
    phase: "standby",
    leader: false,
    forging: false,
    nodeFound: true,
    fence: "idle",
    reason: "startup",
    since: iso(60_000),
    heartbeat: iso(1_000),
    ...change,
  };
}
function inputs(change: Partial<StatusInputs> = {}): StatusInputs {
  return {
    namespace: "cardano",
    leaseName: "cardano-node-leader",
    lease: { holder: "p-0_x", acquireTime: iso(120_000), renewTime: iso(500), transitions: 3 },
    spec: {},
    replicas: {
      "p-0": entry("p-0", { phase: "forging", leader: true, forging: true, guard: "armed" }),
      "p-1": entry("p-1"),
      "p-2": entry("p-2"),
    },
    pods: { "p-0": { ready: true }, "p-1": { ready: true }, "p-2": { ready: true } },
    ...change,
  };
}

Deno.test("a handover is refused with a reason for each unmet condition", () => {
  const plan = (i: StatusInputs, to?: string) => planHandover(statusModel(i, NOW), to);
  assert.deepEqual(plan(inputs(), "p-2"), { ok: true, from: "p-0", to: "p-2" });
  assert.deepEqual(plan(inputs()), { ok: true, from: "p-0", to: "p-1" });
  const refused: [StatusInputs, string | undefined, RegExp][] = [
    [inputs({ lease: { holder: "", transitions: 3 } }), "p-1", /there is no leader/],
    [inputs({ spec: { pause: { reason: "upgrade", by: "a", at: iso(0) } } }), "p-1", /paused by a/],
    [inputs(), "p-0", /p-0 is the leader already/],
    [inputs(), "p-9", /p-9 is not running forge-manager/],
    [
      inputs({ pods: { "p-0": { ready: true }, "p-1": { ready: false } } }),
      "p-1",
      /p-1 is not ready/,
    ],
    [inputs({ pods: { "p-0": { ready: true } } }), "p-1", /p-1 has no Pod/],
    [
      inputs({
        replicas: { ...inputs().replicas, "p-1": entry("p-1", { heartbeat: iso(31_000) }) },
      }),
      "p-1",
      /not running forge-manager/,
    ],
    [
      inputs({
        replicas: { ...inputs().replicas, "p-1": entry("p-1", { phase: "stepped_aside" }) },
      }),
      "p-1",
      /stepping aside/,
    ],
    [
      inputs({ pods: { "p-0": { ready: true } } }),
      undefined,
      /no standby is ready: p-1 has no Pod; p-2/,
    ],
  ];
  for (const [i, to, reason] of refused) {
    const p = plan(i, to);
    assert.equal(p.ok, false, String(reason));
    if (!p.ok) assert.match(p.reason, reason);
  }
  // A pause whose until has passed does not refuse.
  const expired = { pause: { reason: "x", by: "a", at: iso(60_000), until: iso(1) } };
  assert.equal(plan(inputs({ spec: expired }), "p-1").ok, true);
});

Deno.test("the status table shows the holder, the pause and one row per replica", () => {
  const text = renderStatus(
    statusModel(inputs({ spec: { pause: { reason: "kes", by: "alice", at: iso(5_000) } } }), NOW),
    NOW,
  );
  assert.match(
    text,
    /^Lease cardano\/cardano-node-leader: held by p-0 \(p-0_x\), term 2m00s, renewed 0\.5s ago, 3 transitions$/m,
  );
  assert.match(text, /^Pause: by alice at 2026-01-01T11:59:55\.000Z, until resumed: kes$/m);
  assert.match(
    text,
    /^p-0\s+yes\s+yes\s+yes\s+found\s+-\s+idle\s+armed\s+forging\s+1m00s\s+startup\s+1\.0s ago$/m,
  );
  assert.equal(text.split("\n").filter((l) => l.startsWith("p-")).length, 3);
  // An older sidecar's entry has no guard: "-".
  assert.match(text, /^p-1\s+yes\s+no\s+no\s+found\s+-\s+idle\s+-\s+standby/m);
});

Deno.test("status shows each replica's tip lag, and a handover refuses a lagging target", () => {
  const replicas = {
    ...inputs().replicas,
    "p-1": entry("p-1", { sync: "lagging", tipLagSlots: 412 }),
    "p-2": entry("p-2", { sync: "unknown" }),
  };
  const model = statusModel(inputs({ replicas }), NOW);
  const text = renderStatus(model, NOW);
  assert.match(text, /^POD\s+READY\s+LEADER\s+FORGING\s+NODE\s+SYNC\s+FENCE/m);
  assert.match(text, /^p-1\s+yes\s+no\s+no\s+found\s+lagging 412\s+idle/m);
  assert.match(text, /^p-2\s+yes\s+no\s+no\s+found\s+unknown\s+idle/m);
  const lagging = planHandover(model, "p-1");
  assert.equal(lagging.ok, false);
  assert.match(!lagging.ok ? lagging.reason : "", /p-1's node lags the chain \(412 slots/);
  // Unknown is no refusal, but it is said.
  assert.deepEqual(planHandover(model, "p-2"), {
    ok: true,
    from: "p-0",
    to: "p-2",
    note: "p-2's sync is unknown (its node's metrics could not be read)",
  });
  // Without --to: a synced standby first, never a lagging one.
  const synced = { ...replicas, "p-3": entry("p-3", { sync: "synced", tipLagSlots: 2 }) };
  const pods = { ...inputs().pods, "p-3": { ready: true } };
  assert.deepEqual(planHandover(statusModel(inputs({ replicas: synced, pods }), NOW), undefined), {
    ok: true,
    from: "p-0",
    to: "p-3",
  });
  assert.deepEqual(planHandover(model, undefined), {
    ok: true,
    from: "p-0",
    to: "p-2",
    note: "p-2's sync is unknown (its node's metrics could not be read)",
  });
});

Deno.test("on the coordination cluster each row is a cluster: its candidate, state, priority, region", () => {
  const cluster = (
    name: string,
    fields: Record<string, unknown>,
    change: Partial<ReplicaEntry> = {},
  ) =>
    entry(name, {
      identity: `${name}_x`,
      phase: "awaiting_node",
      reason: "candidate",
      ...change,
      ...fields,
    } as Partial<ReplicaEntry>);
  const i = inputs({
    leaseName: "cardano-node-leader",
    lease: { holder: "eu-west_x", acquireTime: iso(120_000), renewTime: iso(500), transitions: 3 },
    replicas: {
      "eu-west": cluster(
        "eu-west",
        {
          pod: "cardano-producer-0",
          ready: true,
          state: "Priority-based",
          priority: 1,
          region: "eu",
        },
        { phase: "forging", leader: true, forging: true },
      ),
      "us-east": cluster("us-east", {
        pod: "cardano-producer-2",
        ready: true,
        state: "Priority-based",
        priority: 2,
        region: "us",
      }),
      "ap-south": cluster("ap-south", {
        pod: "cardano-producer-1",
        ready: true,
        state: "Disabled",
        priority: 3,
        region: "ap",
      }),
    },
    pods: {
      "eu-west": { ready: true },
      "us-east": { ready: true },
      "ap-south": { ready: true },
    },
  });
  const model = statusModel(i, NOW);
  const text = renderStatus(model, NOW);
  assert.match(text, /held by eu-west \(eu-west_x\)/);
  assert.match(text, /^CLUSTER\s+CANDIDATE\s+STATE\s+PRIORITY\s+REGION\s+READY/m);
  assert.match(text, /^us-east\s+cardano-producer-2\s+Priority-based\s+2\s+us\s+yes/m);
  // A ready cluster is a handover target; a Disabled one is refused with its reason.
  assert.deepEqual(planHandover(model, "us-east"), { ok: true, from: "eu-west", to: "us-east" });
  assert.deepEqual(planHandover(model, "ap-south"), {
    ok: false,
    reason: "cluster ap-south is Disabled",
  });
  const notReady = statusModel({ ...i, pods: { ...i.pods, "us-east": { ready: false } } }, NOW);
  assert.deepEqual(planHandover(notReady, "us-east"), {
    ok: false,
    reason: "cluster us-east's local leader is not ready",
  });
});

Deno.test("the last handover names its target, and is shown done once the target wrote so", () => {
  const at = iso(3_000);
  const shown = (result: HandoverStatus["result"]) =>
    renderStatus(
      statusModel(inputs({ lastHandover: { id: "h-1", to: "p-0", result, at } }), NOW),
      NOW,
    )
      .split("\n").find((l) => l.startsWith("Last handover"));
  assert.equal(shown("released"), `Last handover: h-1 to p-0: released at ${at}`);
  assert.equal(shown("done"), `Last handover: h-1 to p-0: done at ${at}`);
  const own = renderStatus(
    statusModel(
      inputs({ lastHandover: { id: "sync-x-3", to: "p-1", reason: "sync", result: "done", at } }),
      NOW,
    ),
    NOW,
  );
  assert.match(own, /^Last handover: sync-x-3 to p-1 \(sync\): done at /m);
});

Deno.test("prefer takes one pod or --clear, and says what the return waits for", () => {
  const parse = (...args: string[]) => prepareOperate("prefer", args, { HOME: "/h" }, "/w");
  const run = parse("p-1", "--dry-run");
  assert.equal(run.kind, "run");
  assert.deepEqual(run.kind === "run" && run.options, {
    command: "prefer",
    target: {
      kubeconfig: "/h/.kube/config",
      lease: "cardano-node-leader",
      cardanoLeader: "cardano-leader",
      transport: "deno",
    },
    pod: "p-1",
    clear: false,
    dryRun: true,
    output: "text",
  });
  for (
    const [args, problem] of [
      [[], /give the pod to prefer, or --clear/],
      [["p-1", "p-2"], /give one pod, not p-1 p-2/],
      [["p-1", "--clear"], /give POD or --clear, not both/],
      [["p-1", "--to", "x"], /--to is not an option of prefer/],
    ] as const
  ) {
    const p = parse(...args);
    assert.equal(p.kind, "usage", args.join(" "));
    assert.match(p.kind === "usage" ? p.message : "", problem);
  }
  assert.equal(prepareOperate("handover", ["p-1"], {}, "/w").kind, "usage", "a pod without --to");

  const model = (change: Partial<StatusInputs> = {}) => statusModel(inputs(change), NOW);
  assert.deepEqual(planPrefer(model(), "p-9"), {
    ok: false,
    reason: "p-9 is not a replica: no Pod and no replica entry of that name",
  });
  assert.deepEqual(planPrefer(model({ spec: { preferredReplica: "p-1" } }), "p-1"), {
    ok: false,
    reason: "p-1 is preferred already",
  });
  assert.deepEqual(planPrefer(model(), undefined), {
    ok: false,
    reason: "no preferred replica is set",
  });
  const plan = (pod: string, change: Partial<StatusInputs> = {}) => {
    const p = planPrefer(model(change), pod);
    return p.ok ? p.now : p.reason;
  };
  assert.equal(plan("p-0"), "it leads now");
  const replicas = (entryOfP1: Partial<ReplicaEntry>) => ({
    replicas: { ...inputs().replicas, "p-1": entry("p-1", entryOfP1) },
  });
  assert.match(
    plan("p-1", replicas({ sync: "synced", tipLagSlots: 2 })),
    /stands by ready and synced/,
  );
  assert.match(
    plan("p-1", replicas({ sync: "lagging", tipLagSlots: 700 })),
    /lags the chain now \(700 slots\)/,
  );
  assert.match(plan("p-1", replicas({ sync: "unknown" })), /its sync is unknown/);
  // A Pod that exists without an entry yet may be preferred.
  const pods = { ...inputs().pods, "p-7": { ready: false } };
  assert.match(plan("p-7", { pods }), /runs no forge-manager now/);
  const text = renderStatus(model({ spec: { preferredReplica: "p-1" } }), NOW);
  assert.match(text, /^Preferred: p-1$/m);
  assert.match(renderStatus(model(), NOW), /^Preferred: none$/m);
});

Deno.test("status shows the time to the pool's next leader slot, from the fresh entries", () => {
  const at = new Date(NOW + 180_000).toISOString();
  const replicas = {
    ...inputs().replicas,
    "p-0": entry("p-0", { phase: "forging", leader: true, forging: true, nextSlotAt: at }),
    // A stale entry's older view does not count.
    "p-2": entry("p-2", {
      heartbeat: iso(40_000),
      nextSlotAt: new Date(NOW + 5_000).toISOString(),
    }),
  };
  const text = renderStatus(statusModel(inputs({ replicas }), NOW), NOW);
  assert.match(
    text,
    new RegExp(`^Next leader slot: in 3m00s \\(${at.replace(/\./g, "\\.")}\\)$`, "m"),
  );
  assert.doesNotMatch(renderStatus(statusModel(inputs(), NOW), NOW), /Next leader slot/);
});
