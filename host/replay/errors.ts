/** Replay error codes: reading a captured context or a recording, answering a replayed plug-in, and a replay that differs. */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const REPLAY_ERRORS = {
  REPLAY_NOT_A_CONTEXT: { family: "usage", means: "the input to replay is not an execution context in a form it reads: a `plugbox listen --json` line, a RemoteExecutionContext in Dataverse JSON or in Text XML" },
  REPLAY_CONTEXT_MISSING: { family: "usage", means: "a `plugbox listen --json` line given to replay has no context member" },
  REPLAY_SEVERAL_CONTEXTS: { family: "usage", means: "the input to replay holds several `listen --json` lines; replay runs one context" },
  REPLAY_INPUT_EMPTY: { family: "usage", means: "the file or standard input given to replay is empty" },
  REPLAY_RECORDING_INVALID: { family: "usage", means: "a recording file is not JSON, is cut short or damaged, or does not have the recording's shape; nothing was replayed" },
  REPLAY_VERSION_UNSUPPORTED: { family: "usage", means: "a recording was made by another plugbox version or in another recording format; record it again with this one" },
  REPLAY_RECORDING_NOT_WRITTEN: { family: "usage", means: "`--record` could not write the recording file: its folder does not exist, it is a folder, or the disk refused it" },
  REPLAY_BUNDLE_UNMATCHED: { family: "usage", means: "`replay --bundle` names a bundle whose file name matches none of the recording's bundles (a recording of one bundle takes any)" },
  REPLAY_CALL_NOT_RECORDED: { family: "plugin", means: "during a replay, the plug-in made a service call the recording does not hold at that position (another service, operation or message); the call fails with this code" },
  REPLAY_DIFFERS: { family: "plugin", means: "a replay's writes, posts, web requests or outputs differ from the recording's" },
} as const satisfies ErrorTable;

export type ReplayErrorCode = keyof typeof REPLAY_ERRORS;

export class ReplayError extends PlugboxError<ReplayErrorCode> {
  static override readonly codes = codesOf(REPLAY_ERRORS);
}
