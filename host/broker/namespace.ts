/**
 * The broker's state, apart from AMQP: queues, topics with their subscriptions and rules,
 * dead-letter queues, sequence numbers, locks keyed by the token the client sends back, deferral,
 * scheduled messages, time to live, duplicate detection and auto-forwarding. With a store
 * (persistence.ts), every change to a message, a sequence counter or a session's state is written
 * through it inside the operation that makes it, so the caller answers the client after the commit.
 */
import { randomUUID } from "node:crypto";
import { systemClock, type Clock, type ClockTimer } from "../../runtime/clock.js";
import { BrokerError } from "./errors.js";
import { rhea, type AmqpMessage } from "./amqp.js";
import type { EventHubSpec } from "./event-hubs.js";
import type { BrokerStore, LoadedState } from "./persistence.js";
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
const STATE_ANNOTATION: Record<MessageState, number> = { active: 0, locked: 0, deferred: 1, scheduled: 2 };

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
interface Session {
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

interface Subscription {
  entity: Entity;
  rules: Rule[];
}

class Topic {
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

export class Namespace {
  readonly #entities = new Map<string, Entity>();
  readonly #topics = new Map<string, Topic>();
  readonly #locks = new Map<string, { entity: Entity; stored: Stored }>();
  #closed = false;

  constructor(
    topology: BrokerTopology,
    private readonly autoCreate: boolean,
    /** Called when an entity has messages ready, so the broker can hand them to receivers. */
    private readonly onReady: (entity: Entity) => void,
    /** Where messages are kept across restarts (--data-dir); without one, everything is in memory. */
    private readonly store?: BrokerStore,
    /** Time-to-live, lock durations, scheduled messages and duplicate windows are measured and waited on with it. */
    private readonly clock: Clock = systemClock,
  ) {
    for (const q of topology.queues ?? []) this.#createQueue(q.name, q);
    for (const t of topology.topics ?? []) this.#createTopic(t);
    this.#checkForwards();
    if (store) this.atomically(() => this.#restore(store.load()));
  }

  /** Runs `work` as one transaction of the store (one fsync'd commit), or simply runs it without a store. */
  atomically<T>(work: () => T): T {
    return this.store ? this.store.atomically(work) : work();
  }

  /**
   * Rebuilds the state a store kept. Locks do not survive: a message that was locked when the broker
   * stopped is handed out again, its delivery count raised by one as when a lock expires (and
   * dead-lettered if that reaches MaxDeliveryCount). Rows of entities the topology no longer
   * declares stay in the file, unserved.
   */
  #restore(state: LoadedState): void {
    for (const { path, options } of state.autoCreated) if (!this.#entities.has(path) && !this.#topics.has(path)) this.#createQueue(path, options);
    for (const [path, next] of state.sequences) {
      const owner = this.#entities.get(path) ?? this.#topics.get(path);
      if (owner) owner.nextSequence = Math.max(owner.nextSequence, next);
    }
    for (const row of state.messages) {
      const message = rhea.message.decode(row.encoded) as AmqpMessage;
      const topic = this.#topics.get(row.path);
      if (topic) {
        if (row.state === "scheduled") this.#scheduleOnTopic(topic, row.path, message, row.sequence, row.enqueuedAt);
        continue;
      }
      const entity = this.#entities.get(row.path);
      if (!entity) continue;
      const stored: Stored = { message, sequence: row.sequence, enqueuedAt: new Date(row.enqueuedAt), deliveryCount: row.deliveryCount, state: row.state, deferred: row.deferred };
      if (row.expiresAt !== null) stored.expiresAt = row.expiresAt;
      entity.messages.set(stored.sequence, stored);
      if (row.state === "scheduled") this.#startScheduleTimer(entity, stored);
      else if (row.locked) {
        stored.state = "locked";
        this.#unlock(entity, stored, { countDelivery: true });
      } else if (row.state === "active") entity.ready.add(stored);
    }
    for (const { path, sessionId, state: sessionState } of state.sessions) {
      const entity = this.#entities.get(path);
      if (entity?.options.requiresSession) entity.sessions.set(sessionId, { state: sessionState });
    }
  }

  /** Writes a message's row (not locked) when there is a store. */
  #persist(entity: Entity, stored: Stored): void {
    this.store?.putMessage({
      path: entity.path,
      sequence: stored.sequence,
      encoded: rhea.message.encode(stored.message),
      enqueuedAt: stored.enqueuedAt.getTime(),
      deliveryCount: stored.deliveryCount,
      state: stored.state === "locked" ? (stored.deferred ? "deferred" : "active") : stored.state,
      deferred: stored.deferred,
      expiresAt: stored.expiresAt ?? null,
      locked: false,
    });
  }

  /** Takes an entity's or topic's next sequence number; the store keeps the counter, so none is used twice. */
  #nextSequence(owner: { nextSequence: number }, path: string): number {
    const sequence = owner.nextSequence++;
    this.store?.saveSequence(path, owner.nextSequence);
    return sequence;
  }

  #createQueue(path: string, options: EntityOptions = {}): Entity {
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
      const entity = this.#createQueue(path, { defaultMessageTtlMs: spec.defaultMessageTtlMs, ...s });
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

  /** Whether a link may attach to this path as a destination (queue, topic or subscription). */
  isTarget(path: string): boolean {
    return this.#topics.has(path) || this.entity(path) !== undefined;
  }

  /** The queue, subscription or dead-letter queue at a path (with autoCreate, a new queue: session-enabled when asked for by a session receiver). */
  entity(path: string, create: EntityOptions = {}): Entity | undefined {
    const found = this.#entities.get(path);
    if (found || this.#topics.has(path)) return found;
    if (!this.autoCreate || !NAME.test(path) || path.includes("/")) return undefined;
    const entity = this.#createQueue(path, create);
    this.store?.rememberAutoCreated(path, { ...create });
    return entity;
  }

  // ---- sending ----------------------------------------------------------------------------------

  /** Accepts messages sent to a queue or topic; a future `x-opt-scheduled-enqueue-time` holds them. */
  send(path: string, messages: AmqpMessage[], hops = 0): void {
    this.atomically(() => {
      for (const message of messages) {
        const at = message.message_annotations?.["x-opt-scheduled-enqueue-time"];
        if (at instanceof Date && at.getTime() > this.clock.now().getTime()) this.schedule(path, [message]);
        else this.#deliver(path, message, hops);
      }
    });
  }

  #deliver(path: string, message: AmqpMessage, hops: number): void {
    const topic = this.#topics.get(path);
    if (topic) {
      if (this.#isDuplicate(topic.duplicates, topic.spec.duplicateDetectionWindowMs, message)) return;
      for (const { entity, rules } of topic.subscriptions) {
        const rule = rules.find((r) => r.matches(message));
        if (rules.length > 0 && !rule) continue;
        this.#enqueue(entity, rule ? rule.apply(message) : { ...message }, hops);
      }
      return;
    }
    const entity = this.entity(path);
    if (!entity) throw new ManagementFailure(404, "amqp:not-found", `The messaging entity '${path}' could not be found.`);
    if (entity.options.requiresSession && sessionOf(message) === undefined) {
      throw new ManagementFailure(400, "amqp:not-allowed", `${path} requires sessions: set sessionId on the message`);
    }
    if (this.#isDuplicate(entity.duplicates, entity.options.duplicateDetectionWindowMs, message)) return;
    this.#enqueue(entity, { ...message }, hops);
  }

  #isDuplicate(seen: Map<string, number>, windowMs: number | undefined, message: AmqpMessage): boolean {
    if (!windowMs || message.message_id === undefined || message.message_id === null) return false;
    const now = this.clock.now().getTime();
    for (const [id, at] of seen) {
      if (now - at < windowMs) break;
      seen.delete(id);
    }
    const id = String(message.message_id);
    if (seen.has(id)) return true;
    seen.set(id, now);
    return false;
  }

  #enqueue(entity: Entity, message: AmqpMessage, hops: number, sequence?: number): void {
    const forward = entity.options.forwardTo;
    if (forward && hops < 4) return this.#deliver(forward, message, hops + 1);
    // Service Bus gives every message an id; the client tracks locks by it.
    if (message.message_id === undefined || message.message_id === null) message.message_id = randomUUID().replace(/-/g, "");
    const enqueuedAt = this.clock.now();
    const ttl = Math.min(typeof message.ttl === "number" && message.ttl > 0 ? message.ttl : Infinity, entity.options.defaultMessageTtlMs ?? Infinity);
    const stored: Stored = { message, sequence: sequence ?? this.#nextSequence(entity, entity.path), enqueuedAt, deliveryCount: 0, state: "active", deferred: false };
    if (Number.isFinite(ttl)) stored.expiresAt = enqueuedAt.getTime() + ttl;
    entity.messages.set(stored.sequence, stored);
    this.#persist(entity, stored);
    entity.ready.add(stored);
    this.onReady(entity);
  }

  /** Holds messages until their scheduled time; returns their sequence numbers. */
  schedule(path: string, messages: AmqpMessage[]): number[] {
    const topic = this.#topics.get(path);
    const entity = topic ? undefined : this.entity(path);
    if (!topic && !entity) throw new ManagementFailure(404, "amqp:not-found", `The messaging entity '${path}' could not be found.`);
    return this.atomically(() =>
      messages.map((message) => {
        const at = message.message_annotations?.["x-opt-scheduled-enqueue-time"];
        const due = at instanceof Date ? at.getTime() : this.clock.now().getTime();
        if (topic) {
          const sequence = this.#nextSequence(topic, path);
          this.#scheduleOnTopic(topic, path, message, sequence, due);
          this.store?.putMessage({ path, sequence, encoded: rhea.message.encode(message), enqueuedAt: due, deliveryCount: 0, state: "scheduled", deferred: false, expiresAt: null, locked: false });
          return sequence;
        }
        const sequence = this.#nextSequence(entity!, entity!.path);
        const stored: Stored = { message: { ...message }, sequence, enqueuedAt: new Date(due), deliveryCount: 0, state: "scheduled", deferred: false };
        entity!.messages.set(sequence, stored);
        this.#persist(entity!, stored);
        this.#startScheduleTimer(entity!, stored);
        return sequence;
      }),
    );
  }

  #scheduleOnTopic(topic: Topic, path: string, message: AmqpMessage, sequence: number, due: number): void {
    const timer = this.clock.setTimeout(
      () => {
        topic.scheduled.delete(sequence);
        this.atomically(() => {
          this.store?.removeMessage(path, sequence);
          this.#deliver(path, message, 0);
        });
      },
      Math.max(0, due - this.clock.now().getTime()),
      { unref: true },
    );
    topic.scheduled.set(sequence, { message, timer });
  }

  #startScheduleTimer(entity: Entity, stored: Stored): void {
    stored.timer = this.clock.setTimeout(
      () => {
        entity.messages.delete(stored.sequence);
        this.atomically(() => {
          // Forwarded on, it leaves this entity; otherwise enqueue writes it over as active.
          this.store?.removeMessage(entity.path, stored.sequence);
          this.#enqueue(entity, stored.message, 0, stored.sequence);
        });
      },
      Math.max(0, stored.enqueuedAt.getTime() - this.clock.now().getTime()),
      { unref: true },
    );
  }

  /** Cancels scheduled messages; numbers that are not scheduled (any more) are ignored, as in Service Bus. */
  cancelScheduled(path: string, sequences: number[]): void {
    const topic = this.#topics.get(path);
    const entity = topic ? undefined : this.entity(path);
    this.atomically(() => {
      for (const sequence of sequences) {
        if (topic) {
          if (!topic.scheduled.has(sequence)) continue;
          this.clock.clearTimeout(topic.scheduled.get(sequence)?.timer);
          topic.scheduled.delete(sequence);
          this.store?.removeMessage(path, sequence);
          continue;
        }
        const stored = entity?.messages.get(sequence);
        if (stored?.state === "scheduled") {
          this.clock.clearTimeout(stored.timer);
          entity!.messages.delete(sequence);
          this.store?.removeMessage(entity!.path, sequence);
        }
      }
    });
  }

  // ---- receiving --------------------------------------------------------------------------------

  /** The next active message of an entity, past any that expired. */
  next(entity: Entity, sessionId?: string): Stored | undefined {
    for (const stored of entity.ready) {
      if (sessionId !== undefined && sessionOf(stored.message) !== sessionId) continue;
      entity.ready.delete(stored);
      if (this.#expire(entity, stored)) continue;
      return stored;
    }
    return undefined;
  }

  // ---- sessions ---------------------------------------------------------------------------------

  /** The session of the oldest ready message that no receiver holds, for "next available session". */
  availableSession(entity: Entity): string | undefined {
    for (const stored of entity.ready) {
      const id = sessionOf(stored.message);
      if (id !== undefined && entity.sessions.get(id)?.holder === undefined) return id;
    }
    return undefined;
  }

  /** Locks a session for a receiver; `onLost` runs if the lock runs out without being renewed. */
  lockSession(entity: Entity, sessionId: string, holder: unknown, onLost: () => void): Date {
    const session = this.#session(entity, sessionId);
    if (session.holder !== undefined && session.holder !== holder) {
      throw new ManagementFailure(410, "com.microsoft:session-cannot-be-locked", `The session '${sessionId}' of ${entity.path} is locked by another receiver.`);
    }
    session.holder = holder;
    this.#startSessionTimer(entity, session, onLost);
    return session.lockedUntil!;
  }

  renewSessionLock(entity: Entity, sessionId: string): Date {
    const session = entity.sessions.get(sessionId);
    if (!session?.holder || !session.timer) throw new ManagementFailure(410, "com.microsoft:session-lock-lost", `The session lock of '${sessionId}' on ${entity.path} was lost; accept the session again.`);
    this.#startSessionTimer(entity, session, session.onLost!);
    return session.lockedUntil!;
  }

  #startSessionTimer(entity: Entity, session: Session, onLost: () => void): void {
    this.clock.clearTimeout(session.timer);
    session.onLost = onLost;
    session.lockedUntil = new Date(this.clock.now().getTime() + entity.options.lockDurationMs);
    // The holder's link is closed by onLost; closing it releases the session (releaseSession).
    session.timer = this.clock.setTimeout(
      () => {
        session.timer = undefined;
        onLost();
      },
      entity.options.lockDurationMs,
      { unref: true },
    );
  }

  releaseSession(entity: Entity, sessionId: string, holder: unknown): void {
    const session = entity.sessions.get(sessionId);
    if (!session || session.holder !== holder) return;
    this.clock.clearTimeout(session.timer);
    session.holder = undefined;
    session.timer = undefined;
    this.atomically(() => this.abandonSession(entity, sessionId));
    this.onReady(entity);
  }

  sessionState(entity: Entity, sessionId: string, state?: Buffer | null): Buffer | null {
    const session = this.#session(entity, sessionId);
    if (state !== undefined) {
      session.state = state;
      this.store?.saveSessionState(entity.path, sessionId, state);
    }
    return session.state;
  }

  #session(entity: Entity, sessionId: string): Session {
    if (!entity.options.requiresSession) throw new ManagementFailure(400, "amqp:not-allowed", `${entity.path} is not session-enabled: create it with RequiresSession, or receive without a session`);
    let session = entity.sessions.get(sessionId);
    if (!session) entity.sessions.set(sessionId, (session = { state: null }));
    return session;
  }

  /** Removes a message whose time to live has passed (to the dead-letter queue when the entity says so). */
  #expire(entity: Entity, stored: Stored): boolean {
    if (stored.expiresAt === undefined || stored.expiresAt > this.clock.now().getTime() || stored.state === "locked") return false;
    this.atomically(() => {
      this.#remove(entity, stored);
      if (entity.options.deadLetteringOnMessageExpiration) this.#deadLetter(entity, stored.message, "TTLExpiredException", "The message expired and was dead lettered.");
    });
    return true;
  }

  /** Locks a message handed out in peek-lock under the key the client will send back. */
  lock(entity: Entity, stored: Stored, lockKey: string): void {
    stored.state = "locked";
    stored.lockKey = lockKey;
    this.#locks.set(lockKey, { entity, stored });
    this.#startLockTimer(entity, stored);
    this.store?.markLocked(entity.path, stored.sequence, true);
  }

  #startLockTimer(entity: Entity, stored: Stored): void {
    this.clock.clearTimeout(stored.timer);
    stored.lockedUntil = new Date(this.clock.now().getTime() + entity.options.lockDurationMs);
    stored.timer = this.clock.setTimeout(() => this.atomically(() => this.#unlock(entity, stored, {})), entity.options.lockDurationMs, { unref: true });
  }

  /** Hands out a message in receive-and-delete mode. */
  take(entity: Entity, stored: Stored): void {
    this.#remove(entity, stored);
  }

  /** The message as a receiver sees it, with the annotations Service Bus adds. */
  outgoing(stored: Stored): AmqpMessage {
    return {
      ...stored.message,
      message_annotations: {
        ...(stored.message.message_annotations ?? {}),
        "x-opt-sequence-number": rhea.types.wrap_long(stored.sequence),
        "x-opt-enqueued-time": stored.enqueuedAt,
        "x-opt-message-state": stored.deferred ? STATE_ANNOTATION.deferred : STATE_ANNOTATION[stored.state],
        ...(stored.lockedUntil && stored.state === "locked" ? { "x-opt-locked-until": stored.lockedUntil } : {}),
      },
      delivery_count: stored.deliveryCount,
    };
  }

  #locked(lockKey: string): { entity: Entity; stored: Stored } {
    const found = this.#locks.get(lockKey);
    if (!found || found.stored.state !== "locked" || found.stored.lockKey !== lockKey) {
      throw new ManagementFailure(410, "com.microsoft:message-lock-lost", "The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.");
    }
    return found;
  }

  /** Settles a locked message. Throws a ManagementFailure (lock lost) when the lock is gone. */
  settle(lockKey: string, disposition: Disposition): void {
    this.atomically(() => this.#settle(lockKey, disposition));
  }

  #settle(lockKey: string, disposition: Disposition): void {
    const { entity, stored } = this.#locked(lockKey);
    const properties = disposition.kind === "complete" ? undefined : disposition.properties;
    if (properties) stored.message = { ...stored.message, application_properties: { ...(stored.message.application_properties ?? {}), ...properties } };
    switch (disposition.kind) {
      case "complete":
        this.#remove(entity, stored);
        break;
      case "abandon":
        this.#unlock(entity, stored, { countDelivery: true });
        break;
      case "defer":
        this.#releaseLock(stored);
        stored.state = "deferred";
        stored.deferred = true;
        this.#persist(entity, stored);
        break;
      case "deadLetter":
        this.#remove(entity, stored);
        this.#deadLetter(entity, stored.message, disposition.reason ?? "", disposition.description ?? "");
        break;
    }
  }

  renewLock(lockKey: string): Date {
    const { entity, stored } = this.#locked(lockKey);
    this.#startLockTimer(entity, stored);
    return stored.lockedUntil!;
  }

  #releaseLock(stored: Stored): void {
    this.clock.clearTimeout(stored.timer);
    stored.timer = undefined;
    if (stored.lockKey) this.#locks.delete(stored.lockKey);
    stored.lockKey = undefined;
    stored.lockedUntil = undefined;
  }

  /** Ends a lock (abandon or expiry): the message is handed out again, or dead-lettered past MaxDeliveryCount. */
  #unlock(entity: Entity, stored: Stored, { countDelivery = true }: { countDelivery?: boolean }): void {
    if (stored.state !== "locked") return;
    this.#releaseLock(stored);
    if (countDelivery) stored.deliveryCount++;
    if (stored.deliveryCount >= entity.options.maxDeliveryCount) {
      this.#remove(entity, stored);
      this.#deadLetter(entity, stored.message, "MaxDeliveryCountExceeded", `Message could not be consumed after ${entity.options.maxDeliveryCount} delivery attempts.`);
      return;
    }
    if (stored.deferred) {
      stored.state = "deferred";
      this.#persist(entity, stored);
      return;
    }
    this.#makeReady(entity, stored);
  }

  /** A message becomes active again in its place: before the ready messages with later sequence numbers. */
  #makeReady(entity: Entity, stored: Stored): void {
    stored.state = "active";
    this.#persist(entity, stored);
    const last = [...entity.ready].at(-1);
    if (last === undefined || last.sequence < stored.sequence) entity.ready.add(stored);
    else entity.ready = new Set([...entity.ready, stored].sort((a, b) => a.sequence - b.sequence));
    this.onReady(entity);
  }

  /**
   * Ends a lock whose delivery never reached the client (its link closed before the transfer was
   * written): the message is active again and its delivery count is unchanged, since nobody saw it.
   */
  release(lockKey: string): void {
    const found = this.#locks.get(lockKey);
    if (found && found.stored.lockKey === lockKey) this.#unlock(found.entity, found.stored, { countDelivery: false });
  }

  /** Puts back a receive-and-delete message whose transfer was never written. */
  restore(entity: Entity, stored: Stored): void {
    entity.messages.set(stored.sequence, stored);
    this.#makeReady(entity, stored);
  }

  /**
   * Abandons the locked messages of a session whose receiver went away: their lock was the
   * session's, so the next receiver of the session gets them first, counted as delivered once more.
   */
  abandonSession(entity: Entity, sessionId: string): void {
    for (const { entity: owner, stored } of [...this.#locks.values()]) {
      if (owner === entity && sessionOf(stored.message) === sessionId) this.#unlock(entity, stored, { countDelivery: true });
    }
  }

  #remove(entity: Entity, stored: Stored): void {
    this.#releaseLock(stored);
    entity.messages.delete(stored.sequence);
    entity.ready.delete(stored);
    this.store?.removeMessage(entity.path, stored.sequence);
  }

  #deadLetter(entity: Entity, message: AmqpMessage, reason: string, description: string): void {
    const dead: AmqpMessage = {
      ...message,
      application_properties: { ...(message.application_properties ?? {}), DeadLetterReason: reason, DeadLetterErrorDescription: description },
      message_annotations: { ...(message.message_annotations ?? {}), "x-opt-deadletter-source": entity.path },
    };
    const forward = entity.options.forwardDeadLetteredMessagesTo;
    if (forward) return this.#deliver(forward, dead, 1);
    const dlq = this.#entities.get(`${entity.path}/$DeadLetterQueue`);
    if (dlq) this.#enqueue(dlq, dead, 0);
  }

  /** Messages from a sequence number on, without locking them: active, locked, deferred and scheduled. */
  peek(entity: Entity, from: number, count: number, sessionId?: string): Stored[] {
    const out: Stored[] = [];
    const sequences = [...entity.messages.keys()].filter((s) => s >= from).sort((a, b) => a - b);
    for (const sequence of sequences) {
      if (out.length >= count) break;
      const stored = entity.messages.get(sequence)!;
      if (sessionId !== undefined && sessionOf(stored.message) !== sessionId) continue;
      if (stored.state === "active" && this.#expire(entity, stored)) continue;
      out.push(stored);
    }
    return out;
  }

  /** Deferred messages by sequence number; every number must name a deferred message. */
  deferred(entity: Entity, sequences: number[]): Stored[] {
    return sequences.map((sequence) => {
      const stored = entity.messages.get(sequence);
      if (!stored || stored.state !== "deferred") {
        throw new ManagementFailure(410, "com.microsoft:message-not-found", `Failed to retrieve the deferred message with sequence number ${sequence} from ${entity.path}: it does not exist or is not deferred.`);
      }
      return stored;
    });
  }

  /** What an entity holds, oldest first, without locking anything (for tests and inspection). */
  contents(path: string): Array<{ sequence: number; state: MessageState; deliveryCount: number; enqueuedAt: Date; message: AmqpMessage }> | undefined {
    const entity = this.#entities.get(path);
    if (!entity) return undefined;
    return [...entity.messages.values()]
      .sort((a, b) => a.sequence - b.sequence)
      .map((stored) => ({ sequence: stored.sequence, state: stored.state, deliveryCount: stored.deliveryCount, enqueuedAt: stored.enqueuedAt, message: stored.message }));
  }

  /** Entities and their message counts (dead-letter queues included). */
  counts(): Array<{ path: string; active: number; locked: number; deferred: number; scheduled: number }> {
    return [...this.#entities.values()].map((entity) => {
      const count = { path: entity.path, active: 0, locked: 0, deferred: 0, scheduled: 0 };
      for (const stored of [...entity.messages.values()]) {
        if (stored.state === "active" && this.#expire(entity, stored)) continue;
        count[stored.state]++;
      }
      return count;
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const entity of this.#entities.values()) {
      for (const stored of entity.messages.values()) this.clock.clearTimeout(stored.timer);
      for (const session of entity.sessions.values()) this.clock.clearTimeout(session.timer);
    }
    for (const topic of this.#topics.values()) for (const { timer } of topic.scheduled.values()) this.clock.clearTimeout(timer);
  }
}

/** A message's session id (its AMQP group-id), or undefined when it has none. */
export function sessionOf(message: AmqpMessage): string | undefined {
  return message.group_id === undefined || message.group_id === null ? undefined : String(message.group_id);
}
