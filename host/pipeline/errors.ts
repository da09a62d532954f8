/** Pipeline error codes, one per line with the family that sets the CLI exit status. */
import { PlugboxError, type ErrorFamily } from "../../runtime/errors.js";

export const PIPELINE_ERROR_CODES = {
  PIPELINE_DEPTH_LIMIT: "limit", // the request's depth passed settings.maxDepth: an infinite loop of plug-ins
  PIPELINE_STEP_FAILED: "plugin", // a synchronous step failed; the whole request was rolled back
  PIPELINE_INVALID_REQUEST: "usage", // the request is malformed or names a message the pipeline does not know
  PIPELINE_UNSUPPORTED_MESSAGE: "usage", // a message this organization service does not implement
  PIPELINE_CLOSED: "usage", // the host was used after close()
} as const satisfies Record<string, ErrorFamily>;

export type PipelineErrorCode = keyof typeof PIPELINE_ERROR_CODES;

export class PipelineError extends PlugboxError<PipelineErrorCode> {}

/** A synchronous step failed: carries the step, and the plug-in's own failure as `cause`. */
export class StepFailedError extends PipelineError {
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
