/**
 * Runs system jobs: the asynchronous steps queued by committed requests. It leases jobs a batch at
 * a time, runs each plug-in outside any transaction (the plug-in's own calls are requests of their
 * own), and records the outcome only while it still holds the lease, which it renews while the job
 * waits and runs (a third of leaseMs at a time), so only a dead runner's jobs are taken over. When
 * another process holds the store file, the runner waits with its event loop free; an outcome it cannot write in time
 * comes back "lost", and the job runs again when its lease runs out. A plug-in that throws
 * InvalidPluginExecutionError with OperationStatus.Retry is run again with exponential back-off,
 * up to settings.maxAsyncAttempts attempts in all (4, as in Dataverse); any other failure fails the
 * job with its reason. A job whose worker died is taken again when its lease runs out.
 *
 * Faults of the machine are not the job's: while the sandbox runtime cannot start a worker
 * (SANDBOX_UNAVAILABLE) a job waits for it without counting an attempt, and a job whose worker
 * died under it (SANDBOX_WORKER_CRASHED), or whose plug-in's call the store failed (STORE_BUSY,
 * STORE_CONNECTION_LOST, STORE_UNREACHABLE), is retried like one that asked to be.
 */
import { randomUUID } from "node:crypto";
import { systemClock, type Clock, type ClockTimer } from "../ids.js";
import type { StepRegistration } from "../registry/index.js";
import { RETRYABLE_RELAY_CODES } from "../relay/errors.js";
import { executeSerialized } from "../services/notification.js";
import { toStoreError } from "../store/errors.js";
import { readClaimed, type ClaimedJob } from "./kinds.js";
import { renewLeasesWhileHeld } from "./lease-renewal.js";
import { jobRunnerDefaults, resolveJobRunnerOptions, type JobRunnerOptions } from "./options.js";
import { OutcomeWriter } from "./outcome-writer.js";
import type { LeasedJob, SystemJob } from "./queue.js";
import type { JobOutcome, JobRunnerHealth, JobRunnerParts, JobStepOutcome } from "./runner-parts.js";

export { jobRunnerDefaults, resolveJobRunnerOptions, type JobRunnerOptions } from "./options.js";
export type { JobOutcome, JobRunnerHealth, JobRunnerParts, JobStepOutcome } from "./runner-parts.js";

const RETRY_STATUS = 2; // OperationStatus.Retry
/** A job whose sandbox worker died under it is run again, as one that asked to be. */
const CRASHED = "SANDBOX_WORKER_CRASHED";
/** No worker can start: the job waits for one, and no attempt is counted. */
const UNAVAILABLE = "SANDBOX_UNAVAILABLE";
/**
 * The store failed the plug-in's own call (another host held its rows past busyTimeoutMs, the
 * connection to PostgreSQL broke or the server could not be reached): the job is retried like one
 * that asked to be, not failed for a fault that was not the plug-in's.
 */
const STORE_FAULTS: ReadonlySet<string> = new Set(["STORE_BUSY", "STORE_CONNECTION_LOST", "STORE_UNREACHABLE"]);
/** The longest a job waits for the sandbox before it looks again, ms. */
const MAX_WAIT_FOR_SANDBOX_MS = 60_000;

export class JobRunner {
  readonly owner = randomUUID();
  readonly #parts: JobRunnerParts;
  readonly #options: Readonly<typeof jobRunnerDefaults>;
  readonly #clock: Clock;
  #lastError: JobRunnerHealth["lastError"];
  #timer: ClockTimer | undefined;
  #woken: NodeJS.Immediate | undefined;
  #running: Promise<unknown> | undefined;
  #started = false;
  #stopped = false;
  readonly #listeners = new Set<(outcome: JobOutcome) => void>();
  readonly #claimed: ClaimedJob[] = [];
  #refill: Promise<void> | undefined;
  readonly #outcomes: OutcomeWriter<JobOutcome>;

  #unwatch: (() => void) | undefined;
  /** Jobs this runner holds leased (waiting for a lane, or running), and how to stop renewing their leases. */
  #held = 0;
  #stopRenewing: (() => void) | undefined;
  #sweep = false;

  constructor(parts: JobRunnerParts, options: JobRunnerOptions = {}) {
    this.#parts = parts;
    this.#outcomes = new OutcomeWriter(parts.store);
    this.#options = resolveJobRunnerOptions(options);
    this.#clock = options.clock ?? systemClock;
  }

  /** Whether it runs, and why its last round could not take jobs. */
  health(): JobRunnerHealth {
    return { running: this.#started && !this.#stopped, owner: this.owner, ...(this.#lastError ? { lastError: { ...this.#lastError } } : {}) };
  }

  /** Calls back after each job attempt (for tests and the CLI). Returns a function that removes the listener. */
  onOutcome(listener: (outcome: JobOutcome) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Starts running jobs in the background until stop(). `sweep`: jobs come over a queue
   * (service-bus-transport.ts), and this runner only looks in the store every pollMs (first pollMs
   * after it starts) for those no message brought; nothing wakes it sooner.
   */
  start(mode: "poll" | "sweep" = "poll"): void {
    if (this.#started) return;
    this.#started = true;
    this.#sweep = mode === "sweep";
    // Jobs another host queued (or released) wake this runner at once instead of at its next poll.
    if (!this.#sweep) this.#unwatch = this.#parts.store.watchJobs?.(() => this.wake());
    // A sweep's first round is pollMs away: the messages sent before the host started come first.
    if (this.#sweep) this.#timer = this.#clock.setTimeout(() => void this.#loop(), this.#options.pollMs);
    else this.wake();
  }

  /** Looks for jobs now (called after a commit that queued some). */
  wake(): void {
    if (!this.#started || this.#stopped) return;
    this.#clock.clearTimeout(this.#timer);
    clearImmediate(this.#woken);
    this.#woken = setImmediate(() => void this.#loop()); // the next turn, not a span of time: a manual clock need not move
  }

  async #loop(): Promise<void> {
    if (this.#running || this.#stopped) return;
    let wait = this.#options.pollMs;
    this.#running = this.runReady();
    try {
      await this.#running;
      if (this.#stopped) return;
      const due = this.#sweep ? undefined : await this.#nextDue();
      if (due) wait = Math.max(0, Math.min(this.#options.pollMs, due.getTime() - this.#clock.now().getTime()));
      this.#lastError = undefined;
    } catch (error) {
      // No job could be leased (another process held the store too long, the disk is full, or it is
      // closing): the jobs stay where they are, health() says why, and the next round tries again.
      const e = toStoreError(error, this.#parts.store.path) as { code?: unknown; message?: unknown };
      this.#lastError = { code: typeof e.code === "string" ? e.code : "INTERNAL", message: String(e.message ?? error), at: this.#clock.now().toISOString() };
    } finally {
      this.#running = undefined;
    }
    if (this.#stopped) return;
    this.#timer = this.#clock.setTimeout(() => void this.#loop(), wait);
  }

  async #nextDue(): Promise<Date | undefined> {
    using _lease = await this.#parts.store.acquire();
    return await this.#parts.queue.nextDue();
  }

  /**
   * Runs every job that is ready now, `concurrency` at a time; resolves with what happened to each,
   * in completion order (`onOutcome` hears each as it happens). Rejects when the next jobs could not
   * be leased, with STORE_BUSY when another process held the store too long; the jobs started
   * before that still run to their end first.
   */
  async runReady(): Promise<JobOutcome[]> {
    const outcomes: JobOutcome[] = [];
    let failure: { error: unknown } | undefined;
    const lane = async () => {
      while (!this.#stopped && !failure) {
        let claimed: ClaimedJob | undefined;
        try {
          claimed = await this.#next();
        } catch (error) {
          failure ??= { error };
          return;
        }
        if (!claimed) return;
        outcomes.push(await this.#run(claimed));
      }
    };
    try {
      await Promise.all(Array.from({ length: this.#options.concurrency }, lane));
    } finally {
      await this.#releaseUnstarted();
    }
    if (failure) throw failure.error;
    return outcomes;
  }

  /**
   * The next job for a lane. Jobs are leased `concurrency` at a time in one transaction, so lanes do
   * not queue on the store one claim each; the lanes share one refill at a time.
   */
  async #next(): Promise<ClaimedJob | undefined> {
    for (;;) {
      const next = this.#claimed.shift();
      if (next) return next;
      this.#refill ??= this.#claim(this.#options.concurrency).then(
        (batch) => {
          this.#claimed.push(...batch);
          this.#refill = undefined;
        },
        (error: unknown) => {
          this.#refill = undefined;
          throw error;
        },
      );
      await this.#refill;
      if (this.#claimed.length === 0) return undefined;
    }
  }

  async #claim(limit: number): Promise<ClaimedJob[]> {
    const { store, queue } = this.#parts;
    const leased = await store.write(() => queue.claimBatch(this.owner, this.#options.leaseMs, limit));
    this.#hold(leased.length);
    // Read after the commit: the write lock is held for the lease only. A context that cannot be
    // read fails its own job, not the batch.
    return leased.map(readClaimed);
  }

  /**
   * Leased jobs that no lane started (the runner stopped) are made ready again rather than left to
   * their lease. Best effort: if the store cannot be written, the leases run out as after a crash.
   */
  async #releaseUnstarted(): Promise<void> {
    if (this.#claimed.length === 0) return;
    const ids = this.#claimed.splice(0).map((c) => c.job.id);
    this.#hold(-ids.length);
    const { store, queue } = this.#parts;
    await store.write(() => queue.release(ids, this.owner)).then(
      () => store.announceJobs?.(),
      () => undefined, // else left to their leases
    );
  }

  /**
   * Counts the jobs this runner holds leased, however they were leased (a round's batch, a queue
   * message), and renews their leases while it holds any: see lease-renewal.ts.
   */
  #hold(change: number): void {
    this.#held += change;
    if (this.#held > 0) this.#stopRenewing ??= renewLeasesWhileHeld({ ...this.#parts, clock: this.#clock, owner: this.owner, leaseMs: this.#options.leaseMs });
    else {
      this.#stopRenewing?.();
      this.#stopRenewing = undefined;
    }
  }

  /** Takes and runs the next ready job; undefined when none is ready. */
  async runOne(): Promise<JobOutcome | undefined> {
    const [claimed] = await this.#claim(1);
    return claimed ? this.#run(claimed) : undefined;
  }

  /** Runs a job leased elsewhere (by a queue message) under this runner's owner, and records its outcome; never rejects. */
  runLeased(leased: LeasedJob): Promise<JobOutcome> {
    const claimed = readClaimed(leased);
    this.#hold(1);
    return this.#run(claimed);
  }

  /** Runs a leased job and records its outcome; never rejects. */
  async #run(claimed: ClaimedJob): Promise<JobOutcome> {
    let outcome: JobOutcome;
    try {
      outcome = await this.#attempt(claimed);
    } catch (error) {
      // The outcome could not be written: the lease runs out and the job runs again, as after a crash.
      outcome = { id: claimed.job.id, outcome: "lost", message: `its outcome could not be recorded, so it runs again when its lease runs out: ${(error as Error).message}` };
    } finally {
      this.#hold(-1);
    }
    for (const listener of this.#listeners) listener(outcome);
    return outcome;
  }

  async #attempt(claimed: ClaimedJob): Promise<JobOutcome> {
    const { queue: jobs, registry, notification } = this.#parts;
    const { job } = claimed;
    switch (claimed.kind) {
      case "unreadable": {
        const message = `the job's stored context cannot be read: ${claimed.reason}`;
        return this.#record(job.id, (owner) => jobs.fail(job.id, owner, { message, errorCode: null }), "failed", message);
      }
      case "outbox": {
        const { endpointId, serialized, context } = claimed;
        return this.#post(job, endpointId, serialized ? () => executeSerialized(notification, endpointId, serialized) : () => notification.execute(endpointId, context!));
      }
      case "plugin":
      case "posting": {
        const step = registry.step(claimed.stepId);
        if (!step) return this.#record(job.id, (owner) => jobs.fail(job.id, owner, { message: `the step ${job.owningExtensionId} of this job is no longer registered`, errorCode: null }), "failed");
        const result = claimed.kind === "posting" ? await this.#parts.steps.executeSerializedStep(step, claimed.serialized) : await this.#parts.steps.executeStep(step, claimed.context, {});
        return this.#stepOutcome(job, step, result);
      }
    }
  }

  async #stepOutcome(job: SystemJob, step: StepRegistration, result: JobStepOutcome): Promise<JobOutcome> {
    const { queue: jobs, registry } = this.#parts;
    const trace = () => this.#parts.traceLog.write(result.traceRows, registry.settings.traceLogSetting);
    if (!result.ok && result.error!.innerCode === UNAVAILABLE) {
      const message = result.error!.message;
      return this.#record(job.id, (owner) => jobs.waitForResources(job.id, owner, this.#sandboxDue(), message), "waiting", message);
    }
    if (result.ok) return this.#record(job.id, async (owner) => (await trace(), jobs.succeed(job.id, owner, job.autoDelete)), "succeeded");
    const error = result.error!;
    const attempts = job.retryCount + 1;
    // A post the relay could not deliver re-runs the whole plug-in, as in Dataverse, up to the
    // endpoint's limit; a posting step (the endpoint is its handler) is retried the same way.
    const failedPost = result.calls.find((c) => c.service === "notification" && c.error && RETRYABLE_RELAY_CODES.has(c.error.code));
    const failedEndpoint = step.handler.kind === "serviceEndpoint" && RETRYABLE_RELAY_CODES.has(error.innerCode) ? step.handler.endpoint : undefined;
    const wantsRetry = error.status === RETRY_STATUS || error.innerCode === CRASHED || STORE_FAULTS.has(error.innerCode) || failedPost !== undefined || failedEndpoint !== undefined;
    const limit = this.#attemptsFor(failedEndpoint ?? (failedPost?.args[0] as { id?: unknown } | undefined)?.id);
    const failure = { message: error.message, errorCode: typeof error.details?.errorCode === "number" ? error.details.errorCode : null };
    if (wantsRetry && attempts < limit) {
      const at = this.#retryAt(job);
      return this.#record(job.id, async (owner) => (await trace(), jobs.retryLater(job.id, owner, at, failure)), "retrying", error.message);
    }
    const message = wantsRetry ? `${error.message} (gave up after ${attempts} attempts)` : error.message;
    return this.#record(job.id, async (owner) => (await trace(), jobs.fail(job.id, owner, { ...failure, message })), "failed", message, wantsRetry ? attempts : undefined);
  }

  /** The attempts a job gets in all: its endpoint's maxAttempts when a post failed, else settings.maxAsyncAttempts. */
  #attemptsFor(endpointId: unknown): number {
    const { notification, registry } = this.#parts;
    return (typeof endpointId === "string" ? notification.maxAttemptsFor?.(endpointId) : undefined) ?? registry.settings.maxAsyncAttempts;
  }

  /** When a failed job's next attempt is due: the back-off doubles with each attempt. */
  #retryAt(job: SystemJob): Date {
    return new Date(this.#clock.now().getTime() + this.#options.backoffBaseMs * 2 ** job.retryCount);
  }

  /** When a job that found no sandbox worker looks again: at the runtime's next attempt to start one. */
  #sandboxDue(): Date {
    const now = this.#clock.now().getTime();
    const next = this.#parts.runtime.health().nextStartAt;
    const wait = next === undefined ? this.#options.backoffBaseMs : Date.parse(next) - this.#parts.runtime.clock.now().getTime();
    return new Date(now + Math.min(MAX_WAIT_FOR_SANDBOX_MS, Math.max(this.#options.backoffBaseMs, wait)));
  }

  /** Sends a post that waited in the outbox (serialized when it was queued); a delivery failure is retried with back-off. */
  async #post(job: SystemJob, endpointId: string, send: () => Promise<unknown>): Promise<JobOutcome> {
    const { queue: jobs, notification } = this.#parts;
    try {
      await send();
      return this.#record(job.id, (owner) => jobs.succeed(job.id, owner, job.autoDelete), "succeeded");
    } catch (error) {
      const code = (error as { code?: string }).code ?? "";
      const message = (error as Error).message;
      const attempts = job.retryCount + 1;
      if (RETRYABLE_RELAY_CODES.has(code) && attempts < (notification.maxAttemptsFor?.(endpointId) ?? 1)) {
        const at = this.#retryAt(job);
        return this.#record(job.id, (owner) => jobs.retryLater(job.id, owner, at, { message, errorCode: null }), "retrying", message);
      }
      return this.#record(job.id, (owner) => jobs.fail(job.id, owner, { message, errorCode: null }), "failed", message, RETRYABLE_RELAY_CODES.has(code) ? attempts : undefined);
    }
  }

  /** Records an outcome while the runner still holds the lease (outcomes that finish together share one transaction). */
  #record(id: string, update: (owner: string) => Promise<boolean>, outcome: JobOutcome["outcome"], message?: string, gaveUpAfter?: number): Promise<JobOutcome> {
    return this.#outcomes.record(async () =>
      (await update(this.owner)) ? { id, outcome, ...(message ? { message } : {}), ...(gaveUpAfter ? { gaveUpAfter } : {}) } : { id, outcome: "lost", ...(message ? { message } : {}) },
    );
  }

  /** Stops taking jobs and waits for the one running. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#unwatch?.();
    this.#clock.clearTimeout(this.#timer);
    clearImmediate(this.#woken);
    // The round's own failure was the loop's to handle; stopping waits for it, nothing more.
    await this.#running?.catch(() => undefined);
  }
}
