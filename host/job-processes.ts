/**
 * System jobs run by several processes at once, the way Dataverse's asynchronous service scales out:
 * each process is a host of its own on the same store file, leasing jobs from it (a lease keeps
 * two processes off one job, and a job whose process dies is taken again when its lease runs out).
 * A process only runs jobs; requests keep going through the host that queued them.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { WebPolicyInput } from "../runtime/web/policy.js";
import type { JobOutcome, JobRunnerOptions } from "./pipeline/job-runner.js";
import { PipelineError } from "./pipeline/errors.js";
import type { SecretSource } from "./relay/endpoints.js";

export interface JobProcessesOptions {
  /** The manifest: a file, or a manifest object (it travels to each process as JSON). */
  manifest: string | Record<string, unknown>;
  /** The store file the processes share. */
  db: string;
  /** How long a process waits for another holding the store's write lock, ms. @default 5000 */
  busyTimeoutMs?: number;
  /** @default 2 */
  processes?: number;
  secrets?: SecretSource;
  webPolicy?: WebPolicyInput;
  organizationUrl?: string;
  jobs?: Omit<JobRunnerOptions, "clock">;
  /** Aborting stops every process; the jobs they held are taken again when their leases run out. */
  signal?: AbortSignal;
}

/** What the parent sends a job process. */
export type JobProcessTask = Omit<JobProcessesOptions, "processes" | "signal">;
/** What a job process answers; times are epoch milliseconds. */
export type JobProcessReport = { ok: true; outcomes: JobOutcome[]; startedAt: number; finishedAt: number; cpuMs: number } | { ok: false; code: string; message: string };

export interface JobProcessesResult {
  /** Every job's outcome, process by process. */
  outcomes: JobOutcome[];
  /** When each process had its host up and began taking jobs, when it ran out of them, how many it ran, and the CPU time it spent running them. */
  processes: Array<{ pid: number; jobs: number; startedAt: number; finishedAt: number; cpuMs: number }>;
  /** From the first process taking jobs to the last one running out of them, ms. */
  runningMs: number;
}

const ENTRY = fileURLToPath(new URL("./job-process-main.js", import.meta.url));

/** Runs every ready job in `processes` processes at once; resolves with all their outcomes. */
export async function runJobsInProcesses(options: JobProcessesOptions): Promise<JobProcessesResult> {
  const count = options.processes ?? 2;
  if (!Number.isInteger(count) || count < 1 || count > 64) throw new PipelineError("JOB_PROCESSES_INVALID", `the number of job processes must be a whole number from 1 to 64, got ${count}`);
  if (options.db === ":memory:" || options.db === "") throw new PipelineError("JOB_PROCESSES_INVALID", "job processes share the store through its file: give a database file, not :memory:");
  const { processes: _count, signal, ...task } = options;
  const children = Array.from({ length: count }, () => fork(ENTRY, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] }));
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
  const failed = reports.find((r): r is Extract<JobProcessReport, { ok: false }> => !r.ok);
  if (failed) throw new PipelineError("JOB_PROCESS_FAILED", `a job process failed: [${failed.code}] ${failed.message}`);
  const done = reports as Array<Extract<JobProcessReport, { ok: true }>>;
  return {
    outcomes: done.flatMap((r) => r.outcomes),
    processes: done.map((r, i) => ({ pid: children[i]!.pid!, jobs: r.outcomes.length, startedAt: r.startedAt, finishedAt: r.finishedAt, cpuMs: r.cpuMs })),
    runningMs: Math.max(...done.map((r) => r.finishedAt)) - Math.min(...done.map((r) => r.startedAt)),
  };
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
