/**
 * A worker that tries what a command's sandbox must refuse and reports each outcome, so a test
 * can prove the permissions a command gets (lib/core/cli/command.ts) and not just assume them.
 * Message in: `{read: string[], connect: string, signalPid: number}`; out: `Record<string, "ok" | "refused">`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

async function outcome(attempt: () => Promise<unknown> | unknown): Promise<string> {
  try {
    await attempt();
    return "ok";
  } catch (err) {
    return err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied
      ? "refused"
      : `error: ${(err as Error).name}`;
  }
}

self.onmessage = async (
  e: MessageEvent<{ read: string[]; connect: string; signalPid: number }>,
) => {
  const result: Record<string, string> = {};
  for (const path of e.data.read) {
    result[`read ${path}`] = await outcome(() => Deno.readTextFile(path));
  }
  result.write = await outcome(() => Deno.writeTextFile(`${e.data.read[0]}.probe`, "x"));
  result.env = await outcome(() => Deno.env.get("HOME"));
  result.net = await outcome(() => fetch(e.data.connect));
  result.run = await outcome(() => new Deno.Command("true").output());
  result.signal = await outcome(() => Deno.kill(e.data.signalPid, "SIGCONT"));
  self.postMessage(result);
};
