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
 * Hubs in event-hubs.ts; the AMQP links in links.ts, deliveries to receivers in deliveries.ts,
 * session receivers in session-receivers.ts and the group commit in group-commit.ts. This module
 * starts and stops the broker and answers its inspection methods.
 */
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { FrameGuard, guardedSocket, rhea, type AmqpMessage, type RheaConnection, type RheaContainer } from "./amqp.js";
import { systemClock, type Clock } from "../../runtime/clock.js";
import { Deliveries } from "./deliveries.js";
import type { BrokerTopology, Entity } from "./entities.js";
import { BrokerError } from "./errors.js";
import { EventHubs } from "./event-hubs.js";
import { GroupCommit } from "./group-commit.js";
import { Links } from "./links.js";
import { Namespace } from "./namespace.js";
import { BrokerStore } from "./persistence.js";
import { SessionReceivers } from "./session-receivers.js";
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

export class Broker {
  readonly port: number;
  readonly connectionString: string;
  readonly #server: Server;
  readonly #namespace: Namespace;
  readonly #store: BrokerStore | undefined;
  readonly #eventHubs: EventHubs;
  readonly #deliveries: Deliveries;
  readonly #sessionReceivers: SessionReceivers;
  readonly #links: Links;
  readonly #sockets = new Set<Socket>();
  readonly #connections = new Set<RheaConnection>();
  readonly #container: RheaContainer;
  readonly #maxFrameSize: number;
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
    this.#clock = options.clock ?? systemClock;
    this.#namespace = namespace;
    this.#eventHubs = eventHubs;
    this.#sessionReceivers = new SessionReceivers(namespace, this.#clock, (link, entity) => this.#deliveries.addReceiver(link, entity));
    const commits = new GroupCommit(namespace, store !== undefined);
    this.#deliveries = new Deliveries(namespace, this.#sessionReceivers, commits);
    this.#links = new Links(namespace, eventHubs, this.#deliveries, this.#sessionReceivers, commits, options.maxMessageSize ?? 262_144);
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
    pump = (entity) => broker.#deliveries.pump(entity);
    if (options.healthPort !== undefined) {
      try {
        await broker.#serveHealth(options.healthPort);
      } catch (error) {
        await broker.close();
        throw error;
      }
    }
    broker.#links.listen(container);
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
      this.#links.onConnectionGone(connection);
    });
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
    this.#sessionReceivers.close();
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
