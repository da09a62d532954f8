/**
 * Store faults, each injected through the store layer for real: another process holding the file's
 * write lock, a store at its size limit (SQLite's max_page_count: SQLITE_FULL from SQLite itself),
 * a file damaged in the middle or emptied. Each fails the one request with a typed error, the host
 * never wedges, and the next request works once the fault is gone.
 */
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHost, type PlugboxHost } from "../../../dist/host/index.js";
import { Store, backupStore, restoreStore } from "../../../dist/host/testing/internal.js";
import { ManualClock } from "../../../dist/host/testing/index.js";
import { ColumnSet, Entity, EntityReference, QueryExpression } from "../../../dist/sdk/index.js";
import { buildPlugins, failure, fastRuntime, sqliteOf, step } from "../../fixtures/pipeline/support.js";
import { damageStore, holdWriteLock } from "../../helpers/faults.js";

let plugins: Awaited<ReturnType<typeof buildPlugins>>;
let dir: string;

beforeAll(async () => {
  plugins = await buildPlugins("plugbox-store-faults-");
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-store-faults-db-"));
});

afterAll(() => {
  plugins?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

/** A stage-10 step that traces (it runs before the transaction, so its trace log is written after any failure) and trace logs kept. */
const tracedManifest = () => ({
  bundles: { p: { path: plugins.bundle } },
  steps: [step("Tracer", "Create", "account", 10, { config: { lines: 2, width: 5 } })],
  settings: { traceLogSetting: "All" },
});

const account = (name: string) => ({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name }) } });

async function openHost(db: string, extra: Parameters<typeof createHost>[0] = {}): Promise<PlugboxHost> {
  return createHost({ manifest: tracedManifest(), db, runJobs: false, runtimeOptions: fastRuntime, ...extra });
}

async function accounts(host: PlugboxHost): Promise<string[]> {
  return (await host.records()).filter((row) => row.entity === "account").map((row) => row.id);
}

async function count(host: PlugboxHost): Promise<number> {
  return (await accounts(host)).length;
}

describe("store faults: a typed error for the one request, never a wedged host", () => {
  it("STORE_BUSY: a request while another process holds the write lock past busyTimeoutMs fails with STORE_BUSY, and the next one works once the lock is gone", { timeout: 30_000 }, async () => {
    const db = path.join(dir, "busy.db");
    const host = await openHost(db, { busyTimeoutMs: 200 });
    try {
      await host.execute(account("before"));
      const holder = await holdWriteLock(db);
      let error;
      try {
        error = await failure(host.execute(account("during")));
      } finally {
        await holder.release();
      }
      expect(error).toMatchObject({ code: "STORE_BUSY", message: expect.stringContaining(db) });
      // Its stage-10 trace could not be written either: the journal says so, the request's error stands.
      expect((error as { journal?: { traceLogError?: { code: string } } }).journal?.traceLogError?.code).toBe("STORE_BUSY");
      const after = await host.execute(account("after"));
      expect(after.response.results.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(after.journal.traceLogError).toBeUndefined();
      expect(await count(host)).toBe(2);
      expect((await host.traceLogs()).length).toBeGreaterThanOrEqual(2);
    } finally {
      await host.close();
    }
  });

  it("STORE_BUSY: host.listJobs and runJobs while the lock is held fail typed, and work after", { timeout: 30_000 }, async () => {
    const db = path.join(dir, "busy-jobs.db");
    const host = await openHost(db, { busyTimeoutMs: 100 });
    try {
      const holder = await holdWriteLock(db);
      try {
        await expect(host.runJobs()).rejects.toMatchObject({ code: "STORE_BUSY" });
      } finally {
        await holder.release();
      }
      await expect(host.runJobs()).resolves.toEqual([]);
      await expect(host.listJobs()).resolves.toEqual([]);
    } finally {
      await host.close();
    }
  });

  it("STORE_BUSY in the background: the job runner's health says why its last round took no jobs, and clears once a round does", { timeout: 30_000 }, async () => {
    const db = path.join(dir, "busy-runner.db");
    const clock = new ManualClock();
    const host = await openHost(db, { clock, busyTimeoutMs: 100, runJobs: true, jobs: { pollMs: 20 } });
    try {
      expect(host.health()).toMatchObject({ status: "ready", store: { status: "open", path: db }, jobs: { running: true } });
      await clock.whenTimerSet(); // the first round ended, and set the timer of the next
      const holder = await holdWriteLock(db);
      try {
        await clock.advance(20);
        await clock.whenTimerSet();
        expect(host.health().jobs.lastError?.code).toBe("STORE_BUSY");
        expect(host.health().status).toBe("degraded");
      } finally {
        await holder.release();
      }
      await clock.advance(20);
      await clock.whenTimerSet();
      expect(host.health().jobs.lastError).toBeUndefined();
      expect(host.health().status).toBe("ready");
    } finally {
      await host.close();
    }
    expect(host.health().status).toBe("closed");
  });

  it("STORE_FULL: a store at its size limit fails the request with STORE_FULL (not 'cannot rollback'), keeps nothing of it, and works again once space is freed", { timeout: 60_000 }, async () => {
    const db = path.join(dir, "full.db");
    const host = await openHost(db, { storeOptions: { maxSizeBytes: 256 * 1024 } });
    try {
      const big = "x".repeat(3_000);
      let full;
      let created = 0;
      for (let i = 0; i < 500 && !full; i++) {
        try {
          await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: `a${i}`, description: big }) } });
          created++;
        } catch (error) {
          full = error as { code?: string; message?: string; journal?: unknown };
        }
      }
      expect(full).toMatchObject({ code: "STORE_FULL", message: expect.stringContaining("cannot grow") });
      expect(full!.message).not.toContain("cannot rollback");
      expect(await count(host)).toBe(created);
      // Still full: fails the same way, at once, again.
      await expect(host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "still full", description: big }) } })).rejects.toMatchObject({ code: "STORE_FULL" });
      // Deleting records frees pages for the next writes.
      const ids = (await accounts(host)).slice(0, 20);
      for (const id of ids) await host.execute({ requestName: "Delete", parameters: { Target: new EntityReference("account", id) } });
      const after = await host.execute(account("after"));
      expect(after.response.results.id).toMatch(/^[0-9a-f-]{36}$/);
      expect(await count(host)).toBe(created - ids.length + 1);
    } finally {
      await host.close();
    }
  });

  it("STORE_FULL inside ExecuteMultiple with ContinueOnError: the full request faults, the batch goes on", { timeout: 60_000 }, async () => {
    const db = path.join(dir, "full-batch.db");
    const host = await createHost({ db, runJobs: false, runtimeOptions: fastRuntime, storeOptions: { maxSizeBytes: 128 * 1024 } });
    try {
      const requests = Array.from({ length: 60 }, (_, i) => ({ requestName: "Create", parameters: { Target: new Entity("note", undefined, { text: `${i}`.padEnd(4_000, "n") }) } }));
      const { response } = await host.execute({ requestName: "ExecuteMultiple", parameters: { Requests: requests, Settings: { ContinueOnError: true, ReturnResponses: true } } });
      const faults = (response.results.Responses as Array<{ Fault?: { code: string } }>).filter((r) => r.Fault).map((r) => r.Fault!.code);
      expect(response.results.IsFaulted).toBe(true);
      expect(new Set(faults)).toEqual(new Set(["STORE_FULL"]));
      const stored = (await host.records()).length;
      expect(stored).toBe(60 - faults.length);
    } finally {
      await host.close();
    }
  });

  it("STORE_CORRUPT: a store damaged in the middle is refused when it opens, naming quick_check and `plugbox data restore`; quickCheck: false opens it and a read of the damage fails typed", async () => {
    const db = path.join(dir, "damaged.db");
    const host = await openHost(db);
    for (let i = 0; i < 150; i++) await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: `n${i}`.padEnd(300, "-") }) } });
    await host.close();
    damageStore(db);
    const refused = await failure(openHost(db));
    expect(refused).toMatchObject({ code: "STORE_CORRUPT", message: expect.stringContaining("quick_check") });
    expect(refused.message).toContain(`plugbox data restore <backup.db> --db ${db}`);
    const unchecked = await openHost(db, { storeOptions: { quickCheck: false } });
    try {
      const read = await failure(unchecked.execute({ requestName: "RetrieveMultiple", parameters: { Query: Object.assign(new QueryExpression("account"), { columnSet: new ColumnSet(true) }) } }));
      expect(read).toMatchObject({ code: "STORE_CORRUPT" });
      await expect(unchecked.records()).rejects.toMatchObject({ code: "STORE_CORRUPT" });
      // Nothing is wedged: a request that does not touch the damage is answered.
      await expect(unchecked.execute({ requestName: "WhoAmI", parameters: {} })).resolves.toMatchObject({ response: { responseName: "WhoAmI" } });
    } finally {
      await unchecked.close();
    }
  });

  it("STORE_CORRUPT: a store file truncated to 0 bytes is not taken for a new empty store", () => {
    const db = path.join(dir, "empty.db");
    writeFileSync(db, "");
    expect(() => Store.open({ path: db })).toThrow(expect.objectContaining({ code: "STORE_CORRUPT", message: expect.stringContaining("empty file (0 bytes)") }));
    const kept = path.join(dir, "kept.db");
    Store.open({ path: kept }).close();
    truncateSync(kept, 0);
    expect(() => Store.open({ path: kept, quickCheck: false })).toThrow(expect.objectContaining({ code: "STORE_CORRUPT" }));
  });

  it("store options are checked, naming the option", () => {
    expect(() => Store.open({ maxSizeBytes: 10 })).toThrow(expect.objectContaining({ code: "STORE_OPEN_FAILED", message: expect.stringContaining("maxSizeBytes must be a whole number of bytes") }));
    expect(() => Store.open({ quickCheck: "yes" as never })).toThrow(expect.objectContaining({ message: expect.stringContaining("quickCheck must be true or false") }));
  });
});

describe("backup and restore", () => {
  it("a backup taken while a host uses the store restores it after damage; the damaged file is kept beside it", { timeout: 30_000 }, async () => {
    const db = path.join(dir, "backed-up.db");
    const backup = path.join(dir, "backup.db");
    const host = await openHost(db);
    for (let i = 0; i < 100; i++) await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: `b${i}`.padEnd(300, "-") }) } });
    const result = await backupStore(sqliteOf(host), backup);
    expect(result.pages).toBeGreaterThan(5);
    await host.execute(account("after the backup"));
    await expect(restoreStore(backup, db)).rejects.toMatchObject({ code: "STORE_BACKUP_FAILED", message: expect.stringContaining("in use by another process") });
    await host.close();
    damageStore(db);
    const restored = await restoreStore(backup, db, new Date("2026-01-02T03:04:05.000Z"));
    expect(restored.replaced).toBe(`${db}.replaced-2026-01-02T03-04-05-000Z`);
    const reopened = await openHost(db);
    try {
      expect(await count(reopened)).toBe(100);
    } finally {
      await reopened.close();
    }
    expect(() => Store.open({ path: restored.replaced! })).toThrow(expect.objectContaining({ code: "STORE_CORRUPT" }));
  });

  it("a damaged backup is not restored, and the store is left as it was", async () => {
    const db = path.join(dir, "intact.db");
    const bad = path.join(dir, "bad-backup.db");
    const host = await openHost(db);
    for (let i = 0; i < 100; i++) await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: `c${i}`.padEnd(300, "-") }) } });
    await backupStore(sqliteOf(host), bad);
    await host.close();
    damageStore(bad);
    await expect(restoreStore(bad, db)).rejects.toMatchObject({ code: "STORE_BACKUP_FAILED", message: expect.stringContaining("damaged") });
    Store.open({ path: db }).close();
  });
});
