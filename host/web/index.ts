/**
 * The outbound web client and its network policy.
 * @module
 */
export { WebClient, createWebClient } from "./client.js";
export type { WebRequest, WebResponseValue, WebFetchOptions } from "./client.js";
export { webPolicyDefaults, resolveWebPolicy, checkUrl, checkAddress } from "./policy.js";
export type { WebPolicy, WebPolicyInput } from "./policy.js";
export { classifyAddress } from "./addresses.js";
export type { AddressClass } from "./addresses.js";
export { WebError, WEB_ERROR_CODES } from "./errors.js";
export type { WebErrorCode } from "./errors.js";
