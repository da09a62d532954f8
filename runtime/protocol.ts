/**
 * The typed protocol between the supervisor (host process) and a sandbox worker process. Messages
 * go over Node's IPC channel as JSON (measured faster than the "advanced" serialization for these
 * small messages: about 220 µs against 340 µs per service-call round trip), so bytes travel base64.
 * Values of the plug-in world travel as plugbox JSON strings (sdk/codec), so the supervisor can
 * check their length before it parses them.
 */
import type { Isolation, SandboxLimits } from "./options.js";
import type { WebPolicyInput } from "./web/policy.js";

/**
 * The outbound web client's configuration for one execution. When set, the worker serves the
 * plug-in's web requests itself, under this policy, rather than sending them to the host: a
 * request then costs no process hop.
 */
export interface WebConfig {
  policy: WebPolicyInput;
  /** The bundle's allow-list, which narrows the policy; null for none. */
  allowedHosts: string[] | null;
}

/** A web request the worker served, as the host records it. */
export interface WebCallRecord {
  url: string;
  method: string;
  ok: boolean;
  status?: number;
  error?: { code: string; message: string };
}

/** The services a plug-in can reach, and the operations of each. Anything else is refused. */
export const SERVICE_OPERATIONS = {
  organization: ["execute"],
  notification: ["execute"],
  web: ["fetch"],
} as const;

export type ServiceName = keyof typeof SERVICE_OPERATIONS;

export function isServiceOperation(service: string, op: string): service is ServiceName {
  return (
    Object.prototype.hasOwnProperty.call(SERVICE_OPERATIONS, service) &&
    (SERVICE_OPERATIONS[service as ServiceName] as readonly string[]).includes(op)
  );
}

export interface BundleRef {
  /** sha256 of the source: the key under which workers keep the compiled bundle. */
  id: string;
  /** The name stack traces show for the bundle (its file name, never a host path). */
  filename: string;
  /** Sent the first time a worker sees the bundle. */
  source?: string;
  /** V8 code cache made by a plugbox worker from this very source, base64; never taken from outside. */
  cachedData?: string;
  /** Debug mode only: the bundle file's URL (file:///…/bundle.js), so a debugger resolves its source map's paths. */
  url?: string;
}

export interface ExecuteMessage {
  type: "execute";
  execId: number;
  bundle: BundleRef;
  typeName: string;
  isolation: Isolation;
  /** `reuse`: executions with the same key share one plug-in instance (one per step). */
  instanceKey: string;
  unsecureConfig: string | null;
  secureConfig: string | null;
  /** The execution context, plugbox JSON. */
  context: string;
  limits: SandboxLimits;
  web?: WebConfig;
  /** pluginTime "clock": the clock's time (epoch ms), which the plug-in's Date shows until the next message that enters it. */
  now?: number;
}

export interface ReplyMessage {
  type: "reply";
  execId: number;
  callId: number;
  ok: boolean;
  /** ok: the result, plugbox JSON; not ok: `{"code","message"}`. */
  payload: string;
  /** pluginTime "clock": the clock's time (epoch ms). */
  now?: number;
}

/** pluginTime "clock": a timer of the plug-in, set on the runtime's clock, fell due. */
export interface FireMessage {
  type: "fire";
  execId: number;
  timerId: number;
  /** The clock's time (epoch ms). */
  now: number;
}

export interface AbortMessage {
  type: "abort";
  execId: number;
  reason: string;
}

export type ToWorker = ExecuteMessage | ReplyMessage | FireMessage | AbortMessage;

export interface CallMessage {
  type: "call";
  execId: number;
  callId: number;
  service: ServiceName;
  op: string;
  /** The arguments, plugbox JSON: `{ "userId"?: …, "args": [...] }`. */
  payload: string;
}

/** pluginTime "clock": the plug-in set (or cleared) a timer, which the supervisor keeps on the runtime's clock. */
export interface TimerMessage {
  type: "timer";
  execId: number;
  timerId: number;
  op: "set" | "clear";
  /** For "set": when it falls due, ms from the clock's time the plug-in last saw. */
  delayMs: number;
}

/**
 * pluginTime "clock": the worker has run the plug-in code of the first `seen` messages (execute,
 * reply, fire) it got for this execution, and has sent the timers and calls that code made. Until
 * then the supervisor holds the clock (`Clock.hold`), so a ManualClock fires no further timer before
 * the plug-in's follow-ups are set.
 */
export interface RanMessage {
  type: "ran";
  execId: number;
  seen: number;
}

export interface ExecutionStats {
  wallMs: number;
  cpuMs: number;
  /**
   * The isolate's heap when the execution ended; null when it could not be read: V8 disposes of an
   * isolate that reaches its memory limit (and a worker that died takes its isolate with it).
   */
  heapUsedBytes: number | null;
  hostCalls: number;
  isolateReused: boolean;
}

export interface WireError {
  code: string;
  message: string;
  status?: number;
  errorCode?: number;
  stack?: string;
  /** The code of a service error the plug-in let escape (e.g. WEB_LOOPBACK). */
  serviceCode?: string;
  details?: Record<string, unknown>;
}

export type Outcome =
  | { ok: true; result: string; trace: string; stats: ExecutionStats; violations: string[]; webCalls: WebCallRecord[] }
  | { ok: false; error: WireError; trace: string; stats: ExecutionStats; violations: string[]; webCalls: WebCallRecord[] };

export interface DoneMessage {
  type: "done";
  execId: number;
  outcome: Outcome;
  /** Made on the first compile of a bundle, for the supervisor to hand to other workers. */
  cachedData?: { bundleId: string; data: string };
  rssBytes: number;
}

/** Debug mode: the worker's DevTools endpoint, sent before it is ready. */
export interface InspectorMessage {
  type: "inspector";
  url: string;
  port: number;
  devtoolsFrontendUrl: string;
}

export type FromWorker =
  | { type: "ready"; pid: number }
  | InspectorMessage
  /** Debug mode: the DevTools endpoint could not listen, so the worker cannot start (sent before it exits). */
  | { type: "inspectorFailed"; message: string }
  | CallMessage
  | TimerMessage
  | RanMessage
  | DoneMessage;

/** What the plug-in's execute() leaves behind: the writable parts of its context. */
export interface ExecutionChanges {
  inputParameters: Record<string, unknown>;
  outputParameters: Record<string, unknown>;
  sharedVariables: Record<string, unknown>;
}
