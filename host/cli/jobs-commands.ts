/**
 * CLI commands over the system jobs in a store: `jobs list`, `show`, `retry`, `cancel` and `run`.
 */
import type { Command } from "commander";
import path from "node:path";
import { toPlain } from "../../sdk/codec.js";
import { CliError } from "./errors.js";
import { exitStatusOf } from "./exit-statuses.js";
import { assertStoreExists, DB_FLAG, readWebPolicy, RECORD_FLAG, STORE_CHECK_FLAG, withHost, type CliIo, type HostFlags } from "./command-host.js";
import { runJobsInProcesses } from "../job-processes.js";
import { derivedFlags, IN_THIS_PROCESS, optionOf } from "./flags.js";
import { jobRunnerDefaults, type JobOutcome } from "../jobs/runner.js";
import { describeState, type SystemJob } from "../jobs/queue.js";
import { JobError } from "../jobs/errors.js";

function jobLine(job: SystemJob): string {
  return `${job.id}  #${job.sequence}  ${describeState(job).padEnd(30)} ${job.name}${job.retryCount ? `  (retries: ${job.retryCount})` : ""}${job.message ? `  — ${job.message}` : ""}`;
}

export function registerJobsCommands(program: Command, io: CliIo): void {
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
        if (!job) throw new JobError("JOB_NOT_FOUND", `no system job has the id ${id}; see \`plugbox jobs list\``);
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
  const run = jobs
    .command("run")
    .description("run the system jobs that are ready, then exit")
    .requiredOption("--manifest <plugbox.json>", "the manifest whose steps the jobs belong to")
    .option(...DB_FLAG)
    .option("--web-policy <file.json>", "widen or tune the outbound web policy")
    .option("--secrets <file.json>", "where service endpoints' file:NAME secrets come from")
  for (const flag of derivedFlags["jobs run"]) run.addOption(optionOf(flag));
  run
    .option(...RECORD_FLAG)
    .option(...STORE_CHECK_FLAG)
    .action(async (flags: HostFlags & { manifest: string; db: string; processes?: number }) => {
      const report = (outcomes: JobOutcome[]) => {
        if (outcomes.length === 0) io.out("no system job was ready");
        for (const o of outcomes) io.out(`job ${o.id}: ${o.outcome}${o.message ? ` — ${o.message}` : ""}`);
        if (outcomes.some((o) => o.outcome === "failed")) io.setExitCode(1);
      };
      const processes = flags.processes ?? IN_THIS_PROCESS;
      if (flags.record && processes > 1) throw new CliError("CLI_USAGE", "--record records the jobs run in this process; it cannot be used with --processes above 1");
      assertStoreExists(flags.db);
      if (processes > 1) {
        const webPolicy = flags.webPolicy ? await readWebPolicy(flags.webPolicy) : undefined;
        const result = await runJobsInProcesses({
          manifest: path.resolve(flags.manifest),
          db: path.resolve(flags.db),
          processes,
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
}
