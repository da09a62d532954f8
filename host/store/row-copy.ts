/**
 * Every row of the store's data tables, copied out and written back: how a test host comes back to
 * a snapshot whose held savepoint an earlier snapshot's restore let go (plugbox/testing).
 */
import type Database from "better-sqlite3";

/** The tables that hold data (the schema's own bookkeeping aside): what a copy of the rows takes. */
const DATA_TABLES = ["records", "relationships", "system_jobs", "trace_logs", "table_schemas"] as const;

/** Every row of the data tables, as `copyRows` took them. */
export type StoreRowsCopy = ReadonlyArray<{ table: string; columns: number; rows: unknown[][] }>;

/** Every row of the data tables, as it is now: for `rowsWriter` to put back. */
export function copyRows(db: Database.Database): StoreRowsCopy {
  return DATA_TABLES.map((table) => {
    const select = db.prepare(`SELECT * FROM main.${table}`).raw();
    return { table, columns: select.columns().length, rows: select.all() as unknown[][] };
  });
}

/** A function that replaces every row of the data tables with `copy`, in one transaction; its statements prepared once. */
export function rowsWriter(db: Database.Database, copy: StoreRowsCopy): () => void {
  const tables = copy.map(({ table, columns, rows }) => ({
    clear: db.prepare(`DELETE FROM main.${table}`),
    insert: db.prepare(`INSERT INTO main.${table} VALUES (${Array.from({ length: columns }, () => "?").join(", ")})`),
    rows,
  }));
  return db.transaction(() => {
    for (const { clear, insert, rows } of tables) {
      clear.run();
      for (const row of rows) insert.run(...row);
    }
  });
}
