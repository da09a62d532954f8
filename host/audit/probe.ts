/**
 * The plumbing every confinement check shares: hostile bundles, a sample context, services that
 * record what reaches the host, and one execution in the sandbox configuration under audit.
 */
import { bundleFromSource, type Bundle } from "../../runtime/bundle.js";
import type { Isolation, SandboxLimits } from "../../runtime/options.js";
import type { ExecutionReport, SandboxRuntime, SandboxServices, ServiceCall } from "../../runtime/supervisor.js";
import type { WebPolicy, WebPolicyInput } from "../../runtime/web/policy.js";
import { Entity } from "../../sdk/model.js";
import { methodResponse } from "../../sdk/requests.js";
import { asMethodCall } from "../services/index.js";
import { ACCOUNT_ID, MISSING_ID } from "./corpus/technique.js";

/** The sandbox configuration a check runs in: the one the host would use. */
export interface CheckSetup {
  runtime: SandboxRuntime;
  /** The limits the host applies to an execution. */
  limits: SandboxLimits;
  /** The isolation mode of the host's steps (`reuse` when any step reuses instances). */
  isolation: Isolation;
  /** The web policy as the host configures it, and resolved. */
  webPolicy: WebPolicyInput;
  resolvedWebPolicy: WebPolicy;
}

export interface CheckOutcome {
  passed: boolean;
  evidence: string;
  /** Set when the rule cannot be exercised under this configuration: why (the check then counts as passed). */
  notApplicable?: string;
}

export interface ConfinementCheck {
  id: string;
  title: string;
  /** The public advisory, issue or technique the check comes from. */
  source: string;
  /** The class of attack, for grouping in the report. */
  area: string;
  run(setup: CheckSetup): Promise<CheckOutcome>;
}

/** No check may hold an execution longer than this, whatever the host's wall limit: a check that needs more is a failure. */
const AUDIT_WALL_CAP_MS = 30_000;

/**
 * A plug-in, exported as "Attack", whose execute() body is `body`. In scope: `sp` (the service
 * provider), `ctx` (the execution context), `out` (its output parameters), `trace` (the tracing
 * service) and `org` (an organization service as SYSTEM). Module-level code goes in `prelude`.
 */
export function attackBundle(body: string, prelude = ""): Bundle {
  return bundleFromSource(
    `${prelude}
module.exports = {
  Attack: class {
    async execute(sp) {
      const ctx = sp.getService("IPluginExecutionContext");
      const out = ctx.outputParameters;
      const trace = sp.getService("ITracingService");
      const org = sp.getService("IOrganizationServiceFactory").createOrganizationService(null);
      ${body}
    }
  }
};`,
    "test-plugin.js",
  );
}

/** A minimal execution context, as a Create of an account at stage 20 would have. */
export function sampleContext(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    messageName: "Create",
    primaryEntityName: "account",
    primaryEntityId: "00000000-0000-0000-0000-000000000000",
    stage: 20,
    mode: 0,
    depth: 1,
    inputParameters: {},
    outputParameters: {},
    sharedVariables: {},
    preEntityImages: {},
    postEntityImages: {},
    ...overrides,
  };
}

export type RecordingServices = SandboxServices & { calls: ServiceCall[]; maxInFlight: number };

/**
 * Services that record every call (an organization request as the method that sends it): a retrieve answers an account (or fails for MISSING_ID), a
 * retrieveMultiple answers 1 MB, a create answers an id. `answerDelayMs` holds each answer, so that
 * concurrency can be observed.
 */
export function recordingServices(options: { missing?: () => Error; answerDelayMs?: number } = {}): RecordingServices {
  const calls: ServiceCall[] = [];
  let inFlight = 0;
  const services: RecordingServices = {
    calls,
    maxInFlight: 0,
    call: async (request) => {
      const { op, args } = asMethodCall(request);
      calls.push({ ...request, op, args });
      inFlight++;
      services.maxInFlight = Math.max(services.maxInFlight, inFlight);
      try {
        if (options.answerDelayMs) await new Promise((resolve) => setTimeout(resolve, options.answerDelayMs));
        if (op === "retrieve") {
          if (args[1] === MISSING_ID) throw options.missing ? options.missing() : new Error(`account with id ${MISSING_ID} does not exist`);
          return methodResponse(op, new Entity("account", ACCOUNT_ID, { name: "Contoso" }));
        }
        if (op === "retrieveMultiple") return methodResponse(op, "x".repeat(1024 * 1024));
        if (op === "create") return methodResponse(op, ACCOUNT_ID);
        return null;
      } finally {
        inFlight--;
      }
    },
  };
  return services;
}

/** Writes a hostile plug-in made (it names them "leak"): none may reach the host. */
export function leakedWrites(services: RecordingServices): ServiceCall[] {
  return services.calls.filter((call) => call.op === "create" && ((call.args[0] as { logicalName?: string } | undefined)?.logicalName ?? "leak") === "leak");
}

/** The host's limits, tightened (never widened) by what a check needs, and capped for the audit. */
export function limitsFor(setup: CheckSetup, tighter: Partial<SandboxLimits> = {}): SandboxLimits {
  const out = { ...setup.limits, wallTimeMs: Math.min(setup.limits.wallTimeMs, AUDIT_WALL_CAP_MS) };
  for (const [key, value] of Object.entries(tighter) as Array<[keyof SandboxLimits, number]>) out[key] = Math.min(out[key], value);
  return out;
}

export interface AttackRun {
  body: string;
  prelude?: string;
  limits?: Partial<SandboxLimits>;
  isolation?: Isolation;
  instanceKey?: string;
  services?: RecordingServices;
  /** Serve fetch in the worker under the audited web policy (true) or under this one. */
  web?: boolean | WebPolicyInput;
  context?: Record<string, unknown>;
}

/** Runs one hostile plug-in in the configuration under audit. */
export async function attack(setup: CheckSetup, run: AttackRun): Promise<{ report: ExecutionReport; services: RecordingServices; limits: SandboxLimits }> {
  const services = run.services ?? recordingServices();
  const limits = limitsFor(setup, run.limits);
  const isolation = run.isolation ?? setup.isolation;
  const report = await setup.runtime.execute(
    {
      bundle: attackBundle(run.body, run.prelude),
      typeName: "Attack",
      context: run.context ?? sampleContext(),
      limits,
      isolation,
      ...(isolation === "reuse" ? { instanceKey: run.instanceKey ?? `audit-${Math.random().toString(36).slice(2)}` } : {}),
      ...(run.web ? { web: { policy: run.web === true ? setup.webPolicy : run.web, allowedHosts: null } } : {}),
    },
    services,
  );
  return { report, services, limits };
}

/** One line for what an execution ended with. */
export function describeReport(report: ExecutionReport): string {
  const outcome = report.ok ? `ok ${JSON.stringify(report.changes.outputParameters)}` : `${report.error.code}: ${report.error.message}`;
  return `${outcome.length > 300 ? `${outcome.slice(0, 300)}…` : outcome} (cpu ${Math.round(report.stats.cpuMs)} ms, wall ${Math.round(report.stats.wallMs)} ms)`;
}

/** The code a failure carries, or "ok". */
export function codeOf(report: ExecutionReport): string {
  return report.ok ? "ok" : report.error.code;
}

/** A problem when the runtime does not serve a harmless execution after an attack. */
export async function stillServes(setup: CheckSetup): Promise<string | undefined> {
  const { report } = await attack(setup, { body: `out.healthy = "yes";`, isolation: "fresh" });
  return report.ok && report.changes.outputParameters.healthy === "yes" ? undefined : `the next harmless execution did not run: ${describeReport(report)}`;
}

/** A check's verdict: passed when there is no problem; the evidence says what was seen, and every problem. */
export function verdict(seen: string, problems: Array<string | undefined>): CheckOutcome {
  const found = problems.filter((p): p is string => p !== undefined);
  return { passed: found.length === 0, evidence: found.length === 0 ? seen : `${seen}; ${found.join("; ")}` };
}

/** A check that one hostile body ends with one of `codes`, within `cpuMargin` ms past the CPU limit when given, and the runtime serves on. */
export function endsWith(spec: { id: string; title: string; source: string; area: string; body: string; codes: string[]; limits?: Parameters<typeof attack>[1]["limits"]; cpuMargin?: number; prelude?: string }): ConfinementCheck {
  return {
    id: spec.id,
    title: spec.title,
    source: spec.source,
    area: spec.area,
    async run(setup) {
      const { report, services, limits } = await attack(setup, { body: spec.body, ...(spec.prelude ? { prelude: spec.prelude } : {}), ...(spec.limits ? { limits: spec.limits } : {}) });
      const cpuBound = spec.cpuMargin === undefined ? undefined : limits.cpuTimeMs + spec.cpuMargin;
      return verdict(describeReport(report), [
        spec.codes.includes(codeOf(report)) ? undefined : `ended with ${codeOf(report)}, expected ${spec.codes.join(" or ")}`,
        cpuBound !== undefined && report.stats.cpuMs >= cpuBound ? `used ${report.stats.cpuMs} ms of CPU, past the limit of ${limits.cpuTimeMs} ms plus ${spec.cpuMargin} ms` : undefined,
        leakedWrites(services).length > 0 ? "a hostile write reached the host" : undefined,
        await stillServes(setup),
      ]);
    },
  };
}
