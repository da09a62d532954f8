/**
 * Plug-in trace logs (Dataverse's PluginTraceLog): one row per execution, 10 KB of trace at most,
 * kept according to the setting Off, Exceptions or All. They are written after the request's
 * transaction has ended, so they survive a rollback.
 */
import type { Store } from "../store/store.js";

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

export class TraceLog {
  readonly #store: Store;
  constructor(store: Store) {
    this.#store = store;
  }

  /** The rows the setting keeps: none (Off), those of failed executions (Exceptions), or all. */
  kept(rows: readonly TraceRow[], setting: "Off" | "Exceptions" | "All"): readonly TraceRow[] {
    if (setting === "Off") return [];
    return setting === "All" ? rows : rows.filter((r) => r.exceptionDetails !== null);
  }

  /** Writes the rows the setting keeps, in a transaction (a savepoint of the caller's, if it has one open). */
  write(rows: readonly TraceRow[], setting: "Off" | "Exceptions" | "All"): void {
    const kept = this.kept(rows, setting);
    if (kept.length > 0) this.#store.transaction(() => this.insert(kept));
  }

  /** Inserts rows as they are; the caller holds the store and a transaction. */
  insert(rows: readonly TraceRow[]): void {
    const insert = this.#store.db.prepare(
      `INSERT INTO trace_logs (id, correlation_id, request_id, operation_id, type_name, message_name, primary_entity, stage, mode, depth, message_block, exception_details, performance_ms, created_on)
       VALUES (@id, @correlationId, @requestId, @operationId, @typeName, @messageName, @primaryEntity, @stage, @mode, @depth, @messageBlock, @exceptionDetails, @performanceMs, @createdOn)`,
    );
    for (const row of rows) insert.run(row);
  }

  list(filter: { correlationId?: string } = {}): TraceRow[] {
    const rows = this.#store.db
      .prepare(
        `SELECT id, correlation_id AS correlationId, request_id AS requestId, operation_id AS operationId, type_name AS typeName, message_name AS messageName,
                primary_entity AS primaryEntity, stage, mode, depth, message_block AS messageBlock, exception_details AS exceptionDetails,
                performance_ms AS performanceMs, created_on AS createdOn
         FROM trace_logs ${filter.correlationId ? "WHERE correlation_id = ?" : ""} ORDER BY created_on, rowid`,
      )
      .all(...(filter.correlationId ? [filter.correlationId] : [])) as TraceRow[];
    return rows;
  }
}
