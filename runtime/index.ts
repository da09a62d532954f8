/**
 * The sandbox: isolated-vm isolates in supervised worker processes. Knows nothing of pipelines or stores.
 * @module
 */
export { SandboxRuntime, createSandboxRuntime } from "./supervisor.js";
export type { ExecutionRequest, ExecutionReport, SandboxHealth, SandboxRuntimeInput, SandboxServices, ServiceCall } from "./supervisor.js";
export { systemClock } from "./clock.js";
export type { Clock, ClockTimer } from "./clock.js";
export { DEFAULT_INSPECTOR_PORT } from "./inspect.js";
export type { InspectorEndpoint, InspectorOptions } from "./inspect.js";
export { Bundle, bundleFromSource, loadBundleFile, MAX_BUNDLE_BYTES } from "./bundle.js";
export { sandboxLimitDefaults, sandboxRuntimeDefaults, resolveLimits, resolveRuntimeOptions } from "./options.js";
export type { Isolation, PluginTime, SandboxLimits, SandboxRuntimeOptions } from "./options.js";
export type { ExecutionChanges, ExecutionStats, ServiceName } from "./protocol.js";
export { SERVICE_OPERATIONS } from "./protocol.js";
export { isolatedVmBinding, SUPPORTED_NODE_MAJORS } from "./worker/ivm.js";
export type { IsolatedVmBinding } from "./worker/ivm.js";
export {
  PlugboxError,
  SandboxError,
  SandboxTimeoutError,
  SandboxMemoryError,
  SandboxLimitError,
  SandboxCrashError,
  SandboxIsolationError,
  BundleError,
  OptionsError,
  PluginExecutionError,
  ServiceError,
  SANDBOX_ERRORS,
  SERVICE_ERRORS,
  sandboxError,
  isPlugboxError,
} from "./errors.js";
export type { ErrorFamily, ErrorTable, SandboxErrorCode, ServiceErrorCode } from "./errors.js";
