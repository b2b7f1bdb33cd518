/**
 * Whether cardano-node's local socket ACCEPTS a connection (a stale socket file left by a crash
 * exists but refuses). Needs read and write of the socket path and `net` for `unix:<path>`.
 *
 * @module
 */

/** True when a connection to the unix socket at `path` succeeds within `timeoutMs`. */
export async function socketAccepts(path: string, timeoutMs = 2000): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const conn = await Promise.race([
      Deno.connect({ transport: "unix", path }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("timeout")), timeoutMs);
      }),
    ]);
    conn.close();
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
