/**
 * Peek-lock: locks keyed by the token the client sends back, their timers and renewal, settlement
 * (complete, abandon, defer, dead-letter), MaxDeliveryCount, and the removal of a message, also
 * when its time to live has passed. A lock that runs out counts as an abandon.
 */
import type { Clock } from "../../runtime/clock.js";
import { ManagementFailure, sessionOf, type Disposition, type Entity, type Stored } from "./entities.js";
import type { Routing } from "./routing.js";

export class Locks {
  readonly #locks = new Map<string, { entity: Entity; stored: Stored }>();
  readonly #clock: Clock;

  constructor(private readonly routing: Routing) {
    this.#clock = routing.clock;
  }

  /** Removes a message whose time to live has passed (to the dead-letter queue when the entity says so). */
  expire(entity: Entity, stored: Stored): boolean {
    if (stored.expiresAt === undefined || stored.expiresAt > this.#clock.now().getTime() || stored.state === "locked") return false;
    this.routing.atomically(() => {
      this.remove(entity, stored);
      if (entity.options.deadLetteringOnMessageExpiration) this.routing.deadLetter(entity, stored.message, "TTLExpiredException", "The message expired and was dead lettered.");
    });
    return true;
  }

  /** Locks a message handed out in peek-lock under the key the client will send back. */
  lock(entity: Entity, stored: Stored, lockKey: string): void {
    stored.state = "locked";
    stored.lockKey = lockKey;
    this.#locks.set(lockKey, { entity, stored });
    this.#startLockTimer(entity, stored);
    this.routing.store?.markLocked(entity.path, stored.sequence, true);
  }

  #startLockTimer(entity: Entity, stored: Stored): void {
    this.#clock.clearTimeout(stored.timer);
    stored.lockedUntil = new Date(this.#clock.now().getTime() + entity.options.lockDurationMs);
    stored.timer = this.#clock.setTimeout(() => this.routing.atomically(() => this.unlock(entity, stored, {})), entity.options.lockDurationMs, { unref: true });
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
    this.routing.atomically(() => this.#settle(lockKey, disposition));
  }

  #settle(lockKey: string, disposition: Disposition): void {
    const { entity, stored } = this.#locked(lockKey);
    const properties = disposition.kind === "complete" ? undefined : disposition.properties;
    if (properties) stored.message = { ...stored.message, application_properties: { ...(stored.message.application_properties ?? {}), ...properties } };
    switch (disposition.kind) {
      case "complete":
        this.remove(entity, stored);
        break;
      case "abandon":
        this.unlock(entity, stored, { countDelivery: true });
        break;
      case "defer":
        this.#releaseLock(stored);
        stored.state = "deferred";
        stored.deferred = true;
        this.routing.persist(entity, stored);
        break;
      case "deadLetter":
        this.remove(entity, stored);
        this.routing.deadLetter(entity, stored.message, disposition.reason ?? "", disposition.description ?? "");
        break;
    }
  }

  renewLock(lockKey: string): Date {
    const { entity, stored } = this.#locked(lockKey);
    this.#startLockTimer(entity, stored);
    return stored.lockedUntil!;
  }

  #releaseLock(stored: Stored): void {
    this.#clock.clearTimeout(stored.timer);
    stored.timer = undefined;
    if (stored.lockKey) this.#locks.delete(stored.lockKey);
    stored.lockKey = undefined;
    stored.lockedUntil = undefined;
  }

  /** Ends a lock (abandon or expiry): the message is handed out again, or dead-lettered past MaxDeliveryCount. */
  unlock(entity: Entity, stored: Stored, { countDelivery = true }: { countDelivery?: boolean }): void {
    if (stored.state !== "locked") return;
    this.#releaseLock(stored);
    if (countDelivery) stored.deliveryCount++;
    if (stored.deliveryCount >= entity.options.maxDeliveryCount) {
      this.remove(entity, stored);
      this.routing.deadLetter(entity, stored.message, "MaxDeliveryCountExceeded", `Message could not be consumed after ${entity.options.maxDeliveryCount} delivery attempts.`);
      return;
    }
    if (stored.deferred) {
      stored.state = "deferred";
      this.routing.persist(entity, stored);
      return;
    }
    this.routing.makeReady(entity, stored);
  }

  /**
   * Ends a lock whose delivery never reached the client (its link closed before the transfer was
   * written): the message is active again and its delivery count is unchanged, since nobody saw it.
   */
  release(lockKey: string): void {
    const found = this.#locks.get(lockKey);
    if (found && found.stored.lockKey === lockKey) this.unlock(found.entity, found.stored, { countDelivery: false });
  }

  /**
   * Abandons the locked messages of a session whose receiver went away: their lock was the
   * session's, so the next receiver of the session gets them first, counted as delivered once more.
   */
  abandonSession(entity: Entity, sessionId: string): void {
    for (const { entity: owner, stored } of [...this.#locks.values()]) {
      if (owner === entity && sessionOf(stored.message) === sessionId) this.unlock(entity, stored, { countDelivery: true });
    }
  }

  /** Takes a message out of its entity (and the store), ending any lock on it. */
  remove(entity: Entity, stored: Stored): void {
    this.#releaseLock(stored);
    entity.messages.delete(stored.sequence);
    entity.ready.delete(stored);
    this.routing.store?.removeMessage(entity.path, stored.sequence);
  }
}
