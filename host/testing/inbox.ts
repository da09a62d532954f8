/**
 * The test inbox: the relay's transports replaced by one that keeps each post instead of sending
 * it. The relay in front of it is the real one, so a post holds exactly what would have gone out
 * (the body's bytes, content type, MessageId, claim properties, webhook headers), and a TwoWay, REST
 * or webhook endpoint answers with the reply a test scripted.
 */
import { parseRemoteExecutionContext, type RemoteExecutionContext } from "../../sdk/wire/index.js";
import { PlugboxError } from "../../sdk/errors.js";
import type { ServiceEndpointRegistration } from "../registry/index.js";
import { readServiceEndpoint, RelayError, SecretResolver, type Contract, type ServiceEndpoint, type Transport } from "../relay/index.js";
import type { OutgoingPost, RelayTransport } from "../relay/index.js";

/** One post as it would have been sent: its content type, MessageId, claim properties (Service Bus, Event Hubs) and headers (webhooks). */
export interface InboxPost extends Pick<OutgoingPost, "contentType" | "messageId" | "properties" | "headers"> {
  endpoint: { id: string; name: string; contract: Contract };
  /** The body's bytes (UTF-8), as the broker, hub or webhook would have received them; `text` is the same as a string. */
  body: Uint8Array;
  text: string;
  /** What the endpoint answered: the scripted reply, or null. */
  reply: string | null;
  /** The body parsed back: the RemoteExecutionContext the listener would read. */
  context(): RemoteExecutionContext;
}

/** A scripted reply: a text, or a function of the posted context that returns one (or throws, as a failing endpoint). */
export type InboxReply = string | ((context: RemoteExecutionContext, post: InboxPost) => string | Promise<string>);

/** Where an inbox stands, for a snapshot to come back to. */
export interface InboxMark {
  posts: readonly InboxPost[];
  replies: ReadonlyMap<string, InboxReply>;
}

const ANSWERING: ReadonlySet<Contract> = new Set(["TwoWay", "Rest", "Webhook"]);

export class TestInbox {
  readonly #posts: InboxPost[] = [];
  readonly #replies = new Map<string, InboxReply>();
  readonly #endpoints: ServiceEndpoint[];
  /** False when the host relays to the network: nothing lands here, and replies come from the endpoints' listeners. */
  readonly #inUse: boolean;

  constructor(endpoints: readonly ServiceEndpointRegistration[], options: { secrets?: SecretResolver; inUse?: boolean } = {}) {
    const resolver = options.secrets ?? new SecretResolver();
    this.#endpoints = endpoints.map((e) => readServiceEndpoint(e, resolver));
    this.#inUse = options.inUse ?? true;
  }

  /** Every post, in order; only those to one endpoint (by name or id) when it is given. */
  posts(endpoint?: string): InboxPost[] {
    if (endpoint === undefined) return [...this.#posts];
    const { id } = this.#endpoint(endpoint);
    return this.#posts.filter((p) => p.endpoint.id === id);
  }

  /**
   * Scripts what a TwoWay, REST or webhook endpoint answers from now on (the last call wins).
   * Without one, a TwoWay or REST post fails with RELAY_TIMEOUT, as when no listener answers, and
   * a webhook answers 200 with no body.
   */
  reply(endpoint: string, answer: InboxReply): void {
    const found = this.#endpoint(endpoint);
    if (!this.#inUse) throw new RelayError("RELAY_CONFIG_INVALID", `this test host relays to the network (relay: "network"): "${found.name}" answers with its listener's reply; script replies with the default relay: "inbox"`);
    if (!ANSWERING.has(found.contract)) {
      throw new RelayError("RELAY_CONFIG_INVALID", `the endpoint "${found.name}" is a ${found.contract} endpoint, which answers nothing; only TwoWay, Rest and Webhook endpoints reply`);
    }
    if (typeof answer !== "string" && typeof answer !== "function") throw new RelayError("RELAY_CONFIG_INVALID", "a reply is a string or a function (context) => string");
    this.#replies.set(found.id, answer);
  }

  /** Forgets every post (scripted replies stay). */
  clear(): void {
    this.#posts.length = 0;
  }

  mark(): InboxMark {
    return { posts: [...this.#posts], replies: new Map(this.#replies) };
  }

  /** Back to a mark: the posts and the scripted replies as they were then. */
  reset(mark: InboxMark): void {
    this.#posts.splice(0, this.#posts.length, ...mark.posts);
    this.#replies.clear();
    for (const [id, reply] of mark.replies) this.#replies.set(id, reply);
  }

  /** The relay's transports, one per kind, all keeping posts here. */
  transports(): Record<Transport, RelayTransport> {
    const transport: RelayTransport = { post: (post) => this.#receive(post), close: async () => undefined };
    return { serviceBus: transport, eventHub: transport, webhook: transport };
  }

  #endpoint(idOrName: string): ServiceEndpoint {
    const found = this.#endpoints.find((e) => e.id === idOrName.toLowerCase() || e.name === idOrName);
    if (!found) {
      const known = this.#endpoints.map((e) => `${e.name} (${e.id})`).join(", ") || "none";
      throw new RelayError("RELAY_ENDPOINT_UNKNOWN", `no service endpoint ${idOrName} is declared; declared: ${known} (add it under endpoints or the manifest's serviceEndpoints)`);
    }
    return found;
  }

  async #receive(outgoing: OutgoingPost): Promise<string | null> {
    const { endpoint } = outgoing;
    let parsed: RemoteExecutionContext | undefined;
    const post: InboxPost = {
      endpoint: { id: endpoint.id, name: endpoint.name, contract: endpoint.contract },
      body: new Uint8Array(Buffer.from(outgoing.body, "utf8")),
      text: outgoing.body,
      contentType: outgoing.contentType,
      messageId: outgoing.messageId,
      properties: { ...outgoing.properties },
      headers: { ...outgoing.headers },
      reply: null,
      context: () => (parsed ??= parseRemoteExecutionContext(outgoing.body, endpoint.messageFormat)),
    };
    this.#posts.push(post);
    const scripted = this.#replies.get(endpoint.id);
    if (scripted === undefined) {
      if (endpoint.contract === "TwoWay" || endpoint.contract === "Rest") {
        throw new RelayError("RELAY_TIMEOUT", `no reply came from "${endpoint.name}": no reply is scripted for it in this test host; script one with host.inbox.reply("${endpoint.name}", (context) => "…")`);
      }
      return null;
    }
    try {
      post.reply = typeof scripted === "string" ? scripted : String(await scripted(post.context(), post));
    } catch (error) {
      if (error instanceof PlugboxError) throw error;
      throw new RelayError("RELAY_REJECTED", `the scripted reply of "${endpoint.name}" failed: ${(error as Error).message ?? String(error)}`);
    }
    return post.reply;
  }
}
