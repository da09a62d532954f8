/**
 * CLI commands over the pipeline and the store: `exec`, `jobs`, `data`.
 */
import { InvalidArgumentError, type Command } from "commander";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fromPlain, isPlainObject, toPlain } from "../../sdk/codec.js";
import { isolatedVmBinding, type InspectorOptions } from "../../runtime/index.js";
import { INSPECT_BRK_FLAG, INSPECT_FLAG, inspectorFromFlags, type InspectFlags } from "./inspect-flags.js";
import { PlugboxError } from "../../sdk/errors.js";
import { UsageError } from "../errors.js";
import { CliError } from "./errors.js";
import { exitStatusOf } from "./exit-statuses.js";
import { createHost, type PlugboxHost } from "../host.js";
import { runJobsInProcesses } from "../job-processes.js";
import { jobRunnerDefaults, type JobOutcome } from "../jobs/runner.js";
import { describeState, type SystemJob } from "../jobs/queue.js";
import { readRequest, type JournalRequest } from "../pipeline/pipeline.js";
import { storedAttributes } from "../organization/core.js";
import { isGuid } from "../ids.js";
import { readJsonInput } from "../json-input.js";
import { Store, toStoreError } from "../store/store.js";
import { backupStore, restoreStore } from "../store/backup.js";
import type { WebPolicyInput } from "../web/index.js";

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  setExitCode: (code: number) => void;
}

/** A JSON input file, within plugbox's size and depth limits (INPUT_NOT_FOUND, INPUT_INVALID_JSON, INPUT_TOO_LARGE, INPUT_TOO_DEEP). */
export function readJson(file: string, what: string): Promise<unknown> {
  return readJsonInput(file, what);
}

/** A JSON input file with plugbox JSON's typed values read (a Money that is not a number is INPUT_INVALID_JSON). */
export async function readPlugboxJson(file: string, what: string): Promise<unknown> {
  const value = await readJson(file, what);
  try {
    return fromPlain(value);
  } catch (error) {
    throw new UsageError("INPUT_INVALID_JSON", `the ${what} file ${file} holds a value plugbox cannot read: ${(error as Error).message}`);
  }
}

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

/**
 * The journal of a request, one line per request and step. `reported` is the error printed after it:
 * a line that would repeat it says only that it failed, so the message is printed once.
 */
export function journalLines(journal: JournalRequest, indent = "", reported?: { code: string; message: string }): string[] {
  const same = (error: { code: string; message: string } | undefined) => error !== undefined && reported !== undefined && error.code === reported.code && error.message === reported.message;
  const failure = (error: { code: string; message: string } | undefined, sep: string) => (error && !same(error) ? `${sep}[${error.code}] ${error.message}` : "");
  const what = `${journal.message}${journal.entity ? ` of ${journal.entity}` : ""}${journal.id ? ` ${journal.id}` : ""}`;
  const lines = [`${indent}${journal.outcome === "ok" ? "ok" : "FAILED"}: ${what} (depth ${journal.depth}) in ${journal.durationMs.toFixed(1)} ms${failure(journal.error, " — ")}`];
  for (const step of journal.steps) {
    lines.push(`${indent}  stage ${step.stage} ${step.mode}: ${step.name} — ${step.outcome}${failure(step.error, " ")} (${step.durationMs.toFixed(1)} ms)`);
    for (const line of step.trace ? step.trace.split("\n") : []) lines.push(`${indent}    | ${line}`);
    for (const call of step.calls) lines.push(`${indent}    ${call.service}.${call.op} ${call.ok ? "ok" : `failed [${call.error?.code}]`}`);
    for (const nested of step.requests) lines.push(...journalLines(nested, `${indent}    `, reported));
  }
  for (const job of journal.jobs) lines.push(`${indent}  queued system job ${job}`);
  return lines;
}

/** A failed request's error: its code, the plug-in's own code inside it, and the plug-in's stack mapped to its sources. */
function failureLines(error: PlugboxError): string[] {
  const inner = (error as { innerCode?: unknown }).innerCode;
  const stack = error.details?.pluginStack;
  const frames = typeof stack === "string" ? stack.split("\n").slice(1).map((line) => `    ${line.trim()}`) : [];
  const lines = [`plugbox: error [${error.code}]: ${error.message}`];
  if (typeof inner === "string" && inner !== error.code) lines.push(`  inner error [${inner}]${frames.length > 0 ? ", thrown at:" : ""}`);
  return [...lines, ...frames];
}

function jobLine(job: SystemJob): string {
  return `${job.id}  #${job.sequence}  ${describeState(job).padEnd(30)} ${job.name}${job.retryCount ? `  (retries: ${job.retryCount})` : ""}${job.message ? `  — ${job.message}` : ""}`;
}

/** The system jobs a request and the requests its plug-ins made queued. */
function queuedJobs(journal: JournalRequest): number {
  return journal.jobs.length + journal.steps.reduce((sum, step) => sum + step.requests.reduce((n, nested) => n + queuedJobs(nested), 0), 0);
}

/** `exec` without --db keeps its store in memory: the jobs it queued end with the command unless they run first. */
function droppedJobsWarning(count: number): string {
  const jobs = count === 1 ? "1 system job was" : `${count} system jobs were`;
  return `${jobs} queued in the in-memory store and not kept (exec ran without --db); pass --run-jobs to run them before exec exits, or --db <file> to keep them for \`plugbox jobs run\``;
}

async function readWebPolicy(file: string): Promise<WebPolicyInput> {
  const policy = await readJson(file, "web policy");
  if (!isPlainObject(policy)) throw new UsageError("INPUT_INVALID_JSON", `the web policy file ${file} must hold a JSON object`);
  return policy as WebPolicyInput;
}

const STORE_DEFAULT = "plugbox.db";
/** The --db flag of the commands that work on a store file that exists. */
const DB_FLAG = ["--db <path>", "the store file (it must exist)", STORE_DEFAULT] as const;

/** The flag that skips the store's quick_check when it opens (for a large store checked otherwise). */
export const STORE_CHECK_FLAG = ["--no-store-check", "open the store without SQLite's quick_check (faster for a large store; a damaged one is then found only when read)"] as const;

interface HostFlags {
  /** Debug mode of the sandbox runtime (`--inspect`), set from the command's flags only. */
  inspector?: InspectorOptions;
  manifest?: string;
  db?: string;
  webPolicy?: string;
  secrets?: string;
  /** false with --no-store-check */
  storeCheck?: boolean;
  leaseMs?: number;
}

/**
 * A store file a command reads or works on must be there already: a mistyped --db is refused, not
 * answered from a new, empty store left behind in its place.
 */
function assertStoreExists(db: string): void {
  if (db === ":memory:" || existsSync(db)) return;
  throw new UsageError("INPUT_NOT_FOUND", `the store ${db} does not exist (check --db; a store is made by \`plugbox exec --db ${db}\` or \`plugbox data import <file.json> --db ${db}\`)`);
}

async function withHost<T>(options: HostFlags & { existingStore?: boolean }, fn: (host: PlugboxHost) => Promise<T>): Promise<T> {
  if (options.existingStore) assertStoreExists(options.db ?? STORE_DEFAULT);
  const webPolicy = options.webPolicy ? await readWebPolicy(options.webPolicy) : undefined;
  await using host = await createHost({
    ...(options.manifest ? { manifest: options.manifest } : {}),
    db: options.db ?? ":memory:",
    runJobs: false,
    runtimeOptions: { workers: 1, prewarmIsolates: 1, ...(options.inspector ? { inspector: options.inspector } : {}) },
    storeOptions: { quickCheck: options.storeCheck !== false },
    ...(options.leaseMs !== undefined ? { jobs: { leaseMs: options.leaseMs } } : {}),
    ...(webPolicy ? { webPolicy } : {}),
    ...(options.secrets ? { secrets: { file: options.secrets } } : {}),
  });
  return await fn(host);
}

function leaseMs(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 100 || n > 86_400_000) throw new InvalidArgumentError("expected a whole number of milliseconds from 100 to 86400000");
  return n;
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
  await host.store.write(() => {
    for (const row of rows) {
      if (!host.store.replaceRecord(row.table, row.id, row.attributes)) host.store.insertRecord(row.table, row.id, row.attributes);
    }
  }).catch((error: unknown) => {
    throw toStoreError(error, host.store.path);
  });
  return rows.length;
}

export function registerPipelineCommands(program: Command, io: CliIo): void {
  program
    .command("exec")
    .description("run one request through the event pipeline against the store")
    .requiredOption("--manifest <plugbox.json>", "the manifest of bundles, steps and endpoints")
    .requiredOption("--request <file.json>", 'the request: { "requestName": "Create", "parameters": { "Target": { … } } }')
    .option("--db <path>", "the store file, made if it does not exist (default: in memory, gone after the command with the system jobs it queued)")
    .option("--data <file.json>", "records to load into the store first")
    .option("--run-jobs", "run the system jobs the request queued before exiting")
    .option("--web-policy <file.json>", "widen or tune the outbound web policy")
    .option("--secrets <file.json>", "where service endpoints' file:NAME secrets come from")
    .option("--json", "print one JSON object { ok, error?, response, journal, jobs, sandbox: { node, isolatedVm, package } }")
    .option(...STORE_CHECK_FLAG)
    .option(...INSPECT_FLAG)
    .option(...INSPECT_BRK_FLAG)
    .action(async (flags: HostFlags & InspectFlags & { manifest: string; request: string; data?: string; runJobs?: boolean; json?: boolean }) => {
      const request = readRequest(await readPlugboxJson(flags.request, "request"), flags.request);
      const inspector = inspectorFromFlags(flags, io.err);
      await withHost({ ...flags, ...(inspector ? { inspector } : {}) }, async (host) => {
        if (flags.data) await importData(host, await readJson(flags.data, "data"), flags.data);
        try {
          const result = await host.execute(request);
          const jobs = flags.runJobs ? await host.runJobs() : [];
          const dropped = flags.db === undefined && !flags.runJobs ? queuedJobs(result.journal) : 0;
          const warning = dropped > 0 ? droppedJobsWarning(dropped) : undefined;
          if (flags.json) io.out(JSON.stringify({ ok: true, response: toPlain(result.response), journal: result.journal, jobs, ...(warning ? { warnings: [warning] } : {}), sandbox: isolatedVmBinding() }, null, 2));
          else {
            for (const line of journalLines(result.journal)) io.out(line);
            io.out(`response: ${JSON.stringify(toPlain(result.response))}`);
            for (const job of jobs) io.out(`job ${job.id}: ${job.outcome}${job.message ? ` — ${job.message}` : ""}`);
          }
          if (warning) io.err(`plugbox: warning: ${warning}`);
          if (result.journal.traceLogError) io.err(`plugbox: warning [${result.journal.traceLogError.code}]: ${result.journal.traceLogError.message}`);
        } catch (error) {
          if (!(error instanceof PlugboxError)) throw error;
          const journal = (error as { journal?: JournalRequest }).journal;
          const inner = (error as { innerCode?: string }).innerCode;
          const stack = typeof error.details?.pluginStack === "string" ? error.details.pluginStack : undefined;
          if (flags.json) io.out(JSON.stringify({ ok: false, error: { code: error.code, message: error.message, ...(inner ? { innerCode: inner } : {}), ...(stack ? { stack } : {}) }, journal, sandbox: isolatedVmBinding() }, null, 2));
          else {
            if (journal) for (const line of journalLines(journal, "", error)) io.err(line);
            for (const line of failureLines(error)) io.err(line);
          }
          io.setExitCode(exitStatusOf(inner ?? error.code));
        }
      });
    });

  const jobs = program.command("jobs").description("list, show, retry, cancel and run system jobs (asynchronous steps)");
  jobs
    .command("list")
    .description("list the system jobs in the store, in the order they were queued, with their state")
    .option(...DB_FLAG)
    .option("--json", "print the jobs as a JSON array")
    .option(...STORE_CHECK_FLAG)
    .action(async (flags: HostFlags & { json?: boolean }) => {
      await withHost({ ...flags, existingStore: true }, async (host) => {
        const list = await host.listJobs();
        if (flags.json) io.out(JSON.stringify(list, null, 2));
        else if (list.length === 0) io.out("no system jobs");
        else for (const job of list) io.out(jobLine(job));
      });
    });
  jobs
    .command("show")
    .description("print one system job and the execution context it runs with, as JSON")
    .argument("<id>", "the job's id (from `plugbox jobs list`)")
    .option(...DB_FLAG)
    .option(...STORE_CHECK_FLAG)
    .action(async (id: string, flags: HostFlags) => {
      await withHost({ ...flags, existingStore: true }, async (host) => {
        const job = await host.getJob(id);
        if (!job) throw new CliError("CLI_USAGE", `no system job has the id ${id}; see \`plugbox jobs list\``);
        const data = await host.jobData(id);
        io.out(JSON.stringify({ ...job, state: describeState(job), context: toPlain(data) }, null, 2));
      });
    });
  const verbs = {
    retry: "make a failed or canceled system job ready to run again (it runs at the next `plugbox jobs run`)",
    cancel: "cancel a system job that has not completed; it never runs",
  } as const;
  for (const [verb, description] of Object.entries(verbs) as Array<[keyof typeof verbs, string]>) {
    jobs
      .command(verb)
      .description(description)
      .argument("<id>", "the job's id (from `plugbox jobs list`)")
      .option(...DB_FLAG)
      .option(...STORE_CHECK_FLAG)
      .action(async (id: string, flags: HostFlags) => {
        await withHost({ ...flags, existingStore: true }, async (host) => {
          const job = verb === "retry" ? await host.retryJob(id) : await host.cancelJob(id);
          io.out(jobLine(job));
        });
      });
  }
  jobs
    .command("run")
    .description("run the system jobs that are ready, then exit")
    .requiredOption("--manifest <plugbox.json>", "the manifest whose steps the jobs belong to")
    .option(...DB_FLAG)
    .option("--web-policy <file.json>", "widen or tune the outbound web policy")
    .option("--secrets <file.json>", "where service endpoints' file:NAME secrets come from")
    .option("--processes <n>", "run the jobs in this many processes at once, sharing the store file", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError("expected a whole number from 1 to 64");
      return n;
    }, 1)
    .option("--lease-ms <ms>", `how long a job is leased: a job whose process dies runs again once its lease runs out (default ${jobRunnerDefaults.leaseMs})`, leaseMs)
    .option(...STORE_CHECK_FLAG)
    .action(async (flags: HostFlags & { manifest: string; db: string; processes: number }) => {
      const report = (outcomes: JobOutcome[]) => {
        if (outcomes.length === 0) io.out("no system job was ready");
        for (const o of outcomes) io.out(`job ${o.id}: ${o.outcome}${o.message ? ` — ${o.message}` : ""}`);
        if (outcomes.some((o) => o.outcome === "failed")) io.setExitCode(1);
      };
      assertStoreExists(flags.db);
      if (flags.processes > 1) {
        const webPolicy = flags.webPolicy ? await readWebPolicy(flags.webPolicy) : undefined;
        const result = await runJobsInProcesses({
          manifest: path.resolve(flags.manifest),
          db: path.resolve(flags.db),
          processes: flags.processes,
          quickCheck: flags.storeCheck !== false,
          ...(flags.leaseMs !== undefined ? { jobs: { leaseMs: flags.leaseMs } } : {}),
          ...(webPolicy ? { webPolicy } : {}),
          ...(flags.secrets ? { secrets: { file: path.resolve(flags.secrets) } } : {}),
        });
        report(result.outcomes);
        const seconds = result.runningMs / 1000;
        const cpuSeconds = result.processes.reduce((sum, p) => sum + p.cpuMs, 0) / 1000;
        io.out(`${result.processes.length} processes ran ${result.processes.map((p) => p.jobs).join(" + ")} jobs in ${seconds.toFixed(2)} s, using ${cpuSeconds.toFixed(2)} s of CPU`);
        for (const p of result.failed) {
          io.err(`plugbox: error [${p.code}]: job process ${p.pid} failed: ${p.message}; the jobs it held run again once their leases run out (${flags.leaseMs ?? jobRunnerDefaults.leaseMs} ms)`);
          io.setExitCode(exitStatusOf(p.code));
        }
        return;
      }
      await withHost(flags, async (host) => report(await host.runJobs()));
    });

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
      const result = await restoreStore(backup, flags.db);
      io.out(`restored ${flags.db} from ${backup} (${result.pages} pages)${result.replaced ? `; the file it replaced is kept as ${result.replaced}` : ""}`);
    });
}

/** Opens a store file that must exist (a backup of a file that is not there is a mistake, not a new store). */
function openStoreFor(db: string, quickCheck: boolean): Store {
  assertStoreExists(db);
  return Store.open({ path: db, quickCheck });
}
