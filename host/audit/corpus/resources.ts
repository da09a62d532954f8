/**
 * Techniques that exhaust a resource: timers left running, CPU, floods and memory.
 */
import { ACCOUNT_ID, SPIN, type Technique } from "./technique.js";

export const resourceTechniques: readonly Technique[] = [
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
