/**
 * `--record`: a sandbox runtime that records every execution that passes through it (the one door
 * `plugbox run`, the pipeline's steps and the job runner all go through): the context the plug-in got,
 * each service call with its reply, and the outcome. Web requests that the sandbox worker would
 * serve itself are served here instead, under the same policy, so that their whole exchange (status,
 * headers, body) is in the recording.
 */
import { toPlain } from "../../sdk/codec.js";
import { familyIn, PlugboxError } from "../../sdk/errors.js";
import {
  PluginExecutionError,
  SandboxError,
  SandboxRuntime,
  type Bundle,
  type ExecutionReport,
  type ExecutionRequest,
  type SandboxRuntimeInput,
  type SandboxServices,
  type ServiceCall,
} from "../../runtime/index.js";
import type { WebCallRecord } from "../../runtime/protocol.js";
import { createWebClient, WEB_ERRORS, WebError, type WebClient, type WebPolicyInput } from "../web/index.js";
import { PinnedClock } from "./pinned-clock.js";
import { makeRecording, writeRecording, type RecordedCall, type RecordedError, type RecordedExecution, type RecordedOutcome, type Recording } from "./recording.js";
import path from "node:path";

/** A value as plugbox JSON, for the recording. */
export function plain<T = unknown>(value: unknown): T {
  return toPlain(value ?? null) as T;
}

/** What a plug-in learns of a failed call: its code and message (as the supervisor answers it). */
export function recordedError(error: unknown, service: string): RecordedError {
  return error instanceof PlugboxError ? { code: error.code, message: error.message } : { code: "SERVICE_FAILED", message: `the ${service} service failed` };
}

/** An execution's outcome as recorded (and as a replay reports it). */
export function outcomeOf(report: ExecutionReport, violations: readonly string[] = report.violations): RecordedOutcome {
  const base = { trace: report.trace, violations: [...violations] };
  if (report.ok) return { ok: true, changes: plain(report.changes), ...base };
  const error = report.error;
  // The plug-in let a service's error escape: its own code (WEB_LOOPBACK, ORG_NOT_FOUND, …), as `run` reports it.
  const code = error instanceof PluginExecutionError && error.serviceCode !== undefined ? error.serviceCode : error.code;
  return { ok: false, error: { code, message: error.message }, changes: null, ...base };
}

const iso = (time: number) => new Date(time).toISOString();

export class Recorder {
  readonly #executions: RecordedExecution[] = [];
  readonly #webClients = new Map<string, WebClient>();
  readonly #sources = new Map<string, string>();
  readonly #startedAt: Date;
  /** The time its plug-ins see, pinned when each starts and each call is answered, and recorded then. */
  readonly #clock = new PinnedClock();

  constructor(startedAt: Date = new Date()) {
    this.#startedAt = startedAt;
  }

  /** The executions recorded so far. */
  get executions(): readonly RecordedExecution[] {
    return this.#executions;
  }

  /** Names the file a bundle made in memory came from (`plugbox run plugin.ts`), so a replay can build it again. */
  noteSource(bundle: Bundle, file: string): void {
    this.#sources.set(bundle.id, path.resolve(file));
  }

  /**
   * A sandbox runtime (started with `input`) whose executions this recorder records. Its plug-ins
   * see the recorder's clock (`pluginTime: "clock"` on real time): the time stands still while their
   * code runs, and is the one recorded each time it is entered.
   */
  createRuntime(input?: Omit<SandboxRuntimeInput, "clock" | "pluginTime">): SandboxRuntime {
    const record = (request: ExecutionRequest, services: SandboxServices, run: (r: ExecutionRequest, s: SandboxServices) => Promise<ExecutionReport>) => this.#record(request, services, run);
    return new (class RecordingRuntime extends SandboxRuntime {
      override execute(request: ExecutionRequest, services?: SandboxServices): Promise<ExecutionReport> {
        return record(request, services ?? noServices, (r, s) => super.execute(r, s));
      }
    })({ ...input, clock: this.#clock, pluginTime: "clock" });
  }

  recording(): Recording {
    return makeRecording(this.#executions, this.#startedAt);
  }

  /** Writes the recording atomically (REPLAY_RECORDING_NOT_WRITTEN when it cannot). */
  write(file: string): Promise<void> {
    return writeRecording(file, this.recording());
  }

  async close(): Promise<void> {
    const clients = [...this.#webClients.values()];
    this.#webClients.clear();
    await Promise.allSettled(clients.map((client) => client.close()));
  }

  #bundlePath(bundle: Bundle): string {
    return this.#sources.get(bundle.id) ?? path.resolve(bundle.directory ?? ".", bundle.filename);
  }

  #webClient(policy: WebPolicyInput): WebClient {
    const key = JSON.stringify(policy);
    let client = this.#webClients.get(key);
    if (!client) this.#webClients.set(key, (client = createWebClient(policy)));
    return client;
  }

  async #record(request: ExecutionRequest, services: SandboxServices, run: (r: ExecutionRequest, s: SandboxServices) => Promise<ExecutionReport>): Promise<ExecutionReport> {
    const entry: RecordedExecution = {
      bundle: { path: this.#bundlePath(request.bundle), sha256: request.bundle.id },
      typeName: request.typeName,
      unsecureConfig: request.unsecureConfig ?? null,
      secureConfig: request.secureConfig ?? null,
      isolation: request.isolation ?? "fresh",
      limits: { ...request.limits },
      context: plain(request.context),
      startedAt: iso(this.#clock.pin()),
      calls: [],
      outcome: { ok: false, error: { code: "SANDBOX_INTERNAL", message: "the execution did not end" }, changes: null, trace: "", violations: [] },
    };
    this.#executions.push(entry);
    const { web: webConfig, ...withoutWeb } = request;
    const web = webConfig ? { client: this.#webClient(webConfig.policy), allowedHosts: webConfig.allowedHosts, served: [] as WebCallRecord[], violations: [] as string[] } : undefined;
    const recording: SandboxServices = {
      call: async (call: ServiceCall) => {
        const record: RecordedCall = { service: call.service, op: call.op, userId: call.userId, args: plain(call.args), ok: false, at: "" };
        entry.calls.push(record);
        try {
          const result = web && call.service === "web" ? await this.#fetch(web, call) : await services.call(call);
          record.ok = true;
          record.result = plain(result);
          return result;
        } catch (error) {
          record.error = recordedError(error, call.service);
          throw error;
        } finally {
          // The time the plug-in sees when the answer resumes it.
          record.at = iso(this.#clock.pin());
        }
      },
    };
    try {
      const report = await run(web ? withoutWeb : request, recording);
      if (web) {
        // As the worker would have reported them, had it served the requests.
        report.webCalls.push(...web.served);
        report.violations.push(...web.violations);
      }
      entry.outcome = outcomeOf(report);
      return report;
    } catch (error) {
      entry.outcome = { ...entry.outcome, error: recordedError(error, "sandbox") };
      throw error;
    }
  }

  /** A web request the worker would have served, served here under the same policy. */
  async #fetch(web: { client: WebClient; allowedHosts: string[] | null; served: WebCallRecord[]; violations: string[] }, call: ServiceCall): Promise<unknown> {
    const request = (call.args[0] ?? {}) as { url?: unknown; method?: unknown };
    const served: WebCallRecord = { url: typeof request.url === "string" ? request.url.slice(0, 2_048) : "", method: typeof request.method === "string" ? request.method.slice(0, 16) : "GET", ok: false };
    web.served.push(served);
    try {
      const response = await web.client.fetch(request, { executionId: call.executionId, signal: call.signal, deadline: call.deadline, allowedHosts: web.allowedHosts });
      served.ok = true;
      served.status = response.status;
      return response;
    } catch (error) {
      const failure = error instanceof WebError ? error : new WebError("WEB_CONNECTION_FAILED", "the web request failed");
      served.error = { code: failure.code, message: failure.message };
      if (familyIn(failure.code, WEB_ERRORS) === "isolation") web.violations.push(`web.fetch: ${failure.message}`);
      throw failure;
    }
  }
}

const noServices: SandboxServices = {
  call: async (request) => {
    throw new SandboxError("SANDBOX_INTERNAL", `no ${request.service} service is configured in this host`);
  },
};
