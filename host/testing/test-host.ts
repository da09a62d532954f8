/**
 * `createTestHost`: the whole pipeline for a plug-in's tests. The real host (createHost) over a
 * `:memory:` store: steps registered from a manifest or inline, entries built in memory (cached
 * across the process by the hash of every input), seed data, a journal of every request, system
 * jobs drained on demand, snapshots a test comes back to in a few tens of microseconds, and posts to
 * service endpoints kept in an inbox (or sent to a real broker).
 */
import { fromPlain, toPlain } from "../../sdk/codec.js";
import { Entity, EMPTY_GUID, type AttributeValue } from "../../sdk/model.js";
import { OptionsError } from "../../runtime/errors.js";
import { ManualClock } from "../../runtime/clock.js";
import { DURATION_FORMS, parseDuration } from "../../runtime/duration.js";
import type { Bundle } from "../../runtime/index.js";
import { closed, opened } from "../../runtime/open-resources.js";
import { withExitStatus, type RunResult } from "../cli/exit-statuses.js";
import { createHost, type PlugboxHost } from "../host.js";
import { randomIds, systemClock } from "../ids.js";
import type { JobOutcome } from "../jobs/runner.js";
import { OrganizationCore } from "../organization/core.js";
import { identityDefaults, SYSTEM_USER_ID, type Identity } from "../organization/identity.js";
import type { CallerIdentity, OrganizationRequestValue, OrganizationResponseValue } from "../organization/arguments.js";
import { OrganizationService } from "../organization/service.js";
import { PipelineError } from "../pipeline/errors.js";
import type { Caller, JournalRequest, RequestResult } from "../pipeline/pipeline.js";
import type { TraceRow } from "../pipeline/trace-log.js";
import { Relay, SecretResolver } from "../relay/index.js";
import { runPlugin, type RunOptions } from "../run.js";
import { copyRows, rowsWriter, type StoreRowsCopy } from "../store/row-copy.js";
import type { Store } from "../store/store.js";
import { cachedBuild } from "./build-cache.js";
import { TestInbox, type InboxMark } from "./inbox.js";
import { checkOptions, inboxSecrets, registration, type SeedData, type TestHostOptions } from "./test-host-options.js";

// The host ///////////////////////////////////////////////////////////////////////////////////////

/** Records by table and id, each one's columns as stored (plugbox JSON: plain values, typed ones as `{ "$type": … }`). */
export type StoredRecords = Record<string, Record<string, Record<string, unknown>>>;

/** A point a test host comes back to with `restore`: the store's rows, the journal's length and the inbox. */
export interface TestSnapshot {
  /** Every record at the time of the snapshot, by table and id. */
  readonly records: StoredRecords;
}

interface SnapshotState {
  readonly host: TestPipelineHost;
  readonly slot: number;
  /** Every row of each table at the snapshot, for a restore whose savepoint was let go. */
  readonly rows: StoreRowsCopy;
  readonly journal: readonly JournalRequest[];
  readonly inbox: InboxMark;
  copyBack?: () => void;
}

/** The name of the savepoint a snapshot holds in the store. */
const savepointOf = (slot: number) => `plugbox_snapshot_${slot}`;

/** Reading and seeding the host's store directly: no step fires. */
export interface TestStore {
  /**
   * Writes records as the core operation of a Create does (the primary id column, createdon,
   * ownerid, statecode…; checked against the table's schema), without running any step.
   * Values are SDK values or plugbox JSON. Resolves with the ids, by table, in order.
   */
  seed(data: SeedData): Promise<Record<string, string[]>>;
  /** A record's columns as stored, or undefined. */
  get(table: string, id: string): Record<string, unknown> | undefined;
  /** Every record, by table and id. */
  records(): StoredRecords;
  /** Every record of one table, by id. */
  records(table: string): Record<string, Record<string, unknown>>;
}

export type { TestHostOptions, TestStep, SeedData } from "./test-host-options.js";

export class TestPipelineHost {
  /** The real host inside: registry, runtime, pipeline, job runner, store. */
  readonly host: PlugboxHost;
  /** Posts to service endpoints (with `relay: "inbox"`, the default), and scripted replies. */
  readonly inbox: TestInbox;
  readonly store: TestStore;
  readonly jobs: {
    /** Runs every system job that is due, and those they queue, until none is due; resolves with each outcome in order. */
    drain(): Promise<JobOutcome[]>;
    /**
     * Moves the host's `ManualClock` by `duration` (ms, or "500ms", "2d", "1h30m"), running each
     * system job at the time it falls due on the way: a retry after its back-off, a job a retry
     * queues, in order. Plug-ins' timers (with `pluginTime: "clock"`) fire as the clock passes them.
     */
    advance(duration: number | string): Promise<JobOutcome[]>;
  };
  readonly #journal: JournalRequest[] = [];
  readonly #core: OrganizationCore;
  readonly #identity: Identity;
  readonly #options: TestHostOptions;
  readonly #snapshots = new WeakMap<TestSnapshot, SnapshotState>();
  #slots = 0;
  /** The snapshot last restored and the store's change count just after: a restore with no write since is free. */
  #restored: { state: SnapshotState; changes: number } | undefined;
  #closing: Promise<void> | undefined;

  protected constructor(host: PlugboxHost, inbox: TestInbox, options: TestHostOptions) {
    this.host = host;
    this.inbox = inbox;
    this.#options = options;
    this.#identity = { ...identityDefaults, ...options.identity };
    const { registry } = host;
    this.#core = new OrganizationCore({ store: host.store, clock: options.clock ?? systemClock, ids: options.ids ?? randomIds, schemaFor: (table) => registry.schemaFor(table), tables: registry.tables });
    const records = ((table?: string) => (table === undefined ? this.#records() : (this.#records(table)[table] ?? {}))) as TestStore["records"];
    this.store = {
      seed: (data) => this.#seed(data),
      get: (table, id) => this.#store.getRecord(table, id.toLowerCase())?.attributes,
      records,
    };
    this.jobs = { drain: () => this.#drain(), advance: (duration) => this.#advance(duration) };
    opened(this, "test host");
  }

  static async create(options: TestHostOptions = {}): Promise<TestPipelineHost> {
    checkOptions(options);
    const manifest = await registration(options);
    const mode = options.relay ?? "inbox";
    const secrets = mode === "inbox" ? inboxSecrets(options.secrets) : options.secrets;
    const inbox = new TestInbox(manifest.serviceEndpoints, { secrets: new SecretResolver(secrets), inUse: mode === "inbox" });
    const organizationUrl = options.organizationUrl ?? `https://${options.identity?.organizationName ?? identityDefaults.organizationName}.plugbox.local`;
    const relay = new Relay({ endpoints: manifest.serviceEndpoints, organizationUrl, ...(secrets ? { secrets } : {}), ...(mode === "inbox" ? { transports: inbox.transports() } : {}) });
    let host: PlugboxHost;
    try {
      host = await createHost({
        manifest,
        runJobs: false,
        notification: relay,
        organizationUrl,
        ...(options.runtime
          ? { runtime: options.runtime }
          : { runtimeOptions: { workers: options.workers ?? 1, prewarmIsolates: 1, ...(options.limits ? { limits: options.limits } : {}), ...(options.pluginTime ? { pluginTime: options.pluginTime } : {}) } }),
        ...(options.clock ? { clock: options.clock } : {}),
        ...(options.ids ? { ids: options.ids } : {}),
        ...(options.identity ? { identity: options.identity } : {}),
        ...(options.webPolicy ? { webPolicy: options.webPolicy } : {}),
        ...(options.secrets ? { secrets: options.secrets } : {}),
      });
    } catch (error) {
      await relay.close();
      throw error;
    }
    const testHost = new TestPipelineHost(host, inbox, options);
    try {
      if (options.users) await testHost.#seed({ systemuser: options.users });
      if (options.seed) await testHost.#seed(options.seed);
    } catch (error) {
      await testHost.close();
      throw error;
    }
    return testHost;
  }

  #assertOpen(): void {
    if (this.#closing) throw new PipelineError("PIPELINE_CLOSED", "the test host was closed; create a new one with createTestHost()");
  }

  /** Runs a request through the whole pipeline (steps, stages, transaction, system jobs queued); its journal is kept in `journal`. */
  async execute(request: OrganizationRequestValue, caller?: Caller): Promise<RequestResult> {
    this.#assertOpen();
    try {
      const result = await this.host.execute(request, caller);
      this.#journal.push(result.journal);
      return result;
    } catch (error) {
      const journal = (error as { journal?: JournalRequest }).journal;
      if (journal) this.#journal.push(journal);
      throw error;
    }
  }

  /** Every request's journal, in order (those of `execute`, of plug-ins run with `run`, and of seeding none). */
  get journal(): readonly JournalRequest[] {
    return this.#journal;
  }

  /** The trace logs kept (every execution's, unless settings.traceLogSetting says otherwise), oldest first. */
  traces(filter?: { correlationId?: string }): TraceRow[] {
    this.#assertOpen();
    return this.#store.traceLogs.list(filter);
  }

  /** Bundles a plug-in module in memory (cached while none of its files change). */
  build(entry: string): Promise<Bundle> {
    return cachedBuild(entry);
  }

  /**
   * Runs one plug-in once, as `TestHost.run` does, but against this host: its organization calls
   * go through this host's pipeline and store, its posts to this host's relay.
   */
  async run(options: Omit<RunOptions, "runtime">): Promise<RunResult> {
    this.#assertOpen();
    const organization = new OrganizationService(async (request: OrganizationRequestValue, caller: CallerIdentity): Promise<OrganizationResponseValue> => {
      // createOrganizationService(null) acts as SYSTEM, as in a host; the empty Guid as the default user.
      const userId = caller.userId === null ? SYSTEM_USER_ID : caller.userId === EMPTY_GUID ? undefined : caller.userId;
      return (await this.execute(request, userId === undefined ? {} : { userId })).response;
    });
    const { clock, ids, webPolicy, limits } = this.#options;
    return withExitStatus(
      await runPlugin({
        organization,
        notification: this.host.notification,
        ...(webPolicy ? { webPolicy } : {}),
        ...(ids ? { ids } : {}),
        ...(clock ? { clock } : {}),
        ...(limits ? { limits } : {}),
        ...options,
        runtime: this.host.runtime,
      }),
    );
  }

  /**
   * Marks where the host stands: every row of the store (records, relationships, system jobs,
   * trace logs), the journal's length and the inbox. The store holds a savepoint open from here,
   * so `restore` is one ROLLBACK TO; the rows are also copied, for a restore after an earlier
   * snapshot was restored (which lets the later savepoints go).
   */
  snapshot(): TestSnapshot {
    this.#assertOpen();
    const store = this.#store;
    const slot = ++this.#slots;
    const state: SnapshotState = { host: this, slot, rows: copyRows(store.db), journal: [...this.#journal], inbox: this.inbox.mark() };
    store.holdSavepoint(savepointOf(slot));
    const snapshot: TestSnapshot = Object.freeze({ records: this.#records() });
    this.#snapshots.set(snapshot, state);
    this.#restored = { state, changes: store.totalChanges() };
    return snapshot;
  }

  /** Comes back to a snapshot of this host: the store's rows, the journal and the inbox as they were then. */
  async restore(snapshot: TestSnapshot): Promise<void> {
    this.#assertOpen();
    const state = this.#snapshots.get(snapshot);
    if (!state) throw new OptionsError("OPTIONS_INVALID", "restore(snapshot) takes a snapshot this test host's snapshot() returned");
    const store = this.#store;
    {
      // Waits for a request or job still holding the store (none between tests).
      using _lease = await store.acquire();
      if (this.#restored?.state !== state || this.#restored.changes !== store.totalChanges()) {
        if (!store.rollbackToHeld(savepointOf(state.slot))) {
          (state.copyBack ??= rowsWriter(store.db, state.rows))();
          store.holdSavepoint(savepointOf(state.slot));
        }
        this.#restored = { state, changes: store.totalChanges() };
      }
    }
    this.#journal.splice(0, this.#journal.length, ...state.journal);
    this.inbox.reset(state.inbox);
  }

  #records(only?: string): StoredRecords {
    const out: StoredRecords = {};
    for (const row of this.#store.allRecords()) if (only === undefined || row.entity === only) (out[row.entity] ??= {})[row.id] = row.attributes;
    return out;
  }

  /** Writes the records through the core operations (the platform's columns, the schema's checks), in one transaction. */
  async #seed(data: SeedData): Promise<Record<string, string[]>> {
    this.#assertOpen();
    const ids: Record<string, string[]> = {};
    await this.host.store.write(async () => {
      for (const [table, records] of Object.entries(data)) {
        for (const { id, ...columns } of records) {
          const attributes = fromPlain(toPlain(columns, `seed.${table}`)) as Record<string, AttributeValue>;
          (ids[table] ??= []).push(await this.#core.create(new Entity(table, id, attributes), this.#identity.defaultUserId));
        }
      }
    });
    return ids;
  }

  /** The test host's store: always the embedded one, in memory, which its snapshots and synchronous reads need. */
  get #store(): Store {
    return this.host.store as Store;
  }

  async #drain(): Promise<JobOutcome[]> {
    this.#assertOpen();
    const outcomes: JobOutcome[] = [];
    // A job that queues another is followed by it; a job postponed (a retry's back-off) is not due, so this ends.
    for (let round = 0; round < 1000; round++) {
      const ran = await this.host.runJobs();
      if (ran.length === 0) return outcomes;
      outcomes.push(...ran);
    }
    throw new PipelineError("PIPELINE_DEPTH_LIMIT", "jobs.drain() ran 1000 rounds of system jobs and more kept falling due: an asynchronous step queues itself without end");
  }

  async #advance(duration: number | string): Promise<JobOutcome[]> {
    this.#assertOpen();
    const clock = this.#options.clock;
    if (!(clock instanceof ManualClock)) {
      throw new OptionsError("OPTIONS_INVALID", "jobs.advance() moves the test host's clock: create the host with `clock: new ManualClock()` (from plugbox/testing), or run due jobs with jobs.drain()");
    }
    const ms = parseDuration(duration);
    if (ms === undefined) throw new RangeError(`jobs.advance: ${JSON.stringify(duration)} is not a duration; give ${DURATION_FORMS}`);
    const until = clock.now().getTime() + ms;
    const outcomes = await this.#drain();
    for (let step = 0; ; step++) {
      const due = await this.#nextJobDue();
      if (due === undefined || due > until) break;
      if (step === 10_000) throw new PipelineError("PIPELINE_DEPTH_LIMIT", "jobs.advance() ran 10,000 rounds of system jobs and more kept falling due: an asynchronous step queues itself without end");
      // A job due now that did not run (its lease is still held) is waited for in the smallest step.
      await clock.advance(Math.max(due - clock.now().getTime(), 1));
      outcomes.push(...(await this.#drain()));
    }
    await clock.advance(Math.max(0, until - clock.now().getTime()));
    outcomes.push(...(await this.#drain()));
    return outcomes;
  }

  /** When the next system job falls due (a ready job, a postponed one, or a lease that runs out), ms since the epoch. */
  async #nextJobDue(): Promise<number | undefined> {
    using _lease = await this.host.store.acquire();
    return (await this.host.pipeline.jobs.nextDue())?.getTime();
  }

  /** Closes the host (runtime, relay, store). */
  close(): Promise<void> {
    this.#closing ??= this.host.close().finally(() => closed(this));
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Starts a test host: options checked first (OPTIONS_INVALID naming the key), steps registered,
 * entries built, the runtime started, seed data written.
 */
export function createTestHost(options?: TestHostOptions): Promise<TestPipelineHost> {
  return TestPipelineHost.create(options);
}
