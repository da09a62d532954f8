/**
 * Checks on what a plug-in throws: hostile values (getters, Proxies, Error.prepareStackTrace)
 * wherever a value leaves the isolate, and codes a plug-in forges for its own failure.
 */
import { PlugboxError } from "../../runtime/errors.js";
import { ACCOUNT_ID, MISSING_ID } from "./corpus/technique.js";
import { attack, codeOf, leakedWrites, recordingServices, stillServes, verdict, type ConfinementCheck } from "./probe.js";

/** Module code for the thrown-value checks: `leak` tries a write; `realmOf(array)` says which realm V8 made an array in. */
export const REALM_PRELUDE = `
const OWN_FUNCTION = Function;
function leak(org, what) { org.create({ logicalName: "leak", attributes: { what: String(what) } }).catch(() => undefined); }
function realmOf(array) {
  try {
    const RealmFunction = array.constructor.constructor;
    const globals = RealmFunction("return [typeof WebAssembly, typeof SharedArrayBuffer, typeof Atomics].join()")();
    return (RealmFunction === OWN_FUNCTION ? "own realm: " : "another realm: ") + globals;
  } catch (e) { return "no realm: " + e; }
}
`;

/** Hostile values, each trying to run code (a write, a look at another realm) when it is read. */
export const hostileValues: ReadonlyArray<readonly [string, string]> = [
  ["a message getter", `({ get message() { leak(org, "message getter ran"); return "m"; } })`],
  ["Error.prepareStackTrace's frames", `(() => { Error.prepareStackTrace = (error, frames) => { leak(org, realmOf(frames)); return realmOf(frames); }; return new Error("hostile"); })()`],
  ["a Proxy apply trap on message.toString", `({ message: { toString: new Proxy(function () {}, { apply(target, self, args) { leak(org, realmOf(args)); return "m"; } }) } })`],
  ["a Proxy apply trap on name.toString", `(() => { const e = new Error("x"); e.name = { toString: new Proxy(function () {}, { apply(target, self, args) { leak(org, realmOf(args)); return "n"; } }) }; return e; })()`],
];

/** The moments isolated-vm used to copy a plug-in value out of the isolate after a timed call had returned. */
const thrownValueRoutes: Array<[string, string, (value: string) => string]> = [
  ["thrown-from-execute", "thrown from execute()", (value) => `throw ${value};`],
  ["unhandled-rejection", "left as an unhandled rejection", (value) => `Promise.reject(${value}); await org.retrieve("account", "${ACCOUNT_ID}", null);`],
  ["rejection-after-service-call", "left as an unhandled rejection after a service call resumed the plug-in", (value) => `await org.retrieve("account", "${ACCOUNT_ID}", null); Promise.reject(${value}); await org.retrieve("account", "${ACCOUNT_ID}", null);`],
  ["timer-throw", "thrown from a timer callback", (value) => `setTimeout(() => { throw ${value}; }, 0); await new Promise((resolve) => setTimeout(resolve, 50));`],
  ["interval-throw", "thrown from an interval callback", (value) => `const id = setInterval(() => { clearInterval(id); throw ${value}; }, 1); await new Promise((resolve) => setTimeout(resolve, 50));`],
];

export const thrownValueChecks: ConfinementCheck[] = thrownValueRoutes.map(([id, route, place]) => ({
  id: `hostile-value-${id}`,
  title: `hostile getters, Proxies and Error.prepareStackTrace in a value ${route} run outside no timed call, reach no other realm and write nothing`,
  source: "isolated-vm src/external_copy CopyThrownValue; vm2 CVE-2023-30547, CVE-2022-36067; plugbox issue 15",
  area: "thrown values",
  async run(setup) {
    const seen: string[] = [];
    const problems: Array<string | undefined> = [];
    for (const [probe, value] of hostileValues) {
      const { report, services } = await attack(setup, { body: place(value), prelude: REALM_PRELUDE });
      seen.push(`${probe}: ${codeOf(report)}`);
      if (leakedWrites(services).length > 0) problems.push(`${probe}: a write reached the host`);
      if (!report.ok) {
        if (!["PLUGIN_UNEXPECTED_ERROR", "SANDBOX_CALL_AFTER_END"].includes(report.error.code)) problems.push(`${probe}: failed with ${report.error.code}`);
        const stack = (report.error as PlugboxError & { pluginStack?: string }).pluginStack ?? "";
        if (stack.includes("another realm")) problems.push(`${probe}: reached another realm (${stack.slice(0, 120)})`);
      }
    }
    problems.push(await stillServes(setup));
    return verdict(seen.join(", "), problems);
  },
}));

const forgeries: Array<[string, string, string]> = [
  ["sets a caught service error's code to CLI_USAGE", `e.code = "CLI_USAGE"; throw e;`, "ORG_NOT_FOUND"],
  ["sets it to SANDBOX_MEMORY_LIMIT", `e.code = "SANDBOX_MEMORY_LIMIT"; throw e;`, "ORG_NOT_FOUND"],
  ["sets it to SANDBOX_ISOLATION_VIOLATION", `e.code = "SANDBOX_ISOLATION_VIOLATION"; throw e;`, "ORG_NOT_FOUND"],
  ["builds a look-alike with the service error's constructor", `throw new e.constructor("SANDBOX_ISOLATION_VIOLATION", "forged");`, "PLUGIN_UNEXPECTED_ERROR"],
  ["throws a plain object shaped like a service error", `throw { name: "PlugboxServiceError", code: "CLI_USAGE", message: "forged" };`, "PLUGIN_UNEXPECTED_ERROR"],
  ["throws the RangeError of a failed ArrayBuffer allocation without allocating", `throw new RangeError("Array buffer allocation failed");`, "PLUGIN_UNEXPECTED_ERROR"],
  ["throws an InvalidPluginExecutionError that carries codes", `const f = new Error("denied"); f.name = "InvalidPluginExecutionError"; f.code = "SANDBOX_CPU_LIMIT"; f.serviceCode = "CLI_USAGE"; throw f;`, "PLUGIN_FAILED"],
];

class AuditServiceError extends PlugboxError<"ORG_NOT_FOUND"> {}

export const forgedCodeCheck: ConfinementCheck = {
  id: "forged-error-codes",
  title: "a plug-in cannot choose the code of its failure: forged codes, look-alike errors and fake limit errors get the host's code",
  source: "vm2 GHSA-55hx-c926-fr95 (trusting sandbox error objects); plugbox issue 15",
  area: "forged codes",
  async run(setup) {
    const seen: string[] = [];
    const problems: string[] = [];
    for (const [label, thrower, want] of forgeries) {
      const services = recordingServices({ missing: () => new AuditServiceError("ORG_NOT_FOUND", "account does not exist") });
      const { report } = await attack(setup, { body: `try { await org.retrieve("account", "${MISSING_ID}", null); } catch (e) { ${thrower} }`, services });
      const error = report.ok ? undefined : (report.error as PlugboxError & { serviceCode?: string });
      const got = error ? (error.serviceCode ?? error.code) : "ok";
      seen.push(`${label}: ${got}`);
      if (got !== want) problems.push(`${label}: got ${got}, expected ${want}`);
    }
    return verdict(seen.join("; "), problems);
  },
};
