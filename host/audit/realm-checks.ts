/**
 * Checks that every route to a Function leads to the plug-in's own realm, without the globals
 * plugbox removes, and that the isolate's default realm offers none of them either.
 */
import { isDeepStrictEqual } from "node:util";
import { defaultRealmCheck } from "./realm.js";
import { attack, codeOf, describeReport, verdict, type ConfinementCheck } from "./probe.js";

/** Every route plug-in code has to a Function constructor (whose realm's globals it can then read). */
export const ROUTES_TO_FUNCTION: readonly string[] = [
  "Function",
  "(() => {}).constructor",
  "(async () => {}).constructor.constructor",
  "Object.getPrototypeOf(function* () {}).constructor.constructor",
  "[].constructor.constructor",
  "(() => { try { null.x; } catch (e) { return e.constructor.constructor; } })()",
  "(() => { let frames; const p = Error.prepareStackTrace; Error.prepareStackTrace = (e, f) => { frames = f; return ''; }; new Error().stack; Error.prepareStackTrace = p; return frames.constructor.constructor; })()",
  "(() => { let found; new Proxy(function () {}, { apply(t, s, args) { found = args; } })(); return found.constructor.constructor; })()",
];

export const realmChecks: ConfinementCheck[] = [
  {
    id: "removed-globals-every-route",
    title: "WebAssembly, SharedArrayBuffer, Atomics and FinalizationRegistry are absent by every route to a Function, and every route leads to the plug-in's own realm",
    source: "vm2 GHSA-ffh4-j6h5-pg66 (WebAssembly.JSTag); tc39 sharedmem issue #1; SES lockdown",
    area: "realms",
    async run(setup) {
      const { report } = await attack(setup, {
        body: `
          const constructors = [${ROUTES_TO_FUNCTION.join(", ")}];
          out.globals = constructors.map((F) => F("return [typeof WebAssembly, typeof SharedArrayBuffer, typeof Atomics, typeof FinalizationRegistry].join()")());
          out.ownRealm = constructors.map((F) => F === Function);`,
      });
      const out = report.ok ? report.changes.outputParameters : {};
      const globals = (out.globals ?? []) as string[];
      const exposed = globals.map((g, i) => [g, i] as const).filter(([g]) => g !== "undefined,undefined,undefined,undefined");
      return verdict(describeReport(report), [
        report.ok ? undefined : `failed with ${codeOf(report)}`,
        exposed.length === 0 ? undefined : `route(s) ${exposed.map(([g, i]) => `${i} saw ${g}`).join(", ")}`,
        isDeepStrictEqual(out.ownRealm, ROUTES_TO_FUNCTION.map(() => true)) ? undefined : "a route led to another realm",
      ]);
    },
  },
  defaultRealmCheck,
];
