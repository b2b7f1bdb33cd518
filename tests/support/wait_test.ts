import assert from "node:assert/strict";
import { sleep, waitUntil } from "./wait.ts";

Deno.test("waitUntil returns the first value that is neither undefined nor false", async () => {
  let calls = 0;
  const value = await waitUntil("the third call", () => {
    calls++;
    if (calls === 1) return undefined;
    if (calls === 2) return false;
    return { calls };
  }, { timeoutMs: 1000, intervalMs: 1 });
  assert.deepEqual(value, { calls: 3 });
});

Deno.test("waitUntil names what it waited for, and its detail, when time runs out", async () => {
  let calls = 0;
  await assert.rejects(
    waitUntil("the moon to turn blue", () => {
      calls++;
      return false;
    }, { timeoutMs: 30, intervalMs: 5, detail: () => "it is grey" }),
    (err: Error) => {
      assert.match(err.message, /^Timed out after 30 ms waiting for the moon to turn blue\n/);
      assert.match(err.message, /it is grey$/);
      return true;
    },
  );
  assert.ok(calls >= 2, `checked ${calls} times`);
});

Deno.test("waitUntil fails instead of hanging when a check never returns", async () => {
  const never = Promise.withResolvers<boolean>();
  const started = performance.now();
  await assert.rejects(
    waitUntil("a check that hangs", () => never.promise, 10),
    /Timed out after 10 ms waiting for a check that hangs \(the last check did not return\)/,
  );
  assert.ok(performance.now() - started < 3000);
  never.resolve(true);
});

Deno.test("waitUntil passes on the error a check throws", async () => {
  await assert.rejects(
    waitUntil("nothing", () => Promise.reject(new Error("Cannot look: it broke")), 1000),
    /^Error: Cannot look: it broke$/,
  );
});

Deno.test("sleep waits at least the time asked", async () => {
  const started = performance.now();
  await sleep(20);
  assert.ok(performance.now() - started >= 19);
});
