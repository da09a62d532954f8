/**
 * Techniques that hand the bridge a hostile value: thrown values and their sanitization, Proxies,
 * Symbol overrides, legacy accessors and caller chains.
 */
import { ACCOUNT_ID, MISSING_ID, REFERENCE, type Technique } from "./technique.js";

export const valueTechniques: readonly Technique[] = [
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
];
