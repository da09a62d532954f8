/** A store's options: defaults, frozen, and the check of each. */
import { StoreError } from "./errors.js";

export interface StoreOptions {
  /** A file path, or ":memory:". @default ":memory:" */
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

/** Fills in defaults and checks every option; throws STORE_OPEN_FAILED naming the option and the rule. */
export function resolveStoreOptions(options: StoreOptions = {}): Required<Omit<StoreOptions, "maxSizeBytes">> & Pick<StoreOptions, "maxSizeBytes"> {
  const shown = (value: unknown) => JSON.stringify(value) ?? String(value);
  const path = options.path ?? storeDefaults.path;
  if (typeof path !== "string" || path === "") throw new StoreError("STORE_OPEN_FAILED", `path must be a file path or ":memory:"; got ${shown(path)}`);
  const busyTimeoutMs = options.busyTimeoutMs ?? storeDefaults.busyTimeoutMs;
  if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new StoreError("STORE_OPEN_FAILED", `busyTimeoutMs must be a whole number of milliseconds, 0 or more; got ${shown(busyTimeoutMs)}`);
  }
  const quickCheck = options.quickCheck ?? storeDefaults.quickCheck;
  if (typeof quickCheck !== "boolean") throw new StoreError("STORE_OPEN_FAILED", `quickCheck must be true or false; got ${shown(quickCheck)}`);
  const maxSizeBytes = options.maxSizeBytes;
  if (maxSizeBytes !== undefined && (!Number.isSafeInteger(maxSizeBytes) || maxSizeBytes < 65_536)) {
    throw new StoreError("STORE_OPEN_FAILED", `maxSizeBytes must be a whole number of bytes, 65536 or more; got ${shown(maxSizeBytes)}`);
  }
  return { path, busyTimeoutMs, quickCheck, maxSizeBytes };
}
