/**
 * The clock of a recording runtime and of a replay (both with `pluginTime: "clock"`): the time a
 * plug-in sees moves only when it is pinned (an execution starts, a service call is answered) or
 * when one of its timers fires (to the time it was set for), so a recording can say exactly what
 * time the plug-in saw each time its code was entered, and a replay can show it that time again.
 * Timers wait in real time.
 */
import { systemClock, type Clock, type ClockTimer } from "../../runtime/index.js";

export class PinnedClock implements Clock {
  #now: number;

  constructor(start: number = Date.now()) {
    this.#now = start;
  }

  now(): Date {
    return new Date(this.#now);
  }

  /** Shows `time` (epoch ms) from now on, and returns it. */
  pin(time: number = Date.now()): number {
    this.#now = time;
    return time;
  }

  setTimeout(callback: () => void, ms: number, options?: { unref?: boolean }): ClockTimer {
    const due = this.#now + ms;
    return systemClock.setTimeout(() => {
      this.#now = due;
      callback();
    }, ms, options);
  }

  setInterval(callback: () => void, ms: number): ClockTimer {
    let due = this.#now;
    return systemClock.setInterval(() => {
      due += ms;
      this.#now = due;
      callback();
    }, ms);
  }

  clearTimeout(timer: ClockTimer | undefined): void {
    systemClock.clearTimeout(timer);
  }
}
