/**
 * Entry point of a sandbox worker process, forked by the supervisor with `--no-node-snapshot`.
 * A catastrophic V8 error (one huge allocation past the heap limit) cannot be survived in-process:
 * V8 prints heap statistics on stderr and aborts; the supervisor fails the worker's executions and
 * starts another.
 */
import { writeSync } from "node:fs";
import type { FromWorker, ToWorker } from "../protocol.js";
import { InspectorListenError } from "../inspect.js";
import { readShimSource, SandboxWorker } from "./worker.js";

function send(message: FromWorker): void {
  if (process.connected) process.send!(message);
}

const config = JSON.parse(process.env.PLUGBOX_WORKER_CONFIG ?? "{}") as {
  prewarmIsolates?: number;
  defaultMemoryMb?: number;
  maxReusedContexts?: number;
  unsafeKeepWebAssembly?: boolean;
  inspector?: { port: number; wait: boolean };
  pluginTime?: "system" | "clock";
};

/**
 * TEST ONLY (runtime option unsafeKeepWebAssembly): wraps the shim so that WebAssembly, which it
 * deletes, is put back in the plug-in's realm afterwards. It exists so that the tests of
 * `plugbox audit` can weaken the sandbox on purpose and see the audit fail.
 */
function keepingWebAssembly(shim: string): string {
  return `Object.defineProperty(globalThis, "__pb_kept", { configurable: true, value: WebAssembly });${shim}
;Object.defineProperty(globalThis, "WebAssembly", { configurable: true, writable: true, value: globalThis.__pb_kept }); delete globalThis.__pb_kept;`;
}

/**
 * pluginTime "clock": tells the shim, before it runs, to give plug-ins a Date that shows the time
 * each entry hands it. The shim reads the flag and deletes it before any plug-in code runs.
 */
function onClockTime(shim: string): string {
  return `Object.defineProperty(globalThis, "__pb_clock_time", { configurable: true, value: true });${shim}`;
}

const shimSource = config.unsafeKeepWebAssembly === true ? keepingWebAssembly(readShimSource()) : readShimSource();
const worker = new SandboxWorker({
  send,
  shimSource: config.pluginTime === "clock" ? onClockTime(shimSource) : shimSource,
  prewarmIsolates: config.prewarmIsolates ?? 2,
  defaultMemoryMb: config.defaultMemoryMb ?? 128,
  maxReusedContexts: config.maxReusedContexts ?? 64,
  ...(config.inspector ? { inspector: config.inspector } : {}),
});

process.on("message", (message: ToWorker) => worker.handle(message));
process.on("disconnect", () => {
  worker.close();
  process.exit(0);
});

worker.start().then(
  (endpoint) => {
    if (endpoint) send({ type: "inspector", ...endpoint });
    send({ type: "ready", pid: process.pid });
  },
  (error: unknown) => {
    if (error instanceof InspectorListenError) {
      send({ type: "inspectorFailed", message: error.message });
      writeSync(2, `plugbox-worker: could not start: ${error.message}\n`);
      process.exit(70);
    }
    writeSync(2, `plugbox-worker: could not start: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(70);
  },
);
