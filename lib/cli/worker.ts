/**
 * The worker every operator command runs in, under the permissions the core computed for that
 * command (lib/core/cli/command.ts). It loads the command's runner (`lib/cli/<command>.ts`,
 * which may import npm packages; the core never does), runs it, and reports the exit code.
 * Started by main.ts; never run directly.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import type { CommandIo, FromCliWorker, ToCliWorker } from "../core/cli/command.ts";

type Runner = (options: never, io: CommandIo) => Promise<number>;

/** The runners by command name; literal imports, so `deno compile` bundles them. */
async function runnerOf(command: string): Promise<Runner> {
  switch (command) {
    case "check-credentials":
      return (await import("./check_credentials.ts")).run as Runner;
    case "status":
    case "handover":
    case "prefer":
    case "pause":
    case "resume":
      return (await import("./operate.ts")).run as Runner;
    default:
      throw new Error(`Cannot run command ${JSON.stringify(command)}: no such command`);
  }
}

const io: CommandIo = {
  out: (text) => console.log(text),
  err: (text) => console.error(text),
};

self.onmessage = async (event: MessageEvent<ToCliWorker>) => {
  const { command, options } = event.data;
  try {
    const run = await runnerOf(command);
    const code = await run(options as never, io);
    self.postMessage({ op: "exit", code } satisfies FromCliWorker);
  } catch (err) {
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    self.postMessage({ op: "crashed", message } satisfies FromCliWorker);
  }
};
