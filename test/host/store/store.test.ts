import { fork } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { systemClock, JobQueue, Store, SCHEMA_VERSION } from "../../../dist/host/testing/internal.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-store-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("store", () => {
  it("a file-backed store uses WAL and 8 KB pages, creates its schema, and keeps records across reopening", () => {
    const file = path.join(dir, "a.db");
    const store = Store.open({ path: file });
    expect(store.db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(store.db.pragma("page_size", { simple: true })).toBe(8192);
    store.insertRecord("account", "6d81597f-0f9f-e711-8122-000d3aa2331c", { name: "Contoso" });
    store.close();
    const again = Store.open({ path: file });
    expect(again.getRecord("account", "6d81597f-0f9f-e711-8122-000d3aa2331c")).toMatchObject({ attributes: { name: "Contoso" }, version: 1 });
    expect(again.db.prepare("SELECT version FROM plugbox_schema").get()).toEqual({ version: SCHEMA_VERSION });
    again.close();
  });

  it("a store written by a newer plugbox is refused with STORE_TOO_NEW, and a file that is not a database with STORE_OPEN_FAILED", async () => {
    const file = path.join(dir, "new.db");
    const store = Store.open({ path: file });
    store.db.prepare("UPDATE plugbox_schema SET version = ?").run(SCHEMA_VERSION + 1);
    store.close();
    expect(() => Store.open({ path: file })).toThrow(expect.objectContaining({ code: "STORE_TOO_NEW", message: expect.stringContaining("upgrade plugbox") }));
    const notADb = path.join(dir, "text.db");
    (await import("node:fs")).writeFileSync(notADb, "this is not a database, just some text that is long enough to be read as a header".repeat(20));
    expect(() => Store.open({ path: notADb })).toThrow(expect.objectContaining({ code: "STORE_OPEN_FAILED" }));
    expect(() => Store.open({ busyTimeoutMs: 2.5 })).toThrow(expect.objectContaining({ code: "STORE_OPEN_FAILED", message: expect.stringContaining("busyTimeoutMs must be a whole number of milliseconds") }));
  });

  it("a transaction rolled back leaves nothing behind; a savepoint rolls back only its own writes", () => {
    const store = Store.open();
    const outer = store.begin();
    store.insertRecord("account", "00000000-0000-4000-8000-000000000001", { name: "kept" });
    const inner = store.begin();
    store.insertRecord("account", "00000000-0000-4000-8000-000000000002", { name: "undone" });
    inner.rollback();
    outer.commit();
    expect(store.allRecords().map((r) => r.attributes.name)).toEqual(["kept"]);
    const again = store.begin();
    store.insertRecord("account", "00000000-0000-4000-8000-000000000003", { name: "gone" });
    again.rollback();
    expect(store.allRecords()).toHaveLength(1);
    store.close();
  });

  it("a held savepoint (a test host's snapshot): transactions commit inside it, rolling back to it undoes them and keeps it held, and the savepoints held after it go", () => {
    const store = Store.open();
    const a = "6d81597f-0f9f-e711-8122-000d3aa2331c";
    const b = "7e92608f-1f9f-e711-8122-000d3aa2331c";
    store.holdSavepoint("first");
    store.transaction(() => store.insertRecord("account", a, { name: "A" }));
    store.holdSavepoint("second");
    store.transaction(() => store.insertRecord("account", b, { name: "B" }));
    expect(store.allRecords().map((r) => r.id)).toEqual([a, b]);

    expect(store.rollbackToHeld("second")).toBe(true);
    expect(store.allRecords().map((r) => r.id)).toEqual([a]);
    expect(store.rollbackToHeld("first")).toBe(true);
    expect(store.allRecords()).toEqual([]);
    expect(store.rollbackToHeld("second")).toBe(false);
    store.transaction(() => store.insertRecord("account", b, { name: "B" }));
    expect(store.rollbackToHeld("first")).toBe(true);
    expect(store.allRecords()).toEqual([]);
    store.close();
  });

  it("beginWrite: while another process holds the write lock it waits with the event loop free, and begins once the lock is let go", async () => {
    const file = path.join(dir, "shared.db");
    const holder = Store.open({ path: file });
    const waiter = Store.open({ path: file, busyTimeoutMs: 5_000 });
    try {
      const held = holder.begin();
      let settled = false;
      const begun = waiter.beginWrite();
      begun.then(
        () => (settled = true),
        () => (settled = true),
      );
      // Turns of the event loop go on while the write lock is taken (a synchronous wait would hold
      // them back until busyTimeoutMs, and beginWrite would have failed by then).
      for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
      expect(settled).toBe(false);
      held.commit();
      const transaction = await begun;
      waiter.insertRecord("account", "00000000-0000-4000-8000-000000000009", { name: "after the wait" });
      transaction.commit();
      expect(holder.getRecord("account", "00000000-0000-4000-8000-000000000009")?.attributes).toEqual({ name: "after the wait" });
      expect(waiter.inTransaction).toBe(false);
    } finally {
      holder.close();
      waiter.close();
    }
  });

  it("beginWrite: a write lock held past busyTimeoutMs fails with STORE_BUSY naming the file, and leaves no transaction open", async () => {
    const file = path.join(dir, "held.db");
    const holder = Store.open({ path: file });
    const waiter = Store.open({ path: file, busyTimeoutMs: 50 });
    try {
      const held = holder.begin();
      await expect(waiter.beginWrite()).rejects.toMatchObject({ code: "STORE_BUSY", message: expect.stringContaining(`write lock of ${file}`) });
      expect(waiter.inTransaction).toBe(false);
      expect(waiter.db.pragma("busy_timeout", { simple: true })).toBe(50); // the store's own wait is back for other writes
      held.rollback();
      const transaction = await waiter.beginWrite();
      transaction.commit();
    } finally {
      holder.close();
      waiter.close();
    }
  });

  it("acquire: one holder at a time, in the order they asked", async () => {
    const store = Store.open();
    const order: string[] = [];
    const first = await store.acquire();
    const second = store.acquire().then((release) => {
      order.push("second");
      release();
    });
    order.push("first");
    first();
    await second;
    expect(order).toEqual(["first", "second"]);
    store.close();
    await expect(store.acquire()).rejects.toMatchObject({ code: "STORE_CLOSED" });
  });

  it("two processes opening a store of an older schema at the same moment: it is migrated once, and both open it", async () => {
    const file = path.join(dir, "race.db");
    const store = Store.open({ path: file });
    store.db.exec("CREATE INDEX system_jobs_ready ON system_jobs (state_code, postpone_until, sequence); ALTER TABLE system_jobs DROP COLUMN post; UPDATE plugbox_schema SET version = 2;");
    store.close();
    const opener = path.join(dir, "open.mjs");
    writeFileSync(
      opener,
      // The child loads the store module alone (not the test-hooks entry), so that both are ready at once.
      `import { Store } from ${JSON.stringify(new URL("../../../dist/host/store/store.js", import.meta.url).href)};
process.send("loaded");
process.once("message", () => {
  try { Store.open({ path: process.argv[2] }).close(); process.send("opened"); }
  catch (error) { process.send(\`failed: \${error.code} \${error.message}\`); }
  process.disconnect();
});`,
    );
    const children = [0, 1].map(() => fork(opener, [file], { stdio: ["ignore", "ignore", "inherit", "ipc"] }));
    const said = children.map((child) => {
      const messages: unknown[] = [];
      child.on("message", (m) => messages.push(m));
      return messages;
    });
    // Both have loaded the store module (however long that takes on a busy machine) before either opens the file.
    await Promise.all(children.map((child) => new Promise<void>((resolve) => child.on("message", (m) => m === "loaded" && resolve()))));
    for (const child of children) child.send("go");
    await Promise.all(children.map((child) => new Promise((resolve) => child.once("exit", resolve))));
    expect(said.map((m) => m.at(-1))).toEqual(["opened", "opened"]);
    const migrated = Store.open({ path: file });
    expect(migrated.db.prepare("SELECT version FROM plugbox_schema").all()).toEqual([{ version: SCHEMA_VERSION }]);
    migrated.close();
  });

  it("a store of an older schema is migrated when it opens, keeping its data", async () => {
    const file = path.join(dir, "old.db");
    const store = Store.open({ path: file });
    store.insertRecord("account", "6d81597f-0f9f-e711-8122-000d3aa2331c", { name: "kept" });
    // Back to version 1: without the indexes version 2 adds, with the one version 3 drops, without the column version 4 adds.
    store.db.exec("DROP INDEX system_jobs_state_sequence; DROP INDEX system_jobs_lease; CREATE INDEX system_jobs_ready ON system_jobs (state_code, postpone_until, sequence); ALTER TABLE system_jobs DROP COLUMN post; UPDATE plugbox_schema SET version = 1;");
    // A job queued then: its context in plugbox JSON.
    store.db
      .prepare("INSERT INTO system_jobs (id, sequence, name, operation_type, state_code, status_code, data, created_on) VALUES (?, 1, 'old', 1, 0, 0, ?, ?)")
      .run("0b5ed3a4-4d3c-4ad2-9a8f-2f0c6a0d6f11", JSON.stringify({ messageName: "Create", operationCreatedOn: { $type: "DateTime", value: "2026-01-02T03:04:05.000Z" } }), "2026-01-02T03:04:05.000Z");
    store.close();
    const migrated = Store.open({ path: file });
    expect(await new JobQueue(migrated, systemClock).data("0b5ed3a4-4d3c-4ad2-9a8f-2f0c6a0d6f11")).toEqual({ messageName: "Create", operationCreatedOn: new Date("2026-01-02T03:04:05.000Z") });
    expect(migrated.db.prepare("SELECT version FROM plugbox_schema").get()).toEqual({ version: SCHEMA_VERSION });
    const indexes = (migrated.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'system_jobs'").all() as Array<{ name: string }>).map((r) => r.name);
    expect(indexes).toEqual(expect.arrayContaining(["system_jobs_state_sequence", "system_jobs_lease"]));
    expect(indexes).not.toContain("system_jobs_ready");
    expect(migrated.getRecord("account", "6d81597f-0f9f-e711-8122-000d3aa2331c")?.attributes).toEqual({ name: "kept" });
    migrated.close();
  });
});
