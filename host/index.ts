/**
 * `plugbox`: the host side. Start a host (pipeline, store, jobs, relay), a sandbox runtime or the
 * local broker; run and build plug-ins. Plug-in authors import `plugbox/sdk`; test suites
 * `plugbox/testing`.
 *
 * @example
 * import { runPlugin } from "plugbox";
 * const result = await runPlugin({ bundle: "dist/plugin.bundle.js", typeName: "HelloPlugin" });
 * @module
 */

// The host: one request through the pipeline, system jobs, the store's records.
export { createHost } from "./host.js";
export type { PlugboxHost, HostOptions, HostHealth } from "./host.js";
export type { Caller, Identity, JournalRequest, JournalStep, RequestResult } from "./pipeline/pipeline.js";
export { JobState, JobStatus } from "./jobs/queue.js";
export type { SystemJob } from "./jobs/queue.js";
export type { JobOutcome, JobRunnerOptions } from "./jobs/runner.js";
export type { JobTransportOptions } from "./jobs/transport-options.js";
export { runJobsInProcesses } from "./job-processes.js";
export type { JobProcessesOptions, JobProcessesResult } from "./job-processes.js";
export type { TraceRow } from "./pipeline/trace-log.js";
export type { RecordRow } from "./store/index.js";
export type { Manifest, StepRegistration, StepImage, BundleRegistration, ServiceEndpointRegistration, ManifestSettings } from "./registry/index.js";
export type { SecretSource } from "./relay/index.js";
export { systemClock } from "./ids.js";
export type { Clock, ClockTimer, IdSource } from "./ids.js";
export type { WebPolicyInput } from "./web/index.js";

// One plug-in, once; bundles.
export { runPlugin } from "./testing/index.js";
export type { RunResult } from "./testing/index.js";
export type { RunOptions, RunError, PluginRun, RunChanges, PlainEntity, PlainEntityReference } from "./run.js";
export type { ContextInput, EntityInput, EntityReferenceInput, Stage, Mode } from "./pipeline/context.js";
export { buildBundle } from "./build.js";
export type { BuildOptions, BuildResult } from "./build.js";

// The sandbox on its own.
export { createSandboxRuntime, bundleFromSource, loadBundleFile, sandboxLimitDefaults, isolatedVmBinding, SUPPORTED_NODE_MAJORS } from "../runtime/index.js";
export type {
  SandboxRuntime,
  SandboxRuntimeOptions,
  SandboxLimits,
  Isolation,
  Bundle,
  ExecutionRequest,
  ExecutionReport,
  ExecutionStats,
  ExecutionChanges,
  SandboxServices,
  ServiceCall,
  ServiceName,
  SandboxHealth,
  IsolatedVmBinding,
  InspectorOptions,
  InspectorEndpoint,
} from "../runtime/index.js";

// `plugbox serve`'s HTTP API over a host.
export { startServe } from "./serve/index.js";
export type { Serve, ServeOptions } from "./serve/index.js";

// The local Service Bus and Event Hubs broker.
export { startBroker } from "./broker/index.js";
export type { Broker, BrokerOptions, BrokerTopology, EntityOptions, SubscriptionSpec, TopicSpec, RuleSpec, CorrelationFilterSpec, EventHubSpec } from "./broker/index.js";

// Errors a caller catches: every one is a PlugboxError with a stable `code` (match on the code).
export { PlugboxError, isPlugboxError } from "../sdk/errors.js";
export type { ErrorFamily } from "../sdk/errors.js";
// One class per area; \`instanceof\` holds per code across copies of plugbox and realms.
export {
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
} from "../runtime/errors.js";
export { WebError } from "../runtime/web/errors.js";
export { HostError, UsageError } from "./errors.js";
export { HostServiceError } from "./services/errors.js";
export { OrganizationError } from "./organization/errors.js";
export { PipelineError, StepFailedError } from "./pipeline/errors.js";
export { JobError } from "./jobs/errors.js";
export { RegistryError } from "./registry/errors.js";
export { StoreError } from "./store/errors.js";
export { RelayError } from "./relay/errors.js";
export { BrokerError } from "./broker/errors.js";
export { CliError } from "./cli/errors.js";
export { ReplayError } from "./replay/errors.js";
export { ServeError } from "./serve/errors.js";
export type { SandboxErrorCode } from "../runtime/index.js";
export type { HostErrorCode } from "./errors.js";
export type { PipelineErrorCode } from "./pipeline/errors.js";
export type { JobErrorCode } from "./jobs/errors.js";
export type { StoreErrorCode } from "./store/index.js";
export type { BrokerErrorCode } from "./broker/index.js";
export type { ErrorCode } from "./cli/exit-statuses.js";
