/**
 * The outbound web client end to end: real plug-ins in the sandbox call IWebClient.fetch (or the
 * global fetch), the host serves them with the WebClient under the network policy, and real HTTP
 * servers on 127.0.0.1 answer, or, for every refused request, count zero connections.
 */
import dc from "node:diagnostics_channel";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, runPlugin, type RunOptions, type RunResult, type WebPolicyInput } from "../../../dist/host/index.js";
import { TestHost } from "../../../dist/host/testing/index.js";
import { Entity } from "../../../dist/sdk/index.js";
import { bundle, useRuntime } from "../../helpers/runtime.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const weatherEntry = path.join(root, "samples/weather/plugin.ts");
const runtime = useRuntime();

let socketsOpened = 0;
const onSocket = () => void socketsOpened++;
beforeAll(() => dc.subscribe("net.client.socket", onSocket));
afterAll(() => void dc.unsubscribe("net.client.socket", onSocket));

// Servers //////////////////////////////////////////////////////////////////////////////////////////

interface Hit {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface TestServer {
  port: number;
  hits: Hit[];
  /** The connections accepted so far, counted once a probe connection has arrived (so none is in flight). */
  settledConnections(): Promise<number>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * /score?name=… answers { score } (503 for the name "Down"); /to?to=<location> redirects there;
 * /slow never answers; anything else echoes the request as JSON.
 */
async function serve(closers: Array<() => Promise<void>> = cleanups): Promise<TestServer> {
  let connections = 0;
  const hits: Hit[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      const hit: Hit = { method: req.method!, url: req.url!, headers: req.headers, body };
      hits.push(hit);
      const url = new URL(hit.url, "http://x");
      if (url.pathname === "/slow") return;
      if (url.pathname === "/to") {
        res.writeHead(302, { location: url.searchParams.get("to")! });
        return void res.end();
      }
      res.setHeader("content-type", "application/json");
      if (url.pathname === "/score") {
        const name = url.searchParams.get("name") ?? "";
        if (name === "Down") {
          res.statusCode = 503;
          return void res.end("{}");
        }
        return void res.end(JSON.stringify({ score: 700 + name.length }));
      }
      res.end(JSON.stringify(hit));
    });
  });
  server.on("connection", () => connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  closers.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    port,
    hits,
    async settledConnections() {
      const arrived = new Promise<void>((resolve) => server.once("connection", () => resolve()));
      const probe = net.connect(port, "127.0.0.1");
      probe.on("error", () => undefined);
      await arrived;
      probe.destroy();
      // Connections are accepted in order: every one made before the probe has been counted by now.
      return connections - 1;
    },
  };
}

/** Reaches `api.test` (and the other names given) on 127.0.0.1 at the servers' ports: the test-only widening. */
function local(ports: number[], more: WebPolicyInput = {}): WebPolicyInput {
  return { resolve: { "api.test": ["127.0.0.1"] }, unsafeAllowLoopback: true, extraPorts: ports, ...more };
}

function run(options: Omit<RunOptions, "runtime">): Promise<RunResult> {
  return runPlugin({ ...options, runtime: runtime() });
}

function outputs(result: RunResult): Record<string, unknown> {
  expect(result.changes, `the run failed: ${result.error?.code}: ${result.error?.message}`).not.toBeNull();
  return result.changes!.outputParameters as Record<string, unknown>;
}

/** A plug-in whose async execute() body is `body`, with `sp`, `web` (IWebClient), `out` and `trace` in scope. */
function plugin(body: string): ReturnType<typeof bundle> {
  return bundle(`
module.exports = {
  P: class {
    constructor(unsecure) { this.config = unsecure; }
    async execute(sp) {
      const out = sp.getService("IPluginExecutionContext").outputParameters;
      const web = sp.getService("IWebClient");
      const trace = sp.getService("ITracingService");
      ${body}
    }
  }
};`);
}

// The weather sample ///////////////////////////////////////////////////////////////////////////////

describe("a plug-in calling a web service (samples/weather)", () => {
  it("built with buildBundle into a temporary directory, CreditCheck gets its score from the service and stores it on the target", async () => {
    const server = await serve();
    const dir = await mkdtemp(path.join(os.tmpdir(), "plugbox-weather-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const built = await buildBundle({ entry: weatherEntry, outfile: path.join(dir, "weather.bundle.js") });
    const result = await run({
      bundle: built.outfile,
      typeName: "CreditCheck",
      unsecureConfig: `http://credit.test:${server.port}`,
      context: { target: new Entity("account", undefined, { name: "Contoso Ltd" }) },
      webPolicy: local([server.port], { resolve: { "credit.test": ["127.0.0.1"] } }),
    });
    expect(result.error).toBeUndefined();
    expect(result).toMatchObject({ ok: true, exitCode: 0, violations: [] });
    expect((result.changes!.target as { attributes: Record<string, unknown> }).attributes).toMatchObject({ name: "Contoso Ltd", creditscore: 711 });
    expect(server.hits).toHaveLength(1);
    expect(server.hits[0]).toMatchObject({ method: "GET", url: "/score?name=Contoso%20Ltd", headers: { accept: "application/json", host: `credit.test:${server.port}` } });
    expect(result.trace).toContain(`GET http://credit.test:${server.port}/score?name=Contoso%20Ltd`);
    expect(result.trace).toContain("score 711");
    expect(result.calls).toEqual([expect.objectContaining({ service: "web", op: "fetch", ok: true })]);
  });

  it("without the widening, the same run is refused by the default policy: the port, then loopback", async () => {
    const server = await serve();
    const dir = await mkdtemp(path.join(os.tmpdir(), "plugbox-weather-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const built = await buildBundle({ entry: weatherEntry, outfile: path.join(dir, "weather.bundle.js") });
    const base = { bundle: built.outfile, typeName: "CreditCheck", unsecureConfig: `http://credit.test:${server.port}`, context: { target: new Entity("account", undefined, { name: "X" }) } };
    const port = await run({ ...base, webPolicy: { resolve: { "credit.test": ["127.0.0.1"] } } });
    expect(port).toMatchObject({ ok: false, exitCode: 4, error: { code: "WEB_PORT" } });
    const loopback = await run({ ...base, webPolicy: { resolve: { "credit.test": ["127.0.0.1"] }, extraPorts: [server.port] } });
    expect(loopback).toMatchObject({ ok: false, exitCode: 4, error: { code: "WEB_LOOPBACK" } });
    expect(await server.settledConnections()).toBe(0);
  });

  describe("through TestHost with a webPolicy", () => {
    let host: TestHost;
    let server: TestServer;
    const closers: Array<() => Promise<void>> = [];
    beforeAll(async () => {
      server = await serve(closers); // outlasts the per-test cleanups
      host = await TestHost.create({ webPolicy: local([server.port], { resolve: { "credit.test": ["127.0.0.1"] }, maxRequestsPerExecution: 1 }) });
    });
    afterAll(async () => {
      await host?.close();
      for (const close of closers) await close();
    });

    it("runs the sample in memory, once per record: each execution has its own request count", async () => {
      const weather = await host.build(weatherEntry);
      for (const name of ["Fabrikam", "Adventure Works"]) {
        const result = await host.run({ bundle: weather, typeName: "CreditCheck", unsecureConfig: `http://credit.test:${server.port}`, context: { target: new Entity("account", undefined, { name }) } });
        expect(result.error).toBeUndefined();
        expect((result.changes!.target as { attributes: Record<string, unknown> }).attributes.creditscore).toBe(700 + name.length);
      }
      expect(server.hits.map((h) => h.url)).toEqual(["/score?name=Fabrikam", "/score?name=Adventure%20Works"]);
    });

    it("a service answering 503 fails the plug-in with its own message (exit 1), not a web error", async () => {
      const weather = await host.build(weatherEntry);
      const result = await host.run({ bundle: weather, typeName: "CreditCheck", unsecureConfig: `http://credit.test:${server.port}`, context: { target: new Entity("account", undefined, { name: "Down" }) } });
      expect(result).toMatchObject({ ok: false, exitCode: 1, violations: [] });
      expect(result.error!.message).toContain("The credit service answered 503.");
      expect(result.calls).toEqual([expect.objectContaining({ service: "web", op: "fetch", ok: true })]);
    });
  });
});

// The sandbox side of fetch ////////////////////////////////////////////////////////////////////////

describe("fetch inside the sandbox", () => {
  it("globalThis.fetch is the same function as getService(\"IWebClient\").fetch, and both reach the server", async () => {
    const server = await serve();
    const result = await run({
      bundle: plugin(`
        out.same = globalThis.fetch === web.fetch && fetch === web.fetch;
        out.type = typeof globalThis.fetch;
        const a = await fetch("http://api.test:${server.port}/global");
        const b = await web.fetch("http://api.test:${server.port}/service");
        out.a = (await a.json()).url;
        out.b = (await b.json()).url;
      `),
      typeName: "P",
      webPolicy: local([server.port]),
    });
    expect(outputs(result)).toMatchObject({ same: true, type: "function", a: "/global", b: "/service" });
    expect(result.exitCode).toBe(0);
  });

  it("a plug-in POSTs a string and a binary body with headers, and reads status, headers, json, text and arrayBuffer", async () => {
    const server = await serve();
    const result = await run({
      bundle: plugin(`
        const base = "http://api.test:${server.port}";
        const r1 = await web.fetch(base + "/text", { method: "POST", headers: { "content-type": "text/plain", "x-n": 1 }, body: "héllo" });
        const echo = await r1.json();
        out.status = r1.status; out.ok = r1.ok; out.ct = r1.headers.get("Content-Type"); out.has = r1.headers.has("content-type");
        out.method = echo.method; out.body = echo.body; out.xn = echo.headers["x-n"];
        let again;
        try { await r1.text(); } catch (e) { again = e.message; }
        out.again = again;
        const r2 = await fetch(base + "/bytes", { method: "PUT", headers: [["content-type", "application/octet-stream"]], body: new Uint8Array([104, 105, 33]) });
        out.bytes = (await r2.json()).body;
        const r3 = await fetch(base + "/raw");
        out.length = (await r3.arrayBuffer()).byteLength > 0;
        const r4 = await fetch(base + "/score?name=abc");
        out.text = await r4.text();
      `),
      typeName: "P",
      webPolicy: local([server.port]),
    });
    expect(outputs(result)).toMatchObject({
      status: 200,
      ok: true,
      ct: "application/json",
      has: true,
      method: "POST",
      body: "héllo",
      xn: "1",
      again: expect.stringContaining("already read"),
      bytes: "hi!",
      length: true,
      text: JSON.stringify({ score: 703 }),
    });
    expect(server.hits.map((h) => `${h.method} ${h.url}`)).toEqual(["POST /text", "PUT /bytes", "GET /raw", "GET /score?name=abc"]);
  });
});

// Refusals /////////////////////////////////////////////////////////////////////////////////////////

describe("a refused request inside the sandbox", () => {
  it("a plug-in that catches it sees err.code naming the rule; the host still records the attempt: trace line, call record, violation, exit 4", async () => {
    const server = await serve();
    const result = await run({
      bundle: plugin(`
        for (const [key, url] of [["name", "http://localhost:${server.port}/"], ["address", "http://loop.test:${server.port}/"]]) {
          try { await fetch(url); out[key] = "reached"; }
          catch (e) { out[key] = e.code; out[key + "Error"] = e instanceof Error; out[key + "Message"] = e.message; }
        }
        out.after = "went on";
      `),
      typeName: "P",
      webPolicy: { resolve: { "loop.test": ["127.0.0.1"] }, extraPorts: [server.port] },
    });
    expect(outputs(result)).toMatchObject({
      name: "WEB_LOOPBACK",
      nameError: true,
      nameMessage: expect.stringContaining("localhost"),
      address: "WEB_LOOPBACK",
      addressError: true,
      addressMessage: expect.stringContaining("127.0.0.1"),
      after: "went on",
    });
    expect(result).toMatchObject({ ok: false, exitCode: 4, error: { code: "SANDBOX_ISOLATION_VIOLATION" } });
    expect(result.violations).toHaveLength(2);
    expect(result.violations.every((v) => v.startsWith("web.fetch: "))).toBe(true);
    expect(result.trace).toContain(`plugbox: fetch http://localhost:${server.port}/ failed [WEB_LOOPBACK]`);
    expect(result.trace).toContain(`plugbox: fetch http://loop.test:${server.port}/ failed [WEB_LOOPBACK]`);
    expect(result.calls.map((c) => [c.service, c.op, c.ok, c.error?.code])).toEqual([
      ["web", "fetch", false, "WEB_LOOPBACK"],
      ["web", "fetch", false, "WEB_LOOPBACK"],
    ]);
    expect(await server.settledConnections()).toBe(0);
  });

  it("a plug-in that lets it escape fails with the rule's code and exit 4; the trace line and the call record are there", async () => {
    const server = await serve();
    const before = socketsOpened;
    const result = await run({
      bundle: plugin(`await fetch("http://127.0.0.1:${server.port}/admin"); out.reached = true;`),
      typeName: "P",
      webPolicy: local([server.port]),
    });
    expect(socketsOpened - before).toBe(0);
    expect(result).toMatchObject({ ok: false, exitCode: 4, changes: null, error: { code: "WEB_IP_LITERAL", message: expect.stringContaining("uses an IP address") } });
    expect(result.trace).toMatch(new RegExp(`plugbox: fetch http://127\\.0\\.0\\.1:${server.port}/admin failed \\[WEB_IP_LITERAL\\]: `));
    expect(result.calls).toEqual([expect.objectContaining({ service: "web", op: "fetch", ok: false, error: expect.objectContaining({ code: "WEB_IP_LITERAL" }) })]);
    expect(result.violations).toEqual([expect.stringContaining("uses an IP address")]);
    expect(await server.settledConnections()).toBe(0);
  });

  it("a limit that escapes fails with its code and exit 3 and is not a violation: WEB_TOO_MANY_REQUESTS, WEB_TIMEOUT", async () => {
    const server = await serve();
    const many = await run({
      bundle: plugin(`for (let i = 0; i < 3; i++) await fetch("http://api.test:${server.port}/n" + i);`),
      typeName: "P",
      webPolicy: local([server.port], { maxRequestsPerExecution: 2 }),
    });
    expect(many).toMatchObject({ ok: false, exitCode: 3, violations: [], error: { code: "WEB_TOO_MANY_REQUESTS" } });
    expect(many.trace).toContain(`plugbox: fetch http://api.test:${server.port}/n2 failed [WEB_TOO_MANY_REQUESTS]`);
    expect(server.hits.map((h) => h.url)).toEqual(["/n0", "/n1"]);
    const slow = await run({ bundle: plugin(`await fetch("http://api.test:${server.port}/slow");`), typeName: "P", webPolicy: local([server.port], { requestTimeoutMs: 300 }) });
    expect(slow).toMatchObject({ ok: false, exitCode: 3, violations: [], error: { code: "WEB_TIMEOUT" } });
    expect(slow.calls).toEqual([expect.objectContaining({ ok: false, error: expect.objectContaining({ code: "WEB_TIMEOUT" }) })]);
  });

  it("a limit the plug-in catches does not fail the run", async () => {
    const server = await serve();
    const result = await run({
      bundle: plugin(`try { await fetch("http://api.test:${server.port}/slow"); } catch (e) { out.code = e.code; }`),
      typeName: "P",
      webPolicy: local([server.port], { requestTimeoutMs: 300 }),
    });
    expect(result).toMatchObject({ ok: true, exitCode: 0, violations: [] });
    expect(outputs(result).code).toBe("WEB_TIMEOUT");
    expect(result.trace).toContain("failed [WEB_TIMEOUT]");
  });

  it("the bundle allow-list (webAllowedHosts) refuses other hosts with WEB_NOT_ALLOWED and lets the listed one through", async () => {
    const server = await serve();
    const other = await serve();
    const result = await run({
      bundle: plugin(`
        for (const [key, url] of [["api", "http://api.test:${server.port}/listed"], ["other", "http://other.test:${other.port}/unlisted"], ["sub", "http://x.api.test:${server.port}/"]]) {
          try { out[key] = (await fetch(url)).status; } catch (e) { out[key] = e.code; }
        }
      `),
      typeName: "P",
      webPolicy: local([server.port, other.port], { resolve: { "api.test": ["127.0.0.1"], "other.test": ["127.0.0.1"], "x.api.test": ["127.0.0.1"] } }),
      webAllowedHosts: ["api.test"],
    });
    expect(outputs(result)).toMatchObject({ api: 200, other: "WEB_NOT_ALLOWED", sub: "WEB_NOT_ALLOWED" });
    expect(result.exitCode).toBe(4);
    expect(result.trace).toContain(`plugbox: fetch http://other.test:${other.port}/unlisted failed [WEB_NOT_ALLOWED]`);
    expect(server.hits.map((h) => h.url)).toEqual(["/listed"]);
    expect(await other.settledConnections()).toBe(0);
  });

  it("a redirect to a forbidden target is refused inside the plug-in, and the target sees no connection", async () => {
    const server = await serve();
    const forbidden = await serve();
    const to = (location: string) => `http://api.test:${server.port}/to?to=${encodeURIComponent(location)}`;
    const result = await run({
      bundle: plugin(`
        const urls = JSON.parse(this.config);
        out.codes = [];
        for (const url of urls) { try { await fetch(url); out.codes.push("reached"); } catch (e) { out.codes.push(e.code); } }
      `),
      typeName: "P",
      unsecureConfig: JSON.stringify([
        to("http://metadata.test/latest/meta-data/"),
        to(`http://127.0.0.1:${forbidden.port}/`),
        to(`http://localhost:${forbidden.port}/`),
        to(`http://private.test:${forbidden.port}/`),
      ]),
      webPolicy: local([server.port, forbidden.port], { resolve: { "api.test": ["127.0.0.1"], "metadata.test": ["169.254.169.254"], "private.test": ["192.168.1.10"] } }),
    });
    expect(outputs(result).codes).toEqual(["WEB_PRIVATE_ADDRESS", "WEB_IP_LITERAL", "WEB_LOOPBACK", "WEB_PRIVATE_ADDRESS"]);
    expect(server.hits).toHaveLength(4);
    // The allowed server was reached (from the sandbox worker, which serves web requests); the forbidden one saw nothing.
    expect(await server.settledConnections()).toBeGreaterThan(0);
    expect(await forbidden.settledConnections()).toBe(0);
  });

  it("attacked from inside a plug-in, every tricky URL is refused with its rule and the counting server sees zero connections", async () => {
    const server = await serve();
    const p = server.port;
    const attacks: Array<[url: string, code: string]> = [
      [`http://127.0.0.1:${p}/`, "WEB_IP_LITERAL"],
      [`http://2130706433:${p}/`, "WEB_IP_LITERAL"],
      [`http://0177.0.0.1:${p}/`, "WEB_IP_LITERAL"],
      [`http://0x7f000001:${p}/`, "WEB_IP_LITERAL"],
      [`http://0x7f.0.0.1:${p}/`, "WEB_IP_LITERAL"],
      [`http://127.1:${p}/`, "WEB_IP_LITERAL"],
      [`http://127.0.1:${p}/`, "WEB_IP_LITERAL"],
      [`http://%31%32%37.0.0.1:${p}/`, "WEB_IP_LITERAL"],
      [`http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:${p}/`, "WEB_IP_LITERAL"],
      [`http:\\\\127.0.0.1:${p}\\`, "WEB_IP_LITERAL"],
      [`http://[::1]:${p}/`, "WEB_IP_LITERAL"],
      [`http://[::ffff:127.0.0.1]:${p}/`, "WEB_IP_LITERAL"],
      [`http://[0:0:0:0:0:ffff:7f00:1]:${p}/`, "WEB_IP_LITERAL"],
      [`http://0.0.0.0:${p}/`, "WEB_IP_LITERAL"],
      [`http://0:${p}/`, "WEB_IP_LITERAL"],
      ["http://169.254.169.254/latest/meta-data/", "WEB_IP_LITERAL"],
      [`http://localhost:${p}/`, "WEB_LOOPBACK"],
      [`http://LOCALHOST:${p}/`, "WEB_LOOPBACK"],
      [`http://localhost.:${p}/`, "WEB_LOOPBACK"],
      [`http://foo.localhost:${p}/`, "WEB_LOOPBACK"],
      [`http://example.com@127.0.0.1:${p}/`, "WEB_USERINFO"],
      [`http://user:pw@loop.test:${p}/`, "WEB_USERINFO"],
      [`ftp://loop.test:${p}/`, "WEB_SCHEME"],
      ["file:///etc/passwd", "WEB_SCHEME"],
      ["data:text/plain,hello", "WEB_SCHEME"],
      ["javascript:alert(1)", "WEB_SCHEME"],
      [`ws://loop.test:${p}/`, "WEB_SCHEME"],
      [`gopher://loop.test:${p}/`, "WEB_SCHEME"],
      [`http://loop.test:${p === 8080 ? 8081 : 8080}/`, "WEB_PORT"],
      [`http://evil.example:${p}/`, "WEB_NOT_ALLOWED"],
      [`http://loop.test.evil.example:${p}/`, "WEB_NOT_ALLOWED"],
      ["not a url", "WEB_INVALID_URL"],
      // Names that pass every URL rule and are refused when the connection is made:
      [`http://loop.test:${p}/`, "WEB_LOOPBACK"],
      [`http://multi.test:${p}/`, "WEB_LOOPBACK"],
      [`http://zero.test:${p}/`, "WEB_LOOPBACK"],
      [`http://mapped.test:${p}/`, "WEB_LOOPBACK"],
      [`http://v6loop.test:${p}/`, "WEB_LOOPBACK"],
      [`http://sixtofour.test:${p}/`, "WEB_LOOPBACK"],
      [`http://intranet.test:${p}/`, "WEB_PRIVATE_ADDRESS"],
      ["http://metadata.test/latest/meta-data/", "WEB_PRIVATE_ADDRESS"],
      [`http://nat64.test:${p}/`, "WEB_PRIVATE_ADDRESS"],
      [`http://ula.test:${p}/`, "WEB_PRIVATE_ADDRESS"],
      [`http://linklocal6.test:${p}/`, "WEB_PRIVATE_ADDRESS"],
      [`http://cgnat.test:${p}/`, "WEB_PRIVATE_ADDRESS"],
    ];
    expect(attacks.length).toBeGreaterThanOrEqual(25);
    const before = socketsOpened;
    const result = await run({
      bundle: plugin(`
        const codes = [];
        for (const url of JSON.parse(this.config)) {
          try { const r = await fetch(url); codes.push("reached " + r.status); }
          catch (e) { codes.push(String(e.code)); }
        }
        out.codes = JSON.stringify(codes);
      `),
      typeName: "P",
      unsecureConfig: JSON.stringify(attacks.map(([url]) => url)),
      limits: { traceBytes: 1_000_000 },
      webAllowedHosts: ["*.test"],
      webPolicy: {
        extraPorts: [p],
        maxRequestsPerExecution: 1_000,
        resolve: {
          "loop.test": ["127.0.0.1"],
          "multi.test": ["93.184.216.34", "127.0.0.1"],
          "zero.test": ["0.0.0.0"],
          "mapped.test": ["::ffff:127.0.0.1"],
          "v6loop.test": ["::1"],
          "sixtofour.test": ["2002:7f00:1::"],
          "intranet.test": ["10.1.2.3"],
          "metadata.test": ["169.254.169.254"],
          "nat64.test": ["64:ff9b::a00:1"],
          "ula.test": ["fd00::1"],
          "linklocal6.test": ["fe80::1"],
          "cgnat.test": ["100.64.0.1"],
        },
      },
    });
    const codes = JSON.parse(outputs(result).codes as string) as string[];
    expect(attacks.map(([url], i) => [url, codes[i]])).toEqual(attacks);
    // The host recorded each: a call with the code, a trace line, a violation.
    expect(result.calls.map((c) => c.error?.code)).toEqual(attacks.map(([, code]) => code));
    expect(result.trace.split("\n").filter((line) => line.startsWith("plugbox: fetch "))).toHaveLength(attacks.length);
    for (const [, code] of attacks) expect(result.trace).toContain(`failed [${code}]`);
    expect(result.violations).toHaveLength(attacks.length);
    expect(result).toMatchObject({ ok: false, exitCode: 4, error: { code: "SANDBOX_ISOLATION_VIOLATION" } });
    // Nothing left the machine: no client socket was opened, and the server counted no connection.
    expect(socketsOpened - before).toBe(0);
    expect(await server.settledConnections()).toBe(0);
    expect(server.hits).toHaveLength(0);
  });
});
