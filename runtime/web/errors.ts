/**
 * Web client error codes. A refusal by the network policy is an isolation violation; a limit is a
 * limit; a request the network could not serve is the plug-in's failure.
 */
import { codesOf, PlugboxError, type ErrorTable } from "../../sdk/errors.js";

export const WEB_ERRORS = {
  WEB_INVALID_URL: { family: "isolation", means: "the URL does not parse" },
  WEB_SCHEME: { family: "isolation", means: "only http: and https: are allowed" },
  WEB_USERINFO: { family: "isolation", means: "credentials in the URL (user:password@host) are not allowed" },
  WEB_IP_LITERAL: { family: "isolation", means: "the host is an IP address in some notation; a DNS name is required" },
  WEB_LOOPBACK: { family: "isolation", means: "the host is localhost or resolves to a loopback or unspecified address" },
  WEB_PRIVATE_ADDRESS: { family: "isolation", means: "the host resolves to a private, link-local, unique-local, multicast or reserved address" },
  WEB_PORT: { family: "isolation", means: "the port is not 80 or 443 or one the host configuration allows" },
  WEB_NOT_ALLOWED: { family: "isolation", means: "the host is not on the allow-list of the host configuration or of the bundle" },
  WEB_TOO_MANY_REDIRECTS: { family: "limit", means: "more redirects than maxRedirects" },
  WEB_TIMEOUT: { family: "limit", means: "the request took longer than its timeout or than the execution had left" },
  WEB_TOO_LARGE: { family: "limit", means: "the request or the response body is over its size limit" },
  WEB_TOO_MANY_REQUESTS: { family: "limit", means: "the execution made more requests than maxRequestsPerExecution" },
  WEB_INVALID_REQUEST: { family: "plugin", means: "a method, header or body the client does not accept" },
  WEB_DNS: { family: "plugin", means: "the name does not resolve" },
  WEB_CONNECTION_FAILED: { family: "plugin", means: "the server could not be reached or broke the connection" },
  WEB_POLICY_INVALID: { family: "usage", means: "the web policy configuration is malformed" },
} as const satisfies ErrorTable;

export type WebErrorCode = keyof typeof WEB_ERRORS;

export class WebError extends PlugboxError<WebErrorCode> {
  static override readonly codes = codesOf(WEB_ERRORS);
}
