/**
 * Issue 20's three rules end to end: three real sidecars (main.ts under the shipped permission
 * set) on the real control plane, Pod objects run by the simulated kubelet, each beside a simulated
 * node on the chain's clock (sim_node.ts `--network preview`: its tip follows the wall clock's
 * slot, less what its lag file says; it forges and records the pool's slots from a schedule file).
 * The operator's commands run as the shipped executable with the forge-manager-operator Role. Every
 * assertion about forging comes from the simulated nodes' own records; each test fails on any
 * overlap.
 *
 * - sync: a lagging standby does not take a failover from a synced one; a forging leader that falls
 *   behind hands over to a synced standby; with none left it forges on and says so; `handover --to`
 *   refuses a lagging target.
 * - the preferred replica: `prefer` brings the term to it, and after a failover away from it the
 *   leader hands it back once it has been ready and synced for PREFERRED_STABLE, never by a race.
 * - the leader schedule: an operator's handover and a Pod deletion asked for just before one of
 *   the pool's slots wait until it has passed; the old leader forges that slot, and no scheduled
 *   slot is lost or forged twice.
 */

import assert from "node:assert/strict";
import { FaultCluster, nowMs } from "../support/fault_cluster.ts";
import { FAULT_TEST_OPTIONS } from "../support/fault_suite.ts";
import { sharedControlPlane } from "../support/control_plane.ts";
import { sleep } from "../support/wait.ts";
import { totalOverlapMs } from "../support/forging_log.ts";
import { type Ran, runMain } from "../support/run_main.ts";
import {
  kesPeriodAt,
  NETWORK_KES_TIMING,
  slotAt,
  slotStartMs,
} from "../../lib/cardano/kes_period.ts";
import { makeCredentialSet } from "../support/keys.ts";

const TIMING = NETWORK_KES_TIMING.preview;
const KEYS = ["forge-0", "forge-1", "forge-2"];

/** A cluster of three replicas on the chain's clock, and the operator's commands. */
async function deployment(
  namespace: string,
  opts: { env?: Record<string, string>; slotsFile?: string; nodeShutdownMs?: number } = {},
) {
  const cp = await sharedControlPlane();
  const c = await FaultCluster.start({
    cp,
    namespace,
    env: { MAX_TIP_LAG_SLOTS: "20", ...opts.env },
    // A certificate valid on preview's clock (the sidecars judge it with NETWORK=preview).
    credentials: makeCredentialSet({ kesStartPeriod: kesPeriodAt(TIMING, Date.now()) }),
    ...(opts.nodeShutdownMs !== undefined ? { nodeShutdownMs: opts.nodeShutdownMs } : {}),
    chain: (key, root) => ({
      network: "preview",
      lagFile: `${root}/${key}.lag`,
      ...(opts.slotsFile !== undefined ? { leaderSlotsFile: opts.slotsFile } : {}),
    }),
  });
  const operator = await cp.mintIdentity({
    namespace,
    serviceAccount: "operator",
    roleName: "forge-manager-operator",
  });
  const run = (...args: string[]): Promise<Ran> =>
    runMain([...args, "--kubeconfig", operator, "-n", namespace]);
  const json = async (...args: string[]) => {
    const r = await run(...args, "--output", "json");
    assert.equal(r.code, 0, r.stderr + r.stdout);
    return JSON.parse(r.stdout);
  };
  /** Sets how many slots `key`'s node's tip lags (its incarnations share the file). */
  const lag = (key: string, slots: number) =>
    Deno.writeTextFile(`${c.root}/${key}.lag`, `${slots}`);
  /** Until `check` holds of the status (JSON). */
  const statusUntil = <T>(what: string, check: (s: Status) => T | undefined | false, ms = 40_000) =>
    c.waitFor(what, async () => check(await json("status")), ms);
  return { c, run, json, lag, statusUntil };
}

interface Row {
  pod: string;
  fresh: boolean;
  forging: boolean;
  sync?: string;
  tipLagSlots?: number;
  reason: string;
}
interface Status {
  replicas: Row[];
  lastHandover?: { id: string; to: string; reason?: string; result: string };
  nextSlot?: { at: string; inMs: number };
}

const row = (s: Status, pod: string) => s.replicas.find((r) => r.pod === pod);

Deno.test(
  "sync: a lagging replica never takes the term from a synced one, a leader that falls behind hands over, and with none synced the leader forges on and says so",
  FAULT_TEST_OPTIONS,
  async () => {
    const d = await deployment("rules-sync");
    await using _c = d.c;
    const leader = await d.c.waitSingleForger(30_000);
    await d.statusUntil(
      "three synced replicas",
      (s) => s.replicas.filter((r) => r.fresh && r.sync === "synced").length === 3,
    );
    const [lagging, synced] = KEYS.filter((k) => k !== leader);

    // A failover while one standby lags: the synced one takes it, the lagging one never forges.
    await d.lag(lagging!, 120);
    await d.statusUntil(`${lagging} lagging`, (s) => row(s, lagging!)?.sync === "lagging");
    const refused = await d.run("handover", "--to", lagging!);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stdout, new RegExp(`${lagging}'s node lags the chain`));
    const failoverAt = nowMs();
    await d.c.deletePod(leader);
    assert.equal(await d.c.waitSingleForger(20_000, [leader]), synced);
    assert.ok(
      !(await d.c.intervals()).some((i) => i.node.startsWith(`${lagging}/`) && i.end > failoverAt),
      `${lagging} forged while lagging`,
    );
    await d.c.recreate(leader);
    await d.statusUntil(`${leader} back and synced`, (s) => row(s, leader)?.sync === "synced");

    // The forging leader falls behind: it hands over to the one synced standby.
    const behindAt = nowMs();
    await d.lag(synced!, 120);
    assert.equal(await d.c.waitSingleForger(40_000, [synced!]), leader);
    const sync = await d.statusUntil(
      "the sync handover done",
      (s) =>
        s.lastHandover?.reason === "sync" && s.lastHandover.result === "done"
          ? s.lastHandover
          : undefined,
    );
    assert.equal(sync.to, leader);
    const handedAt =
      (await d.c.intervals()).find((i) => i.node.startsWith(`${leader}/`) && i.start > behindAt)!
        .start;
    console.log(
      `sync handover ${synced} -> ${leader}: ${
        (handedAt - behindAt).toFixed(0)
      } ms after its node fell behind`,
    );

    // Nobody synced: the leader forges on, and says so.
    await d.lag(leader, 120);
    const said = await d.statusUntil(
      "the leader forging unsynced",
      (s) => row(s, leader)?.reason === "forging_unsynced" ? row(s, leader) : undefined,
    );
    assert.equal(said!.sync, "lagging");
    assert.ok(said!.tipLagSlots! >= 120, `tip lag ${said!.tipLagSlots}`);
    assert.equal(await d.c.metric(leader, "forge_manager_forging_unsynced"), 1);
    await sleep(5_000);
    assert.deepEqual(await d.c.forgers(), [leader], "the leader stopped with nobody synced");
    const text = await d.run("status");
    assert.match(text.stdout, new RegExp(`^${leader}\\s.*lagging 12\\d.*forging_unsynced`, "m"));
    console.log(text.stdout);
    assert.equal(totalOverlapMs(await d.c.intervals()), 0, "two forged at once");
  },
);

Deno.test(
  "the preferred replica: prefer brings the term to it, and after a failover the leader hands it back once it has been ready and synced, never by a race",
  FAULT_TEST_OPTIONS,
  async () => {
    const d = await deployment("rules-preferred", { env: { PREFERRED_STABLE: "3" } });
    await using _c = d.c;
    const leader = await d.c.waitSingleForger(30_000);
    await d.statusUntil(
      "three synced replicas",
      (s) => s.replicas.filter((r) => r.fresh && r.sync === "synced").length === 3,
    );
    const preferred = KEYS.find((k) => k !== leader)!;
    const dry = await d.run("prefer", preferred, "--dry-run");
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /stands by ready and synced.*Nothing was changed/);
    const at = nowMs();
    const set = await d.run("prefer", preferred);
    assert.equal(set.code, 0, set.stderr + set.stdout);
    assert.equal(await d.c.waitSingleForger(30_000, [leader]), preferred);
    const first = await d.statusUntil(
      "the return done",
      (s) =>
        s.lastHandover?.reason === "preferred" && s.lastHandover.result === "done"
          ? s.lastHandover
          : undefined,
    );
    assert.equal(first.to, preferred);
    const returned = (await d.c.intervals()).find((i) => i.node.startsWith(`${preferred}/`))!;
    console.log(
      `prefer ${preferred}: forging ${(returned.start - at).toFixed(0)} ms after the command`,
    );

    // A failover away from it; its new pod gets the term back by the leader's handover.
    await d.c.deletePod(preferred);
    const other = await d.c.waitSingleForger(20_000, [preferred]);
    const back = await d.c.recreate(preferred);
    const upAt = nowMs();
    assert.equal(await d.c.waitSingleForger(60_000, [other]), preferred);
    const second = await d.statusUntil(
      "the second return done",
      (s) =>
        s.lastHandover?.reason === "preferred" && s.lastHandover.id !== first.id &&
          s.lastHandover.result === "done"
          ? s.lastHandover
          : undefined,
    );
    assert.equal(second.to, preferred);
    const intervals = await d.c.intervals();
    const again = intervals.find((i) => i.node === back.label)!;
    const otherEnd = intervals.filter((i) => i.node.startsWith(`${other}/`)).at(-1)!.end;
    console.log(
      `return to ${preferred} after its restart: forging ${
        (again.start - upAt).toFixed(0)
      } ms after its pod was up, gap ${(again.start - otherEnd).toFixed(0)} ms`,
    );
    // Never a race: it took the Lease from a release that named it, never a held or free one.
    const events = await d.c.logEvents(upAt);
    assert.ok(
      events.some((e) => e.startsWith(`${back.label}: leader after ${other}_`)),
      events.join("\n"),
    );
    assert.equal(totalOverlapMs(intervals), 0, "two forged at once");
    const cleared = await d.run("prefer", "--clear");
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.match((await d.run("status")).stdout, /^Preferred: none$/m);
  },
);

Deno.test(
  "the leader schedule: a handover and a Pod deletion just before one of the pool's slots wait until it has passed, and no scheduled slot is lost",
  FAULT_TEST_OPTIONS,
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "fm-schedule-" });
    try {
      // The pool's slots: one every 12 s, from 30 s on, for five minutes.
      const first = slotAt(TIMING, Date.now()) + 30;
      const slots = Array.from({ length: 25 }, (_, i) => first + 12 * i);
      const slotsFile = `${dir}/slots.json`;
      await Deno.writeTextFile(
        slotsFile,
        JSON.stringify({
          status: "ok",
          assignedSlots: slots.map((slot, i) => ({ no: i + 1, slot })),
        }),
      );
      const d = await deployment("rules-schedule", {
        slotsFile,
        nodeShutdownMs: 15_000,
        env: { LEADER_SCHEDULE_FILE: slotsFile, LEADER_SLOT_MARGIN: "2" },
      });
      await using _c = d.c;
      const leader = await d.c.waitSingleForger(30_000);
      const steadyAt = Date.now();
      const status = await d.statusUntil("the next slot in status", (s) => s.nextSlot);
      assert.ok(status.inMs < 40_000, JSON.stringify(status));

      /** The next slot at least 6 s ahead, and when to act: 1 s before it begins. */
      const nextSlot = () => {
        const slot = slots.find((s) => slotStartMs(TIMING, s) > Date.now() + 6_000)!;
        return { slot, start: slotStartMs(TIMING, slot) };
      };
      const forgedBy = async (slot: number) => (await d.c.forgedSlots()).get(slot) ?? [];

      // An operator's handover 1 s before a slot: the leader forges the slot, then hands over.
      const h = nextSlot();
      await sleep(h.start - 1_000 - Date.now());
      const target = KEYS.find((k) => k !== leader)!;
      const handover = await d.run("handover", "--to", target, "--timeout", "30s");
      assert.equal(handover.code, 0, handover.stdout + handover.stderr);
      assert.match(handover.stdout, /waits for one of the pool's leader slots to pass/);
      assert.deepEqual((await forgedBy(h.slot)).map((n) => n.split("/")[0]), [leader]);
      const intervals = await d.c.intervals();
      const stopped = intervals.filter((i) => i.node.startsWith(`${leader}/`)).at(-1)!.end;
      assert.ok(stopped > h.start + 1_000, `stopped ${stopped - h.start} ms after the slot began`);
      console.log(
        `handover asked 1 s before a slot: the old node stopped ${
          ((stopped - h.start) / 1000).toFixed(2)
        } s after the slot began (its end + margin: 3 s)`,
      );
      assert.equal(
        await d.c.metric(
          leader,
          'forge_manager_slot_waits_total{trigger="handover",outcome="passed"}',
        ),
        1,
      );

      // A Pod deletion 1 s before a slot, the node shutting down for 15 s and forging meanwhile.
      d.c.kubelet.termination = "ordered";
      const del = nextSlot();
      await sleep(del.start - 1_000 - Date.now());
      const deletedAt = nowMs();
      await d.c.deletePod(target);
      const next = await d.c.waitSingleForger(20_000, [target]);
      assert.deepEqual((await forgedBy(del.slot)).map((n) => n.split("/")[0]), [target]);
      const after = await d.c.intervals();
      const oldEnd = after.filter((i) => i.node.startsWith(`${target}/`)).at(-1)!.end;
      assert.ok(oldEnd > del.start + 1_000, `the deleted leader stopped before its slot ended`);
      console.log(
        `pod deletion ${target} -> ${next}: old node stopped ${
          ((oldEnd - deletedAt) / 1000).toFixed(2)
        } s after the delete (slot began 1 s after it)`,
      );
      await d.c.recreate(target);

      // Every scheduled slot since the cluster was steady: forged once, by one node.
      const lastSlot = slotAt(TIMING, Date.now()) - 1;
      const forged = await d.c.forgedSlots();
      const due = slots.filter((s) => slotStartMs(TIMING, s) > steadyAt && s <= lastSlot);
      assert.ok(due.length >= 3, `only ${due.length} slots in the window`);
      for (const slot of due) {
        assert.equal(
          (forged.get(slot) ?? []).length,
          1,
          `slot ${slot}: ${forged.get(slot) ?? "lost"}`,
        );
      }
      assert.equal(totalOverlapMs(await d.c.intervals()), 0, "two forged at once");
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
);
