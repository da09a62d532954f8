import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.js";
import { checkPostgresSchema, migratePostgres, POSTGRES_COLUMNS, POSTGRES_MIGRATIONS } from "../../../dist/host/store/postgres/schema.js";
import { PostgresSystemJobsTable } from "../../../dist/host/store/postgres/system-jobs.js";
import { PostgresTraceLogsTable } from "../../../dist/host/store/postgres/trace-logs.js";
import { migrate, SCHEMA_VERSION } from "../../../dist/host/store/schema.js";
import { SystemJobsTable, type NewJobRow } from "../../../dist/host/store/system-jobs.js";
import { TraceLogsTable, type TraceRow } from "../../../dist/host/store/trace-logs.js";
import type { SystemJobsStore, TraceLogsStore } from "../../../dist/host/store/engine.js";

let server: TestPostgres;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(() => server?.close());

const clients: pg.Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.end()));
});

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  clients.push(client);
  return client;
}

/** A fresh database and a connection to it. */
async function freshDatabase(): Promise<{ url: string; client: pg.Client }> {
  const url = await server.createDatabase();
  return { url, client: await connect(url) };
}

/** A fresh database migrated to the current schema, and a connection to it. */
async function migratedDatabase(): Promise<{ url: string; client: pg.Client }> {
  const database = await freshDatabase();
  await migratePostgres(database.client, "test");
  return database;
}

async function tablesOf(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name");
  return rows.map((row) => row.name);
}

async function versionsOf(client: pg.Client): Promise<number[]> {
  return (await client.query<{ version: number }>("SELECT version FROM plugbox_schema")).rows.map((row) => row.version);
}

describe("the PostgreSQL schema", () => {
  it("migrates an empty database to the current version, whose tables are the ones plugbox describes; migrating again changes nothing", async () => {
    expect(POSTGRES_MIGRATIONS.at(-1)?.version).toBe(SCHEMA_VERSION);
    const { client } = await migratedDatabase();
    expect(await tablesOf(client)).toEqual(Object.keys(POSTGRES_COLUMNS).sort());
    expect(await versionsOf(client)).toEqual([SCHEMA_VERSION]);
    await checkPostgresSchema(client, "test");
    await migratePostgres(client, "test");
    expect(await versionsOf(client)).toEqual([SCHEMA_VERSION]);
  });

  it("refuses a store of a newer plugbox with STORE_TOO_NEW, naming the version found, and changes nothing", async () => {
    const { client } = await migratedDatabase();
    await client.query("UPDATE plugbox_schema SET version = $1", [SCHEMA_VERSION + 1]);
    await expect(migratePostgres(client, "postgres://db.example/plugbox")).rejects.toMatchObject({
      code: "STORE_TOO_NEW",
      message: `the PostgreSQL store postgres://db.example/plugbox has schema version ${SCHEMA_VERSION + 1}; this plugbox reads up to ${SCHEMA_VERSION}: upgrade plugbox`,
    });
    expect(await versionsOf(client)).toEqual([SCHEMA_VERSION + 1]);
  });

  it.each([
    ["a column's type", "ALTER TABLE system_jobs ALTER COLUMN lease_until TYPE timestamptz USING lease_until::timestamptz", 'table system_jobs, column lease_until: expected text collate "C" null, found timestamp with time zone null'],
    ["a column's nullability", "ALTER TABLE trace_logs ALTER COLUMN message_block DROP NOT NULL", 'table trace_logs, column message_block: expected text collate "C" not null, found text collate "C" null'],
    ["a column's collation", 'ALTER TABLE records ALTER COLUMN id TYPE text COLLATE "POSIX"', 'table records, column id: expected text collate "C" not null, found text collate "POSIX" not null'],
    ["an identity", "ALTER TABLE system_jobs ALTER COLUMN sequence DROP IDENTITY", "table system_jobs, column sequence: expected bigint generated always as identity not null, found bigint not null"],
    ["a dropped column", "ALTER TABLE system_jobs DROP COLUMN post", 'table system_jobs, column post: expected text collate "C" null, found no such column'],
    ["an added column", "ALTER TABLE relationships ADD COLUMN note text", "table relationships, column note: expected no such column, found text null"],
    ["a dropped table", "DROP TABLE table_schemas", "table table_schemas is missing"],
  ])("refuses a table another tool changed (%s) with STORE_SCHEMA_CHANGED: the table, the column, what was expected and found, and what to do", async (_, change, difference) => {
    const { client } = await migratedDatabase();
    await client.query(change);
    const refusal = {
      code: "STORE_SCHEMA_CHANGED",
      message: expect.stringContaining(`the PostgreSQL store test is not as plugbox made it (another tool changed it): ${difference}. Nothing was migrated. Restore the table as plugbox made it (from a backup of the database), or point --db at another database`),
    };
    await expect(checkPostgresSchema(client, "test")).rejects.toMatchObject(refusal);
    await expect(migratePostgres(client, "test")).rejects.toMatchObject(refusal);
  });

  it("refuses a database holding tables named like plugbox's but no plugbox schema version (STORE_OPEN_FAILED), and leaves it as it was", async () => {
    const { client } = await freshDatabase();
    await client.query("CREATE TABLE records (name text)");
    await client.query("CREATE TABLE invoices (total numeric)");
    await expect(migratePostgres(client, "test")).rejects.toMatchObject({
      code: "STORE_OPEN_FAILED",
      message: expect.stringMatching(/^the PostgreSQL database test holds a table named like plugbox's \(records\) but no plugbox schema version: .*point --db at another database \(an empty one, or one without tables of these names\)/),
    });
    expect(await tablesOf(client)).toEqual(["invoices", "records"]);
  });

  it("keeps plugbox's tables beside another application's tables of other names", async () => {
    const { client } = await freshDatabase();
    await client.query("CREATE TABLE invoices (total numeric)");
    await migratePostgres(client, "test");
    expect(await tablesOf(client)).toEqual([...Object.keys(POSTGRES_COLUMNS), "invoices"].sort());
  });

  it("five hosts starting together on a fresh database migrate it once, and all of them start", async () => {
    const { url } = await freshDatabase();
    const hosts = await Promise.all(Array.from({ length: 5 }, () => connect(url)));
    await Promise.all(hosts.map((host, i) => migratePostgres(host, `host ${i}`)));
    expect(await versionsOf(hosts[0]!)).toEqual([SCHEMA_VERSION]);
    expect(await tablesOf(hosts[0]!)).toEqual(Object.keys(POSTGRES_COLUMNS).sort());
  });

  it("a migration that fails midway leaves nothing behind: not a table, not a version (STORE_OPEN_FAILED); the next start migrates whole", async () => {
    const { client } = await freshDatabase();
    const failing = [{ version: SCHEMA_VERSION, sql: `${POSTGRES_MIGRATIONS[0]!.sql}; SELECT 1 / 0;` }];
    await expect(migratePostgres(client, "test", failing)).rejects.toMatchObject({
      code: "STORE_OPEN_FAILED",
      message: `could not migrate the PostgreSQL store test to schema version ${SCHEMA_VERSION} (PostgreSQL: division by zero [22012]); nothing was changed`,
    });
    expect(await tablesOf(client)).toEqual([]);
    await migratePostgres(client, "test");
    expect(await versionsOf(client)).toEqual([SCHEMA_VERSION]);
  });
});

// The semantics tests run on PostgreSQL and on SQLite's tables alike: PostgreSQL's answer as SQLite's do.
interface Tables {
  jobs: SystemJobsStore;
  traces: TraceLogsStore;
}
const engines: Array<[string, () => Promise<Tables>]> = [
  [
    "PostgreSQL",
    async () => {
      const { client } = await migratedDatabase();
      return { jobs: new PostgresSystemJobsTable(client), traces: new PostgresTraceLogsTable(client) };
    },
  ],
  [
    "SQLite",
    async () => {
      const db = new Database(":memory:");
      migrate(db, ":memory:");
      return { jobs: new SystemJobsTable(db), traces: new TraceLogsTable(db) };
    },
  ],
];

const t0 = new Date("2026-03-01T09:00:00.000Z");
const after = (ms: number) => new Date(t0.getTime() + ms);
const MINUTE = 60_000;
const idOf = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

function newJob(n: number, overrides: Partial<NewJobRow> = {}): NewJobRow {
  return {
    id: idOf(n),
    name: `job ${n}`,
    stepId: "step-1",
    messageName: "Create",
    entity: "account",
    regardingId: idOf(1000 + n),
    data: `{"n":${n}}`,
    post: null,
    depth: 1,
    createdOn: after(n),
    autoDelete: false,
    ...overrides,
  };
}

async function insertJobs(jobs: SystemJobsStore, count: number): Promise<void> {
  for (let n = 1; n <= count; n++) await jobs.insert(newJob(n));
}

describe.each(engines)("system jobs on %s", (_, open) => {
  it("inserts a job Ready (Waiting For Resources) with the next sequence, and reads it and its data back", async () => {
    const { jobs } = await open();
    await jobs.insert(newJob(1));
    await jobs.insert(newJob(2, { post: "the body", autoDelete: true }));
    expect(await jobs.get(idOf(2))).toEqual({
      id: idOf(2),
      sequence: 2,
      name: "job 2",
      operationType: 1,
      stateCode: 0,
      statusCode: 0,
      owningExtensionId: "step-1",
      messageName: "Create",
      primaryEntityType: "account",
      regardingObjectId: idOf(1002),
      depth: 1,
      retryCount: 0,
      errorCode: null,
      message: null,
      friendlyMessage: null,
      createdOn: after(2).toISOString(),
      startedOn: null,
      completedOn: null,
      postponeUntil: null,
      autoDelete: true,
    });
    expect((await jobs.get(idOf(1).toUpperCase()))?.sequence).toBe(1);
    expect(await jobs.data(idOf(2))).toEqual({ data: '{"n":2}', post: "the body" });
    expect(await jobs.get(idOf(9))).toBeUndefined();
    expect(await jobs.data(idOf(9))).toBeUndefined();
  });

  it("leases ready jobs oldest first, not those postponed to later, then jobs whose lease ran out; sorted by sequence, In Progress for the new owner", async () => {
    const { jobs } = await open();
    await insertJobs(jobs, 4);
    expect((await jobs.lease("host-a", t0, MINUTE, 1)).map((leased) => leased.job.id)).toEqual([idOf(1)]);
    expect((await jobs.lease("host-b", t0, MINUTE, 1)).map((leased) => leased.job.id)).toEqual([idOf(2)]);
    expect(await jobs.retryLater(idOf(2), "host-b", after(10 * MINUTE), { message: "later", errorCode: null })).toBe(true);
    // Two minutes on: host-a's lease of job 1 ran out; job 2 waits until ten minutes.
    const leased = await jobs.lease("host-c", after(2 * MINUTE), MINUTE, 10);
    expect(leased.map((l) => [l.job.id, l.job.sequence, l.job.stateCode, l.job.statusCode, l.job.startedOn, l.data, l.post])).toEqual([
      [idOf(1), 1, 2, 20, after(2 * MINUTE).toISOString(), '{"n":1}', null],
      [idOf(3), 3, 2, 20, after(2 * MINUTE).toISOString(), '{"n":3}', null],
      [idOf(4), 4, 2, 20, after(2 * MINUTE).toISOString(), '{"n":4}', null],
    ]);
    expect(await jobs.lease("host-d", after(2 * MINUTE), MINUTE, 10)).toEqual([]);
    // Ten minutes on, job 2 is ready again, and host-c's leases ran out, all at the same time: the oldest job first.
    expect((await jobs.lease("host-d", after(10 * MINUTE), MINUTE, 2)).map((l) => l.job.id)).toEqual([idOf(1), idOf(2)]);
    expect((await jobs.lease("host-d", after(10 * MINUTE), MINUTE, 10)).map((l) => l.job.id)).toEqual([idOf(3), idOf(4)]);
  });

  it("a lease of 0 jobs leases nothing", async () => {
    const { jobs } = await open();
    await insertJobs(jobs, 2);
    expect(await jobs.lease("host-a", t0, MINUTE, 0)).toEqual([]);
    expect((await jobs.list({ stateCode: 0 })).length).toBe(2);
  });

  it("completes a job only for the owner that still holds its lease: succeeded, failed (with its error code), or deleted when it auto-deletes", async () => {
    const { jobs } = await open();
    await insertJobs(jobs, 3);
    await jobs.lease("host-a", t0, MINUTE, 3);
    expect(await jobs.succeed(idOf(1), "host-b", false, after(1))).toBe(false);
    expect(await jobs.succeed(idOf(1), "host-a", false, after(1))).toBe(true);
    expect(await jobs.succeed(idOf(1), "host-a", false, after(2))).toBe(false);
    expect(await jobs.get(idOf(1))).toMatchObject({ stateCode: 3, statusCode: 30, completedOn: after(1).toISOString(), message: null, errorCode: null });

    expect(await jobs.fail(idOf(2), "host-b", { message: "no", errorCode: -2147220891 }, after(3))).toBe(false);
    expect(await jobs.fail(idOf(2), "host-a", { message: "it broke", errorCode: -2147220891 }, after(3))).toBe(true);
    expect(await jobs.get(idOf(2))).toMatchObject({ stateCode: 3, statusCode: 31, completedOn: after(3).toISOString(), message: "it broke", friendlyMessage: "it broke", errorCode: -2147220891 });

    expect(await jobs.succeed(idOf(3), "host-b", true, after(4))).toBe(false);
    expect(await jobs.succeed(idOf(3), "host-a", true, after(4))).toBe(true);
    expect(await jobs.get(idOf(3))).toBeUndefined();
  });

  it("retryLater counts the attempt and waits until its time; waitForResources waits without counting; both only for the owner", async () => {
    const { jobs } = await open();
    await insertJobs(jobs, 2);
    await jobs.lease("host-a", t0, MINUTE, 2);
    const failure = { message: "busy", errorCode: 7 };
    expect(await jobs.retryLater(idOf(1), "host-b", after(MINUTE), failure)).toBe(false);
    expect(await jobs.retryLater(idOf(1), "host-a", after(MINUTE), failure)).toBe(true);
    expect(await jobs.get(idOf(1))).toMatchObject({ stateCode: 0, statusCode: 10, retryCount: 1, postponeUntil: after(MINUTE).toISOString(), message: "busy", errorCode: 7 });
    expect(await jobs.waitForResources(idOf(2), "host-b", after(5), "no worker")).toBe(false);
    expect(await jobs.waitForResources(idOf(2), "host-a", after(5), "no worker")).toBe(true);
    expect(await jobs.get(idOf(2))).toMatchObject({ stateCode: 0, statusCode: 0, retryCount: 0, postponeUntil: after(5).toISOString(), message: "no worker" });
    expect(await jobs.nextDue()).toEqual(after(5));
    // A job that succeeds after a retry no longer shows the earlier failure.
    await jobs.lease("host-a", after(MINUTE), MINUTE, 2);
    await jobs.succeed(idOf(1), "host-a", false, after(MINUTE + 1));
    expect(await jobs.get(idOf(1))).toMatchObject({ stateCode: 3, statusCode: 30, retryCount: 1, message: null, errorCode: null });
  });

  it("release gives the owner's leased jobs back, ready at once; another owner's stay leased", async () => {
    const { jobs } = await open();
    await insertJobs(jobs, 3);
    await jobs.lease("host-a", t0, MINUTE, 2);
    await jobs.lease("host-b", t0, MINUTE, 1);
    await jobs.release([idOf(1), idOf(3)], "host-a");
    await jobs.release([], "host-a");
    expect((await jobs.list()).map((job) => [job.id, job.stateCode, job.statusCode, job.startedOn])).toEqual([
      [idOf(1), 0, 0, null],
      [idOf(2), 2, 20, t0.toISOString()],
      [idOf(3), 2, 20, t0.toISOString()],
    ]);
  });

  it("nextDue is the earliest of the ready jobs' times and the leases' ends; undefined when no job waits", async () => {
    const { jobs } = await open();
    expect(await jobs.nextDue()).toBeUndefined();
    await jobs.insert(newJob(5));
    expect(await jobs.nextDue()).toEqual(after(5));
    await jobs.lease("host-a", t0, MINUTE, 1);
    expect(await jobs.nextDue()).toEqual(after(MINUTE));
    await jobs.succeed(idOf(5), "host-a", false, after(6));
    expect(await jobs.nextDue()).toBeUndefined();
  });

  it("reset makes a job ready again with fresh attempts; cancel completes it as Canceled; list is in sequence order, by state if asked", async () => {
    const { jobs } = await open();
    await insertJobs(jobs, 3);
    await jobs.lease("host-a", t0, MINUTE, 1);
    await jobs.fail(idOf(1), "host-a", { message: "broke", errorCode: 1 }, after(1));
    await jobs.reset(idOf(1));
    expect(await jobs.get(idOf(1))).toMatchObject({ stateCode: 0, statusCode: 0, retryCount: 0, postponeUntil: null, completedOn: null, message: null, errorCode: null });
    await jobs.cancel(idOf(2), after(2));
    expect(await jobs.get(idOf(2))).toMatchObject({ stateCode: 3, statusCode: 32, completedOn: after(2).toISOString() });
    expect((await jobs.list()).map((job) => job.sequence)).toEqual([1, 2, 3]);
    expect((await jobs.list({ stateCode: 0 })).map((job) => job.id)).toEqual([idOf(1), idOf(3)]);
    expect((await jobs.list({ stateCode: 3 })).map((job) => job.id)).toEqual([idOf(2)]);
  });
});

describe("system jobs on PostgreSQL, many hosts", () => {
  it("four hosts leasing batches of 10 at once, each in its own transaction on its own connection, lease each of 200 jobs exactly once", async () => {
    const { url, client } = await migratedDatabase();
    const jobs = new PostgresSystemJobsTable(client);
    await insertJobs(jobs, 200);
    const hosts = await Promise.all(Array.from({ length: 4 }, () => connect(url)));
    const leasedBy = await Promise.all(
      hosts.map(async (host, i) => {
        const table = new PostgresSystemJobsTable(host);
        const leased: string[] = [];
        for (;;) {
          await host.query("BEGIN");
          const batch = await table.lease(`host-${i}`, t0, MINUTE, 10);
          await host.query("COMMIT");
          if (batch.length === 0) return leased;
          leased.push(...batch.map((l) => l.job.id));
        }
      }),
    );
    const all = leasedBy.flat();
    expect(all).toHaveLength(200);
    expect(new Set(all).size).toBe(200);
    expect((await jobs.list({ stateCode: 2 })).length).toBe(200);
  });

  it("a host's lease skips the jobs another host's open transaction is leasing, without waiting for it", async () => {
    const { url, client } = await migratedDatabase();
    await insertJobs(new PostgresSystemJobsTable(client), 3);
    const [a, b] = [await connect(url), await connect(url)];
    await a.query("BEGIN");
    expect((await new PostgresSystemJobsTable(a).lease("host-a", t0, MINUTE, 2)).map((l) => l.job.id)).toEqual([idOf(1), idOf(2)]);
    await b.query("BEGIN");
    expect((await new PostgresSystemJobsTable(b).lease("host-b", t0, MINUTE, 2)).map((l) => l.job.id)).toEqual([idOf(3)]);
    await a.query("ROLLBACK");
    await b.query("COMMIT");
    expect((await new PostgresSystemJobsTable(client).lease("host-c", t0, MINUTE, 5)).map((l) => l.job.id)).toEqual([idOf(1), idOf(2)]);
  });
});

function traceRow(n: number, overrides: Partial<TraceRow> = {}): TraceRow {
  return {
    id: idOf(n),
    correlationId: idOf(100),
    requestId: idOf(200),
    operationId: idOf(300),
    typeName: "Contoso.Plugins.AccountPlugin",
    messageName: "Create",
    primaryEntity: "account",
    stage: 40,
    mode: 0,
    depth: 1,
    messageBlock: `trace ${n}`,
    exceptionDetails: null,
    performanceMs: 1.25,
    createdOn: t0.toISOString(),
    ...overrides,
  };
}

describe.each(engines)("trace logs on %s", (_, open) => {
  it("keeps each row as written and lists rows by time, those of the same millisecond in the order they were written", async () => {
    const { traces } = await open();
    const rows = [
      traceRow(3, { messageBlock: 'quotes " \' , braces {} [] \\ and a\nnew line, NULL, é 😀', exceptionDetails: "System.Exception: no", performanceMs: 0.5 }),
      traceRow(1),
      traceRow(2, { createdOn: after(-1).toISOString(), correlationId: idOf(101), stage: 20, mode: 1, depth: 2 }),
    ];
    await traces.insert(rows);
    await traces.insert([traceRow(0)]);
    await traces.insert([]);
    expect(await traces.list()).toEqual([rows[2], rows[0], rows[1], traceRow(0)]);
    expect(await traces.list({ correlationId: idOf(101) })).toEqual([rows[2]]);
    expect((await traces.list({ correlationId: idOf(100) })).map((row) => row.id)).toEqual([idOf(3), idOf(1), idOf(0)]);
    expect(await traces.list({ correlationId: idOf(999) })).toEqual([]);
  });
});
