/**
 * System jobs run by several processes at once, the way Dataverse's asynchronous service scales out:
 * each process is a host of its own on the same store file, leasing jobs from it (a lease keeps
 * two processes off one job, and a job whose process dies is taken again when its lease runs out).
 * A process only runs jobs; requests keep going through the host that queued them.
 */
import { fork, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { WebPolicyInput } from "../runtime/web/policy.js";
import { resolveJobRunnerOptions, type JobOutcome, type JobRunnerOptions } from "./jobs/runner.js";
import { integerEntries, optionTable, parseOptions, v, type OptionTable } from "../runtime/schema.js";
import { Store } from "./store/store.js";
import { JobError } from "./jobs/errors.js";
import { closed, opened } from "../runtime/open-resources.js";
import type { SecretSource } from "./relay/endpoints.js";

export interface JobProcessesOptions {
  /** The manifest: a file, or a manifest object (it travels to each process as JSON). */
  manifest: string | Record<string, unknown>;
  /** The store file the processes share. */
  db: string;
  /** How long a process waits for another holding the store's write lock, ms. @default 5000 */
  busyTimeoutMs?: number;
  /** Check the store file with SQLite's quick_check before the processes start (once, not in each). @default true */
  quickCheck?: boolean;
  /** How many processes run the jobs (`jobProcessesTable`). @default 2 */
  processes?: number;
  secrets?: SecretSource;
  webPolicy?: WebPolicyInput;
  organizationUrl?: string;
  /** The job runner's options in each process; `leaseMs` is how long a dead process's jobs wait before another takes them (180 s). */
  jobs?: Omit<JobRunnerOptions, "clock">;
  /** Aborting stops every process; the jobs they held are taken again when their leases run out. */
  signal?: AbortSignal;
}

/** The number of processes, declared once; `runJobsInProcesses` and `plugbox jobs run --processes` read it. */
export const jobProcessesTable: OptionTable<"processes"> = optionTable({
  processes: { min: 1, max: 64, unit: "processes", default: 2, description: "run the jobs in this many processes at once, sharing the store file" },
});

const processesSchema = v.object(integerEntries(jobProcessesTable, (min, max) => `must be a whole number from ${min} to ${max}`));

/** What the parent sends a job process. */
export type JobProcessTask = Omit<JobProcessesOptions, "processes" | "signal" | "quickCheck">;
/** What a job process answers; times are epoch milliseconds. */
export type JobProcessReport = { ok: true; outcomes: JobOutcome[]; startedAt: number; finishedAt: number; cpuMs: number } | { ok: false; code: string; message: string };

export interface JobProcessesResult {
  /** Every job's outcome, process by process, of the processes that ran to their end. */
  outcomes: JobOutcome[];
  /** When each process that ran to its end had its host up and began taking jobs, when it ran out of them, how many it ran, and the CPU time it spent running them. */
  processes: Array<{ pid: number; jobs: number; startedAt: number; finishedAt: number; cpuMs: number }>;
  /**
   * The processes that died or could not start their host, with why (JOB_PROCESS_FAILED, or their
   * host's error). The jobs one held run again once their leases run out (`jobs.leaseMs`).
   */
  failed: Array<{ pid: number; code: string; message: string }>;
  /** From the first process taking jobs to the last one running out of them, ms (0 when none ran). */
  runningMs: number;
}

const ENTRY = fileURLToPath(new URL("./job-process-main.js", import.meta.url));

/**
 * Runs every ready job in `processes` processes at once; resolves with the outcomes of every process
 * that ran to its end, and names those that died (`failed`). Rejects with JOB_PROCESS_FAILED only
 * when none could run.
 */
export async function runJobsInProcesses(options: JobProcessesOptions): Promise<JobProcessesResult> {
  const count = parseOptions(processesSchema, { processes: options.processes }, (_, message) => new JobError("JOB_PROCESSES_INVALID", `the number of job processes ${message}`)).processes ?? jobProcessesTable.processes.default;
  if (options.db === ":memory:" || options.db === "") throw new JobError("JOB_PROCESSES_INVALID", "job processes share the store through its file or database: give a database file or a postgres:// connection string, not :memory:");
  resolveJobRunnerOptions(options.jobs);
  const { processes: _count, signal, quickCheck, ...task } = options;
  // One check of the file (and its migration) here, rather than one in each process.
  if (existsSync(options.db)) Store.open({ path: options.db, ...(quickCheck === undefined ? {} : { quickCheck }), ...(options.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.busyTimeoutMs }) }).close();
  const children = Array.from({ length: count }, () => {
    const child = fork(ENTRY, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    opened(child, "job process");
    child.once("exit", () => closed(child));
    return child;
  });
  const stop = () => children.forEach((child) => child.kill("SIGTERM"));
  signal?.addEventListener("abort", stop, { once: true });
  try {
    // The processes start their hosts first and take jobs together, so none runs alone while another starts.
    const reports = children.map((child) => run(child, task));
    await Promise.all(children.map((child, i) => Promise.race([ready(child), reports[i]])));
    for (const child of children) if (child.connected) child.send("run");
    return summarize(children, await Promise.all(reports));
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}

function summarize(children: ChildProcess[], reports: JobProcessReport[]): JobProcessesResult {
  const processes: JobProcessesResult["processes"] = [];
  const failed: JobProcessesResult["failed"] = [];
  const outcomes: JobOutcome[] = [];
  reports.forEach((r, i) => {
    const pid = children[i]!.pid ?? -1;
    if (!r.ok) return failed.push({ pid, code: r.code, message: r.message });
    outcomes.push(...r.outcomes);
    processes.push({ pid, jobs: r.outcomes.length, startedAt: r.startedAt, finishedAt: r.finishedAt, cpuMs: r.cpuMs });
  });
  if (processes.length === 0) throw new JobError("JOB_PROCESS_FAILED", `no job process could run: [${failed[0]!.code}] ${failed[0]!.message}`);
  return { outcomes, processes, failed, runningMs: Math.max(...processes.map((p) => p.finishedAt)) - Math.min(...processes.map((p) => p.startedAt)) };
}

/** Resolves when the process has its host up; never when it fails first (its report says why). */
function ready(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown) => {
      if ((message as { ready?: boolean }).ready) {
        child.off("message", onMessage);
        resolve();
      }
    };
    child.on("message", onMessage);
  });
}

function run(child: ChildProcess, task: JobProcessTask): Promise<JobProcessReport> {
  return new Promise((resolve) => {
    let report: JobProcessReport | undefined;
    child.on("message", (message) => {
      if (typeof (message as { ok?: unknown }).ok === "boolean") report = message as JobProcessReport;
    });
    child.once("exit", (code, signal) => resolve(report ?? { ok: false, code: "JOB_PROCESS_FAILED", message: `process ${child.pid} exited (${signal ?? `code ${code}`}) before it reported` }));
    child.send(task);
  });
}
