/**
 * The network policy of the outbound web client, with Dataverse's rules as defaults: HTTP and
 * HTTPS only, DNS names only (no IP literals, no localhost), no loopback or private address after
 * resolution, ports 80 and 443. Host configuration may widen it (for a deployment, or a test);
 * a bundle may narrow it to an allow-list of hosts.
 */
import { isIP } from "node:net";
import { classifyAddress, type AddressClass } from "./addresses.js";
import { WebError } from "./errors.js";

export interface WebPolicy {
  /** Ports a request may use. @default [80, 443] */
  ports: number[];
  /** Host names a request may reach; `*.example.com` matches sub-domains. null: any DNS name. @default null */
  allowedHosts: string[] | null;
  /** Names resolved by this table instead of DNS (name → addresses). For tests and split-horizon deployments. @default {} */
  resolve: Record<string, string[]>;
  /** Allow addresses in private, link-local, unique-local and reserved ranges (an internal deployment). Never loopback. @default false */
  unsafeAllowPrivateNetwork: boolean;
  /** Allow loopback addresses. For tests against servers on 127.0.0.1 only. @default false */
  unsafeAllowLoopback: boolean;
  /** Time for one request, response body included, ms (Dataverse's best practice: 15 s). @default 15000 */
  requestTimeoutMs: number;
  /** Requests one execution may make. @default 50 */
  maxRequestsPerExecution: number;
  /** Size of a request body, bytes. @default 1048576 */
  maxRequestBytes: number;
  /** Size of a response body, bytes (it crosses into the sandbox base64-encoded). @default 524288 */
  maxResponseBytes: number;
  /** Redirects followed, each checked again. @default 5 */
  maxRedirects: number;
}

export const webPolicyDefaults: Readonly<WebPolicy> = Object.freeze({
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

/** What host configuration may set: `extraPorts` add to the default ports. */
export type WebPolicyInput = Partial<WebPolicy> & { extraPorts?: number[] };

function bad(path: string, rule: string): WebError {
  return new WebError("WEB_POLICY_INVALID", `web policy: ${path} ${rule}`);
}

function integerIn(path: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) throw bad(path, `must be an integer from ${min} to ${max}`);
  return value;
}

function hostPattern(path: string, value: unknown): string {
  if (typeof value !== "string" || !/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(value)) {
    throw bad(path, `must be a host name such as "api.example.com" or "*.example.com", got ${JSON.stringify(value)}`);
  }
  return value.toLowerCase();
}

/** Fills in defaults and checks every value; errors name the path and the rule. */
export function resolveWebPolicy(input: WebPolicyInput = {}, base: WebPolicy = webPolicyDefaults): WebPolicy {
  if (typeof input !== "object" || input === null) throw bad("(root)", "must be an object");
  const known = [...Object.keys(webPolicyDefaults), "extraPorts"];
  for (const key of Object.keys(input)) if (!known.includes(key)) throw bad(key, `is not an option; known options are ${known.join(", ")}`);
  const out: WebPolicy = { ...base, ports: [...base.ports], resolve: { ...base.resolve } };
  if (input.ports !== undefined) {
    if (!Array.isArray(input.ports)) throw bad("ports", "must be an array of port numbers");
    out.ports = input.ports.map((p, i) => integerIn(`ports[${i}]`, p, 1, 65535));
  }
  if (input.extraPorts !== undefined) {
    if (!Array.isArray(input.extraPorts)) throw bad("extraPorts", "must be an array of port numbers");
    out.ports.push(...input.extraPorts.map((p, i) => integerIn(`extraPorts[${i}]`, p, 1, 65535)));
  }
  if (input.allowedHosts !== undefined) {
    if (input.allowedHosts !== null && !Array.isArray(input.allowedHosts)) throw bad("allowedHosts", "must be an array of host names or null");
    out.allowedHosts = input.allowedHosts === null ? null : input.allowedHosts.map((h, i) => hostPattern(`allowedHosts[${i}]`, h));
  }
  if (input.resolve !== undefined) {
    if (typeof input.resolve !== "object" || input.resolve === null) throw bad("resolve", "must map host names to addresses");
    for (const [name, addresses] of Object.entries(input.resolve)) {
      const list = Array.isArray(addresses) ? addresses : [addresses];
      if (list.length === 0 || !list.every((a) => typeof a === "string" && isIP(a) !== 0)) throw bad(`resolve.${name}`, "must be an IP address or a list of them");
      out.resolve[hostPattern(`resolve key ${JSON.stringify(name)}`, name)] = list as string[];
    }
  }
  for (const key of ["unsafeAllowPrivateNetwork", "unsafeAllowLoopback"] as const) {
    if (input[key] !== undefined) {
      if (typeof input[key] !== "boolean") throw bad(key, "must be true or false");
      out[key] = input[key];
    }
  }
  const ranges: Array<[keyof WebPolicy, number, number]> = [
    ["requestTimeoutMs", 1, 600_000],
    ["maxRequestsPerExecution", 0, 100_000],
    ["maxRequestBytes", 0, 268_435_456],
    ["maxResponseBytes", 0, 268_435_456],
    ["maxRedirects", 0, 50],
  ];
  for (const [key, min, max] of ranges) if (input[key] !== undefined) (out as unknown as Record<string, number>)[key] = integerIn(key, input[key], min, max);
  return Object.freeze(out);
}

const LOCALHOST_NAMES = new Set(["localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"]);

function matchesHost(host: string, pattern: string): boolean {
  return pattern.startsWith("*.") ? host.endsWith(pattern.slice(1)) : host === pattern;
}

/** The host name a policy judges: lower case, no trailing dot, no brackets. */
export function normalizedHost(url: URL): string {
  return url.hostname.toLowerCase().replace(/\.+$/, "");
}

/**
 * Checks a URL before any connection: scheme, credentials, IP literals in any notation (the
 * WHATWG parser turns decimal, octal, hex and short IPv4 forms into dotted form first), localhost
 * names, port, and the allow-lists of the host and of the bundle.
 */
export function checkUrl(raw: string, policy: WebPolicy, bundleAllowedHosts: readonly string[] | null): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebError("WEB_INVALID_URL", `${JSON.stringify(raw.slice(0, 200))} is not an absolute URL`);
  }
  const shown = `${url.protocol}//${url.host}`;
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new WebError("WEB_SCHEME", `${url.protocol} is not allowed: plug-ins may use only http: and https:`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new WebError("WEB_USERINFO", `credentials in the URL are not allowed (${shown}); send them in a header`);
  }
  const host = normalizedHost(url);
  const bare = host.startsWith("[") ? host.slice(1, -1) : host;
  if (isIP(bare) !== 0) {
    throw new WebError("WEB_IP_LITERAL", `${shown} uses an IP address; plug-ins must use a DNS name, as in Dataverse`);
  }
  if (LOCALHOST_NAMES.has(host) || host.endsWith(".localhost")) {
    throw new WebError("WEB_LOOPBACK", `${shown} is the local machine; plug-ins may not reach localhost`);
  }
  const port = url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port);
  if (!policy.ports.includes(port)) {
    throw new WebError("WEB_PORT", `port ${port} is not allowed (allowed: ${policy.ports.join(", ")}); a deployment can add ports with extraPorts`);
  }
  if (policy.allowedHosts !== null && !policy.allowedHosts.some((p) => matchesHost(host, p))) {
    throw new WebError("WEB_NOT_ALLOWED", `${host} is not on this host's allow-list (${policy.allowedHosts.join(", ") || "empty"})`);
  }
  if (bundleAllowedHosts !== null && !bundleAllowedHosts.some((p) => matchesHost(host, p.toLowerCase()))) {
    throw new WebError("WEB_NOT_ALLOWED", `${host} is not on the bundle's allow-list (${bundleAllowedHosts.join(", ") || "empty"})`);
  }
  return url;
}

const PRIVATE_CLASSES: ReadonlySet<AddressClass> = new Set(["private", "link-local", "unique-local", "multicast", "reserved"]);

/** Checks one resolved address; throws the rule it breaks. */
export function checkAddress(host: string, address: string, policy: WebPolicy): void {
  const kind = classifyAddress(address);
  if (kind === "public") return;
  if (kind === "loopback" || kind === "unspecified") {
    if (policy.unsafeAllowLoopback) return;
    throw new WebError("WEB_LOOPBACK", `${host} resolves to ${address}, a ${kind} address; plug-ins may not reach the local machine`);
  }
  if (PRIVATE_CLASSES.has(kind)) {
    if (policy.unsafeAllowPrivateNetwork && kind !== "multicast") return;
    throw new WebError("WEB_PRIVATE_ADDRESS", `${host} resolves to ${address}, a ${kind} address; plug-ins may reach only public addresses`);
  }
}
