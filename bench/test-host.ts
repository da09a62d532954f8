/**
 * Test host benchmark: what a test of plugbox/testing's createTestHost costs. 200 tests, each a
 * `restore` of the same snapshot and one Create with one synchronous stage-20 plug-in through the
 * whole pipeline, against the same plug-in executed 200 times directly on the same runtime; in
 * `fresh` (the default) and `reuse` isolation, and `fresh` with two sandbox workers (whose pools of
 * pre-warmed isolates refill side by side). Then the ways a snapshot could come back, weighed on
 * a store of the same shape: a savepoint held open and rolled back to (what the test host does), the
 * rows kept in memory and written back (its fallback), a copy in an attached in-memory schema, and
 * better-sqlite3's serialize() with a new connection.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { loadBundleFile } from "../runtime/index.js";
import { Store } from "../host/store/store.js";
import { createTestHost } from "../host/testing/test-host.js";
import { Entity } from "../sdk/model.js";
import { PLUGIN_SOURCE } from "./pipeline.js";
import type { BenchRow } from "./row.js";


const TESTS = 200;

async function msPer(count: number, fn: (i: number) => Promise<unknown> | unknown): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < count; i++) await fn(i);
  return (performance.now() - started) / count;
}

/** 200 × (restore + Create) on a test host, against 200 × the plug-in on the host's runtime. */
async function perTest(bundlePath: string, isolation: "fresh" | "reuse", workers = 1): Promise<BenchRow[]> {
  await using host = await createTestHost({
    workers,
    steps: [{ bundle: bundlePath, type: "Numbering", message: "Create", entity: "account", stage: 20, isolation }],
    seed: { account: Array.from({ length: 20 }, (_, i) => ({ name: `Seeded ${i}` })) },
  });
  const clean = host.snapshot();
  const test = async (i: number) => {
    await host.restore(clean);
    await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: `Account ${i}` }) } });
  };
  const bundle = await loadBundleFile(bundlePath);
  const direct = (i: number) =>
    host.host.runtime.execute({
      bundle,
      typeName: "Numbering",
      isolation,
      context: { messageName: "Create", primaryEntityName: "account", stage: 20, inputParameters: { Target: { logicalName: "account", id: "00000000-0000-0000-0000-000000000000", attributes: { name: `Account ${i}` } } }, outputParameters: {}, sharedVariables: {} },
    });
  // Warm both paths, then measure them alternately, twice, and keep the better of each.
  await msPer(20, test);
  await msPer(20, direct);
  let hostMs = Infinity;
  let directMs = Infinity;
  for (let round = 0; round < 2; round++) {
    hostMs = Math.min(hostMs, await msPer(TESTS, test));
    directMs = Math.min(directMs, await msPer(TESTS, direct));
  }
  // The restore alone, after one write each time (so that it copies back).
  let restoreTotal = 0;
  for (let i = 0; i < TESTS; i++) {
    host.store.seed({ account: [{ name: `Written ${i}` }] });
    const started = performance.now();
    await host.restore(clean);
    restoreTotal += performance.now() - started;
  }
  const restoreMs = restoreTotal / TESTS;
  const createMs = await msPer(TESTS, (i) => host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: `Account ${i}` }) } }));
  const what = `${isolation}${workers > 1 ? `, ${workers} workers` : ""}`;
  return [
    { name: `test host: restore + Create with one sync plug-in (${what}), per test over ${TESTS}`, value: hostMs, unit: "ms", baseline: `the plug-in on the runtime directly: ${directMs.toFixed(2)} ms`, ratio: hostMs / directMs, goal: isolation === "fresh" ? "< 5 ms per test" : "" },
    { name: `… of which the restore (20 seeded records, one written since)`, value: restoreMs * 1000, unit: "µs", baseline: "the whole test", ratio: restoreMs / hostMs },
    { name: `… a Create alone, no restore (${what})`, value: createMs, unit: "ms", baseline: "the plug-in on the runtime directly", ratio: createMs / directMs },
  ];
}

/** The ways to come back to a snapshot, on a store of the same shape holding `records` accounts, one insert undone each time. */
function mechanisms(records: number): BenchRow[] {
  const store = Store.open();
  const { db } = store;
  const insert = db.prepare("INSERT INTO records (entity, id, attributes, version) VALUES ('account', ?, ?, 1)");
  const attributes = (i: number) => JSON.stringify({ name: `Account ${i}`, accountnumber: `ACC-${i}`, statecode: { $type: "OptionSetValue", value: 0 } });
  db.transaction(() => {
    for (let i = 0; i < records; i++) insert.run(`seed-${i}`, attributes(i));
  })();
  const tables = ["records", "relationships", "system_jobs", "trace_logs", "table_schemas"];
  const rounds = 2_000;
  const time = (fn: (i: number) => void) => {
    const started = performance.now();
    for (let i = 0; i < rounds; i++) fn(i);
    return ((performance.now() - started) / rounds) * 1000;
  };

  // 1. What the test host does: a savepoint held open across the test, rolled back to (and kept).
  db.exec("SAVEPOINT snapshot");
  const savepoint = time((i) => {
    insert.run(`new-${i}`, attributes(i));
    db.exec("ROLLBACK TO snapshot");
  });
  db.exec("RELEASE snapshot");

  // 2. Its fallback (a snapshot whose savepoint went with the restore of an earlier one): the rows kept in memory, written back in one transaction.
  const kept = tables.map((t) => {
    const select = db.prepare(`SELECT * FROM main.${t}`).raw();
    return { clear: db.prepare(`DELETE FROM main.${t}`), insert: db.prepare(`INSERT INTO main.${t} VALUES (${select.columns().map(() => "?").join(", ")})`), rows: select.all() as unknown[][] };
  });
  const writeBack = db.transaction(() => kept.forEach((k) => (k.clear.run(), k.rows.forEach((r) => k.insert.run(...r)))));
  const inMemory = time((i) => {
    insert.run(`new-${i}`, attributes(i));
    writeBack();
  });

  // 3. A copy in an attached in-memory schema, copied back in one transaction.
  db.exec("ATTACH DATABASE ':memory:' AS snaps");
  for (const t of tables) db.exec(`CREATE TABLE snaps.${t} AS SELECT * FROM main.${t}`);
  const back = tables.flatMap((t) => [db.prepare(`DELETE FROM main.${t}`), db.prepare(`INSERT INTO main.${t} SELECT * FROM snaps.${t}`)]);
  const copyBack = db.transaction(() => back.forEach((s) => s.run()));
  const attached = time((i) => {
    insert.run(`new-${i}`, attributes(i));
    copyBack();
  });

  // 4. serialize() once, then a new connection from the bytes each time: every prepared statement is
  // gone with the old connection, so the store's (about 15) are prepared again.
  const image = db.serialize();
  let current = new Database(image);
  const serialized = time((i) => {
    current.prepare("INSERT INTO records (entity, id, attributes, version) VALUES ('account', ?, ?, 1)").run(`new-${i}`, attributes(i));
    current.close();
    current = new Database(image);
    for (let s = 0; s < 15; s++) current.prepare("SELECT attributes, version FROM records WHERE entity = ? AND id = ?");
  });
  current.close();
  store.close();
  const row = (name: string, value: number): BenchRow => ({ name: `restore by ${name}, ${records} records`, value, unit: "µs", baseline: `a savepoint: ${savepoint.toFixed(1)} µs`, ratio: value / savepoint });
  return [
    row("a savepoint rolled back to (chosen)", savepoint),
    row("rows kept in memory, written back (the fallback)", inMemory),
    row("a copy in an attached schema, copied back", attached),
    row("serialize() and a new connection", serialized),
  ];
}

export async function runTestHostBench(): Promise<BenchRow[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-bench-testhost-"));
  try {
    const bundlePath = path.join(dir, "numbering.js");
    writeFileSync(bundlePath, PLUGIN_SOURCE);
    const rows: BenchRow[] = [];
    for (const isolation of ["fresh", "reuse"] as const) rows.push(...(await perTest(bundlePath, isolation)));
    rows.push(...(await perTest(bundlePath, "fresh", 2)));
    for (const records of [20, 1_000]) rows.push(...mechanisms(records));
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
