/**
 * The PostgreSQL store (`--db postgres://…`, `createHost({ db: "postgres://…" })`): the same schema,
 * the same interface and the same transaction semantics as the embedded store, over the `pg` client,
 * so any number of hosts can share one database.
 *
 * One connection per store, and one request at a time holds it (`acquire`), as with SQLite: a
 * request's statements and its nested requests' savepoints run on that connection, in order. Hosts
 * are the unit of scale: each has its own connection and its own requests in flight (and a second
 * connection that only carries job announcements, LISTEN/NOTIFY). Rows a request
 * reads inside its transaction are locked (`FOR UPDATE`) so two hosts updating one record wait for
 * each other instead of losing an update (SQLite gets the same by letting one writer in at a time);
 * a wait longer than busyTimeoutMs, or a deadlock PostgreSQL ended, is STORE_BUSY.
 *
 * A connection that breaks fails the statement and the request in flight (STORE_CONNECTION_LOST,
 * nothing of the request kept: PostgreSQL rolled its transaction back); no later statement of that
 * request runs on another connection, and the next request connects again.
 */
import pg from "pg";
import { resolveStoreOptions, type StoreOptions } from "../options.js";
import { StoreHolder } from "../holder.js";
import { StoreError } from "../errors.js";
import type { Awaitable, DataStore, RecordRow, StoreLease, StoreTransaction } from "../engine.js";
import { migratePostgres, type PgQueryable } from "./schema.js";
import { PostgresSystemJobsTable } from "./system-jobs.js";
import { PostgresTraceLogsTable } from "./trace-logs.js";
import { redactUrl, toPostgresStoreError } from "./errors.js";
import { findRecordSql, toPositional } from "./sql.js";

export { redactUrl } from "./errors.js";

/** Whether a `db` names a PostgreSQL database rather than a SQLite file. */
export function isPostgresUrl(db: string): boolean {
  return /^postgres(ql)?:\/\//i.test(db);
}

/** The channel that wakes idle job runners on every host sharing the database. */
const JOBS_CHANNEL = "plugbox_jobs";
/** How long a host waits before it listens again after losing its signal connection. */
const SIGNAL_RETRY_MS = 1_000;

/** How long a connection attempt may take before the server counts as unreachable. */
const CONNECT_TIMEOUT_MS = 10_000;

export class PostgresStore implements DataStore {
  readonly engine = "postgres" as const;
  /** The connection string without its password. */
  readonly path: string;
  readonly systemJobs: PostgresSystemJobsTable;
  readonly traceLogs: PostgresTraceLogsTable;
  readonly #url: string;
  readonly #busyTimeoutMs: number;
  #client: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;
  /** Counts connections: a transaction begun on one never ends on the next. */
  #generation = 0;
  /** The generation of the open transaction's connection. */
  #transactionGeneration = 0;
  readonly #holder = new StoreHolder();
  #depth = 0;
  #closed = false;
  /** The connection that carries job announcements (LISTEN/NOTIFY), apart from any transaction. */
  #signal: Promise<pg.Client> | undefined;
  #signalRetry: ReturnType<typeof setTimeout> | undefined;
  readonly #watchers = new Set<() => void>();
  /** An announcement waiting for the one before it, which later ones join. */
  #announcing: Promise<void> | undefined;
  /** The NOTIFY on its way. */
  #notifying: Promise<void> = Promise.resolve();

  private constructor(url: string, busyTimeoutMs: number) {
    this.#url = url;
    this.path = redactUrl(url);
    this.#busyTimeoutMs = busyTimeoutMs;
    const session: PgQueryable = { query: (query, values) => this.#query(query, values) as never };
    this.systemJobs = new PostgresSystemJobsTable(session);
    this.traceLogs = new PostgresTraceLogsTable(session);
  }

  /**
   * Connects, and creates or migrates the schema (once, under an advisory lock, however many hosts
   * start together); STORE_UNREACHABLE, STORE_AUTH_FAILED, STORE_TOO_NEW or STORE_SCHEMA_CHANGED
   * when it cannot, with nothing half-migrated.
   */
  static async open(options: StoreOptions = {}): Promise<PostgresStore> {
    const { path, busyTimeoutMs } = resolveStoreOptions(options);
    const store = new PostgresStore(path, busyTimeoutMs);
    try {
      const client = await store.#connection(true);
      // Migrates under an advisory lock and checks every table against what plugbox made.
      await migratePostgres(client, store.path);
      return store;
    } catch (error) {
      await store.close();
      throw toPostgresStoreError(error, store.path, true);
    }
  }

  /** The open connection, or a new one (none while a transaction of a lost one is open). */
  async #connection(opening = false): Promise<pg.Client> {
    if (this.#closed) throw new StoreError("STORE_CLOSED", "the store was closed");
    if (this.#client) return this.#client;
    if (this.#depth > 0) throw this.#lost("the connection broke during this request's transaction");
    this.#connecting ??= (async () => {
      const client = new pg.Client({
        connectionString: this.#url,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        application_name: "plugbox",
        types: { getTypeParser: typeParser },
      });
      // Without a listener, a connection the server ends would be an uncaught error that ends the process.
      client.on("error", () => this.#forget(client));
      client.on("end", () => this.#forget(client));
      try {
        await client.connect();
        // A row another host holds is waited for this long, then STORE_BUSY (55P03).
        await client.query(`SET lock_timeout = ${this.#busyTimeoutMs}`);
      } catch (error) {
        client.end().catch(() => undefined);
        if (opening || this.#generation === 0) throw toPostgresStoreError(error, this.path, true);
        // Connected before: the server went away (a restart, a failover). The request fails; the next one tries again.
        throw new StoreError("STORE_CONNECTION_LOST", `PostgreSQL at ${this.path} cannot be reached again (${(error as Error).message}); this request failed and nothing of it was kept; the next one tries to connect again`, { cause: error });
      }
      this.#client = client;
      this.#generation++;
      return client;
    })().finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  #forget(client: pg.Client): void {
    if (this.#client === client) this.#client = undefined;
  }

  #lost(what: string): StoreError {
    return new StoreError("STORE_CONNECTION_LOST", `${what} (PostgreSQL at ${this.path}); the request failed and nothing of it was kept; the next one reconnects`);
  }

  /** Runs one statement on the store's connection; every failure is a typed StoreError. */
  async #query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig<unknown[]> | pg.QueryArrayConfig<unknown[]>, values?: unknown[]): Promise<pg.QueryResult<R>> {
    const client = await this.#connection();
    if (this.#depth > 0 && this.#transactionGeneration !== this.#generation) throw this.#lost("the connection broke during this request's transaction");
    try {
      return await client.query<R>(text as string, values);
    } catch (error) {
      throw toPostgresStoreError(error, this.path);
    }
  }

  async acquire(): Promise<StoreLease> {
    if (this.#closed) throw new StoreError("STORE_CLOSED", "the store was closed");
    return this.#holder.acquire();
  }

  get inTransaction(): boolean {
    return this.#depth > 0;
  }

  async begin(): Promise<StoreTransaction> {
    const level = this.#depth;
    const nested = level > 0;
    const name = `sp${level}`;
    if (!nested) {
      await this.#connection();
      this.#transactionGeneration = this.#generation;
    }
    await this.#query(nested ? `SAVEPOINT ${name}` : "BEGIN");
    this.#depth++;
    const generation = this.#transactionGeneration;
    let ended = false;
    const finish = () => {
      ended = true;
      this.#depth = level;
    };
    const sameConnection = () => this.#client !== undefined && this.#generation === generation;
    const commit = async () => {
      if (ended) return;
      if (!sameConnection()) {
        finish();
        throw this.#lost("the connection broke before this transaction could commit, so nothing of it was kept");
      }
      try {
        await this.#query(nested ? `RELEASE ${name}` : "COMMIT");
      } catch (error) {
        finish();
        throw error;
      }
      finish();
    };
    const rollback = async () => {
      if (ended) return;
      try {
        // A lost connection took its transaction with it: nothing is left to undo.
        if (sameConnection()) await this.#query(nested ? `ROLLBACK TO ${name}; RELEASE ${name}` : "ROLLBACK");
      } finally {
        finish();
      }
    };
    const dispose = async () => {
      try {
        await rollback();
      } catch {
        // The error that ended the block is the one the caller gets.
      }
    };
    return { commit, rollback, [Symbol.asyncDispose]: dispose };
  }

  /** Same as `begin`: PostgreSQL's writers wait on rows, not on a file, and never block the event loop. */
  beginWrite(): Promise<StoreTransaction> {
    return this.begin();
  }

  async write<T>(fn: () => Awaitable<T>): Promise<T> {
    using _lease = await this.acquire();
    await using transaction = await this.begin();
    const result = await fn();
    await transaction.commit();
    return result;
  }

  // Records ////////////////////////////////////////////////////////////////////////////////////

  async getRecord(entity: string, id: string): Promise<RecordRow | undefined> {
    // Inside a transaction the row stays locked until it ends: see the header.
    const lock = this.#depth > 0 ? " FOR UPDATE" : "";
    const { rows } = await this.#query<{ attributes: Record<string, unknown>; version: number }>(`SELECT attributes, version FROM records WHERE entity = $1 AND id = $2${lock}`, [entity, id]);
    const row = rows[0];
    return row ? { entity, id, attributes: row.attributes, version: row.version } : undefined;
  }

  async insertRecord(entity: string, id: string, attributes: Record<string, unknown>): Promise<boolean> {
    const result = await this.#query("INSERT INTO records (entity, id, attributes, version) VALUES ($1, $2, $3, 1) ON CONFLICT DO NOTHING", [entity, id, JSON.stringify(attributes)]);
    return (result.rowCount ?? 0) > 0;
  }

  async replaceRecord(entity: string, id: string, attributes: Record<string, unknown>): Promise<boolean> {
    const result = await this.#query("UPDATE records SET attributes = $1, version = version + 1 WHERE entity = $2 AND id = $3", [JSON.stringify(attributes), entity, id]);
    return (result.rowCount ?? 0) > 0;
  }

  async deleteRecord(entity: string, id: string): Promise<boolean> {
    const result = await this.#query("DELETE FROM records WHERE entity = $1 AND id = $2", [entity, id]);
    if ((result.rowCount ?? 0) === 0) return false;
    await this.#query("DELETE FROM relationships WHERE (entity1 = $1 AND id1 = $2) OR (entity2 = $1 AND id2 = $2)", [entity, id]);
    return true;
  }

  async hasRecords(entity: string): Promise<boolean> {
    return (await this.#query("SELECT 1 FROM records WHERE entity = $1 LIMIT 1", [entity])).rows.length > 0;
  }

  async allRecords(): Promise<RecordRow[]> {
    const { rows } = await this.#query<RecordRow>("SELECT entity, id, attributes, version FROM records ORDER BY entity, id");
    return rows;
  }

  async selectRows(sql: string, params: Record<string, unknown>): Promise<Array<Record<string, unknown>>> {
    const { text, values } = toPositional(sql, params);
    return (await this.#query(text, values)).rows;
  }

  async findRecordId(entity: string, values: Record<string, unknown>): Promise<string | undefined> {
    const { text, values: bound } = findRecordSql(entity, values);
    const { rows } = await this.#query<{ id: string }>(text, bound);
    return rows[0]?.id;
  }

  async link(relationship: string, entity1: string, id1: string, entity2: string, id2: string): Promise<void> {
    await this.#query("INSERT INTO relationships (relationship, entity1, id1, entity2, id2) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING", [relationship, entity1, id1, entity2, id2]);
  }

  async unlink(relationship: string, entity1: string, id1: string, entity2: string, id2: string): Promise<boolean> {
    const result = await this.#query("DELETE FROM relationships WHERE relationship = $1 AND entity1 = $2 AND id1 = $3 AND entity2 = $4 AND id2 = $5", [relationship, entity1, id1, entity2, id2]);
    return (result.rowCount ?? 0) > 0;
  }

  async isLinked(relationship: string, entity1: string, id1: string, entity2: string, id2: string): Promise<boolean> {
    const { rows } = await this.#query("SELECT 1 FROM relationships WHERE relationship = $1 AND entity1 = $2 AND id1 = $3 AND entity2 = $4 AND id2 = $5", [relationship, entity1, id1, entity2, id2]);
    return rows.length > 0;
  }

  // Job announcements /////////////////////////////////////////////////////////////////////////

  /**
   * NOTIFY on the signal connection: every host listening wakes its job runner. One at a time (a
   * connection runs one statement at a time), and announcements made while one waits are one. Best
   * effort: the other hosts poll too.
   */
  announceJobs(): Promise<void> {
    if (this.#announcing) return this.#announcing;
    const announcing = (async () => {
      // The announcement before this one may still be on its way: this one follows it.
      await this.#notifying;
      // Sent from here on: an announcement asked for now is one of its own, after this one.
      this.#announcing = undefined;
      const notify = this.#signalClient().then((client) => client.query(`NOTIFY ${JOBS_CHANNEL}`));
      this.#notifying = notify.then(
        () => undefined,
        () => undefined, // the other hosts find the jobs at their next poll (pollMs)
      );
      await this.#notifying;
    })();
    this.#announcing = announcing;
    return announcing;
  }

  watchJobs(onAnnounced: () => void): () => void {
    this.#watchers.add(onAnnounced);
    this.#signalClient().catch(() => this.#retrySignal());
    return () => void this.#watchers.delete(onAnnounced);
  }

  #signalClient(): Promise<pg.Client> {
    if (this.#closed) return Promise.reject(new StoreError("STORE_CLOSED", "the store was closed"));
    const connecting: Promise<pg.Client> = (this.#signal ??= (async () => {
      const client = new pg.Client({ connectionString: this.#url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: "plugbox-signal" });
      const lost = () => {
        if (this.#signal !== connecting) return;
        this.#signal = undefined;
        client.end().catch(() => undefined);
        if (this.#watchers.size > 0) this.#retrySignal();
      };
      client.on("error", lost);
      client.on("end", lost);
      client.on("notification", () => this.#announced());
      await client.connect();
      await client.query(`LISTEN ${JOBS_CHANNEL}`);
      // Jobs announced while no connection listened are looked for now.
      this.#announced();
      return client;
    })().catch((error: unknown) => {
      if (this.#signal === connecting) this.#signal = undefined;
      throw error;
    }));
    return connecting;
  }

  #announced(): void {
    for (const watcher of this.#watchers) watcher();
  }

  /** Listens again after a second (the server restarting, say); the runners poll meanwhile. */
  #retrySignal(): void {
    if (this.#closed || this.#signalRetry) return;
    this.#signalRetry = setTimeout(() => {
      this.#signalRetry = undefined;
      if (this.#watchers.size > 0) this.#signalClient().catch(() => this.#retrySignal());
    }, SIGNAL_RETRY_MS);
    this.#signalRetry.unref?.();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#signalRetry);
    const signal = this.#signal;
    this.#signal = undefined;
    await signal?.then((client) => client.end()).catch(() => undefined);
    const client = this.#client ?? (await this.#connecting?.catch(() => undefined));
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }
}

/** bigint and numeric as JavaScript numbers (counts and sums; plugbox's values fit), the rest as `pg` reads them. */
function typeParser(oid: number, format?: string): (text: string) => unknown {
  if (oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC) return Number;
  return pg.types.getTypeParser(oid, format as "text") as (text: string) => unknown;
}
