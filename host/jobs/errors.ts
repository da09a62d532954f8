/** System job error codes: what claiming, running, retrying and cancelling system jobs can fail with. */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const JOB_ERRORS = {
  JOB_NOT_FOUND: { family: "usage", means: "no system job has that id" },
  JOB_INVALID_STATE: { family: "usage", means: "the job cannot be retried or cancelled in its current state" },
  JOB_PROCESSES_INVALID: { family: "usage", means: "jobs in several processes were asked for without a store file, or with a bad count" },
  JOB_DATA_INVALID: { family: "internal", means: "a job's stored context cannot be read (the store file was changed by hand or damaged); the job fails alone" },
  JOB_PROCESS_FAILED: { family: "internal", means: "a job process could not start its host or died; its leased jobs are taken again when the leases run out" },
  JOB_QUEUE_UNREACHABLE: { family: "environment", means: "the Service Bus queue that carries jobs (jobs.transport) could not be sent to, received from or settled on; the jobs stay in the store and each host's sweep runs them" },
} as const satisfies ErrorTable;

export type JobErrorCode = keyof typeof JOB_ERRORS;

export class JobError extends PlugboxError<JobErrorCode> {
  static override readonly codes = codesOf(JOB_ERRORS);
}
