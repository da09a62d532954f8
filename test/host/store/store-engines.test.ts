/**
 * The store interface the pipeline and the job runner use, held to the same specification on both
 * engines (SQLite in memory, PostgreSQL started by the test), and what only PostgreSQL can get
 * wrong: a server that is not there, a wrong password, a database another plugbox or another tool
 * changed, a connection that breaks in the middle of a request.
 */
import { describe, expect, it } from "vitest";
import { openStore, SCHEMA_VERSION, type DataStore } from "../../../dist/host/testing/internal.js";
import { ENGINES, sql, testDb, testPostgres } from "../../helpers/stores.js";

const A = "6d81597f-0f9f-e711-8122-000d3aa2331c";
const B = "7e92608f-1f9f-e711-8122-000d3aa2331c";
const C = "8fa3719f-2f9f-e711-8122-000d3aa2331c";

async function withStore<T>(db: string, fn: (store: DataStore) => Promise<T>): Promise<T> {
  const store = await openStore({ path: db });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

describe.each(ENGINES)("the store interface on %s", (engine) => {
  it("keeps records: insert once (a second insert of the id is refused), read, replace (version + 1), delete; all records in (table, id) order", async () => {
    await withStore(await testDb(engine), async (store) => {
      expect(await store.insertRecord("account", B, { name: "B", n: 2 })).toBe(true);
      expect(await store.insertRecord("account", A, { name: "A", nested: { z: 1, a: [1, "x"] } })).toBe(true);
      expect(await store.insertRecord("account", A, { name: "again" })).toBe(false);
      expect(await store.getRecord("account", A)).toEqual({ entity: "account", id: A, attributes: { name: "A", nested: { z: 1, a: [1, "x"] } }, version: 1 });
      // Key order is kept as written (PostgreSQL's json, not jsonb).
      expect(Object.keys((await store.getRecord("account", A))!.attributes.nested as object)).toEqual(["z", "a"]);
      expect(await store.replaceRecord("account", A, { name: "A2" })).toBe(true);
      expect(await store.replaceRecord("account", C, { name: "none" })).toBe(false);
      expect((await store.getRecord("account", A))!.version).toBe(2);
      expect((await store.allRecords()).map((r) => [r.entity, r.id])).toEqual([["account", A], ["account", B]]);
      expect(await store.hasRecords("account")).toBe(true);
      expect(await store.hasRecords("contact")).toBe(false);
      expect(await store.findRecordId("account", { n: 2 })).toBe(B);
      expect(await store.findRecordId("account", { n: 3 })).toBeUndefined();
      expect(await store.deleteRecord("account", B)).toBe(true);
      expect(await store.deleteRecord("account", B)).toBe(false);
    });
  });

  it("a transaction rolled back leaves nothing behind; a savepoint inside it rolls back only its own writes", async () => {
    await withStore(await testDb(engine), async (store) => {
      using _lease = await store.acquire();
      const outer = await store.begin();
      await store.insertRecord("account", A, { name: "kept" });
      const inner = await store.begin();
      expect(store.inTransaction).toBe(true);
      await store.insertRecord("account", B, { name: "undone" });
      await inner.rollback();
      await outer.commit();
      expect(store.inTransaction).toBe(false);
      expect((await store.allRecords()).map((r) => r.attributes.name)).toEqual(["kept"]);
      {
        await using again = await store.begin();
        await store.insertRecord("account", C, { name: "gone" });
        // Left without a commit: disposing of it rolls it back.
        void again;
      }
      expect(await store.allRecords()).toHaveLength(1);
    });
  });

  it("relationships: linked once, unlinked, and removed with a deleted record", async () => {
    await withStore(await testDb(engine), async (store) => {
      await store.insertRecord("account", A, {});
      await store.insertRecord("contact", B, {});
      await store.link("account_contacts", "account", A, "contact", B);
      await store.link("account_contacts", "account", A, "contact", B);
      expect(await store.isLinked("account_contacts", "account", A, "contact", B)).toBe(true);
      expect(await store.unlink("account_contacts", "account", A, "contact", B)).toBe(true);
      expect(await store.unlink("account_contacts", "account", A, "contact", B)).toBe(false);
      await store.link("account_contacts", "account", A, "contact", B);
      await store.deleteRecord("contact", B);
      expect(await store.isLinked("account_contacts", "account", A, "contact", B)).toBe(false);
    });
  });

  it("write(): one holder at a time, committed when the function returns, rolled back when it throws", async () => {
    await withStore(await testDb(engine), async (store) => {
      const order: string[] = [];
      await Promise.all([
        store.write(async () => {
          order.push("first in");
          await store.insertRecord("account", A, { name: "first" });
          await new Promise((resolve) => setImmediate(resolve));
          order.push("first out");
        }),
        store.write(async () => {
          order.push("second in");
          await store.insertRecord("account", B, { name: "second" });
        }),
      ]);
      expect(order).toEqual(["first in", "first out", "second in"]);
      await expect(
        store.write(async () => {
          await store.insertRecord("account", C, { name: "undone" });
          throw new Error("changed my mind");
        }),
      ).rejects.toThrow("changed my mind");
      expect((await store.allRecords()).map((r) => r.attributes.name)).toEqual(["first", "second"]);
    });
  });

  it("a lease renewed by its owner is not taken by another runner until the renewed time", async () => {
    await withStore(await testDb(engine), async (store) => {
      await store.write(() => store.systemJobs.insert({ id: A, name: "job", stepId: B, messageName: "Create", entity: "account", regardingId: null, data: "{}", post: null, depth: 1, createdOn: new Date("2026-01-01T00:00:00Z"), autoDelete: false }));
      const at = (s: number) => new Date(Date.parse("2026-01-01T00:00:00Z") + s * 1000);
      expect((await store.write(() => store.systemJobs.lease("alive", at(1), 2_000, 1))).map((l) => l.job.id)).toEqual([A]);
      expect(await store.write(() => store.systemJobs.renewLeases("alive", at(60)))).toBe(1);
      expect(await store.write(() => store.systemJobs.renewLeases("someone else", at(60)))).toBe(0);
      // Past the first lease, within the renewed one: not free.
      expect(await store.write(() => store.systemJobs.lease("other", at(10), 2_000, 1))).toEqual([]);
      // Past the renewed one (its owner died): free.
      expect((await store.write(() => store.systemJobs.lease("other", at(61), 2_000, 1))).map((l) => l.job.id)).toEqual([A]);
    });
  });

  it("system jobs and trace logs through the store's tables", async () => {
    await withStore(await testDb(engine), async (store) => {
      await store.write(() => store.systemJobs.insert({ id: A, name: "job", stepId: B, messageName: "Create", entity: "account", regardingId: C, data: "{}", post: null, depth: 1, createdOn: new Date("2026-01-01T00:00:00Z"), autoDelete: false }));
      const leased = await store.write(() => store.systemJobs.lease("me", new Date("2026-01-01T00:00:01Z"), 60_000, 10));
      expect(leased.map((l) => [l.job.id, l.job.stateCode, l.data])).toEqual([[A, 2, "{}"]]);
      expect(await store.write(() => store.systemJobs.succeed(A, "someone else", false, new Date()))).toBe(false);
      expect(await store.write(() => store.systemJobs.succeed(A, "me", false, new Date("2026-01-01T00:00:02Z")))).toBe(true);
      expect(await store.systemJobs.get(A)).toMatchObject({ stateCode: 3, statusCode: 30, completedOn: "2026-01-01T00:00:02.000Z" });
      expect(await store.systemJobs.countByStatus()).toEqual(new Map([[30, 1]]));
      const trace = { id: B, correlationId: C, requestId: C, operationId: A, typeName: "T", messageName: "Create", primaryEntity: "account", stage: 40, mode: 1, depth: 1, messageBlock: "hello", exceptionDetails: null, performanceMs: 1.5, createdOn: "2026-01-01T00:00:00.000Z" };
      await store.write(() => store.traceLogs.insert([trace]));
      expect(await store.traceLogs.list({ correlationId: C })).toEqual([trace]);
    });
  });
});

describe("a PostgreSQL store: bad input gets a typed error, and nothing is half done", () => {
  it("a server that is not listening: STORE_UNREACHABLE, naming the address (without the password) and the fix", async () => {
    const server = await testPostgres();
    const url = server.url("nothing").replace(`:${server.port}/`, ":1/");
    const error = await openStore({ path: url }).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(error).toMatchObject({ code: "STORE_UNREACHABLE", message: expect.stringContaining("start it, or fix the host and port") });
    expect(error!.message).toContain("127.0.0.1:1");
    expect(error!.message).not.toContain(server.password);
  });

  it("a wrong password: STORE_AUTH_FAILED; a database that does not exist: STORE_UNREACHABLE naming createdb", async () => {
    const server = await testPostgres();
    const wrong = server.url("postgres").replace(`:${server.password}@`, ":wrong@");
    await expect(openStore({ path: wrong })).rejects.toMatchObject({ code: "STORE_AUTH_FAILED", message: expect.stringContaining("fix the user and password") });
    await expect(openStore({ path: server.url("no_such_db") })).rejects.toMatchObject({ code: "STORE_UNREACHABLE", message: expect.stringContaining("createdb") });
  });

  it("a database migrated by a newer plugbox: STORE_TOO_NEW, and nothing is changed", async () => {
    const db = await testDb("postgres");
    await (await openStore({ path: db })).close();
    await sql(db, "UPDATE plugbox_schema SET version = $1", [SCHEMA_VERSION + 1]);
    await expect(openStore({ path: db })).rejects.toMatchObject({ code: "STORE_TOO_NEW", message: expect.stringContaining("upgrade plugbox") });
    expect(await sql(db, "SELECT version FROM plugbox_schema")).toEqual([{ version: SCHEMA_VERSION + 1 }]);
  });

  it("a table another tool changed: STORE_SCHEMA_CHANGED, naming the table and column", async () => {
    const db = await testDb("postgres");
    await (await openStore({ path: db })).close();
    await sql(db, "ALTER TABLE records DROP COLUMN version");
    await expect(openStore({ path: db })).rejects.toMatchObject({ code: "STORE_SCHEMA_CHANGED", message: expect.stringMatching(/records.*version/) });
  });

  it("hosts starting together migrate once", async () => {
    const db = await testDb("postgres");
    const stores = await Promise.all(Array.from({ length: 5 }, () => openStore({ path: db })));
    await Promise.all(stores.map((s) => s.close()));
    expect(await sql(db, "SELECT version FROM plugbox_schema")).toEqual([{ version: SCHEMA_VERSION }]);
  });

  it("a connection that breaks mid-request fails that request with STORE_CONNECTION_LOST, keeps nothing of it, and the next request reconnects", async () => {
    const db = await testDb("postgres");
    await withStore(db, async (store) => {
      await store.write(() => store.insertRecord("account", A, { name: "before" }));
      const lease = await store.acquire();
      const transaction = await store.begin();
      await store.insertRecord("account", B, { name: "in the broken request" });
      // An operator (or a failover) ends the connection while the request's transaction is open.
      await sql(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'plugbox' AND datname = current_database()");
      await expect(store.insertRecord("account", C, { name: "never" })).rejects.toMatchObject({ code: "STORE_CONNECTION_LOST" });
      // No later statement of the broken request runs on a new connection, outside its transaction.
      await expect(store.insertRecord("account", C, { name: "never" })).rejects.toMatchObject({ code: "STORE_CONNECTION_LOST" });
      await expect(transaction.commit()).rejects.toMatchObject({ code: "STORE_CONNECTION_LOST" });
      lease();
      await store.write(() => store.insertRecord("account", C, { name: "after" }));
      expect((await store.allRecords()).map((r) => r.attributes.name).sort()).toEqual(["after", "before"]);
    });
  });
});
