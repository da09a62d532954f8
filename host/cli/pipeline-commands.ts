/**
 * CLI commands over the pipeline and the store: `exec`, `jobs`, `data`.
 */
import { InvalidArgumentError, type Command } from "commander";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fromPlain, isPlainObject, toPlain } from "../../sdk/codec.js";
import { isolatedVmBinding } from "../../runtime/index.js";
import { UsageError, exitCodeFor, PlugboxError } from "../errors.js";
import { createHost, type PlugboxHost } from "../host.js";
import { runJobsInProcesses } from "../job-processes.js";
import type { JobOutcome } from "../pipeline/job-runner.js";
import { describeState, type SystemJob } from "../pipeline/jobs-store.js";
import { readRequest, type JournalRequest } from "../pipeline/pipeline.js";
import { storedAttributes } from "../organization/core.js";
import { isGuid } from "../ids.js";
import type { WebPolicyInput } from "../web/index.js";

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  setExitCode: (code: number) => void;
}

export async function readJson(file: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    throw new UsageError("INPUT_NOT_FOUND", `cannot read the ${what} file ${file}: it does not exist or is not readable`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError("INPUT_INVALID_JSON", `the ${what} file ${file} is not valid JSON: ${(error as Error).message}`);
  }
}

export function journalLines(journal: JournalRequest, indent = ""): string[] {
  const what = `${journal.message}${journal.entity ? ` of ${journal.entity}` : ""}${journal.id ? ` ${journal.id}` : ""}`;
  const lines = [`${indent}${journal.outcome === "ok" ? "ok" : "FAILED"}: ${what} (depth ${journal.depth}) in ${journal.durationMs.toFixed(1)} ms${journal.error ? ` — [${journal.error.code}] ${journal.error.message}` : ""}`];
  for (const step of journal.steps) {
    lines.push(`${indent}  stage ${step.stage} ${step.mode}: ${step.name} — ${step.outcome}${step.error ? ` [${step.error.code}] ${step.error.message}` : ""} (${step.durationMs.toFixed(1)} ms)`);
    for (const line of step.trace ? step.trace.split("\n") : []) lines.push(`${indent}    | ${line}`);
    for (const call of step.calls) lines.push(`${indent}    ${call.service}.${call.op} ${call.ok ? "ok" : `failed [${call.error?.code}]`}`);
    for (const nested of step.requests) lines.push(...journalLines(nested, `${indent}    `));
  }
  for (const job of journal.jobs) lines.push(`${indent}  queued system job ${job}`);
  return lines;
}

function jobLine(job: SystemJob): string {
  return `${job.id}  #${job.sequence}  ${describeState(job).padEnd(30)} ${job.name}${job.retryCount ? `  (retries: ${job.retryCount})` : ""}${job.message ? `  — ${job.message}` : ""}`;
}

async function readWebPolicy(file: string): Promise<WebPolicyInput> {
  const policy = await readJson(file, "web policy");
  if (!isPlainObject(policy)) throw new UsageError("INPUT_INVALID_JSON", `the web policy file ${file} must hold a JSON object`);
  return policy as WebPolicyInput;
}

async function withHost<T>(options: { manifest?: string; db?: string; webPolicy?: string; secrets?: string }, fn: (host: PlugboxHost) => Promise<T>): Promise<T> {
  const webPolicy = options.webPolicy ? await readWebPolicy(options.webPolicy) : undefined;
  const host = await createHost({
    ...(options.manifest ? { manifest: options.manifest } : {}),
    db: options.db ?? ":memory:",
    runJobs: false,
    runtimeOptions: { workers: 1, prewarmIsolates: 1 },
    ...(webPolicy ? { webPolicy } : {}),
    ...(options.secrets ? { secrets: { file: options.secrets } } : {}),
  });
  try {
    return await fn(host);
  } finally {
    await host.close();
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
  const release = await host.store.acquire();
  const tx = host.store.begin();
  try {
    for (const row of rows) {
      if (!host.store.replaceRecord(row.table, row.id, row.attributes)) host.store.insertRecord(row.table, row.id, row.attributes);
    }
    tx.commit();
  } catch (error) {
    tx.rollback();
    throw error;
  } finally {
    release();
  }
  return rows.length;
}

export function registerPipelineCommands(program: Command, io: CliIo): void {
  program
    .command("exec")
    .description("run one request through the event pipeline against the store")
    .requiredOption("--manifest <plugbox.json>", "the manifest of bundles, steps and endpoints")
    .requiredOption("--request <file.json>", 'the request: { "requestName": "Create", "parameters": { "Target": { … } } }')
    .option("--db <path>", "the store (default: in memory, gone after the command)")
    .option("--data <file.json>", "records to load into the store first")
    .option("--run-jobs", "run the system jobs the request queued before exiting")
    .option("--web-policy <file.json>", "widen or tune the outbound web policy")
    .option("--secrets <file.json>", "where service endpoints' file:NAME secrets come from")
    .option("--json", "print one JSON object { ok, error?, response, journal, jobs, sandbox: { node, isolatedVm, package } }")
    .action(async (flags: { manifest: string; request: string; db?: string; data?: string; runJobs?: boolean; webPolicy?: string; secrets?: string; json?: boolean }) => {
      const request = readRequest(fromPlain(await readJson(flags.request, "request")), flags.request);
      await withHost(flags, async (host) => {
        if (flags.data) await importData(host, await readJson(flags.data, "data"), flags.data);
        try {
          const result = await host.execute(request);
          const jobs = flags.runJobs ? await host.runJobs() : [];
          if (flags.json) io.out(JSON.stringify({ ok: true, response: toPlain(result.response), journal: result.journal, jobs, sandbox: isolatedVmBinding() }, null, 2));
          else {
            for (const line of journalLines(result.journal)) io.out(line);
            io.out(`response: ${JSON.stringify(toPlain(result.response))}`);
            for (const job of jobs) io.out(`job ${job.id}: ${job.outcome}${job.message ? ` — ${job.message}` : ""}`);
          }
        } catch (error) {
          if (!(error instanceof PlugboxError)) throw error;
          const journal = (error as { journal?: JournalRequest }).journal;
          const inner = (error as { innerCode?: string }).innerCode;
          if (flags.json) io.out(JSON.stringify({ ok: false, error: { code: error.code, message: error.message, ...(inner ? { innerCode: inner } : {}) }, journal, sandbox: isolatedVmBinding() }, null, 2));
          else {
            if (journal) for (const line of journalLines(journal)) io.err(line);
            io.err(`error [${error.code}]: ${error.message}`);
          }
          io.setExitCode(exitCodeFor(inner ?? error.code));
        }
      });
    });

  const jobs = program.command("jobs").description("list, show, retry, cancel and run system jobs (asynchronous steps)");
  jobs
    .command("list")
    .option("--db <path>", "the store", "plugbox.db")
    .option("--json", "print JSON")
    .action(async (flags: { db: string; json?: boolean }) => {
      await withHost(flags, async (host) => {
        const list = await host.listJobs();
        if (flags.json) io.out(JSON.stringify(list, null, 2));
        else if (list.length === 0) io.out("no system jobs");
        else for (const job of list) io.out(jobLine(job));
      });
    });
  jobs
    .command("show <id>")
    .option("--db <path>", "the store", "plugbox.db")
    .action(async (id: string, flags: { db: string }) => {
      await withHost(flags, async (host) => {
        const job = await host.getJob(id);
        if (!job) throw new UsageError("CLI_USAGE", `no system job has the id ${id}; see \`plugbox jobs list\``);
        const release = await host.store.acquire();
        let data: unknown;
        try {
          data = host.pipeline.jobs.data(id);
        } finally {
          release();
        }
        io.out(JSON.stringify({ ...job, state: describeState(job), context: toPlain(data) }, null, 2));
      });
    });
  for (const verb of ["retry", "cancel"] as const) {
    jobs
      .command(`${verb} <id>`)
      .option("--db <path>", "the store", "plugbox.db")
      .action(async (id: string, flags: { db: string }) => {
        await withHost(flags, async (host) => {
          const job = verb === "retry" ? await host.retryJob(id) : await host.cancelJob(id);
          io.out(jobLine(job));
        });
      });
  }
  jobs
    .command("run")
    .description("run the system jobs that are ready, then exit")
    .requiredOption("--manifest <plugbox.json>", "the manifest whose steps the jobs belong to")
    .option("--db <path>", "the store", "plugbox.db")
    .option("--web-policy <file.json>", "widen or tune the outbound web policy")
    .option("--secrets <file.json>", "where service endpoints' file:NAME secrets come from")
    .option("--processes <n>", "run the jobs in this many processes at once, sharing the store file", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError("expected a whole number from 1 to 64");
      return n;
    }, 1)
    .action(async (flags: { manifest: string; db: string; webPolicy?: string; secrets?: string; processes: number }) => {
      const report = (outcomes: JobOutcome[]) => {
        if (outcomes.length === 0) io.out("no system job was ready");
        for (const o of outcomes) io.out(`job ${o.id}: ${o.outcome}${o.message ? ` — ${o.message}` : ""}`);
        if (outcomes.some((o) => o.outcome === "failed")) io.setExitCode(1);
      };
      if (flags.processes > 1) {
        const webPolicy = flags.webPolicy ? await readWebPolicy(flags.webPolicy) : undefined;
        const result = await runJobsInProcesses({
          manifest: path.resolve(flags.manifest),
          db: path.resolve(flags.db),
          processes: flags.processes,
          ...(webPolicy ? { webPolicy } : {}),
          ...(flags.secrets ? { secrets: { file: path.resolve(flags.secrets) } } : {}),
        });
        report(result.outcomes);
        const seconds = result.runningMs / 1000;
        const cpuSeconds = result.processes.reduce((sum, p) => sum + p.cpuMs, 0) / 1000;
        io.out(`${result.processes.length} processes ran ${result.processes.map((p) => p.jobs).join(" + ")} jobs in ${seconds.toFixed(2)} s, using ${cpuSeconds.toFixed(2)} s of CPU`);
        return;
      }
      await withHost(flags, async (host) => report(await host.runJobs()));
    });

  const data = program.command("data").description("import and export records as JSON");
  data
    .command("import <file>")
    .option("--db <path>", "the store", "plugbox.db")
    .option("--manifest <plugbox.json>", "a manifest whose table schemas check the records")
    .action(async (file: string, flags: { db: string; manifest?: string }) => {
      await withHost(flags, async (host) => {
        const count = await importData(host, await readJson(file, "data"), file);
        io.out(`imported ${count} record(s) into ${flags.db}`);
      });
    });
  data
    .command("export")
    .option("--db <path>", "the store", "plugbox.db")
    .option("--entity <logicalName>", "only this table")
    .option("-o, --outfile <file>", "write to a file instead of standard output")
    .action(async (flags: { db: string; entity?: string; outfile?: string }) => {
      await withHost(flags, async (host) => {
        const release = await host.store.acquire();
        let rows;
        try {
          rows = host.store.allRecords();
        } finally {
          release();
        }
        const out: Record<string, Array<{ id: string; attributes: Record<string, unknown> }>> = {};
        for (const row of rows) {
          if (flags.entity && row.entity !== flags.entity) continue;
          (out[row.entity] ??= []).push({ id: row.id, attributes: row.attributes });
        }
        const text = JSON.stringify(out, null, 2);
        if (flags.outfile) {
          await writeFile(flags.outfile, `${text}\n`);
          io.out(`exported ${rows.length} record(s) to ${flags.outfile}`);
        } else io.out(text);
      });
    });
}
