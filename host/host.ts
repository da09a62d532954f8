/**
 * A plugbox host: the store, the registry of steps, the sandbox runtime, the event pipeline and
 * the job runner, put together and torn down in reverse.
 *
 * @example
 * const host = await createHost({ manifest: "plugbox.json", db: "plugbox.db" });
 * const { response, journal } = await host.execute({ requestName: "Create", parameters: { Target: account } });
 * await host.close();
 */
import { createSandboxRuntime, type SandboxHealth, type SandboxLimits, type SandboxRuntime, type SandboxRuntimeOptions } from "../runtime/index.js";
import { buildEntry, SOURCE_ENTRY } from "./build.js";
import { randomIds, systemClock } from "./ids.js";
import { JobRunner, resolveJobRunnerOptions, type JobOutcome, type JobRunnerHealth } from "./jobs/runner.js";
import { openJobTransport, type ServiceBusJobTransport } from "./jobs/service-bus-transport.js";
import { identityDefaults } from "./organization/identity.js";
import { OrganizationService, withCaller, type OrganizationClient } from "./organization/service.js";
import { Pipeline, type Caller, type RequestResult } from "./pipeline/pipeline.js";
import { resolveHostOptions, type HostOptions, type ResolvedHostOptions } from "./options.js";
import { Relay } from "./relay/index.js";
import { PipelineError } from "./pipeline/errors.js";
import type { SystemJob } from "./jobs/queue.js";
import type { TraceRow } from "./pipeline/trace-log.js";
import { checkBundleExports, loadManifest, parseManifest, Registry, type Manifest } from "./registry/index.js";
import { RecordingNotificationService, type NotificationBackend, type WebBackend } from "./services/index.js";
import type { OrganizationRequestValue } from "./organization/arguments.js";
import { toStoreError, type RecordRow, type StoreOptions } from "./store/store.js";
import type { Awaitable, DataStore } from "./store/engine.js";
import { openStore } from "./store/open.js";
import type { WebPolicyInput } from "./web/index.js";
import { closed, opened } from "../runtime/open-resources.js";

/** What `host.health()` reports. */
export interface HostHealth {
  /** `ready`; `starting`; `degraded` (some workers down, or the last round of jobs failed); `unavailable` (no sandbox worker can start); `closed`. */
  status: "ready" | "starting" | "degraded" | "unavailable" | "closed";
  runtime: SandboxHealth;
  store: { status: "open" | "closed"; path: string };
  /** With `jobs.transport`, `queue` names its queue and its last failure to send, receive or settle. */
  jobs: JobRunnerHealth & { queue?: { queue: string; lastError?: { code: string; message: string; at: string } } };
}

export type { OrganizationClient } from "./organization/service.js";

export class PlugboxHost {
  readonly store: DataStore;
  readonly registry: Registry;
  readonly runtime: SandboxRuntime;
  readonly pipeline: Pipeline;
  readonly jobRunner: JobRunner;
  readonly notification: NotificationBackend;
  readonly #ownRuntime: boolean;
  /** With `jobs.transport`: the queue that carries the jobs. */
  readonly #jobTransport: ServiceBusJobTransport | undefined;
  #closing: Promise<void> | undefined;

  protected constructor(parts: { store: DataStore; registry: Registry; runtime: SandboxRuntime; ownRuntime: boolean; notification: NotificationBackend; options: ResolvedHostOptions; jobTransport?: ServiceBusJobTransport | undefined }) {
    this.store = parts.store;
    this.registry = parts.registry;
    this.runtime = parts.runtime;
    this.notification = parts.notification;
    this.#ownRuntime = parts.ownRuntime;
    const { options } = parts;
    let runner: JobRunner | undefined;
    const clock = options.clock ?? systemClock;
    this.pipeline = new Pipeline({
      store: this.store,
      registry: this.registry,
      runtime: this.runtime,
      ...(options.web ? { web: options.web } : { webPolicy: options.webPolicy ?? {} }),
      notification: parts.notification,
      clock,
      ids: options.ids ?? randomIds,
      ...(options.identity ? { identity: options.identity } : {}),
      onJobsQueued: (ids) => this.#jobsReady(ids),
    });
    const { pipeline } = this;
    const { transport: _transport, ...runnerOptions } = options.jobs ?? {};
    const transport = parts.jobTransport;
    // With a transport, the runner sweeps the store every sweepMs for jobs no message brought.
    runner = new JobRunner(
      { store: this.store, queue: pipeline.jobs, traceLog: pipeline.traceLog, steps: pipeline.steps, notification: parts.notification, registry: this.registry, runtime: this.runtime },
      { ...runnerOptions, ...(transport ? { pollMs: options.jobTransport!.sweepMs } : {}), clock },
    );
    this.jobRunner = runner;
    this.#jobTransport = transport;
    if (transport) {
      const { leaseMs, concurrency } = resolveJobRunnerOptions(runnerOptions);
      transport.attach({ runner, queue: pipeline.jobs, store: this.store, clock, leaseMs, concurrency });
    }
    if (options.runJobs) {
      runner.start(transport ? "sweep" : "poll");
      transport?.receive();
    }
    opened(this, "host");
  }

  static async create(given: HostOptions = {}): Promise<PlugboxHost> {
    const options = resolveHostOptions(given);
    // Read before anything is opened: a connection string the client cannot read is refused here.
    const jobTransport = options.jobTransport ? await openJobTransport(options.jobTransport, "createHost options.jobs.transport") : undefined;
    try {
      return await PlugboxHost.#open(options, jobTransport);
    } catch (error) {
      await jobTransport?.close();
      throw error;
    }
  }

  static async #open(options: ResolvedHostOptions, jobTransport: ServiceBusJobTransport | undefined): Promise<PlugboxHost> {
    const manifest =
      typeof options.manifest === "string"
        ? await loadManifest(options.manifest)
        : options.manifest === undefined || options.manifest.bundles instanceof Map
          ? (options.manifest as Manifest | undefined)
          : parseManifest(options.manifest, "manifest");
    if (manifest) {
      await buildSourceBundles(manifest);
      await checkBundleExports(manifest);
    }
    const registry = new Registry(manifest);
    const store = await openStore({ path: options.db, ...options.storeOptions, ...(options.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.busyTimeoutMs }) });
    const runtime = options.runtime ?? createSandboxRuntime({ ...(options.clock ? { clock: options.clock } : {}), ...options.runtimeOptions });
    try {
      // A runtime of its own that starts at the first execution is not waited for.
      if (options.runtime || options.runtimeOptions?.startOnFirstExecution !== true) await runtime.ready;
    } catch (error) {
      await store.close();
      if (!options.runtime) await runtime.close();
      throw error;
    }
    let notification = options.notification;
    if (!notification && registry.serviceEndpoints.length > 0) {
      try {
        notification = new Relay({
          endpoints: registry.serviceEndpoints,
          ...(options.secrets ? { secrets: options.secrets } : {}),
          organizationUrl: options.organizationUrl ?? `https://${options.identity?.organizationName ?? identityDefaults.organizationName}.plugbox.local`,
        });
      } catch (error) {
        await store.close();
        if (!options.runtime) await runtime.close();
        throw error;
      }
    }
    try {
      return new PlugboxHost({ store, registry, runtime, ownRuntime: !options.runtime, notification: notification ?? new RecordingNotificationService(), options, jobTransport });
    } catch (error) {
      // An option only the pipeline or the job runner reads was refused: what was opened for the host closes.
      await store.close();
      await Promise.allSettled([options.runtime ? undefined : runtime.close(), !options.notification && notification instanceof Relay ? notification.close() : undefined]);
      throw error;
    }
  }

  /**
   * Jobs are ready: this host's runner looks now, and so do those of the hosts sharing its store;
   * with a transport, a message for each job goes to the queue instead (`fresh`: a job made ready again).
   */
  #jobsReady(ids: readonly string[], fresh = false): void {
    if (this.#jobTransport) return this.#jobTransport.announce(ids, fresh);
    this.jobRunner?.wake();
    void this.store.announceJobs?.();
  }

  #assertOpen(): void {
    if (this.#closing) throw new PipelineError("PIPELINE_CLOSED", "the host was closed; create a new one");
  }

  /** Runs one request through the pipeline. Rejects with a typed error that carries the journal. */
  async execute(request: OrganizationRequestValue, caller?: Caller, options?: { signal?: AbortSignal }): Promise<RequestResult> {
    this.#assertOpen();
    return this.pipeline.execute(request, caller, options);
  }

  /** The organization service as a plain caller sees it (every call goes through the pipeline). */
  organization(caller: Caller = {}): OrganizationClient {
    const service = new OrganizationService(async (request) => (await this.execute(request, caller)).response);
    return withCaller(service, { userId: caller.userId ?? null });
  }

  /**
   * Opens the links of the manifest's Service Bus and Event Hubs endpoints now rather than at their
   * first post. Resolves with those that could not be reached within `timeoutMs` (10 s); never rejects.
   */
  async connectServiceEndpoints(options: { timeoutMs?: number } = {}): Promise<Array<{ endpoint: string; message: string }>> {
    this.#assertOpen();
    return this.notification instanceof Relay ? this.notification.connect(options) : [];
  }

  /** Runs every system job that is ready now (for callers that run jobs in the foreground). */
  async runJobs(): Promise<JobOutcome[]> {
    this.#assertOpen();
    return this.jobRunner.runReady();
  }

  async #locked<T>(fn: () => Awaitable<T>): Promise<T> {
    using _lease = await this.store.acquire();
    try {
      return await fn();
    } catch (error) {
      throw toStoreError(error, this.store.path);
    }
  }

  /**
   * Whether the host can serve, and if not why: the sandbox runtime's state (`unavailable` while no
   * worker can start), the store's, and the job runner's last failure to take jobs.
   */
  health(): HostHealth {
    const runtime = this.runtime.health();
    const store = this.#closing ? { status: "closed" as const, path: this.store.path } : { status: "open" as const, path: this.store.path };
    const jobs = { ...this.jobRunner.health(), ...(this.#jobTransport ? { queue: this.#jobTransport.health() } : {}) };
    const status: HostHealth["status"] = this.#closing
      ? "closed"
      : runtime.status === "unavailable"
        ? "unavailable"
        : runtime.status === "ready" || runtime.status === "idle"
          ? jobs.lastError || jobs.queue?.lastError
            ? "degraded"
            : "ready"
          : runtime.status === "starting"
            ? "starting"
            : "degraded";
    return { status, runtime, store, jobs };
  }

  listJobs(filter?: { stateCode?: number }): Promise<SystemJob[]> {
    return this.#locked(() => this.pipeline.jobs.list(filter));
  }

  /** How many system jobs have each status code (Waiting For Resources 0, Waiting 10, In Progress 20, Succeeded 30, Failed 31, Canceled 32). */
  countJobs(): Promise<Map<number, number>> {
    return this.#locked(() => this.pipeline.jobs.countByStatus());
  }

  getJob(id: string): Promise<SystemJob | undefined> {
    return this.#locked(() => this.pipeline.jobs.get(id));
  }

  retryJob(id: string): Promise<SystemJob> {
    return this.#locked(() => this.pipeline.jobs.retry(id)).then((job) => (this.#jobsReady([job.id], true), job));
  }

  cancelJob(id: string): Promise<SystemJob> {
    return this.#locked(() => this.pipeline.jobs.cancel(id));
  }

  /** A job's context as the job holds it (JOB_DATA_INVALID when what the store holds was damaged). */
  jobData(id: string): Promise<Record<string, unknown> | undefined> {
    return this.#locked(() => this.pipeline.jobs.data(id));
  }

  /** Every record in the store, by table and id, as stored (plugbox JSON). */
  records(): Promise<RecordRow[]> {
    return this.#locked(() => this.store.allRecords());
  }

  traceLogs(filter?: { correlationId?: string }): Promise<TraceRow[]> {
    return this.#locked(() => this.pipeline.traceLog.list(filter));
  }

  /** Stops the job runner, then the runtime (if the host started it) and the store. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      // The queue first: the jobs its messages brought finish and are recorded while the store is open.
      const results = await Promise.allSettled([this.#jobTransport?.close()]);
      results.push(...(await Promise.allSettled([this.jobRunner.stop()])));
      results.push(
        ...(await Promise.allSettled([
          this.#ownRuntime ? this.runtime.close() : Promise.resolve(),
          this.notification instanceof Relay ? this.notification.close() : Promise.resolve(),
        ])),
      );
      await this.store.close();
      closed(this);
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A manifest's bundles given as TypeScript modules (`src/plugins.ts`) are bundled in memory, as `plugbox run` does an entry. */
async function buildSourceBundles(manifest: Manifest): Promise<void> {
  await Promise.all(
    [...manifest.bundles.values()].map(async (bundle) => {
      if (!bundle.loaded && SOURCE_ENTRY.test(bundle.path)) bundle.loaded = await buildEntry(bundle.path);
    }),
  );
}

export function createHost(options?: HostOptions): Promise<PlugboxHost> {
  return PlugboxHost.create(options);
}

export type { HostOptions, SandboxLimits, SandboxRuntimeOptions };
