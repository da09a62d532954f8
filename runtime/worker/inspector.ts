/**
 * The DevTools endpoint of a sandbox worker started with the runtime's `inspector` option: an HTTP
 * server on 127.0.0.1 that answers the discovery requests of chrome://inspect and VS Code
 * (`/json/list`, `/json/version`) and takes one WebSocket client at a time on its target's path.
 *
 * The client talks to the isolate of the execution that runs: a connection made between executions
 * waits (its messages are kept) until the next one starts, and the session ends with the execution.
 * The worker learns from the protocol traffic when the isolate is paused, to stop its clocks.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import { InspectorListenError, type InspectorEndpoint } from "../inspect.js";
import type { InspectorConnection, SandboxIsolate } from "./ivm.js";

/** Only the loopback interface: a debugger can run any code in the isolate. */
export const INSPECTOR_HOST = "127.0.0.1";

export interface InspectorHooks {
  paused(): void;
  resumed(): void;
}

export class InspectorServer {
  readonly #id = randomUUID();
  readonly #hooks: InspectorHooks;
  readonly #http = createServer((request, response) => this.#discovery(request, response));
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  #port = 0;
  #client: WebSocket | undefined;
  /** Messages from the client while no execution runs, sent to the next one's isolate. */
  #backlog: string[] = [];
  #connection: InspectorConnection | undefined;
  #isolate: SandboxIsolate | undefined;
  /** The client asked the plug-in to run (Runtime.runIfWaitingForDebugger) since the last wait began. */
  #runRequested = false;
  #waiters: Array<() => void> = [];
  #paused = false;

  constructor(hooks: InspectorHooks) {
    this.#hooks = hooks;
    this.#http.on("upgrade", (request, socket, head) => {
      if (!this.#trustedHost(request) || request.url !== `/${this.#id}` || this.#client) {
        socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
        return;
      }
      this.#wss.handleUpgrade(request, socket, head, (ws) => this.#accept(ws));
    });
  }

  async listen(port: number): Promise<InspectorEndpoint> {
    await new Promise<void>((resolve, reject) => {
      this.#http.once("error", (error: NodeJS.ErrnoException) => {
        const why = error.code === "EADDRINUSE" ? "the port is in use" : error.message;
        reject(new InspectorListenError(`the debugger endpoint cannot listen on ${INSPECTOR_HOST}:${port}: ${why}; pick another port (--inspect=PORT), or 0 for a free one`));
      });
      this.#http.listen(port, INSPECTOR_HOST, () => {
        this.#http.removeAllListeners("error");
        resolve();
      });
    });
    this.#port = (this.#http.address() as AddressInfo).port;
    return { url: this.#wsUrl(), port: this.#port, devtoolsFrontendUrl: this.#frontendUrl() };
  }

  /** Connects the client (now, or when it comes) to this execution's isolate. */
  attach(isolate: SandboxIsolate): void {
    this.detach();
    this.#runRequested = false;
    this.#isolate = isolate;
    if (this.#client) this.#open(isolate);
  }

  /** Ends the session on the isolate, and the client's connection with it. */
  detach(): void {
    const hadSession = this.#connection !== undefined;
    this.#connection?.close();
    this.#connection = undefined;
    this.#isolate = undefined;
    this.#setPaused(false);
    if (hadSession) this.#client?.close(1000, "the plug-in's execution ended");
  }

  /** Resolves once a client has connected and asked the plug-in to run (Runtime.runIfWaitingForDebugger). */
  waitForDebugger(): Promise<void> {
    if (this.#runRequested) {
      this.#runRequested = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  close(): void {
    this.detach();
    this.#client?.terminate();
    this.#wss.close();
    this.#http.close();
  }

  #accept(ws: WebSocket): void {
    this.#client = ws;
    this.#backlog = [];
    ws.on("message", (data) => this.#fromClient(String(data)));
    ws.on("close", () => {
      if (this.#client !== ws) return;
      this.#client = undefined;
      this.#connection?.close();
      this.#connection = undefined;
      this.#setPaused(false);
    });
    ws.on("error", () => ws.terminate());
    if (this.#isolate) this.#open(this.#isolate);
  }

  #open(isolate: SandboxIsolate): void {
    const client = this.#client!;
    this.#connection = isolate.connectInspector((message) => {
      const head = message.slice(0, 48);
      if (head.includes('"method":"Debugger.paused"')) this.#setPaused(true);
      else if (head.includes('"method":"Debugger.resumed"')) this.#setPaused(false);
      if (client.readyState === client.OPEN) client.send(message);
    });
    for (const message of this.#backlog.splice(0)) this.#connection.send(message);
  }

  #fromClient(message: string): void {
    if (message.includes('"Runtime.runIfWaitingForDebugger"')) {
      const waiters = this.#waiters.splice(0);
      if (waiters.length === 0) this.#runRequested = true;
      for (const resolve of waiters) resolve();
    }
    if (this.#connection) this.#connection.send(message);
    else this.#backlog.push(message);
  }

  #setPaused(paused: boolean): void {
    if (paused === this.#paused) return;
    this.#paused = paused;
    if (paused) this.#hooks.paused();
    else this.#hooks.resumed();
  }

  /** Refuses requests that name another host: a web page could otherwise reach the endpoint through DNS rebinding. */
  #trustedHost(request: IncomingMessage): boolean {
    const host = (request.headers.host ?? "").replace(/:\d+$/, "");
    return host === INSPECTOR_HOST || host === "localhost" || host === "[::1]";
  }

  #discovery(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? "/").split("?")[0]!.replace(/\/$/, "");
    let body: unknown;
    if (!this.#trustedHost(request)) body = undefined;
    else if (path === "/json" || path === "/json/list") body = [this.#target()];
    else if (path === "/json/version") body = { Browser: `plugbox/node.js ${process.version}`, "Protocol-Version": "1.1" };
    if (body === undefined) {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    response.writeHead(200, { "content-type": "application/json; charset=UTF-8" }).end(JSON.stringify(body, null, 2));
  }

  #target(): Record<string, string> {
    return {
      description: "plugbox plug-in sandbox",
      devtoolsFrontendUrl: this.#frontendUrl(),
      id: this.#id,
      title: `plugbox sandbox worker ${process.pid}`,
      type: "node",
      url: "plugbox://sandbox",
      webSocketDebuggerUrl: this.#wsUrl(),
    };
  }

  #wsUrl(): string {
    return `ws://${INSPECTOR_HOST}:${this.#port}/${this.#id}`;
  }

  #frontendUrl(): string {
    return `devtools://devtools/bundled/js_app.html?experiments=true&v8only=true&ws=${INSPECTOR_HOST}:${this.#port}/${this.#id}`;
  }
}
