/**
 * Runs one step: its plug-in in the sandbox with the services of the pipeline (or its post to a
 * service endpoint), and reports what it changed, what it traced and what it called.
 */
import { EMPTY_GUID } from "../../sdk/model.js";
import { loadBundleFile, PluginExecutionError, type Bundle, type PlugboxError, type SandboxRuntime } from "../../runtime/index.js";
import { ServiceError } from "../../runtime/errors.js";
import { JobError } from "../jobs/errors.js";
import type { Clock, IdSource } from "../ids.js";
import type { CallerIdentity, OrganizationRequestValue, OrganizationResponseValue } from "../organization/arguments.js";
import { SYSTEM_USER_ID } from "../organization/identity.js";
import { OrganizationService } from "../organization/service.js";
import type { Registry, StepRegistration } from "../registry/index.js";
import { createHostServices, webCallRecord, type RecordedCall, type WebBackend } from "../services/index.js";
import { executeSerialized, type NotificationBackend, type SerializedContext } from "../services/notification.js";
import { withoutStorePath } from "../store/errors.js";
import type { TraceRow } from "../store/trace-logs.js";
import type { WebPolicyInput } from "../web/index.js";
import { PipelineError, StepFailedError } from "./errors.js";
import type { Caller, JournalRequest, RequestResult, Scope, StepOutcome } from "./journal.js";
import type { Outbox } from "./outbox.js";

const unreachableWeb: WebBackend = {
  fetch: async () => {
    throw new ServiceError("SERVICE_FAILED", "no web backend is configured in this host");
  },
};

/** How a plug-in's own calls become requests: of their own (async jobs), or nested in the caller's transaction. */
export interface RequestRunner {
  execute(request: OrganizationRequestValue, caller: Caller, options: { depth: number; correlationId: string; parentContext: Record<string, unknown> }): Promise<RequestResult>;
  runNested(request: OrganizationRequestValue, scope: Scope): Promise<OrganizationResponseValue>;
}

export interface StepExecutorParts {
  registry: Registry;
  runtime: SandboxRuntime;
  /** A web backend of the host's; without one, sandbox workers serve web requests under `webPolicy`. */
  web?: WebBackend | undefined;
  webPolicy?: WebPolicyInput | undefined;
  notification: NotificationBackend;
  outbox: Outbox;
  requests: RequestRunner;
  storePath: string;
  clock: Clock;
  ids: IdSource;
}

export interface Nested {
  scope: Scope;
  journal: JournalRequest[];
}

export class StepExecutor {
  readonly #parts: StepExecutorParts;
  readonly #web: WebBackend;
  readonly #webPolicy: WebPolicyInput | undefined;
  readonly #bundles = new Map<string, Promise<Bundle>>();

  constructor(parts: StepExecutorParts) {
    this.#parts = parts;
    this.#web = parts.web ?? unreachableWeb;
    this.#webPolicy = parts.web ? undefined : (parts.webPolicy ?? {});
  }

  bundle(name: string): Promise<Bundle> {
    const registration = this.#parts.registry.bundles.get(name);
    if (!registration) return Promise.reject(new PipelineError("PIPELINE_INVALID_REQUEST", `no bundle named ${name} is registered`));
    let bundle = this.#bundles.get(registration.path);
    if (!bundle) {
      bundle = registration.loaded ? Promise.resolve(registration.loaded) : loadBundleFile(registration.path);
      bundle.catch(() => this.#bundles.delete(registration.path));
      this.#bundles.set(registration.path, bundle);
    }
    return bundle;
  }

  /**
   * Executes one step's plug-in (or posts to its service endpoint) with the services of the
   * pipeline. `nested` is set for synchronous steps: their organization calls join the request's
   * transaction; without it (async jobs) each call is a request of its own.
   */
  async executeStep(step: StepRegistration, context: Record<string, unknown>, options: { nested?: Nested; signal?: AbortSignal }): Promise<StepOutcome> {
    const started = performance.now();
    const notification = this.#parts.outbox.notificationFor(options.nested?.scope);
    if (step.handler.kind === "serviceEndpoint") {
      const endpoint = step.handler.endpoint;
      return this.#posted(step, context, started, () => notification.execute(endpoint, context, options.signal));
    }
    const organization = new OrganizationService(new PluginCalls(this.#parts.requests, this.#parts.storePath, options.nested, String(context.userId), context).execute);
    const allowedHosts = this.#parts.registry.bundles.get(step.handler.bundle)?.allowedHosts ?? null;
    const services = createHostServices({ organization, notification, web: this.#web }, { webAllowedHosts: allowedHosts });
    let bundle: Bundle;
    try {
      bundle = await this.bundle(step.handler.bundle);
    } catch (error) {
      return this.#failed(step, context, error as PlugboxError, "", [], started);
    }
    const report = await this.#parts.runtime.execute(
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
   * Posts a context that a posting step's job keeps serialized, without reading it back. A step
   * that runs a plug-in now fails the job: the job holds only the context as it was posted, which
   * is not the whole of what its plug-in would get.
   */
  async executeSerializedStep(step: StepRegistration, serialized: SerializedContext): Promise<StepOutcome> {
    const started = performance.now();
    if (step.handler.kind !== "serviceEndpoint") {
      const error = new JobError(
        "JOB_DATA_INVALID",
        `step ${step.name} posted to a service endpoint when this job was queued and runs a plug-in now; the job holds only the posted context, so its plug-in cannot run: send the request again`,
      );
      return this.#failed(step, serialized.fields, error, "", [], started);
    }
    const endpoint = step.handler.endpoint;
    return this.#posted(step, serialized.fields, started, () => executeSerialized(this.#parts.notification, endpoint, serialized));
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
      id: this.#parts.ids.newId(),
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
      createdOn: this.#parts.clock.now().toISOString(),
    };
  }
}

/**
 * The requests one execution's plug-in makes through its organization service. One call at a time
 * per execution: a nested request is a savepoint, and savepoints must close in the order they
 * opened (Dataverse does not support parallel calls from a plug-in either).
 */
class PluginCalls {
  readonly #requests: RequestRunner;
  readonly #storePath: string;
  readonly #nested: Nested | undefined;
  readonly #contextUserId: string;
  readonly #context: Record<string, unknown>;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(requests: RequestRunner, storePath: string, nested: Nested | undefined, contextUserId: string, context: Record<string, unknown>) {
    this.#requests = requests;
    this.#storePath = storePath;
    this.#nested = nested;
    this.#contextUserId = contextUserId;
    this.#context = context;
  }

  readonly execute = (request: OrganizationRequestValue, caller: CallerIdentity): Promise<OrganizationResponseValue> => {
    const next = this.#tail.then(() => this.#now(request, caller.userId));
    this.#tail = next.catch(() => undefined);
    return next;
  };

  async #now(request: OrganizationRequestValue, userId: string | null): Promise<OrganizationResponseValue> {
    const context = this.#context;
    // createOrganizationService(null) acts as SYSTEM; the empty Guid as context.userId; any other id as that user.
    const effective = userId === null ? SYSTEM_USER_ID : userId === EMPTY_GUID ? this.#contextUserId : userId;
    try {
      const nested = this.#nested;
      if (!nested) {
        const result = await this.#requests.execute(request, { userId: effective, initiatingUserId: String(context.initiatingUserId) }, {
          depth: Number(context.depth) + 1,
          correlationId: String(context.correlationId),
          parentContext: context,
        });
        return result.response;
      }
      const scope: Scope = { ...nested.scope, depth: nested.scope.depth + 1, userId: effective, parentContext: context, journal: nested.journal };
      return await this.#requests.runNested(request, scope);
    } catch (error) {
      throw withoutStorePath(error, this.#storePath);
    }
  }
}
