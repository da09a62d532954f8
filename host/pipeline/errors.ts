/** Pipeline error codes, one per line with the family that sets the CLI exit status. */
import { PlugboxError, type ErrorFamily } from "../../runtime/errors.js";

export const PIPELINE_ERROR_CODES = {
  PIPELINE_DEPTH_LIMIT: "limit", // the request's depth passed settings.maxDepth: an infinite loop of plug-ins
  PIPELINE_STEP_FAILED: "plugin", // a synchronous step failed; the whole request was rolled back
  PIPELINE_INVALID_REQUEST: "usage", // the request is malformed or names a message the pipeline does not know
  PIPELINE_UNSUPPORTED_MESSAGE: "usage", // a message this organization service does not implement
  PIPELINE_CLOSED: "usage", // the host was used after close()
  JOB_NOT_FOUND: "usage", // no system job has that id
  JOB_INVALID_STATE: "usage", // the job cannot be retried or cancelled in its current state
  JOB_PROCESSES_INVALID: "usage", // jobs in several processes were asked for without a store file, or with a bad count
  JOB_DATA_INVALID: "internal", // a job's stored context cannot be read (the store file was changed by hand or damaged); the job fails alone
  JOB_PROCESS_FAILED: "internal", // a job process could not start its host or died; its leased jobs are taken again when the leases run out
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
