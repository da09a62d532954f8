/** Pipeline error codes: what staging a request can fail with. */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const PIPELINE_ERRORS = {
  PIPELINE_DEPTH_LIMIT: { family: "limit", means: "the request's depth passed settings.maxDepth: an infinite loop of plug-ins" },
  PIPELINE_STEP_FAILED: { family: "plugin", means: "a synchronous step failed; the whole request was rolled back" },
  PIPELINE_INVALID_REQUEST: { family: "usage", means: "the request is malformed or names a message the pipeline does not know" },
  PIPELINE_UNSUPPORTED_MESSAGE: { family: "usage", means: "a message this organization service does not implement" },
  PIPELINE_CLOSED: { family: "usage", means: "the host was used after close()" },
} as const satisfies ErrorTable;

export type PipelineErrorCode = keyof typeof PIPELINE_ERRORS;

export class PipelineError extends PlugboxError<PipelineErrorCode> {
  static override readonly codes = codesOf(PIPELINE_ERRORS);
}

/** A synchronous step failed: carries the step, and the plug-in's own failure as `cause`. */
export class StepFailedError extends PipelineError {
  static override readonly codes: ReadonlySet<string> = new Set(["PIPELINE_STEP_FAILED"]);
  /** The code of the plug-in's failure (PLUGIN_FAILED, SANDBOX_TIMEOUT, WEB_LOOPBACK, …). */
  readonly innerCode: string;
  /** OperationStatus of an InvalidPluginExecutionError, else 0. */
  readonly status: number;
  readonly trace: string;
  constructor(message: string, init: { innerCode: string; status: number; trace: string; cause?: unknown; details?: Record<string, unknown> }) {
    super("PIPELINE_STEP_FAILED", message, { cause: init.cause, ...(init.details ? { details: init.details } : {}) });
    this.innerCode = init.innerCode;
    this.status = init.status;
    this.trace = init.trace;
  }
}
