/**
 * The escape corpus: public sandbox-escape and sandbox-DoS techniques (vm2's advisories and
 * test/vm.js, isolated-vm's issues, SES's taming notes, realms-shim and safe-eval advisories), each
 * adapted to run inside a plug-in. Shipped with plugbox: `plugbox audit` runs every technique as a
 * confinement check, and test/runtime/sandbox-escape-corpus.test.ts runs the same table.
 *
 * A technique holds when the plug-in finds nothing it should not (it reports what it found in its
 * outputs), or when the execution ends with the typed error listed; in both cases nothing of the
 * host shows, no hostile write reaches the host and the runtime serves the next execution.
 *
 * Techniques that cannot apply to plugbox, and why (not checks, since there is nothing to attack):
 * - vm2's bridge bugs (CVE-2023-37903 custom inspect, GHSA-p5gc-c584-jj6v util.inspect showProxy,
 *   Buffer leaks, NodeVM require/builtin denylist gaps such as CVE-2026-47140): they need host objects
 *   inside the sandbox. plugbox passes none; an isolate has no Node built-ins, Buffer or require.
 * - Source-rewriter bypasses (vm2 CVE-2023-29199 and its transformer family): plugbox rewrites no
 *   plug-in source; it compiles the bundle as it is.
 * - isolated-vm cachedData / snapshot attacks (CVE-2022-39266): the code cache is made by a plugbox
 *   worker from the bundle's own source and never taken from outside.
 * - Node's host-side prepareStackTrace callback (vm2 issue #515): isolates have their own Error; Node's
 *   callback is never called for them.
 * - Spectre-class side channels across processes (isolated-vm README SECURITY): out of scope for a
 *   JavaScript sandbox; run workers in containers where that is in the threat model.
 */
import type { SandboxLimits } from "../../runtime/options.js";

export const ACCOUNT_ID = "6f1c3a52-0b7e-4f0e-9a55-3d2b1c0e9f11";
export const MISSING_ID = "0b5e8a2c-1d3f-4a6b-9c7d-2e4f6a8b0c1d";
/** Limits for techniques that must breach the CPU limit: the audit's runs stay short. */
export const SPIN: Partial<SandboxLimits> = Object.freeze({ cpuTimeMs: 300, wallTimeMs: 3_000 });
/** Text that would show the host (its paths, modules or processes) in what a plug-in sees. */
export const HOST_MARKERS: readonly string[] = ["/work/", "node_modules", "node:", "supervisor", "worker.js", "dist/runtime", "isolated-vm"];

/** Helpers inside the plug-in: `attempt(fn)` says what calling fn gave ("value:<type>" or "threw <Name>"). */
export const PRELUDE = `
const OWN_FUNCTION = Function;
function attempt(fn) { try { const v = fn(); return "value:" + (v === undefined ? "undefined" : typeof v); } catch (e) { return "threw " + (e && e.name); } }
async function attemptAsync(fn) { try { const v = await fn(); return "value:" + typeof v; } catch (e) { return "threw " + (e && e.name); } }
function leak(org, what) { org.create({ logicalName: "leak", attributes: { what: String(what) } }).catch(() => undefined); }
`;

/** Outputs the plug-in must leave (a RegExp matches a string output), or the codes its failure may have. */
export type Expectation = { outputs: Record<string, unknown> } | { fails: RegExp };

export interface Technique {
  id: string;
  title: string;
  /** The public advisory, issue or note the technique comes from. */
  source: string;
  /** The body of the plug-in's execute(serviceProvider); see attackBundle for what is in scope. */
  body: string;
  expect: Expectation;
  limits?: Partial<SandboxLimits>;
}

const REFERENCE = "threw ReferenceError";

export const escapeCorpus: readonly Technique[] = [
  // Constructor chains: the isolate has its own Function and no process; every climb ends there.
  {
    id: "ctor-chain-global",
    title: "a constructor chain from the global object reaches no process",
    source: "vm2 test/vm.js 'various attacks #1'; safe-eval GHSA-ww6v-677g-p656",
    body: `out.r = attempt(() => globalThis.constructor.constructor("return this")().constructor.constructor("return process")());`,
    expect: { outputs: { r: REFERENCE } },
  },
  {
    id: "ctor-chain-endowments",
    title: "constructor chains from every object plugbox hands in lead to the plug-in's own Function",
    source: "safer-eval GHSA-r3x4-wr4h-pw33",
    body: `
      const endowments = [org, org.retrieve, sp, sp.getService, trace, trace.trace, fetch, console, console.log, setTimeout, queueMicrotask, sp.getService("IServiceEndpointNotificationService")];
      out.r = [...new Set(endowments.map((o) => attempt(() => o.constructor.constructor("return process")())))];
      out.ownRealm = endowments.every((o) => (typeof o === "function" ? o : o.constructor).constructor === OWN_FUNCTION);`,
    expect: { outputs: { r: [REFERENCE], ownRealm: true } },
  },
  {
    id: "ctor-chain-caught-host-error",
    title: "a caught service error is the plug-in's own Error, with no host stack and no way to process",
    source: "vm2 issue #138 (host exception constructor chain)",
    body: `
      try { await org.retrieve("account", "${MISSING_ID}", null); } catch (e) {
        out.r = attempt(() => e.constructor.constructor("return process")());
        out.ownError = e instanceof Error && Object.getPrototypeOf(Object.getPrototypeOf(e)) === Error.prototype;
        out.hasStack = typeof e.stack === "string" && !/node_modules|dist\\//.test(e.stack);
      }`,
    expect: { outputs: { r: REFERENCE, ownError: true, hasStack: true } },
  },
  {
    id: "cross-context-reflect-construct",
    title: "Reflect.construct with a foreign newTarget stays in the plug-in's realm",
    source: "realms-shim GHSA-6jg8-7333-554w (Reflect.construct newTarget reaches the primal realm)",
    body: `
      let ShimClass; try { await org.retrieve("account", "${MISSING_ID}", null); } catch (e) { ShimClass = e.constructor; }
      const made = Reflect.construct(Object, [], ShimClass.bind(null));
      out.sameRealm = Object.getPrototypeOf(made).constructor.constructor === OWN_FUNCTION;`,
    expect: { outputs: { sameRealm: true } },
  },
  {
    id: "global-lexical-binding-leak",
    title: "no shim binding or bridge global is visible to the plug-in",
    source: "SES GHSA-h9w6-f932-gq62 / CVE-2025-32792; vm2 GHSA-2cm2-m3w5-gp2f",
    body: `
      const names = ["hostCall", "hostTrace", "hostDone", "hostEnding", "current", "moduleExports", "pluginInstance", "serviceErrorCalls", "NO_EXECUTION", "defaultRealm", "__pb_api", "__pb_call"];
      out.visible = names.filter((n) => (0, eval)("typeof " + n) !== "undefined");`,
    expect: { outputs: { visible: [] } },
  },
  // Error.prepareStackTrace and call sites.
  {
    id: "pst-callsite-getthis",
    title: "Error.prepareStackTrace's call sites show no host frame, this or function",
    source: "vm2 CVE-2022-36067 / GHSA-mrgp-mrhc-5jrq (SandBreak)",
    body: `
      Error.prepareStackTrace = (_, sites) => sites.filter((s) => s.getFunction() !== undefined || s.getThis() !== undefined).map((s) => s.getFileName());
      const leaked = new Error("probe").stack; Error.prepareStackTrace = undefined;
      out.foreign = leaked.filter((file) => file !== "test-plugin.js");`,
    expect: { outputs: { foreign: [] } },
  },
  {
    id: "pst-async-frames",
    title: "Error.prepareStackTrace's frames of an async stack lead to no process",
    source: "vm2 CVE-2023-29017 / GHSA-7jxr-cg7f-gpgv",
    body: `
      Error.prepareStackTrace = (e, frames) => frames.constructor.constructor("return process")();
      out.r = await (async () => { null.x; })().catch((e) => attempt(() => e.stack));
      Error.prepareStackTrace = undefined;`,
    expect: { outputs: { r: REFERENCE } },
  },
  {
    id: "pst-global-error-swap",
    title: "replacing globalThis.Error by an object with prepareStackTrace reaches nothing",
    source: "vm2 issue #515 (prepareStackTrace looked up on globalThis.Error)",
    body: `globalThis.Error = { prepareStackTrace: (e, f) => f.constructor.constructor("return process")() }; null.x;`,
    expect: { fails: /^PLUGIN_UNEXPECTED_ERROR$/ },
  },
  {
    id: "error-name-symbol-stack",
    title: "an error whose name is a Symbol fails the execution with a typed error",
    source: "vm2 GHSA-v27g-jcqj-v8rw / CVE-2021-23555 (Symbol name breaks stack formatting)",
    body: `const e = new Error("symbol name"); e.name = Symbol("s"); throw e;`,
    expect: { fails: /^PLUGIN_UNEXPECTED_ERROR$/ },
  },
  {
    id: "stack-overflow-rangeerror",
    title: "the call-stack RangeError is the isolate's own and leads to no process",
    source: "vm2 CVE-2019-10761 (a RangeError from the call-stack limit)",
    body: `
      const deep = () => deep();
      try { deep(); } catch (e) { out.name = e.name; out.r = attempt(() => e.constructor.constructor("return process")()); }`,
    expect: { outputs: { name: "RangeError", r: REFERENCE } },
  },
  {
    id: "stack-info-disclosure",
    title: "stacks and call sites name no host file",
    source: "vm2 GHSA-v27g-jcqj-v8rw (CallSite file names); SES lockdown errorTaming",
    body: `
      Error.prepareStackTrace = (_, sites) => sites.map((s) => [s.getFileName(), s.getScriptNameOrSourceURL && s.getScriptNameOrSourceURL(), s.getEvalOrigin()].join("|")).join("\\n");
      await org.retrieve("account", "${ACCOUNT_ID}", null);
      out.stack = new Error("probe").stack;`,
    expect: { outputs: {} },
  },
  // Thrown values and their sanitization.
  {
    id: "proxied-throw-getprototypeof",
    title: "a thrown Proxy's traps run no write and fail the execution with a typed error",
    source: "vm2 CVE-2023-30547 / GHSA-ch3r-j5x3-6q2m",
    body: `throw new Proxy({}, { getPrototypeOf() { leak(org, "trap ran"); throw new Error("trap"); } });`,
    expect: { fails: /^(PLUGIN_UNEXPECTED_ERROR|SANDBOX_CALL_AFTER_END)$/ },
  },
  {
    id: "thrown-getter-copy",
    title: "getters on a value thrown from a timer are never called",
    source: "isolated-vm src/external_copy/external_copy.cc CopyThrownValue (getters run while a thrown value is copied)",
    body: `setTimeout(() => { throw { get message() { leak(org, "getter ran"); return "m"; }, get stack() { for (;;) {} } }; }, 0); await new Promise((r) => setTimeout(r, 50));`,
    expect: { fails: /^PLUGIN_UNEXPECTED_ERROR$/ },
  },
  {
    id: "null-proto-error-stack-match",
    title: "a null-prototype error with a hostile stack object is read, not run",
    source: "safe-eval GHSA-hrpq-r399-whgw / CVE-2020-7710",
    body: `const ex = new Error("x"); Object.setPrototypeOf(ex, null); ex.stack = { match: (x) => x.constructor.constructor("return process")() }; throw ex;`,
    expect: { fails: /^PLUGIN_UNEXPECTED_ERROR$/ },
  },
  {
    id: "suppressed-or-aggregate-error-nesting",
    title: "service errors nested in AggregateError/SuppressedError and cause lead to no process",
    source: "vm2 GHSA-55hx-c926-fr95 / CVE-2026-26332 (SuppressedError); vm2 GHSA-m283-3h24-438v (Error.cause)",
    body: `
      let host; try { await org.retrieve("account", "${MISSING_ID}", null); } catch (e) { host = e; }
      const Nested = typeof SuppressedError === "function" ? SuppressedError : AggregateError;
      const nested = Nested === AggregateError ? new AggregateError([host], "outer", { cause: host }) : new SuppressedError(host, host, "outer");
      out.r = attempt(() => (nested.errors ? nested.errors[0] : nested.error).constructor.constructor("return process")());
      out.cause = attempt(() => (nested.cause ?? nested.suppressed).constructor.constructor("return process")());`,
    expect: { outputs: { r: REFERENCE, cause: REFERENCE } },
  },
  {
    id: "shim-reentrancy-rangeerror",
    title: "a RangeError forced at the top of the stack does not break the services",
    source: "realms-shim WS-2019-0284 (a RangeError forced inside trusted code)",
    body: `
      let depth = 0;
      const dive = () => { depth++; try { return dive(); } catch { return org.retrieve("account", "${ACCOUNT_ID}", null).then(() => "served", (e) => "refused " + e.name); } };
      out.r = await attemptAsync(() => dive());
      out.after = (await org.retrieve("account", "${ACCOUNT_ID}", null)).attributes.name;`,
    expect: { outputs: { after: "Contoso" } },
  },
  // Proxies.
  {
    id: "object-prototype-trap-injection",
    title: "Proxy trap names planted on Object.prototype are never consulted by the bridge",
    source: "vm2 issue #178; vm2 test/vm.js 'proxy trap via Object.prototype attack'",
    body: `
      const seen = [];
      for (const trap of ["get", "set", "has", "apply", "construct", "getOwnPropertyDescriptor", "ownKeys", "defineProperty"]) Object.defineProperty(Object.prototype, trap, { configurable: true, get() { seen.push(trap); return undefined; } });
      const account = await org.retrieve("account", "${ACCOUNT_ID}", null);
      trace.trace("retrieved {0}", account.attributes.name);
      for (const trap of ["get", "set", "has", "apply", "construct", "getOwnPropertyDescriptor", "ownKeys", "defineProperty"]) delete Object.prototype[trap];
      out.name = account.attributes.name;`,
    expect: { outputs: { name: "Contoso" } },
  },
  {
    id: "proxy-argument-to-endowment",
    title: "a Proxy passed to a service is refused with a TypeError, its traps' functions never called by the host",
    source: "vm2 issue #178 comment 450978210 (a Proxy argument whose getOwnPropertyDescriptor trap throws a function)",
    body: `out.r = await attemptAsync(() => org.create(new Proxy({ logicalName: "account" }, { getOwnPropertyDescriptor() { throw (f) => f.constructor.constructor("return process")(); }, ownKeys() { throw () => 1; } })));`,
    expect: { outputs: { r: "threw TypeError" } },
  },
  {
    id: "proxy-apply-args-realm",
    title: "a Proxy apply trap's arguments belong to the plug-in's realm",
    source: "vm2 CVE-2023-32314 / GHSA-whpj-8f3w-67p5 (a host object built from the Proxy specification)",
    body: `
      let args;
      await new Promise((resolve) => setTimeout(new Proxy(function () {}, { apply(t, self, a) { args = a; resolve(); } }), 0));
      out.ownRealm = args.constructor === Array && args.constructor.constructor === OWN_FUNCTION;`,
    expect: { outputs: { ownRealm: true } },
  },
  // Symbols, legacy accessors, caller.
  {
    id: "hasinstance-type-check-bypass",
    title: "Symbol.hasInstance overrides do not change what the services accept",
    source: "vm2 issue #178 comment 450978210; vm2 test/vm.js 'Symbol.hasInstance attack'",
    body: `
      out.defined = attempt(() => Object.defineProperty(Function.prototype, Symbol.hasInstance, { value: () => true }));
      Object.defineProperty(Object, Symbol.hasInstance, { value: () => true });
      Object.defineProperty(Array, Symbol.hasInstance, { value: () => true });
      out.name = (await org.retrieve("account", "${ACCOUNT_ID}", null)).attributes.name;`,
    expect: { outputs: { defined: "threw TypeError", name: "Contoso" } },
  },
  {
    id: "lookupgetter-proto-walk",
    title: "__lookupGetter__('__proto__') walks only the plug-in's realm",
    source: "vm2 issues #176 and #184 (__defineGetter__, __lookupGetter__)",
    body: `
      const protoOf = ({}).__lookupGetter__("__proto__");
      out.sameRealm = protoOf.call(org) === Object.prototype && protoOf.call(org.retrieve) === Function.prototype;
      out.r = attempt(() => protoOf.call(protoOf.call(org)).constructor.constructor("return process")());`,
    expect: { outputs: { sameRealm: true, r: "threw TypeError" } },
  },
  {
    id: "array-species-self-return",
    title: "an Array Symbol.species getter is never consulted by the bridge",
    source: "vm2 GHSA-grj5-jjm8-h35p (Array species self-return)",
    body: `
      const seen = [];
      Object.defineProperty(Array, Symbol.species, { configurable: true, get() { seen.push("species"); return function () { return seen; }; } });
      const account = await org.retrieve("account", "${ACCOUNT_ID}", null);
      out.name = account.attributes.name;
      out.seen = seen.length;`,
    expect: { outputs: { name: "Contoso", seen: 0 } },
  },
  {
    id: "array-index-setter-capture",
    title: "index setters on Array/Object prototypes capture nothing of the bridge's records",
    source: "vm2 GHSA-9qj6-qjgg-37qq (an Array.prototype[0] setter captures the bridge's records)",
    body: `
      const captured = { n: 0 };
      Object.defineProperty(Array.prototype, "0", { configurable: true, set(v) { captured.n++; } });
      Object.defineProperty(Object.prototype, "1", { configurable: true, set(v) { captured.n++; } });
      const account = await org.retrieve("account", "${ACCOUNT_ID}", ["name", "revenue"]);
      delete Array.prototype[0]; delete Object.prototype[1];
      out.name = account.attributes.name;
      out.captured = captured.n;`,
    expect: { outputs: { name: "Contoso", captured: 0 } },
  },
  {
    id: "caller-callee-shim-leak",
    title: "caller/callee chains stop before the shim",
    source: "safe-eval GHSA-9pcf-h8q9-63f6 (arguments.callee.caller)",
    body: `
      // A sloppy function sees its sloppy caller; the chain stops at the first strict frame (the plug-in's class, then the shim).
      const chain = Function("return (function f() { return [typeof f.caller, f.caller.caller]; })()")();
      out.r = [chain[0], chain[1] === null];
      out.callerOfExecute = Function("return arguments.callee.caller")() === null;`,
    expect: { outputs: { r: ["function", true], callerOfExecute: true } },
  },
  // Promises.
  {
    id: "promise-species-then",
    title: "a Promise Symbol.species override does not break the shim's reactions",
    source: "vm2 CVE-2023-37466 / GHSA-cchq-frgv-rjh5; vm2 GHSA-qvjj-29qf-hp7p (Promise species)",
    body: `
      // The species getter may run (inside the timed call); whatever it returns, the shim's own reactions still settle.
      Object.defineProperty(Promise, Symbol.species, { configurable: true, get() { return function Evil(executor) { executor(() => undefined, () => undefined); }; } });
      const account = await org.retrieve("account", "${ACCOUNT_ID}", null);
      out.name = account.attributes.name;`,
    expect: { outputs: { name: "Contoso" } },
  },
  {
    id: "thenable-assimilation",
    title: "a thenable returned from execute() reaches no process",
    source: "vm2 GHSA-f8gf-w286-fmq2 (thenable assimilation)",
    body: `return { then(resolve) { out.r = attempt(() => resolve.constructor.constructor("return process")()); resolve(); } };`,
    expect: { outputs: { r: REFERENCE } },
  },
  {
    id: "monkeypatch-call-apply",
    title: "replacing call, apply and bind does not break the services",
    source: "vm2 test/vm.js 'Function.prototype.call attack via Promise'; vm2 commit 4b009c2 (#549)",
    body: `
      Function.prototype.call = function () { throw new Error("hijacked call"); };
      Function.prototype.apply = function () { throw new Error("hijacked apply"); };
      Function.prototype.bind = function () { throw new Error("hijacked bind"); };
      out.name = (await org.retrieve("account", "${ACCOUNT_ID}", null)).attributes.name;`,
    expect: { outputs: { name: "Contoso" } },
  },
  {
    id: "promise-then-override",
    title: "replacing Promise.prototype.then does not break the services",
    source: "vm2 CVE-2026-22709 / GHSA-99p7-6v5w-7xg8 (async functions return the intrinsic promise)",
    body: `
      const then = Promise.prototype.then;
      Promise.prototype.then = function (ok, fail) { return then.call(this, ok, fail); };
      Object.getPrototypeOf((async () => {})()).then = function () { throw new Error("hijacked"); };
      out.name = (await org.retrieve("account", "${ACCOUNT_ID}", null)).attributes.name;`,
    expect: { outputs: { name: "Contoso" } },
  },
  {
    id: "promise-static-method-stealing",
    title: "a stolen Promise.all sees only the plug-in's own results",
    source: "vm2 test/vm.js 'Promise.all static method stealing attack'",
    body: `
      const results = [];
      const Evil = function (executor) { executor((v) => results.push(v), (e) => results.push(e)); };
      out.r = attempt(() => Promise.all.call(Evil, [org.retrieve("account", "${ACCOUNT_ID}", null)]));
      await new Promise((r) => setTimeout(r, 20));
      out.values = results.map((v) => (v && v.logicalName) || typeof v);`,
    // The stolen method builds an Evil, and Evil sees only the plug-in's own results.
    expect: { outputs: { r: "value:object", values: ["object"] } },
  },
  {
    id: "async-generator-yield-star",
    title: "a service error caught through yield* leads to no process",
    source: "vm2 CVE-2026-45411 (yield* in an async generator catches a host exception)",
    body: `
      async function* inner() { yield await org.retrieve("account", "${MISSING_ID}", null); }
      async function* outer() { try { yield* inner(); } catch (e) { yield attempt(() => e.constructor.constructor("return process")()); } }
      const it = outer(); out.r = (await it.next()).value; await it.return();`,
    expect: { outputs: { r: REFERENCE } },
  },
  // Unhandled rejections and host promises.
  {
    id: "unhandled-rejection-executor",
    title: "unhandled rejections do not fail the execution or the host",
    source: "vm2 GHSA-hw58-p9xv-2mjh / CVE-2026-44001 (an unhandled rejection crashed the host)",
    body: `new Promise(() => { throw new Error("in the executor"); }); (async () => { throw new Error("in an async function"); })(); out.done = true;`,
    expect: { outputs: { done: true } },
  },
  {
    id: "host-promise-ignored",
    title: "a rejected service promise left unhandled fails nothing",
    source: "vm2 CVE-2026-92954 / GHSA-gjq8-xm47-88rc (a rejected host promise left unhandled)",
    body: `org.retrieve("account", "${MISSING_ID}", null); await new Promise((r) => setTimeout(r, 20)); out.done = true;`,
    expect: { outputs: { done: true } },
  },
  {
    id: "timer-callback-rejection",
    title: "a rejection from a timer callback hangs nothing",
    source: "isolated-vm issue #451 (a timer and a rejected promise hang the process)",
    body: `setTimeout(() => Promise.reject(new Error("late")), 0); await new Promise((r) => setTimeout(r, 30)); out.done = true;`,
    expect: { outputs: { done: true } },
  },
  // isolated-vm objects and shim state.
  {
    id: "ivm-object-leak",
    title: "no isolated-vm Reference, Callback or ExternalCopy is reachable from any object",
    source: "isolated-vm CVE-2021-21413 / GHSA-mmhj-4w6j-76h7 (a Reference exposed the Node prototype chain)",
    body: `
      const seen = new Set(); const found = [];
      const walk = (o, depth) => { if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.has(o) || depth > 6) return; seen.add(o);
        for (const k of Reflect.ownKeys(o)) { let v; try { v = o[k]; } catch { continue; } if (v && /^(Reference|ExternalCopy|Callback|Isolate|Context|NativeModule)$/.test(v.constructor && v.constructor.name)) found.push(String(k)); walk(v, depth + 1); }
        walk(Object.getPrototypeOf(o), depth + 1); };
      walk(globalThis, 0); walk(sp, 0); walk(org, 0); walk(ctx, 0);
      out.found = found;`,
    expect: { outputs: { found: [] } },
  },
  {
    id: "intrinsic-pollution",
    title: "polluted intrinsics (Object.prototype, JSON.parse) do not change what the host answers",
    source: "vm2 GHSA-vwrp-x96c-mhwq / CVE-2026-44005 (intrinsic prototype pollution through the bridge)",
    body: `
      Object.prototype.isAdmin = true; Array.prototype.extra = "x"; JSON.parse = () => ({ hijacked: true });
      const account = await org.retrieve("account", "${ACCOUNT_ID}", null);
      out.name = account.attributes.name;
      delete Object.prototype.isAdmin; delete Array.prototype.extra;`,
    expect: { outputs: { name: "Contoso" } },
  },
  {
    id: "collection-method-hijack",
    title: "hijacked Map/WeakMap/Set methods are never called by the shim",
    source: "vm2 CVE-2022-25893 / GHSA-4w2j-2rg4-5mjw (WeakMap.prototype.set looked up on the prototype)",
    body: `
      const seen = [];
      for (const C of [Map, WeakMap, Set, WeakSet]) for (const m of ["get", "set", "has", "add", "delete"]) if (C.prototype[m]) C.prototype[m] = function () { seen.push(C.name + "." + m); return undefined; };
      let code; try { await org.retrieve("account", "${MISSING_ID}", null); } catch (e) { code = e.code; }
      out.code = code;
      out.name = (await org.retrieve("account", "${ACCOUNT_ID}", null)).attributes.name;
      out.seen = seen.length;`,
    expect: { outputs: { code: "SERVICE_FAILED", name: "Contoso", seen: 0 } },
  },
  {
    id: "regexp-legacy-statics",
    title: "RegExp legacy statics hold nothing of the shim's work",
    source: "SES lockdown regExpTaming (RegExp.lastMatch is a global overt channel)",
    body: `
      await org.retrieve("account", "${ACCOUNT_ID}", null);
      fetch("https://example.invalid/x").catch(() => undefined);
      out.lastMatch = String(RegExp.lastMatch ?? "");
      out.input = String(RegExp.input ?? "");`,
    expect: { outputs: {} },
  },
  // Dynamic import and code generation.
  {
    id: "dynamic-import",
    title: "dynamic import() of Node modules is refused",
    source: "vm2 CVE-2021-23449 / GHSA-rjf2-j2r6-q8gr (dynamic import)",
    body: `out.r = await attemptAsync(() => import("node:child_process")); out.r2 = await attemptAsync(() => eval('import("fs")'));`,
    expect: { outputs: { r: /^threw /, r2: /^threw / } },
  },
  {
    id: "codegen-static-filter-bypass",
    title: "code built at run time reaches no process",
    source: "isolated-vm src/isolate/environment.cc CodeGenCallback; vm2 GHSA-2cm2-m3w5-gp2f",
    body: `out.r = attempt(() => Function("re" + "turn " + "pro" + "cess")()); out.big = attempt(() => eval("1;".repeat(5_000_000)));`,
    expect: { outputs: { r: REFERENCE } },
  },
  // WebAssembly, SharedArrayBuffer, Atomics.
  {
    id: "wasm-api-resurrection",
    title: "WebAssembly is absent by every route",
    source: "vm2 GHSA-ffh4-j6h5-pg66 / CVE-2026-26956 (WebAssembly.JSTag); vm2 CVE-2026-47210 (JSPI)",
    body: `out.r = [typeof WebAssembly, typeof globalThis.WebAssembly, attempt(() => Function("return WebAssembly")())];`,
    expect: { outputs: { r: ["undefined", "undefined", REFERENCE] } },
  },
  {
    id: "sab-highres-timer",
    title: "SharedArrayBuffer and Atomics are absent by every route",
    source: "tc39/proposal-ecmascript-sharedmem issue #1 (shared memory makes a high-resolution timer)",
    body: `out.r = [typeof SharedArrayBuffer, typeof Atomics, attempt(() => new (Function("return SharedArrayBuffer")())(8))];`,
    expect: { outputs: { r: ["undefined", "undefined", REFERENCE] } },
  },
  // Timers and state between runs.
  {
    id: "lingering-timers",
    title: "an interval left running ends with its execution",
    source: "nodejs/node issue #3020 (promises and timers escape vm.runInContext's timeout)",
    body: `setInterval(() => { for (let i = 0; i < 1e5; i++); }, 1); out.done = true;`,
    expect: { outputs: { done: true } },
  },
  // CPU.
  {
    id: "infinite-loop-timeout",
    title: "a synchronous infinite loop ends with SANDBOX_CPU_LIMIT",
    source: "vm2 issue #180 (not immune to while(1)); isolated-vm issue #266",
    body: `while (true) {}`,
    expect: { fails: /^SANDBOX_CPU_LIMIT$/ },
    limits: SPIN,
  },
  {
    id: "microtask-flood",
    title: "an endless microtask chain ends with SANDBOX_CPU_LIMIT",
    source: "nodejs/node issue #3020; node commit 1851cf4f83 (timeouts escaped through microtasks)",
    body: `const spin = () => Promise.resolve().then(spin); spin(); await new Promise(() => {});`,
    expect: { fails: /^SANDBOX_CPU_LIMIT$/ },
    limits: SPIN,
  },
  {
    id: "await-host-timeout-gap",
    title: "CPU spent after an awaited service call is timed",
    source: "isolated-vm issues #318 and #475 (no timeout after awaiting a host promise)",
    body: `while (true) { await org.retrieve("account", "${ACCOUNT_ID}", null); for (let i = 0; i < 1e6; i++); }`,
    expect: { fails: /^(SANDBOX_CPU_LIMIT|SANDBOX_HOST_CALL_LIMIT)$/ },
    limits: SPIN,
  },
  {
    id: "redos",
    title: "catastrophic regular-expression backtracking ends with SANDBOX_CPU_LIMIT",
    source: "vm2 docs/ATTACKS.md category 23 (backtracking in native regex code)",
    body: `out.r = /^(a|aa)+$/.test("a".repeat(60) + "b");`,
    expect: { fails: /^SANDBOX_CPU_LIMIT$/ },
    limits: SPIN,
  },
  {
    id: "log-flood-amplification",
    title: "a console flood is bounded by the trace limit",
    source: "isolated-vm issue #169 (logging floods keep the host busy)",
    body: `for (let i = 0; i < 200_000; i++) console.log("flood " + i); out.done = true;`,
    expect: { outputs: { done: true } },
  },
  {
    id: "timer-flood-watchdogs",
    title: "a flood of timers is refused with SANDBOX_HOST_CALL_LIMIT",
    source: "isolated-vm issue #572 (many timed calls exhaust the thread stack)",
    body: `for (let i = 0; i < 10_000; i++) setTimeout(() => undefined, 0);`,
    expect: { fails: /^SANDBOX_HOST_CALL_LIMIT$/ },
  },
  // Memory.
  {
    id: "single-builtin-overallocation",
    title: "one builtin allocating past the heap limit ends with a typed error",
    source: "isolated-vm issues #107 and #186 (one builtin allocates past the limit)",
    body: `out.r = [..."." .repeat(1e8)].length;`,
    expect: { fails: /^(SANDBOX_MEMORY_LIMIT|SANDBOX_WORKER_CRASHED|PLUGIN_UNEXPECTED_ERROR)$/ },
    limits: { memoryMb: 32, cpuTimeMs: 10_000, wallTimeMs: 10_000 },
  },
  {
    id: "host-to-isolate-copy-oom",
    title: "an answer over maxHostCallBytes is refused before it is copied in",
    source: "isolated-vm issue #293 (a large host result copied into a small isolate)",
    body: `out.r = await attemptAsync(() => org.retrieveMultiple({ huge: true }));`,
    // The answer is refused before it is copied in; the plug-in sees the refusal.
    expect: { outputs: { r: "threw PlugboxServiceError" } },
    limits: { maxHostCallBytes: 64 * 1024 },
  },
  {
    id: "native-stack-overflow",
    title: "deep recursion and deep JSON end as RangeErrors inside the isolate",
    source: "isolated-vm issue #82 (recursion broke the Node process)",
    body: `const r = (n) => r(n + 1) + 1; out.r = attempt(() => r(0)); out.deep = attempt(() => JSON.parse("[".repeat(1e6) + "]".repeat(1e6)));`,
    expect: { outputs: { r: "threw RangeError" } },
  },
];
