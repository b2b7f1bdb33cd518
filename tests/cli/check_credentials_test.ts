/**
 * `forge-manager check-credentials` end to end: main.ts spawned under the shipped permission set
 * (`-P=forge-manager`) on credential files the tests generate with the real structure (real
 * Sum6KES and VRF keys, certificates signed by a real cold key), plus the command's parsing and
 * the sandbox its checks run in.
 */

import assert from "node:assert/strict";
import { prepareCheckCredentials } from "../../lib/core/cli/check_credentials_args.ts";
import { checkCredentials, run as runCheck } from "../../lib/cli/check_credentials.ts";
import { makeDecoyCredentials } from "../../lib/cardano/decoy_keys.ts";
import { commandPermissions } from "../../lib/core/cli/command.ts";
import { kesPeriodAt, NETWORK_KES_TIMING } from "../../lib/cardano/kes_period.ts";
import { poolIdBech32 } from "../../lib/cardano/pool_id.ts";
import {
  type ColdKey,
  CREDENTIAL_FILE_NAMES,
  makeColdKey,
  makeCredentialSet,
  makePoolCredentials,
  writeCredentialSet,
} from "../support/keys.ts";
import { runMain } from "../support/run_main.ts";

const PROBE = new URL("../support/permission_probe_worker.ts", import.meta.url);

const run = runMain;

/** The current mainnet KES period by the clock. */
const NOW_PERIOD = kesPeriodAt(NETWORK_KES_TIMING.mainnet, Date.now());

interface Keys extends AsyncDisposable {
  root: string;
  cold: ColdKey;
  /** Writes a set into `root/name` and returns the folder. */
  write(name: string, set: ReturnType<typeof makeCredentialSet>): Promise<string>;
}

async function keys(): Promise<Keys> {
  const root = await Deno.makeTempDir({ prefix: "check-credentials-" });
  return {
    root,
    cold: makeColdKey(),
    async write(name, set) {
      const dir = `${root}/${name}`;
      await Deno.mkdir(dir);
      await writeCredentialSet(dir, set);
      return dir;
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true });
    },
  };
}

Deno.test("a good set passes every check and exits 0, with a readable report", async () => {
  await using k = await keys();
  const dir = await k.write(
    "good",
    makeCredentialSet({ cold: k.cold, counter: 3, kesStartPeriod: NOW_PERIOD - 10 }),
  );
  const { code, stdout, stderr } = await run([
    "check-credentials",
    dir,
    "--pool-id",
    k.cold.poolId,
  ]);
  assert.equal(code, 0, stdout + stderr);
  for (
    const line of [
      /^ {2}ok {4}KES key {6}.*kes\.skey: KesSigningKey_ed25519_kes_2\^6, 608 bytes/m,
      /^ {2}ok {4}VRF key {6}.*vrf\.skey: VrfSigningKey_PraosVRF, 64 bytes, its verification key is the one its seed derives$/m,
      new RegExp(
        `^  ok    certificate  .*node\\.cert: NodeOperationalCertificate, issue counter 3, KES start period ${
          NOW_PERIOD - 10
        }`,
        "m",
      ),
      /^ {2}ok {4}key match {4}the KES key is the certificate's hot key$/m,
      /^ {2}ok {4}signature {4}the cold key's signature over the certificate verifies$/m,
      new RegExp(
        `^  ok    pool id      ${poolIdBech32(k.cold.poolId)} \\(${k.cold.poolId}\\), as expected$`,
        "m",
      ),
      new RegExp(
        `^  ok    KES window   window \\[${NOW_PERIOD - 10}, ${
          NOW_PERIOD + 52
        }\\), current period ${NOW_PERIOD}: 52 period\\(s\\) left, expires 20`,
        "m",
      ),
      /^All checks passed\.$/m,
    ]
  ) assert.match(stdout, line);
  assert.doesNotMatch(stdout, /[0-9a-f]{64}/, "no key material, not even a full public key");
});

Deno.test("each broken set fails with exit 1 and names the check and the reason", async () => {
  await using k = await keys();
  const good = () => makeCredentialSet({ cold: k.cold, kesStartPeriod: NOW_PERIOD });
  const truncated = good();
  const table: [string, ReturnType<typeof makeCredentialSet>, RegExp][] = [
    [
      "expired",
      makeCredentialSet({ cold: k.cold, kesStartPeriod: NOW_PERIOD - 62 }),
      /^ {2}FAIL {2}KES window {3}window \[\d+, \d+\), current period \d+: EXPIRED 20.*days ago\)$/m,
    ],
    [
      "not yet valid",
      makeCredentialSet({ cold: k.cold, kesStartPeriod: NOW_PERIOD + 3 }),
      /^ {2}FAIL {2}KES window {3}.*NOT VALID YET, starts in 3 period\(s\)$/m,
    ],
    [
      "mismatched KES key",
      { ...good(), kes: makeCredentialSet().kes },
      /^ {2}FAIL {2}key match {4}the KES key \([0-9a-f]{8}\) is NOT the certificate's hot key \([0-9a-f]{8}\)/m,
    ],
    [
      "wrong signature",
      makeCredentialSet({ cold: k.cold, kesStartPeriod: NOW_PERIOD, signature: "other_key" }),
      /^ {2}FAIL {2}signature {4}the cold key's signature over the certificate does NOT verify/m,
    ],
    [
      "corrupt",
      { ...truncated, opcert: truncated.opcert.slice(0, 60) },
      /^ {2}FAIL {2}certificate {2}Cannot use operational certificate .*node\.cert: file is not valid JSON/m,
    ],
  ];
  for (const [name, set, failure] of table) {
    const dir = await k.write(name.replaceAll(" ", "-"), set);
    const { code, stdout } = await run(["check-credentials", dir]);
    assert.equal(code, 1, `${name}: ${stdout}`);
    assert.match(stdout, failure, name);
    assert.match(stdout, /^Check failed: /m, name);
  }
});

Deno.test("a certificate of another pool fails only the pool id check", async () => {
  await using k = await keys();
  const dir = await k.write("other", makeCredentialSet({ kesStartPeriod: NOW_PERIOD }));
  const { code, stdout } = await run(["check-credentials", dir], {
    POOL_ID: poolIdBech32(k.cold.poolId),
  });
  assert.equal(code, 1, stdout);
  assert.match(stdout, new RegExp(`is NOT the expected pool ${poolIdBech32(k.cold.poolId)}$`, "m"));
  assert.equal(stdout.match(/^ {2}FAIL/gm)?.length, 1, stdout);
});

Deno.test("--output json gives the checks and the verdict with its numbers", async () => {
  await using k = await keys();
  const { kesVkey } = makePoolCredentials();
  assert.equal(kesVkey.length, 32);
  const dir = await k.write(
    "json",
    makeCredentialSet({ cold: k.cold, counter: 9, kesStartPeriod: NOW_PERIOD - 61 }),
  );
  const { code, stdout } = await run([
    "check-credentials",
    "--kes",
    `${dir}/${CREDENTIAL_FILE_NAMES.kes}`,
    "--vrf",
    `${dir}/${CREDENTIAL_FILE_NAMES.vrf}`,
    "--opcert",
    `${dir}/${CREDENTIAL_FILE_NAMES.opcert}`,
    "--output",
    "json",
  ]);
  assert.equal(code, 0, stdout);
  const report = JSON.parse(stdout);
  assert.equal(report.ok, true);
  assert.deepEqual(
    report.checks.map((c: { name: string; ok: boolean | null }) => [c.name, c.ok]),
    [
      ["kes_key", true],
      ["vrf_key", true],
      ["certificate", true],
      ["key_match", true],
      ["signature", true],
      ["pool_id", null],
      ["kes_window", true],
    ],
  );
  assert.equal(report.verdict.verdict, "valid");
  assert.equal(report.verdict.issueCounter, 9);
  assert.equal(report.verdict.poolId, k.cold.poolId);
  assert.equal(report.verdict.kes.remainingPeriods, 1);
  assert.equal(typeof report.verdict.expiresAtUnix, "number");
});

Deno.test("preprod, preview and a genesis file time the window by their own parameters", async () => {
  await using k = await keys();
  const preview = kesPeriodAt(NETWORK_KES_TIMING.preview, Date.now());
  const dir = await k.write("preview", makeCredentialSet({ kesStartPeriod: preview }));
  assert.equal((await run(["check-credentials", dir, "--network", "preview"])).code, 0);
  // On mainnet's clock the same certificate is far in the past: expired.
  const mainnet = await run(["check-credentials", dir]);
  assert.equal(mainnet.code, 1);
  assert.match(mainnet.stdout, /EXPIRED/);
  // A genesis file of preview's shape gives the same answer as the built-in preview.
  const genesis = `${k.root}/shelley-genesis.json`;
  await Deno.writeTextFile(
    genesis,
    JSON.stringify({
      networkMagic: 2,
      systemStart: "2022-10-25T00:00:00Z",
      slotLength: 1,
      slotsPerKESPeriod: 129600,
      maxKESEvolutions: 62,
    }),
  );
  const fromFile = await run(["check-credentials", dir, "--shelley-genesis", genesis]);
  assert.equal(fromFile.code, 0, fromFile.stdout);
  assert.match(fromFile.stdout, /\(shelley genesis .*shelley-genesis\.json\)/);
  // The sidecar's variables are honoured too.
  assert.equal((await run(["check-credentials", dir], { NETWORK: "preview" })).code, 0);
  await Deno.writeTextFile(genesis, "{");
  const broken = await run(["check-credentials", dir, "--shelley-genesis", genesis]);
  assert.equal(broken.code, 1);
  assert.match(
    broken.stdout,
    /FAIL {2}KES window {3}Cannot read the shelley genesis .*: it is not valid JSON/,
  );
});

Deno.test("missing files are reported, not crashed on", async () => {
  await using k = await keys();
  const { code, stdout } = await run(["check-credentials", `${k.root}/nowhere`]);
  assert.equal(code, 1);
  assert.match(
    stdout,
    /FAIL {2}KES key {6}Cannot read KES key .*nowhere\/kes\.skey: it does not exist/,
  );
  assert.match(stdout, /-- {4}key match {4}not checked/);
});

Deno.test("usage errors exit 2 and say what is wrong; --help exits 0", async () => {
  const table: [string[], RegExp][] = [
    [[], /give DIR, or --kes, --vrf and --opcert/],
    [["--kes", "k"], /missing --vrf, --opcert/],
    [["d", "--kes", "k"], /give DIR or --kes, not both/],
    [
      ["d", "--network", "sanchonet"],
      /network "sanchonet" is not one of mainnet, preprod, preview/,
    ],
    [["d", "--network", "preview", "--shelley-genesis", "g"], /not both/],
    [["d", "--pool-id", "pool1xyz"], /Cannot read the pool id/],
    [["d", "--output", "yaml"], /--output is "yaml", expected json or text/],
    [["d", "--frobnicate"], /unknown option "--frobnicate"/],
  ];
  for (const [args, message] of table) {
    const { code, stderr } = await run(["check-credentials", ...args]);
    assert.equal(code, 2, args.join(" "));
    assert.match(stderr, message, args.join(" "));
  }
  const help = await run(["check-credentials", "--help"]);
  assert.equal(help.code, 0);
  assert.match(
    help.stdout,
    /^Usage: forge-manager check-credentials \[DIR \| \[--kes F\] --vrf F --opcert F\] \[--kes-agent\]/,
  );
  assert.match(
    (await run(["--help"])).stdout,
    /^ {2}check-credentials +check a forging credential set/m,
  );
});

Deno.test("the checks run in a worker that may read exactly the named files", async () => {
  await using k = await keys();
  const dir = await k.write("sandbox", makeCredentialSet());
  const prepared = prepareCheckCredentials(
    [dir, "--shelley-genesis", "../g.json"],
    {},
    `${k.root}/x`,
  );
  assert.equal(prepared.kind, "run");
  if (prepared.kind !== "run") return;
  assert.deepEqual(prepared.grants.read, [
    `${dir}/kes.skey`,
    `${dir}/vrf.skey`,
    `${dir}/node.cert`,
    `${k.root}/g.json`,
  ]);
  const permissions = commandPermissions(prepared.grants);
  assert.deepEqual({ ...permissions, read: undefined }, {
    read: undefined,
    net: false,
    write: false,
    env: false,
    sys: false,
    run: false,
    ffi: false,
    import: false,
  });
  // Measured, not assumed: such a worker is refused everything else.
  await using other = { // another process to signal (a process may always signal itself)
    child: new Deno.Command("sleep", { args: ["30"] }).spawn(),
    async [Symbol.asyncDispose]() {
      this.child.kill("SIGKILL");
      await this.child.status;
    },
  };
  const worker = new Worker(PROBE, { type: "module", deno: { permissions } });
  const result = await new Promise<Record<string, string>>((resolve, reject) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(e.message));
    };
    worker.postMessage({
      read: [`${dir}/kes.skey`, `${k.root}/sandbox`, "/etc/passwd"],
      connect: "http://127.0.0.1:12798/metrics",
      signalPid: other.child.pid,
    });
  });
  worker.terminate();
  assert.deepEqual(result, {
    [`read ${dir}/kes.skey`]: "ok",
    [`read ${k.root}/sandbox`]: "refused",
    "read /etc/passwd": "refused",
    write: "refused",
    env: "refused",
    net: "refused",
    run: "refused",
    signal: "refused",
  });
});

Deno.test("a sidecar's decoy set fails by name: it belongs to no pool and can never forge", () => {
  const decoys = makeDecoyCredentials({ kesStartPeriod: NOW_PERIOD });
  const files = { kes: "/ipc/kes.skey", vrf: "/ipc/vrf.skey", opcert: "/ipc/node.cert" };
  const report = checkCredentials({
    texts: { kes: decoys.kes!, vrf: decoys.vrf, opcert: decoys.opcert },
    timing: NETWORK_KES_TIMING.mainnet,
    network: "mainnet",
    nowMs: Date.now(),
  }, { files, poolId: undefined });
  assert.equal(report.ok, false);
  const failed = report.checks.filter((c) => c.ok === false).map((c) => c.name);
  assert.deepEqual(failed, ["kes_key", "vrf_key", "certificate"]);
  assert.match(
    report.reason,
    /^KES key: \/ipc\/kes\.skey: .*a forge-manager DECOY \(no pool's key/,
  );
  // Everything else about it is in order: only its being a decoy fails it.
  for (const c of report.checks.filter((c) => !failed.includes(c.name))) {
    assert.notEqual(c.ok, false, `${c.name}: ${c.detail}`);
  }
});

// ---- with a KES agent -----------------------------------------------------------------------

Deno.test("with a KES agent the command reads and checks no KES key, and says why", async () => {
  await using k = await keys();
  const { kes: _kes, ...files } = makeCredentialSet({ cold: k.cold, kesStartPeriod: NOW_PERIOD });
  const dir = `${k.root}/agent`;
  await Deno.mkdir(dir);
  await Deno.writeTextFile(`${dir}/vrf.skey`, files.vrf, { mode: 0o600 });
  await Deno.writeTextFile(`${dir}/node.cert`, files.opcert, { mode: 0o600 });
  for (
    const [args, env] of [[[dir, "--kes-agent"], {}], [[dir], { KES_AGENT_SOCKET: "/a" }]] as const
  ) {
    const prepared = prepareCheckCredentials(args, env, "/");
    assert.ok(prepared.kind === "run", JSON.stringify(prepared));
    // The worker may read the two files and nothing named kes.
    assert.deepEqual(prepared.grants.read, [`${dir}/vrf.skey`, `${dir}/node.cert`]);
    const out: string[] = [];
    const io = { out: (line: string) => out.push(line), err: () => {} };
    const code = await runCheck({ ...prepared.options, poolId: k.cold.poolId }, io);
    assert.equal(code, 0, out.join("\n"));
    const report = out.join("\n");
    assert.match(report, /^ {2}-- {4}KES key {6}held by the KES agent: no KES key file to check$/m);
    assert.match(report, /^ {2}-- {4}key match {4}not checked here: the KES agent checks its key/m);
    assert.match(report, /^ {2}ok {4}certificate {2}/m);
    assert.match(report, /^ {2}ok {4}KES window {3}/m);
    assert.match(report, /^All checks passed\.$/m);
  }
  // Named files: --vrf and --opcert only; a KES key file beside an agent is a usage error.
  const named = prepareCheckCredentials(["--kes-agent", "--vrf", "v", "--opcert", "c"], {}, "/w");
  assert.ok(named.kind === "run" && named.options.files.kes === undefined);
  const table: [string[], Record<string, string>, RegExp][] = [
    [["--kes-agent", "--vrf", "v"], {}, /missing --opcert/],
    [["--kes-agent"], {}, /give DIR, or --vrf and --opcert/],
    [["--kes-agent", "--kes", "k", "--vrf", "v", "--opcert", "c"], {}, /a KES agent holds the key/],
    [
      ["--kes", "k", "--vrf", "v", "--opcert", "c"],
      { KES_AGENT_SOCKET: "/a" },
      /from KES_AGENT_SOCKET/,
    ],
  ];
  for (const [args, env, message] of table) {
    const prepared = prepareCheckCredentials(args, env, "/w");
    assert.ok(prepared.kind === "usage", args.join(" "));
    assert.match(prepared.message, message, args.join(" "));
  }
});
