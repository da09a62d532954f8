/**
 * Checks on what crosses the boundary: outputs and traces leaving the isolate, service calls
 * reaching the host, and calls made once an execution has ended.
 */
import { ACCOUNT_ID } from "./corpus/technique.js";
import { attack, codeOf, describeReport, endsWith, recordingServices, verdict, type ConfinementCheck } from "./probe.js";

export const outputChecks: ConfinementCheck[] = [
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

export const hostCallChecks: ConfinementCheck[] = [
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

export const lateCallChecks: ConfinementCheck[] = [
  lateCallCheck("late-call-while-encoding", "a service call from a getter in the outputs, while they are encoded, is refused with SANDBOX_CALL_AFTER_END", `out.value = { get x() { org.create({ logicalName: "leak" }).catch(() => undefined); return 1; } };`, "while the execution's result was being read"),
  lateCallCheck("late-call-while-describing-failure", "a service call from Error.prepareStackTrace, while a failure is described, is refused", `Error.prepareStackTrace = () => { org.create({ logicalName: "leak" }).catch(() => undefined); return "s"; }; throw new Error("x");`, "while the execution's result was being read"),
  lateCallCheck("late-call-after-return", "a service call from a microtask that runs after the outcome was reported is refused", `Promise.resolve().then(() => null).then(() => null).then(() => org.create({ logicalName: "leak" }).catch(() => undefined));`, "after its execution had ended"),
  lateCallCheck("late-call-module-code", "a timer started by module code, when the bundle is loaded, gets no service", `out.x = 1;`, "outside its own execution", `try { setTimeout(() => undefined, 0); } catch {}`),
  lateCallCheck("late-web-call-while-encoding", "a web request from a getter that runs while the result is encoded is refused before the network policy sees it", `out.value = { get x() { fetch("http://127.0.0.1:9/").catch(() => undefined); return 1; } };`, "web.fetch was called while the execution's result was being read", "", true),
];
