/**
 * The pool's leader schedule: the slots in which the pool may forge, as the operator computed them
 * with the VRF signing key (forge-manager never needs that key). Read from a file
 * (LEADER_SCHEDULE_FILE; in Kubernetes a mounted Secret), in any of these forms:
 *
 * - the JSON `cncli leaderlog` prints: `{"status": "ok", "epoch": ..., "assignedSlots": [{"no":
 *   1, "slot": 13083245, "slotInEpoch": 382445, "at": "..."}, ...]}` (its `{"status": "error",
 *   "errorMessage": ...}` is refused with that message);
 * - a JSON array of such objects (several epochs, e.g. `jq -s . current.json next.json`), of the
 *   entries `cardano-cli query leadership-schedule --output-json` prints (`{"slotNumber": N,
 *   "slotTime": "..."}`), of `{"slot": N}`, or of plain numbers;
 * - plain text: one absolute slot number per line; blank lines and lines starting with `#` are
 *   skipped.
 *
 * The schedule is sensitive (it tells an attacker when to strike): a problem names the line or the
 * entry, never a slot.
 *
 * Pure: the caller reads the file.
 *
 * @module
 */

/** A schedule that cannot be read; the message names where, never a slot. */
export class ScheduleError extends Error {
  constructor(message: string) {
    super(`Cannot read the leader schedule: ${message}`);
    this.name = "ScheduleError";
  }
}

/** Whether `value` is a slot number: a non-negative safe integer. */
function isSlot(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** The slots of one JSON entry (`where` names it in errors). */
function slotsOfEntry(entry: unknown, where: string): number[] {
  if (isSlot(entry)) return [entry];
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    throw new ScheduleError(`${where} is not a slot number or an object`);
  }
  const fields = entry as Record<string, unknown>;
  if ("assignedSlots" in fields || "status" in fields) return slotsOfLeaderlog(fields, where);
  const slot = fields.slot ?? fields.slotNumber;
  if (!isSlot(slot)) {
    throw new ScheduleError(`${where} has no slot (expected "slot" or "slotNumber": an integer)`);
  }
  return [slot];
}

/** The slots of a `cncli leaderlog` result. */
function slotsOfLeaderlog(log: Record<string, unknown>, where: string): number[] {
  if (log.status !== undefined && log.status !== "ok") {
    const why = typeof log.errorMessage === "string" ? `: ${log.errorMessage}` : "";
    throw new ScheduleError(`${where} is a cncli leaderlog error${why}`);
  }
  const assigned = log.assignedSlots;
  if (!Array.isArray(assigned)) {
    throw new ScheduleError(`${where} has no assignedSlots array`);
  }
  return assigned.flatMap((slot, i) => {
    const value = (slot as Record<string, unknown> | null)?.slot;
    if (!isSlot(value)) {
      throw new ScheduleError(`${where}, assignedSlots[${i}] has no slot (an integer)`);
    }
    return [value];
  });
}

/** The slots of a plain list: one per line, `#` comments and blank lines skipped. */
function slotsOfText(text: string): number[] {
  const slots: number[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const value = /^\d+$/.test(line) ? Number(line) : NaN;
    if (!isSlot(value)) {
      throw new ScheduleError(`line ${i + 1} is not a slot number (one per line, # for comments)`);
    }
    slots.push(value);
  });
  return slots;
}

/**
 * The slots of a schedule file's text, ascending and without duplicates (an empty schedule is
 * allowed: no slot to wait for).
 *
 * @throws {ScheduleError} naming the line or entry that is not a slot, never a slot
 */
export function parseLeaderSchedule(text: string): number[] {
  const trimmed = text.trim();
  let slots: number[];
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch {
      throw new ScheduleError("it starts like JSON but is not valid JSON");
    }
    slots = Array.isArray(json)
      ? json.flatMap((entry, i) => slotsOfEntry(entry, `entry ${i}`))
      : slotsOfEntry(json, "the object");
  } else slots = slotsOfText(text);
  return [...new Set(slots)].sort((a, b) => a - b);
}
