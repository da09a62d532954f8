/**
 * The broker's Service Bus state, apart from AMQP, as one object the AMQP side and the management
 * operations call: entities and topics (entities.ts), where a sent message goes (routing.ts),
 * scheduled messages (scheduling.ts), peek-lock and settlement (locks.ts) and sessions
 * (sessions.ts). With a store (persistence.ts), every change to a message, a sequence counter or a
 * session's state is written through it inside the operation that makes it, so the caller answers
 * the client after the commit.
 */
import { systemClock, type Clock } from "../../runtime/clock.js";
import { rhea, type AmqpMessage } from "./amqp.js";
import { EntityRegistry, ManagementFailure, sessionOf, type BrokerTopology, type Disposition, type Entity, type EntityOptions, type MessageState, type Stored } from "./entities.js";
import { Locks } from "./locks.js";
import type { BrokerStore, LoadedState } from "./persistence.js";
import { Routing } from "./routing.js";
import { Scheduler } from "./scheduling.js";
import { Sessions } from "./sessions.js";

const STATE_ANNOTATION: Record<MessageState, number> = { active: 0, locked: 0, deferred: 1, scheduled: 2 };

export class Namespace {
  readonly #registry: EntityRegistry;
  readonly #routing: Routing;
  readonly #scheduler: Scheduler;
  readonly #locks: Locks;
  readonly #sessions: Sessions;
  readonly #clock: Clock;
  #closed = false;

  constructor(
    topology: BrokerTopology,
    autoCreate: boolean,
    /** Called when an entity has messages ready, so the broker can hand them to receivers. */
    onReady: (entity: Entity) => void,
    /** Where messages are kept across restarts (--data-dir); without one, everything is in memory. */
    store?: BrokerStore,
    /** Time-to-live, lock durations, scheduled messages and duplicate windows are measured and waited on with it. */
    clock: Clock = systemClock,
  ) {
    this.#clock = clock;
    this.#registry = new EntityRegistry(topology, autoCreate, store);
    this.#routing = new Routing(this.#registry, onReady, store, clock);
    this.#scheduler = new Scheduler(this.#registry, this.#routing);
    this.#locks = new Locks(this.#routing);
    this.#sessions = new Sessions(this.#routing, this.#locks);
    if (store) this.atomically(() => this.#restore(store.load()));
  }

  /** Runs `work` as one transaction of the store (one fsync'd commit), or simply runs it without a store. */
  atomically<T>(work: () => T): T {
    return this.#routing.atomically(work);
  }

  /**
   * Rebuilds the state a store kept. Locks do not survive: a message that was locked when the broker
   * stopped is handed out again, its delivery count raised by one as when a lock expires (and
   * dead-lettered if that reaches MaxDeliveryCount). Rows of entities the topology no longer
   * declares stay in the file, unserved.
   */
  #restore(state: LoadedState): void {
    for (const { path, options } of state.autoCreated) if (!this.#registry.has(path)) this.#registry.createQueue(path, options);
    for (const [path, next] of state.sequences) {
      const owner = this.#registry.declared(path) ?? this.#registry.topic(path);
      if (owner) owner.nextSequence = Math.max(owner.nextSequence, next);
    }
    for (const row of state.messages) {
      const message = rhea.message.decode(row.encoded) as AmqpMessage;
      const topic = this.#registry.topic(row.path);
      if (topic) {
        if (row.state === "scheduled") this.#scheduler.holdOnTopic(topic, row.path, message, row.sequence, row.enqueuedAt);
        continue;
      }
      const entity = this.#registry.declared(row.path);
      if (!entity) continue;
      const stored: Stored = { message, sequence: row.sequence, enqueuedAt: new Date(row.enqueuedAt), deliveryCount: row.deliveryCount, state: row.state, deferred: row.deferred };
      if (row.expiresAt !== null) stored.expiresAt = row.expiresAt;
      entity.messages.set(stored.sequence, stored);
      if (row.state === "scheduled") this.#scheduler.startTimer(entity, stored);
      else if (row.locked) {
        stored.state = "locked";
        this.#locks.unlock(entity, stored, { countDelivery: true });
      } else if (row.state === "active") entity.ready.add(stored);
    }
    for (const { path, sessionId, state: sessionState } of state.sessions) {
      const entity = this.#registry.declared(path);
      if (entity?.options.requiresSession) entity.sessions.set(sessionId, { state: sessionState });
    }
  }

  /** Whether a link may attach to this path as a destination (queue, topic or subscription). */
  isTarget(path: string): boolean {
    return this.#registry.isTarget(path);
  }

  /** The queue, subscription or dead-letter queue at a path (with autoCreate, a new queue: session-enabled when asked for by a session receiver). */
  entity(path: string, create: EntityOptions = {}): Entity | undefined {
    return this.#registry.entity(path, create);
  }

  // ---- sending ----------------------------------------------------------------------------------

  /** Accepts messages sent to a queue or topic; a future `x-opt-scheduled-enqueue-time` holds them. */
  send(path: string, messages: AmqpMessage[], hops = 0): void {
    this.atomically(() => {
      for (const message of messages) {
        const at = message.message_annotations?.["x-opt-scheduled-enqueue-time"];
        if (at instanceof Date && at.getTime() > this.#clock.now().getTime()) this.schedule(path, [message]);
        else this.#routing.deliver(path, message, hops);
      }
    });
  }

  /** Holds messages until their scheduled time; returns their sequence numbers. */
  schedule(path: string, messages: AmqpMessage[]): number[] {
    return this.#scheduler.schedule(path, messages);
  }

  /** Cancels scheduled messages; numbers that are not scheduled (any more) are ignored, as in Service Bus. */
  cancelScheduled(path: string, sequences: number[]): void {
    this.#scheduler.cancel(path, sequences);
  }

  // ---- receiving --------------------------------------------------------------------------------

  /** The next active message of an entity, past any that expired. */
  next(entity: Entity, sessionId?: string): Stored | undefined {
    for (const stored of entity.ready) {
      if (sessionId !== undefined && sessionOf(stored.message) !== sessionId) continue;
      entity.ready.delete(stored);
      if (this.#locks.expire(entity, stored)) continue;
      return stored;
    }
    return undefined;
  }

  /** Locks a message handed out in peek-lock under the key the client will send back. */
  lock(entity: Entity, stored: Stored, lockKey: string): void {
    this.#locks.lock(entity, stored, lockKey);
  }

  /** Hands out a message in receive-and-delete mode. */
  take(entity: Entity, stored: Stored): void {
    this.#locks.remove(entity, stored);
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

  /** Settles a locked message. Throws a ManagementFailure (lock lost) when the lock is gone. */
  settle(lockKey: string, disposition: Disposition): void {
    this.#locks.settle(lockKey, disposition);
  }

  renewLock(lockKey: string): Date {
    return this.#locks.renewLock(lockKey);
  }

  /**
   * Ends a lock whose delivery never reached the client (its link closed before the transfer was
   * written): the message is active again and its delivery count is unchanged, since nobody saw it.
   */
  release(lockKey: string): void {
    this.#locks.release(lockKey);
  }

  /** Puts back a receive-and-delete message whose transfer was never written. */
  restore(entity: Entity, stored: Stored): void {
    entity.messages.set(stored.sequence, stored);
    this.#routing.makeReady(entity, stored);
  }

  // ---- sessions ---------------------------------------------------------------------------------

  /** The session of the oldest ready message that no receiver holds, for "next available session". */
  availableSession(entity: Entity): string | undefined {
    return this.#sessions.availableSession(entity);
  }

  /** Locks a session for a receiver; `onLost` runs if the lock runs out without being renewed. */
  lockSession(entity: Entity, sessionId: string, holder: unknown, onLost: () => void): Date {
    return this.#sessions.lockSession(entity, sessionId, holder, onLost);
  }

  renewSessionLock(entity: Entity, sessionId: string): Date {
    return this.#sessions.renewSessionLock(entity, sessionId);
  }

  releaseSession(entity: Entity, sessionId: string, holder: unknown): void {
    this.#sessions.releaseSession(entity, sessionId, holder);
  }

  sessionState(entity: Entity, sessionId: string, state?: Buffer | null): Buffer | null {
    return this.#sessions.sessionState(entity, sessionId, state);
  }

  // ---- reading ----------------------------------------------------------------------------------

  /** Messages from a sequence number on, without locking them: active, locked, deferred and scheduled. */
  peek(entity: Entity, from: number, count: number, sessionId?: string): Stored[] {
    const out: Stored[] = [];
    const sequences = [...entity.messages.keys()].filter((s) => s >= from).sort((a, b) => a - b);
    for (const sequence of sequences) {
      if (out.length >= count) break;
      const stored = entity.messages.get(sequence)!;
      if (sessionId !== undefined && sessionOf(stored.message) !== sessionId) continue;
      if (stored.state === "active" && this.#locks.expire(entity, stored)) continue;
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
    const entity = this.#registry.declared(path);
    if (!entity) return undefined;
    return [...entity.messages.values()]
      .sort((a, b) => a.sequence - b.sequence)
      .map((stored) => ({ sequence: stored.sequence, state: stored.state, deliveryCount: stored.deliveryCount, enqueuedAt: stored.enqueuedAt, message: stored.message }));
  }

  /** Entities and their message counts (dead-letter queues included). */
  counts(): Array<{ path: string; active: number; locked: number; deferred: number; scheduled: number }> {
    return [...this.#registry.entities()].map((entity) => {
      const count = { path: entity.path, active: 0, locked: 0, deferred: 0, scheduled: 0 };
      for (const stored of [...entity.messages.values()]) {
        if (stored.state === "active" && this.#locks.expire(entity, stored)) continue;
        count[stored.state]++;
      }
      return count;
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const entity of this.#registry.entities()) {
      for (const stored of entity.messages.values()) this.#clock.clearTimeout(stored.timer);
      for (const session of entity.sessions.values()) this.#clock.clearTimeout(session.timer);
    }
    for (const topic of this.#registry.topics()) for (const { timer } of topic.scheduled.values()) this.#clock.clearTimeout(timer);
  }
}
