/**
 * Backups of a store and restores from them, with SQLite's online backup API (better-sqlite3's
 * `db.backup()`): a backup is a consistent copy of the store taken while it stays in use, page by
 * page; a restore checks the backup, keeps the file it replaces beside it, and writes the backup's
 * pages into place the same way.
 */
import { existsSync, renameSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { SCHEMA_VERSION } from "./schema.js";
import { StoreError, toStoreError } from "./errors.js";
import { Store } from "./store.js";

export interface BackupResult {
  /** The backup file, resolved. */
  file: string;
  pages: number;
  bytes: number;
}

/** The folder a new file goes into must exist (SQLite would say only "unable to open database file"). */
function checkDestination(file: string, what: string): void {
  const folder = path.dirname(path.resolve(file));
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    throw new StoreError("STORE_BACKUP_FAILED", `cannot write the ${what} ${file}: the folder ${folder} does not exist; create it first`);
  }
  if (existsSync(file) && statSync(file).isDirectory()) throw new StoreError("STORE_BACKUP_FAILED", `cannot write the ${what} ${file}: it is a folder; name a file`);
}

/** Copies an open store into `destination` (replacing a file there) while it stays in use. */
export async function backupStore(store: Store, destination: string): Promise<BackupResult> {
  if (store.path === ":memory:") throw new StoreError("STORE_BACKUP_FAILED", "an in-memory store has no file to back up; give --db");
  const file = path.resolve(destination);
  if (file === path.resolve(store.path)) throw new StoreError("STORE_BACKUP_FAILED", `the backup ${destination} is the store itself; name another file`);
  checkDestination(destination, "backup");
  try {
    const { totalPages } = await store.db.backup(file);
    return { file, pages: totalPages, bytes: statSync(file).size };
  } catch (error) {
    const typed = toStoreError(error, file);
    throw new StoreError("STORE_BACKUP_FAILED", `the backup of ${store.path} into ${destination} failed: ${(typed as Error).message}`, { cause: error });
  }
}

export interface RestoreResult {
  /** Where the file that was replaced is kept (`<store>.replaced-<time>`), if there was one. */
  replaced: string | undefined;
  pages: number;
}

/**
 * Replaces the store file `target` with the backup `backup`. The backup is checked first (a plugbox
 * store SQLite's quick_check passes, of a schema this plugbox reads); a store another process has
 * open is refused; the file replaced (and its WAL) is kept beside it, not deleted.
 */
export async function restoreStore(backup: string, target: string, now: Date = new Date()): Promise<RestoreResult> {
  const source = openBackup(backup);
  try {
    if (path.resolve(backup) === path.resolve(target)) throw new StoreError("STORE_BACKUP_FAILED", `the backup ${backup} is the store itself; name the store to restore with --db`);
    checkDestination(target, "store");
    if (existsSync(target) && inUse(target)) {
      throw new StoreError("STORE_BACKUP_FAILED", `the store ${target} is in use by another process; stop every plugbox process using it, then restore`);
    }
    let replaced: string | undefined;
    if (existsSync(target)) {
      replaced = `${target}.replaced-${now.toISOString().replace(/[:.]/g, "-")}`;
      renameSync(target, replaced);
      if (existsSync(`${target}-wal`)) renameSync(`${target}-wal`, `${replaced}-wal`);
      rmSync(`${target}-shm`, { force: true });
    }
    let pages: number;
    try {
      ({ totalPages: pages } = await source.backup(target));
    } catch (error) {
      throw new StoreError("STORE_BACKUP_FAILED", `the restore of ${target} from ${backup} failed: ${(toStoreError(error, target) as Error).message}${replaced ? ` (the replaced file is kept as ${replaced})` : ""}`, { cause: error });
    }
    // The restored file opens as a store: checked, and migrated if the backup is of an older plugbox.
    Store.open({ path: target }).close();
    return { replaced, pages };
  } finally {
    source.close();
  }
}

/** Opens a backup read-only, and checks it is a whole plugbox store of a schema this plugbox reads. */
function openBackup(backup: string): Database.Database {
  if (!existsSync(backup) || !statSync(backup).isFile()) throw new StoreError("STORE_BACKUP_FAILED", `the backup ${backup} does not exist`);
  let db: Database.Database;
  try {
    db = new Database(backup, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new StoreError("STORE_BACKUP_FAILED", `cannot open the backup ${backup}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const problems = (db.pragma("quick_check(5)") as Array<{ quick_check: string }>).flatMap((row) => row.quick_check.split("\n"));
    if (problems.length !== 1 || problems[0] !== "ok") throw new Error(`it is damaged (SQLite's quick_check: ${problems.join("; ")})`);
    const version = (db.prepare("SELECT version FROM plugbox_schema").get() as { version: number } | undefined)?.version;
    if (version === undefined) throw new Error("it holds no plugbox schema version");
    if (version > SCHEMA_VERSION) throw new Error(`it has schema version ${version}; this plugbox reads up to ${SCHEMA_VERSION}: upgrade plugbox`);
    return db;
  } catch (error) {
    db.close();
    throw new StoreError("STORE_BACKUP_FAILED", `the backup ${backup} cannot be restored: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * True when another connection has the file open: in WAL mode each one holds a shared lock for as
 * long as it is open, so an exclusive lock (locking_mode EXCLUSIVE, and a read to take it) is busy.
 */
function inUse(file: string): boolean {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { timeout: 0 });
    db.pragma("locking_mode = EXCLUSIVE");
    db.exec("BEGIN EXCLUSIVE");
    db.prepare("SELECT count(*) FROM sqlite_master").get();
    db.exec("ROLLBACK");
    return false;
  } catch (error) {
    // Busy means in use; a damaged file (the reason to restore) is not.
    return String((error as { code?: unknown }).code).startsWith("SQLITE_BUSY");
  } finally {
    db?.close();
  }
}
