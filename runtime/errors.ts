/**
 * The one error hierarchy. Every error plugbox raises is a `PlugboxError` with a stable `code`;
 * match on `code` (not `instanceof`): errors are rebuilt across processes and a test may load two
 * copies of plugbox. The CLI maps codes to exit statuses (`exitCodeFor`).
 */

const kPlugboxError = Symbol.for("plugbox.error");

/**
 * `environment`: the machine could not serve the request (the store busy, full or damaged, the
 * sandbox workers unable to start, a service out of reach); nothing the caller sent was at fault,
 * and the same call may succeed later or after a repair.
 */
export type ErrorFamily = "usage" | "plugin" | "limit" | "isolation" | "internal" | "environment";

export class PlugboxError<Code extends string = string> extends Error {
  readonly code: Code;
  /** Extra facts for callers and `--json` output (never secrets). */
  readonly details: Record<string, unknown> | undefined;
  constructor(code: Code, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
    this.name = `${new.target.name} [${code}]`;
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== "object" || value === null) return false;
    if ((value as { [kPlugboxError]?: unknown })[kPlugboxError] !== true) return false;
    // A subclass answers as `instanceof` always does (its prototype on the value's chain), so only
    // PlugboxError itself matches an error from another copy of plugbox (by the brand above).
    if (this === PlugboxError) return true;
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}
Object.defineProperty(PlugboxError.prototype, kPlugboxError, { value: true });

/**
 * Error codes raised by the runtime, one per line. The family decides the CLI exit status:
 * usage → 2, plugin → 1, limit → 3, isolation → 4, internal → 1.
 */
export const SANDBOX_ERROR_CODES = {
  BUNDLE_NOT_FOUND: "usage", // the bundle file does not exist or cannot be read
  BUNDLE_INVALID: "usage", // the bundle is not a script the sandbox can compile or evaluate
  BUNDLE_TOO_LARGE: "usage", // the bundle is larger than limits.maxBundleBytes
  PLUGIN_TYPE_NOT_FOUND: "usage", // the bundle does not export the plug-in type asked for
  PLUGIN_TYPE_INVALID: "usage", // the export is not a class with an execute(serviceProvider) method
  PLUGIN_CONSTRUCTOR_FAILED: "usage", // the plug-in class threw from its constructor
  PLUGIN_FAILED: "plugin", // the plug-in threw InvalidPluginExecutionError
  PLUGIN_UNEXPECTED_ERROR: "plugin", // the plug-in threw something else (Dataverse's IsvUnExpected)
  PLUGIN_RESULT_INVALID: "plugin", // what the plug-in left in its context cannot be serialized
  SANDBOX_TIMEOUT: "limit", // the execution ran past its wall-clock limit
  SANDBOX_CPU_LIMIT: "limit", // the execution used more CPU time than allowed
  SANDBOX_MEMORY_LIMIT: "limit", // the isolate ran out of its heap limit
  SANDBOX_STALLED: "limit", // execute() returned a promise that nothing can ever settle
  SANDBOX_HOST_CALL_LIMIT: "limit", // too many service calls, or too many at once
  SANDBOX_HOST_CALL_TOO_LARGE: "limit", // a service call's request or response is over limits.maxHostCallBytes
  SANDBOX_RESULT_TOO_LARGE: "limit", // the changed context is over limits.maxResultBytes
  SANDBOX_WORKER_CRASHED: "limit", // the sandbox worker process died during the execution
  SANDBOX_ISOLATION_VIOLATION: "isolation", // the plug-in tried something the sandbox forbids
  SANDBOX_CALL_AFTER_END: "isolation", // a service was called after its execution had ended
  SANDBOX_CLOSED: "usage", // the runtime was used after close()
  SANDBOX_ABORTED: "limit", // the caller aborted the execution through its AbortSignal
  SANDBOX_INTERNAL: "internal", // a defect in plugbox itself; the message says what happened
  SANDBOX_UNSUPPORTED_NODE: "usage", // this Node.js has no isolated-vm binding (plugbox runs on 20, 22, 24 and 26), or it is not installed
  OPTIONS_INVALID: "usage", // an option is out of range or of the wrong type
  SANDBOX_UNAVAILABLE: "environment", // no sandbox worker could be started lately; the runtime keeps trying and recovers by itself
} as const satisfies Record<string, ErrorFamily>;

export type SandboxErrorCode = keyof typeof SANDBOX_ERROR_CODES;

export class SandboxError extends PlugboxError<SandboxErrorCode> {}
export class SandboxTimeoutError extends SandboxError {}
export class SandboxMemoryError extends SandboxError {}
export class SandboxLimitError extends SandboxError {}
export class SandboxCrashError extends SandboxError {}
export class SandboxIsolationError extends SandboxError {}
export class BundleError extends SandboxError {}
export class OptionsError extends SandboxError {}

/** A plug-in's own failure, normalized: InvalidPluginExecutionError keeps its status and errorCode. */
export class PluginExecutionError extends SandboxError {
  /** OperationStatus: Failed 0, Canceled 1, Retry 2, Suspended 3, Succeeded 4. */
  readonly status: number;
  readonly errorCode: number;
  /** The plug-in's stack, mapped to the author's sources where the bundle has a source map. */
  readonly pluginStack: string | undefined;
  /** The code of a service error the plug-in did not catch (a web policy refusal, a failed organization call). */
  readonly serviceCode: string | undefined;
  constructor(
    code: "PLUGIN_FAILED" | "PLUGIN_UNEXPECTED_ERROR" | "PLUGIN_RESULT_INVALID",
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

const classForCode: Record<SandboxErrorCode, new (code: never, message: string, options?: { details?: Record<string, unknown> }) => SandboxError> = {
  BUNDLE_NOT_FOUND: BundleError,
  BUNDLE_INVALID: BundleError,
  BUNDLE_TOO_LARGE: BundleError,
  PLUGIN_TYPE_NOT_FOUND: BundleError,
  PLUGIN_TYPE_INVALID: BundleError,
  PLUGIN_CONSTRUCTOR_FAILED: BundleError,
  PLUGIN_FAILED: SandboxError,
  PLUGIN_UNEXPECTED_ERROR: SandboxError,
  PLUGIN_RESULT_INVALID: SandboxError,
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
  return typeof code === "string" && Object.prototype.hasOwnProperty.call(SANDBOX_ERROR_CODES, code);
}

/** The error-family table every area contributes to; the CLI reads it through `exitCodeFor`. */
export function familyOf(code: string, extraFamilies: Record<string, ErrorFamily> = {}): ErrorFamily {
  if (isSandboxErrorCode(code)) return SANDBOX_ERROR_CODES[code];
  return extraFamilies[code] ?? "internal";
}

export const EXIT_CODES: Record<ErrorFamily, number> = {
  plugin: 1,
  internal: 1,
  usage: 2,
  limit: 3,
  isolation: 4,
  environment: 5,
};
