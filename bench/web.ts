/**
 * Outbound web requests: requests per second from a sandboxed plug-in (reuse isolation, N
 * sequential fetches per execution through IWebClient and the network policy) against undici's
 * `request()` called directly on the same local server. The goal is to stay within 1.5x.
 *
 * A second figure, the host's WebClient called directly, separates the cost of the policy and the
 * pinned connector from the cost of crossing into and out of the sandbox.
 *
 * Every figure is a rate; `ratio` is how many times slower than its baseline (baseline ÷ value),
 * so 1.5 is the goal's edge. Rounds alternate between the measured path and the baseline, and the
 * median round is reported.
 */
import { spawn } from "node:child_process";
import { Agent, request } from "undici";
import { bundleFromSource, createSandboxRuntime } from "../runtime/index.js";
import { runPlugin } from "../host/run.js";
import { WebClient } from "../host/web/index.js";

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  baseline: number;
  ratio: number;
}

const REQUESTS_PER_EXECUTION = 200;
const ROUNDS = 7;
const BODY = JSON.stringify({ ok: true, temperature: 21.5, city: "Redmond" });

const source = `
module.exports = {
  FetchLoop: class {
    constructor(unsecure) { this.config = JSON.parse(unsecure); }
    async execute(sp) {
      const web = sp.getService("IWebClient");
      const { url, count } = this.config;
      let bytes = 0;
      for (let i = 0; i < count; i++) {
        const response = await web.fetch(url);
        if (response.status !== 200) throw new Error("status " + response.status);
        bytes += (await response.arrayBuffer()).byteLength;
      }
      sp.getService("IPluginExecutionContext").outputParameters.bytes = bytes;
    }
  }
};`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Requests per second of `count` requests made by `action`. */
async function rate(count: number, action: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await action();
  return count / ((performance.now() - started) / 1_000);
}

/** The web service, in a process of its own: the sandbox worker and the baseline both reach it across processes. */
async function startServer(): Promise<{ port: number; stop: () => void }> {
  const code = `const http = require("node:http");
    const s = http.createServer((q, r) => { r.setHeader("content-type", "application/json"); r.end(${JSON.stringify(BODY)}); });
    s.keepAliveTimeout = 60000;
    s.listen(0, "127.0.0.1", () => process.send(s.address().port));
    process.on("disconnect", () => process.exit(0));`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  const port = await new Promise<number>((resolve) => child.once("message", (m) => resolve(Number(m))));
  return { port, stop: () => child.kill() };
}

export async function runWebBench(): Promise<BenchResult[]> {
  const server = await startServer();
  const port = server.port;
  const n = REQUESTS_PER_EXECUTION;
  const url = `http://bench.test:${port}/weather`;

  const agent = new Agent({ keepAliveTimeout: 60_000 });
  const webPolicy = { resolve: { "bench.test": ["127.0.0.1"] }, unsafeAllowLoopback: true, extraPorts: [port], maxRequestsPerExecution: n };
  const web = new WebClient(webPolicy);
  const runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0 });
  const bundle = bundleFromSource(source, "web-bench.js");
  const config = JSON.stringify({ url, count: n });

  // The baseline: undici's request() on the same server, by address (no policy, no sandbox).
  const direct = async () => {
    for (let i = 0; i < n; i++) {
      const response = await request(`http://127.0.0.1:${port}/weather`, { dispatcher: agent });
      if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`);
      await response.body.arrayBuffer();
    }
  };
  const host = async () => {
    for (let i = 0; i < n; i++) {
      const response = await web.fetch({ url });
      if (response.status !== 200) throw new Error(`status ${response.status}`);
    }
  };
  const sandboxed = async () => {
    // As plugbox runs it: the worker serves the plug-in's requests under the policy.
    const result = await runPlugin({ bundle, typeName: "FetchLoop", isolation: "reuse", unsecureConfig: config, runtime, webPolicy });
    if (!result.ok) throw new Error(`the benchmark plug-in failed: ${result.error?.code}: ${result.error?.message}`);
  };

  try {
    await runtime.ready;
    // Warm up every path: connections, JIT, the reused plug-in instance.
    for (let i = 0; i < 2; i++) {
      await direct();
      await host();
      await sandboxed();
    }
    const rates = { direct: [] as number[], host: [] as number[], sandboxed: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      rates.direct.push(await rate(n, direct));
      rates.host.push(await rate(n, host));
      rates.sandboxed.push(await rate(n, sandboxed));
    }
    const baseline = median(rates.direct);
    const figure = (name: string, value: number): BenchResult => ({ name, value: Math.round(value), unit: "req/s", baseline: Math.round(baseline), ratio: Number((baseline / value).toFixed(2)) });
    return [
      figure(`web: sandboxed plug-in, ${n} sequential fetches per execution (reuse), vs undici request()`, median(rates.sandboxed)),
      figure("web: host WebClient.fetch (policy, pinned connector), vs undici request()", median(rates.host)),
    ];
  } finally {
    await runtime.close();
    await web.close();
    await agent.close();
    server.stop();
  }
}
