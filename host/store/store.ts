/**
 * The embedded store: better-sqlite3 (a real SQLite, in process, synchronous and fast; Node 20 has
 * no node:sqlite), file-backed with WAL, or `:memory:` for tests. Every statement is prepared once.
 *
 * Concurrency: one connection, and one request at a time holds the store (`acquire`). A request's
 * transaction stays open across awaited sandbox executions; the nested requests its plug-ins make
 * run inside it as savepoints, without acquiring again. Requests from other callers, async jobs
 * and CLI invocations queue behind it, so no request ever sees, or rolls back, another's
 * uncommitted writes. Another process opening the same file waits on SQLite's busy timeout; the
 * job runner's leases and outcomes (`beginWrite`) wait without blocking the event loop.
 */
import Database from "better-sqlite3";
import { PlugboxError } from "../../runtime/errors.js";
import { MIGRATIONS, SCHEMA_VERSION } from "./schema.js";

export const STORE_ERROR_CODES = {
  STORE_OPEN_FAILED: "usage", // the database file cannot be opened or is not a plugbox store
  STORE_TOO_NEW: "usage", // the file was written by a newer plugbox
  STORE_CLOSED: "usage", // the store was used after close()
  STORE_CORRUPT_VALUE: "internal", // a stored value cannot be read back
  STORE_BUSY: "internal", // another process held the file's write lock for longer than busyTimeoutMs
} as const;
export type StoreErrorCode = keyof typeof STORE_ERROR_CODES;
export class StoreError extends PlugboxError<StoreErrorCode> {}

export interface StoreOptions {
  /** A file path, or ":memory:". @default ":memory:" */
  path?: string;
  /** How long to wait for another process holding the file, ms. @default 5000 */
  busyTimeoutMs?: number;
}

export interface RecordRow {
  entity: string;
  id: string;
  /** Column → plugbox JSON value. */
  attributes: Record<string, unknown>;
  version: number;
}

type Release = () => void;

export class Store {
  readonly path: string;
  readonly db: Database.Database;
  #queue: Promise<void> = Promise.resolve();
  #depth = 0;
  #closed = false;
  readonly #busyTimeoutMs: number;
  readonly #statements;

  private constructor(path: string, db: Database.Database, busyTimeoutMs: number) {
    this.path = path;
    this.db = db;
    this.#busyTimeoutMs = busyTimeoutMs;
    this.#statements = {
      begin: db.prepare("BEGIN IMMEDIATE"),
      commit: db.prepare("COMMIT"),
      rollback: db.prepare("ROLLBACK"),
      get: db.prepare<[string, string], { attributes: string; version: number }>("SELECT attributes, version FROM records WHERE entity = ? AND id = ?"),
      insert: db.prepare<[string, string, string]>("INSERT INTO records (entity, id, attributes, version) VALUES (?, ?, ?, 1)"),
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

  /** Opens (and creates or migrates) a store. */
  static open(options: StoreOptions = {}): Store {
    const path = options.path ?? ":memory:";
    const busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
    if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
      throw new StoreError("STORE_OPEN_FAILED", `busyTimeoutMs must be a whole number of milliseconds, 0 or more; got ${JSON.stringify(busyTimeoutMs) ?? String(busyTimeoutMs)}`);
    }
    let db: Database.Database;
    try {
      db = new Database(path, { timeout: busyTimeoutMs });
    } catch (error) {
      throw new StoreError("STORE_OPEN_FAILED", `cannot open the store ${path}: ${(error as Error).message}`);
    }
    try {
      // A new store's pages: 8 KB holds several jobs (a job's context is a few KB) where 4 KB held
      // one, so leasing and completing a batch of jobs writes a fraction of the pages. No effect on
      // an existing file.
      db.pragma("page_size = 8192");
      if (path !== ":memory:") db.pragma("journal_mode = WAL");
      db.pragma("synchronous = NORMAL");
      db.pragma("foreign_keys = ON");
      migrate(db, path);
      return new Store(path, db, busyTimeoutMs);
    } catch (error) {
      db.close();
      if (error instanceof StoreError) throw error;
      throw new StoreError("STORE_OPEN_FAILED", `${path} is not a plugbox store: ${(error as Error).message}`);
    }
  }

  /**
   * Waits until no other request holds the store, then holds it. Call the returned function to let
   * the next one in; nested requests of the holder must not acquire again.
   */
  async acquire(): Promise<Release> {
    this.#assertOpen();
    let release!: Release;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const before = this.#queue;
    this.#queue = before.then(() => mine);
    await before;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  }

  /** Starts a transaction, or a savepoint inside the open one. Returns how to end it. */
  begin(): { commit(): void; rollback(): void } {
    this.#assertOpen();
    const level = this.#depth;
    const name = `sp${level}`;
    if (level === 0) this.#statements.begin.run();
    else this.db.exec(`SAVEPOINT ${name}`);
    this.#depth++;
    let ended = false;
    const end = (top: Database.Statement, nested: string) => {
      if (ended) return;
      // Ended only once it ran: a COMMIT that fails leaves the transaction open for the caller's rollback.
      if (level === 0) top.run();
      else this.db.exec(nested);
      ended = true;
      this.#depth--;
    };
    return {
      commit: () => end(this.#statements.commit, `RELEASE ${name}`),
      rollback: () => end(this.#statements.rollback, `ROLLBACK TO ${name}; RELEASE ${name}`),
    };
  }

  /**
   * Starts a transaction like `begin`, but while another process holds the file's write lock it
   * waits between attempts with the event loop free (a synchronous wait would stall this process's
   * sockets and timers), for up to busyTimeoutMs; then throws STORE_BUSY. For callers that hold the
   * store and no transaction.
   */
  async beginWrite(): Promise<{ commit(): void; rollback(): void }> {
    const deadline = Date.now() + this.#busyTimeoutMs;
    for (let delayMs = 1; ; delayMs = Math.min(delayMs * 2, 32)) {
      this.#assertOpen();
      // Set at prepare time (SQLite applies this pragma while compiling it), so run each time.
      this.db.pragma("busy_timeout = 0");
      try {
        return this.begin();
      } catch (error) {
        // SQLITE_BUSY, or an extended code such as SQLITE_BUSY_RECOVERY after another process died.
        if (!String((error as { code?: unknown }).code).startsWith("SQLITE_BUSY")) throw error;
        if (Date.now() >= deadline) throw new StoreError("STORE_BUSY", `another process held the write lock of ${this.path} for more than ${this.#busyTimeoutMs} ms`, { cause: error });
      } finally {
        this.db.pragma(`busy_timeout = ${this.#busyTimeoutMs}`);
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs * (0.5 + Math.random())));
    }
  }

  /** Runs `fn` in a transaction (a savepoint inside an open one): committed if it returns, rolled back if it throws. */
  transaction<T>(fn: () => T): T {
    return settle(this.begin(), fn);
  }

  /**
   * Holds the store, and runs `fn` in a transaction started with `beginWrite` (the event loop stays
   * free while another process holds the file); committed if it returns, rolled back if it throws.
   */
  async write<T>(fn: () => T): Promise<T> {
    const release = await this.acquire();
    try {
      return settle(await this.beginWrite(), fn);
    } finally {
      release();
    }
  }

  get inTransaction(): boolean {
    return this.#depth > 0;
  }

  // Records ////////////////////////////////////////////////////////////////////////////////////

  getRecord(entity: string, id: string): RecordRow | undefined {
    const row = this.#statements.get.get(entity, id);
    return row ? { entity, id, attributes: parseAttributes(row.attributes), version: row.version } : undefined;
  }

  insertRecord(entity: string, id: string, attributes: Record<string, unknown>): void {
    this.#statements.insert.run(entity, id, JSON.stringify(attributes));
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

function settle<T>(transaction: { commit(): void; rollback(): void }, fn: () => T): T {
  try {
    const result = fn();
    transaction.commit();
    return result;
  } catch (error) {
    transaction.rollback();
    throw error;
  }
}

function parseAttributes(text: string): Record<string, unknown> {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new StoreError("STORE_CORRUPT_VALUE", "a stored record's attributes are not valid JSON");
  }
}

function migrate(db: Database.Database, path: string): void {
  db.exec("CREATE TABLE IF NOT EXISTS plugbox_schema (version INTEGER NOT NULL)");
  const version = () => db.prepare<[], { version: number }>("SELECT version FROM plugbox_schema").get()?.version ?? 0;
  const tooNew = (current: number) => new StoreError("STORE_TOO_NEW", `${path} has schema version ${current}; this plugbox reads up to ${SCHEMA_VERSION}: upgrade plugbox`);
  const found = version();
  if (found > SCHEMA_VERSION) throw tooNew(found);
  if (found === SCHEMA_VERSION) return;
  // Under the write lock, from the version found under it: another process opening the same file
  // at the same moment migrates it once, and the other finds it done.
  db.transaction(() => {
    const current = version();
    if (current > SCHEMA_VERSION) throw tooNew(current);
    for (const migration of MIGRATIONS) if (migration.version > current) db.exec(migration.sql);
    if (current < SCHEMA_VERSION) {
      db.prepare("DELETE FROM plugbox_schema").run();
      db.prepare("INSERT INTO plugbox_schema (version) VALUES (?)").run(SCHEMA_VERSION);
    }
  }).immediate();
}
