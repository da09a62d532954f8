/**
 * The network policy on its own, without a connection: which URLs are refused before any socket
 * (checkUrl), which resolved addresses are refused at connect time (checkAddress and
 * classifyAddress), and how host configuration is read (resolveWebPolicy).
 */
import { describe, expect, it } from "vitest";
import { exitStatusOf, checkAddress, checkUrl, classifyAddress, resolveWebPolicy, WEB_ERRORS, WebClient, WebError, webPolicyDefaults, type AddressClass, type WebPolicy } from "../../../dist/host/testing/internal.js";
import type { WebPolicyInput } from "../../../dist/host/index.js";

const defaults = resolveWebPolicy({});

/** The code checkUrl refuses `url` with, or "ok" and the URL it accepted. */
function urlVerdict(url: string, policy: WebPolicy = defaults, bundleAllowedHosts: readonly string[] | null = null): string {
  try {
    checkUrl(url, policy, bundleAllowedHosts);
    return "ok";
  } catch (error) {
    if (!(error instanceof WebError)) throw error;
    return error.code;
  }
}

/** The code checkAddress refuses `address` with, or "ok". */
function addressVerdict(address: string, policy: WebPolicy = defaults): string {
  try {
    checkAddress("name.test", address, policy);
    return "ok";
  } catch (error) {
    if (!(error instanceof WebError)) throw error;
    return error.code;
  }
}

describe("checkUrl: URLs refused before any connection, with the rule that refused them", () => {
  const table: Array<[url: string, code: string]> = [
    // 127.0.0.1 in every notation the WHATWG parser folds into dotted form
    ["http://127.0.0.1/", "WEB_IP_LITERAL"],
    ["http://2130706433/", "WEB_IP_LITERAL"],
    ["http://0177.0.0.1/", "WEB_IP_LITERAL"],
    ["http://017700000001/", "WEB_IP_LITERAL"],
    ["http://0x7f000001/", "WEB_IP_LITERAL"],
    ["http://0x7f.0.0.1/", "WEB_IP_LITERAL"],
    ["http://0x7f.1/", "WEB_IP_LITERAL"],
    ["http://127.1/", "WEB_IP_LITERAL"],
    ["http://127.0.1/", "WEB_IP_LITERAL"],
    ["http://127.000.000.001/", "WEB_IP_LITERAL"],
    ["http://127.0.0.1./", "WEB_IP_LITERAL"],
    ["http://%31%32%37.0.0.1/", "WEB_IP_LITERAL"],
    ["http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "WEB_IP_LITERAL"], // full-width digits
    ["http://\u2460\u2461\u2466.0.0.1/", "WEB_IP_LITERAL"], // circled digits
    ["http:\\\\127.0.0.1\\", "WEB_IP_LITERAL"],
    ["http:/127.0.0.1/", "WEB_IP_LITERAL"],
    ["  http://127.0.0.1/", "WEB_IP_LITERAL"],
    // IPv6 literals
    ["http://[::1]/", "WEB_IP_LITERAL"],
    ["http://[::ffff:127.0.0.1]/", "WEB_IP_LITERAL"],
    ["http://[0:0:0:0:0:ffff:7f00:1]/", "WEB_IP_LITERAL"],
    ["http://[::]/", "WEB_IP_LITERAL"],
    ["http://[::ffff:a9fe:a9fe]/", "WEB_IP_LITERAL"],
    ["http://[fe80::1%25eth0]/", "WEB_INVALID_URL"],
    // the unspecified address, and the metadata service
    ["http://0.0.0.0/", "WEB_IP_LITERAL"],
    ["http://0/", "WEB_IP_LITERAL"],
    ["http://169.254.169.254/latest/meta-data/", "WEB_IP_LITERAL"],
    ["http://10.0.0.1/", "WEB_IP_LITERAL"],
    ["https://93.184.216.34/", "WEB_IP_LITERAL"],
    // localhost names
    ["http://localhost/", "WEB_LOOPBACK"],
    ["http://LOCALHOST/", "WEB_LOOPBACK"],
    ["http://LocalHost:443/", "WEB_LOOPBACK"],
    ["http://localhost./", "WEB_LOOPBACK"],
    ["http://localhost%2E/", "WEB_LOOPBACK"],
    ["http://localhost\u3002/", "WEB_LOOPBACK"], // ideographic full stop
    ["http://\u24dbocalhost/", "WEB_LOOPBACK"], // circled l
    ["http://foo.localhost/", "WEB_LOOPBACK"],
    ["http://foo.localhost./", "WEB_LOOPBACK"],
    ["http://localhost.localdomain/", "WEB_LOOPBACK"],
    ["http://ip6-localhost/", "WEB_LOOPBACK"],
    ["http://localhost../", "WEB_LOOPBACK"],
    ["http://foo.localhost../", "WEB_LOOPBACK"],
    // credentials in the URL
    ["http://example.com@127.0.0.1/", "WEB_USERINFO"],
    ["http://user:pw@example.com/", "WEB_USERINFO"],
    ["https://user@example.com/", "WEB_USERINFO"],
    ["http://:pw@example.com/", "WEB_USERINFO"],
    // schemes
    ["ftp://example.com/", "WEB_SCHEME"],
    ["file:///etc/passwd", "WEB_SCHEME"],
    ["data:text/plain,hello", "WEB_SCHEME"],
    ["javascript:alert(1)", "WEB_SCHEME"],
    ["ws://example.com/", "WEB_SCHEME"],
    ["wss://example.com/", "WEB_SCHEME"],
    ["gopher://example.com:70/", "WEB_SCHEME"],
    ["blob:http://example.com/1", "WEB_SCHEME"],
    // ports
    ["http://example.com:8080/", "WEB_PORT"],
    ["https://example.com:8443/", "WEB_PORT"],
    ["http://example.com:0/", "WEB_PORT"],
    ["http://example.com:22/", "WEB_PORT"],
    ["https://example.com:443/", "ok"],
    ["http://example.com:80/", "ok"],
    ["https://example.com:80/", "ok"],
    ["http://example.com:443/", "ok"],
    ["HTTPS://Example.COM/path?q=1#frag", "ok"],
    // not URLs
    ["//example.com/", "WEB_INVALID_URL"],
    ["example.com", "WEB_INVALID_URL"],
    ["http://example.com:65536/", "WEB_INVALID_URL"],
    ["http://256.0.0.1/", "WEB_INVALID_URL"],
    ["", "WEB_INVALID_URL"],
  ];

  it("the table has at least 30 tricky URLs", () => {
    expect(table.length).toBeGreaterThanOrEqual(30);
  });

  it.each(table)("%s → %s", (url, code) => {
    expect(urlVerdict(url)).toBe(code);
  });

  it("a refusal is a WebError whose message names the rule and shows the URL's origin, not its path", () => {
    let caught: unknown;
    try {
      checkUrl("http://0x7f000001/secret?token=abc", defaults, null);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(WebError);
    expect(caught).toMatchObject({ code: "WEB_IP_LITERAL", message: expect.stringContaining("http://127.0.0.1") });
    expect((caught as Error).message).not.toContain("token=abc");
  });

  it("an accepted URL comes back parsed", () => {
    const url = checkUrl("https://API.example.com:443/a?b=1", defaults, null);
    expect(url).toBeInstanceOf(URL);
    expect(url.href).toBe("https://api.example.com/a?b=1");
  });
});

describe("checkUrl: ports and allow-lists", () => {
  it("extraPorts add to 80 and 443; ports replaces them", () => {
    const extra = resolveWebPolicy({ extraPorts: [8080] });
    expect(urlVerdict("http://example.com:8080/", extra)).toBe("ok");
    expect(urlVerdict("http://example.com/", extra)).toBe("ok");
    expect(urlVerdict("http://example.com:8081/", extra)).toBe("WEB_PORT");
    const only = resolveWebPolicy({ ports: [8443] });
    expect(urlVerdict("https://example.com:8443/", only)).toBe("ok");
    expect(urlVerdict("https://example.com/", only)).toBe("WEB_PORT");
    expect(urlVerdict("http://example.com/", only)).toBe("WEB_PORT");
  });

  it("the host allow-list: *.example.com matches sub-domains at any depth but not example.com itself or look-alikes", () => {
    const policy = resolveWebPolicy({ allowedHosts: ["*.example.com", "API.partner.test"] });
    expect(urlVerdict("https://a.example.com/", policy)).toBe("ok");
    expect(urlVerdict("https://a.b.example.com/", policy)).toBe("ok");
    expect(urlVerdict("https://A.EXAMPLE.COM./", policy)).toBe("ok");
    expect(urlVerdict("https://api.partner.test/", policy)).toBe("ok");
    expect(urlVerdict("https://example.com/", policy)).toBe("WEB_NOT_ALLOWED");
    expect(urlVerdict("https://evilexample.com/", policy)).toBe("WEB_NOT_ALLOWED");
    expect(urlVerdict("https://example.com.evil.test/", policy)).toBe("WEB_NOT_ALLOWED");
    expect(urlVerdict("https://a.example.com@evil.test/", policy)).toBe("WEB_USERINFO");
    expect(urlVerdict("https://x.partner.test/", policy)).toBe("WEB_NOT_ALLOWED");
    expect(urlVerdict("https://evil.test/#.example.com", policy)).toBe("WEB_NOT_ALLOWED");
  });

  it("an empty host allow-list refuses every host", () => {
    expect(urlVerdict("https://example.com/", resolveWebPolicy({ allowedHosts: [] }))).toBe("WEB_NOT_ALLOWED");
  });

  it("the bundle allow-list narrows the host policy and cannot widen it", () => {
    const host = resolveWebPolicy({ allowedHosts: ["*.example.com"] });
    expect(urlVerdict("https://api.example.com/", host, ["api.example.com"])).toBe("ok");
    expect(urlVerdict("https://other.example.com/", host, ["api.example.com"])).toBe("WEB_NOT_ALLOWED");
    expect(urlVerdict("https://elsewhere.test/", host, ["elsewhere.test"])).toBe("WEB_NOT_ALLOWED");
    expect(urlVerdict("https://api.example.com/", defaults, ["API.Example.com"])).toBe("ok");
    expect(urlVerdict("https://a.b.example.com/", defaults, ["*.example.com"])).toBe("ok");
    expect(urlVerdict("https://example.org/", defaults, ["*.example.com"])).toBe("WEB_NOT_ALLOWED");
    expect(urlVerdict("https://example.org/", defaults, [])).toBe("WEB_NOT_ALLOWED");
  });

  it("the allow-lists never let a forbidden URL through: IP literals, localhost, schemes and ports are refused first", () => {
    const policy = resolveWebPolicy({ allowedHosts: ["*.localhost", "localhost", "*.example.com"] });
    expect(urlVerdict("http://localhost/", policy, ["localhost"])).toBe("WEB_LOOPBACK");
    expect(urlVerdict("http://a.localhost/", policy, ["*.localhost"])).toBe("WEB_LOOPBACK");
    expect(urlVerdict("http://127.0.0.1/", policy, null)).toBe("WEB_IP_LITERAL");
    expect(urlVerdict("ftp://a.example.com/", policy, null)).toBe("WEB_SCHEME");
    expect(urlVerdict("http://a.example.com:8080/", policy, null)).toBe("WEB_PORT");
  });
});

describe("classifyAddress and checkAddress: resolved addresses", () => {
  const table: Array<[address: string, kind: AddressClass, code: string]> = [
    ["127.0.0.1", "loopback", "WEB_LOOPBACK"],
    ["127.255.255.254", "loopback", "WEB_LOOPBACK"],
    ["0.0.0.0", "unspecified", "WEB_LOOPBACK"],
    ["0.1.2.3", "unspecified", "WEB_LOOPBACK"],
    ["::1", "loopback", "WEB_LOOPBACK"],
    ["0:0:0:0:0:0:0:1", "loopback", "WEB_LOOPBACK"],
    ["::", "unspecified", "WEB_LOOPBACK"],
    ["::ffff:127.0.0.1", "loopback", "WEB_LOOPBACK"],
    ["::ffff:7f00:1", "loopback", "WEB_LOOPBACK"],
    ["64:ff9b::7f00:1", "loopback", "WEB_LOOPBACK"],
    ["2002:7f00:1::", "loopback", "WEB_LOOPBACK"],
    ["10.0.0.1", "private", "WEB_PRIVATE_ADDRESS"],
    ["10.255.255.255", "private", "WEB_PRIVATE_ADDRESS"],
    ["172.16.0.1", "private", "WEB_PRIVATE_ADDRESS"],
    ["172.31.255.255", "private", "WEB_PRIVATE_ADDRESS"],
    ["192.168.0.1", "private", "WEB_PRIVATE_ADDRESS"],
    ["192.168.255.255", "private", "WEB_PRIVATE_ADDRESS"],
    ["100.64.0.1", "private", "WEB_PRIVATE_ADDRESS"],
    ["100.127.255.255", "private", "WEB_PRIVATE_ADDRESS"],
    ["169.254.169.254", "link-local", "WEB_PRIVATE_ADDRESS"],
    ["169.254.0.1", "link-local", "WEB_PRIVATE_ADDRESS"],
    ["fc00::1", "unique-local", "WEB_PRIVATE_ADDRESS"],
    ["fd12:3456:789a::1", "unique-local", "WEB_PRIVATE_ADDRESS"],
    ["fe80::1", "link-local", "WEB_PRIVATE_ADDRESS"],
    ["FE80::1", "link-local", "WEB_PRIVATE_ADDRESS"],
    ["fe80::1%eth0", "link-local", "WEB_PRIVATE_ADDRESS"],
    ["febf:ffff::1", "link-local", "WEB_PRIVATE_ADDRESS"],
    ["fec0::1", "private", "WEB_PRIVATE_ADDRESS"],
    ["ff02::1", "multicast", "WEB_PRIVATE_ADDRESS"],
    ["ff05::2", "multicast", "WEB_PRIVATE_ADDRESS"],
    ["::ffff:10.0.0.1", "private", "WEB_PRIVATE_ADDRESS"],
    ["::ffff:169.254.169.254", "link-local", "WEB_PRIVATE_ADDRESS"],
    ["::10.0.0.1", "private", "WEB_PRIVATE_ADDRESS"],
    ["64:ff9b::a00:1", "private", "WEB_PRIVATE_ADDRESS"],
    ["64:ff9b::10.0.0.1", "private", "WEB_PRIVATE_ADDRESS"],
    ["2002:a00:1::", "private", "WEB_PRIVATE_ADDRESS"],
    ["2002:a9fe:a9fe::1", "link-local", "WEB_PRIVATE_ADDRESS"],
    ["224.0.0.1", "multicast", "WEB_PRIVATE_ADDRESS"],
    ["239.255.255.250", "multicast", "WEB_PRIVATE_ADDRESS"],
    ["255.255.255.255", "reserved", "WEB_PRIVATE_ADDRESS"],
    ["240.0.0.1", "reserved", "WEB_PRIVATE_ADDRESS"],
    ["192.0.2.1", "reserved", "WEB_PRIVATE_ADDRESS"],
    ["198.18.0.1", "reserved", "WEB_PRIVATE_ADDRESS"],
    ["198.51.100.7", "reserved", "WEB_PRIVATE_ADDRESS"],
    ["203.0.113.9", "reserved", "WEB_PRIVATE_ADDRESS"],
    ["2001:db8::1", "reserved", "WEB_PRIVATE_ADDRESS"],
    ["100::1", "reserved", "WEB_PRIVATE_ADDRESS"],
    // public, including the neighbours of the private ranges
    ["93.184.216.34", "public", "ok"],
    ["8.8.8.8", "public", "ok"],
    ["172.15.255.255", "public", "ok"],
    ["172.32.0.1", "public", "ok"],
    ["100.63.255.255", "public", "ok"],
    ["100.128.0.1", "public", "ok"],
    ["11.0.0.1", "public", "ok"],
    ["192.169.0.1", "public", "ok"],
    ["223.255.255.255", "public", "ok"],
    ["2606:2800:220:1::", "public", "ok"],
    ["2606:2800:220:1:248:1893:25c8:1946", "public", "ok"],
    ["2001:4860:4860::8888", "public", "ok"],
    ["::ffff:93.184.216.34", "public", "ok"],
    ["64:ff9b::5db8:d822", "public", "ok"],
  ];

  it.each(table)("%s is %s → %s", (address, kind, code) => {
    expect(classifyAddress(address)).toBe(kind);
    expect(addressVerdict(address)).toBe(code);
  });

  it("classifyAddress refuses what is not an IP address", () => {
    expect(() => classifyAddress("localhost")).toThrow(TypeError);
    expect(() => classifyAddress("127.1")).toThrow(TypeError);
  });

  it("a refusal names the host and the address", () => {
    expect(() => checkAddress("metadata.test", "169.254.169.254", defaults)).toThrow(
      expect.objectContaining({ code: "WEB_PRIVATE_ADDRESS", message: expect.stringMatching(/metadata\.test.*169\.254\.169\.254/) }),
    );
  });

  it("unsafeAllowPrivateNetwork allows private, link-local and unique-local addresses, but never loopback, unspecified or multicast", () => {
    const policy = resolveWebPolicy({ unsafeAllowPrivateNetwork: true });
    for (const address of ["10.0.0.1", "172.20.1.1", "192.168.1.1", "100.64.1.1", "169.254.169.254", "fd00::1", "fe80::1", "::ffff:10.0.0.1"]) {
      expect(addressVerdict(address, policy), address).toBe("ok");
    }
    for (const address of ["127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::"]) expect(addressVerdict(address, policy), address).toBe("WEB_LOOPBACK");
    for (const address of ["224.0.0.1", "ff02::1"]) expect(addressVerdict(address, policy), address).toBe("WEB_PRIVATE_ADDRESS");
  });

  it("unsafeAllowLoopback allows loopback addresses only: private ones stay refused", () => {
    const policy = resolveWebPolicy({ unsafeAllowLoopback: true });
    for (const address of ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"]) expect(addressVerdict(address, policy), address).toBe("ok");
    for (const address of ["10.0.0.1", "169.254.169.254", "fd00::1", "192.168.0.1"]) expect(addressVerdict(address, policy), address).toBe("WEB_PRIVATE_ADDRESS");
  });

  it("unsafeAllowLoopback does not lift the localhost-name or IP-literal rules of checkUrl", () => {
    const policy = resolveWebPolicy({ unsafeAllowLoopback: true, unsafeAllowPrivateNetwork: true });
    expect(urlVerdict("http://localhost/", policy)).toBe("WEB_LOOPBACK");
    expect(urlVerdict("http://127.0.0.1/", policy)).toBe("WEB_IP_LITERAL");
    expect(urlVerdict("http://[::1]/", policy)).toBe("WEB_IP_LITERAL");
  });
});

describe("resolveWebPolicy: host configuration", () => {
  it("fills in Dataverse's defaults", () => {
    expect(resolveWebPolicy({})).toEqual({
      ports: [80, 443],
      allowedHosts: null,
      resolve: {},
      unsafeAllowPrivateNetwork: false,
      unsafeAllowLoopback: false,
      requestTimeoutMs: 15_000,
      maxRequestsPerExecution: 50,
      maxRequestBytes: 1_048_576,
      maxResponseBytes: 524_288,
      maxRedirects: 5,
    });
    expect(resolveWebPolicy()).toEqual(webPolicyDefaults);
  });

  it("widens and tunes: extraPorts append, names and resolve keys are lower-cased, a single address is a list", () => {
    const policy = resolveWebPolicy({
      extraPorts: [8080, 8443],
      allowedHosts: ["API.Example.com", "*.Partner.test"],
      resolve: { "API.test": ["127.0.0.1", "::1"], "one.test": "10.0.0.1" as unknown as string[] },
      unsafeAllowLoopback: true,
      requestTimeoutMs: 300,
      maxRequestsPerExecution: 0,
      maxRedirects: 0,
    });
    expect(policy.ports).toEqual([80, 443, 8080, 8443]);
    expect(policy.allowedHosts).toEqual(["api.example.com", "*.partner.test"]);
    expect(policy.resolve).toEqual({ "api.test": ["127.0.0.1", "::1"], "one.test": ["10.0.0.1"] });
    expect(policy).toMatchObject({ unsafeAllowLoopback: true, unsafeAllowPrivateNetwork: false, requestTimeoutMs: 300, maxRequestsPerExecution: 0, maxRedirects: 0 });
  });

  it("returns a frozen policy and leaves the defaults untouched", () => {
    const policy = resolveWebPolicy({ extraPorts: [8080], resolve: { "a.test": ["127.0.0.1"] } });
    expect(Object.isFrozen(policy)).toBe(true);
    expect(webPolicyDefaults.ports).toEqual([80, 443]);
    expect(webPolicyDefaults.resolve).toEqual({});
    expect(Object.isFrozen(webPolicyDefaults) && Object.isFrozen(webPolicyDefaults.ports) && Object.isFrozen(webPolicyDefaults.resolve)).toBe(true);
  });

  const invalid: Array<[what: string, input: unknown, path: string]> = [
    ["the root is not an object", null, "(root)"],
    ["an unknown option", { bogus: 1 }, "bogus"],
    ["a misspelt option", { allowHosts: ["a.test"] }, "allowHosts"],
    ["ports is not an array", { ports: 443 }, "ports"],
    ["a port of 0", { ports: [80, 0] }, "ports[1]"],
    ["a port over 65535", { ports: [70000] }, "ports[0]"],
    ["an extra port that is not an integer", { extraPorts: [8080.5] }, "extraPorts[0]"],
    ["an extra port given as a string", { extraPorts: ["8080"] }, "extraPorts[0]"],
    ["allowedHosts is a string", { allowedHosts: "example.com" }, "allowedHosts"],
    ["an allowed host that is a URL", { allowedHosts: ["https://example.com"] }, "allowedHosts[0]"],
    ["an allowed host that is a bare *", { allowedHosts: ["*"] }, "allowedHosts[0]"],
    ["an allowed host with an empty label", { allowedHosts: ["ok.test", "a..b"] }, "allowedHosts[1]"],
    ["an allowed host with a port", { allowedHosts: ["api.test:8080"] }, "allowedHosts[0]"],
    ["resolve is null", { resolve: null }, "resolve"],
    ["a resolve entry that is not an address", { resolve: { "api.test": ["not-an-ip"] } }, "resolve.api.test"],
    ["a resolve entry with an address in short form", { resolve: { "api.test": ["127.1"] } }, "resolve.api.test"],
    ["an empty resolve entry", { resolve: { "api.test": [] } }, "resolve.api.test"],
    ["a resolve key that is not a host name", { resolve: { "bad host!": ["127.0.0.1"] } }, 'resolve key "bad host!"'],
    ["unsafeAllowLoopback is not a boolean", { unsafeAllowLoopback: "yes" }, "unsafeAllowLoopback"],
    ["unsafeAllowPrivateNetwork is not a boolean", { unsafeAllowPrivateNetwork: 1 }, "unsafeAllowPrivateNetwork"],
    ["a timeout of 0", { requestTimeoutMs: 0 }, "requestTimeoutMs"],
    ["a timeout over 10 minutes", { requestTimeoutMs: 600_001 }, "requestTimeoutMs"],
    ["maxRedirects over 50", { maxRedirects: 51 }, "maxRedirects"],
    ["a negative maxRequestBytes", { maxRequestBytes: -1 }, "maxRequestBytes"],
    ["a fractional maxResponseBytes", { maxResponseBytes: 1.5 }, "maxResponseBytes"],
    ["maxRequestsPerExecution as a string", { maxRequestsPerExecution: "50" }, "maxRequestsPerExecution"],
  ];

  it.each(invalid)("refuses %s with WEB_POLICY_INVALID naming %s", (_what, input, path) => {
    let caught: unknown;
    try {
      resolveWebPolicy(input as WebPolicyInput);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(WebError);
    expect(caught).toMatchObject({ code: "WEB_POLICY_INVALID" });
    expect((caught as Error).message.startsWith(`web policy: ${path} `)).toBe(true);
  });

  it("new WebClient refuses an invalid policy the same way", () => {
    expect(() => new WebClient({ maxRedirects: -1 })).toThrow(expect.objectContaining({ code: "WEB_POLICY_INVALID", message: expect.stringContaining("maxRedirects") }));
  });
});

describe("web error codes and their families (test/host/cli/exit-statuses.test.ts maps them to exit statuses)", () => {
  it("a policy refusal is an isolation violation, a limit a limit, a network failure the plug-in's, a bad policy a usage error", () => {
    for (const code of ["WEB_SCHEME", "WEB_USERINFO", "WEB_IP_LITERAL", "WEB_LOOPBACK", "WEB_PRIVATE_ADDRESS", "WEB_PORT", "WEB_NOT_ALLOWED", "WEB_INVALID_URL"] as const) {
      expect(WEB_ERRORS[code].family, code).toBe("isolation");
    }
    for (const code of ["WEB_TIMEOUT", "WEB_TOO_LARGE", "WEB_TOO_MANY_REDIRECTS", "WEB_TOO_MANY_REQUESTS"] as const) {
      expect(WEB_ERRORS[code].family, code).toBe("limit");
    }
    for (const code of ["WEB_DNS", "WEB_CONNECTION_FAILED", "WEB_INVALID_REQUEST"] as const) expect(WEB_ERRORS[code].family, code).toBe("plugin");
    expect(WEB_ERRORS.WEB_POLICY_INVALID.family).toBe("usage");
  });
});
