/**
 * The only module that imports isolated-vm. Everything else in the runtime talks to V8 through
 * this facade, so moving to another isolated-vm major is a change here and a version bump.
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
import type IvmModule from "isolated-vm";

const require = createRequire(import.meta.url);
const ivm = require("isolated-vm") as typeof IvmModule;

export const ISOLATED_VM_VERSION: string = (require("isolated-vm/package.json") as { version: string }).version;

export type Primitive = string | number | boolean | null | undefined;
export type BridgeFunction = (...args: Primitive[]) => Primitive | void;

/** A shim entry function inside the isolate, called synchronously with a timeout; it answers with a string. */
export interface IsolateFunction {
  callSync(args: Array<Primitive | IsolateValueHandle>, timeoutMs: number): string;
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

/** One V8 isolate with one context. */
export class SandboxIsolate {
  readonly #isolate: IvmModule.Isolate;
  readonly #context: IvmModule.Context;
  readonly defaultRealm: DefaultRealm;
  #disposed = false;
  #lastCpuNs = 0n;
  /** How many entry calls are running (a bridge callback can make a nested one). */
  #entered = 0;
  #pluginCodeRan = false;

  private constructor(isolate: IvmModule.Isolate, context: IvmModule.Context, defaultRealm: DefaultRealm) {
    this.#isolate = isolate;
    this.#context = context;
    this.defaultRealm = defaultRealm;
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
  }): Promise<{ isolate: SandboxIsolate; api: Record<string, IsolateFunction>; shimCachedData?: Uint8Array }> {
    // No onCatastrophicError handler, on purpose: isolated-vm schedules it on the main thread and
    // parks the failing thread, but our isolates run on the main thread (applySync), so the handler
    // could never run. Without one, V8's out-of-memory path prints heap statistics and aborts the
    // process at once, which is what a supervised worker wants.
    const isolate = new ivm.Isolate({ memoryLimit: options.memoryMb });
    try {
      const context = await isolate.createContext();
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
      const sandbox = new SandboxIsolate(isolate, context, defaultRealm);
      const api: Record<string, IsolateFunction> = {};
      for (const name of options.api) {
        const fn = entry(name);
        api[name] = { callSync: (args, timeoutMs) => sandbox.#enter(fn, args, timeoutMs) };
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

  #assertNoPluginCodeRan(operation: string): void {
    if (this.#pluginCodeRan) {
      throw new UnsafeIsolateOperationError(`${operation} on an isolate where plug-in code has run would let isolated-vm copy a pending rejection out untimed`);
    }
  }

  compile(source: string, filename: string, cachedData: Uint8Array | undefined): CompiledScript {
    this.#assertNoPluginCodeRan("compiling a script");
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
