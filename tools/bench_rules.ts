/**
 * The benchmark's rounds for issue 20 (`deno task bench` runs them after its failovers):
 *
 * - a planned handover that waits for one of the pool's slots: a slot is put in the pods' leader
 *   schedule (LEADER_SCHEDULE_FILE; the sidecars read it every 30 s, so the slots are written
 *   well ahead, one per round), and 1 s before it begins the leader's sidecar gets SIGTERM (a
 *   planned shutdown). Figures: how long the old node went on forging after the request, whether
 *   it forged the slot (the simulated node records each scheduled slot it forges: none is a block
 *   lost), how long after the slot's end it stopped, and the gap to the new forger;
 * - the return to the preferred replica: `forge-manager prefer <standby>` (the shipped
 *   executable, the operator's Role), until that pod forges; then `prefer --clear`.
 *
 * The pods' nodes run on the chain's clock (sim_node.ts `--network preview`), so that each
 * replica's sync is known (the preferred replica must be synced).
 *
 * @module
 */

import { slotAt, slotStartMs } from "../lib/cardano/kes_period.ts";
import { NETWORK_KES_TIMING } from "../lib/cardano/kes_period.ts";
import { forgedSlots, readForgingRecords } from "../tests/support/forging_log.ts";
import type { Pod } from "../tests/support/pod.ts";
import { runMain } from "../tests/support/run_main.ts";
import { intervalsOf, nowMs, waitForSingleForger } from "../tests/support/scenario.ts";
import { sleep } from "../tests/support/wait.ts";

/** The network the bench's nodes run on (its certificate must be valid on its clock). */
export const BENCH_NETWORK = "preview" as const;
const TIMING = NETWORK_KES_TIMING[BENCH_NETWORK];

/** The environment the bench's sidecars get for these rounds. */
export function rulesEnv(slotsFile: string): Record<string, string> {
  return {
    LEADER_SCHEDULE_FILE: slotsFile,
    // Short, so that a round does not wait a minute; the production default is 60 s.
    PREFERRED_STABLE: String(PREFERRED_STABLE_S),
  };
}

/** PREFERRED_STABLE in the bench (seconds). */
export const PREFERRED_STABLE_S = 10;

/** LEADER_SLOT_MARGIN as shipped (seconds). */
export const SLOT_MARGIN_S = 5;

/** One planned handover that waited for a slot. */
export interface SlotWaitRound {
  /** From the SIGTERM (1 s before the slot began) until the old node stopped forging. */
  waitedMs: number;
  /** From the slot's end until the old node stopped (>= 0: the slot had passed). */
  stopAfterSlotEndMs: number;
  /** The nodes that forged the slot (one: the old leader's; none would be a block lost). */
  forgedBy: string[];
  oldLeader: string;
  /** From the old node's stop until the new one forged. */
  gapMs: number;
}

/** One return to the preferred replica. */
export interface PreferredRound {
  /** From the `prefer` command's write of the spec until the preferred pod forged. */
  returnMs: number;
  /** From the old node's stop until the preferred one forged. */
  gapMs: number;
}

/** What the rounds measured. */
export interface RulesFigures {
  slotWaits: SlotWaitRound[];
  preferred: PreferredRound[];
}

/** What the rounds act on. */
export interface RulesContext {
  live: Pod[];
  leader: Pod;
  slotsFile: string;
  /** An operator's kubeconfig (forge-manager-operator Role) and the namespace. */
  operator: string;
  namespace: string;
  log: (line: string) => void;
}

/** Runs `rounds` of each; returns the figures and the leader at the end. */
export async function benchRules(
  ctx: RulesContext,
  rounds: number,
): Promise<{ figures: RulesFigures; leader: Pod }> {
  let leader = ctx.leader;
  // One slot per round, 45 s apart, the first 40 s ahead (the sidecars read the file every 30 s).
  const first = slotAt(TIMING, Date.now()) + 40;
  const slots = Array.from({ length: rounds }, (_, i) => first + 45 * i);
  await Deno.writeTextFile(ctx.slotsFile, slots.map((s) => `${s}\n`).join(""));
  const slotWaits: SlotWaitRound[] = [];
  for (const slot of slots) {
    const start = slotStartMs(TIMING, slot);
    await sleep(Math.max(0, start - 1_000 - Date.now()));
    const at = nowMs();
    leader.signalSidecar("SIGTERM");
    const next = await waitForSingleForger(ctx.live, 60_000, [leader.name]);
    const intervals = await intervalsOf(ctx.live);
    const stopped = intervals.filter((i) => i.node === leader.name && i.start < at).at(-1)!.end;
    const started = intervals.find((i) => i.node === next.name && i.start > at)!.start;
    const forged = forgedSlots(
      await readForgingRecords(Object.fromEntries(ctx.live.map((p) => [p.name, p.record]))),
    );
    const round: SlotWaitRound = {
      waitedMs: stopped - at,
      stopAfterSlotEndMs: stopped - (start + TIMING.slotLengthMs),
      forgedBy: forged.get(slot) ?? [],
      oldLeader: leader.name,
      gapMs: started - stopped,
    };
    slotWaits.push(round);
    ctx.log(
      `slot wait ${slotWaits.length}/${rounds}: SIGTERM 1 s before a slot; ${leader.name} forged ` +
        `on ${(round.waitedMs / 1000).toFixed(2)} s (stopped ${
          (round.stopAfterSlotEndMs / 1000).toFixed(2)
        } s after the slot's end), the slot forged by ${round.forgedBy.join(", ") || "nobody"}, ` +
        `gap to ${next.name} ${round.gapMs.toFixed(0)} ms`,
    );
    leader.restartSidecar();
    await sleep(3000); // it joins as a standby
    leader = next;
  }

  const preferred: PreferredRound[] = [];
  // The leader a return replaced steps aside for two lease durations: not a target then.
  let aside: Pod | undefined;
  for (let r = 0; r < rounds; r++) {
    // Every standby's entry must say synced: the sidecars publish within a heartbeat.
    await sleep(12_000);
    const target = ctx.live.find((p) => p !== leader && p !== aside)!;
    const prefer = await operatorCommand(ctx, "prefer", target.name);
    // From the spec's write (the command returns once it is written).
    const at = nowMs();
    if (prefer.code !== 0) throw new Error(`prefer ${target.name} failed: ${prefer.stdout}`);
    const next = await waitForSingleForger(ctx.live, 60_000, [leader.name]);
    const intervals = await intervalsOf(ctx.live);
    const stopped = intervals.filter((i) => i.node === leader.name && i.start < at).at(-1)!.end;
    const started = intervals.find((i) => i.node === next.name && i.start > at)!.start;
    if (next !== target) throw new Error(`the term went to ${next.name}, not ${target.name}`);
    preferred.push({ returnMs: started - at, gapMs: started - stopped });
    ctx.log(
      `preferred ${r + 1}/${rounds}: prefer ${target.name}: forging ${
        ((started - at) / 1000).toFixed(2)
      } s after the spec was written (PREFERRED_STABLE ${PREFERRED_STABLE_S} s), gap ${
        (started - stopped).toFixed(0)
      } ms`,
    );
    const clear = await operatorCommand(ctx, "prefer", "--clear");
    if (clear.code !== 0) throw new Error(`prefer --clear failed: ${clear.stdout}`);
    aside = leader;
    leader = next;
  }
  return { figures: { slotWaits, preferred }, leader };
}

function operatorCommand(ctx: RulesContext, ...args: string[]) {
  return runMain([...args, "--kubeconfig", ctx.operator, "-n", ctx.namespace]);
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
  return { median: at(0.5), p95: at(0.95), max: s[s.length - 1] ?? NaN };
}

/** The rounds' table, each figure beside its target. */
export function rulesReport(rules: RulesFigures, transport: string): string {
  const f = (x: number, d = 0) => x.toFixed(d).padStart(8);
  const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");
  const lines = [`\nissue 20's planned handovers (set ${transport}; median, p95, max):`];
  // Asked 1 s before the slot: that second, the slot, the margin, and 1 s for the stop itself.
  const slotWaitMax = (1 + 1 + SLOT_MARGIN_S + 1) * 1000;
  const waited = stats(rules.slotWaits.map((r) => r.waitedMs));
  const gap = stats(rules.slotWaits.map((r) => r.gapMs));
  const kept =
    rules.slotWaits.filter((r) =>
      r.forgedBy.length === 1 && r.forgedBy[0] === r.oldLeader && r.stopAfterSlotEndMs >= 0
    ).length;
  lines.push(
    `handover at a slot: waited (s) ${f(waited.median / 1000, 2)}  ${f(waited.p95 / 1000, 2)}  ${
      f(waited.max / 1000, 2)
    }   <= ${slotWaitMax / 1000} ${verdict(waited.max <= slotWaitMax)}`,
    `  the slot forged once, by the old leader, before it stopped: ${kept}/${rules.slotWaits.length}` +
      `   all ${verdict(kept === rules.slotWaits.length)}`,
    `  gap to the new forger (ms) ${f(gap.median)}  ${f(gap.p95)}  ${f(gap.max)}   <= 1000 ${
      verdict(gap.max <= 1000)
    }`,
  );
  const ret = stats(rules.preferred.map((r) => r.returnMs));
  const rgap = stats(rules.preferred.map((r) => r.gapMs));
  const returnTarget = (PREFERRED_STABLE_S + 1) * 1000;
  lines.push(
    `return to the preferred replica (s) ${f(ret.median / 1000, 2)}  ${f(ret.p95 / 1000, 2)}  ${
      f(ret.max / 1000, 2)
    }   <= PREFERRED_STABLE + 1 (${returnTarget / 1000}) ${verdict(ret.max <= returnTarget)}`,
    `  gap (ms) ${f(rgap.median)}  ${f(rgap.p95)}  ${f(rgap.max)}   <= 1000 ${
      verdict(rgap.max <= 1000)
    }`,
  );
  return lines.join("\n");
}
