/**
 * The sandbox runtime as the host sees it: it forks sandbox worker processes, sends them
 * executions, serves their service calls through the host's handler, and keeps serving when a
 * worker dies (it fails only that worker's in-flight executions and starts another).
 *
 * It never gives up: a worker that fails to start is started again after a back-off that doubles
 * with each failure in a row (up to `startRetryMaxMs`). After `unavailableAfterStartFailures` of
 * them with no worker ready, executions fail at once with SANDBOX_UNAVAILABLE and the reason,
 * rather than wait, until a worker starts again. `health()` says which state it is in.
 *
 * Isolates never live in the host process: one large allocation inside an isolate is a fatal V8
 * error that aborts the process that holds it.
 */
import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { decode, encode, isPlainObject } from "../sdk/codec.js";
import type { Bundle } from "./bundle.js";
import { PluginExecutionError, PlugboxError, SandboxError, sandboxError, isSandboxErrorCode, type SandboxErrorCode, type ServiceErrorCode } from "./errors.js";
import { systemClock, type Clock, type ClockTimer } from "./clock.js";
import { resolveLimits, resolveRuntimeOptions, type Isolation, type SandboxLimits, type SandboxRuntimeOptions } from "./options.js";
import { isolatedVmBinding } from "./worker/ivm.js";
import { closed, opened } from "./open-resources.js";
import { resolveInspectorOptions, type InspectorOptions, type ResolvedInspectorOptions } from "./inspect.js";
import {
  isServiceOperation,
  type CallMessage,
  type DoneMessage,
  type ExecutionChanges,
  type ExecutionStats,
  type FromWorker,
  type ServiceName,
  type TimerMessage,
  type ToWorker,
  type WebCallRecord,
  type WebConfig,
  type WireError,
} from "./protocol.js";

/** The host's implementation of the services a plug-in can call. */
export interface SandboxServices {
  /**
   * Serves one call. `args` are decoded SDK values and untrusted: validate them. Throw a
   * PlugboxError to answer with its code and message; any other error reaches the plug-in as a
   * generic failure of the service, without its message.
   */
  call(request: ServiceCall): Promise<unknown>;
}

export interface ServiceCall {
  service: ServiceName;
  op: string;
  args: unknown[];
  /** For the organization service: the user passed to createOrganizationService (null = SYSTEM). */
  userId: string | null;
  executionId: number;
  /** Aborted when the execution ends before the call does. */
  signal: AbortSignal;
  /** When the execution's wall-clock limit runs out (epoch ms). */
  deadline: number;
}

export interface ExecutionRequest {
  bundle: Bundle;
  typeName: string;
  /** @default "fresh" */
  isolation?: Isolation;
  /** `reuse`: executions with the same key share one plug-in instance (one per registered step). @default typeName */
  instanceKey?: string;
  unsecureConfig?: string | null;
  secureConfig?: string | null;
  /** The execution context (IPluginExecutionContext's properties, camelCase). */
  context: Record<string, unknown>;
  limits?: Partial<SandboxLimits>;
  signal?: AbortSignal;
  /**
   * Runs on behalf of another execution that waits for it (a plug-in's request re-entering the
   * pipeline): it is not held back by maxConcurrentPerWorker, which the waiting execution already counts against.
   */
  nested?: boolean;
  /** Serve the plug-in's web requests in the worker, under this policy (faster: no process hop); without it they go to the host's services. */
  web?: WebConfig;
}

interface ReportBase {
  trace: string;
  stats: ExecutionStats;
  /** Isolation rules the plug-in tried to break, even where it caught the error. */
  violations: string[];
  /** Web requests the worker served (with `web` set on the request). */
  webCalls: WebCallRecord[];
}
export type ExecutionReport =
  | (ReportBase & { ok: true; changes: ExecutionChanges })
  | (ReportBase & { ok: false; error: PlugboxError });

const noServices: SandboxServices = {
  call: async (request) => {
    throw new SandboxError("SANDBOX_INTERNAL", `no ${request.service} service is configured in this host`);
  },
};

interface InFlight {
  execId: number;
  request: ExecutionRequest;
  contextJson: string;
  timedOut: boolean;
  /** When the execution's wall-clock limit runs out (epoch ms), set when it is dispatched. */
  deadline: number;
  limits: SandboxLimits;
  services: SandboxServices;
  worker: WorkerHandle | undefined;
  calls: AbortController;
  servedCalls: number;
  resolve: (report: ExecutionReport) => void;
  killTimer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
  /** pluginTime "clock": the plug-in's timers, on the runtime's clock, by the shim's timer id. */
  timers: Map<number, ClockTimer> | undefined;
  /** pluginTime "clock": messages that enter plug-in code (execute, reply, fire) sent, and those the worker says it ran. */
  sent: number;
  ran: number;
  /** pluginTime "clock": releases the clock, held while the worker runs plug-in code this execution was sent. */
  release: (() => void) | undefined;
}

interface WorkerHandle {
  id: number;
  child: ChildProcess;
  state: "starting" | "ready" | "draining" | "dead";
  inflight: Map<number, InFlight>;
  bundles: Set<string>;
  executions: number;
  rssBytes: number;
  stderrTail: string;
  /** Why the worker cannot start, when trying again cannot help (debug mode: the endpoint's port is taken). */
  cannotStart?: string;
}

/** What `health()` reports: the runtime's state, its workers, and why it is down when it is. */
export interface SandboxHealth {
  /**
   * `idle`: no worker started yet (startOnFirstExecution); `starting`: workers are on their way;
   * `ready`: every worker is up; `degraded`: some are, others are being started again;
   * `unavailable`: none could start lately, executions fail at once with SANDBOX_UNAVAILABLE;
   * `closed`: close() was called.
   */
  status: "idle" | "starting" | "ready" | "degraded" | "unavailable" | "closed";
  workers: { wanted: number; ready: number; starting: number };
  /** Failures to start a worker since one last started. */
  startFailuresInARow: number;
  lastStartFailure?: { message: string; at: string };
  /** When the next attempt to start a worker is due, while one waits out its back-off. */
  nextStartAt?: string;
  /** Since when executions fail with SANDBOX_UNAVAILABLE. */
  unavailableSince?: string;
}

const WORKER_MAIN = fileURLToPath(new URL("./worker/main.js", import.meta.url));
/** How long a new worker may take to load before it is killed as failing to start. */
const WORKER_START_TIMEOUT_MS = 30_000;

/**
 * What `createSandboxRuntime` takes: the runtime options, the clock its start back-off waits on (and
 * plug-ins' time, with `pluginTime: "clock"`), and debug mode, which only code can turn on. The
 * limits of an execution (its wall-clock and CPU time) are kept in real time whatever the clock: a
 * worker process runs in it.
 */
export type SandboxRuntimeInput = Parameters<typeof resolveRuntimeOptions>[0] & {
  clock?: Clock;
  /**
   * Debug mode: the worker opens a DevTools endpoint on 127.0.0.1 and a debugger can attach to the
   * plug-in's isolate. It runs one worker, and suspends the wall and CPU limits while the plug-in
   * is paused. Never for a deployment. @default off
   */
  inspector?: InspectorOptions;
};

export class SandboxRuntime {
  readonly options: SandboxRuntimeOptions;
  /** When a worker that failed to start is started again, and the times health() reports. */
  readonly clock: Clock;
  /** Debug mode, when on. */
  readonly inspector: ResolvedInspectorOptions | undefined;
  readonly #workers: WorkerHandle[] = [];
  readonly #queue: InFlight[] = [];
  #ready: Promise<void> | undefined;
  #readyDeferred: { resolve: () => void; reject: (error: Error) => void; settled: boolean } | undefined;
  readonly #pending = new Set<Promise<ExecutionReport>>();
  #nextExecId = 1;
  #nextWorkerId = 1;
  #turn = 0;
  /** Workers that failed to start since one last started. */
  #startFailures = 0;
  #lastStartFailure: { message: string; at: number } | undefined;
  /** Starts waiting out their back-off, by when each is due. */
  readonly #restarts = new Map<ClockTimer, number>();
  /** Set while no worker could start lately: executions fail at once with SANDBOX_UNAVAILABLE. */
  #unavailableSince: number | undefined;
  #closing: Promise<void> | undefined;

  constructor(input: SandboxRuntimeInput = {}) {
    const { clock, inspector, ...options } = input;
    this.inspector = resolveInspectorOptions(inspector);
    // One worker, so that there is one endpoint to attach to.
    this.options = resolveRuntimeOptions(this.inspector ? { ...options, workers: 1 } : options);
    this.clock = clock ?? systemClock;
    // A Node with no isolated-vm binding fails here, in one line (SANDBOX_UNSUPPORTED_NODE), not in every worker it would start.
    isolatedVmBinding();
    opened(this, "sandbox runtime");
    if (!this.options.startOnFirstExecution) void this.#start();
  }

  /** Starts the workers, once. */
  #start(): Promise<void> {
    if (!this.#ready) {
      this.#ready = new Promise<void>((resolve, reject) => {
        this.#readyDeferred = { resolve, reject, settled: false };
      });
      this.#ready.catch(() => undefined);
      for (let i = 0; i < this.options.workers; i++) this.#workers.push(this.#spawn());
    }
    return this.#ready;
  }

  /**
   * Resolves when every worker has started (starting them if they wait for the first execution).
   * Rejects with SANDBOX_UNAVAILABLE if they fail to start `unavailableAfterStartFailures` times in
   * a row first; the runtime goes on trying, and `ready` asked for again once they are up resolves.
   */
  get ready(): Promise<void> {
    if (this.#closing) return this.#ready ?? Promise.resolve();
    return this.#start();
  }

  /** The runtime's state: whether it can run executions now, its workers, and why not when it cannot. */
  health(): SandboxHealth {
    const ready = this.#workers.filter((w) => w.state === "ready").length;
    const starting = this.#workers.filter((w) => w.state === "starting").length;
    const wanted = this.options.workers;
    const status: SandboxHealth["status"] = this.#closing
      ? "closed"
      : !this.#ready
        ? "idle"
        : this.#unavailableSince !== undefined
          ? "unavailable"
          : ready >= wanted
            ? "ready"
            : ready > 0
              ? "degraded"
              : "starting";
    const nextStart = this.#restarts.size > 0 ? Math.min(...this.#restarts.values()) : undefined;
    return {
      status,
      workers: { wanted, ready, starting },
      startFailuresInARow: this.#startFailures,
      ...(this.#lastStartFailure ? { lastStartFailure: { message: this.#lastStartFailure.message, at: new Date(this.#lastStartFailure.at).toISOString() } } : {}),
      ...(nextStart !== undefined ? { nextStartAt: new Date(nextStart).toISOString() } : {}),
      ...(this.#unavailableSince !== undefined ? { unavailableSince: new Date(this.#unavailableSince).toISOString() } : {}),
    };
  }

  /** The error of an execution asked for while no worker can start: why, and when the next attempt is. */
  #unavailable(): SandboxError {
    const nextStart = this.#restarts.size > 0 ? Math.min(...this.#restarts.values()) : undefined;
    const next = nextStart === undefined ? "a worker is starting now" : `the next attempt is in ${Math.max(0, nextStart - this.clock.now().getTime())} ms`;
    return sandboxError(
      "SANDBOX_UNAVAILABLE",
      `no sandbox worker can run executions: ${this.#startFailures} attempts in a row to start one failed, the last because ${this.#lastStartFailure?.message ?? "it exited"}; the runtime keeps trying (${next}) and serves again as soon as one starts`,
    );
  }

  /** Worker process ids, for diagnostics and tests. */
  get workerPids(): number[] {
    return this.#workers.filter((w) => w.state !== "dead").map((w) => w.child.pid ?? -1);
  }

  /**
   * Runs one execution. Plug-in failures, limits and crashes come back as `{ ok: false, error }`
   * with the trace kept so far; only misuse of the runtime itself throws.
   */
  execute(request: ExecutionRequest, services: SandboxServices = noServices): Promise<ExecutionReport> {
    if (this.#closing) return Promise.reject(new SandboxError("SANDBOX_CLOSED", "the sandbox runtime was closed; create a new one"));
    let limits: SandboxLimits;
    try {
      limits = resolveLimits(request.limits, this.options.limits);
    } catch (error) {
      return Promise.reject(error);
    }
    let contextJson: string;
    try {
      contextJson = encode(request.context, "context");
    } catch (error) {
      return Promise.reject(new SandboxError("OPTIONS_INVALID", `the execution context cannot be sent to the sandbox: ${(error as Error).message}`));
    }
    const report = new Promise<ExecutionReport>((resolve) => {
      const inflight: InFlight = {
        execId: this.#nextExecId++,
        request,
        contextJson,
        timedOut: false,
        deadline: 0,
        limits,
        services,
        worker: undefined,
        calls: new AbortController(),
        servedCalls: 0,
        resolve,
        killTimer: undefined,
        onAbort: undefined,
        timers: undefined,
        sent: 0,
        ran: 0,
        release: undefined,
      };
      const signal = request.signal;
      if (this.#unavailableSince !== undefined) return resolve(this.#failure(this.#unavailable()));
      if (signal?.aborted) return resolve(this.#failure(sandboxError("SANDBOX_ABORTED", `the execution was aborted: ${String(signal.reason)}`)));
      if (signal) {
        inflight.onAbort = () => this.#abort(inflight, `the execution was aborted: ${String(signal.reason)}`);
        signal.addEventListener("abort", inflight.onAbort, { once: true });
      }
      void this.#start();
      this.#queue.push(inflight);
      this.#dispatch();
    });
    this.#pending.add(report);
    void report.then(() => this.#pending.delete(report));
    return report;
  }

  /** Stops accepting executions, lets in-flight ones finish, then stops every worker. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(): Promise<void> {
    for (const timer of this.#restarts.keys()) this.clock.clearTimeout(timer);
    this.#restarts.clear();
    if (this.#readyDeferred && !this.#readyDeferred.settled) {
      this.#readyDeferred.settled = true;
      this.#readyDeferred.reject(new SandboxError("SANDBOX_CLOSED", "the sandbox runtime was closed before its workers started"));
    }
    for (const queued of this.#queue.splice(0)) this.#settle(queued, this.#failure(sandboxError("SANDBOX_CLOSED", "the sandbox runtime was closed before the execution started")));
    await Promise.allSettled([...this.#pending]);
    await Promise.all(this.#workers.map((w) => this.#stop(w)));
    closed(this);
  }

  // Workers ///////////////////////////////////////////////////////////////////////////////////

  #spawn(): WorkerHandle {
    const child = fork(WORKER_MAIN, [], {
      execArgv: ["--no-node-snapshot"],
      serialization: "json",
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      env: {
        PLUGBOX_WORKER_CONFIG: JSON.stringify({
          prewarmIsolates: this.options.prewarmIsolates,
          defaultMemoryMb: this.options.limits.memoryMb,
          maxReusedContexts: this.options.maxReusedContexts,
          unsafeKeepWebAssembly: this.options.unsafeKeepWebAssembly,
          pluginTime: this.options.pluginTime,
          ...(this.inspector ? { inspector: { port: this.inspector.port, wait: this.inspector.wait } } : {}),
        }),
      },
    });
    opened(child, "sandbox worker");
    child.once("exit", () => closed(child));
    const worker: WorkerHandle = {
      id: this.#nextWorkerId++,
      child,
      state: "starting",
      inflight: new Map(),
      bundles: new Set(),
      executions: 0,
      rssBytes: 0,
      stderrTail: "",
    };
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      worker.stderrTail = (worker.stderrTail + chunk).slice(-4_096);
    });
    // A worker that never says it is ready (hung while loading) is killed, and counts as failing to start.
    const startTimer = setTimeout(() => child.kill("SIGKILL"), WORKER_START_TIMEOUT_MS);
    startTimer.unref();
    child.on("message", (message: FromWorker) => {
      if (message.type === "ready") {
        clearTimeout(startTimer);
        worker.state = "ready";
        this.#startFailures = 0;
        this.#unavailableSince = undefined;
        this.#settleReady();
        this.#dispatch();
      } else if (message.type === "inspectorFailed") {
        worker.cannotStart = message.message;
      } else if (message.type === "inspector") {
        const { url, port, devtoolsFrontendUrl } = message;
        this.inspector?.onListening?.({ url, port, devtoolsFrontendUrl });
      } else {
        this.#onMessage(worker, message);
      }
    });
    let stderrEnded = false;
    child.stderr?.once("end", () => (stderrEnded = true));
    const gone = (code: number | null, signal: NodeJS.Signals | null) => {
      if (worker.state === "dead") return;
      clearTimeout(startTimer);
      const wasStarting = worker.state === "starting";
      const wasReplaced = worker.state === "draining";
      worker.state = "dead";
      // Read stderr to its end first (briefly): a fatal V8 message there says why the worker died.
      const settle = () => this.#onExit(worker, code, signal, wasStarting, wasReplaced);
      if (stderrEnded || !child.stderr) return settle();
      const timer = setTimeout(settle, 200);
      child.stderr.once("end", () => {
        clearTimeout(timer);
        settle();
      });
    };
    child.on("exit", gone);
    child.on("error", (error) => {
      // A process that could not be spawned at all (EMFILE, EAGAIN) emits no "exit": it fails here.
      if (child.pid !== undefined) return;
      worker.stderrTail += error.message;
      gone(null, null);
    });
    return worker;
  }

  #onExit(worker: WorkerHandle, code: number | null, signal: NodeJS.Signals | null, wasStarting: boolean, wasReplaced: boolean): void {
    const index = this.#workers.indexOf(worker);
    if (index >= 0) this.#workers.splice(index, 1);
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    const oom = /is_heap_oom|out-of-memory|Heap statistics/.test(worker.stderrTail);
    const inflight = [...worker.inflight.values()];
    worker.inflight.clear();
    for (const f of inflight) {
      if (f.timedOut) {
        this.#settle(f, this.#failure(sandboxError("SANDBOX_TIMEOUT", "the execution did not end within its wall-clock limit; its sandbox worker was killed")));
      } else if (oom && inflight.length === 1) {
        this.#settle(f, this.#failure(sandboxError("SANDBOX_MEMORY_LIMIT", `the plug-in made a single allocation larger than its ${f.limits.memoryMb} MB heap limit, a fatal V8 error; its sandbox worker was restarted`)));
      } else {
        this.#settle(
          f,
          this.#failure(
            sandboxError("SANDBOX_WORKER_CRASHED", `the sandbox worker process running this execution died (${how}${oom ? ", fatal V8 out-of-memory error" : ""}); it was restarted and other executions continue`),
          ),
        );
      }
    }
    if (this.#closing || wasReplaced) return;
    if (!wasStarting) {
      this.#workers.push(this.#spawn());
      return;
    }
    // A worker that cannot start for a reason that will not pass makes the runtime unavailable at once.
    this.#startFailures++;
    const output = worker.stderrTail.trim();
    this.#lastStartFailure = { message: worker.cannotStart ?? `a worker exited while starting (${how})${output ? `: ${output.slice(-500)}` : ""}`, at: this.clock.now().getTime() };
    this.#restartLater();
    if (this.#startFailures < this.options.unavailableAfterStartFailures && worker.cannotStart === undefined) return;
    // Some workers up and others failing: serve with those (degraded) rather than wait for all.
    if (this.#workers.some((w) => w.state === "ready")) this.#settleReady(true);
    else this.#becomeUnavailable();
  }

  /** Starts a worker again after the back-off: it doubles with each failure in a row, up to startRetryMaxMs. */
  #restartLater(): void {
    const { startRetryBaseMs, startRetryMaxMs } = this.options;
    const delay = Math.min(startRetryMaxMs, startRetryBaseMs * 2 ** Math.min(this.#startFailures - 1, 30));
    // A host that is done with the runtime need not wait for it (unref); one that serves keeps the process alive anyway.
    const timer = this.clock.setTimeout(
      () => {
        this.#restarts.delete(timer);
        if (!this.#closing) this.#workers.push(this.#spawn());
      },
      delay,
      { unref: true },
    );
    this.#restarts.set(timer, this.clock.now().getTime() + delay);
  }

  /** No worker can start: what waits and what comes next fails at once with the reason, until one starts. */
  #becomeUnavailable(): void {
    this.#unavailableSince ??= this.clock.now().getTime();
    const error = this.#unavailable();
    for (const queued of this.#queue.splice(0)) this.#settle(queued, this.#failure(error));
    if (this.#readyDeferred && !this.#readyDeferred.settled) {
      this.#readyDeferred.settled = true;
      this.#readyDeferred.reject(error);
    }
  }

  /**
   * `ready` resolves once every worker is up (or, `degraded`, once some are and the others keep
   * failing to start); if it was rejected during an outage, it resolves from then on.
   */
  #settleReady(degraded = false): void {
    if (!degraded && this.#workers.filter((w) => w.state === "ready").length < this.options.workers) return;
    if (!this.#readyDeferred) return;
    if (this.#readyDeferred.settled) {
      this.#ready = Promise.resolve();
      this.#readyDeferred = undefined;
      return;
    }
    this.#readyDeferred.settled = true;
    this.#readyDeferred.resolve();
  }

  async #stop(worker: WorkerHandle): Promise<void> {
    if (worker.state === "dead") return;
    const exited = new Promise<void>((resolve) => worker.child.once("exit", () => resolve()));
    worker.state = "draining";
    if (worker.child.connected) worker.child.disconnect();
    const timer = setTimeout(() => worker.child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }

  #recycleIfNeeded(worker: WorkerHandle): void {
    if (worker.state !== "ready") return;
    const tooMany = worker.executions >= this.options.recycleAfterExecutions;
    const tooBig = worker.rssBytes > this.options.recycleAboveRssMb * 1024 * 1024;
    if (!tooMany && !tooBig) return;
    worker.state = "draining";
    this.#workers.push(this.#spawn());
    if (worker.inflight.size === 0) void this.#stop(worker);
  }

  // Dispatch //////////////////////////////////////////////////////////////////////////////////

  #pickWorker(inflight: InFlight): WorkerHandle | undefined {
    const nested = inflight.request.nested === true;
    const ready = this.#workers.filter((w) => w.state === "ready" && (nested || w.inflight.size < this.options.maxConcurrentPerWorker));
    if (ready.length === 0) return undefined;
    if (inflight.request.isolation === "reuse") {
      // Keep a step's executions on one worker, where its instance lives.
      const all = this.#workers.filter((w) => w.state === "ready");
      const key = inflight.request.instanceKey ?? inflight.request.typeName;
      const preferred = all[hash(key + inflight.request.bundle.id) % all.length];
      if (preferred && ready.includes(preferred)) return preferred;
    }
    // Least loaded, and among equals the next in turn: a worker refilling its pool of fresh
    // isolates after an execution is then not the one that gets the next.
    const least = Math.min(...ready.map((w) => w.inflight.size));
    const candidates = ready.filter((w) => w.inflight.size === least);
    return candidates[this.#turn++ % candidates.length]!;
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      const next = this.#queue[0]!;
      const worker = this.#pickWorker(next);
      if (!worker) return;
      this.#queue.shift();
      this.#send(worker, next);
    }
  }

  #send(worker: WorkerHandle, f: InFlight): void {
    const { request, limits } = f;
    const bundle = request.bundle;
    const first = !worker.bundles.has(bundle.id);
    worker.bundles.add(bundle.id);
    f.worker = worker;
    worker.inflight.set(f.execId, f);
    // In debug mode the worker keeps the wall limit itself, stopping it while the plug-in is paused.
    f.deadline = this.inspector ? Number.MAX_SAFE_INTEGER : Date.now() + limits.wallTimeMs;
    if (!this.inspector) f.killTimer = setTimeout(() => {
      f.timedOut = true;
      worker.child.kill("SIGKILL");
    }, limits.wallTimeMs + this.options.killGraceMs);
    this.#post(worker, {
      type: "execute",
      execId: f.execId,
      bundle: {
        id: bundle.id,
        filename: bundle.filename,
        ...(first ? { source: bundle.source } : {}),
        ...(bundle.cachedData && first ? { cachedData: Buffer.from(bundle.cachedData).toString("base64") } : {}),
        ...(this.inspector && bundle.directory !== undefined ? { url: pathToFileURL(path.join(bundle.directory, bundle.filename)).href } : {}),
      },
      typeName: request.typeName,
      isolation: request.isolation ?? "fresh",
      instanceKey: request.instanceKey ?? request.typeName,
      unsecureConfig: request.unsecureConfig ?? null,
      secureConfig: request.secureConfig ?? null,
      context: f.contextJson,
      limits,
      ...(request.web ? { web: request.web } : {}),
      ...this.#entering(f),
    });
  }

  /**
   * pluginTime "clock": a message about to enter plug-in code carries the clock's time, and the
   * clock is held until the worker says it ran that code (so the timers it sets are on the clock
   * before a ManualClock fires the next one). Nothing in real time.
   */
  #entering(f: InFlight): { now?: number } {
    if (this.options.pluginTime !== "clock") return {};
    f.sent++;
    f.release ??= this.clock.hold?.();
    return { now: this.clock.now().getTime() };
  }

  #onRan(f: InFlight, ran: number): void {
    f.ran = Math.max(f.ran, ran);
    if (f.ran < f.sent || !f.release) return;
    f.release();
    f.release = undefined;
  }

  /** pluginTime "clock": a plug-in's timer, kept on the runtime's clock; when it falls due the worker fires it. */
  #onTimer(worker: WorkerHandle, message: TimerMessage): void {
    const f = worker.inflight.get(message.execId);
    if (!f || this.options.pluginTime !== "clock" || typeof message.timerId !== "number") return;
    const timers = (f.timers ??= new Map());
    this.clock.clearTimeout(timers.get(message.timerId));
    timers.delete(message.timerId);
    if (message.op !== "set") return;
    const delay = Math.max(0, Number.isFinite(message.delayMs) ? message.delayMs : 0);
    const timer = this.clock.setTimeout(() => {
      timers.delete(message.timerId);
      if (worker.inflight.get(f.execId) !== f) return;
      const { now = this.clock.now().getTime() } = this.#entering(f);
      this.#post(worker, { type: "fire", execId: f.execId, timerId: message.timerId, now });
    }, delay);
    timers.set(message.timerId, timer);
  }

  #post(worker: WorkerHandle, message: ToWorker): void {
    if (worker.state === "dead" || !worker.child.connected) return;
    worker.child.send(message, (error) => {
      if (error) worker.child.kill("SIGKILL");
    });
  }

  #abort(f: InFlight, reason: string): void {
    const index = this.#queue.indexOf(f);
    if (index >= 0) {
      this.#queue.splice(index, 1);
      this.#settle(f, this.#failure(sandboxError("SANDBOX_ABORTED", reason)));
      return;
    }
    if (f.worker) this.#post(f.worker, { type: "abort", execId: f.execId, reason });
  }

  // Messages from workers /////////////////////////////////////////////////////////////////////

  #onMessage(worker: WorkerHandle, message: FromWorker): void {
    switch (message.type) {
      case "call":
        void this.#serve(worker, message);
        return;
      case "done":
        this.#onDone(worker, message);
        return;
      case "timer":
        this.#onTimer(worker, message);
        return;
      case "ran": {
        const f = worker.inflight.get(message.execId);
        if (f) this.#onRan(f, message.seen);
        return;
      }
    }
  }

  async #serve(worker: WorkerHandle, message: CallMessage): Promise<void> {
    const f = worker.inflight.get(message.execId);
    if (!f) return;
    const reply = (ok: boolean, payload: string) => {
      if (worker.inflight.get(message.execId) !== f) return;
      this.#post(worker, { type: "reply", execId: message.execId, callId: message.callId, ok, payload, ...this.#entering(f) });
    };
    const refuse = (code: SandboxErrorCode | ServiceErrorCode, text: string) => reply(false, JSON.stringify({ code, message: text }));
    if (!isServiceOperation(message.service, message.op)) return refuse("SANDBOX_ISOLATION_VIOLATION", "unknown service operation");
    if (typeof message.payload !== "string" || message.payload.length > f.limits.maxHostCallBytes) {
      return refuse("SANDBOX_HOST_CALL_TOO_LARGE", `a service request is limited to ${f.limits.maxHostCallBytes} bytes`);
    }
    let payload: { userId?: unknown; args?: unknown };
    try {
      payload = decode(message.payload) as typeof payload;
    } catch (error) {
      return refuse("SERVICE_BAD_REQUEST", `the arguments of ${message.service}.${message.op} are not valid: ${(error as Error).message}`);
    }
    if (!isPlainObject(payload) || !Array.isArray(payload.args)) return refuse("SERVICE_BAD_REQUEST", "malformed service request");
    const userId = typeof payload.userId === "string" ? payload.userId : null;
    f.servedCalls++;
    try {
      const value = await f.services.call({ service: message.service, op: message.op, args: payload.args, userId, executionId: f.execId, signal: f.calls.signal, deadline: f.deadline });
      const json = encode(value ?? null, "result");
      if (json.length > f.limits.maxHostCallBytes) {
        return refuse("SANDBOX_HOST_CALL_TOO_LARGE", `the answer of ${message.service}.${message.op} is ${json.length} bytes; the limit is ${f.limits.maxHostCallBytes} (limits.maxHostCallBytes)`);
      }
      reply(true, json);
    } catch (error) {
      reply(false, JSON.stringify(sanitize(error, message.service)));
    }
  }

  #onDone(worker: WorkerHandle, message: DoneMessage): void {
    worker.rssBytes = message.rssBytes;
    const f = worker.inflight.get(message.execId);
    if (message.cachedData) {
      const bundle = f?.request.bundle;
      if (bundle && bundle.id === message.cachedData.bundleId && !bundle.cachedData) bundle.cachedData = new Uint8Array(Buffer.from(message.cachedData.data, "base64"));
    }
    if (!f) return;
    worker.inflight.delete(message.execId);
    worker.executions++;
    const { outcome } = message;
    const base = { trace: outcome.trace, stats: outcome.stats, violations: outcome.violations, webCalls: outcome.webCalls ?? [] };
    if (outcome.ok) {
      const changes = readChanges(outcome.result, f.limits.maxResultBytes);
      this.#settle(f, changes instanceof PlugboxError ? { ok: false, error: changes, ...base } : { ok: true, changes, ...base });
    } else {
      this.#settle(f, { ok: false, error: this.#rebuild(outcome.error, f.request.bundle), ...base });
    }
    this.#recycleIfNeeded(worker);
    if (worker.state === "draining" && worker.inflight.size === 0) void this.#stop(worker);
    this.#dispatch();
  }

  #rebuild(error: WireError, bundle: Bundle): PlugboxError {
    const code = isSandboxErrorCode(error.code) ? error.code : "SANDBOX_INTERNAL";
    if (code === "PLUGIN_FAILED" || code === "PLUGIN_UNEXPECTED_ERROR" || code === "PLUGIN_RESULT_INVALID") {
      return new PluginExecutionError(code, error.message, {
        ...(error.status !== undefined ? { status: error.status } : {}),
        ...(error.errorCode !== undefined ? { errorCode: error.errorCode } : {}),
        ...(error.stack !== undefined ? { pluginStack: bundle.mapStack(error.stack) } : {}),
        ...(error.serviceCode !== undefined ? { serviceCode: error.serviceCode } : {}),
      });
    }
    const details = error.stack !== undefined ? { pluginStack: bundle.mapStack(error.stack) } : undefined;
    return sandboxError(code, error.message, details);
  }

  #failure(error: PlugboxError): ExecutionReport {
    return {
      ok: false,
      error,
      trace: "",
      stats: { wallMs: 0, cpuMs: 0, heapUsedBytes: null, hostCalls: 0, isolateReused: false },
      violations: [],
      webCalls: [],
    };
  }

  #settle(f: InFlight, report: ExecutionReport): void {
    clearTimeout(f.killTimer);
    // Timers of an execution that ended are dropped, and it holds the clock no more.
    if (f.timers) for (const timer of f.timers.values()) this.clock.clearTimeout(timer);
    f.timers?.clear();
    f.release?.();
    f.release = undefined;
    // Aborting builds a DOMException: do it only when a service call could still be listening.
    if (f.servedCalls > 0) f.calls.abort();
    if (f.onAbort) f.request.signal?.removeEventListener("abort", f.onAbort);
    f.resolve(report);
  }
}

function readChanges(json: string, maxBytes: number): ExecutionChanges | PlugboxError {
  if (json.length > maxBytes) return sandboxError("SANDBOX_RESULT_TOO_LARGE", `the changed context is ${json.length} bytes; the limit is ${maxBytes}`);
  let value: unknown;
  try {
    value = decode(json);
  } catch (error) {
    return new PluginExecutionError("PLUGIN_RESULT_INVALID", `the changed context cannot be read: ${(error as Error).message}`);
  }
  if (!isPlainObject(value)) return new PluginExecutionError("PLUGIN_RESULT_INVALID", "the changed context is not an object");
  const read = (key: string): Record<string, unknown> | PlugboxError => {
    const part = value[key];
    if (part === undefined || part === null) return {};
    return isPlainObject(part) ? part : new PluginExecutionError("PLUGIN_RESULT_INVALID", `context.${key} must stay a plain object of parameters`);
  };
  const inputParameters = read("inputParameters");
  const outputParameters = read("outputParameters");
  const sharedVariables = read("sharedVariables");
  for (const part of [inputParameters, outputParameters, sharedVariables]) if (part instanceof PlugboxError) return part;
  return { inputParameters, outputParameters, sharedVariables } as ExecutionChanges;
}

/** What a plug-in may learn of a failed service call: a code and a message, never a host stack or path. */
function sanitize(error: unknown, service: string): WireError {
  if (error instanceof PlugboxError) return { code: error.code, message: error.message };
  return { code: "SERVICE_FAILED", message: `the ${service} service failed` };
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Starts a sandbox runtime. `await runtime.ready` to wait for its workers; `await runtime.close()` when done. */
export function createSandboxRuntime(options?: SandboxRuntimeInput): SandboxRuntime {
  return new SandboxRuntime(options);
}
