/**
 * pluginTime "clock": plug-ins follow the runtime's clock. Inside the sandbox Date shows the clock's
 * time, and setTimeout and setInterval are timers of that clock, so a test moves a plug-in through
 * days with a ManualClock and no real waiting. With the default, "system", Date is the real one.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { createHost, createSandboxRuntime, type Bundle, type ExecutionReport } from "../../dist/host/index.js";
import { Entity } from "../../dist/sdk/index.js";
import { ManualClock } from "../../dist/host/testing/index.js";
import { fastRuntime, hostWith, rows, step } from "../fixtures/pipeline/support.js";
import { bundle, context, useRuntime, wireRecorder } from "../helpers/runtime.js";

const DAY = 86_400_000;
const START = "2026-03-01T09:00:00.000Z";

/** A plug-in named Spec whose async execute() body is `body`, with `out` (its output parameters) and `sleep(ms)` in scope. */
function plugin(body: string): Bundle {
  return bundle(`
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
module.exports = {
  Spec: class {
    async execute(sp) {
      const out = sp.getService("IPluginExecutionContext").outputParameters;
      ${body}
    }
  }
};`);
}

function outputsOf(report: ExecutionReport): Record<string, unknown> {
  if (!report.ok) throw new Error(`expected the execution to succeed; it failed with ${report.error.code}: ${report.error.message}`);
  return report.changes.outputParameters;
}

/** Whether `promise` has settled, after the work that is ready has run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('pluginTime "clock"', () => {
  const clock = new ManualClock(START);
  const runtime = useRuntime({ clock, pluginTime: "clock" });
  const run = (b: Bundle) => runtime().execute({ bundle: b, typeName: "Spec", context: context() });

  test("Date.now(), new Date() and Date() inside a plug-in show the clock's time", async () => {
    const report = await run(
      plugin(`out.now = Date.now(); out.iso = new Date().toISOString(); out.text = Date(); out.given = new Date(0).toISOString();
        out.isDate = new Date() instanceof Date && new Date().constructor === Date; out.value = new Date(); out.parsed = Date.parse("2001-02-03T00:00:00Z"); out.utc = Date.UTC(2001, 1, 3);`),
    );
    const now = clock.now().getTime();
    expect(outputsOf(report)).toEqual({
      now,
      iso: clock.now().toISOString(),
      text: new Date(now).toString(),
      given: "1970-01-01T00:00:00.000Z",
      isDate: true,
      value: clock.now(),
      parsed: Date.UTC(2001, 1, 3),
      utc: Date.UTC(2001, 1, 3),
    });
  });

  test('Date keeps the intrinsic\'s shape: name, length, statics, subclasses and a native-looking source', async () => {
    const report = await run(
      plugin(`class Day extends Date { iso() { return this.toISOString(); } }
        out.sub = new Day().iso(); out.subInstance = new Day() instanceof Date;
        out.name = Date.name; out.length = Date.length; out.nowName = Date.now.name;
        out.source = Function.prototype.toString.call(Date).includes("[native code]");
        out.nowSource = Function.prototype.toString.call(Date.now).includes("[native code]");
        out.keys = Object.getOwnPropertyNames(Date).sort().join(",");
        out.descriptor = Object.getOwnPropertyDescriptor(Date, "now").value() === Date.now();`),
    );
    expect(outputsOf(report)).toEqual({
      sub: clock.now().toISOString(),
      subInstance: true,
      name: "Date",
      length: 7,
      nowName: "now",
      source: true,
      nowSource: true,
      keys: Object.getOwnPropertyNames(Date).sort().join(","),
      descriptor: true,
    });
  });

  test('the plug-in sees each advance of the clock: clock.advance("2d") between two executions moves its Date by two days', async () => {
    const readNow = plugin("out.now = Date.now();");
    const before = outputsOf(await run(readNow)).now as number;
    await clock.advance("2d");
    const after = outputsOf(await run(readNow)).now as number;
    expect(after - before).toBe(2 * DAY);
    expect(after).toBe(clock.now().getTime());
  });

  test("a plug-in that awaits a day-long setTimeout is still pending until the clock is advanced by a day, then completes with no real waiting", async () => {
    const started = performance.now();
    const pending = run(plugin(`const before = Date.now(); await sleep(${DAY}); out.slept = Date.now() - before;`));
    await clock.whenTimerSet();
    expect(await settled(pending)).toBe(false);
    await clock.advance(DAY - 1);
    expect(await settled(pending)).toBe(false);
    await clock.advance(1);
    expect(outputsOf(await pending)).toEqual({ slept: DAY });
    expect(clock.pending).toBe(0);
    expect(performance.now() - started).toBeLessThan(30_000);
  });

  test("timers fire in due order, each at its due time, and the timers their callbacks set fire within the same advance", async () => {
    const pending = run(
      plugin(`const fired = [];
        const t0 = Date.now();
        const at = (name) => () => fired.push(name + "@" + (Date.now() - t0));
        await new Promise((resolve) => {
          setTimeout(at("b"), 2000);
          setTimeout(at("a"), 1000);
          setTimeout(() => { at("c")(); setTimeout(() => { at("d")(); resolve(); }, 500); }, 3000);
        });
        out.fired = fired.join(" ");`),
    );
    await clock.whenTimerSet();
    await clock.advance("1h");
    expect(outputsOf(await pending)).toEqual({ fired: "a@1000 b@2000 c@3000 d@3500" });
  });

  test("a timer after an awaited sleep chain: every follow-up of one advance runs before it returns", async () => {
    const pending = run(plugin(`const t0 = Date.now(); for (let i = 0; i < 5; i++) await sleep(60_000); out.elapsed = Date.now() - t0;`));
    await clock.whenTimerSet();
    await clock.advance("10m");
    expect(outputsOf(await pending)).toEqual({ elapsed: 300_000 });
  });

  test("a service call between two timers: the timer after the call's answer fires within the same advance", async () => {
    const services = wireRecorder(() => ({ results: {} }));
    const pending = runtime().execute(
      {
        bundle: plugin(`const t0 = Date.now();
          await sleep(1000);
          await sp.getService("IOrganizationServiceFactory").createOrganizationService(null).execute({ requestName: "WhoAmI", parameters: {} });
          out.calledAt = Date.now() - t0;
          await sleep(1000);
          out.elapsed = Date.now() - t0;`),
        typeName: "Spec",
        context: context(),
      },
      services,
    );
    await clock.whenTimerSet();
    await clock.advance("5s");
    expect(outputsOf(await pending)).toEqual({ calledAt: 1000, elapsed: 2000 });
    expect(services.calls).toHaveLength(1);
  });

  test("setInterval repeats once per period until cleared, and clearTimeout keeps a timer from firing", async () => {
    const pending = run(
      plugin(`const t0 = Date.now();
        const ticks = [];
        let cleared = false;
        const never = setTimeout(() => { cleared = true; }, 1500);
        clearTimeout(never);
        await new Promise((resolve) => {
          const interval = setInterval(() => {
            ticks.push(Date.now() - t0);
            if (ticks.length === 4) { clearInterval(interval); resolve(); }
          }, 1000);
        });
        await sleep(5000);
        out.ticks = ticks.join(","); out.cleared = cleared;`),
    );
    await clock.whenTimerSet();
    await clock.advance("20s");
    expect(outputsOf(await pending)).toEqual({ ticks: "1000,2000,3000,4000", cleared: false });
  });

  test("the timers of an execution that ended are dropped from the clock", async () => {
    const report = await run(plugin(`setTimeout(() => {}, ${DAY}); setInterval(() => {}, 1000); out.done = true;`));
    expect(outputsOf(report)).toEqual({ done: true });
    expect(clock.pending).toBe(0);
  });

  test("the execution's own limits stay real time: a plug-in waiting on the clock past its wall-clock limit times out", async () => {
    const report = await runtime().execute({ bundle: plugin(`await sleep(${DAY});`), typeName: "Spec", context: context(), limits: { wallTimeMs: 300 } });
    expect(report.ok).toBe(false);
    expect(!report.ok && report.error.code).toBe("SANDBOX_TIMEOUT");
    expect(clock.pending).toBe(0);
  });
});

describe('pluginTime "clock" on the system clock', () => {
  const runtime = useRuntime({ pluginTime: "clock" });
  const run = (b: Bundle, wallTimeMs = 10_000) => runtime().execute({ bundle: b, typeName: "Spec", context: context(), limits: { wallTimeMs } });

  test("the plug-in's Date is the real time and its timers, kept by the host, wait in real time", async () => {
    const before = Date.now();
    const report = await run(plugin(`const t0 = Date.now(); await sleep(20); out.t0 = t0; out.slept = Date.now() - t0;`));
    const { t0, slept } = outputsOf(report) as { t0: number; slept: number };
    expect(t0).toBeGreaterThanOrEqual(before);
    expect(slept).toBeGreaterThanOrEqual(20);
  });

  test("a timer longer than Node's longest (about 24.8 days) does not fire at once: the execution waits until its wall-clock limit", async () => {
    const report = await run(plugin(`await sleep(${30 * DAY}); out.woke = true;`), 300);
    expect(!report.ok && report.error.code).toBe("SANDBOX_TIMEOUT");
  });
});

describe('pluginTime "system" (the default)', () => {
  const clock = new ManualClock("2001-01-01T00:00:00.000Z");
  const runtime = useRuntime({ clock });

  test("Date inside a plug-in is the real time, whatever the runtime's clock", async () => {
    const before = Date.now();
    const report = await runtime().execute({ bundle: plugin("out.now = Date.now(); out.same = Date.now === Date.now;"), typeName: "Spec", context: context() });
    const after = Date.now();
    const { now, same } = outputsOf(report) as { now: number; same: boolean };
    expect(same).toBe(true);
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(after);
  });
});

describe("the pluginTime option", () => {
  test("is refused with OPTIONS_INVALID when it is not system or clock", () => {
    expect(() => createSandboxRuntime({ pluginTime: "virtual" as never })).toThrow(expect.objectContaining({ code: "OPTIONS_INVALID", message: expect.stringContaining('options.pluginTime must be "system" or "clock"; got "virtual"') }));
  });

  test("createHost with a ManualClock and runtimeOptions.pluginTime \"clock\": its plug-ins see the host's clock", async () => {
    const clock = new ManualClock(START);
    await using host = await createHost({ clock, runtimeOptions: { workers: 1, prewarmIsolates: 0, pluginTime: "clock" } });
    const report = await host.runtime.execute({ bundle: plugin("out.now = new Date().toISOString();"), typeName: "Spec", context: context() });
    expect(outputsOf(report)).toEqual({ now: START });
  });

  test('createHost with a ManualClock and pluginTime "clock": a step that waits a day, in a plug-in\'s nested request, completes when the test advances the host\'s clock by a day', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-plugin-time-"));
    const file = path.join(dir, "reminders.js");
    // Account (stage 40) creates a task through its organization service; Task (stage 20) waits a day, then stamps the task.
    writeFileSync(
      file,
      `exports.FollowUp = class { async execute(sp) {
        const org = sp.getService("IOrganizationServiceFactory").createOrganizationService(null);
        await org.execute({ requestName: "Create", parameters: { Target: { $type: "Entity", logicalName: "task", attributes: { subject: "follow up" } } } });
      } };
      exports.Remind = class { async execute(sp) {
        const target = sp.getService("IPluginExecutionContext").inputParameters.Target;
        const asked = new Date().toISOString();
        await new Promise((resolve) => setTimeout(resolve, ${DAY}));
        target.attributes.description = asked + " -> " + new Date().toISOString();
      } };`,
    );
    const clock = new ManualClock(START);
    try {
      await using host = await hostWith(file, { steps: [step("FollowUp", "Create", "account", 40), step("Remind", "Create", "task", 20)] }, { clock, runtimeOptions: { ...fastRuntime, pluginTime: "clock" } });
      const created = host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "Contoso" }) } });
      await clock.whenTimerSet();
      expect(await settled(created)).toBe(false);
      await clock.advance("1d");
      await created;
      expect((await rows(host, "task")).map((task) => task.attributes.description)).toEqual([`${START} -> 2026-03-02T09:00:00.000Z`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("createHost refuses a runtime clock other than the host's when plug-ins follow the clock", async () => {
    await expect(createHost({ clock: new ManualClock(), runtimeOptions: { clock: new ManualClock(), pluginTime: "clock" } })).rejects.toMatchObject({ code: "OPTIONS_INVALID" });
  });
});
