/**
 * The guard process (`forge-manager guard`, lib/core/guard.ts) with real processes: main.ts under
 * the shipped permission set, a unix socket, key files in a temp folder, and a node process found
 * by its exact name in /proc. The test plays the sidecar's core: hello, arm, answer pings (or
 * not), close. Each test uses a node process name of its own.
 */

import assert from "node:assert/strict";
import { type FromGuard, lineOf, LineReader, type ToGuard } from "../../lib/core/guard_protocol.ts";
import { waitUntil } from "../support/wait.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

const NODE_CHILD = `
let hups = 0;
Deno.addSignalListener("SIGHUP", () => { hups++; console.log("hup " + hups); });
console.log("ready");
setInterval(() => {}, 1000);
`;

interface Setup extends AsyncDisposable {
  dir: string;
  targets: string[];
  socket: string;
  stateFile: string;
  name: string;
  /** SIGHUPs the node has received so far. */
  hups(): number;
  startGuard(): Promise<Deno.ChildProcess>;
  guardLog(): string;
}

/** A temp folder with three key files, a node process of a fresh name, and the guard's paths. */
async function setup(): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "fm-guard-" });
  const name = `fmg${crypto.randomUUID().slice(0, 8)}`;
  const targets = ["kes.skey", "vrf.skey", "node.cert"].map((f) => `${dir}/${f}`);
  for (const t of targets) await Deno.writeTextFile(t, "not a key\n");
  await Deno.symlink(Deno.execPath(), `${dir}/${name}`);
  await Deno.writeTextFile(`${dir}/node.ts`, NODE_CHILD);
  const node = new Deno.Command(`${dir}/${name}`, {
    args: ["run", "-A", `${dir}/node.ts`],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let out = "";
  const reading = (async () => {
    for await (const chunk of node.stdout.pipeThrough(new TextDecoderStream())) out += chunk;
  })();
  await waitUntil("the node process is ready", () => out.includes("ready"), 10_000);
  const socket = `${dir}/guard.sock`;
  const stateFile = `${dir}/guard-state.json`;
  const guards: Deno.ChildProcess[] = [];
  let log = "";
  return {
    dir,
    targets,
    socket,
    stateFile,
    name,
    hups: () => (out.match(/hup \d+/g) ?? []).length,
    guardLog: () => log,
    async startGuard() {
      const guard = new Deno.Command(Deno.execPath(), {
        args: ["run", "-P=forge-manager", "--no-prompt", "--config", CONFIG, MAIN, "guard"],
        env: {
          GUARD_SOCKET: socket,
          TARGET_KES_KEY: targets[0]!,
          TARGET_VRF_KEY: targets[1]!,
          TARGET_OP_CERT: targets[2]!,
          NODE_PROCESS_NAME: name,
          LOG_LEVEL: "debug",
        },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      guards.push(guard);
      void (async () => {
        for await (const chunk of guard.stdout.pipeThrough(new TextDecoderStream())) log += chunk;
      })();
      void (async () => {
        for await (const chunk of guard.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
      })();
      await waitUntil("the guard listens", () => log.includes("guard listening"), 15_000);
      return guard;
    },
    async [Symbol.asyncDispose]() {
      for (const g of guards) {
        try {
          g.kill("SIGKILL");
        } catch { /* gone */ }
        await g.status;
      }
      node.kill("SIGKILL");
      await node.status;
      await reading.catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** The test's end of the socket: a sidecar core that answers pings as told. */
async function sidecar(socket: string, s: Setup) {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  const received: FromGuard[] = [];
  type Answer = { armed: boolean; leftMs: number } | "silent";
  let answer = { armed: false, leftMs: 0 } as Answer;
  const send = (m: ToGuard) => conn.write(lineOf(m));
  const reading = (async () => {
    const reader = new LineReader();
    const buffer = new Uint8Array(4096);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) return;
        for (const v of reader.feed(buffer.subarray(0, n)).values) {
          const m = v as FromGuard;
          received.push(m);
          if (m.op === "ping" && answer !== "silent") {
            await send({ op: "pong", seq: m.seq, ...answer });
          }
        }
      }
    } catch { /* closed */ }
  })();
  await send({ op: "hello", targets: s.targets, nodeProcessName: s.name, pingMs: 200 });
  return {
    received,
    answer: (a: Answer) => (answer = a),
    send,
    /** Arms with `leftMs` of term and waits for the guard's answer. */
    async arm(id: number, leftMs: number): Promise<FromGuard> {
      answer = { armed: true, leftMs };
      await send({ op: "arm", id });
      await waitUntil(
        `armed ${id}`,
        () => received.some((m) => m.op === "armed" && m.id === id),
        5000,
      );
      return received.find((m) => m.op === "armed" && m.id === id)!;
    },
    async close() {
      conn.close();
      await reading;
    },
  };
}

const present = async (path: string) => {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
};

Deno.test("a guard whose sidecar stops answering unlinks the keys, then SIGHUPs the node, at its deadline", async () => {
  await using s = await setup();
  await s.startGuard();
  const car = await sidecar(s.socket, s);
  assert.deepEqual(await car.arm(1, 1500), { op: "armed", id: 1, ok: true });
  assert.match(await Deno.readTextFile(s.stateFile), /"armed":true/, "armed is persisted");
  // Answers keep coming with the same term end: then none at all (a frozen sidecar).
  car.answer("silent");
  const silentAt = performance.now();
  await waitUntil("the keys are gone", async () => !(await present(s.targets[0]!)), 5000);
  const firedAfter = performance.now() - silentAt;
  for (const t of s.targets) assert.equal(await present(t), false, `${t} unlinked`);
  await waitUntil("the node got its SIGHUP", () => s.hups() === 1, 5000);
  // The term had 1.5 s left when the arming ping was sent; nothing extended it.
  assert.ok(firedAfter < 1500 + 1000, `fired ${firedAfter.toFixed(0)} ms after the silence`);
  await waitUntil("fired is reported", () => car.received.some((m) => m.op === "fired"), 5000);
  const fired = car.received.find((m) => m.op === "fired");
  assert.deepEqual(fired, { op: "fired", reason: "deadline", ok: true });
  assert.match(await Deno.readTextFile(s.stateFile), /"armed":false/);
  await car.close();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(s.hups(), 1, "disarmed after firing: the close did nothing more");
});

Deno.test("a sidecar that dies while armed makes the guard stop the node at once", async () => {
  await using s = await setup();
  await s.startGuard();
  const car = await sidecar(s.socket, s);
  await car.arm(1, 60_000);
  const closedAt = performance.now();
  await car.close(); // the process died: the kernel closes its socket
  await waitUntil("the node got its SIGHUP", () => s.hups() === 1, 5000);
  assert.ok(performance.now() - closedAt < 1000, "at once, not at the deadline (60 s away)");
  for (const t of s.targets) assert.equal(await present(t), false);
});

Deno.test("a disarmed guard leaves the keys alone when its sidecar goes, and a goodbye disarms", async () => {
  await using s = await setup();
  await s.startGuard();
  const standby = await sidecar(s.socket, s);
  await waitUntil("accepted", () => standby.received.some((m) => m.op === "state"), 5000);
  await standby.close();
  const leader = await sidecar(s.socket, s);
  await leader.arm(1, 60_000);
  await leader.send({ op: "bye" });
  await waitUntil(
    "disarmed",
    () => leader.received.some((m) => m.op === "state" && m.armed === false),
    5000,
  );
  await leader.close();
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(s.hups(), 0);
  for (const t of s.targets) assert.equal(await present(t), true, `${t} left in place`);
});

Deno.test("a guard restarted while armed (killed, its state file says armed) stops the node at start", async () => {
  await using s = await setup();
  const first = await s.startGuard();
  const car = await sidecar(s.socket, s);
  await car.arm(1, 60_000);
  first.kill("SIGKILL"); // an OOM kill of the guard itself: it never acts
  await first.status;
  assert.equal(s.hups(), 0);
  await s.startGuard();
  await waitUntil("the node got its SIGHUP", () => s.hups() === 1, 5000);
  for (const t of s.targets) assert.equal(await present(t), false);
  assert.match(s.guardLog(), /"reason":"restarted_armed"/);
  await car.close().catch(() => {});
});

Deno.test("a guard told to stop while armed stops the node first", async () => {
  await using s = await setup();
  const guard = await s.startGuard();
  const car = await sidecar(s.socket, s);
  await car.arm(1, 60_000);
  guard.kill("SIGTERM");
  assert.equal((await guard.status).code, 0);
  assert.equal(s.hups(), 1);
  for (const t of s.targets) assert.equal(await present(t), false);
  await car.close();
});

Deno.test("a sidecar with other targets is refused and never arms the guard", async () => {
  await using s = await setup();
  await s.startGuard();
  const conn = await Deno.connect({ transport: "unix", path: s.socket });
  await conn.write(lineOf({
    op: "hello",
    targets: ["/elsewhere/kes.skey", ...s.targets.slice(1)],
    nodeProcessName: s.name,
    pingMs: 200,
  }));
  await conn.write(lineOf({ op: "arm", id: 1 }));
  const reader = new LineReader();
  const buffer = new Uint8Array(4096);
  const got: FromGuard[] = [];
  while (got.length < 2) {
    const n = await conn.read(buffer);
    if (n === null) break;
    got.push(...reader.feed(buffer.subarray(0, n)).values as FromGuard[]);
  }
  assert.equal(got[0]?.op, "refused");
  assert.match((got[0] as { reason: string }).reason, /TARGET_\* files .* differ from the guard's/);
  assert.deepEqual(got[1], {
    op: "armed",
    id: 1,
    ok: false,
    error: (got[0] as { reason: string }).reason,
  });
  conn.close();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(s.hups(), 0);
});

Deno.test("the guard refuses to start without GUARD_SOCKET, naming the variable", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P=forge-manager", "--no-prompt", "--config", CONFIG, MAIN, "guard"],
    env: { GUARD_SOCKET: "" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /GUARD_SOCKET="": is required/);
});
