/** What a job runner reports and what it is made of (host/jobs/runner.ts). */
import type { SandboxRuntime } from "../../runtime/index.js";
import type { Registry, StepRegistration } from "../registry/index.js";
import type { NotificationBackend, SerializedContext } from "../services/notification.js";
import type { RecordedCall } from "../services/organization.js";
import type { DataStore } from "../store/engine.js";
import type { TraceRow } from "../store/trace-logs.js";
import type { JobQueue } from "./queue.js";

export interface JobOutcome {
  id: string;
  /** `waiting`: the job could not run for want of a sandbox worker; it runs when one starts, with no attempt counted. */
  outcome: "succeeded" | "failed" | "retrying" | "waiting" | "lost";
  message?: string;
  /** A failed job that had asked to be retried: the attempts it had in all (settings.maxAsyncAttempts, or its endpoint's maxAttempts). */
  gaveUpAfter?: number;
}

/** What `jobRunner.health()` reports. */
export interface JobRunnerHealth {
  /** Started and not stopped: it takes jobs in the background. */
  running: boolean;
  /** The id this runner leases jobs under (system_jobs.lease_owner): which host holds which job. */
  owner: string;
  /** Why the last round could not take jobs (the store busy, full, damaged…), until a round succeeds. */
  lastError?: { code: string; message: string; at: string };
}

/** What running a step's job produced (the pipeline's step outcome, as far as a runner reads it). */
export interface JobStepOutcome {
  ok: boolean;
  error?: { message: string; innerCode: string; status: number; details?: Record<string, unknown> | undefined };
  calls: RecordedCall[];
  traceRows: TraceRow[];
}

/** Everything a runner uses, given explicitly. */
export interface JobRunnerParts {
  store: DataStore;
  queue: JobQueue;
  /** Writes the trace rows the setting keeps (in the outcome's transaction). */
  traceLog: { write(rows: readonly TraceRow[], setting: "Off" | "Exceptions" | "All"): Promise<void> };
  /** Runs a step's job: its plug-in (or post) with the context it holds, or a serialized post. */
  steps: {
    executeStep(step: StepRegistration, context: Record<string, unknown>, options: Record<string, never>): Promise<JobStepOutcome>;
    executeSerializedStep(step: StepRegistration, serialized: SerializedContext): Promise<JobStepOutcome>;
  };
  notification: NotificationBackend;
  registry: Pick<Registry, "step" | "settings">;
  runtime: Pick<SandboxRuntime, "health" | "clock">;
}
