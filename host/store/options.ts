/** A store's options: defaults, frozen, and the check of each (the options schema, runtime/schema.ts). */
import { flag, formatPath, integer, parseOptions, shown, strictOptions, v, withDefaults } from "../../runtime/schema.js";
import { StoreError } from "./errors.js";

export interface StoreOptions {
  /** A SQLite file path, ":memory:", or a PostgreSQL connection string (`postgres://user:password@host:5432/database`). @default ":memory:" */
  path?: string;
  /** How long to wait for another process holding the file, ms. @default 5000 */
  busyTimeoutMs?: number;
  /**
   * Run SQLite's `PRAGMA quick_check` when an existing file opens, and refuse a damaged one with
   * STORE_CORRUPT. It reads the whole file (about 1 ms per MB here): false skips it for a large
   * store that is checked otherwise. @default true
   */
  quickCheck?: boolean;
  /** The most the store file may grow to, bytes (SQLite's max_page_count); past it writes fail with STORE_FULL. @default no limit */
  maxSizeBytes?: number;
}

/** The store's defaults, frozen; `Store.open` checks every option against them. */
export const storeDefaults = Object.freeze({ path: ":memory:", busyTimeoutMs: 5_000, quickCheck: true, maxSizeBytes: undefined as number | undefined });

/** The store's options as a schema; `createHost` checks its `db`, `busyTimeoutMs` and `storeOptions` with the same entries. */
export const storeOptionEntries = {
  path: v.optional(v.pipe(v.string((issue) => `must be a file path, ":memory:" or a postgres:// connection string; got ${shown(issue.input)}`), v.minLength(1, `must be a file path, ":memory:" or a postgres:// connection string; got ""`))),
  busyTimeoutMs: v.optional(integer(0, Number.MAX_SAFE_INTEGER, "must be a whole number of milliseconds, 0 or more")),
  quickCheck: v.optional(flag()),
  maxSizeBytes: v.optional(integer(65_536, Number.MAX_SAFE_INTEGER, "must be a whole number of bytes, 65536 or more")),
};
const storeOptionsSchema = strictOptions(storeOptionEntries);

/** Fills in defaults and checks every option; throws STORE_OPEN_FAILED naming the option and the rule. */
export function resolveStoreOptions(options: StoreOptions = {}): Required<Omit<StoreOptions, "maxSizeBytes">> & Pick<StoreOptions, "maxSizeBytes"> {
  const given = parseOptions(storeOptionsSchema, options, (path, message) => new StoreError("STORE_OPEN_FAILED", `${formatPath("", path) || "store options"} ${message}`));
  return withDefaults<Required<Omit<StoreOptions, "maxSizeBytes">> & Pick<StoreOptions, "maxSizeBytes">>(storeDefaults, given);
}
