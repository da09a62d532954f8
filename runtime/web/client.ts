/**
 * The outbound web client plug-ins reach through IWebClient.fetch (and the sandbox's global fetch),
 * on undici. The policy is enforced where it cannot be dodged:
 *
 * - before any connection, on the URL (checkUrl);
 * - at connect time, in undici's connector: the name is resolved once, every address it resolves
 *   to is checked, and the socket goes to the address that was checked, so a DNS answer that
 *   changes between check and connect (rebinding) cannot slip through;
 * - on every redirect, which the client follows itself, up to a hop limit.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { Agent, buildConnector, type Dispatcher } from "undici";
import { WebError, type WebErrorCode } from "./errors.js";
import { checkAddress, checkUrl, resolveWebPolicy, type WebPolicy, type WebPolicyInput } from "./policy.js";

/** A request as it comes out of the sandbox (untrusted). */
export interface WebRequest {
  url: string;
  method?: string;
  headers?: Array<[string, string]>;
  bodyText?: string;
  bodyBase64?: string;
}

/** A response as it goes into the sandbox. */
export interface WebResponseValue {
  status: number;
  statusText: string;
  url: string;
  redirected: boolean;
  headers: Array<[string, string]>;
  bodyBase64: string;
}

export interface WebFetchOptions {
  /** The execution the request belongs to: requests are counted per execution. */
  executionId?: number;
  /** Aborted when the execution ends. */
  signal?: AbortSignal;
  /** When the execution's wall-clock limit runs out (epoch ms): no request outlives it. */
  deadline?: number;
  /** The bundle's allow-list, which narrows the host policy; null for none. */
  allowedHosts?: readonly string[] | null;
}

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
/** Headers the client owns: a plug-in setting them could confuse the server about where it connects. */
const FORBIDDEN_HEADERS = new Set(["host", "connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-authorization", "proxy-connection", "content-length", "trailer"]);
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const kPolicyError = Symbol("plugbox.web.policyError");

function isWebError(error: unknown): error is WebError {
  return error instanceof WebError;
}

export class WebClient {
  readonly policy: WebPolicy;
  readonly #agent: Agent;
  readonly #counts = new Map<number, number>();
  #closed = false;

  constructor(policy: WebPolicyInput = {}) {
    this.policy = resolveWebPolicy(policy);
    const connect = buildConnector({ timeout: this.policy.requestTimeoutMs });
    this.#agent = new Agent({
      keepAliveTimeout: 4_000,
      connect: (options, callback) => {
        this.#pin(options.hostname).then(
          (address) => connect({ ...options, hostname: address, servername: isIP(options.hostname) === 0 ? options.hostname : undefined as never }, callback),
          (error: unknown) => callback(Object.assign(error as Error, { [kPolicyError]: true }), null),
        );
      },
    });
  }

  /** Resolves a host name once, checks every address, and returns the one to connect to. */
  async #pin(hostname: string): Promise<string> {
    const host = hostname.toLowerCase().replace(/\.+$/, "").replace(/^\[|\]$/g, "");
    let addresses = this.policy.resolve[host];
    if (!addresses) {
      try {
        addresses = (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
      } catch {
        throw new WebError("WEB_DNS", `${host} does not resolve`);
      }
    }
    if (addresses.length === 0) throw new WebError("WEB_DNS", `${host} does not resolve`);
    for (const address of addresses) checkAddress(host, address, this.policy);
    return addresses[0]!;
  }

  /** One request from a plug-in, with redirects followed and checked. */
  async fetch(input: unknown, options: WebFetchOptions = {}): Promise<WebResponseValue> {
    if (this.#closed) throw new WebError("WEB_CONNECTION_FAILED", "the web client is closed");
    const request = readRequest(input, this.policy);
    this.#count(options);
    if (options.deadline !== undefined && options.deadline <= Date.now()) {
      throw new WebError("WEB_TIMEOUT", "the execution has no time left for a web request");
    }
    // Whole milliseconds: AbortSignal.timeout refuses a fractional delay, and a deadline less than the
    // request timeout away (an execution with a short wall limit) is a fraction of a millisecond off.
    const timeoutMs = Math.ceil(Math.min(this.policy.requestTimeoutMs, options.deadline === undefined ? Infinity : Math.max(0, options.deadline - Date.now())));
    const timeout = AbortSignal.timeout(Math.max(1, timeoutMs));
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    let url = checkUrl(request.url, this.policy, options.allowedHosts ?? null);
    let method = request.method;
    let body: Buffer | undefined = request.body;
    let headers = request.headers;
    for (let hop = 0; ; hop++) {
      const response = await this.#send(url, method, headers, body, signal, timeoutMs);
      const location = response.headers.location;
      if (!REDIRECTS.has(response.statusCode) || typeof location !== "string") {
        return { ...(await this.#read(response, method, signal, timeoutMs)), url: url.href, redirected: hop > 0 };
      }
      await response.body.dump().catch(() => undefined);
      if (hop >= this.policy.maxRedirects) throw new WebError("WEB_TOO_MANY_REDIRECTS", `more than ${this.policy.maxRedirects} redirects, the last to ${location.slice(0, 200)}`);
      let target: string;
      try {
        target = new URL(location, url).href;
      } catch {
        throw new WebError("WEB_INVALID_URL", `the server redirected to ${JSON.stringify(location.slice(0, 200))}, which is not a URL`);
      }
      const next = checkUrl(target, this.policy, options.allowedHosts ?? null);
      if (next.origin !== url.origin) headers = headers.filter(([name]) => !["authorization", "cookie"].includes(name.toLowerCase()));
      if (response.statusCode === 303 || ((response.statusCode === 301 || response.statusCode === 302) && method === "POST")) {
        method = "GET";
        body = undefined;
        headers = headers.filter(([name]) => !name.toLowerCase().startsWith("content-"));
      }
      url = next;
    }
  }

  #count(options: WebFetchOptions): void {
    if (options.executionId === undefined) return;
    const id = options.executionId;
    const count = (this.#counts.get(id) ?? 0) + 1;
    if (count > this.policy.maxRequestsPerExecution) {
      throw new WebError("WEB_TOO_MANY_REQUESTS", `an execution may make ${this.policy.maxRequestsPerExecution} web requests (maxRequestsPerExecution)`);
    }
    if (count === 1) options.signal?.addEventListener("abort", () => this.#counts.delete(id), { once: true });
    this.#counts.set(id, count);
  }

  async #send(url: URL, method: string, headers: Array<[string, string]>, body: Buffer | undefined, signal: AbortSignal, timeoutMs: number): Promise<Dispatcher.ResponseData> {
    try {
      return await this.#agent.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: method as Dispatcher.HttpMethod,
        headers: headers.flat(),
        ...(body ? { body } : {}),
        signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
    } catch (error) {
      throw translate(error, signal, timeoutMs, url);
    }
  }

  async #read(response: Dispatcher.ResponseData, method: string, signal: AbortSignal, timeoutMs: number): Promise<Omit<WebResponseValue, "url" | "redirected">> {
    const limit = this.policy.maxResponseBytes;
    const declared = Number(response.headers["content-length"]);
    if (method !== "HEAD" && Number.isFinite(declared) && declared > limit) {
      // Without a listener, undici's abort of the body would be an uncaught error in the host.
      response.body.once("error", () => undefined).destroy();
      throw new WebError("WEB_TOO_LARGE", `the response body is ${declared} bytes; the limit is ${limit} (maxResponseBytes)`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of response.body) {
        size += (chunk as Buffer).length;
        if (size > limit) {
          response.body.once("error", () => undefined).destroy();
          throw new WebError("WEB_TOO_LARGE", `the response body is over ${limit} bytes (maxResponseBytes)`);
        }
        chunks.push(chunk as Buffer);
      }
    } catch (error) {
      throw translate(error, signal, timeoutMs);
    }
    const headers: Array<[string, string]> = [];
    for (const [name, value] of Object.entries(response.headers)) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) headers.push([name, v]);
    }
    return { status: response.statusCode, statusText: statusText(response.statusCode), headers, bodyBase64: Buffer.concat(chunks).toString("base64") };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#agent.close();
  }
}

function translate(error: unknown, signal: AbortSignal, timeoutMs: number, url?: URL): WebError {
  if (isWebError(error)) return error;
  const cause = (error as { cause?: unknown }).cause;
  if (isWebError(cause)) return cause;
  const code = (error as { code?: string }).code ?? "";
  if (signal.aborted || code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT" || code === "UND_ERR_CONNECT_TIMEOUT") {
    return new WebError("WEB_TIMEOUT", `the request took longer than ${timeoutMs} ms (requestTimeoutMs, or what the execution had left)`);
  }
  const where = url ? ` to ${url.origin}` : "";
  return new WebError("WEB_CONNECTION_FAILED", `the connection${where} failed${code ? ` (${code})` : ""}`);
}

function readRequest(input: unknown, policy: WebPolicy): { url: string; method: string; headers: Array<[string, string]>; body: Buffer | undefined } {
  const fail = (message: string, code: WebErrorCode = "WEB_INVALID_REQUEST") => new WebError(code, message);
  if (typeof input !== "object" || input === null) throw fail("fetch needs a URL");
  const raw = input as Partial<WebRequest>;
  if (typeof raw.url !== "string" || raw.url.length > 8_192) throw fail("fetch: the URL must be a string of at most 8192 characters", "WEB_INVALID_URL");
  const method = (typeof raw.method === "string" ? raw.method : "GET").toUpperCase();
  if (!METHODS.has(method)) throw fail(`fetch: the method ${method.slice(0, 20)} is not allowed (${[...METHODS].join(", ")})`);
  const headers: Array<[string, string]> = [];
  if (raw.headers !== undefined) {
    if (!Array.isArray(raw.headers) || raw.headers.length > 100) throw fail("fetch: headers must be at most 100 name/value pairs");
    for (const pair of raw.headers) {
      if (!Array.isArray(pair) || typeof pair[0] !== "string" || typeof pair[1] !== "string") throw fail("fetch: each header is a [name, value] pair of strings");
      const [name, value] = pair as [string, string];
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value) || value.length > 8_192) throw fail(`fetch: the header ${JSON.stringify(name.slice(0, 50))} is not valid`);
      if (FORBIDDEN_HEADERS.has(name.toLowerCase())) continue;
      headers.push([name, value]);
    }
  }
  let body: Buffer | undefined;
  if (typeof raw.bodyText === "string") body = Buffer.from(raw.bodyText, "utf8");
  else if (typeof raw.bodyBase64 === "string") body = Buffer.from(raw.bodyBase64, "base64");
  if (body && body.length > policy.maxRequestBytes) throw fail(`the request body is ${body.length} bytes; the limit is ${policy.maxRequestBytes} (maxRequestBytes)`, "WEB_TOO_LARGE");
  if (body && (method === "GET" || method === "HEAD")) throw fail(`fetch: a ${method} request cannot have a body`);
  return { url: raw.url, method, headers, body };
}

const STATUS_TEXT: Record<number, string> = { 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently", 302: "Found", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout" };

function statusText(status: number): string {
  return STATUS_TEXT[status] ?? "";
}

export function createWebClient(policy: WebPolicyInput = {}): WebClient {
  return new WebClient(policy);
}
