/**
 * Event Hubs with @azure/event-hubs: one-way posts, sent as events in batches.
 */
import type { EventHubProducerClient } from "@azure/event-hubs";
import type { ServiceEndpoint } from "../endpoints.js";
import { textBody } from "../body.js";
import { Batcher, sendFailure, sendInBatches } from "./batching.js";
import type { OutgoingPost, RelayTransport } from "./transport.js";

export class EventHubTransport implements RelayTransport {
  readonly #producers = new Map<string, { producer: EventHubProducerClient; batcher: Batcher<OutgoingPost> }>();

  #sdk: Promise<typeof import("@azure/event-hubs")> | undefined;

  async #producer(endpoint: ServiceEndpoint) {
    const { EventHubProducerClient } = await (this.#sdk ??= import("@azure/event-hubs"));
    const key = `${endpoint.connectionString}\u0000${endpoint.path}`;
    let entry = this.#producers.get(key);
    if (!entry) {
      const producer = new EventHubProducerClient(endpoint.connectionString!, endpoint.path!, { retryOptions: { maxRetries: 1, retryDelayInMs: 250, timeoutInMs: endpoint.timeoutMs } });
      entry = {
        producer,
        batcher: new Batcher((posts) =>
          sendInBatches(
            posts.map((p) => ({ body: textBody(p.body), contentType: p.contentType, messageId: p.messageId, properties: p.properties })),
            () => producer.createBatch(),
            (batch, event) => batch.tryAdd(event),
            (batch) => producer.sendBatch(batch),
          ),
        ),
      };
      this.#producers.set(key, entry);
    }
    return entry;
  }

  async connect(endpoint: ServiceEndpoint): Promise<void> {
    const { producer } = await this.#producer(endpoint);
    await producer.createBatch();
  }

  async post(post: OutgoingPost): Promise<string | null> {
    try {
      await (await this.#producer(post.endpoint)).batcher.add(post);
    } catch (error) {
      throw sendFailure(error, `the post to event hub ${post.endpoint.path} of endpoint "${post.endpoint.name}"`);
    }
    return null;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#producers.values()].map((p) => p.producer.close()));
  }
}
