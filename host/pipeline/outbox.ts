/**
 * What a transaction hands on to after its commit, as system jobs written in the same transaction
 * (so they exist exactly when it commits): its asynchronous steps, and posts to outbox endpoints
 * made inside it (a rollback never posts).
 */
import { fromPlain, toPlain } from "../../sdk/codec.js";
import { EMPTY_GUID } from "../../sdk/model.js";
import { isGuid, type Clock, type IdSource } from "../ids.js";
import { outboxOwner } from "../jobs/kinds.js";
import type { JobQueue } from "../jobs/queue.js";
import type { Registry } from "../registry/index.js";
import type { NotificationBackend, SerializedContext } from "../services/notification.js";
import { passesFilter, type StepContexts } from "./context.js";
import type { Scope, StepRun } from "./journal.js";

export interface OutboxParts {
  jobs: JobQueue;
  registry: Registry;
  notification: NotificationBackend;
  contexts: StepContexts;
  clock: Clock;
  ids: IdSource;
}

export class Outbox {
  readonly #parts: OutboxParts;

  constructor(parts: OutboxParts) {
    this.#parts = parts;
  }

  /** The notification service a step gets: inside a transaction, posts to an outbox endpoint wait for its commit. */
  notificationFor(scope: Scope | undefined): NotificationBackend {
    return scope?.inTransaction ? new HeldPosts(this, scope.depth) : this.#parts.notification;
  }

  /** Posts to `endpointId` now, or, when it is an outbox endpoint, queues the post as a job of this transaction. */
  async post(endpointId: string, context: Record<string, unknown>, depth: number, signal: AbortSignal | undefined): Promise<string | null> {
    const { notification, ids, clock, jobs } = this.#parts;
    if (!notification.holdsForOutbox?.(endpointId)) return notification.execute(endpointId, context, signal);
    const primaryId = String(context.primaryEntityId ?? "");
    await jobs.insert({
      id: ids.newId(),
      name: `Post to service endpoint ${endpointId}`,
      stepId: outboxOwner(endpointId),
      messageName: String(context.messageName ?? ""),
      entity: typeof context.primaryEntityName === "string" ? context.primaryEntityName : null,
      regardingId: isGuid(primaryId) && primaryId !== EMPTY_GUID ? primaryId : null,
      data: { context },
      serialized: this.#serializeForLater(endpointId, context),
      depth,
      createdOn: clock.now(),
      autoDelete: false,
    });
    return null;
  }

  /** Each asynchronous step of the request's stage 40 becomes a system job of its transaction. */
  async queueAsyncSteps(run: StepRun): Promise<void> {
    const { registry, contexts, jobs, ids, clock } = this.#parts;
    for (const step of registry.stepsFor(run.message, run.entity, 40)) {
      if (step.mode !== "async" || !passesFilter(step, run)) continue;
      const jobId = ids.newId();
      const createdOn = clock.now();
      const copied = { ...run, inputParameters: copy(run.inputParameters), outputParameters: copy(run.outputParameters), sharedVariables: copy(run.sharedVariables) };
      const context = contexts.forStep(step, 40, copied, 1, { id: jobId, createdOn });
      await jobs.insert({
        id: jobId,
        name: step.name,
        stepId: step.id,
        messageName: run.message,
        entity: run.entity,
        regardingId: run.primaryId === EMPTY_GUID ? null : run.primaryId,
        data: context,
        serialized: step.handler.kind === "serviceEndpoint" ? this.#serializeForLater(step.handler.endpoint, context) : undefined,
        depth: run.scope.depth,
        createdOn,
        autoDelete: step.asyncAutoDelete,
      });
      run.journal.jobs.push(jobId);
    }
  }

  /**
   * A context serialized for its endpoint when the job that posts it is queued, so that running
   * the job neither reads the context back nor serializes it; undefined when the notification
   * backend cannot, or the context cannot be serialized (the job then fails with the reason when it runs).
   */
  #serializeForLater(endpointId: string, context: Record<string, unknown>): SerializedContext | undefined {
    const { notification } = this.#parts;
    if (!notification.serialize) return undefined;
    try {
      return notification.serialize(endpointId, context);
    } catch {
      return undefined;
    }
  }
}

/** The notification service of a step inside a transaction. */
class HeldPosts implements NotificationBackend {
  readonly #outbox: Outbox;
  readonly #depth: number;
  constructor(outbox: Outbox, depth: number) {
    this.#outbox = outbox;
    this.#depth = depth;
  }
  execute(endpointId: string, context: Record<string, unknown>, signal?: AbortSignal): Promise<string | null> {
    return this.#outbox.post(endpointId, context, this.#depth, signal);
  }
}

function copy(value: Record<string, unknown>): Record<string, unknown> {
  return fromPlain(toPlain(value)) as Record<string, unknown>;
}
