/**
 * PostgreSQL's failures as the store's typed errors: the one place that reads `pg`'s errors (SQLSTATE
 * codes and Node's socket errors), so every caller sees a StoreError that says what happened to the
 * database and what to do.
 */
import { StoreError } from "../errors.js";

/** Node's socket errors that mean the server could not be reached at all. */
const UNREACHABLE = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ECONNRESET"]);

/** SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html). */
const CONNECTION_LOST = new Set(["57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004"]);
const BUSY = new Set(["40P01", "55P03", "40001", "53300", "57014"]);

/** A connection-level failure of `pg` (no SQLSTATE): the server went away or the socket broke. */
export function isConnectionFailure(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown };
  if (typeof e?.code === "string" && (UNREACHABLE.has(e.code) || CONNECTION_LOST.has(e.code))) return true;
  return typeof e?.message === "string" && /Connection terminated|connection is closed|Client has encountered a connection error|not queryable/i.test(e.message);
}

/**
 * The typed error for a failure of PostgreSQL while connecting (`opening`) or during a request. `where`
 * names the database (its address without the password). Any other error is returned as it is.
 */
export function toPostgresStoreError(error: unknown, where: string, opening = false): unknown {
  if (error instanceof StoreError || typeof error !== "object" || error === null) return error;
  const code = (error as { code?: unknown }).code;
  const says = `PostgreSQL: ${(error as Error).message}${typeof code === "string" ? ` [${code}]` : ""}`;
  if (code === "28P01" || code === "28000") {
    return new StoreError("STORE_AUTH_FAILED", `PostgreSQL at ${where} refused the user or password (${says}); fix the user and password in --db / db`, { cause: error });
  }
  if (code === "3D000") {
    return new StoreError("STORE_UNREACHABLE", `the database of ${where} does not exist (${says}); create it (\`createdb\`, or CREATE DATABASE) or name another one in --db / db`, { cause: error });
  }
  if (opening && isConnectionFailure(error)) {
    return new StoreError("STORE_UNREACHABLE", `cannot reach PostgreSQL at ${where} (${says}); start it, or fix the host and port in --db / db`, { cause: error });
  }
  if (isConnectionFailure(error)) {
    return new StoreError("STORE_CONNECTION_LOST", `the connection to PostgreSQL at ${where} broke (${says}); the request failed and nothing of it was kept; the next one reconnects`, { cause: error });
  }
  if (typeof code === "string" && BUSY.has(code)) {
    return new StoreError("STORE_BUSY", `${where}: another host held the rows this request needed for too long, or PostgreSQL ended a deadlock or refused a connection (${says}); try again, or raise busyTimeoutMs`, { cause: error });
  }
  if (code === "53100") return new StoreError("STORE_FULL", `PostgreSQL at ${where} is out of disk space (${says}); nothing of this write was kept`, { cause: error });
  if (typeof code === "string" && (code.startsWith("58") || code === "53200" || code.startsWith("XX"))) {
    return new StoreError("STORE_IO", `PostgreSQL at ${where} failed a read or write (${says}); see the server's log`, { cause: error });
  }
  return error;
}

/** A connection string with its password replaced by `***`, for messages and health. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return url.replace(/:\/\/([^:/@]*):[^@]*@/, "://$1:***@");
  }
}
