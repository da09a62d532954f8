/**
 * Every area's table of error codes, in one list: the codes plugbox raises, their families and
 * meanings. The CLI's exit table (host/cli/exit-statuses.ts) is typed over it, `plugbox serve` reads
 * an HTTP status from a code's family here, and docs/errors.md is written from it. Only the tops of
 * the graph import this module; no area does.
 */
import type { ErrorTable } from "../sdk/errors.js";
import { WIRE_ERRORS, type WireErrorCode } from "../sdk/wire/errors.js";
import { SANDBOX_ERRORS, SERVICE_ERRORS, type SandboxErrorCode, type ServiceErrorCode } from "../runtime/errors.js";
import { WEB_ERRORS, type WebErrorCode } from "../runtime/web/errors.js";
import { HOST_ERRORS, type HostErrorCode } from "./errors.js";
import { HOST_SERVICE_ERRORS, type HostServiceErrorCode } from "./services/errors.js";
import { ORGANIZATION_ERRORS, type OrganizationErrorCode } from "./organization/errors.js";
import { STORE_ERRORS, type StoreErrorCode } from "./store/errors.js";
import { REGISTRY_ERRORS, type RegistryErrorCode } from "./registry/errors.js";
import { JOB_ERRORS, type JobErrorCode } from "./jobs/errors.js";
import { PIPELINE_ERRORS, type PipelineErrorCode } from "./pipeline/errors.js";
import { RELAY_ERRORS, type RelayErrorCode } from "./relay/errors.js";
import { BROKER_ERRORS, type BrokerErrorCode } from "./broker/errors.js";
import { REPLAY_ERRORS, type ReplayErrorCode } from "./replay/errors.js";
import { CLI_ERRORS, type CliErrorCode } from "./cli/errors.js";
import { SERVE_ERRORS, type ServeErrorCode } from "./serve/errors.js";
import { TESTING_ERRORS, type TestingErrorCode } from "./testing/errors.js";

/** Every code plugbox raises. */
export type ErrorCode =
  | WireErrorCode
  | SandboxErrorCode
  | ServiceErrorCode
  | WebErrorCode
  | HostErrorCode
  | HostServiceErrorCode
  | OrganizationErrorCode
  | StoreErrorCode
  | RegistryErrorCode
  | PipelineErrorCode
  | JobErrorCode
  | RelayErrorCode
  | BrokerErrorCode
  | ReplayErrorCode
  | CliErrorCode
  | ServeErrorCode
  | TestingErrorCode;

/** Each area's table and the module that declares it, in the order docs/errors.md lists them. */
export const ERROR_AREAS: ReadonlyArray<{ area: string; module: string; table: ErrorTable }> = [
  { area: "Sandbox", module: "runtime/errors.ts", table: SANDBOX_ERRORS },
  { area: "Service calls", module: "runtime/errors.ts", table: SERVICE_ERRORS },
  { area: "Web client", module: "runtime/web/errors.ts", table: WEB_ERRORS },
  { area: "Host services", module: "host/services/errors.ts", table: HOST_SERVICE_ERRORS },
  { area: "Organization service", module: "host/organization/errors.ts", table: ORGANIZATION_ERRORS },
  { area: "Inputs, builds and contexts", module: "host/errors.ts", table: HOST_ERRORS },
  { area: "Manifest", module: "host/registry/errors.ts", table: REGISTRY_ERRORS },
  { area: "Store", module: "host/store/errors.ts", table: STORE_ERRORS },
  { area: "Pipeline", module: "host/pipeline/errors.ts", table: PIPELINE_ERRORS },
  { area: "System jobs", module: "host/jobs/errors.ts", table: JOB_ERRORS },
  { area: "Relay (service endpoints)", module: "host/relay/errors.ts", table: RELAY_ERRORS },
  { area: "Broker", module: "host/broker/errors.ts", table: BROKER_ERRORS },
  { area: "Replay (captured contexts, recordings)", module: "host/replay/errors.ts", table: REPLAY_ERRORS },
  { area: "Wire format (RemoteExecutionContext)", module: "sdk/wire/errors.ts", table: WIRE_ERRORS },
  { area: "CLI", module: "host/cli/errors.ts", table: CLI_ERRORS },
  { area: "HTTP API (`plugbox serve`)", module: "host/serve/errors.ts", table: SERVE_ERRORS },
  { area: "Testing (`plugbox/testing`)", module: "host/testing/errors.ts", table: TESTING_ERRORS },
];

