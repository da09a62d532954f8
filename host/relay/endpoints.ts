/**
 * Service endpoints as the manifest declares them (Dataverse's serviceendpoint table), checked so
 * that contract, format and authentication fit. Secrets are never written in the manifest: they
 * are references, `env:NAME` (an environment variable) or `file:NAME` (a key of the secrets file),
 * resolved when the relay starts and never printed or traced.
 */
import { readFileSync } from "node:fs";
import type { ServiceEndpointRegistration } from "../registry/manifest.js";
import { flag, formatPath, integer, parseOptions, shown, strictOptions, v } from "../../runtime/schema.js";
import { RelayError } from "./errors.js";

/** Dataverse's contract enum (reference 3.2). */
export const CONTRACTS = { OneWay: 1, Queue: 2, Rest: 3, TwoWay: 4, Topic: 5, PersistentQueue: 6, EventHub: 7, Webhook: 8 } as const;
export type Contract = keyof typeof CONTRACTS;
export const MESSAGE_FORMATS = { BinaryXml: 1, Json: 2, TextXml: 3 } as const;
export type MessageFormat = keyof typeof MESSAGE_FORMATS;
export const USER_CLAIMS = { None: 1, UserId: 2, UserInfo: 3 } as const;
export type UserClaim = keyof typeof USER_CLAIMS;
export const AUTH_TYPES = { SASKey: 2, WebhookKey: 4, HttpHeader: 5, HttpQueryString: 6, ConnectionString: 7 } as const;
export type AuthType = keyof typeof AUTH_TYPES;

export type Transport = "serviceBus" | "eventHub" | "webhook";

export interface ServiceEndpoint {
  id: string;
  name: string;
  contract: Contract;
  transport: Transport;
  messageFormat: "json" | "xml";
  userClaim: UserClaim;
  /** Queue, topic or event hub. */
  path: string | null;
  /** Service Bus / Event Hubs connection string (a secret). */
  connectionString: string | null;
  /** Webhook URL, without auth. */
  url: string | null;
  authType: AuthType | null;
  /** WebhookKey's code, or HttpHeader / HttpQueryString pairs (secrets). */
  authValues: Record<string, string>;
  /** TwoWay and Rest: where listeners send replies, correlated by the request's MessageId. */
  replyQueue: string | null;
  /**
   * TwoWay and Rest: the reply queue is session-enabled, and each relay receives the replies to its
   * own requests only (ReplyToSessionId), so hosts can share one reply queue. @default true
   */
  replySessions: boolean;
  /** How long a post may take, and a two-way reply. Webhooks: 60 s, as in Dataverse. */
  timeoutMs: number;
  /** Synchronous posts wait in the outbox and are sent after the request commits. */
  outbox: boolean;
  /** Attempts of an asynchronous post (the whole plug-in re-runs each time) before its job fails. */
  maxAttempts: number;
}

export interface SecretSource {
  env?: Record<string, string | undefined>;
  /** A JSON file of name → secret. */
  file?: string;
}

/** A member of one of Dataverse's enums, by name or by number; the output is the name. */
function enumOf<T extends Record<string, number>>(table: T) {
  const names = Object.keys(table) as Array<keyof T & string>;
  const message = (issue: v.BaseIssue<unknown>) => `must be one of ${Object.entries(table).map(([k, n]) => `${k} (${n})`).join(", ")}; got ${shown(issue.input)}`;
  return v.pipe(
    v.union([v.picklist(names), v.picklist(Object.values(table))], message),
    v.transform((value) => (typeof value === "number" ? names.find((k) => table[k] === value)! : value)),
  );
}

const positive = integer(1, Number.MAX_SAFE_INTEGER, "must be a positive integer");
const optionalText = v.optional(v.string("must be a string"));

/** The keys of a declared endpoint and the type of each; what depends on the contract is checked in readServiceEndpoint. */
const endpointSchema = strictOptions(
  {
    id: v.string(),
    name: v.string(),
    description: optionalText,
    contract: enumOf(CONTRACTS),
    messageFormat: v.optional(enumOf(MESSAGE_FORMATS), "Json"),
    userClaim: v.optional(enumOf(USER_CLAIMS), "UserId"),
    path: optionalText,
    connectionString: v.optional(v.unknown()),
    namespaceAddress: optionalText,
    sasKeyName: optionalText,
    sasKey: v.optional(v.unknown()),
    url: optionalText,
    authType: v.optional(enumOf(AUTH_TYPES)),
    authValue: v.optional(v.unknown()),
    replyQueue: optionalText,
    replySessions: v.optional(flag()),
    timeoutMs: v.optional(positive, 60_000),
    outbox: v.optional(flag(), false),
    maxAttempts: v.optional(positive, 10),
  },
  "is not a known key; known keys are",
);

export class SecretResolver {
  readonly #env: Record<string, string | undefined>;
  readonly #file: string | undefined;
  #fileValues: Record<string, unknown> | undefined;
  constructor(source: SecretSource = {}) {
    this.#env = source.env ?? process.env;
    this.#file = source.file;
  }

  /** Resolves `env:NAME` or `file:NAME`; `what` names the endpoint field in errors (never the value). */
  resolve(reference: unknown, what: string, options: { allowLiteral?: (value: string) => boolean } = {}): string {
    if (typeof reference !== "string" || reference === "") throw new RelayError("RELAY_CONFIG_INVALID", `${what} must be a secret reference: "env:NAME" or "file:NAME"`);
    if (reference.startsWith("env:")) {
      const name = reference.slice(4);
      const value = this.#env[name];
      if (value === undefined || value === "") throw new RelayError("RELAY_SECRET_MISSING", `${what} reads the environment variable ${name}, which is not set`);
      return value;
    }
    if (reference.startsWith("file:")) {
      const name = reference.slice(5);
      if (!this.#file) throw new RelayError("RELAY_SECRET_MISSING", `${what} reads ${name} from the secrets file, but no secrets file is configured (--secrets <file.json>)`);
      if (!this.#fileValues) {
        try {
          this.#fileValues = JSON.parse(readFileSync(this.#file, "utf8")) as Record<string, unknown>;
        } catch {
          throw new RelayError("RELAY_SECRET_MISSING", `the secrets file ${this.#file} cannot be read as a JSON object of name → secret`);
        }
      }
      const value = this.#fileValues[name];
      if (typeof value !== "string" || value === "") throw new RelayError("RELAY_SECRET_MISSING", `${what} reads ${name} from the secrets file ${this.#file}, which has no such entry`);
      return value;
    }
    if (options.allowLiteral?.(reference)) return reference;
    throw new RelayError("RELAY_CONFIG_INVALID", `${what} looks like a secret written into the manifest; put it in an environment variable or the secrets file and write "env:NAME" or "file:NAME"`);
  }
}

/** A development connection string (the local broker's) carries no real secret, so it may be written as is. */
function isDevelopmentConnection(value: string): boolean {
  return /(^|;)UseDevelopmentEmulator=true(;|$)/.test(value);
}

export function readServiceEndpoint(declared: ServiceEndpointRegistration, secrets: SecretResolver): ServiceEndpoint {
  const at = `serviceEndpoints "${declared.name}"`;
  const raw = parseOptions(endpointSchema, declared, (path, message) => new RelayError("RELAY_CONFIG_INVALID", `${formatPath(at, path)} ${message}`));
  const { contract, messageFormat: format, userClaim, outbox, timeoutMs, maxAttempts } = raw;
  const transport: Transport = contract === "Webhook" ? "webhook" : contract === "EventHub" ? "eventHub" : "serviceBus";
  if (format === "BinaryXml") {
    throw new RelayError("RELAY_FORMAT_UNSUPPORTED", `${at}: Binary XML (MessageFormat 1) is .NET's binary encoding and is not supported; use Json (2) or TextXml (3)`);
  }
  if (transport === "webhook" && format !== "Json") throw new RelayError("RELAY_CONFIG_INVALID", `${at}: webhooks always post JSON; remove messageFormat or set it to Json`);
  const twoWay = contract === "TwoWay" || contract === "Rest";
  if (outbox && twoWay) throw new RelayError("RELAY_CONFIG_INVALID", `${at}: a ${contract} endpoint answers the plug-in, so its posts cannot wait in the outbox; remove outbox or use a Queue`);
  const base = { id: raw.id, name: raw.name, contract, transport, messageFormat: format === "TextXml" ? ("xml" as const) : ("json" as const), userClaim, timeoutMs, outbox, maxAttempts };

  if (transport === "webhook") {
    if (raw.url === undefined) throw new RelayError("RELAY_CONFIG_INVALID", `${at}: a Webhook endpoint needs a url`);
    let url: URL;
    try {
      url = new URL(raw.url);
    } catch {
      throw new RelayError("RELAY_CONFIG_INVALID", `${at}.url is not a URL`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new RelayError("RELAY_CONFIG_INVALID", `${at}.url must be http: or https:`);
    if (url.username || url.password) throw new RelayError("RELAY_CONFIG_INVALID", `${at}.url must not hold credentials; use authType HttpHeader with env: secrets`);
    const authType = raw.authType ?? null;
    if (authType !== null && authType !== "WebhookKey" && authType !== "HttpHeader" && authType !== "HttpQueryString") {
      throw new RelayError("RELAY_CONFIG_INVALID", `${at}: a Webhook takes authType WebhookKey, HttpHeader or HttpQueryString, not ${authType}`);
    }
    const authValues: Record<string, string> = {};
    if (authType === "WebhookKey") authValues.code = secrets.resolve(raw.authValue, `${at}.authValue`);
    else if (authType !== null) {
      if (typeof raw.authValue !== "object" || raw.authValue === null || Array.isArray(raw.authValue)) {
        throw new RelayError("RELAY_CONFIG_INVALID", `${at}.authValue must be an object of name → secret reference for ${authType}`);
      }
      for (const [name, ref] of Object.entries(raw.authValue)) authValues[name] = secrets.resolve(ref, `${at}.authValue.${name}`);
    }
    return { ...base, path: null, connectionString: null, url: url.href, authType, authValues, replyQueue: null, replySessions: false };
  }

  if (!raw.path) throw new RelayError("RELAY_CONFIG_INVALID", `${at}: a ${contract} endpoint needs a path (the queue, topic or event hub)`);
  let connectionString: string;
  if (raw.connectionString !== undefined) {
    connectionString = secrets.resolve(raw.connectionString, `${at}.connectionString`, { allowLiteral: isDevelopmentConnection });
  } else if (raw.namespaceAddress !== undefined) {
    if (raw.sasKeyName === undefined) {
      throw new RelayError("RELAY_CONFIG_INVALID", `${at}: SAS authentication needs namespaceAddress, sasKeyName and sasKey`);
    }
    connectionString = `Endpoint=${raw.namespaceAddress};SharedAccessKeyName=${raw.sasKeyName};SharedAccessKey=${secrets.resolve(raw.sasKey, `${at}.sasKey`)}`;
    // The clients speak plain AMQP (no TLS) only to a development namespace, such as plugbox broker on this machine.
    if (/^sb:\/\/(127\.0\.0\.1|localhost)(:\d+)?\/?$/i.test(raw.namespaceAddress)) connectionString += ";UseDevelopmentEmulator=true";
  } else {
    throw new RelayError("RELAY_CONFIG_INVALID", `${at}: a ${contract} endpoint needs a connectionString (env:NAME) or namespaceAddress, sasKeyName and sasKey`);
  }
  if (!/(^|;)Endpoint=sb:\/\/[^;]+/i.test(connectionString)) {
    throw new RelayError("RELAY_CONFIG_INVALID", `${at}: the connection string is malformed: it needs Endpoint=sb://<namespace>;SharedAccessKeyName=…;SharedAccessKey=…`);
  }
  const replyQueue = twoWay ? raw.replyQueue || `${raw.path}-replies` : null;
  const replySessions = raw.replySessions ?? twoWay;
  if (replySessions && !twoWay) throw new RelayError("RELAY_CONFIG_INVALID", `${at}: replySessions is for TwoWay and Rest endpoints; a ${contract} endpoint gets no reply`);
  return { ...base, path: raw.path, connectionString, url: null, authType: raw.namespaceAddress !== undefined ? "SASKey" : "ConnectionString", authValues: {}, replyQueue, replySessions };
}
