/**
 * `plugbox broker`: a local AMQP 1.0 peer on 127.0.0.1 that the real @azure/service-bus client talks
 * to with a connection string ending in `UseDevelopmentEmulator=true;` (no Azure, no Docker).
 *
 * What it does, from what the client needs (shared/reference/service-bus-broker.md):
 * SASL ANONYMOUS and PLAIN; `$cbs` put-token answered with status 202 on the link named by
 * `reply_to`; `max_message_size` on every attach; TCP no-delay; batches (message format
 * 0x80013700) unpacked; per-entity sequence numbers with `x-opt-sequence-number`,
 * `x-opt-enqueued-time` and `x-opt-locked-until`; 16-byte lock tokens as delivery tags;
 * peek-lock with settled dispositions for complete, abandon, defer and dead-letter
 * (`<entity>/$DeadLetterQueue`, with DeadLetterReason and DeadLetterErrorDescription);
 * MaxDeliveryCount; lock expiry as an abandon; receive-and-delete; drain; topics fanned out to
 * their subscriptions. Not yet: the `$management` operations (renew-lock, peek, schedule,
 * receive-by-sequence-number), sessions, filters and rules, TTL.
 */
import { randomBytes } from "node:crypto";
import type { AddressInfo, Server, Socket } from "node:net";
import { createRequire } from "node:module";
import { PlugboxError } from "../../runtime/errors.js";

const require = createRequire(import.meta.url);
// rhea is CommonJS; its typings do not cover the server side used here.
const rhea = require("rhea") as {
  create_container(options?: Record<string, unknown>): RheaContainer;
  message: {
    decode(buffer: Buffer): AmqpMessage;
    accepted(): Described;
    released(): Described;
    rejected(state?: unknown): Described;
    modified(state?: unknown): Described;
  };
  types: { wrap_long(n: number): unknown };
};

interface Described {
  described(): unknown;
}
interface RheaContainer {
  sasl_server_mechanisms: { enable_anonymous(): void; enable_plain(check: (user: string, password: string) => boolean): void };
  on(event: string, handler: (context: RheaContext) => void): void;
  listen(options: Record<string, unknown>): Server;
}
interface AmqpMessage {
  body?: unknown;
  message_id?: unknown;
  reply_to?: string;
  application_properties?: Record<string, unknown>;
  message_annotations?: Record<string, unknown>;
  header?: Record<string, unknown>;
  delivery_count?: number;
  [key: string]: unknown;
}
interface RheaLink {
  name: string;
  remote: { attach: { source?: { address?: string }; target?: { address?: string }; snd_settle_mode?: number; rcv_settle_mode?: number } };
  local: { attach: Record<string, unknown> };
  sendable(): boolean;
  send(message: AmqpMessage, tag?: Buffer, format?: number): RheaDelivery;
  set_drained(drained: boolean): void;
  is_closed(): boolean;
  close(error?: { condition: string; description: string }): void;
  [key: symbol]: unknown;
}
interface RheaDelivery {
  tag: Buffer;
  format?: number;
  remote_state?: { delivery_failed?: boolean; undeliverable_here?: boolean; error?: { condition?: string; info?: Record<string, unknown> }; info?: Record<string, unknown> };
  accept(): void;
  update(settled: boolean, state?: unknown): void;
}
interface RheaContext {
  sender?: RheaLink;
  receiver?: RheaLink;
  message?: AmqpMessage | Buffer;
  delivery?: RheaDelivery;
  connection?: { options?: unknown };
}

export const BROKER_ERROR_CODES = {
  BROKER_CONFIG_INVALID: "usage", // the broker's topology is malformed
  BROKER_PORT_IN_USE: "usage", // the port is taken by another program
} as const;
export type BrokerErrorCode = keyof typeof BROKER_ERROR_CODES;
export class BrokerError extends PlugboxError<BrokerErrorCode> {}

export interface EntityOptions {
  /** How long a peek-lock delivery stays locked, ms. @default 60000 */
  lockDurationMs?: number;
  /** Deliveries before a message goes to the dead-letter queue. @default 10 */
  maxDeliveryCount?: number;
}

export interface BrokerTopology {
  queues?: Array<{ name: string } & EntityOptions>;
  topics?: Array<{ name: string; subscriptions: Array<{ name: string } & EntityOptions> }>;
}

export interface BrokerOptions {
  /** 0 picks a free port. @default 5672 */
  port?: number;
  topology?: BrokerTopology;
  /** Create a queue the first time a link names an unknown one. @default false */
  autoCreate?: boolean;
  /** @default 262144 */
  maxMessageSize?: number;
}

interface Stored {
  message: AmqpMessage;
  sequence: number;
  enqueuedAt: Date;
  deliveryCount: number;
  state: "active" | "locked" | "deferred";
  lockToken?: string;
  lockTimer?: NodeJS.Timeout;
}

class Entity {
  readonly messages: Stored[] = [];
  nextSequence = 1;
  readonly receivers = new Set<RheaLink>();
  constructor(
    readonly path: string,
    readonly lockDurationMs: number,
    readonly maxDeliveryCount: number,
  ) {}
}

const kEntity = Symbol("plugbox.broker.entity");
const BATCH_FORMAT = 0x80013700;

/** The entity path of a link address: `sb://host:port/queue` → `queue`; `Subscriptions` keeps its case. */
function entityPath(address: string | undefined): string {
  return (address ?? "").replace(/^amqps?:\/\/[^/]+\//i, "").replace(/^sb:\/\/[^/]+\//i, "").replace(/^\//, "");
}

export class Broker {
  readonly port: number;
  readonly connectionString: string;
  readonly #server: Server;
  readonly #entities = new Map<string, Entity>();
  readonly #topics = new Map<string, string[]>();
  readonly #replyLinks = new Map<string, RheaLink>();
  readonly #sockets = new Set<Socket>();
  readonly #options: Required<Omit<BrokerOptions, "topology" | "port">>;
  #closed = false;

  private constructor(server: Server, options: BrokerOptions) {
    this.#server = server;
    this.port = (server.address() as AddressInfo).port;
    this.connectionString = `Endpoint=sb://127.0.0.1:${this.port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;`;
    this.#options = { autoCreate: options.autoCreate ?? false, maxMessageSize: options.maxMessageSize ?? 262_144 };
    this.#load(options.topology ?? {});
  }

  static async start(options: BrokerOptions = {}): Promise<Broker> {
    const container = rhea.create_container({ id: "plugbox-broker", autoaccept: false, autosettle: false, treat_modified_as_released: false });
    container.sasl_server_mechanisms.enable_anonymous();
    container.sasl_server_mechanisms.enable_plain(() => true);
    const server = container.listen({ port: options.port ?? 5672, host: "127.0.0.1" });
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", (error: NodeJS.ErrnoException) =>
        reject(error.code === "EADDRINUSE" ? new BrokerError("BROKER_PORT_IN_USE", `port ${options.port} is in use; pick another with --port, or --port 0 for a free one`) : error),
      );
    });
    const broker = new Broker(server, options);
    server.on("connection", (socket: Socket) => {
      socket.setNoDelay(true);
      broker.#sockets.add(socket);
      socket.once("close", () => broker.#sockets.delete(socket));
    });
    container.on("sender_open", (c) => broker.#onSenderOpen(c.sender!));
    container.on("receiver_open", (c) => broker.#onReceiverOpen(c.receiver!));
    container.on("message", (c) => broker.#onMessage(c));
    container.on("sendable", (c) => broker.#pump(c.sender![kEntity] as Entity | undefined));
    container.on("sender_draining", (c) => {
      const entity = c.sender![kEntity] as Entity | undefined;
      if (entity) broker.#pump(entity);
      c.sender!.set_drained(true);
    });
    container.on("sender_close", (c) => broker.#onSenderClose(c.sender!));
    for (const outcome of ["accepted", "released", "rejected", "modified"]) container.on(outcome, (c) => broker.#onOutcome(outcome, c));
    container.on("error", () => undefined);
    container.on("connection_error", () => undefined);
    container.on("disconnected", () => undefined);
    return broker;
  }

  #load(topology: BrokerTopology): void {
    for (const q of topology.queues ?? []) this.#create(q.name, q);
    for (const t of topology.topics ?? []) {
      if (!t.name) throw new BrokerError("BROKER_CONFIG_INVALID", "a topic needs a name");
      const subscriptions = t.subscriptions ?? [];
      this.#topics.set(t.name, subscriptions.map((s) => `${t.name}/Subscriptions/${s.name}`));
      for (const s of subscriptions) this.#create(`${t.name}/Subscriptions/${s.name}`, s);
    }
  }

  #create(path: string, options: EntityOptions = {}): Entity {
    if (!/^[A-Za-z0-9]([\w.\-/]*[A-Za-z0-9])?$/.test(path)) throw new BrokerError("BROKER_CONFIG_INVALID", `${JSON.stringify(path)} is not an entity name`);
    const entity = new Entity(path, options.lockDurationMs ?? 60_000, options.maxDeliveryCount ?? 10);
    this.#entities.set(path, entity);
    this.#entities.set(`${path}/$DeadLetterQueue`, new Entity(`${path}/$DeadLetterQueue`, entity.lockDurationMs, Number.MAX_SAFE_INTEGER));
    return entity;
  }

  /** The queue or subscription at a path (with autoCreate, a new queue). */
  #entity(path: string): Entity | undefined {
    const found = this.#entities.get(path);
    if (found || this.#topics.has(path)) return found;
    return this.#options.autoCreate && !path.includes("/") ? this.#create(path) : undefined;
  }

  #prepareAttach(link: RheaLink): void {
    link.local.attach.source = link.remote.attach.source;
    link.local.attach.target = link.remote.attach.target;
    link.local.attach.max_message_size = this.#options.maxMessageSize;
  }

  /** A client receiver attached: our sender, from an entity (or a reply link for $cbs). */
  #onSenderOpen(link: RheaLink): void {
    this.#prepareAttach(link);
    const source = link.remote.attach.source?.address ?? "";
    if (source === "$cbs" || source.endsWith("$management")) {
      this.#replyLinks.set(link.remote.attach.target?.address ?? link.name, link);
      this.#replyLinks.set(link.name, link);
      return;
    }
    const entity = this.#entity(entityPath(source));
    if (!entity) return link.close({ condition: "amqp:not-found", description: `The messaging entity '${entityPath(source)}' could not be found.` });
    link[kEntity] = entity;
    entity.receivers.add(link);
  }

  #onSenderClose(link: RheaLink): void {
    const entity = link[kEntity] as Entity | undefined;
    entity?.receivers.delete(link);
  }

  /** A client sender attached: our receiver, into an entity or topic (or $cbs). */
  #onReceiverOpen(link: RheaLink): void {
    this.#prepareAttach(link);
    const target = entityPath(link.remote.attach.target?.address);
    if (target === "$cbs" || target.endsWith("$management")) return;
    if (!this.#topics.has(target) && !this.#entity(target)) {
      link.close({ condition: "amqp:not-found", description: `The messaging entity '${target}' could not be found.` });
    }
  }

  #onMessage(context: RheaContext): void {
    const link = context.receiver!;
    const delivery = context.delivery!;
    const target = entityPath(link.remote.attach.target?.address);
    if (target === "$cbs") {
      const request = context.message as AmqpMessage;
      const reply = this.#replyLinks.get(request.reply_to ?? "");
      reply?.send({ correlation_id: request.message_id, application_properties: { "status-code": 202, "status-description": "Accepted" }, body: "" } as AmqpMessage);
      delivery.accept();
      return;
    }
    let messages: AmqpMessage[];
    if (delivery.format === BATCH_FORMAT) {
      const envelope = rhea.message.decode(context.message as Buffer);
      const body = envelope.body as { multiple?: boolean; content: Buffer | Buffer[] };
      messages = (body.multiple ? (body.content as Buffer[]) : [body.content as Buffer]).map((b) => rhea.message.decode(b));
    } else {
      messages = [context.message as AmqpMessage];
    }
    const destinations = this.#topics.get(target) ?? [target];
    for (const path of destinations) {
      const entity = this.#entity(path);
      if (!entity) continue;
      for (const message of messages) this.#enqueue(entity, { ...message });
    }
    delivery.accept();
  }

  #enqueue(entity: Entity, message: AmqpMessage): void {
    // Service Bus gives every message an id; the client tracks locks by it.
    if (message.message_id === undefined || message.message_id === null) message.message_id = randomBytes(16).toString("hex");
    entity.messages.push({ message, sequence: entity.nextSequence++, enqueuedAt: new Date(), deliveryCount: 0, state: "active" });
    this.#pump(entity);
  }

  #pump(entity: Entity | undefined): void {
    if (!entity) return;
    for (const link of entity.receivers) {
      if (link.is_closed()) continue;
      const receiveAndDelete = link.remote.attach.snd_settle_mode === 1;
      for (const stored of [...entity.messages]) {
        if (!link.sendable()) break;
        if (stored.state !== "active") continue;
        const annotations = {
          ...(stored.message.message_annotations ?? {}),
          "x-opt-sequence-number": rhea.types.wrap_long(stored.sequence),
          "x-opt-enqueued-time": stored.enqueuedAt,
          ...(receiveAndDelete ? {} : { "x-opt-locked-until": new Date(Date.now() + entity.lockDurationMs) }),
        };
        const outgoing: AmqpMessage = { ...stored.message, message_annotations: annotations, delivery_count: stored.deliveryCount };
        const tag = randomBytes(16);
        if (receiveAndDelete) {
          link.send(outgoing, tag);
          entity.messages.splice(entity.messages.indexOf(stored), 1);
          continue;
        }
        stored.state = "locked";
        stored.lockToken = tag.toString("hex");
        stored.lockTimer = setTimeout(() => this.#abandon(entity, stored, true), entity.lockDurationMs);
        stored.lockTimer.unref();
        link.send(outgoing, tag);
      }
    }
  }

  #find(tag: Buffer): { entity: Entity; stored: Stored } | undefined {
    const token = tag.toString("hex");
    for (const entity of this.#entities.values()) {
      const stored = entity.messages.find((m) => m.lockToken === token);
      if (stored) return { entity, stored };
    }
    return undefined;
  }

  #remove(entity: Entity, stored: Stored): void {
    clearTimeout(stored.lockTimer);
    const index = entity.messages.indexOf(stored);
    if (index >= 0) entity.messages.splice(index, 1);
  }

  /** Unlocks for redelivery, or dead-letters past MaxDeliveryCount. */
  #abandon(entity: Entity, stored: Stored, expired = false): void {
    if (stored.state !== "locked") return;
    clearTimeout(stored.lockTimer);
    stored.state = "active";
    stored.lockToken = undefined;
    stored.deliveryCount++;
    if (stored.deliveryCount >= entity.maxDeliveryCount) {
      this.#remove(entity, stored);
      this.#deadLetter(entity, stored.message, "MaxDeliveryCountExceeded", `Message could not be consumed after ${entity.maxDeliveryCount} delivery attempts.`);
      return;
    }
    void expired;
    this.#pump(entity);
  }

  #deadLetter(entity: Entity, message: AmqpMessage, reason: string, description: string): void {
    const dlq = this.#entities.get(`${entity.path}/$DeadLetterQueue`);
    if (!dlq) return;
    this.#enqueue(dlq, { ...message, application_properties: { ...(message.application_properties ?? {}), DeadLetterReason: reason, DeadLetterErrorDescription: description } });
  }

  /** The client settled a peek-lock delivery: act on it, and always answer with a settled disposition. */
  #onOutcome(outcome: string, context: RheaContext): void {
    const delivery = context.delivery!;
    const found = this.#find(delivery.tag);
    if (!found) {
      delivery.update(true);
      return;
    }
    const { entity, stored } = found;
    const state = delivery.remote_state ?? {};
    const settle = (described: Described) => delivery.update(true, described.described());
    switch (outcome) {
      case "accepted":
        this.#remove(entity, stored);
        settle(rhea.message.accepted());
        break;
      case "modified":
        if (state.undeliverable_here) {
          clearTimeout(stored.lockTimer);
          stored.state = "deferred";
          stored.lockToken = undefined;
          settle(rhea.message.modified({ undeliverable_here: true }));
        } else {
          this.#abandon(entity, stored);
          settle(rhea.message.modified({ delivery_failed: true }));
        }
        break;
      case "rejected": {
        const info = (state.error?.info ?? {}) as Record<string, unknown>;
        this.#remove(entity, stored);
        this.#deadLetter(entity, stored.message, String(info.DeadLetterReason ?? ""), String(info.DeadLetterErrorDescription ?? ""));
        // Settled as accepted: a settled disposition carrying an error would fail the client's deadLetterMessage().
        settle(rhea.message.accepted());
        break;
      }
      default:
        this.#abandon(entity, stored);
        settle(rhea.message.released());
    }
  }

  /** Entities and their message counts (dead-letter queues included). */
  entities(): Array<{ path: string; active: number; locked: number; deferred: number }> {
    return [...this.#entities.values()].map((e) => ({
      path: e.path,
      active: e.messages.filter((m) => m.state === "active").length,
      locked: e.messages.filter((m) => m.state === "locked").length,
      deferred: e.messages.filter((m) => m.state === "deferred").length,
    }));
  }

  /** Stops listening and drops every connection. Safe to call again. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const entity of this.#entities.values()) for (const m of entity.messages) clearTimeout(m.lockTimer);
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

export function startBroker(options?: BrokerOptions): Promise<Broker> {
  return Broker.start(options);
}
