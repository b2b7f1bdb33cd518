/**
 * The operator commands main.ts dispatches (`forge-manager <command> ...`), by name. Our own
 * code only, no npm imports. Adding a command: its spec (`lib/cli/<command>_args.ts`, a
 * {@linkcode CommandSpec}), its runner (`lib/cli/<command>.ts`, exporting `run`), one entry
 * here and one in lib/cli/worker.ts.
 *
 * @module
 */

import { CHECK_CREDENTIALS } from "./check_credentials_args.ts";
import type { CommandSpec } from "./command.ts";
import { HANDOVER, PAUSE, PREFER, RESUME, STATUS } from "./operate_args.ts";

/** Every command, by name. */
export const COMMANDS: Readonly<Record<string, CommandSpec>> = Object.freeze({
  [CHECK_CREDENTIALS.name]: CHECK_CREDENTIALS as CommandSpec,
  [STATUS.name]: STATUS as CommandSpec,
  [HANDOVER.name]: HANDOVER as CommandSpec,
  [PREFER.name]: PREFER as CommandSpec,
  [PAUSE.name]: PAUSE as CommandSpec,
  [RESUME.name]: RESUME as CommandSpec,
});
