/**
 * A job process (job-processes.ts): receives its task, opens a host on the shared store, says it is
 * ready, and on "run" runs the jobs that are ready, reports their outcomes and exits.
 *
 * A parent that goes away (killed, or crashed) leaves it orphaned: it then takes no new job, lets
 * the jobs it runs finish and records their outcomes (nothing is lost, and nothing waits out a
 * lease), closes its host and exits 0, with a line on stderr; it never writes to the closed channel.
 */
import { createHost, type PlugboxHost } from "./host.js";
import type { JobProcessReport, JobProcessTask } from "./job-processes.js";

const orphaned = new Promise<void>((resolve) => process.once("disconnect", resolve));
let host: PlugboxHost | undefined;
void orphaned.then(() => {
  process.stderr.write(`job process ${process.pid}: its parent went away; it finishes the jobs it runs, takes no more, and exits\n`);
  host?.jobRunner.stop().catch(() => undefined);
});
// stderr may be a pipe whose reader went away with the parent: nothing to tell then.
process.stderr.on("error", () => undefined);

process.once("message", (task: JobProcessTask) => void work(task).then(() => process.exit(0)));

/** Sends to the parent while it is there; an orphan keeps what it would have said. */
function tell(message: unknown): Promise<void> {
  if (!process.connected) return Promise.resolve();
  return new Promise((resolve) => process.send!(message, () => resolve()));
}

async function work(task: JobProcessTask): Promise<void> {
  let report: JobProcessReport;
  try {
    host = await createHost({
      manifest: task.manifest,
      db: task.db,
      runJobs: false,
      // The parent checked the file once for all its processes.
      storeOptions: { quickCheck: false },
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
      const go = await Promise.race([
        new Promise<"run">((resolve) => {
          process.once("message", () => resolve("run"));
          void tell({ ready: true });
        }),
        orphaned.then(() => "orphaned" as const),
      ]);
      if (go === "orphaned") return;
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
  await tell(report);
  if (process.connected) process.disconnect();
}
