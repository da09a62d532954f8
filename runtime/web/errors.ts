/**
 * Web client error codes, one per line with the family that sets the CLI exit status. A refusal
 * by the network policy is an isolation violation (exit 4); a limit is a limit (exit 3).
 */
import type { ErrorFamily } from "../errors.js";
import { PlugboxError } from "../errors.js";

export const WEB_ERROR_CODES = {
  WEB_INVALID_URL: "isolation", // the URL does not parse
  WEB_SCHEME: "isolation", // only http: and https: are allowed
  WEB_USERINFO: "isolation", // credentials in the URL (user:password@host) are not allowed
  WEB_IP_LITERAL: "isolation", // the host is an IP address in some notation; a DNS name is required
  WEB_LOOPBACK: "isolation", // the host is localhost or resolves to a loopback or unspecified address
  WEB_PRIVATE_ADDRESS: "isolation", // the host resolves to a private, link-local, unique-local, multicast or reserved address
  WEB_PORT: "isolation", // the port is not 80 or 443 or one the host configuration allows
  WEB_NOT_ALLOWED: "isolation", // the host is not on the allow-list of the host configuration or of the bundle
  WEB_TOO_MANY_REDIRECTS: "limit", // more redirects than maxRedirects
  WEB_TIMEOUT: "limit", // the request took longer than its timeout or than the execution had left
  WEB_TOO_LARGE: "limit", // the request or the response body is over its size limit
  WEB_TOO_MANY_REQUESTS: "limit", // the execution made more requests than maxRequestsPerExecution
  WEB_INVALID_REQUEST: "plugin", // a method, header or body the client does not accept
  WEB_DNS: "plugin", // the name does not resolve
  WEB_CONNECTION_FAILED: "plugin", // the server could not be reached or broke the connection
  WEB_POLICY_INVALID: "usage", // the web policy configuration is malformed
} as const satisfies Record<string, ErrorFamily>;

export type WebErrorCode = keyof typeof WEB_ERROR_CODES;

export class WebError extends PlugboxError<WebErrorCode> {}
