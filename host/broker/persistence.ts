/**
 * The broker's optional durable store (`plugbox broker --data-dir <dir>`): one SQLite file,
 * `broker.sqlite`, in WAL mode with synchronous=FULL, so a commit is fsync'd before it returns.
 * The namespace writes through it before it answers: a sent message is acknowledged (`accepted`)
 * only after its transaction committed, and a settled message is deleted before its settlement is
 * answered. Every statement is prepared once.
 *
 * Kept: messages (active, deferred, scheduled, dead-lettered; their delivery counts and expiry),
 * which message was locked (a lock itself does not survive a restart; see Namespace's restore),
 * sequence-number counters, queues made by --auto-create, and session state. Not kept: locks,
 * duplicate-detection history, Event Hubs events.
 */
import Database, { type Database as Db } from "better-sqlite3";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { BrokerError } from "./errors.js";

/** The schema's version; a file written by another version is refused rather than misread. */
const SCHEMA_VERSION = 1;

export type StoredState = "active" | "deferred" | "scheduled";

/** One message as it is kept: the AMQP message encoded as it will be sent, plus the broker's facts about it. */
export interface MessageRow {
  path: string;
  sequence: number;
  /** The message, encoded as AMQP (rhea.message.encode). */
  encoded: Buffer;
  /** For a scheduled message, the time it is due. */
  enqueuedAt: number;
  deliveryCount: number;
  state: StoredState;
  /** Deferred messages go back to deferred when a lock on them ends. */
  deferred: boolean;
  expiresAt: number | null;
  /** It was locked when last written: after a restart its lock counts as lost (delivery count + 1). */
  locked: boolean;
}

export interface LoadedState {
  /** Queues that --auto-create made, with the options they were made with. */
  autoCreated: Array<{ path: string; options: Record<string, unknown> }>;
  sequences: Map<string, number>;
  /** In path, then sequence order. */
  messages: MessageRow[];
  sessions: Array<{ path: string; sessionId: string; state: Buffer }>;
}

interface RawMessage {
  path: string;
  sequence: number;
  encoded: Buffer;
  enqueued_at: number;
  delivery_count: number;
  state: StoredState;
  deferred: number;
  expires_at: number | null;
  locked: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS auto_created (path TEXT PRIMARY KEY, options TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sequences (path TEXT PRIMARY KEY, next INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
  path TEXT NOT NULL, sequence INTEGER NOT NULL, encoded BLOB NOT NULL, enqueued_at INTEGER NOT NULL,
  delivery_count INTEGER NOT NULL, state TEXT NOT NULL, deferred INTEGER NOT NULL, expires_at INTEGER,
  locked INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (path, sequence)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (path TEXT NOT NULL, session_id TEXT NOT NULL, state BLOB NOT NULL, PRIMARY KEY (path, session_id)) WITHOUT ROWID;
`;

export class BrokerStore {
  readonly #db: Db;
  readonly #statements: ReturnType<typeof prepare>;
  #closed = false;

  private constructor(db: Db) {
    this.#db = db;
    this.#statements = prepare(db);
  }

  /** Opens (or creates) the store in a directory; a second broker on the same directory is refused. */
  static open(dir: string): BrokerStore {
    const file = path.join(dir, "broker.sqlite");
    let db: Db;
    try {
      mkdirSync(dir, { recursive: true });
      db = new Database(file);
    } catch (error) {
      throw new BrokerError("BROKER_DATA_DIR_INVALID", `cannot open the broker's data directory ${dir}: ${(error as Error).message}; give --data-dir a directory this user can write`, { cause: error });
    }
    try {
      db.pragma("journal_mode = WAL");
      // FULL: a commit is fsync'd before it returns, so what the broker acknowledged survives a power loss too.
      db.pragma("synchronous = FULL");
      // One broker per directory: the first write takes the lock and keeps it until the process ends.
      db.pragma("locking_mode = EXCLUSIVE");
      db.pragma("busy_timeout = 0");
      db.exec(SCHEMA);
      const version = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema'").get();
      if (version === undefined) db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(String(SCHEMA_VERSION));
      else if (version.value !== String(SCHEMA_VERSION)) {
        throw new BrokerError("BROKER_DATA_DIR_INVALID", `${file} was written by a broker with store version ${version.value}; this one reads version ${SCHEMA_VERSION}. Use another --data-dir`);
      }
    } catch (error) {
      db.close();
      if (error instanceof BrokerError) throw error;
      const busy = (error as { code?: string }).code?.startsWith("SQLITE_BUSY");
      throw new BrokerError(
        busy ? "BROKER_DATA_DIR_IN_USE" : "BROKER_DATA_DIR_INVALID",
        busy ? `another broker is using the data directory ${dir}; stop it, or give this one another --data-dir` : `${file} is not a broker store this version can read: ${(error as Error).message}`,
        { cause: error },
      );
    }
    return new BrokerStore(db);
  }

  /**
   * Runs `work` in one transaction (a savepoint when one is open already): its writes are committed,
   * and fsync'd, before this returns, or none is. A failed write is a BROKER_STORE_FAILED.
   */
  atomically<T>(work: () => T): T {
    // After close (connections still going away), the in-memory work goes on and nothing is written.
    if (this.#closed) return work();
    try {
      return this.#db.transaction(work)();
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      // Only SQLite's own failures are the store's; anything else the work threw goes on as it is.
      if (typeof code !== "string" || !code.startsWith("SQLITE_")) throw error;
      throw new BrokerError("BROKER_STORE_FAILED", `the broker could not write to its data directory: ${(error as Error).message}`, { cause: error });
    }
  }

  load(): LoadedState {
    const s = this.#statements;
    return {
      autoCreated: s.autoCreated.all().map((row) => ({ path: row.path, options: JSON.parse(row.options) as Record<string, unknown> })),
      sequences: new Map(s.sequences.all().map((row) => [row.path, row.next])),
      messages: s.messages.all().map((row) => ({
        path: row.path,
        sequence: row.sequence,
        encoded: row.encoded,
        enqueuedAt: row.enqueued_at,
        deliveryCount: row.delivery_count,
        state: row.state,
        deferred: row.deferred === 1,
        expiresAt: row.expires_at,
        locked: row.locked === 1,
      })),
      sessions: s.sessions.all().map((row) => ({ path: row.path, sessionId: row.session_id, state: row.state })),
    };
  }

  rememberAutoCreated(entityPath: string, options: Record<string, unknown>): void {
    this.#write(() => this.#statements.putAutoCreated.run(entityPath, JSON.stringify(options)));
  }

  saveSequence(entityPath: string, next: number): void {
    this.#write(() => this.#statements.putSequence.run(entityPath, next));
  }

  putMessage(row: MessageRow): void {
    this.#write(() => this.#statements.putMessage.run(row.path, row.sequence, row.encoded, row.enqueuedAt, row.deliveryCount, row.state, row.deferred ? 1 : 0, row.expiresAt, row.locked ? 1 : 0));
  }

  markLocked(entityPath: string, sequence: number, locked: boolean): void {
    this.#write(() => this.#statements.markLocked.run(locked ? 1 : 0, entityPath, sequence));
  }

  removeMessage(entityPath: string, sequence: number): void {
    this.#write(() => this.#statements.removeMessage.run(entityPath, sequence));
  }

  saveSessionState(entityPath: string, sessionId: string, state: Buffer | null): void {
    this.#write(() => (state === null ? this.#statements.removeSession.run(entityPath, sessionId) : this.#statements.putSession.run(entityPath, sessionId, state)));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  /** A single write outside a transaction commits on its own (and is fsync'd); inside one it joins it. */
  #write(run: () => unknown): void {
    if (this.#closed) return;
    if (this.#db.inTransaction) run();
    else this.atomically(run);
  }
}

function prepare(db: Db) {
  return {
    autoCreated: db.prepare<[], { path: string; options: string }>("SELECT path, options FROM auto_created"),
    sequences: db.prepare<[], { path: string; next: number }>("SELECT path, next FROM sequences"),
    messages: db.prepare<[], RawMessage>("SELECT path, sequence, encoded, enqueued_at, delivery_count, state, deferred, expires_at, locked FROM messages ORDER BY path, sequence"),
    sessions: db.prepare<[], { path: string; session_id: string; state: Buffer }>("SELECT path, session_id, state FROM sessions"),
    putAutoCreated: db.prepare<[string, string]>("INSERT OR REPLACE INTO auto_created (path, options) VALUES (?, ?)"),
    putSequence: db.prepare<[string, number]>("INSERT INTO sequences (path, next) VALUES (?, ?) ON CONFLICT (path) DO UPDATE SET next = excluded.next"),
    putMessage: db.prepare<[string, number, Buffer, number, number, string, number, number | null, number]>(
      "INSERT OR REPLACE INTO messages (path, sequence, encoded, enqueued_at, delivery_count, state, deferred, expires_at, locked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    markLocked: db.prepare<[number, string, number]>("UPDATE messages SET locked = ? WHERE path = ? AND sequence = ?"),
    removeMessage: db.prepare<[string, number]>("DELETE FROM messages WHERE path = ? AND sequence = ?"),
    putSession: db.prepare<[string, string, Buffer]>("INSERT OR REPLACE INTO sessions (path, session_id, state) VALUES (?, ?, ?)"),
    removeSession: db.prepare<[string, string]>("DELETE FROM sessions WHERE path = ? AND session_id = ?"),
  };
}
