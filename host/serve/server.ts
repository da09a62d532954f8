/**
 * `plugbox serve`'s HTTP API over one host: organization requests (`POST /execute`, and Web API-style
 * creates under `/api/data/v9.2/`), `GET /health` and `GET /metrics`. Built on node:http, Node's
 * standard library: a handful of fixed routes needs no framework.
 *
 * Every refusal is a typed error answered as `{ error: { code, message } }` with the status of its
 * code's family (status.ts); the server keeps serving after each.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fromPlain, isPlainObject, toPlain } from "../../sdk/codec.js";
import { isPlugboxError, PlugboxError } from "../../sdk/errors.js";
import { Entity, Money, OptionSetValue } from "../../sdk/model.js";
import { UsageError } from "../errors.js";
import type { PlugboxHost } from "../host.js";
import { MAX_JSON_INPUT_BYTES, parseJsonInput } from "../json-input.js";
import { JobStatus } from "../jobs/queue.js";
import type { OrganizationRequestValue, OrganizationResponseValue } from "../organization/arguments.js";
import { readRequest, type JournalRequest } from "../pipeline/pipeline.js";
import { toStoreError } from "../store/errors.js";
import { ServeError } from "./errors.js";
import { ServeMetrics } from "./metrics.js";
import { httpStatusOf } from "./status.js";
import { resolveServeOptions } from "./options.js";

export interface ServeOptions {
  /** The host whose pipeline serves the requests; the server does not close it. */
  host: PlugboxHost;
  // The numbers are declared once, with their ranges, in options.ts (serveTable).
  /** 0 picks a free port. @default 8080 */
  port?: number;
  /** @default "127.0.0.1" */
  hostname?: string;
  /** How long close() waits for requests in flight before it drops their connections, ms. @default 10000 */
  shutdownGraceMs?: number;
}

export interface Serve {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Stops taking connections, lets the requests in flight finish (within the grace period), then closes every connection. Runs once. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The Web API's root, as Dataverse names it. */
export const WEB_API_ROOT = "/api/data/v9.2/";

const ROUTES: Readonly<Record<string, string>> = { "/execute": "POST", "/health": "GET", "/metrics": "GET" };

const JOB_STATES = Object.fromEntries(Object.entries(JobStatus).map(([name, code]) => [code, name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase()])) as Record<number, string>;

export async function startServe(options: ServeOptions): Promise<Serve> {
  const { host, ...given } = options;
  const settings = resolveServeOptions(given);
  const metrics = new ServeMetrics();
  const inFlight = new Map<ServerResponse, Promise<void>>();
  let closing: Promise<void> | undefined;
  let url = "";

  const stopCounting = host.jobRunner.onOutcome((job) => metrics.jobRuns.add({ outcome: job.outcome }));

  const server = createServer((req, res) => {
    inFlight.set(res, handle(req, res).finally(() => inFlight.delete(res)));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (closing) throw new ServeError("SERVE_SHUTTING_DOWN", "the server is shutting down and takes no new requests");
      const path = new URL(req.url ?? "/", "http://localhost").pathname;
      if (path.startsWith(WEB_API_ROOT)) {
        allow(req, "POST");
        await webApiCreate(req, res, entitySetOf(path.slice(WEB_API_ROOT.length)));
        return;
      }
      const method = ROUTES[path];
      if (method === undefined) throw new ServeError("SERVE_NOT_FOUND", `no endpoint at ${path}; plugbox serve answers POST /execute, POST ${WEB_API_ROOT}<entityset>, GET /health and GET /metrics`);
      allow(req, method);
      if (path === "/execute") await execute(req, res);
      else if (path === "/health") {
        const health = host.health();
        sendJson(res, health.status === "ready" || health.status === "degraded" ? 200 : 503, health);
      } else {
        const text = metrics.exposition({ jobs: await jobCounts(), workers: { ...host.runtime.health().workers } });
        res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" }).end(text);
      }
    } catch (error) {
      sendError(res, error);
    }
  }

  async function jobCounts(): Promise<Record<string, number>> {
    const counts: Record<string, number> = Object.fromEntries(Object.values(JOB_STATES).map((state) => [state, 0]));
    for (const [status, n] of await host.countJobs()) {
      const state = JOB_STATES[status] ?? `status_${status}`;
      counts[state] = (counts[state] ?? 0) + n;
    }
    return counts;
  }

  async function execute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let request: OrganizationRequestValue;
    try {
      request = readRequest(typedValues(await readJsonBody(req)), "the request body");
    } catch (error) {
      metrics.requests.add({ message: "none", outcome: "rejected" });
      throw error;
    }
    const outcome = await run(request);
    if (outcome.ok) sendJson(res, 200, { response: toPlain(outcome.response), journal: outcome.journal });
    else sendError(res, outcome.error, outcome.journal);
  }

  async function webApiCreate(req: IncomingMessage, res: ServerResponse, entitySet: string): Promise<void> {
    let target: Entity;
    try {
      const logicalName = tableOf(entitySet);
      const body = await readJsonBody(req);
      if (!isPlainObject(body)) throw new UsageError("INPUT_INVALID_JSON", `the request body must be a JSON object of column values, such as { "name": "Contoso" }`);
      target = new Entity(logicalName, undefined, columnsOf(logicalName, body));
    } catch (error) {
      metrics.requests.add({ message: "Create", outcome: "rejected" });
      throw error;
    }
    const outcome = await run({ requestName: "Create", parameters: { Target: target } });
    if (!outcome.ok) return sendError(res, outcome.error, outcome.journal);
    const id = outcome.response.results.id;
    res.writeHead(204, { "OData-Version": "4.0", "OData-EntityId": `${url}${WEB_API_ROOT}${entitySet}(${String(id)})` }).end();
  }

  /** An entity set's table: `accounts` is `account` when the manifest declares a table `account`. */
  function tableOf(entitySet: string): string {
    const tables = [...host.registry.tables.keys()];
    const candidates = [entitySet.replace(/es$/, ""), entitySet.replace(/s$/, "")].filter((name) => name !== entitySet);
    const found = candidates.find((name) => host.registry.tables.has(name));
    if (found !== undefined) return found;
    const declared = tables.length === 0 ? "the manifest declares no tables" : `the manifest declares ${tables.map((t) => `${t} (entity set ${t}s)`).join(", ")}`;
    throw new ServeError("SERVE_NOT_FOUND", `no table for the entity set ${JSON.stringify(entitySet)}: ${declared}`);
  }

  /** Column values as the Web API sends them: a money or choice column's plain number becomes a Money or OptionSetValue. */
  function columnsOf(logicalName: string, body: Record<string, unknown>): Entity["attributes"] {
    const columns = host.registry.tables.get(logicalName)?.columns ?? {};
    const values = typedValues(body) as Record<string, unknown>;
    for (const [name, value] of Object.entries(values)) {
      if (typeof value !== "number") continue;
      if (columns[name] === "money") values[name] = new Money(value);
      else if (columns[name] === "optionset") values[name] = new OptionSetValue(value);
    }
    return values as Entity["attributes"];
  }

  type Outcome = { ok: true; response: OrganizationResponseValue; journal: JournalRequest } | { ok: false; error: unknown; journal: JournalRequest | undefined };

  /** One request through the pipeline, counted and timed. */
  async function run(request: OrganizationRequestValue): Promise<Outcome> {
    const started = performance.now();
    let outcome: Outcome;
    try {
      const result = await host.execute(request);
      outcome = { ok: true, response: result.response, journal: result.journal };
    } catch (error) {
      outcome = { ok: false, error, journal: (error as { journal?: JournalRequest }).journal };
    }
    metrics.duration.observe((performance.now() - started) / 1000);
    metrics.requests.add({ message: request.requestName, outcome: outcome.ok ? "ok" : "failed" });
    if (outcome.journal) countJournal(outcome.journal);
    return outcome;
  }

  function countJournal(journal: JournalRequest): void {
    for (const step of journal.steps) {
      metrics.executions.add({ outcome: step.outcome });
      for (const call of step.calls) if (call.service === "notification") metrics.relayPosts.add({ outcome: call.ok ? "ok" : "failed" });
      for (const nested of step.requests) countJournal(nested);
    }
  }

  server.listen(settings.port, settings.hostname);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", (error: NodeJS.ErrnoException) =>
        reject(error.code === "EADDRINUSE" ? new ServeError("SERVE_PORT_IN_USE", `port ${settings.port} is in use: pick another with --port, or 0 for a free one`) : error),
      );
    });
  } catch (error) {
    stopCounting();
    throw error;
  }
  const address = server.address() as AddressInfo;
  url = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;

  const close = (): Promise<void> =>
    (closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // The answers still to come end their connections: a client does not send its next request there.
      for (const res of inFlight.keys()) if (!res.headersSent) res.setHeader("Connection", "close");
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, settings.shutdownGraceMs)));
      await Promise.race([Promise.allSettled([...inFlight.values()]), grace]);
      clearTimeout(timer);
      server.closeAllConnections();
      stopCounting();
      await stopped;
    })());

  return { url, close, [Symbol.asyncDispose]: close };
}

function entitySetOf(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ServeError("SERVE_NOT_FOUND", `no entity set ${JSON.stringify(segment)}: it is not a valid URL path segment`);
  }
}

/** Refuses a request whose method the path does not answer (405, naming the one it does). */
function allow(req: IncomingMessage, method: string): void {
  if (req.method !== method) throw new ServeError("SERVE_METHOD_NOT_ALLOWED", `${req.method} is not allowed here; use ${method}`, { details: { allow: method } });
}

/** The body as JSON, within the limits of plugbox's JSON inputs (size, nesting). */
async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") throw new ServeError("SERVE_UNSUPPORTED_MEDIA_TYPE", `the request body must be JSON sent as Content-Type: application/json, got ${type === "" ? "no Content-Type" : type}`);
  const tooLarge = (size: string) => new UsageError("INPUT_TOO_LARGE", `the request body is ${size}; plugbox reads bodies of up to ${MAX_JSON_INPUT_BYTES} bytes (64 MB)`);
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > MAX_JSON_INPUT_BYTES) throw tooLarge(`${declared} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON_INPUT_BYTES) throw tooLarge("larger than that");
    chunks.push(chunk);
  }
  return parseJsonInput(Buffer.concat(chunks).toString("utf8"), "the request body");
}

/** plugbox JSON's typed values read (`{ "$type": "Money", … }`); one it cannot read is INPUT_INVALID_JSON. */
function typedValues(body: unknown): unknown {
  try {
    return fromPlain(body);
  } catch (error) {
    throw new UsageError("INPUT_INVALID_JSON", `the request body holds a value plugbox cannot read: ${(error as Error).message}`);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8" }).end(JSON.stringify(body));
}

/** A typed error as `{ error: { code, message, innerCode? }, journal? }`; anything else is a defect, answered without its stack. */
function sendError(res: ServerResponse, error: unknown, journal?: JournalRequest): void {
  const typed = toStoreError(error);
  if (!isPlugboxError(typed)) {
    sendJson(res, 500, { error: { code: "INTERNAL", message: "plugbox failed to serve the request (a defect: see the server's log)" } });
    console.error(`plugbox serve: internal error: ${error instanceof Error ? error.stack : String(error)}`);
    return;
  }
  const inner = (typed as { innerCode?: unknown }).innerCode;
  const status = httpStatusOf(typed.code);
  if (res.headersSent) return void res.destroy();
  const headers: Record<string, string> = { "Content-Type": "application/json; charset=utf-8" };
  if (typed instanceof PlugboxError && typed.code === "SERVE_METHOD_NOT_ALLOWED") headers.Allow = String(typed.details?.allow);
  // A body left unread (refused before it was read) would otherwise be parsed as the next request.
  const req = res.req as IncomingMessage;
  const hasBody = (req.headers["content-length"] ?? "0") !== "0" || req.headers["transfer-encoding"] !== undefined;
  if (hasBody && !req.readableEnded) headers.Connection = "close";
  res.writeHead(status, headers).end(JSON.stringify({ error: { code: typed.code, message: typed.message, ...(typeof inner === "string" && inner !== typed.code ? { innerCode: inner } : {}) }, ...(journal ? { journal } : {}) }));
}
