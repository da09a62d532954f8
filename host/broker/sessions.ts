/**
 * Sessions of session-enabled entities: which session a "next available session" receiver gets,
 * the session lock a receiver holds (its timer and renewal), releasing it when the receiver goes,
 * and the session state kept with setSessionState.
 */
import type { Clock } from "../../runtime/clock.js";
import { ManagementFailure, sessionOf, type Entity, type Session } from "./entities.js";
import type { Locks } from "./locks.js";
import type { Routing } from "./routing.js";

export class Sessions {
  readonly #clock: Clock;

  constructor(
    private readonly routing: Routing,
    private readonly locks: Locks,
  ) {
    this.#clock = routing.clock;
  }

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
    this.#clock.clearTimeout(session.timer);
    session.onLost = onLost;
    session.lockedUntil = new Date(this.#clock.now().getTime() + entity.options.lockDurationMs);
    // The holder's link is closed by onLost; closing it releases the session (releaseSession).
    session.timer = this.#clock.setTimeout(
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
    this.#clock.clearTimeout(session.timer);
    session.holder = undefined;
    session.timer = undefined;
    this.routing.atomically(() => this.locks.abandonSession(entity, sessionId));
    this.routing.onReady(entity);
  }

  sessionState(entity: Entity, sessionId: string, state?: Buffer | null): Buffer | null {
    const session = this.#session(entity, sessionId);
    if (state !== undefined) {
      session.state = state;
      this.routing.store?.saveSessionState(entity.path, sessionId, state);
    }
    return session.state;
  }

  #session(entity: Entity, sessionId: string): Session {
    if (!entity.options.requiresSession) throw new ManagementFailure(400, "amqp:not-allowed", `${entity.path} is not session-enabled: create it with RequiresSession, or receive without a session`);
    let session = entity.sessions.get(sessionId);
    if (!session) entity.sessions.set(sessionId, (session = { state: null }));
    return session;
  }
}
