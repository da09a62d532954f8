/**
 * The one clock: what time it is and when something is due. Everything whose behaviour is a span
 * of time (job leases and back-off, the poll of the job runner, relay retries, the broker's message
 * time-to-live, lock durations and scheduled messages) reads and waits through a `Clock`, so a test
 * can move time with a `ManualClock` instead of sleeping.
 */
import { DURATION_FORMS, parseDuration } from "./duration.js";

/** A pending timer of a clock; only the clock that made it can clear it. */
export interface ClockTimer {
  readonly [timerTag]: true;
}
declare const timerTag: unique symbol;

export interface Clock {
  now(): Date;
  /** Calls `callback` once, `ms` from now; `unref`: a pending timer does not keep the process alive. */
  setTimeout(callback: () => void, ms: number, options?: { unref?: boolean }): ClockTimer;
  /** Calls `callback` every `ms` until cleared. */
  setInterval(callback: () => void, ms: number): ClockTimer;
  /** Clears a timer of either kind; nothing happens for one that fired or was cleared. */
  clearTimeout(timer: ClockTimer | undefined): void;
  /**
   * Optional, for a clock that moves by hand: reports work in progress that may set timers (a
   * plug-in running in a worker process, on a clock's time); the clock does not fire its next
   * timer until every hold is released. Returns the function that releases this hold.
   */
  hold?(): () => void;
}

/** The longest delay of a Node timer, ms (about 24.8 days): Node fires a timer set for longer at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Real time: `new Date()` and Node's timers. */
export const systemClock: Clock = Object.freeze({
  now: () => new Date(),
  setTimeout: (callback: () => void, ms: number, options?: { unref?: boolean }) => {
    const timer = setTimeout(callback, Math.min(ms, MAX_TIMER_MS));
    if (options?.unref) timer.unref();
    return timer as unknown as ClockTimer;
  },
  setInterval: (callback: () => void, ms: number) => setInterval(callback, Math.min(ms, MAX_TIMER_MS)) as unknown as ClockTimer,
  clearTimeout: (timer: ClockTimer | undefined) => clearTimeout(timer as unknown as NodeJS.Timeout | undefined),
});

/** One turn of the event loop: the promise jobs and I/O callbacks that are ready run first. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Pending {
  id: number;
  due: number;
  every: number | undefined;
  callback: () => void;
}

/**
 * A clock for tests: time stands still until `advance(ms)` moves it, firing the timers that fall
 * due in their order (by due time, then the order they were set). Between two timers it lets the
 * event loop turn, so work a timer starts (promise jobs, a store write) runs, and the timers that
 * work sets fire too if they fall due within the advance. Work held with `hold()` (plug-ins of a
 * runtime whose `pluginTime` is "clock", running in their worker process) is waited for too.
 *
 * @example
 * const clock = new ManualClock();
 * const host = await createHost({ manifest, clock, jobs: { backoffBaseMs: 1_000 } });
 * await host.runJobs();          // the job asks to be retried
 * await clock.advance(1_000);    // its back-off runs out
 * await host.runJobs();          // the second attempt
 */
export class ManualClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, Pending>();
  readonly #waiters: Array<() => void> = [];
  readonly #holds = new Set<object>();
  readonly #unheld: Array<() => void> = [];

  /** @param start the time it shows first. @default 2026-01-01T00:00:00.000Z */
  constructor(start: Date | string | number = "2026-01-01T00:00:00.000Z") {
    this.#now = new Date(start).getTime();
    if (Number.isNaN(this.#now)) throw new RangeError(`ManualClock: ${String(start)} is not a time`);
  }

  now(): Date {
    return new Date(this.#now);
  }

  setTimeout(callback: () => void, ms: number): ClockTimer {
    return this.#add(callback, ms, undefined);
  }

  setInterval(callback: () => void, ms: number): ClockTimer {
    return this.#add(callback, ms, Math.max(1, ms));
  }

  clearTimeout(timer: ClockTimer | undefined): void {
    this.#timers.delete(timer as unknown as number);
  }

  /** Timers set and not yet fired or cleared. */
  get pending(): number {
    return this.#timers.size;
  }

  /** How long until the next timer is due, ms; undefined when none is set. */
  get nextDueIn(): number | undefined {
    const next = this.#next(Infinity);
    return next === undefined ? undefined : next.due - this.#now;
  }

  /**
   * Resolves once a timer is set (at once if one is): for work that waits on something real (another
   * process, a socket) before it sets its next timer.
   */
  whenTimerSet(): Promise<void> {
    if (this.#timers.size > 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  hold(): () => void {
    const hold = {};
    this.#holds.add(hold);
    return () => {
      if (this.#holds.delete(hold) && this.#holds.size === 0) for (const wake of this.#unheld.splice(0)) wake();
    };
  }

  /**
   * Moves time forward, firing each timer that falls due, in order. `duration`: milliseconds, or a
   * string such as "500ms", "10s", "2d" or "1h30m"; anything else is a RangeError.
   */
  async advance(duration: number | string): Promise<void> {
    const ms = parseDuration(duration);
    if (ms === undefined) throw new RangeError(`ManualClock.advance: ${typeof duration === "string" ? JSON.stringify(duration) : String(duration)} is not a duration; give ${DURATION_FORMS}`);
    const until = this.#now + ms;
    for (;;) {
      await this.#quiet();
      const next = this.#next(until);
      if (!next) break;
      this.#now = Math.max(this.#now, next.due);
      if (next.every === undefined) this.#timers.delete(next.id);
      else next.due += next.every;
      next.callback();
    }
    this.#now = until;
    await this.#quiet();
  }

  /**
   * Resolves after a turn of the event loop at whose end no work is held (a plug-in a timer woke has
   * run and set its timers, and what its end started in this process has had its turn).
   */
  async #quiet(): Promise<void> {
    for (;;) {
      await turn();
      if (this.#holds.size === 0) return;
      await new Promise<void>((resolve) => this.#unheld.push(resolve));
    }
  }

  #add(callback: () => void, ms: number, every: number | undefined): ClockTimer {
    const id = this.#nextId++;
    this.#timers.set(id, { id, due: this.#now + Math.max(0, Number.isFinite(ms) ? ms : 0), every, callback });
    for (const wake of this.#waiters.splice(0)) wake();
    return id as unknown as ClockTimer;
  }

  /** The first timer due by `until`: the earliest, and of those the first set. */
  #next(until: number): Pending | undefined {
    let first: Pending | undefined;
    for (const timer of this.#timers.values()) if (timer.due <= until && (!first || timer.due < first.due || (timer.due === first.due && timer.id < first.id))) first = timer;
    return first;
  }
}
