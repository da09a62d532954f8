/**
 * Techniques that climb out of the plug-in's realm: constructor chains from everything plugbox
 * hands in, and Error.prepareStackTrace with its call sites and stacks.
 */
import { ACCOUNT_ID, MISSING_ID, REFERENCE, type Technique } from "./technique.js";

export const realmTechniques: readonly Technique[] = [
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
];
