/**
 * The catalogue of confinement checks `plugbox audit` runs: hostile plug-ins shipped inside plugbox,
 * each with the public advisory or technique it comes from. A failed check is a defect of the
 * sandbox under the configuration audited, never an expected outcome.
 *
 * Checks that must breach a limit run with the host's limits tightened to what they need (a CPU
 * spin under 300 ms rather than 60 s), never widened: the mechanism that stops them is the same.
 */
import { isDeepStrictEqual } from "node:util";
import { PlugboxError } from "../../runtime/errors.js";
import type { ExecutionReport } from "../../runtime/supervisor.js";
import { ACCOUNT_ID, escapeCorpus, HOST_MARKERS, MISSING_ID, PRELUDE, SPIN, type Expectation, type Technique } from "./corpus.js";
import { Entity } from "../../sdk/model.js";
import { attack, attackBundle, codeOf, describeReport, leakedWrites, recordingServices, sampleContext, stillServes, verdict, type ConfinementCheck } from "./probe.js";
import { defaultRealmCheck } from "./realm.js";
import { webChecks } from "./web-checks.js";

/** How far past its CPU limit an execution that spins may end. */
const CPU_MARGIN_MS = 200;

/** Where an execution's outputs differ from what a technique expects (a RegExp matches a string); undefined when they match. */
export function outputMismatch(actual: Record<string, unknown>, expected: Record<string, unknown>): string | undefined {
  for (const [key, want] of Object.entries(expected)) {
    const got = actual[key];
    const matches = want instanceof RegExp ? typeof got === "string" && want.test(got) : isDeepStrictEqual(got, want);
    if (!matches) return `output ${key} was ${JSON.stringify(got)}, expected ${want instanceof RegExp ? String(want) : JSON.stringify(want)}`;
  }
  return undefined;
}

function expectationProblem(report: ExecutionReport, expectation: Expectation): string | undefined {
  if ("outputs" in expectation) return report.ok ? outputMismatch(report.changes.outputParameters, expectation.outputs) : `the execution failed where it should have finished`;
  if (report.ok) return `the execution finished where it should have failed with ${String(expectation.fails)}`;
  return expectation.fails.test(report.error.code) ? undefined : `failed with ${report.error.code}, expected ${String(expectation.fails)}`;
}

/** Text that shows a host path, module or process in what the plug-in left behind. */
function hostMarkerShown(report: ExecutionReport): string | undefined {
  const shown = JSON.stringify(report.ok ? report.changes : { message: report.error.message, details: report.error.details }) + report.trace;
  const marker = HOST_MARKERS.find((m) => shown.includes(m));
  return marker === undefined ? undefined : `the plug-in saw host text ${JSON.stringify(marker)}`;
}

/** A technique of the escape corpus as a check: its expectation holds, nothing of the host shows, no hostile write lands, the runtime serves on. */
function techniqueCheck(technique: Technique): ConfinementCheck {
  return {
    id: technique.id,
    title: technique.title,
    source: technique.source,
    area: "escape corpus",
    async run(setup) {
      const { report, services } = await attack(setup, { body: technique.body, prelude: PRELUDE, ...(technique.limits ? { limits: technique.limits } : {}) });
      return verdict(describeReport(report), [
        expectationProblem(report, technique.expect),
        hostMarkerShown(report),
        leakedWrites(services).length > 0 ? `${leakedWrites(services).length} hostile write(s) reached the host` : undefined,
        await stillServes(setup),
      ]);
    },
  };
}

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

const thrownValueChecks: ConfinementCheck[] = thrownValueRoutes.map(([id, route, place]) => ({
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

/** A check that one hostile body ends with one of `codes`, within `cpuBelowMs` of CPU when given, and the runtime serves on. */
function endsWith(spec: { id: string; title: string; source: string; area: string; body: string; codes: string[]; limits?: Parameters<typeof attack>[1]["limits"]; cpuMargin?: number; prelude?: string }): ConfinementCheck {
  return {
    id: spec.id,
    title: spec.title,
    source: spec.source,
    area: spec.area,
    async run(setup) {
      const { report, services, limits } = await attack(setup, { body: spec.body, ...(spec.prelude ? { prelude: spec.prelude } : {}), ...(spec.limits ? { limits: spec.limits } : {}) });
      const cpuBound = spec.cpuMargin === undefined ? undefined : limits.cpuTimeMs + spec.cpuMargin;
      return verdict(describeReport(report), [
        spec.codes.includes(codeOf(report)) ? undefined : `ended with ${codeOf(report)}, expected ${spec.codes.join(" or ")}`,
        cpuBound !== undefined && report.stats.cpuMs >= cpuBound ? `used ${report.stats.cpuMs} ms of CPU, past the limit of ${limits.cpuTimeMs} ms plus ${spec.cpuMargin} ms` : undefined,
        leakedWrites(services).length > 0 ? "a hostile write reached the host" : undefined,
        await stillServes(setup),
      ]);
    },
  };
}

const cpuChecks: ConfinementCheck[] = [
  endsWith({
    id: "cpu-getter-while-encoding",
    title: "a getter that spins while the changed context is encoded ends with SANDBOX_CPU_LIMIT near the limit",
    source: "isolated-vm ExternalCopy of a result runs getters untimed; plugbox issue 15",
    area: "cpu",
    body: `out.slow = { get value() { for (;;) {} } };`,
    codes: ["SANDBOX_CPU_LIMIT"],
    limits: SPIN,
    cpuMargin: CPU_MARGIN_MS,
  }),
  endsWith({
    id: "cpu-proxy-while-describing",
    title: "a Proxy trap that spins while a thrown value is described ends with SANDBOX_CPU_LIMIT near the limit",
    source: "vm2 CVE-2023-30547 (Proxy traps on a thrown value); plugbox issue 15",
    area: "cpu",
    body: `throw new Proxy({}, { getOwnPropertyDescriptor() { for (;;) {} } });`,
    codes: ["SANDBOX_CPU_LIMIT"],
    limits: SPIN,
    cpuMargin: CPU_MARGIN_MS,
  }),
  endsWith({
    id: "cpu-prepare-stack-trace-spin",
    title: "Error.prepareStackTrace spinning while a thrown Error's stack is read ends with SANDBOX_CPU_LIMIT near the limit",
    source: "vm2 CVE-2022-36067 family (prepareStackTrace runs while a stack is read)",
    area: "cpu",
    body: `Error.prepareStackTrace = () => { for (;;) {} }; throw new Error("x");`,
    codes: ["SANDBOX_CPU_LIMIT"],
    limits: SPIN,
    cpuMargin: CPU_MARGIN_MS,
  }),
  endsWith({
    id: "cpu-timer-callback-spin",
    title: "a timer callback that spins ends with SANDBOX_CPU_LIMIT near the limit",
    source: "nodejs/node issue #3020 (timers escape vm timeouts)",
    area: "cpu",
    body: `setTimeout(() => { for (;;) {} }, 0); await new Promise((resolve) => setTimeout(resolve, 3_000));`,
    codes: ["SANDBOX_CPU_LIMIT"],
    limits: SPIN,
    cpuMargin: CPU_MARGIN_MS,
  }),
  endsWith({
    id: "cpu-timer-throw-endless-getter",
    title: "a getter on a value thrown from a timer, which would never end, is never called: the attack costs less than the CPU limit",
    source: "isolated-vm CopyThrownValue (getters run while a thrown value is copied); plugbox issue 15",
    area: "cpu",
    body: `setTimeout(() => { throw { get message() { for (;;) {} } }; }, 0); await new Promise((resolve) => setTimeout(resolve, 3_000));`,
    codes: ["PLUGIN_UNEXPECTED_ERROR"],
    limits: SPIN,
    cpuMargin: 0,
  }),
  endsWith({
    id: "promise-never-settles",
    title: "a promise that never settles, with nothing pending, ends at once with SANDBOX_STALLED",
    source: "isolated-vm issue #451 (a pending promise hangs the caller)",
    area: "cpu",
    body: `await new Promise(() => {});`,
    codes: ["SANDBOX_STALLED"],
  }),
  endsWith({
    id: "wall-clock-keepalive",
    title: "a plug-in kept alive by a cheap interval ends with SANDBOX_TIMEOUT at the wall-clock limit",
    source: "nodejs/node issue #3020; vm2 issue #180",
    area: "cpu",
    body: `setInterval(() => undefined, 20); await new Promise(() => {});`,
    codes: ["SANDBOX_TIMEOUT"],
    limits: { wallTimeMs: 1_000 },
  }),
];

const costChecks: ConfinementCheck[] = [
  {
    id: "attack-costs-only-its-execution",
    title: "a victim on the same worker as attackers that spin and hide endless getters completes with its own result",
    source: "isolated-vm issue #475 (one isolate's runaway blocks others); plugbox issue 15",
    area: "cpu",
    async run(setup) {
      if (setup.runtime.options.maxConcurrentPerWorker < 2) {
        // A victim waiting in a service call would hold the only slot the attackers need.
        return { passed: true, evidence: "not applicable", notApplicable: "maxConcurrentPerWorker is 1: no two executions share a worker" };
      }
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let entered!: () => void;
      const inService = new Promise<void>((resolve) => (entered = resolve));
      const victim = setup.runtime.execute(
        { bundle: attackBundle(`const a = await org.retrieve("account", "${ACCOUNT_ID}", null); out.name = a.attributes.name;`), typeName: "Attack", context: sampleContext() },
        {
          call: async () => {
            entered();
            await released;
            return new Entity("account", ACCOUNT_ID, { name: "Contoso" });
          },
        },
      );
      // The victim waits inside a service call (its isolate idle on the worker) until the attackers are done.
      await inService;
      const attackers = await Promise.all([
        attack(setup, { body: `setTimeout(() => { throw { get message() { for (;;) {} } }; }, 0); await new Promise((r) => setTimeout(r, 3_000));`, limits: SPIN, isolation: "fresh" }),
        attack(setup, { body: `throw new Proxy({}, { getOwnPropertyDescriptor() { for (;;) {} } });`, limits: SPIN, isolation: "fresh" }),
        attack(setup, { body: `out.slow = { get value() { for (;;) {} } };`, limits: SPIN, isolation: "fresh" }),
      ]);
      release();
      const report = await victim;
      const codes = attackers.map(({ report: r }) => codeOf(r));
      const name = report.ok ? report.changes.outputParameters.name : codeOf(report);
      return verdict(`attackers ended with ${codes.join(", ")}; the victim answered ${JSON.stringify(name)}`, [
        name === "Contoso" ? undefined : "the victim did not complete with its own result",
        codes.includes("ok") ? "an attacker finished" : undefined,
      ]);
    },
  },
];

const memoryChecks: ConfinementCheck[] = [
  endsWith({
    id: "memory-many-small-allocations",
    title: "many small allocations that exhaust the heap end with SANDBOX_MEMORY_LIMIT",
    source: "isolated-vm issue #107 (heap exhaustion); vm2 docs/ATTACKS.md (memory)",
    area: "memory",
    body: `const keep = []; for (let i = 0; ; i++) keep.push({ i, text: "x" + i });`,
    codes: ["SANDBOX_MEMORY_LIMIT"],
    limits: { memoryMb: 32, cpuTimeMs: 20_000 },
  }),
  endsWith({
    id: "memory-arraybuffer-exhaustion",
    title: "exhausting the heap with ArrayBuffers, uncaught, ends with SANDBOX_MEMORY_LIMIT",
    source: "isolated-vm issue #186 (external memory and the heap limit)",
    area: "memory",
    body: `const keep = []; for (;;) keep.push(new Uint8Array(1024 * 1024).fill(1));`,
    codes: ["SANDBOX_MEMORY_LIMIT"],
    limits: { memoryMb: 32, cpuTimeMs: 20_000 },
  }),
  {
    id: "memory-fatal-allocation",
    title: "one allocation V8 cannot survive costs at most its worker: a typed error, one worker replaced, the next execution runs",
    source: "isolated-vm issues #107 and #186 (a fatal allocation aborts the process)",
    area: "memory",
    async run(setup) {
      const before = setup.runtime.workerPids;
      const { report } = await attack(setup, { body: `out.never = new Array(1e8).fill(0).length;`, limits: { memoryMb: 32, cpuTimeMs: 20_000 }, isolation: "fresh" });
      const serves = await stillServes(setup);
      const after = setup.runtime.workerPids;
      const replaced = before.filter((pid) => !after.includes(pid)).length;
      return verdict(`${describeReport(report)}; workers replaced: ${replaced}`, [
        // Up to V8 12 the allocation aborts its worker at once; from V8 13 isolated-vm lets the isolate grow into its
        // headroom first, and under a short wall limit the execution can end with that limit before the memory one.
        ["SANDBOX_MEMORY_LIMIT", "SANDBOX_WORKER_CRASHED", "SANDBOX_TIMEOUT", "SANDBOX_CPU_LIMIT"].includes(codeOf(report)) ? undefined : `ended with ${codeOf(report)}`,
        replaced > 1 ? `${replaced} workers were replaced` : undefined,
        serves,
      ]);
    },
  },
];

const outputChecks: ConfinementCheck[] = [
  {
    id: "trace-flood-capped",
    title: "a flood of trace lines and one huge line are capped to limits.traceBytes",
    source: "isolated-vm issue #169 (logging floods); Dataverse's 10 KB trace limit",
    area: "output",
    async run(setup) {
      const { report, limits } = await attack(setup, { body: `for (let i = 0; i < 5000; i++) trace.trace("line {0} of the flood", i); trace.trace("x".repeat(500000)); console.log("%s", "y".repeat(300000) + "-tail");`, limits: { traceBytes: 4_096 } });
      const bytes = Buffer.byteLength(report.trace);
      return verdict(`${describeReport(report)}; trace ${bytes} bytes, limit ${limits.traceBytes}`, [report.ok ? undefined : `failed with ${codeOf(report)}`, bytes > limits.traceBytes + 256 ? "the trace passed its limit" : undefined]);
    },
  },
  endsWith({
    id: "result-too-large",
    title: "a changed context larger than limits.maxResultBytes fails with SANDBOX_RESULT_TOO_LARGE",
    source: "isolated-vm issue #293 (large copies across the boundary)",
    area: "output",
    body: `out.big = "x".repeat(100000);`,
    codes: ["SANDBOX_RESULT_TOO_LARGE"],
    limits: { maxResultBytes: 16_384 },
  }),
  endsWith({
    id: "result-too-deep",
    title: "a changed context nested deeper than the codec allows fails with PLUGIN_RESULT_INVALID",
    source: "vm2 docs/ATTACKS.md (deep structures exhaust the host's stack)",
    area: "output",
    body: `let deep = {}; for (let i = 0; i < 10000; i++) deep = { deep }; out.deep = deep;`,
    codes: ["PLUGIN_RESULT_INVALID"],
  }),
  {
    id: "prototype-pollution-host-parsing",
    title: "__proto__ and constructor keys in outputs and service arguments reach the host as nothing",
    source: "vm2 GHSA-vwrp-x96c-mhwq; Snyk prototype pollution class (JSON.parse __proto__)",
    area: "output",
    async run(setup) {
      const { report, services } = await attack(setup, {
        body: `
          const evil = JSON.parse('{"__proto__": {"isAdmin": true}, "constructor": {"prototype": {"isAdmin": true}}, "plain": 1}');
          Object.assign(out, evil);
          out.nested = evil;
          await org.create({ $type: "Entity", logicalName: "account", attributes: evil });`,
      });
      const out = report.ok ? report.changes.outputParameters : {};
      const nested = (out.nested ?? {}) as Record<string, unknown>;
      const created = services.calls.find((c) => c.op === "create")?.args[0] as { attributes?: Record<string, unknown> } | undefined;
      return verdict(describeReport(report), [
        report.ok ? undefined : `failed with ${codeOf(report)}`,
        ({} as Record<string, unknown>).isAdmin === undefined ? undefined : "the host's Object.prototype was polluted",
        Object.getPrototypeOf(out) === Object.prototype && Object.getPrototypeOf(nested) === Object.prototype ? undefined : "an output has a foreign prototype",
        out.isAdmin === undefined && nested.isAdmin === undefined ? undefined : "isAdmin showed in the outputs",
        created && Object.getPrototypeOf(created.attributes) === Object.prototype && created.attributes?.isAdmin === undefined ? undefined : "the created record's attributes were polluted",
      ]);
    },
  },
];

const hostCallChecks: ConfinementCheck[] = [
  {
    id: "host-call-flood-count",
    title: "a plug-in that calls services without end is stopped at limits.maxHostCalls with SANDBOX_HOST_CALL_LIMIT",
    source: "isolated-vm issue #572 (floods of calls); Dataverse's service call limits",
    area: "host calls",
    async run(setup) {
      const { report, services, limits } = await attack(setup, { body: `for (;;) await org.retrieve("account", "${ACCOUNT_ID}", null);`, limits: { maxHostCalls: 100 } });
      return verdict(`${describeReport(report)}; the host served ${services.calls.length} calls (limit ${limits.maxHostCalls})`, [
        codeOf(report) === "SANDBOX_HOST_CALL_LIMIT" ? undefined : `ended with ${codeOf(report)}`,
        services.calls.length > limits.maxHostCalls ? "the host served more calls than the limit" : undefined,
      ]);
    },
  },
  {
    id: "host-call-flood-concurrent",
    title: "a burst of concurrent service calls never has more than limits.maxConcurrentHostCalls in flight at the host",
    source: "isolated-vm issue #572; vm2 docs/ATTACKS.md (resource exhaustion through the bridge)",
    area: "host calls",
    async run(setup) {
      const services = recordingServices({ answerDelayMs: 5 });
      const { report, limits } = await attack(setup, { body: `await Promise.all(Array.from({ length: 200 }, () => org.retrieve("account", "${ACCOUNT_ID}", null)));`, services });
      return verdict(`${describeReport(report)}; at most ${services.maxInFlight} calls in flight (limit ${limits.maxConcurrentHostCalls})`, [
        services.maxInFlight > limits.maxConcurrentHostCalls ? "more calls were in flight than the limit" : undefined,
        ["ok", "SANDBOX_HOST_CALL_LIMIT"].includes(codeOf(report)) ? undefined : `ended with ${codeOf(report)}`,
      ]);
    },
  },
  endsWith({
    id: "host-call-argument-too-large",
    title: "a service request larger than limits.maxHostCallBytes is refused with SANDBOX_HOST_CALL_TOO_LARGE before it reaches the host",
    source: "isolated-vm issue #293 (large copies across the boundary)",
    area: "host calls",
    body: `await org.create({ logicalName: "account", attributes: { name: "x".repeat(200000) } });`,
    codes: ["SANDBOX_HOST_CALL_TOO_LARGE"],
    limits: { maxHostCallBytes: 16_384 },
  }),
];

/** A service call made at a moment it must be refused: refused, recorded, the execution failed, nothing written. */
function lateCallCheck(id: string, title: string, body: string, when: string, prelude = "", web = false): ConfinementCheck {
  return {
    id,
    title,
    source: "isolated-vm issue #318 (code after a timed call); vm2 GHSA-cchq-frgv-rjh5; plugbox issue 15",
    area: "calls after the end",
    async run(setup) {
      const { report, services } = await attack(setup, { body, prelude, web });
      return verdict(`${describeReport(report)}; violations: ${JSON.stringify(report.violations)}`, [
        codeOf(report) === "SANDBOX_CALL_AFTER_END" ? undefined : `ended with ${codeOf(report)}, expected SANDBOX_CALL_AFTER_END`,
        report.violations.join("\n").includes(when) ? undefined : `no violation says "${when}"`,
        services.calls.some((c) => c.op === "create") || report.webCalls.length > 0 ? "the late call reached the host" : undefined,
      ]);
    },
  };
}

const lateCallChecks: ConfinementCheck[] = [
  lateCallCheck("late-call-while-encoding", "a service call from a getter in the outputs, while they are encoded, is refused with SANDBOX_CALL_AFTER_END", `out.value = { get x() { org.create({ logicalName: "leak" }).catch(() => undefined); return 1; } };`, "while the execution's result was being read"),
  lateCallCheck("late-call-while-describing-failure", "a service call from Error.prepareStackTrace, while a failure is described, is refused", `Error.prepareStackTrace = () => { org.create({ logicalName: "leak" }).catch(() => undefined); return "s"; }; throw new Error("x");`, "while the execution's result was being read"),
  lateCallCheck("late-call-after-return", "a service call from a microtask that runs after the outcome was reported is refused", `Promise.resolve().then(() => null).then(() => null).then(() => org.create({ logicalName: "leak" }).catch(() => undefined));`, "after its execution had ended"),
  lateCallCheck("late-call-module-code", "a timer started by module code, when the bundle is loaded, gets no service", `out.x = 1;`, "outside its own execution", `try { setTimeout(() => undefined, 0); } catch {}`),
  lateCallCheck("late-web-call-while-encoding", "a web request from a getter that runs while the result is encoded is refused before the network policy sees it", `out.value = { get x() { fetch("http://127.0.0.1:9/").catch(() => undefined); return 1; } };`, "web.fetch was called while the execution's result was being read", "", true),
];

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

const forgedCodeCheck: ConfinementCheck = {
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

/**
 * One plug-in that, told to plant, leaves state in every place an isolate keeps it (a global,
 * polluted prototypes, a replaced intrinsic), and otherwise reports what it finds. `variant`
 * makes a second bundle with the same code.
 */
function stateBody(variant = ""): string {
  return `${variant}
    if (ctx.sharedVariables.plant) {
      globalThis.__auditState = "planted"; Object.prototype.__auditPolluted = true; Array.prototype.__auditPolluted = true; JSON.parse = () => "hijacked";
      if (ctx.sharedVariables.fail) throw new Error("fault");
    }
    out.found = [typeof globalThis.__auditState, typeof ({}).__auditPolluted, typeof [].__auditPolluted, typeof JSON.parse("1")].join();`;
}
const CLEAN = "undefined,undefined,undefined,number";

interface StateStep {
  isolation: "fresh" | "reuse";
  key: string;
  otherBundle?: boolean;
}

function stateCheck(id: string, title: string, plant: StateStep & { fail?: boolean }, look: StateStep): ConfinementCheck {
  return {
    id,
    title,
    source: "vm2 issue #185 (contexts shared between scripts); Dataverse plug-in caching guidance",
    area: "state",
    async run(setup) {
      const tag = Math.random().toString(36).slice(2);
      const planted = await attack(setup, { body: stateBody(), isolation: plant.isolation, instanceKey: `${plant.key}-${tag}`, context: sampleContext({ sharedVariables: { plant: true, fail: plant.fail === true } }) });
      const looked = await attack(setup, { body: stateBody(look.otherBundle ? "// another bundle" : ""), isolation: look.isolation, instanceKey: `${look.key}-${tag}` });
      const found = looked.report.ok ? looked.report.changes.outputParameters.found : codeOf(looked.report);
      return verdict(`the planting execution ended ${codeOf(planted.report)}; the next found ${JSON.stringify(found)} (clean: ${CLEAN})`, [found === CLEAN ? undefined : "state survived"]);
    },
  };
}

const stateChecks: ConfinementCheck[] = [
  stateCheck("state-fresh-between-executions", "fresh isolation: nothing one execution plants (globals, polluted prototypes, replaced intrinsics) survives into the next", { isolation: "fresh", key: "a" }, { isolation: "fresh", key: "a" }),
  stateCheck("state-reuse-between-bundles", "reuse isolation: state one bundle plants never reaches another bundle", { isolation: "reuse", key: "shared" }, { isolation: "reuse", key: "shared", otherBundle: true }),
  stateCheck("state-reuse-between-steps", "reuse isolation: two steps of the same bundle (two instance keys) share no state", { isolation: "reuse", key: "step-a" }, { isolation: "reuse", key: "step-b" }),
  stateCheck("state-reuse-dropped-after-fault", "reuse isolation: an instance that failed is dropped, with everything it planted", { isolation: "reuse", key: "faulty", fail: true }, { isolation: "reuse", key: "faulty" }),
  {
    id: "stale-service-handle",
    title: "reuse isolation: a service kept from an earlier execution is refused in the next with SANDBOX_CALL_AFTER_END",
    source: "vm2 GHSA-cchq-frgv-rjh5 (references kept across runs); plugbox issue 15",
    area: "state",
    async run(setup) {
      // One bundle (one reused instance): the first execution keeps its service, the second uses the kept one.
      const body = `if (ctx.sharedVariables.keep) { globalThis.__keptOrg = org; out.kept = true; } else { await globalThis.__keptOrg.create({ logicalName: "leak" }); }`;
      // The second execution must reach the instance the first kept: a worker replaced in between (by
      // another check's fatal allocation) moves the step's instances to another worker, so try again.
      let keep: Awaited<ReturnType<typeof attack>>;
      let use: Awaited<ReturnType<typeof attack>>;
      let attempts = 0;
      do {
        const key = `stale-${Math.random().toString(36).slice(2)}`;
        keep = await attack(setup, { body, isolation: "reuse", instanceKey: key, context: sampleContext({ sharedVariables: { keep: true } }) });
        use = await attack(setup, { body, isolation: "reuse", instanceKey: key });
      } while (!use.report.stats.isolateReused && ++attempts < 3);
      const { report, services } = use;
      return verdict(`keeping ended ${codeOf(keep.report)}; using ended ${codeOf(report)}`, [
        keep.report.ok ? undefined : "the keeping execution failed",
        codeOf(report) === "SANDBOX_CALL_AFTER_END" ? undefined : `using the kept service ended with ${codeOf(report)}`,
        services.calls.some((c) => c.op === "create") ? "the kept service's write reached the host" : undefined,
      ]);
    },
  },
];

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

const realmChecks: ConfinementCheck[] = [
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

/** Every confinement check, in the order the audit runs them. */
export const confinementChecks: readonly ConfinementCheck[] = [
  ...escapeCorpus.map(techniqueCheck),
  ...thrownValueChecks,
  ...realmChecks,
  ...cpuChecks,
  ...costChecks,
  ...memoryChecks,
  ...outputChecks,
  ...hostCallChecks,
  ...lateCallChecks,
  forgedCodeCheck,
  ...stateChecks,
  ...webChecks,
];

export type { CheckOutcome, CheckSetup, ConfinementCheck } from "./probe.js";
