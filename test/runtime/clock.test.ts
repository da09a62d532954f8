/**
 * The manual clock of `plugbox/testing`: time stands still until a test advances it; advancing
 * fires the timers that fall due, in order, and lets the work they start run before the next.
 */
import { describe, expect, it } from "vitest";
import { systemClock } from "../../dist/host/index.js";
import { ManualClock } from "../../dist/host/testing/index.js";

describe("ManualClock", () => {
  it("shows the time it was given and moves only when advanced", async () => {
    const clock = new ManualClock("2026-03-01T10:00:00.000Z");
    expect(clock.now().toISOString()).toBe("2026-03-01T10:00:00.000Z");
    await clock.advance(1_500);
    expect(clock.now().toISOString()).toBe("2026-03-01T10:00:01.500Z");
    expect(() => new ManualClock("not a time")).toThrow(RangeError);
    await expect(clock.advance(-1)).rejects.toThrow(RangeError);
  });

  it('advance takes a duration string ("500ms", "10s", "2d", "1h30m") read by the ms package, and refuses anything else with a RangeError naming the value and the accepted forms', async () => {
    const clock = new ManualClock("2026-03-01T00:00:00.000Z");
    await clock.advance("500ms");
    await clock.advance("10s");
    await clock.advance("2d");
    await clock.advance("1h30m");
    await clock.advance("1.5h");
    expect(clock.now().toISOString()).toBe("2026-03-03T03:00:10.500Z");
    for (const bad of ["2 fortnights", "", "-1d", "1h-30m", "soon"]) {
      await expect(clock.advance(bad)).rejects.toThrow(new RangeError(`ManualClock.advance: ${JSON.stringify(bad)} is not a duration; give a number of milliseconds (0 or more) or a string of one or more parts, each a number and a unit (ms, s, m, h, d, w, y): "500ms", "10s", "1.5h", "2d", "1h30m"`));
    }
    await expect(clock.advance(Number.NaN)).rejects.toThrow(/NaN is not a duration/);
    expect(clock.now().toISOString()).toBe("2026-03-03T03:00:10.500Z");
  });

  it("advance waits for held work before it fires the next timer, so the timers that work sets fire in their order", async () => {
    const clock = new ManualClock(0);
    const fired: Array<[string, number]> = [];
    clock.setTimeout(() => {
      fired.push(["first", clock.now().getTime()]);
      const release = clock.hold();
      // Work elsewhere (a plug-in in its worker process) sets a timer a little later, then releases the clock.
      setTimeout(() => {
        clock.setTimeout(() => fired.push(["set by the held work", clock.now().getTime()]), 5);
        release();
      }, 20);
    }, 10);
    clock.setTimeout(() => fired.push(["second", clock.now().getTime()]), 30);
    await clock.advance(100);
    expect(fired).toEqual([
      ["first", 10],
      ["set by the held work", 15],
      ["second", 30],
    ]);
  });

  it("advance fires the timers that fall due in order of due time, then of setting, each at its own time; a cleared one never fires", async () => {
    const clock = new ManualClock(0);
    const fired: Array<[string, number]> = [];
    const at = (name: string) => () => fired.push([name, clock.now().getTime()]);
    clock.setTimeout(at("b at 20"), 20);
    clock.setTimeout(at("a at 10"), 10);
    clock.setTimeout(at("c at 20"), 20);
    clock.clearTimeout(clock.setTimeout(at("cleared"), 5));
    clock.setTimeout(at("d at 100"), 100);
    await clock.advance(50);
    expect(fired).toEqual([
      ["a at 10", 10],
      ["b at 20", 20],
      ["c at 20", 20],
    ]);
    expect(clock.pending).toBe(1);
    expect(clock.nextDueIn).toBe(50);
    await clock.advance(50);
    expect(fired.at(-1)).toEqual(["d at 100", 100]);
    expect(clock.pending).toBe(0);
  });

  it("is async-safe: a timer set by promise work that a timer started fires within the same advance", async () => {
    const clock = new ManualClock(0);
    const fired: number[] = [];
    clock.setTimeout(() => {
      void Promise.resolve()
        .then(() => undefined)
        .then(() => clock.setTimeout(() => fired.push(clock.now().getTime()), 30));
    }, 10);
    await clock.advance(40);
    expect(fired).toEqual([40]);
  });

  it("an interval fires once per period until cleared", async () => {
    const clock = new ManualClock(0);
    const ticks: number[] = [];
    const interval = clock.setInterval(() => ticks.push(clock.now().getTime()), 25);
    await clock.advance(100);
    clock.clearTimeout(interval);
    await clock.advance(100);
    expect(ticks).toEqual([25, 50, 75, 100]);
  });

  it("whenTimerSet resolves once work that waited on something real sets its next timer", async () => {
    const clock = new ManualClock(0);
    await expect(Promise.race([clock.whenTimerSet().then(() => "set"), Promise.resolve("none yet")])).resolves.toBe("none yet");
    const set = clock.whenTimerSet();
    setImmediate(() => clock.setTimeout(() => undefined, 1_000));
    await set;
    expect(clock.nextDueIn).toBe(1_000);
  });

  it("the system clock tells real time and its timers are Node's", async () => {
    const before = Date.now();
    expect(systemClock.now().getTime()).toBeGreaterThanOrEqual(before);
    const fired = await new Promise<boolean>((resolve) => {
      systemClock.clearTimeout(systemClock.setTimeout(() => resolve(false), 0));
      systemClock.setTimeout(() => resolve(true), 0, { unref: true });
    });
    expect(fired).toBe(true);
  });
});
