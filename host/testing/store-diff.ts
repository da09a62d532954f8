/**
 * `storeDiff(before, after)`: what changed between two snapshots of a store's records, record by
 * record and column by column, with a `toString()` a failing test can print.
 */
import { toPlain } from "../../sdk/codec.js";

/** Records by table, then id, then column. */
export type StoreRecords = Record<string, Record<string, Record<string, unknown>>>;

/** A snapshot: `{ records }` (as a test host's `snapshot()` gives it) or the records map itself (`TestHost.organization.snapshot()`). */
export type StoreSnapshot = { records: StoreRecords } | StoreRecords;

export interface StoreDiffOptions {
  /** Columns left out of the comparison, e.g. `["modifiedon", "versionnumber"]`. */
  ignoreColumns?: readonly string[];
}

export interface RecordDiff {
  table: string;
  id: string;
  /** The record's columns: all of them for an added or removed record, those that changed otherwise. */
  columns: Record<string, { before: unknown; after: unknown }>;
}

export interface StoreDiff {
  added: RecordDiff[];
  removed: RecordDiff[];
  changed: RecordDiff[];
  /** True when nothing was added, removed or changed. */
  readonly empty: boolean;
  /** One line per record, then one per column: `+ task 0000…1 { subject: "Welcome Contoso" }`, `~ account … name: "A" -> "B"`. */
  toString(): string;
}

function recordsOf(snapshot: StoreSnapshot): StoreRecords {
  const records = (snapshot as { records?: unknown }).records;
  return records !== null && typeof records === "object" && !Array.isArray(records) ? (records as StoreRecords) : (snapshot as StoreRecords);
}

/** A value as text for comparing and printing: SDK values and dates by their plugbox JSON. */
function text(value: unknown): string {
  return value === undefined ? "undefined" : JSON.stringify(toPlain(value));
}

export function storeDiff(before: StoreSnapshot, after: StoreSnapshot, options: StoreDiffOptions = {}): StoreDiff {
  const ignored = new Set(options.ignoreColumns ?? []);
  const a = recordsOf(before);
  const b = recordsOf(after);
  const added: RecordDiff[] = [];
  const removed: RecordDiff[] = [];
  const changed: RecordDiff[] = [];
  const tables = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  for (const table of tables) {
    const was = a[table] ?? {};
    const is = b[table] ?? {};
    for (const id of [...new Set([...Object.keys(was), ...Object.keys(is)])].sort()) {
      const old = was[id];
      const now = is[id];
      const columns: RecordDiff["columns"] = {};
      for (const column of [...new Set([...Object.keys(old ?? {}), ...Object.keys(now ?? {})])].sort()) {
        if (ignored.has(column)) continue;
        const from = old?.[column];
        const to = now?.[column];
        if (old && now && text(from) === text(to)) continue;
        columns[column] = { before: from, after: to };
      }
      if (!old) added.push({ table, id, columns });
      else if (!now) removed.push({ table, id, columns });
      else if (Object.keys(columns).length > 0) changed.push({ table, id, columns });
    }
  }
  return {
    added,
    removed,
    changed,
    get empty() {
      return added.length + removed.length + changed.length === 0;
    },
    toString() {
      return diffText(added, removed, changed);
    },
  };
}

function diffText(added: RecordDiff[], removed: RecordDiff[], changed: RecordDiff[]): string {
  if (added.length + removed.length + changed.length === 0) return "no records added, removed or changed";
  const lines: string[] = [];
  const values = (record: RecordDiff, side: "before" | "after") => Object.entries(record.columns).map(([column, value]) => `${column}: ${text(value[side])}`);
  for (const record of added) lines.push(`+ ${record.table} ${record.id}`, ...values(record, "after").map((line) => `    ${line}`));
  for (const record of removed) lines.push(`- ${record.table} ${record.id}`, ...values(record, "before").map((line) => `    ${line}`));
  for (const record of changed) {
    lines.push(`~ ${record.table} ${record.id}`);
    for (const [column, { before, after }] of Object.entries(record.columns)) lines.push(`    ${column}: ${text(before)} -> ${text(after)}`);
  }
  return lines.join("\n");
}
