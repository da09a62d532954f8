// Measures node:sqlite against better-sqlite3 on the statements the store runs most, in one process
// (so both see the same machine load): `node bench/sqlite-drivers.mjs` on Node 22 or later, after
// `npm ci` with that Node. Not part of `npm run bench`: it decides whether a second store engine
// would pay for itself, and its figures are in docs/node-versions.md.
import Database from "better-sqlite3";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const { DatabaseSync } = await import("node:sqlite");
const ROWS = 20_000;
const attributes = JSON.stringify({ name: "Contoso", description: "x".repeat(200), revenue: 1_000_000, statecode: 0, primarycontactid: { logicalName: "contact", id: "00000000-0000-0000-0000-000000000001" } });

function open(driver, file) {
  const db = driver === "better-sqlite3" ? new Database(file) : new DatabaseSync(file);
  for (const pragma of ["page_size = 8192", "journal_mode = WAL", "synchronous = NORMAL"]) db.exec(`PRAGMA ${pragma}`);
  db.exec("CREATE TABLE records (entity TEXT NOT NULL, id TEXT NOT NULL, attributes TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (entity, id)) WITHOUT ROWID");
  return db;
}

function time(fn, ops) {
  const started = performance.now();
  fn();
  return Math.round(ops / ((performance.now() - started) / 1000));
}

function measure(driver) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-sqlite-"));
  const db = open(driver, path.join(dir, "store.db"));
  const begin = db.prepare("BEGIN IMMEDIATE");
  const commit = db.prepare("COMMIT");
  const insert = db.prepare("INSERT INTO records (entity, id, attributes, version) VALUES (?, ?, ?, 1)");
  const get = db.prepare("SELECT attributes, version FROM records WHERE entity = ? AND id = ?");
  const update = db.prepare("UPDATE records SET attributes = ?, version = version + 1 WHERE entity = ? AND id = ?");
  const all = db.prepare("SELECT entity, id, attributes, version FROM records ORDER BY entity, id");
  const ids = Array.from({ length: ROWS }, (_, i) => `00000000-0000-0000-0000-${String(i).padStart(12, "0")}`);
  const result = {
    "insert (one transaction), rows/s": time(() => {
      begin.run();
      for (const id of ids) insert.run("account", id, attributes);
      commit.run();
    }, ROWS),
    "get by key, rows/s": time(() => {
      for (let n = 0; n < 3; n++) for (const id of ids) get.get("account", id);
    }, 3 * ROWS),
    "update, a transaction each (WAL), ops/s": time(() => {
      for (const id of ids.slice(0, 5_000)) {
        begin.run();
        update.run(attributes, "account", id);
        commit.run();
      }
    }, 5_000),
    "scan all rows, rows/s": time(() => {
      for (let n = 0; n < 5; n++) all.all();
    }, 5 * ROWS),
  };
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return result;
}

const rounds = { "better-sqlite3": [], "node:sqlite": [] };
for (let round = 0; round < 5; round++) for (const driver of Object.keys(rounds)) rounds[driver].push(measure(driver));
const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
console.log(`node ${process.version}, better-sqlite3 ${(await import("better-sqlite3/package.json", { with: { type: "json" } })).default.version}, SQLite ${new DatabaseSync(":memory:").prepare("SELECT sqlite_version() AS v").get().v}; median of 5 rounds`);
console.log("| operation | better-sqlite3 | node:sqlite | node:sqlite / better-sqlite3 |");
console.log("| --- | ---: | ---: | ---: |");
for (const name of Object.keys(rounds["better-sqlite3"][0])) {
  const b = median(rounds["better-sqlite3"].map((r) => r[name]));
  const n = median(rounds["node:sqlite"].map((r) => r[name]));
  console.log(`| ${name} | ${b.toLocaleString("en-US")} | ${n.toLocaleString("en-US")} | ${(n / b).toFixed(2)}x |`);
}
