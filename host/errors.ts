/**
 * Error codes of the host's own modules that have no folder of their own: reading input files
 * (`json-input.ts`), bundling (`build.ts`) and building an execution context (`context.ts`).
 * Each area of the host declares its codes in the `errors.ts` of its folder.
 */
import { codesOf, PlugboxError, type ErrorTable } from "../sdk/errors.js";

export const HOST_ERRORS = {
  INPUT_NOT_FOUND: { family: "usage", means: "a file named on the command line does not exist or cannot be read" },
  INPUT_INVALID_JSON: { family: "usage", means: "a JSON input file does not parse or does not have the expected shape" },
  INPUT_TOO_LARGE: { family: "usage", means: "a JSON input file is larger than plugbox reads (64 MB)" },
  INPUT_TOO_DEEP: { family: "usage", means: "a JSON input file nests objects and arrays deeper than plugbox reads (64 levels)" },
  BUILD_FAILED: { family: "usage", means: "esbuild could not bundle the entry module" },
  CONTEXT_INVALID: { family: "usage", means: "an execution context was asked for with a stage, mode, message or target that Dataverse would not run" },
} as const satisfies ErrorTable;

export type HostErrorCode = keyof typeof HOST_ERRORS;

export class HostError<Code extends HostErrorCode = HostErrorCode> extends PlugboxError<Code> {
  static override readonly codes = codesOf(HOST_ERRORS);
}

type UsageErrorCode = "INPUT_NOT_FOUND" | "INPUT_INVALID_JSON" | "INPUT_TOO_LARGE" | "INPUT_TOO_DEEP" | "CONTEXT_INVALID";

/** An input the caller gave (a file, a context) that plugbox cannot use; the message says how to fix it. */
export class UsageError extends HostError<UsageErrorCode> {
  static override readonly codes: ReadonlySet<string> = new Set<UsageErrorCode>(["INPUT_NOT_FOUND", "INPUT_INVALID_JSON", "INPUT_TOO_LARGE", "INPUT_TOO_DEEP", "CONTEXT_INVALID"]);
}
