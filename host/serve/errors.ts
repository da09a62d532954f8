/** Error codes of `plugbox serve`'s HTTP API: requests it refuses before they reach the pipeline. */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const SERVE_ERRORS = {
  SERVE_NOT_FOUND: { family: "usage", means: "`plugbox serve` has no endpoint at that path, or no table for that entity set in its manifest" },
  SERVE_METHOD_NOT_ALLOWED: { family: "usage", means: "`plugbox serve` answers that path with another HTTP method (the Allow header names it)" },
  SERVE_UNSUPPORTED_MEDIA_TYPE: { family: "usage", means: "a request body to `plugbox serve` must be JSON (Content-Type: application/json)" },
  SERVE_PORT_IN_USE: { family: "usage", means: "`plugbox serve --port` names a port another process listens on; pick another, or 0 for a free one" },
  SERVE_SHUTTING_DOWN: { family: "environment", means: "`plugbox serve` is shutting down and takes no new requests; send it to another host or retry after a restart" },
} as const satisfies ErrorTable;

export type ServeErrorCode = keyof typeof SERVE_ERRORS;

export class ServeError extends PlugboxError<ServeErrorCode> {
  static override readonly codes = codesOf(SERVE_ERRORS);
}
