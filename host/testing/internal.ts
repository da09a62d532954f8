/**
 * `plugbox/testing/internal`: TEST HOOKS, not an API. plugbox's own suite reaches under the public
 * entries here, and only here: to check a part on its own (the store, the query compiler, the
 * broker's rules, the web policy), to read a table the CLI is built on, or to share the audit's
 * hostile corpus with the sandbox tests. Nothing here is kept stable between versions; a plug-in's
 * tests use `plugbox/testing`.
 * @module
 */

// The store and what is written in it.
export { Store, SCHEMA_VERSION, openStore, PostgresStore } from "../store/index.js";
export { toPositional } from "../store/postgres/sql.js";
export type { DataStore } from "../store/index.js";
export { backupStore, restoreStore } from "../store/backup.js";
export type { TableSchema, SchemaLookup } from "../store/table-schema.js";
export { JobQueue } from "../jobs/queue.js";
export { retrieveMultiple } from "../organization/query/index.js";
export { SYSTEM_USER_ID } from "../pipeline/pipeline.js";
export { systemClock } from "../ids.js";

// Pieces the CLI and the pipeline are built on.
export { buildContext } from "../pipeline/context.js";
export { loadManifest } from "../registry/index.js";
export { exitStatusOf, auditExitStatus, runExitStatus, EXIT_STATUSES, EXIT_STATUS_MEANINGS, ERROR_AREAS } from "../cli/exit-statuses.js";
export type { ErrorCode } from "../cli/exit-statuses.js";
export { jobRunnerDefaults, resolveJobRunnerOptions } from "../jobs/runner.js";
export { jobTransportDefaults } from "../jobs/transport-options.js";
export { resolveLimits } from "../../runtime/options.js";
export { derivedFlags, optionOf, rangeText } from "../cli/flags.js";
export { resolveServeOptions, serveDefaults } from "../serve/options.js";
export type { DerivedFlag } from "../cli/flags.js";
export { selectBinding, ISOLATED_VM_BINDINGS } from "../../runtime/worker/ivm.js";

// The relay and the broker, part by part.
export { Relay } from "../relay/index.js";
export { sendInBatches } from "../relay/transports.js";
export { compileRule, sqlAction, sqlFilter } from "../broker/rules.js";
export { parseEmulatorConfig, parseDuration, formatDuration } from "../broker/index.js";

// The outbound web client and its policy, without a sandbox.
export { WebClient, WebError, WEB_ERRORS, webPolicyDefaults, resolveWebPolicy, checkUrl, checkAddress, classifyAddress } from "../web/index.js";
export type { WebPolicy, WebFetchOptions, WebResponseValue, AddressClass } from "../web/index.js";

// The audit, and its hostile corpus and checks (which the sandbox tests run too).
export { runAudit, confinementChecks } from "../audit/index.js";
export type { AuditReport } from "../audit/index.js";
export { escapeCorpus, ACCOUNT_ID, MISSING_ID, HOST_MARKERS, PRELUDE } from "../audit/corpus.js";
export type { Technique } from "../audit/corpus.js";
export { hostileValues, REALM_PRELUDE, ROUTES_TO_FUNCTION } from "../audit/checks.js";
export { probeDefaultRealm } from "../audit/realm.js";
export { attackBundle, sampleContext } from "../audit/probe.js";
export { sandboxError } from "../../runtime/errors.js";

// A sandbox's organization requests as the methods that send them, for services that answer by method.
export { asMethodCall } from "../services/index.js";
export { methodResponse } from "../../sdk/requests.js";
