/**
 * lib/core/proc.ts with real processes: the node is found by its exact process name, signalled
 * only while its PID still belongs to it, and its non-producing flag is read from its command
 * line or its config file. Each test uses a process name of its own, so node processes of other
 * tests on the machine never match.
 */

import assert from "node:assert/strict";
import { nonProducing, ProcNodeProcess } from "../../lib/core/proc.ts";
import { SignalError } from "../../lib/core/node_process.ts";

const CHILD = `
let hups = 0;
Deno.addSignalListener("SIGHUP", () => { hups++; console.log("hup " + hups); });
console.log("ready");
setInterval(() => {}, 1000);
`;

/** Starts a Deno child whose /proc/PID/comm is `name` (through a symlink of that name). */
async function child(dir: string, name: string, args: string[] = []) {
  const link = `${dir}/${name}`;
  await Deno.symlink(Deno.execPath(), link).catch(() => {});
  const script = `${dir}/child.ts`;
  await Deno.writeTextFile(script, CHILD);
  const proc = new Deno.Command(link, {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const next = async (want: string) => {
    while (!seen.includes(want)) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`child exited before printing ${want}`);
      seen += value;
    }
  };
  await next("ready");
  return {
    proc,
    next,
    async [Symbol.asyncDispose]() {
      try {
        proc.kill("SIGKILL");
      } catch { /* gone */ }
      await proc.status;
      await lines.cancel().catch(() => {});
    },
  };
}

function uniqueName(): string {
  return `fmt${crypto.randomUUID().slice(0, 8)}`; // 11 characters, under comm's 15
}

Deno.test("finds the node by its exact name, reads its flag, and delivers SIGHUP", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const name = uniqueName();
    await using node = await child(dir, name, ["--start-as-non-producing-node"]);
    const finder = new ProcNodeProcess(name);
    const found = await finder.find();
    assert.equal(found?.pid, node.proc.pid);
    assert.equal(found?.nonProducing, true);
    await finder.hangup(found!);
    await node.next("hup 1");
    // A name that merely contains ours does not match.
    assert.equal(await new ProcNodeProcess(name.slice(0, -1)).find(), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("refuses to signal a pid that now belongs to another process, or none", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const name = uniqueName();
    const finder = new ProcNodeProcess(name);
    let pid: number;
    {
      await using node = await child(dir, name);
      const found = (await finder.find())!;
      assert.equal(found.nonProducing, false);
      pid = found.pid;
      await assert.rejects(
        finder.hangup({ ...found, startTicks: found.startTicks + 1 }),
        (err: unknown) => err instanceof SignalError && err.reason === "replaced",
      );
      void node;
    }
    await assert.rejects(
      finder.hangup({ pid, startTicks: 0, nonProducing: true }),
      (err: unknown) => err instanceof SignalError && err.reason === "not_found",
    );
    assert.equal(await finder.find(), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("two processes with the node's name are an error, not a guess", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const name = uniqueName();
    await using _a = await child(dir, name);
    await using _b = await child(dir, name);
    await assert.rejects(new ProcNodeProcess(name).find(), /2 match/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the node found last is checked first; /proc is scanned when it is gone or once a period", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const name = uniqueName();
    let now = 0;
    const finder = new ProcNodeProcess(name, "/proc", { now: () => now, fullScanEveryMs: 60_000 });
    await using a = await child(dir, name);
    const first = (await finder.find())!;
    assert.equal(first.pid, a.proc.pid);
    {
      await using _b = await child(dir, name);
      now = 59_000; // the known pid still runs: no scan, the second process is not seen yet
      assert.equal((await finder.find())?.pid, a.proc.pid);
      now = 60_000; // the period is over: a full scan sees both
      await assert.rejects(finder.find(), /2 match/);
    }
    now = 61_000;
    assert.equal((await finder.find())?.pid, a.proc.pid);
    a.proc.kill("SIGKILL");
    await a.proc.status;
    now = 62_000; // the known pid is gone: scanned at once, within the period
    assert.equal(await finder.find(), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the non-producing flag: both spellings, or the config key in --config", async () => {
  assert.equal(nonProducing(["cardano-node", "run", "--start-as-non-producing-node"]), true);
  assert.equal(nonProducing(["cardano-node", "run", "--non-producing-node"]), true);
  assert.equal(nonProducing(["cardano-node", "run", "--topology", "t.json"]), false);
  assert.equal(nonProducing(["sh", "-c", "cardano-node run --start-as-non-producing-node"]), false);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/yes.yaml`,
      "Protocol: Cardano\nStartAsNonProducingNode: true\n",
    );
    await Deno.writeTextFile(`${dir}/no.json`, '{"StartAsNonProducingNode": false}');
    await Deno.writeTextFile(`${dir}/yes.json`, '{\n  "StartAsNonProducingNode": true\n}');
    assert.equal(nonProducing(["cardano-node", "run", "--config", `${dir}/yes.yaml`]), true);
    assert.equal(nonProducing(["cardano-node", "run", "--config", `${dir}/no.json`]), false);
    assert.equal(nonProducing(["cardano-node", "run", `--config=${dir}/yes.json`]), true);
    assert.equal(nonProducing(["cardano-node", "run", "--config", "yes.yaml"], dir), true);
    assert.equal(nonProducing(["cardano-node", "run", "--config", `${dir}/missing`]), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
