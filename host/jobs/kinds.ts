/**
 * The kinds of system job, told apart when a runner takes one:
 *
 * - `plugin`: an asynchronous step's job that holds the step's execution context;
 * - `posting`: an asynchronous posting step's job that holds the context serialized for its endpoint;
 * - `outbox`: a post to an outbox endpoint made inside a transaction, sent after it committed;
 * - `unreadable`: a job whose stored context cannot be read (the job fails alone, with why).
 */
import type { SerializedContext } from "../services/notification.js";
import type { LeasedJob, SystemJob } from "../store/system-jobs.js";
import { decodeJobData } from "./job-data.js";

/** The owning extension of an outbox job: the endpoint whose post waits for the commit. */
export const OUTBOX_PREFIX = "serviceendpoint:";

export type ClaimedJob =
  | { kind: "plugin"; job: SystemJob; stepId: string; context: Record<string, unknown> }
  | { kind: "posting"; job: SystemJob; stepId: string; serialized: SerializedContext }
  | { kind: "outbox"; job: SystemJob; endpointId: string; context: Record<string, unknown>; serialized?: undefined }
  | { kind: "outbox"; job: SystemJob; endpointId: string; context?: undefined; serialized: SerializedContext }
  | { kind: "unreadable"; job: SystemJob; reason: string };

/** The owning extension of an outbox post to this endpoint. */
export function outboxOwner(endpointId: string): string {
  return `${OUTBOX_PREFIX}${endpointId}`;
}

/** Reads a leased job's stored context and tells its kind; a context that cannot be read makes it `unreadable`. */
export function readClaimed({ job, data, post }: LeasedJob): ClaimedJob {
  let read: ReturnType<typeof decodeJobData>;
  try {
    read = decodeJobData(data, post);
  } catch (error) {
    return { kind: "unreadable", job, reason: (error as Error).message };
  }
  const owner = job.owningExtensionId ?? "";
  if (owner.startsWith(OUTBOX_PREFIX)) {
    const endpointId = owner.slice(OUTBOX_PREFIX.length);
    if (read.serialized) return { kind: "outbox", job, endpointId, serialized: read.serialized };
    return { kind: "outbox", job, endpointId, context: read.context.context as Record<string, unknown> };
  }
  if (read.serialized) return { kind: "posting", job, stepId: owner, serialized: read.serialized };
  return { kind: "plugin", job, stepId: owner, context: read.context };
}
