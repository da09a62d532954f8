/**
 * The trace_logs table on PostgreSQL, with the rows of SQLite's (../trace-logs.ts). Rows are listed
 * by created_on, then in the order they were written (the `sequence` identity, as SQLite's rowid).
 */
import type { TraceLogsStore } from "../engine.js";
import type { TraceRow } from "../trace-logs.js";
import { prepared } from "./prepared.js";
import type { PgQueryable } from "./schema.js";

const COLUMNS = `id, correlation_id AS "correlationId", request_id AS "requestId", operation_id AS "operationId", type_name AS "typeName",
                 message_name AS "messageName", primary_entity AS "primaryEntity", stage, mode, depth, message_block AS "messageBlock",
                 exception_details AS "exceptionDetails", performance_ms AS "performanceMs", created_on AS "createdOn"`;

/** Each TraceRow field, its column and its array type: insert sends one array per column. */
const FIELDS = [
  ["id", "id", "text"],
  ["correlationId", "correlation_id", "text"],
  ["requestId", "request_id", "text"],
  ["operationId", "operation_id", "text"],
  ["typeName", "type_name", "text"],
  ["messageName", "message_name", "text"],
  ["primaryEntity", "primary_entity", "text"],
  ["stage", "stage", "integer"],
  ["mode", "mode", "integer"],
  ["depth", "depth", "integer"],
  ["messageBlock", "message_block", "text"],
  ["exceptionDetails", "exception_details", "text"],
  ["performanceMs", "performance_ms", "float8"],
  ["createdOn", "created_on", "text"],
] as const satisfies ReadonlyArray<readonly [keyof TraceRow, string, string]>;

// The rows in the order given (WITH ORDINALITY), so the identity numbers them in that order.
const INSERT = `INSERT INTO trace_logs (${FIELDS.map(([, column]) => column).join(", ")})
  SELECT ${FIELDS.map(([, column]) => column).join(", ")}
  FROM unnest(${FIELDS.map(([, , type], i) => `$${i + 1}::${type}[]`).join(", ")}) WITH ORDINALITY AS given(${FIELDS.map(([, column]) => column).join(", ")}, position)
  ORDER BY position`;

export class PostgresTraceLogsTable implements TraceLogsStore {
  readonly #db: PgQueryable;
  constructor(db: PgQueryable) {
    this.#db = db;
  }

  /** Inserts rows as they are, in one statement; the caller holds the store and a transaction. */
  async insert(rows: readonly TraceRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.#db.query(
      prepared(
        INSERT,
        FIELDS.map(([field]) => rows.map((row) => row[field])),
      ),
    );
  }

  async list(filter: { correlationId?: string } = {}): Promise<TraceRow[]> {
    const { rows } = filter.correlationId
      ? await this.#db.query<TraceRow>(prepared(`SELECT ${COLUMNS} FROM trace_logs WHERE correlation_id = $1 ORDER BY created_on, sequence`, [filter.correlationId]))
      : await this.#db.query<TraceRow>(prepared(`SELECT ${COLUMNS} FROM trace_logs ORDER BY created_on, sequence`));
    return rows;
  }
}
