/**
 * CLI commands over the pipeline and the store: `exec` here, `jobs` and `data` in their own modules.
 */
import type { Command } from "commander";
import { fromPlain, toPlain } from "../../sdk/codec.js";
import { isolatedVmBinding } from "../../runtime/index.js";
import { INSPECT_BRK_FLAG, INSPECT_FLAG, inspectorFromFlags, type InspectFlags } from "./inspect-flags.js";
import { PlugboxError } from "../../sdk/errors.js";
import { UsageError } from "../errors.js";
import { exitStatusOf } from "./exit-statuses.js";
import { readJson, RECORD_FLAG, STORE_CHECK_FLAG, withHost, type CliIo, type HostFlags } from "./command-host.js";
import { importData, registerDataCommands } from "./data-commands.js";
import { registerJobsCommands } from "./jobs-commands.js";
import { readRequest, type JournalRequest } from "../pipeline/pipeline.js";
import { journalLines } from "../pipeline/journal.js";

export { readJson, STORE_CHECK_FLAG, type CliIo } from "./command-host.js";
export { importData, writeOutput } from "./data-commands.js";

/** A JSON input file with plugbox JSON's typed values read (a Money that is not a number is INPUT_INVALID_JSON). */
export async function readPlugboxJson(file: string, what: string): Promise<unknown> {
  const value = await readJson(file, what);
  try {
    return fromPlain(value);
  } catch (error) {
    throw new UsageError("INPUT_INVALID_JSON", `the ${what} file ${file} holds a value plugbox cannot read: ${(error as Error).message}`);
  }
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

/** The system jobs a request and the requests its plug-ins made queued. */
function queuedJobs(journal: JournalRequest): number {
  return journal.jobs.length + journal.steps.reduce((sum, step) => sum + step.requests.reduce((n, nested) => n + queuedJobs(nested), 0), 0);
}

/** `exec` without --db keeps its store in memory: the jobs it queued end with the command unless they run first. */
function droppedJobsWarning(count: number): string {
  const jobs = count === 1 ? "1 system job was" : `${count} system jobs were`;
  return `${jobs} queued in the in-memory store and not kept (exec ran without --db); pass --run-jobs to run them before exec exits, or --db <file> to keep them for \`plugbox jobs run\``;
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
    .option(...RECORD_FLAG)
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

  registerJobsCommands(program, io);
  registerDataCommands(program, io);
}
