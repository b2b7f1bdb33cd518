/**
 * KES period arithmetic: which KES period it is now, and how many periods an operational
 * certificate has left. A certificate is valid for `maxKESEvolutions` periods starting at its
 * `kes_start_period`; the current period is `slot / slotsPerKESPeriod` (absolute slot number).
 *
 * Networks with a Byron era (mainnet, preprod) changed slot length when Shelley started, so the
 * wall clock maps to slots from the first Shelley slot, not from the genesis `systemStart`.
 *
 * Pure: needs no permissions; callers read the genesis file and pass the time.
 *
 * @module
 */

/** The genesis values that turn wall-clock time into KES periods. */
export interface KesTiming {
  /** Slots per KES period (mainnet 129600, i.e. 36 hours). */
  slotsPerKESPeriod: number;
  /** Periods a certificate is valid for (mainnet 62, about 93 days). */
  maxKESEvolutions: number;
  /** Slot length of the Shelley-based eras in milliseconds (mainnet 1000). */
  slotLengthMs: number;
  /** The first slot of the Shelley era (mainnet 4492800; 0 on networks without Byron). */
  eraStartSlot: number;
  /** Wall-clock time of `eraStartSlot`, in ms since the epoch. */
  eraStartMs: number;
}

/** Mainnet: Shelley started at slot 4492800, 2020-07-29T21:44:51Z, after 20-second Byron slots. */
export const MAINNET_KES_TIMING: Readonly<KesTiming> = Object.freeze({
  slotsPerKESPeriod: 129600,
  maxKESEvolutions: 62,
  slotLengthMs: 1000,
  eraStartSlot: 4492800,
  eraStartMs: Date.UTC(2020, 6, 29, 21, 44, 51),
});

/** Where a certificate stands at some moment. */
export interface KesPeriodStatus {
  /** The current absolute slot. */
  slot: number;
  /** The current KES period. */
  currentPeriod: number;
  /** The certificate's first valid period. */
  startPeriod: number;
  /** The first period in which the certificate is no longer valid (start + maxKESEvolutions). */
  endPeriod: number;
  /** Periods left including the current one (0 once expired; all of them if not yet valid). */
  remainingPeriods: number;
  /** When the certificate expires (start of `endPeriod`), in ms since the epoch. */
  expiresAtMs: number;
  /** Whether the certificate is valid now: start <= current < end. */
  valid: boolean;
}

/**
 * Reads the KES timing from a parsed shelley-genesis.json (`slotsPerKESPeriod`,
 * `maxKESEvolutions`, `slotLength` in seconds, `systemStart`).
 *
 * @param genesis the parsed JSON
 * @param eraStart where the Shelley era starts if the network had a Byron era before it (for
 *   mainnet `{slot: 4492800, timeMs: Date.UTC(2020, 6, 29, 21, 44, 51)}`); defaults to slot 0
 *   at `systemStart`, right for networks that start in Shelley or later
 * @throws {Error} naming the field, its value and the rule, if a field is missing or invalid
 */
export function kesTimingFromGenesis(
  genesis: unknown,
  eraStart?: { slot: number; timeMs: number },
): KesTiming {
  const fields = (typeof genesis === "object" && genesis !== null ? genesis : {}) as Record<
    string,
    unknown
  >;
  const positiveInteger = (name: string): number => {
    const value = fields[name];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
      throw new Error(
        `Cannot read shelley genesis: ${name} is ${
          JSON.stringify(value)
        }, expected a positive integer`,
      );
    }
    return value;
  };
  const slotsPerKESPeriod = positiveInteger("slotsPerKESPeriod");
  const maxKESEvolutions = positiveInteger("maxKESEvolutions");
  const slotLength = fields.slotLength;
  if (typeof slotLength !== "number" || !(slotLength > 0)) {
    throw new Error(
      `Cannot read shelley genesis: slotLength is ${
        JSON.stringify(slotLength)
      }, expected seconds > 0`,
    );
  }
  const systemStartMs = typeof fields.systemStart === "string"
    ? Date.parse(fields.systemStart)
    : NaN;
  if (Number.isNaN(systemStartMs)) {
    throw new Error(
      `Cannot read shelley genesis: systemStart is ${
        JSON.stringify(fields.systemStart)
      }, expected an ISO 8601 time`,
    );
  }
  return {
    slotsPerKESPeriod,
    maxKESEvolutions,
    slotLengthMs: Math.round(slotLength * 1000),
    eraStartSlot: eraStart?.slot ?? 0,
    eraStartMs: eraStart?.timeMs ?? systemStartMs,
  };
}

/**
 * The absolute slot at `nowMs`.
 *
 * @throws {RangeError} for a time before the Shelley era start
 */
export function slotAt(timing: KesTiming, nowMs: number): number {
  if (nowMs < timing.eraStartMs) {
    throw new RangeError(
      `Cannot compute the slot at ${new Date(nowMs).toISOString()}: it is before the era start ${
        new Date(timing.eraStartMs).toISOString()
      }`,
    );
  }
  return timing.eraStartSlot + Math.floor((nowMs - timing.eraStartMs) / timing.slotLengthMs);
}

/** The KES period that contains `slot`. */
export function kesPeriodOfSlot(timing: KesTiming, slot: number): number {
  return Math.floor(slot / timing.slotsPerKESPeriod);
}

/** The current KES period at `nowMs`. */
export function kesPeriodAt(timing: KesTiming, nowMs: number): number {
  return kesPeriodOfSlot(timing, slotAt(timing, nowMs));
}

/** Where a certificate starting at `kesStartPeriod` stands at `nowMs`. */
export function kesPeriodStatus(
  timing: KesTiming,
  kesStartPeriod: number,
  nowMs: number,
): KesPeriodStatus {
  const slot = slotAt(timing, nowMs);
  const currentPeriod = kesPeriodOfSlot(timing, slot);
  const endPeriod = kesStartPeriod + timing.maxKESEvolutions;
  const endSlot = endPeriod * timing.slotsPerKESPeriod;
  return {
    slot,
    currentPeriod,
    startPeriod: kesStartPeriod,
    endPeriod,
    remainingPeriods: Math.max(0, endPeriod - Math.max(currentPeriod, kesStartPeriod)),
    expiresAtMs: timing.eraStartMs + (endSlot - timing.eraStartSlot) * timing.slotLengthMs,
    valid: kesStartPeriod <= currentPeriod && currentPeriod < endPeriod,
  };
}
