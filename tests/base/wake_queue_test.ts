/**
 * The loops' inbox (lib/base/wake_queue.ts): queued events first and in order, a tick at the
 * wake-up time, a posted event waking a pending `next` and cancelling its timer. Virtual time.
 */

import assert from "node:assert/strict";
import { WakeQueue } from "../../lib/base/wake_queue.ts";
import { VirtualClock } from "../support/virtual_clock.ts";

type E = { kind: "tick" } | { kind: "posted"; n: number };
const settle = () => new Promise<void>((r) => setTimeout(r, 0));

Deno.test("queued events come first, in order, and the wake-up time is not asked for them", async () => {
  const clock = new VirtualClock();
  const q = new WakeQueue<E>(clock, { kind: "tick" });
  q.post({ kind: "posted", n: 1 });
  q.post({ kind: "posted", n: 2 });
  assert.equal(q.empty(), false);
  const never = () => assert.fail("asked for the wake-up time with events waiting");
  assert.deepEqual(await q.next(never), { kind: "posted", n: 1 });
  assert.deepEqual(await q.next(never), { kind: "posted", n: 2 });
  assert.equal(q.empty(), true);
});

Deno.test("with nothing queued, a tick comes at the wake-up time, at least 1 ms on", async () => {
  const clock = new VirtualClock();
  const q = new WakeQueue<E>(clock, { kind: "tick" });
  const start = clock.monotonic();
  let got: E | undefined;
  q.next((now) => now + 500).then((e) => got = e);
  await clock.advance(499, settle);
  assert.equal(got, undefined, "ticked early");
  await clock.advance(1, settle);
  assert.deepEqual(got, { kind: "tick" });
  assert.equal(clock.monotonic() - start, 500);

  // A wake-up time already due does not tick at the same instant.
  got = undefined;
  q.next((now) => now - 10).then((e) => got = e);
  await settle();
  assert.equal(got, undefined, "a due time ticked at once: the loop would spin");
  await clock.advance(1, settle);
  assert.deepEqual(got, { kind: "tick" });

  // No wake-up time: only an event ends the wait.
  got = undefined;
  q.next(() => undefined).then((e) => got = e);
  await clock.advance(60_000, settle);
  assert.equal(got, undefined);
  q.post({ kind: "posted", n: 3 });
  await settle();
  assert.deepEqual(got, { kind: "posted", n: 3 });
});

Deno.test("an event posted while next waits ends the wait and cancels its tick", async () => {
  const clock = new VirtualClock();
  const q = new WakeQueue<E>(clock, { kind: "tick" });
  const got: E[] = [];
  q.next((now) => now + 1_000).then((e) => got.push(e));
  await clock.advance(100, settle);
  q.post({ kind: "posted", n: 1 });
  await settle();
  assert.deepEqual(got, [{ kind: "posted", n: 1 }]);
  assert.equal(clock.nextAt, undefined, "its timer still runs");
  assert.equal(q.empty(), true);
});
