/**
 * A sandbox worker process: keeps isolates, runs executions in them and forwards their service
 * calls to the supervisor. It trusts nothing that comes out of an isolate.
 *
 * Every piece of plug-in code runs inside a synchronous call with a timeout (`enter`): the first
 * call of execute(), every resumption after a service call or a timer, module evaluation and the
 * constructor. Between calls a wall-clock watchdog can end the execution and dispose its isolate.
 *
 * Debug mode (`WorkerOptions.inspector`) is the exception: a paused plug-in would block a
 * synchronous call and with it the thread that carries the debugger's messages, so there the calls
 * run on isolated-vm's threads, one at a time and with no V8 timer, and the watchdog (which stops
 * while the plug-in is paused) and a CPU check end an execution by disposing its isolate.
 */
import { readFileSync } from "node:fs";
import { isServiceOperation, type BundleRef, type ExecuteMessage, type FromWorker, type Outcome, type ToWorker, type WebCallRecord, type WebConfig, type WireError } from "../protocol.js";
import { WebClient } from "../web/client.js";
import { familyIn } from "../../sdk/errors.js";
import { WEB_ERRORS, WebError } from "../web/errors.js";
import type { SandboxLimits } from "../options.js";
import { classifyIsolateError, SandboxIsolate, type HeapUsage, type IsolateFunction, type IsolateValueHandle, type Primitive } from "./ivm.js";
import type { InspectorEndpoint } from "../inspect.js";
import type { InspectorServer } from "./inspector.js";

const SHIM_API = ["load", "instantiate", "start", "resume", "fire"] as const;
type ShimApi = Record<(typeof SHIM_API)[number], IsolateFunction>;
/** One call of a shim entry. */
interface EntryCall {
  fn: IsolateFunction;
  args: Array<Primitive | IsolateValueHandle>;
}

const MAX_TIMERS = 100;
const MAX_INSTANCES_PER_STEP = 4;
const MAX_ERROR_MESSAGE = 8_192;
const MAX_ERROR_STACK = 16_384;
/**
 * A RangeError "Array buffer allocation failed" counts as the memory limit only when the isolate's
 * heap and buffers together hold at least this share of the limit: a plug-in can throw that error
 * itself, but it cannot fake the memory it holds.
 */
const ALLOCATION_FAILURE_SHARE = 0.5;

/**
 * The shim's words for what went wrong, and the code each stands for, by the entry that may say it.
 * The shim reports what it saw; only these tables (and the worker's own records) decide a code.
 */
const FAILURE_CODES = {
  load: { bundleThrew: "BUNDLE_INVALID", bundleNotModule: "BUNDLE_INVALID" },
  instantiate: { typeNotFound: "PLUGIN_TYPE_NOT_FOUND", typeNotClass: "PLUGIN_TYPE_INVALID", noExecute: "PLUGIN_TYPE_INVALID", constructorThrew: "PLUGIN_CONSTRUCTOR_FAILED" },
  execution: { pluginError: "PLUGIN_FAILED", unexpected: "PLUGIN_UNEXPECTED_ERROR", resultInvalid: "PLUGIN_RESULT_INVALID", contextUnreadable: "SANDBOX_INTERNAL" },
} as const satisfies Record<string, Record<string, string>>;
type FailureEntry = keyof typeof FAILURE_CODES;
const FALLBACK_CODES: Record<FailureEntry, string> = { load: "BUNDLE_INVALID", instantiate: "PLUGIN_CONSTRUCTOR_FAILED", execution: "PLUGIN_UNEXPECTED_ERROR" };

export interface WorkerOptions {
  send: (message: FromWorker) => void;
  shimSource: string;
  prewarmIsolates: number;
  defaultMemoryMb: number;
  maxReusedContexts: number;
  /**
   * Debugging (the runtime's `inspector` option, never set by a plug-in or a manifest): isolates are
   * made for a debugger, entries run off this thread so it can relay the debugger's messages, and
   * the wall and CPU limits stop counting while the plug-in is paused. `wait`: each execution waits
   * for a debugger to attach and ask it to run.
   */
  inspector?: { port: number; wait: boolean };
}

/** How often the CPU limit is checked while an entry runs off this thread (in debug mode, where no V8 timer may be armed). */
const INSPECTED_CPU_CHECK_MS = 50;

/** One isolate with the shim loaded, and the bridge state that routes its calls. */
interface Sandbox {
  isolate: SandboxIsolate;
  api: ShimApi;
  memoryMb: number;
  current: Execution | undefined;
  nextToken: number;
  /** The reuse key of the step instance this isolate holds. */
  instanceOf?: string;
  /** The bundle is evaluated and the plug-in constructed. */
  prepared: boolean;
  /** When a reused instance last started an execution (for eviction). */
  lastUsed: number;
  busy: boolean;
}

class Execution {
  readonly startedAt = performance.now();
  readonly pending = new Set<number>();
  /** The plug-in's timers: Node's, or null for one kept on the supervisor's clock (pluginTime "clock"). */
  readonly timers = new Map<number, NodeJS.Timeout | null>();
  /** pluginTime "clock": the clock's time the supervisor last sent, epoch ms. */
  now: number | undefined;
  /** pluginTime "clock": messages that enter plug-in code received (execute, reply, fire), and the count last reported as run. */
  seen = 0;
  ranReported = 0;
  token = 0;
  sandbox: Sandbox | undefined;
  cpuAtStart = 0;
  cpuUsedMs = 0;
  hostCalls = 0;
  /** running: execute() has not settled; ending: the shim is describing its outcome (no call is legitimate any more). */
  phase: "running" | "ending" = "running";
  /** The code of every service error this execution was answered with, by call: the only source of a failure's serviceCode. */
  readonly failedCalls = new Map<number, string>();
  /** The heap, read while the shim reported the outcome (from inside the isolate, where reading it is safe). */
  heap: HeapUsage | undefined;
  traceLines: string[] = [];
  traceSize = 0;
  violations: string[] = [];
  webCalls: WebCallRecord[] = [];
  /** Made for the first web request and aborted when the execution ends, so in-flight requests stop with it (an abort costs a stack trace: not for every execution). */
  webAbort: AbortController | undefined;
  result: { ok: true; json: string } | { ok: false; error: WireError } | undefined;
  /** A failure decided inside a bridge callback, applied when the current call into the isolate returns. */
  deferredFailure: WireError | undefined;
  finished = false;
  inside = false;
  watchdog: NodeJS.Timeout | undefined;
  reused = false;
  /** Debug mode: entries waiting for the one running off-thread to return. */
  readonly queued: Array<() => void> = [];
  /** Debug mode: time spent paused in the debugger (or waiting for one), which no limit counts. */
  pausedMs = 0;
  pausedSince: number | undefined;
  cpuCheck: NodeJS.Timeout | undefined;
  constructor(
    readonly message: ExecuteMessage,
    readonly inspected: boolean,
  ) {}
  get limits(): SandboxLimits {
    return this.message.limits;
  }
  wallRemaining(): number {
    const now = performance.now();
    const paused = this.pausedMs + (this.pausedSince === undefined ? 0 : now - this.pausedSince);
    return this.limits.wallTimeMs - (now - this.startedAt - paused);
  }
}

function wireError(code: string, message: string, extra: Partial<WireError> = {}): WireError {
  return { code, message, ...extra };
}

export class SandboxWorker {
  readonly #options: WorkerOptions;
  readonly #bundles = new Map<string, { source: string; filename: string; cachedData?: Uint8Array }>();
  readonly #pools = new Map<number, Sandbox[]>();
  readonly #filling = new Map<number, number>();
  /** Instances of reused steps, by step instance key; a key gets a second instance only while the first is busy. */
  readonly #reused = new Map<string, Sandbox[]>();
  #reusedCount = 0;
  #useClock = 0;
  readonly #pendingCaches = new Map<number, { bundleId: string; data: string }>();
  /** Web clients by policy: each keeps its connections (and pinned addresses) between executions. */
  readonly #webClients = new Map<string, WebClient>();
  readonly #executions = new Map<number, Execution>();
  #shimCachedData: Uint8Array | undefined;
  #closed = false;

  #inspector: { server: InspectorServer; wait: boolean } | undefined;
  /** Debug mode: the execution the debugger is attached to. */
  #debugged: Execution | undefined;

  constructor(options: WorkerOptions) {
    this.#options = options;
  }

  /** Fills the pool and, in debug mode, opens the DevTools endpoint (whose address it returns). */
  async start(): Promise<InspectorEndpoint | undefined> {
    let endpoint: InspectorEndpoint | undefined;
    const debug = this.#options.inspector;
    if (debug) {
      // Loaded only in debug mode: a worker that is not debugged never loads the WebSocket server.
      const { InspectorServer } = await import("./inspector.js");
      this.#inspector = { server: new InspectorServer(this.#inspectorHooks()), wait: debug.wait };
      endpoint = await this.#inspector.server.listen(debug.port);
    }
    if (this.#options.prewarmIsolates > 0) await this.#fill(this.#options.defaultMemoryMb);
    return endpoint;
  }

  handle(message: ToWorker): void {
    switch (message.type) {
      case "execute":
        void this.#execute(message).catch((error: unknown) => this.#internalFailure(message.execId, error));
        return;
      case "reply": {
        const exec = message.now === undefined ? undefined : this.#entered(message.execId, message.now);
        this.#reply(message.execId, message.callId, message.ok, message.payload);
        this.#reportRan(exec);
        return;
      }
      case "fire": {
        const exec = this.#entered(message.execId, message.now);
        if (exec?.timers.has(message.timerId) && exec.sandbox) {
          exec.timers.delete(message.timerId);
          this.#enter(exec, { fn: exec.sandbox.api.fire, args: [exec.token, message.timerId, ...this.#time(exec)] });
        }
        this.#reportRan(exec);
        return;
      }
      case "abort": {
        const exec = this.#executions.get(message.execId);
        if (exec) this.#fail(exec, wireError("SANDBOX_ABORTED", message.reason));
        return;
      }
    }
  }

  /** pluginTime "clock": a message that enters plug-in code arrived, with the clock's time. */
  #entered(execId: number, now: number | undefined): Execution | undefined {
    const exec = this.#executions.get(execId);
    if (exec && now !== undefined) {
      exec.seen++;
      exec.now = now;
    }
    return exec;
  }

  /** The clock's time as an entry's last argument, for the shim's Date; nothing in real time. */
  #time(exec: Execution): [number] | [] {
    return exec.now === undefined ? [] : [exec.now];
  }

  /**
   * pluginTime "clock": tells the supervisor the plug-in code of every message it sent so far has run
   * (and the timers and calls it made were sent before), so it can let its clock move on.
   */
  #reportRan(exec: Execution | undefined): void {
    if (!exec || exec.now === undefined || exec.finished || exec.inside || exec.queued.length > 0 || exec.seen === exec.ranReported) return;
    exec.ranReported = exec.seen;
    this.#options.send({ type: "ran", execId: exec.message.execId, seen: exec.seen });
  }

  close(): void {
    this.#closed = true;
    this.#inspector?.server.close();
    for (const client of this.#webClients.values()) void client.close();
    for (const exec of this.#executions.values()) this.#fail(exec, wireError("SANDBOX_CLOSED", "the sandbox worker is shutting down"));
    for (const pool of this.#pools.values()) for (const sandbox of pool) sandbox.isolate.dispose();
    for (const list of this.#reused.values()) for (const sandbox of list) sandbox.isolate.dispose();
    this.#pools.clear();
    this.#reused.clear();
  }

  // Isolates //////////////////////////////////////////////////////////////////////////////////

  async #createSandbox(memoryMb: number): Promise<Sandbox> {
    const holder: { sandbox?: Sandbox } = {};
    const bridge = {
      __pb_call: (token: Primitive, callId: Primitive, service: Primitive, op: Primitive, json: Primitive) =>
        this.#onCall(holder.sandbox, token, callId, service, op, json),
      __pb_trace: (token: Primitive, line: Primitive) => this.#onTrace(holder.sandbox, token, line),
      __pb_done: (token: Primitive, ok: Primitive, json: Primitive) => this.#onDone(holder.sandbox, token, ok, json),
      __pb_ending: (token: Primitive) => this.#onEnding(holder.sandbox, token),
    };
    const created = await SandboxIsolate.create({
      memoryMb,
      bridge,
      shim: { source: this.#options.shimSource, filename: "plugbox-shim.js", ...(this.#shimCachedData ? { cachedData: this.#shimCachedData } : {}) },
      api: SHIM_API,
      ...(this.#options.inspector ? { inspector: true } : {}),
    });
    if (created.shimCachedData) this.#shimCachedData = created.shimCachedData;
    const sandbox: Sandbox = { isolate: created.isolate, api: created.api as ShimApi, memoryMb, current: undefined, nextToken: 1, prepared: false, lastUsed: 0, busy: false };
    holder.sandbox = sandbox;
    return sandbox;
  }

  async #fill(memoryMb: number): Promise<void> {
    const pool = this.#pools.get(memoryMb) ?? [];
    this.#pools.set(memoryMb, pool);
    const target = memoryMb === this.#options.defaultMemoryMb ? this.#options.prewarmIsolates : Math.min(1, this.#options.prewarmIsolates);
    while (!this.#closed && pool.length + (this.#filling.get(memoryMb) ?? 0) < target) {
      this.#filling.set(memoryMb, (this.#filling.get(memoryMb) ?? 0) + 1);
      try {
        pool.push(await this.#createSandbox(memoryMb));
      } finally {
        this.#filling.set(memoryMb, (this.#filling.get(memoryMb) ?? 1) - 1);
      }
    }
  }

  async #freshSandbox(memoryMb: number): Promise<Sandbox> {
    const pooled = this.#pools.get(memoryMb)?.shift();
    setImmediate(() => void this.#fill(memoryMb).catch(() => undefined));
    return pooled ?? (await this.#createSandbox(memoryMb));
  }

  #bundle(ref: BundleRef): { source: string; filename: string; cachedData?: Uint8Array } {
    let bundle = this.#bundles.get(ref.id);
    if (!bundle) {
      if (ref.source === undefined) throw new Error(`bundle ${ref.id} was never sent to this worker`);
      bundle = { source: ref.source, filename: ref.filename, ...(ref.cachedData ? { cachedData: fromBase64(ref.cachedData) } : {}) };
      this.#bundles.set(ref.id, bundle);
    } else if (!bundle.cachedData && ref.cachedData) {
      bundle.cachedData = fromBase64(ref.cachedData);
    }
    return bundle;
  }

  // Executions ////////////////////////////////////////////////////////////////////////////////

  async #execute(message: ExecuteMessage): Promise<void> {
    const inspector = this.#inspector;
    const exec = new Execution(message, inspector !== undefined);
    this.#executions.set(message.execId, exec);
    this.#entered(message.execId, message.now);
    exec.watchdog = setTimeout(() => this.#onWallClock(exec), Math.max(1, message.limits.wallTimeMs));
    const bundle = this.#bundle(message.bundle);
    const sandbox = message.isolation === "reuse" ? await this.#reusedSandbox(exec) : await this.#freshSandbox(message.limits.memoryMb);
    if (!sandbox) return;
    if (exec.finished) {
      // Aborted or timed out while an isolate was being made: a kept instance stays, any other goes.
      if (sandbox.instanceOf !== undefined) this.#release(sandbox);
      else sandbox.isolate.dispose();
      return;
    }
    sandbox.busy = true;
    exec.sandbox = sandbox;
    exec.token = sandbox.nextToken++;
    exec.reused = sandbox.prepared;
    sandbox.current = exec;
    if (inspector && this.#debugged === undefined) {
      // One execution at a time is debugged: the first; nested ones run with no debugger attached.
      this.#debugged = exec;
      inspector.server.attach(sandbox.isolate);
      if (inspector.wait) {
        this.#pause(exec);
        await inspector.server.waitForDebugger();
        this.#resume(exec);
        if (exec.finished) return;
      }
    }
    if (inspector) {
      exec.cpuCheck = setInterval(() => this.#checkInspectedCpu(exec), INSPECTED_CPU_CHECK_MS);
    }
    exec.cpuAtStart = sandbox.isolate.cpuTimeMs();
    const start = () => this.#enter(exec, { fn: sandbox.api.start, args: [exec.token, message.context, ...this.#time(exec)] });
    if (sandbox.prepared) return start();
    this.#prepare(exec, sandbox, bundle, () => {
      sandbox.prepared = true;
      start();
    });
  }

  /** Debug mode: the plug-in is paused in the debugger; its wall clock stops (isolated-vm stops its CPU clock itself). */
  #pause(exec: Execution): void {
    if (exec.finished || exec.pausedSince !== undefined) return;
    exec.pausedSince = performance.now();
    clearTimeout(exec.watchdog);
  }

  #resume(exec: Execution): void {
    if (exec.finished || exec.pausedSince === undefined) return;
    exec.pausedMs += performance.now() - exec.pausedSince;
    exec.pausedSince = undefined;
    exec.watchdog = setTimeout(() => this.#onWallClock(exec), Math.max(1, exec.wallRemaining()));
  }

  /** What the inspector server reports of the debugger: it acts on the execution that runs. */
  #inspectorHooks(): { paused(): void; resumed(): void } {
    return {
      paused: () => {
        if (this.#debugged) this.#pause(this.#debugged);
      },
      resumed: () => {
        if (this.#debugged) this.#resume(this.#debugged);
      },
    };
  }

  #checkInspectedCpu(exec: Execution): void {
    if (!exec.inside || exec.finished) return;
    this.#accountCpu(exec);
    if (exec.cpuUsedMs > exec.limits.cpuTimeMs) this.#stopInspected(exec, this.#limitError("cpu"));
  }

  /**
   * Debug mode: ends an execution whose code runs off this thread now, by disposing its isolate
   * (the running call then fails, and the failure recorded here is reported).
   */
  #stopInspected(exec: Execution, error: WireError): void {
    exec.deferredFailure ??= error;
    this.#undebug(exec);
    exec.sandbox?.isolate.dispose();
  }

  #undebug(exec: Execution): void {
    if (this.#debugged !== exec) return;
    this.#debugged = undefined;
    this.#inspector?.server.detach();
  }

  /**
   * An idle instance of this step, made on first use. While every instance is busy (another caller,
   * or this very step re-entered by a nested request, which waiting would deadlock) another one is
   * made, up to MAX_INSTANCES_PER_STEP; past that the execution gets an instance that is not kept.
   */
  async #reusedSandbox(exec: Execution): Promise<Sandbox | undefined> {
    const { message } = exec;
    const key = JSON.stringify([message.instanceKey, message.bundle.id, message.typeName, message.unsecureConfig, message.secureConfig, message.limits.memoryMb]);
    const list = this.#reused.get(key) ?? [];
    const idle = list.find((s) => !s.busy && !s.isolate.isDisposed);
    if (idle) {
      idle.busy = true;
      idle.lastUsed = ++this.#useClock;
      return idle;
    }
    const sandbox = await this.#freshSandbox(message.limits.memoryMb);
    sandbox.busy = true;
    if (exec.finished) return sandbox;
    if (list.length < MAX_INSTANCES_PER_STEP) {
      sandbox.instanceOf = key;
      sandbox.lastUsed = ++this.#useClock;
      this.#reused.set(key, [...(this.#reused.get(key) ?? []), sandbox]);
      this.#reusedCount++;
      this.#evictBeyondLimit();
    }
    return sandbox;
  }

  /** Drops the least recently used idle instances past maxReusedContexts. */
  #evictBeyondLimit(): void {
    while (this.#reusedCount > this.#options.maxReusedContexts) {
      let oldest: Sandbox | undefined;
      for (const list of this.#reused.values()) for (const s of list) if (!s.busy && (!oldest || s.lastUsed < oldest.lastUsed)) oldest = s;
      if (!oldest) return;
      this.#forget(oldest);
      oldest.isolate.dispose();
    }
  }

  #forget(sandbox: Sandbox): void {
    if (sandbox.instanceOf === undefined) return;
    const list = this.#reused.get(sandbox.instanceOf);
    if (!list?.includes(sandbox)) return;
    const rest = list.filter((s) => s !== sandbox);
    if (rest.length === 0) this.#reused.delete(sandbox.instanceOf);
    else this.#reused.set(sandbox.instanceOf, rest);
    this.#reusedCount--;
  }

  /** Compiles the bundle (keeping any code cache made on the way), evaluates it and constructs the plug-in. */
  #prepare(exec: Execution, sandbox: Sandbox, bundle: { source: string; filename: string; cachedData?: Uint8Array }, then: () => void): void {
    const { message } = exec;
    let factory;
    try {
      const filename = exec.inspected && message.bundle.url !== undefined ? message.bundle.url : bundle.filename;
      const script = sandbox.isolate.compile(`(function (exports, module) {${bundle.source}\n})`, filename, bundle.cachedData);
      if (!bundle.cachedData || script.cachedDataRejected) {
        const produced = script.produceCachedData();
        if (produced) {
          bundle.cachedData = produced;
          this.#pendingCaches.set(message.execId, { bundleId: message.bundle.id, data: Buffer.from(produced).toString("base64") });
        }
      }
      factory = script.runForFunction(Math.max(1, exec.wallRemaining()));
    } catch (error) {
      const kind = classifyIsolateError(error);
      if (kind === "other") {
        const text = errorText(error);
        // An ES module (a plug-in's source, or another tool's output) where a bundle was expected.
        const esm = /import statement outside a module|Unexpected token 'export'/.test(text) ? "; it is an ES module, not a bundle: bundle it with `plugbox build <module> -o <bundle.js>`" : "";
        this.#fail(exec, wireError("BUNDLE_INVALID", `the bundle ${bundle.filename} does not compile: ${text}${esm}`));
      } else {
        this.#failFromIsolate(exec, error, false);
      }
      return;
    }
    this.#callEntry(exec, { fn: sandbox.api.load, args: [factory, ...this.#time(exec)] }, (loaded) => {
      if (loaded === undefined) return;
      if (loaded !== "") return this.#fail(exec, this.#failure(exec, "load", loaded));
      this.#callEntry(exec, { fn: sandbox.api.instantiate, args: [message.typeName, message.unsecureConfig, message.secureConfig, ...this.#time(exec)] }, (made) => {
        if (made !== undefined && made !== "") this.#fail(exec, this.#failure(exec, "instantiate", made));
        if (!exec.finished) then();
      });
    });
  }

  #entryTimeout(exec: Execution): { timeout: number; bound: "cpu" | "wall" } {
    const cpuLeft = exec.limits.cpuTimeMs - exec.cpuUsedMs;
    const wallLeft = exec.wallRemaining();
    return cpuLeft < wallLeft ? { timeout: cpuLeft, bound: "cpu" } : { timeout: wallLeft, bound: "wall" };
  }

  /**
   * Calls a shim entry and hands `then` its answer; on failure ends the execution and hands it
   * undefined. Synchronous, under a V8 timeout, except in debug mode: there the call runs off this
   * thread with no V8 timer (it would count paused time), one at a time, bounded by the pause-aware
   * watchdog and the CPU check.
   */
  #callEntry(exec: Execution, entry: EntryCall, then: (answer: string | undefined) => void): void {
    if (exec.inspected && exec.inside) {
      exec.queued.push(() => this.#callEntry(exec, entry, then));
      return;
    }
    const { timeout, bound } = this.#entryTimeout(exec);
    if (timeout <= 0) {
      this.#fail(exec, this.#limitError(bound));
      return then(undefined);
    }
    exec.inside = true;
    const leave = (answer: string | undefined) => {
      exec.inside = false;
      this.#accountCpu(exec);
      if (exec.deferredFailure && !exec.finished) this.#fail(exec, exec.deferredFailure);
      then(answer);
      if (exec.inspected && !exec.inside && !exec.finished) exec.queued.shift()?.();
    };
    const failed = (error: unknown) => {
      this.#failFromIsolate(exec, error, bound === "cpu");
      leave(undefined);
    };
    if (exec.inspected) {
      entry.fn.call(entry.args, 0).then(leave, failed);
      return;
    }
    let answer: string;
    try {
      answer = entry.fn.callSync(entry.args, timeout);
    } catch (error) {
      return failed(error);
    }
    leave(answer);
  }

  /** Runs plug-in code (a start, a resumption, a timer) and then settles the execution if it can. */
  #enter(exec: Execution, entry: EntryCall): void {
    if (exec.finished) return;
    this.#callEntry(exec, entry, (answer) => this.#settleAfterEntry(exec, answer));
  }

  #settleAfterEntry(exec: Execution, answer: string | undefined): void {
    if (exec.finished || answer === undefined) return;
    // These entries report outcomes through the done callback; an answer is the shim failing to.
    if (answer !== "") return this.#fail(exec, this.#failure(exec, "execution", answer));
    if (exec.cpuUsedMs > exec.limits.cpuTimeMs) return this.#fail(exec, this.#limitError("cpu"));
    if (exec.result) return this.#finish(exec);
    if (exec.pending.size === 0 && exec.timers.size === 0 && exec.queued.length === 0) {
      return this.#fail(
        exec,
        wireError("SANDBOX_STALLED", "execute() returned a promise that can never settle: no service call or timer is pending; await every promise your plug-in starts"),
      );
    }
    this.#reportRan(exec);
  }

  #accountCpu(exec: Execution): void {
    if (exec.sandbox) exec.cpuUsedMs = exec.sandbox.isolate.cpuTimeMs() - exec.cpuAtStart;
  }

  #limitError(bound: "cpu" | "wall"): WireError {
    return bound === "cpu"
      ? wireError("SANDBOX_CPU_LIMIT", "the plug-in used more CPU time than its limit allows (raise --cpu or limits.cpuTimeMs if this is expected)")
      : wireError("SANDBOX_TIMEOUT", "the execution ran past its wall-clock limit (raise --timeout or limits.wallTimeMs if this is expected)");
  }

  #failFromIsolate(exec: Execution, error: unknown, cpuBound: boolean): void {
    if (exec.finished) return;
    if (exec.deferredFailure) return this.#fail(exec, exec.deferredFailure);
    switch (classifyIsolateError(error)) {
      case "timeout":
        return this.#fail(exec, this.#limitError(cpuBound ? "cpu" : "wall"));
      case "memory":
        return this.#fail(exec, wireError("SANDBOX_MEMORY_LIMIT", `the plug-in ran out of memory: its isolate is limited to ${exec.limits.memoryMb} MB (raise --memory or limits.memoryMb if this is expected)`));
      case "disposed":
        return this.#fail(exec, wireError("SANDBOX_TIMEOUT", "the execution's isolate was disposed while it ran"));
      default:
        // Entries answer by throwing a string; anything else thrown is isolated-vm's own error.
        return this.#fail(exec, wireError("SANDBOX_INTERNAL", `the sandbox failed: ${truncate(errorText(error), MAX_ERROR_MESSAGE)}`));
    }
  }

  #onWallClock(exec: Execution): void {
    if (exec.finished) return;
    if (exec.inspected && exec.inside) return this.#stopInspected(exec, this.#limitError("wall"));
    this.#fail(exec, this.#limitError("wall"));
  }

  // Bridge callbacks: called synchronously from inside the isolate. They never throw. //////////

  /** The execution a callback of this isolate belongs to, if its token is the one running and it has not ended. */
  #active(sandbox: Sandbox | undefined, token: Primitive): Execution | undefined {
    const exec = sandbox?.current;
    if (!exec || exec.token !== token || exec.finished) return undefined;
    return exec;
  }

  #onCall(sandbox: Sandbox | undefined, token: Primitive, callId: Primitive, service: Primitive, op: Primitive, json: Primitive): string {
    try {
      const exec = sandbox?.current;
      if (!exec || exec.finished) return JSON.stringify(wireError("SANDBOX_CALL_AFTER_END", "a service was called after its execution had ended"));
      if (typeof callId !== "number" || typeof service !== "string" || typeof op !== "string" || typeof json !== "string") {
        return this.#refuse(exec, wireError("SANDBOX_ISOLATION_VIOLATION", "a malformed call reached the sandbox bridge"));
      }
      const late = this.#lateCall(exec, token, `${service}.${op}`);
      if (late) return this.#refuse(exec, late, callId);
      if (exec.deferredFailure) return JSON.stringify(exec.deferredFailure);
      if (service === "timer") return this.#onTimer(exec, callId, op, json);
      if (!isServiceOperation(service, op)) {
        exec.violations.push(`unknown service operation ${service}.${op}`);
        return this.#refuse(exec, wireError("SANDBOX_ISOLATION_VIOLATION", `${service}.${op} is not a service operation a plug-in can call`), callId);
      }
      const { limits } = exec;
      if (json.length > limits.maxHostCallBytes) {
        return this.#refuse(exec, wireError("SANDBOX_HOST_CALL_TOO_LARGE", `the request of ${service}.${op} is ${json.length} bytes; the limit is ${limits.maxHostCallBytes} (limits.maxHostCallBytes)`), callId);
      }
      if (exec.hostCalls >= limits.maxHostCalls) {
        return this.#refuse(exec, wireError("SANDBOX_HOST_CALL_LIMIT", `the plug-in made more than ${limits.maxHostCalls} service calls (limits.maxHostCalls)`), callId);
      }
      if (exec.pending.size >= limits.maxConcurrentHostCalls) {
        return this.#refuse(exec, wireError("SANDBOX_HOST_CALL_LIMIT", `the plug-in had more than ${limits.maxConcurrentHostCalls} service calls in flight at once (limits.maxConcurrentHostCalls)`), callId);
      }
      exec.hostCalls++;
      exec.pending.add(callId);
      if (service === "web" && exec.message.web) this.#fetch(exec, callId, exec.message.web, json);
      else this.#options.send({ type: "call", execId: exec.message.execId, callId, service, op, payload: json });
      return "";
    } catch (error) {
      return JSON.stringify(wireError("SANDBOX_INTERNAL", `the bridge failed: ${errorText(error)}`));
    }
  }

  /**
   * Why a call is not the running execution's own, or undefined when it is. Only the execution that
   * runs, before its outcome is described, may call: not a service kept from an earlier execution,
   * not module code or a constructor, not a getter, toJSON or Proxy trap that runs while the result
   * is read, nothing after the outcome was reported.
   */
  #lateCall(exec: Execution, token: Primitive, what: string): WireError | undefined {
    let when: string | undefined;
    if (token !== exec.token) when = "outside its own execution (a service kept from an earlier execution, or module or constructor code)";
    else if (exec.result) when = "after its execution had ended";
    else if (exec.phase !== "running") when = "while the execution's result was being read (from a getter, toJSON or a Proxy trap)";
    if (when === undefined) return undefined;
    return wireError("SANDBOX_CALL_AFTER_END", `${what} was called ${when}; a plug-in may use its services only while its execute() runs`);
  }

  /** Serves a web request here, under the execution's policy; the answer resumes the plug-in like a host's reply. */
  #fetch(exec: Execution, callId: number, config: WebConfig, json: string): void {
    const key = JSON.stringify(config.policy);
    let client = this.#webClients.get(key);
    let request: { url?: unknown; method?: unknown } = {};
    const record: WebCallRecord = { url: "", method: "GET", ok: false };
    exec.webCalls.push(record);
    const settle = (ok: boolean, payload: string) => setImmediate(() => this.#reply(exec.message.execId, callId, ok, payload));
    try {
      if (!client) this.#webClients.set(key, (client = new WebClient(config.policy)));
      request = ((JSON.parse(json) as { args?: unknown[] }).args?.[0] ?? {}) as typeof request;
      record.url = typeof request.url === "string" ? request.url.slice(0, 2_048) : "";
      record.method = typeof request.method === "string" ? request.method.slice(0, 16) : "GET";
    } catch (error) {
      const failure = error instanceof WebError ? { code: error.code, message: error.message } : { code: "WEB_INVALID_REQUEST", message: "the web request could not be read" };
      record.error = failure;
      settle(false, JSON.stringify(failure));
      return;
    }
    client
      .fetch(request, { executionId: exec.message.execId, signal: (exec.webAbort ??= new AbortController()).signal, deadline: Date.now() + Math.max(0, exec.wallRemaining()), allowedHosts: config.allowedHosts })
      .then(
        (response) => {
          record.ok = true;
          record.status = response.status;
          settle(true, JSON.stringify(response));
        },
        (error: unknown) => {
          const failure = error instanceof WebError ? { code: error.code, message: error.message } : { code: "WEB_CONNECTION_FAILED", message: "the web request failed" };
          record.error = failure;
          if (familyIn(failure.code, WEB_ERRORS) === "isolation") exec.violations.push(`web.fetch: ${failure.message}`);
          settle(false, JSON.stringify(failure));
        },
      );
  }

  /** Ends the execution once the current call into the isolate returns; the plug-in sees a rejection meanwhile. */
  #refuse(exec: Execution, error: WireError, callId?: number): string {
    exec.deferredFailure ??= error;
    if (error.code === "SANDBOX_ISOLATION_VIOLATION" || error.code === "SANDBOX_CALL_AFTER_END") exec.violations.push(error.message);
    if (callId !== undefined) exec.failedCalls.set(callId, error.code);
    return JSON.stringify(error);
  }

  #onTimer(exec: Execution, timerId: number, op: string, json: string): string {
    const onClock = exec.now !== undefined;
    const existing = exec.timers.get(timerId);
    if (existing !== undefined) {
      if (existing) clearTimeout(existing);
      exec.timers.delete(timerId);
      if (onClock && op === "clear") this.#options.send({ type: "timer", execId: exec.message.execId, timerId, op: "clear", delayMs: 0 });
    }
    if (op === "clear") return "";
    if (exec.timers.size >= MAX_TIMERS) {
      return this.#refuse(exec, wireError("SANDBOX_HOST_CALL_LIMIT", `the plug-in had more than ${MAX_TIMERS} timers pending at once`));
    }
    if (onClock) {
      // On the clock's time, which the wall-clock limit (real time) does not bound.
      exec.timers.set(timerId, null);
      this.#options.send({ type: "timer", execId: exec.message.execId, timerId, op: "set", delayMs: Math.max(0, Number(json) || 0) });
      return "";
    }
    const delay = Math.min(Math.max(0, Number(json) || 0), Math.max(0, exec.wallRemaining()) + 1);
    const timer = setTimeout(() => {
      exec.timers.delete(timerId);
      const sandbox = exec.sandbox;
      if (sandbox) this.#enter(exec, { fn: sandbox.api.fire, args: [exec.token, timerId] });
    }, delay);
    exec.timers.set(timerId, timer);
    return "";
  }

  #onTrace(sandbox: Sandbox | undefined, token: Primitive, line: Primitive): void {
    const exec = this.#active(sandbox, token);
    if (!exec || exec.phase !== "running" || typeof line !== "string") return;
    const cap = exec.limits.traceBytes;
    const text = line.length > cap ? line.slice(line.length - cap) : line;
    exec.traceLines.push(text);
    exec.traceSize += text.length + 1;
    while (exec.traceSize > cap + 1 && exec.traceLines.length > 0) {
      exec.traceSize -= exec.traceLines.shift()!.length + 1;
    }
  }

  #onEnding(sandbox: Sandbox | undefined, token: Primitive): void {
    const exec = this.#active(sandbox, token);
    if (exec) exec.phase = "ending";
  }

  #onDone(sandbox: Sandbox | undefined, token: Primitive, ok: Primitive, json: Primitive): void {
    const exec = this.#active(sandbox, token);
    if (!exec || exec.result || typeof json !== "string") return;
    exec.heap = sandbox!.isolate.heapUsage();
    if (ok !== true) {
      exec.result = { ok: false, error: this.#failure(exec, "execution", json) };
    } else if (json.length > exec.limits.maxResultBytes) {
      exec.deferredFailure ??= wireError("SANDBOX_RESULT_TOO_LARGE", `the changed context is ${json.length} bytes; the limit is ${exec.limits.maxResultBytes} (limits.maxResultBytes)`);
    } else {
      exec.result = { ok: true, json };
    }
  }

  /**
   * Turns the shim's description of a failure into the error the host reports. The code comes from
   * the worker's tables and records, never from the description: a plug-in's own error is PLUGIN_*,
   * a service error keeps the code the host really answered, and an allocation failure is the
   * memory limit only when the heap says so.
   */
  #failure(exec: Execution, entry: FailureEntry, json: string): WireError {
    let described: Record<string, unknown> = {};
    if (json.length <= MAX_ERROR_MESSAGE + MAX_ERROR_STACK + 1_024) {
      try {
        const value: unknown = JSON.parse(json);
        if (value && typeof value === "object") described = value as Record<string, unknown>;
      } catch {
        /* use the fallbacks below */
      }
    }
    const codes: Record<string, string> = FAILURE_CODES[entry];
    const kind = typeof described.kind === "string" && Object.hasOwn(codes, described.kind) ? described.kind : undefined;
    let code = kind === undefined ? FALLBACK_CODES[entry] : codes[kind]!;
    let message = typeof described.message === "string" ? truncate(described.message, MAX_ERROR_MESSAGE) : "the plug-in failed with an error that could not be read";
    const name = typeof described.name === "string" ? described.name : undefined;
    const serviceCode = typeof described.serviceCallId === "number" ? exec.failedCalls.get(described.serviceCallId) : undefined;
    if (entry === "execution" && described.allocationFailure === true && this.#heapNearLimit(exec)) {
      return wireError("SANDBOX_MEMORY_LIMIT", `the plug-in ran out of memory: an ArrayBuffer allocation passed its isolate's ${exec.limits.memoryMb} MB limit (raise --memory or limits.memoryMb if this is expected)`);
    }
    if (code === "PLUGIN_UNEXPECTED_ERROR" && name !== undefined && name !== "Error" && serviceCode === undefined) message = `${name}: ${message}`;
    if (kind === "bundleThrew") message = `the bundle threw while it was loaded: ${message}`;
    if (kind === "constructorThrew") message = `the constructor of "${exec.message.typeName}" threw: ${message}`;
    if (kind === undefined && entry !== "execution") code = FALLBACK_CODES[entry];
    const error: WireError = { code, message };
    if (typeof described.stack === "string") error.stack = truncate(described.stack, MAX_ERROR_STACK);
    if (code === "PLUGIN_FAILED" || code === "PLUGIN_UNEXPECTED_ERROR") {
      if (typeof described.status === "number" && Number.isInteger(described.status)) error.status = described.status;
      if (typeof described.errorCode === "number" && Number.isInteger(described.errorCode)) error.errorCode = described.errorCode;
      if (serviceCode !== undefined) error.serviceCode = serviceCode;
    }
    return error;
  }

  #heapNearLimit(exec: Execution): boolean {
    const heap = exec.heap;
    return heap !== undefined && heap.usedBytes + heap.externalBytes >= ALLOCATION_FAILURE_SHARE * exec.limits.memoryMb * 1024 * 1024;
  }

  // Replies and settlement //////////////////////////////////////////////////////////////////////

  #reply(execId: number, callId: number, ok: boolean, payload: string): void {
    const exec = this.#executions.get(execId);
    if (!exec || exec.finished || !exec.pending.delete(callId)) return;
    if (!ok) exec.failedCalls.set(callId, failedCallCode(payload));
    if (payload.length > exec.limits.maxHostCallBytes) {
      return this.#fail(exec, wireError("SANDBOX_HOST_CALL_TOO_LARGE", `a service answered with ${payload.length} bytes; the limit is ${exec.limits.maxHostCallBytes} (limits.maxHostCallBytes)`));
    }
    const sandbox = exec.sandbox!;
    this.#enter(exec, { fn: sandbox.api.resume, args: [exec.token, callId, ok, payload, ...this.#time(exec)] });
  }

  #fail(exec: Execution, error: WireError): void {
    if (exec.finished) return;
    if (exec.inside) {
      // Never dispose an isolate from inside one of its own callbacks.
      exec.deferredFailure ??= error;
      return;
    }
    exec.result = { ok: false, error };
    exec.deferredFailure = undefined;
    this.#finish(exec, true);
  }

  #finish(exec: Execution, fault = false): void {
    if (exec.finished) return;
    exec.finished = true;
    exec.webAbort?.abort();
    clearTimeout(exec.watchdog);
    clearInterval(exec.cpuCheck);
    exec.queued.length = 0;
    this.#undebug(exec);
    for (const timer of exec.timers.values()) if (timer) clearTimeout(timer);
    exec.timers.clear();
    this.#executions.delete(exec.message.execId);
    const sandbox = exec.sandbox;
    this.#accountCpu(exec);
    const heap = exec.heap;
    const result = exec.result!;
    const stats = {
      wallMs: performance.now() - exec.startedAt,
      cpuMs: exec.cpuUsedMs,
      heapUsedBytes: heap ? heap.usedBytes + heap.externalBytes : null,
      hostCalls: exec.hostCalls,
      isolateReused: exec.reused,
    };
    const trace = exec.traceLines.join("\n");
    const outcome: Outcome = result.ok
      ? { ok: true, result: result.json, trace, stats, violations: exec.violations, webCalls: exec.webCalls }
      : { ok: false, error: result.error, trace, stats, violations: exec.violations, webCalls: exec.webCalls };
    const cache = this.#pendingCaches.get(exec.message.execId);
    this.#pendingCaches.delete(exec.message.execId);
    this.#options.send({ type: "done", execId: exec.message.execId, outcome, ...(cache ? { cachedData: cache } : {}), rssBytes: this.#rss() });
    if (!sandbox) return;
    const keep = sandbox.instanceOf !== undefined && result.ok && !fault && exec.pending.size === 0 && !sandbox.isolate.isDisposed;
    if (keep) {
      // The shim ended its side of the execution when it reported done.
      sandbox.current = undefined;
      this.#release(sandbox);
    } else {
      this.#drop(sandbox);
    }
  }

  #rssAt = 0;
  #rssBytes = 0;
  /** Resident memory, read at most every 100 ms (reading it costs a system call). */
  #rss(): number {
    const now = performance.now();
    if (now - this.#rssAt > 100) {
      this.#rssAt = now;
      this.#rssBytes = process.memoryUsage.rss();
    }
    return this.#rssBytes;
  }

  #release(sandbox: Sandbox): void {
    sandbox.busy = false;
  }

  #drop(sandbox: Sandbox): void {
    sandbox.current = undefined;
    this.#forget(sandbox);
    sandbox.isolate.dispose();
    sandbox.busy = false;
  }

  #internalFailure(execId: number, error: unknown): void {
    const exec = this.#executions.get(execId);
    const wire = wireError("SANDBOX_INTERNAL", `the sandbox worker failed: ${errorText(error)}`);
    if (exec) this.#fail(exec, wire);
    else this.#options.send({ type: "done", execId, outcome: { ok: false, error: wire, trace: "", stats: emptyStats(), violations: [], webCalls: [] }, rssBytes: process.memoryUsage.rss() });
  }
}

/** The code of a failed call's answer: made by the host or by this worker, never by a plug-in. */
function failedCallCode(payload: string): string {
  try {
    const code = (JSON.parse(payload) as { code?: unknown }).code;
    return typeof code === "string" ? code : "SERVICE_FAILED";
  } catch {
    return "SERVICE_FAILED";
  }
}

function fromBase64(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "base64"));
}

function emptyStats() {
  return { wallMs: 0, cpuMs: 0, heapUsedBytes: null, hostCalls: 0, isolateReused: false };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

export function readShimSource(): string {
  return readFileSync(new URL("../shim/shim.bundle.js", import.meta.url), "utf8");
}
