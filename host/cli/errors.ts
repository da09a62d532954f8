/** Error codes of the CLI itself and of its commands that have no area of their own. */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const CLI_ERRORS = {
  CLI_USAGE: { family: "usage", means: "an unknown command or option, a missing argument, a value of the wrong kind" },
  OUTPUT_NOT_WRITABLE: { family: "usage", means: "an output file cannot be written: its folder does not exist, it is a folder, or the disk refused it" },
  LISTEN_ENTITY_NOT_FOUND: { family: "usage", means: "`listen` named a queue, topic subscription or event hub the namespace does not have" },
  LISTEN_UNREACHABLE: { family: "environment", means: "`listen --timeout` ran out while the namespace could not be reached" },
} as const satisfies ErrorTable;

export type CliErrorCode = keyof typeof CLI_ERRORS;

export class CliError extends PlugboxError<CliErrorCode> {
  static override readonly codes = codesOf(CLI_ERRORS);
}
