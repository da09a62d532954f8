/**
 * Event Hubs on the same local broker, for the real @azure/event-hubs client: a hub is a set of
 * partitions, each an append-only log in memory. Senders attach to `<hub>` (the broker picks the
 * partition: by partition key, else round robin) or `<hub>/Partitions/<n>`; receivers attach to
 * `<hub>/ConsumerGroups/<group>/Partitions/<n>` with the client's selector filter
 * (`amqp.annotation.x-opt-offset > '-1'`, `…x-opt-sequence-number >= '5'`, `…x-opt-enqueued-time > 'ms'`)
 * and read from there on, pre-settled. The namespace `$management` answers the client's READ of
 * the hub's and a partition's properties. Offsets are the sequence numbers, as strings.
 */
import { BrokerError } from "./errors.js";
import { rhea, type AmqpMessage, type ManagementReply, type RheaLink } from "./amqp.js";

export interface EventHubSpec {
  name: string;
  /** @default 1 */
  partitionCount?: number;
  /** Consumer groups besides `$Default`. */
  consumerGroups?: string[];
}

interface Event {
  message: AmqpMessage;
  sequence: number;
  enqueuedAt: Date;
}

interface Partition {
  readonly id: string;
  readonly events: Event[];
  readonly readers: Set<RheaLink>;
}

interface Hub {
  readonly name: string;
  readonly createdAt: Date;
  readonly partitions: Partition[];
  readonly consumerGroups: Set<string>;
  nextPartition: number;
}

const kCursor = Symbol("plugbox.broker.eventHubCursor");
interface Cursor {
  partition: Partition;
  /** Index of the next event to send. */
  next: number;
}

const RECEIVE_ADDRESS = /^([^/]+)\/ConsumerGroups\/([^/]+)\/Partitions\/([^/]+)$/i;
const SEND_ADDRESS = /^([^/]+)(?:\/Partitions\/([^/]+))?$/i;
const POSITION = /amqp\.annotation\.x-opt-(offset|sequence-number|enqueued-time)\s*(>=|>)\s*'([^']*)'/i;

export class EventHubs {
  readonly #hubs = new Map<string, Hub>();

  constructor(specs: EventHubSpec[]) {
    for (const spec of specs) {
      const count = spec.partitionCount ?? 1;
      if (!spec.name || !/^[A-Za-z0-9][\w.-]*$/.test(spec.name)) throw new BrokerError("BROKER_CONFIG_INVALID", `${JSON.stringify(spec.name)} is not an event hub name`);
      if (!Number.isInteger(count) || count < 1 || count > 32) throw new BrokerError("BROKER_CONFIG_INVALID", `event hub ${spec.name}: the partition count must be from 1 to 32, got ${JSON.stringify(spec.partitionCount)}`);
      if (this.#hubs.has(spec.name.toLowerCase())) throw new BrokerError("BROKER_CONFIG_INVALID", `event hub ${spec.name} is declared twice`);
      this.#hubs.set(spec.name.toLowerCase(), {
        name: spec.name,
        createdAt: new Date(),
        partitions: Array.from({ length: count }, (_, i) => ({ id: String(i), events: [], readers: new Set() })),
        consumerGroups: new Set(["$default", ...(spec.consumerGroups ?? []).map((g) => g.toLowerCase())]),
        nextPartition: 0,
      });
    }
  }

  /** The hub and partition a sender's target names, or undefined when it is not an event hub. */
  #sendTarget(path: string): { hub: Hub; partition?: Partition } | undefined {
    const match = SEND_ADDRESS.exec(path);
    const hub = match ? this.#hubs.get(match[1]!.toLowerCase()) : undefined;
    if (!hub) return undefined;
    if (match![2] === undefined) return { hub };
    const partition = hub.partitions.find((p) => p.id === match![2]);
    return partition ? { hub, partition } : undefined;
  }

  isSendTarget(path: string): boolean {
    return this.#sendTarget(path) !== undefined;
  }

  /** Whether a path is under a declared hub (so an unknown partition or group is refused, not auto-created). */
  owns(path: string): boolean {
    return this.#hubs.has(path.split("/")[0]!.toLowerCase());
  }

  send(path: string, messages: AmqpMessage[]): void {
    const target = this.#sendTarget(path)!;
    for (const message of messages) {
      const key = message.message_annotations?.["x-opt-partition-key"];
      const partition = target.partition ?? (typeof key === "string" ? target.hub.partitions[hash(key) % target.hub.partitions.length]! : target.hub.partitions[target.hub.nextPartition++ % target.hub.partitions.length]!);
      partition.events.push({ message, sequence: partition.events.length, enqueuedAt: new Date() });
      for (const reader of partition.readers) this.pump(reader);
    }
  }

  /** Attaches a receiver at the position its filter names; returns an error description when it cannot. */
  attachReader(link: RheaLink, path: string): string | undefined {
    const match = RECEIVE_ADDRESS.exec(path);
    const hub = match ? this.#hubs.get(match[1]!.toLowerCase()) : undefined;
    if (!hub) return `The messaging entity '${path}' could not be found.`;
    if (!hub.consumerGroups.has(match![2]!.toLowerCase())) return `The consumer group '${match![2]}' of event hub '${hub.name}' could not be found.`;
    const partition = hub.partitions.find((p) => p.id === match![3]);
    if (!partition) return `The partition '${match![3]}' of event hub '${hub.name}' could not be found; it has ${hub.partitions.length}.`;
    link[kCursor] = { partition, next: startIndex(partition, link.remote.attach.source?.filter) } satisfies Cursor;
    // Events are sent settled: the client accepts them, and there is nothing to redeliver.
    link.local.attach.snd_settle_mode = 1;
    partition.readers.add(link);
    return undefined;
  }

  isReader(link: RheaLink): boolean {
    return link[kCursor] !== undefined;
  }

  detach(link: RheaLink): void {
    (link[kCursor] as Cursor | undefined)?.partition.readers.delete(link);
  }

  pump(link: RheaLink): void {
    const cursor = link[kCursor] as Cursor | undefined;
    if (!cursor || link.is_closed()) return;
    while (cursor.next < cursor.partition.events.length && link.sendable()) {
      const event = cursor.partition.events[cursor.next++]!;
      link.send({
        ...event.message,
        message_annotations: {
          ...(event.message.message_annotations ?? {}),
          "x-opt-sequence-number": rhea.types.wrap_long(event.sequence),
          "x-opt-offset": String(event.sequence),
          "x-opt-enqueued-time": event.enqueuedAt,
        },
      });
    }
  }

  /** The namespace `$management` READ of a hub or a partition; undefined when the request is not for Event Hubs. */
  read(request: AmqpMessage): ManagementReply | undefined {
    const properties = request.application_properties ?? {};
    const type = String(properties.type ?? "");
    if (properties.operation !== "READ" || !type.startsWith("com.microsoft:")) return undefined;
    const hub = this.#hubs.get(String(properties.name ?? "").toLowerCase());
    if (!hub) return { status: 404, body: {}, condition: "amqp:not-found", description: `The messaging entity '${String(properties.name)}' could not be found.` };
    if (type === "com.microsoft:eventhub") {
      return { status: 200, body: { name: hub.name, type, created_at: hub.createdAt, partition_count: hub.partitions.length, partition_ids: hub.partitions.map((p) => p.id) } };
    }
    const partition = hub.partitions.find((p) => p.id === String(properties.partition));
    if (type !== "com.microsoft:partition" || !partition) return { status: 404, body: {}, condition: "amqp:not-found", description: `The partition '${String(properties.partition)}' of event hub '${hub.name}' could not be found.` };
    const last = partition.events.at(-1);
    return {
      status: 200,
      body: {
        name: hub.name,
        type,
        partition: partition.id,
        beginning_sequence_number: rhea.types.wrap_long(0),
        last_enqueued_sequence_number: rhea.types.wrap_long(last ? last.sequence : -1),
        last_enqueued_offset: last ? String(last.sequence) : "-1",
        last_enqueued_time_utc: last ? last.enqueuedAt : new Date(0),
        is_partition_empty: partition.events.length === 0,
      },
    };
  }

  counts(): Array<{ path: string; events: number }> {
    return [...this.#hubs.values()].flatMap((hub) => hub.partitions.map((p) => ({ path: `${hub.name}/Partitions/${p.id}`, events: p.events.length })));
  }
}

/** Where a reader starts, from the selector filter the client sends; no filter means the start. */
function startIndex(partition: Partition, filter: Record<string, unknown> | undefined): number {
  const selector = filter?.["apache.org:selector-filter:string"];
  const text = typeof selector === "string" ? selector : String((selector as { value?: unknown } | undefined)?.value ?? "");
  const match = POSITION.exec(text);
  if (!match) return 0;
  const [, field, op, raw] = match;
  const inclusive = op === ">=";
  if (field === "offset" && raw === "@latest") return partition.events.length;
  if (field === "enqueued-time") {
    const index = partition.events.findIndex((e) => e.enqueuedAt.getTime() > Number(raw));
    return index < 0 ? partition.events.length : index;
  }
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) return 0;
  return Math.min(partition.events.length, inclusive ? n : n + 1);
}

/** A stable hash so one partition key always lands on one partition. */
function hash(key: string): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return h >>> 0;
}
