/**
 * CLI commands over the records in a store: `data import`, `export`, `backup` and `restore`.
 */
import type { Command } from "commander";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fromPlain, isPlainObject } from "../../sdk/codec.js";
import { UsageError } from "../errors.js";
import { CliError } from "./errors.js";
import { isPostgresUrl } from "../store/open.js";
import { redactUrl } from "../store/postgres/errors.js";
import { assertStoreExists, DB_FLAG, readJson, STORE_CHECK_FLAG, STORE_DEFAULT, withHost, type CliIo, type HostFlags } from "./command-host.js";
import type { PlugboxHost } from "../host.js";
import { storedAttributes } from "../organization/core.js";
import { isGuid } from "../ids.js";
import { Store, toStoreError } from "../store/store.js";
import { backupStore, restoreStore } from "../store/backup.js";

/** Writes an output file; a folder that does not exist, a folder in its place or a refusing disk is OUTPUT_NOT_WRITABLE. */
export async function writeOutput(file: string, text: string): Promise<void> {
  try {
    await writeFile(file, text);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const why =
      code === "ENOENT" ? `the folder ${path.dirname(path.resolve(file))} does not exist; create it first`
      : code === "EISDIR" ? "it is a folder; name a file"
      : code === "ENOSPC" ? "the disk is full"
      : `${(error as Error).message}`;
    throw new CliError("OUTPUT_NOT_WRITABLE", `cannot write ${file}: ${why}`);
  }
}

/** Imports records: `{ "account": [ { "id": "…", "attributes": { … } } ] }`. Replaces records that exist. */
export async function importData(host: PlugboxHost, value: unknown, file: string): Promise<number> {
  if (!isPlainObject(value)) throw new UsageError("INPUT_INVALID_JSON", `${file} must hold { "<table>": [ { "id": "<guid>", "attributes": { … } } ] }`);
  const rows: Array<{ table: string; id: string; attributes: Record<string, unknown> }> = [];
  for (const [table, list] of Object.entries(value)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(table)) throw new UsageError("INPUT_INVALID_JSON", `${file}: ${JSON.stringify(table)} is not a table name`);
    if (!Array.isArray(list)) throw new UsageError("INPUT_INVALID_JSON", `${file}: ${table} must be an array of records`);
    list.forEach((record, i) => {
      const at = `${file}: ${table}[${i}]`;
      if (!isPlainObject(record)) throw new UsageError("INPUT_INVALID_JSON", `${at} must be { "id": "<guid>", "attributes": { … } }`);
      if (!isGuid(record.id)) throw new UsageError("INPUT_INVALID_JSON", `${at}.id must be a Guid, got ${JSON.stringify(record.id)}`);
      if (record.attributes !== undefined && !isPlainObject(record.attributes)) throw new UsageError("INPUT_INVALID_JSON", `${at}.attributes must be an object`);
      let attributes: Record<string, unknown>;
      try {
        attributes = storedAttributes(table, fromPlain(record.attributes ?? {}) as Record<string, unknown>, host.registry.schemaFor(table));
      } catch (error) {
        throw new UsageError("INPUT_INVALID_JSON", `${at}: ${(error as Error).message}`);
      }
      rows.push({ table, id: record.id.toLowerCase(), attributes: { ...attributes, [`${table}id`]: record.id.toLowerCase() } });
    });
  }
  await host.store.write(async () => {
    for (const row of rows) {
      if (!(await host.store.replaceRecord(row.table, row.id, row.attributes))) await host.store.insertRecord(row.table, row.id, row.attributes);
    }
  }).catch((error: unknown) => {
    throw toStoreError(error, host.store.path);
  });
  return rows.length;
}

export function registerDataCommands(program: Command, io: CliIo): void {
  const data = program.command("data").description("import and export records as JSON; back up and restore the store");
  data
    .command("import")
    .description("load records into the store (made if it does not exist); a record whose id is there already is replaced")
    .argument("<file>", 'the records: { "<table>": [ { "id": "<guid>", "attributes": { … } } ] }')
    .option("--db <path>", "the store file, made if it does not exist", STORE_DEFAULT)
    .option("--manifest <plugbox.json>", "a manifest whose table schemas check the records")
    .option(...STORE_CHECK_FLAG)
    .action(async (file: string, flags: HostFlags & { db: string }) => {
      await withHost(flags, async (host) => {
        const count = await importData(host, await readJson(file, "data"), file);
        io.out(`imported ${count} record(s) into ${flags.db}`);
      });
    });
  data
    .command("export")
    .description('print the store\'s records as JSON, in the shape `data import` reads: { "<table>": [ { "id", "attributes" } ] }')
    .option(...DB_FLAG)
    .option("--entity <logicalName>", "only this table")
    .option("-o, --outfile <file>", "write to a file instead of standard output")
    .option(...STORE_CHECK_FLAG)
    .action(async (flags: HostFlags & { db: string; entity?: string; outfile?: string }) => {
      await withHost({ ...flags, existingStore: true }, async (host) => {
        const rows = await host.records();
        const out: Record<string, Array<{ id: string; attributes: Record<string, unknown> }>> = {};
        for (const row of rows) {
          if (flags.entity && row.entity !== flags.entity) continue;
          (out[row.entity] ??= []).push({ id: row.id, attributes: row.attributes });
        }
        const text = JSON.stringify(out, null, 2);
        if (flags.outfile) {
          await writeOutput(flags.outfile, `${text}\n`);
          io.out(`exported ${rows.length} record(s) to ${flags.outfile}`);
        } else io.out(text);
      });
    });
  data
    .command("backup")
    .description("copy the store into a backup file with SQLite's online backup (the store stays in use)")
    .option(...DB_FLAG)
    .requiredOption("-o, --outfile <backup.db>", "the backup file (replaced if it exists)")
    .option(...STORE_CHECK_FLAG)
    .action(async (flags: HostFlags & { db: string; outfile: string }) => {
      const store = openStoreFor(flags.db, flags.storeCheck !== false);
      try {
        const result = await backupStore(store, flags.outfile);
        io.out(`backed up ${flags.db} to ${flags.outfile} (${result.pages} pages, ${result.bytes} bytes)`);
      } finally {
        store.close();
      }
    });
  data
    .command("restore")
    .description("replace the store with a backup made by `plugbox data backup`; the file it replaces is kept beside it")
    .argument("<backup>", "the backup file")
    .option("--db <path>", "the store file to replace (made if it does not exist)", STORE_DEFAULT)
    .action(async (backup: string, flags: { db: string }) => {
      refusePostgres(flags.db, "restore");
      const result = await restoreStore(backup, flags.db);
      io.out(`restored ${flags.db} from ${backup} (${result.pages} pages)${result.replaced ? `; the file it replaced is kept as ${result.replaced}` : ""}`);
    });
}

/** Opens a store file that must exist (a backup of a file that is not there is a mistake, not a new store). */
function openStoreFor(db: string, quickCheck: boolean): Store {
  refusePostgres(db, "backup");
  assertStoreExists(db);
  return Store.open({ path: db, quickCheck });
}

/** Backups are SQLite's online backup of a store file; a PostgreSQL database has its own tools. */
function refusePostgres(db: string, command: "backup" | "restore"): void {
  if (!isPostgresUrl(db)) return;
  const tool = command === "backup" ? "pg_dump (e.g. `pg_dump -Fc -f plugbox.dump <url>`)" : "pg_restore (e.g. `pg_restore --clean -d <url> plugbox.dump`)";
  throw new CliError("CLI_USAGE", `plugbox data ${command} copies a store file; ${redactUrl(db)} is a PostgreSQL database: use ${tool}`);
}
