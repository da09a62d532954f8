/**
 * Sandbox benchmarks, each against a baseline measured in the same run:
 * - a trivial plug-in in `reuse` isolation, inside the worker and end to end, against the same class called directly;
 * - `fresh` isolation with a ~100 KB bundle: latency with a warm pool, and back to back;
 * - cold load of a ~1 MB bundle with and without the code cache;
 * - executions per second with 2 concurrent callers in each mode;
 * - resident memory of an idle worker and per pre-warmed isolate;
 * - how far past its CPU limit a plug-in that spins in a getter (while its result is read) gets.
 * This process loads isolated-vm itself (the in-worker figures), so it runs with --no-node-snapshot.
 */
import type { BenchRow } from "./row.js";
import { readFileSync } from "node:fs";
import { createSandboxRuntime, bundleFromSource } from "../runtime/index.js";
import { sandboxLimitDefaults } from "../runtime/options.js";
import type { DoneMessage, FromWorker } from "../runtime/protocol.js";
import { SandboxWorker, readShimSource } from "../runtime/worker/worker.js";

export type { BenchRow };

const TRIVIAL = `class Trivial { execute(sp) { sp.getService("IPluginExecutionContext").outputParameters.x = 1; } }\nmodule.exports = { Trivial };\n`;

class Trivial {
  execute(sp: { getService(name: string): { outputParameters: Record<string, unknown> } }): void {
    sp.getService("IPluginExecutionContext").outputParameters.x = 1;
  }
}

/** A bundle of about `kb` KB: many functions and one plug-in class. */
export function syntheticBundle(kb: number): string {
  const parts = [TRIVIAL.replace("module.exports = { Trivial };\n", "")];
  let size = parts[0]!.length;
  for (let i = 0; size < kb * 1024; i++) {
    const fn = `function helper${i}(a, b) { const x = a * b + ${i}; if (x > 10) { return [x, a, b, "value ${i}"].join(","); } return String(x); }\n`;
    parts.push(fn);
    size += fn.length;
  }
  parts.push("module.exports = { Trivial };\n");
  return parts.join("");
}

const CONTEXT = { messageName: "Create", primaryEntityName: "account", inputParameters: {}, outputParameters: {}, sharedVariables: {} };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** An in-process worker, driven by messages as the supervisor drives a forked one. */
class InProcessWorker {
  readonly worker: SandboxWorker;
  #resolve: ((m: DoneMessage) => void) | undefined;
  #nextId = 1;
  constructor(prewarmIsolates: number) {
    this.worker = new SandboxWorker({
      send: (m: FromWorker) => {
        if (m.type === "done") this.#resolve?.(m);
      },
      shimSource: readShimSource(),
      prewarmIsolates,
      defaultMemoryMb: sandboxLimitDefaults.memoryMb,
      maxReusedContexts: 64,
    });
  }
  run(bundle: { id: string; source: string; cachedData?: string }, isolation: "fresh" | "reuse", limits = sandboxLimitDefaults): Promise<DoneMessage> {
    const done = new Promise<DoneMessage>((resolve) => (this.#resolve = resolve));
    this.worker.handle({
      type: "execute",
      execId: this.#nextId++,
      bundle: { ...bundle, filename: "bench.js" },
      typeName: "Trivial",
      isolation,
      instanceKey: "bench",
      unsecureConfig: null,
      secureConfig: null,
      context: JSON.stringify(CONTEXT),
      limits,
    });
    return done;
  }
}

function directMicros(iterations: number): number {
  const instance = new Trivial();
  const started = performance.now();
  for (let i = 0; i < iterations; i++) {
    const context = { ...CONTEXT, outputParameters: {} as Record<string, unknown> };
    instance.execute({ getService: () => context });
  }
  return ((performance.now() - started) / iterations) * 1000;
}

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

async function settle(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

export async function runSandboxBench(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const direct = directMicros(200_000);

  // 1. reuse, inside the worker and end to end.
  const inProcess = new InProcessWorker(2);
  await inProcess.worker.start();
  const trivial = { id: "trivial", source: TRIVIAL };
  for (let i = 0; i < 2_000; i++) await inProcess.run(trivial, "reuse");
  let started = performance.now();
  const N = 10_000;
  for (let i = 0; i < N; i++) await inProcess.run(trivial, "reuse");
  const reuseInside = ((performance.now() - started) / N) * 1000;
  rows.push({ name: "reuse: trivial plug-in inside the worker", value: reuseInside, unit: "µs/exec", baseline: "direct call", ratio: reuseInside / direct, goal: "< 50 µs" });

  const runtime = createSandboxRuntime({ workers: 2, prewarmIsolates: 2 });
  await runtime.ready;
  const trivialBundle = bundleFromSource(TRIVIAL, "trivial.js");
  for (let i = 0; i < 1_000; i++) await runtime.execute({ bundle: trivialBundle, typeName: "Trivial", isolation: "reuse", context: CONTEXT });
  started = performance.now();
  for (let i = 0; i < 3_000; i++) await runtime.execute({ bundle: trivialBundle, typeName: "Trivial", isolation: "reuse", context: CONTEXT });
  const reuseEndToEnd = ((performance.now() - started) / 3_000) * 1000;
  rows.push({ name: "reuse: trivial plug-in end to end (with the process hop)", value: reuseEndToEnd, unit: "µs/exec", baseline: "direct call", ratio: reuseEndToEnd / direct, goal: "< 250 µs" });

  // 2. fresh with a ~100 KB bundle.
  const hundred = { id: "100kb", source: syntheticBundle(100) };
  const first = await inProcess.run(hundred, "fresh");
  const withCache = { ...hundred, ...(first.cachedData ? { cachedData: first.cachedData.data } : {}) };
  const latencies: number[] = [];
  for (let i = 0; i < 40; i++) {
    await settle(25); // lets the worker refill its pool of never-used isolates
    const t = performance.now();
    await inProcess.run(withCache, "fresh");
    latencies.push(performance.now() - t);
  }
  const freshLatency = median(latencies) * 1000;
  rows.push({ name: "fresh: 100 KB bundle, latency with a warm pool (median)", value: freshLatency, unit: "µs/exec", baseline: "reuse inside the worker", ratio: freshLatency / reuseInside, goal: "< 4 ms" });
  started = performance.now();
  for (let i = 0; i < 100; i++) await inProcess.run(withCache, "fresh");
  const freshBackToBack = ((performance.now() - started) / 100) * 1000;
  rows.push({ name: "fresh: 100 KB bundle, back to back (pool refill included)", value: freshBackToBack, unit: "µs/exec", baseline: "reuse inside the worker", ratio: freshBackToBack / reuseInside });

  // 3. cold load of a ~1 MB bundle.
  const mb = syntheticBundle(1024);
  const cold: number[] = [];
  const cached: number[] = [];
  let cache: string | undefined;
  for (let i = 0; i < 5; i++) {
    await settle(25);
    const t = performance.now();
    const done = await inProcess.run({ id: `1mb-${i}`, source: mb }, "fresh");
    cold.push(performance.now() - t);
    cache ??= done.cachedData?.data;
  }
  for (let i = 0; i < 5; i++) {
    await settle(25);
    const t = performance.now();
    await inProcess.run({ id: `1mb-cached-${i}`, source: mb, ...(cache ? { cachedData: cache } : {}) }, "fresh");
    cached.push(performance.now() - t);
  }
  const coldMs = median(cold);
  const cachedMs = median(cached);
  rows.push({ name: "cold load of a 1 MB bundle, with the code cache", value: cachedMs * 1000, unit: "µs", baseline: "without the code cache", ratio: cachedMs / coldMs, goal: "< 20 ms" });
  rows.push({ name: "cold load of a 1 MB bundle, without the code cache", value: coldMs * 1000, unit: "µs", baseline: "itself", ratio: 1 });
  // 4. a CPU-limit breach in plug-in code that runs while the shim reads the result.
  const CPU_LIMIT_MS = 300;
  const spinner = { id: "spinner", source: TRIVIAL.replace("outputParameters.x = 1", "outputParameters.x = { get value() { for (;;) {} } }") };
  const overshoots: number[] = [];
  for (let i = 0; i < 5; i++) {
    const done = await inProcess.run(spinner, "fresh", { ...sandboxLimitDefaults, cpuTimeMs: CPU_LIMIT_MS });
    overshoots.push(done.outcome.stats.cpuMs - CPU_LIMIT_MS);
  }
  const overshoot = median(overshoots);
  rows.push({ name: `CPU-limit breach in a getter: CPU used past a ${CPU_LIMIT_MS} ms limit (median of 5)`, value: overshoot * 1000, unit: "µs", baseline: "the limit", ratio: (CPU_LIMIT_MS + overshoot) / CPU_LIMIT_MS, goal: "< 200 ms" });
  inProcess.worker.close();

  // 5. two concurrent callers, each mode.
  for (const isolation of ["reuse", "fresh"] as const) {
    let count = 0;
    const until = performance.now() + 3_000;
    const t = performance.now();
    await Promise.all(
      [0, 1].map(async () => {
        while (performance.now() < until) {
          await runtime.execute({ bundle: trivialBundle, typeName: "Trivial", isolation, context: CONTEXT });
          count++;
        }
      }),
    );
    const rate = count / ((performance.now() - t) / 1000);
    rows.push({ name: `${isolation}: executions per second, 2 concurrent callers`, value: rate, unit: "exec/s", baseline: "direct call", ratio: 1_000_000 / direct / rate });
  }
  await runtime.close();

  // 6. resident memory.
  const idle = createSandboxRuntime({ workers: 1, prewarmIsolates: 0 });
  await idle.ready;
  await settle(300);
  const idleRss = rssOf(idle.workerPids[0]!);
  await idle.close();
  const warm = createSandboxRuntime({ workers: 1, prewarmIsolates: 16 });
  await warm.ready;
  await settle(500);
  const warmRss = rssOf(warm.workerPids[0]!);
  await warm.close();
  const perIsolate = (warmRss - idleRss) / 16;
  rows.push({ name: "resident memory of an idle worker", value: idleRss / 1048576, unit: "MB", baseline: "itself", ratio: 1 });
  rows.push({ name: "resident memory per pre-warmed isolate", value: perIsolate / 1048576, unit: "MB", baseline: "idle worker", ratio: perIsolate / idleRss, goal: "< 2 MB" });
  rows.push({ name: "trivial plug-in called directly (the baseline)", value: direct, unit: "µs/exec", baseline: "itself", ratio: 1 });
  return rows;
}
