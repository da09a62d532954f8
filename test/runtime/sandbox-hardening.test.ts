/**
 * The sandbox's promises, tested as attacks from inside a plug-in (issue 15):
 * - no plug-in code runs outside a call the worker times (isolated-vm copies no plug-in value out);
 * - the isolate's default realm, where isolated-vm copies values, is out of reach and hardened;
 * - every byte of plug-in CPU time is under the CPU limit, and a breach costs only its execution;
 * - services answer only the execution that runs, while it runs;
 * - the code of a failure is the host's, never the plug-in's.
 *
 * The hostile values below are the ones that broke each promise before: each test names the route
 * (an unhandled rejection, a throw from a timer, a getter while the result is encoded) and the probe
 * (a getter, Error.prepareStackTrace's frames, a Proxy trap's arguments) it combines.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createHost, runPlugin, type ExecutionReport, type PlugboxError, type PlugboxHost, type SandboxLimits, type SandboxRuntime, type SandboxServices, type ServiceCall } from "../../dist/host/index.js";
import { hostileValues, methodResponse, REALM_PRELUDE, ROUTES_TO_FUNCTION, probeDefaultRealm } from "../../dist/host/testing/internal.js";
import { Entity } from "../../dist/sdk/index.js";
import { attackPlugin, context, recorder, useRuntime } from "../helpers/runtime.js";

const ACCOUNT_ID = "6f1c3a52-0b7e-4f0e-9a55-3d2b1c0e9f11";
const MISSING_ID = "0b5e8a2c-1d3f-4a6b-9c7d-2e4f6a8b0c1d";
const CPU_LIMIT_MS = 300;
/** A CPU-limit breach must end within this much of the limit (measured: well under it; the goal is 200 ms). */
const CPU_MARGIN_MS = 200;
const SPIN: Partial<SandboxLimits> = { cpuTimeMs: CPU_LIMIT_MS, wallTimeMs: 4_000 };

/**
 * Module code shared by the attacks (`leak(org, what)` tries a write that must never be performed;
 * `realmOf(array)` says which realm an array V8 made belongs to), and hostile values, each built
 * inside the plug-in and each trying to run code when read: the audit's own.
 */
const PRELUDE = REALM_PRELUDE;
const probes = hostileValues.map(([label, value]) => [label, value] as [string, string]);

/** The moments isolated-vm used to copy a plug-in value out of the isolate, after the timed call had returned. */
const routes: Array<[string, (value: string) => string]> = [
  ["left as an unhandled rejection by execute()", (value) => `Promise.reject(${value}); await org.retrieve("account", "${ACCOUNT_ID}", null);`],
  ["left as an unhandled rejection after a service call resumed the plug-in", (value) => `await org.retrieve("account", "${ACCOUNT_ID}", null); Promise.reject(${value}); await org.retrieve("account", "${ACCOUNT_ID}", null);`],
  ["thrown from a timer callback", (value) => `setTimeout(() => { throw ${value}; }, 0); await new Promise((resolve) => setTimeout(resolve, 50));`],
  ["thrown from an interval callback", (value) => `const id = setInterval(() => { clearInterval(id); throw ${value}; }, 1); await new Promise((resolve) => setTimeout(resolve, 50));`],
];

const answers = () => recorder((call) => (call.op === "retrieve" ? new Entity("account", ACCOUNT_ID, { name: "Contoso" }) : call.op === "create" ? ACCOUNT_ID : null));

function creates(services: { calls: ServiceCall[] }): ServiceCall[] {
  return services.calls.filter((call) => call.op === "create");
}

function errorOf(report: ExecutionReport): PlugboxError {
  if (report.ok) throw new Error(`expected the execution to fail; it succeeded with ${JSON.stringify(report.changes.outputParameters)}`);
  return report.error;
}

const healthy = attackPlugin(`out.healthy = "yes";`);

async function expectStillServes(runtime: SandboxRuntime): Promise<void> {
  const report = await runtime.execute({ bundle: healthy, typeName: "Attack", context: context() });
  expect(report.ok && report.changes.outputParameters.healthy).toBe("yes");
}

/** A victim that waits inside a service call until released, and reports the account's name. */
function heldVictim(runtime: SandboxRuntime) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let entered!: () => void;
  const inService = new Promise<void>((resolve) => (entered = resolve));
  const report = runtime.execute(
    { bundle: attackPlugin(`const a = await org.retrieve("account", "${ACCOUNT_ID}", null); out.name = a.attributes.name;`), typeName: "Attack", context: context() },
    {
      call: async () => {
        entered();
        await released;
        return methodResponse("retrieve", new Entity("account", ACCOUNT_ID, { name: "Contoso" }));
      },
    },
  );
  return { report, inService, release };
}

const hugeAllocation = attackPlugin(`out.never = new Array(1e8).fill(0).length;`);
/** From Node 24 (V8 13) isolated-vm's near-heap-limit callback stops the isolate; before, V8 aborts the worker (runtime/worker/ivm.ts). */
const V8_STOPS_ONLY_THE_ISOLATE = Number(process.versions.node.split(".")[0]) >= 24;

describe("sandbox hardening: no plug-in value leaves the isolate, so no plug-in code runs after a timed call", () => {
  const runtime = useRuntime({ killGraceMs: 500 });

  const cases = routes.flatMap(([route, place]) => probes.map(([probe, value]) => [route, probe, place(value)] as const));

  test.each(cases)("a hostile value %s, probing with %s: nothing runs outside the timed call and no write is performed", async (_route, _probe, body) => {
    const services = answers();
    const report = await runtime().execute({ bundle: attackPlugin(body, PRELUDE), typeName: "Attack", context: context(), limits: { wallTimeMs: 4_000 } }, services);
    // Before: isolated-vm read the value in its default realm, with no timeout, and the write went through.
    expect(creates(services)).toEqual([]);
    if (!report.ok) {
      // What runs at all (V8 formatting a stack with the plug-in's own formatter) runs in the plug-in's realm, timed, and its calls are refused.
      expect(["PLUGIN_UNEXPECTED_ERROR", "SANDBOX_CALL_AFTER_END"]).toContain(report.error.code);
      expect((report.error as PlugboxError & { pluginStack?: string }).pluginStack ?? "").not.toContain("another realm");
    }
    await expectStillServes(runtime());
  });

  test("an unhandled rejection does not fail the execution, as an unobserved Task exception does not fail a .NET plug-in", async () => {
    const report = await runtime().execute({ bundle: attackPlugin(`Promise.reject(new Error("nobody listens")); out.done = true;`), typeName: "Attack", context: context() });
    expect(report.ok && report.changes.outputParameters.done).toBe(true);
  });

  test("a throw from a timer callback fails its execution with PLUGIN_UNEXPECTED_ERROR and the error's own message", async () => {
    const report = await runtime().execute({
      bundle: attackPlugin(`setTimeout(() => { throw new TypeError("from a timer"); }, 0); await new Promise((resolve) => setTimeout(resolve, 20)); out.never = true;`),
      typeName: "Attack",
      context: context(),
    });
    expect(errorOf(report)).toMatchObject({ code: "PLUGIN_UNEXPECTED_ERROR", message: "TypeError: from a timer" });
  });
});

describe("sandbox hardening: the default realm", () => {
  const runtime = useRuntime();

  test.each(probes)("a plug-in that throws %s from execute() finds only its own realm, and its write is refused", async (_probe, value) => {
    const services = answers();
    const report = await runtime().execute({ bundle: attackPlugin(`throw ${value};`, PRELUDE), typeName: "Attack", context: context() }, services);
    const error = errorOf(report) as PlugboxError & { pluginStack?: string };
    expect(error.code).toMatch(/^(PLUGIN_UNEXPECTED_ERROR|SANDBOX_CALL_AFTER_END)$/);
    expect(creates(services)).toEqual([]);
    expect(error.pluginStack ?? "").not.toContain("another realm");
  });

  test("WebAssembly, SharedArrayBuffer, Atomics and FinalizationRegistry are absent from the plug-in's realm by every route to a constructor", async () => {
    const routesToFunction = ROUTES_TO_FUNCTION;
    const report = await runtime().execute({
      bundle: attackPlugin(`
        const constructors = [${routesToFunction.join(", ")}];
        out.globals = constructors.map((F) => F("return [typeof WebAssembly, typeof SharedArrayBuffer, typeof Atomics, typeof FinalizationRegistry].join()")());
        out.ownRealm = constructors.map((F) => F === Function);
      `),
      typeName: "Attack",
      context: context(),
    });
    expect(report.ok, report.ok ? "" : report.error.message).toBe(true);
    const { globals, ownRealm } = (report as ExecutionReport & { ok: true }).changes.outputParameters;
    expect(globals).toEqual(routesToFunction.map(() => "undefined,undefined,undefined,undefined"));
    // Every route leads to the plug-in's own Function: there is no second realm to reach.
    expect(ownRealm).toEqual(routesToFunction.map(() => true));
  });
});

describe("sandbox hardening: CPU time", () => {
  const runtime = useRuntime({ killGraceMs: 500 });

  const spinning: Array<[string, string]> = [
    ["a getter that spins while the changed context is encoded", `out.slow = { get value() { for (;;) {} } };`],
    ["a Proxy trap that spins while a thrown value is described", `throw new Proxy({}, { getOwnPropertyDescriptor() { for (;;) {} } });`],
    ["Error.prepareStackTrace spinning while a thrown Error's stack is read", `Error.prepareStackTrace = () => { for (;;) {} }; throw new Error("x");`],
    ["a timer callback that spins", `setTimeout(() => { for (;;) {} }, 0); await new Promise((resolve) => setTimeout(resolve, 3_000));`],
    ["a microtask chain that spins after an awaited call", `await org.retrieve("account", "${ACCOUNT_ID}", null); for (;;) { await null; }`],
    ["a regular expression that backtracks catastrophically (ReDoS)", `out.match = /^(a+)+$/.test("a".repeat(40) + "!");`],
  ];

  test.each(spinning)(`%s ends with SANDBOX_CPU_LIMIT within the limit plus ${CPU_MARGIN_MS} ms`, async (_label, body) => {
    const report = await runtime().execute({ bundle: attackPlugin(body), typeName: "Attack", context: context(), limits: SPIN }, answers());
    expect(errorOf(report).code).toBe("SANDBOX_CPU_LIMIT");
    expect(report.stats.cpuMs).toBeLessThan(CPU_LIMIT_MS + CPU_MARGIN_MS);
    await expectStillServes(runtime());
  });

  test("a getter on a value thrown from a timer that would never end is never called: the attack costs nothing", async () => {
    const report = await runtime().execute(
      { bundle: attackPlugin(`setTimeout(() => { throw { get message() { for (;;) {} } }; }, 0); await new Promise((resolve) => setTimeout(resolve, 3_000));`), typeName: "Attack", context: context(), limits: SPIN },
      answers(),
    );
    expect(errorOf(report)).toMatchObject({ code: "PLUGIN_UNEXPECTED_ERROR", message: "the plug-in threw a value that could not be read" });
    expect(report.stats.cpuMs).toBeLessThan(CPU_LIMIT_MS);
  });
});

describe("sandbox hardening: an attack costs only its own execution", () => {
  const runtime = useRuntime({ workers: 1, maxConcurrentPerWorker: 4, killGraceMs: 500 });

  test("a victim running on the same worker as attackers that spin, and that hide endless getters in timer throws, completes with its own result", async () => {
    const workerBefore = runtime().workerPids;
    const victim = heldVictim(runtime());
    await victim.inService;
    const attackers = await Promise.all([
      runtime().execute({ bundle: attackPlugin(`setTimeout(() => { throw { get message() { for (;;) {} } }; }, 0); await new Promise((r) => setTimeout(r, 3_000));`), typeName: "Attack", context: context(), limits: SPIN }),
      runtime().execute({ bundle: attackPlugin(`throw new Proxy({}, { getOwnPropertyDescriptor() { for (;;) {} } });`), typeName: "Attack", context: context(), limits: SPIN }),
      runtime().execute({ bundle: attackPlugin(`out.slow = { get value() { for (;;) {} } };`), typeName: "Attack", context: context(), limits: SPIN }),
    ]);
    expect(attackers.map((report) => errorOf(report).code)).toEqual(["PLUGIN_UNEXPECTED_ERROR", "SANDBOX_CPU_LIMIT", "SANDBOX_CPU_LIMIT"]);
    victim.release();
    const report = await victim.report;
    expect(report.ok ? report.changes.outputParameters.name : report.error.code).toBe("Contoso");
    expect(runtime().workerPids).toEqual(workerBefore);
  });
});

describe("sandbox hardening: what a worker kill costs", () => {
  const shared = useRuntime({ workers: 1, maxConcurrentPerWorker: 4 });
  const confined = useRuntime({ workers: 2, maxConcurrentPerWorker: 1, prewarmIsolates: 1 });

  test("one fatal allocation fails every execution in flight on its worker with SANDBOX_WORKER_CRASHED (Node 20 and 22; from Node 24 V8 stops only that isolate), and the next execution runs", async () => {
    const victim = heldVictim(shared());
    await victim.inService;
    const attacker = await shared().execute({ bundle: hugeAllocation, typeName: "Attack", context: context(), limits: { memoryMb: 32 } });
    expect(errorOf(attacker).code).toMatch(/^(SANDBOX_WORKER_CRASHED|SANDBOX_MEMORY_LIMIT)$/);
    victim.release();
    const report = await victim.report;
    if (V8_STOPS_ONLY_THE_ISOLATE) expect(report.ok ? report.changes.outputParameters.name : report.error.code).toBe("Contoso");
    else expect(errorOf(report).code).toBe("SANDBOX_WORKER_CRASHED");
    await expectStillServes(shared());
  });

  test("with one execution per worker (maxConcurrentPerWorker: 1) it costs only the culprit", async () => {
    const victim = heldVictim(confined());
    await victim.inService;
    const attacker = await confined().execute({ bundle: hugeAllocation, typeName: "Attack", context: context(), limits: { memoryMb: 32 } });
    expect(errorOf(attacker).code).toBe("SANDBOX_MEMORY_LIMIT");
    victim.release();
    const report = await victim.report;
    expect(report.ok ? report.changes.outputParameters.name : report.error.code).toBe("Contoso");
  });
});

describe("sandbox hardening: services answer only the execution that runs, while it runs", () => {
  const runtime = useRuntime();

  const lateCalls: Array<[string, string, string]> = [
    ["a getter in the outputs, while they are encoded", `out.value = { get x() { org.create({ logicalName: "leak" }).catch(() => undefined); return 1; } };`, "while the execution's result was being read"],
    ["Error.prepareStackTrace, while a failure is described", `Error.prepareStackTrace = () => { org.create({ logicalName: "leak" }).catch(() => undefined); return "s"; }; throw new Error("x");`, "while the execution's result was being read"],
    ["a microtask that runs after the outcome was reported", `Promise.resolve().then(() => null).then(() => null).then(() => org.create({ logicalName: "leak" }).catch(() => undefined));`, "after its execution had ended"],
    ["module code, when the bundle is loaded", `out.x = 1;`, "outside its own execution"],
  ];

  test.each(lateCalls)("a service call from %s is refused, recorded, and fails the execution with SANDBOX_CALL_AFTER_END", async (label, body, when) => {
    const prelude = label.startsWith("module code") ? `try { setTimeout(() => undefined, 0); } catch {}` : "";
    const services = answers();
    const report = await runtime().execute({ bundle: attackPlugin(body, prelude), typeName: "Attack", context: context() }, services);
    expect(errorOf(report).code).toBe("SANDBOX_CALL_AFTER_END");
    expect(report.violations.join("\n")).toContain(when);
    expect(creates(services)).toEqual([]);
  });

  test("a web request from a getter that runs while the result is encoded is refused before the network policy sees it, and recorded", async () => {
    const report = await runtime().execute(
      {
        bundle: attackPlugin(`out.value = { get x() { fetch("http://127.0.0.1:9/").catch(() => undefined); return 1; } };`),
        typeName: "Attack",
        context: context(),
        web: { policy: {}, allowedHosts: null },
      },
      answers(),
    );
    expect(errorOf(report).code).toBe("SANDBOX_CALL_AFTER_END");
    expect(report.violations.join("\n")).toContain("web.fetch was called while the execution's result was being read");
    expect(report.webCalls).toEqual([]);
  });
});

describe("sandbox hardening: the code of a failure is the host's", () => {
  const runtime = useRuntime();
  let dir: string;
  const file = (name: string) => path.join(dir, name);

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-forged-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const missing = `org.retrieve("account", "${MISSING_ID}", null)`;
  const forgeries: Array<[string, string, string]> = [
    ["sets a caught service error's code to CLI_USAGE", `try { await ${missing}; } catch (e) { e.code = "CLI_USAGE"; throw e; }`, "ORG_NOT_FOUND"],
    ["sets a caught service error's code to SANDBOX_MEMORY_LIMIT", `try { await ${missing}; } catch (e) { e.code = "SANDBOX_MEMORY_LIMIT"; throw e; }`, "ORG_NOT_FOUND"],
    ["sets a caught service error's code to SANDBOX_ISOLATION_VIOLATION", `try { await ${missing}; } catch (e) { e.code = "SANDBOX_ISOLATION_VIOLATION"; throw e; }`, "ORG_NOT_FOUND"],
    ["sets a caught service error's code to WEB_LOOPBACK", `try { await ${missing}; } catch (e) { e.code = "WEB_LOOPBACK"; throw e; }`, "ORG_NOT_FOUND"],
    ["builds a look-alike with the service error's own constructor", `try { await ${missing}; } catch (e) { throw new e.constructor("SANDBOX_ISOLATION_VIOLATION", "forged"); }`, "PLUGIN_UNEXPECTED_ERROR"],
    ["throws a plain object shaped like a service error", `throw { name: "PlugboxServiceError", code: "CLI_USAGE", message: "forged" };`, "PLUGIN_UNEXPECTED_ERROR"],
    ["throws the RangeError V8 raises when an ArrayBuffer passes the memory limit, without allocating", `throw new RangeError("Array buffer allocation failed");`, "PLUGIN_UNEXPECTED_ERROR"],
    ["throws an InvalidPluginExecutionError that carries a code", `const e = new Error("denied"); e.name = "InvalidPluginExecutionError"; e.code = "SANDBOX_CPU_LIMIT"; e.serviceCode = "CLI_USAGE"; throw e;`, "PLUGIN_FAILED"],
  ];

  test.each(forgeries)("run: a plug-in that %s fails with the host's code and exit 1", async (_label, body, code) => {
    const result = await runPlugin({ bundle: attackPlugin(body), typeName: "Attack", runtime: runtime() });
    expect(result.error?.code).toBe(code);
    expect(result.exitCode).toBe(1);
    expect(result.violations).toEqual([]);
  });

  test("run: a service error the plug-in lets escape keeps the code the host answered, and the plug-in's own message", async () => {
    const result = await runPlugin({ bundle: attackPlugin(`try { await ${missing}; } catch (e) { e.message = "rewritten by the plug-in"; throw e; }`), typeName: "Attack", runtime: runtime() });
    expect(result.error).toMatchObject({ code: "ORG_NOT_FOUND", message: "rewritten by the plug-in" });
    expect(result.exitCode).toBe(1);
  });

  test("run: a service call from a getter that runs while the result is encoded exits 4 with SANDBOX_CALL_AFTER_END, and nothing is written", async () => {
    const result = await runPlugin({ bundle: attackPlugin(`out.value = { get x() { org.create({ logicalName: "leak" }).catch(() => undefined); return 1; } };`), typeName: "Attack", runtime: runtime() });
    expect(result).toMatchObject({ ok: false, exitCode: 4, error: { code: "SANDBOX_CALL_AFTER_END" } });
    expect(result.calls.filter((call) => call.op === "create")).toEqual([]);
  });

  test("exec: a step whose plug-in forges a code fails the request with the host's innerCode", async () => {
    writeFileSync(file("forger.js"), attackPlugin(`try { await ${missing}; } catch (e) { e.code = "SANDBOX_ISOLATION_VIOLATION"; throw e; }`).source);
    const host: PlugboxHost = await createHost({
      manifest: { bundles: { f: { path: file("forger.js") } }, steps: [{ bundle: "f", type: "Attack", message: "Create", entity: "account", stage: 20 }] },
      runJobs: false,
      runtimeOptions: { workers: 1, prewarmIsolates: 1 },
    });
    try {
      const error = await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "x" }) } }).then(
        () => undefined,
        (e: unknown) => e as { code?: string; innerCode?: string },
      );
      expect(error).toMatchObject({ code: "PIPELINE_STEP_FAILED", innerCode: "ORG_NOT_FOUND" });
    } finally {
      await host.close();
    }
  });
});

describe("sandbox hardening: an ArrayBuffer allocation failure is the memory limit only when the heap says so", () => {
  const runtime = useRuntime();

  test("exhausting the heap with ArrayBuffers, uncaught, ends with SANDBOX_MEMORY_LIMIT", async () => {
    const report = await runtime().execute(
      { bundle: attackPlugin(`const keep = []; for (;;) keep.push(new Uint8Array(1024 * 1024).fill(1));`), typeName: "Attack", context: context(), limits: { memoryMb: 32, cpuTimeMs: 20_000, wallTimeMs: 20_000 } },
      answers(),
    );
    expect(errorOf(report).code).toBe("SANDBOX_MEMORY_LIMIT");
  });

  test("the same RangeError with little memory held is the plug-in's own error", async () => {
    const report = await runtime().execute({ bundle: attackPlugin(`throw new RangeError("Array buffer allocation failed");`), typeName: "Attack", context: context(), limits: { memoryMb: 32 } }, answers());
    expect(errorOf(report)).toMatchObject({ code: "PLUGIN_UNEXPECTED_ERROR", message: "RangeError: Array buffer allocation failed" });
  });
});

describe("sandbox hardening: the shim hardens the isolate's default realm (probed by the audit's isolate, in a process of its own)", () => {
  test("the default realm, reached by the route isolated-vm's copies opened, has no WebAssembly, SharedArrayBuffer, Atomics or FinalizationRegistry", async () => {
    // The probe appends trusted code to the real shim that, after setup, reaches the default realm
    // the way an attacker did (a Proxy trap's arguments while isolated-vm copies a thrown value).
    const probe = await probeDefaultRealm();
    expect(probe.defaultRealm).toBe("hardened");
    expect(probe.reached).toBe("undefined,undefined,undefined,undefined");
  });
});

describe("sandbox hardening: names every object has are refused as columns, on every write path", () => {
  let dir: string;
  let host: PlugboxHost;
  const ID = "7a2b3c4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d";
  /** Attributes holding `name` as an own data property, as JSON.parse makes it (an object literal would set a prototype instead). */
  const withColumn = (name: string) => JSON.parse(`{"name": "x", ${JSON.stringify(name)}: "polluted"}`) as Record<string, unknown>;
  const target = (name: string, id?: string) => new Entity("account", id, withColumn(name) as never);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-columns-"));
    writeFileSync(
      path.join(dir, "writer.js"),
      attackPlugin(`
        const attributes = JSON.parse('{"name": "x", "__proto__": "polluted"}');
        try { await org.create({ logicalName: "note", attributes }); out.code = "created"; } catch (e) { out.code = e.code; }
      `).source,
    );
    host = await createHost({
      manifest: {
        bundles: { w: { path: path.join(dir, "writer.js") } },
        steps: [{ bundle: "w", type: "Attack", message: "Create", entity: "trigger", stage: 40 }],
        tables: { contact: { columns: { fullname: "string" }, alternateKeys: { byname: ["fullname"] } } },
      },
      runJobs: false,
      runtimeOptions: { workers: 1, prewarmIsolates: 1 },
    });
    await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", ID, { name: "exists" }) } });
  });
  afterAll(async () => {
    await host?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const refused = async (request: Promise<unknown>) =>
    request.then(
      () => "stored",
      (e: { code?: string; innerCode?: string }) => e.innerCode ?? e.code,
    );

  test.each(["__proto__", "constructor", "toString", "hasOwnProperty"])("Create, Update and Upsert refuse a %s column with ORG_INVALID_ARGUMENT and store nothing", async (name) => {
    const before = (await host.store.allRecords()).length;
    expect(await refused(host.execute({ requestName: "Create", parameters: { Target: target(name) } }))).toBe("ORG_INVALID_ARGUMENT");
    expect(await refused(host.execute({ requestName: "Update", parameters: { Target: target(name, ID) } }))).toBe("ORG_INVALID_ARGUMENT");
    expect(await refused(host.execute({ requestName: "Upsert", parameters: { Target: target(name, ID) } }))).toBe("ORG_INVALID_ARGUMENT");
    const keyed = new Entity("contact", undefined, { fullname: "Ada" } as never);
    keyed.keyAttributes = withColumn(name) as never;
    expect(await refused(host.execute({ requestName: "Upsert", parameters: { Target: keyed } }))).toBe("ORG_INVALID_ARGUMENT");
    expect((await host.store.allRecords()).length).toBe(before);
    expect((await host.store.getRecord("account", ID))?.attributes).not.toHaveProperty("polluted");
  });

  test("a plug-in's create with a __proto__ column is refused with ORG_INVALID_ARGUMENT", async () => {
    const result = await host.execute({ requestName: "Create", parameters: { Target: new Entity("trigger", undefined, {}) } });
    expect(result.response.results.code).toBe("ORG_INVALID_ARGUMENT");
    expect((await host.store.allRecords()).filter((r) => r.entity === "note")).toEqual([]);
  });
});
