/**
 * The one table from error code to `plugbox`'s exit status. Every area's codes must appear: a code
 * declared in an area's `errors.ts` and missing here does not compile. `npm run docs:errors` writes
 * docs/errors.md from these tables.
 */
import type { ErrorFamily } from "../../sdk/errors.js";
import { ERROR_AREAS, type ErrorCode } from "../error-areas.js";
import type { PluginRun } from "../run.js";
import type { AuditReport } from "../audit/audit.js";

export { ERROR_AREAS, type ErrorCode };

/** `plugbox`'s exit status when it fails: one per family of error (0 is success). */
export type ExitStatus = 1 | 2 | 3 | 4 | 5;

/** What each exit status means, and the families of error that exit with it. */
export const EXIT_STATUS_MEANINGS: Readonly<Record<ExitStatus, { means: string; families: readonly ErrorFamily[] }>> = {
  1: { means: "the plug-in failed, or plugbox itself did (a defect: report it)", families: ["plugin", "internal"] },
  2: { means: "a usage or input error: a command, option, file or configuration to fix", families: ["usage"] },
  3: { means: "a limit was reached (time, CPU, memory, size, count)", families: ["limit"] },
  4: { means: "a sandbox rule was broken (isolation), even where the plug-in caught the error", families: ["isolation"] },
  5: { means: "the environment could not serve the request (a store busy, full or damaged, no sandbox worker, a namespace out of reach); try again later or after a repair", families: ["environment"] },
};

export const EXIT_STATUSES: { readonly [Code in ErrorCode]: ExitStatus } = {
  WIRE_INVALID: 2,
  WIRE_FORMAT_UNSUPPORTED: 2,

  BUNDLE_NOT_FOUND: 2,
  BUNDLE_INVALID: 2,
  BUNDLE_TOO_LARGE: 2,
  PLUGIN_TYPE_NOT_FOUND: 2,
  PLUGIN_TYPE_INVALID: 2,
  PLUGIN_CONSTRUCTOR_FAILED: 2,
  PLUGIN_FAILED: 1,
  PLUGIN_UNEXPECTED_ERROR: 1,
  PLUGIN_RESULT_INVALID: 1,
  SANDBOX_TIMEOUT: 3,
  SANDBOX_CPU_LIMIT: 3,
  SANDBOX_MEMORY_LIMIT: 3,
  SANDBOX_STALLED: 3,
  SANDBOX_HOST_CALL_LIMIT: 3,
  SANDBOX_HOST_CALL_TOO_LARGE: 3,
  SANDBOX_RESULT_TOO_LARGE: 3,
  SANDBOX_WORKER_CRASHED: 3,
  SANDBOX_ISOLATION_VIOLATION: 4,
  SANDBOX_CALL_AFTER_END: 4,
  SANDBOX_CLOSED: 2,
  SANDBOX_ABORTED: 3,
  SANDBOX_INTERNAL: 1,
  SANDBOX_UNSUPPORTED_NODE: 2,
  OPTIONS_INVALID: 2,
  SANDBOX_UNAVAILABLE: 5,

  SERVICE_BAD_REQUEST: 4,
  SERVICE_FAILED: 1,

  WEB_INVALID_URL: 4,
  WEB_SCHEME: 4,
  WEB_USERINFO: 4,
  WEB_IP_LITERAL: 4,
  WEB_LOOPBACK: 4,
  WEB_PRIVATE_ADDRESS: 4,
  WEB_PORT: 4,
  WEB_NOT_ALLOWED: 4,
  WEB_TOO_MANY_REDIRECTS: 3,
  WEB_TIMEOUT: 3,
  WEB_TOO_LARGE: 3,
  WEB_TOO_MANY_REQUESTS: 3,
  WEB_INVALID_REQUEST: 1,
  WEB_DNS: 1,
  WEB_CONNECTION_FAILED: 1,
  WEB_POLICY_INVALID: 2,

  INPUT_NOT_FOUND: 2,
  INPUT_INVALID_JSON: 2,
  INPUT_TOO_LARGE: 2,
  INPUT_TOO_DEEP: 2,
  BUILD_FAILED: 2,
  CONTEXT_INVALID: 2,

  NOTIFY_INVALID_ARGUMENT: 1,
  WEB_DISABLED: 4,

  ORG_INVALID_ARGUMENT: 1,
  ORG_NOT_FOUND: 1,
  ORG_DUPLICATE: 1,
  ORG_UNSUPPORTED: 1,

  STORE_OPEN_FAILED: 2,
  STORE_TOO_NEW: 2,
  STORE_CLOSED: 2,
  STORE_CORRUPT_VALUE: 1,
  STORE_BUSY: 5,
  STORE_FULL: 5,
  STORE_CORRUPT: 5,
  STORE_IO: 5,
  STORE_BACKUP_FAILED: 5,
  STORE_UNREACHABLE: 2,
  STORE_AUTH_FAILED: 2,
  STORE_SCHEMA_CHANGED: 2,
  STORE_CONNECTION_LOST: 5,

  MANIFEST_NOT_FOUND: 2,
  MANIFEST_INVALID: 2,

  PIPELINE_DEPTH_LIMIT: 3,
  PIPELINE_STEP_FAILED: 1,
  PIPELINE_INVALID_REQUEST: 2,
  PIPELINE_UNSUPPORTED_MESSAGE: 2,
  PIPELINE_CLOSED: 2,
  JOB_NOT_FOUND: 2,
  JOB_INVALID_STATE: 2,
  JOB_PROCESSES_INVALID: 2,
  JOB_DATA_INVALID: 1,
  JOB_PROCESS_FAILED: 1,
  JOB_QUEUE_UNREACHABLE: 5,

  RELAY_ENDPOINT_UNKNOWN: 1,
  RELAY_CONFIG_INVALID: 2,
  RELAY_SECRET_MISSING: 2,
  RELAY_FORMAT_UNSUPPORTED: 2,
  RELAY_TOO_LARGE: 1,
  RELAY_UNREACHABLE: 1,
  RELAY_REJECTED: 1,
  RELAY_TIMEOUT: 1,

  BROKER_CONFIG_INVALID: 2,
  BROKER_PORT_IN_USE: 2,
  BROKER_ENTITY_NOT_FOUND: 2,
  BROKER_DATA_DIR_INVALID: 2,
  BROKER_DATA_DIR_IN_USE: 2,
  BROKER_STORE_FAILED: 1,

  REPLAY_NOT_A_CONTEXT: 2,
  REPLAY_CONTEXT_MISSING: 2,
  REPLAY_SEVERAL_CONTEXTS: 2,
  REPLAY_INPUT_EMPTY: 2,
  REPLAY_RECORDING_INVALID: 2,
  REPLAY_VERSION_UNSUPPORTED: 2,
  REPLAY_RECORDING_NOT_WRITTEN: 2,
  REPLAY_BUNDLE_UNMATCHED: 2,
  REPLAY_CALL_NOT_RECORDED: 1,
  REPLAY_DIFFERS: 1,

  CLI_USAGE: 2,
  OUTPUT_NOT_WRITABLE: 2,
  LISTEN_ENTITY_NOT_FOUND: 2,
  LISTEN_UNREACHABLE: 5,

  SERVE_NOT_FOUND: 2,
  SERVE_METHOD_NOT_ALLOWED: 2,
  SERVE_UNSUPPORTED_MEDIA_TYPE: 2,
  SERVE_PORT_IN_USE: 2,
  SERVE_SHUTTING_DOWN: 5,

  TEST_RUN_FAILED: 2,
  TEST_BUILDER_INVALID: 2,
};

function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(EXIT_STATUSES, code);
}

/** The exit status for an error code; a code plugbox does not declare is a defect (1). */
export function exitStatusOf(code: string): ExitStatus {
  return isErrorCode(code) ? EXIT_STATUSES[code] : 1;
}

/** What `plugbox run` exits with: 0 when the plug-in ran, 4 when it tried to break an isolation rule (even one it caught), else its error's status. */
export function runExitStatus(run: Pick<PluginRun, "ok" | "error" | "violations">): 0 | ExitStatus {
  if (run.violations.length > 0) return EXIT_STATUSES.SANDBOX_ISOLATION_VIOLATION;
  if (run.ok) return 0;
  return exitStatusOf(run.error?.code ?? "SANDBOX_INTERNAL");
}

/** What a run did, with the exit status `plugbox run` gives it. */
export interface RunResult extends PluginRun {
  /** 0 ok, 1 the plug-in failed, 2 usage or input error, 3 a limit was exceeded, 4 an isolation rule was broken, 5 the environment failed. */
  exitCode: 0 | ExitStatus;
}

export function withExitStatus(run: PluginRun): RunResult {
  const { ok, error, ...rest } = run;
  return { ok, ...(error ? { error } : {}), exitCode: runExitStatus(run), ...rest };
}

/** What `plugbox audit` exits with: 4 when a check failed, else the status of the first finding (an input that did not load), else 0. */
export function auditExitStatus(report: Pick<AuditReport, "findings" | "summary">): 0 | ExitStatus {
  if (report.summary.failed > 0) return EXIT_STATUSES.SANDBOX_ISOLATION_VIOLATION;
  const first = report.findings[0];
  return first === undefined ? 0 : exitStatusOf(first.code);
}
