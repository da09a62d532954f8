/**
 * The parts of rhea the broker uses, typed: rhea is CommonJS and its typings do not cover the
 * server side. Also the few AMQP value helpers the Service Bus wire format needs.
 */
import { createRequire } from "node:module";
import type { Server, Socket } from "node:net";

const require = createRequire(import.meta.url);

export interface Described {
  described(): unknown;
}
/** A connection as rhea's container makes it; `accept` takes the server side of a socket. */
export interface RheaConnection {
  accept(socket: unknown): RheaConnection;
  close(error?: { condition: string; description: string }): void;
  is_closed(): boolean;
  _disconnected(): void;
  [key: symbol]: unknown;
}
export interface RheaContainer {
  create_connection(options: Record<string, unknown>): RheaConnection;
  sasl_server_mechanisms: { enable_anonymous(): void; enable_plain(check: (user: string, password: string) => boolean): void };
  on(event: string, handler: (context: RheaContext) => void): void;
  listen(options: Record<string, unknown>): Server;
}
export interface AmqpMessage {
  body?: unknown;
  message_id?: unknown;
  correlation_id?: unknown;
  reply_to?: string;
  to?: string;
  subject?: string;
  group_id?: string;
  reply_to_group_id?: string;
  content_type?: string;
  ttl?: number;
  application_properties?: Record<string, unknown>;
  message_annotations?: Record<string, unknown>;
  delivery_count?: number;
  [key: string]: unknown;
}
/** The answer to a management request ($management of an entity or of an event hub), before it is encoded. */
export interface ManagementReply {
  status: number;
  body: unknown;
  condition?: string;
  description?: string;
}
/** rhea's per-session outgoing queue (internal fields, read to know what was written; see writableRoom). */
interface RheaOutgoing {
  next_delivery_id: number;
  next_pending_delivery: number;
  available(): number;
  transfer_window(): number;
}
/** A reply to an AMQP management request ($management): a status, a body, and for a failure its condition. */
export interface ManagementReply {
  status: number;
  body: unknown;
  condition?: string;
  description?: string;
}

export interface RheaLink {
  name: string;
  credit: number;
  session: { outgoing: RheaOutgoing };
  connection: { _register(): void };
  state: { open_requests: number };
  _draining?: boolean;
  _get_drain(): boolean;
  delivery_count: number;
  remote: {
    attach: {
      source?: { address?: string; filter?: Record<string, unknown> };
      target?: { address?: string };
      snd_settle_mode?: number;
      rcv_settle_mode?: number;
      properties?: Record<string, unknown>;
    };
  };
  local: { attach: Record<string, unknown> };
  /** Sets our attach's source, encoded as a terminus (plain assignment to local.attach.source is not). */
  set_source(fields: Record<string, unknown>): void;
  sendable(): boolean;
  send(message: AmqpMessage, tag?: Buffer, format?: number): RheaDelivery;
  set_drained(drained: boolean): void;
  is_closed(): boolean;
  close(error?: { condition: string; description: string }): void;
  [key: symbol]: unknown;
}
export interface RheaDelivery {
  id: number;
  tag: Buffer;
  format?: number;
  remote_state?: {
    delivery_failed?: boolean;
    undeliverable_here?: boolean;
    message_annotations?: Record<string, unknown>;
    error?: { condition?: string; info?: Record<string, unknown> };
    info?: Record<string, unknown>;
  };
  accept(): void;
  reject(error?: { condition: string; description: string }): void;
  update(settled: boolean, state?: unknown): void;
}
export interface RheaContext {
  connection?: RheaConnection;
  sender?: RheaLink;
  receiver?: RheaLink;
  message?: AmqpMessage | Buffer;
  delivery?: RheaDelivery;
}

export const rhea = require("rhea") as {
  create_container(options?: Record<string, unknown>): RheaContainer;
  message: {
    encode(message: AmqpMessage): Buffer;
    decode(buffer: Buffer): AmqpMessage;
    accepted(): Described;
    released(): Described;
    rejected(state?: unknown): Described;
    modified(state?: unknown): Described;
  };
  types: {
    wrap_long(n: number | Buffer): unknown;
    wrap_uuid(bytes: Buffer): unknown;
    wrap_array(values: unknown[], code: number, descriptor?: unknown): unknown;
    wrap_map(value: Record<string, unknown>): unknown;
  };
};

/** The message format of a batch: each data section is one whole encoded message. */
export const BATCH_FORMAT = 0x80013700;

/**
 * A lock token as the client sends it back to `$management`: the client reads the 16-byte delivery
 * tag as a .NET GUID, swapping bytes 0–3, 4–5 and 6–7 (`reorderLockToken` in @azure/service-bus).
 */
export function lockKeyOfTag(tag: Buffer): string {
  const t = tag;
  return Buffer.from([t[3]!, t[2]!, t[1]!, t[0]!, t[5]!, t[4]!, t[7]!, t[6]!, ...t.subarray(8, 16)]).toString("hex");
}

/** An AMQP long as rhea decodes it: a number, or 8 big-endian bytes past 2^53. */
export function longValue(value: unknown): number {
  if (typeof value === "number") return value;
  if (Buffer.isBuffer(value) && value.length === 8) return Number(value.readBigInt64BE(0));
  if (value && typeof value === "object" && "value" in value) return longValue((value as { value: unknown }).value);
  return Number.NaN;
}

/** A uuid as rhea decodes it (16 bytes) or as a string, in hex without dashes. */
export function uuidKey(value: unknown): string {
  if (Buffer.isBuffer(value)) return value.toString("hex");
  if (typeof value === "string") return value.replace(/-/g, "").toLowerCase();
  if (value && typeof value === "object" && "value" in value) return uuidKey((value as { value: unknown }).value);
  return "";
}

/** The entity path of a link address: `sb://host:port/queue` → `queue`; `Subscriptions` keeps its case. */
export function entityPath(address: string | undefined): string {
  return (address ?? "").replace(/^(amqps?|sb):\/\/[^/]+\//i, "").replace(/^\//, "");
}

// Flow control. rhea lowers a link's credit when it WRITES a transfer, not when send() is called,
// so `sendable()` stays true while deliveries pile up unwritten in the session's buffer. The broker
// therefore counts what it queued but rhea has not written yet, and queues no more than can be
// written at once: within the link's credit, the peer's session window and rhea's buffer.

/** Whether rhea has written a delivery's transfer to the socket (delivery ids grow per session). */
export function isWritten(link: RheaLink, delivery: RheaDelivery): boolean {
  return delivery.id < link.session.outgoing.next_pending_delivery;
}

/** How many more deliveries the link can write now, given how many of its own are still unwritten. */
export function writableRoom(link: RheaLink, unwrittenOnLink: number): number {
  const outgoing = link.session.outgoing;
  const unwrittenInSession = outgoing.next_delivery_id - outgoing.next_pending_delivery;
  return Math.max(0, Math.min(link.credit - unwrittenOnLink, outgoing.transfer_window() - unwrittenInSession, outgoing.available()));
}

/**
 * Answers every drain request with a flow that says drained, also when the credit is already used
 * up: rhea 3.0 sets the drain flag only while credit is left, and the Service Bus client then
 * waits for an answer that never comes and closes its link.
 */
export function answerEveryDrain(link: RheaLink): void {
  link._get_drain = function (this: RheaLink) {
    if (!this._draining) return false;
    this._draining = false;
    this.delivery_count += this.credit;
    this.credit = 0;
    return true;
  };
}

/** Holds back the attach rhea would send in reply (Service Bus answers "next session" only once one is free). */
export function holdAttach(link: RheaLink): void {
  if (link.state.open_requests > 0) link.state.open_requests--;
}

/** Sends a held attach. */
export function sendHeldAttach(link: RheaLink): void {
  link.state.open_requests++;
  link.connection._register();
}

// Frame sizes. rhea reads a frame's declared size and buffers until that many bytes arrived, with
// no limit: a peer that declares a 4 GB frame makes the broker hold everything it streams. The
// guard below sits between the socket and rhea, follows the frame boundaries, and stops at the
// first frame whose declared size is over the maximum the broker announced in its open (or under
// the 8 bytes of a frame header), before rhea buffers any of it.

const PROTOCOL_HEADER = 0x414d5150; // "AMQP", which starts the protocol headers (8 bytes) between the layers

/** Follows frame boundaries in a byte stream and says how much of each chunk may go on to rhea. */
export class FrameGuard {
  /** Bytes still to come of the frame (or protocol header) being passed on. */
  #remaining = 0;
  /** The bytes read so far of the next frame's 4-byte size (a chunk may split it). */
  #size = Buffer.alloc(0);
  /** The declared size of the frame that was refused; nothing more passes once it is set. */
  refused: number | undefined;
  constructor(private readonly maxFrameSize: number) {}

  pass(chunk: Buffer): Buffer {
    if (this.refused !== undefined) return chunk.subarray(0, 0);
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#remaining > 0) {
        const step = Math.min(this.#remaining, chunk.length - offset);
        offset += step;
        this.#remaining -= step;
        continue;
      }
      const sizeStart = offset;
      const take = Math.min(4 - this.#size.length, chunk.length - offset);
      this.#size = Buffer.concat([this.#size, chunk.subarray(offset, offset + take)]);
      offset += take;
      if (this.#size.length < 4) break;
      const size = this.#size.readUInt32BE(0);
      this.#size = Buffer.alloc(0);
      if (size === PROTOCOL_HEADER) this.#remaining = 4;
      else if (size < 8 || size > this.maxFrameSize) {
        this.refused = size;
        return chunk.subarray(0, sizeStart);
      } else this.#remaining = size - 4;
    }
    return chunk;
  }
}

/**
 * The socket as rhea sees it, with the frame guard between: data passes only up to a refused
 * frame, and then `refuse` is called once with that frame's declared size.
 */
export function guardedSocket(socket: Socket, guard: FrameGuard, refuse: (declaredSize: number) => void): unknown {
  return {
    on(event: string, handler: (...args: unknown[]) => void) {
      if (event !== "data") return socket.on(event, handler);
      return socket.on("data", (chunk: Buffer) => {
        if (guard.refused !== undefined) return;
        const passed = guard.pass(chunk);
        if (passed.length > 0) handler(passed);
        if (guard.refused !== undefined) refuse(guard.refused);
      });
    },
    write: (data: Buffer) => socket.write(data),
    end: () => socket.end(),
    destroy: () => socket.destroy(),
    setNoDelay: (on: boolean) => socket.setNoDelay(on),
    removeAllListeners: (event: string) => socket.removeAllListeners(event),
    get remoteAddress() {
      return socket.remoteAddress;
    },
    get remotePort() {
      return socket.remotePort;
    },
    get localAddress() {
      return socket.localAddress;
    },
    get localPort() {
      return socket.localPort;
    },
  };
}
