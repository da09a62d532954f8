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
export { JobState, JobStatus } from "./pipeline/jobs-store.js";
export type { SystemJob } from "./pipeline/jobs-store.js";
export type { JobOutcome, JobRunnerOptions } from "./pipeline/job-runner.js";
export { runJobsInProcesses } from "./job-processes.js";
export type { JobProcessesOptions, JobProcessesResult } from "./job-processes.js";
export type { TraceRow } from "./pipeline/trace-log.js";
export type { RecordRow } from "./store/index.js";
export type { Manifest, StepRegistration, StepImage, BundleRegistration, ServiceEndpointRegistration, ManifestSettings } from "./registry/index.js";
export type { SecretSource } from "./relay/index.js";
export type { Clock, IdSource } from "./ids.js";
export type { WebPolicyInput } from "./web/index.js";

// One plug-in, once; bundles.
export { runPlugin } from "./run.js";
export type { RunOptions, RunResult, RunError } from "./run.js";
export type { ContextInput, Stage, Mode } from "./context.js";
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
} from "../runtime/index.js";

// The local Service Bus and Event Hubs broker.
export { startBroker } from "./broker/index.js";
export type { Broker, BrokerOptions, BrokerTopology, EntityOptions, SubscriptionSpec, TopicSpec, RuleSpec, CorrelationFilterSpec, EventHubSpec } from "./broker/index.js";

// Errors a caller catches: every one is a PlugboxError with a stable `code` (match on the code).
export { PlugboxError, SandboxError, PluginExecutionError } from "../runtime/index.js";
export { StepFailedError } from "./pipeline/errors.js";
export type { ErrorFamily, SandboxErrorCode } from "../runtime/index.js";
export type { HostErrorCode } from "./errors.js";
export type { PipelineErrorCode } from "./pipeline/errors.js";
export type { StoreErrorCode } from "./store/index.js";
export type { BrokerErrorCode } from "./broker/index.js";
