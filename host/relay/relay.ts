/**
 * The relay: the notification service's backend. It serializes an execution context the way
 * Dataverse does (RemoteExecutionContext, JSON or Text XML), applies Dataverse's size rule, adds
 * the claim properties and headers, and hands the post to the endpoint's transport.
 *
 * Delivery: from a synchronous step a failed post throws into the plug-in; from an asynchronous
 * step (a system job) the job runner retries it with back-off; an endpoint with `outbox: true`
 * holds posts from synchronous steps in the store and sends them after the commit.
 */
import { serializeRemoteExecutionContext, withoutLargeParts, CONTENT_TYPES } from "../../sdk/wire/index.js";
import type { ServiceEndpointRegistration } from "../registry/manifest.js";
import { readSerializedContext, serializedFields, type NotificationBackend, type SerializedContext } from "../services/notification.js";
import { readServiceEndpoint, SecretResolver, type SecretSource, type ServiceEndpoint } from "./endpoints.js";
import { RelayError } from "./errors.js";
import { createTransports, describeError, type OutgoingPost, type RelayTransport } from "./transports.js";
import type { Transport } from "./endpoints.js";

/** Dataverse's limits: above them ParentContext, InputParameters and the images are dropped. */
export const SIZE_LIMITS: Readonly<Record<Transport, number>> = Object.freeze({ serviceBus: 192 * 1024, eventHub: 192 * 1024, webhook: 256 * 1024 });

const CLAIMS = "http://schemas.microsoft.com/xrm/2011/Claims";
const CLAIM = Object.freeze({
  organization: `${CLAIMS}/Organization`,
  entityLogicalName: `${CLAIMS}/EntityLogicalName`,
  requestName: `${CLAIMS}/RequestName`,
  initiatingUserAgent: `${CLAIMS}/InitiatingUserAgent`,
  user: `${CLAIMS}/User`,
  initiatingUser: `${CLAIMS}/InitiatingUser`,
});

/** Settles as `work` does, or as `late` does once `ms` have passed without `work` settling. */
async function within<T>(work: Promise<T>, ms: number, late: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(late());
      } catch (error) {
        reject(error);
      }
    }, ms);
    timer.unref();
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether a body is within `limit` bytes; a UTF-16 unit is at most 3 UTF-8 bytes, so only a body that might be over is measured. */
function fits(body: string, limit: number): boolean {
  return body.length * 3 <= limit || Buffer.byteLength(body) <= limit;
}

function text(value: unknown): string {
  return value === undefined || value === null ? "" : String(value);
}

export interface RelayOptions {
  endpoints: readonly ServiceEndpointRegistration[];
  secrets?: SecretSource;
  /** The organization's URL: the Organization claim and the x-ms-dynamics-organization header. */
  organizationUrl: string;
  transports?: Record<Transport, RelayTransport>;
}

export interface PreparedPost extends Omit<OutgoingPost, "signal"> {
  sizeExceeded: boolean;
}

function organizationHost(url: string): string {
  try {
    return new URL(url).host.toLowerCase();
  } catch {
    throw new RelayError("RELAY_CONFIG_INVALID", `the organization URL ${JSON.stringify(url)} is not a URL (give one like https://contoso.crm.dynamics.com)`);
  }
}

export class Relay implements NotificationBackend {
  readonly #endpoints = new Map<string, ServiceEndpoint>();
  readonly #transports: Record<Transport, RelayTransport>;
  readonly #organizationUrl: string;
  readonly #organizationHost: string;

  constructor(options: RelayOptions) {
    const secrets = new SecretResolver(options.secrets);
    for (const raw of options.endpoints) {
      const endpoint = readServiceEndpoint(raw, secrets);
      this.#endpoints.set(endpoint.id, endpoint);
      this.#endpoints.set(endpoint.name, endpoint);
    }
    this.#transports = options.transports ?? createTransports();
    this.#organizationUrl = options.organizationUrl;
    this.#organizationHost = organizationHost(options.organizationUrl);
  }

  /** The endpoint with this id or name. */
  endpoint(idOrName: string): ServiceEndpoint {
    const endpoint = this.#endpoints.get(idOrName) ?? this.#endpoints.get(idOrName.toLowerCase());
    if (!endpoint) {
      const known = [...new Set([...this.#endpoints.values()].map((e) => `${e.name} (${e.id})`))];
      throw new RelayError("RELAY_ENDPOINT_UNKNOWN", `no service endpoint ${idOrName} is declared; declared: ${known.join(", ") || "none"} (add it under serviceEndpoints in the manifest)`);
    }
    return endpoint;
  }

  holdsForOutbox(endpointId: string): boolean {
    return this.has(endpointId) && this.endpoint(endpointId).outbox;
  }

  maxAttemptsFor(endpointId: string): number {
    return this.has(endpointId) ? this.endpoint(endpointId).maxAttempts : 1;
  }

  has(idOrName: string): boolean {
    return this.#endpoints.has(idOrName) || this.#endpoints.has(idOrName.toLowerCase());
  }

  /** Serializes the context for the endpoint, applying the size rule; throws RELAY_TOO_LARGE when even the reduced form is over. */
  prepare(endpoint: ServiceEndpoint, context: Record<string, unknown>): PreparedPost {
    const { body, sizeExceeded } = this.#body(endpoint, context);
    return this.#post(endpoint, body, context, sizeExceeded);
  }

  /** The context's body for the endpoint: whole, or past the endpoint's limit without ParentContext, InputParameters and images. */
  #body(endpoint: ServiceEndpoint, context: Record<string, unknown>): { body: string; sizeExceeded: boolean } {
    const limit = SIZE_LIMITS[endpoint.transport];
    const body = serializeRemoteExecutionContext(context as never, endpoint.messageFormat);
    if (fits(body, limit)) return { body, sizeExceeded: false };
    const reduced = serializeRemoteExecutionContext(withoutLargeParts(context as never), endpoint.messageFormat);
    if (!fits(reduced, limit)) {
      throw new RelayError(
        "RELAY_TOO_LARGE",
        `the context is ${Buffer.byteLength(reduced)} bytes even without ParentContext, InputParameters and images; endpoint "${endpoint.name}" takes at most ${limit} bytes`,
      );
    }
    return { body: reduced, sizeExceeded: true };
  }

  /**
   * Serializes a context for a post that a system job makes later (an asynchronous posting step's,
   * an outbox post's), applying the size rule while the whole context is at hand: the job keeps the
   * body, so the post needs no reading back and no serializing when it runs.
   */
  serialize(endpointId: string, context: Record<string, unknown>): SerializedContext {
    const endpoint = this.endpoint(endpointId);
    return { format: endpoint.messageFormat, ...this.#body(endpoint, context), fields: serializedFields(context) };
  }

  /**
   * The post of a context that `serialize` made: its body as it is, unless the endpoint's format
   * changed since or the body is over the endpoint's limit now (then from the context read back
   * from it, still flagged if it was reduced).
   */
  prepareSerialized(endpoint: ServiceEndpoint, serialized: SerializedContext): PreparedPost {
    if (serialized.format === endpoint.messageFormat && fits(serialized.body, SIZE_LIMITS[endpoint.transport])) return this.#post(endpoint, serialized.body, serialized.fields, serialized.sizeExceeded);
    const context = readSerializedContext(serialized);
    const { body, sizeExceeded } = this.#body(endpoint, context);
    return this.#post(endpoint, body, context, sizeExceeded || serialized.sizeExceeded);
  }

  /** The post of a body; `context` gives the MessageId and the claims or headers. */
  #post(endpoint: ServiceEndpoint, body: string, context: Record<string, unknown>, sizeExceeded: boolean): PreparedPost {
    const messageId = text(context.operationId) || text(context.requestId);
    // Each transport reads its own: Service Bus and Event Hubs the claim properties, webhooks the headers.
    const webhook = endpoint.transport === "webhook";
    const properties = webhook ? {} : this.#claims(endpoint, context, sizeExceeded);
    const headers = webhook ? this.#headers(context, messageId, sizeExceeded) : {};
    return { endpoint, body, contentType: CONTENT_TYPES[endpoint.messageFormat], messageId, properties, headers, sizeExceeded };
  }

  /** The claim properties of a Service Bus or Event Hubs post (reference 4.7). */
  #claims(endpoint: ServiceEndpoint, context: Record<string, unknown>, sizeExceeded: boolean): Record<string, string | boolean> {
    const properties: Record<string, string | boolean> = {
      [CLAIM.organization]: this.#organizationUrl,
      [CLAIM.entityLogicalName]: text(context.primaryEntityName),
      [CLAIM.requestName]: text(context.messageName),
      [CLAIM.initiatingUserAgent]: text(context.initiatingUserAgent),
    };
    if (endpoint.userClaim !== "None") {
      properties[CLAIM.user] = text(context.userId);
      properties[CLAIM.initiatingUser] = text(context.initiatingUserId);
    }
    if (sizeExceeded) properties.MessageMaxSizeExceeded = true;
    return properties;
  }

  /** The x-ms-dynamics-* headers of a webhook post (reference 4.8). */
  #headers(context: Record<string, unknown>, messageId: string, sizeExceeded: boolean): Record<string, string> {
    const headers: Record<string, string> = {
      "x-request-id": messageId,
      "x-ms-dynamics-organization": this.#organizationHost,
      "x-ms-dynamics-entity-name": text(context.primaryEntityName).toLowerCase(),
      "x-ms-dynamics-request-name": text(context.messageName).toLowerCase(),
      "x-ms-correlation-request-id": text(context.correlationId).toLowerCase(),
    };
    if (sizeExceeded) headers["x-ms-dynamics-msg-size-exceeded"] = "true";
    return headers;
  }

  /** Posts a prepared body (the outbox and retries send exactly what was prepared). */
  send(post: PreparedPost, signal?: AbortSignal): Promise<string | null> {
    return this.#transports[post.endpoint.transport].post(signal ? { ...post, signal } : post);
  }

  /** IServiceEndpointNotificationService.Execute: posts now and answers with the reply, if any. */
  async execute(endpointId: string, context: Record<string, unknown>, signal?: AbortSignal): Promise<string | null> {
    const endpoint = this.endpoint(endpointId);
    return this.send(this.prepare(endpoint, context), signal);
  }

  /** Posts a context that `serialize` made. */
  async executeSerialized(endpointId: string, serialized: SerializedContext, signal?: AbortSignal): Promise<string | null> {
    return this.send(this.prepareSerialized(this.endpoint(endpointId), serialized), signal);
  }

  /**
   * Loads the clients and opens the links of every Service Bus and Event Hubs endpoint, so the first
   * posts do not wait for them. Resolves within `timeoutMs` with the endpoints that could not be
   * reached by then (their posts fail or are retried as usual); it never rejects.
   */
  async connect(options: { timeoutMs?: number } = {}): Promise<Array<{ endpoint: string; message: string }>> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const endpoints = [...new Set(this.#endpoints.values())];
    const connect = async (endpoint: ServiceEndpoint) => this.#transports[endpoint.transport].connect?.(endpoint);
    const notInTime = (): never => {
      throw new Error(`not connected within ${timeoutMs} ms`);
    };
    const results = await Promise.allSettled(endpoints.map((e) => within(connect(e), timeoutMs, notInTime)));
    return results.flatMap((r, i) => (r.status === "rejected" ? [{ endpoint: endpoints[i]!.name, message: describeError(r.reason) }] : []));
  }

  /** Closes every transport; a peer that vanished gets 2 s to answer before its connection is left. */
  async close(): Promise<void> {
    await within(
      Promise.allSettled(Object.values(this.#transports).map((t) => t.close())),
      2_000,
      () => undefined,
    );
  }
}
