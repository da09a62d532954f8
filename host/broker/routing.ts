/**
 * Where a message goes: a topic fans it out to the subscriptions whose rules match, duplicate
 * detection drops a message id seen within the window, an entity may forward it on (ForwardTo,
 * ForwardDeadLetteredMessagesTo), and what stays is enqueued with its sequence number and time to
 * live. A dead-lettered message and one whose lock ended come back through here too. With a store,
 * each of these changes is written through it.
 */
import { randomUUID } from "node:crypto";
import type { Clock } from "../../runtime/clock.js";
import { rhea, type AmqpMessage } from "./amqp.js";
import { ManagementFailure, sessionOf, type Entity, type EntityRegistry, type Stored } from "./entities.js";
import type { BrokerStore } from "./persistence.js";

export class Routing {
  constructor(
    private readonly registry: EntityRegistry,
    /** Called when an entity has messages ready, so the broker can hand them to receivers. */
    readonly onReady: (entity: Entity) => void,
    /** Where messages are kept across restarts (--data-dir); without one, everything is in memory. */
    readonly store: BrokerStore | undefined,
    /** Time-to-live, lock durations, scheduled messages and duplicate windows are measured and waited on with it. */
    readonly clock: Clock,
  ) {}

  /** Runs `work` as one transaction of the store (one fsync'd commit), or simply runs it without a store. */
  atomically<T>(work: () => T): T {
    return this.store ? this.store.atomically(work) : work();
  }

  /** Writes a message's row (not locked) when there is a store. */
  persist(entity: Entity, stored: Stored): void {
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
  nextSequence(owner: { nextSequence: number }, path: string): number {
    const sequence = owner.nextSequence++;
    this.store?.saveSequence(path, owner.nextSequence);
    return sequence;
  }

  /** Routes a message to a queue or topic; `hops` counts the forwards it took to get here. */
  deliver(path: string, message: AmqpMessage, hops: number): void {
    const topic = this.registry.topic(path);
    if (topic) {
      if (this.#isDuplicate(topic.duplicates, topic.spec.duplicateDetectionWindowMs, message)) return;
      for (const { entity, rules } of topic.subscriptions) {
        const rule = rules.find((r) => r.matches(message));
        if (rules.length > 0 && !rule) continue;
        this.enqueue(entity, rule ? rule.apply(message) : { ...message }, hops);
      }
      return;
    }
    const entity = this.registry.entity(path);
    if (!entity) throw new ManagementFailure(404, "amqp:not-found", `The messaging entity '${path}' could not be found.`);
    if (entity.options.requiresSession && sessionOf(message) === undefined) {
      throw new ManagementFailure(400, "amqp:not-allowed", `${path} requires sessions: set sessionId on the message`);
    }
    if (this.#isDuplicate(entity.duplicates, entity.options.duplicateDetectionWindowMs, message)) return;
    this.enqueue(entity, { ...message }, hops);
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

  /** Adds a message to an entity's ready messages (or forwards it on), under a new sequence number unless it has one. */
  enqueue(entity: Entity, message: AmqpMessage, hops: number, sequence?: number): void {
    const forward = entity.options.forwardTo;
    if (forward && hops < 4) return this.deliver(forward, message, hops + 1);
    // Service Bus gives every message an id; the client tracks locks by it.
    if (message.message_id === undefined || message.message_id === null) message.message_id = randomUUID().replace(/-/g, "");
    const enqueuedAt = this.clock.now();
    const ttl = Math.min(typeof message.ttl === "number" && message.ttl > 0 ? message.ttl : Infinity, entity.options.defaultMessageTtlMs ?? Infinity);
    const stored: Stored = { message, sequence: sequence ?? this.nextSequence(entity, entity.path), enqueuedAt, deliveryCount: 0, state: "active", deferred: false };
    if (Number.isFinite(ttl)) stored.expiresAt = enqueuedAt.getTime() + ttl;
    entity.messages.set(stored.sequence, stored);
    this.persist(entity, stored);
    entity.ready.add(stored);
    this.onReady(entity);
  }

  /** Moves a message to the entity's dead-letter queue, or on to ForwardDeadLetteredMessagesTo, with the reason as application properties. */
  deadLetter(entity: Entity, message: AmqpMessage, reason: string, description: string): void {
    const dead: AmqpMessage = {
      ...message,
      application_properties: { ...(message.application_properties ?? {}), DeadLetterReason: reason, DeadLetterErrorDescription: description },
      message_annotations: { ...(message.message_annotations ?? {}), "x-opt-deadletter-source": entity.path },
    };
    const forward = entity.options.forwardDeadLetteredMessagesTo;
    if (forward) return this.deliver(forward, dead, 1);
    const dlq = this.registry.declared(`${entity.path}/$DeadLetterQueue`);
    if (dlq) this.enqueue(dlq, dead, 0);
  }

  /** A message becomes active again in its place: before the ready messages with later sequence numbers. */
  makeReady(entity: Entity, stored: Stored): void {
    stored.state = "active";
    this.persist(entity, stored);
    const last = [...entity.ready].at(-1);
    if (last === undefined || last.sequence < stored.sequence) entity.ready.add(stored);
    else entity.ready = new Set([...entity.ready, stored].sort((a, b) => a.sequence - b.sequence));
    this.onReady(entity);
  }
}
