/**
 * The runtime's debug mode (`inspector` option): its sandbox worker opens a DevTools endpoint on
 * 127.0.0.1 and a debugger can attach to the plug-in's isolate. Only code that creates the runtime
 * can turn it on (the CLI's --inspect and --inspect-brk); no manifest, limit or plug-in reaches it.
 */
import { OptionsError } from "./errors.js";

/** Where a debugger connects, as the sandbox worker reports it. */
export interface InspectorEndpoint {
  /** ws://127.0.0.1:PORT/ID */
  url: string;
  port: number;
  /** devtools://… URL that opens Chrome DevTools on the endpoint. */
  devtoolsFrontendUrl: string;
}

export interface InspectorOptions {
  /** TCP port on 127.0.0.1; 0 picks a free one. @default 9229 */
  port?: number;
  /** Each execution waits for a debugger to attach and run it (Runtime.runIfWaitingForDebugger), as `node --inspect-brk` does. @default false */
  wait?: boolean;
  /** Told where the endpoint listens, once the worker listens (again if a worker is replaced). */
  onListening?: (endpoint: InspectorEndpoint) => void;
}

export interface ResolvedInspectorOptions {
  port: number;
  wait: boolean;
  onListening: ((endpoint: InspectorEndpoint) => void) | undefined;
}

/** The debugger endpoint could not listen (its port is taken): starting the worker again would not help. */
export class InspectorListenError extends Error {}

/** The port Chrome's chrome://inspect and VS Code look at by default. */
export const DEFAULT_INSPECTOR_PORT = 9229;

const KNOWN = ["port", "wait", "onListening"];

/** Checks the `inspector` option; throws OPTIONS_INVALID naming the key and the fix. */
export function resolveInspectorOptions(input: InspectorOptions | undefined): ResolvedInspectorOptions | undefined {
  if (input === undefined) return undefined;
  if (typeof input !== "object" || input === null) throw new OptionsError("OPTIONS_INVALID", "options.inspector must be an object such as { port: 9229, wait: true }");
  for (const key of Object.keys(input)) {
    if (!KNOWN.includes(key)) throw new OptionsError("OPTIONS_INVALID", `options.inspector.${key} is not an option; known options are ${KNOWN.join(", ")}`);
  }
  const port = input.port ?? DEFAULT_INSPECTOR_PORT;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new OptionsError("OPTIONS_INVALID", `options.inspector.port must be an integer from 0 to 65535 (0 picks a free port); got ${JSON.stringify(port) ?? String(port)}`);
  }
  if (input.wait !== undefined && typeof input.wait !== "boolean") throw new OptionsError("OPTIONS_INVALID", "options.inspector.wait must be true or false");
  if (input.onListening !== undefined && typeof input.onListening !== "function") throw new OptionsError("OPTIONS_INVALID", "options.inspector.onListening must be a function");
  return { port, wait: input.wait === true, onListening: input.onListening };
}
