/**
 * The runtime's error codes: the sandbox's (bundles, plug-ins, limits, isolation) and the service
 * calls' (a plug-in's call the runtime refuses or a host service fails). The base class is the SDK's
 * `PlugboxError`; the CLI maps each code to its exit status.
 */
import { codesOf, PlugboxError, type ErrorTable } from "../sdk/errors.js";

export { PlugboxError, codesOf, familyIn, isPlugboxError } from "../sdk/errors.js";
export type { ErrorCodeInfo, ErrorFamily, ErrorTable, PlugboxErrorOptions } from "../sdk/errors.js";

export const SANDBOX_ERRORS = {
  BUNDLE_NOT_FOUND: { family: "usage", means: "the bundle file does not exist or cannot be read" },
  BUNDLE_INVALID: { family: "usage", means: "the bundle is not a script the sandbox can compile or evaluate" },
  BUNDLE_TOO_LARGE: { family: "usage", means: "the bundle is larger than limits.maxBundleBytes" },
  PLUGIN_TYPE_NOT_FOUND: { family: "usage", means: "the bundle does not export the plug-in type asked for" },
  PLUGIN_TYPE_INVALID: { family: "usage", means: "the export is not a class with an execute(serviceProvider) method" },
  PLUGIN_CONSTRUCTOR_FAILED: { family: "usage", means: "the plug-in class threw from its constructor" },
  PLUGIN_FAILED: { family: "plugin", means: "the plug-in threw InvalidPluginExecutionError" },
  PLUGIN_UNEXPECTED_ERROR: { family: "plugin", means: "the plug-in threw something else (Dataverse's IsvUnExpected)" },
  PLUGIN_RESULT_INVALID: { family: "plugin", means: "what the plug-in left in its context cannot be serialized" },
  SANDBOX_TIMEOUT: { family: "limit", means: "the execution ran past its wall-clock limit" },
  SANDBOX_CPU_LIMIT: { family: "limit", means: "the execution used more CPU time than allowed" },
  SANDBOX_MEMORY_LIMIT: { family: "limit", means: "the isolate ran out of its heap limit" },
  SANDBOX_STALLED: { family: "limit", means: "execute() returned a promise that nothing can ever settle" },
  SANDBOX_HOST_CALL_LIMIT: { family: "limit", means: "too many service calls, or too many at once" },
  SANDBOX_HOST_CALL_TOO_LARGE: { family: "limit", means: "a service call's request or response is over limits.maxHostCallBytes" },
  SANDBOX_RESULT_TOO_LARGE: { family: "limit", means: "the changed context is over limits.maxResultBytes" },
  SANDBOX_WORKER_CRASHED: { family: "limit", means: "the sandbox worker process died during the execution" },
  SANDBOX_ISOLATION_VIOLATION: { family: "isolation", means: "the plug-in tried something the sandbox forbids" },
  SANDBOX_CALL_AFTER_END: { family: "isolation", means: "a service was called after its execution had ended" },
  SANDBOX_CLOSED: { family: "usage", means: "the runtime was used after close()" },
  SANDBOX_ABORTED: { family: "limit", means: "the caller aborted the execution through its AbortSignal" },
  SANDBOX_INTERNAL: { family: "internal", means: "a defect in plugbox itself; the message says what happened" },
  SANDBOX_UNSUPPORTED_NODE: { family: "usage", means: "this Node.js has no isolated-vm binding (plugbox runs on 20, 22, 24 and 26), or it is not installed" },
  OPTIONS_INVALID: { family: "usage", means: "an option is out of range or of the wrong type" },
  SANDBOX_UNAVAILABLE: { family: "environment", means: "no sandbox worker could be started lately; the runtime keeps trying and recovers by itself" },
} as const satisfies ErrorTable;

export type SandboxErrorCode = keyof typeof SANDBOX_ERRORS;

export const SERVICE_ERRORS = {
  SERVICE_BAD_REQUEST: { family: "isolation", means: "a service call's arguments could not be read" },
  SERVICE_FAILED: { family: "internal", means: "a host service failed for a reason the plug-in is not told" },
} as const satisfies ErrorTable;

export type ServiceErrorCode = keyof typeof SERVICE_ERRORS;

export class SandboxError<Code extends SandboxErrorCode = SandboxErrorCode> extends PlugboxError<Code> {
  static override readonly codes = codesOf(SANDBOX_ERRORS);
}
export class SandboxTimeoutError extends SandboxError<"SANDBOX_TIMEOUT" | "SANDBOX_CPU_LIMIT"> {
  static override readonly codes: ReadonlySet<string> = new Set(["SANDBOX_TIMEOUT", "SANDBOX_CPU_LIMIT"]);
}
export class SandboxMemoryError extends SandboxError<"SANDBOX_MEMORY_LIMIT"> {
  static override readonly codes: ReadonlySet<string> = new Set(["SANDBOX_MEMORY_LIMIT"]);
}
export class SandboxLimitError extends SandboxError<"SANDBOX_STALLED" | "SANDBOX_HOST_CALL_LIMIT" | "SANDBOX_HOST_CALL_TOO_LARGE" | "SANDBOX_RESULT_TOO_LARGE"> {
  static override readonly codes: ReadonlySet<string> = new Set(["SANDBOX_STALLED", "SANDBOX_HOST_CALL_LIMIT", "SANDBOX_HOST_CALL_TOO_LARGE", "SANDBOX_RESULT_TOO_LARGE"]);
}
export class SandboxCrashError extends SandboxError<"SANDBOX_WORKER_CRASHED"> {
  static override readonly codes: ReadonlySet<string> = new Set(["SANDBOX_WORKER_CRASHED"]);
}
export class SandboxIsolationError extends SandboxError<"SANDBOX_ISOLATION_VIOLATION" | "SANDBOX_CALL_AFTER_END"> {
  static override readonly codes: ReadonlySet<string> = new Set(["SANDBOX_ISOLATION_VIOLATION", "SANDBOX_CALL_AFTER_END"]);
}
type BundleErrorCode = "BUNDLE_NOT_FOUND" | "BUNDLE_INVALID" | "BUNDLE_TOO_LARGE" | "PLUGIN_TYPE_NOT_FOUND" | "PLUGIN_TYPE_INVALID" | "PLUGIN_CONSTRUCTOR_FAILED";
export class BundleError extends SandboxError<BundleErrorCode> {
  static override readonly codes: ReadonlySet<string> = new Set<BundleErrorCode>(["BUNDLE_NOT_FOUND", "BUNDLE_INVALID", "BUNDLE_TOO_LARGE", "PLUGIN_TYPE_NOT_FOUND", "PLUGIN_TYPE_INVALID", "PLUGIN_CONSTRUCTOR_FAILED"]);
}
export class OptionsError extends SandboxError<"OPTIONS_INVALID"> {
  static override readonly codes: ReadonlySet<string> = new Set(["OPTIONS_INVALID"]);
}

type PluginFailureCode = "PLUGIN_FAILED" | "PLUGIN_UNEXPECTED_ERROR" | "PLUGIN_RESULT_INVALID";

/** A plug-in's own failure, normalized: InvalidPluginExecutionError keeps its status and errorCode. */
export class PluginExecutionError extends SandboxError<PluginFailureCode> {
  static override readonly codes: ReadonlySet<string> = new Set<PluginFailureCode>(["PLUGIN_FAILED", "PLUGIN_UNEXPECTED_ERROR", "PLUGIN_RESULT_INVALID"]);
  /** OperationStatus: Failed 0, Canceled 1, Retry 2, Suspended 3, Succeeded 4. */
  readonly status: number;
  readonly errorCode: number;
  /** The plug-in's stack, mapped to the author's sources where the bundle has a source map. */
  readonly pluginStack: string | undefined;
  /** The code of a service error the plug-in did not catch (a web policy refusal, a failed organization call). */
  readonly serviceCode: string | undefined;
  constructor(
    code: PluginFailureCode,
    message: string,
    init: { status?: number; errorCode?: number; pluginStack?: string; serviceCode?: string; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, { details: init.details });
    this.status = init.status ?? 0;
    this.errorCode = init.errorCode ?? -2147220891;
    this.pluginStack = init.pluginStack;
    this.serviceCode = init.serviceCode;
  }
}

/** A service call the runtime refused, or a host service that failed without a code of its own. */
export class ServiceError extends PlugboxError<ServiceErrorCode> {
  static override readonly codes = codesOf(SERVICE_ERRORS);
}

const classForCode: Record<SandboxErrorCode, new (code: never, message: string, options?: { details?: Record<string, unknown> }) => SandboxError> = {
  BUNDLE_NOT_FOUND: BundleError,
  BUNDLE_INVALID: BundleError,
  BUNDLE_TOO_LARGE: BundleError,
  PLUGIN_TYPE_NOT_FOUND: BundleError,
  PLUGIN_TYPE_INVALID: BundleError,
  PLUGIN_CONSTRUCTOR_FAILED: BundleError,
  PLUGIN_FAILED: PluginExecutionError,
  PLUGIN_UNEXPECTED_ERROR: PluginExecutionError,
  PLUGIN_RESULT_INVALID: PluginExecutionError,
  SANDBOX_TIMEOUT: SandboxTimeoutError,
  SANDBOX_CPU_LIMIT: SandboxTimeoutError,
  SANDBOX_MEMORY_LIMIT: SandboxMemoryError,
  SANDBOX_STALLED: SandboxLimitError,
  SANDBOX_HOST_CALL_LIMIT: SandboxLimitError,
  SANDBOX_HOST_CALL_TOO_LARGE: SandboxLimitError,
  SANDBOX_RESULT_TOO_LARGE: SandboxLimitError,
  SANDBOX_WORKER_CRASHED: SandboxCrashError,
  SANDBOX_ISOLATION_VIOLATION: SandboxIsolationError,
  SANDBOX_CALL_AFTER_END: SandboxIsolationError,
  SANDBOX_CLOSED: SandboxError,
  SANDBOX_ABORTED: SandboxError,
  SANDBOX_INTERNAL: SandboxError,
  SANDBOX_UNSUPPORTED_NODE: SandboxError,
  OPTIONS_INVALID: OptionsError,
  SANDBOX_UNAVAILABLE: SandboxError,
};

/** Rebuilds a runtime error from its code (errors cross the worker boundary as `{ code, message }`). */
export function sandboxError(code: SandboxErrorCode, message: string, details?: Record<string, unknown>): SandboxError {
  const Class = classForCode[code] ?? SandboxError;
  return new Class(code as never, message, details === undefined ? undefined : { details });
}

export function isSandboxErrorCode(code: unknown): code is SandboxErrorCode {
  return typeof code === "string" && Object.prototype.hasOwnProperty.call(SANDBOX_ERRORS, code);
}
