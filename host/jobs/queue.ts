/**
 * System jobs (Dataverse's asyncoperation) as the pipeline queues them and runners take them: the
 * rules over the store's system_jobs table (host/store/system-jobs.ts), with the clock that dates
 * them and the format that keeps their contexts.
 */
import type { Clock } from "../ids.js";
import type { SerializedContext } from "../services/notification.js";
import type { DataStore } from "../store/engine.js";
import { describeState, JobState, JobStatus, type LeasedJob, type NewJobRow, type SystemJob } from "../store/system-jobs.js";
import { encodeJobData, readJobContext } from "./job-data.js";
import { JobError } from "./errors.js";

export { describeState, JobState, JobStatus, type LeasedJob, type SystemJob } from "../store/system-jobs.js";

/** A job to queue: its context as it is, encoded here. */
export interface NewJob extends Omit<NewJobRow, "data" | "post"> {
  /** The execution context handed to the step (OperationId = the job's id). */
  data: Record<string, unknown>;
  /** For a posting step: the context serialized for its endpoint, kept instead of `data`. */
  serialized?: SerializedContext | undefined;
}

type Failure = { message: string; errorCode: number | null };

export class JobQueue {
  readonly #store: DataStore;
  readonly #clock: Clock;

  constructor(store: DataStore, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
  }

  async insert(job: NewJob): Promise<void> {
    const { data, serialized, ...row } = job;
    await this.#store.systemJobs.insert({ ...row, ...encodeJobData(data, serialized) });
  }

  /** Leases the next job that is ready (or whose worker's lease ran out), oldest first. */
  async claim(owner: string, leaseMs: number): Promise<LeasedJob | undefined> {
    return (await this.claimBatch(owner, leaseMs, 1))[0];
  }

  /**
   * Leases up to `limit` jobs at once: ready ones oldest first, then those whose lease ran out.
   * Their data comes as text, to be read after the lease commits. The reads and the update are one
   * statement (SQLite: a read and an update; the caller holds a transaction).
   */
  async claimBatch(owner: string, leaseMs: number, limit: number): Promise<LeasedJob[]> {
    return this.#store.systemJobs.lease(owner, this.#clock.now(), leaseMs, limit);
  }

  /**
   * Leases the job a queue message names, at the attempt the message was made for: when it is
   * Ready and due by `dueBy` (the host's time plus the clocks' tolerance), or its lease ran out.
   * Otherwise the job as it is (undefined when there is none): the message's to settle.
   */
  async claimById(id: string, owner: string, leaseMs: number, attempt: number, dueBy: Date): Promise<{ leased: LeasedJob } | { leased?: undefined; job: SystemJob | undefined }> {
    return this.#store.systemJobs.leaseById(id, owner, this.#clock.now(), leaseMs, attempt, dueBy);
  }

  /** Gives back leased jobs that were not started (a runner that stops), so they are ready at once. */
  async release(ids: readonly string[], owner: string): Promise<void> {
    await this.#store.systemJobs.release(ids, owner);
  }

  /** Keeps the owner's leases for another `leaseMs` from now: its jobs are still running or waiting for a lane. */
  async renewLeases(owner: string, leaseMs: number): Promise<number> {
    return this.#store.systemJobs.renewLeases(owner, new Date(this.#clock.now().getTime() + leaseMs));
  }

  /** When the next job becomes ready (now if one is), or undefined when none is waiting. */
  async nextDue(): Promise<Date | undefined> {
    return this.#store.systemJobs.nextDue();
  }

  /** Completes a job the owner still holds; false when the lease was lost (another worker took over). */
  async succeed(id: string, owner: string, autoDelete: boolean): Promise<boolean> {
    return this.#store.systemJobs.succeed(id, owner, autoDelete, this.#clock.now());
  }

  async fail(id: string, owner: string, failure: Failure): Promise<boolean> {
    return this.#store.systemJobs.fail(id, owner, failure, this.#clock.now());
  }

  /** Puts the job back to wait until `at`, counting the attempt. */
  async retryLater(id: string, owner: string, at: Date, failure: Failure): Promise<boolean> {
    return this.#store.systemJobs.retryLater(id, owner, at, failure);
  }

  /** Puts a job back to wait until `at` for a sandbox worker, without counting an attempt. */
  async waitForResources(id: string, owner: string, at: Date, message: string): Promise<boolean> {
    return this.#store.systemJobs.waitForResources(id, owner, at, message);
  }

  async get(id: string): Promise<SystemJob | undefined> {
    return this.#store.systemJobs.get(id);
  }

  /** The job's context; JOB_DATA_INVALID when what the store holds was damaged. */
  async data(id: string): Promise<Record<string, unknown> | undefined> {
    const row = await this.#store.systemJobs.data(id);
    return row ? readJobContext(row.data, row.post) : undefined;
  }

  async list(filter: { stateCode?: number } = {}): Promise<SystemJob[]> {
    return this.#store.systemJobs.list(filter);
  }

  /** How many jobs have each status code. */
  async countByStatus(): Promise<Map<number, number>> {
    return this.#store.systemJobs.countByStatus();
  }

  /** Makes a failed or canceled job ready again (a fresh set of attempts). */
  async retry(id: string): Promise<SystemJob> {
    const job = await this.#existing(id);
    if (job.stateCode !== JobState.Completed || job.statusCode === JobStatus.Succeeded) {
      throw new JobError("JOB_INVALID_STATE", `job ${id} is ${describeState(job)}; only failed or canceled jobs can be retried`);
    }
    await this.#store.systemJobs.reset(job.id);
    return (await this.get(id))!;
  }

  /** Cancels a job that has not completed (Ready, Suspended or Locked → Completed/Canceled). */
  async cancel(id: string): Promise<SystemJob> {
    const job = await this.#existing(id);
    if (job.stateCode === JobState.Completed) throw new JobError("JOB_INVALID_STATE", `job ${id} is already ${describeState(job)}`);
    await this.#store.systemJobs.cancel(job.id, this.#clock.now());
    return (await this.get(id))!;
  }

  async #existing(id: string): Promise<SystemJob> {
    const job = await this.get(id);
    if (!job) throw new JobError("JOB_NOT_FOUND", `no system job has the id ${id}`);
    return job;
  }
}
