/**
 * Techniques through promises: species and then overrides, thenables, stolen statics, async
 * generators, and rejections left unhandled.
 */
import { ACCOUNT_ID, MISSING_ID, REFERENCE, type Technique } from "./technique.js";

export const promiseTechniques: readonly Technique[] = [
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
];
