/**
 * File-system helpers shared by tests.
 *
 * @module
 */

/** Whether anything (file, folder, symlink) exists at `path`; other errors are thrown. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}
