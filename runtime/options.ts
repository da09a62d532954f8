/**
 * Limits and runtime options: one frozen defaults object and one resolver that names the bad path
 * and the fix. Defaults follow Dataverse where it publishes a number (2 minutes, 10 KB of trace).
 */
import os from "node:os";
import { OptionsError } from "./errors.js";
import { defaultsOf, flag, formatPath, integerEntries, optionTable, parseOptions, rangesOf, shown, strictOptions, v, withDefaults, type OptionTable, type PathItem } from "./schema.js";

export type Isolation = "fresh" | "reuse";

/** Whose time plug-ins see: the system's, or the runtime's clock (see `SandboxRuntimeOptions.pluginTime`). */
export type PluginTime = "system" | "clock";

/** Per-execution limits. Every field is optional where accepted and has a default below. */
export interface SandboxLimits {
  /** Wall-clock time for one execution, ms. Dataverse's limit for a message operation is 2 minutes. @default 120000 */
  wallTimeMs: number;
  /** CPU time the plug-in's own code may use, ms. @default 60000 */
  cpuTimeMs: number;
  /** Heap limit of the isolate, MB (isolated-vm's minimum is 8). @default 128 */
  memoryMb: number;
  /** Trace text kept per execution, bytes; older lines are dropped first (Dataverse keeps 10 KB). @default 10240 */
  traceBytes: number;
  /** Service calls one execution may make. @default 1000 */
  maxHostCalls: number;
  /** Service calls one execution may have in flight at once. @default 8 */
  maxConcurrentHostCalls: number;
  /** Size of one service call's request or response, bytes of JSON. @default 1048576 */
  maxHostCallBytes: number;
  /** Size of what the execution returns (the changed context), bytes of JSON. @default 4194304 */
  maxResultBytes: number;
}

/** Each limit declared once: its range (inclusive), unit, default and what it is; the schema, the defaults and `plugbox run`'s flags read it. */
export const sandboxLimitTable: OptionTable<keyof SandboxLimits> = optionTable({
  wallTimeMs: { min: 1, max: 3_600_000, unit: "ms", default: 120_000, description: "wall-clock limit of the execution" },
  cpuTimeMs: { min: 1, max: 3_600_000, unit: "ms", default: 60_000, description: "CPU time the plug-in may use" },
  memoryMb: { min: 8, max: 4_096, unit: "MB", default: 128, description: "heap limit of the plug-in's isolate" },
  traceBytes: { min: 0, max: 16_777_216, unit: "bytes", default: 10_240, description: "trace text kept (newest kept)" },
  maxHostCalls: { min: 0, max: 1_000_000, unit: "calls", default: 1_000, description: "service calls allowed" },
  maxConcurrentHostCalls: { min: 1, max: 1_024, unit: "calls", default: 8, description: "service calls in flight at once" },
  maxHostCallBytes: { min: 1_024, max: 268_435_456, unit: "bytes", default: 1_048_576, description: "size of one service call's request or response" },
  maxResultBytes: { min: 1_024, max: 268_435_456, unit: "bytes", default: 4_194_304, description: "size of the changed context" },
});

export const sandboxLimitDefaults: Readonly<SandboxLimits> = defaultsOf(sandboxLimitTable);

/** The range of each limit, inclusive. */
export const sandboxLimitRanges: Readonly<Record<keyof SandboxLimits, readonly [min: number, max: number]>> = rangesOf(sandboxLimitTable);

/** Options of the sandbox runtime (the supervisor of worker processes). */
export interface SandboxRuntimeOptions {
  /** Sandbox worker processes. @default min(2, number of CPUs) */
  workers: number;
  /** Never-used isolates each worker keeps warm for `fresh` executions. @default 2 */
  prewarmIsolates: number;
  /** Executions one worker runs at once (isolated-vm's thread pool is cores + 1). @default number of CPUs */
  maxConcurrentPerWorker: number;
  /** A worker is replaced after this many executions. @default 10000 */
  recycleAfterExecutions: number;
  /** A worker is replaced once its resident memory passes this, MB. @default 768 */
  recycleAboveRssMb: number;
  /** `reuse` contexts a worker keeps; the least recently used is dropped past this. @default 64 */
  maxReusedContexts: number;
  /** Extra time the supervisor grants past the wall limit before it kills a worker that did not answer, ms. @default 2000 */
  killGraceMs: number;
  /**
   * Start the workers at the first execution rather than at once: for a host that may never run a
   * plug-in (a job process whose steps only post to service endpoints). @default false
   */
  startOnFirstExecution: boolean;
  /**
   * How long the runtime waits before it starts a worker again after one failed to start, ms; the
   * wait doubles with each failure in a row, up to `startRetryMaxMs`. It never stops trying. @default 250
   */
  startRetryBaseMs: number;
  /** The longest wait between attempts to start a worker, ms: the cap on how often a failing start is retried. @default 10000 */
  startRetryMaxMs: number;
  /**
   * Failures to start a worker in a row, with no worker ready, after which executions fail at once
   * with SANDBOX_UNAVAILABLE (and the reason) rather than wait, until a worker starts again. @default 3
   */
  unavailableAfterStartFailures: number;
  /**
   * TEST ONLY, never for a deployment: the shim leaves `WebAssembly` in the plug-in's realm, so that
   * the tests of `plugbox audit` can prove the audit catches a weakened sandbox. Settable from code
   * only: neither a manifest nor a CLI flag reaches it. @default false
   */
  unsafeKeepWebAssembly: boolean;
  /**
   * Whose time plug-ins see. `"system"`: the real time, and their timers wait in real time.
   * `"clock"`: the runtime's clock (`createSandboxRuntime({ clock })`, `createHost({ clock })`):
   * `Date.now()`, `new Date()` and `Date()` inside a plug-in give the clock's time (as of when
   * plug-in code was last entered: time stands still while it runs), and its `setTimeout` and
   * `setInterval` are timers of that clock, so `await clock.advance("1d")` on a ManualClock fires
   * them, in due order, without real waiting. An execution's own limits (wall and CPU time) stay
   * real time either way. @default "system"
   */
  pluginTime: PluginTime;
  /** Limits applied when an execution does not set its own. */
  limits: SandboxLimits;
}

/** Each whole-number runtime option declared once: its range (inclusive), unit, default and what it is. */
export const sandboxRuntimeTable: OptionTable<keyof Omit<SandboxRuntimeOptions, "limits" | "startOnFirstExecution" | "unsafeKeepWebAssembly" | "pluginTime">> = optionTable({
  workers: { min: 1, max: 64, unit: "processes", default: Math.max(1, Math.min(2, os.cpus().length)), description: "sandbox worker processes" },
  prewarmIsolates: { min: 0, max: 64, unit: "isolates", default: 2, description: "never-used isolates each worker keeps warm" },
  maxConcurrentPerWorker: { min: 1, max: 256, unit: "executions", default: Math.max(1, os.cpus().length), description: "executions one worker runs at once" },
  recycleAfterExecutions: { min: 1, max: Number.MAX_SAFE_INTEGER, unit: "executions", default: 10_000, description: "a worker is replaced after this many executions" },
  recycleAboveRssMb: { min: 32, max: 1_048_576, unit: "MB", default: 768, description: "a worker is replaced once its resident memory passes this" },
  maxReusedContexts: { min: 1, max: 100_000, unit: "contexts", default: 64, description: "reuse contexts a worker keeps" },
  killGraceMs: { min: 0, max: 600_000, unit: "ms", default: 2_000, description: "time granted past the wall limit before a worker that did not answer is killed" },
  startRetryBaseMs: { min: 1, max: 600_000, unit: "ms", default: 250, description: "first wait before a worker that failed to start is started again" },
  startRetryMaxMs: { min: 1, max: 3_600_000, unit: "ms", default: 10_000, description: "the longest wait between attempts to start a worker" },
  unavailableAfterStartFailures: { min: 1, max: 1_000, unit: "failures", default: 3, description: "failures to start a worker in a row before executions fail at once" },
});

export const sandboxRuntimeDefaults: Readonly<Omit<SandboxRuntimeOptions, "limits">> = Object.freeze({
  ...defaultsOf(sandboxRuntimeTable),
  startOnFirstExecution: false,
  unsafeKeepWebAssembly: false,
  pluginTime: "system",
});

const limitsSchema = strictOptions(integerEntries(sandboxLimitTable));

const runtimeOptionsSchema = strictOptions({
  ...integerEntries(sandboxRuntimeTable),
  startOnFirstExecution: v.optional(flag()),
  unsafeKeepWebAssembly: v.optional(flag()),
  pluginTime: v.optional(v.picklist(["system", "clock"], (issue) => `must be "system" or "clock"; got ${shown(issue.input)}`)),
  limits: v.optional(limitsSchema),
});

const optionsError = (root: string) => (path: PathItem[], message: string) => new OptionsError("OPTIONS_INVALID", `${formatPath(root, path)} ${message}`);

/**
 * Fills in defaults and checks every value; throws OPTIONS_INVALID naming the path and the rule.
 * Runs per execution when an execution sets its own limits: bench/options.ts measures the schema
 * against the hand checks it replaced.
 */
export function resolveLimits(input: Partial<SandboxLimits> | undefined, base: SandboxLimits = sandboxLimitDefaults, path = "limits"): SandboxLimits {
  if (input === undefined) return base;
  return withDefaults(base, parseOptions(limitsSchema, input, optionsError(path)));
}

export function resolveRuntimeOptions(input: Partial<Omit<SandboxRuntimeOptions, "limits"> & { limits: Partial<SandboxLimits> }> = {}): SandboxRuntimeOptions {
  const { limits, ...given } = parseOptions(runtimeOptionsSchema, input, optionsError("options"));
  const out = withDefaults(sandboxRuntimeDefaults as Omit<SandboxRuntimeOptions, "limits">, given);
  if (out.startRetryMaxMs < out.startRetryBaseMs) {
    throw new OptionsError("OPTIONS_INVALID", `options.startRetryMaxMs (${String(out.startRetryMaxMs)}) must not be less than options.startRetryBaseMs (${String(out.startRetryBaseMs)})`);
  }
  return Object.freeze({ ...out, limits: limits === undefined ? sandboxLimitDefaults : withDefaults(sandboxLimitDefaults, limits) });
}
