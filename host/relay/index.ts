/**
 * The relay: service endpoints (Service Bus queues and topics, two-way contracts, Event Hubs,
 * webhooks) behind the notification service.
 * @module
 */
export { Relay, SIZE_LIMITS } from "./relay.js";
export type { RelayOptions, PreparedPost } from "./relay.js";
export { readServiceEndpoint, SecretResolver, CONTRACTS, MESSAGE_FORMATS, USER_CLAIMS, AUTH_TYPES } from "./endpoints.js";
export type { ServiceEndpoint, SecretSource, Contract, MessageFormat, UserClaim, AuthType, Transport } from "./endpoints.js";
export { RelayError, RELAY_ERRORS, RETRYABLE_RELAY_CODES } from "./errors.js";
export type { RelayErrorCode } from "./errors.js";
export { ServiceBusTransport, EventHubTransport, WebhookTransport, createTransports } from "./transports.js";
export type { RelayTransport, OutgoingPost } from "./transports.js";
