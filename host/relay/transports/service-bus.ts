/**
 * Service Bus queues and topics with @azure/service-bus, and the two-way contracts over a reply
 * queue.
 */
import type { ServiceBusClient, ServiceBusMessage, ServiceBusMessageBatch, ServiceBusReceiver, ServiceBusSender } from "@azure/service-bus";
import { randomUUID } from "node:crypto";
import type { ServiceEndpoint } from "../endpoints.js";
import { messageText, textBody } from "../body.js";
import { RelayError } from "../errors.js";
import { Batcher, sendFailure, sendInBatches } from "./batching.js";
import { describeError, type OutgoingPost, type RelayTransport } from "./transport.js";

/**
 * Receives the replies to two-way posts from the endpoint's reply queue and hands each to the post
 * that waits for it, by CorrelationId. With reply sessions, it holds the session named by its
 * requests' ReplyToSessionId, so several hosts can share the queue without taking each other's replies.
 */
class ReplyListener {
  readonly #waiters = new Map<string, (body: string) => void>();
  readonly #receiver: ServiceBusReceiver;
  private constructor(receiver: ServiceBusReceiver) {
    this.#receiver = receiver;
    receiver.subscribe(
      {
        processMessage: async (message) => {
          const id = message.correlationId === undefined ? undefined : String(message.correlationId);
          const waiter = id === undefined ? undefined : this.#waiters.get(id);
          if (!waiter) return; // a reply nobody waits for any more (timed out): dropped
          this.#waiters.delete(id!);
          waiter(messageText(message.body));
        },
        processError: async () => undefined,
      },
      { autoCompleteMessages: false },
    );
  }

  static async open(client: ServiceBusClient, queue: string, sessionId: string | undefined): Promise<ReplyListener> {
    const options = { receiveMode: "receiveAndDelete", skipParsingBodyAsJson: true } as const;
    const receiver = sessionId === undefined ? client.createReceiver(queue, options) : await client.acceptSession(queue, sessionId, options);
    return new ReplyListener(receiver);
  }

  wait(correlationId: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        this.#waiters.delete(correlationId);
      };
      const timer = setTimeout(() => {
        settle();
        reject(new RelayError("RELAY_TIMEOUT", `no reply came within ${timeoutMs} ms`));
      }, timeoutMs);
      const onAbort = () => {
        settle();
        reject(new RelayError("RELAY_TIMEOUT", "the execution ended before the reply came"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.set(correlationId, (body) => {
        settle();
        resolve(body);
      });
    });
  }
  close(): Promise<void> {
    return this.#receiver.close();
  }
}

/**
 * A batch of at most the link's maximum message size and 1 MB: a Premium namespace's link takes
 * messages of up to 100 MB, but the service refuses a batch over 1 MB (and by detaching the link,
 * not as too large).
 */
async function createBatch(sender: ServiceBusSender): Promise<ServiceBusMessageBatch> {
  const batch = await sender.createMessageBatch();
  return batch.maxSizeInBytes > MAX_BATCH_BYTES ? sender.createMessageBatch({ maxSizeInBytes: MAX_BATCH_BYTES }) : batch;
}
const MAX_BATCH_BYTES = 1024 * 1024;

export class ServiceBusTransport implements RelayTransport {
  readonly #clients = new Map<string, ServiceBusClient>();
  readonly #senders = new Map<string, { client: ServiceBusClient; sender: ServiceBusSender; batcher: Batcher<ServiceBusMessage> }>();
  readonly #replies = new Map<string, Promise<ReplyListener>>();
  /** This relay's reply session: two-way requests name it as ReplyToSessionId. */
  readonly replySessionId = randomUUID();

  #sdk: Promise<typeof import("@azure/service-bus")> | undefined;

  async #client(endpoint: ServiceEndpoint): Promise<ServiceBusClient> {
    const { ServiceBusClient } = await (this.#sdk ??= import("@azure/service-bus"));
    let client = this.#clients.get(endpoint.connectionString!);
    if (!client) {
      // Fail fast: a post that cannot be delivered is retried by the job runner, durably.
      client = new ServiceBusClient(endpoint.connectionString!, { retryOptions: { maxRetries: 1, retryDelayInMs: 250, maxRetryDelayInMs: 1_000, timeoutInMs: endpoint.timeoutMs } });
      this.#clients.set(endpoint.connectionString!, client);
    }
    return client;
  }

  async #sender(endpoint: ServiceEndpoint) {
    const key = `${endpoint.connectionString}\u0000${endpoint.path}`;
    const client = await this.#client(endpoint);
    let entry = this.#senders.get(key);
    if (!entry) {
      const sender = client.createSender(endpoint.path!);
      const batcher = new Batcher<ServiceBusMessage>((messages) =>
        sendInBatches(messages, () => createBatch(sender), (batch, message) => batch.tryAddMessage(message), (batch) => sender.sendMessages(batch)),
      );
      entry = { client, sender, batcher };
      this.#senders.set(key, entry);
    }
    return entry;
  }

  async connect(endpoint: ServiceEndpoint): Promise<void> {
    const { client, sender } = await this.#sender(endpoint);
    try {
      // The client opens a sender's link on first use; a batch needs the link's maximum message size.
      await sender.createMessageBatch();
    } catch (error) {
      this.#forget(endpoint, client); // the first post starts from a new connection
      throw error;
    }
  }

  async post(post: OutgoingPost): Promise<string | null> {
    const { endpoint } = post;
    const twoWay = endpoint.contract === "TwoWay" || endpoint.contract === "Rest";
    const messageId = twoWay ? randomUUID() : post.messageId;
    const replySession = twoWay && endpoint.replySessions ? this.replySessionId : undefined;
    const message: ServiceBusMessage = {
      body: textBody(post.body),
      contentType: post.contentType,
      messageId,
      applicationProperties: post.properties,
      ...(twoWay ? { replyTo: endpoint.replyQueue!, correlationId: post.messageId } : {}),
      ...(replySession ? { replyToSessionId: replySession } : {}),
    };
    let reply: Promise<string> | undefined;
    if (twoWay) {
      const key = `${endpoint.connectionString}\u0000${endpoint.replyQueue}\u0000${replySession ?? ""}`;
      let listener = this.#replies.get(key);
      if (!listener) {
        listener = this.#client(endpoint).then((client) => ReplyListener.open(client, endpoint.replyQueue!, replySession));
        this.#replies.set(key, listener);
        listener.catch(() => this.#replies.delete(key));
      }
      try {
        reply = (await listener).wait(messageId, endpoint.timeoutMs, post.signal);
      } catch (error) {
        throw new RelayError(
          "RELAY_UNREACHABLE",
          `the reply queue ${endpoint.replyQueue} of endpoint "${endpoint.name}" could not be received from${replySession ? " with a session (is it session-enabled? set replySessions: false for a plain queue)" : ""}: ${describeError(error)}`,
        );
      }
      reply.catch(() => undefined);
    }
    let client: ServiceBusClient | undefined;
    try {
      const entry = await this.#sender(endpoint);
      client = entry.client;
      await entry.batcher.add(message);
    } catch (error) {
      const failure = sendFailure(error, `the post to ${endpoint.contract} ${endpoint.path} of endpoint "${endpoint.name}"`);
      if (failure.code === "RELAY_UNREACHABLE" && client) this.#forget(endpoint, client);
      throw failure;
    }
    return reply ? await reply : null;
  }

  /**
   * After a failed send, the next attempt starts from a new connection rather than a broken one.
   * Only the client that failed is forgotten: one made since, for later posts, is kept.
   */
  #forget(endpoint: ServiceEndpoint, failed: ServiceBusClient): void {
    const client = this.#clients.get(endpoint.connectionString!);
    if (client !== failed) return;
    this.#clients.delete(endpoint.connectionString!);
    for (const [key, entry] of this.#senders) {
      if (key.startsWith(`${endpoint.connectionString}\u0000`)) {
        this.#senders.delete(key);
        void entry.sender.close().catch(() => undefined);
      }
    }
    for (const [key, listener] of this.#replies) {
      if (key.startsWith(`${endpoint.connectionString}\u0000`)) {
        this.#replies.delete(key);
        void listener.then((l) => l.close()).catch(() => undefined);
      }
    }
    void client?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#replies.values()].map((r) => r.then((l) => l.close())));
    await Promise.allSettled([...this.#senders.values()].map((s) => s.sender.close()));
    await Promise.allSettled([...this.#clients.values()].map((c) => c.close()));
  }
}
