/**
 * The last resort the core and the guard share, with no help from the worker or the API server:
 * unlink the forging keys (never truncate: for cardano-node only a missing file disables
 * forging), then SIGHUP the node process found by its exact name (only after the unlinks, so the
 * node reads the folder without them). Our own code only, no npm imports.
 *
 * @module
 */

import { removeIfPresent } from "../base/atomic_write.ts";
import { errorText } from "../base/log.ts";
import type { NodeProcess } from "./node_process.ts";

/** What a fail-safe stop did. `ok` when every unlink and the signal (if a node runs) succeeded. */
export interface FailSafeResult {
  ok: boolean;
  /** The targets that existed and were removed. */
  removed: string[];
  /** The node signalled, if one was running. */
  pid?: number;
  /** Each failure, naming what failed. */
  errors: string[];
}

/** Unlinks every target, then SIGHUPs the node if one runs. Never throws. */
export async function removeKeysAndSignal(
  targets: readonly string[],
  node: NodeProcess,
): Promise<FailSafeResult> {
  const removed: string[] = [];
  const errors: string[] = [];
  for (const target of targets) {
    try {
      if (await removeIfPresent(target)) removed.push(target);
    } catch (err) {
      errors.push(errorText(err));
    }
  }
  let pid: number | undefined;
  try {
    const found = await node.find();
    if (found !== undefined) {
      pid = found.pid;
      await node.hangup(found);
    }
  } catch (err) {
    errors.push(`Cannot signal the node: ${errorText(err)}`);
  }
  return { ok: errors.length === 0, removed, ...(pid !== undefined ? { pid } : {}), errors };
}
