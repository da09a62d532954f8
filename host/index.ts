/**
 * `plugbox`: the host side. Start a sandbox runtime, run plug-ins, build bundles.
 *
 * @example
 * import { createSandboxRuntime, loadBundleFile, runPlugin } from "plugbox";
 * const result = await runPlugin({ bundle: "dist/plugin.bundle.js", typeName: "HelloPlugin" });
 * @module
 */
export * from "../runtime/index.js";
export { runPlugin, disabledWeb } from "./run.js";
export type { RunOptions, RunResult, RunError } from "./run.js";
export { buildBundle } from "./build.js";
export type { BuildOptions, BuildResult } from "./build.js";
export { buildContext, contextDefaults } from "./context.js";
export type { ContextInput, Stage, Mode } from "./context.js";
export { HostError, UsageError, OrganizationError, HOST_ERROR_CODES, exitCodeFor, errorFamily } from "./errors.js";
export type { HostErrorCode } from "./errors.js";
export { createHostServices, InMemoryOrganizationService, RecordingNotificationService, serveOrganization } from "./services/index.js";
export type { OrganizationBackend, NotificationBackend, WebBackend, RecordedCall, RecordedPost, CallerIdentity, HostServiceBackends } from "./services/index.js";
export { systemClock, randomIds, sequentialIds, isGuid } from "./ids.js";
export type { Clock, IdSource } from "./ids.js";
export { WebClient, createWebClient, webPolicyDefaults, resolveWebPolicy, classifyAddress, WebError, WEB_ERROR_CODES } from "./web/index.js";
export type { WebPolicy, WebPolicyInput, WebRequest, WebResponseValue, WebFetchOptions, WebErrorCode, AddressClass } from "./web/index.js";
