/**
 * The trusted shim: evaluated in every sandbox context before any plug-in code. It captures the
 * worker's four bridge functions (synchronous callbacks that take and return only strings and
 * numbers), deletes them from the global object, hardens the global scope and builds the services
 * the SDK promises. It is bundled with the SDK's codec into one script (scripts/bundle-shim.mjs).
 *
 * No isolated-vm object (Reference, ExternalCopy, Callback) is ever reachable from plug-in code:
 * the callbacks live only in this module's closure, and what they return is a primitive.
 */
import { decode, encode } from "../../sdk/codec.js";
import { EntityReference } from "../../sdk/model.js";

declare const globalThis: Record<string, unknown>;

type HostCall = (token: number, callId: number, service: string, op: string, json: string) => string;
type HostTrace = (token: number, line: string) => void;
type HostDone = (token: number, ok: boolean, json: string) => void;

// Capture the bridge and the intrinsics the bridge relies on, before plug-in code can replace them.
const hostCall = globalThis.__pb_call as HostCall;
const hostTrace = globalThis.__pb_trace as HostTrace;
const hostDone = globalThis.__pb_done as HostDone;
delete globalThis.__pb_call;
delete globalThis.__pb_trace;
delete globalThis.__pb_done;

const PromiseCtor = Promise;
const promiseThen = Promise.prototype.then;
const promiseResolve = Promise.resolve.bind(Promise);
const promiseReject = Promise.reject.bind(Promise);
const reflectApply = Reflect.apply;
const jsonParse = JSON.parse;
const jsonStringify = JSON.stringify;
const StringCtor = String;
const ErrorCtor = Error;
const TypeErrorCtor = TypeError;
const objectCreate = Object.create;
const objectFreeze = Object.freeze;
const objectKeys = Object.keys;
const defineProperty = Object.defineProperty;
const isArray = Array.isArray;
const arrayJoin = Array.prototype.join;
const arrayPush = Array.prototype.push;
const arraySlice = Array.prototype.slice;
const stringReplace = String.prototype.replace;
const stringCharCodeAt = String.prototype.charCodeAt;
const fromCharCode = String.fromCharCode;
const Uint8ArrayCtor = Uint8Array;
const ArrayBufferCtor = ArrayBuffer;
const isView = ArrayBuffer.isView;
const DateCtor = Date;
const dateToISOString = Date.prototype.toISOString;
const PLUGIN_ERROR_TAG = Symbol.for("plugbox.InvalidPluginExecutionError");

function then<T, R>(promise: Promise<T>, onOk: (value: T) => R, onError: (error: unknown) => unknown): Promise<R> {
  return reflectApply(promiseThen, promise, [onOk, onError]) as Promise<R>;
}

// Hardening. WebAssembly memory escapes the isolate's heap limit; SharedArrayBuffer and Atomics
// give plug-ins a high-resolution timer and nothing a plug-in needs.
delete globalThis.WebAssembly;
delete globalThis.SharedArrayBuffer;
delete globalThis.Atomics;

/** An error the host answered with; its `code` says which rule or service failed. */
class PlugboxServiceError extends ErrorCtor {
  code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "PlugboxServiceError";
    this.code = code;
  }
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  decodeResult: (json: string) => unknown;
}

interface ExecutionState {
  token: number;
  ended: boolean;
  nextCallId: number;
  pending: Record<number, Pending>;
  timers: Record<number, { fn: unknown; args: unknown[]; repeat: number }>;
}

let moduleExports: Record<string, unknown> | undefined;
let pluginInstance: { execute: (sp: unknown) => unknown } | undefined;
let current: ExecutionState | undefined;

function hostError(json: string): PlugboxServiceError {
  let parsed: { code?: unknown; message?: unknown } = {};
  try {
    parsed = jsonParse(json) as typeof parsed;
  } catch {
    parsed = { code: "SANDBOX_INTERNAL", message: "the host sent an unreadable error" };
  }
  return new PlugboxServiceError(StringCtor(parsed.code), StringCtor(parsed.message));
}

function callHost(state: ExecutionState, service: string, op: string, payload: unknown, decodeResult: (json: string) => unknown = decode): Promise<unknown> {
  if (state.ended || current !== state) {
    return promiseReject(
      new PlugboxServiceError("SANDBOX_CALL_AFTER_END", `${service}.${op} was called after its execution had ended; a plug-in may use its services only while execute() runs`),
    );
  }
  let json: string;
  try {
    json = encode(payload, op);
  } catch (error) {
    return promiseReject(new TypeErrorCtor(`the arguments of ${service}.${op} cannot be sent: ${(error as Error).message}`));
  }
  const callId = state.nextCallId++;
  const refusal = hostCall(state.token, callId, service, op, json);
  if (refusal !== "") return promiseReject(hostError(refusal));
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
    for (let i = 0; i < rest.length; i++) reflectApply(arrayPush, parts, [display(rest[i])]);
    out = reflectApply(arrayJoin, parts, [" "]) as string;
  }
  return out;
}

function traceLine(line: string): void {
  const state = current;
  if (state !== undefined && !state.ended) hostTrace(state.token, line);
}

// Byte helpers: a bare V8 isolate has no TextEncoder, TextDecoder, atob or btoa.

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function utf8Encode(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    let code = reflectApply(stringCharCodeAt, text, [i]) as number;
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const low = reflectApply(stringCharCodeAt, text, [i + 1]) as number;
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (code < 0x80) out.push(code);
    else if (code < 0x800) out.push(0xc0 | (code >> 6), 0x80 | (code & 63));
    else if (code < 0x10000) out.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
    else out.push(0xf0 | (code >> 18), 0x80 | ((code >> 12) & 63), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
  }
  return new Uint8ArrayCtor(out);
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
  return out.subarray(0, j);
}

// The services.

function organizationService(state: ExecutionState, userId: string | null) {
  const call = (op: string, args: unknown[]) => callHost(state, "organization", op, { userId, args });
  return objectFreeze({
    create: (entity: unknown) => call("create", [entity]),
    retrieve: (entityName: unknown, id: unknown, columnSet: unknown) => call("retrieve", [entityName, id, columnSet]),
    update: (entity: unknown) => then(call("update", [entity]), () => undefined, (e) => promiseReject(e)),
    delete: (entityName: unknown, id: unknown) => then(call("delete", [entityName, id]), () => undefined, (e) => promiseReject(e)),
    associate: (entityName: unknown, id: unknown, relationship: unknown, related: unknown) =>
      then(call("associate", [entityName, id, relationship, related]), () => undefined, (e) => promiseReject(e)),
    disassociate: (entityName: unknown, id: unknown, relationship: unknown, related: unknown) =>
      then(call("disassociate", [entityName, id, relationship, related]), () => undefined, (e) => promiseReject(e)),
    retrieveMultiple: (query: unknown) => call("retrieveMultiple", [query]),
    execute: (request: unknown) => call("execute", [request]),
  });
}

function headerList(headers: unknown): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (headers === undefined || headers === null) return out;
  if (isArray(headers)) {
    for (let i = 0; i < headers.length; i++) {
      const pair = headers[i] as unknown[];
      out.push([StringCtor(pair[0]), StringCtor(pair[1])]);
    }
    return out;
  }
  if (typeof headers === "object") {
    const entries = (headers as { entries?: unknown }).entries;
    if (typeof entries === "function") {
      for (const [k, v] of reflectApply(entries, headers, []) as Iterable<[unknown, unknown]>) out.push([StringCtor(k), StringCtor(v)]);
      return out;
    }
    const keys = objectKeys(headers);
    for (let i = 0; i < keys.length; i++) out.push([keys[i]!, StringCtor((headers as Record<string, unknown>)[keys[i]!])]);
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
  const state = current;
  if (state === undefined) return promiseReject(new PlugboxServiceError("SANDBOX_CALL_AFTER_END", "fetch was called outside an execution"));
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
      const code = error instanceof PlugboxServiceError ? error.code : "";
      if (code.startsWith("WEB_") && !state.ended) hostTrace(state.token, `plugbox: fetch ${StringCtor(request.url).slice(0, 200)} failed [${code}]: ${(error as PlugboxServiceError).message}`);
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
      if (state.ended) return;
      hostTrace(state.token, formatTrace(format, args));
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

// Errors that leave the sandbox: read defensively (getters and proxies are plug-in code).

function safeGet(value: unknown, key: PropertyKey): unknown {
  try {
    return (value as Record<PropertyKey, unknown>)[key];
  } catch {
    return undefined;
  }
}

function safeString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  return undefined;
}

function describeError(error: unknown, fallbackCode: string): string {
  let code = fallbackCode;
  let message = "the plug-in threw a value that could not be read";
  let name: string | undefined;
  let stack: string | undefined;
  let status: number | undefined;
  let errorCode: number | undefined;
  let serviceCode: string | undefined;
  try {
    if (error instanceof PlugboxServiceError) serviceCode = error.code;
    if ((typeof error === "object" && error !== null) || typeof error === "function") {
      const isPluginError = safeGet(error, PLUGIN_ERROR_TAG) === true || safeGet(error, "name") === "InvalidPluginExecutionError";
      if (isPluginError && fallbackCode === "PLUGIN_UNEXPECTED_ERROR") code = "PLUGIN_FAILED";
      message = safeString(safeGet(error, "message")) ?? message;
      name = safeString(safeGet(error, "name"));
      stack = safeString(safeGet(error, "stack"));
      const s = safeGet(error, "status");
      const c = safeGet(error, "errorCode");
      if (typeof s === "number") status = s;
      if (typeof c === "number") errorCode = c;
    } else {
      message = StringCtor(error);
    }
  } catch {
    /* keep the fallback message */
  }
  // V8 reports an ArrayBuffer over the isolate's memory limit as a RangeError the plug-in could catch.
  if (name === "RangeError" && message === "Array buffer allocation failed") code = "SANDBOX_MEMORY_LIMIT";
  if (code === "PLUGIN_UNEXPECTED_ERROR" && name !== undefined && name !== "Error" && serviceCode === undefined) message = `${name}: ${message}`;
  return jsonStringify({ code, message, name, stack, status, errorCode, serviceCode });
}

function finish(state: ExecutionState, ok: boolean, json: string): void {
  if (state.ended) return;
  hostDone(state.token, ok, json);
  endState(state);
}

function endState(state: ExecutionState): void {
  state.ended = true;
  state.pending = objectCreate(null);
  state.timers = objectCreate(null);
  if (current === state) current = undefined;
}

function changes(context: Record<string, unknown>): string {
  return encode(
    {
      inputParameters: context.inputParameters,
      outputParameters: context.outputParameters,
      sharedVariables: context.sharedVariables,
    },
    "context",
  );
}

function defineGlobal(name: string, value: unknown): void {
  defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}

// Globals bundled libraries expect. Timers run only while their execution does.

let nextTimerId = 1;
function setTimer(fn: unknown, ms: unknown, args: unknown[], repeat: boolean): number {
  const state = current;
  if (state === undefined || state.ended) throw new PlugboxServiceError("SANDBOX_CALL_AFTER_END", "a timer was set after its execution had ended");
  if (typeof fn !== "function") throw new TypeErrorCtor("setTimeout: the callback must be a function");
  const delay = Math.max(0, Math.floor(+(ms as number) || 0));
  const id = nextTimerId++;
  const refusal = hostCall(state.token, id, "timer", "set", StringCtor(delay));
  if (refusal !== "") throw hostError(refusal);
  state.timers[id] = { fn, args, repeat: repeat ? Math.max(1, delay) : -1 };
  return id;
}
function clearTimer(id: unknown): void {
  const state = current;
  if (state === undefined || typeof id !== "number" || !(id in state.timers)) return;
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

// The fixed API the worker calls. Each function takes and returns primitives only.

/** Evaluates the bundle's factory `(exports, module) => void`. Returns "" or an error description. */
export function load(factory: unknown): string {
  if (typeof factory !== "function") return jsonStringify({ code: "BUNDLE_INVALID", message: "the bundle did not evaluate to a module factory" });
  const module = { exports: {} as Record<string, unknown> };
  try {
    reflectApply(factory, undefined, [module.exports, module]);
  } catch (error) {
    const described = jsonParse(describeError(error, "BUNDLE_INVALID")) as { message: string; stack?: string };
    return jsonStringify({ code: "BUNDLE_INVALID", message: `the bundle threw while it was loaded: ${described.message}`, stack: described.stack });
  }
  const exported = module.exports;
  if ((typeof exported !== "object" && typeof exported !== "function") || exported === null) {
    return jsonStringify({ code: "BUNDLE_INVALID", message: "the bundle's module.exports is not an object of plug-in classes" });
  }
  moduleExports = exported;
  return "";
}

function exportNames(): string {
  try {
    const names = objectKeys(moduleExports ?? {});
    return names.length === 0 ? "none" : reflectApply(arrayJoin, names, [", "]) as string;
  } catch {
    return "unknown";
  }
}

/** Constructs the plug-in type with its configuration. Returns "" or an error description. */
export function instantiate(typeName: string, unsecureConfig: string | null, secureConfig: string | null): string {
  let Type: unknown;
  try {
    Type = (moduleExports as Record<string, unknown>)[typeName];
  } catch {
    Type = undefined;
  }
  if (Type === undefined && typeName === "default") Type = moduleExports;
  if (typeof Type !== "function") {
    const code = Type === undefined ? "PLUGIN_TYPE_NOT_FOUND" : "PLUGIN_TYPE_INVALID";
    const message =
      Type === undefined
        ? `the bundle exports no plug-in type named "${typeName}"; it exports: ${exportNames()}`
        : `the export "${typeName}" is not a class; export a class with an execute(serviceProvider) method`;
    return jsonStringify({ code, message });
  }
  let instance: unknown;
  try {
    instance = reflectApply(Reflect.construct, undefined, [Type, [unsecureConfig, secureConfig]]);
  } catch (error) {
    const described = jsonParse(describeError(error, "PLUGIN_CONSTRUCTOR_FAILED")) as { message: string; stack?: string };
    return jsonStringify({
      code: "PLUGIN_CONSTRUCTOR_FAILED",
      message: `the constructor of "${typeName}" threw: ${described.message}`,
      stack: described.stack,
    });
  }
  if (typeof safeGet(instance, "execute") !== "function") {
    return jsonStringify({
      code: "PLUGIN_TYPE_INVALID",
      message: `"${typeName}" has no execute(serviceProvider) method; a plug-in class must implement IPlugin`,
    });
  }
  pluginInstance = instance as { execute: (sp: unknown) => unknown };
  return "";
}

/** Starts one execution. Its outcome arrives through the done bridge function. */
export function start(token: number, contextJson: string): void {
  const state: ExecutionState = { token, ended: false, nextCallId: 1, pending: objectCreate(null), timers: objectCreate(null) };
  current = state;
  let context: Record<string, unknown>;
  try {
    context = decode(contextJson) as Record<string, unknown>;
  } catch (error) {
    finish(state, false, jsonStringify({ code: "SANDBOX_INTERNAL", message: `the context could not be read: ${(error as Error).message}` }));
    return;
  }
  const instance = pluginInstance!;
  let result: unknown;
  try {
    result = reflectApply(instance.execute, instance, [serviceProvider(state, context)]);
  } catch (error) {
    finish(state, false, describeError(error, "PLUGIN_UNEXPECTED_ERROR"));
    return;
  }
  then(
    promiseResolve(result),
    () => {
      let json: string;
      try {
        json = changes(context);
      } catch (error) {
        finish(state, false, jsonStringify({ code: "PLUGIN_RESULT_INVALID", message: `the changed context cannot leave the sandbox: ${(error as Error).message}` }));
        return;
      }
      finish(state, true, json);
    },
    (error) => finish(state, false, describeError(error, "PLUGIN_UNEXPECTED_ERROR")),
  );
}

/** Settles a service call. */
export function resume(token: number, callId: number, ok: boolean, json: string): void {
  const state = current;
  if (state === undefined || state.token !== token) return;
  const pending = state.pending[callId];
  if (pending === undefined) return;
  delete state.pending[callId];
  if (!ok) {
    pending.reject(hostError(json));
    return;
  }
  let value: unknown;
  try {
    value = pending.decodeResult(json);
  } catch (error) {
    pending.reject(new PlugboxServiceError("SANDBOX_INTERNAL", `the service's answer could not be read: ${(error as Error).message}`));
    return;
  }
  pending.resolve(value);
}

/** Runs a timer's callback. */
export function fire(token: number, timerId: number): void {
  const state = current;
  if (state === undefined || state.token !== token || state.ended) return;
  const timer = state.timers[timerId];
  if (timer === undefined) return;
  if (timer.repeat < 0) delete state.timers[timerId];
  else hostCall(state.token, timerId, "timer", "set", StringCtor(timer.repeat));
  reflectApply(timer.fn as (...a: unknown[]) => unknown, undefined, timer.args);
}

/** Ends the current execution: its services refuse every later call. */
export function end(token: number): void {
  const state = current;
  if (state !== undefined && state.token === token) endState(state);
}

// Referenced so the bundler keeps it: the SDK's EntityReference prototype is the one values decode into.
void EntityReference;

// Handed to the worker, which takes a reference to each function and deletes this global.
defineProperty(globalThis, "__pb_api", {
  value: objectFreeze({ load, instantiate, start, resume, fire, end }),
  configurable: true,
  enumerable: false,
  writable: false,
});
