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
