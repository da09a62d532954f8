/**
 * The event pipeline: it stages. Every request, whether from the CLI, a test host or a plug-in, runs here:
 *
 *   stage 10 (outside the transaction, or inside the caller's when nested)
 *   BEGIN → stage 20 → core operation (30) → stage 40 sync → async steps become system jobs → COMMIT
 *
 * The core operation is the message's (host/organization/messages); a step runs in the step
 * executor; what waits for the commit goes to the outbox. An error anywhere rolls the whole
 * transaction back (trace logs survive) and later steps do not run. A plug-in's own calls re-enter
 * the pipeline with depth + 1 inside the same transaction (as savepoints); past settings.maxDepth
 * the request fails with the chain that led there.
 */
import { EMPTY_GUID, typeOf } from "../../sdk/model.js";
import type { SandboxRuntime } from "../../runtime/index.js";
import { randomIds, systemClock, type Clock, type IdSource } from "../ids.js";
import { JobQueue } from "../jobs/queue.js";
import { readEntity, type OrganizationRequestValue, type OrganizationResponseValue } from "../organization/arguments.js";
import { OrganizationCore } from "../organization/core.js";
import { identityDefaults, type Identity } from "../organization/identity.js";
import { messages, primaryRecord, type MessageOperation, type MessageServices } from "../organization/messages/index.js";
import type { Registry, StageNumber, StepRegistration } from "../registry/index.js";
import type { NotificationBackend, WebBackend } from "../services/index.js";
import { StoreError, toStoreError } from "../store/store.js";
import type { DataStore, StoreTransaction } from "../store/engine.js";
import { STORE_ERRORS } from "../store/errors.js";
import type { WebPolicyInput } from "../web/index.js";
import { executeMultiple, executeTransaction } from "./batches.js";
import { passesFilter, StepContexts } from "./context.js";
import { PipelineError, StepFailedError } from "./errors.js";
import { errorSummary, type Caller, type JournalRequest, type JournalStep, type RequestResult, type Scope, type StepRun } from "./journal.js";
import { Outbox } from "./outbox.js";
import { readRequest, responseFor } from "./request.js";
import { StepExecutor } from "./steps.js";
import { TraceLog } from "./trace-log.js";

export { readRequest } from "./request.js";
export { SYSTEM_USER_ID, identityDefaults, type Identity } from "../organization/identity.js";
export type { Caller, JournalRequest, JournalStep, RequestFailure, RequestResult, StepOutcome } from "./journal.js";

export interface PipelineOptions {
  store: DataStore;
  registry: Registry;
  runtime: SandboxRuntime;
  /** A web backend of the host's; without one, sandbox workers serve web requests under `webPolicy`. */
  web?: WebBackend;
  webPolicy?: WebPolicyInput;
  notification: NotificationBackend;
  clock?: Clock;
  ids?: IdSource;
  identity?: Partial<Identity>;
  /** Called after a commit that queued system jobs, with the ids of the jobs its requests' steps queued (outbox posts' jobs are not among them). */
  onJobsQueued?: (ids: string[]) => void;
}

/** The messages the pipeline runs: those of the registry, and the batches. */
const SUPPORTED = `${[...messages.keys(), "ExecuteMultiple"].join(", ")} and ExecuteTransaction`;

export class Pipeline {
  readonly store: DataStore;
  readonly registry: Registry;
  readonly runtime: SandboxRuntime;
  readonly identity: Identity;
  readonly jobs: JobQueue;
  readonly traceLog: TraceLog;
  /** Runs one step: a synchronous one of a request, or an asynchronous one's job. */
  readonly steps: StepExecutor;
  /** Where posts go: the relay, or a recorder where no endpoint is configured. */
  readonly notification: NotificationBackend;
  readonly #core: OrganizationCore;
  readonly #ids: IdSource;
  readonly #contexts: StepContexts;
  readonly #outbox: Outbox;
  readonly #messageServices: MessageServices;
  readonly #onJobsQueued: ((ids: string[]) => void) | undefined;

  constructor(options: PipelineOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.runtime = options.runtime;
    const clock = options.clock ?? systemClock;
    const ids = (this.#ids = options.ids ?? randomIds);
    this.notification = options.notification;
    this.identity = { ...identityDefaults, ...options.identity };
    this.#onJobsQueued = options.onJobsQueued;
    const registry = this.registry;
    this.#core = new OrganizationCore({ store: this.store, clock, ids, schemaFor: (table) => registry.schemaFor(table), tables: registry.tables });
    this.jobs = new JobQueue(this.store, clock);
    this.traceLog = new TraceLog(this.store);
    this.#contexts = new StepContexts(this.identity, clock, ids);
    this.#outbox = new Outbox({ jobs: this.jobs, registry, notification: this.notification, contexts: this.#contexts, clock, ids });
    this.steps = new StepExecutor({
      registry,
      runtime: this.runtime,
      web: options.web,
      webPolicy: options.webPolicy,
      notification: this.notification,
      outbox: this.#outbox,
      requests: this,
      storePath: this.store.path,
      clock,
      ids,
    });
    this.#messageServices = {
      core: this.#core,
      identity: this.identity,
      nested: (request: OrganizationRequestValue, operation: MessageOperation) => this.#run(request, (operation as StepRun).scope),
    };
  }

  /** Runs one request from outside (CLI, test host, async job): it waits for and holds the store. */
  async execute(request: OrganizationRequestValue, caller: Caller = {}, options: { signal?: AbortSignal; depth?: number; correlationId?: string; parentContext?: Record<string, unknown> | null } = {}): Promise<RequestResult> {
    request = readRequest(request);
    using _lease = await this.store.acquire();
    const userId = caller.userId ?? this.identity.defaultUserId;
    const scope: Scope = {
      depth: options.depth ?? 1,
      correlationId: options.correlationId ?? this.#ids.newId(),
      chain: [],
      inTransaction: false,
      userId,
      initiatingUserId: caller.initiatingUserId ?? userId,
      parentContext: options.parentContext ?? null,
      traces: [],
      journal: [],
      signal: options.signal,
    };
    const queuedJobs: string[] = [];
    try {
      const response = await this.#run(request, scope);
      scope.journal.forEach(function jobsOf(j): void {
        queuedJobs.push(...j.jobs);
        for (const s of j.steps) s.requests.forEach(jobsOf);
      });
      await this.#keepTraces(scope, undefined);
      return { response, journal: scope.journal[0]! };
    } catch (thrown) {
      const error = toStoreError(thrown, this.store.path);
      await this.#keepTraces(scope, error);
      if (scope.journal[0] && typeof error === "object" && error !== null) Object.assign(error, { journal: scope.journal[0] });
      throw error;
    } finally {
      if (queuedJobs.length > 0) this.#onJobsQueued?.(queuedJobs);
    }
  }

  /**
   * Writes the request's trace logs after its transaction ended (so they survive a rollback), while
   * the request still holds the store. A write that fails fails no request, whose outcome stands:
   * the journal says why the traces were not kept. After the store itself failed the request (busy,
   * full, damaged), they are not tried.
   */
  async #keepTraces(scope: Scope, failure: unknown): Promise<void> {
    const rows = this.traceLog.kept(scope.traces, this.registry.settings.traceLogSetting);
    const journal = scope.journal[0];
    if (rows.length === 0) return;
    if (failure instanceof StoreError && STORE_ERRORS[failure.code].family === "environment") {
      if (journal) journal.traceLogError = { code: failure.code, message: `the trace logs of this request were not written: ${failure.message}` };
      return;
    }
    try {
      await using transaction = await this.store.beginWrite();
      await this.traceLog.insert(rows);
      await transaction.commit();
    } catch (error) {
      const typed = errorSummary(toStoreError(error, this.store.path));
      if (journal) journal.traceLogError = { code: typed.code, message: `the trace logs of this request were not written: ${typed.message}` };
    }
  }

  /** A transaction for a request: a savepoint inside its caller's, else one of its own, begun with the event loop free while another process holds the file. */
  async #begin(scope: Scope): Promise<StoreTransaction> {
    return scope.inTransaction ? this.store.begin() : this.store.beginWrite();
  }

  /** Runs a request inside the transaction its scope holds (a plug-in's call, a request of a batch). */
  runNested(request: OrganizationRequestValue, scope: Scope): Promise<OrganizationResponseValue> {
    return this.#run(request, scope);
  }

  /** A transaction for a request of a batch: see `#begin`. */
  transactionFor(scope: Scope): Promise<StoreTransaction> {
    return this.#begin(scope);
  }

  // One request ////////////////////////////////////////////////////////////////////////////////

  async #run(request: OrganizationRequestValue, scope: Scope): Promise<OrganizationResponseValue> {
    const started = performance.now();
    const message = request.requestName;
    const inputParameters = { ...request.parameters };
    const { entity, id } = primaryRecord(message, inputParameters);
    const journal: JournalRequest = { message, entity, id, depth: scope.depth, outcome: "ok", durationMs: 0, steps: [], jobs: [] };
    scope.journal.push(journal);
    const link = `${message}${entity ? ` of ${entity}` : ""} (depth ${scope.depth})`;
    const chain = [...scope.chain, link];
    try {
      if (scope.depth > this.registry.settings.maxDepth) {
        throw new PipelineError(
          "PIPELINE_DEPTH_LIMIT",
          `the request passed the maximum depth of ${this.registry.settings.maxDepth}, which plugbox treats as an infinite loop (as Dataverse does); the chain was: ${chain.join(" → ")}`,
          { details: { chain } },
        );
      }
      if (message === "ExecuteMultiple") return await executeMultiple(this, inputParameters, scope);
      if (message === "ExecuteTransaction") return await executeTransaction(this, inputParameters, scope);
      return await this.#stages(message, entity, id, inputParameters, { ...scope, chain }, journal);
    } catch (thrown) {
      const error = toStoreError(thrown, this.store.path);
      journal.outcome = "failed";
      journal.error = errorSummary(error);
      throw error;
    } finally {
      journal.durationMs = performance.now() - started;
    }
  }

  async #stages(message: string, entity: string | null, id: string | null, inputParameters: Record<string, unknown>, scope: Scope, journal: JournalRequest): Promise<OrganizationResponseValue> {
    const definition = messages.get(message);
    const outputParameters: Record<string, unknown> = {};
    const stage10Shared: Record<string, unknown> = {};
    if (definition?.target) inputParameters.Target = readEntity(inputParameters.Target, "Target", definition.target === "entityWithId");
    const base: StepRun = {
      scope,
      message,
      entity,
      primaryId: id ?? EMPTY_GUID,
      inputParameters,
      outputParameters,
      sharedVariables: stage10Shared,
      parentContext: scope.parentContext,
      preImage: undefined,
      postImage: undefined,
      journal,
    };
    // Images are read only when a step asks for one; the pre-image before stage 10, which may want it too.
    const images = this.#imagesWanted(message, entity);
    base.preImage = images.pre && id && entity && definition?.hasPreImage ? await this.#core.read(entity, id) : undefined;
    // Stage 10: outside the transaction unless a caller's is open.
    const stage10Context = await this.#runSteps(10, base);
    await using tx = await this.#begin(scope);
    const inner: Scope = { ...scope, inTransaction: true };
    // Shared variables of stage 10 reach later stages through ParentContext for some messages (reference 2.6).
    const throughParent = definition?.sharedThroughParent === true;
    const run: StepRun = {
      ...base,
      scope: inner,
      sharedVariables: throughParent ? {} : stage10Shared,
      parentContext: throughParent && stage10Context ? stage10Context : scope.parentContext,
    };
    // The pre-image as the transaction sees the record (stage 10 may have changed it).
    if (images.pre && id && entity && base.preImage !== undefined) run.preImage = await this.#core.read(entity, id);
    await this.#runSteps(20, run);
    if (!definition) {
      throw new PipelineError(
        "PIPELINE_UNSUPPORTED_MESSAGE",
        `the ${message} message is not supported; plugbox supports ${SUPPORTED}`,
      );
    }
    await definition.run(run, this.#messageServices);
    journal.id = run.primaryId === EMPTY_GUID ? journal.id : run.primaryId;
    run.postImage = images.post && entity && run.primaryId !== EMPTY_GUID && definition.hasPostImage !== false ? await this.#core.read(entity, run.primaryId) : undefined;
    await this.#runSteps(40, run);
    await this.#outbox.queueAsyncSteps(run);
    await tx.commit();
    return responseFor(message, run.outputParameters);
  }

  #imagesWanted(message: string, entity: string | null): { pre: boolean; post: boolean } {
    const steps = [10, 20, 40].flatMap((stage) => this.registry.stepsFor(message, entity, stage as StageNumber));
    return {
      pre: steps.some((s) => s.images.some((i) => i.type !== "post")),
      post: steps.some((s) => s.stage === 40 && s.images.some((i) => i.type !== "pre")),
    };
  }

  /** Runs the synchronous steps of a stage in rank order; returns the context of the last one (for ParentContext). */
  async #runSteps(stage: StageNumber, run: StepRun): Promise<Record<string, unknown> | null> {
    let last: Record<string, unknown> | null = null;
    for (const step of this.registry.stepsFor(run.message, run.entity, stage)) {
      if (step.mode !== "sync" || !passesFilter(step, run)) continue;
      last = await this.#runStep(step, stage, run);
    }
    return last;
  }

  async #runStep(step: StepRegistration, stage: StageNumber, run: StepRun): Promise<Record<string, unknown>> {
    const context = this.#contexts.forStep(step, stage, run, 0);
    const record: JournalStep = { stepId: step.id, name: step.name, stage, mode: "sync", outcome: "ok", durationMs: 0, trace: "", requests: [], calls: [] };
    run.journal.steps.push(record);
    const outcome = await this.steps.executeStep(step, context, {
      nested: { scope: { ...run.scope, chain: [...run.scope.chain, `step ${step.name} (stage ${stage})`] }, journal: record.requests },
    });
    record.durationMs = outcome.durationMs;
    record.trace = outcome.trace;
    record.calls = outcome.calls.filter((c) => c.service !== "organization");
    run.scope.traces.push(...outcome.traceRows);
    if (!outcome.ok) {
      record.outcome = "failed";
      record.error = errorSummary(outcome.error);
      throw outcome.error;
    }
    // What a stage may change: Target and the other inputs in 10 and 20, OutputParameters in 40, SharedVariables always.
    const changes = outcome.changes!;
    if (stage !== 40) {
      const target = changes.inputParameters.Target;
      if (run.inputParameters.Target !== undefined && target !== undefined) {
        const original = run.inputParameters.Target as { logicalName?: string };
        if (typeOf(target) !== typeOf(run.inputParameters.Target) || (target as { logicalName?: string }).logicalName !== original.logicalName) {
          throw new StepFailedError(`step ${step.name} replaced InputParameters.Target with a value of another kind or table`, { innerCode: "PLUGIN_RESULT_INVALID", status: 0, trace: outcome.trace });
        }
      }
      replaceContents(run.inputParameters, changes.inputParameters);
    } else {
      replaceContents(run.outputParameters, changes.outputParameters);
    }
    replaceContents(run.sharedVariables, changes.sharedVariables);
    return { ...context, sharedVariables: run.sharedVariables };
  }
}

function replaceContents(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const key of Object.keys(target)) if (!(key in source)) delete target[key];
  Object.assign(target, source);
}
