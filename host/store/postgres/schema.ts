/**
 * The PostgreSQL store's schema: the same tables and columns as SQLite's (../schema.ts) at the same
 * version, with PostgreSQL's types.
 *
 * - `records.attributes` and `table_schemas.definition` are `json` (not `jsonb`: json keeps the
 *   text as written, so an object's keys stay in their order), checked as JSON on the way in as
 *   SQLite's `json_valid` checks do.
 * - Ids and timestamps are `text`. Timestamps are ISO 8601 UTC as `Date.toISOString()` writes them,
 *   exactly as SQLite keeps them: they compare and sort as text. Every text column is
 *   `COLLATE "C"`: it compares bytes, as SQLite's BINARY does, whatever the database's locale (and
 *   faster than a linguistic collation).
 * - SQLite's INTEGER columns are `integer`, but for `system_jobs.error_code` (a plug-in's own
 *   number, as wide as it likes: `bigint`); REAL is `double precision`.
 * - `system_jobs.sequence` is an identity: SQLite's `max(sequence) + 1` would race between hosts.
 * - `trace_logs.sequence` is an identity too: it orders the rows written in the same millisecond,
 *   as SQLite's rowid does.
 *
 * `migratePostgres` moves a database forward in one transaction under an advisory lock: DDL is
 * transactional in PostgreSQL, so a half-migrated database cannot exist, and hosts starting together
 * migrate it once.
 */
import type pg from "pg";
import { SCHEMA_VERSION } from "../schema.js";
import { StoreError } from "../errors.js";

/** One connection (a pg.Client or a pool's client): a transaction's statements must share it. */
export interface PgQueryable {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the row type is the caller's, as in pg's own signature
  query<R extends pg.QueryResultRow = any>(query: string | pg.QueryConfig<unknown[]> | pg.QueryArrayConfig<unknown[]>, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

export interface PostgresMigration {
  version: number;
  sql: string;
}

/**
 * PostgreSQL's migrations. PostgreSQL support starts at schema version 4: its first entry creates
 * the version-4 schema whole, and a database with no plugbox_schema row starts there.
 *
 * A future schema version N adds an entry `{ version: N, sql }` to SQLite's MIGRATIONS (../schema.ts)
 * and one here, each in its engine's dialect, raises SCHEMA_VERSION to N, and updates
 * POSTGRES_COLUMNS below to the columns at version N (the entries themselves never change once
 * released: a store of an older version replays them).
 */
export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 4,
    sql: `
      CREATE TABLE records (
        entity text COLLATE "C" NOT NULL,
        id text COLLATE "C" NOT NULL,
        attributes json NOT NULL,
        version integer NOT NULL DEFAULT 1,
        PRIMARY KEY (entity, id)
      );

      CREATE TABLE relationships (
        relationship text COLLATE "C" NOT NULL,
        entity1 text COLLATE "C" NOT NULL,
        id1 text COLLATE "C" NOT NULL,
        entity2 text COLLATE "C" NOT NULL,
        id2 text COLLATE "C" NOT NULL,
        PRIMARY KEY (relationship, entity1, id1, entity2, id2)
      );
      CREATE INDEX relationships_reverse ON relationships (relationship, entity2, id2);

      CREATE TABLE table_schemas (
        entity text COLLATE "C" PRIMARY KEY,
        definition json NOT NULL
      );

      CREATE TABLE system_jobs (
        id text COLLATE "C" PRIMARY KEY,
        sequence bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        name text COLLATE "C" NOT NULL,
        operation_type integer NOT NULL,
        state_code integer NOT NULL,
        status_code integer NOT NULL,
        owning_extension_id text COLLATE "C",
        message_name text COLLATE "C",
        primary_entity_type text COLLATE "C",
        regarding_id text COLLATE "C",
        data text COLLATE "C" NOT NULL,
        depth integer NOT NULL DEFAULT 1,
        retry_count integer NOT NULL DEFAULT 0,
        error_code bigint,
        message text COLLATE "C",
        friendly_message text COLLATE "C",
        created_on text COLLATE "C" NOT NULL,
        started_on text COLLATE "C",
        completed_on text COLLATE "C",
        postpone_until text COLLATE "C",
        lease_owner text COLLATE "C",
        lease_until text COLLATE "C",
        auto_delete integer NOT NULL DEFAULT 0,
        post text COLLATE "C"
      );
      CREATE INDEX system_jobs_state_sequence ON system_jobs (state_code, sequence);
      CREATE INDEX system_jobs_lease ON system_jobs (state_code, lease_until);

      CREATE TABLE trace_logs (
        id text COLLATE "C" PRIMARY KEY,
        sequence bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        correlation_id text COLLATE "C",
        request_id text COLLATE "C",
        operation_id text COLLATE "C",
        type_name text COLLATE "C",
        message_name text COLLATE "C",
        primary_entity text COLLATE "C",
        stage integer,
        mode integer,
        depth integer,
        message_block text COLLATE "C" NOT NULL,
        exception_details text COLLATE "C",
        performance_ms double precision,
        created_on text COLLATE "C" NOT NULL
      );
      CREATE INDEX trace_logs_correlation ON trace_logs (correlation_id);
    `,
  },
];

// Shorthands for POSTGRES_COLUMNS: a column as describeColumn tells it.
const TEXT = 'text collate "C" not null';
const TEXT_NULL = 'text collate "C" null';
const INT = "integer not null";
const INT_NULL = "integer null";
const IDENTITY = "bigint generated always as identity not null";

/**
 * Every table's columns at SCHEMA_VERSION, as `checkPostgresSchema` finds them in
 * information_schema (what migrating an empty database makes: a test holds the two together).
 */
export const POSTGRES_COLUMNS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  plugbox_schema: { version: INT },
  records: { entity: TEXT, id: TEXT, attributes: "json not null", version: INT },
  relationships: { relationship: TEXT, entity1: TEXT, id1: TEXT, entity2: TEXT, id2: TEXT },
  table_schemas: { entity: TEXT, definition: "json not null" },
  system_jobs: {
    id: TEXT,
    sequence: IDENTITY,
    name: TEXT,
    operation_type: INT,
    state_code: INT,
    status_code: INT,
    owning_extension_id: TEXT_NULL,
    message_name: TEXT_NULL,
    primary_entity_type: TEXT_NULL,
    regarding_id: TEXT_NULL,
    data: TEXT,
    depth: INT,
    retry_count: INT,
    error_code: "bigint null",
    message: TEXT_NULL,
    friendly_message: TEXT_NULL,
    created_on: TEXT,
    started_on: TEXT_NULL,
    completed_on: TEXT_NULL,
    postpone_until: TEXT_NULL,
    lease_owner: TEXT_NULL,
    lease_until: TEXT_NULL,
    auto_delete: INT,
    post: TEXT_NULL,
  },
  trace_logs: {
    id: TEXT,
    sequence: IDENTITY,
    correlation_id: TEXT_NULL,
    request_id: TEXT_NULL,
    operation_id: TEXT_NULL,
    type_name: TEXT_NULL,
    message_name: TEXT_NULL,
    primary_entity: TEXT_NULL,
    stage: INT_NULL,
    mode: INT_NULL,
    depth: INT_NULL,
    message_block: TEXT,
    exception_details: TEXT_NULL,
    performance_ms: "double precision null",
    created_on: TEXT,
  },
};

/** The advisory lock migrations run under: "plugbox!" in ASCII, read as a 64-bit integer. */
export const MIGRATION_LOCK_KEY = "8100978916626233377";

interface ColumnRow {
  table_name: string;
  column_name: string;
  data_type: string;
  collation_name: string | null;
  is_nullable: "YES" | "NO";
  identity_generation: string | null;
}

function describeColumn(row: ColumnRow): string {
  const collation = row.collation_name === null ? "" : ` collate "${row.collation_name}"`;
  const identity = row.identity_generation === null ? "" : ` generated ${row.identity_generation.toLowerCase()} as identity`;
  return `${row.data_type}${collation}${identity} ${row.is_nullable === "YES" ? "null" : "not null"}`;
}

/**
 * Compares every table's columns (name, type, collation, identity, nullability) with what plugbox
 * made at SCHEMA_VERSION; STORE_SCHEMA_CHANGED names each difference and what to do. Tables are
 * looked for in the connection's current schema (its search_path's first), as plugbox's statements
 * find them. `migratePostgres` runs it before it commits.
 */
export async function checkPostgresSchema(client: PgQueryable, where: string): Promise<void> {
  const tables = Object.keys(POSTGRES_COLUMNS);
  const { rows } = await client.query<ColumnRow>(
    `SELECT table_name, column_name, data_type, collation_name, is_nullable, identity_generation
     FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ANY($1::text[])`,
    [tables],
  );
  const differences: string[] = [];
  for (const table of tables) {
    const expected = POSTGRES_COLUMNS[table]!;
    const found = new Map(rows.filter((row) => row.table_name === table).map((row) => [row.column_name, describeColumn(row)]));
    if (found.size === 0) {
      differences.push(`table ${table} is missing`);
      continue;
    }
    for (const [column, want] of Object.entries(expected)) {
      const have = found.get(column);
      if (have === undefined) differences.push(`table ${table}, column ${column}: expected ${want}, found no such column`);
      else if (have !== want) differences.push(`table ${table}, column ${column}: expected ${want}, found ${have}`);
    }
    for (const [column, have] of found) if (!(column in expected)) differences.push(`table ${table}, column ${column}: expected no such column, found ${have}`);
  }
  if (differences.length === 0) return;
  throw new StoreError(
    "STORE_SCHEMA_CHANGED",
    `the PostgreSQL store ${where} is not as plugbox made it (another tool changed it): ${differences.join("; ")}. ` +
      `Nothing was migrated. Restore the table as plugbox made it (from a backup of the database), or point --db at another database`,
  );
}

/** pg's error for a failed statement (a DatabaseError, with an SQLSTATE code), not a broken connection's. */
function isStatementError(error: unknown): error is Error & { code: string } {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof Error && typeof code === "string" && /^[0-9A-Z]{5}$/.test(code);
}

/**
 * Brings a database to this plugbox's schema version, in one transaction under the advisory lock
 * MIGRATION_LOCK_KEY: read the version (plugbox_schema, created if missing), refuse a newer one
 * (STORE_TOO_NEW), apply the missing migrations, check every table (checkPostgresSchema), record the
 * version, commit. A failure anywhere rolls all of it back. Hosts starting together wait for the
 * lock in turn: the first migrates, the others find it done.
 *
 * A database with a table named like one of plugbox's but no plugbox_schema version is refused
 * (STORE_OPEN_FAILED): it is some other application's, or a plugbox store whose version row was
 * removed; plugbox will not guess. Tables of other names may live beside plugbox's.
 *
 * `migrations` is for tests (a migration that fails midway); it defaults to POSTGRES_MIGRATIONS.
 */
export async function migratePostgres(client: PgQueryable, where: string, migrations: readonly PostgresMigration[] = POSTGRES_MIGRATIONS): Promise<void> {
  const target = migrations.at(-1)?.version ?? SCHEMA_VERSION;
  // READ COMMITTED whatever the database's default: each statement after the lock must see what the
  // host that held it before committed.
  await client.query("BEGIN ISOLATION LEVEL READ COMMITTED");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1::bigint)", [MIGRATION_LOCK_KEY]);
    const current = await readVersion(client, where);
    if (current > target) {
      throw new StoreError("STORE_TOO_NEW", `the PostgreSQL store ${where} has schema version ${current}; this plugbox reads up to ${target}: upgrade plugbox`);
    }
    if (current !== 0 && current < (migrations[0]?.version ?? 0)) {
      throw new StoreError("STORE_OPEN_FAILED", `the PostgreSQL store ${where} has schema version ${current}, older than any PostgreSQL store plugbox made; point --db at another database`);
    }
    for (const migration of migrations) {
      if (migration.version <= current) continue;
      try {
        await client.query(migration.sql);
      } catch (error) {
        if (!isStatementError(error)) throw error;
        throw new StoreError("STORE_OPEN_FAILED", `could not migrate the PostgreSQL store ${where} to schema version ${migration.version} (PostgreSQL: ${error.message} [${error.code}]); nothing was changed`, { cause: error });
      }
    }
    await checkPostgresSchema(client, where);
    if (current !== target) {
      await client.query("DELETE FROM plugbox_schema");
      await client.query("INSERT INTO plugbox_schema (version) VALUES ($1)", [target]);
    }
    await client.query("COMMIT");
  } catch (error) {
    // The transaction is undone; if the connection broke, the server undoes it anyway.
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}

/** The version in plugbox_schema (0 for a database plugbox never used), creating the table if missing; under the lock. */
async function readVersion(client: PgQueryable, where: string): Promise<number> {
  const { rows: found } = await client.query<{ name: string }>(
    "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ANY($1::text[]) ORDER BY table_name",
    [Object.keys(POSTGRES_COLUMNS)],
  );
  const names = found.map((row) => row.name);
  const version = names.includes("plugbox_schema")
    ? ((await client.query<{ version: number }>("SELECT max(version) AS version FROM plugbox_schema")).rows[0]?.version ?? 0)
    : 0;
  const theirs = names.filter((name) => name !== "plugbox_schema");
  if (version === 0 && theirs.length > 0) {
    throw new StoreError(
      "STORE_OPEN_FAILED",
      `the PostgreSQL database ${where} holds ${theirs.length === 1 ? "a table" : "tables"} named like plugbox's (${theirs.join(", ")}) but no plugbox schema version: ` +
        `it is not a plugbox store, or its plugbox_schema table was emptied or dropped; point --db at another database (an empty one, or one without tables of these names), or restore the store from a backup`,
    );
  }
  if (!names.includes("plugbox_schema")) await client.query("CREATE TABLE plugbox_schema (version integer NOT NULL)");
  return version;
}
