import assert from "node:assert/strict";
import { hasContent, removeIfPresent, writeFileAtomic } from "../../lib/base/atomic_write.ts";
import { CredentialError, validateCredentialSet } from "../../lib/cardano/cardano_keys.ts";
import { makeDecoyCredentials } from "../../lib/cardano/decoy_keys.ts";
import type { CredentialName, CredentialPaths } from "../../lib/core/config.ts";
import {
  type CredentialOperation,
  FileCredentialStore,
  type OperationHook,
} from "../../lib/node/credentials.ts";
import { errorText } from "../../lib/base/log.ts";
import {
  cborHexOf,
  type CredentialSet,
  makeCredentialSet,
  writeCredentialSet,
} from "../support/keys.ts";
import { exists } from "../support/fs.ts";

const NAMES: CredentialName[] = ["kes", "vrf", "opcert"];
const LABELS = { kes: "kes.skey", vrf: "vrf.skey", opcert: "node.cert" };

/** A temp dir with `secrets/` (the sources) and `ipc/` (the targets), removed on dispose. */
async function workspace(): Promise<
  AsyncDisposable & {
    dir: string;
    secrets: string;
    ipc: string;
    paths: Record<CredentialName, CredentialPaths>;
  }
> {
  const dir = await Deno.makeTempDir({ prefix: "forge-credentials-" });
  const secrets = `${dir}/secrets`;
  const ipc = `${dir}/ipc`;
  await Deno.mkdir(secrets);
  await Deno.mkdir(ipc);
  return {
    dir,
    secrets,
    ipc,
    paths: {
      kes: { source: `${secrets}/kes.skey`, target: `${ipc}/kes.skey` },
      vrf: { source: `${secrets}/vrf.skey`, target: `${ipc}/vrf.skey` },
      opcert: { source: `${secrets}/node.cert`, target: `${ipc}/node.cert` },
    },
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** A hook that records every operation as "operation:file". */
function recorder(): { hook: OperationHook; ops: string[] } {
  const ops: string[] = [];
  return {
    ops,
    hook: (op: CredentialOperation, file: CredentialName) => ops.push(`${op}:${file}`),
  };
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** mode & 0o777 of a file. */
async function modeOf(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o777;
}

/** The rejection of `promise`, which must reject. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail("expected a rejection");
}

/** Every text an error shows: messages and causes, through AggregateErrors. */
function allText(err: unknown): string {
  const parts = [errorText(err), String(err)];
  if (err instanceof Error && err.stack !== undefined) parts.push(err.stack);
  if (err instanceof AggregateError) { for (const e of err.errors) parts.push(allText(e)); }
  if (err instanceof Error && err.cause !== undefined) parts.push(allText(err.cause));
  return parts.join("\n");
}

/** Fails if `text` holds any 16-hex-digit run of any of the sets' cborHex. */
function assertNoKeyMaterial(text: string, sets: CredentialSet[]): void {
  const lower = text.toLowerCase();
  for (const set of sets) {
    for (const name of NAMES) {
      const hex = cborHexOf(set[name]);
      for (let i = 0; i + 16 <= hex.length; i += 8) {
        assert.ok(!lower.includes(hex.slice(i, i + 16)), `the error shows ${name} key material`);
      }
    }
  }
}

/** The targets' texts, undefined where a target is missing. */
async function targets(
  paths: Record<CredentialName, CredentialPaths>,
): Promise<Record<CredentialName, string | undefined>> {
  const out = {} as Record<CredentialName, string | undefined>;
  for (const name of NAMES) {
    out[name] = await Deno.readTextFile(paths[name].target).catch(() => undefined);
  }
  return out;
}

const textsOf = (set: CredentialSet): Record<CredentialName, string> => ({
  kes: set.kes,
  vrf: set.vrf,
  opcert: set.opcert,
});

// ---- place ----------------------------------------------------------------------------------

Deno.test("place() validates the sources and writes all three targets with mode 0600", async () => {
  await using ws = await workspace();
  const set = makeCredentialSet({ counter: 7, kesStartPeriod: 850 });
  await writeCredentialSet(ws.secrets, set);
  // Loose source modes must not leak to the targets.
  for (const name of NAMES) await Deno.chmod(ws.paths[name].source, 0o644);
  const { hook, ops } = recorder();
  const store = new FileCredentialStore(ws.paths, hook);

  const { changed, facts } = await store.place();

  assert.deepEqual(changed, ["kes", "vrf", "opcert"]);
  assert.equal(facts.issueCounter, 7);
  assert.equal(facts.kesStartPeriod, 850);
  assert.match(facts.hotKeyId, /^[0-9a-f]{8}$/);
  assert.deepEqual(await targets(ws.paths), textsOf(set));
  for (const name of NAMES) assert.equal(await modeOf(ws.paths[name].target), 0o600, name);
  // Atomic: no temp file is left beside the targets.
  assert.deepEqual(await listDir(ws.ipc), ["kes.skey", "node.cert", "vrf.skey"]);
  assert.deepEqual(ops, ["write:kes", "write:vrf", "write:opcert"]);
});

Deno.test("a second place() with the same content changes nothing", async () => {
  await using ws = await workspace();
  const set = makeCredentialSet();
  await writeCredentialSet(ws.secrets, set);
  const { hook, ops } = recorder();
  const store = new FileCredentialStore(ws.paths, hook);
  await store.place();
  const before = await Promise.all(NAMES.map((n) => Deno.stat(ws.paths[n].target)));
  ops.length = 0;

  const { changed } = await store.place();

  assert.deepEqual(changed, []);
  assert.deepEqual(ops, ["unchanged:kes", "unchanged:vrf", "unchanged:opcert"]);
  const after = await Promise.all(NAMES.map((n) => Deno.stat(ws.paths[n].target)));
  // The same files (not rewritten): same inode, same modification time.
  assert.deepEqual(after.map((s) => s.ino), before.map((s) => s.ino));
  assert.deepEqual(after.map((s) => s.mtime?.getTime()), before.map((s) => s.mtime?.getTime()));
});

Deno.test("place() restores mode 0600 on an unchanged target without rewriting it", async () => {
  await using ws = await workspace();
  await writeCredentialSet(ws.secrets);
  const store = new FileCredentialStore(ws.paths);
  await store.place();
  await Deno.chmod(ws.paths.vrf.target, 0o644); // the node refuses a VRF key readable by others
  const inode = (await Deno.stat(ws.paths.vrf.target)).ino;

  const { changed } = await store.place();

  assert.deepEqual(changed, []);
  assert.equal(await modeOf(ws.paths.vrf.target), 0o600);
  assert.equal((await Deno.stat(ws.paths.vrf.target)).ino, inode);
});

Deno.test("place() replaces only the files whose content changed", async () => {
  await using ws = await workspace();
  const first = makeCredentialSet();
  await writeCredentialSet(ws.secrets, first);
  const store = new FileCredentialStore(ws.paths);
  await store.place();

  // A new KES key and certificate (a KES rotation); the VRF key stays.
  const rotated = { ...makeCredentialSet({ counter: 1 }), vrf: first.vrf };
  await writeCredentialSet(ws.secrets, rotated);
  const { changed, facts } = await store.place();

  assert.deepEqual(changed, ["kes", "opcert"]);
  assert.equal(facts.issueCounter, 1);
  assert.deepEqual(await targets(ws.paths), textsOf(rotated));
  assert.deepEqual(await listDir(ws.ipc), ["kes.skey", "node.cert", "vrf.skey"]);
});

/** Ways a source set can be invalid, given two valid sets a and b. */
const INVALID: {
  why: string;
  sources: (a: CredentialSet, b: CredentialSet) => CredentialSet;
  credential: string;
}[] = [
  {
    why: "a truncated KES key",
    sources: (a) => ({ ...a, kes: a.kes.slice(0, 200) }),
    credential: "kes",
  },
  {
    why: "a VRF key where the KES key belongs (wrong type)",
    sources: (a) => ({ ...a, kes: a.vrf }),
    credential: "kes",
  },
  {
    why: "an empty operational certificate",
    sources: (a) => ({ ...a, opcert: "" }),
    credential: "opcert",
  },
  {
    why: "a KES key and a certificate from two different sets",
    sources: (a, b) => ({ ...a, opcert: b.opcert }),
    credential: "set",
  },
];

for (const { why, sources, credential } of INVALID) {
  Deno.test(`place() refuses ${why} before touching any target`, async () => {
    await using ws = await workspace();
    const a = makeCredentialSet();
    const b = makeCredentialSet();

    // No targets yet: nothing is created.
    await writeCredentialSet(ws.secrets, sources(a, b));
    const { hook, ops } = recorder();
    const store = new FileCredentialStore(ws.paths, hook);
    const err = await rejection(store.place());
    assert.ok(err instanceof CredentialError, String(err));
    assert.equal(err.credential, credential);
    assertNoKeyMaterial(allText(err), [a, b]);
    assert.deepEqual(await listDir(ws.ipc), []);
    assert.deepEqual(ops, []);

    // A complete set already placed stays exactly as it was.
    await writeCredentialSet(ws.secrets, a);
    await store.place();
    const inodes = await Promise.all(
      NAMES.map(async (n) => (await Deno.stat(ws.paths[n].target)).ino),
    );
    await writeCredentialSet(ws.secrets, sources(a, b));
    ops.length = 0;
    assert.ok((await rejection(store.place())) instanceof CredentialError);
    assert.deepEqual(await targets(ws.paths), textsOf(a));
    assert.deepEqual(
      await Promise.all(NAMES.map(async (n) => (await Deno.stat(ws.paths[n].target)).ino)),
      inodes,
    );
    assert.deepEqual(ops, []);
  });
}

Deno.test("place() with a missing source names it and touches no target", async () => {
  await using ws = await workspace();
  await writeCredentialSet(ws.secrets);
  await Deno.remove(ws.paths.vrf.source);
  const err = await rejection(new FileCredentialStore(ws.paths).place());
  assert.ok(err instanceof Error);
  assert.equal(err.message, `Cannot read source ${ws.paths.vrf.source}`);
  assert.ok(err.cause instanceof Deno.errors.NotFound);
  assert.deepEqual(await listDir(ws.ipc), []);
});

Deno.test("a write failure part-way removes the whole set, so no partial set is left", async () => {
  await using ws = await workspace();
  const old = makeCredentialSet();
  const next = makeCredentialSet({ counter: 1 });
  await writeCredentialSet(ws.secrets, old);
  const { hook, ops } = recorder();
  const store = new FileCredentialStore(ws.paths, hook);
  await store.place();

  // The certificate's target becomes a (non-empty) directory: its rename must fail after the
  // KES and VRF keys of the new set were already written.
  await Deno.remove(ws.paths.opcert.target);
  await Deno.mkdir(ws.paths.opcert.target);
  await Deno.writeTextFile(`${ws.paths.opcert.target}/keep`, "not a credential");
  await writeCredentialSet(ws.secrets, next);
  ops.length = 0;

  const err = await rejection(store.place());

  assert.ok(err instanceof Error);
  assert.equal(err.message, `Cannot write ${ws.paths.opcert.target} atomically`);
  assertNoKeyMaterial(allText(err), [old, next]);
  // Neither the old set nor a mix of old and new is left: the keys are gone.
  assert.equal(await exists(ws.paths.kes.target), false);
  assert.equal(await exists(ws.paths.vrf.target), false);
  assert.equal((await Deno.stat(ws.paths.opcert.target)).isDirectory, true);
  // No temp file is left either.
  assert.deepEqual(await listDir(ws.ipc), ["node.cert"]);
  assert.deepEqual(ops, [
    "write:kes",
    "write:vrf",
    "error:kes",
    "error:vrf",
    "error:opcert",
    "remove:kes",
    "remove:vrf",
    "error:opcert", // the directory cannot be removed; place() still reports the write error
  ]);
});

// ---- remove ---------------------------------------------------------------------------------

Deno.test("remove() unlinks all three targets and leaves the sources", async () => {
  await using ws = await workspace();
  const set = makeCredentialSet();
  await writeCredentialSet(ws.secrets, set);
  const { hook, ops } = recorder();
  const store = new FileCredentialStore(ws.paths, hook);
  await store.place();
  ops.length = 0;

  assert.deepEqual(await store.remove(), { removed: ["kes", "vrf", "opcert"] });

  assert.deepEqual(await listDir(ws.ipc), []);
  assert.deepEqual(await listDir(ws.secrets), ["kes.skey", "node.cert", "vrf.skey"]);
  assert.equal(await Deno.readTextFile(ws.paths.kes.source), set.kes);
  assert.deepEqual(ops, ["remove:kes", "remove:vrf", "remove:opcert"]);
});

Deno.test("remove() is idempotent and reports only the files that existed", async () => {
  await using ws = await workspace();
  await writeCredentialSet(ws.secrets);
  const store = new FileCredentialStore(ws.paths);
  assert.deepEqual(await store.remove(), { removed: [] });
  await store.place();
  await Deno.remove(ws.paths.vrf.target);
  assert.deepEqual(await store.remove(), { removed: ["kes", "opcert"] });
  assert.deepEqual(await store.remove(), { removed: [] });
});

Deno.test("remove() removes what it can and then reports what it could not", async () => {
  await using ws = await workspace();
  await writeCredentialSet(ws.secrets);
  const { hook, ops } = recorder();
  const store = new FileCredentialStore(ws.paths, hook);
  await store.place();
  await Deno.remove(ws.paths.kes.target);
  await Deno.mkdir(ws.paths.kes.target);
  await Deno.writeTextFile(`${ws.paths.kes.target}/keep`, "x");
  ops.length = 0;

  const err = await rejection(store.remove());

  assert.ok(err instanceof AggregateError);
  assert.equal(err.message, "Cannot remove 1 credential file(s)");
  assert.equal(err.errors.length, 1);
  assert.equal((err.errors[0] as Error).message, `Cannot remove ${ws.paths.kes.target}`);
  assert.equal(await exists(ws.paths.vrf.target), false);
  assert.equal(await exists(ws.paths.opcert.target), false);
  assert.deepEqual(ops, ["error:kes", "remove:vrf", "remove:opcert"]);
});

Deno.test("check() validates without placing anything", async () => {
  await using ws = await workspace();
  await writeCredentialSet(ws.secrets, makeCredentialSet({ counter: 3 }));
  const facts = await new FileCredentialStore(ws.paths).check();
  assert.equal(facts.issueCounter, 3);
  assert.deepEqual(await listDir(ws.ipc), []);
});

// ---- atomic write ---------------------------------------------------------------------------

Deno.test("writeFileAtomic writes through a temp file, with the mode asked for", async () => {
  await using ws = await workspace();
  const path = `${ws.ipc}/file`;
  await Deno.writeTextFile(path, "old");
  const oldInode = (await Deno.stat(path)).ino;

  await writeFileAtomic(path, new TextEncoder().encode("new content"));

  assert.equal(await Deno.readTextFile(path), "new content");
  assert.equal(await modeOf(path), 0o600);
  assert.notEqual((await Deno.stat(path)).ino, oldInode); // replaced by rename, not rewritten
  assert.deepEqual(await listDir(ws.ipc), ["file"]);
  await writeFileAtomic(path, new Uint8Array(0), 0o640);
  assert.equal(await modeOf(path), 0o640);
  assert.equal((await Deno.readFile(path)).length, 0);
});

Deno.test("writeFileAtomic leaves no temp file and the target as it was when the rename fails", async () => {
  await using ws = await workspace();
  // Running as root, permissions cannot make it fail: a directory at the target path does.
  const path = `${ws.ipc}/kes.skey`;
  await Deno.mkdir(path);
  await Deno.writeTextFile(`${path}/keep`, "x");
  const secret = makeCredentialSet().kes;

  const err = await rejection(writeFileAtomic(path, new TextEncoder().encode(secret)));

  assert.ok(err instanceof Error);
  assert.equal(err.message, `Cannot write ${path} atomically`);
  assert.ok(err.cause instanceof Error);
  assert.ok(!allText(err).includes(cborHexOf(secret).slice(0, 16)));
  assert.deepEqual(await listDir(ws.ipc), ["kes.skey"]);
  assert.deepEqual(await listDir(path), ["keep"]);
});

Deno.test("writeFileAtomic fails cleanly when the target's folder is missing", async () => {
  await using ws = await workspace();
  const path = `${ws.dir}/missing/kes.skey`;
  const err = await rejection(writeFileAtomic(path, new Uint8Array([1, 2, 3])));
  assert.ok(err instanceof Error);
  assert.equal(err.message, `Cannot write ${path} atomically`);
  assert.ok(err.cause instanceof Deno.errors.NotFound);
  assert.equal(await exists(`${ws.dir}/missing`), false);
});

Deno.test("hasContent compares bytes and treats a missing file as different", async () => {
  await using ws = await workspace();
  const path = `${ws.ipc}/f`;
  assert.equal(await hasContent(path, new Uint8Array([1])), false);
  await Deno.writeFile(path, new Uint8Array([1, 2, 3]));
  assert.equal(await hasContent(path, new Uint8Array([1, 2, 3])), true);
  assert.equal(await hasContent(path, new Uint8Array([1, 2, 4])), false);
  assert.equal(await hasContent(path, new Uint8Array([1, 2])), false);
});

Deno.test("removeIfPresent reports whether the file existed", async () => {
  await using ws = await workspace();
  const path = `${ws.ipc}/f`;
  await Deno.writeTextFile(path, "x");
  assert.equal(await removeIfPresent(path), true);
  assert.equal(await removeIfPresent(path), false);
});

Deno.test("remove() never deletes a directory standing at a target path, even an empty one", async () => {
  await using ws = await workspace();
  await Deno.mkdir(ws.paths.vrf.target);
  const { hook, ops } = recorder();
  const store = new FileCredentialStore(ws.paths, hook);

  const err = await rejection(store.remove());

  assert.ok(err instanceof AggregateError);
  assert.equal((await Deno.stat(ws.paths.vrf.target)).isDirectory, true);
  assert.deepEqual(ops, ["error:vrf"]);
});

// ---- decoys ---------------------------------------------------------------------------------

const decoySet = () => makeDecoyCredentials({ kesStartPeriod: 1000 });

Deno.test("placeDecoys() writes the decoy set with mode 0600; place() then renames the pool's keys over it", async () => {
  await using ws = await workspace();
  const real = makeCredentialSet();
  await writeCredentialSet(ws.secrets, real);
  const decoys = decoySet();
  const { hook, ops } = recorder();
  const store = new FileCredentialStore(ws.paths, hook, { decoys });

  assert.deepEqual(await store.placeDecoys(), { changed: ["kes", "vrf", "opcert"] });
  assert.deepEqual(await targets(ws.paths), {
    kes: decoys.kes,
    vrf: decoys.vrf,
    opcert: decoys.opcert,
  });
  for (const name of NAMES) assert.equal(await modeOf(ws.paths[name].target), 0o600, name);
  assert.deepEqual(await listDir(ws.ipc), ["kes.skey", "node.cert", "vrf.skey"]);
  assert.deepEqual(ops, ["decoy:kes", "decoy:vrf", "decoy:opcert"]);
  ops.length = 0;
  assert.deepEqual(await store.placeDecoys(), { changed: [] });
  assert.deepEqual(ops, ["unchanged:kes", "unchanged:vrf", "unchanged:opcert"]);

  // A reader that opened the decoy before the promotion still reads the decoy: the pool's key
  // arrives by rename, never by rewriting the file the node may be reading.
  using reader = await Deno.open(ws.paths.kes.target);
  assert.deepEqual((await store.place()).changed, ["kes", "vrf", "opcert"]);
  assert.deepEqual(await targets(ws.paths), textsOf(real));
  const held = new Uint8Array((await reader.stat()).size);
  await reader.read(held);
  assert.equal(new TextDecoder().decode(held), decoys.kes);

  // And back: the pool's keys leave by unlink, the decoys come again.
  await store.remove();
  await store.placeDecoys();
  assert.deepEqual(await targets(ws.paths), {
    kes: decoys.kes,
    vrf: decoys.vrf,
    opcert: decoys.opcert,
  });
});

Deno.test("placeDecoys() needs a decoy set holding every managed file", async () => {
  await using ws = await workspace();
  const err = await rejection(new FileCredentialStore(ws.paths).placeDecoys());
  assert.match(errorText(err), /Cannot place decoys: this store was made without a decoy set/);
  assert.throws(
    () =>
      new FileCredentialStore(ws.paths, undefined, {
        decoys: makeDecoyCredentials({ kesStartPeriod: 0, withKes: false }),
      }),
    /Cannot use the decoy set: it has no kes file, and kes is managed/,
  );
  assert.deepEqual(await listDir(ws.ipc), []);
});

Deno.test("a decoy copied into the sources is refused: a leader would never forge with it", async () => {
  await using ws = await workspace();
  const decoys = decoySet();
  await writeCredentialSet(ws.secrets, { ...makeCredentialSet(), vrf: decoys.vrf });
  const store = new FileCredentialStore(ws.paths, undefined, { decoys });
  // One at a time: a second promise made up front could reject before anything awaits it.
  for (const attempt of [() => store.place(), () => store.check()]) {
    const err = await rejection(attempt());
    assert.ok(err instanceof CredentialError);
    assert.equal(err.credential, "vrf");
    assert.equal(
      err.message,
      `Cannot use source ${ws.paths.vrf.source}: it is a forge-manager decoy (copied from a ` +
        "node's folder?), not the pool's key",
    );
  }
  assert.deepEqual(await listDir(ws.ipc), []);
});

// ---- with a KES agent -----------------------------------------------------------------------

Deno.test("without a KES key path, only the VRF key and the certificate are checked, placed and removed", async () => {
  await using ws = await workspace();
  const real = makeCredentialSet({ counter: 4 });
  // A KES key in the sources that does NOT match the certificate: with an agent it is never read.
  await writeCredentialSet(ws.secrets, { ...real, kes: makeCredentialSet().kes });
  // A stray kes.skey in the node's folder is not ours to touch either.
  await Deno.writeTextFile(ws.paths.kes.target, "left by an earlier setup");
  const { kes: _kes, ...agentPaths } = ws.paths;
  const decoys = makeDecoyCredentials({ kesStartPeriod: 1, withKes: false });
  const { hook, ops } = recorder();
  const store = new FileCredentialStore(agentPaths, hook, { decoys });

  const { changed, facts } = await store.place();
  assert.deepEqual(changed, ["vrf", "opcert"]);
  assert.equal(facts.issueCounter, 4);
  assert.equal(facts.hotKeyId, validateCredentialSet(real, LABELS).hotKeyId);
  assert.equal(await Deno.readTextFile(ws.paths.vrf.target), real.vrf);
  assert.equal(await Deno.readTextFile(ws.paths.opcert.target), real.opcert);
  assert.equal(await store.sourcesDiffer(), false);
  assert.deepEqual(await store.remove(), { removed: ["vrf", "opcert"] });
  assert.deepEqual(await store.placeDecoys(), { changed: ["vrf", "opcert"] });
  assert.equal(await Deno.readTextFile(ws.paths.opcert.target), decoys.opcert);
  assert.equal(await Deno.readTextFile(ws.paths.kes.target), "left by an earlier setup");
  assert.deepEqual(ops, [
    "write:vrf",
    "write:opcert",
    "remove:vrf",
    "remove:opcert",
    "decoy:vrf",
    "decoy:opcert",
  ]);
});
