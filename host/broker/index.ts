/**
 * `plugbox broker`: a local Service Bus and Event Hubs for development and tests.
 * @module
 */
export { Broker, BrokerError, BROKER_ERRORS, startBroker } from "./broker.js";
export type { BrokerOptions, BrokerTopology, EntityOptions, BrokerErrorCode, SubscriptionSpec, TopicSpec, RuleSpec, CorrelationFilterSpec, EventHubSpec } from "./broker.js";
export { parseEmulatorConfig, parseDuration, formatDuration, toEmulatorConfig } from "./config.js";
