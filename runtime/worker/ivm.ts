/**
 * The only module that imports isolated-vm. Everything else in the runtime talks to V8 through
 * this facade.
 *
 * Each supported Node.js line needs its own isolated-vm major: 5.0.4 is the last that builds for
 * Node 20, 6.x needs Node 22 and ships a binary for it, 7.0.1 ships binaries for Node 24 and 26.
 * package.json installs each as an optional helper package (bindings/isolated-vm-N) whose `engines`
 * field names its Nodes, so npm skips the others without trying to build them. This module picks the
 * helper for the running Node, loads isolated-vm from it on first use and reports which one it is.
 *
 * Only strings, numbers and booleans are passed through `callSync`; no Reference, ExternalCopy or
 * Callback object ever becomes reachable from code inside the isolate.
 *
 * ## Why every entry leaves the isolate by throwing a string
 *
 * When a synchronous call into an isolate returns normally, isolated-vm runs its task epilogue
 * (`IsolateEnvironment::TaskEpilogue`, src/isolate/environment.cc, the same in 5.0.4 and 7.0.x):
 * for the first promise rejected with no handler it copies the rejection's reason out, reading
 * `message`, `stack` and `name` (and calling `toString`) with the isolate's *default* context
 * current and no timeout armed. A throw that escapes a call is copied the same way
 * (`FunctorRunners::RunCatchExternal`, src/isolate/functor_runners.h). Both would run plug-in
 * getters and Proxy traps after the timed call ended, in a second realm whose globals the shim
 * never saw.
 *
 * So the shim's entry functions catch everything themselves, inside the timed call, and end by
 * throwing a string they built. `ThreePhaseTask::RunSync` (src/isolate/three_phase_task.cc) skips
 * the task epilogue when the call throws, and copying a thrown primitive runs no JavaScript.
 * Microtasks still run first, inside the timed call (V8's kAuto policy drains them when the
 * outermost call returns). Pending rejections are never copied: the list is dropped with the
 * isolate. The price is about 20 µs per entry for the C++ exception isolated-vm raises.
 *
 * Any *other* synchronous isolated-vm operation on an isolate where plug-in code has run would
 * run that epilogue, so this facade refuses them (`#assertNoPluginCodeRan`); heap statistics are
 * read only from inside a bridge callback, where isolated-vm runs the task without an epilogue
 * (the isolate is already entered: `is_recursive` in RunSync).
 */
import { createRequire } from "node:module";
import { SandboxError } from "../errors.js";

/** Node.js majors plugbox supports, each with the helper package that holds its isolated-vm. */
export const ISOLATED_VM_BINDINGS: readonly { readonly nodeMajor: number; readonly package: string }[] = [
  { nodeMajor: 20, package: "@plugbox/isolated-vm-5" },
  { nodeMajor: 22, package: "@plugbox/isolated-vm-6" },
  { nodeMajor: 24, package: "@plugbox/isolated-vm-7" },
  { nodeMajor: 26, package: "@plugbox/isolated-vm-7" },
];

export const SUPPORTED_NODE_MAJORS: readonly number[] = ISOLATED_VM_BINDINGS.map((b) => b.nodeMajor);

/*
 * What differs between the four, as the suite found it. isolated-vm's API is the same in 5.0.4,
 * 6.2.0 and 7.0.1 (identical isolated-vm.d.ts; between v5.0.4 and v7.0.1 its commits port it to
 * Node 24 (fa5a7019) and 26 (c8e3c33b, #553), move to prebuilt binaries (16f5337f, #546) and fix
 * `Callback` (b57202cd), resized ArrayBuffer copies (dd5469c7) and inspector sessions). The
 * behaviours that differ follow V8, not isolated-vm: a probe of raw isolated-vm 6.2.0 gives the old
 * behaviour on Node 22 (V8 12.4) and the new one on Node 24 (V8 13.6), as does 7.0.1 on 24 and 26
 * (docs/node-versions.md has the probe).
 * - One allocation far past the heap limit (`new Array(1e8).fill(0)` under 32 MB): up to V8 12 a
 *   fatal OOM that aborts the worker process (the supervisor reports SANDBOX_MEMORY_LIMIT and starts
 *   another); from V8 13 isolated-vm's near-heap-limit callback stops the isolate and the call fails
 *   with "Isolate was disposed during execution due to memory limit" (classifyIsolateError: "memory"),
 *   and the worker lives on. Both end as SANDBOX_MEMORY_LIMIT; nothing here needs to tell them apart.
 * - An Error's stack header: up to V8 12 it is formatted on the first read of `stack`, calling a
 *   `message` getter then (one that loops is stopped by the CPU limit); from V8 13 it is written
 *   when the Error is made, so a getter defined later is never called by it.
 * - V8 14 (Node 26) adds the ECMAScript global `Temporal` to every context, the isolate's too.
 * - V8 14 (Node 26) aborts the process when isolated-vm opens an inspector session from a thread
 *   that does not hold the isolate (ConnectHook below).
 */

/** Which isolated-vm the sandbox uses on this Node: what `plugbox --version` and `--json` report. */
export interface IsolatedVmBinding {
  /** The running Node.js version, e.g. "24.22.3". */
  readonly node: string;
  /** isolated-vm's version, e.g. "7.0.1". */
  readonly isolatedVm: string;
  /** The helper package it was installed through, e.g. "@plugbox/isolated-vm-7". */
  readonly package: string;
}

interface ResolvedBinding extends IsolatedVmBinding {
  /** Resolves modules as the helper package does (its own node_modules first). */
  readonly require: NodeJS.Require;
}

/** "20, 22, 24 and 26" */
function supportedList(): string {
  const majors = SUPPORTED_NODE_MAJORS.map(String);
  return `${majors.slice(0, -1).join(", ")} and ${majors.at(-1)}`;
}

/** Throws SANDBOX_UNSUPPORTED_NODE, one line naming the supported versions, for a Node plugbox has no isolated-vm for. */
export function assertSupportedNode(nodeVersion: string): void {
  bindingSpecFor(nodeVersion);
}

function bindingSpecFor(nodeVersion: string): (typeof ISOLATED_VM_BINDINGS)[number] {
  const major = Number(nodeVersion.split(".")[0]);
  const binding = ISOLATED_VM_BINDINGS.find((b) => b.nodeMajor === major);
  if (!binding) {
    throw new SandboxError("SANDBOX_UNSUPPORTED_NODE", `plugbox runs on Node.js ${supportedList()}; this is Node.js ${nodeVersion}`, {
      details: { node: nodeVersion, supported: [...SUPPORTED_NODE_MAJORS] },
    });
  }
  return binding;
}

/**
 * Picks the helper package for `nodeVersion` and finds isolated-vm through it, without loading it.
 * `resolve` is `require.resolve` from this module (a parameter so tests can ask about other Nodes).
 * Throws SANDBOX_UNSUPPORTED_NODE in one line when the Node is not supported or its helper is not installed.
 */
export function selectBinding(nodeVersion: string, resolve: (request: string) => string): ResolvedBinding {
  const binding = bindingSpecFor(nodeVersion);
  let helperManifest: string;
  let isolatedVmManifest: string;
  try {
    helperManifest = resolve(`${binding.package}/package.json`);
    isolatedVmManifest = createRequire(helperManifest).resolve("isolated-vm/package.json");
  } catch {
    throw new SandboxError(
      "SANDBOX_UNSUPPORTED_NODE",
      `isolated-vm for Node.js ${binding.nodeMajor} (${binding.package}) is not installed: run npm ci (or npm install) with this Node.js, ${nodeVersion}`,
      { details: { node: nodeVersion, package: binding.package } },
    );
  }
  const { version } = createRequire(helperManifest)(isolatedVmManifest) as { version: string };
  return { node: nodeVersion, isolatedVm: version, package: binding.package, require: createRequire(helperManifest) };
}

let selected: ResolvedBinding | undefined;

function runningBinding(): ResolvedBinding {
  selected ??= selectBinding(process.versions.node, createRequire(import.meta.url).resolve);
  return selected;
}

/** The binding for the running Node, found without loading it (safe in a process without --no-node-snapshot). */
export function isolatedVmBinding(): IsolatedVmBinding {
  const { node, isolatedVm, package: pkg } = runningBinding();
  return { node, isolatedVm, package: pkg };
}

let loaded: IsolatedVm | undefined;

/** Loads isolated-vm on first use, in a sandbox worker (a process started with --no-node-snapshot). */
function loadIsolatedVm(): IsolatedVm {
  loaded ??= runningBinding().require("isolated-vm") as IsolatedVm;
  return loaded;
}

/** The native addon file isolated-vm loaded (for reports such as `plugbox audit`); loads isolated-vm. */
export function isolatedVmNativePath(): string {
  loadIsolatedVm();
  const cache = runningBinding().require.cache;
  return Object.keys(cache).find((file) => file.endsWith(".node") && /isolated[-_]vm/.test(file)) ?? "unknown";
}

/**
 * The part of isolated-vm's API this facade uses. isolated-vm ships its own types, but which major
 * is installed (and where) depends on the Node that ran `npm install`, so the compiler could not
 * find them on every Node; this surface is the same in 5.0.4, 6.2.0 and 7.0.1 (their
 * isolated-vm.d.ts files are identical).
 */
namespace IvmModule {
  export interface Isolate {
    createContext(options?: { inspector: boolean }): Promise<Context>;
    createInspectorSession(): InspectorSession;
    compileScript(source: string, options: ScriptOptions): Promise<Script>;
    compileScriptSync(source: string, options: ScriptOptions): Script;
    readonly cpuTime: bigint;
    readonly isDisposed: boolean;
    getHeapStatisticsSync(): { used_heap_size: number; externally_allocated_size: number };
    dispose(): void;
  }
  export interface Context {
    readonly global: Reference<Record<string, unknown>>;
    evalClosureSync(code: string, args: unknown[], options: { result: { reference: true } }): Reference<unknown>;
  }
  export interface InspectorSession {
    dispatchProtocolMessage(message: string): void;
    dispose(): void;
    onNotification: (message: string) => void;
    onResponse: (callId: number, message: string) => void;
  }
  export interface ScriptOptions {
    filename: string;
    cachedData?: ExternalCopy<ArrayBuffer>;
    produceCachedData?: boolean;
  }
  export interface Script {
    run(context: Context, options: { timeout: number }): Promise<unknown>;
    runSync(context: Context, options: { reference: true; timeout: number }): Reference<unknown>;
    release(): void;
  }
  export interface ExternalCopy<T> {
    copy(): T;
  }
  // eslint-disable-next-line @typescript-eslint/no-unused-vars -- T documents what the reference points at
  export interface Reference<T> {
    setSync(property: string, value: unknown): boolean;
    getSync(property: string, options: { reference: true }): Reference<unknown>;
    deleteSync(property: string): boolean;
    applySync(receiver: undefined, args: unknown[], options: { timeout: number }): unknown;
    apply(receiver: undefined, args: unknown[], options: { timeout?: number }): Promise<unknown>;
    derefInto(options: { release: true }): unknown;
    release(): void;
  }
}

interface IsolatedVm {
  Isolate: new (options: { memoryLimit: number; inspector?: boolean }) => IvmModule.Isolate;
  Callback: new (fn: (...args: never[]) => unknown) => unknown;
  ExternalCopy: new (value: ArrayBuffer) => IvmModule.ExternalCopy<ArrayBuffer>;
}

export type Primitive = string | number | boolean | null | undefined;
export type BridgeFunction = (...args: Primitive[]) => Primitive | void;

/** A shim entry function inside the isolate, called synchronously with a timeout; it answers with a string. */
export interface IsolateFunction {
  callSync(args: Array<Primitive | IsolateValueHandle>, timeoutMs: number): string;
  /**
   * The same call run on isolated-vm's thread pool, leaving this thread free (for a debugger's
   * messages while the code is paused). Only for isolates made with `inspector: true`; with
   * `timeoutMs` 0 no timer is armed (isolated-vm's timer counts time spent paused). The analysis
   * above covers the synchronous path only: this one is for debugging code its author trusts.
   */
  call(args: Array<Primitive | IsolateValueHandle>, timeoutMs: number): Promise<string>;
}

/** A V8 inspector session on an isolate: DevTools protocol messages in, responses and events out. */
export interface InspectorConnection {
  send(message: string): void;
  close(): void;
}

export interface CompiledScript {
  /** Runs the script and returns its completion value, which must be a function, as an IsolateFunction-compatible handle. */
  runForFunction(timeoutMs: number): IsolateValueHandle;
  cachedDataRejected: boolean;
  /** V8's code cache for this script, made from the source just compiled. */
  produceCachedData(): Uint8Array | undefined;
}

/** An opaque handle to a value inside the isolate, passed back into a call without leaving the isolate. */
export interface IsolateValueHandle {
  readonly __handle: unique symbol;
}

export interface HeapUsage {
  usedBytes: number;
  externalBytes: number;
}

/**
 * What the shim found of the isolate's default context (the realm isolated-vm enters to copy
 * values out): `hardened` when it could reach it and removed what it removes from the plug-in's
 * own realm; `unreachable` when no route led there.
 */
export type DefaultRealm = "hardened" | "unreachable";

/** Thrown when the facade is asked for something that would let plug-in code run outside a timed entry. */
export class UnsafeIsolateOperationError extends Error {}

/** What the connect hook throws to leave the isolate (see "Why every entry leaves the isolate by throwing a string"). */
const CONNECTED = "connected";

/**
 * Opens inspector sessions on a thread that holds the isolate. isolated-vm's
 * `createInspectorSession` calls V8's `V8Inspector::connect` on the calling thread, which holds
 * only Node's own isolate:
 * - V8 14 (Node 26, isolated-vm 7.0.1) allocates the session on the inspected isolate's cppgc heap,
 *   and the process aborts with "Check failed: IsCreationThread()".
 * - On Node 20 (isolated-vm 5.0.4) and 24 (7.0.1) a session opened while a call runs on the thread
 *   pool pauses, but then never processes `Debugger.resume`: the plug-in stays paused.
 * So the session is opened from a host callback inside a synchronous call into the isolate (this
 * thread then holds the isolate's lock), and only while no other call runs. That works on every Node.
 */
interface ConnectHook {
  /** `function () { connect(); throw "connected"; }` in the isolate, where `connect` runs `pending`. */
  fn: IvmModule.Reference<() => never>;
  pending: (() => void) | undefined;
}

/** One V8 isolate with one context. */
export class SandboxIsolate {
  readonly #isolate: IvmModule.Isolate;
  readonly #context: IvmModule.Context;
  readonly defaultRealm: DefaultRealm;
  #disposed = false;
  #lastCpuNs = 0n;
  readonly #inspected: boolean;
  readonly #sessions = new Set<IvmModule.InspectorSession>();
  /** Set for isolates made with `inspector: true`. */
  readonly #connectHook: ConnectHook | undefined;
  /** How many entry calls are running (a bridge callback can make a nested one). */
  #entered = 0;
  /** How many entry calls run on isolated-vm's thread pool (`call`); the isolate is busy while any does. */
  #enteredAsync = 0;
  /** Sessions to open once no call runs on the thread pool (ConnectHook). */
  #connectQueue: Array<() => void> = [];
  #pluginCodeRan = false;

  private constructor(isolate: IvmModule.Isolate, context: IvmModule.Context, defaultRealm: DefaultRealm, inspected: boolean, connectHook: ConnectHook | undefined) {
    this.#isolate = isolate;
    this.#inspected = inspected;
    this.#context = context;
    this.defaultRealm = defaultRealm;
    this.#connectHook = connectHook;
  }

  /**
   * Creates an isolate and its context, installs the bridge callbacks as globals and evaluates
   * the shim, which captures and deletes them. Calls the shim's `setup` entry (which hardens the
   * default realm) and returns the shim's API functions.
   */
  static async create(options: {
    memoryMb: number;
    bridge: Record<string, BridgeFunction>;
    shim: { source: string; cachedData?: Uint8Array; filename: string };
    api: readonly string[];
    /** Lets a debugger attach (`connectInspector`); only ever set by the runtime's inspector option. */
    inspector?: boolean;
  }): Promise<{ isolate: SandboxIsolate; api: Record<string, IsolateFunction>; shimCachedData?: Uint8Array }> {
    // No onCatastrophicError handler, on purpose: isolated-vm schedules it on the main thread and
    // parks the failing thread, but our isolates run on the main thread (applySync), so the handler
    // could never run. Without one, V8's out-of-memory path prints heap statistics and aborts the
    // process at once, which is what a supervised worker wants.
    const ivm = loadIsolatedVm();
    const inspector = options.inspector === true;
    const isolate = new ivm.Isolate({ memoryLimit: options.memoryMb, ...(inspector ? { inspector } : {}) });
    try {
      const context = await isolate.createContext(inspector ? { inspector } : undefined);
      let connectHook: ConnectHook | undefined;
      if (inspector) {
        // Made before any plug-in code, and reachable from no global: plug-in code never sees it.
        const hook: Partial<ConnectHook> = {};
        hook.fn = context.evalClosureSync(`const connect = $0; return function () { connect(); throw ${JSON.stringify(CONNECTED)}; };`, [new ivm.Callback(() => hook.pending?.())], {
          result: { reference: true },
        }) as IvmModule.Reference<() => never>;
        connectHook = hook as ConnectHook;
      }
      const global = context.global;
      for (const [name, fn] of Object.entries(options.bridge)) {
        global.setSync(name, new ivm.Callback(fn));
      }
      const script: ScriptWithCache = await isolate.compileScript(options.shim.source, {
        filename: options.shim.filename,
        ...(options.shim.cachedData ? { cachedData: new ivm.ExternalCopy(toArrayBuffer(options.shim.cachedData)) } : { produceCachedData: true }),
      });
      let shimCachedData: Uint8Array | undefined;
      if (!options.shim.cachedData && script.cachedData) shimCachedData = new Uint8Array(script.cachedData.copy());
      await script.run(context, { timeout: 5_000 });
      script.release();
      const apiRef = global.getSync("__pb_api", { reference: true }) as IvmModule.Reference<Record<string, unknown>>;
      global.deleteSync("__pb_api");
      const entry = (name: string): IvmModule.Reference<(...a: unknown[]) => unknown> =>
        apiRef.getSync(name, { reference: true }) as IvmModule.Reference<(...a: unknown[]) => unknown>;
      // Trusted shim code only, before any plug-in code: the one value that leaves the isolate the
      // ordinary way, an error whose message says what setup found of the default realm.
      let defaultRealm: DefaultRealm = "unreachable";
      try {
        entry("setup").applySync(undefined, [], { timeout: 5_000 });
      } catch (error) {
        if (error instanceof Error && error.message === "hardened") defaultRealm = "hardened";
      }
      const sandbox = new SandboxIsolate(isolate, context, defaultRealm, inspector, connectHook);
      const api: Record<string, IsolateFunction> = {};
      for (const name of options.api) {
        const fn = entry(name);
        api[name] = { callSync: (args, timeoutMs) => sandbox.#enter(fn, args, timeoutMs), call: (args, timeoutMs) => sandbox.#enterAsync(fn, args, timeoutMs) };
      }
      apiRef.release();
      return { isolate: sandbox, api, ...(shimCachedData ? { shimCachedData } : {}) };
    } catch (error) {
      if (!isolate.isDisposed) isolate.dispose();
      throw error;
    }
  }

  #enter(fn: IvmModule.Reference<(...a: unknown[]) => unknown>, args: Array<Primitive | IsolateValueHandle>, timeoutMs: number): string {
    this.#pluginCodeRan = true;
    this.#entered++;
    try {
      return callEntry(fn, args, timeoutMs);
    } finally {
      this.#entered--;
    }
  }

  async #enterAsync(fn: IvmModule.Reference<(...a: unknown[]) => unknown>, args: Array<Primitive | IsolateValueHandle>, timeoutMs: number): Promise<string> {
    if (!this.#inspected) throw new UnsafeIsolateOperationError("an entry runs off this thread only in an isolate made for a debugger");
    this.#pluginCodeRan = true;
    this.#enteredAsync++;
    try {
      await fn.apply(undefined, args as never[], timeoutMs > 0 ? { timeout: Math.ceil(timeoutMs) } : {});
    } catch (thrown) {
      if (typeof thrown === "string") return thrown;
      throw thrown;
    } finally {
      this.#enteredAsync--;
      if (this.#enteredAsync === 0) for (const open of this.#connectQueue.splice(0)) open();
    }
    throw new UnsafeIsolateOperationError("a shim entry returned instead of throwing its answer");
  }

  /**
   * Opens a DevTools protocol session on this isolate (made with `inspector: true`). Responses and
   * events reach `onMessage` on this thread, so it must stay free while the isolate is paused:
   * entries then run with `call`, not `callSync`.
   *
   * The session is opened inside a synchronous call (ConnectHook), so while a call runs on the
   * thread pool it opens when that call ends; messages sent meanwhile are kept and sent then, in order.
   */
  connectInspector(onMessage: (message: string) => void): InspectorConnection {
    if (!this.#inspected) throw new UnsafeIsolateOperationError("this isolate was not made for a debugger");
    if (this.isDisposed) throw new UnsafeIsolateOperationError("the isolate is disposed");
    let session: IvmModule.InspectorSession | undefined;
    let closed = false;
    const queued: string[] = [];
    const close = () => {
      closed = true;
      if (!session || !this.#sessions.delete(session)) return;
      try {
        session.dispose();
      } catch {
        /* the isolate went first */
      }
    };
    const send = (message: string) => {
      if (!session || !this.#sessions.has(session)) return;
      try {
        session.dispatchProtocolMessage(message);
      } catch {
        close();
      }
    };
    const open = () => {
      if (closed || this.isDisposed) return;
      session = this.#createSession();
      if (!session) {
        // The isolate went meanwhile: nothing to keep messages for.
        closed = true;
        queued.length = 0;
        return;
      }
      this.#sessions.add(session);
      session.onResponse = (_id, message) => onMessage(message);
      session.onNotification = onMessage;
      for (const message of queued.splice(0)) send(message);
    };
    if (this.#enteredAsync > 0) this.#connectQueue.push(open);
    else open();
    return {
      send: (message) => {
        if (session) send(message);
        else if (!closed) queued.push(message);
      },
      close,
    };
  }

  /** isolated-vm's `createInspectorSession`, on this thread while it holds the isolate; undefined if the isolate is gone. */
  #createSession(): IvmModule.InspectorSession | undefined {
    const hook = this.#connectHook!;
    let session: IvmModule.InspectorSession | undefined;
    hook.pending = () => {
      session = this.#isolate.createInspectorSession();
    };
    try {
      // Throws its answer, like the shim's entries: isolated-vm then runs no task epilogue.
      hook.fn.applySync(undefined, [], { timeout: 5_000 });
    } catch (thrown) {
      if (thrown !== CONNECTED) {
        session?.dispose();
        return undefined;
      }
    } finally {
      hook.pending = undefined;
    }
    return session;
  }

  #assertNoPluginCodeRan(operation: string): void {
    if (this.#pluginCodeRan) {
      throw new UnsafeIsolateOperationError(`${operation} on an isolate where plug-in code has run would let isolated-vm copy a pending rejection out untimed`);
    }
  }

  compile(source: string, filename: string, cachedData: Uint8Array | undefined): CompiledScript {
    this.#assertNoPluginCodeRan("compiling a script");
    const ivm = loadIsolatedVm();
    const script: ScriptWithCache = this.#isolate.compileScriptSync(source, {
      filename,
      ...(cachedData ? { cachedData: new ivm.ExternalCopy(toArrayBuffer(cachedData)) } : { produceCachedData: true }),
    });
    const context = this.#context;
    return {
      cachedDataRejected: script.cachedDataRejected === true,
      produceCachedData: () => (script.cachedData ? new Uint8Array(script.cachedData.copy()) : undefined),
      runForFunction: (timeoutMs) => {
        this.#assertNoPluginCodeRan("running a script");
        const ref = script.runSync(context, { reference: true, timeout: Math.max(1, Math.ceil(timeoutMs)) }) as IvmModule.Reference<unknown>;
        script.release();
        return ref.derefInto({ release: true }) as unknown as IsolateValueHandle;
      },
    };
  }

  /** CPU time this isolate has used, ms. Keeps the last reading once the isolate is disposed. */
  cpuTimeMs(): number {
    if (!this.#disposed && !this.#isolate.isDisposed) {
      try {
        this.#lastCpuNs = this.#isolate.cpuTime;
      } catch {
        /* disposed meanwhile: keep the last reading */
      }
    }
    return Number(this.#lastCpuNs) / 1e6;
  }

  /**
   * The isolate's heap, read only while an entry call is running (from a bridge callback): there
   * isolated-vm reads it without a task epilogue. Undefined anywhere else.
   */
  heapUsage(): HeapUsage | undefined {
    if (this.isDisposed || this.#entered === 0) return undefined;
    try {
      const stats = this.#isolate.getHeapStatisticsSync();
      return { usedBytes: stats.used_heap_size, externalBytes: stats.externally_allocated_size };
    } catch {
      return undefined;
    }
  }

  get isDisposed(): boolean {
    return this.#disposed || this.#isolate.isDisposed;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.cpuTimeMs();
    this.#disposed = true;
    // isolated-vm can crash disposing an isolate with a session open (laverdet/isolated-vm#497).
    for (const session of this.#sessions) {
      try {
        session.dispose();
      } catch {
        /* already gone */
      }
    }
    this.#sessions.clear();
    try {
      if (!this.#isolate.isDisposed) this.#isolate.dispose();
    } catch {
      /* already disposed by V8 (memory limit): nothing left to free */
    }
  }
}

/** Calls a shim entry: its answer arrives as the string it throws; anything else thrown is the isolate's own error. */
function callEntry(fn: IvmModule.Reference<(...a: unknown[]) => unknown>, args: Array<Primitive | IsolateValueHandle>, timeoutMs: number): string {
  try {
    fn.applySync(undefined, args as never[], { timeout: Math.max(1, Math.ceil(timeoutMs)) });
  } catch (thrown) {
    if (typeof thrown === "string") return thrown;
    throw thrown;
  }
  throw new UnsafeIsolateOperationError("a shim entry returned instead of throwing its answer");
}

type ScriptWithCache = IvmModule.Script & { cachedData?: IvmModule.ExternalCopy<ArrayBuffer>; cachedDataRejected?: boolean };

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** What isolated-vm's error messages mean, so the rest of the runtime never matches on its strings. */
export function classifyIsolateError(error: unknown): "timeout" | "memory" | "disposed" | "other" {
  const message = error instanceof Error ? error.message : String(error);
  if (message.includes("Script execution timed out")) return "timeout";
  if (message.includes("memory limit") || message.includes("Array buffer allocation failed")) return "memory";
  if (message.includes("Isolate was disposed") || message.includes("Isolate is disposed") || message.includes("Promise was abandoned")) return "disposed";
  return "other";
}
