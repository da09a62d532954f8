/**
 * `plugbox`: the host side. Start a sandbox runtime, run plug-ins, build bundles.
 *
 * @example
 * import { createSandboxRuntime, loadBundleFile, runPlugin } from "plugbox";
 * const result = await runPlugin({ bundle: "dist/plugin.bundle.js", typeName: "HelloPlugin" });
 * @module
 */
export * from "../runtime/index.js";
export { disabledWeb } from "./run.js";
export type { RunOptions, RunError, PluginRun } from "./run.js";
export { runPlugin } from "./testing/index.js";
export type { RunResult } from "./testing/index.js";
export { buildBundle } from "./build.js";
export type { BuildOptions, BuildResult } from "./build.js";
export { buildContext, contextDefaults } from "./pipeline/context.js";
export type { ContextInput, Stage, Mode } from "./pipeline/context.js";
export { HostError, UsageError, HOST_ERRORS } from "./errors.js";
export type { HostErrorCode } from "./errors.js";
export { HostServiceError, HOST_SERVICE_ERRORS } from "./services/errors.js";
export type { HostServiceErrorCode } from "./services/errors.js";
export { OrganizationError, ORGANIZATION_ERRORS } from "./organization/errors.js";
export type { OrganizationErrorCode } from "./organization/errors.js";
export { createHostServices, OrganizationService, RecordingNotificationService, serveOrganization } from "./services/index.js";
export type { OrganizationBackend, NotificationBackend, WebBackend, RecordedCall, RecordedPost, CallerIdentity, HostServiceBackends } from "./services/index.js";
export { systemClock, randomIds, sequentialIds, isGuid } from "./ids.js";
export type { Clock, ClockTimer, IdSource } from "./ids.js";
export { WebClient, createWebClient, webPolicyDefaults, resolveWebPolicy, classifyAddress, WebError, WEB_ERRORS } from "./web/index.js";
export type { WebPolicy, WebPolicyInput, WebRequest, WebResponseValue, WebFetchOptions, WebErrorCode, AddressClass } from "./web/index.js";
export { createHost, PlugboxHost } from "./host.js";
export type { HostOptions, HostHealth } from "./host.js";
export { Pipeline, SYSTEM_USER_ID, identityDefaults, readRequest } from "./pipeline/pipeline.js";
export type { Caller, Identity, JournalRequest, JournalStep, RequestResult, StepOutcome } from "./pipeline/pipeline.js";
export { PipelineError, StepFailedError, PIPELINE_ERRORS } from "./pipeline/errors.js";
export type { PipelineErrorCode } from "./pipeline/errors.js";
export { JobRunner, jobRunnerDefaults, resolveJobRunnerOptions } from "./jobs/runner.js";
export type { JobRunnerOptions, JobOutcome, JobRunnerHealth } from "./jobs/runner.js";
export { JobError, JOB_ERRORS } from "./jobs/errors.js";
export type { JobErrorCode } from "./jobs/errors.js";
export { runJobsInProcesses } from "./job-processes.js";
export type { JobProcessesOptions, JobProcessesResult } from "./job-processes.js";
export { JobState, JobStatus, describeState } from "./jobs/queue.js";
export type { SystemJob } from "./jobs/queue.js";
export type { TraceRow } from "./pipeline/trace-log.js";
export { Registry, parseManifest, loadManifest, RegistryError, REGISTRY_ERRORS } from "./registry/index.js";
export type { Manifest, StepRegistration, StepImage, BundleRegistration, ServiceEndpointRegistration, ManifestSettings } from "./registry/index.js";
export { Store, StoreError, STORE_ERRORS, storeDefaults, resolveStoreOptions, toStoreError } from "./store/index.js";
export type { StoreOptions, RecordRow, StoreErrorCode, StoreLease, StoreTransaction } from "./store/index.js";
export type { TableSchema, ColumnType } from "./store/table-schema.js";
export { Relay, RelayError, RELAY_ERRORS, SIZE_LIMITS, readServiceEndpoint, SecretResolver, CONTRACTS, MESSAGE_FORMATS, USER_CLAIMS, AUTH_TYPES } from "./relay/index.js";
export type { RelayOptions, ServiceEndpoint, SecretSource, Contract, MessageFormat, UserClaim, AuthType, RelayTransport, OutgoingPost } from "./relay/index.js";
export { startBroker, Broker, BrokerError, BROKER_ERRORS } from "./broker/index.js";
export type { BrokerOptions, BrokerTopology, EntityOptions, SubscriptionSpec, TopicSpec, RuleSpec, CorrelationFilterSpec, EventHubSpec } from "./broker/index.js";
export { runAudit, confinementChecks, auditJson, auditText, AUDIT_SCHEMA_VERSION } from "./audit/index.js";
export type { AuditOptions, AuditReport, AuditCheckResult, AuditEnvironment, AuditFinding, ConfinementCheck, CheckSetup, CheckOutcome } from "./audit/index.js";
