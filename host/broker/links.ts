/**
 * The AMQP links of the broker's connections: a client's receiver attaching to an entity, an event
 * hub partition or a `$cbs`/`$management` reply address; a client's sender attaching to a queue,
 * topic or event hub; transfers coming in (sends, batches, `$cbs` put-token, `$management`
 * requests); and links and connections going away. Deliveries to receivers are deliveries.ts's.
 */
import { BATCH_FORMAT, entityPath, rhea, type AmqpMessage, type RheaConnection, type RheaContainer, type RheaContext, type RheaLink } from "./amqp.js";
import { receiverEntity, type Deliveries } from "./deliveries.js";
import { ManagementFailure } from "./entities.js";
import type { EventHubs } from "./event-hubs.js";
import type { GroupCommit } from "./group-commit.js";
import { manage, replyTo } from "./management.js";
import type { Namespace } from "./namespace.js";
import { SESSION_FILTER, type SessionReceivers } from "./session-receivers.js";

/** The receiver links a connection opened (a Set<RheaLink>), released when it goes away. */
const kLinks = Symbol("plugbox.broker.links");
const MANAGEMENT = "/$management";
const isManagement = (address: string) => address === "$management" || address.endsWith(MANAGEMENT);

export class Links {
  readonly #replyLinks = new Map<string, RheaLink>();

  constructor(
    private readonly namespace: Namespace,
    private readonly eventHubs: EventHubs,
    private readonly deliveries: Deliveries,
    private readonly sessions: SessionReceivers,
    private readonly commits: GroupCommit,
    /** The max-message-size announced on every attach; a larger transfer is refused. */
    private readonly maxMessageSize: number,
  ) {}

  /** Handles the container's link, transfer, disposition and connection events. */
  listen(container: RheaContainer): void {
    container.on("sender_open", (c) => this.#onSenderOpen(c.sender!));
    container.on("receiver_open", (c) => this.#onReceiverOpen(c.receiver!));
    container.on("message", (c) => this.#onMessage(c));
    container.on("sendable", (c) => {
      if (this.eventHubs.isReader(c.sender!)) this.eventHubs.pump(c.sender!);
      else this.deliveries.pump(receiverEntity(c.sender!));
    });
    container.on("sender_draining", (c) => {
      const entity = receiverEntity(c.sender!);
      if (entity) this.deliveries.pump(entity);
      this.eventHubs.pump(c.sender!);
      c.sender!.set_drained(true);
    });
    container.on("sender_close", (c) => this.#onSenderClose(c.sender!));
    for (const outcome of ["accepted", "released", "rejected", "modified"]) {
      container.on(outcome, (c) => {
        if (!(c.sender && this.eventHubs.isReader(c.sender))) this.deliveries.onOutcome(outcome, c);
      });
    }
    container.on("error", () => undefined);
    container.on("connection_error", () => undefined);
    container.on("disconnected", (c) => this.onConnectionGone(c.connection!));
    container.on("connection_close", (c) => this.onConnectionGone(c.connection!));
    container.on("protocol_error", () => undefined);
  }

  /** A connection closed or dropped: its receiver links are gone too (rhea reports no detach for them). */
  onConnectionGone(connection: RheaConnection): void {
    const links = connection[kLinks] as Set<RheaLink> | undefined;
    if (!links) return;
    connection[kLinks] = undefined;
    for (const link of links) this.#onSenderClose(link);
  }

  #prepareAttach(link: RheaLink): void {
    link.local.attach.source = link.remote.attach.source;
    link.local.attach.target = link.remote.attach.target;
    link.local.attach.max_message_size = this.maxMessageSize;
  }

  /** A client receiver attached: our sender, from an entity (or a reply link for $cbs and $management). */
  #onSenderOpen(link: RheaLink): void {
    this.#prepareAttach(link);
    const owner = link.connection as unknown as RheaConnection;
    ((owner[kLinks] ??= new Set<RheaLink>()) as Set<RheaLink>).add(link);
    const source = link.remote.attach.source?.address ?? "";
    if (source === "$cbs" || isManagement(source)) {
      this.#replyLinks.set(link.remote.attach.target?.address ?? link.name, link);
      this.#replyLinks.set(link.name, link);
      return;
    }
    const path = entityPath(source);
    if (this.eventHubs.owns(path)) {
      const problem = this.eventHubs.attachReader(link, path);
      if (problem) link.close({ condition: "amqp:not-found", description: problem });
      return;
    }
    const filter = link.remote.attach.source?.filter;
    const sessionful = filter !== undefined && filter !== null && SESSION_FILTER in filter;
    const entity = this.namespace.entity(path, { requiresSession: sessionful });
    if (!entity) return link.close({ condition: "amqp:not-found", description: `The messaging entity '${path}' could not be found.` });
    if (sessionful !== (entity.options.requiresSession ?? false)) {
      return link.close({
        condition: "amqp:not-allowed",
        description: sessionful ? `${path} is not session-enabled: receive without a session, or create it with RequiresSession` : `${path} requires sessions: receive with acceptSession() or acceptNextSession()`,
      });
    }
    if (sessionful && typeof filter![SESSION_FILTER] !== "string" && this.namespace.availableSession(entity) === undefined) {
      return this.sessions.wait(link, entity);
    }
    if (sessionful && !this.sessions.lock(link, entity, filter![SESSION_FILTER])) return;
    this.deliveries.addReceiver(link, entity);
  }

  #onSenderClose(link: RheaLink): void {
    this.sessions.stopWaiting(link);
    const entity = receiverEntity(link);
    this.deliveries.removeReceiver(link);
    if (entity) this.sessions.release(link, entity);
    this.eventHubs.detach(link);
    for (const [key, reply] of this.#replyLinks) if (reply === link) this.#replyLinks.delete(key);
  }

  /** A client sender attached: our receiver, into a queue or topic (or $cbs, $management). */
  #onReceiverOpen(link: RheaLink): void {
    this.#prepareAttach(link);
    const target = entityPath(link.remote.attach.target?.address);
    if (target === "$cbs" || isManagement(target)) return;
    if (this.eventHubs.owns(target)) {
      if (!this.eventHubs.isSendTarget(target)) link.close({ condition: "amqp:not-found", description: `The messaging entity '${target}' could not be found.` });
      return;
    }
    if (!this.namespace.isTarget(target)) link.close({ condition: "amqp:not-found", description: `The messaging entity '${target}' could not be found.` });
  }

  #reply(request: AmqpMessage, response: AmqpMessage): void {
    this.#replyLinks.get(request.reply_to ?? "")?.send(response);
  }

  #onMessage(context: RheaContext): void {
    const delivery = context.delivery!;
    const target = entityPath(context.receiver!.remote.attach.target?.address);
    if (target === "$cbs") {
      const request = context.message as AmqpMessage;
      this.#reply(request, { correlation_id: request.message_id, application_properties: { "status-code": 202, "status-description": "Accepted" }, body: "" });
      return delivery.accept();
    }
    if (isManagement(target)) {
      const request = context.message as AmqpMessage;
      const reply = this.eventHubs.read(request) ?? this.namespace.atomically(() => manage(this.namespace, target.slice(0, -MANAGEMENT.length), request));
      this.#reply(request, replyTo(request, reply));
      return delivery.accept();
    }
    if (this.#tooLarge(context.message!)) {
      return delivery.reject({ condition: "amqp:link:message-size-exceeded", description: `The received message exceeds the limit for the link: ${this.maxMessageSize} bytes.` });
    }
    let messages: AmqpMessage[];
    try {
      messages = delivery.format === BATCH_FORMAT ? unpackBatch(context.message as Buffer) : [context.message as AmqpMessage];
    } catch (error) {
      return delivery.reject({ condition: "amqp:decode-error", description: `The batch holds a message that cannot be decoded: ${(error as Error).message}` });
    }
    if (this.eventHubs.isSendTarget(target)) {
      this.eventHubs.send(target, messages);
      return delivery.accept();
    }
    this.commits.run(
      () => this.namespace.send(target, messages),
      (error) => {
        if (error === undefined) return delivery.accept();
        const failure = error instanceof ManagementFailure ? error : new ManagementFailure(500, "amqp:internal-error", (error as Error).message);
        delivery.reject({ condition: failure.condition, description: failure.message });
      },
    );
  }

  /**
   * Whether a transfer is over the size the attach announced. rhea hands over a decoded message, so
   * one is encoded again to be measured, but only when its body alone comes near the limit.
   */
  #tooLarge(message: AmqpMessage | Buffer): boolean {
    if (Buffer.isBuffer(message)) return message.length > this.maxMessageSize;
    const body = message.body as { content?: unknown } | string | Buffer | undefined;
    const content = typeof body === "object" && body !== null && !Buffer.isBuffer(body) ? body.content : body;
    const rough = typeof content === "string" ? content.length : Buffer.isBuffer(content) ? content.length : 0;
    return rough > this.maxMessageSize / 2 && rhea.message.encode(message).length > this.maxMessageSize;
  }
}

/** The messages of a batch (format 0x80013700): its body's data sections, each an encoded message. */
function unpackBatch(encoded: Buffer): AmqpMessage[] {
  const body = rhea.message.decode(encoded).body as { multiple?: boolean; content?: Buffer | Buffer[] } | undefined;
  const parts = body?.multiple ? (body.content as Buffer[]) : [body?.content];
  return parts.map((part) => {
    if (!Buffer.isBuffer(part)) throw new Error("a batch's body must be data sections, one encoded message each");
    return rhea.message.decode(part);
  });
}
