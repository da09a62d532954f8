/**
 * What a request leaves behind (its journal: the steps that ran, the requests they made, the jobs
 * they queued), and the state a request carries through its stages.
 */
import type { PlugboxError } from "../../runtime/index.js";
import type { OrganizationResponseValue } from "../organization/arguments.js";
import type { StageNumber } from "../registry/index.js";
import type { RecordedCall } from "../services/organization.js";
import type { TraceRow } from "../store/trace-logs.js";
import type { StepFailedError } from "./errors.js";

export interface Caller {
  /** The calling user. @default identity.defaultUserId */
  userId?: string;
  /** Who started the chain (differs from userId under impersonation). @default userId */
  initiatingUserId?: string;
}

export interface JournalStep {
  stepId: string;
  name: string;
  stage: StageNumber;
  mode: "sync" | "async";
  outcome: "ok" | "failed";
  error?: { code: string; message: string };
  durationMs: number;
  trace: string;
  /** Requests the plug-in made through the organization service. */
  requests: JournalRequest[];
  /** Its other service calls (notification, web). */
  calls: RecordedCall[];
}

export interface JournalRequest {
  message: string;
  entity: string | null;
  id: string | null;
  depth: number;
  outcome: "ok" | "failed";
  error?: { code: string; message: string };
  durationMs: number;
  steps: JournalStep[];
  /** System jobs queued by this request's asynchronous steps. */
  jobs: string[];
  /** Set on the outermost request when its trace logs could not be written (the request's outcome stands). */
  traceLogError?: { code: string; message: string };
}

export interface RequestResult {
  response: OrganizationResponseValue;
  journal: JournalRequest;
}

/** Thrown by `execute`: the typed error, with the journal of what ran. */
export type RequestFailure = PlugboxError & { journal?: JournalRequest };

export interface Scope {
  depth: number;
  correlationId: string;
  chain: string[];
  /** The request runs inside an open transaction (its own or its caller's). */
  inTransaction: boolean;
  userId: string;
  initiatingUserId: string;
  parentContext: Record<string, unknown> | null;
  traces: TraceRow[];
  journal: JournalRequest[];
  signal: AbortSignal | undefined;
}

export interface StepRun {
  scope: Scope;
  message: string;
  entity: string | null;
  primaryId: string;
  inputParameters: Record<string, unknown>;
  outputParameters: Record<string, unknown>;
  sharedVariables: Record<string, unknown>;
  parentContext: Record<string, unknown> | null;
  preImage: Record<string, unknown> | undefined;
  postImage: Record<string, unknown> | undefined;
  journal: JournalRequest;
}

export interface StepOutcome {
  ok: boolean;
  error?: StepFailedError;
  changes?: { inputParameters: Record<string, unknown>; outputParameters: Record<string, unknown>; sharedVariables: Record<string, unknown> };
  trace: string;
  calls: RecordedCall[];
  durationMs: number;
  traceRows: TraceRow[];
}

export function errorSummary(error: unknown): { code: string; message: string } {
  const e = error as { code?: unknown; message?: unknown };
  return { code: typeof e.code === "string" ? e.code : "INTERNAL", message: typeof e.message === "string" ? e.message : String(error) };
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
