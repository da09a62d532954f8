/**
 * A job process (job-processes.ts): receives its task, opens a host on the shared store, says it is
 * ready, and on "run" runs the jobs that are ready, reports their outcomes and exits.
 */
import { createHost } from "./host.js";
import type { JobProcessReport, JobProcessTask } from "./job-processes.js";

process.once("message", (task: JobProcessTask) => void work(task));

async function work(task: JobProcessTask): Promise<void> {
  let report: JobProcessReport;
  try {
    const host = await createHost({
      manifest: task.manifest,
      db: task.db,
      runJobs: false,
      // Its sandbox worker starts only if a job runs a plug-in: jobs that only post never need one.
      runtimeOptions: { workers: 1, prewarmIsolates: 0, startOnFirstExecution: true },
      ...(task.jobs ? { jobs: task.jobs } : {}),
      ...(task.secrets ? { secrets: task.secrets } : {}),
      ...(task.webPolicy ? { webPolicy: task.webPolicy } : {}),
      ...(task.organizationUrl ? { organizationUrl: task.organizationUrl } : {}),
      ...(task.busyTimeoutMs !== undefined ? { busyTimeoutMs: task.busyTimeoutMs } : {}),
    });
    try {
      // Up means connected: the first jobs do not wait for the clients to load and the links to open.
      for (const { endpoint, message } of await host.connectServiceEndpoints({ timeoutMs: 5_000 })) {
        process.stderr.write(`job process ${process.pid}: service endpoint "${endpoint}" is not reachable yet (its posts will be retried): ${message}\n`);
      }
      await new Promise<void>((resolve) => {
        process.once("message", () => resolve());
        process.send!({ ready: true });
      });
      const startedAt = Date.now();
      const cpuBefore = process.cpuUsage();
      const outcomes = await host.runJobs();
      const cpu = process.cpuUsage(cpuBefore);
      report = { ok: true, outcomes, startedAt, finishedAt: Date.now(), cpuMs: (cpu.user + cpu.system) / 1000 };
    } finally {
      await host.close();
    }
  } catch (error) {
    const e = error as { code?: unknown; message?: unknown };
    report = { ok: false, code: typeof e.code === "string" ? e.code : "JOB_PROCESS_FAILED", message: String(e.message ?? error) };
  }
  process.send!(report, () => process.disconnect());
}
