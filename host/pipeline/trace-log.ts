/**
 * Plug-in trace logs (Dataverse's PluginTraceLog): one row per execution, 10 KB of trace at most,
 * kept according to the setting Off, Exceptions or All. They are written after the request's
 * transaction has ended, so they survive a rollback.
 */
import type { DataStore } from "../store/engine.js";
import type { TraceRow } from "../store/trace-logs.js";

export type { TraceRow } from "../store/trace-logs.js";

export class TraceLog {
  readonly #store: DataStore;
  constructor(store: DataStore) {
    this.#store = store;
  }

  /** The rows the setting keeps: none (Off), those of failed executions (Exceptions), or all. */
  kept(rows: readonly TraceRow[], setting: "Off" | "Exceptions" | "All"): readonly TraceRow[] {
    if (setting === "Off") return [];
    return setting === "All" ? rows : rows.filter((r) => r.exceptionDetails !== null);
  }

  /** Writes the rows the setting keeps; the caller holds the store and a transaction. */
  async write(rows: readonly TraceRow[], setting: "Off" | "Exceptions" | "All"): Promise<void> {
    const kept = this.kept(rows, setting);
    if (kept.length > 0) await this.insert(kept);
  }

  /** Inserts rows as they are; the caller holds the store and a transaction. */
  async insert(rows: readonly TraceRow[]): Promise<void> {
    await this.#store.traceLogs.insert(rows);
  }

  async list(filter: { correlationId?: string } = {}): Promise<TraceRow[]> {
    return this.#store.traceLogs.list(filter);
  }
}
