/**
 * The network policy of the outbound web client, with Dataverse's rules as defaults: HTTP and
 * HTTPS only, DNS names only (no IP literals, no localhost), no loopback or private address after
 * resolution, ports 80 and 443. Host configuration may widen it (for a deployment, or a test);
 * a bundle may narrow it to an allow-list of hosts.
 */
import { isIP } from "node:net";
import { classifyAddress, type AddressClass } from "./addresses.js";
import { WebError } from "./errors.js";
import { flag, formatPath, integer, parseOptions, shown, strictOptions, v, withDefaults, type IssueAt, type PathItem } from "../schema.js";

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
  ports: Object.freeze([80, 443]) as number[],
  allowedHosts: null,
  resolve: Object.freeze({}),
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

const HOST_PATTERN = /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;
const hostRule = (issue: v.BaseIssue<unknown>) => `must be a host name such as "api.example.com" or "*.example.com", got ${shown(issue.input)}`;
const hostName = v.pipe(v.string(hostRule), v.regex(HOST_PATTERN, hostRule), v.toLowerCase());
const ports = v.array(integer(1, 65535), "must be an array of port numbers");
const addressRule = "must be an IP address or a list of them";
const addresses = v.pipe(
  v.union([v.string(), v.array(v.string())], addressRule),
  v.transform((value) => (Array.isArray(value) ? value : [value])),
  v.check((list) => list.length > 0 && list.every((a) => isIP(a) !== 0), addressRule),
);

const policySchema = strictOptions({
  ports: v.optional(ports),
  extraPorts: v.optional(ports),
  allowedHosts: v.optional(v.nullable(v.array(hostName, "must be an array of host names or null"))),
  resolve: v.optional(v.record(hostName, addresses, "must map host names to addresses")),
  unsafeAllowPrivateNetwork: v.optional(flag()),
  unsafeAllowLoopback: v.optional(flag()),
  requestTimeoutMs: v.optional(integer(1, 600_000)),
  maxRequestsPerExecution: v.optional(integer(0, 100_000)),
  maxRequestBytes: v.optional(integer(0, 268_435_456)),
  maxResponseBytes: v.optional(integer(0, 268_435_456)),
  maxRedirects: v.optional(integer(0, 50)),
});

function policyError(path: PathItem[], message: string, { atKey }: IssueAt): WebError {
  const at = atKey ? `${formatPath("", path.slice(0, -1))} key ${JSON.stringify(path.at(-1))}` : path.length === 0 ? "(root)" : formatPath("", path);
  return new WebError("WEB_POLICY_INVALID", `web policy: ${at} ${message}`);
}

/** Fills in defaults and checks every value; errors name the path and the rule. */
export function resolveWebPolicy(input: WebPolicyInput = {}, base: WebPolicy = webPolicyDefaults): WebPolicy {
  const { ports: given, extraPorts, resolve, ...rest } = parseOptions(policySchema, input, policyError);
  const resolved = { ...base.resolve };
  for (const [name, list] of Object.entries(resolve ?? {})) resolved[name.toLowerCase()] = list;
  return withDefaults(base, { ...rest, ports: [...(given ?? base.ports), ...(extraPorts ?? [])], resolve: resolved });
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
