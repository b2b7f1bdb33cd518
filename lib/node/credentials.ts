/**
 * The forging credentials on disk: validate the sources, place them at the targets (atomic,
 * mode 0600, only when the content differs), remove them, and place decoys. Removing is the only
 * way to make cardano-node stop forging on SIGHUP, so demotion always unlinks, never truncates.
 *
 * Decoys (lib/cardano/decoy_keys.ts) are a set made at start that belongs to no pool: the node
 * boots on them while its replica does not lead, so the pool's keys are in its folder only while
 * it leads. They are written exactly as the pool's keys are, and removed with them.
 *
 * With a KES agent the paths have no `kes`: only the VRF key and the certificate are managed.
 *
 * Needs read of the sources and read/write of the targets' folders. Logs paths only.
 *
 * @module
 */

import {
  CredentialError,
  type CredentialFacts,
  validateCredentialSet,
} from "../cardano/cardano_keys.ts";
import { type DecoyCredentials, isDecoyEnvelope } from "../cardano/decoy_keys.ts";
import type { CredentialName, CredentialPaths, CredentialPathSet } from "../core/config.ts";
import { hasContent, removeIfPresent, writeFileAtomic } from "../base/atomic_write.ts";
import { equalBytes } from "../base/bytes.ts";

/**
 * What happened to one file, counted in `cardano_credential_operations_total`: a pool's key
 * written, a decoy written, the same bytes found in place, a target removed, or a failure.
 */
export type CredentialOperation = "write" | "decoy" | "unchanged" | "remove" | "error";

/** Called for each file operation (metrics). */
export type OperationHook = (operation: CredentialOperation, file: CredentialName) => void;

const ALL_NAMES: readonly CredentialName[] = ["kes", "vrf", "opcert"];

/** The port through which the sidecar places and removes the keys. */
export interface CredentialStore {
  /** Validates the sources, then places them all; returns the files that changed. */
  place(): Promise<{ changed: CredentialName[]; facts: CredentialFacts }>;
  /** Places the decoy set at the targets; returns the files that changed. */
  placeDecoys(): Promise<{ changed: CredentialName[] }>;
  /** Removes every target; returns the files that existed. */
  remove(): Promise<{ removed: CredentialName[] }>;
  /** Whether any source's bytes differ from its target's (a missing file differs). */
  sourcesDiffer(): Promise<boolean>;
  /** Validates the sources without placing them. */
  check(): Promise<CredentialFacts>;
}

type Bytes = Partial<Record<CredentialName, Uint8Array>>;

/** Credentials on the local file system. */
export class FileCredentialStore implements CredentialStore {
  readonly #paths: CredentialPathSet;
  readonly #names: readonly CredentialName[];
  readonly #hook: OperationHook;
  readonly #decoys: Bytes | undefined;
  /**
   * The bytes and facts of the last set that validated. Validation reads no clock, so the same
   * bytes give the same facts: a promotion whose sources did not change since (the usual case;
   * the sources are checked at start and while forging) skips the CBOR and signature work, which
   * runs cold on a standby that has been idle for hours.
   */
  #validated: { data: Bytes; facts: CredentialFacts } | undefined;

  /**
   * @param paths the managed files (no `kes` with a KES agent)
   * @param hook called for each file operation (metrics)
   * @param opts.decoys the decoy set {@linkcode placeDecoys} writes (made once, at start); it
   *   must hold a file for every managed one
   * @throws {Error} when the decoy set lacks a managed file
   */
  constructor(
    paths: CredentialPathSet,
    hook: OperationHook = () => {},
    opts: { decoys?: DecoyCredentials } = {},
  ) {
    this.#paths = paths;
    this.#names = ALL_NAMES.filter((name) => paths[name] !== undefined);
    this.#hook = hook;
    const decoys = opts.decoys;
    if (decoys !== undefined) {
      const encoder = new TextEncoder();
      const bytes: Bytes = {};
      for (const name of this.#names) {
        const text = decoys[name];
        if (text === undefined) {
          throw new Error(
            `Cannot use the decoy set: it has no ${name} file, and ${name} is managed`,
          );
        }
        bytes[name] = encoder.encode(text);
      }
      this.#decoys = bytes;
    }
  }

  #pathsOf(name: CredentialName): CredentialPaths {
    return this.#paths[name]!; // #names holds only the names that have paths
  }

  async #load(): Promise<{ data: Bytes; facts: CredentialFacts }> {
    const data: Bytes = {};
    for (const name of this.#names) {
      try {
        data[name] = await Deno.readFile(this.#pathsOf(name).source);
      } catch (err) {
        throw new Error(`Cannot read source ${this.#pathsOf(name).source}`, { cause: err });
      }
    }
    const known = this.#validated;
    if (
      known !== undefined && this.#names.every((name) => equalBytes(known.data[name]!, data[name]!))
    ) {
      return { data, facts: known.facts };
    }
    const decoder = new TextDecoder("utf-8", { fatal: false });
    const texts: Partial<Record<CredentialName, string>> = {};
    for (const name of this.#names) {
      texts[name] = decoder.decode(data[name]);
      // A decoy is nobody's key: a leader given one would hold the Lease and never forge.
      if (isDecoyEnvelope(texts[name]!)) {
        throw new CredentialError(
          `Cannot use source ${this.#pathsOf(name).source}: it is a forge-manager decoy ` +
            "(copied from a node's folder?), not the pool's key",
          name,
          this.#pathsOf(name).source,
        );
      }
    }
    const labels = {
      ...(this.#paths.kes !== undefined ? { kes: this.#paths.kes.source } : {}),
      vrf: this.#paths.vrf.source,
      opcert: this.#paths.opcert.source,
    };
    const facts = validateCredentialSet(
      {
        ...(texts.kes !== undefined ? { kes: texts.kes } : {}),
        vrf: texts.vrf!,
        opcert: texts.opcert!,
      },
      labels,
    );
    this.#validated = { data, facts };
    return { data, facts };
  }

  async sourcesDiffer(): Promise<boolean> {
    for (const name of this.#names) {
      let source: Uint8Array;
      try {
        source = await Deno.readFile(this.#pathsOf(name).source);
      } catch {
        return true;
      }
      if (!(await hasContent(this.#pathsOf(name).target, source))) return true;
    }
    return false;
  }

  async check(): Promise<CredentialFacts> {
    return (await this.#load()).facts;
  }

  async place(): Promise<{ changed: CredentialName[]; facts: CredentialFacts }> {
    const { data, facts } = await this.#load();
    return { changed: await this.#write(data, "write"), facts };
  }

  async placeDecoys(): Promise<{ changed: CredentialName[] }> {
    if (this.#decoys === undefined) {
      throw new Error("Cannot place decoys: this store was made without a decoy set");
    }
    return { changed: await this.#write(this.#decoys, "decoy") };
  }

  /** Writes every managed target that differs from `data`; a failure removes them all. */
  async #write(data: Bytes, operation: "write" | "decoy"): Promise<CredentialName[]> {
    const changed: CredentialName[] = [];
    try {
      for (const name of this.#names) {
        const target = this.#pathsOf(name).target;
        if (await hasContent(target, data[name]!)) {
          // Same bytes: still make sure the mode is right (the node refuses o+r on the VRF key).
          await Deno.chmod(target, 0o600);
          this.#hook("unchanged", name);
          continue;
        }
        await writeFileAtomic(target, data[name]!, 0o600);
        changed.push(name);
        this.#hook(operation, name);
      }
    } catch (err) {
      for (const name of this.#names) this.#hook("error", name);
      // Never leave a partial set behind: a missing file is the one state the node treats safely.
      await this.remove().catch(() => {});
      throw err;
    }
    return changed;
  }

  async remove(): Promise<{ removed: CredentialName[] }> {
    const removed: CredentialName[] = [];
    const errors: unknown[] = [];
    for (const name of this.#names) {
      try {
        if (await removeIfPresent(this.#pathsOf(name).target)) {
          removed.push(name);
          this.#hook("remove", name);
        }
      } catch (err) {
        this.#hook("error", name);
        errors.push(err);
      }
    }
    if (errors.length > 0) {
      throw new AggregateError(errors, `Cannot remove ${errors.length} credential file(s)`);
    }
    return { removed };
  }
}
