/**
 * Plug-in trace logs (Dataverse's PluginTraceLog): one row per execution, 10 KB of trace at most,
 * kept according to the setting Off, Exceptions or All. They are written after the request's
 * transaction has ended, so they survive a rollback.
 */
import type { Store } from "../store/store.js";
import type { TraceRow } from "../store/trace-logs.js";

export type { TraceRow } from "../store/trace-logs.js";

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
    this.#store.traceLogs.insert(rows);
  }

  list(filter: { correlationId?: string } = {}): TraceRow[] {
    return this.#store.traceLogs.list(filter);
  }
}
