/**
 * Runs this checkout's `main.ts` as the shipped executable would run (`-P=forge-manager`, a clean
 * environment but for PATH, HOME and what the test gives), and returns its exit code and output.
 * Needs run permission for `Deno.execPath()`.
 *
 * @module
 */

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** What one run printed and how it ended. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** `forge-manager ARGS...` with `env` added to a clean environment. */
export async function runMain(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P=forge-manager", "--no-prompt", `--config=${CONFIG}`, MAIN, ...args],
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/root", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}
