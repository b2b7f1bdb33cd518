/**
 * The forging credentials on disk: validate the sources, place them at the targets (atomic,
 * mode 0600, only when the content differs), and remove them. Removing is the only way to make
 * cardano-node stop forging on SIGHUP, so demotion always unlinks, never truncates.
 *
 * Needs read of the three sources and read/write of the targets' folders. Logs paths only.
 *
 * @module
 */

import { type CredentialFacts, validateCredentialSet } from "../cardano/cardano_keys.ts";
import type { CredentialName, CredentialPaths } from "../core/config.ts";
import { hasContent, removeIfPresent, writeFileAtomic } from "../base/atomic_write.ts";
import { equalBytes } from "../base/bytes.ts";

/** What happened to one file, counted in `cardano_credential_operations_total`. */
export type CredentialOperation = "write" | "unchanged" | "remove" | "error";

/** Called for each file operation (metrics). */
export type OperationHook = (operation: CredentialOperation, file: CredentialName) => void;

const NAMES: readonly CredentialName[] = ["kes", "vrf", "opcert"];

/** The port through which the sidecar places and removes the keys. */
export interface CredentialStore {
  /** Validates the sources, then places all three; returns the files that changed. */
  place(): Promise<{ changed: CredentialName[]; facts: CredentialFacts }>;
  /** Removes all three targets; returns the files that existed. */
  remove(): Promise<{ removed: CredentialName[] }>;
  /** Whether any source's bytes differ from its target's (a missing file differs). */
  sourcesDiffer(): Promise<boolean>;
  /** Validates the sources without placing them. */
  check(): Promise<CredentialFacts>;
}

/** Credentials on the local file system. */
export class FileCredentialStore implements CredentialStore {
  readonly #paths: Record<CredentialName, CredentialPaths>;
  readonly #hook: OperationHook;
  /**
   * The bytes and facts of the last set that validated. Validation reads no clock, so the same
   * bytes give the same facts: a promotion whose sources did not change since (the usual case;
   * the sources are checked at start and while forging) skips the CBOR and signature work, which
   * runs cold on a standby that has been idle for hours.
   */
  #validated: { data: Record<CredentialName, Uint8Array>; facts: CredentialFacts } | undefined;

  constructor(paths: Record<CredentialName, CredentialPaths>, hook: OperationHook = () => {}) {
    this.#paths = paths;
    this.#hook = hook;
  }

  async #load(): Promise<{ data: Record<CredentialName, Uint8Array>; facts: CredentialFacts }> {
    const data = {} as Record<CredentialName, Uint8Array>;
    for (const name of NAMES) {
      try {
        data[name] = await Deno.readFile(this.#paths[name].source);
      } catch (err) {
        throw new Error(`Cannot read source ${this.#paths[name].source}`, { cause: err });
      }
    }
    const known = this.#validated;
    if (known !== undefined && NAMES.every((name) => equalBytes(known.data[name], data[name]))) {
      return { data, facts: known.facts };
    }
    const decoder = new TextDecoder("utf-8", { fatal: false });
    const facts = validateCredentialSet(
      {
        kes: decoder.decode(data.kes),
        vrf: decoder.decode(data.vrf),
        opcert: decoder.decode(data.opcert),
      },
      {
        kes: this.#paths.kes.source,
        vrf: this.#paths.vrf.source,
        opcert: this.#paths.opcert.source,
      },
    );
    this.#validated = { data, facts };
    return { data, facts };
  }

  async sourcesDiffer(): Promise<boolean> {
    for (const name of NAMES) {
      let source: Uint8Array;
      try {
        source = await Deno.readFile(this.#paths[name].source);
      } catch {
        return true;
      }
      if (!(await hasContent(this.#paths[name].target, source))) return true;
    }
    return false;
  }

  async check(): Promise<CredentialFacts> {
    return (await this.#load()).facts;
  }

  async place(): Promise<{ changed: CredentialName[]; facts: CredentialFacts }> {
    const { data, facts } = await this.#load();
    const changed: CredentialName[] = [];
    try {
      for (const name of NAMES) {
        const target = this.#paths[name].target;
        if (await hasContent(target, data[name])) {
          // Same bytes: still make sure the mode is right (the node refuses o+r on the VRF key).
          await Deno.chmod(target, 0o600);
          this.#hook("unchanged", name);
          continue;
        }
        await writeFileAtomic(target, data[name], 0o600);
        changed.push(name);
        this.#hook("write", name);
      }
    } catch (err) {
      for (const name of NAMES) this.#hook("error", name);
      // Never leave a partial set behind: a missing file is the one state the node treats safely.
      await this.remove().catch(() => {});
      throw err;
    }
    return { changed, facts };
  }

  async remove(): Promise<{ removed: CredentialName[] }> {
    const removed: CredentialName[] = [];
    const errors: unknown[] = [];
    for (const name of NAMES) {
      try {
        if (await removeIfPresent(this.#paths[name].target)) {
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
