/**
 * Techniques on what the isolate itself holds: isolated-vm handles and shim state, dynamic import
 * and code generation, WebAssembly, SharedArrayBuffer and Atomics.
 */
import { ACCOUNT_ID, MISSING_ID, REFERENCE, type Technique } from "./technique.js";

export const intrinsicTechniques: readonly Technique[] = [
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
];
