import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { SourceMapConsumer, type RawSourceMap } from "source-map-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { bundleFromSource, createSandboxRuntime, type InspectorEndpoint } from "../../dist/host/index.js";
import { ManualClock } from "../../dist/host/testing/index.js";
import { bin, plugbox, repo } from "../helpers/cli.js";
import { context } from "../helpers/runtime.js";

/** A plug-in with a `debugger;` statement and locals to read; line numbers below are this file's. */
const PLUGIN_TS = `interface Context {
  outputParameters: Record<string, unknown>;
}
interface ServiceProvider {
  getService(name: "IPluginExecutionContext"): Context;
}

export class Debuggee {
  execute(serviceProvider: ServiceProvider): void {
    const context = serviceProvider.getService("IPluginExecutionContext");
    const answer: number = 6 * 7;
    debugger;
    const doubled: number = answer * 2;
    context.outputParameters.answer = doubled;
  }
}

export class Spinner {
  execute(): void {
    for (;;) {}
  }
}

export class Waiter {
  async execute(serviceProvider: ServiceProvider): Promise<void> {
    const context = serviceProvider.getService("IPluginExecutionContext");
    const fired = new Promise<string>((resolve) => setTimeout(() => resolve("fired"), 1));
    debugger;
    context.outputParameters.timer = await fired;
  }
}
`;
const DEBUGGER_LINE = 12;
const BREAKPOINT_LINE = 14;
/** The wall-clock limit of the debugged run: the test stays paused for longer than this. */
const WALL_LIMIT_MS = 300;

let dir: string;
let bundleFile: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-inspector-"));
  writeFileSync(path.join(dir, "debuggee.ts"), PLUGIN_TS);
  bundleFile = path.join(dir, "debuggee.js");
  const built = await plugbox(["build", path.join(dir, "debuggee.ts"), "-o", bundleFile]);
  expect(built.code, built.stderr).toBe(0);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A DevTools protocol client over one WebSocket: commands by id, and a queue of events by method. */
class DevToolsClient {
  readonly #ws: WebSocket;
  #nextId = 1;
  readonly #replies = new Map<number, (message: { result?: Record<string, unknown>; error?: { message: string } }) => void>();
  readonly #events: Array<{ method: string; params: Record<string, unknown> }> = [];
  readonly #waiting: Array<{ method: string; resolve: (params: Record<string, unknown>) => void }> = [];
  readonly closed: Promise<void>;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.closed = new Promise((resolve) => ws.once("close", () => resolve()));
    ws.on("message", (data) => {
      const message = JSON.parse(String(data)) as { id?: number; method?: string; params?: Record<string, unknown> };
      if (message.id !== undefined) return this.#replies.get(message.id)?.(message as never);
      const waiter = this.#waiting.findIndex((w) => w.method === message.method);
      if (waiter >= 0) this.#waiting.splice(waiter, 1)[0]!.resolve(message.params ?? {});
      else this.#events.push({ method: message.method!, params: message.params ?? {} });
    });
  }

  static async connect(url: string): Promise<DevToolsClient> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    return new DevToolsClient(ws);
  }

  async send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const reply = new Promise<{ result?: Record<string, unknown>; error?: { message: string } }>((resolve) => this.#replies.set(id, resolve));
    this.#ws.send(JSON.stringify({ id, method, params }));
    const message = await reply;
    if (message.error) throw new Error(`${method}: ${message.error.message}`);
    return message.result ?? {};
  }

  /** The next event of this method (one already received, or the next to come). */
  next(method: string): Promise<Record<string, unknown>> {
    const index = this.#events.findIndex((e) => e.method === method);
    if (index >= 0) return Promise.resolve(this.#events.splice(index, 1)[0]!.params);
    return new Promise((resolve) => this.#waiting.push({ method, resolve }));
  }

  /** Every event of this method received so far. */
  received(method: string): Array<Record<string, unknown>> {
    return this.#events.filter((e) => e.method === method).map((e) => e.params);
  }

  close(): void {
    this.#ws.close();
  }
}

/** Starts `plugbox run` and resolves with the debugger URL it prints on stderr, and its end. */
function startRun(args: string[]): Promise<{ url: string; stderr: () => string; done: Promise<{ code: number | null; stdout: string }> }> {
  const child = spawn(process.execPath, [bin, "run", ...args], { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  const done = new Promise<{ code: number | null; stdout: string }>((resolve) => child.once("exit", (code) => resolve({ code, stdout })));
  return new Promise((resolve, reject) => {
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      const match = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[0-9a-f-]+); open chrome:\/\/inspect/.exec(stderr);
      if (match) resolve({ url: match[1]!, stderr: () => stderr, done });
    });
    void done.then(({ code }) => reject(new Error(`plugbox run exited (${code}) before it printed a debugger URL:\n${stderr}`)));
  });
}

function sourceMapOf(scriptParsed: Record<string, unknown>): SourceMapConsumer {
  const url = scriptParsed.sourceMapURL as string;
  const base64 = url.slice(url.indexOf("base64,") + "base64,".length);
  return new SourceMapConsumer(JSON.parse(Buffer.from(base64, "base64").toString("utf8")) as RawSourceMap);
}

/** TCP ports a process listens on (Linux: its socket inodes matched against /proc/net/tcp). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const row of readFileSync(table, "utf8").trim().split("\n").slice(1)) {
      const fields = row.trim().split(/\s+/);
      if (fields[3] === "0A" && inodes.has(fields[9]!)) ports.push(parseInt(fields[1]!.split(":")[1]!, 16));
    }
  }
  return ports;
}

describe("plugbox run --inspect-brk: a debugger attaches to the plug-in's isolate", () => {
  it("stops on debugger; in the TypeScript source, reads a local, hits a breakpoint, and the paused time does not count against the wall limit", async () => {
    const run = await startRun([bundleFile, "--type", "Debuggee", "--inspect-brk=0", "--timeout", String(WALL_LIMIT_MS), "--json"]);
    const { port } = new URL(run.url);

    // Discovery, as chrome://inspect and VS Code do it.
    const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<Record<string, string>>;
    expect(list).toEqual([expect.objectContaining({ type: "node", webSocketDebuggerUrl: run.url, devtoolsFrontendUrl: expect.stringContaining(`ws=127.0.0.1:${port}/`) })]);
    const version = (await (await fetch(`http://127.0.0.1:${port}/json/version`)).json()) as Record<string, string>;
    expect(version["Protocol-Version"]).toBe("1.1");
    expect(run.stderr()).toContain("Waiting for the debugger");

    const client = await DevToolsClient.connect(run.url);
    await client.send("Runtime.enable");
    await client.send("Debugger.enable");
    const scriptUrl = pathToFileURL(bundleFile).href;
    const bundleMap = new SourceMapConsumer(
      JSON.parse(Buffer.from(/base64,([A-Za-z0-9+/=]+)\s*$/.exec(readFileSync(bundleFile, "utf8"))![1]!, "base64").toString("utf8")) as RawSourceMap,
    );
    const tsSource = bundleMap.sources.find((s) => s.endsWith("debuggee.ts"))!;
    // A breakpoint by URL on the bundle line that holds TypeScript line BREAKPOINT_LINE, set before the script loads.
    const generated = bundleMap.generatedPositionFor({ source: tsSource, line: BREAKPOINT_LINE, column: 0, bias: SourceMapConsumer.LEAST_UPPER_BOUND });
    const breakpoint = await client.send("Debugger.setBreakpointByUrl", { url: scriptUrl, lineNumber: generated.line! - 1 });
    await client.send("Runtime.runIfWaitingForDebugger");

    const paused = await client.next("Debugger.paused");
    const pausedAt = Date.now();
    expect(paused.reason).toBe("other");
    const frame = (paused.callFrames as Array<{ callFrameId: string; location: { scriptId: string; lineNumber: number; columnNumber: number } }>)[0]!;
    const script = client.received("Debugger.scriptParsed").find((s) => s.scriptId === frame.location.scriptId)!;
    expect(script.url).toBe(scriptUrl);
    expect(script.sourceMapURL).toMatch(/^data:application\/json;base64,/);
    const original = sourceMapOf(script).originalPositionFor({ line: frame.location.lineNumber + 1, column: frame.location.columnNumber });
    expect(original.source).toMatch(/debuggee\.ts$/);
    expect(original.line).toBe(DEBUGGER_LINE);

    const local = await client.send("Debugger.evaluateOnCallFrame", { callFrameId: frame.callFrameId, expression: "answer" });
    expect(local.result).toMatchObject({ type: "number", value: 42 });

    // Stay paused for longer than the wall-clock limit: the sandbox's clock is real time, so this wait is real too.
    await new Promise((resolve) => setTimeout(resolve, 2 * WALL_LIMIT_MS));
    await client.send("Debugger.resume");

    const hit = await client.next("Debugger.paused");
    expect(hit.hitBreakpoints).toEqual([breakpoint.breakpointId]);
    const hitFrame = (hit.callFrames as Array<{ callFrameId: string; location: { lineNumber: number; columnNumber: number } }>)[0]!;
    expect(sourceMapOf(script).originalPositionFor({ line: hitFrame.location.lineNumber + 1, column: hitFrame.location.columnNumber }).line).toBe(BREAKPOINT_LINE);
    const doubled = await client.send("Debugger.evaluateOnCallFrame", { callFrameId: hitFrame.callFrameId, expression: "doubled" });
    expect(doubled.result).toMatchObject({ value: 84 });
    await client.send("Debugger.resume");

    const { code, stdout } = await run.done;
    await client.closed;
    expect(Date.now() - pausedAt).toBeGreaterThan(WALL_LIMIT_MS);
    expect(code, run.stderr()).toBe(0);
    const result = JSON.parse(stdout) as { ok: boolean; changes: { outputParameters: Record<string, unknown> } };
    expect(result).toMatchObject({ ok: true, changes: { outputParameters: { answer: 84 } } });
  });

  it("a debugger that goes away while the plug-in is paused lets it run to the end", async () => {
    const run = await startRun([bundleFile, "--type", "Debuggee", "--inspect-brk=0", "--json"]);
    const client = await DevToolsClient.connect(run.url);
    await client.send("Debugger.enable");
    await client.send("Runtime.runIfWaitingForDebugger");
    await client.next("Debugger.paused");
    client.close();
    const { code, stdout } = await run.done;
    expect(code, run.stderr()).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ ok: true, changes: { outputParameters: { answer: 84 } } });
  });
});

describe("debug mode is opt-in", () => {
  it("without --inspect, debugger; is a no-op and the sandbox worker listens on no port", async () => {
    const run = await plugbox(["run", bundleFile, "--type", "Debuggee", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).not.toContain("Debugger listening");
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: true, changes: { outputParameters: { answer: 84 } } });

    await using plain = createSandboxRuntime({ workers: 1, prewarmIsolates: 0 });
    await plain.ready;
    expect(plain.inspector).toBeUndefined();
    expect(listeningPorts(plain.workerPids[0]!)).toEqual([]);

    const endpoints: InspectorEndpoint[] = [];
    await using debug = createSandboxRuntime({ workers: 1, prewarmIsolates: 0, inspector: { port: 0, onListening: (e) => endpoints.push(e) } });
    await debug.ready;
    expect(endpoints).toHaveLength(1);
    expect(listeningPorts(debug.workerPids[0]!)).toEqual([endpoints[0]!.port]);
  });

  it("a port that is taken makes the runtime unavailable at once, saying so, rather than retry", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      await using runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0, inspector: { port } });
      await expect(runtime.ready).rejects.toThrow(`the debugger endpoint cannot listen on 127.0.0.1:${port}: the port is in use`);
      expect(runtime.health()).toMatchObject({ status: "unavailable", startFailuresInARow: 1 });
    } finally {
      taken.close();
    }
  });

  it("a bad port is a usage error, exit 2", async () => {
    const run = await plugbox(["run", bundleFile, "--type", "Debuggee", "--inspect=nine"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/CLI_USAGE.*--inspect \[port\].*expected a port from 0 to 65535/);
  });

  it("the inspector option is checked up front, and no execution's limits can carry it", () => {
    expect(() => createSandboxRuntime({ inspector: { port: 70_000 } })).toThrow(/options\.inspector\.port must be an integer from 0 to 65535/);
    expect(() => createSandboxRuntime({ inspector: { host: "0.0.0.0" } as never })).toThrow(/options\.inspector\.host is not an option/);
    expect(() => createSandboxRuntime({ limits: { inspector: true } as never })).toThrow(/options\.limits\.inspector is not an option/);
  });

  it("--inspect without a debugger attached: a plug-in that awaits the organization service runs as it does without it", async () => {
    const hello = path.join(dir, "hello.js");
    expect((await plugbox(["build", "samples/hello/plugin.ts", "-o", hello])).code).toBe(0);
    const run = await startRun([hello, "--type", "HelloPlugin", "--target", "samples/hello/account.json", "--stage", "20", "--inspect=0", "--json"]);
    expect(run.stderr()).not.toContain("Waiting for the debugger");
    const { code, stdout } = await run.done;
    expect(code, run.stderr()).toBe(0);
    const result = JSON.parse(stdout) as { ok: boolean; calls: unknown[]; trace: string };
    expect(result).toMatchObject({ ok: true, changes: { target: { attributes: { description: "Hello, Contoso!" } } } });
    expect(result.calls).toHaveLength(1);
    expect(result.trace).toContain("created task");
  });

  it("a timer that fires while the plug-in is paused runs once it is resumed", async () => {
    const endpoints: InspectorEndpoint[] = [];
    await using runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0, inspector: { port: 0, wait: true, onListening: (e) => endpoints.push(e) } });
    await runtime.ready;
    const bundle = bundleFromSource(readFileSync(bundleFile, "utf8"), "debuggee.js", dir);
    const report = runtime.execute({ bundle, typeName: "Waiter", context: context() });
    const client = await DevToolsClient.connect(endpoints[0]!.url);
    await client.send("Debugger.enable");
    await client.send("Runtime.runIfWaitingForDebugger");
    const paused = await client.next("Debugger.paused");
    const frame = (paused.callFrames as Array<{ callFrameId: string }>)[0]!;
    // The 1 ms timer is due while the plug-in stays paused; its callback waits for the running call to end.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await client.send("Debugger.evaluateOnCallFrame", { callFrameId: frame.callFrameId, expression: "typeof fired" })).result).toMatchObject({ value: "object" });
    await client.send("Debugger.resume");
    const done = await report;
    expect(done.ok, JSON.stringify(!done.ok && done.error)).toBe(true);
    expect(done.ok && done.changes.outputParameters).toEqual({ timer: "fired" });
    await client.closed;
  });

  it("a debugger that attaches while the plug-in's code runs stops it at its next debugger; statement", async () => {
    const endpoints: InspectorEndpoint[] = [];
    await using runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0, inspector: { port: 0, onListening: (e) => endpoints.push(e) } });
    await runtime.ready;
    // The session opens once the running call into the isolate ends (docs/debugging.md), before the debugger; statement.
    const busy = bundleFromSource(
      `module.exports = { Busy: class { async execute(sp) {
        const out = sp.getService("IPluginExecutionContext").outputParameters;
        const until = Date.now() + 1500;
        while (Date.now() < until) {}
        await new Promise((resolve) => setTimeout(resolve, 1));
        debugger;
        out.done = true;
      } } };`,
      "busy.js",
    );
    const report = runtime.execute({ bundle: busy, typeName: "Busy", context: context() });
    // Real time: the plug-in spins on real time too, and the debugger attaches in the middle.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const client = await DevToolsClient.connect(endpoints[0]!.url);
    await client.send("Debugger.enable");
    const paused = await client.next("Debugger.paused");
    expect(paused.reason).toBe("other");
    await client.send("Debugger.resume");
    const done = await report;
    expect(done.ok && done.changes.outputParameters).toEqual({ done: true });
    await client.closed;
  });

  it('debug mode with pluginTime "clock": the plug-in\'s Date and timers follow the runtime\'s clock', async () => {
    const clock = new ManualClock("2026-03-01T00:00:00.000Z");
    await using runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0, inspector: { port: 0 }, clock, pluginTime: "clock" });
    await runtime.ready;
    const sleeper = bundleFromSource(
      `module.exports = { Sleeper: class { async execute(sp) {
        const out = sp.getService("IPluginExecutionContext").outputParameters;
        const t0 = Date.now();
        await new Promise((resolve) => setTimeout(resolve, 86400000));
        out.slept = Date.now() - t0;
        out.now = new Date().toISOString();
      } } };`,
      "sleeper.js",
    );
    const report = runtime.execute({ bundle: sleeper, typeName: "Sleeper", context: context() });
    await clock.whenTimerSet();
    await clock.advance("1d");
    const done = await report;
    expect(done.ok && done.changes.outputParameters).toEqual({ slept: 86_400_000, now: "2026-03-02T00:00:00.000Z" });
  });

  it("in debug mode, a plug-in that is not paused is still held to its CPU and wall-clock limits", async () => {
    await using runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0, inspector: { port: 0 } });
    const bundle = bundleFromSource(readFileSync(bundleFile, "utf8"), "debuggee.js", dir);
    const report = await runtime.execute({ bundle, typeName: "Spinner", context: context(), limits: { cpuTimeMs: 200 } });
    expect(report.ok).toBe(false);
    expect(!report.ok && report.error.code).toBe("SANDBOX_CPU_LIMIT");
    const wall = await runtime.execute({ bundle, typeName: "Spinner", context: context(), limits: { wallTimeMs: 200, cpuTimeMs: 60_000 } });
    expect(!wall.ok && wall.error.code).toBe("SANDBOX_TIMEOUT");
  });
});
