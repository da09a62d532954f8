/**
 * The store's schema and its migrations. The version is a constant; the migrations move the
 * database forward inside one write transaction, so a half-migrated file cannot exist and two
 * processes opening the same file at once migrate it once.
 *
 * Records keep their attributes as one JSON object per row, in plugbox JSON: plain JSON values, and
 * typed values as `{"$type":"Money","value":…}`, `{"$type":"EntityReference","logicalName":…,"id":…}`,
 * `{"$type":"OptionSetValue","value":…}`, `{"$type":"OptionSetValueCollection","values":[…]}`,
 * `{"$type":"DateTime","value":"<ISO 8601 UTC>"}`. Guids are stored in lower case. Queries read
 * them with SQLite's JSON functions (see host/organization/query).
 */
import type Database from "better-sqlite3";
import { restoreAdvice, StoreError } from "./errors.js";

export const SCHEMA_VERSION = 4;

export const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE records (
        entity TEXT NOT NULL,
        id TEXT NOT NULL,
        attributes TEXT NOT NULL CHECK (json_valid(attributes)),
        version INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (entity, id)
      ) WITHOUT ROWID;

      CREATE TABLE relationships (
        relationship TEXT NOT NULL,
        entity1 TEXT NOT NULL,
        id1 TEXT NOT NULL,
        entity2 TEXT NOT NULL,
        id2 TEXT NOT NULL,
        PRIMARY KEY (relationship, entity1, id1, entity2, id2)
      ) WITHOUT ROWID;
      CREATE INDEX relationships_reverse ON relationships (relationship, entity2, id2);

      CREATE TABLE table_schemas (
        entity TEXT PRIMARY KEY,
        definition TEXT NOT NULL CHECK (json_valid(definition))
      ) WITHOUT ROWID;

      CREATE TABLE system_jobs (
        id TEXT PRIMARY KEY,
        sequence INTEGER NOT NULL UNIQUE,
        name TEXT NOT NULL,
        operation_type INTEGER NOT NULL,
        state_code INTEGER NOT NULL,
        status_code INTEGER NOT NULL,
        owning_extension_id TEXT,
        message_name TEXT,
        primary_entity_type TEXT,
        regarding_id TEXT,
        data TEXT NOT NULL,
        depth INTEGER NOT NULL DEFAULT 1,
        retry_count INTEGER NOT NULL DEFAULT 0,
        error_code INTEGER,
        message TEXT,
        friendly_message TEXT,
        created_on TEXT NOT NULL,
        started_on TEXT,
        completed_on TEXT,
        postpone_until TEXT,
        lease_owner TEXT,
        lease_until TEXT,
        auto_delete INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX system_jobs_ready ON system_jobs (state_code, postpone_until, sequence);

      CREATE TABLE trace_logs (
        id TEXT PRIMARY KEY,
        correlation_id TEXT,
        request_id TEXT,
        operation_id TEXT,
        type_name TEXT,
        message_name TEXT,
        primary_entity TEXT,
        stage INTEGER,
        mode INTEGER,
        depth INTEGER,
        message_block TEXT NOT NULL,
        exception_details TEXT,
        performance_ms REAL,
        created_on TEXT NOT NULL
      );
      CREATE INDEX trace_logs_correlation ON trace_logs (correlation_id);
    `,
  },
  {
    version: 2,
    // Jobs are taken oldest first among the ready ones: an index in that order.
    sql: `
      CREATE INDEX system_jobs_state_sequence ON system_jobs (state_code, sequence);
      CREATE INDEX system_jobs_lease ON system_jobs (state_code, lease_until);
    `,
  },
  {
    version: 3,
    // Superseded by system_jobs_state_sequence: no query used it, and every lease and completion paid to update it.
    sql: `DROP INDEX IF EXISTS system_jobs_ready;`,
  },
  {
    version: 4,
    // The job of a posting step or an outbox post keeps in post its context serialized for the
    // endpoint, and in data the header of it (format, size flag, length, the fields its claims read)
    // with a $type that versions before this one refuse to read. NULL for every other job.
    sql: `ALTER TABLE system_jobs ADD COLUMN post TEXT;`,
  },
];

/**
 * SQLite's `PRAGMA quick_check`: every page and index entry readable and well formed (it does not
 * compare indexes with their tables, as integrity_check does, which costs several times more).
 */
export function checkIntegrity(db: Database.Database, path: string): void {
  const problems = (db.pragma("quick_check(5)") as Array<{ quick_check: string }>).flatMap((row) => row.quick_check.split("\n"));
  if (problems.length === 1 && problems[0] === "ok") return;
  throw new StoreError("STORE_CORRUPT", `the store ${path} is damaged (SQLite's quick_check: ${problems.join("; ")}); ${restoreAdvice(path)}`);
}

/** Brings a store to this plugbox's schema version, once, under the write lock (STORE_TOO_NEW for a newer one). */
export function migrate(db: Database.Database, path: string): void {
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
