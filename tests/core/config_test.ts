import assert from "node:assert/strict";
import {
  CONFIG_DEFAULTS,
  ConfigError,
  guardBoundMs,
  metricsHostPort,
  MIN_STOP_BUDGET_MS,
  parseConfig,
  usesPodFence,
} from "../../lib/core/config.ts";
import { parseGuardConfig } from "../../lib/core/guard_config.ts";

/** The smallest valid environment: in a pod, POD_NAME comes from the downward API. */
const BASE = { POD_NAME: "cardano-producer-0", POD_UID: "5e1a0c52-2b7e-4f0e-8d1c-3f4b5a6c7d8e" };

/** The defaults the seed README documents (its "Environment Variables" table). */
const README_DEFAULTS = {
  NAMESPACE: "default",
  NODE_SOCKET: "/ipc/node.socket",
  SOURCE_KES_KEY: "/secrets/kes.skey",
  TARGET_KES_KEY: "/ipc/kes.skey",
  SOURCE_VRF_KEY: "/secrets/vrf.skey",
  TARGET_VRF_KEY: "/ipc/vrf.skey",
  SOURCE_OP_CERT: "/secrets/node.cert",
  TARGET_OP_CERT: "/ipc/node.cert",
  LEASE_NAME: "cardano-node-leader",
  LEASE_DURATION: "15",
  SLEEP_INTERVAL: "5",
  METRICS_PORT: "8000",
  START_AS_NON_PRODUCING: "true",
};

/** The problems a configuration is refused for (fails the test if it is accepted). */
function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    parseConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    for (const problem of err.problems) assert.ok(err.message.includes(problem));
    return err.problems;
  }
  assert.fail(`accepted ${JSON.stringify(env)}`);
}

Deno.test("the defaults equal the seed README's", () => {
  for (const [name, value] of Object.entries(README_DEFAULTS)) {
    assert.equal(CONFIG_DEFAULTS[name as keyof typeof CONFIG_DEFAULTS], value, name);
  }
  const config = parseConfig(BASE);
  assert.equal(config.namespace, "default");
  assert.equal(config.podName, "cardano-producer-0");
  assert.equal(config.nodeSocket, "/ipc/node.socket");
  assert.deepEqual(config.credentials, {
    kes: { source: "/secrets/kes.skey", target: "/ipc/kes.skey" },
    vrf: { source: "/secrets/vrf.skey", target: "/ipc/vrf.skey" },
    opcert: { source: "/secrets/node.cert", target: "/ipc/node.cert" },
  });
  assert.equal(config.leaseName, "cardano-node-leader");
  assert.equal(config.leaseDurationMs, 15_000);
  assert.equal(config.sleepIntervalMs, 5_000);
  assert.equal(config.metricsPort, 8000);
  assert.equal(config.startAsNonProducing, true);
  assert.equal(config.kubeTransport, "deno", "Deno's fetch unless KUBE_TRANSPORT says otherwise");
});

Deno.test("the defaults beyond the README are safe and in milliseconds", () => {
  const config = parseConfig(BASE);
  assert.equal(config.renewDeadlineMs, 10_000);
  assert.equal(config.acquireDelayMs, 2_000);
  // Renews every min(SLEEP_INTERVAL, RENEW_DEADLINE / 4).
  assert.equal(config.retryPeriodMs, 2_500);
  assert.ok(
    config.leaseDurationMs + config.acquireDelayMs - config.renewDeadlineMs >= MIN_STOP_BUDGET_MS,
  );
  assert.equal(config.socketWaitTimeoutMs, 600_000);
  assert.equal(config.metricsHost, "0.0.0.0");
  assert.equal(config.disableSocketCheck, false);
  assert.equal(config.logLevel, "info");
  assert.equal(config.fence, "pod");
  assert.equal(config.kubeconfig, undefined);
  assert.equal(config.podUid, BASE.POD_UID);
  assert.equal(config.nodeProcessName, "cardano-node");
  assert.equal(config.nodeContainerName, "cardano-node");
  assert.equal(config.cardanoLeaderName, "cardano-leader");
  assert.equal(config.network, "mainnet");
  assert.equal(config.shelleyGenesisFile, undefined);
  assert.equal(config.poolId, undefined);
  assert.equal(config.nodeMetricsUrl, "http://127.0.0.1:12798/metrics");
  assert.equal(config.maxTipLagSlots, 300);
  assert.equal(config.preferredStableMs, 60_000);
  assert.equal(config.leaderScheduleFile, undefined);
  assert.equal(config.leaderSlotMarginMs, 5_000);
  assert.equal(config.shutdownSlotWaitMs, 20_000);
});

Deno.test("the sync, preferred-replica and schedule settings are read as written", () => {
  const config = parseConfig({
    ...BASE,
    MAX_TIP_LAG_SLOTS: "120",
    PREFERRED_STABLE: "0",
    LEADER_SCHEDULE_FILE: "/schedule/./slots",
    LEADER_SLOT_MARGIN: "2.5",
    SHUTDOWN_SLOT_WAIT: "45",
  });
  assert.equal(config.maxTipLagSlots, 120);
  assert.equal(config.preferredStableMs, 0);
  assert.equal(config.leaderScheduleFile, "/schedule/slots");
  assert.equal(config.leaderSlotMarginMs, 2_500);
  assert.equal(config.shutdownSlotWaitMs, 45_000);
});

Deno.test("the KES settings are read as the operator writes them", () => {
  const config = parseConfig({
    ...BASE,
    NETWORK: "Preprod",
    SHELLEY_GENESIS_FILE: "/config/./shelley-genesis.json",
    POOL_ID: "pool1pu5jlj4q9w9jlxeu370a3c9myx47md5j5m2str0naunn2q3lkdy",
    NODE_METRICS_URL: "http://localhost:9100/metrics",
  });
  assert.equal(config.network, "preprod");
  assert.equal(config.shelleyGenesisFile, "/config/shelley-genesis.json");
  assert.equal(config.poolId, "0f292fcaa02b8b2f9b3c8f9fd8e0bb21abedb692a6d5058df3ef2735");
  assert.equal(config.nodeMetricsUrl, "http://localhost:9100/metrics");
  assert.equal(metricsHostPort(config.nodeMetricsUrl), "localhost:9100");
  assert.equal(metricsHostPort("https://node.example"), "node.example:443");
  assert.equal(metricsHostPort("ftp://node/metrics"), undefined);
});

Deno.test("empty and blank variables fall back to their defaults", () => {
  const config = parseConfig({ ...BASE, LEASE_DURATION: "", METRICS_PORT: "   ", FENCE: "" });
  assert.equal(config.leaseDurationMs, 15_000);
  assert.equal(config.metricsPort, 8000);
  assert.equal(config.fence, "pod");
});

Deno.test("accepted values are trimmed and read case-insensitively where documented", () => {
  const config = parseConfig({
    ...BASE,
    LEASE_DURATION: " 20 ",
    RENEW_DEADLINE: "12.5",
    SLEEP_INTERVAL: "1",
    ACQUIRE_DELAY: "0",
    LOG_LEVEL: "DEBUG",
    FENCE: "Off",
    START_AS_NON_PRODUCING: "no",
    DISABLE_SOCKET_CHECK: "1",
    KUBECONFIG: "/etc/forge/kubeconfig",
    KUBE_TRANSPORT: " Undici ",
    POD_UID: "0b6b8e0e-1d4f-4c1e-9f0a-000000000000",
  });
  assert.equal(config.leaseDurationMs, 20_000);
  assert.equal(config.renewDeadlineMs, 12_500);
  assert.equal(config.retryPeriodMs, 1_000);
  assert.equal(config.logLevel, "debug");
  assert.equal(config.fence, "off");
  assert.equal(config.startAsNonProducing, false);
  assert.equal(config.disableSocketCheck, true);
  assert.equal(config.kubeconfig, "/etc/forge/kubeconfig");
  assert.equal(config.kubeTransport, "undici");
  assert.equal(config.podUid, "0b6b8e0e-1d4f-4c1e-9f0a-000000000000");
});

Deno.test("POD_NAME is required", () => {
  for (const env of [{}, { POD_NAME: "" }, { POD_NAME: "  " }]) {
    const problems = problemsOf(env);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^POD_NAME="": is required/);
  }
});

/** Each refusal: why, the environment on top of BASE, and how the problem must start. */
const REFUSED: { why: string; env: Record<string, string>; problem: string }[] = [
  {
    why: "a non-numeric lease duration",
    env: { LEASE_DURATION: "fifteen" },
    problem: 'LEASE_DURATION="fifteen": must be a number of seconds',
  },
  {
    why: "a negative acquire delay",
    env: { ACQUIRE_DELAY: "-1" },
    problem: 'ACQUIRE_DELAY="-1": must be a number of seconds',
  },
  {
    why: "a fractional lease duration",
    env: { LEASE_DURATION: "15.5" },
    problem: 'LEASE_DURATION="15.5": must be a whole number of seconds',
  },
  {
    why: "a lease duration below 2 s",
    env: { LEASE_DURATION: "1" },
    problem: 'LEASE_DURATION="1": must be at least 2 s',
  },
  {
    why: "a renew deadline equal to the lease duration",
    env: { RENEW_DEADLINE: "15" },
    problem: "RENEW_DEADLINE=15: must be below LEASE_DURATION=15",
  },
  {
    why: "a renew deadline above the lease duration",
    env: { RENEW_DEADLINE: "20" },
    problem: "RENEW_DEADLINE=20: must be below LEASE_DURATION=15",
  },
  {
    why: "too small a stop budget",
    env: { RENEW_DEADLINE: "13", ACQUIRE_DELAY: "0" },
    problem: "RENEW_DEADLINE=13: must leave a leader at least 3 s to stop forging",
  },
  {
    why: "a sleep interval not below the lease duration",
    env: { SLEEP_INTERVAL: "15" },
    problem: 'SLEEP_INTERVAL="15": must be below LEASE_DURATION=15',
  },
  {
    why: "a target equal to its source",
    env: { TARGET_KES_KEY: "/secrets/kes.skey" },
    problem: 'TARGET_KES_KEY="/secrets/kes.skey": is the same file as SOURCE_KES_KEY',
  },
  {
    why: "two targets the same",
    env: { TARGET_OP_CERT: "/ipc/vrf.skey" },
    problem: 'TARGET_OP_CERT="/ipc/vrf.skey": is the same file as TARGET_VRF_KEY',
  },
  {
    why: "a target equal to another credential's source",
    env: { TARGET_VRF_KEY: "/secrets/kes.skey" },
    problem: 'TARGET_VRF_KEY="/secrets/kes.skey": is the same file as SOURCE_KES_KEY',
  },
  {
    why: "the node socket at a credential's path",
    env: { NODE_SOCKET: "/ipc/kes.skey" },
    problem: 'NODE_SOCKET="/ipc/kes.skey": is the same file as TARGET_KES_KEY',
  },
  {
    why: "a relative target",
    env: { TARGET_OP_CERT: "ipc/node.cert" },
    problem: 'TARGET_OP_CERT="ipc/node.cert": must be an absolute path',
  },
  {
    why: "a relative source",
    env: { SOURCE_VRF_KEY: "./vrf.skey" },
    problem: 'SOURCE_VRF_KEY="./vrf.skey": must be an absolute path',
  },
  {
    why: "a relative node socket",
    env: { NODE_SOCKET: "node.socket" },
    problem: 'NODE_SOCKET="node.socket": must be an absolute path',
  },
  {
    why: "a relative kubeconfig",
    env: { KUBECONFIG: "~/.kube/config" },
    problem: 'KUBECONFIG="~/.kube/config": must be an absolute path',
  },
  {
    why: "an unknown Kubernetes transport",
    env: { KUBE_TRANSPORT: "http2" },
    problem: 'KUBE_TRANSPORT="http2": must be one of deno, undici',
  },
  {
    why: "metrics port 0",
    env: { METRICS_PORT: "0" },
    problem: 'METRICS_PORT="0": must be a TCP port from 1 to 65535',
  },
  {
    why: "metrics port 65536",
    env: { METRICS_PORT: "65536" },
    problem: 'METRICS_PORT="65536": must be a TCP port from 1 to 65535',
  },
  {
    why: "a non-numeric metrics port",
    env: { METRICS_PORT: "80a" },
    problem: 'METRICS_PORT="80a": must be a TCP port from 1 to 65535',
  },
  {
    why: "an unknown log level",
    env: { LOG_LEVEL: "verbose" },
    problem: 'LOG_LEVEL="verbose": must be one of debug, info, warn, error',
  },
  {
    why: "an unknown fence",
    env: { FENCE: "maybe" },
    problem: 'FENCE="maybe": must be pod, guard or off',
  },
  {
    why: "FENCE=guard without a guard",
    env: { FENCE: "guard" },
    problem: 'GUARD_SOCKET="": is required with FENCE=guard',
  },
  {
    why: "a guard whose bound leaves less than 2 s before the earliest takeover",
    env: { GUARD_SOCKET: "/run/guard/guard.sock", GUARD_REACTION: "6" },
    problem: 'GUARD_REACTION="6": the guard\'s bound RENEW_DEADLINE (10) + GUARD_REACTION must ' +
      "stay at least 2 s below LEASE_DURATION (15) + ACQUIRE_DELAY (2)",
  },
  {
    why: "a guard socket that is a key file",
    env: { GUARD_SOCKET: "/ipc/kes.skey" },
    problem: 'GUARD_SOCKET="/ipc/kes.skey": must differ from every credential file and NODE_SOCKET',
  },
  {
    why: "a relative guard socket",
    env: { GUARD_SOCKET: "guard.sock" },
    problem: 'GUARD_SOCKET="guard.sock": must be an absolute path',
  },
  {
    why: "a guard reaction beyond 10 s",
    env: { GUARD_SOCKET: "/run/guard/guard.sock", GUARD_REACTION: "11" },
    problem: 'GUARD_REACTION="11": must be at most 10 s',
  },
  {
    why: "a node process name with '/'",
    env: { NODE_PROCESS_NAME: "/usr/bin/cardano-node" },
    problem: 'NODE_PROCESS_NAME="/usr/bin/cardano-node": must be a process name as in ' +
      "/proc/PID/comm (no '/', at most 15 characters)",
  },
  {
    why: "a node process name longer than /proc/PID/comm holds",
    env: { NODE_PROCESS_NAME: "cardano-node-1234" },
    problem: 'NODE_PROCESS_NAME="cardano-node-1234": must be a process name',
  },
  {
    why: "a node container name that is not a container name",
    env: { NODE_CONTAINER_NAME: "Cardano_Node" },
    problem: 'NODE_CONTAINER_NAME="Cardano_Node": must be a container name (lower-case DNS label',
  },
  {
    why: "a boolean that is neither true nor false",
    env: { START_AS_NON_PRODUCING: "maybe" },
    problem: 'START_AS_NON_PRODUCING="maybe": must be true or false',
  },
  {
    why: "a pod name with an underscore (identities are <pod>_<suffix>)",
    env: { POD_NAME: "pod_0" },
    problem: 'POD_NAME="pod_0": must be a pod name',
  },
  {
    why: "a namespace that is not a DNS label",
    env: { NAMESPACE: "Cardano.Test" },
    problem: 'NAMESPACE="Cardano.Test": must be a Kubernetes namespace name',
  },
  {
    why: "an unknown network",
    env: { NETWORK: "sanchonet" },
    problem: 'NETWORK="sanchonet": must be one of mainnet, preprod, preview',
  },
  {
    why: "a relative shelley genesis path",
    env: { SHELLEY_GENESIS_FILE: "shelley-genesis.json" },
    problem: 'SHELLEY_GENESIS_FILE="shelley-genesis.json": must be an absolute path',
  },
  {
    why: "a pool id with a typo",
    env: { POOL_ID: "pool1pu5jlj4q9w9jlxeu370a3c9myx47md5j5m2str0naunn2q3lkdx" },
    problem: 'POOL_ID="pool1pu5jlj4q9w9jlxeu370a3c9myx47md5j5m2str0naunn2q3lkdx": must be a ' +
      "pool id, 56 hex digits or bech32 pool1... (expected 56 hex digits or bech32 pool1...; " +
      "Cannot decode bech32: the checksum is wrong (a typo?))",
  },
  {
    why: "a pool id of the wrong length",
    env: { POOL_ID: "0f292fcaa02b" },
    problem: 'POOL_ID="0f292fcaa02b": must be a pool id, 56 hex digits or bech32 pool1... ' +
      "(12 hex digits, expected 56)",
  },
  {
    why: "a node metrics URL that is not http",
    env: { NODE_METRICS_URL: "127.0.0.1:12798" },
    problem: 'NODE_METRICS_URL="127.0.0.1:12798": must be an http:// URL with a host',
  },
  {
    why: "a tip lag that is not a whole number of slots",
    env: { MAX_TIP_LAG_SLOTS: "2.5" },
    problem: 'MAX_TIP_LAG_SLOTS="2.5": must be a whole number from 1 to 1000000000',
  },
  {
    why: "a tip lag of 0 slots (the tip is the last block's slot: never the current one)",
    env: { MAX_TIP_LAG_SLOTS: "0" },
    problem: 'MAX_TIP_LAG_SLOTS="0": must be a whole number from 1 to 1000000000',
  },
  {
    why: "a relative leader schedule file",
    env: { LEADER_SCHEDULE_FILE: "slots.json" },
    problem: 'LEADER_SCHEDULE_FILE="slots.json": must be an absolute path',
  },
  {
    why: "a slot margin beyond ten minutes",
    env: { LEADER_SLOT_MARGIN: "601" },
    problem: 'LEADER_SLOT_MARGIN="601": must be at most 600 s',
  },
  {
    why: "a shutdown wait that is not a duration",
    env: { SHUTDOWN_SLOT_WAIT: "soon" },
    problem: 'SHUTDOWN_SLOT_WAIT="soon": must be a number of seconds',
  },
  {
    why: "a stable period that is not a duration",
    env: { PREFERRED_STABLE: "1m" },
    problem: 'PREFERRED_STABLE="1m": must be a number of seconds',
  },
  {
    why: "a lease name that is not a DNS subdomain",
    env: { LEASE_NAME: "Leader Lease" },
    problem: 'LEASE_NAME="Leader Lease": must be a Kubernetes object name',
  },
];

for (const { why, env, problem } of REFUSED) {
  Deno.test(`refuses ${why}, naming the variable, its value and the rule`, () => {
    const problems = problemsOf({ ...BASE, ...env });
    assert.ok(problems.some((p) => p.startsWith(problem)), problems.join("\n"));
  });
}

Deno.test("reports every problem at once", () => {
  const problems = problemsOf({
    LEASE_DURATION: "fifteen",
    METRICS_PORT: "0",
    LOG_LEVEL: "verbose",
    FENCE: "maybe",
    NODE_PROCESS_NAME: "/usr/bin/cardano-node",
    TARGET_KES_KEY: "/secrets/kes.skey",
    TARGET_OP_CERT: "/ipc/vrf.skey",
    SOURCE_VRF_KEY: "secrets/vrf.skey",
  });
  const variables = problems.map((problem) => problem.slice(0, problem.indexOf("="))).sort();
  assert.deepEqual(variables, [
    "FENCE",
    "LEASE_DURATION",
    "LOG_LEVEL",
    "METRICS_PORT",
    "NODE_PROCESS_NAME",
    "POD_NAME",
    "SOURCE_VRF_KEY",
    "TARGET_KES_KEY",
    "TARGET_OP_CERT",
  ]);
});

Deno.test("a non-numeric duration is reported once, without follow-on timing complaints", () => {
  assert.deepEqual(problemsOf({ ...BASE, RENEW_DEADLINE: "ten" }), [
    'RENEW_DEADLINE="ten": must be a number of seconds',
  ]);
});

Deno.test("the refusal message lists each problem on its own line", () => {
  try {
    parseConfig({ METRICS_PORT: "x" });
    assert.fail("accepted");
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.name, "ConfigError");
    assert.equal(
      err.message,
      "Cannot start with this configuration:\n" +
        '  - POD_NAME="": is required (in a pod, set it from the downward API metadata.name)\n' +
        '  - METRICS_PORT="x": must be a TCP port from 1 to 65535',
    );
  }
});

Deno.test("the stop budget is accepted at exactly its minimum", () => {
  // 15 + 0 - 12 = 3 s.
  const config = parseConfig({ ...BASE, RENEW_DEADLINE: "12", ACQUIRE_DELAY: "0" });
  assert.equal(
    config.leaseDurationMs + config.acquireDelayMs - config.renewDeadlineMs,
    MIN_STOP_BUDGET_MS,
  );
});

Deno.test({
  name: "two spellings of the same target file are refused",
  fn() {
    for (const alias of ["/ipc/./kes.skey", "/ipc//kes.skey", "/ipc/../ipc/kes.skey"]) {
      const problems = problemsOf({ ...BASE, TARGET_VRF_KEY: alias });
      assert.ok(problems.some((p) => p.includes("same file as TARGET_KES_KEY")), alias);
    }
  },
});

Deno.test({
  name: "a lease duration beyond what a Lease can hold is refused",
  fn() {
    const problems = problemsOf({ ...BASE, LEASE_DURATION: "99999999999" });
    assert.ok(problems.some((p) => p.startsWith('LEASE_DURATION="99999999999": must be at most')));
  },
});

Deno.test("the pod fence needs POD_UID; FENCE=off does not", () => {
  const problems = problemsOf({ POD_NAME: "cardano-producer-0" });
  assert.ok(problems.some((p) => p.startsWith('POD_UID="": is required with FENCE=pod')));
  assert.equal(parseConfig({ POD_NAME: "cardano-producer-0", FENCE: "off" }).podUid, "");
});

Deno.test("FENCE=guard with a guard needs no POD_UID (a VM), and its bound fits the defaults", () => {
  const config = parseConfig({
    POD_NAME: "vm-a",
    FENCE: "guard",
    GUARD_SOCKET: "/run/forge-manager/guard.sock",
  });
  assert.equal(config.fence, "guard");
  assert.equal(config.guardSocket, "/run/forge-manager/guard.sock");
  assert.equal(config.guardReactionMs, 1000);
  assert.equal(guardBoundMs(config), 11_000);
  assert.equal(usesPodFence(config), false, "no pods to fence on a VM");
  assert.equal(usesPodFence({ ...config, podUid: "uid" }), true, "in a pod: API proofs too");
  // The bound is checked against every timing, not only the defaults: 20 + 2 - (15 + 3) = 4 s.
  assert.equal(
    parseConfig({
      POD_NAME: "vm-a",
      FENCE: "guard",
      GUARD_SOCKET: "/run/g.sock",
      LEASE_DURATION: "20",
      RENEW_DEADLINE: "15",
      GUARD_REACTION: "3",
    }).guardReactionMs,
    3000,
  );
});

Deno.test("the guard's own configuration: the sidecar's names, refused as a whole", () => {
  const config = parseGuardConfig({ GUARD_SOCKET: "/run/forge-manager/guard.sock" });
  assert.deepEqual(config, {
    socket: "/run/forge-manager/guard.sock",
    stateFile: "/run/forge-manager/guard-state.json",
    targets: ["/ipc/kes.skey", "/ipc/vrf.skey", "/ipc/node.cert"],
    nodeProcessName: "cardano-node",
    logLevel: "info",
  });
  assert.throws(
    () => parseGuardConfig({ TARGET_VRF_KEY: "/ipc/kes.skey", NODE_PROCESS_NAME: "a/b" }),
    (err: unknown) => {
      const problems = (err as ConfigError).problems;
      assert.ok(
        problems.some((p) => p.startsWith('GUARD_SOCKET="": is required')),
        problems.join(),
      );
      assert.ok(problems.some((p) => p.includes("must be three different files")));
      assert.ok(problems.some((p) => p.startsWith('NODE_PROCESS_NAME="a/b"')));
      return true;
    },
  );
});

Deno.test("with a KES agent the guard guards the sidecar's two files, and refuses a KES file", () => {
  const env = { GUARD_SOCKET: "/run/g.sock", KES_AGENT_SOCKET: "/ipc/kes-agent.socket" };
  const guard = parseGuardConfig(env);
  assert.deepEqual(guard.targets, ["/ipc/vrf.skey", "/ipc/node.cert"]);
  // The same set the sidecar says in its hello, so the guard accepts it.
  const sidecar = parseConfig({ ...BASE, ...env, FENCE: "guard" });
  assert.deepEqual(Object.values(sidecar.credentials).map((c) => c.target), guard.targets);
  assert.throws(
    () => parseGuardConfig({ ...env, TARGET_KES_KEY: "/ipc/kes.skey" }),
    (err: unknown) => {
      assert.deepEqual((err as ConfigError).problems, [
        'TARGET_KES_KEY="/ipc/kes.skey": must not be set with KES_AGENT_SOCKET (the node takes ' +
        "its KES key from the agent; forge-manager then manages only the VRF key and the " +
        "certificate)",
      ]);
      return true;
    },
  );
});

Deno.test("decoys are on by default, and off when asked or when the node does not boot on our files", () => {
  assert.equal(parseConfig(BASE).decoys, true);
  assert.equal(parseConfig({ ...BASE, DECOY_CREDENTIALS: "false" }).decoys, false);
  assert.equal(parseConfig({ ...BASE, DECOY_CREDENTIALS: "Off" }).decoys, false);
  // START_AS_NON_PRODUCING=false places nothing at boot: the default gives way...
  const plain = parseConfig({ ...BASE, START_AS_NON_PRODUCING: "false" });
  assert.equal(plain.decoys, false);
  assert.equal(plain.startAsNonProducing, false);
  // ...but an explicit request is a contradiction, named with the rule.
  assert.deepEqual(
    problemsOf({ ...BASE, START_AS_NON_PRODUCING: "false", DECOY_CREDENTIALS: "true" }),
    [
      'DECOY_CREDENTIALS="true": needs START_AS_NON_PRODUCING=true (decoys are what a ' +
      "non-producing node boots on); set DECOY_CREDENTIALS=false",
    ],
  );
  assert.deepEqual(problemsOf({ ...BASE, DECOY_CREDENTIALS: "maybe" }), [
    'DECOY_CREDENTIALS="maybe": must be true or false',
  ]);
});

Deno.test("with KES_AGENT_SOCKET only the VRF key and the certificate are managed", () => {
  const config = parseConfig({ ...BASE, KES_AGENT_SOCKET: "/kes-agent/./service.socket" });
  assert.equal(config.kesAgentSocket, "/kes-agent/service.socket");
  assert.deepEqual(config.credentials, {
    vrf: { source: "/secrets/vrf.skey", target: "/ipc/vrf.skey" },
    opcert: { source: "/secrets/node.cert", target: "/ipc/node.cert" },
  });
  assert.equal(parseConfig(BASE).kesAgentSocket, undefined);
  assert.deepEqual(Object.keys(parseConfig(BASE).credentials), ["kes", "vrf", "opcert"]);
});

Deno.test("a KES file beside a KES agent, or an agent socket that is another file, is refused", () => {
  const agent = { ...BASE, KES_AGENT_SOCKET: "/kes-agent/service.socket" };
  assert.deepEqual(
    problemsOf({ ...agent, SOURCE_KES_KEY: "/secrets/kes.skey", TARGET_KES_KEY: "/ipc/kes.skey" }),
    ["SOURCE_KES_KEY", "TARGET_KES_KEY"].map((name) =>
      `${name}="${name.startsWith("SOURCE") ? "/secrets" : "/ipc"}/kes.skey": must not be set ` +
      "with KES_AGENT_SOCKET (the node takes its KES key from the agent; forge-manager then " +
      "manages only the VRF key and the certificate)"
    ),
  );
  assert.deepEqual(problemsOf({ ...BASE, KES_AGENT_SOCKET: "service.socket" }), [
    'KES_AGENT_SOCKET="service.socket": must be an absolute path',
  ]);
  assert.deepEqual(problemsOf({ ...BASE, KES_AGENT_SOCKET: "/ipc/node.socket" }), [
    'KES_AGENT_SOCKET="/ipc/node.socket": is the same file as NODE_SOCKET',
  ]);
  assert.deepEqual(problemsOf({ ...BASE, KES_AGENT_SOCKET: "/ipc/node.cert" }), [
    'KES_AGENT_SOCKET="/ipc/node.cert": is the same file as TARGET_OP_CERT',
  ]);
});

Deno.test("the pool's name and ticker are checked, and optional", () => {
  const config = parseConfig({ ...BASE, POOL_NAME: "Sandstone Pool", POOL_TICKER: "SAND" });
  assert.deepEqual(config.pool, { name: "Sandstone Pool", ticker: "SAND" });
  assert.deepEqual(parseConfig(BASE).pool, { name: undefined, ticker: undefined });
  assert.deepEqual(problemsOf({ ...BASE, POOL_TICKER: "sand" }), [
    'POOL_TICKER="sand": must be 3 to 5 upper-case letters or digits',
  ]);
  assert.deepEqual(problemsOf({ ...BASE, POOL_NAME: "x".repeat(51) }), [
    `POOL_NAME="${"x".repeat(51)}": must be at most 50 printable characters`,
  ]);
});

const GLOBAL = {
  ...BASE,
  FENCE: "guard",
  GUARD_SOCKET: "/run/forge-manager-guard/guard.sock",
  GLOBAL_KUBECONFIG: "/etc/forge-manager/coordination.kubeconfig",
  CLUSTER_NAME: "eu-west",
};

Deno.test("across clusters: the coordination cluster's objects default to the local names", () => {
  const config = parseConfig({ ...GLOBAL, CLUSTER_REGION: "eu-west-1", CLUSTER_PRIORITY: "2" });
  assert.deepEqual(config.global, {
    cluster: "eu-west",
    region: "eu-west-1",
    priority: 2,
    forgeClusterName: "eu-west",
    kubeconfig: "/etc/forge-manager/coordination.kubeconfig",
    namespace: "default",
    leaseName: "cardano-node-leader",
    cardanoLeaderName: "cardano-leader",
    priorityDelayMs: 10_000,
    returnStableMs: 60_000,
    healthEndpoint: undefined,
  });
  assert.equal(parseConfig(BASE).global, undefined, "one cluster by default");
});

Deno.test("across clusters: CLUSTER_NAME and the guard are required, and nothing is ignored", () => {
  assert.deepEqual(problemsOf({ ...GLOBAL, CLUSTER_NAME: "" }), [
    'CLUSTER_NAME="": is required with GLOBAL_KUBECONFIG (this cluster\'s name among the ' +
    "pool's clusters, a DNS label)",
  ]);
  const unguarded = problemsOf({
    ...BASE,
    GLOBAL_KUBECONFIG: GLOBAL.GLOBAL_KUBECONFIG,
    CLUSTER_NAME: "a",
  });
  assert.equal(unguarded.length, 1);
  assert.match(unguarded[0]!, /^GLOBAL_KUBECONFIG=.*needs FENCE=guard and GUARD_SOCKET/);
  assert.deepEqual(problemsOf({ ...BASE, CLUSTER_NAME: "a" }), [
    'CLUSTER_NAME="a": needs GLOBAL_KUBECONFIG (the election across clusters)',
  ]);
  assert.deepEqual(problemsOf({ ...GLOBAL, CLUSTER_PRIORITY: "0", CLUSTER_NAME: "EU" }), [
    'CLUSTER_NAME="EU": must be a lower-case DNS label (at most 63 characters)',
    'CLUSTER_PRIORITY="0": must be a whole number from 1 (highest) to 999',
  ]);
  assert.deepEqual(problemsOf({ ...GLOBAL, HEALTH_CHECK_ENDPOINT: "ftp://x" }), [
    'HEALTH_CHECK_ENDPOINT="ftp://x": must be an http:// or https:// URL with a host',
  ]);
});
