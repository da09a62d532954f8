/**
 * Both store engines for tests that must hold on each: `describe.each(ENGINES)` and `testDb(engine)`,
 * which gives a fresh store's `db` (":memory:" for SQLite; a new database of this test file's
 * PostgreSQL, started the first time one is asked for and stopped when the file ends).
 */
import pg from "pg";
import { afterAll } from "vitest";
import { startPostgres, type TestPostgres } from "./postgres.js";

export const ENGINES = ["sqlite", "postgres"] as const;
export type Engine = (typeof ENGINES)[number];

let server: Promise<TestPostgres> | undefined;

afterAll(async () => {
  const started = await server?.catch(() => undefined);
  server = undefined;
  await started?.close();
});

/** This test file's PostgreSQL (started once). */
export function testPostgres(): Promise<TestPostgres> {
  return (server ??= startPostgres());
}

/** A fresh, empty store's `db` for the engine. */
export async function testDb(engine: Engine): Promise<string> {
  return engine === "sqlite" ? ":memory:" : (await testPostgres()).createDatabase();
}

/** Runs SQL on a PostgreSQL database directly (what another tool, or a test's look behind the store, would do). */
export async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, text: string, values?: unknown[]): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}
