/**
 * The event pipeline. Every request, whether from the CLI, a test host or a plug-in, runs here:
 *
 *   stage 10 (outside the transaction, or inside the caller's when nested)
 *   BEGIN → stage 20 → core operation (30) → stage 40 sync → async steps become system jobs → COMMIT
 *
 * An error anywhere rolls the whole transaction back (trace logs survive) and later steps do not
 * run. A plug-in's own calls re-enter the pipeline with depth + 1 inside the same transaction (as
 * savepoints); past settings.maxDepth the request fails with the chain that led there.
 */
import { toPlain, fromPlain, isPlainObject } from "../../sdk/codec.js";
import { ColumnSet, Entity, EntityCollection, EntityReference, EMPTY_GUID, typeOf } from "../../sdk/model.js";
import { loadBundleFile, PluginExecutionError, type Bundle, type PlugboxError, type SandboxRuntime } from "../../runtime/index.js";
import { OrganizationError } from "../organization/errors.js";
import { isGuid, randomIds, systemClock, type Clock, type IdSource } from "../ids.js";
import { OrganizationCore, toEntity } from "../organization/core.js";
import { retrieveMultiple } from "../organization/query/index.js";
import type { Registry, StepImage, StepRegistration, StageNumber } from "../registry/index.js";
import { createHostServices, webCallRecord, type NotificationBackend, type OrganizationBackend, type RecordedCall, type WebBackend } from "../services/index.js";
import { executeSerialized, type SerializedContext } from "../services/notification.js";
import { ServiceError } from "../../runtime/errors.js";
import type { WebPolicyInput } from "../web/index.js";

const unreachableWeb: WebBackend = {
  fetch: async () => {
    throw new ServiceError("SERVICE_FAILED", "no web backend is configured in this host");
  },
};
import { readColumnSet, readEntity, readEntityReference, readLogicalName, type OrganizationRequestValue, type OrganizationResponseValue } from "../services/organization.js";
import { StoreError, toStoreError, type Store, type StoreTransaction } from "../store/store.js";
import { STORE_ERRORS, withoutStorePath } from "../store/errors.js";
import { PipelineError, StepFailedError } from "./errors.js";
import { JobQueue } from "./jobs-store.js";
import { TraceLog, type TraceRow } from "./trace-log.js";

/** The owning extension of an outbox job: the endpoint whose post waits for the commit. */
export const OUTBOX_PREFIX = "serviceendpoint:";

/** The SYSTEM user: what createOrganizationService(null) acts as. */
export const SYSTEM_USER_ID = "00000000-0000-0000-0000-00000000000a";

export interface Identity {
  organizationId: string;
  organizationName: string;
  businessUnitId: string;
  /** The user a request runs as when its caller names none. */
  defaultUserId: string;
}

export const identityDefaults: Readonly<Identity> = Object.freeze({
  organizationId: "00000000-0000-0000-0000-000000000003",
  organizationName: "plugbox",
  businessUnitId: "00000000-0000-0000-0000-000000000002",
  defaultUserId: "00000000-0000-0000-0000-000000000001",
});

export interface PipelineOptions {
  store: Store;
  registry: Registry;
  runtime: SandboxRuntime;
  /** A web backend of the host's; without one, sandbox workers serve web requests under `webPolicy`. */
  web?: WebBackend;
  webPolicy?: WebPolicyInput;
  notification: NotificationBackend;
  clock?: Clock;
  ids?: IdSource;
  identity?: Partial<Identity>;
  /** Called after a commit that queued system jobs. */
  onJobsQueued?: () => void;
}

export interface Caller {
  /** The calling user. @default identity.defaultUserId */
  userId?: string;
  /** Who started the chain (differs from userId under impersonation). @default userId */
  initiatingUserId?: string;
}

export interface JournalStep {
  stepId: string;
  name: string;
  stage: StageNumber;
  mode: "sync" | "async";
  outcome: "ok" | "failed";
  error?: { code: string; message: string };
  durationMs: number;
  trace: string;
  /** Requests the plug-in made through the organization service. */
  requests: JournalRequest[];
  /** Its other service calls (notification, web). */
  calls: RecordedCall[];
}

export interface JournalRequest {
  message: string;
  entity: string | null;
  id: string | null;
  depth: number;
  outcome: "ok" | "failed";
  error?: { code: string; message: string };
  durationMs: number;
  steps: JournalStep[];
  /** System jobs queued by this request's asynchronous steps. */
  jobs: string[];
  /** Set on the outermost request when its trace logs could not be written (the request's outcome stands). */
  traceLogError?: { code: string; message: string };
}

export interface RequestResult {
  response: OrganizationResponseValue;
  journal: JournalRequest;
}

/** Thrown by `execute`: the typed error, with the journal of what ran. */
export type RequestFailure = PlugboxError & { journal?: JournalRequest };

interface Scope {
  depth: number;
  correlationId: string;
  chain: string[];
  /** The request runs inside an open transaction (its own or its caller's). */
  inTransaction: boolean;
  userId: string;
  initiatingUserId: string;
  parentContext: Record<string, unknown> | null;
  traces: TraceRow[];
  journal: JournalRequest[];
  signal: AbortSignal | undefined;
}

interface StepRun {
  scope: Scope;
  message: string;
  entity: string | null;
  primaryId: string;
  inputParameters: Record<string, unknown>;
  outputParameters: Record<string, unknown>;
  sharedVariables: Record<string, unknown>;
  parentContext: Record<string, unknown> | null;
  preImage: Record<string, unknown> | undefined;
  postImage: Record<string, unknown> | undefined;
  journal: JournalRequest;
}

const MESSAGES_WITH_PARENT_SHARED = new Set(["Create", "Update", "Delete"]);

function errorSummary(error: unknown): { code: string; message: string } {
  const e = error as { code?: unknown; message?: unknown };
  return { code: typeof e.code === "string" ? e.code : "INTERNAL", message: typeof e.message === "string" ? e.message : String(error) };
}

export class Pipeline {
  readonly store: Store;
  readonly registry: Registry;
  readonly runtime: SandboxRuntime;
  readonly identity: Identity;
  readonly jobs: JobQueue;
  readonly traceLog: TraceLog;
  readonly #core: OrganizationCore;
  readonly #clock: Clock;
  readonly #ids: IdSource;
  readonly #web: WebBackend;
  readonly #webPolicy: WebPolicyInput | undefined;
  readonly #notification: NotificationBackend;
  /** Where posts go: the relay, or a recorder where no endpoint is configured. */
  get notification(): NotificationBackend {
    return this.#notification;
  }
  readonly #bundles = new Map<string, Promise<Bundle>>();
  readonly #onJobsQueued: (() => void) | undefined;

  constructor(options: PipelineOptions) {
    this.store = options.store;
    this.registry = options.registry;
    this.runtime = options.runtime;
    this.#clock = options.clock ?? systemClock;
    this.#ids = options.ids ?? randomIds;
    this.#web = options.web ?? unreachableWeb;
    this.#webPolicy = options.web ? undefined : (options.webPolicy ?? {});
    this.#notification = options.notification;
    this.identity = { ...identityDefaults, ...options.identity };
    this.#onJobsQueued = options.onJobsQueued;
    const schemaFor = (table: string) => this.registry.schemaFor(table);
    this.#core = new OrganizationCore({ store: this.store, clock: this.#clock, ids: this.#ids, schemaFor });
    this.jobs = new JobQueue(this.store, this.#clock);
    this.traceLog = new TraceLog(this.store);
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
    let queuedJobs = false;
    try {
      const response = await this.#run(request, scope);
      queuedJobs = scope.journal.some(function anyJobs(j): boolean {
        return j.jobs.length > 0 || j.steps.some((s) => s.requests.some(anyJobs));
      });
      await this.#keepTraces(scope, undefined);
      return { response, journal: scope.journal[0]! };
    } catch (thrown) {
      const error = toStoreError(thrown, this.store.path);
      await this.#keepTraces(scope, error);
      if (scope.journal[0] && typeof error === "object" && error !== null) Object.assign(error, { journal: scope.journal[0] });
      throw error;
    } finally {
      if (queuedJobs) this.#onJobsQueued?.();
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
      using transaction = await this.store.beginWrite();
      this.traceLog.insert(rows);
      transaction.commit();
    } catch (error) {
      const typed = errorSummary(toStoreError(error, this.store.path));
      if (journal) journal.traceLogError = { code: typed.code, message: `the trace logs of this request were not written: ${typed.message}` };
    }
  }

  /** A transaction for a request: a savepoint inside its caller's, else one of its own, begun with the event loop free while another process holds the file. */
  async #begin(scope: Scope): Promise<StoreTransaction> {
    return scope.inTransaction ? this.store.begin() : this.store.beginWrite();
  }

  // One request ////////////////////////////////////////////////////////////////////////////////

  async #run(request: OrganizationRequestValue, scope: Scope): Promise<OrganizationResponseValue> {
    const started = performance.now();
    const message = request.requestName;
    const inputParameters = { ...request.parameters };
    const { entity, id } = this.#primary(message, inputParameters);
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
      if (message === "ExecuteMultiple") return await this.#executeMultiple(inputParameters, scope);
      if (message === "ExecuteTransaction") return await this.#executeTransaction(inputParameters, scope);
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
    const outputParameters: Record<string, unknown> = {};
    const stage10Shared: Record<string, unknown> = {};
    if (message === "Create" || message === "Update" || message === "Upsert") this.#prepareTarget(message, inputParameters);
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
    base.preImage = images.pre && id && entity && ["Update", "Delete", "Assign", "SetState", "Upsert"].includes(message) ? this.#core.read(entity, id) : undefined;
    // Stage 10: outside the transaction unless a caller's is open.
    const stage10Context = await this.#runSteps(10, base);
    using tx = await this.#begin(scope);
    const inner: Scope = { ...scope, inTransaction: true };
    const run: StepRun = {
      ...base,
      scope: inner,
      // Shared variables of stage 10 reach later stages through ParentContext for these messages (reference 2.6).
      sharedVariables: MESSAGES_WITH_PARENT_SHARED.has(message) ? {} : stage10Shared,
      parentContext: MESSAGES_WITH_PARENT_SHARED.has(message) && stage10Context ? stage10Context : scope.parentContext,
    };
    // The pre-image as the transaction sees the record (stage 10 may have changed it).
    if (images.pre && id && entity && base.preImage !== undefined) run.preImage = this.#core.read(entity, id);
    await this.#runSteps(20, run);
    await this.#core30(message, run);
    journal.id = run.primaryId === EMPTY_GUID ? journal.id : run.primaryId;
    run.postImage = images.post && entity && run.primaryId !== EMPTY_GUID && message !== "Delete" ? this.#core.read(entity, run.primaryId) : undefined;
    await this.#runSteps(40, run);
    this.#queueAsyncSteps(run);
    tx.commit();
    return responseFor(message, run.outputParameters);
  }

  #imagesWanted(message: string, entity: string | null): { pre: boolean; post: boolean } {
    const steps = [10, 20, 40].flatMap((stage) => this.registry.stepsFor(message, entity, stage as StageNumber));
    return {
      pre: steps.some((s) => s.images.some((i) => i.type !== "post")),
      post: steps.some((s) => s.stage === 40 && s.images.some((i) => i.type !== "pre")),
    };
  }

  #prepareTarget(message: string, inputParameters: Record<string, unknown>): void {
    const target = readEntity(inputParameters.Target, "Target", message === "Update");
    inputParameters.Target = target;
  }

  /** The primary entity and id of a request, from its parameters. */
  #primary(message: string, p: Record<string, unknown>): { entity: string | null; id: string | null } {
    const ref = (value: unknown): { entity: string; id: string | null } | null => {
      if (typeof value !== "object" || value === null) return null;
      const v = value as { logicalName?: unknown; id?: unknown };
      if (typeof v.logicalName !== "string") return null;
      return { entity: v.logicalName, id: isGuid(v.id) && v.id !== EMPTY_GUID ? v.id.toLowerCase() : null };
    };
    const found = ref(p.Target) ?? ref(p.EntityMoniker);
    if (found) return found;
    if (message === "RetrieveMultiple" && typeof p.Query === "object" && p.Query !== null) {
      const q = p.Query as { entityName?: unknown; query?: unknown };
      if (typeof q.entityName === "string") return { entity: q.entityName, id: null };
      if (typeof q.query === "string") return { entity: /<entity\s+name=["']([A-Za-z0-9_]+)["']/.exec(q.query)?.[1] ?? null, id: null };
    }
    return { entity: null, id: null };
  }

  // The core operation (stage 30) ////////////////////////////////////////////////////////////////

  async #core30(message: string, run: StepRun): Promise<void> {
    const p = run.inputParameters;
    const out = run.outputParameters;
    const userId = run.scope.userId;
    switch (message) {
      case "Create": {
        const target = readEntity(p.Target, "Target");
        const id = this.#core.create(target, userId);
        p.Target = target;
        out.id = id;
        run.primaryId = id;
        return;
      }
      case "Update": {
        const target = readEntity(p.Target, "Target", true);
        this.#core.update(target, userId);
        p.Target = target;
        return;
      }
      case "Delete": {
        const target = readEntityReference(p.Target, "Target");
        this.#core.delete(target.logicalName, target.id);
        return;
      }
      case "Retrieve": {
        const target = readEntityReference(p.Target, "Target");
        out.BusinessEntity = this.#core.retrieve(target.logicalName, target.id, readColumnSet(p.ColumnSet));
        return;
      }
      case "RetrieveMultiple": {
        if (typeof p.Query !== "object" || p.Query === null) throw new OrganizationError("ORG_INVALID_ARGUMENT", "RetrieveMultiple needs a Query: a QueryExpression, QueryByAttribute or FetchExpression");
        // Where the manifest declares tables, a table it does not declare and that holds nothing is unknown.
        if (run.entity && this.registry.tables.size > 0 && !this.registry.tables.has(run.entity) && !this.store.hasRecords(run.entity)) {
          throw new OrganizationError("ORG_INVALID_ARGUMENT", `there is no table ${run.entity}: the manifest declares ${[...this.registry.tables.keys()].join(", ")} and no ${run.entity} record exists; declare it under tables`);
        }
        out.BusinessEntityCollection = retrieveMultiple(this.store.db, p.Query, { schemaFor: (t) => this.registry.schemaFor(t) });
        return;
      }
      case "Associate":
      case "Disassociate": {
        const target = readEntityReference(p.Target, "Target");
        const relationship = typeof p.Relationship === "string" ? p.Relationship : readLogicalName((p.Relationship as { schemaName?: unknown } | undefined)?.schemaName, "Relationship.schemaName");
        if (!Array.isArray(p.RelatedEntities)) throw new OrganizationError("ORG_INVALID_ARGUMENT", "RelatedEntities must be an array of EntityReference");
        const related = p.RelatedEntities.map((r, i) => readEntityReference(r, `RelatedEntities[${i}]`));
        if (message === "Associate") this.#core.associate(target, relationship, related);
        else this.#core.disassociate(target, relationship, related);
        return;
      }
      case "SetState": {
        const moniker = readEntityReference(p.EntityMoniker, "EntityMoniker");
        const state = optionValue(p.State, "State");
        const status = optionValue(p.Status, "Status");
        this.#core.update(new Entity(moniker.logicalName, moniker.id, { statecode: fromPlain({ $type: "OptionSetValue", value: state }) as never, statuscode: fromPlain({ $type: "OptionSetValue", value: status }) as never }), userId);
        return;
      }
      case "Assign": {
        const target = readEntityReference(p.Target, "Target");
        const assignee = readEntityReference(p.Assignee, "Assignee");
        this.#core.update(new Entity(target.logicalName, target.id, { ownerid: assignee }), userId);
        return;
      }
      case "Upsert": {
        // An Upsert is a Create or an Update, with the steps of the one it performs (inside this transaction).
        const target = readEntity(p.Target, "Target");
        const existing = this.#core.findForUpsert(target);
        const keys = target.keyAttributes ?? {};
        if (existing) {
          target.id = existing;
          for (const column of Object.keys(keys)) delete target.attributes[column]; // the key identifies the record; it does not change it
        } else {
          for (const [column, value] of Object.entries(keys)) if (!(column in target.attributes)) target.attributes[column] = value;
        }
        const response = await this.#run({ requestName: existing ? "Update" : "Create", parameters: { Target: target } }, run.scope);
        const id = existing ?? (response.results.id as string);
        out.RecordCreated = !existing;
        run.primaryId = id;
        out.Target = new EntityReference(target.logicalName, id);
        return;
      }
      case "WhoAmI":
        out.UserId = run.scope.userId;
        out.BusinessUnitId = this.identity.businessUnitId;
        out.OrganizationId = this.identity.organizationId;
        return;
      default:
        throw new PipelineError(
          "PIPELINE_UNSUPPORTED_MESSAGE",
          `the ${message} message is not supported; plugbox supports Create, Retrieve, Update, Delete, Associate, Disassociate, RetrieveMultiple, Upsert, SetState, Assign, WhoAmI, ExecuteMultiple and ExecuteTransaction`,
        );
    }
  }

  // Batches ////////////////////////////////////////////////////////////////////////////////////

  #readRequests(p: Record<string, unknown>): OrganizationRequestValue[] {
    const list = p.Requests;
    if (!Array.isArray(list) || list.length === 0) throw new PipelineError("PIPELINE_INVALID_REQUEST", "Requests must be a non-empty array of { requestName, parameters }");
    if (list.length > 1000) throw new PipelineError("PIPELINE_INVALID_REQUEST", "a batch holds at most 1000 requests, as in Dataverse");
    return list.map((r, i) => readRequest(r, `Requests[${i}]`));
  }

  /** Each request of the batch runs in its own transaction and appears in the journal beside the batch. */
  async #executeMultiple(p: Record<string, unknown>, scope: Scope): Promise<OrganizationResponseValue> {
    const requests = this.#readRequests(p);
    const settings = (isPlainObject(p.Settings) ? p.Settings : {}) as { ContinueOnError?: unknown; ReturnResponses?: unknown };
    const responses: Array<Record<string, unknown>> = [];
    let isFaulted = false;
    for (const [index, request] of requests.entries()) {
      try {
        const response = await this.#isolated(request, scope);
        if (settings.ReturnResponses === true) responses.push({ RequestIndex: index, Response: response });
      } catch (error) {
        isFaulted = true;
        responses.push({ RequestIndex: index, Fault: errorSummary(error) });
        if (settings.ContinueOnError !== true) break;
      }
    }
    return { responseName: "ExecuteMultiple", results: { IsFaulted: isFaulted, Responses: responses } };
  }

  /** Runs a request of a batch in its own transaction (or savepoint), not the batch's. */
  async #isolated(request: OrganizationRequestValue, scope: Scope): Promise<OrganizationResponseValue> {
    using tx = await this.#begin(scope);
    const response = await this.#run(request, { ...scope, inTransaction: true });
    tx.commit();
    return response;
  }

  async #executeTransaction(p: Record<string, unknown>, scope: Scope): Promise<OrganizationResponseValue> {
    const requests = this.#readRequests(p);
    using tx = await this.#begin(scope);
    const responses: OrganizationResponseValue[] = [];
    for (const [index, request] of requests.entries()) {
      try {
        responses.push(await this.#run(request, { ...scope, inTransaction: true }));
      } catch (error) {
        const summary = errorSummary(error);
        throw Object.assign(new PipelineError("PIPELINE_STEP_FAILED", `ExecuteTransaction: request ${index} (${request.requestName}) failed, and every request was rolled back: ${summary.message}`, { cause: error }), {
          details: { faultedRequestIndex: index, code: summary.code },
        });
      }
    }
    tx.commit();
    return { responseName: "ExecuteTransaction", results: { Responses: p.ReturnResponses === true ? responses : [] } };
  }

  // Steps ///////////////////////////////////////////////////////////////////////////////////////

  /** Runs the synchronous steps of a stage in rank order; returns the context of the last one (for ParentContext). */
  async #runSteps(stage: StageNumber, run: StepRun): Promise<Record<string, unknown> | null> {
    let last: Record<string, unknown> | null = null;
    for (const step of this.registry.stepsFor(run.message, run.entity, stage)) {
      if (step.mode !== "sync" || !this.#passesFilter(step, run)) continue;
      last = await this.#runStep(step, stage, run);
    }
    return last;
  }

  #passesFilter(step: StepRegistration, run: StepRun): boolean {
    if (run.message !== "Update" || step.filteringAttributes.length === 0) return true;
    const target = run.inputParameters.Target as Entity | undefined;
    return step.filteringAttributes.some((column) => target !== undefined && column in target.attributes);
  }

  #image(image: StepImage, record: Record<string, unknown> | undefined, entity: string, id: string): Entity | undefined {
    if (!record) return undefined;
    const columns = image.attributes.length === 0 ? new ColumnSet(true) : new ColumnSet(...image.attributes);
    return toEntity(entity, id, record, columns);
  }

  /** The execution context a step sees (camelCase IPluginExecutionContext). */
  #context(step: StepRegistration, stage: StageNumber, run: StepRun, mode: 0 | 1, operation?: { id: string; createdOn: Date }): Record<string, unknown> {
    const scope = run.scope;
    const preEntityImages: Record<string, Entity> = {};
    const postEntityImages: Record<string, Entity> = {};
    for (const image of step.images) {
      if (!run.entity) continue;
      if (image.type !== "post") {
        const pre = this.#image(image, run.preImage, run.entity, run.primaryId);
        if (pre) preEntityImages[image.alias] = pre;
      }
      if (image.type !== "pre" && stage === 40) {
        const post = this.#image(image, run.postImage, run.entity, run.primaryId);
        if (post) postEntityImages[image.alias] = post;
      }
    }
    const requestId = this.#ids.newId();
    const userId = step.runAs ?? scope.userId;
    return {
      messageName: run.message,
      primaryEntityName: run.entity ?? "none",
      primaryEntityId: run.primaryId,
      secondaryEntityName: "none",
      stage,
      mode,
      isolationMode: 2,
      depth: scope.depth,
      inputParameters: run.inputParameters,
      outputParameters: run.outputParameters,
      sharedVariables: run.sharedVariables,
      preEntityImages,
      postEntityImages,
      userId,
      initiatingUserId: scope.initiatingUserId,
      businessUnitId: this.identity.businessUnitId,
      organizationId: this.identity.organizationId,
      organizationName: this.identity.organizationName,
      owningExtension: new EntityReference("sdkmessageprocessingstep", step.id, step.name),
      correlationId: scope.correlationId,
      requestId,
      operationId: operation?.id ?? requestId,
      operationCreatedOn: operation?.createdOn ?? this.#clock.now(),
      isExecutingOffline: false,
      isOfflinePlayback: false,
      isInTransaction: mode === 0 && scope.inTransaction,
      parentContext: run.parentContext,
      userAzureActiveDirectoryObjectId: EMPTY_GUID,
      initiatingUserAzureActiveDirectoryObjectId: EMPTY_GUID,
      initiatingUserApplicationId: EMPTY_GUID,
      portalsContactId: EMPTY_GUID,
      isPortalsClientCall: false,
      authenticatedUserId: scope.initiatingUserId,
      initiatingUserAgent: "plugbox",
      environmentId: this.identity.organizationId,
      tenantId: EMPTY_GUID,
      isApplicationUser: false,
    };
  }

  bundle(name: string): Promise<Bundle> {
    const registration = this.registry.bundles.get(name);
    if (!registration) return Promise.reject(new PipelineError("PIPELINE_INVALID_REQUEST", `no bundle named ${name} is registered`));
    let bundle = this.#bundles.get(registration.path);
    if (!bundle) {
      bundle = loadBundleFile(registration.path);
      bundle.catch(() => this.#bundles.delete(registration.path));
      this.#bundles.set(registration.path, bundle);
    }
    return bundle;
  }

  async #runStep(step: StepRegistration, stage: StageNumber, run: StepRun): Promise<Record<string, unknown>> {
    const context = this.#context(step, stage, run, 0);
    const record: JournalStep = { stepId: step.id, name: step.name, stage, mode: "sync", outcome: "ok", durationMs: 0, trace: "", requests: [], calls: [] };
    run.journal.steps.push(record);
    const outcome = await this.executeStep(step, context, {
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

  /**
   * Executes one step's plug-in (or posts to its service endpoint) with the services of the
   * pipeline. `nested` is set for synchronous steps: their organization calls join the request's
   * transaction; without it (async jobs) each call is a request of its own.
   */
  async executeStep(
    step: StepRegistration,
    context: Record<string, unknown>,
    options: { nested?: { scope: Scope; journal: JournalRequest[] }; signal?: AbortSignal },
  ): Promise<StepOutcome> {
    const started = performance.now();
    const notification = this.#notificationFor(options.nested?.scope);
    if (step.handler.kind === "serviceEndpoint") {
      const endpoint = step.handler.endpoint;
      return this.#posted(step, context, started, () => notification.execute(endpoint, context, options.signal));
    }
    const organization = this.#organizationFor(options.nested, String(context.userId), context);
    const allowedHosts = this.registry.bundles.get(step.handler.bundle)?.allowedHosts ?? null;
    const services = createHostServices({ organization, notification, web: this.#web }, { webAllowedHosts: allowedHosts });
    let bundle: Bundle;
    try {
      bundle = await this.bundle(step.handler.bundle);
    } catch (error) {
      return this.#failed(step, context, error as PlugboxError, "", [], started);
    }
    const report = await this.runtime.execute(
      {
        bundle,
        nested: Number(context.depth) > 1,
        typeName: step.handler.type,
        isolation: step.isolation,
        instanceKey: step.id,
        unsecureConfig: step.unsecureConfig,
        secureConfig: step.secureConfig,
        context,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(this.#webPolicy ? { web: { policy: this.#webPolicy, allowedHosts: allowedHosts ? [...allowedHosts] : null } } : {}),
      },
      services,
    );
    services.calls.push(...report.webCalls.map(webCallRecord));
    const durationMs = performance.now() - started;
    if (!report.ok) return this.#failed(step, context, report.error, report.trace, services.calls, started);
    const row = this.#traceRow(step, context, report.trace, null, durationMs);
    return { ok: true, changes: report.changes, trace: report.trace, calls: services.calls, durationMs, traceRows: [row] };
  }

  /**
   * Posts a context that a posting step's job keeps serialized (`#serializeForLater`), without
   * reading it back. A step that runs a plug-in now fails the job: the job holds only the context
   * as it was posted, which is not the whole of what its plug-in would get.
   */
  async executeSerializedStep(step: StepRegistration, serialized: SerializedContext): Promise<StepOutcome> {
    const started = performance.now();
    if (step.handler.kind !== "serviceEndpoint") {
      const error = new PipelineError(
        "JOB_DATA_INVALID",
        `step ${step.name} posted to a service endpoint when this job was queued and runs a plug-in now; the job holds only the posted context, so its plug-in cannot run: send the request again`,
      );
      return this.#failed(step, serialized.fields, error, "", [], started);
    }
    const endpoint = step.handler.endpoint;
    return this.#posted(step, serialized.fields, started, () => executeSerialized(this.#notification, endpoint, serialized));
  }

  /**
   * The outcome of a posting step: its post, and the step's context (or the fields of it kept with a
   * serialized one). A post changes nothing: the changes are the context's own parameters.
   */
  async #posted(step: StepRegistration, context: Record<string, unknown>, started: number, post: () => Promise<unknown>): Promise<StepOutcome> {
    try {
      await post();
      const own = (name: string) => (context[name] ?? {}) as Record<string, unknown>;
      const changes = { inputParameters: own("inputParameters"), outputParameters: own("outputParameters"), sharedVariables: own("sharedVariables") };
      return { ok: true, changes, trace: "", calls: [], durationMs: performance.now() - started, traceRows: [] };
    } catch (error) {
      return this.#failed(step, context, error as PlugboxError, "", [], started);
    }
  }

  /**
   * A context serialized for its endpoint when the job that posts it is queued (a posting step's,
   * or an outbox post's), so that running the job neither reads the context back nor serializes it;
   * undefined when the notification backend cannot, or the context cannot be serialized (the job
   * then fails with the reason when it runs).
   */
  #serializeForLater(endpointId: string, context: Record<string, unknown>): SerializedContext | undefined {
    if (!this.#notification.serialize) return undefined;
    try {
      return this.#notification.serialize(endpointId, context);
    } catch {
      return undefined;
    }
  }

  #failed(step: StepRegistration, context: Record<string, unknown>, error: PlugboxError, trace: string, calls: RecordedCall[], started: number): StepOutcome {
    const durationMs = performance.now() - started;
    const innerCode = error instanceof PluginExecutionError && error.serviceCode ? error.serviceCode : error.code;
    const status = error instanceof PluginExecutionError ? error.status : 0;
    const wrapped = new StepFailedError(`step ${step.name} failed at stage ${String(context.stage)}: ${error.message}`, {
      innerCode,
      status,
      trace,
      cause: error,
      details: { stepId: step.id, code: innerCode, ...(error instanceof PluginExecutionError ? { errorCode: error.errorCode, ...(error.pluginStack ? { pluginStack: error.pluginStack } : {}) } : {}) },
    });
    return { ok: false, error: wrapped, trace, calls, durationMs, traceRows: [this.#traceRow(step, context, trace, wrapped, durationMs)] };
  }

  #traceRow(step: StepRegistration, context: Record<string, unknown>, trace: string, error: PlugboxError | null, durationMs: number): TraceRow {
    return {
      id: this.#ids.newId(),
      correlationId: String(context.correlationId),
      requestId: String(context.requestId),
      operationId: String(context.operationId),
      typeName: step.handler.kind === "plugin" ? step.handler.type : `serviceendpoint:${step.handler.endpoint}`,
      messageName: String(context.messageName),
      primaryEntity: String(context.primaryEntityName),
      stage: Number(context.stage),
      mode: Number(context.mode),
      depth: Number(context.depth),
      messageBlock: trace,
      exceptionDetails: error ? `${error.code}: ${error.message}` : null,
      performanceMs: durationMs,
      createdOn: this.#clock.now().toISOString(),
    };
  }

  /**
   * The notification service a step gets: posts to an outbox endpoint from inside a transaction
   * become system jobs of that transaction, sent after the commit (a rollback never posts).
   */
  #notificationFor(scope: Scope | undefined): NotificationBackend {
    const relay = this.#notification;
    if (!scope?.inTransaction) return relay;
    return {
      execute: async (endpointId, context, signal) => {
        if (!relay.holdsForOutbox?.(endpointId)) return relay.execute(endpointId, context, signal);
        const id = this.#ids.newId();
        const primaryId = String(context.primaryEntityId ?? "");
        this.jobs.insert({
          id,
          name: `Post to service endpoint ${endpointId}`,
          stepId: `${OUTBOX_PREFIX}${endpointId}`,
          messageName: String(context.messageName ?? ""),
          entity: typeof context.primaryEntityName === "string" ? context.primaryEntityName : null,
          regardingId: isGuid(primaryId) && primaryId !== EMPTY_GUID ? primaryId : null,
          data: { context },
          serialized: this.#serializeForLater(endpointId, context),
          depth: scope.depth,
          createdOn: this.#clock.now(),
          autoDelete: false,
        });
        return null;
      },
    };
  }

  /** The organization service a plug-in of this step gets. */
  #organizationFor(nested: { scope: Scope; journal: JournalRequest[] } | undefined, contextUserId: string, context: Record<string, unknown>): OrganizationBackend {
    // One call at a time per execution: a nested request is a savepoint, and savepoints must close in
    // the order they opened (Dataverse does not support parallel calls from a plug-in either).
    let tail: Promise<unknown> = Promise.resolve();
    const call = (request: OrganizationRequestValue, userId: string | null): Promise<OrganizationResponseValue> => {
      const next = tail.then(() => callNow(request, userId));
      tail = next.catch(() => undefined);
      return next;
    };
    const callNow = async (request: OrganizationRequestValue, userId: string | null): Promise<OrganizationResponseValue> => {
      // createOrganizationService(null) acts as SYSTEM; the empty Guid as context.userId; any other id as that user.
      const effective = userId === null ? SYSTEM_USER_ID : userId === EMPTY_GUID ? contextUserId : userId;
      try {
        if (!nested) {
          const result = await this.execute(request, { userId: effective, initiatingUserId: String(context.initiatingUserId) }, {
            depth: Number(context.depth) + 1,
            correlationId: String(context.correlationId),
            parentContext: context,
          });
          return result.response;
        }
        const scope: Scope = { ...nested.scope, depth: nested.scope.depth + 1, userId: effective, parentContext: context, journal: nested.journal };
        return await this.#run(request, scope);
      } catch (error) {
        throw withoutStorePath(error, this.store.path);
      }
    };
    const id = (value: unknown) => value as string;
    return {
      create: async (entity, caller) => id((await call({ requestName: "Create", parameters: { Target: entity } }, caller.userId)).results.id),
      retrieve: async (entityName, recordId, columns, caller) =>
        (await call({ requestName: "Retrieve", parameters: { Target: new EntityReference(entityName, recordId), ColumnSet: columns } }, caller.userId)).results.Entity as Entity,
      update: async (entity, caller) => void (await call({ requestName: "Update", parameters: { Target: entity } }, caller.userId)),
      delete: async (entityName, recordId, caller) => void (await call({ requestName: "Delete", parameters: { Target: new EntityReference(entityName, recordId) } }, caller.userId)),
      associate: async (target, relationship, related, caller) =>
        void (await call({ requestName: "Associate", parameters: { Target: target, Relationship: relationship, RelatedEntities: related } }, caller.userId)),
      disassociate: async (target, relationship, related, caller) =>
        void (await call({ requestName: "Disassociate", parameters: { Target: target, Relationship: relationship, RelatedEntities: related } }, caller.userId)),
      retrieveMultiple: async (query, caller) => (await call({ requestName: "RetrieveMultiple", parameters: { Query: query } }, caller.userId)).results.EntityCollection as EntityCollection,
      execute: (request, caller) => call(request, caller.userId),
    };
  }

  // Asynchronous steps //////////////////////////////////////////////////////////////////////////

  /** Each asynchronous step becomes a system job in the same transaction, so it exists exactly when the request commits. */
  #queueAsyncSteps(run: StepRun): void {
    for (const step of this.registry.stepsFor(run.message, run.entity, 40)) {
      if (step.mode !== "async" || !this.#passesFilter(step, run)) continue;
      const jobId = this.#ids.newId();
      const createdOn = this.#clock.now();
      const context = this.#context(step, 40, { ...run, inputParameters: copy(run.inputParameters), outputParameters: copy(run.outputParameters), sharedVariables: copy(run.sharedVariables) }, 1, { id: jobId, createdOn });
      this.jobs.insert({
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
}

export interface StepOutcome {
  ok: boolean;
  error?: StepFailedError;
  changes?: { inputParameters: Record<string, unknown>; outputParameters: Record<string, unknown>; sharedVariables: Record<string, unknown> };
  trace: string;
  calls: RecordedCall[];
  durationMs: number;
  traceRows: TraceRow[];
}

function copy(value: Record<string, unknown>): Record<string, unknown> {
  return fromPlain(toPlain(value)) as Record<string, unknown>;
}

function replaceContents(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const key of Object.keys(target)) if (!(key in source)) delete target[key];
  Object.assign(target, source);
}

function optionValue(value: unknown, what: string): number {
  if (typeof value === "number") return value;
  const v = (value as { value?: unknown } | undefined)?.value;
  if (typeof v !== "number") throw new OrganizationError("ORG_INVALID_ARGUMENT", `${what} must be an OptionSetValue`);
  return v;
}

export function readRequest(value: unknown, what = "request"): OrganizationRequestValue {
  if (!isPlainObject(value)) throw new PipelineError("PIPELINE_INVALID_REQUEST", `${what} must be an object { "requestName": "Create", "parameters": { … } }`);
  const { requestName, parameters } = value as { requestName?: unknown; parameters?: unknown };
  if (typeof requestName !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(requestName)) throw new PipelineError("PIPELINE_INVALID_REQUEST", `${what}.requestName must name a message, e.g. "Create"`);
  if (parameters !== undefined && !isPlainObject(parameters)) throw new PipelineError("PIPELINE_INVALID_REQUEST", `${what}.parameters must be an object of request parameters`);
  return { requestName, parameters: (parameters ?? {}) as Record<string, unknown> };
}

/** What the caller gets: OutputParameters, with the pipeline-only keys renamed as the SDK names them. */
function responseFor(message: string, outputParameters: Record<string, unknown>): OrganizationResponseValue {
  const results: Record<string, unknown> = { ...outputParameters };
  if ("BusinessEntity" in results) {
    results.Entity = results.BusinessEntity;
    delete results.BusinessEntity;
  }
  if ("BusinessEntityCollection" in results) {
    results.EntityCollection = results.BusinessEntityCollection;
    delete results.BusinessEntityCollection;
  }
  return { responseName: message, results };
}
