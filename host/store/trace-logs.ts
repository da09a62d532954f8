/** The trace_logs table's SQL: plug-in trace logs (Dataverse's PluginTraceLog), one row per execution. */
import type Database from "better-sqlite3";

export interface TraceRow {
  id: string;
  correlationId: string;
  requestId: string;
  operationId: string;
  typeName: string;
  messageName: string;
  primaryEntity: string;
  stage: number;
  mode: number;
  depth: number;
  messageBlock: string;
  exceptionDetails: string | null;
  performanceMs: number;
  createdOn: string;
}

const COLUMNS = `id, correlation_id AS correlationId, request_id AS requestId, operation_id AS operationId, type_name AS typeName, message_name AS messageName,
                primary_entity AS primaryEntity, stage, mode, depth, message_block AS messageBlock, exception_details AS exceptionDetails,
                performance_ms AS performanceMs, created_on AS createdOn`;

export class TraceLogsTable {
  readonly #db: Database.Database;
  #insert: Database.Statement<TraceRow> | undefined;
  #all: Database.Statement<[], TraceRow> | undefined;
  #byCorrelation: Database.Statement<[string], TraceRow> | undefined;

  constructor(db: Database.Database) {
    this.#db = db;
  }

  /** Inserts rows as they are; the caller holds the store and a transaction. */
  insert(rows: readonly TraceRow[]): void {
    this.#insert ??= this.#db.prepare<TraceRow>(
      `INSERT INTO trace_logs (id, correlation_id, request_id, operation_id, type_name, message_name, primary_entity, stage, mode, depth, message_block, exception_details, performance_ms, created_on)
       VALUES (@id, @correlationId, @requestId, @operationId, @typeName, @messageName, @primaryEntity, @stage, @mode, @depth, @messageBlock, @exceptionDetails, @performanceMs, @createdOn)`,
    );
    for (const row of rows) this.#insert.run(row);
  }

  list(filter: { correlationId?: string } = {}): TraceRow[] {
    if (filter.correlationId) {
      this.#byCorrelation ??= this.#db.prepare<[string], TraceRow>(`SELECT ${COLUMNS} FROM trace_logs WHERE correlation_id = ? ORDER BY created_on, rowid`);
      return this.#byCorrelation.all(filter.correlationId);
    }
    this.#all ??= this.#db.prepare<[], TraceRow>(`SELECT ${COLUMNS} FROM trace_logs ORDER BY created_on, rowid`);
    return this.#all.all();
  }
}
