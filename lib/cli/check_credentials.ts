/**
 * `forge-manager check-credentials`, the worker's half: reads the named files, runs every check
 * the sidecar makes (lib/cardano/cardano_keys.ts, lib/forging/credential_verdict.ts), and prints
 * a report or JSON. Runs in a worker that may read exactly the named files
 * (lib/core/cli/check_credentials_args.ts).
 *
 * Every check runs even after one failed, so the report shows everything wrong at once. The
 * report holds only public facts: types, sizes, counters, periods, the pool id and an 8-digit
 * hot key id; never key material.
 *
 * @module
 */

import {
  CredentialError,
  hotKeyId,
  KES_KEY_BYTES,
  KES_KEY_TYPE,
  type KesKey,
  type OpCert,
  OPCERT_TYPE,
  parseKesKey,
  parseOpCert,
  parseVrfKey,
  poolIdOf,
  verifyOpCertSignature,
  VRF_KEY_BYTES,
  VRF_KEY_TYPE,
  type VrfKey,
} from "../cardano/cardano_keys.ts";
import { isDecoyEnvelope } from "../cardano/decoy_keys.ts";
import { type CredentialCheck, judgeCredentials } from "../forging/credential_verdict.ts";
import { type KesTiming, loadKesTiming, NETWORK_KES_TIMING } from "../cardano/kes_period.ts";
import { poolIdBech32 } from "../cardano/pool_id.ts";
import type { CheckCredentialsOptions } from "../core/cli/check_credentials_args.ts";
import { type CommandIo, EXIT_FAILED, EXIT_OK } from "../core/cli/command.ts";

/** The checks, in report order. */
export const CHECK_NAMES = [
  "kes_key",
  "vrf_key",
  "certificate",
  "key_match",
  "signature",
  "pool_id",
  "kes_window",
] as const;

/** One of {@linkcode CHECK_NAMES}. */
export type CheckName = typeof CHECK_NAMES[number];

/** One line of the report. `ok: null` means not checked (missing input or not asked). */
export interface CheckLine {
  name: CheckName;
  ok: boolean | null;
  detail: string;
}

/** The whole result, as `--output json` prints it. */
export interface CheckCredentialsReport {
  ok: boolean;
  /** The first failed check's detail, or "all checks passed". */
  reason: string;
  network: string;
  files: CheckCredentialsOptions["files"];
  checks: CheckLine[];
  /** The verdict and its numbers, when the certificate could be read. */
  verdict: CredentialCheck | undefined;
}

const LABELS: Record<CheckName, string> = {
  kes_key: "KES key",
  vrf_key: "VRF key",
  certificate: "certificate",
  key_match: "key match",
  signature: "signature",
  pool_id: "pool id",
  kes_window: "KES window",
};

/**
 * What {@linkcode checkCredentials} is given: file texts (or why they could not be read); no
 * `kes` when a KES agent holds the KES key.
 */
export interface CheckInput {
  texts: { kes?: string | Error; vrf: string | Error; opcert: string | Error };
  timing: KesTiming | Error;
  network: string;
  nowMs: number;
}

function parsed<T>(text: string | Error, parse: (text: string) => T): T | Error {
  if (text instanceof Error) return text;
  try {
    return parse(text);
  } catch (err) {
    if (err instanceof CredentialError) return err;
    throw err;
  }
}

/** Runs every check on texts already read. Pure (Ed25519 and Blake2b only). */
export function checkCredentials(
  input: CheckInput,
  options: Pick<CheckCredentialsOptions, "files" | "poolId">,
): CheckCredentialsReport {
  const { files } = options;
  const kesText = files.kes === undefined ? undefined : input.texts.kes;
  const kes = kesText === undefined
    ? undefined
    : parsed<KesKey>(kesText, (t) => parseKesKey(t, files.kes!));
  const vrf = parsed<VrfKey>(input.texts.vrf, (t) => parseVrfKey(t, files.vrf));
  const opcert = parsed<OpCert>(input.texts.opcert, (t) => parseOpCert(t, files.opcert));
  const checks: CheckLine[] = [];
  const add = (name: CheckName, ok: boolean | null, detail: string) =>
    checks.push({ name, ok, detail });
  // A sidecar's decoy is a valid set of no pool: what a standby's node folder holds. It can never
  // forge, so the file fails its check, with the reason an operator needs.
  const decoy = (text: string | Error) => typeof text === "string" && isDecoyEnvelope(text);
  const fileLine = (name: CheckName, text: string | Error, ok: boolean, detail: string) =>
    decoy(text)
      ? add(name, false, `${detail}; a forge-manager DECOY (no pool's key: it can never forge)`)
      : add(name, ok, detail);

  if (kes === undefined || kesText === undefined) {
    add("kes_key", null, "held by the KES agent: no KES key file to check");
  } else {
    fileLine(
      "kes_key",
      kesText,
      !(kes instanceof Error),
      kes instanceof Error
        ? kes.message
        : `${files.kes}: ${KES_KEY_TYPE}, ${KES_KEY_BYTES} bytes, verification key ${
          hotKeyId(kes.vkey)
        }`,
    );
  }
  fileLine(
    "vrf_key",
    input.texts.vrf,
    vrf instanceof Error ? false : vrf.consistent,
    vrf instanceof Error ? vrf.message : `${files.vrf}: ${VRF_KEY_TYPE}, ${VRF_KEY_BYTES} bytes, ` +
      (vrf.consistent
        ? "its verification key is the one its seed derives"
        : "its verification key is NOT the one its seed derives (corrupt or hand-assembled)"),
  );
  fileLine(
    "certificate",
    input.texts.opcert,
    !(opcert instanceof Error),
    opcert instanceof Error
      ? opcert.message
      : `${files.opcert}: ${OPCERT_TYPE}, issue counter ${opcert.issueCounter}, KES start period ` +
        `${opcert.kesStartPeriod}, hot key ${hotKeyId(opcert.hotVkey)}`,
  );
  if (kes === undefined) {
    add(
      "key_match",
      null,
      "not checked here: the KES agent checks its key against the certificate when the key is " +
        "installed (kes-agent-control install-key)",
    );
  } else if (kes instanceof Error || opcert instanceof Error) {
    add("key_match", null, "not checked: the KES key or the certificate could not be read");
  } else {
    const match = hotKeyId(kes.vkey) === hotKeyId(opcert.hotVkey) &&
      kes.vkey.every((byte, i) => byte === opcert.hotVkey[i]);
    add(
      "key_match",
      match,
      match
        ? "the KES key is the certificate's hot key"
        : `the KES key (${hotKeyId(kes.vkey)}) is NOT the certificate's hot key (${
          hotKeyId(opcert.hotVkey)
        }): the node refuses this set`,
    );
  }
  let verdict: CredentialCheck | undefined;
  if (opcert instanceof Error) {
    add("signature", null, "not checked: the certificate could not be read");
    add("pool_id", null, "not checked: the certificate could not be read");
    add("kes_window", null, "not checked: the certificate could not be read");
  } else {
    const signatureValid = verifyOpCertSignature(opcert);
    add(
      "signature",
      signatureValid,
      signatureValid
        ? "the cold key's signature over the certificate verifies"
        : "the cold key's signature over the certificate does NOT verify (altered, or not issued " +
          "by this cold key): the chain rejects every block forged with it",
    );
    const poolId = poolIdOf(opcert.coldVkey);
    const spelled = `${poolIdBech32(poolId)} (${poolId})`;
    if (options.poolId === undefined) {
      add("pool_id", null, `${spelled}; no pool id to compare with`);
    } else {
      add(
        "pool_id",
        poolId === options.poolId,
        poolId === options.poolId
          ? `${spelled}, as expected`
          : `${spelled} is NOT the expected pool ${poolIdBech32(options.poolId)}`,
      );
    }
    if (input.timing instanceof Error) {
      add("kes_window", false, input.timing.message);
    } else {
      verdict = judgeCredentials(
        {
          issueCounter: opcert.issueCounter,
          kesStartPeriod: opcert.kesStartPeriod,
          hotKeyId: hotKeyId(opcert.hotVkey),
          poolId,
          signatureValid,
        },
        input.timing,
        { nowMs: input.nowMs },
        options.poolId,
      );
      const k = verdict.kes;
      const days = (k.expiresAtMs - input.nowMs) / 86_400_000;
      const when = days >= 0 ? `in ${days.toFixed(1)} days` : `${(-days).toFixed(1)} days ago`;
      const window = `window [${k.startPeriod}, ${k.endPeriod}), current period ${k.currentPeriod}`;
      add(
        "kes_window",
        k.state === "valid",
        k.state === "valid"
          ? `${window}: ${k.remainingPeriods} period(s) left, expires ${
            new Date(k.expiresAtMs).toISOString()
          } (${when})`
          : k.state === "expired"
          ? `${window}: EXPIRED ${new Date(k.expiresAtMs).toISOString()} (${when})`
          : `${window}: NOT VALID YET, starts in ${k.startPeriod - k.currentPeriod} period(s)`,
      );
    }
  }
  const failed = checks.find((c) => c.ok === false);
  return {
    ok: failed === undefined,
    reason: failed === undefined ? "all checks passed" : `${LABELS[failed.name]}: ${failed.detail}`,
    network: input.network,
    files,
    checks,
    verdict,
  };
}

/** The human-readable report. Pure. */
export function formatReport(report: CheckCredentialsReport): string {
  const mark = (ok: boolean | null) => (ok === true ? "ok  " : ok === false ? "FAIL" : "--  ");
  const lines = [
    `forge-manager check-credentials (${report.network})`,
    "",
    ...report.checks.map((c) => `  ${mark(c.ok)}  ${LABELS[c.name].padEnd(11)}  ${c.detail}`),
    "",
    report.ok ? "All checks passed." : `Check failed: ${report.reason}`,
  ];
  return lines.join("\n");
}

/** What {@linkcode run} needs from outside; tests pass fakes. */
export interface RunDeps {
  readTextFile(path: string): Promise<string>;
  now(): number;
}

async function readOrError(deps: RunDeps, path: string, what: string): Promise<string | Error> {
  try {
    return await deps.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "it does not exist"
      : err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable
      ? "permission denied"
      : err instanceof Deno.errors.IsADirectory
      ? "it is a directory"
      : `${(err as Error).name}`;
    return new Error(`Cannot read ${what} ${path}: ${why}`);
  }
}

/**
 * Runs the command: reads the files, checks, prints. Needs read permission on the named files.
 *
 * @returns the exit code: 0 all checks passed, 1 a check failed
 */
export async function run(
  options: CheckCredentialsOptions,
  io: CommandIo,
  deps: RunDeps = { readTextFile: (path) => Deno.readTextFile(path), now: Date.now },
): Promise<number> {
  let timing: KesTiming | Error;
  let network: string;
  if ("network" in options.timing) {
    timing = NETWORK_KES_TIMING[options.timing.network];
    network = `${options.timing.network}, built-in genesis parameters`;
  } else {
    const file = options.timing.genesisFile;
    network = `shelley genesis ${file}`;
    try {
      timing = await loadKesTiming(
        { network: "mainnet", shelleyGenesisFile: file },
        async (path) => {
          const text = await readOrError(deps, path, "the shelley genesis");
          if (text instanceof Error) throw text;
          return text;
        },
      );
    } catch (err) {
      // A read failure comes wrapped; its cause says why in the report's words.
      timing = (err as Error).cause instanceof Error ? (err as Error).cause as Error : err as Error;
    }
  }
  const report = checkCredentials({
    texts: {
      ...(options.files.kes === undefined
        ? {}
        : { kes: await readOrError(deps, options.files.kes, "KES key") }),
      vrf: await readOrError(deps, options.files.vrf, "VRF key"),
      opcert: await readOrError(deps, options.files.opcert, "operational certificate"),
    },
    timing,
    network,
    nowMs: deps.now(),
  }, options);
  if (options.output === "json") io.out(JSON.stringify(report, null, 2));
  else io.out(formatReport(report));
  return report.ok ? EXIT_OK : EXIT_FAILED;
}
