/**
 * The trusted shim: evaluated in every sandbox context before any plug-in code. It captures the
 * worker's bridge callbacks (`__pb_*`: synchronous, taking and returning only primitives), deletes
 * them from the global object, hardens the global scope, builds the services the SDK promises and
 * hands the worker its entry functions (`__pb_api`). scripts/bundle-shim.mjs bundles it with the
 * parts of the SDK it imports into one script.
 *
 * No isolated-vm object (Reference, ExternalCopy, Callback) is ever reachable from plug-in code:
 * the callbacks live only in this module's closure, and what they return is a primitive.
 *
 * Three rules keep plug-in code inside the worker's timed calls (runtime/worker/ivm.ts says why):
 * - every entry function catches whatever the plug-in throws and answers by *throwing a string it
 *   built*, so isolated-vm never copies a plug-in value out of the isolate;
 * - errors are described from own data properties read through captured intrinsics: no plug-in
 *   getter runs on the way out, and a Proxy's traps run only inside the timed call;
 * - the shim decides nothing about codes or permissions: it reports what happened (which call a
 *   service error came from, whether the execution is still running) and the worker decides.
 */
import { decode, encode } from "../../sdk/codec.js";
import { EntityReference } from "../../sdk/model.js";
import { methodRequests, methodResult, type OrganizationMethod } from "../../sdk/requests.js";

declare const globalThis: Record<string, unknown>;

type HostCall = (token: number, callId: number, service: string, op: string, json: string) => string;
type HostTrace = (token: number, line: string) => void;
type HostDone = (token: number, ok: boolean, json: string) => void;
type HostEnding = (token: number) => void;

// Capture the bridge and the intrinsics the bridge relies on, before plug-in code can replace them.
const hostCall = globalThis.__pb_call as HostCall;
const hostTrace = globalThis.__pb_trace as HostTrace;
const hostDone = globalThis.__pb_done as HostDone;
const hostEnding = globalThis.__pb_ending as HostEnding;
delete globalThis.__pb_call;
delete globalThis.__pb_trace;
delete globalThis.__pb_done;
delete globalThis.__pb_ending;
/** The runtime's pluginTime is "clock": each entry brings the clock's time, which the plug-in's Date shows. */
const onClockTime = globalThis.__pb_clock_time === true;
delete globalThis.__pb_clock_time;

const PromiseCtor = Promise;
const promiseThen = Promise.prototype.then;
const promiseResolve = Promise.resolve.bind(Promise);
const promiseReject = Promise.reject.bind(Promise);
const reflectApply = Reflect.apply;
const reflectConstruct = Reflect.construct;
const getOwnPropertyDescriptor = Reflect.getOwnPropertyDescriptor;
const getPrototypeOf = Reflect.getPrototypeOf;
const jsonParse = JSON.parse;
const jsonStringify = JSON.stringify;
const StringCtor = String;
const FunctionCtor = Function;
const ErrorCtor = Error;
const TypeErrorCtor = TypeError;
const ProxyCtor = Proxy;
const WeakMapCtor = WeakMap;
const weakMapGet = WeakMap.prototype.get;
const weakMapSet = WeakMap.prototype.set;
const objectCreate = Object.create;
const objectFreeze = Object.freeze;
const objectKeys = Object.keys;
const defineProperty = Object.defineProperty;
const isArray = Array.isArray;
const arrayJoin = Array.prototype.join;
const arraySlice = Array.prototype.slice;
const stringReplace = String.prototype.replace;
const stringSlice = String.prototype.slice;
const stringCharCodeAt = String.prototype.charCodeAt;
const fromCharCode = String.fromCharCode;
const Uint8ArrayCtor = Uint8Array;
const ArrayBufferCtor = ArrayBuffer;
const isView = ArrayBuffer.isView;
const DateCtor = Date;
const dateToISOString = Date.prototype.toISOString;
const PLUGIN_ERROR_TAG = Symbol.for("plugbox.InvalidPluginExecutionError");
/** V8's own formatter of `error.stack`, where this V8 makes it an accessor (newer V8s); undefined where it is a data property. */
const intrinsicStackGetter = (() => {
  // A probe with no frames: formatting a frame of this script would make V8 re-parse it for
  // source positions (measured: 2 ms more per isolate).
  const V8Error = ErrorCtor as ErrorConstructor & { stackTraceLimit: number };
  const limit = V8Error.stackTraceLimit;
  V8Error.stackTraceLimit = 0;
  const probe = new ErrorCtor();
  V8Error.stackTraceLimit = limit;
  return (getOwnPropertyDescriptor(probe, "stack") ?? getOwnPropertyDescriptor(ErrorCtor.prototype, "stack"))?.get;
})();

/**
 * Adds an element as an own property: `push` or an index assignment would call a setter a plug-in
 * put on Array.prototype or Object.prototype for that index.
 */
function append<T>(array: T[], value: T): void {
  defineProperty(array, array.length, { __proto__: null, value, writable: true, enumerable: true, configurable: true } as PropertyDescriptor);
}

function then<T, R>(promise: Promise<T>, onOk: (value: T) => R, onError: (error: unknown) => unknown): Promise<R> {
  return reflectApply(promiseThen, promise, [onOk, onError]) as Promise<R>;
}

// Hardening. WebAssembly memory escapes the isolate's heap limit; SharedArrayBuffer and Atomics
// give plug-ins a high-resolution timer and nothing a plug-in needs; FinalizationRegistry's
// callbacks run when the garbage collector decides, outside any call the worker times.
const REMOVED_GLOBALS = ["WebAssembly", "SharedArrayBuffer", "Atomics", "FinalizationRegistry"] as const;
for (let i = 0; i < REMOVED_GLOBALS.length; i++) delete globalThis[REMOVED_GLOBALS[i]!];

/** An error the host answered with; its `code` says which rule or service failed. */
class PlugboxServiceError extends ErrorCtor {
  code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "PlugboxServiceError";
    this.code = code;
  }
}

/**
 * The call each service error the shim made answers, by identity: a plug-in can change an error's
 * `code` or build a look-alike, but only the shim's own errors are in here, and the worker keeps
 * its own record of what it answered each call.
 */
const serviceErrorCalls = new WeakMapCtor<object, number>();

function serviceError(callId: number | undefined, json: string): PlugboxServiceError {
  let parsed: { code?: unknown; message?: unknown } = {};
  try {
    parsed = jsonParse(json) as typeof parsed;
  } catch {
    parsed = { code: "SANDBOX_INTERNAL", message: "the host sent an unreadable error" };
  }
  const error = new PlugboxServiceError(StringCtor(parsed.code), StringCtor(parsed.message));
  if (callId !== undefined) reflectApply(weakMapSet, serviceErrorCalls, [error, callId]);
  return error;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  decodeResult: (json: string) => unknown;
}

/** Running: execute() has not settled; ending: its outcome is being described; ended: reported. */
const RUNNING = 0;
const ENDING = 1;
const ENDED = 2;
type Phase = typeof RUNNING | typeof ENDING | typeof ENDED;

interface ExecutionState {
  token: number;
  phase: Phase;
  nextCallId: number;
  pending: Record<number, Pending>;
  timers: Record<number, { fn: unknown; args: unknown[]; repeat: number }>;
}

let moduleExports: Record<string, unknown> | undefined;
let pluginInstance: { execute: (sp: unknown) => unknown } | undefined;
let current: ExecutionState | undefined;
/** Who calls when no execution runs (module code, a constructor): the worker refuses every such call. */
const NO_EXECUTION: ExecutionState = { token: 0, phase: ENDED, nextCallId: 1, pending: objectCreate(null), timers: objectCreate(null) };

/** True while this execution may use its services: it is the one running, and execute() has not settled. */
function mayCall(state: ExecutionState): boolean {
  return state.phase === RUNNING && current === state;
}

function callHost(state: ExecutionState, service: string, op: string, payload: unknown, decodeResult: (json: string) => unknown = decode): Promise<unknown> {
  const callId = state.nextCallId++;
  // A call at any other moment still goes to the worker, which refuses it and records the attempt.
  let json = "";
  if (mayCall(state)) {
    try {
      json = encode(payload, op);
    } catch (error) {
      return promiseReject(new TypeErrorCtor(`the arguments of ${service}.${op} cannot be sent: ${(error as Error).message}`));
    }
  }
  const refusal = hostCall(state.token, callId, service, op, json);
  if (refusal !== "") return promiseReject(serviceError(callId, refusal));
  return new PromiseCtor((resolve, reject) => {
    state.pending[callId] = { resolve, reject, decodeResult };
  });
}

// Trace formatting: Dataverse's {0} placeholders, and printf-style %s for authors used to Node.

function display(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === undefined) return "undefined";
  if (typeof value === "object" && value !== null) {
    try {
      if (value instanceof DateCtor) return reflectApply(dateToISOString, value, []) as string;
    } catch {
      /* fall through */
    }
    try {
      return jsonStringify(jsonParse(encode(value)));
    } catch {
      return "[unprintable]";
    }
  }
  try {
    return StringCtor(value);
  } catch {
    return "[unprintable]";
  }
}

export function formatTrace(format: unknown, args: unknown[]): string {
  const text = display(format);
  if (args.length === 0) return text;
  let used = false;
  let out = reflectApply(stringReplace, text, [
    /\{(\d+)\}/g,
    (whole: string, index: string) => {
      used = true;
      const i = +index;
      return i < args.length ? display(args[i]) : whole;
    },
  ]) as string;
  if (used) return out;
  let next = 0;
  out = reflectApply(stringReplace, text, [
    /%([sdifjoO%])/g,
    (whole: string, kind: string) => {
      if (kind === "%") return "%";
      if (next >= args.length) return whole;
      used = true;
      const arg = args[next++];
      if (kind === "d" || kind === "i") return StringCtor(kind === "i" ? Math.trunc(+(arg as number)) : +(arg as number));
      if (kind === "f") return StringCtor(+(arg as number));
      return display(arg);
    },
  ]) as string;
  const rest = reflectApply(arraySlice, args, [next]) as unknown[];
  if (!used || rest.length > 0) {
    const parts: string[] = [out];
    for (let i = 0; i < rest.length; i++) append(parts, display(rest[i]));
    out = reflectApply(arrayJoin, parts, [" "]) as string;
  }
  return out;
}

function traceLine(line: string): void {
  const state = current;
  if (state !== undefined && mayCall(state)) hostTrace(state.token, line);
}

// Byte helpers: a bare V8 isolate has no TextEncoder, TextDecoder, atob or btoa.

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function utf8Encode(text: string): Uint8Array {
  // A typed array's elements are written without consulting any prototype.
  const out = new Uint8ArrayCtor(text.length * 3);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    let code = reflectApply(stringCharCodeAt, text, [i]) as number;
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const low = reflectApply(stringCharCodeAt, text, [i + 1]) as number;
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (code < 0x80) out[n++] = code;
    else if (code < 0x800) {
      out[n++] = 0xc0 | (code >> 6);
      out[n++] = 0x80 | (code & 63);
    } else if (code < 0x10000) {
      out[n++] = 0xe0 | (code >> 12);
      out[n++] = 0x80 | ((code >> 6) & 63);
      out[n++] = 0x80 | (code & 63);
    } else {
      out[n++] = 0xf0 | (code >> 18);
      out[n++] = 0x80 | ((code >> 12) & 63);
      out[n++] = 0x80 | ((code >> 6) & 63);
      out[n++] = 0x80 | (code & 63);
    }
  }
  return new Uint8ArrayCtor(out.buffer, 0, n);
}

function utf8Decode(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i++]!;
    let code = 0xfffd;
    if (b < 0x80) code = b;
    else if (b >= 0xc0 && b < 0xe0 && i < bytes.length) code = ((b & 31) << 6) | (bytes[i++]! & 63);
    else if (b >= 0xe0 && b < 0xf0 && i + 1 < bytes.length) code = ((b & 15) << 12) | ((bytes[i++]! & 63) << 6) | (bytes[i++]! & 63);
    else if (b >= 0xf0 && i + 2 < bytes.length) code = ((b & 7) << 18) | ((bytes[i++]! & 63) << 12) | ((bytes[i++]! & 63) << 6) | (bytes[i++]! & 63);
    if (code > 0xffff) {
      code -= 0x10000;
      out += fromCharCode(0xd800 + (code >> 10), 0xdc00 + (code & 1023));
    } else {
      out += fromCharCode(code);
    }
  }
  return out;
}

function base64Encode(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += BASE64[(n >> 18) & 63]! + BASE64[(n >> 12) & 63]!;
    out += i + 1 < bytes.length ? BASE64[(n >> 6) & 63]! : "=";
    out += i + 2 < bytes.length ? BASE64[n & 63]! : "=";
  }
  return out;
}

function base64Decode(text: string): Uint8Array {
  const clean = reflectApply(stringReplace, text, [/[^A-Za-z0-9+/]/g, ""]) as string;
  const out = new Uint8ArrayCtor(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let j = 0;
  for (let i = 0; i < clean.length; i++) {
    value = (value << 6) | BASE64.indexOf(clean[i]!);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (value >> bits) & 255;
    }
  }
  return new Uint8ArrayCtor(out.buffer, 0, j);
}

// The services.

/**
 * IOrganizationService as Dataverse's proxy builds it: each method sends the request it stands for
 * (sdk/requests.ts) through the one `execute`, and its return value is read from the response as
 * the answer is decoded (no promise reaction a plug-in's Promise[Symbol.species] could replace).
 */
function organizationService(state: ExecutionState, userId: string | null) {
  const send = (request: unknown, decodeResult?: (json: string) => unknown) => callHost(state, "organization", "execute", { userId, args: [request] }, decodeResult);
  const method =
    <A extends unknown[]>(name: OrganizationMethod, build: (...args: A) => unknown) =>
    (...args: A) =>
      send(reflectApply(build, undefined, args), (json) => methodResult(name, decode(json)));
  return objectFreeze({
    create: method("create", methodRequests.create),
    retrieve: method("retrieve", methodRequests.retrieve),
    update: method("update", methodRequests.update),
    delete: method("delete", methodRequests.delete),
    associate: method("associate", methodRequests.associate),
    disassociate: method("disassociate", methodRequests.disassociate),
    retrieveMultiple: method("retrieveMultiple", methodRequests.retrieveMultiple),
    execute: (request: unknown) => send(request),
  });
}

function headerList(headers: unknown): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (headers === undefined || headers === null) return out;
  if (isArray(headers)) {
    for (let i = 0; i < headers.length; i++) {
      const pair = headers[i] as unknown[];
      append(out, [StringCtor(pair[0]), StringCtor(pair[1])]);
    }
    return out;
  }
  if (typeof headers === "object") {
    const entries = (headers as { entries?: unknown }).entries;
    if (typeof entries === "function") {
      for (const [k, v] of reflectApply(entries, headers, []) as Iterable<[unknown, unknown]>) append(out, [StringCtor(k), StringCtor(v)]);
      return out;
    }
    const keys = objectKeys(headers);
    for (let i = 0; i < keys.length; i++) append(out, [keys[i]!, StringCtor((headers as Record<string, unknown>)[keys[i]!])]);
  }
  return out;
}

function requestBody(body: unknown): { bodyText?: string; bodyBase64?: string } {
  if (body === undefined || body === null) return {};
  if (typeof body === "string") return { bodyText: body };
  if (body instanceof ArrayBufferCtor) return { bodyBase64: base64Encode(new Uint8ArrayCtor(body)) };
  if (isView(body)) {
    const view = body as ArrayBufferView;
    return { bodyBase64: base64Encode(new Uint8ArrayCtor(view.buffer, view.byteOffset, view.byteLength)) };
  }
  throw new TypeErrorCtor("fetch: body must be a string, an ArrayBuffer or a typed array");
}

interface WireResponse {
  status: number;
  statusText: string;
  url: string;
  redirected: boolean;
  headers: Array<[string, string]>;
  bodyBase64: string;
}

function webResponse(wire: WireResponse) {
  const bytes = base64Decode(StringCtor(wire.bodyBase64));
  const lower: Record<string, string> = objectCreate(null);
  for (const [k, v] of wire.headers) {
    const key = StringCtor(k).toLowerCase();
    lower[key] = key in lower ? `${lower[key]}, ${v}` : StringCtor(v);
  }
  let used = false;
  const consume = () => {
    if (used) return promiseReject(new TypeErrorCtor("fetch: the response body was already read"));
    used = true;
    return promiseResolve(bytes);
  };
  return objectFreeze({
    status: wire.status,
    statusText: wire.statusText,
    ok: wire.status >= 200 && wire.status < 300,
    url: wire.url,
    redirected: wire.redirected,
    headers: objectFreeze({
      get: (name: string) => lower[StringCtor(name).toLowerCase()] ?? null,
      has: (name: string) => StringCtor(name).toLowerCase() in lower,
      entries: () => objectKeys(lower).map((k) => [k, lower[k]!] as [string, string]),
    }),
    text: () => then(consume(), (b) => utf8Decode(b as Uint8Array), (e) => promiseReject(e)),
    json: () => then(consume(), (b) => jsonParse(utf8Decode(b as Uint8Array)), (e) => promiseReject(e)),
    arrayBuffer: () =>
      then(consume(), (b) => (b as Uint8Array).buffer.slice((b as Uint8Array).byteOffset, (b as Uint8Array).byteOffset + (b as Uint8Array).byteLength), (e) => promiseReject(e)),
  });
}

function webFetch(url: unknown, init?: unknown): Promise<unknown> {
  const state = current ?? NO_EXECUTION;
  let request: Record<string, unknown>;
  try {
    const options = (init ?? {}) as { method?: unknown; headers?: unknown; body?: unknown };
    request = {
      url: typeof url === "object" && url !== null && "url" in url ? StringCtor((url as { url: unknown }).url) : StringCtor(url),
      method: options.method === undefined ? "GET" : StringCtor(options.method),
      headers: headerList(options.headers),
      ...requestBody(options.body),
    };
  } catch (error) {
    return promiseReject(error);
  }
  return then(
    callHost(state, "web", "fetch", { args: [request] }, (json) => webResponse(jsonParse(json) as WireResponse)),
    (response) => response,
    (error) => {
      // A refusal by the network policy goes into the trace, whether or not the plug-in catches it.
      const code = reflectApply(weakMapGet, serviceErrorCalls, [error]) === undefined ? undefined : readData(error, "code");
      if (typeof code === "string" && reflectApply(stringSlice, code, [0, 4]) === "WEB_" && mayCall(state)) {
        const shown = reflectApply(stringSlice, StringCtor(request.url), [0, 200]) as string;
        hostTrace(state.token, `plugbox: fetch ${shown} failed [${code}]: ${StringCtor(readData(error, "message"))}`);
      }
      return promiseReject(error);
    },
  );
}

function endpointReference(ref: unknown): { logicalName: string; id: string } {
  if (typeof ref === "string") return { logicalName: "serviceendpoint", id: ref };
  const r = (ref ?? {}) as { logicalName?: unknown; id?: unknown };
  return { logicalName: r.logicalName === undefined ? "serviceendpoint" : StringCtor(r.logicalName), id: StringCtor(r.id) };
}

function serviceProvider(state: ExecutionState, context: Record<string, unknown>) {
  const tracing = objectFreeze({
    trace: (format: unknown, ...args: unknown[]) => {
      if (mayCall(state)) hostTrace(state.token, formatTrace(format, args));
    },
  });
  const factory = objectFreeze({
    createOrganizationService: (userId?: unknown) =>
      organizationService(state, userId === undefined || userId === null ? null : StringCtor(userId)),
  });
  const notification = objectFreeze({
    execute: (endpoint: unknown, ctx: unknown) =>
      callHost(state, "notification", "execute", { args: [endpointReference(endpoint), ctx ?? context] }),
  });
  const web = objectFreeze({ fetch: webFetch });
  const services: Record<string, unknown> = objectCreate(null);
  services.IPluginExecutionContext = context;
  services.IExecutionContext = context;
  services.ITracingService = tracing;
  services.IOrganizationServiceFactory = factory;
  services.IServiceEndpointNotificationService = notification;
  services.IWebClient = web;
  return objectFreeze({
    getService(name: unknown) {
      const key = typeof name === "string" ? name : typeof name === "function" ? (name as { name?: string }).name ?? "" : "";
      if (key in services) return services[key];
      throw new TypeErrorCtor(
        `getService: unknown service ${jsonStringify(StringCtor(key || name))}; available: IPluginExecutionContext, ITracingService, IOrganizationServiceFactory, IServiceEndpointNotificationService, IWebClient`,
      );
    },
  });
}

// Describing what a plug-in threw. Only own data properties are read (walking up to a few
// prototypes), through captured intrinsics: a getter is never called, a Proxy's traps run inside
// the timed call, and nothing the plug-in controls decides a code.

const MAX_MESSAGE = 8_192;
const MAX_STACK = 16_384;
const MAX_PROTOTYPES = 8;
const UNREADABLE = "the plug-in threw a value that could not be read";
/** The answer of an entry whose own description failed (a stack overflow or memory exhaustion while describing). */
const UNDESCRIBABLE = '{"kind":"unexpected","message":"the plug-in threw a value that could not be read"}';

function isObjectLike(value: unknown): value is object {
  return (typeof value === "object" && value !== null) || typeof value === "function";
}

/** The value of a data property, own or inherited; undefined for an accessor (never called) or anything unreadable. */
function readData(value: unknown, key: PropertyKey): unknown {
  let holder: unknown = value;
  for (let depth = 0; depth < MAX_PROTOTYPES && isObjectLike(holder); depth++) {
    const descriptor = getOwnPropertyDescriptor(holder, key);
    if (descriptor !== undefined) return "value" in descriptor ? descriptor.value : undefined;
    holder = getPrototypeOf(holder);
  }
  return undefined;
}

/** An error's stack: V8's own (formatted lazily, through Error.prepareStackTrace if the plug-in set one) or a string the plug-in stored. */
function readStack(error: object): string | undefined {
  let holder: unknown = error;
  for (let depth = 0; depth < MAX_PROTOTYPES && isObjectLike(holder); depth++) {
    const descriptor = getOwnPropertyDescriptor(holder, "stack");
    if (descriptor !== undefined) {
      if ("value" in descriptor) return typeof descriptor.value === "string" ? descriptor.value : undefined;
      if (intrinsicStackGetter !== undefined && descriptor.get === intrinsicStackGetter) {
        const stack = reflectApply(intrinsicStackGetter, error, []);
        return typeof stack === "string" ? stack : undefined;
      }
      return undefined;
    }
    holder = getPrototypeOf(holder);
  }
  return undefined;
}

function capped(text: string, max: number): string {
  return text.length <= max ? text : (reflectApply(stringSlice, text, [0, max]) as string);
}

/**
 * What the worker reads of a failure. `kind` says which rule the shim saw broken; the worker maps
 * it to a code. `serviceCallId` names the call whose error escaped; `allocationFailure` asks the
 * worker to check the heap before it calls the failure a memory limit.
 */
interface FailureDescription {
  kind: string;
  message: string;
  name?: string;
  stack?: string;
  status?: number;
  errorCode?: number;
  serviceCallId?: number;
  allocationFailure?: boolean;
}

function describe(kind: string, thrown: unknown): string {
  const failure: FailureDescription = { kind, message: UNREADABLE };
  if (isObjectLike(thrown)) {
    const message = readData(thrown, "message");
    const name = readData(thrown, "name");
    const stack = readStack(thrown);
    const status = readData(thrown, "status");
    const errorCode = readData(thrown, "errorCode");
    // One character past each cap, so the worker knows to mark the cut.
    if (typeof message === "string") failure.message = capped(message, MAX_MESSAGE + 1);
    if (typeof name === "string" && name !== "" && typeof message === "string") failure.name = capped(name, 200);
    if (stack !== undefined) failure.stack = capped(stack, MAX_STACK + 1);
    if (typeof status === "number") failure.status = status;
    if (typeof errorCode === "number") failure.errorCode = errorCode;
    if (kind === "unexpected" && (readData(thrown, PLUGIN_ERROR_TAG) === true || name === "InvalidPluginExecutionError")) failure.kind = "pluginError";
    const callId = reflectApply(weakMapGet, serviceErrorCalls, [thrown]);
    if (typeof callId === "number") failure.serviceCallId = callId;
    failure.allocationFailure = name === "RangeError" && message === "Array buffer allocation failed";
  } else {
    // String() of a primitive (a symbol included) runs no plug-in code.
    failure.message = capped(StringCtor(thrown), MAX_MESSAGE + 1);
  }
  return jsonStringify(failure);
}

function report(kind: string, message: string): string {
  return jsonStringify({ kind, message });
}

/**
 * Wraps an entry's body: whatever happens, the answer leaves as a thrown string (see ivm.ts), and
 * anything the plug-in threw is described here, inside the timed call.
 */
function entry<A extends unknown[]>(body: (...args: A) => string, kindOfThrow: string): (...args: A) => never {
  return function (this: unknown) {
    let answer: string;
    try {
      answer = reflectApply(body, undefined, arguments as unknown as A);
    } catch (thrown) {
      try {
        answer = describe(kindOfThrow, thrown);
      } catch {
        answer = UNDESCRIBABLE;
      }
    }
    throw answer;
  } as (...args: A) => never;
}

// Execution lifetime.

/** The outcome is being described: from here on no call of this execution is its own. */
function settle(state: ExecutionState, describeOutcome: () => { ok: boolean; json: string }): void {
  if (state.phase !== RUNNING) return;
  state.phase = ENDING;
  hostEnding(state.token);
  let outcome: { ok: boolean; json: string };
  try {
    outcome = describeOutcome();
  } catch {
    outcome = { ok: false, json: UNDESCRIBABLE };
  }
  state.phase = ENDED;
  state.pending = objectCreate(null);
  state.timers = objectCreate(null);
  if (current === state) current = undefined;
  hostDone(state.token, outcome.ok, outcome.json);
}

function changes(context: Record<string, unknown>): { ok: boolean; json: string } {
  try {
    return {
      ok: true,
      json: encode({ inputParameters: context.inputParameters, outputParameters: context.outputParameters, sharedVariables: context.sharedVariables }, "context"),
    };
  } catch (error) {
    return { ok: false, json: report("resultInvalid", `the changed context cannot leave the sandbox: ${StringCtor(readData(error, "message"))}`) };
  }
}

function defineGlobal(name: string, value: unknown): void {
  defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}

// Time. With pluginTime "clock" the plug-in's Date shows the runtime's clock: its time as of the
// entry that runs (time stands still while plug-in code runs, exact for a clock moved by hand).
// Date stays the intrinsic in every other way: the same prototype (instanceof, every method),
// parse and UTC, subclassing; only now(), new Date() and Date() read the clock. In real time
// nothing here runs and Date is untouched.

let clockNow: number | undefined;

/** Keeps the time an entry was given (a number only with pluginTime "clock"). */
function enteredAt(now: unknown): void {
  if (typeof now === "number") clockNow = now;
}

function installClockDate(): void {
  const intrinsicNow = DateCtor.now;
  const dateToString = DateCtor.prototype.toString;
  const now = (): number => clockNow ?? (reflectApply(intrinsicNow, DateCtor, []) as number);
  // Proxies over the intrinsics: name, length, prototype, statics and Function.prototype.toString
  // read as the intrinsic's. The handlers have no prototype, so no trap can be inherited from a
  // property a plug-in puts on Object.prototype.
  const ClockDate = new ProxyCtor(DateCtor, {
    __proto__: null,
    apply: () => reflectApply(dateToString, reflectConstruct(DateCtor, [now()]), []),
    construct: (_target: unknown, args: unknown[], newTarget: unknown) => reflectConstruct(DateCtor, args.length === 0 ? [now()] : args, newTarget as DateConstructor),
  } as ProxyHandler<DateConstructor>);
  const clockNowFunction = new ProxyCtor(intrinsicNow, { __proto__: null, apply: now } as ProxyHandler<() => number>);
  defineProperty(DateCtor, "now", { __proto__: null, value: clockNowFunction, writable: true, enumerable: false, configurable: true } as PropertyDescriptor);
  defineProperty(DateCtor.prototype, "constructor", { __proto__: null, value: ClockDate, writable: true, enumerable: false, configurable: true } as PropertyDescriptor);
  defineProperty(globalThis, "Date", { __proto__: null, value: ClockDate, writable: true, enumerable: false, configurable: true } as PropertyDescriptor);
}
if (onClockTime) installClockDate();

// Globals bundled libraries expect. Timers run only while their execution does.

let nextTimerId = 1;
function setTimer(fn: unknown, ms: unknown, args: unknown[], repeat: boolean): number {
  if (typeof fn !== "function") throw new TypeErrorCtor("setTimeout: the callback must be a function");
  const state = current ?? NO_EXECUTION;
  const delay = Math.max(0, Math.floor(+(ms as number) || 0));
  const id = nextTimerId++;
  const refusal = hostCall(state.token, id, "timer", "set", mayCall(state) ? StringCtor(delay) : "");
  if (refusal !== "") throw serviceError(undefined, refusal);
  state.timers[id] = { fn, args, repeat: repeat ? Math.max(1, delay) : -1 };
  return id;
}
function clearTimer(id: unknown): void {
  const state = current;
  if (state === undefined || !mayCall(state) || typeof id !== "number" || !(id in state.timers)) return;
  delete state.timers[id];
  hostCall(state.token, id, "timer", "clear", "");
}

defineGlobal("setTimeout", (fn: unknown, ms?: unknown, ...args: unknown[]) => setTimer(fn, ms, args, false));
defineGlobal("setInterval", (fn: unknown, ms?: unknown, ...args: unknown[]) => setTimer(fn, ms, args, true));
defineGlobal("clearTimeout", clearTimer);
defineGlobal("clearInterval", clearTimer);
defineGlobal("queueMicrotask", (fn: unknown) => {
  if (typeof fn !== "function") throw new TypeErrorCtor("queueMicrotask: the callback must be a function");
  then(promiseResolve(undefined), () => reflectApply(fn, undefined, []), () => undefined);
});
defineGlobal("fetch", webFetch);
const consoleLine =
  (prefix: string) =>
  (...args: unknown[]) =>
    traceLine(prefix + formatTrace(args.length > 0 ? args[0] : "", reflectApply(arraySlice, args, [1]) as unknown[]));
defineGlobal(
  "console",
  objectFreeze({ log: consoleLine(""), info: consoleLine(""), debug: consoleLine(""), warn: consoleLine("warn: "), error: consoleLine("error: "), trace: consoleLine("") }),
);
defineGlobal("globalThis", globalThis);

// The default realm: the context isolated-vm enters to copy values out of the isolate. No plug-in
// value is ever copied (every entry throws a string), so plug-in code cannot get there; it is
// hardened anyway, the one time the shim itself lets isolated-vm copy a value out.

const HARDEN_DEFAULT_REALM = `${REMOVED_GLOBALS.map((name) => `delete globalThis.${name};`).join(" ")} return ${REMOVED_GLOBALS.map((name) => `typeof ${name} === "undefined"`).join(" && ")};`;

/**
 * Throws a value whose `message` isolated-vm turns into a string while the default context is
 * current: the arguments array V8 builds for the Proxy's apply trap belongs to that realm, and a
 * function made by that realm's Function constructor runs there. The message it turns into says
 * what was found: "hardened" or "unreachable".
 */
function setup(): never {
  const reach = new ProxyCtor(function () {}, {
    apply(_target: unknown, _this: unknown, args: unknown[]) {
      try {
        const RealmFunction = (args as unknown as { constructor: { constructor: FunctionConstructor } }).constructor.constructor;
        if (RealmFunction !== FunctionCtor && RealmFunction(HARDEN_DEFAULT_REALM)() === true) return "hardened";
      } catch {
        /* no second realm here: nothing to harden */
      }
      return "unreachable";
    },
  });
  throw { message: { toString: reach } };
}

// The fixed API the worker calls. Each entry takes primitives and answers with a thrown string.

/** Evaluates the bundle's factory `(exports, module) => void`. Answers "" or a failure description. */
function load(factory: unknown, now?: unknown): string {
  enteredAt(now);
  if (typeof factory !== "function") return report("bundleNotModule", "the bundle did not evaluate to a module factory");
  const module = { exports: {} as Record<string, unknown> };
  try {
    reflectApply(factory, undefined, [module.exports, module]);
  } catch (thrown) {
    return describe("bundleThrew", thrown);
  }
  const exported = module.exports;
  if (!isObjectLike(exported)) return report("bundleNotModule", "the bundle's module.exports is not an object of plug-in classes");
  moduleExports = exported as Record<string, unknown>;
  return "";
}

function readProperty(value: unknown, key: string): unknown {
  try {
    return (value as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

function exportNames(): string {
  try {
    const names = objectKeys(moduleExports ?? {});
    return names.length === 0 ? "none" : (reflectApply(arrayJoin, names, [", "]) as string);
  } catch {
    return "unknown";
  }
}

/** Constructs the plug-in type with its configuration. Answers "" or a failure description. */
function instantiate(typeName: string, unsecureConfig: string | null, secureConfig: string | null, now?: unknown): string {
  enteredAt(now);
  // Plain reads: bundlers export through getters, and this is the plug-in's own load, inside a timed call.
  let Type = readProperty(moduleExports, typeName);
  if (Type === undefined && typeName === "default") Type = moduleExports;
  if (Type === undefined) return report("typeNotFound", `the bundle exports no plug-in type named "${typeName}"; it exports: ${exportNames()}`);
  if (typeof Type !== "function") return report("typeNotClass", `the export "${typeName}" is not a class; export a class with an execute(serviceProvider) method`);
  let instance: unknown;
  try {
    instance = reflectConstruct(Type, [unsecureConfig, secureConfig]);
  } catch (thrown) {
    return describe("constructorThrew", thrown);
  }
  if (typeof readProperty(instance, "execute") !== "function") {
    return report("noExecute", `"${typeName}" has no execute(serviceProvider) method; a plug-in class must implement IPlugin`);
  }
  pluginInstance = instance as { execute: (sp: unknown) => unknown };
  return "";
}

/** Starts one execution. Its outcome arrives through the done bridge function. */
function start(token: number, contextJson: string, now?: unknown): string {
  enteredAt(now);
  const state: ExecutionState = { token, phase: RUNNING, nextCallId: 1, pending: objectCreate(null), timers: objectCreate(null) };
  current = state;
  let context: Record<string, unknown>;
  try {
    context = decode(contextJson) as Record<string, unknown>;
  } catch (error) {
    settle(state, () => ({ ok: false, json: report("contextUnreadable", `the context could not be read: ${StringCtor(readData(error, "message"))}`) }));
    return "";
  }
  const instance = pluginInstance!;
  let result: unknown;
  try {
    result = reflectApply(instance.execute, instance, [serviceProvider(state, context)]);
  } catch (thrown) {
    settle(state, () => ({ ok: false, json: describe("unexpected", thrown) }));
    return "";
  }
  then(
    promiseResolve(result),
    () => settle(state, () => changes(context)),
    (thrown) => settle(state, () => ({ ok: false, json: describe("unexpected", thrown) })),
  );
  return "";
}

/** Settles a service call. */
function resume(token: number, callId: number, ok: boolean, json: string, now?: unknown): string {
  enteredAt(now);
  const state = current;
  if (state === undefined || state.token !== token) return "";
  const pending = state.pending[callId];
  if (pending === undefined) return "";
  delete state.pending[callId];
  if (!ok) {
    pending.reject(serviceError(callId, json));
    return "";
  }
  let value: unknown;
  try {
    value = pending.decodeResult(json);
  } catch (error) {
    pending.reject(serviceError(callId, jsonStringify({ code: "SANDBOX_INTERNAL", message: `the service's answer could not be read: ${StringCtor(readData(error, "message"))}` })));
    return "";
  }
  pending.resolve(value);
  return "";
}

/** Runs a timer's callback; one that throws fails its execution, as an uncaught exception would. */
function fire(token: number, timerId: number, now?: unknown): string {
  enteredAt(now);
  const state = current;
  if (state === undefined || state.token !== token || !mayCall(state)) return "";
  const timer = state.timers[timerId];
  if (timer === undefined) return "";
  if (timer.repeat < 0) delete state.timers[timerId];
  else hostCall(state.token, timerId, "timer", "set", StringCtor(timer.repeat));
  try {
    reflectApply(timer.fn as (...a: unknown[]) => unknown, undefined, timer.args);
  } catch (thrown) {
    settle(state, () => ({ ok: false, json: describe("unexpected", thrown) }));
  }
  return "";
}

// Referenced so the bundler keeps it: the SDK's EntityReference prototype is the one values decode into.
void EntityReference;

// Handed to the worker, which takes a reference to each function and deletes this global.
defineProperty(globalThis, "__pb_api", {
  value: objectFreeze({
    setup,
    load: entry(load, "bundleThrew"),
    instantiate: entry(instantiate, "constructorThrew"),
    start: entry(start, "unexpected"),
    resume: entry(resume, "unexpected"),
    fire: entry(fire, "unexpected"),
  }),
  configurable: true,
  enumerable: false,
  writable: false,
});
