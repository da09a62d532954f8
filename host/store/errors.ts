/**
 * Store error codes, and the one place that turns SQLite's errors into them: whatever statement
 * fails, the caller gets a typed error that says what happened to the file and what to do.
 */
import Database from "better-sqlite3";
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const STORE_ERRORS = {
  STORE_OPEN_FAILED: { family: "usage", means: "the database file cannot be opened or is not a plugbox store, or a store option is out of range" },
  STORE_TOO_NEW: { family: "usage", means: "the file was written by a newer plugbox" },
  STORE_CLOSED: { family: "usage", means: "the store was used after close()" },
  STORE_CORRUPT_VALUE: { family: "internal", means: "a stored value cannot be read back" },
  STORE_BUSY: { family: "environment", means: "another process held the file's write lock for longer than busyTimeoutMs" },
  STORE_FULL: { family: "environment", means: "the disk, or the store's maxSizeBytes, is full: the write was undone" },
  STORE_CORRUPT: { family: "environment", means: "SQLite found the file damaged (or it is empty); restore it from a backup" },
  STORE_IO: { family: "environment", means: "the operating system failed a read or write of the file (disk error, read-only, removed)" },
  STORE_BACKUP_FAILED: { family: "environment", means: "a backup or a restore could not be made; the message says why" },
  STORE_UNREACHABLE: { family: "usage", means: "the PostgreSQL server named by --db / db cannot be reached (refused, unknown host, timed out) or has no such database" },
  STORE_AUTH_FAILED: { family: "usage", means: "PostgreSQL refused the user or password of the connection string" },
  STORE_SCHEMA_CHANGED: { family: "usage", means: "a table of the PostgreSQL store is not as plugbox made it (another tool changed it); nothing was migrated" },
  STORE_CONNECTION_LOST: { family: "environment", means: "the connection to PostgreSQL broke during a request: that request failed and was not kept; the next one reconnects" },
} as const satisfies ErrorTable;

export type StoreErrorCode = keyof typeof STORE_ERRORS;

export class StoreError extends PlugboxError<StoreErrorCode> {
  static override readonly codes = codesOf(STORE_ERRORS);
}

/** What to do about a damaged store: the commands that make and restore backups. */
export function restoreAdvice(path = "<store.db>"): string {
  return `restore it from a backup with \`plugbox data restore <backup.db> --db ${path}\` (backups are made with \`plugbox data backup --db ${path} -o <backup.db>\`)`;
}

/**
 * The typed error for a failure of SQLite (better-sqlite3's SqliteError); any other error is
 * returned as it is. `path` names the store file in the message, where it is known.
 */
export function toStoreError(error: unknown, path?: string): unknown {
  if (!(error instanceof Database.SqliteError)) return error;
  const code = error.code;
  const says = `SQLite: ${error.message} [${code}]`;
  const store = path === undefined ? "the store" : `the store ${path}`;
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return new StoreError("STORE_BUSY", `${store} is held by another connection or process (${says}); try again when it is free, or raise busyTimeoutMs`, { cause: error });
  }
  // A WAL's shared-memory file that cannot grow on a full disk fails with IOERR_SHMSIZE before any write does.
  if (code === "SQLITE_FULL" || code === "SQLITE_IOERR_SHMSIZE") {
    return new StoreError("STORE_FULL", `${store} cannot grow: the disk is full or the store reached its size limit (${says}); nothing of this write was kept. Free some space and try again`, { cause: error });
  }
  if (code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB") {
    return new StoreError("STORE_CORRUPT", `${store} is damaged (${says}); ${restoreAdvice(path)}`, { cause: error });
  }
  if (code.startsWith("SQLITE_IOERR") || code.startsWith("SQLITE_READONLY") || code.startsWith("SQLITE_CANTOPEN") || code === "SQLITE_PROTOCOL") {
    return new StoreError("STORE_IO", `${store} could not be read or written (${says}); check the disk, the file's permissions and that it was not removed`, { cause: error });
  }
  return error;
}

/**
 * The same store error, told without the file's path: for a plug-in, which may learn what failed but
 * not where the host keeps its data. Any other error is returned as it is.
 */
export function withoutStorePath(error: unknown, path: string): unknown {
  if (!(error instanceof StoreError) || path === ":memory:" || !error.message.includes(path)) return error;
  return new StoreError(error.code, error.message.split(path).join("(the store)"));
}
