import { describe, expect, it } from "vitest";
import { createSandboxRuntime, type SandboxServices } from "../../dist/host/index.js";
import { ManualClock } from "../../dist/host/testing/index.js";
import { bundle, context } from "../helpers/runtime.js";

const plugins = bundle(`
  class Echo {
    execute(sp) {
      const ctx = sp.getService("IPluginExecutionContext");
      ctx.outputParameters.n = ctx.sharedVariables.n;
    }
  }
  class Waits {
    async execute(sp) {
      await sp.getService("IOrganizationServiceFactory").createOrganizationService(null).execute({ requestName: "WhoAmI", parameters: {} });
    }
  }
  module.exports = { Echo, Waits };
`);

describe("sandbox runtime supervisor", () => {
  it("recycling: replaces a worker after recycleAfterExecutions and keeps serving", async () => {
    const runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0, recycleAfterExecutions: 3 });
    try {
      await runtime.ready;
      const [first] = runtime.workerPids;
      for (let n = 0; n < 6; n++) {
        const report = await runtime.execute({ bundle: plugins, typeName: "Echo", context: context({ sharedVariables: { n } }) });
        expect(report.ok && report.changes.outputParameters.n).toBe(n);
      }
      expect(runtime.workerPids).not.toContain(first);
    } finally {
      await runtime.close();
    }
  });

  it("concurrency: runs executions from several callers at once and answers each its own", async () => {
    const runtime = createSandboxRuntime({ workers: 2, prewarmIsolates: 1 });
    try {
      const reports = await Promise.all(
        Array.from({ length: 20 }, (_, n) =>
          runtime.execute({ bundle: plugins, typeName: "Echo", isolation: n % 2 ? "reuse" : "fresh", context: context({ sharedVariables: { n } }) }),
        ),
      );
      expect(reports.map((r) => (r.ok ? r.changes.outputParameters.n : r.error.code))).toEqual(Array.from({ length: 20 }, (_, n) => n));
    } finally {
      await runtime.close();
    }
  });

  it("abort: an AbortSignal ends an execution that waits on a service with SANDBOX_ABORTED", async () => {
    const runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0 });
    try {
      const controller = new AbortController();
      let callSignal: AbortSignal | undefined;
      const services: SandboxServices = {
        call: (request) => {
          callSignal = request.signal;
          controller.abort("the caller gave up");
          return new Promise(() => undefined);
        },
      };
      const report = await runtime.execute({ bundle: plugins, typeName: "Waits", context: context(), signal: controller.signal }, services);
      expect(report.ok).toBe(false);
      if (!report.ok) {
        expect(report.error.code).toBe("SANDBOX_ABORTED");
        expect(report.error.message).toContain("the caller gave up");
      }
      expect(callSignal?.aborted).toBe(true);
      const next = await runtime.execute({ bundle: plugins, typeName: "Echo", context: context({ sharedVariables: { n: 1 } }) });
      expect(next.ok).toBe(true);
    } finally {
      await runtime.close();
    }
  });

  it("abort: a signal already aborted settles at once without running the plug-in", async () => {
    const runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0 });
    try {
      const report = await runtime.execute({ bundle: plugins, typeName: "Echo", context: context(), signal: AbortSignal.abort("no") });
      expect(!report.ok && report.error.code).toBe("SANDBOX_ABORTED");
    } finally {
      await runtime.close();
    }
  });

  it("close: lets in-flight executions finish, then refuses new ones with SANDBOX_CLOSED", async () => {
    const runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0 });
    await runtime.ready;
    let release!: (value: unknown) => void;
    let called!: () => void;
    const calling = new Promise<void>((resolve) => (called = resolve));
    const services: SandboxServices = {
      call: () =>
        new Promise((resolve) => {
          release = resolve;
          called();
        }),
    };
    const inflight = runtime.execute({ bundle: plugins, typeName: "Waits", context: context() }, services);
    await calling;
    const closing = runtime.close();
    release({ responseName: "WhoAmI", results: {} });
    expect((await inflight).ok).toBe(true);
    await closing;
    await expect(runtime.execute({ bundle: plugins, typeName: "Echo", context: context() })).rejects.toMatchObject({ code: "SANDBOX_CLOSED" });
  });

  it("startOnFirstExecution: no worker runs until the first execution, which starts one and runs", async () => {
    const runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0, startOnFirstExecution: true });
    try {
      expect(runtime.workerPids).toEqual([]);
      const report = await runtime.execute({ bundle: plugins, typeName: "Echo", context: context({ sharedVariables: { n: 7 } }) });
      expect(report.ok && report.changes.outputParameters).toEqual({ n: 7 });
      expect(runtime.workerPids).toHaveLength(1);
    } finally {
      await runtime.close();
    }
  });

  it("startOnFirstExecution: a runtime closed before any execution started no worker", async () => {
    const runtime = createSandboxRuntime({ workers: 2, startOnFirstExecution: true });
    await runtime.close();
    await runtime.ready;
    expect(runtime.workerPids).toEqual([]);
  });

  it("options: an invalid runtime option is refused with OPTIONS_INVALID naming it", () => {
    expect(() => createSandboxRuntime({ startOnFirstExecution: "yes" } as never)).toThrow(expect.objectContaining({ code: "OPTIONS_INVALID", message: expect.stringContaining("options.startOnFirstExecution must be true or false") }));
    expect(() => createSandboxRuntime({ workers: 0 })).toThrow(expect.objectContaining({ code: "OPTIONS_INVALID", message: expect.stringContaining("options.workers") }));
    expect(() => createSandboxRuntime({ limits: { memoryMb: 4 } })).toThrow(expect.objectContaining({ code: "OPTIONS_INVALID", message: expect.stringContaining("options.limits.memoryMb") }));
    expect(() => createSandboxRuntime({ bogus: 1 } as never)).toThrow(expect.objectContaining({ code: "OPTIONS_INVALID", message: expect.stringContaining("bogus") }));
  });

  it("services: a host service error reaches the plug-in as { code, message } only, and a non-plugbox error as a generic failure", async () => {
    const runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0 });
    try {
      const probe = bundle(`
        module.exports = { Probe: class { async execute(sp) {
          const ctx = sp.getService("IPluginExecutionContext");
          try { await sp.getService("IOrganizationServiceFactory").createOrganizationService(null).delete("account", "00000000-0000-0000-0000-000000000001"); }
          catch (e) { ctx.outputParameters.code = e.code; ctx.outputParameters.message = e.message; ctx.outputParameters.keys = Object.keys(e).join(","); }
        } } };
      `);
      const hostFailure: SandboxServices = {
        call: async () => {
          throw new Error("connection to /var/lib/secret.db failed at Store.open (/srv/host/store.js:10:5)");
        },
      };
      const report = await runtime.execute({ bundle: probe, typeName: "Probe", context: context() }, hostFailure);
      expect(report.ok).toBe(true);
      if (report.ok) {
        expect(report.changes.outputParameters).toMatchObject({ code: "SERVICE_FAILED", message: "the organization service failed" });
        expect(JSON.stringify(report.changes)).not.toContain("/srv/host");
      }
    } finally {
      await runtime.close();
    }
  });

  it("self-healing: workers killed while they start make executions fail at once with SANDBOX_UNAVAILABLE saying why; once the kills stop, it recovers by itself and health() says so", { timeout: 60_000 }, async () => {
    const clock = new ManualClock();
    const runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0, startRetryBaseMs: 20, startRetryMaxMs: 200, unavailableAfterStartFailures: 3, clock });
    // Every worker is killed while it starts, as a host whose machine cannot start processes: the
    // first as soon as it is spawned, each next one as soon as its back-off runs out and it is spawned.
    const killStarting = () => {
      for (const pid of runtime.workerPids) process.kill(pid, "SIGKILL");
    };
    killStarting();
    const unavailable = expect(runtime.ready).rejects.toMatchObject({ code: "SANDBOX_UNAVAILABLE" });
    try {
      for (let failures = 1; failures < 3; failures++) {
        await clock.whenTimerSet(); // its start failed; the next one waits out the back-off
        expect(clock.nextDueIn).toBe(20 * 2 ** (failures - 1));
        await clock.advance(clock.nextDueIn!);
        killStarting();
      }
      await unavailable;
      expect(runtime.health().status).toBe("unavailable");
      const down = await runtime.execute({ bundle: plugins, typeName: "Echo", context: context({ sharedVariables: { n: 1 } }) });
      expect(down.ok).toBe(false);
      if (!down.ok) {
        expect(down.error.code).toBe("SANDBOX_UNAVAILABLE");
        expect(down.error.message).toMatch(/\d+ attempts in a row to start one failed, the last because a worker exited while starting \(signal SIGKILL\)/);
        expect(down.error.message).toContain("the runtime keeps trying");
      }
      const health = runtime.health();
      expect(health.startFailuresInARow).toBeGreaterThanOrEqual(3);
      expect(health.lastStartFailure?.message).toContain("SIGKILL");
      expect(health.unavailableSince).toBe(clock.now().toISOString());
      expect(health.nextStartAt).toBe(new Date(clock.now().getTime() + 80).toISOString());
    } finally {
      await clock.whenTimerSet();
      await clock.advance(clock.nextDueIn!); // the kills stop: the next worker starts
    }
    try {
      await expect.poll(() => runtime.health().status, { timeout: 20_000 }).toBe("ready");
      expect(runtime.health()).toMatchObject({ workers: { wanted: 1, ready: 1 }, startFailuresInARow: 0 });
      expect(runtime.health().unavailableSince).toBeUndefined();
      const up = await runtime.execute({ bundle: plugins, typeName: "Echo", context: context({ sharedVariables: { n: 2 } }) });
      expect(up.ok && up.changes.outputParameters.n).toBe(2);
      await runtime.ready;
    } finally {
      await runtime.close();
    }
    expect(runtime.health().status).toBe("closed");
  });

  it("self-healing: executions queued while workers start wait for them; a start that fails once is retried after the back-off, not given up", { timeout: 30_000 }, async () => {
    const clock = new ManualClock();
    const runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0, startRetryBaseMs: 50, startRetryMaxMs: 50, startOnFirstExecution: true, clock });
    try {
      const queued = runtime.execute({ bundle: plugins, typeName: "Echo", context: context({ sharedVariables: { n: 3 } }) });
      expect(runtime.health().status).toBe("starting");
      const [first] = runtime.workerPids;
      process.kill(first!, "SIGKILL");
      await clock.whenTimerSet();
      expect(runtime.workerPids).toEqual([]); // the next start waits out the back-off
      expect(runtime.health().nextStartAt).toBe(new Date(clock.now().getTime() + 50).toISOString());
      await clock.advance(50);
      const report = await queued;
      expect(report.ok && report.changes.outputParameters.n).toBe(3);
      expect(runtime.workerPids).not.toContain(first);
      expect(runtime.health().status).toBe("ready");
    } finally {
      await runtime.close();
    }
  });

  it("options: the start back-off is checked, its cap no less than its base", () => {
    expect(() => createSandboxRuntime({ startRetryBaseMs: 500, startRetryMaxMs: 100 })).toThrow(expect.objectContaining({ code: "OPTIONS_INVALID", message: expect.stringContaining("options.startRetryMaxMs (100) must not be less than options.startRetryBaseMs (500)") }));
    expect(() => createSandboxRuntime({ unavailableAfterStartFailures: 0 })).toThrow(expect.objectContaining({ code: "OPTIONS_INVALID", message: expect.stringContaining("options.unavailableAfterStartFailures") }));
  });
});
