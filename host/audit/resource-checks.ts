/**
 * Checks that an attack on CPU, wall time or memory ends with the typed error of its limit, near
 * the limit, and costs nothing beyond its own execution.
 */
import { Entity } from "../../sdk/model.js";
import { methodResponse } from "../../sdk/requests.js";
import { ACCOUNT_ID, SPIN } from "./corpus/technique.js";
import { attack, attackBundle, codeOf, describeReport, endsWith, sampleContext, stillServes, verdict, type ConfinementCheck } from "./probe.js";

/** How far past its CPU limit an execution that spins may end. */
const CPU_MARGIN_MS = 200;

export const cpuChecks: ConfinementCheck[] = [
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

export const costChecks: ConfinementCheck[] = [
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
            return methodResponse("retrieve", new Entity("account", ACCOUNT_ID, { name: "Contoso" }));
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

export const memoryChecks: ConfinementCheck[] = [
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
