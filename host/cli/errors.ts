/** Error codes of CLI commands that have no area of their own, one per line with the family that sets the exit status. */
import { PlugboxError, type ErrorFamily } from "../../runtime/errors.js";

export const CLI_ERROR_CODES = {
  LISTEN_ENTITY_NOT_FOUND: "usage", // `listen` named a queue, topic subscription or event hub the namespace does not have
  LISTEN_UNREACHABLE: "environment", // `listen --timeout` ran out while the namespace could not be reached
} as const satisfies Record<string, ErrorFamily>;

export type CliErrorCode = keyof typeof CLI_ERROR_CODES;

export class CliError extends PlugboxError<CliErrorCode> {}
