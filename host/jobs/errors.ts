/** System job error codes, one per line with the family that sets the CLI exit status. */
import { PlugboxError, type ErrorFamily } from "../../runtime/errors.js";

export const JOB_ERROR_CODES = {
  JOB_NOT_FOUND: "usage", // no system job has that id
  JOB_INVALID_STATE: "usage", // the job cannot be retried or cancelled in its current state
  JOB_PROCESSES_INVALID: "usage", // jobs in several processes were asked for without a store file, or with a bad count
  JOB_DATA_INVALID: "internal", // a job's stored context cannot be read (the store file was changed by hand or damaged); the job fails alone
  JOB_PROCESS_FAILED: "internal", // a job process could not start its host or died; its leased jobs are taken again when the leases run out
} as const satisfies Record<string, ErrorFamily>;

export type JobErrorCode = keyof typeof JOB_ERROR_CODES;

export class JobError extends PlugboxError<JobErrorCode> {}
