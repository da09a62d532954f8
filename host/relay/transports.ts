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
import type { EventHubProducerClient } from "@azure/event-hubs";
import type { ServiceBusClient, ServiceBusMessage, ServiceBusMessageBatch, ServiceBusReceiver, ServiceBusSender } from "@azure/service-bus";
import { randomUUID } from "node:crypto";
import { request } from "undici";
import type { ServiceEndpoint, Transport } from "./endpoints.js";
import { messageText, textBody } from "./body.js";
import { RelayError } from "./errors.js";

export interface OutgoingPost {
  endpoint: ServiceEndpoint;
  /** The serialized RemoteExecutionContext. */
  body: string;
  contentType: string;
  /** Derived from OperationId, so a retried post can be dropped as a duplicate. */
  messageId: string;
  /** Claim properties (reference 4.7), and MessageMaxSizeExceeded when parts were dropped. */
  properties: Record<string, string | boolean>;
  /** For webhooks: the x-ms-dynamics-* headers. */
  headers: Record<string, string>;
  /** Stops waiting for a reply (a system job's post has none to wait for, and no signal). */
  signal?: AbortSignal;
}

export interface RelayTransport {
  /** Delivers the post; resolves with a two-way, REST or webhook reply, else null. */
  post(post: OutgoingPost): Promise<string | null>;
  /** Loads the client and opens the link the endpoint's posts will use; rejects when it cannot. */
  connect?(endpoint: ServiceEndpoint): Promise<void>;
  close(): Promise<void>;
}

/** An error's code and message, with any key masked. */
export function describeError(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown };
  const text = typeof e.message === "string" ? e.message : String(error);
  // Never let a key out, whatever the client put in its message.
  return `${typeof e.code === "string" ? `${e.code}: ` : ""}${text.replace(/SharedAccessKey=[^;\s]*/gi, "SharedAccessKey=***").slice(0, 300)}`;
}

/**
 * Groups posts into batches: those that arrive while a batch is on its way wait and leave together
 * in the next, so the busier the endpoint the larger its batches. At most `inFlight` batches are
 * sent at once. `flush` answers each item's failure (undefined when it was sent), so one message
 * that cannot go fails only its own post.
 */
class Batcher<T> {
  readonly #pending: Array<{ item: T; resolve: () => void; reject: (e: unknown) => void }> = [];
  #sending = 0;
  #scheduled = false;
  constructor(
    readonly flush: (items: T[]) => Promise<unknown[]>,
    readonly inFlight = 2,
  ) {}
  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      this.#kick();
    });
  }
  #kick(): void {
    if (this.#scheduled || this.#sending >= this.inFlight || this.#pending.length === 0) return;
    this.#scheduled = true;
    // After this turn, so posts made in the same turn join the batch.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#run();
    });
  }
  async #run(): Promise<void> {
    if (this.#sending >= this.inFlight || this.#pending.length === 0) return;
    const batch = this.#pending.splice(0);
    this.#sending++;
    try {
      const failures = await this.flush(batch.map((b) => b.item));
      batch.forEach((b, i) => (failures[i] === undefined ? b.resolve() : b.reject(failures[i])));
    } catch (error) {
      for (const b of batch) b.reject(error);
    } finally {
      this.#sending--;
      this.#kick();
    }
  }
}

/** A message that does not fit the link's maximum message size even alone. */
class TooLargeForLink extends Error {
  readonly code = "MessageSizeExceeded";
  constructor() {
    super("the message is larger than the link's maximum message size");
  }
}

/** A message the client refused to add to a batch (it failed the client's own checks). */
class RefusedByClient extends Error {
  readonly code = "MessageRefused";
  constructor(cause: unknown) {
    super(`the client refused the message: ${describeError(cause)}`);
  }
}

/** A refusal for size: Service Bus's MessageSizeExceeded, Event Hubs' MessageTooLargeError. */
function isSizeError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === "MessageSizeExceeded" || code === "MessageTooLargeError";
}

/**
 * Sends messages in as few batches as fit the link's maximum message size, and answers each
 * message's failure (undefined when it was sent). A message too large even alone fails by itself;
 * a batch refused for size is sent again a message at a time; any other failure (the link or the
 * connection) fails that batch's messages and those not yet sent, which are not tried on it.
 * Exported for its tests; the transports below are its users.
 */
export async function sendInBatches<M, B extends { readonly count: number }>(messages: M[], create: () => Promise<B>, add: (batch: B, message: M) => boolean, send: (batch: B) => Promise<void>): Promise<unknown[]> {
  const failures: unknown[] = new Array(messages.length).fill(undefined);
  let broken: unknown;
  /** Adds message i: whether it fits; a message the client refuses (invalid) fails alone and counts as placed. */
  const tryAdd = (target: B, i: number): boolean => {
    try {
      return add(target, messages[i]!);
    } catch (error) {
      failures[i] = new RefusedByClient(error);
      return true;
    }
  };
  const sendEach = async (indexes: number[]) => {
    for (const i of indexes) {
      if (broken !== undefined) {
        failures[i] = broken;
        continue;
      }
      try {
        const single = await create();
        if (!tryAdd(single, i)) throw new TooLargeForLink();
        if (failures[i] === undefined) await send(single);
      } catch (error) {
        failures[i] = error ?? new Error("the send failed");
        if (!isSizeError(error)) broken ??= failures[i];
      }
    }
  };
  let batch: B | undefined;
  let members: number[] = [];
  const sendBatch = async () => {
    const [sending, indexes] = [batch, members];
    [batch, members] = [undefined, []];
    if (!sending || indexes.length === 0) return;
    try {
      await send(sending);
    } catch (error) {
      if (isSizeError(error) && indexes.length > 1) return sendEach(indexes);
      for (const i of indexes) failures[i] = error ?? new Error("the send failed");
      if (!isSizeError(error)) broken = failures[indexes[0]!];
    }
  };
  const addTo = async (i: number): Promise<boolean> => tryAdd((batch ??= await create()), i);
  for (let i = 0; i < messages.length; i++) {
    if (broken !== undefined) {
      failures[i] = broken;
      continue;
    }
    try {
      let fits = await addTo(i);
      if (!fits && batch!.count > 0) {
        // The batch is full: it goes, and the message tries a fresh one.
        await sendBatch();
        if (broken !== undefined) {
          failures[i] = broken;
          continue;
        }
        fits = await addTo(i);
      }
      if (!fits) failures[i] = new TooLargeForLink();
      else if (failures[i] === undefined) members.push(i);
    } catch (error) {
      // The batch could not be created: the link or the connection is broken.
      failures[i] = error ?? new Error("the link could not be opened");
      broken = failures[i];
    }
  }
  await sendBatch();
  return failures;
}

/**
 * The relay error for a send that failed: RELAY_TOO_LARGE for a message over the link's or the
 * namespace's size and RELAY_REJECTED for one the client refused (sending either again cannot
 * help), else RELAY_UNREACHABLE (retried by a system job).
 */
function sendFailure(error: unknown, what: string): RelayError {
  if (isSizeError(error)) return new RelayError("RELAY_TOO_LARGE", `${what} was refused as too large: ${describeError(error)}`);
  if (error instanceof RefusedByClient) return new RelayError("RELAY_REJECTED", `${what} was refused: ${error.message}`);
  return new RelayError("RELAY_UNREACHABLE", `${what} failed: ${describeError(error)}`);
}

// Service Bus ///////////////////////////////////////////////////////////////////////////////////

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

// Event Hubs ////////////////////////////////////////////////////////////////////////////////////

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

// Webhooks //////////////////////////////////////////////////////////////////////////////////////

const RETRY_ONCE = new Set([502, 503, 504]);

export class WebhookTransport implements RelayTransport {
  async post(post: OutgoingPost): Promise<string | null> {
    const { endpoint } = post;
    const url = new URL(endpoint.url!);
    const headers: Record<string, string> = { "content-type": "application/json", ...post.headers };
    if (endpoint.authType === "WebhookKey") url.searchParams.set("code", endpoint.authValues.code!);
    if (endpoint.authType === "HttpQueryString") for (const [k, v] of Object.entries(endpoint.authValues)) url.searchParams.set(k, v);
    if (endpoint.authType === "HttpHeader") Object.assign(headers, endpoint.authValues);
    // Dataverse makes one more attempt on 502, 503 and 504 only; anything else non-2xx fails the post.
    for (let attempt = 1; ; attempt++) {
      let status: number;
      let text: string;
      try {
        const response = await request(url, { method: "POST", headers, body: post.body, signal: post.signal ? AbortSignal.any([post.signal, AbortSignal.timeout(endpoint.timeoutMs)]) : AbortSignal.timeout(endpoint.timeoutMs), headersTimeout: endpoint.timeoutMs, bodyTimeout: endpoint.timeoutMs });
        status = response.statusCode;
        text = await response.body.text();
      } catch (error) {
        const timedOut = (error as { name?: string }).name === "TimeoutError" || /timeout/i.test(String((error as { code?: string }).code));
        throw new RelayError(timedOut ? "RELAY_TIMEOUT" : "RELAY_UNREACHABLE", `the webhook of endpoint "${endpoint.name}" at ${url.origin}${url.pathname} ${timedOut ? `did not answer within ${endpoint.timeoutMs} ms` : `could not be reached: ${describeError(error)}`}`);
      }
      if (status >= 200 && status < 300) return text === "" ? null : text;
      if (attempt === 1 && RETRY_ONCE.has(status)) continue;
      throw new RelayError(RETRY_ONCE.has(status) ? "RELAY_UNREACHABLE" : "RELAY_REJECTED", `the webhook of endpoint "${endpoint.name}" answered ${status}`);
    }
  }
  async connect(): Promise<void> {}
  async close(): Promise<void> {}
}

/** The registry of transports, by kind. */
export function createTransports(): Record<Transport, RelayTransport> {
  return { serviceBus: new ServiceBusTransport(), eventHub: new EventHubTransport(), webhook: new WebhookTransport() };
}
