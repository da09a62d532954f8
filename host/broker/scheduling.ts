/**
 * Scheduled messages (`x-opt-scheduled-enqueue-time`, schedule-message): held until they are due,
 * then enqueued; a topic's are held by the topic and fanned out when due. Cancelling drops them.
 */
import type { Clock } from "../../runtime/clock.js";
import { rhea, type AmqpMessage } from "./amqp.js";
import { ManagementFailure, type Entity, type EntityRegistry, type Stored, type Topic } from "./entities.js";
import type { Routing } from "./routing.js";

export class Scheduler {
  readonly #clock: Clock;

  constructor(
    private readonly registry: EntityRegistry,
    private readonly routing: Routing,
  ) {
    this.#clock = routing.clock;
  }

  /** Holds messages until their scheduled time; returns their sequence numbers. */
  schedule(path: string, messages: AmqpMessage[]): number[] {
    const topic = this.registry.topic(path);
    const entity = topic ? undefined : this.registry.entity(path);
    if (!topic && !entity) throw new ManagementFailure(404, "amqp:not-found", `The messaging entity '${path}' could not be found.`);
    return this.routing.atomically(() =>
      messages.map((message) => {
        const at = message.message_annotations?.["x-opt-scheduled-enqueue-time"];
        const due = at instanceof Date ? at.getTime() : this.#clock.now().getTime();
        if (topic) {
          const sequence = this.routing.nextSequence(topic, path);
          this.holdOnTopic(topic, path, message, sequence, due);
          this.routing.store?.putMessage({ path, sequence, encoded: rhea.message.encode(message), enqueuedAt: due, deliveryCount: 0, state: "scheduled", deferred: false, expiresAt: null, locked: false });
          return sequence;
        }
        const sequence = this.routing.nextSequence(entity!, entity!.path);
        const stored: Stored = { message: { ...message }, sequence, enqueuedAt: new Date(due), deliveryCount: 0, state: "scheduled", deferred: false };
        entity!.messages.set(sequence, stored);
        this.routing.persist(entity!, stored);
        this.startTimer(entity!, stored);
        return sequence;
      }),
    );
  }

  /** Holds a topic's scheduled message until it is due, then fans it out. */
  holdOnTopic(topic: Topic, path: string, message: AmqpMessage, sequence: number, due: number): void {
    const timer = this.#clock.setTimeout(
      () => {
        topic.scheduled.delete(sequence);
        this.routing.atomically(() => {
          this.routing.store?.removeMessage(path, sequence);
          this.routing.deliver(path, message, 0);
        });
      },
      Math.max(0, due - this.#clock.now().getTime()),
      { unref: true },
    );
    topic.scheduled.set(sequence, { message, timer });
  }

  /** Enqueues an entity's scheduled message when it is due. */
  startTimer(entity: Entity, stored: Stored): void {
    stored.timer = this.#clock.setTimeout(
      () => {
        entity.messages.delete(stored.sequence);
        this.routing.atomically(() => {
          // Forwarded on, it leaves this entity; otherwise enqueue writes it over as active.
          this.routing.store?.removeMessage(entity.path, stored.sequence);
          this.routing.enqueue(entity, stored.message, 0, stored.sequence);
        });
      },
      Math.max(0, stored.enqueuedAt.getTime() - this.#clock.now().getTime()),
      { unref: true },
    );
  }

  /** Cancels scheduled messages; numbers that are not scheduled (any more) are ignored, as in Service Bus. */
  cancel(path: string, sequences: number[]): void {
    const topic = this.registry.topic(path);
    const entity = topic ? undefined : this.registry.entity(path);
    this.routing.atomically(() => {
      for (const sequence of sequences) {
        if (topic) {
          if (!topic.scheduled.has(sequence)) continue;
          this.#clock.clearTimeout(topic.scheduled.get(sequence)?.timer);
          topic.scheduled.delete(sequence);
          this.routing.store?.removeMessage(path, sequence);
          continue;
        }
        const stored = entity?.messages.get(sequence);
        if (stored?.state === "scheduled") {
          this.#clock.clearTimeout(stored.timer);
          entity!.messages.delete(sequence);
          this.routing.store?.removeMessage(entity!.path, sequence);
        }
      }
    });
  }
}
