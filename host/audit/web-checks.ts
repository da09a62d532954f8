/**
 * Confinement checks of the outbound web client, run with the real client in the sandbox worker
 * under the web policy the host would use. No check sends traffic beyond 127.0.0.1: every URL
 * tried is refused before a connection is made (the names used are `.invalid` names the policy's
 * resolver table answers, so not even DNS is asked), and a rule the policy widens is reported as
 * not applicable rather than tried. The redirect checks need a server to redirect from: they start
 * one on 127.0.0.1, and only when the policy under audit already lets plug-ins reach loopback.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { WebPolicyInput } from "../../runtime/web/policy.js";
import { attack, codeOf, describeReport, verdict, type CheckOutcome, type CheckSetup, type ConfinementCheck } from "./probe.js";

/** Names the checks resolve through the policy's resolver table; `.invalid` never resolves in DNS. */
const name = (label: string) => `${label}.audit.plugbox.invalid`;

/** A public address (documentation of RFC 5737 is reserved, so this is example.com's): paired with a forbidden one, never connected to. */
const PUBLIC_ADDRESS = "93.184.215.14";

interface UrlProbe {
  url: string;
  /** The codes a refusal may carry; WEB_NOT_ALLOWED (a host allow-list refusing earlier) is always accepted. */
  codes: string[];
}

/** A plug-in that fetches each URL and reports, for each, the code of its refusal or "fetched". */
function fetchEach(urls: string[]): string {
  return `
    const results = [];
    for (const url of ${JSON.stringify(urls)}) {
      try { const response = await fetch(url); results.push("fetched " + response.status); } catch (e) { results.push(String(e && e.code)); }
    }
    out.results = results;`;
}

async function refusesAll(setup: CheckSetup, probes: UrlProbe[], policy: WebPolicyInput = setup.webPolicy): Promise<CheckOutcome> {
  const { report } = await attack(setup, { body: fetchEach(probes.map((p) => p.url)), web: policy, limits: { wallTimeMs: 20_000 } });
  if (!report.ok) return verdict(describeReport(report), [`the probing plug-in failed with ${codeOf(report)}`]);
  const results = (report.changes.outputParameters.results ?? []) as string[];
  const lines = probes.map((p, i) => `${p.url} → ${results[i] ?? "nothing"}`);
  const wrong = probes.filter((p, i) => ![...p.codes, "WEB_NOT_ALLOWED"].includes(results[i] ?? ""));
  return verdict(lines.join(", "), [
    wrong.length === 0 ? undefined : `not refused as required: ${wrong.map((p) => `${p.url} (expected ${p.codes.join(" or ")})`).join(", ")}`,
    report.webCalls.some((c) => c.ok) ? "a request was answered" : undefined,
  ]);
}

/** The audited policy with the checks' names in its resolver table (which adds names, and widens nothing). */
function withNames(setup: CheckSetup, names: Record<string, string[]>, extraPorts: number[] = []): WebPolicyInput {
  return {
    ...setup.webPolicy,
    resolve: { ...(setup.webPolicy.resolve ?? {}), ...names },
    ...(extraPorts.length > 0 ? { extraPorts: [...(setup.webPolicy.extraPorts ?? []), ...extraPorts] } : {}),
  };
}

/** Names resolving to `addresses`, one each, fetched on port 80 or the first port the policy allows. */
function resolvedProbes(setup: CheckSetup, prefix: string, addresses: string[], codes: string[]): { probes: UrlProbe[]; policy: WebPolicyInput } {
  const port = setup.resolvedWebPolicy.ports[0] ?? 80;
  const names = Object.fromEntries(addresses.map((address, i) => [name(`${prefix}${i}`), [address]]));
  return { probes: Object.keys(names).map((n) => ({ url: `http://${n}:${port}/`, codes })), policy: withNames(setup, names) };
}

const SOURCE_SSRF = "OWASP SSRF Prevention Cheat Sheet; PortSwigger SSRF (IP notations, metadata endpoints); Dataverse outbound rules";

function literalCheck(id: string, title: string, urls: string[]): ConfinementCheck {
  return { id, title, source: SOURCE_SSRF, area: "web", run: (setup) => refusesAll(setup, urls.map((url) => ({ url, codes: ["WEB_IP_LITERAL"] }))) };
}

/** A check of addresses a name resolves to, not applicable when the policy allows their class. */
function resolvedCheck(id: string, title: string, prefix: string, addresses: string[], code: string, allowedBy?: "unsafeAllowLoopback" | "unsafeAllowPrivateNetwork"): ConfinementCheck {
  return {
    id,
    title,
    source: SOURCE_SSRF,
    area: "web",
    async run(setup) {
      if (allowedBy && setup.resolvedWebPolicy[allowedBy]) {
        return { passed: true, evidence: "not applicable", notApplicable: `the web policy sets ${allowedBy}: these addresses are allowed on purpose, so they are not tried` };
      }
      const { probes, policy } = resolvedProbes(setup, prefix, addresses, [code]);
      return refusesAll(setup, probes, policy);
    },
  };
}

/** Serves redirects on 127.0.0.1: /n answers 302 to targets[n]; /loop redirects to itself. */
async function redirector(targets: string[]): Promise<{ server: Server; port: number; hits: string[] }> {
  const hits: string[] = [];
  const server = createServer((request, response) => {
    hits.push(request.url ?? "");
    const index = Number((request.url ?? "").slice(1));
    const location = request.url === "/loop" ? "/loop" : targets[index];
    response.writeHead(location === undefined ? 404 : 302, location === undefined ? {} : { location });
    response.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return { server, port: (server.address() as AddressInfo).port, hits };
}

const redirectCheck: ConfinementCheck = {
  id: "web-redirects-to-forbidden-hosts",
  title: "a redirect to an IP literal, a metadata address, a private or multicast address, localhost or another scheme is refused at the hop, and a redirect loop ends",
  source: "PortSwigger SSRF via open redirection; undici/follow-redirects advisories (redirects bypass host checks)",
  area: "web",
  async run(setup) {
    if (!setup.resolvedWebPolicy.unsafeAllowLoopback) {
      return { passed: true, evidence: "not applicable", notApplicable: "the web policy refuses loopback, so no local server can be reached to redirect from, and the audit sends no traffic beyond 127.0.0.1; each redirect hop is checked by the same rules the other web checks prove" };
    }
    if (setup.resolvedWebPolicy.allowedHosts !== null) {
      return { passed: true, evidence: "not applicable", notApplicable: "the web policy has an allow-list, which refuses the name of the audit's local server before any redirect; the audit does not widen it" };
    }
    const targets: Array<[string, string[]]> = [
      ["http://169.254.169.254/latest/meta-data/", ["WEB_IP_LITERAL"]],
      [`http://${name("redirect-multicast")}/`, ["WEB_PRIVATE_ADDRESS"]],
      ["file:///etc/passwd", ["WEB_SCHEME"]],
      ["http://localhost/", ["WEB_LOOPBACK"]],
      ["http://user:secret@example.com/", ["WEB_USERINFO"]],
    ];
    if (!setup.resolvedWebPolicy.unsafeAllowPrivateNetwork) targets.push([`http://${name("redirect-private")}/`, ["WEB_PRIVATE_ADDRESS"]]);
    const { server, port, hits } = await redirector(targets.map(([url]) => url));
    try {
      const start = `http://${name("redirector")}:${port}`;
      const policy = withNames(setup, { [name("redirector")]: ["127.0.0.1"], [name("redirect-multicast")]: ["224.0.0.1"], [name("redirect-private")]: ["10.0.0.1"] }, [port]);
      const probes: UrlProbe[] = [...targets.map(([, codes], i) => ({ url: `${start}/${i}`, codes })), { url: `${start}/loop`, codes: ["WEB_TOO_MANY_REDIRECTS"] }];
      const outcome = await refusesAll(setup, probes, policy);
      const expectedHits = targets.length + setup.resolvedWebPolicy.maxRedirects + 1;
      return hits.length === expectedHits ? outcome : { passed: false, evidence: `${outcome.evidence}; the local server saw ${hits.length} requests, expected ${expectedHits}` };
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  },
};

export const webChecks: readonly ConfinementCheck[] = [
  {
    id: "web-localhost-names",
    title: "localhost names, in any case, with a trailing dot or as a *.localhost sub-domain, are refused with WEB_LOOPBACK before any lookup",
    source: SOURCE_SSRF,
    area: "web",
    run: (setup) => refusesAll(setup, ["http://localhost/", "http://LOCALHOST./", "http://audit.localhost/", "http://localhost.localdomain/", "http://ip6-localhost/"].map((url) => ({ url, codes: ["WEB_LOOPBACK"] }))),
  },
  literalCheck("web-loopback-literals", "loopback and unspecified addresses written as IP literals in every notation are refused with WEB_IP_LITERAL", [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://0x7f.1/",
    "http://0/",
    "http://0.0.0.0/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[0:0:0:0:0:0:0:1]/",
  ]),
  literalCheck("web-metadata-literals", "cloud metadata addresses written as IP literals in every notation are refused with WEB_IP_LITERAL", [
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",
    "http://0xa9fea9fe/",
    "http://0251.0376.0251.0376/",
    "http://169.254.43518/",
    "http://[fd00:ec2::254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[::ffff:169.254.169.254]/",
  ]),
  literalCheck("web-private-literals", "private, carrier-grade NAT and unique-local addresses written as IP literals are refused with WEB_IP_LITERAL", [
    "http://10.0.0.1/",
    "http://0x0a.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://[fc00::1]/",
    "http://[64:ff9b::a00:1]/",
  ]),
  literalCheck("web-public-literals", "even a public address written as an IP literal is refused: plug-ins must use DNS names, as in Dataverse", ["http://93.184.215.14/", "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/"]),
  resolvedCheck("web-resolved-loopback", "a name that resolves to a loopback or unspecified address, in any form, is refused with WEB_LOOPBACK at connect time", "loopback", ["127.0.0.1", "127.5.6.7", "::1", "0.0.0.0", "::ffff:127.0.0.1"], "WEB_LOOPBACK", "unsafeAllowLoopback"),
  resolvedCheck("web-resolved-metadata", "a name that resolves to a cloud metadata address (IPv4, AWS IPv6, IPv4-mapped) is refused with WEB_PRIVATE_ADDRESS", "metadata", ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"], "WEB_PRIVATE_ADDRESS", "unsafeAllowPrivateNetwork"),
  resolvedCheck("web-resolved-private", "a name that resolves to a private address, or to its NAT64 or 6to4 form, is refused with WEB_PRIVATE_ADDRESS", "private", ["10.1.2.3", "172.16.5.4", "192.168.0.10", "100.64.1.1", "fc00::5", "64:ff9b::a00:1", "2002:a00:1::"], "WEB_PRIVATE_ADDRESS", "unsafeAllowPrivateNetwork"),
  resolvedCheck("web-resolved-multicast", "a name that resolves to a multicast address is refused with WEB_PRIVATE_ADDRESS under every policy", "multicast", ["224.0.0.1", "ff02::1"], "WEB_PRIVATE_ADDRESS"),
  {
    id: "web-mixed-dns-answers",
    title: "a name whose DNS answer holds a public and a forbidden address is refused: every answer is checked once and the socket is pinned to a checked one (DNS rebinding)",
    source: "DNS rebinding (Jackson et al., 'Protecting Browsers from DNS Rebinding Attacks'); OWASP SSRF Cheat Sheet",
    area: "web",
    run(setup) {
      const forbidden = ["224.0.0.1", ...(setup.resolvedWebPolicy.unsafeAllowLoopback ? [] : ["127.0.0.1"]), ...(setup.resolvedWebPolicy.unsafeAllowPrivateNetwork ? [] : ["169.254.169.254"])];
      const names = Object.fromEntries(forbidden.map((address, i) => [name(`mixed${i}`), [PUBLIC_ADDRESS, address]]));
      const port = setup.resolvedWebPolicy.ports[0] ?? 80;
      return refusesAll(setup, Object.keys(names).map((n) => ({ url: `http://${n}:${port}/`, codes: ["WEB_LOOPBACK", "WEB_PRIVATE_ADDRESS"] })), withNames(setup, names));
    },
  },
  {
    id: "web-schemes",
    title: "schemes other than http: and https: (file, ftp, data, javascript, ws, gopher) are refused with WEB_SCHEME, and a relative URL with WEB_INVALID_URL",
    source: "PortSwigger SSRF (file:// and gopher:// smuggling); Dataverse outbound rules",
    area: "web",
    run: (setup) =>
      refusesAll(setup, [
        ...["file:///etc/passwd", "ftp://example.com/", "data:text/plain,hi", "javascript:alert(1)", "ws://example.com/", "gopher://example.com:70/_x"].map((url) => ({ url, codes: ["WEB_SCHEME"] })),
        { url: "/etc/passwd", codes: ["WEB_INVALID_URL"] },
      ]),
  },
  {
    id: "web-userinfo",
    title: "credentials in a URL (user:password@host, and the @ confusion trick) are refused with WEB_USERINFO",
    source: "Orange Tsai, 'A New Era of SSRF' (URL parser confusion with @)",
    area: "web",
    run: (setup) => refusesAll(setup, ["http://user:secret@example.com/", "http://example.com@169.254.169.254/", "http://attacker%40example.com@example.com/"].map((url) => ({ url, codes: ["WEB_USERINFO"] }))),
  },
  {
    id: "web-ports",
    title: "ports the policy does not allow (SSH, SMTP, Redis, memcached, alternative HTTP) are refused with WEB_PORT",
    source: "OWASP SSRF Cheat Sheet (internal service ports); Dataverse outbound rules (80 and 443)",
    area: "web",
    run(setup) {
      const ports = [22, 25, 6379, 11211, 8080].filter((p) => !setup.resolvedWebPolicy.ports.includes(p));
      if (ports.length === 0) return Promise.resolve({ passed: true, evidence: "not applicable", notApplicable: "the web policy allows every port probed" });
      return refusesAll(setup, ports.map((p) => ({ url: `http://${name("ports")}:${p}/`, codes: ["WEB_PORT"] })));
    },
  },
  redirectCheck,
];
