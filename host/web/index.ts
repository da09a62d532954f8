/**
 * The outbound web client and its network policy. The client runs in the sandbox worker
 * processes, next to the plug-ins whose requests it serves (runtime/web); the host configures it.
 * @module
 */
export { WebClient, createWebClient } from "../../runtime/web/client.js";
export type { WebRequest, WebResponseValue, WebFetchOptions } from "../../runtime/web/client.js";
export { webPolicyDefaults, resolveWebPolicy, checkUrl, checkAddress } from "../../runtime/web/policy.js";
export type { WebPolicy, WebPolicyInput } from "../../runtime/web/policy.js";
export { classifyAddress } from "../../runtime/web/addresses.js";
export type { AddressClass } from "../../runtime/web/addresses.js";
export { WebError, WEB_ERRORS } from "../../runtime/web/errors.js";
export type { WebErrorCode } from "../../runtime/web/errors.js";
