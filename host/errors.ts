/**
 * Host error codes, one per line with the family that sets the CLI exit status
 * (usage → 2, plugin → 1, limit → 3, isolation → 4, internal → 1). The runtime's codes are in
 * runtime/errors.ts; `exitCodeFor` reads both tables.
 */
import { EXIT_CODES, familyOf, PlugboxError, type ErrorFamily } from "../runtime/errors.js";
import { PIPELINE_ERROR_CODES } from "./pipeline/errors.js";
import { JOB_ERROR_CODES } from "./jobs/errors.js";
import { REGISTRY_ERROR_CODES } from "./registry/errors.js";
import { STORE_ERROR_CODES } from "./store/errors.js";
import { RELAY_ERROR_CODES } from "./relay/errors.js";
import { BROKER_ERROR_CODES } from "./broker/errors.js";
import { CLI_ERROR_CODES } from "./cli/errors.js";
import { WEB_ERROR_CODES } from "../runtime/web/errors.js";

export { PlugboxError } from "../runtime/errors.js";

export const HOST_ERROR_CODES = {
  CLI_USAGE: "usage", // an unknown command or option, a missing argument, a value of the wrong kind
  INPUT_NOT_FOUND: "usage", // a file named on the command line does not exist or cannot be read
  INPUT_INVALID_JSON: "usage", // a JSON input file does not parse or does not have the expected shape
  INPUT_TOO_LARGE: "usage", // a JSON input file is larger than plugbox reads (64 MB)
  INPUT_TOO_DEEP: "usage", // a JSON input file nests objects and arrays deeper than plugbox reads (64 levels)
  OUTPUT_NOT_WRITABLE: "usage", // an output file cannot be written: its folder does not exist, it is a folder, or the disk refused it
  BUILD_FAILED: "usage", // esbuild could not bundle the entry module
  ORG_INVALID_ARGUMENT: "plugin", // a plug-in passed the organization service a value of the wrong shape
  ORG_NOT_FOUND: "plugin", // the record asked for does not exist
  ORG_DUPLICATE: "plugin", // a record with that id already exists
  ORG_UNSUPPORTED: "plugin", // a message, query type or operator this organization service does not implement
  NOTIFY_INVALID_ARGUMENT: "plugin", // the notification service was called with a value of the wrong shape
  WEB_DISABLED: "isolation", // the outbound web client is switched off for this host
  SERVICE_BAD_REQUEST: "isolation", // a service call's arguments could not be read
  SERVICE_FAILED: "internal", // a host service failed for a reason the plug-in is not told
} as const satisfies Record<string, ErrorFamily>;

export type HostErrorCode = keyof typeof HOST_ERROR_CODES;

export class HostError extends PlugboxError<HostErrorCode> {}
export class UsageError extends HostError {}
export class OrganizationError extends HostError {}

const extraFamilies: Readonly<Record<string, ErrorFamily>> = Object.freeze({
  ...HOST_ERROR_CODES,
  ...WEB_ERROR_CODES,
  ...PIPELINE_ERROR_CODES,
  ...JOB_ERROR_CODES,
  ...REGISTRY_ERROR_CODES,
  ...STORE_ERROR_CODES,
  ...RELAY_ERROR_CODES,
  ...BROKER_ERROR_CODES,
  ...CLI_ERROR_CODES,
});

export function errorFamily(code: string): ErrorFamily {
  return familyOf(code, extraFamilies);
}

/** The CLI exit status for an error code: 1 plug-in failed, 2 usage or input, 3 limit, 4 isolation. */
export function exitCodeFor(code: string): number {
  return EXIT_CODES[errorFamily(code)];
}
