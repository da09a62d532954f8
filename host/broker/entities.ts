/**
 * The Service Bus entities of the namespace and how they are declared: queues, topics with their
 * subscriptions and compiled rules, dead-letter queues, and the messages and sessions each entity
 * holds. The registry creates them from the topology (and on first use with --auto-create) and
 * finds them by path.
 */
import type { ClockTimer } from "../../runtime/clock.js";
import { BrokerError } from "./errors.js";
import type { AmqpMessage } from "./amqp.js";
import type { EventHubSpec } from "./event-hubs.js";
import type { BrokerStore } from "./persistence.js";
import { compileRule, type Rule, type RuleSpec } from "./rules.js";

export interface EntityOptions {
  /** How long a peek-lock delivery stays locked, ms. @default 60000 */
  lockDurationMs?: number;
  /** Deliveries before a message goes to the dead-letter queue. @default 10 */
  maxDeliveryCount?: number;
  /** How long a message lives unless it says less, ms. @default unlimited */
  defaultMessageTtlMs?: number;
  /** Expired messages go to the dead-letter queue instead of vanishing. @default false */
  deadLetteringOnMessageExpiration?: boolean;
  /** When set, a message id seen within this window is accepted and dropped. @default off */
  duplicateDetectionWindowMs?: number;
  /** Every message sent here moves on to this queue or topic. */
  forwardTo?: string;
  /** Dead-lettered messages go to this queue or topic instead of the entity's own dead-letter queue. */
  forwardDeadLetteredMessagesTo?: string;
  /** Messages carry a session id and are received through session receivers only. @default false */
  requiresSession?: boolean;
}

export interface SubscriptionSpec extends EntityOptions {
  name: string;
  /** A message reaches the subscription when any rule matches; none means every message. */
  rules?: RuleSpec[];
}

export interface TopicSpec {
  name: string;
  subscriptions: SubscriptionSpec[];
  defaultMessageTtlMs?: number;
  duplicateDetectionWindowMs?: number;
}

export interface BrokerTopology {
  queues?: Array<{ name: string } & EntityOptions>;
  topics?: TopicSpec[];
  /** Event hubs served on the same port (event-hubs.ts). */
  eventHubs?: EventHubSpec[];
}

export type MessageState = "active" | "locked" | "deferred" | "scheduled";

export interface Stored {
  message: AmqpMessage;
  sequence: number;
  enqueuedAt: Date;
  deliveryCount: number;
  state: MessageState;
  /** Deferred messages return to deferred when their lock ends. */
  deferred: boolean;
  lockKey?: string;
  lockedUntil?: Date;
  timer?: ClockTimer;
  expiresAt?: number;
}

/** A session of a session-enabled entity: its state, and the receiver holding its lock. */
export interface Session {
  state: Buffer | null;
  holder?: unknown;
  lockedUntil?: Date;
  timer?: ClockTimer;
  /** What to do when the lock runs out (the broker detaches the holder's link). */
  onLost?: () => void;
}

export class Entity {
  readonly messages = new Map<number, Stored>();
  /** Active messages, in the order they are handed out. */
  ready = new Set<Stored>();
  nextSequence = 1;
  readonly duplicates = new Map<string, number>();
  readonly sessions = new Map<string, Session>();
  constructor(
    readonly path: string,
    readonly options: EntityOptions & { lockDurationMs: number; maxDeliveryCount: number },
  ) {}
}

export interface Subscription {
  entity: Entity;
  rules: Rule[];
}

export class Topic {
  readonly subscriptions: Subscription[] = [];
  readonly scheduled = new Map<number, { message: AmqpMessage; timer: ClockTimer }>();
  readonly duplicates = new Map<string, number>();
  nextSequence = 1;
  constructor(readonly spec: Omit<TopicSpec, "subscriptions">) {}
}

/** A management operation that failed the way Service Bus reports it. */
export class ManagementFailure extends Error {
  constructor(
    readonly status: number,
    readonly condition: string,
    message: string,
  ) {
    super(message);
  }
}

export type Disposition =
  | { kind: "complete" }
  | { kind: "abandon"; properties?: Record<string, unknown> }
  | { kind: "defer"; properties?: Record<string, unknown> }
  | { kind: "deadLetter"; reason?: string; description?: string; properties?: Record<string, unknown> };

const NAME = /^[A-Za-z0-9]$|^[A-Za-z0-9][\w.\-/]*[A-Za-z0-9]$/;

/** The queues, subscriptions, dead-letter queues and topics of a namespace, by path. */
export class EntityRegistry {
  readonly #entities = new Map<string, Entity>();
  readonly #topics = new Map<string, Topic>();

  constructor(
    topology: BrokerTopology,
    private readonly autoCreate: boolean,
    /** Remembers the queues --auto-create makes, when there is a store. */
    private readonly store?: BrokerStore,
  ) {
    for (const q of topology.queues ?? []) this.createQueue(q.name, q);
    for (const t of topology.topics ?? []) this.#createTopic(t);
    this.#checkForwards();
  }

  createQueue(path: string, options: EntityOptions = {}): Entity {
    if (!NAME.test(path)) throw new BrokerError("BROKER_CONFIG_INVALID", `${JSON.stringify(path)} is not an entity name: use letters, digits, ".", "-", "_" and "/", starting and ending with a letter or digit`);
    if (this.#entities.has(path) || this.#topics.has(path)) throw new BrokerError("BROKER_CONFIG_INVALID", `${JSON.stringify(path)} is declared twice`);
    const entity = new Entity(path, { ...options, lockDurationMs: options.lockDurationMs ?? 60_000, maxDeliveryCount: options.maxDeliveryCount ?? 10 });
    this.#entities.set(path, entity);
    const dlq = `${path}/$DeadLetterQueue`;
    this.#entities.set(dlq, new Entity(dlq, { lockDurationMs: entity.options.lockDurationMs, maxDeliveryCount: Number.MAX_SAFE_INTEGER }));
    return entity;
  }

  #createTopic(spec: TopicSpec): void {
    if (!spec.name || !NAME.test(spec.name)) throw new BrokerError("BROKER_CONFIG_INVALID", `${JSON.stringify(spec.name)} is not a topic name`);
    if (this.#entities.has(spec.name) || this.#topics.has(spec.name)) throw new BrokerError("BROKER_CONFIG_INVALID", `${JSON.stringify(spec.name)} is declared twice`);
    const topic = new Topic(spec);
    this.#topics.set(spec.name, topic);
    for (const s of spec.subscriptions ?? []) {
      const path = `${spec.name}/Subscriptions/${s.name}`;
      const entity = this.createQueue(path, { defaultMessageTtlMs: spec.defaultMessageTtlMs, ...s });
      const rules = (s.rules ?? []).map((r, i) => compileRule(r, `topic ${spec.name}, subscription ${s.name}, rule ${JSON.stringify(r.name ?? i)}`));
      topic.subscriptions.push({ entity, rules });
    }
  }

  #checkForwards(): void {
    for (const entity of this.#entities.values()) {
      for (const target of [entity.options.forwardTo, entity.options.forwardDeadLetteredMessagesTo]) {
        if (target && !this.#entities.has(target) && !this.#topics.has(target)) {
          throw new BrokerError("BROKER_CONFIG_INVALID", `${entity.path} forwards to ${JSON.stringify(target)}, which is not a queue or topic here`);
        }
      }
    }
  }

  /** Whether a queue, subscription, dead-letter queue or topic has this path. */
  has(path: string): boolean {
    return this.#entities.has(path) || this.#topics.has(path);
  }

  /** The queue, subscription or dead-letter queue at a path, without creating one. */
  declared(path: string): Entity | undefined {
    return this.#entities.get(path);
  }

  topic(path: string): Topic | undefined {
    return this.#topics.get(path);
  }

  entities(): IterableIterator<Entity> {
    return this.#entities.values();
  }

  topics(): IterableIterator<Topic> {
    return this.#topics.values();
  }

  /** Whether a link may attach to this path as a destination (queue, topic or subscription). */
  isTarget(path: string): boolean {
    return this.#topics.has(path) || this.entity(path) !== undefined;
  }

  /** The queue, subscription or dead-letter queue at a path (with autoCreate, a new queue: session-enabled when asked for by a session receiver). */
  entity(path: string, create: EntityOptions = {}): Entity | undefined {
    const found = this.#entities.get(path);
    if (found || this.#topics.has(path)) return found;
    if (!this.autoCreate || !NAME.test(path) || path.includes("/")) return undefined;
    const entity = this.createQueue(path, create);
    this.store?.rememberAutoCreated(path, { ...create });
    return entity;
  }
}

/** A message's session id (its AMQP group-id), or undefined when it has none. */
export function sessionOf(message: AmqpMessage): string | undefined {
  return message.group_id === undefined || message.group_id === null ? undefined : String(message.group_id);
}
