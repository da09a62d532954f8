/** Relay error codes, one per line with the family that sets the CLI exit status. */
import { PlugboxError, type ErrorFamily } from "../../runtime/errors.js";

export const RELAY_ERROR_CODES = {
  RELAY_ENDPOINT_UNKNOWN: "plugin", // execute() named a service endpoint the manifest does not declare
  RELAY_CONFIG_INVALID: "usage", // a service endpoint's declaration is malformed, or its contract and auth do not fit
  RELAY_SECRET_MISSING: "usage", // a secret an endpoint names (env:NAME or file:NAME) is not set
  RELAY_FORMAT_UNSUPPORTED: "usage", // Binary XML (MessageFormat 1), or a format the contract does not take
  RELAY_TOO_LARGE: "plugin", // the context is over the endpoint's size limit even without ParentContext, InputParameters and images
  RELAY_UNREACHABLE: "plugin", // the broker, hub or webhook could not be reached or refused the post; async posts are retried
  RELAY_REJECTED: "plugin", // the webhook answered with a status other than 2xx
  RELAY_TIMEOUT: "plugin", // no answer (or no two-way reply) within the endpoint's timeout; async posts are retried
} as const satisfies Record<string, ErrorFamily>;

export type RelayErrorCode = keyof typeof RELAY_ERROR_CODES;

export class RelayError extends PlugboxError<RelayErrorCode> {}

/** Delivery failures: an asynchronous post that fails with one of these is retried as a system job. */
export const RETRYABLE_RELAY_CODES: ReadonlySet<string> = new Set(["RELAY_UNREACHABLE", "RELAY_TIMEOUT"]);
