/**
 * The operator's side of the effects (cfg.operations): reading the CardanoLeader's requests and
 * our own Pod, publishing this replica's state and a handover's result. Like the rest of the
 * runner (`effects.ts`), it decides nothing; every result becomes an event.
 *
 * @module
 */

import type { Effect, ForgingEvent, OpsEffect } from "../forging/events.ts";
import { errorText } from "../base/log.ts";
import type { EffectPorts } from "./effects.ts";
import type { PodDeletion } from "../kube/own_pod.ts";

/** Performs the ops effects; holds what publishing needs between calls. */
export class OpsEffects {
  readonly #p: EffectPorts;
  readonly #post: (event: ForgingEvent) => void;
  /** The last publish (one at a time, in order). */
  #publishing: Promise<unknown> = Promise.resolve();
  /** The last published (phase, reason) and since when (wall, RFC 3339). */
  #published: { key: string; since: string } | undefined;

  constructor(ports: EffectPorts, post: (event: ForgingEvent) => void) {
    this.#p = ports;
    this.#post = post;
  }

  async run(e: Extract<Effect, { kind: OpsEffect["kind"] }>): Promise<void> {
    const { clock, control, ownPod, config, identity } = this.#p;
    switch (e.kind) {
      case "read_control":
        if (control === undefined) return this.#post({ kind: "control_read", control: {} });
        try {
          return this.#post({ kind: "control_read", control: await control.read(e.timeoutMs) });
        } catch (err) {
          return this.#post({ kind: "control_read_failed", error: errorText(err) });
        }
      case "check_pod":
        if (ownPod === undefined) return this.#post({ kind: "pod_checked" });
        try {
          const deletion = await ownPod.terminating(e.timeoutMs);
          return this.#post(podEvent(deletion, false));
        } catch (err) {
          return this.#post({ kind: "pod_check_failed", error: errorText(err) });
        }
      case "publish_replica": {
        if (control === undefined) return;
        const now = clock.wall().toISOString();
        const key = `${e.replica.phase}/${e.replica.reason}`;
        if (this.#published?.key !== key) this.#published = { key, since: now };
        const entry = { ...e.replica, identity, since: this.#published.since, heartbeat: now };
        // One at a time, in order: two patches in flight may be applied out of order, and the
        // older state would stand until the next heartbeat.
        const write = this.#publishing.then(() =>
          control.publishReplica(config.podName, entry, 5000).catch((err) =>
            this.#post({ kind: "effect_failed", effect: e.kind, error: errorText(err) })
          )
        );
        this.#publishing = write;
        return await write;
      }
      case "report_handover":
        if (control === undefined) return;
        await control.reportHandover(
          {
            id: e.id,
            to: e.to,
            reason: e.reason,
            result: e.result,
            at: clock.wall().toISOString(),
          },
          5000,
        ).catch((err) =>
          this.#post({ kind: "effect_failed", effect: e.kind, error: errorText(err) })
        );
        return;
    }
  }
}

/** Our Pod as read or watched, as an event (with the deletion's grace period, if it said). */
export function podEvent(
  deletion: false | PodDeletion,
  watched: boolean,
): Extract<ForgingEvent, { kind: "pod_terminating" | "pod_checked" }> {
  const from = watched ? { watched: true } : {};
  if (deletion === false) return { kind: "pod_checked", ...from };
  return {
    kind: "pod_terminating",
    ...from,
    ...(deletion.graceSeconds !== undefined ? { graceMs: deletion.graceSeconds * 1000 } : {}),
  };
}
