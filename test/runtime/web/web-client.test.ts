/**
 * The outbound web client against real HTTP servers on 127.0.0.1, reached through the resolver
 * override (`resolve: { "api.test": ["127.0.0.1"] }`) with the test-only loopback allowance.
 *
 * "No refused request leaves the machine" is proved twice over: every test server counts the TCP
 * connections it accepts, and the `net.client.socket` diagnostics channel counts every client socket
 * this process opens (so a refused request to an address no server listens on is covered too).
 */
import { execFile } from "node:child_process";
import dc from "node:diagnostics_channel";
import http from "node:http";
import { createRequire, syncBuiltinESMExports } from "node:module";
import net from "node:net";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebClient, WebError, type WebFetchOptions, type WebResponseValue } from "../../../dist/host/testing/internal.js";
import type { WebPolicyInput } from "../../../dist/host/index.js";

// Counting ////////////////////////////////////////////////////////////////////////////////////////

let socketsOpened = 0;
const onSocket = () => void socketsOpened++;
beforeAll(() => dc.subscribe("net.client.socket", onSocket));
afterAll(() => void dc.unsubscribe("net.client.socket", onSocket));

interface Hit {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

type Handler = (hit: Hit, res: http.ServerResponse, req: http.IncomingMessage) => void;

interface TestServer {
  port: number;
  /** TCP connections accepted. */
  connections: number;
  /** Requests received, body read. */
  hits: Hit[];
  /** The connections accepted so far, counted after a probe connection has arrived (so none is in flight). */
  settledConnections(): Promise<number>;
}

/** Answers with the request as JSON: method, url, headers, body (base64). */
const echo: Handler = (hit, res) => {
  res.setHeader("content-type", "application/json");
  res.setHeader("x-echo", "1");
  res.end(JSON.stringify({ method: hit.method, url: hit.url, headers: hit.headers, rawHeaders: hit.rawHeaders, bodyBase64: hit.body.toString("base64") }));
};

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(handler: Handler = echo): Promise<TestServer> {
  const state = { connections: 0, hits: [] as Hit[] };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const hit: Hit = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks) };
      state.hits.push(hit);
      handler(hit, res, req);
    });
  });
  server.on("connection", () => state.connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    port,
    get connections() {
      return state.connections;
    },
    hits: state.hits,
    async settledConnections() {
      const before = state.connections;
      const arrived = new Promise<void>((resolve) => server.once("connection", () => resolve()));
      const probe = net.connect(port, "127.0.0.1");
      probe.on("error", () => undefined);
      await arrived;
      probe.destroy();
      // Connections are accepted in order: every one made before the probe has been counted by now.
      expect(state.connections).toBeGreaterThan(before);
      return state.connections - 1;
    },
  };
}

/** A policy that reaches `api.test` (and the other names given) on 127.0.0.1 at the servers' ports. */
function local(ports: number[], more: WebPolicyInput = {}): WebPolicyInput {
  return { resolve: { "api.test": ["127.0.0.1"] }, unsafeAllowLoopback: true, extraPorts: ports, ...more };
}

function client(policy: WebPolicyInput): WebClient {
  const web = new WebClient(policy);
  cleanups.push(() => web.close());
  return web;
}

/** The code a request is refused with. Fails the test if it succeeds or throws something else. */
async function refusal(web: WebClient, request: unknown, options: WebFetchOptions = {}): Promise<string> {
  let response: WebResponseValue | undefined;
  try {
    response = await web.fetch(request, options);
  } catch (error) {
    expect(error, String((error as Error).stack)).toBeInstanceOf(WebError);
    return (error as WebError).code;
  }
  throw new Error(`expected a refusal, got status ${response.status}`);
}

function json(response: WebResponseValue): { method: string; url: string; headers: Record<string, string>; rawHeaders: string[]; bodyBase64: string } {
  return JSON.parse(Buffer.from(response.bodyBase64, "base64").toString("utf8"));
}

/** Runs `action` and returns how many client sockets it opened. */
async function socketsDuring(action: () => Promise<unknown>): Promise<number> {
  const before = socketsOpened;
  await action();
  return socketsOpened - before;
}

// Round trips /////////////////////////////////////////////////////////////////////////////////////

describe("WebClient: requests and responses", () => {
  it("GET: the server sees the method, path, query and headers; status, headers and body come back", async () => {
    const server = await serve();
    const web = client(local([server.port]));
    const response = await web.fetch({ url: `http://api.test:${server.port}/a/b?x=1&y=%20`, headers: [["accept", "application/json"], ["X-Trace", "t-1"]] });
    expect(response).toMatchObject({ status: 200, statusText: "OK", url: `http://api.test:${server.port}/a/b?x=1&y=%20`, redirected: false });
    expect(response.headers).toEqual(expect.arrayContaining([["content-type", "application/json"], ["x-echo", "1"]]));
    const seen = json(response);
    expect(seen).toMatchObject({ method: "GET", url: "/a/b?x=1&y=%20", bodyBase64: "" });
    expect(seen.headers).toMatchObject({ accept: "application/json", "x-trace": "t-1", host: `api.test:${server.port}` });
  });

  it("a deadline closer than the request timeout, at a fraction of a millisecond (an execution's wall limit), bounds the request and the request is made", async () => {
    const server = await serve();
    const web = client(local([server.port]));
    const response = await web.fetch({ url: `http://api.test:${server.port}/short` }, { deadline: Date.now() + 5_000.25 });
    expect(response.status).toBe(200);
    expect(await refusal(web, { url: "http://localhost/" }, { deadline: Date.now() + 9_999.5 })).toBe("WEB_LOOPBACK");
  });

  it("POST with a string body: the server receives the exact UTF-8 bytes and their length", async () => {
    const server = await serve();
    const web = client(local([server.port]));
    const text = "créé ✓ 𝄞 {\"a\":1}";
    const response = await web.fetch({ url: `http://api.test:${server.port}/items`, method: "post", headers: [["content-type", "application/json; charset=utf-8"]], bodyText: text });
    const seen = json(response);
    expect(seen.method).toBe("POST");
    expect(Buffer.from(seen.bodyBase64, "base64").toString("utf8")).toBe(text);
    expect(seen.headers["content-length"]).toBe(String(Buffer.byteLength(text)));
    expect(seen.headers["content-type"]).toBe("application/json; charset=utf-8");
  });

  it("PUT with a binary body: every byte value arrives as sent, and a binary response comes back byte for byte", async () => {
    const bytes = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7) % 256));
    const server = await serve((hit, res) => {
      res.setHeader("content-type", "application/octet-stream");
      res.end(Buffer.concat([hit.body, Buffer.from([0, 255, 0])]));
    });
    const web = client(local([server.port]));
    const response = await web.fetch({ url: `http://api.test:${server.port}/blob`, method: "PUT", bodyBase64: bytes.toString("base64") });
    expect(server.hits[0]!.method).toBe("PUT");
    expect(server.hits[0]!.body.equals(bytes)).toBe(true);
    expect(Buffer.from(response.bodyBase64, "base64").equals(Buffer.concat([bytes, Buffer.from([0, 255, 0])]))).toBe(true);
  });

  it("every allowed method reaches the server as itself", async () => {
    const server = await serve();
    const web = client(local([server.port]));
    for (const method of ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) {
      const response = await web.fetch({ url: `http://api.test:${server.port}/m`, method });
      expect(response.status).toBe(200);
    }
    expect(server.hits.map((h) => h.method)).toEqual(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
  });

  it("a non-2xx status is a response, not an error; repeated response headers come back as separate entries", async () => {
    const server = await serve((_hit, res) => {
      res.writeHead(404, [
        ["set-cookie", "a=1"],
        ["set-cookie", "b=2"],
        ["x-reason", "missing"],
      ]);
      res.end("nope");
    });
    const web = client(local([server.port]));
    const response = await web.fetch({ url: `http://api.test:${server.port}/missing` });
    expect(response.status).toBe(404);
    expect(response.statusText).toBe("Not Found");
    expect(response.headers.filter(([name]) => name === "set-cookie").map(([, value]) => value)).toEqual(["a=1", "b=2"]);
    expect(response.headers).toContainEqual(["x-reason", "missing"]);
    expect(Buffer.from(response.bodyBase64, "base64").toString()).toBe("nope");
  });

  it("the Host header set by the caller is ignored (and so are the other connection headers): the server sees the real host", async () => {
    const server = await serve();
    const web = client(local([server.port]));
    const response = await web.fetch({
      url: `http://api.test:${server.port}/`,
      method: "POST",
      bodyText: "x",
      headers: [
        ["Host", "metadata.google.internal"],
        ["host", "169.254.169.254"],
        ["Connection", "close"],
        ["Transfer-Encoding", "chunked"],
        ["Content-Length", "999"],
        ["Proxy-Authorization", "Basic Zm9vOmJhcg=="],
        ["x-kept", "yes"],
      ],
    });
    const seen = json(response);
    expect(seen.headers.host).toBe(`api.test:${server.port}`);
    expect(seen.rawHeaders.filter((_, i) => i % 2 === 0).filter((name) => name.toLowerCase() === "host")).toHaveLength(1);
    expect(seen.headers["content-length"]).toBe("1");
    expect(seen.headers["transfer-encoding"]).toBeUndefined();
    expect(seen.headers["proxy-authorization"]).toBeUndefined();
    expect(seen.headers["x-kept"]).toBe("yes");
  });

  it("a trailing dot on the name reaches the same resolver entry", async () => {
    const server = await serve();
    const web = client(local([server.port]));
    expect((await web.fetch({ url: `http://API.test.:${server.port}/dot` })).status).toBe(200);
    expect(server.hits[0]!.url).toBe("/dot");
  });

  it("malformed requests are refused with WEB_INVALID_REQUEST before any connection", async () => {
    const server = await serve();
    const web = client(local([server.port]));
    const url = `http://api.test:${server.port}/`;
    const opened = await socketsDuring(async () => {
      expect(await refusal(web, { url, method: "TRACE" })).toBe("WEB_INVALID_REQUEST");
      expect(await refusal(web, { url, method: "CONNECT" })).toBe("WEB_INVALID_REQUEST");
      expect(await refusal(web, { url, method: "GET", bodyText: "x" })).toBe("WEB_INVALID_REQUEST");
      expect(await refusal(web, { url, headers: [["x-bad", "a\r\nInjected: 1"]] })).toBe("WEB_INVALID_REQUEST");
      expect(await refusal(web, { url, headers: [["bad name", "v"]] })).toBe("WEB_INVALID_REQUEST");
      expect(await refusal(web, { url, headers: { a: "b" } })).toBe("WEB_INVALID_REQUEST");
      expect(await refusal(web, "http://api.test/")).toBe("WEB_INVALID_REQUEST");
      expect(await refusal(web, { url: 42 })).toBe("WEB_INVALID_URL");
      expect(await refusal(web, { url: `http://api.test:${server.port}/${"a".repeat(9_000)}` })).toBe("WEB_INVALID_URL");
    });
    expect(opened).toBe(0);
    expect(await server.settledConnections()).toBe(0);
  });
});

// The policy at connect time ///////////////////////////////////////////////////////////////////////

describe("WebClient: addresses are checked when the connection is made", () => {
  it("a name the resolver maps to 127.0.0.1 is refused with WEB_LOOPBACK when loopback is not allowed; the server there sees no connection", async () => {
    const server = await serve();
    const web = client({ resolve: { "api.test": ["127.0.0.1"] }, extraPorts: [server.port] });
    const opened = await socketsDuring(async () => expect(await refusal(web, { url: `http://api.test:${server.port}/` })).toBe("WEB_LOOPBACK"));
    expect(opened).toBe(0);
    expect(await server.settledConnections()).toBe(0);
    expect(server.hits).toHaveLength(0);
  });

  it("unsafeAllowPrivateNetwork does not open loopback: still WEB_LOOPBACK, still no connection", async () => {
    const server = await serve();
    const web = client({ resolve: { "api.test": ["127.0.0.1"], "v6.test": ["::ffff:127.0.0.1"] }, extraPorts: [server.port], unsafeAllowPrivateNetwork: true });
    expect(await refusal(web, { url: `http://api.test:${server.port}/` })).toBe("WEB_LOOPBACK");
    expect(await refusal(web, { url: `http://v6.test:${server.port}/` })).toBe("WEB_LOOPBACK");
    expect(await server.settledConnections()).toBe(0);
  });

  it("a name the resolver maps to a private address is refused with WEB_PRIVATE_ADDRESS before any socket is opened", async () => {
    const server = await serve();
    const web = client(local([server.port], { resolve: { "api.test": ["127.0.0.1"], "intranet.test": ["10.0.0.1"], "meta.test": ["169.254.169.254"], "ula.test": ["fd00::1"] } }));
    const opened = await socketsDuring(async () => {
      expect(await refusal(web, { url: `http://intranet.test:${server.port}/` })).toBe("WEB_PRIVATE_ADDRESS");
      expect(await refusal(web, { url: "http://meta.test/latest/meta-data/" })).toBe("WEB_PRIVATE_ADDRESS");
      expect(await refusal(web, { url: "https://ula.test/" })).toBe("WEB_PRIVATE_ADDRESS");
    });
    expect(opened).toBe(0);
    expect(await server.settledConnections()).toBe(0);
  });

  it("a name resolving to several addresses, one of them loopback, is refused whichever position the loopback address holds", async () => {
    const server = await serve();
    const web = client({ resolve: { "first.test": ["127.0.0.1", "93.184.216.34"], "last.test": ["93.184.216.34", "2606:2800:220:1::", "127.0.0.1"] }, extraPorts: [server.port] });
    const opened = await socketsDuring(async () => {
      expect(await refusal(web, { url: `http://first.test:${server.port}/` })).toBe("WEB_LOOPBACK");
      expect(await refusal(web, { url: `http://last.test:${server.port}/` })).toBe("WEB_LOOPBACK");
    });
    expect(opened).toBe(0);
    expect(await server.settledConnections()).toBe(0);
  });

  it("DNS rebinding: a public-looking answer that also holds a forbidden address is refused at connect time, and no socket goes to the public one either", async () => {
    const web = client({ resolve: { "rebind.test": ["93.184.216.34", "10.0.0.1"], "meta.test": ["8.8.8.8", "::ffff:169.254.169.254"], "nat.test": ["93.184.216.34", "64:ff9b::a00:1"] } });
    const opened = await socketsDuring(async () => {
      expect(await refusal(web, { url: "http://rebind.test/" })).toBe("WEB_PRIVATE_ADDRESS");
      expect(await refusal(web, { url: "https://meta.test/" })).toBe("WEB_PRIVATE_ADDRESS");
      expect(await refusal(web, { url: "http://nat.test/" })).toBe("WEB_PRIVATE_ADDRESS");
    });
    expect(opened).toBe(0);
  });

  describe("through DNS (the resolver stubbed at node:dns/promises)", () => {
    const dnsPromises = createRequire(import.meta.url)("node:dns/promises") as typeof import("node:dns/promises");
    const realLookup = dnsPromises.lookup;
    let answers: Record<string, string[][]> = {};
    let asked: string[] = [];
    beforeAll(() => {
      (dnsPromises as { lookup: unknown }).lookup = async (name: string) => {
        asked.push(name);
        const queue = answers[name];
        if (!queue || queue.length === 0) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: "ENOTFOUND" });
        const next = queue.length > 1 ? queue.shift()! : queue[0]!;
        return next.map((address) => ({ address, family: net.isIP(address) }));
      };
      syncBuiltinESMExports();
    });
    afterAll(() => {
      (dnsPromises as { lookup: unknown }).lookup = realLookup;
      syncBuiltinESMExports();
    });
    afterEach(() => {
      answers = {};
      asked = [];
    });

    it("DNS rebinding: the name is looked up once per connection and the socket goes to the address that was checked, not to a second answer", async () => {
      const server = await serve();
      // First answer: the test server (loopback is allowed here). Any later answer: a private address.
      answers = { "rebind.test": [["127.0.0.1"], ["10.0.0.1"]] };
      const web = client({ unsafeAllowLoopback: true, extraPorts: [server.port] });
      const response = await web.fetch({ url: `http://rebind.test:${server.port}/pinned` });
      expect(response.status).toBe(200);
      expect(asked).toEqual(["rebind.test"]);
      expect(server.hits.map((h) => h.url)).toEqual(["/pinned"]);
      expect(server.hits[0]!.headers.host).toBe(`rebind.test:${server.port}`);
    });

    it("a name that DNS resolves to loopback is refused with WEB_LOOPBACK and the server there sees no connection", async () => {
      const server = await serve();
      answers = { "sneaky.test": [["127.0.0.1"]], "sneaky6.test": [["2606:2800:220:1::", "::1"]] };
      const web = client({ extraPorts: [server.port] });
      const opened = await socketsDuring(async () => {
        expect(await refusal(web, { url: `http://sneaky.test:${server.port}/` })).toBe("WEB_LOOPBACK");
        expect(await refusal(web, { url: `http://sneaky6.test:${server.port}/` })).toBe("WEB_LOOPBACK");
      });
      expect(opened).toBe(0);
      expect(await server.settledConnections()).toBe(0);
    });

    it("a name that does not resolve, or resolves to nothing, fails with WEB_DNS", async () => {
      answers = { "empty.test": [[]] };
      const web = client({});
      expect(await refusal(web, { url: "http://nowhere.test/" })).toBe("WEB_DNS");
      expect(await refusal(web, { url: "http://empty.test/" })).toBe("WEB_DNS");
    });

    it("the resolver table wins over DNS", async () => {
      const server = await serve();
      answers = { "api.test": [["10.0.0.1"]] };
      const web = client(local([server.port]));
      expect((await web.fetch({ url: `http://api.test:${server.port}/` })).status).toBe(200);
      expect(asked).toEqual([]);
    });
  });
});

// Redirects ////////////////////////////////////////////////////////////////////////////////////////

/** Redirects /to?<location> to <location> with the status in ?status (default 302). */
function redirector(fallback: Handler = echo): Handler {
  return (hit, res, req) => {
    const url = new URL(hit.url, "http://x");
    const to = url.searchParams.get("to");
    if (url.pathname === "/to" && to !== null) {
      res.writeHead(Number(url.searchParams.get("status") ?? 302), { location: to });
      res.end();
      return;
    }
    fallback(hit, res, req);
  };
}

describe("WebClient: redirects are followed by the client and each hop is checked again", () => {
  const to = (port: number, location: string, status = 302) => `http://api.test:${port}/to?status=${status}&to=${encodeURIComponent(location)}`;

  it("a redirect within the policy is followed: the response carries the final URL and redirected: true", async () => {
    const server = await serve(redirector());
    const web = client(local([server.port]));
    const response = await web.fetch({ url: to(server.port, "/landing?x=1") });
    expect(response).toMatchObject({ status: 200, redirected: true, url: `http://api.test:${server.port}/landing?x=1` });
    expect(server.hits.map((h) => h.url)).toEqual([`/to?status=302&to=${encodeURIComponent("/landing?x=1")}`, "/landing?x=1"]);
  });

  it("a redirect to a name that resolves to the cloud metadata address (169.254.169.254) is refused with WEB_PRIVATE_ADDRESS; no socket is opened for that hop", async () => {
    const server = await serve(redirector());
    const web = client(local([server.port], { resolve: { "api.test": ["127.0.0.1"], "metadata.test": ["169.254.169.254"] } }));
    const opened = await socketsDuring(async () => expect(await refusal(web, { url: to(server.port, "http://metadata.test/latest/meta-data/iam/") })).toBe("WEB_PRIVATE_ADDRESS"));
    expect(opened).toBe(1); // the connection to the first server, and no other
    expect(server.hits).toHaveLength(1);
  });

  it("a redirect to http://127.0.0.1/ is refused with WEB_IP_LITERAL and the server at that address sees no connection", async () => {
    const forbidden = await serve();
    const server = await serve(redirector());
    const web = client(local([server.port, forbidden.port]));
    expect(await refusal(web, { url: to(server.port, `http://127.0.0.1:${forbidden.port}/admin`) })).toBe("WEB_IP_LITERAL");
    expect(await refusal(web, { url: to(server.port, `http://[::ffff:7f00:1]:${forbidden.port}/admin`, 307) })).toBe("WEB_IP_LITERAL");
    expect(await refusal(web, { url: to(server.port, `http://2130706433:${forbidden.port}/admin`, 301) })).toBe("WEB_IP_LITERAL");
    expect(await forbidden.settledConnections()).toBe(0);
    expect(server.hits).toHaveLength(3);
  });

  it("a redirect to localhost, to a port not allowed, to another scheme or with credentials is refused with that rule; the target sees no connection", async () => {
    const forbidden = await serve();
    const server = await serve(redirector());
    const web = client(local([server.port], { resolve: { "api.test": ["127.0.0.1"], "other.test": ["127.0.0.1"] } }));
    expect(await refusal(web, { url: to(server.port, `http://localhost:${forbidden.port}/`) })).toBe("WEB_LOOPBACK");
    expect(await refusal(web, { url: to(server.port, `http://other.test:${forbidden.port}/`) })).toBe("WEB_PORT");
    expect(await refusal(web, { url: to(server.port, "file:///etc/passwd") })).toBe("WEB_SCHEME");
    expect(await refusal(web, { url: to(server.port, `http://u:p@other.test:${forbidden.port}/`) })).toBe("WEB_USERINFO");
    expect(await forbidden.settledConnections()).toBe(0);
  });

  it("a redirect off the host allow-list or the bundle allow-list is refused with WEB_NOT_ALLOWED; the target sees no connection", async () => {
    const forbidden = await serve();
    const server = await serve(redirector());
    const resolve = { "api.test": ["127.0.0.1"], "other.test": ["127.0.0.1"] };
    const hostList = client(local([server.port, forbidden.port], { resolve, allowedHosts: ["api.test"] }));
    expect(await refusal(hostList, { url: to(server.port, `http://other.test:${forbidden.port}/`) })).toBe("WEB_NOT_ALLOWED");
    const open = client(local([server.port, forbidden.port], { resolve }));
    expect(await refusal(open, { url: to(server.port, `http://other.test:${forbidden.port}/`) }, { allowedHosts: ["api.test"] })).toBe("WEB_NOT_ALLOWED");
    expect(await forbidden.settledConnections()).toBe(0);
    // The same redirect without the allow-list does reach the other server: the refusals above were the lists'.
    expect((await open.fetch({ url: to(server.port, `http://other.test:${forbidden.port}/`) })).status).toBe(200);
    expect(forbidden.hits).toHaveLength(1);
  });

  it("maxRedirects redirects are followed; one more fails with WEB_TOO_MANY_REDIRECTS and the next hop is never requested", async () => {
    const server = await serve((hit, res) => {
      const left = Number(/^\/hop\/(\d+)$/.exec(hit.url)?.[1] ?? 0);
      if (left === 0) return void res.end("arrived");
      res.writeHead(302, { location: `/hop/${left - 1}` });
      res.end();
    });
    const web = client(local([server.port], { maxRedirects: 3 }));
    const response = await web.fetch({ url: `http://api.test:${server.port}/hop/3` });
    expect(response).toMatchObject({ status: 200, redirected: true, url: `http://api.test:${server.port}/hop/0` });
    server.hits.length = 0;
    expect(await refusal(web, { url: `http://api.test:${server.port}/hop/4` })).toBe("WEB_TOO_MANY_REDIRECTS");
    expect(server.hits.map((h) => h.url)).toEqual(["/hop/4", "/hop/3", "/hop/2", "/hop/1"]);
  });

  it("a redirect loop ends with WEB_TOO_MANY_REDIRECTS; with maxRedirects 0 the first redirect does", async () => {
    const server = await serve((_hit, res) => {
      res.writeHead(301, { location: "/again" });
      res.end();
    });
    expect(await refusal(client(local([server.port])), { url: `http://api.test:${server.port}/again` })).toBe("WEB_TOO_MANY_REDIRECTS");
    expect(server.hits).toHaveLength(6);
    expect(await refusal(client(local([server.port], { maxRedirects: 0 })), { url: `http://api.test:${server.port}/again` })).toBe("WEB_TOO_MANY_REDIRECTS");
    expect(server.hits).toHaveLength(7);
  });

  it("303 turns a POST into a GET without its body or content headers; 302 after a POST does too", async () => {
    const server = await serve(redirector());
    const web = client(local([server.port]));
    for (const status of [303, 302]) {
      server.hits.length = 0;
      const response = await web.fetch({ url: to(server.port, "/result", status), method: "POST", bodyText: "payload", headers: [["content-type", "text/plain"], ["x-keep", "1"]] });
      const seen = json(response);
      expect(seen.method, String(status)).toBe("GET");
      expect(seen.bodyBase64).toBe("");
      expect(seen.headers["content-type"]).toBeUndefined();
      expect(seen.headers["content-length"]).toBeUndefined();
      expect(seen.headers["x-keep"]).toBe("1");
      expect(server.hits[0]!.body.toString()).toBe("payload");
    }
  });

  it("307 and 308 repeat the POST with its body", async () => {
    const server = await serve(redirector());
    const web = client(local([server.port]));
    for (const status of [307, 308]) {
      const seen = json(await web.fetch({ url: to(server.port, "/again", status), method: "POST", bodyText: "same body" }));
      expect(seen.method, String(status)).toBe("POST");
      expect(Buffer.from(seen.bodyBase64, "base64").toString()).toBe("same body");
    }
  });

  it("a cross-origin redirect drops Authorization and Cookie; a same-origin one keeps them", async () => {
    const other = await serve();
    const server = await serve(redirector());
    const web = client(local([server.port, other.port], { resolve: { "api.test": ["127.0.0.1"], "other.test": ["127.0.0.1"] } }));
    const headers: Array<[string, string]> = [["Authorization", "Bearer secret"], ["Cookie", "session=1"], ["x-other", "kept"]];
    const same = json(await web.fetch({ url: to(server.port, "/same"), headers }));
    expect(same.headers).toMatchObject({ authorization: "Bearer secret", cookie: "session=1", "x-other": "kept" });
    const cross = json(await web.fetch({ url: to(server.port, `http://other.test:${other.port}/cross`), headers }));
    expect(cross.url).toBe("/cross");
    expect(cross.headers.authorization).toBeUndefined();
    expect(cross.headers.cookie).toBeUndefined();
    expect(cross.headers["x-other"]).toBe("kept");
  });

  it("a redirect whose Location does not parse fails with WEB_INVALID_URL", async () => {
    const server = await serve((_hit, res) => {
      res.writeHead(302, { location: "http://[not-an-address/" });
      res.end();
    });
    const web = client(local([server.port]));
    let caught: unknown;
    try {
      await web.fetch({ url: `http://api.test:${server.port}/bad-location` });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(WebError);
    expect(caught).toMatchObject({ code: "WEB_INVALID_URL" });
  });
});

// Limits ///////////////////////////////////////////////////////////////////////////////////////////

describe("WebClient: limits", () => {
  it("a server that never sends its headers: WEB_TIMEOUT after requestTimeoutMs", async () => {
    const server = await serve(() => undefined);
    const web = client(local([server.port], { requestTimeoutMs: 300 }));
    expect(await refusal(web, { url: `http://api.test:${server.port}/slow` })).toBe("WEB_TIMEOUT");
    expect(server.hits).toHaveLength(1);
  });

  it("a server that sends its headers and then stalls the body: WEB_TIMEOUT", async () => {
    const server = await serve((_hit, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("first bytes, then nothing");
    });
    const web = client(local([server.port], { requestTimeoutMs: 300 }));
    expect(await refusal(web, { url: `http://api.test:${server.port}/stall` })).toBe("WEB_TIMEOUT");
  });

  it("the execution's deadline shortens the request timeout below requestTimeoutMs", { timeout: 5_000 }, async () => {
    const server = await serve(() => undefined);
    const web = client(local([server.port]));
    expect(await refusal(web, { url: `http://api.test:${server.port}/slow` }, { deadline: Date.now() + 300 })).toBe("WEB_TIMEOUT");
  });

  it("a deadline already passed fails with WEB_TIMEOUT", async () => {
    const server = await serve(() => undefined);
    const web = client(local([server.port]));
    expect(await refusal(web, { url: `http://api.test:${server.port}/late` }, { deadline: Date.now() - 1_000 })).toBe("WEB_TIMEOUT");
  });

  it("a deadline already passed is refused before any connection is made", async () => {
    const server = await serve();
    const web = client(local([server.port]));
    const opened = await socketsDuring(async () => {
      await web.fetch({ url: `http://api.test:${server.port}/late` }, { deadline: Date.now() - 1_000 }).catch(() => undefined);
    });
    expect(opened).toBe(0);
    expect(await server.settledConnections()).toBe(0);
  });

  it("an endless body stops at maxResponseBytes with WEB_TOO_LARGE", async () => {
    let written = 0;
    const server = await serve((_hit, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      const chunk = Buffer.alloc(16 * 1024, 0x61);
      const pump = () => {
        while (!res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
      };
      res.on("close", () => res.removeAllListeners("drain"));
      pump();
    });
    const web = client(local([server.port], { maxResponseBytes: 64 * 1024 }));
    expect(await refusal(web, { url: `http://api.test:${server.port}/forever` })).toBe("WEB_TOO_LARGE");
    expect(written).toBeGreaterThan(64 * 1024);
  });

  it("a response body of exactly maxResponseBytes is accepted", async () => {
    const server = await serve((_hit, res) => res.end(Buffer.alloc(1_000, 0x62)));
    const web = client(local([server.port], { maxResponseBytes: 1_000 }));
    const response = await web.fetch({ url: `http://api.test:${server.port}/exact` });
    expect(Buffer.from(response.bodyBase64, "base64").length).toBe(1_000);
  });

  it("a request body over maxRequestBytes is refused with WEB_TOO_LARGE before any connection, as text or as bytes", async () => {
    const server = await serve();
    const web = client(local([server.port], { maxRequestBytes: 1_000 }));
    const url = `http://api.test:${server.port}/upload`;
    const opened = await socketsDuring(async () => {
      expect(await refusal(web, { url, method: "POST", bodyText: "x".repeat(1_001) })).toBe("WEB_TOO_LARGE");
      expect(await refusal(web, { url, method: "POST", bodyText: "é".repeat(501) })).toBe("WEB_TOO_LARGE"); // 1,002 bytes in UTF-8
      expect(await refusal(web, { url, method: "PUT", bodyBase64: Buffer.alloc(1_001).toString("base64") })).toBe("WEB_TOO_LARGE");
    });
    expect(opened).toBe(0);
    expect(await server.settledConnections()).toBe(0);
    expect((await web.fetch({ url, method: "POST", bodyText: "x".repeat(1_000) })).status).toBe(200);
  });

  it("maxRequestsPerExecution is counted per executionId; the refused request never reaches the server", async () => {
    const server = await serve();
    const web = client(local([server.port], { maxRequestsPerExecution: 3 }));
    const url = `http://api.test:${server.port}/n`;
    const one = new AbortController();
    for (let n = 0; n < 3; n++) expect((await web.fetch({ url }, { executionId: 1, signal: one.signal })).status).toBe(200);
    expect(await refusal(web, { url }, { executionId: 1, signal: one.signal })).toBe("WEB_TOO_MANY_REQUESTS");
    expect(server.hits).toHaveLength(3);
    // Another execution has its own count; requests outside an execution are not counted.
    for (let n = 0; n < 3; n++) expect((await web.fetch({ url }, { executionId: 2 })).status).toBe(200);
    expect(await refusal(web, { url }, { executionId: 2 })).toBe("WEB_TOO_MANY_REQUESTS");
    for (let n = 0; n < 4; n++) expect((await web.fetch({ url })).status).toBe(200);
    expect(server.hits).toHaveLength(10);
    // When execution 1 ends (its signal aborts), its count is forgotten.
    one.abort();
    expect((await web.fetch({ url }, { executionId: 1 })).status).toBe(200);
  });

  it("maxRequestsPerExecution 0 refuses every request of an execution", async () => {
    const server = await serve();
    const web = client(local([server.port], { maxRequestsPerExecution: 0 }));
    expect(await refusal(web, { url: `http://api.test:${server.port}/` }, { executionId: 7 })).toBe("WEB_TOO_MANY_REQUESTS");
    expect(await server.settledConnections()).toBe(0);
  });
});

describe("WebClient: failures and closing", () => {
  it("a server that drops the connection, or a port nobody listens on, fails with WEB_CONNECTION_FAILED", async () => {
    const server = await serve((_hit, _res, req) => req.socket.destroy());
    const closedPort = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const web = client(local([server.port, closedPort]));
    expect(await refusal(web, { url: `http://api.test:${server.port}/drop` })).toBe("WEB_CONNECTION_FAILED");
    expect(await refusal(web, { url: `http://api.test:${closedPort}/` })).toBe("WEB_CONNECTION_FAILED");
  });

  it("a closed client refuses new requests with WEB_CONNECTION_FAILED; close is idempotent", async () => {
    const server = await serve();
    const web = new WebClient(local([server.port]));
    expect((await web.fetch({ url: `http://api.test:${server.port}/` })).status).toBe(200);
    await web.close();
    await web.close();
    expect(await refusal(web, { url: `http://api.test:${server.port}/` })).toBe("WEB_CONNECTION_FAILED");
    expect(server.hits).toHaveLength(1);
  });
});

// Declared sizes, in a process of its own: the host process must survive what the server sends.

describe("WebClient: a declared Content-Length over maxResponseBytes (in a child process, which must survive it)", () => {
  // The child loads the web client's module alone, not the test-hooks entry.
  const clientModule = pathToFileURL(new URL("../../../dist/runtime/web/client.js", import.meta.url).pathname).href;
  const script = `
    import http from "node:http";
    import { WebClient } from ${JSON.stringify(clientModule)};
    const uncaught = [];
    process.on("uncaughtException", (error) => uncaught.push(String(error.code ?? error.message)));
    let connections = 0;
    const server = http.createServer((req, res) => {
      if (req.url === "/ok") return res.end("fine");
      res.writeHead(200, { "content-length": "5000" });
      res.end(req.method === "HEAD" ? undefined : "x".repeat(5000));
    });
    server.on("connection", () => connections++);
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address();
    const web = new WebClient({ resolve: { "api.test": ["127.0.0.1"] }, unsafeAllowLoopback: true, extraPorts: [port], maxResponseBytes: 1000 });
    const outcome = (method, path) => web.fetch({ url: "http://api.test:" + port + path, method }).then((r) => ({ status: r.status }), (e) => ({ code: e.code }));
    const get = await outcome("GET", "/big");
    const head = await outcome("HEAD", "/big");
    const after = await outcome("GET", "/ok");
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
    await web.close();
    server.closeAllConnections();
    server.close();
    console.log(JSON.stringify({ get, head, after, uncaught }));
  `;
  let report: { get: { code?: string; status?: number }; head: { code?: string; status?: number }; after: { status?: number }; uncaught: string[] };
  beforeAll(async () => {
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["--input-type=module", "-e", script], { timeout: 30_000 }, (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out))),
    );
    report = JSON.parse(stdout.trim().split("\n").pop()!);
  });

  it("a GET whose declared Content-Length is over the limit fails with WEB_TOO_LARGE", () => {
    expect(report.get).toEqual({ code: "WEB_TOO_LARGE" });
    expect(report.after).toEqual({ status: 200 });
  });

  it("refusing it leaves no unhandled error behind (which would crash the host process)", () => {
    expect(report.uncaught).toEqual([]);
  });

  it("a HEAD response carries no body, so a large declared Content-Length is not over the limit", () => {
    expect(report.head).toEqual({ status: 200 });
  });
});
