/**
 * The one store interface the pipeline, the organization service and the job runner use, whatever
 * the engine behind it: the embedded SQLite store (store.ts, synchronous underneath: its methods
 * return values, which `await` takes as they are) or PostgreSQL (postgres/, every call a round trip).
 *
 * The semantics are the same on both. One request at a time holds a store (`acquire`) and runs its
 * statements on one connection; its transaction stays open across awaited sandbox executions, and
 * the nested requests its plug-ins make are savepoints inside it. Every error a caller sees is a
 * StoreError with a stable code (or the caller's own error, unchanged).
 */
import type { LeasedJob, NewJobRow, SystemJob } from "./system-jobs.js";
import type { TraceRow } from "./trace-logs.js";

/** A value, or a promise of one: SQLite's store answers at once, PostgreSQL's after a round trip. */
export type Awaitable<T> = T | Promise<T>;

export type StoreEngine = "sqlite" | "postgres";

export interface RecordRow {
  entity: string;
  id: string;
  /** Column → plugbox JSON value. */
  attributes: Record<string, unknown>;
  version: number;
}

/** The hold on the store: call it, or let `using` dispose of it, to let the next holder in. */
export type StoreLease = (() => void) & Disposable;

/**
 * A transaction (or a savepoint inside one). `commit()` ends it; disposing of it (`await using`)
 * without a commit rolls it back, and never throws: the error that left the block is the one that counts.
 */
export interface StoreTransaction extends AsyncDisposable {
  commit(): Awaitable<void>;
  rollback(): Awaitable<void>;
}

/** The system_jobs table (see system-jobs.ts for the states and what each method means). */
export interface SystemJobsStore {
  insert(job: NewJobRow): Awaitable<void>;
  /** Leases up to `limit` jobs, ready ones oldest first, then those whose lease ran out; the caller holds a transaction. */
  lease(owner: string, at: Date, leaseMs: number, limit: number): Awaitable<LeasedJob[]>;
  release(ids: readonly string[], owner: string): Awaitable<void>;
  /** Moves on every lease the owner holds to `until` (a runner still at work); returns how many. */
  renewLeases(owner: string, until: Date): Awaitable<number>;
  /**
   * Leases one job by its id, only if it is at attempt `attempt` (its retry count) and either Ready
   * and due by `dueBy`, or Locked with a lease that ran out; the caller holds a transaction.
   * Otherwise nothing changes, and the job as it is comes back (undefined when there is none).
   */
  leaseById(id: string, owner: string, at: Date, leaseMs: number, attempt: number, dueBy: Date): Awaitable<{ leased: LeasedJob } | { leased?: undefined; job: SystemJob | undefined }>;
  nextDue(): Awaitable<Date | undefined>;
  succeed(id: string, owner: string, autoDelete: boolean, at: Date): Awaitable<boolean>;
  fail(id: string, owner: string, failure: { message: string; errorCode: number | null }, at: Date): Awaitable<boolean>;
  retryLater(id: string, owner: string, at: Date, failure: { message: string; errorCode: number | null }): Awaitable<boolean>;
  waitForResources(id: string, owner: string, at: Date, message: string): Awaitable<boolean>;
  get(id: string): Awaitable<SystemJob | undefined>;
  data(id: string): Awaitable<{ data: string; post: string | null } | undefined>;
  list(filter?: { stateCode?: number }): Awaitable<SystemJob[]>;
  /** How many jobs have each status code (one grouped read, for /metrics). */
  countByStatus(): Awaitable<Map<number, number>>;
  reset(id: string): Awaitable<void>;
  cancel(id: string, at: Date): Awaitable<void>;
}

/** The trace_logs table: plug-in trace logs, one row per execution. */
export interface TraceLogsStore {
  insert(rows: readonly TraceRow[]): Awaitable<void>;
  list(filter?: { correlationId?: string }): Awaitable<TraceRow[]>;
}

export interface DataStore {
  readonly engine: StoreEngine;
  /** Where the store is, as messages name it: a file path, ":memory:", or a PostgreSQL address without its password. */
  readonly path: string;
  readonly systemJobs: SystemJobsStore;
  readonly traceLogs: TraceLogsStore;
  /** True while a request's transaction is open. */
  readonly inTransaction: boolean;

  /** Waits until no other request holds the store, then holds it; nested requests of the holder must not acquire again. */
  acquire(): Promise<StoreLease>;
  /** Starts a transaction, or a savepoint inside the open one. */
  begin(): Awaitable<StoreTransaction>;
  /** Starts a transaction like `begin`, waiting with the event loop free while another process holds the store. */
  beginWrite(): Promise<StoreTransaction>;
  /** Holds the store and runs `fn` in a transaction: committed if it returns, rolled back if it throws. */
  write<T>(fn: () => Awaitable<T>): Promise<T>;

  getRecord(entity: string, id: string): Awaitable<RecordRow | undefined>;
  /** Inserts a record; false when one with that id exists (nothing is written). */
  insertRecord(entity: string, id: string, attributes: Record<string, unknown>): Awaitable<boolean>;
  /** Replaces a record's attributes; false when it does not exist. */
  replaceRecord(entity: string, id: string, attributes: Record<string, unknown>): Awaitable<boolean>;
  deleteRecord(entity: string, id: string): Awaitable<boolean>;
  hasRecords(entity: string): Awaitable<boolean>;
  allRecords(): Awaitable<RecordRow[]>;
  /** The rows of a query compiled for this engine's dialect (host/organization/query), with `@name` parameters. */
  selectRows(sql: string, params: Record<string, unknown>): Awaitable<Array<Record<string, unknown>>>;
  /** The id of a record whose columns hold these values (plugbox JSON), e.g. an alternate key's. */
  findRecordId(entity: string, values: Record<string, unknown>): Awaitable<string | undefined>;
  link(relationship: string, entity1: string, id1: string, entity2: string, id2: string): Awaitable<void>;
  unlink(relationship: string, entity1: string, id1: string, entity2: string, id2: string): Awaitable<boolean>;
  isLinked(relationship: string, entity1: string, id1: string, entity2: string, id2: string): Awaitable<boolean>;

  /**
   * Tells the other hosts sharing this store that jobs are ready now (PostgreSQL's NOTIFY, sent on a
   * connection of its own, never inside a transaction). Absent where no other host shares the store.
   */
  announceJobs?(): Promise<void>;
  /** Calls `onAnnounced` whenever a host sharing the store announced jobs (and after a reconnect); returns how to stop. */
  watchJobs?(onAnnounced: () => void): () => void;

  close(): Awaitable<void>;
}
