/** Replay error codes: what `plugbox replay` refuses in the context it is given. */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const REPLAY_ERRORS = {
  REPLAY_NOT_A_CONTEXT: { family: "usage", means: "the input to replay is not an execution context in a form it reads: a `plugbox listen --json` line, a RemoteExecutionContext in Dataverse JSON or in Text XML" },
  REPLAY_CONTEXT_MISSING: { family: "usage", means: "a `plugbox listen --json` line given to replay has no context member" },
  REPLAY_SEVERAL_CONTEXTS: { family: "usage", means: "the input to replay holds several `listen --json` lines; replay runs one context" },
  REPLAY_INPUT_EMPTY: { family: "usage", means: "the file or standard input given to replay is empty" },
} as const satisfies ErrorTable;

export type ReplayErrorCode = keyof typeof REPLAY_ERRORS;

export class ReplayError extends PlugboxError<ReplayErrorCode> {
  static override readonly codes = codesOf(REPLAY_ERRORS);
}
