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

/** The networks whose genesis parameters are built in. */
export type NetworkName = "mainnet" | "preprod" | "preview";

/** The built-in networks, mainnet first. */
export const NETWORK_NAMES: readonly NetworkName[] = ["mainnet", "preprod", "preview"];

/** Each built-in network's `networkMagic` (shelley genesis). */
export const NETWORK_MAGIC: Readonly<Record<NetworkName, number>> = Object.freeze({
  mainnet: 764824073,
  preprod: 1,
  preview: 2,
});

/** Mainnet: Shelley started at slot 4492800, 2020-07-29T21:44:51Z, after 20-second Byron slots. */
export const MAINNET_KES_TIMING: Readonly<KesTiming> = Object.freeze({
  slotsPerKESPeriod: 129600,
  maxKESEvolutions: 62,
  slotLengthMs: 1000,
  eraStartSlot: 4492800,
  eraStartMs: Date.UTC(2020, 6, 29, 21, 44, 51),
});

/**
 * The KES timing of each built-in network, from its shelley genesis (`slotsPerKESPeriod`,
 * `maxKESEvolutions`, `slotLength`) and where its Shelley era starts:
 * - mainnet: Byron genesis 2017-09-23T21:44:51Z, 4492800 Byron slots of 20 s;
 * - preprod: `systemStart` 2022-06-01T00:00:00Z, 4 Byron epochs of 21600 slots of 20 s, so
 *   Shelley from slot 86400 at 2022-06-21T00:00:00Z;
 * - preview: `systemStart` 2022-10-25T00:00:00Z, Shelley (and later eras) from slot 0.
 */
export const NETWORK_KES_TIMING: Readonly<Record<NetworkName, Readonly<KesTiming>>> = Object
  .freeze({
    mainnet: MAINNET_KES_TIMING,
    preprod: Object.freeze({
      slotsPerKESPeriod: 129600,
      maxKESEvolutions: 62,
      slotLengthMs: 1000,
      eraStartSlot: 86400,
      eraStartMs: Date.UTC(2022, 5, 21),
    }),
    preview: Object.freeze({
      slotsPerKESPeriod: 129600,
      maxKESEvolutions: 62,
      slotLengthMs: 1000,
      eraStartSlot: 0,
      eraStartMs: Date.UTC(2022, 9, 25),
    }),
  });

/** Where a certificate stands: valid now, expired, or not valid yet. */
export type KesWindowState = "valid" | "expired" | "not_yet_valid";

/** Where a certificate stands at some moment. */
export interface KesPeriodStatus {
  /** The current KES period, from the node when it reported one, else from the clock. */
  currentPeriod: number;
  /** Where `currentPeriod` came from. */
  periodSource: "node" | "clock";
  /** The current KES period by the clock and the genesis timing (undefined before the era). */
  clockPeriod: number | undefined;
  /** The certificate's first valid period. */
  startPeriod: number;
  /** The first period in which the certificate is no longer valid (start + maxKESEvolutions). */
  endPeriod: number;
  /** Periods left including the current one (0 once expired; all of them if not yet valid). */
  remainingPeriods: number;
  /** When the certificate expires (start of `endPeriod`), in ms since the epoch. */
  expiresAtMs: number;
  /** valid: start <= current < end; expired: current >= end; not_yet_valid: current < start. */
  state: KesWindowState;
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

/**
 * When `slot` begins (ms since the epoch), for a slot of the Shelley-based eras (`slot >=
 * eraStartSlot`); the inverse of {@linkcode slotAt}.
 */
export function slotStartMs(timing: KesTiming, slot: number): number {
  return timing.eraStartMs + (slot - timing.eraStartSlot) * timing.slotLengthMs;
}

/** The KES period that contains `slot`. */
export function kesPeriodOfSlot(timing: KesTiming, slot: number): number {
  return Math.floor(slot / timing.slotsPerKESPeriod);
}

/** The current KES period at `nowMs`. */
export function kesPeriodAt(timing: KesTiming, nowMs: number): number {
  return kesPeriodOfSlot(timing, slotAt(timing, nowMs));
}

/**
 * Reads the KES timing from a parsed shelley-genesis.json whose Byron era, if any, is known by
 * its `networkMagic`: mainnet and preprod get their built-in Shelley era start; any other network
 * is taken to start in Shelley (or later) at slot 0, `systemStart`, as private testnets do.
 *
 * @throws {Error} naming the field, its value and the rule, if a field is missing or invalid
 */
export function kesTimingFromGenesisFile(genesis: unknown): KesTiming {
  const magic = (genesis as Record<string, unknown> | null)?.networkMagic;
  const known = NETWORK_NAMES.find((name) => NETWORK_MAGIC[name] === magic);
  const builtIn = known === undefined ? undefined : NETWORK_KES_TIMING[known];
  return kesTimingFromGenesis(
    genesis,
    builtIn === undefined || builtIn.eraStartSlot === 0
      ? undefined
      : { slot: builtIn.eraStartSlot, timeMs: builtIn.eraStartMs },
  );
}

/**
 * Where a certificate starting at `kesStartPeriod` stands: its window `[start, start +
 * maxKESEvolutions)`, periods left and expiry. The current period is the node's when given
 * (`nodeKesPeriod`, from its metrics), else the clock's at `nowMs`. Pure.
 *
 * @throws {RangeError} when there is no node period and `nowMs` is before the Shelley era
 */
export function kesPeriodStatus(
  timing: KesTiming,
  kesStartPeriod: number,
  now: { nowMs: number; nodeKesPeriod?: number | undefined },
): KesPeriodStatus {
  const clockPeriod = now.nowMs >= timing.eraStartMs ? kesPeriodAt(timing, now.nowMs) : undefined;
  const fromNode = now.nodeKesPeriod !== undefined && Number.isSafeInteger(now.nodeKesPeriod) &&
    now.nodeKesPeriod >= 0;
  const currentPeriod = fromNode
    ? now.nodeKesPeriod!
    : clockPeriod ?? kesPeriodAt(timing, now.nowMs);
  const endPeriod = kesStartPeriod + timing.maxKESEvolutions;
  const endSlot = endPeriod * timing.slotsPerKESPeriod;
  return {
    currentPeriod,
    periodSource: fromNode ? "node" : "clock",
    clockPeriod,
    startPeriod: kesStartPeriod,
    endPeriod,
    remainingPeriods: Math.max(0, endPeriod - Math.max(currentPeriod, kesStartPeriod)),
    expiresAtMs: timing.eraStartMs + (endSlot - timing.eraStartSlot) * timing.slotLengthMs,
    state: currentPeriod < kesStartPeriod
      ? "not_yet_valid"
      : currentPeriod >= endPeriod
      ? "expired"
      : "valid",
  };
}

/**
 * The KES timing the configuration names: the shelley genesis file when one is set (read with
 * `readTextFile`; needs read permission on it), else the built-in network's.
 *
 * @throws {Error} naming the file and what is wrong with it
 */
export async function loadKesTiming(
  source: { network: NetworkName; shelleyGenesisFile: string | undefined },
  readTextFile: (path: string) => Promise<string> = (path) => Deno.readTextFile(path),
): Promise<KesTiming> {
  const file = source.shelleyGenesisFile;
  if (file === undefined) return { ...NETWORK_KES_TIMING[source.network] };
  let text: string;
  try {
    text = await readTextFile(file);
  } catch (err) {
    throw new Error(`Cannot read the shelley genesis ${file}`, { cause: err });
  }
  let genesis: unknown;
  try {
    genesis = JSON.parse(text);
  } catch {
    throw new Error(`Cannot read the shelley genesis ${file}: it is not valid JSON`);
  }
  try {
    return kesTimingFromGenesisFile(genesis);
  } catch (err) {
    throw new Error(`${(err as Error).message} (in ${file})`);
  }
}
