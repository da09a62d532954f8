/**
 * Deliveries to receiver links: the ready messages of an entity go to its receivers within each
 * link's credit (docs/broker.md, "Flow control"), locked (peek-lock) or taken (receive-and-delete)
 * as their transfers are written; the client's dispositions settle them, and a link that goes away
 * gives back what it was never sent.
 */
import { randomBytes } from "node:crypto";
import { answerEveryDrain, isWritten, lockKeyOfTag, rhea, writableRoom, type Described, type RheaContext, type RheaDelivery, type RheaLink } from "./amqp.js";
import { BrokerError } from "./errors.js";
import { ManagementFailure, type Disposition, type Entity, type Stored } from "./entities.js";
import type { GroupCommit } from "./group-commit.js";
import type { Namespace } from "./namespace.js";
import type { SessionReceivers } from "./session-receivers.js";

const kEntity = Symbol("plugbox.broker.entity");
/** The deliveries a receiver link was sent and has not settled (a Set<Outstanding>). */
const kOutstanding = Symbol("plugbox.broker.outstanding");
interface Outstanding {
  delivery: RheaDelivery;
  entity: Entity;
  stored: Stored;
  receiveAndDelete: boolean;
  lockKey?: string;
}

/** The entity a receiver link takes messages from, once it receives. */
export function receiverEntity(link: RheaLink): Entity | undefined {
  return link[kEntity] as Entity | undefined;
}

export class Deliveries {
  readonly #receivers = new Map<Entity, Set<RheaLink>>();
  readonly #byDelivery = new WeakMap<RheaDelivery, Outstanding>();
  /** Rotates which receiver gets the odd message when shares tie. */
  #turn = 0;

  constructor(
    private readonly namespace: Namespace,
    private readonly sessions: SessionReceivers,
    private readonly commits: GroupCommit,
  ) {}

  /** A receiver link starts taking messages from an entity. */
  addReceiver(link: RheaLink, entity: Entity): void {
    link[kEntity] = entity;
    link[kOutstanding] = new Set<Outstanding>();
    answerEveryDrain(link);
    let links = this.#receivers.get(entity);
    if (!links) this.#receivers.set(entity, (links = new Set()));
    links.add(link);
  }

  /** A receiver link went away: it gets no more messages, and what it was never sent goes back. */
  removeReceiver(link: RheaLink): void {
    const entity = receiverEntity(link);
    if (entity) this.#receivers.get(entity)?.delete(link);
    this.#forgetDeliveries(link);
  }

  /**
   * Hands ready messages to the entity's receivers, never more than each link's credit allows, so a
   * message is locked only when its transfer is written (see writableRoom). Competing receivers of
   * a queue or subscription share the ready messages in proportion to their room; a session
   * receiver takes its session's messages only.
   */
  pump(entity: Entity | undefined): void {
    if (!entity || entity.ready.size === 0) return;
    // With a data dir, what one pass locks or takes is written in one commit.
    this.namespace.atomically(() => this.#pumpNow(entity));
  }

  #pumpNow(entity: Entity): void {
    const links = [...(this.#receivers.get(entity) ?? [])].filter((link) => !link.is_closed());
    if (entity.options.requiresSession) {
      this.sessions.serve(entity);
      for (const link of [...(this.#receivers.get(entity) ?? [])].filter((l) => !l.is_closed())) {
        const sessionId = this.sessions.sessionOf(link);
        for (let room = this.#room(link); room > 0; room--) {
          const stored = this.namespace.next(entity, sessionId);
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
      const stored = this.namespace.next(entity);
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
    if (receiveAndDelete) this.namespace.take(entity, stored);
    else this.namespace.lock(entity, stored, (lockKey = lockKeyOfTag(tag)));
    const delivery = link.send(this.namespace.outgoing(stored), tag);
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
   * (Locks.abandonSession, when the session is released).
   */
  #forgetDeliveries(link: RheaLink): void {
    const outstanding = link[kOutstanding] as Set<Outstanding> | undefined;
    if (!outstanding) return;
    this.namespace.atomically(() => {
      for (const entry of outstanding) {
        this.#byDelivery.delete(entry.delivery);
        if (isWritten(link, entry.delivery)) continue;
        if (entry.receiveAndDelete) this.namespace.restore(entry.entity, entry.stored);
        else this.namespace.release(entry.lockKey!);
      }
    });
    outstanding.clear();
  }

  /** The client settled a peek-lock delivery: act on it, and always answer with a settled disposition. */
  onOutcome(outcome: string, context: RheaContext): void {
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
    this.commits.run(
      () => this.namespace.settle(lockKeyOfTag(delivery.tag), disposition),
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
