/**
 * Session receivers: a receiver that names its session, or asks for the next available one, gets
 * the session's lock before its attach is answered; with no session available, its attach waits
 * until one has messages or the client's timeout runs out.
 */
import type { Clock, ClockTimer } from "../../runtime/clock.js";
import { holdAttach, longValue, rhea, sendHeldAttach, type RheaLink } from "./amqp.js";
import { ManagementFailure, type Entity } from "./entities.js";
import type { Namespace } from "./namespace.js";

export const SESSION_FILTER = "com.microsoft:session-filter";
const kSession = Symbol("plugbox.broker.session");
/** A receiver link whose attach is held until a session is available. */
const kWaiting = Symbol("plugbox.broker.waiting");
interface SessionWaiter {
  link: RheaLink;
  timer: ClockTimer;
}

/** .NET ticks (100 ns since 0001-01-01) as the 8 bytes of an AMQP long, as the client reads a session's locked-until. */
function dotNetTicks(date: Date): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigInt64BE(BigInt(date.getTime()) * 10_000n + 621_355_968_000_000_000n);
  return bytes;
}

export class SessionReceivers {
  readonly #waiters = new Map<Entity, SessionWaiter[]>();

  constructor(
    private readonly namespace: Namespace,
    private readonly clock: Clock,
    /** Called when a waiting receiver got its session: from then on it receives like any other. */
    private readonly onLocked: (link: RheaLink, entity: Entity) => void,
  ) {}

  /** The session a receiver link holds, if it is a session receiver. */
  sessionOf(link: RheaLink): string | undefined {
    return link[kSession] as string | undefined;
  }

  /**
   * "Next available session" with none available: as Service Bus does, the attach is answered only
   * once a session has messages, or with com.microsoft:timeout when the client's
   * `com.microsoft:timeout` (its operation timeout) runs out.
   */
  wait(link: RheaLink, entity: Entity): void {
    holdAttach(link);
    const requested = longValue(link.remote.attach.properties?.["com.microsoft:timeout"]);
    const timeoutMs = Number.isFinite(requested) && requested >= 0 ? requested : 60_000;
    const waiter: SessionWaiter = {
      link,
      timer: this.clock.setTimeout(() => {
        this.#removeWaiter(entity, waiter);
        sendHeldAttach(link);
        link.close({ condition: "com.microsoft:timeout", description: `No unlocked session with messages became available in ${entity.path} within ${timeoutMs} ms.` });
      }, timeoutMs),
    };
    let waiters = this.#waiters.get(entity);
    if (!waiters) this.#waiters.set(entity, (waiters = []));
    waiters.push(waiter);
    link[kWaiting] = { entity, waiter };
  }

  #removeWaiter(entity: Entity, waiter: SessionWaiter): void {
    this.clock.clearTimeout(waiter.timer);
    const waiters = this.#waiters.get(entity) ?? [];
    waiters.splice(waiters.indexOf(waiter) >>> 0, 1);
    waiter.link[kWaiting] = undefined;
  }

  /** Gives sessions that have messages to the receivers waiting for one, first come first served. */
  serve(entity: Entity): void {
    const waiters = this.#waiters.get(entity);
    while (waiters && waiters.length > 0) {
      const sessionId = this.namespace.availableSession(entity);
      if (sessionId === undefined) return;
      const waiter = waiters[0]!;
      this.#removeWaiter(entity, waiter);
      sendHeldAttach(waiter.link);
      if (this.lock(waiter.link, entity, sessionId)) this.onLocked(waiter.link, entity);
    }
  }

  /** Locks the session a receiver asked for (a string) or the next available one (null); false when it cannot. */
  lock(link: RheaLink, entity: Entity, requested: unknown): boolean {
    const sessionId = typeof requested === "string" ? requested : this.namespace.availableSession(entity);
    if (sessionId === undefined) {
      link.close({ condition: "com.microsoft:timeout", description: `No unlocked session with messages is available in ${entity.path}.` });
      return false;
    }
    let lockedUntil: Date;
    try {
      lockedUntil = this.namespace.lockSession(entity, sessionId, link, () =>
        link.close({ condition: "com.microsoft:session-lock-lost", description: `The lock on session '${sessionId}' of ${entity.path} ran out.` }),
      );
    } catch (error) {
      if (!(error instanceof ManagementFailure)) throw error;
      link.close({ condition: error.condition, description: error.message });
      return false;
    }
    link[kSession] = sessionId;
    // The client checks that the attach names the session it locked.
    link.set_source({ address: link.remote.attach.source?.address, filter: { [SESSION_FILTER]: sessionId } });
    link.local.attach.properties = { ...(link.remote.attach.properties ?? {}), "com.microsoft:locked-until-utc": rhea.types.wrap_long(dotNetTicks(lockedUntil)) };
    return true;
  }

  /** A receiver link that went away stops waiting for a session. */
  stopWaiting(link: RheaLink): void {
    const waiting = link[kWaiting] as { entity: Entity; waiter: SessionWaiter } | undefined;
    if (waiting) this.#removeWaiter(waiting.entity, waiting.waiter);
  }

  /** Releases the session a receiver link that went away held. */
  release(link: RheaLink, entity: Entity): void {
    if (link[kSession] !== undefined) this.namespace.releaseSession(entity, link[kSession] as string, link);
  }

  close(): void {
    for (const waiters of this.#waiters.values()) for (const { timer } of waiters) this.clock.clearTimeout(timer);
  }
}
