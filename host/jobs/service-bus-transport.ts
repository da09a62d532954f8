/**
 * System jobs over a Service Bus queue (`jobs.transport`, docs/scale-out.md): the job row in the
 * store stays the record of truth; the queue carries job ids to the hosts' runners.
 *
 * - After a commit that queued jobs, the host sends one message per job (MessageId = the job's id,
 *   application properties `jobId` and `attempt` = the job's retry count).
 * - Every host receives with peek-lock (competing consumers). A message leases its job by id, only
 *   at the message's attempt and when the job is Ready and due (or its lease ran out); the job runs,
 *   its outcome is written while the lease is held (exactly-once completion is the store's), and
 *   then the message is settled: completed after a success, dead-lettered after a failure
 *   (`MaxAttemptsExceeded` when the job had asked to be retried up to its limit, else `JobFailed`),
 *   and for a retry (or a job waiting for a sandbox worker) a new message is scheduled at the job's
 *   postpone time before this one is completed.
 * - A message whose job is not to be run now is settled by the job's state: none, completed, or of
 *   another attempt → completed unrun (a duplicate); Ready but not yet due → rescheduled at its time;
 *   Locked by a live lease → rescheduled for when that lease runs out (its holder may have died).
 * - Nothing is lost when a send fails: the job stays Ready in the store, and each host's runner sweeps
 *   the store every `sweepMs` for ready jobs (and expired leases), as it polls without a transport.
 */
import type { ServiceBusClient, ServiceBusReceivedMessage, ServiceBusReceiver, ServiceBusSender } from "@azure/service-bus";
import { randomUUID } from "node:crypto";
import { OptionsError } from "../../runtime/errors.js";
import type { Clock } from "../ids.js";
import type { DataStore } from "../store/engine.js";
import { toStoreError } from "../store/errors.js";
import { JobState, type JobQueue, type SystemJob } from "./queue.js";
import type { JobRunner } from "./runner.js";
import type { JobOutcome } from "./runner-parts.js";
import type { ResolvedJobTransport } from "./transport-options.js";

/** How far the hosts' clocks and the namespace's may disagree: a scheduled message this early still runs its job. */
const CLOCK_TOLERANCE_MS = 5_000;
/** The longest dead-letter description sent (Service Bus keeps 4 KB of properties' text). */
const MAX_DESCRIPTION = 1_024;

/** What a job message says: which job, at which attempt. */
export interface JobMessageRef {
  id: string;
  attempt: number;
}

/** What the transport needs of the host: its runner (which runs the job under its owner), queue, store and clock. */
export interface JobTransportParts {
  runner: JobRunner;
  queue: JobQueue;
  store: DataStore;
  clock: Clock;
  leaseMs: number;
  concurrency: number;
}

/** The stable code of a store failure (STORE_BUSY, STORE_CLOSED…). */
function storeCode(error: unknown, store: DataStore): string {
  const code = (toStoreError(error, store.path) as { code?: unknown }).code;
  return typeof code === "string" ? code : "INTERNAL";
}

/** The ref of a received message; undefined when it is not a job message. */
export function jobRefOf(message: Pick<ServiceBusReceivedMessage, "applicationProperties">): JobMessageRef | undefined {
  const { jobId, attempt } = message.applicationProperties ?? {};
  return typeof jobId === "string" && jobId !== "" && typeof attempt === "number" && Number.isInteger(attempt) && attempt >= 0 ? { id: jobId, attempt } : undefined;
}

/**
 * Opens the transport's client (no link yet: the first send or receive attaches). A connection
 * string the Service Bus client cannot read, or one that names no queue, is OPTIONS_INVALID naming
 * `path` and the fix.
 */
export async function openJobTransport(options: ResolvedJobTransport, path = "jobs.transport"): Promise<ServiceBusJobTransport> {
  const sdk = await import("@azure/service-bus");
  let entityPath: string | undefined;
  try {
    entityPath = sdk.parseServiceBusConnectionString(options.connectionString).entityPath;
  } catch (error) {
    throw new OptionsError(
      "OPTIONS_INVALID",
      `${path}.connectionString is not a Service Bus connection string (${(error as Error).message}); give one such as "Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=<key name>;SharedAccessKey=<key>" (\`plugbox broker\` prints one)`,
    );
  }
  if (options.queue !== undefined && entityPath !== undefined && options.queue !== entityPath) {
    throw new OptionsError("OPTIONS_INVALID", `${path}.queue is "${options.queue}" but the connection string's EntityPath is "${entityPath}"; give one of them, or make them the same`);
  }
  const queue = options.queue ?? entityPath;
  if (queue === undefined) throw new OptionsError("OPTIONS_INVALID", `${path}.queue is required: name the queue the jobs travel on (or end the connection string with ;EntityPath=<queue>)`);
  // Short retries: a message that cannot be sent leaves its job to the sweep, and a receiver that
  // cannot attach tries again soon rather than holding close() for its back-off.
  const client = new sdk.ServiceBusClient(options.connectionString, { retryOptions: { maxRetries: 2, retryDelayInMs: 250, maxRetryDelayInMs: 2_000, timeoutInMs: 30_000 } });
  return new ServiceBusJobTransport(client, queue);
}

export class ServiceBusJobTransport {
  readonly queueName: string;
  readonly #client: ServiceBusClient;
  readonly #sender: ServiceBusSender;
  #receiver: ServiceBusReceiver | undefined;
  #subscription: { close(): Promise<void> } | undefined;
  #parts: JobTransportParts | undefined;
  /** The scheduling of each retried job's next message, under way. */
  readonly #next = new Map<string, Promise<void>>();
  /** Sends and message handlers under way: close() waits for them. */
  readonly #pending = new Set<Promise<unknown>>();
  #lastError: { code: string; message: string; at: string } | undefined;
  #closed = false;

  constructor(client: ServiceBusClient, queue: string) {
    this.#client = client;
    this.queueName = queue;
    this.#sender = client.createSender(queue);
  }

  /**
   * Gives the transport the host's runner, queue and store (before receive()). Every retry or wait
   * the runner records, whether a message or the sweep brought the job, schedules the job's next
   * message at its postpone time.
   */
  attach(parts: JobTransportParts): void {
    this.#parts = parts;
    parts.runner.onOutcome((outcome) => {
      if (outcome.outcome !== "retrying" && outcome.outcome !== "waiting") return;
      const next = this.#track(this.#scheduleNext(parts, outcome.id));
      this.#next.set(outcome.id, next);
      void next.finally(() => this.#next.get(outcome.id) === next && this.#next.delete(outcome.id));
    });
  }

  /** Schedules the message of a job that is Ready again, postponed: it waits in the queue until then. */
  async #scheduleNext(parts: JobTransportParts, id: string): Promise<void> {
    if (this.#closed) return; // the sweep of another host (or of this one, started again) takes it
    const job = await this.#job(parts, id);
    if (job?.stateCode === JobState.Ready) await this.#schedule({ id: job.id, attempt: job.retryCount }, new Date(job.postponeUntil ?? parts.clock.now().toISOString()));
  }

  /** The last failure to send, receive or settle, until one succeeds. */
  health(): { queue: string; lastError?: { code: string; message: string; at: string } } {
    return { queue: this.queueName, ...(this.#lastError ? { lastError: { ...this.#lastError } } : {}) };
  }

  /**
   * Sends a message for each job a commit queued (`fresh`: a job made ready again, whose MessageId
   * must not be taken for a duplicate of its first). Never rejects: a job whose message was not
   * sent stays Ready in the store, for the sweep.
   */
  announce(ids: readonly string[], fresh = false): void {
    if (this.#closed || ids.length === 0) return;
    const messages = ids.map((id) => ({ body: id, messageId: fresh ? `${id}:${randomUUID()}` : id, applicationProperties: { jobId: id, attempt: 0 } }));
    this.#track(this.#sender.sendMessages(messages).then(() => this.#ok(), (error: unknown) => this.#failed("JOB_QUEUE_UNREACHABLE", error)));
  }

  /** Starts receiving job messages (peek-lock), `concurrency` at a time. */
  receive(): void {
    const parts = this.#parts;
    if (!parts || this.#receiver || this.#closed) return;
    // The message's lock is renewed while its job runs, up to the job's lease.
    this.#receiver = this.#client.createReceiver(this.queueName, { receiveMode: "peekLock", maxAutoLockRenewalDurationInMs: parts.leaseMs });
    const receiver = this.#receiver;
    this.#subscription = receiver.subscribe(
      {
        processMessage: (message) => this.#track(this.#handle(receiver, parts, message)),
        processError: async ({ error }) => this.#failed("JOB_QUEUE_UNREACHABLE", error),
      },
      { autoCompleteMessages: false, maxConcurrentCalls: parts.concurrency },
    );
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise);
    void promise.finally(() => this.#pending.delete(promise)).catch(() => undefined);
    return promise;
  }

  #ok(): void {
    this.#lastError = undefined;
  }

  /** `code`: JOB_QUEUE_UNREACHABLE, or the store's own code (STORE_BUSY…) when the store failed a message. */
  #failed(code: string, error: unknown): void {
    this.#lastError = { code, message: error instanceof Error ? error.message : String(error), at: (this.#parts?.clock.now() ?? new Date()).toISOString() };
  }

  /** Handles one message; never rejects (a message it could not settle is redelivered when its lock runs out). */
  async #handle(receiver: ServiceBusReceiver, parts: JobTransportParts, message: ServiceBusReceivedMessage): Promise<void> {
    const settle = (what: Promise<void>) => what.then(() => this.#ok(), (error: unknown) => this.#failed("JOB_QUEUE_UNREACHABLE", error));
    const ref = jobRefOf(message);
    if (!ref) {
      await settle(receiver.deadLetterMessage(message, { deadLetterReason: "NotAJobMessage", deadLetterErrorDescription: "a job message carries the application properties jobId (a string) and attempt (a whole number)" }));
      return;
    }
    const { store, queue, runner, clock, leaseMs } = parts;
    let claim: Awaited<ReturnType<JobQueue["claimById"]>>;
    try {
      const dueBy = new Date(clock.now().getTime() + CLOCK_TOLERANCE_MS);
      claim = await store.write(() => queue.claimById(ref.id, runner.owner, leaseMs, ref.attempt, dueBy));
    } catch (error) {
      // The store could not be written (busy, closing): the message comes back; the job stays where it is.
      this.#failed(storeCode(error, store), error);
      await settle(receiver.abandonMessage(message));
      return;
    }
    if (!claim.leased) {
      const later = this.#laterFor(claim.job, ref, clock.now(), leaseMs);
      if (later) await this.#schedule(later.ref, later.at);
      await settle(receiver.completeMessage(message));
      return;
    }
    const outcome = await runner.runLeased(claim.leased);
    await this.#settleOutcome(receiver, message, outcome, settle);
  }

  /** Where a message whose job was not leased goes next: rescheduled (a job not due yet, or held by a lease that may die), or nowhere. */
  #laterFor(job: SystemJob | undefined, ref: JobMessageRef, now: Date, leaseMs: number): { ref: JobMessageRef; at: Date } | undefined {
    if (!job || job.retryCount !== ref.attempt) return undefined; // gone, or another attempt's message carries it
    if (job.stateCode === JobState.Ready) return { ref, at: new Date(job.postponeUntil ?? now.toISOString()) };
    if (job.stateCode === JobState.Locked) return { ref, at: new Date(now.getTime() + leaseMs + CLOCK_TOLERANCE_MS) };
    return undefined; // completed or suspended
  }

  async #settleOutcome(receiver: ServiceBusReceiver, message: ServiceBusReceivedMessage, outcome: JobOutcome, settle: (what: Promise<void>) => Promise<void>): Promise<void> {
    switch (outcome.outcome) {
      case "succeeded":
        return settle(receiver.completeMessage(message));
      case "failed":
        return settle(
          receiver.deadLetterMessage(message, {
            deadLetterReason: outcome.gaveUpAfter ? "MaxAttemptsExceeded" : "JobFailed",
            deadLetterErrorDescription: (outcome.message ?? "the job failed").slice(0, MAX_DESCRIPTION),
          }),
        );
      case "retrying":
      case "waiting":
        // Completed once the job's next message is scheduled (attach()).
        await this.#next.get(outcome.id);
        return settle(receiver.completeMessage(message));
      case "lost":
        // Its outcome was not written: the message comes back, finds the lease, and waits for it to run out.
        return settle(receiver.abandonMessage(message));
    }
  }

  async #job(parts: JobTransportParts, id: string): Promise<SystemJob | undefined> {
    try {
      using _lease = await parts.store.acquire();
      return await parts.queue.get(id);
    } catch (error) {
      this.#failed(storeCode(error, parts.store), error);
      return undefined; // the job is in the store as it was written: the sweep takes it when it is due
    }
  }

  /** Schedules the job's next message; a failure leaves the job to the sweep. */
  async #schedule(ref: JobMessageRef, at: Date): Promise<void> {
    try {
      await this.#sender.sendMessages({ body: ref.id, messageId: `${ref.id}:${ref.attempt}:${randomUUID()}`, applicationProperties: { jobId: ref.id, attempt: ref.attempt }, scheduledEnqueueTimeUtc: at });
      this.#ok();
    } catch (error) {
      this.#failed("JOB_QUEUE_UNREACHABLE", error);
    }
  }

  /** Stops receiving, waits for the messages being handled and the sends under way, then closes the client. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#subscription?.close().catch(() => undefined);
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
    await Promise.allSettled([this.#receiver?.close(), this.#sender.close()]);
    await this.#client.close().catch(() => undefined);
  }
}
