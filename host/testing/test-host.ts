/**
 * `createTestHost`: the whole pipeline for a plug-in's tests. The real host (createHost) over a
 * `:memory:` store: steps registered from a manifest or inline, entries built in memory (cached
 * across the process by the hash of every input), seed data, a journal of every request, system
 * jobs drained on demand, snapshots a test comes back to in a few tens of microseconds, and posts to
 * service endpoints kept in an inbox (or sent to a real broker).
 */
import path from "node:path";
import { fromPlain, toPlain } from "../../sdk/codec.js";
import { Entity, EMPTY_GUID, type AttributeValue } from "../../sdk/model.js";
import { OptionsError } from "../../runtime/errors.js";
import { ManualClock } from "../../runtime/clock.js";
import { DURATION_FORMS, parseDuration } from "../../runtime/duration.js";
import type { Bundle, SandboxLimits, SandboxRuntime } from "../../runtime/index.js";
import { formatPath, parseOptions, strictOptions, v } from "../../runtime/schema.js";
import { closed, opened } from "../../runtime/open-resources.js";
import { SOURCE_ENTRY } from "../build.js";
import { withExitStatus, type RunResult } from "../cli/exit-statuses.js";
import { createHost, type PlugboxHost } from "../host.js";
import { isGuid, randomIds, systemClock, type Clock, type IdSource } from "../ids.js";
import type { JobOutcome } from "../jobs/runner.js";
import { readJsonInput } from "../json-input.js";
import { OrganizationCore } from "../organization/core.js";
import { identityDefaults, SYSTEM_USER_ID, type Identity } from "../organization/identity.js";
import type { CallerIdentity, OrganizationRequestValue, OrganizationResponseValue } from "../organization/arguments.js";
import { OrganizationService } from "../organization/service.js";
import { PipelineError } from "../pipeline/errors.js";
import type { Caller, JournalRequest, RequestResult } from "../pipeline/pipeline.js";
import type { TraceRow } from "../pipeline/trace-log.js";
import { parseManifest, RegistryError, type Manifest } from "../registry/index.js";
import { Relay, SecretResolver, type SecretSource } from "../relay/index.js";
import { runPlugin, type RunOptions } from "../run.js";
import type { StoreRowsCopy } from "../store/store.js";
import type { WebPolicyInput } from "../web/index.js";
import { cachedBuild } from "./build-cache.js";
import { TestInbox, type InboxMark } from "./inbox.js";

// Options ////////////////////////////////////////////////////////////////////////////////////////

/** A step registered inline: the manifest's step entry, with the plug-in given as an `entry` file or a `bundle`. */
export interface TestStep {
  message: string;
  /** The primary table; none (or null) for every table. */
  entity?: string | null;
  /** @default 40 */
  stage?: 10 | 20 | 40;
  /** @default "sync" */
  mode?: "sync" | "async";
  /** The exported plug-in class. Required with `entry` or `bundle`. */
  type?: string;
  /** The plug-in's module (TypeScript or JavaScript), built in memory. */
  entry?: string;
  /** A bundle from `host.build()`, or a bundle file's path. */
  bundle?: Bundle | string;
  /** A service endpoint (name or id) that handles the step instead of a plug-in. */
  serviceEndpoint?: string;
  id?: string;
  name?: string;
  rank?: number;
  filteringAttributes?: string[] | string;
  unsecureConfig?: string | null;
  secureConfig?: string | null;
  runAs?: string | null;
  images?: Array<{ alias: string; type: "pre" | "post" | "both"; attributes?: string[] }>;
  isolation?: "fresh" | "reuse";
  asyncAutoDelete?: boolean;
  enabled?: boolean;
  description?: string | null;
}

/** Records by table: each one's `id` (a Guid; made up when left out) and its columns. */
export type SeedData = Record<string, Array<{ id?: string } & Record<string, unknown>>>;

export interface TestHostOptions {
  /** A manifest file (its relative bundle paths resolve against its folder; a `.ts` bundle path is built in memory) or a manifest object. */
  manifest?: string | Record<string, unknown>;
  /** Steps registered after the manifest's, by the same rules. */
  steps?: TestStep[];
  /** Table schemas, as the manifest's `tables`. */
  tables?: Record<string, { columns: Record<string, string>; primaryIdAttribute?: string; primaryNameAttribute?: string; alternateKeys?: Record<string, string[] | string> }>;
  /** Service endpoints, as the manifest's `serviceEndpoints`. */
  endpoints?: Array<{ id: string; name: string } & Record<string, unknown>>;
  /** The manifest's settings. @default { traceLogSetting: "All" }: every execution's trace is kept */
  settings?: { maxDepth?: number; traceLogSetting?: "Off" | "Exceptions" | "All"; maxAsyncAttempts?: number };
  /** Records written before anything runs (no step fires for them). */
  seed?: SeedData;
  /**
   * Users of the organization, as `systemuser` records (`{ id, fullname, … }`), written with the seed:
   * the ids a test passes as `execute(request, { userId })` or a step's `runAs`. The identity's default
   * user needs none.
   */
  users?: Array<{ id: string } & Record<string, unknown>>;
  /** Every execution's sandbox limits. */
  limits?: Partial<SandboxLimits>;
  /** The organization and its default user. */
  identity?: Partial<Identity>;
  /** @default the system clock */
  clock?: Clock;
  /** @default random Guids */
  ids?: IdSource;
  /** `"clock"`: plug-ins' Date and timers follow `clock` (the runtime's pluginTime). @default "system" */
  pluginTime?: "system" | "clock";
  /** `inbox` keeps every post in `host.inbox`; `network` sends them to the endpoints' brokers and webhooks. @default "inbox" */
  relay?: "inbox" | "network";
  /** Where endpoints' secrets (`env:NAME`, `file:NAME`) come from. @default the environment */
  secrets?: SecretSource;
  organizationUrl?: string;
  /** The outbound web policy, widened for tests. */
  webPolicy?: WebPolicyInput;
  /** Sandbox worker processes. @default 1 */
  workers?: number;
  /** A sandbox runtime to share (several test hosts in one file); otherwise the host starts its own. */
  runtime?: SandboxRuntime;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
const text = v.pipe(v.string("must be a non-empty string"), v.minLength(1, "must be a non-empty string"));
const objectOf = (what: string) => v.custom<Record<string, unknown>>(isObject, `must be an object of ${what}`);
const withMethods = (what: string, ...methods: string[]) =>
  v.custom<object>((value) => isObject(value) && methods.every((m) => typeof value[m] === "function"), `must be ${what} (an object with ${methods.map((m) => `${m}()`).join(" and ")})`);
const isBundle = (value: unknown): boolean => isObject(value) && typeof value.source === "string" && typeof value.id === "string";

const stepSchema = strictOptions(
  {
    message: text,
    entity: v.nullish(text),
    stage: v.optional(v.picklist([10, 20, 40], "must be 10 (pre-validation), 20 (pre-operation) or 40 (post-operation)")),
    mode: v.optional(v.picklist(["sync", "async"], `must be "sync" or "async"`)),
    type: v.optional(text),
    entry: v.optional(v.pipe(text, v.regex(/\.(?:[cm]?[jt]s|tsx|jsx)$/i, "must be a plug-in module's path (.ts or .js), e.g. src/plugin.ts"))),
    bundle: v.optional(v.union([text, v.custom<Bundle>(isBundle)], "must be a bundle from host.build() or a bundle file's path")),
    serviceEndpoint: v.optional(text),
    id: v.optional(v.unknown()),
    name: v.optional(v.unknown()),
    rank: v.optional(v.unknown()),
    filteringAttributes: v.optional(v.unknown()),
    unsecureConfig: v.optional(v.nullable(v.string("must be a string or null"))),
    secureConfig: v.optional(v.nullable(v.string("must be a string or null"))),
    runAs: v.optional(v.unknown()),
    images: v.optional(v.unknown()),
    isolation: v.optional(v.unknown()),
    asyncAutoDelete: v.optional(v.unknown()),
    enabled: v.optional(v.unknown()),
    description: v.optional(v.unknown()),
  },
  "is not a key of a step; known keys are",
);

const testHostSchema = strictOptions({
  manifest: v.optional(v.union([text, objectOf("manifest entries")], "must be a manifest file's path or a manifest object")),
  steps: v.optional(v.array(stepSchema, "must be an array of steps ({ message, entity, stage, mode, type, entry })")),
  tables: v.optional(objectOf("table schemas (table → { columns })")),
  endpoints: v.optional(v.array(objectOf("endpoint settings ({ id, name, contract, … })"), "must be an array of service endpoints")),
  settings: v.optional(objectOf("manifest settings")),
  users: v.optional(v.array(objectOf("a user's columns ({ id, fullname, … })"), "must be an array of users ({ id, fullname, … })")),
  seed: v.optional(v.record(text, v.array(objectOf("columns"), "must be an array of records ({ id, …columns })"), "must be an object of table → records")),
  limits: v.optional(objectOf("sandbox limits")),
  identity: v.optional(objectOf("identity settings")),
  clock: v.optional(withMethods("a clock", "now")),
  ids: v.optional(withMethods("an id source", "newId")),
  pluginTime: v.optional(v.picklist(["system", "clock"], `must be "system" (plug-ins see the real time) or "clock" (they follow the clock option)`)),
  relay: v.optional(v.picklist(["inbox", "network"], `must be "inbox" (posts kept in host.inbox) or "network" (sent to the endpoints)`)),
  secrets: v.optional(objectOf("secret sources ({ env, file })")),
  organizationUrl: v.optional(text),
  webPolicy: v.optional(objectOf("web policy options")),
  workers: v.optional(v.pipe(v.number("must be an integer from 1 to 64"), v.integer("must be an integer from 1 to 64"), v.minValue(1, "must be an integer from 1 to 64"), v.maxValue(64, "must be an integer from 1 to 64"))),
  runtime: v.optional(withMethods("a sandbox runtime from createSandboxRuntime()", "execute", "close")),
});

const ROOT = "createTestHost options";

function invalid(at: string, message: string): OptionsError {
  return new OptionsError("OPTIONS_INVALID", `${at} ${message}`);
}

/** Checks every option before anything starts: OPTIONS_INVALID naming the key and the fix. */
function checkOptions(options: TestHostOptions): void {
  parseOptions(testHostSchema, options, (items, message) => invalid(formatPath(ROOT, items), message));
  options.steps?.forEach((step, i) => {
    const at = formatPath(ROOT, ["steps", i]);
    const handlers = (["entry", "bundle", "serviceEndpoint"] as const).filter((key) => step[key] !== undefined);
    if (handlers.length !== 1) {
      throw invalid(at, `needs exactly one of entry (a plug-in module), bundle (a built bundle) or serviceEndpoint; ${handlers.length === 0 ? "it has none" : `it has ${handlers.join(" and ")}`}`);
    }
    if (step.serviceEndpoint === undefined && step.type === undefined) throw invalid(`${at}.type`, "is required: the exported plug-in class the step runs, e.g. \"AccountNumbering\"");
    if (step.serviceEndpoint !== undefined && step.type !== undefined) throw invalid(`${at}.type`, "is for plug-in steps; a step handled by a serviceEndpoint takes none");
  });
  options.users?.forEach((user, i) => {
    if (!isGuid(user.id)) throw invalid(formatPath(ROOT, ["users", i, "id"]), `must be a Guid such as "3f2504e0-4f89-11d3-9a0c-0305e82c3301": the id a request's caller or a step's runAs names; got ${JSON.stringify(user.id)}`);
  });
  for (const [table, records] of Object.entries(options.seed ?? {})) {
    records.forEach((record, i) => {
      if (record.id !== undefined && !isGuid(record.id)) throw invalid(formatPath(ROOT, ["seed", table, i, "id"]), `must be a Guid such as "3f2504e0-4f89-11d3-9a0c-0305e82c3301" (or left out to make one up); got ${JSON.stringify(record.id)}`);
    });
  }
}

// Registration ///////////////////////////////////////////////////////////////////////////////////

/** A manifest's raw entries with its relative bundle paths made absolute, and the folder they resolved against. */
async function rawManifest(given: TestHostOptions["manifest"]): Promise<{ raw: Record<string, unknown>; source: string }> {
  if (given === undefined) return { raw: {}, source: ROOT };
  if (typeof given !== "string") return { raw: given, source: `${ROOT}.manifest` };
  const raw = await readJsonInput(given, "manifest", {
    notFound: () => new RegistryError("MANIFEST_NOT_FOUND", `cannot read the manifest ${given}: it does not exist or is not readable`),
    invalid: (message) => new RegistryError("MANIFEST_INVALID", message),
  });
  if (!isObject(raw)) throw new RegistryError("MANIFEST_INVALID", `${given}: (root): must be an object`);
  const folder = path.dirname(path.resolve(given));
  const bundles = isObject(raw.bundles) ? raw.bundles : {};
  const absolute = Object.fromEntries(
    Object.entries(bundles).map(([name, entry]) => {
      const at = typeof entry === "string" ? entry : isObject(entry) && typeof entry.path === "string" ? entry.path : undefined;
      if (at === undefined) return [name, entry];
      const resolved = path.resolve(folder, at);
      return [name, typeof entry === "string" ? resolved : { ...(entry as object), path: resolved }];
    }),
  );
  return { raw: { ...raw, ...(raw.bundles === undefined ? {} : { bundles: absolute }) }, source: given };
}

/**
 * One manifest from the manifest given and the inline steps, tables and endpoints (inline steps
 * checked on their own first, so an error names their index); `.ts` bundles and `entry` steps are
 * built in memory (cached) and attached to their registration.
 */
async function registration(options: TestHostOptions): Promise<Manifest> {
  const { raw, source } = await rawManifest(options.manifest);
  const bundles: Record<string, unknown> = { ...(isObject(raw.bundles) ? raw.bundles : {}) };
  const loaded = new Map<string, Bundle>();
  const steps = (options.steps ?? []).map((step) => {
    const { entry, bundle, ...rest } = step;
    if (entry !== undefined) {
      const name = `entry:${path.relative(process.cwd(), path.resolve(entry)) || entry}`;
      bundles[name] = { path: path.resolve(entry) };
      return { ...rest, bundle: name };
    }
    if (bundle !== undefined) {
      const name = typeof bundle === "string" ? `file:${bundle}` : `bundle:${bundle.id.slice(0, 16)}`;
      bundles[name] = { path: typeof bundle === "string" ? path.resolve(bundle) : path.resolve(bundle.directory ?? process.cwd(), bundle.filename) };
      if (typeof bundle !== "string") loaded.set(name, bundle);
      return { ...rest, bundle: name };
    }
    return rest;
  });
  const listOf = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
  const endpoints = [...listOf(raw.serviceEndpoints), ...(options.endpoints ?? [])];
  if (steps.length > 0) parseManifest({ bundles, serviceEndpoints: endpoints, steps }, ROOT);
  const merged: Record<string, unknown> = {
    ...raw,
    bundles,
    steps: [...listOf(raw.steps), ...steps],
    serviceEndpoints: endpoints,
    tables: { ...(isObject(raw.tables) ? raw.tables : {}), ...options.tables },
    settings: { traceLogSetting: "All", ...(isObject(raw.settings) ? raw.settings : {}), ...options.settings },
  };
  const manifest = parseManifest(merged, source);
  await Promise.all(
    [...manifest.bundles.values()].map(async (bundle) => {
      const given = loaded.get(bundle.name);
      if (given) bundle.loaded = given;
      else if (SOURCE_ENTRY.test(bundle.path) || bundle.name.startsWith("entry:")) bundle.loaded = await cachedBuild(bundle.path);
    }),
  );
  return manifest;
}

/** In inbox mode no secret is read: a secret an endpoint names resolves to a stand-in unless the test gives it. */
const INBOX_SECRET = "Endpoint=sb://inbox.plugbox.test/;SharedAccessKeyName=inbox;SharedAccessKey=inbox";
function inboxSecrets(given: SecretSource | undefined): SecretSource {
  const env = given?.env ?? process.env;
  return { ...given, env: new Proxy({} as Record<string, string | undefined>, { get: (_, name) => (typeof name === "string" ? (env[name] ?? INBOX_SECRET) : undefined) }) };
}

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

/** The store's tables a snapshot copies (not plugbox_schema, which never changes). */
const savepointOf = (slot: number) => `plugbox_snapshot_${slot}`;

/** Reading and seeding the host's store directly: no step fires. */
export interface TestStore {
  /**
   * Writes records as the core operation of a Create does (the primary id column, createdon,
   * ownerid, statecode…; checked against the table's schema), without running any step.
   * Values are SDK values or plugbox JSON. Returns the ids, by table, in order.
   */
  seed(data: SeedData): Record<string, string[]>;
  /** A record's columns as stored, or undefined. */
  get(table: string, id: string): Record<string, unknown> | undefined;
  /** Every record, by table and id. */
  records(): StoredRecords;
  /** Every record of one table, by id. */
  records(table: string): Record<string, Record<string, unknown>>;
}

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
      get: (table, id) => host.store.getRecord(table, id.toLowerCase())?.attributes,
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
      if (options.users) testHost.#seed({ systemuser: options.users });
      if (options.seed) testHost.#seed(options.seed);
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
    return this.host.pipeline.traceLog.list(filter);
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
    const { store } = this.host;
    const slot = ++this.#slots;
    const state: SnapshotState = { host: this, slot, rows: store.copyRows(), journal: [...this.#journal], inbox: this.inbox.mark() };
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
    const { store } = this.host;
    {
      // Waits for a request or job still holding the store (none between tests).
      using _lease = await store.acquire();
      if (this.#restored?.state !== state || this.#restored.changes !== store.totalChanges()) {
        if (!store.rollbackToHeld(savepointOf(state.slot))) {
          (state.copyBack ??= store.rowsWriter(state.rows))();
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
    for (const row of this.host.store.allRecords()) if (only === undefined || row.entity === only) (out[row.entity] ??= {})[row.id] = row.attributes;
    return out;
  }

  #seed(data: SeedData): Record<string, string[]> {
    this.#assertOpen();
    const ids: Record<string, string[]> = {};
    this.host.store.transaction(() => {
      for (const [table, records] of Object.entries(data)) {
        for (const { id, ...columns } of records) {
          const attributes = fromPlain(toPlain(columns, `seed.${table}`)) as Record<string, AttributeValue>;
          (ids[table] ??= []).push(this.#core.create(new Entity(table, id, attributes), this.#identity.defaultUserId));
        }
      }
    });
    return ids;
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
    return this.host.pipeline.jobs.nextDue()?.getTime();
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
