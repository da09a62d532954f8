/**
 * How a post reaches its endpoint, one transport per kind behind one interface:
 * Service Bus queues and topics (and the two-way contracts over a reply queue) with
 * @azure/service-bus, Event Hubs with @azure/event-hubs, webhooks with undici.
 *
 * Posts that become ready in the same turn of the event loop go to Service Bus or Event Hubs as one
 * batch. Errors never carry a connection string or key. The Azure clients are loaded at the first
 * post that needs them (together they take about half a second to load): a host, a job process or a
 * command that posts nowhere, or only to webhooks, never loads them.
 */
import type { Transport } from "./endpoints.js";
import { EventHubTransport } from "./transports/event-hubs.js";
import { ServiceBusTransport } from "./transports/service-bus.js";
import type { RelayTransport } from "./transports/transport.js";
import { WebhookTransport } from "./transports/webhook.js";

export { sendInBatches } from "./transports/batching.js";
export { EventHubTransport } from "./transports/event-hubs.js";
export { ServiceBusTransport } from "./transports/service-bus.js";
export { describeError } from "./transports/transport.js";
export type { OutgoingPost, RelayTransport } from "./transports/transport.js";
export { WebhookTransport } from "./transports/webhook.js";

/** The registry of transports, by kind. */
export function createTransports(): Record<Transport, RelayTransport> {
  return { serviceBus: new ServiceBusTransport(), eventHub: new EventHubTransport(), webhook: new WebhookTransport() };
}
