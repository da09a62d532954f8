/**
 * Security is tested by attack: every isolation rule of the sandbox gets at least one plug-in that
 * tries to break it. Each attack must fail cleanly (a typed error code, or the plug-in observing that
 * the thing it reached for does not exist) and the runtime must go on serving the next execution.
 */
import { describe, expect, test } from "vitest";
import { type Bundle, type ExecutionReport, type PlugboxError, type SandboxLimits, type SandboxRuntime, type SandboxServices, type ServiceCall, SandboxError } from "../../dist/host/index.js";
import { Entity, Money } from "../../dist/sdk/index.js";
import { attackPlugin as plugin, bundle, context, recorder, useRuntime } from "../helpers/runtime.js";

const ACCOUNT_ID = "6f1c3a52-0b7e-4f0e-9a55-3d2b1c0e9f11";
/** Tight limits for the attacks that spin, so each ends within a second or two. */
const SPIN: Partial<SandboxLimits> = { cpuTimeMs: 300, wallTimeMs: 1_500 };
/**
 * V8 13 (Node 24 and 26) behaves differently from V8 11 and 12 (Node 20 and 22) in two cases below;
 * runtime/worker/ivm.ts says how and how it was found. The isolate's V8 is this process's.
 */
const V8_MAJOR = Number(process.versions.v8.split(".")[0]);
/** Host-side strings that must never be seen inside the sandbox or in what comes back from it. */
const HOST_MARKERS = ["/work/", "node_modules", "node:", "supervisor", "worker.js", "dist/runtime", "isolated-vm"];

/** Answers every retrieve with an account that carries typed attributes. */
const accountServices = () =>
  recorder((call) =>
    call.op === "retrieve" ? new Entity("account", ACCOUNT_ID, { name: "Contoso", revenue: new Money(1_000) }) : call.op === "create" ? ACCOUNT_ID : null,
  );

function outputsOf(report: ExecutionReport): Record<string, unknown> {
  if (!report.ok) throw new Error(`expected the execution to succeed; it failed with ${report.error.code}: ${report.error.message}`);
  return report.changes.outputParameters;
}

function errorOf(report: ExecutionReport): PlugboxError {
  if (report.ok) throw new Error(`expected the execution to fail; it succeeded with ${JSON.stringify(report.changes.outputParameters)}`);
  return report.error;
}

function expectNoHostMarkers(text: string | undefined): void {
  for (const marker of HOST_MARKERS) expect(text ?? "").not.toContain(marker);
}

const healthy = plugin(`out.healthy = JSON.stringify([Object.keys({ a: 1 }), Array.isArray([]), new Map([[1, "m"]]).get(1), typeof globalThis.leak]);`);

/** The runtime still serves: a well-behaved plug-in runs, in a clean global scope, right after the attack. */
async function expectStillServes(runtime: SandboxRuntime): Promise<void> {
  const report = await runtime.execute({ bundle: healthy, typeName: "Attack", context: context() });
  expect(outputsOf(report).healthy).toBe(JSON.stringify([["a"], true, "m", "undefined"]));
}

async function run(runtime: SandboxRuntime, attack: Bundle, options: { limits?: Partial<SandboxLimits>; services?: SandboxServices; isolation?: "fresh" | "reuse"; instanceKey?: string } = {}) {
  return runtime.execute(
    {
      bundle: attack,
      typeName: "Attack",
      context: context({ inputParameters: { Target: new Entity("account", ACCOUNT_ID, { name: "Target" }) } }),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.isolation ? { isolation: options.isolation } : {}),
      ...(options.instanceKey ? { instanceKey: options.instanceKey } : {}),
    },
    options.services ?? accountServices(),
  );
}

/** Wraps an expression (which may await) so the plug-in reports what it evaluated to, or what it threw. */
function probe(expression: string): string {
  return `(await (async () => { try { const v = await (${expression}); return typeof v === "string" ? "string:" + v : typeof v; } catch (e) { return "threw " + (e && e.name); } })())`;
}

describe("sandbox isolation", () => {
  const runtime = useRuntime();

  describe("constructor chains", () => {
    const chains: Array<[string, string]> = [
      ["the plug-in instance", `this.constructor.constructor("return process")()`],
      ["a plain function", `(function () {}).constructor("return process")()`],
      ["an async function", `(async function () {}).constructor("return process")()`],
      ["a generator function", `(function* () {}).constructor("return process")().next().value`],
      ["an Error", `new Error("x").constructor.constructor("return process")()`],
      ["a caught TypeError", `(() => { try { null.x; } catch (e) { return e; } })().constructor.constructor("return process")()`],
      ["a Promise", `Promise.resolve().constructor.constructor("return process")()`],
      ["the service provider", `sp.constructor.constructor("return process")()`],
      ["getService", `sp.getService.constructor("return process")()`],
      ["the tracing service", `trace.trace.constructor("return process")()`],
      ["the organization service factory", `sp.getService("IOrganizationServiceFactory").constructor.constructor("return process")()`],
      ["an organization service method", `org.retrieve.constructor("return process")()`],
      ["the promise a service call returns", `org.retrieve("account", "${ACCOUNT_ID}", null).constructor.constructor("return process")()`],
      ["an Entity a service call returned", `(await org.retrieve("account", "${ACCOUNT_ID}", null)).constructor.constructor("return process")()`],
      ["a Money a service call returned", `(await org.retrieve("account", "${ACCOUNT_ID}", null)).attributes.revenue.constructor.constructor("return process")()`],
      ["the execution context", `ctx.constructor.constructor("return process")()`],
      ["the Target entity of the context", `ctx.inputParameters.Target.constructor.constructor("return process")()`],
      ["setTimeout", `setTimeout.constructor("return process")()`],
      ["console.log", `console.log.constructor("return process")()`],
      ["fetch", `fetch.constructor("return process")()`],
      ["the module object", `module.constructor.constructor("return process")()`],
    ];

    test.each(chains)("constructor chain from %s: reaches no process object", async (_label, chain) => {
      const services = accountServices();
      const report = await run(runtime(), plugin(`out.result = ${probe(chain)};`), { services });
      // `process` does not exist in the isolate's global scope, so the function body throws a ReferenceError.
      expect(outputsOf(report).result).toBe("threw ReferenceError");
      await expectStillServes(runtime());
    });

    test("constructor chain: a Function built from any sandbox object sees the isolate's own global object", async () => {
      const report = await run(
        runtime(),
        plugin(`
          const viaSp = sp.constructor.constructor("return this")();
          const viaEntity = (await org.retrieve("account", "${ACCOUNT_ID}", null)).constructor.constructor("return this")();
          out.same = viaSp === globalThis && viaEntity === globalThis;
          out.kinds = JSON.stringify(["process", "require", "Buffer", "global"].map((n) => typeof viaSp[n]));
        `),
      );
      const out = outputsOf(report);
      expect(out.same).toBe(true);
      expect(out.kinds).toBe(JSON.stringify(["undefined", "undefined", "undefined", "undefined"]));
      await expectStillServes(runtime());
    });

    test("constructor chain: an uncaught ReferenceError from `return process` fails the execution with PLUGIN_UNEXPECTED_ERROR", async () => {
      const report = await run(runtime(), plugin(`return this.constructor.constructor("return process")().mainModule.require("fs");`));
      const error = errorOf(report);
      expect(error.code).toBe("PLUGIN_UNEXPECTED_ERROR");
      expect(error.message).toBe("ReferenceError: process is not defined");
      await expectStillServes(runtime());
    });

    test("function.caller: the plug-in cannot reach the shim's functions through a sloppy-mode caller chain", async () => {
      // Sloppy functions expose .caller; the shim is strict, so its frames must show as null.
      const attack = bundle(`
        function Attack() {}
        Attack.prototype.execute = function execute(sp) {
          const out = sp.getService("IPluginExecutionContext").outputParameters;
          out.executeCaller = String(execute.caller);
          return new Promise(function settle(resolve) {
            setTimeout(function tick() {
              out.timerCaller = String(tick.caller);
              resolve();
            }, 1);
          });
        };
        module.exports = { Attack };`);
      const out = outputsOf(await run(runtime(), attack));
      expect(out.executeCaller).toBe("null");
      expect(out.timerCaller).toBe("null");
      await expectStillServes(runtime());
    });
  });

  describe("node objects and globals", () => {
    test("node objects: require, process, Buffer, global and the CommonJS path globals are absent", async () => {
      const names = ["require", "process", "Buffer", "global", "setImmediate", "__dirname", "__filename", "TextEncoder", "structuredClone"];
      const report = await run(runtime(), plugin(`out.kinds = JSON.stringify(${JSON.stringify(names)}.map((n) => [n, eval("typeof " + n)]));`));
      expect(JSON.parse(outputsOf(report).kinds as string)).toEqual(names.map((n) => [n, "undefined"]));
      await expectStillServes(runtime());
    });

    test("node objects: calling require fails the execution with PLUGIN_UNEXPECTED_ERROR", async () => {
      const report = await run(runtime(), plugin(`require("child_process").execSync("id");`));
      const error = errorOf(report);
      expect(error.code).toBe("PLUGIN_UNEXPECTED_ERROR");
      expect(error.message).toBe("ReferenceError: require is not defined");
      await expectStillServes(runtime());
    });

    test("globals inventory: only ECMAScript intrinsics plus the shim's console, fetch and timer functions", async () => {
      const report = await run(runtime(), plugin(`out.names = JSON.stringify(Object.getOwnPropertyNames(globalThis));`));
      const names = JSON.parse(outputsOf(report).names as string) as string[];
      const ecmascript = [
        // Value and function properties of the global object (ECMA-262 §19.1–19.2, Annex B).
        "globalThis", "Infinity", "NaN", "undefined", "eval", "isFinite", "isNaN", "parseFloat", "parseInt",
        "decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent", "escape", "unescape",
        // Constructors and namespaces (ECMA-262 §19.3–19.4), and Intl (ECMA-402).
        "AggregateError", "Array", "ArrayBuffer", "BigInt", "BigInt64Array", "BigUint64Array", "Boolean", "DataView", "Date",
        "Error", "EvalError", "FinalizationRegistry", "Float32Array", "Float64Array", "Function", "Int8Array", "Int16Array",
        "Int32Array", "Map", "Number", "Object", "Promise", "Proxy", "RangeError", "ReferenceError", "RegExp", "Set", "String",
        "Symbol", "SyntaxError", "TypeError", "Uint8Array", "Uint8ClampedArray", "Uint16Array", "Uint32Array", "URIError",
        "WeakMap", "WeakRef", "WeakSet", "JSON", "Math", "Reflect", "Intl",
        // Added by later editions; allowed so that a newer V8 does not fail this test (Temporal: V8 14, Node 26).
        "Iterator", "Float16Array", "SuppressedError", "DisposableStack", "AsyncDisposableStack", "Temporal",
      ];
      const shim = ["console", "fetch", "setTimeout", "setInterval", "clearTimeout", "clearInterval", "queueMicrotask"];
      const unexpected = names.filter((n) => !ecmascript.includes(n) && !shim.includes(n));
      expect(unexpected).toEqual([]);
      for (const name of shim) expect(names).toContain(name);
      await expectStillServes(runtime());
    });

    test("globals inventory: the bridge globals __pb_call, __pb_trace, __pb_done and __pb_api are gone", async () => {
      const bridge = ["__pb_call", "__pb_trace", "__pb_done", "__pb_api"];
      const report = await run(
        runtime(),
        plugin(`out.seen = JSON.stringify(${JSON.stringify(bridge)}.map((n) => [n, n in globalThis, eval("typeof " + n), Object.getOwnPropertyDescriptor(globalThis, n) === undefined]));`),
      );
      expect(JSON.parse(outputsOf(report).seen as string)).toEqual(bridge.map((n) => [n, false, "undefined", true]));
      await expectStillServes(runtime());
    });

    test("hardening: WebAssembly, SharedArrayBuffer and Atomics are absent", async () => {
      const report = await run(
        runtime(),
        plugin(`out.kinds = JSON.stringify([typeof WebAssembly, typeof SharedArrayBuffer, typeof Atomics, "WebAssembly" in globalThis, "SharedArrayBuffer" in globalThis, "Atomics" in globalThis]);`),
      );
      expect(JSON.parse(outputsOf(report).kinds as string)).toEqual(["undefined", "undefined", "undefined", false, false, false]);
      await expectStillServes(runtime());
    });

    test("hardening: instantiating WebAssembly fails the execution with PLUGIN_UNEXPECTED_ERROR", async () => {
      const report = await run(runtime(), plugin(`new WebAssembly.Memory({ initial: 1, maximum: 65536 }).grow(60000);`));
      const error = errorOf(report);
      expect(error.code).toBe("PLUGIN_UNEXPECTED_ERROR");
      expect(error.message).toBe("ReferenceError: WebAssembly is not defined");
      await expectStillServes(runtime());
    });

    test("eval and new Function: code they compile runs in the isolate's global scope, with no node objects", async () => {
      const report = await run(
        runtime(),
        plugin(`
          out.direct = eval("typeof process + ',' + typeof require");
          out.indirect = (0, eval)("this") === globalThis;
          out.fn = new Function("return this")() === globalThis;
          out.fnProcess = new Function("return typeof process + ',' + typeof __pb_call")();
          out.nested = eval("new Function('return eval(\\"typeof Buffer\\")')()");
        `),
      );
      const out = outputsOf(report);
      expect(out).toMatchObject({ direct: "undefined,undefined", indirect: true, fn: true, fnProcess: "undefined,undefined", nested: "undefined" });
      await expectStillServes(runtime());
    });

    test("dynamic import: import('fs') and import('node:child_process') are refused inside the plug-in", async () => {
      const report = await run(runtime(), plugin(`out.fs = ${probe(`import("fs")`)}; out.cp = ${probe(`import("node:child_process")`)}; out.data = ${probe(`import("data:text/javascript,export default 1")`)};`));
      const out = outputsOf(report);
      expect(out.fs).toMatch(/^threw /);
      expect(out.cp).toMatch(/^threw /);
      expect(out.data).toMatch(/^threw /);
      await expectStillServes(runtime());
    });

    test("dynamic import: an uncaught import('fs') fails the execution with PLUGIN_UNEXPECTED_ERROR", async () => {
      const report = await run(runtime(), plugin(`const fs = await import("fs"); out.read = fs.readFileSync("/etc/passwd", "utf8");`));
      expect(errorOf(report).code).toBe("PLUGIN_UNEXPECTED_ERROR");
      expect(report.trace).toBe("");
      await expectStillServes(runtime());
    });

    test("static import: a bundle with an import statement is rejected with BUNDLE_INVALID", async () => {
      const report = await run(runtime(), bundle(`import fs from "fs";\nmodule.exports = { Attack: class { async execute() { fs.readFileSync("/etc/passwd"); } } };`));
      expect(errorOf(report).code).toBe("BUNDLE_INVALID");
      await expectStillServes(runtime());
    });
  });

  describe("host errors and stacks", () => {
    test("host errors: a failing service reaches the plug-in as SERVICE_FAILED with no host path, stack or message, and its constructors lead nowhere", async () => {
      const services = recorder(() => {
        throw new Error("ENOENT: no such file '/work/main/host/secret-store.json' (db password hunter2)");
      });
      const report = await run(
        runtime(),
        plugin(`
          try {
            await org.retrieve("account", "${ACCOUNT_ID}", null);
            out.caught = false;
          } catch (err) {
            out.caught = true;
            out.code = err.code;
            out.name = err.name;
            out.message = err.message;
            out.stack = String(err.stack);
            out.own = JSON.stringify(Object.getOwnPropertyNames(err).sort());
            out.viaConstructor = ${probe(`err.constructor.constructor("return process")()`)};
            out.viaProto = ${probe(`Object.getPrototypeOf(Object.getPrototypeOf(err)).constructor.constructor("return process")()`)};
          }
        `),
        { services },
      );
      const out = outputsOf(report);
      expect(services.calls).toHaveLength(1);
      expect(out.caught).toBe(true);
      expect(out.code).toBe("SERVICE_FAILED");
      expect(out.message).toBe("the organization service failed");
      expect(out.viaConstructor).toBe("threw ReferenceError");
      expect(out.viaProto).toBe("threw ReferenceError");
      expect(JSON.parse(out.own as string)).toEqual(["code", "message", "name", "stack"]);
      for (const text of [out.message, out.stack] as string[]) {
        expectNoHostMarkers(text);
        expect(text).not.toContain("ENOENT");
        expect(text).not.toContain("secret-store");
        expect(text).not.toContain("hunter2");
      }
      await expectStillServes(runtime());
    });

    test("host errors: a PlugboxError thrown by the host passes its code and message, and nothing else", async () => {
      const services = recorder(() => {
        throw new SandboxError("SANDBOX_ISOLATION_VIOLATION", "that record is not yours");
      });
      const report = await run(runtime(), plugin(`try { await org.delete("account", "${ACCOUNT_ID}"); } catch (err) { out.code = err.code; out.message = err.message; out.stack = String(err.stack); }`), { services });
      const out = outputsOf(report);
      expect(out.code).toBe("SANDBOX_ISOLATION_VIOLATION");
      expect(out.message).toBe("that record is not yours");
      expectNoHostMarkers(out.stack as string);
      await expectStillServes(runtime());
    });

    test("host errors: an answer the host cannot encode (a function, a cycle, a bigint) reaches the plug-in as SERVICE_FAILED", async () => {
      const cyclic: Record<string, unknown> = { name: "loop" };
      cyclic.self = cyclic;
      const answers: unknown[] = [() => "host function", cyclic, 10n];
      let i = 0;
      const services = recorder(() => answers[i++]);
      const report = await run(
        runtime(),
        plugin(`
          const codes = [];
          for (let i = 0; i < 3; i++) {
            try { await org.execute({ requestName: "WhoAmI" }); codes.push("answered"); } catch (err) { codes.push(err.code + "|" + err.message); }
          }
          out.codes = codes.join(";");
        `),
        { services },
      );
      expect(outputsOf(report).codes).toBe(["SERVICE_FAILED|the organization service failed", "SERVICE_FAILED|the organization service failed", "SERVICE_FAILED|the organization service failed"].join(";"));
      await expectStillServes(runtime());
    });

    test("Error.prepareStackTrace: call sites show only sandbox frames, with no host file, this or function", async () => {
      const report = await run(
        runtime(),
        plugin(`
          const seen = [];
          Error.prepareStackTrace = (error, frames) => {
            for (const f of frames) {
              const self = f.getThis();
              const fn = f.getFunction();
              seen.push({
                file: f.getFileName() ?? null,
                evalOrigin: f.getEvalOrigin() ?? null,
                self: self == null ? "none" : self.constructor.constructor("return typeof process")(),
                fn: fn === undefined ? "none" : fn.constructor("return typeof process")(),
              });
            }
            return "custom stack";
          };
          await org.retrieve("account", "${ACCOUNT_ID}", null);
          out.stack = new Error("probe").stack;
          try { await org.delete("account", "missing"); } catch (e) { out.hostErrorStack = e.stack; }
          out.seen = JSON.stringify(seen);
        `),
        { services: recorder((call) => (call.op === "delete" ? Promise.reject(new Error("/work/main/host/db.ts exploded")) : null)) },
      );
      const out = outputsOf(report);
      expect(out.stack).toBe("custom stack");
      const seen = JSON.parse(out.seen as string) as Array<{ file: string | null; evalOrigin: string | null; self: string; fn: string }>;
      expect(seen.length).toBeGreaterThan(0);
      for (const frame of seen) {
        expect([null, "test-plugin.js", "plugbox-shim.js"]).toContain(frame.file);
        // Strict frames hide this and the function; any that shows belongs to the isolate.
        expect(["none", "undefined"]).toContain(frame.self);
        expect(["none", "undefined"]).toContain(frame.fn);
        expectNoHostMarkers(frame.evalOrigin ?? "");
      }
      await expectStillServes(runtime());
    });

    test("Error.prepareStackTrace: a plug-in's own formatter shapes only its own pluginStack, which names no host file", async () => {
      const report = await run(
        runtime(),
        plugin(`
          Error.prepareStackTrace = (error, frames) => frames.map((f) => [f.getFileName(), f.getFunctionName(), typeof f.getThis()].join("|")).join("\\n");
          await org.retrieve("account", "${ACCOUNT_ID}", null);
          throw new Error("boom");
        `),
      );
      const error = errorOf(report) as PlugboxError & { pluginStack?: string };
      expect(error.code).toBe("PLUGIN_UNEXPECTED_ERROR");
      expect(error.message).toBe("boom");
      expect(error.pluginStack).toBeDefined();
      for (const line of error.pluginStack!.split("\n")) expect(line).toMatch(/^(test-plugin\.js|plugbox-shim\.js|null|undefined)\|/);
      expectNoHostMarkers(error.pluginStack);
      await expectStillServes(runtime());
    });

    test("Error.prepareStackTrace: a formatter that throws or spins ends the execution with a typed error", async () => {
      const throwing = await run(runtime(), plugin(`Error.prepareStackTrace = () => { throw new Error("formatter exploded"); }; throw new Error("boom");`));
      expect(errorOf(throwing).code).toBe("PLUGIN_UNEXPECTED_ERROR");
      const spinning = await run(runtime(), plugin(`Error.prepareStackTrace = () => { for (;;) {} }; throw new Error("boom");`), { limits: SPIN });
      expect(["SANDBOX_CPU_LIMIT", "SANDBOX_TIMEOUT"]).toContain(errorOf(spinning).code);
      await expectStillServes(runtime());
    });

    test("stack overflow: unbounded recursion is a RangeError inside the isolate and PLUGIN_UNEXPECTED_ERROR outside", async () => {
      const report = await run(runtime(), plugin(`const down = (n) => down(n + 1) + 1; down(0);`));
      const error = errorOf(report);
      expect(error.code).toBe("PLUGIN_UNEXPECTED_ERROR");
      expect(error.message).toBe("RangeError: Maximum call stack size exceeded");
      await expectStillServes(runtime());
    });
  });

  describe("CPU and wall-clock time", () => {
    const loops: Array<[string, string]> = [
      ["a synchronous loop", `for (;;) {}`],
      ["a loop in a microtask", `await Promise.resolve(); for (;;) {}`],
      ["a loop in queueMicrotask", `queueMicrotask(() => { for (;;) {} }); await new Promise(() => {});`],
      ["an endless chain of microtasks", `const spin = () => Promise.resolve().then(spin); spin(); await new Promise(() => {});`],
      ["a loop after an awaited service call", `await org.retrieve("account", "${ACCOUNT_ID}", null); for (;;) {}`],
      ["a loop in a setTimeout callback", `await new Promise(() => setTimeout(() => { for (;;) {} }, 1));`],
      ["a loop in the module body", `/* see prelude */`],
      ["a loop in a getter the runtime reads while encoding the result", `Object.defineProperty(out, "slow", { enumerable: true, get() { for (;;) {} } });`],
    ];

    test.each(loops)("infinite loop: %s ends with SANDBOX_CPU_LIMIT or SANDBOX_TIMEOUT", async (label, body) => {
      const attack = label === "a loop in the module body" ? plugin(`out.never = true;`, `for (;;) {}`) : plugin(body);
      const report = await run(runtime(), attack, { limits: SPIN });
      expect(["SANDBOX_CPU_LIMIT", "SANDBOX_TIMEOUT"]).toContain(errorOf(report).code);
      await expectStillServes(runtime());
    });

    test("infinite loop: a loop in the constructor ends with SANDBOX_CPU_LIMIT or SANDBOX_TIMEOUT", async () => {
      const attack = bundle(`module.exports = { Attack: class { constructor() { for (;;) {} } async execute() {} } };`);
      const report = await run(runtime(), attack, { limits: SPIN });
      expect(["SANDBOX_CPU_LIMIT", "SANDBOX_TIMEOUT"]).toContain(errorOf(report).code);
      await expectStillServes(runtime());
    });

    test("wall clock: a plug-in kept alive by a cheap setInterval ends with SANDBOX_TIMEOUT", async () => {
      const report = await run(runtime(), plugin(`setInterval(() => { out.ticks = (out.ticks ?? 0) + 1; }, 5); await new Promise(() => {});`), {
        limits: { cpuTimeMs: 5_000, wallTimeMs: 600 },
      });
      expect(errorOf(report).code).toBe("SANDBOX_TIMEOUT");
      await expectStillServes(runtime());
    });

    test("stall: a promise that never settles, with nothing pending, ends with SANDBOX_STALLED", async () => {
      const report = await run(runtime(), plugin(`trace.trace("waiting forever"); await new Promise(() => {});`), { limits: { wallTimeMs: 60_000 } });
      expect(errorOf(report).code).toBe("SANDBOX_STALLED");
      expect(report.trace).toBe("waiting forever");
      await expectStillServes(runtime());
    });

    test("stall: a cleared timer leaves nothing pending, so awaiting it ends with SANDBOX_STALLED", async () => {
      const report = await run(runtime(), plugin(`await new Promise((resolve) => clearTimeout(setTimeout(resolve, 10)));`), { limits: { wallTimeMs: 60_000 } });
      expect(errorOf(report).code).toBe("SANDBOX_STALLED");
      await expectStillServes(runtime());
    });
  });

  describe("output and bridge limits", () => {
    test("trace: many lines are capped to limits.traceBytes, keeping the newest", async () => {
      const report = await run(runtime(), plugin(`for (let i = 0; i < 2000; i++) trace.trace("line {0} of the flood", i);`), { limits: { traceBytes: 1_024 } });
      outputsOf(report);
      expect(report.trace.length).toBeLessThanOrEqual(1_024);
      expect(report.trace.length).toBeGreaterThan(900);
      const lines = report.trace.split("\n");
      expect(lines.at(-1)).toBe("line 1999 of the flood");
      expect(report.trace).not.toContain("line 0 of the flood");
      // The kept lines are the newest ones, consecutive and in order.
      const numbers = lines.map((l) => Number(/^line (\d+) /.exec(l)?.[1]));
      numbers.forEach((n, i) => expect(n).toBe(1999 - (numbers.length - 1) + i));
      await expectStillServes(runtime());
    });

    test("trace: one huge line (and console.log) is capped to limits.traceBytes, keeping its end", async () => {
      const report = await run(runtime(), plugin(`trace.trace("start-" + "x".repeat(200000) + "-end"); console.log("%s", "y".repeat(300000) + "-tail");`), { limits: { traceBytes: 2_048 } });
      outputsOf(report);
      expect(report.trace.length).toBeLessThanOrEqual(2_048);
      expect(report.trace.endsWith("-tail")).toBe(true);
      expect(report.trace).not.toContain("start-");
      await expectStillServes(runtime());
    });

    test("result: a changed context larger than limits.maxResultBytes fails with SANDBOX_RESULT_TOO_LARGE", async () => {
      const report = await run(runtime(), plugin(`out.big = "x".repeat(50000);`), { limits: { maxResultBytes: 4_096 } });
      const error = errorOf(report);
      expect(error.code).toBe("SANDBOX_RESULT_TOO_LARGE");
      expect(error.message).toContain("4096");
      await expectStillServes(runtime());
    });

    test("result: a changed context nested deeper than the codec allows fails with PLUGIN_RESULT_INVALID", async () => {
      const report = await run(runtime(), plugin(`let deep = {}; for (let i = 0; i < 10000; i++) deep = { deep }; out.deep = deep;`));
      const error = errorOf(report);
      expect(error.code).toBe("PLUGIN_RESULT_INVALID");
      expect(error.message).toContain("nested more than 64 levels");
      await expectStillServes(runtime());
    });

    test("prototype pollution: __proto__ keys in outputs and service arguments reach the host as nothing", async () => {
      const services = accountServices();
      const report = await run(
        runtime(),
        plugin(`
          const evil = JSON.parse('{"__proto__": {"isAdmin": true}, "constructor": {"prototype": {"isAdmin": true}}, "plain": 1}');
          Object.assign(out, evil);
          out.nested = evil;
          await org.create({ $type: "Entity", logicalName: "account", attributes: evil });
        `),
        { services },
      );
      const out = outputsOf(report);
      expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
      expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
      expect(Object.getPrototypeOf(out.nested)).toBe(Object.prototype);
      expect(out.isAdmin).toBeUndefined();
      expect((out.nested as Record<string, unknown>).isAdmin).toBeUndefined();
      expect((out.nested as Record<string, unknown>).plain).toBe(1);
      const created = services.calls[0]!.args[0] as Entity;
      expect(created).toBeInstanceOf(Entity);
      expect(Object.getPrototypeOf(created.attributes)).toBe(Object.prototype);
      expect((created.attributes as Record<string, unknown>).isAdmin).toBeUndefined();
      await expectStillServes(runtime());
    });

    test("service arguments: a request larger than limits.maxHostCallBytes is refused with SANDBOX_HOST_CALL_TOO_LARGE before it reaches the host", async () => {
      const services = accountServices();
      const report = await run(
        runtime(),
        plugin(`
          try {
            await org.create({ $type: "Entity", logicalName: "account", id: "${ACCOUNT_ID}", attributes: { blob: "x".repeat(100000) } });
          } catch (err) { out.code = err.code; }
        `),
        { services, limits: { maxHostCallBytes: 4_096 } },
      );
      // Caught or not, an oversized request ends the execution.
      expect(errorOf(report).code).toBe("SANDBOX_HOST_CALL_TOO_LARGE");
      expect(services.calls).toEqual([]);
      await expectStillServes(runtime());
    });

    test("service answers: an answer larger than limits.maxHostCallBytes reaches the plug-in as SANDBOX_HOST_CALL_TOO_LARGE", async () => {
      const services = recorder(() => new Entity("account", ACCOUNT_ID, { blob: "x".repeat(100_000) }));
      const report = await run(runtime(), plugin(`try { await org.retrieve("account", "${ACCOUNT_ID}", null); out.code = "answered"; } catch (err) { out.code = err.code; }`), {
        services,
        limits: { maxHostCallBytes: 4_096 },
      });
      expect(services.calls).toHaveLength(1);
      expect(outputsOf(report).code).toBe("SANDBOX_HOST_CALL_TOO_LARGE");
      await expectStillServes(runtime());
    });

    test("service arguments: values with no JSON form (functions, symbols, cycles) are refused inside the sandbox", async () => {
      const services = accountServices();
      const report = await run(
        runtime(),
        plugin(`
          const cyclic = { logicalName: "account" }; cyclic.self = cyclic;
          const results = [];
          for (const bad of [() => 1, Symbol("s"), cyclic, 10n, NaN]) {
            try { await org.create(bad); results.push("sent"); } catch (err) { results.push(err.name); }
          }
          out.results = results.join(",");
        `),
        { services },
      );
      expect(outputsOf(report).results).toBe("TypeError,TypeError,TypeError,TypeError,TypeError");
      expect(services.calls).toEqual([]);
      await expectStillServes(runtime());
    });

    test("host call flood: more than limits.maxHostCalls calls fail the execution with SANDBOX_HOST_CALL_LIMIT", async () => {
      const services = accountServices();
      const report = await run(
        runtime(),
        plugin(`
          for (let i = 0; i < 50; i++) {
            try { await org.retrieve("account", "${ACCOUNT_ID}", null); } catch (err) { out.refusedAt = i; out.code = err.code; break; }
          }
        `),
        { services, limits: { maxHostCalls: 5 } },
      );
      const error = errorOf(report);
      expect(error.code).toBe("SANDBOX_HOST_CALL_LIMIT");
      expect(error.message).toContain("maxHostCalls");
      expect(services.calls).toHaveLength(5);
      expect(report.stats.hostCalls).toBe(5);
      await expectStillServes(runtime());
    });

    test("host call flood: more than limits.maxConcurrentHostCalls calls in flight fail the execution with SANDBOX_HOST_CALL_LIMIT", async () => {
      const services = accountServices();
      const report = await run(runtime(), plugin(`await Promise.allSettled(Array.from({ length: 20 }, () => org.retrieve("account", "${ACCOUNT_ID}", null)));`), {
        services,
        limits: { maxConcurrentHostCalls: 3 },
      });
      const error = errorOf(report);
      expect(error.code).toBe("SANDBOX_HOST_CALL_LIMIT");
      expect(error.message).toContain("maxConcurrentHostCalls");
      expect(services.calls.length).toBeLessThanOrEqual(3);
      await expectStillServes(runtime());
    });

    test("timer flood: more than 100 pending timers fail the execution with SANDBOX_HOST_CALL_LIMIT", async () => {
      const report = await run(runtime(), plugin(`for (let i = 0; i < 1000; i++) { try { setTimeout(() => {}, 60000); } catch (err) { out.code = err.code; out.at = i; break; } }`));
      expect(errorOf(report).code).toBe("SANDBOX_HOST_CALL_LIMIT");
      await expectStillServes(runtime());
    });

    test("service objects: the provider and the services are frozen and expose only their operations", async () => {
      const services = accountServices();
      const report = await run(
        runtime(),
        plugin(`
          out.orgKeys = Object.getOwnPropertyNames(org).sort().join(",");
          out.spKeys = Object.getOwnPropertyNames(sp).join(",");
          out.frozen = [org, sp, trace, sp.getService("IOrganizationServiceFactory"), sp.getService("IWebClient")].every((o) => Object.isFrozen(o));
          out.swap = ${probe(`(() => { org.retrieve = () => "swapped"; return org.retrieve(); })()`)};
        `),
        { services },
      );
      expect(outputsOf(report)).toMatchObject({
        orgKeys: "associate,create,delete,disassociate,execute,retrieve,retrieveMultiple,update",
        spKeys: "getService",
        frozen: true,
        swap: "threw TypeError",
      });
      expect(services.calls).toEqual([]);
      await expectStillServes(runtime());
    });
  });

  describe("calls after the end of an execution", () => {
    test("call after end: a service stashed by execution 1 and called in execution 2 (reuse) is refused, recorded, and fails execution 2 with SANDBOX_CALL_AFTER_END", async () => {
      const stash = plugin(
        `
          if (stashed === undefined) { stashed = { org, trace }; out.phase = "stashed"; return; }
          stashed.trace.trace("ghost line from execution 1");
          trace.trace("execution 2 saw: " + ${probe(`stashed.org.retrieve("account", "${ACCOUNT_ID}", null)`)});
          try { await stashed.org.create({ logicalName: "account" }); } catch (err) { trace.trace("and caught " + err.code); }
        `,
        `let stashed;`,
      );
      const services = accountServices();
      const first = await run(runtime(), stash, { isolation: "reuse", instanceKey: "stash", services });
      expect(outputsOf(first).phase).toBe("stashed");
      const second = await run(runtime(), stash, { isolation: "reuse", instanceKey: "stash", services });
      expect(second.stats.isolateReused).toBe(true);
      expect(errorOf(second).code).toBe("SANDBOX_CALL_AFTER_END");
      expect(second.violations.join("\n")).toContain("organization.execute was called outside its own execution");
      // The plug-in saw the refusal, and catching it does not undo the failure.
      expect(second.trace).toContain("execution 2 saw: threw PlugboxServiceError");
      expect(second.trace).not.toContain("ghost line");
      expect(services.calls).toEqual([]);
      await expectStillServes(runtime());
    });

    test("call after end: a call made by a promise chain that outlives execute() is refused, and fails that execution with SANDBOX_CALL_AFTER_END", async () => {
      const late = plugin(
        `
          let chain = Promise.resolve();
          for (let i = 0; i < 50; i++) chain = chain.then(() => null);
          chain.then(() => org.retrieve("account", "${ACCOUNT_ID}", null)).catch(() => undefined);
          return; // without awaiting the chain
        `,
      );
      const services = accountServices();
      const report = await run(runtime(), late, { isolation: "reuse", instanceKey: "late", services });
      expect(errorOf(report).code).toBe("SANDBOX_CALL_AFTER_END");
      expect(report.violations.join("\n")).toContain("organization.execute was called after its execution had ended");
      expect(services.calls).toEqual([]);
      await expectStillServes(runtime());
    });

    test("call after end: a call fired without awaiting is aborted when execute() returns, and the instance is not kept", async () => {
      let aborted!: () => void;
      const abortSeen = new Promise<void>((resolve) => (aborted = resolve));
      const services = recorder(
        (call) =>
          new Promise((resolve) => {
            call.signal.addEventListener("abort", () => {
              aborted();
              resolve(new Entity("account", ACCOUNT_ID));
            });
          }),
      );
      const fire = plugin(`runs++; out.runs = runs; if (runs === 1) { org.retrieve("account", "${ACCOUNT_ID}", null).catch(() => {}); }`, `let runs = 0;`);
      const first = await run(runtime(), fire, { isolation: "reuse", instanceKey: "fire", services });
      expect(outputsOf(first).runs).toBe(1);
      await abortSeen;
      expect(services.calls).toHaveLength(1);
      expect(services.calls[0]!.signal.aborted).toBe(true);
      // The isolate that had a call in flight is dropped: the next execution starts a new instance.
      const second = await run(runtime(), fire, { isolation: "reuse", instanceKey: "fire", services });
      expect(second.stats.isolateReused).toBe(false);
      expect(outputsOf(second).runs).toBe(1);
      await expectStillServes(runtime());
    });

    test("timers: a timer left pending when execution 1 returns (reuse) never fires into execution 2", async () => {
      // Execution 1 schedules a timer that would write into execution 2's context; its timers end with it.
      const timer = plugin(
        `
          runs++;
          if (runs === 1) { setTimeout(() => { if (current) current.hijacked = true; }, 1); return; }
          current = out;
          // Timers of equal delay fire in the order they were set: had execution 1's timer survived, it would fire first.
          await new Promise((resolve) => setTimeout(resolve, 1));
          out.hijacked = out.hijacked ?? false;
        `,
        `let runs = 0; let current;`,
      );
      outputsOf(await run(runtime(), timer, { isolation: "reuse", instanceKey: "timer" }));
      const second = await run(runtime(), timer, { isolation: "reuse", instanceKey: "timer" });
      expect(outputsOf(second).hijacked).toBe(false);
      await expectStillServes(runtime());
    });
  });

  describe("replaced intrinsics", () => {
    const tamperingPlugin = (replace: string) =>
      plugin(`
        ${replace}
        const account = await org.retrieve("account", "${ACCOUNT_ID}", { allColumns: true });
        trace.trace("retrieved {0}", account.attributes.name);
        out.name = account.attributes.name;
        out.list = [1, 2, 3];
        out.nested = { ok: true };
      `);

    /** Runs the tampering plug-in, then a healthy one; returns the tampering run's report and calls. */
    async function tamper(replace: string) {
      const services = accountServices();
      const report = await run(runtime(), tamperingPlugin(replace), { services });
      // Whatever the tampering did to its own isolate, the next execution is unaffected.
      await expectStillServes(runtime());
      return { report, calls: services.calls };
    }

    function expectBridgeWorked({ report, calls }: { report: ExecutionReport; calls: ServiceCall[] }): void {
      expect(report.ok ? "ok" : `${report.error.code}: ${report.error.message}`).toBe("ok");
      expect(calls).toHaveLength(1);
      expect(calls[0]).toMatchObject({ service: "organization", op: "retrieve", args: ["account", ACCOUNT_ID, { allColumns: true }], userId: null });
      expect(outputsOf(report)).toEqual({ name: "Contoso", list: [1, 2, 3], nested: { ok: true } });
      expect(report.trace).toBe("retrieved Contoso");
    }

    const replacements: Array<[string, string]> = [
      ["JSON.stringify", `JSON.stringify = () => { throw new Error("hijacked stringify"); };`],
      ["JSON.parse", `JSON.parse = () => ({ hijacked: true });`],
      ["Promise.prototype.then", `Promise.prototype.then = function () { throw new Error("hijacked then"); };`],
      ["Promise.prototype.then (never settling)", `Promise.prototype.then = function () { return this; };`],
      ["Map.prototype.get", `Map.prototype.get = () => "hijacked";`],
      ["Array.isArray", `Array.isArray = () => true;`],
      ["Object.keys", `Object.keys = () => ["hijacked"];`],
      ["String.prototype.replace", `String.prototype.replace = () => "hijacked";`],
      ["Reflect.apply and Function.prototype.apply", `Reflect.apply = () => "hijacked"; Function.prototype.apply = () => "hijacked";`],
      [
        "all of them at once",
        `JSON.stringify = () => "{}"; JSON.parse = () => ({}); Promise.prototype.then = function () { return this; }; Map.prototype.get = () => 1; Array.isArray = () => false; Object.keys = () => []; Object.freeze = (o) => o; Symbol.for = () => Symbol("fake");`,
      ],
    ];

    test.each(replacements)("replaced intrinsics: a plug-in that replaces %s still gets its service call and outputs through the bridge", async (_label, replace) => {
      // The shim captured every intrinsic it relies on before plug-in code ran: the bridge must still work.
      expectBridgeWorked(await tamper(replace));
    });

    // The codec (sdk/codec.ts) documents that a plug-in replacing intrinsics "cannot change how the bridge
    // reads or writes values". These two reach parts of the codec that are not captured.
    test("replaced intrinsics: a plug-in that replaces Function.prototype.call still gets its service call and outputs through the bridge", async () => {
      expectBridgeWorked(await tamper(`Function.prototype.call = () => "hijacked";`));
    });

    test("replaced intrinsics: a plug-in that defines Object.prototype setters named like bridge fields still gets its service call and outputs through the bridge", async () => {
      expectBridgeWorked(
        await tamper(
          `for (const key of ["args", "userId", "attributes", "outputParameters"]) Object.defineProperty(Object.prototype, key, { set() { throw new Error("hijacked " + key); }, configurable: true });`,
        ),
      );
    });
  });

  describe("hostile thrown values", () => {
    const thrown: Array<[string, string, string | RegExp]> = [
      ["null", `throw null;`, "null"],
      ["undefined", `throw undefined;`, "undefined"],
      ["a symbol", `throw Symbol("sym");`, "Symbol(sym)"],
      ["a function", `throw function hostile() { return process; };`, /the plug-in threw a value that could not be read/],
      ["a number", `throw 42;`, "42"],
      ["an object with no prototype", `throw Object.create(null);`, "the plug-in threw a value that could not be read"],
      ["an object whose getters throw", `throw { get message() { throw new Error("m"); }, get name() { throw 1; }, get stack() { throw 2; }, get status() { throw 3; } };`, "the plug-in threw a value that could not be read"],
      ["an Error whose message is not a string", `const e = new Error("x"); Object.defineProperty(e, "message", { value: { toString() { return "object message"; } } }); Object.defineProperty(e, "stack", { value: 12 }); throw e;`, "the plug-in threw a value that could not be read"],
      ["a proxy whose traps throw", `throw new Proxy({}, { get() { throw new Error("trap"); }, has() { throw 1; }, getPrototypeOf() { throw 2; }, ownKeys() { throw 3; }, getOwnPropertyDescriptor() { throw 4; } });`, "the plug-in threw a value that could not be read"],
      ["a revoked proxy", `const { proxy, revoke } = Proxy.revocable({}, {}); revoke(); throw proxy;`, "the plug-in threw a value that could not be read"],
      ["a rejected promise of a proxy function", `return Promise.reject(new Proxy(function () {}, { get() { throw 1; } }));`, "the plug-in threw a value that could not be read"],
      ["a thenable that rejects", `return { then(_, reject) { reject(new TypeError("from a thenable")); } };`, "TypeError: from a thenable"],
      ["a long message", `throw new Error("m".repeat(10000));`, /^m{8192}…$/],
      // Only own data properties are read: a getter is never called, whatever it would return.
      ["an object whose message getter loops", `throw { get message() { for (;;) {} } };`, "the plug-in threw a value that could not be read"],
      ["a proxy whose get trap loops", `throw new Proxy(new Error("behind a proxy"), { get() { for (;;) {} } });`, "behind a proxy"],
      ["an Error whose message getter returns a string", `const e = new Error("x"); Object.defineProperty(e, "message", { get() { return "from a getter"; } }); throw e;`, "the plug-in threw a value that could not be read"],
    ];

    test.each(thrown)("thrown values: throwing %s gives PLUGIN_UNEXPECTED_ERROR with a readable message", async (_label, body, message) => {
      const report = await run(runtime(), plugin(body));
      const error = errorOf(report);
      expect(error.code).toBe("PLUGIN_UNEXPECTED_ERROR");
      if (typeof message === "string") expect(error.message).toBe(message);
      else expect(error.message).toMatch(message);
      await expectStillServes(runtime());
    });

    // What does run while a failure is described runs inside the timed call.
    const spinning: Array<[string, string]> = [
      ["a proxy whose getOwnPropertyDescriptor trap loops", `throw new Proxy({}, { getOwnPropertyDescriptor() { for (;;) {} } });`],
      ["a proxy whose getPrototypeOf trap loops", `throw new Proxy({}, { getPrototypeOf() { for (;;) {} } });`],
      ["a thenable whose then loops", `return { then() { for (;;) {} } };`],
    ];
    const loopingMessageError = `const e = new Error("x"); Object.defineProperty(e, "message", { get() { return { toString() { for (;;) {} } }; } }); throw e;`;
    if (V8_MAJOR < 13) spinning.push(["an Error whose lazily formatted stack loops", loopingMessageError]);
    else {
      test("thrown values: an Error whose message getter would loop gives PLUGIN_UNEXPECTED_ERROR: V8 13 wrote its stack when it was made", async () => {
        const report = await run(runtime(), plugin(loopingMessageError), { limits: SPIN });
        expect(errorOf(report)).toMatchObject({ code: "PLUGIN_UNEXPECTED_ERROR", message: "the plug-in threw a value that could not be read" });
        await expectStillServes(runtime());
      });
    }

    test.each(spinning)("thrown values: throwing %s ends with SANDBOX_CPU_LIMIT or SANDBOX_TIMEOUT", async (_label, body) => {
      const report = await run(runtime(), plugin(body), { limits: SPIN });
      expect(["SANDBOX_CPU_LIMIT", "SANDBOX_TIMEOUT"]).toContain(errorOf(report).code);
      await expectStillServes(runtime());
    });

    test("thrown values: a 5 MB message gives PLUGIN_UNEXPECTED_ERROR with a bounded message", async () => {
      const report = await run(runtime(), plugin(`throw new Error("m".repeat(5000000));`));
      const error = errorOf(report) as PlugboxError & { pluginStack?: string };
      expect(error.code).toBe("PLUGIN_UNEXPECTED_ERROR");
      expect(error.message.length).toBeLessThanOrEqual(8_193);
      expect((error.pluginStack ?? "").length).toBeLessThanOrEqual(16_385);
      await expectStillServes(runtime());
    });

    test("thrown values: an InvalidPluginExecutionError look-alike with hostile status getters still gives PLUGIN_FAILED with default status", async () => {
      const report = await run(runtime(), plugin(`const e = new Error("denied"); e.name = "InvalidPluginExecutionError"; Object.defineProperty(e, "status", { get() { throw 1; } }); e.errorCode = 1.5; throw e;`));
      const error = errorOf(report) as PlugboxError & { status: number; errorCode: number };
      expect(error.code).toBe("PLUGIN_FAILED");
      expect(error.message).toBe("denied");
      expect(error.status).toBe(0);
      expect(error.errorCode).toBe(-2147220891);
      await expectStillServes(runtime());
    });
  });

  describe("state between executions", () => {
    const polluter = plugin(
      `
        out.before = JSON.stringify([typeof globalThis.leak, typeof ({}).polluted, [].includes.name, typeof Array.prototype.evil, moduleRuns]);
        globalThis.leak = "secret of execution " + ctx.sharedVariables.n;
        Object.prototype.polluted = "yes";
        Array.prototype.evil = () => "evil";
        Array.prototype.includes = function hijackedIncludes() { return true; };
        moduleRuns++;
      `,
      `let moduleRuns = 0;`,
    );
    const reader = plugin(`out.seen = JSON.stringify([typeof globalThis.leak, typeof ({}).polluted, [].includes.name, typeof Array.prototype.evil]);`);
    const clean = JSON.stringify(["undefined", "undefined", "includes", "undefined"]);

    test("fresh isolation: globals, prototypes and module state set by one execution are gone in the next", async () => {
      const exec = (n: number) =>
        runtime().execute({ bundle: polluter, typeName: "Attack", isolation: "fresh", context: context({ sharedVariables: { n } }) }, accountServices());
      const first = outputsOf(await exec(1));
      const second = outputsOf(await exec(2));
      expect(first.before).toBe(JSON.stringify(["undefined", "undefined", "includes", "undefined", 0]));
      expect(second.before).toBe(JSON.stringify(["undefined", "undefined", "includes", "undefined", 0]));
      const other = outputsOf(await runtime().execute({ bundle: reader, typeName: "Attack", context: context() }));
      expect(other.seen).toBe(clean);
      await expectStillServes(runtime());
    });

    test("reuse isolation: state left by one bundle is not seen by another bundle, nor by the same bundle under another instance key", async () => {
      const exec = (b: Bundle, instanceKey: string) =>
        runtime().execute({ bundle: b, typeName: "Attack", isolation: "reuse", instanceKey, context: context({ sharedVariables: { n: 1 } }) }, accountServices());
      outputsOf(await exec(polluter, "tenant-a"));
      // Same bundle, same key: the instance (and its pollution) is kept, as reuse promises.
      const again = outputsOf(await exec(polluter, "tenant-a"));
      expect(again.before).toBe(JSON.stringify(["string", "string", "hijackedIncludes", "function", 1]));
      // Another bundle, even under the same key, and the same bundle under another key, start clean.
      expect(outputsOf(await exec(reader, "tenant-a")).seen).toBe(clean);
      expect(outputsOf(await exec(reader, "tenant-b")).seen).toBe(clean);
      expect(outputsOf(await exec(polluter, "tenant-b")).before).toBe(JSON.stringify(["undefined", "undefined", "includes", "undefined", 0]));
      await expectStillServes(runtime());
    });

    test("reuse isolation: the same instance key with other configuration gets its own instance", async () => {
      const exec = (secureConfig: string) =>
        runtime().execute({ bundle: polluter, typeName: "Attack", isolation: "reuse", instanceKey: "shared-key", secureConfig, context: context({ sharedVariables: { n: 1 } }) });
      outputsOf(await exec("tenant-a-secret"));
      expect(outputsOf(await exec("tenant-b-secret")).before).toBe(JSON.stringify(["undefined", "undefined", "includes", "undefined", 0]));
      await expectStillServes(runtime());
    });
  });
});

describe("sandbox isolation: memory", () => {
  const runtime = useRuntime();

  test("memory: growth by many small allocations ends with SANDBOX_MEMORY_LIMIT", async () => {
    const report = await run(runtime(), plugin(`const keep = []; for (let i = 0; ; i++) keep.push({ i, text: "item " + i });`), {
      limits: { memoryMb: 32, cpuTimeMs: 20_000, wallTimeMs: 20_000 },
    });
    expect(errorOf(report).code).toBe("SANDBOX_MEMORY_LIMIT");
    await expectStillServes(runtime());
  });

  test("memory: ArrayBuffer growth cannot pass the heap limit; the allocation fails inside the isolate", async () => {
    const report = await run(
      runtime(),
      plugin(`let mb = 0; const keep = []; try { for (;;) { keep.push(new Uint8Array(1024 * 1024).fill(1)); mb++; } } catch (e) { out.error = String(e); } out.mb = mb;`),
      { limits: { memoryMb: 32, cpuTimeMs: 20_000, wallTimeMs: 20_000 } },
    );
    await expectStillServes(runtime());
    const out = outputsOf(report);
    expect(out.error).toBe("RangeError: Array buffer allocation failed");
    // isolated-vm's limit is soft; what matters is that it holds far below the process's memory.
    expect(out.mb).toBeLessThan(3 * 32);
  });

  test("memory: uncaught ArrayBuffer exhaustion ends with SANDBOX_MEMORY_LIMIT", async () => {
    const report = await run(runtime(), plugin(`const keep = []; for (;;) keep.push(new Uint8Array(1024 * 1024).fill(1));`), {
      limits: { memoryMb: 32, cpuTimeMs: 20_000, wallTimeMs: 20_000 },
    });
    await expectStillServes(runtime());
    expect(errorOf(report).code).toBe("SANDBOX_MEMORY_LIMIT");
  });

  test(`memory: one huge allocation ends with SANDBOX_MEMORY_LIMIT and the next execution is served (${V8_MAJOR < 13 ? "V8 aborts the worker process, a new one takes over" : "V8 13 stops the isolate, the worker lives on"})`, async () => {
    const before = runtime().workerPids;
    expect(before).toHaveLength(1);
    const report = await run(runtime(), plugin(`out.never = new Array(1e8).fill(0).length;`), { limits: { memoryMb: 32 } });
    expect(errorOf(report)).toMatchObject({
      code: "SANDBOX_MEMORY_LIMIT",
      message: V8_MAJOR < 13 ? expect.stringContaining("a fatal V8 error; its sandbox worker was restarted") : expect.stringContaining("the plug-in ran out of memory"),
    });
    await expectStillServes(runtime());
    const after = runtime().workerPids;
    expect(after).toHaveLength(1);
    if (V8_MAJOR < 13) expect(after[0]).not.toBe(before[0]);
    else expect(after[0]).toBe(before[0]);
  });
});

describe("sandbox isolation: worker crash", () => {
  const runtime = useRuntime();

  test("worker crash: a worker killed with SIGKILL mid-execution fails that execution with SANDBOX_WORKER_CRASHED, and the next execution runs", async () => {
    let called!: (call: ServiceCall) => void;
    const inService = new Promise<ServiceCall>((resolve) => (called = resolve));
    const services: SandboxServices = {
      // Holds the call open until the execution ends.
      call: (call) =>
        new Promise((resolve) => {
          call.signal.addEventListener("abort", () => resolve(null));
          called(call);
        }),
    };
    const before = runtime().workerPids;
    expect(before).toHaveLength(1);
    const pending = run(runtime(), plugin(`trace.trace("about to call"); await org.retrieve("account", "${ACCOUNT_ID}", null); out.never = true;`), { services });
    const call = await inService;
    expect(call.signal.aborted).toBe(false);
    process.kill(before[0]!, "SIGKILL");
    const report = await pending;
    const error = errorOf(report);
    expect(error.code).toBe("SANDBOX_WORKER_CRASHED");
    expect(error.message).toContain("SIGKILL");
    expect(call.signal.aborted).toBe(true);
    await expectStillServes(runtime());
    expect(runtime().workerPids).toHaveLength(1);
    expect(runtime().workerPids[0]).not.toBe(before[0]);
  });
});
