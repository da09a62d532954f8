/**
 * The embedded store: better-sqlite3 (a real SQLite, in process, synchronous and fast; Node 20 has
 * no node:sqlite), file-backed with WAL, or `:memory:` (`plugbox exec` and `run --data` without --db,
 * and tests). The statements of this class are prepared once.
 *
 * Concurrency: one connection, and one request at a time holds the store (`acquire`). A request's
 * transaction stays open across awaited sandbox executions; the nested requests its plug-ins make
 * run inside it as savepoints, without acquiring again. Requests from other callers, async jobs
 * and CLI invocations queue behind it, so no request ever sees, or rolls back, another's
 * uncommitted writes. Another process opening the same file waits on SQLite's busy timeout; the
 * job runner's leases and outcomes (`beginWrite`) wait without blocking the event loop.
 *
 * Failures: the hold on the store and every transaction are disposables (`using`), so they end on
 * every path; SQLite's errors become typed ones (STORE_BUSY, STORE_FULL, STORE_CORRUPT, STORE_IO),
 * and a transaction SQLite rolled back by itself (a full disk) is not rolled back twice. A file
 * that opens is checked with `PRAGMA quick_check` first, so a damaged store is refused at once.
 */
import { statSync } from "node:fs";
import Database from "better-sqlite3";
import { flag, formatPath, integer, parseOptions, shown, strictOptions, v, withDefaults } from "../../runtime/schema.js";
import { checkIntegrity, migrate } from "./schema.js";
import { StoreHolder } from "./holder.js";
import { restoreAdvice, StoreError, toStoreError } from "./errors.js";
import { resolveStoreOptions, type StoreOptions } from "./options.js";
import { SystemJobsTable } from "./system-jobs.js";
import { TraceLogsTable } from "./trace-logs.js";
import type { Awaitable, DataStore, RecordRow, StoreLease, StoreTransaction } from "./engine.js";

export { STORE_ERRORS, StoreError, toStoreError, type StoreErrorCode } from "./errors.js";

export { storeDefaults, storeOptionEntries, resolveStoreOptions, type StoreOptions } from "./options.js";

export type { RecordRow, StoreLease, StoreTransaction, DataStore, StoreEngine, Awaitable } from "./engine.js";

/** SQLite's transactions end synchronously; `using` (sync) and `await using` both dispose of them. */
export interface SqliteTransaction extends StoreTransaction, Disposable {
  commit(): void;
  rollback(): void;
}

export class Store implements DataStore {
  readonly engine = "sqlite" as const;
  readonly path: string;
  readonly db: Database.Database;
  readonly #holder = new StoreHolder();
  #depth = 0;
  /** Savepoints held open between requests (plugbox/testing's snapshots), oldest first: while any is, a request's transaction is a savepoint inside them. */
  readonly #held: string[] = [];
  #totalChanges: Database.Statement<[], number> | undefined;
  #closed = false;
  readonly #busyTimeoutMs: number;
  readonly #statements;
  /** The system_jobs table's statements. */
  readonly systemJobs: SystemJobsTable;
  /** The trace_logs table's statements. */
  readonly traceLogs: TraceLogsTable;
  /** Statements of compiled queries and alternate-key lookups, by their SQL: the last 64 used. */
  readonly #queries = new Map<string, Database.Statement>();

  private constructor(path: string, db: Database.Database, busyTimeoutMs: number) {
    this.path = path;
    this.db = db;
    this.#busyTimeoutMs = busyTimeoutMs;
    this.systemJobs = new SystemJobsTable(db);
    this.traceLogs = new TraceLogsTable(db);
    this.#statements = {
      begin: db.prepare("BEGIN IMMEDIATE"),
      commit: db.prepare("COMMIT"),
      rollback: db.prepare("ROLLBACK"),
      get: db.prepare<[string, string], { attributes: string; version: number }>("SELECT attributes, version FROM records WHERE entity = ? AND id = ?"),
      insert: db.prepare<[string, string, string]>("INSERT INTO records (entity, id, attributes, version) VALUES (?, ?, ?, 1) ON CONFLICT DO NOTHING"),
      update: db.prepare<[string, string, string]>("UPDATE records SET attributes = ?, version = version + 1 WHERE entity = ? AND id = ?"),
      delete: db.prepare<[string, string]>("DELETE FROM records WHERE entity = ? AND id = ?"),
      all: db.prepare<[], { entity: string; id: string; attributes: string; version: number }>("SELECT entity, id, attributes, version FROM records ORDER BY entity, id"),
      any: db.prepare<[string], { found: number }>("SELECT 1 AS found FROM records WHERE entity = ? LIMIT 1"),
      link: db.prepare<[string, string, string, string, string]>("INSERT OR IGNORE INTO relationships (relationship, entity1, id1, entity2, id2) VALUES (?, ?, ?, ?, ?)"),
      unlink: db.prepare<[string, string, string, string, string]>("DELETE FROM relationships WHERE relationship = ? AND entity1 = ? AND id1 = ? AND entity2 = ? AND id2 = ?"),
      unlinkRecord: db.prepare<[string, string, string, string]>("DELETE FROM relationships WHERE (entity1 = ? AND id1 = ?) OR (entity2 = ? AND id2 = ?)"),
      links: db.prepare<[string, string, string, string, string], { n: number }>(
        "SELECT count(*) AS n FROM relationships WHERE relationship = ? AND ((entity1 = ? AND id1 = ? AND entity2 = ? AND id2 = ?))",
      ),
    };
  }

  /** Opens (and creates or migrates) a store; a damaged or emptied file is refused with STORE_CORRUPT. */
  static open(options: StoreOptions = {}): Store {
    const { path, busyTimeoutMs, quickCheck, maxSizeBytes } = resolveStoreOptions(options);
    const existingBytes = path === ":memory:" ? undefined : sizeOf(path);
    // SQLite takes an empty file for a new database; a store is never empty, so one that is was truncated.
    if (existingBytes === 0) throw new StoreError("STORE_CORRUPT", `the store ${path} is an empty file (0 bytes): it was truncated or never written; ${restoreAdvice(path)}, or remove the file to start a new store`);
    let db: Database.Database;
    try {
      db = new Database(path, { timeout: busyTimeoutMs });
    } catch (error) {
      throw new StoreError("STORE_OPEN_FAILED", `cannot open the store ${path}: ${(error as Error).message}`);
    }
    try {
      if (existingBytes !== undefined && quickCheck) checkIntegrity(db, path);
      // A new store's pages: 8 KB holds several jobs (a job's context is a few KB) where 4 KB held
      // one, so leasing and completing a batch of jobs writes a fraction of the pages. No effect on
      // an existing file.
      db.pragma("page_size = 8192");
      if (path !== ":memory:") db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.pragma("foreign_keys = ON");
      migrate(db, path);
      if (maxSizeBytes !== undefined) db.pragma(`max_page_count = ${Math.max(1, Math.floor(maxSizeBytes / (db.pragma("page_size", { simple: true }) as number)))}`);
      return new Store(path, db, busyTimeoutMs);
    } catch (error) {
      db.close();
      if (error instanceof StoreError) throw error;
      const typed = toStoreError(error, path);
      if (typed instanceof StoreError && (error as { code?: string }).code !== "SQLITE_NOTADB") throw typed;
      throw new StoreError("STORE_OPEN_FAILED", `${path} is not a plugbox store: ${(error as Error).message}; if it was one, it is damaged: ${restoreAdvice(path)}`);
    }
  }

  /**
   * Waits until no other request holds the store, then holds it. Call the returned lease (or
   * dispose of it: `using lease = await store.acquire()`) to let the next one in; nested requests
   * of the holder must not acquire again.
   */
  async acquire(): Promise<StoreLease> {
    this.#assertOpen();
    return this.#holder.acquire();
  }

  /** Starts a transaction, or a savepoint inside the open one. Returns how to end it. */
  begin(): SqliteTransaction {
    this.#assertOpen();
    const level = this.#depth;
    const name = `sp${level}`;
    // SQLite ended the held transaction by itself (a full disk): the held savepoints are gone with it.
    if (this.#held.length > 0 && !this.db.inTransaction) this.#held.length = 0;
    const nested = level > 0 || this.#held.length > 0;
    try {
      if (!nested) {
        // A transaction no one ends any more (its ROLLBACK failed) would turn every later BEGIN into an error.
        if (this.db.inTransaction) this.#statements.rollback.run();
        this.#statements.begin.run();
      } else {
        // SQLite ended the transaction by itself (a full disk): a savepoint now would begin a new one.
        if (!this.db.inTransaction) throw new StoreError("STORE_IO", `the transaction on ${this.path} was rolled back by SQLite after an earlier failure; the request cannot go on`);
        this.db.exec(`SAVEPOINT ${name}`);
      }
    } catch (error) {
      throw toStoreError(error, this.path);
    }
    this.#depth++;
    let ended = false;
    const finish = () => {
      ended = true;
      this.#depth = level;
    };
    const commit = () => {
      if (ended) return;
      try {
        if (!this.db.inTransaction) throw new StoreError("STORE_IO", `the transaction on ${this.path} was rolled back by SQLite after an earlier failure, so nothing of it was kept`);
        if (!nested) this.#statements.commit.run();
        else this.db.exec(`RELEASE ${name}`);
      } catch (error) {
        // A COMMIT that fails leaves the transaction open for the caller's rollback, unless SQLite ended it.
        if (!this.db.inTransaction) finish();
        throw toStoreError(error, this.path);
      }
      finish();
    };
    const rollback = () => {
      if (ended) return;
      try {
        // Nothing to undo when SQLite rolled the transaction back by itself.
        if (!this.db.inTransaction) return;
        if (!nested) this.#statements.rollback.run();
        else this.db.exec(`ROLLBACK TO ${name}; RELEASE ${name}`);
      } catch (error) {
        throw toStoreError(error, this.path);
      } finally {
        finish();
      }
    };
    const dispose = () => {
      try {
        rollback();
      } catch {
        // The error that ended the block is the one the caller gets; the next BEGIN rolls back what is left.
      }
    };
    return { commit, rollback, [Symbol.dispose]: dispose, [Symbol.asyncDispose]: async () => dispose() };
  }

  /**
   * Starts a transaction like `begin`, but while another process holds the file's write lock it
   * waits between attempts with the event loop free (a synchronous wait would stall this process's
   * sockets and timers), for up to busyTimeoutMs; then throws STORE_BUSY. For callers that hold the
   * store and no transaction.
   */
  async beginWrite(): Promise<SqliteTransaction> {
    // No other process can hold a :memory: store, and a zero busy timeout never blocks: begin at once
    // (the pragmas below are compiled on every call, a measurable share of a request).
    if (this.path === ":memory:" || this.#busyTimeoutMs === 0) return this.begin();
    const deadline = Date.now() + this.#busyTimeoutMs;
    for (let delayMs = 1; ; delayMs = Math.min(delayMs * 2, 32)) {
      this.#assertOpen();
      // Set at prepare time (SQLite applies this pragma while compiling it), so run each time.
      this.db.pragma("busy_timeout = 0");
      try {
        return this.begin();
      } catch (error) {
        // SQLITE_BUSY, or an extended code such as SQLITE_BUSY_RECOVERY after another process died.
        if ((error as { code?: unknown }).code !== "STORE_BUSY") throw error;
        if (Date.now() >= deadline) throw new StoreError("STORE_BUSY", `another process held the write lock of ${this.path} for more than ${this.#busyTimeoutMs} ms; try again when it is free, or raise busyTimeoutMs`, { cause: error });
      } finally {
        this.db.pragma(`busy_timeout = ${this.#busyTimeoutMs}`);
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs * (0.5 + Math.random())));
    }
  }

  /** Runs `fn` in a transaction (a savepoint inside an open one): committed if it returns, rolled back if it throws. */
  transaction<T>(fn: () => T): T {
    using transaction = this.begin();
    const result = fn();
    transaction.commit();
    return result;
  }

  /**
   * Holds the store, and runs `fn` in a transaction started with `beginWrite` (the event loop stays
   * free while another process holds the file); committed if it returns, rolled back if it throws.
   */
  async write<T>(fn: () => Awaitable<T>): Promise<T> {
    using _lease = await this.acquire();
    using transaction = await this.beginWrite();
    const result = await fn();
    transaction.commit();
    return result;
  }

  /**
   * Opens a savepoint that stays open between requests, to come back to with `rollbackToHeld`
   * (plugbox/testing's snapshots; a test store only: nothing written after it is committed).
   * Only while no transaction of a request is open.
   */
  holdSavepoint(name: string): void {
    this.#assertOpen();
    if (this.#depth > 0) throw new StoreError("STORE_BUSY", "a savepoint cannot be held while a request's transaction is open; take it between requests");
    if (this.#held.length > 0 && !this.db.inTransaction) this.#held.length = 0;
    if (this.#held.length === 0 && this.db.inTransaction) this.#statements.rollback.run();
    this.db.exec(`SAVEPOINT ${name}`);
    this.#held.push(name);
  }

  /**
   * Undoes everything written since the held savepoint `name`, which stays held; those held after
   * it are let go. False when it is not held any more (an earlier one was rolled back to, or SQLite
   * ended the transaction after a failure), and nothing is undone.
   */
  rollbackToHeld(name: string): boolean {
    this.#assertOpen();
    if (this.#depth > 0) throw new StoreError("STORE_BUSY", "a held savepoint cannot be rolled back to while a request's transaction is open");
    if (!this.db.inTransaction) this.#held.length = 0;
    const at = this.#held.indexOf(name);
    if (at < 0) return false;
    this.db.exec(`ROLLBACK TO ${name}`);
    this.#held.length = at + 1;
    return true;
  }

  /** Rows changed since the store opened (SQLite's total_changes()): whether anything was written between two readings. */
  totalChanges(): number {
    return (this.#totalChanges ??= this.db.prepare<[], number>("SELECT total_changes()").pluck()).get()!;
  }

  get inTransaction(): boolean {
    return this.#depth > 0;
  }

  // Records ////////////////////////////////////////////////////////////////////////////////////

  getRecord(entity: string, id: string): RecordRow | undefined {
    const row = this.#statements.get.get(entity, id);
    return row ? { entity, id, attributes: parseAttributes(row.attributes), version: row.version } : undefined;
  }

  /** Inserts a record; false when one with that id exists (nothing is written). */
  insertRecord(entity: string, id: string, attributes: Record<string, unknown>): boolean {
    return this.#statements.insert.run(entity, id, JSON.stringify(attributes)).changes > 0;
  }

  /** Replaces a record's attributes; returns false when it does not exist. */
  replaceRecord(entity: string, id: string, attributes: Record<string, unknown>): boolean {
    return this.#statements.update.run(JSON.stringify(attributes), entity, id).changes > 0;
  }

  deleteRecord(entity: string, id: string): boolean {
    const deleted = this.#statements.delete.run(entity, id).changes > 0;
    if (deleted) this.#statements.unlinkRecord.run(entity, id, entity, id);
    return deleted;
  }

  /** True when the table holds at least one record. */
  hasRecords(entity: string): boolean {
    return this.#statements.any.get(entity) !== undefined;
  }

  allRecords(): RecordRow[] {
    return this.#statements.all.all().map((row) => ({ ...row, attributes: parseAttributes(row.attributes) }));
  }

  /**
   * The rows of a query compiled for the records table (RetrieveMultiple). Each distinct statement
   * is prepared once and kept while it is among the last 64 used.
   */
  selectRows(sql: string, params: Record<string, unknown>): Array<Record<string, unknown>> {
    return this.#query(sql).all(params) as Array<Record<string, unknown>>;
  }

  /** The id of a record whose columns hold these values (plugbox JSON), e.g. an alternate key's. */
  findRecordId(entity: string, values: Record<string, unknown>): string | undefined {
    const columns = Object.keys(values);
    const where = columns.map(() => "json_extract(attributes, ?) = json_extract(?, '$')").join(" AND ");
    const params = columns.flatMap((c) => [`$.${c}`, JSON.stringify(values[c])]);
    const row = this.#query(`SELECT id FROM records WHERE entity = ? AND ${where} LIMIT 1`).get(entity, ...params) as { id: string } | undefined;
    return row?.id;
  }

  #query(sql: string): Database.Statement {
    let statement = this.#queries.get(sql);
    if (statement) {
      this.#queries.delete(sql);
    } else {
      statement = this.db.prepare(sql);
      if (this.#queries.size >= 64) this.#queries.delete(this.#queries.keys().next().value!);
    }
    this.#queries.set(sql, statement);
    return statement;
  }

  link(relationship: string, entity1: string, id1: string, entity2: string, id2: string): void {
    this.#statements.link.run(relationship, entity1, id1, entity2, id2);
  }

  unlink(relationship: string, entity1: string, id1: string, entity2: string, id2: string): boolean {
    return this.#statements.unlink.run(relationship, entity1, id1, entity2, id2).changes > 0;
  }

  isLinked(relationship: string, entity1: string, id1: string, entity2: string, id2: string): boolean {
    return this.#statements.links.get(relationship, entity1, id1, entity2, id2)!.n > 0;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.db.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreError("STORE_CLOSED", "the store was closed");
  }
}

/** The file's size, or undefined when there is no file yet (SQLite creates it). */
function sizeOf(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}

function parseAttributes(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new StoreError("STORE_CORRUPT_VALUE", "a stored record's attributes are not valid JSON");
  }
}
