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
 * their subscriptions through correlation and SQL rules; the `$management` operations (renew-lock,
 * peek, schedule and cancel, receive-by-sequence-number, update-disposition); time to live,
 * duplicate detection and auto-forwarding; sessions; Event Hubs on the same port. Deliveries
 * follow each link's credit exactly, and frames over the announced max-frame-size are refused
 * (docs/broker.md).
 *
 * With a data dir (`dataDir`, `--data-dir`), the Service Bus state is also kept on disk and a
 * change is answered only after its commit (persistence.ts; docs/broker.md, "Durability").
 *
 * The Service Bus state lives in namespace.ts, its management operations in management.ts, Event
 * Hubs in event-hubs.ts; this module is the AMQP wiring.
 */
import { randomBytes } from "node:crypto";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { answerEveryDrain, BATCH_FORMAT, entityPath, FrameGuard, guardedSocket, holdAttach, isWritten, lockKeyOfTag, longValue, rhea, sendHeldAttach, writableRoom, type AmqpMessage, type Described, type RheaConnection, type RheaContainer, type RheaContext, type RheaDelivery, type RheaLink } from "./amqp.js";
import { systemClock, type Clock, type ClockTimer } from "../../runtime/clock.js";
import { BrokerError } from "./errors.js";
import { EventHubs } from "./event-hubs.js";
import { manage, replyTo } from "./management.js";
import { ManagementFailure, type BrokerTopology, type Disposition, type Entity, type Stored } from "./entities.js";
import { Namespace } from "./namespace.js";
import { BrokerStore } from "./persistence.js";
import { closed, opened } from "../../runtime/open-resources.js";

export { BrokerError, BROKER_ERRORS, type BrokerErrorCode } from "./errors.js";
export type { BrokerTopology, EntityOptions, SubscriptionSpec, TopicSpec } from "./entities.js";
export type { RuleSpec, CorrelationFilterSpec } from "./rules.js";
export type { EventHubSpec } from "./event-hubs.js";

export interface BrokerOptions {
  /** 0 picks a free port. @default 5672 */
  port?: number;
  topology?: BrokerTopology;
  /** Create a queue the first time a link names an unknown one. @default false */
  autoCreate?: boolean;
  /** @default 262144 */
  maxMessageSize?: number;
  /**
   * The largest AMQP frame a client may send (the open's max-frame-size); a frame that declares
   * more is refused at once with amqp:connection:framing-error. Messages larger than this travel
   * in several frames. @default 65536
   */
  maxFrameSize?: number;
  /**
   * Also serve the emulator's `GET /health` over HTTP on this port (the emulator uses 5300; 0 picks
   * a free one), for tooling that waits on it. @default off
   */
  healthPort?: number;
  /**
   * Keep queues, subscriptions, sessions and their state, scheduled, deferred and dead-lettered
   * messages and sequence numbers in this directory (created if missing) across restarts: a sent
   * message is acknowledged only once it is on disk (fsync'd). Locks are not kept (docs/broker.md,
   * "Durability"). @default in memory only
   */
  dataDir?: string;
  /**
   * Time-to-live, lock durations, scheduled messages and duplicate windows go by this clock (a
   * `ManualClock` in tests), as does the hold of an attach that waits for a session. @default systemClock
   */
  clock?: Clock;
}

const HEALTHY = JSON.stringify({ status: "healthy", message: "Service is healthy." });

/** A message's body as the sender gave it: a data section's bytes as text, an AMQP value as it is. */
function bodyOf(message: AmqpMessage): unknown {
  const body = message.body as { typecode?: number; content?: unknown } | undefined;
  if (body && typeof body === "object" && !Buffer.isBuffer(body) && body.typecode === 0x75 && Buffer.isBuffer(body.content)) return body.content.toString("utf8");
  return body;
}

const kEntity = Symbol("plugbox.broker.entity");
const kSession = Symbol("plugbox.broker.session");
/** The deliveries a receiver link was sent and has not settled (a Set<Outstanding>). */
const kOutstanding = Symbol("plugbox.broker.outstanding");
/** The receiver links a connection opened (a Set<RheaLink>), released when it goes away. */
const kLinks = Symbol("plugbox.broker.links");
/** A receiver link whose attach is held until a session is available. */
const kWaiting = Symbol("plugbox.broker.waiting");
interface SessionWaiter {
  link: RheaLink;
  timer: ClockTimer;
}
interface Outstanding {
  delivery: RheaDelivery;
  entity: Entity;
  stored: Stored;
  receiveAndDelete: boolean;
  lockKey?: string;
}
const SESSION_FILTER = "com.microsoft:session-filter";
/** .NET ticks (100 ns since 0001-01-01) as the 8 bytes of an AMQP long, as the client reads a session's locked-until. */
function dotNetTicks(date: Date): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigInt64BE(BigInt(date.getTime()) * 10_000n + 621_355_968_000_000_000n);
  return bytes;
}
const MANAGEMENT = "/$management";
const isManagement = (address: string) => address === "$management" || address.endsWith(MANAGEMENT);

export class Broker {
  readonly port: number;
  readonly connectionString: string;
  readonly #server: Server;
  readonly #namespace: Namespace;
  readonly #store: BrokerStore | undefined;
  /** Changes waiting for the next group commit (data dir only; see #durably). */
  #group: Array<{ change: () => void; answer: (error?: unknown) => void }> = [];
  readonly #eventHubs: EventHubs;
  readonly #receivers = new Map<Entity, Set<RheaLink>>();
  readonly #replyLinks = new Map<string, RheaLink>();
  readonly #byDelivery = new WeakMap<RheaDelivery, Outstanding>();
  readonly #sessionWaiters = new Map<Entity, SessionWaiter[]>();
  /** Rotates which receiver gets the odd message when shares tie. */
  #turn = 0;
  readonly #sockets = new Set<Socket>();
  readonly #connections = new Set<RheaConnection>();
  readonly #container: RheaContainer;
  readonly #maxFrameSize: number;
  readonly #maxMessageSize: number;
  readonly #clock: Clock;
  #health: HttpServer | undefined;
  /** The port of `GET /health`, when healthPort was given. */
  healthPort: number | undefined;
  #closed = false;

  private constructor(server: Server, container: RheaContainer, options: BrokerOptions, namespace: Namespace, eventHubs: EventHubs, store: BrokerStore | undefined) {
    opened(this, "broker");
    this.#store = store;
    this.#server = server;
    this.#container = container;
    this.#maxFrameSize = options.maxFrameSize ?? 65_536;
    this.port = (server.address() as AddressInfo).port;
    this.connectionString = `Endpoint=sb://127.0.0.1:${this.port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;`;
    this.#maxMessageSize = options.maxMessageSize ?? 262_144;
    this.#clock = options.clock ?? systemClock;
    this.#namespace = namespace;
    this.#eventHubs = eventHubs;
  }

  static async start(options: BrokerOptions = {}): Promise<Broker> {
    // The topology is read before the port is taken, so a bad file fails without side effects.
    const topology = options.topology ?? {};
    const declared = new Set([...(topology.queues ?? []), ...(topology.topics ?? [])].map((e) => e.name));
    for (const hub of topology.eventHubs ?? []) {
      if (declared.has(hub.name)) throw new BrokerError("BROKER_CONFIG_INVALID", `${JSON.stringify(hub.name)} names both an event hub and a queue or topic; give them different names`);
    }
    let pump: (entity: Entity) => void = () => undefined;
    const store = options.dataDir === undefined ? undefined : BrokerStore.open(options.dataDir);
    let namespace: Namespace;
    try {
      namespace = new Namespace(topology, options.autoCreate ?? false, (entity) => pump(entity), store, options.clock);
    } catch (error) {
      store?.close();
      throw error;
    }
    const eventHubs = new EventHubs(topology.eventHubs ?? [], options.clock);
    const container = rhea.create_container({ id: "plugbox-broker", autoaccept: false, autosettle: false, treat_modified_as_released: false });
    container.sasl_server_mechanisms.enable_anonymous();
    container.sasl_server_mechanisms.enable_plain(() => true);
    let accept: (socket: Socket) => void = (socket) => socket.destroy();
    const server = createServer((socket) => accept(socket));
    server.listen(options.port ?? 5672, "127.0.0.1");
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("listening", resolve);
        server.once("error", (error: NodeJS.ErrnoException) =>
          reject(error.code === "EADDRINUSE" ? new BrokerError("BROKER_PORT_IN_USE", `port ${options.port} is in use; pick another with --port, or --port 0 for a free one`) : error),
        );
      });
    } catch (error) {
      namespace.close();
      store?.close();
      throw error;
    }
    const broker = new Broker(server, container, options, namespace, eventHubs, store);
    accept = (socket) => broker.#accept(socket);
    pump = (entity) => broker.#pump(entity);
    if (options.healthPort !== undefined) {
      try {
        await broker.#serveHealth(options.healthPort);
      } catch (error) {
        await broker.close();
        throw error;
      }
    }
    container.on("sender_open", (c) => broker.#onSenderOpen(c.sender!));
    container.on("receiver_open", (c) => broker.#onReceiverOpen(c.receiver!));
    container.on("message", (c) => broker.#onMessage(c));
    container.on("sendable", (c) => {
      if (broker.#eventHubs.isReader(c.sender!)) broker.#eventHubs.pump(c.sender!);
      else broker.#pump(c.sender![kEntity] as Entity | undefined);
    });
    container.on("sender_draining", (c) => {
      const entity = c.sender![kEntity] as Entity | undefined;
      if (entity) broker.#pump(entity);
      broker.#eventHubs.pump(c.sender!);
      c.sender!.set_drained(true);
    });
    container.on("sender_close", (c) => broker.#onSenderClose(c.sender!));
    for (const outcome of ["accepted", "released", "rejected", "modified"]) container.on(outcome, (c) => broker.#onOutcome(outcome, c));
    container.on("error", () => undefined);
    container.on("connection_error", () => undefined);
    container.on("disconnected", (c) => broker.#onConnectionGone(c.connection!));
    container.on("connection_close", (c) => broker.#onConnectionGone(c.connection!));
    container.on("protocol_error", () => undefined);
    return broker;
  }

  async #serveHealth(port: number): Promise<void> {
    const health = createHttpServer((request, response) => {
      const found = request.method === "GET" && request.url?.split("?")[0] === "/health";
      response.writeHead(found ? 200 : 404, { "content-type": "application/json" });
      response.end(found ? HEALTHY : JSON.stringify({ status: "not found", message: "plugbox broker serves GET /health only" }));
    });
    this.#health = health;
    await new Promise<void>((resolve, reject) => {
      health.once("listening", resolve);
      health.once("error", (error: NodeJS.ErrnoException) =>
        reject(error.code === "EADDRINUSE" ? new BrokerError("BROKER_PORT_IN_USE", `the health port ${port} is in use; pick another with --health-port, or 0 for a free one`) : error),
      );
      health.listen(port, "127.0.0.1");
    });
    this.healthPort = (health.address() as AddressInfo).port;
  }

  /** A client connected: rhea takes the socket, behind the frame guard. */
  #accept(socket: Socket): void {
    socket.setNoDelay(true);
    this.#sockets.add(socket);
    const connection = this.#container.create_connection({ max_frame_size: this.#maxFrameSize });
    const refuse = (declared: number) => {
      connection.close({
        condition: "amqp:connection:framing-error",
        description: `A frame declared ${declared} bytes; this broker takes frames of ${this.#maxFrameSize} bytes at most (the max-frame-size of its open).`,
      });
      // rhea writes the close on its next turn; then the socket ends, whatever the peer still sends.
      setImmediate(() => socket.end());
      setTimeout(() => socket.destroy(), 1_000).unref();
    };
    connection.accept(guardedSocket(socket, new FrameGuard(this.#maxFrameSize), refuse));
    this.#connections.add(connection);
    socket.once("close", () => {
      this.#sockets.delete(socket);
      this.#connections.delete(connection);
      // rhea listens for 'end' and 'error' only; a socket destroyed here would leave its heartbeat timer running.
      connection._disconnected();
      this.#onConnectionGone(connection);
    });
  }

  /** A connection closed or dropped: its receiver links are gone too (rhea reports no detach for them). */
  #onConnectionGone(connection: RheaConnection): void {
    const links = connection[kLinks] as Set<RheaLink> | undefined;
    if (!links) return;
    connection[kLinks] = undefined;
    for (const link of links) this.#onSenderClose(link);
  }

  #prepareAttach(link: RheaLink): void {
    link.local.attach.source = link.remote.attach.source;
    link.local.attach.target = link.remote.attach.target;
    link.local.attach.max_message_size = this.#maxMessageSize;
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
    if (this.#eventHubs.owns(path)) {
      const problem = this.#eventHubs.attachReader(link, path);
      if (problem) link.close({ condition: "amqp:not-found", description: problem });
      return;
    }
    const filter = link.remote.attach.source?.filter;
    const sessionful = filter !== undefined && filter !== null && SESSION_FILTER in filter;
    const entity = this.#namespace.entity(path, { requiresSession: sessionful });
    if (!entity) return link.close({ condition: "amqp:not-found", description: `The messaging entity '${path}' could not be found.` });
    if (sessionful !== (entity.options.requiresSession ?? false)) {
      return link.close({
        condition: "amqp:not-allowed",
        description: sessionful ? `${path} is not session-enabled: receive without a session, or create it with RequiresSession` : `${path} requires sessions: receive with acceptSession() or acceptNextSession()`,
      });
    }
    if (sessionful && typeof filter![SESSION_FILTER] !== "string" && this.#namespace.availableSession(entity) === undefined) {
      return this.#waitForSession(link, entity);
    }
    if (sessionful && !this.#lockSession(link, entity, filter![SESSION_FILTER])) return;
    this.#addReceiver(link, entity);
  }

  #addReceiver(link: RheaLink, entity: Entity): void {
    link[kEntity] = entity;
    link[kOutstanding] = new Set<Outstanding>();
    answerEveryDrain(link);
    let links = this.#receivers.get(entity);
    if (!links) this.#receivers.set(entity, (links = new Set()));
    links.add(link);
  }

  /**
   * "Next available session" with none available: as Service Bus does, the attach is answered only
   * once a session has messages, or with com.microsoft:timeout when the client's
   * `com.microsoft:timeout` (its operation timeout) runs out.
   */
  #waitForSession(link: RheaLink, entity: Entity): void {
    holdAttach(link);
    const requested = longValue(link.remote.attach.properties?.["com.microsoft:timeout"]);
    const timeoutMs = Number.isFinite(requested) && requested >= 0 ? requested : 60_000;
    const waiter: SessionWaiter = {
      link,
      timer: this.#clock.setTimeout(() => {
        this.#stopWaiting(entity, waiter);
        sendHeldAttach(link);
        link.close({ condition: "com.microsoft:timeout", description: `No unlocked session with messages became available in ${entity.path} within ${timeoutMs} ms.` });
      }, timeoutMs),
    };
    let waiters = this.#sessionWaiters.get(entity);
    if (!waiters) this.#sessionWaiters.set(entity, (waiters = []));
    waiters.push(waiter);
    link[kWaiting] = { entity, waiter };
  }

  #stopWaiting(entity: Entity, waiter: SessionWaiter): void {
    this.#clock.clearTimeout(waiter.timer);
    const waiters = this.#sessionWaiters.get(entity) ?? [];
    waiters.splice(waiters.indexOf(waiter) >>> 0, 1);
    waiter.link[kWaiting] = undefined;
  }

  /** Gives sessions that have messages to the receivers waiting for one, first come first served. */
  #serveSessionWaiters(entity: Entity): void {
    const waiters = this.#sessionWaiters.get(entity);
    while (waiters && waiters.length > 0) {
      const sessionId = this.#namespace.availableSession(entity);
      if (sessionId === undefined) return;
      const waiter = waiters[0]!;
      this.#stopWaiting(entity, waiter);
      sendHeldAttach(waiter.link);
      if (this.#lockSession(waiter.link, entity, sessionId)) this.#addReceiver(waiter.link, entity);
    }
  }

  /** Locks the session a receiver asked for (a string) or the next available one (null); false when it cannot. */
  #lockSession(link: RheaLink, entity: Entity, requested: unknown): boolean {
    const sessionId = typeof requested === "string" ? requested : this.#namespace.availableSession(entity);
    if (sessionId === undefined) {
      link.close({ condition: "com.microsoft:timeout", description: `No unlocked session with messages is available in ${entity.path}.` });
      return false;
    }
    let lockedUntil: Date;
    try {
      lockedUntil = this.#namespace.lockSession(entity, sessionId, link, () =>
        link.close({ condition: "com.microsoft:session-lock-lost", description: `The lock on session '${sessionId}' of ${entity.path} ran out.` }),
      );
    } catch (error) {
      if (!(error instanceof ManagementFailure)) throw error;
      link.close({ condition: error.condition, description: error.message });
      return false;
    }
    link[kSession] = sessionId;
    // The client checks that the attach names the session it locked.
    link.set_source({ address: link.remote.attach.source?.address, filter: { [SESSION_FILTER]: sessionId } });
    link.local.attach.properties = { ...(link.remote.attach.properties ?? {}), "com.microsoft:locked-until-utc": rhea.types.wrap_long(dotNetTicks(lockedUntil)) };
    return true;
  }

  #onSenderClose(link: RheaLink): void {
    const waiting = link[kWaiting] as { entity: Entity; waiter: SessionWaiter } | undefined;
    if (waiting) this.#stopWaiting(waiting.entity, waiting.waiter);
    const entity = link[kEntity] as Entity | undefined;
    if (entity) this.#receivers.get(entity)?.delete(link);
    this.#forgetDeliveries(link);
    if (entity && link[kSession] !== undefined) this.#namespace.releaseSession(entity, link[kSession] as string, link);
    this.#eventHubs.detach(link);
    for (const [key, reply] of this.#replyLinks) if (reply === link) this.#replyLinks.delete(key);
  }

  /** A client sender attached: our receiver, into a queue or topic (or $cbs, $management). */
  #onReceiverOpen(link: RheaLink): void {
    this.#prepareAttach(link);
    const target = entityPath(link.remote.attach.target?.address);
    if (target === "$cbs" || isManagement(target)) return;
    if (this.#eventHubs.owns(target)) {
      if (!this.#eventHubs.isSendTarget(target)) link.close({ condition: "amqp:not-found", description: `The messaging entity '${target}' could not be found.` });
      return;
    }
    if (!this.#namespace.isTarget(target)) link.close({ condition: "amqp:not-found", description: `The messaging entity '${target}' could not be found.` });
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
      const reply = this.#eventHubs.read(request) ?? this.#namespace.atomically(() => manage(this.#namespace, target.slice(0, -MANAGEMENT.length), request));
      this.#reply(request, replyTo(request, reply));
      return delivery.accept();
    }
    if (this.#tooLarge(context.message!)) {
      return delivery.reject({ condition: "amqp:link:message-size-exceeded", description: `The received message exceeds the limit for the link: ${this.#maxMessageSize} bytes.` });
    }
    let messages: AmqpMessage[];
    try {
      messages = delivery.format === BATCH_FORMAT ? unpackBatch(context.message as Buffer) : [context.message as AmqpMessage];
    } catch (error) {
      return delivery.reject({ condition: "amqp:decode-error", description: `The batch holds a message that cannot be decoded: ${(error as Error).message}` });
    }
    if (this.#eventHubs.isSendTarget(target)) {
      this.#eventHubs.send(target, messages);
      return delivery.accept();
    }
    this.#durably(
      () => this.#namespace.send(target, messages),
      (error) => {
        if (error === undefined) return delivery.accept();
        const failure = error instanceof ManagementFailure ? error : new ManagementFailure(500, "amqp:internal-error", (error as Error).message);
        delivery.reject({ condition: failure.condition, description: failure.message });
      },
    );
  }

  /**
   * Runs a change to the namespace, then answers the client. In memory, both at once. With a data
   * dir, the changes that arrive in one turn of the event loop (every transfer and settlement read
   * from the sockets meanwhile) are committed together, one fsync for all, and each is answered
   * only after that commit: a group commit. A change that fails is rolled back alone (a savepoint);
   * a commit that fails answers every change of the group with its error.
   */
  #durably(change: () => void, answer: (error?: unknown) => void): void {
    if (!this.#store) {
      let failure: unknown;
      try {
        change();
      } catch (error) {
        failure = error ?? new Error("failed");
      }
      return answer(failure);
    }
    this.#group.push({ change, answer });
    if (this.#group.length === 1) setImmediate(() => this.#commitGroup());
  }

  #commitGroup(): void {
    const group = this.#group;
    this.#group = [];
    const failures: unknown[] = [];
    try {
      this.#namespace.atomically(() => {
        for (const { change } of group) {
          try {
            this.#namespace.atomically(change);
            failures.push(undefined);
          } catch (error) {
            if (error instanceof BrokerError && error.code === "BROKER_STORE_FAILED") throw error;
            failures.push(error ?? new Error("failed"));
          }
        }
      });
    } catch (error) {
      for (const { answer } of group) answer(error);
      return;
    }
    group.forEach(({ answer }, i) => answer(failures[i]));
  }

  /**
   * Whether a transfer is over the size the attach announced. rhea hands over a decoded message, so
   * one is encoded again to be measured, but only when its body alone comes near the limit.
   */
  #tooLarge(message: AmqpMessage | Buffer): boolean {
    if (Buffer.isBuffer(message)) return message.length > this.#maxMessageSize;
    const body = message.body as { content?: unknown } | string | Buffer | undefined;
    const content = typeof body === "object" && body !== null && !Buffer.isBuffer(body) ? body.content : body;
    const rough = typeof content === "string" ? content.length : Buffer.isBuffer(content) ? content.length : 0;
    return rough > this.#maxMessageSize / 2 && rhea.message.encode(message).length > this.#maxMessageSize;
  }

  /**
   * Hands ready messages to the entity's receivers, never more than each link's credit allows, so a
   * message is locked only when its transfer is written (see writableRoom). Competing receivers of
   * a queue or subscription share the ready messages in proportion to their room; a session
   * receiver takes its session's messages only.
   */
  #pump(entity: Entity | undefined): void {
    if (!entity || entity.ready.size === 0) return;
    // With a data dir, what one pass locks or takes is written in one commit.
    this.#namespace.atomically(() => this.#pumpNow(entity));
  }

  #pumpNow(entity: Entity): void {
    const links = [...(this.#receivers.get(entity) ?? [])].filter((link) => !link.is_closed());
    if (entity.options.requiresSession) {
      this.#serveSessionWaiters(entity);
      for (const link of [...(this.#receivers.get(entity) ?? [])].filter((l) => !l.is_closed())) {
        const sessionId = link[kSession] as string;
        for (let room = this.#room(link); room > 0; room--) {
          const stored = this.#namespace.next(entity, sessionId);
          if (!stored) break;
          this.#deliver(link, entity, stored);
        }
      }
      return;
    }
    const rooms = links.map((link) => this.#room(link));
    const total = rooms.reduce((a, b) => a + b, 0);
    const taken: Stored[] = [];
    while (taken.length < total) {
      const stored = this.#namespace.next(entity);
      if (!stored) break;
      taken.push(stored);
    }
    if (taken.length === 0) return;
    const shares = proportionalShares(rooms, taken.length, this.#turn++);
    // Interleaved, so each receiver's share follows the queue's order.
    let i = 0;
    while (i < taken.length) {
      for (let l = 0; l < links.length && i < taken.length; l++) {
        if (shares[l]! > 0) {
          shares[l]!--;
          this.#deliver(links[l]!, entity, taken[i++]!);
        }
      }
    }
  }

  /** How many more messages a receiver link can take now. */
  #room(link: RheaLink): number {
    const outstanding = link[kOutstanding] as Set<Outstanding>;
    let unwritten = 0;
    for (const entry of outstanding) {
      if (!isWritten(link, entry.delivery)) unwritten++;
      else if (entry.receiveAndDelete) outstanding.delete(entry);
    }
    return writableRoom(link, unwritten);
  }

  #deliver(link: RheaLink, entity: Entity, stored: Stored): void {
    const tag = randomBytes(16);
    const receiveAndDelete = link.remote.attach.snd_settle_mode === 1;
    let lockKey: string | undefined;
    if (receiveAndDelete) this.#namespace.take(entity, stored);
    else this.#namespace.lock(entity, stored, (lockKey = lockKeyOfTag(tag)));
    const delivery = link.send(this.#namespace.outgoing(stored), tag);
    const entry: Outstanding = { delivery, entity, stored, receiveAndDelete, ...(lockKey ? { lockKey } : {}) };
    (link[kOutstanding] as Set<Outstanding>).add(entry);
    this.#byDelivery.set(delivery, entry);
  }

  /**
   * A receiver link went away. A message whose transfer was never written goes back as it was (no
   * lock, delivery count unchanged). One the client did receive stays locked until its lock runs
   * out, as a prefetched message does in Service Bus ("If the lock silently expires in the prefetch
   * buffer, the message is treated as abandoned and is again made available for retrieval",
   * learn.microsoft.com/azure/service-bus-messaging/service-bus-prefetch), and can still be settled
   * through `$management` with its lock token meanwhile, which is what @azure/service-bus does for a
   * message whose receiver is closed. A session's messages follow the session lock instead
   * (Namespace.abandonSession).
   */
  #forgetDeliveries(link: RheaLink): void {
    const outstanding = link[kOutstanding] as Set<Outstanding> | undefined;
    if (!outstanding) return;
    this.#namespace.atomically(() => {
      for (const entry of outstanding) {
        this.#byDelivery.delete(entry.delivery);
        if (isWritten(link, entry.delivery)) continue;
        if (entry.receiveAndDelete) this.#namespace.restore(entry.entity, entry.stored);
        else this.#namespace.release(entry.lockKey!);
      }
    });
    outstanding.clear();
  }

  /** The client settled a peek-lock delivery: act on it, and always answer with a settled disposition. */
  #onOutcome(outcome: string, context: RheaContext): void {
    if (context.sender && this.#eventHubs.isReader(context.sender)) return;
    const delivery = context.delivery!;
    const entry = this.#byDelivery.get(delivery);
    if (entry) {
      this.#byDelivery.delete(delivery);
      (context.sender![kOutstanding] as Set<Outstanding> | undefined)?.delete(entry);
    }
    const state = delivery.remote_state ?? {};
    const settle = (described: Described) => delivery.update(true, described.described());
    const disposition: Disposition =
      outcome === "accepted"
        ? { kind: "complete" }
        : outcome === "rejected"
          ? {
              kind: "deadLetter",
              reason: String(state.error?.info?.DeadLetterReason ?? ""),
              description: String(state.error?.info?.DeadLetterErrorDescription ?? ""),
            }
          : outcome === "modified" && state.undeliverable_here
            ? { kind: "defer", properties: state.message_annotations }
            : { kind: "abandon", properties: state.message_annotations };
    this.#durably(
      () => this.#namespace.settle(lockKeyOfTag(delivery.tag), disposition),
      (error) => {
        // The lock is gone (expired, or settled already): the client's promise fails with MessageLockLost.
        if (error instanceof ManagementFailure) return settle(rhea.message.rejected({ error: { condition: error.condition, description: error.message } }));
        // The data directory refused the write (BROKER_STORE_FAILED): the settlement is not acknowledged.
        if (error instanceof BrokerError) return settle(rhea.message.rejected({ error: { condition: "amqp:internal-error", description: error.message } }));
        if (error !== undefined) throw error;
        if (disposition.kind === "defer") settle(rhea.message.modified({ undeliverable_here: true }));
        else if (disposition.kind === "abandon") settle(rhea.message.modified({ delivery_failed: true }));
        // A dead-letter is settled as accepted: a settled disposition carrying an error would fail the client's deadLetterMessage().
        else settle(rhea.message.accepted());
      },
    );
  }

  /** Entities and their message counts (dead-letter queues included). */
  entities(): Array<{ path: string; active: number; locked: number; deferred: number; scheduled: number }> {
    return this.#namespace.counts();
  }

  /**
   * The messages a queue, subscription or dead-letter queue (`<path>/$DeadLetterQueue`) holds, oldest
   * first, read without locking them: for tests that assert on what arrived. A data section's body
   * is its UTF-8 text as on the wire (the JavaScript clients write a string body as a JSON string literal).
   */
  messages(path: string): Array<{ sequence: number; state: string; deliveryCount: number; enqueuedAt: Date; messageId: unknown; body: unknown; contentType?: string; applicationProperties: Record<string, unknown> }> {
    const contents = this.#namespace.contents(path);
    if (!contents) throw new BrokerError("BROKER_ENTITY_NOT_FOUND", `the broker has no queue or subscription ${JSON.stringify(path)}`);
    return contents.map(({ message, ...rest }) => ({
      ...rest,
      messageId: message.message_id,
      body: bodyOf(message),
      ...(message.content_type ? { contentType: message.content_type } : {}),
      applicationProperties: { ...(message.application_properties ?? {}) },
    }));
  }

  /** Event hub partitions and the events each holds. */
  eventHubPartitions(): Array<{ path: string; events: number }> {
    return this.#eventHubs.counts();
  }

  /** Stops listening and drops every connection. Safe to call again. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#namespace.close();
    this.#store?.close();
    for (const waiters of this.#sessionWaiters.values()) for (const { timer } of waiters) this.#clock.clearTimeout(timer);
    for (const connection of this.#connections) {
      if (!connection.is_closed()) connection.close({ condition: "amqp:connection:forced", description: "plugbox broker is shutting down." });
    }
    // The close frames are written on rhea's next turn; then the sockets go.
    await new Promise((resolve) => setImmediate(resolve));
    for (const socket of this.#sockets) {
      socket.end();
      socket.destroy();
    }
    const health = this.#health;
    if (health) {
      health.closeAllConnections();
      await new Promise<void>((resolve) => health.close(() => resolve()));
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    closed(this);
  }
}

export function startBroker(options?: BrokerOptions): Promise<Broker> {
  return Broker.start(options);
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

/**
 * Splits `count` messages among receivers in proportion to their room (largest remainder), never
 * more than a receiver's room; `turn` rotates who gets a tied remainder.
 */
export function proportionalShares(rooms: number[], count: number, turn = 0): number[] {
  const total = rooms.reduce((a, b) => a + b, 0);
  if (total === 0) return rooms.map(() => 0);
  const n = Math.min(count, total);
  const exact = rooms.map((room) => (room * n) / total);
  const shares = exact.map(Math.floor);
  let left = n - shares.reduce((a, b) => a + b, 0);
  const order = rooms.map((_, i) => (i + turn) % rooms.length).sort((a, b) => exact[b]! - shares[b]! - (exact[a]! - shares[a]!));
  for (const i of order) {
    if (left === 0) break;
    if (shares[i]! < rooms[i]!) {
      shares[i]!++;
      left--;
    }
  }
  return shares;
}
