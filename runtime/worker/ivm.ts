/**
 * The only module that imports isolated-vm. Everything else in the runtime talks to V8 through
 * this facade, so moving to isolated-vm 6 (Node 22) is a change here and a version bump.
 *
 * Only strings, numbers and booleans are passed through `callSync`; no Reference, ExternalCopy or
 * Callback object ever becomes reachable from code inside the isolate.
 */
import { createRequire } from "node:module";
import type IvmModule from "isolated-vm";

const require = createRequire(import.meta.url);
const ivm = require("isolated-vm") as typeof IvmModule;

export const ISOLATED_VM_VERSION: string = (require("isolated-vm/package.json") as { version: string }).version;

export type Primitive = string | number | boolean | null | undefined;
export type BridgeFunction = (...args: Primitive[]) => Primitive | void;

/** A function inside the isolate that the worker may call synchronously, with a timeout. */
export interface IsolateFunction {
  callSync(args: Array<Primitive | IsolateValueHandle>, timeoutMs: number): Primitive;
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

/** One V8 isolate with one context. */
export class SandboxIsolate {
  readonly #isolate: IvmModule.Isolate;
  readonly #context: IvmModule.Context;
  #disposed = false;
  #lastCpuNs = 0n;

  private constructor(isolate: IvmModule.Isolate, context: IvmModule.Context) {
    this.#isolate = isolate;
    this.#context = context;
  }

  /**
   * Creates an isolate and its context, installs the bridge callbacks as globals and evaluates
   * the shim, which captures and deletes them. Returns the shim's API functions.
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
      const sandbox = new SandboxIsolate(isolate, context);
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
      const api: Record<string, IsolateFunction> = {};
      for (const name of options.api) {
        const fn = apiRef.getSync(name, { reference: true }) as IvmModule.Reference<(...a: unknown[]) => unknown>;
        api[name] = {
          callSync: (args, timeoutMs) => fn.applySync(undefined, args as never[], { timeout: Math.max(1, Math.ceil(timeoutMs)) }) as Primitive,
        };
      }
      apiRef.release();
      return { isolate: sandbox, api, ...(shimCachedData ? { shimCachedData } : {}) };
    } catch (error) {
      if (!isolate.isDisposed) isolate.dispose();
      throw error;
    }
  }

  compile(source: string, filename: string, cachedData: Uint8Array | undefined): CompiledScript {
    const script: ScriptWithCache = this.#isolate.compileScriptSync(source, {
      filename,
      ...(cachedData ? { cachedData: new ivm.ExternalCopy(toArrayBuffer(cachedData)) } : { produceCachedData: true }),
    });
    const context = this.#context;
    return {
      cachedDataRejected: script.cachedDataRejected === true,
      produceCachedData: () => (script.cachedData ? new Uint8Array(script.cachedData.copy()) : undefined),
      runForFunction: (timeoutMs) => {
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

  heapUsage(): HeapUsage | undefined {
    if (this.isDisposed) return undefined;
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
