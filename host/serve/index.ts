/** `plugbox serve`'s HTTP API over a host (see docs/serve.md). */
export { startServe, WEB_API_ROOT, type Serve, type ServeOptions } from "./server.js";
export { ServeError, SERVE_ERRORS, type ServeErrorCode } from "./errors.js";
export { httpStatusOf } from "./status.js";
