/**
 * Atomic file replacement: a reader (cardano-node on SIGHUP) sees the old file or the new one,
 * never a half-written one. Needs read and write permission on the target's folder.
 *
 * @module
 */

import { equalBytes } from "./bytes.ts";

/**
 * Writes `data` to `path` through a uniquely named temp file in the same folder:
 * create (mode `mode`), write, fsync, close, rename over `path`. The temp file is removed on
 * any failure, and `path` is then left as it was.
 */
export async function writeFileAtomic(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash <= 0 ? "/" : path.slice(0, slash);
  const base = path.slice(slash + 1);
  const temp = `${dir}/.${base}.${crypto.randomUUID()}.tmp`;
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(temp, { write: true, createNew: true, mode });
    await Deno.chmod(temp, mode); // the mode given to open() is masked by the umask
    let written = 0;
    while (written < data.length) written += await file.write(data.subarray(written));
    await file.sync();
    file.close();
    file = undefined;
    await Deno.rename(temp, path);
  } catch (err) {
    file?.close();
    await Deno.remove(temp).catch(() => {});
    throw new Error(`Cannot write ${path} atomically`, { cause: err });
  }
}

/** Whether the file at `path` holds exactly `data` (false when it is missing or unreadable). */
export async function hasContent(path: string, data: Uint8Array): Promise<boolean> {
  try {
    const current = await Deno.readFile(path);
    return equalBytes(current, data);
  } catch {
    return false;
  }
}

/**
 * Removes the file (or symlink) at `path`; true if it existed. A missing file is not an error;
 * a directory is (it is never a credential file, and is left alone).
 */
export async function removeIfPresent(path: string): Promise<boolean> {
  try {
    if ((await Deno.lstat(path)).isDirectory) {
      throw new Error(`Cannot remove ${path} as a file: it is a directory`);
    }
    await Deno.remove(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw new Error(`Cannot remove ${path}`, { cause: err });
  }
}
