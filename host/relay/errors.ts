/** Relay error codes: what posting to a service endpoint can fail with. */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const RELAY_ERRORS = {
  RELAY_ENDPOINT_UNKNOWN: { family: "plugin", means: "execute() named a service endpoint the manifest does not declare" },
  RELAY_CONFIG_INVALID: { family: "usage", means: "a service endpoint's declaration is malformed, or its contract and auth do not fit" },
  RELAY_SECRET_MISSING: { family: "usage", means: "a secret an endpoint names (env:NAME or file:NAME) is not set" },
  RELAY_FORMAT_UNSUPPORTED: { family: "usage", means: "Binary XML (MessageFormat 1), or a format the contract does not take" },
  RELAY_TOO_LARGE: { family: "plugin", means: "the context is over the endpoint's size limit even without ParentContext, InputParameters and images" },
  RELAY_UNREACHABLE: { family: "plugin", means: "the broker, hub or webhook could not be reached or refused the post; async posts are retried" },
  RELAY_REJECTED: { family: "plugin", means: "the webhook answered with a status other than 2xx" },
  RELAY_TIMEOUT: { family: "plugin", means: "no answer (or no two-way reply) within the endpoint's timeout; async posts are retried" },
} as const satisfies ErrorTable;

export type RelayErrorCode = keyof typeof RELAY_ERRORS;

export class RelayError extends PlugboxError<RelayErrorCode> {
  static override readonly codes = codesOf(RELAY_ERRORS);
}

/** Delivery failures: an asynchronous post that fails with one of these is retried as a system job. */
export const RETRYABLE_RELAY_CODES: ReadonlySet<string> = new Set(["RELAY_UNREACHABLE", "RELAY_TIMEOUT"]);
