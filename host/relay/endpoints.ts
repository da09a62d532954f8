/**
 * Service endpoints as the manifest declares them (Dataverse's serviceendpoint table), checked so
 * that contract, format and authentication fit. Secrets are never written in the manifest: they
 * are references, `env:NAME` (an environment variable) or `file:NAME` (a key of the secrets file),
 * resolved when the relay starts and never printed or traced.
 */
import { readFileSync } from "node:fs";
import type { ServiceEndpointRegistration } from "../registry/manifest.js";
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

function enumValue<T extends Record<string, number>>(table: T, value: unknown, at: string, fallback?: keyof T): keyof T {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value === "string" && Object.prototype.hasOwnProperty.call(table, value)) return value;
  if (typeof value === "number") {
    const name = Object.keys(table).find((k) => table[k] === value);
    if (name) return name;
  }
  throw new RelayError("RELAY_CONFIG_INVALID", `${at} must be one of ${Object.entries(table).map(([k, v]) => `${k} (${v})`).join(", ")}; got ${JSON.stringify(value)}`);
}

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

export function readServiceEndpoint(raw: ServiceEndpointRegistration, secrets: SecretResolver): ServiceEndpoint {
  const at = `serviceEndpoints "${raw.name}"`;
  const known = ["id", "name", "description", "contract", "messageFormat", "userClaim", "path", "connectionString", "namespaceAddress", "sasKeyName", "sasKey", "url", "authType", "authValue", "replyQueue", "replySessions", "timeoutMs", "outbox", "maxAttempts"];
  for (const key of Object.keys(raw)) if (!known.includes(key)) throw new RelayError("RELAY_CONFIG_INVALID", `${at}: ${key} is not a known key; known keys are ${known.join(", ")}`);
  const contract = enumValue(CONTRACTS, raw.contract, `${at}.contract`) as Contract;
  const transport: Transport = contract === "Webhook" ? "webhook" : contract === "EventHub" ? "eventHub" : "serviceBus";
  const format = enumValue(MESSAGE_FORMATS, raw.messageFormat, `${at}.messageFormat`, "Json") as MessageFormat;
  if (format === "BinaryXml") {
    throw new RelayError("RELAY_FORMAT_UNSUPPORTED", `${at}: Binary XML (MessageFormat 1) is .NET's binary encoding and is not supported; use Json (2) or TextXml (3)`);
  }
  if (transport === "webhook" && format !== "Json") throw new RelayError("RELAY_CONFIG_INVALID", `${at}: webhooks always post JSON; remove messageFormat or set it to Json`);
  const userClaim = enumValue(USER_CLAIMS, raw.userClaim, `${at}.userClaim`, "UserId") as UserClaim;
  const outbox = optionalBoolean(raw.outbox, false, `${at}.outbox`);
  const twoWay = contract === "TwoWay" || contract === "Rest";
  if (outbox && twoWay) throw new RelayError("RELAY_CONFIG_INVALID", `${at}: a ${contract} endpoint answers the plug-in, so its posts cannot wait in the outbox; remove outbox or use a Queue`);
  const timeoutMs = raw.timeoutMs === undefined ? 60_000 : positiveInteger(raw.timeoutMs, `${at}.timeoutMs`);
  const maxAttempts = raw.maxAttempts === undefined ? 10 : positiveInteger(raw.maxAttempts, `${at}.maxAttempts`);
  const base = { id: raw.id, name: raw.name, contract, transport, messageFormat: format === "TextXml" ? ("xml" as const) : ("json" as const), userClaim, timeoutMs, outbox, maxAttempts };

  if (transport === "webhook") {
    if (typeof raw.url !== "string") throw new RelayError("RELAY_CONFIG_INVALID", `${at}: a Webhook endpoint needs a url`);
    let url: URL;
    try {
      url = new URL(raw.url);
    } catch {
      throw new RelayError("RELAY_CONFIG_INVALID", `${at}.url is not a URL`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new RelayError("RELAY_CONFIG_INVALID", `${at}.url must be http: or https:`);
    if (url.username || url.password) throw new RelayError("RELAY_CONFIG_INVALID", `${at}.url must not hold credentials; use authType HttpHeader with env: secrets`);
    const authType = raw.authType === undefined ? null : (enumValue(AUTH_TYPES, raw.authType, `${at}.authType`) as AuthType);
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

  if (typeof raw.path !== "string" || raw.path === "") throw new RelayError("RELAY_CONFIG_INVALID", `${at}: a ${contract} endpoint needs a path (the queue, topic or event hub)`);
  let connectionString: string;
  if (raw.connectionString !== undefined) {
    connectionString = secrets.resolve(raw.connectionString, `${at}.connectionString`, { allowLiteral: isDevelopmentConnection });
  } else if (raw.namespaceAddress !== undefined) {
    if (typeof raw.namespaceAddress !== "string" || typeof raw.sasKeyName !== "string") {
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
  const replyQueue = twoWay ? (typeof raw.replyQueue === "string" && raw.replyQueue !== "" ? raw.replyQueue : `${raw.path}-replies`) : null;
  const replySessions = optionalBoolean(raw.replySessions, twoWay, `${at}.replySessions`);
  if (replySessions && !twoWay) throw new RelayError("RELAY_CONFIG_INVALID", `${at}: replySessions is for TwoWay and Rest endpoints; a ${contract} endpoint gets no reply`);
  return { ...base, path: raw.path, connectionString, url: null, authType: raw.namespaceAddress !== undefined ? "SASKey" : "ConnectionString", authValues: {}, replyQueue, replySessions };
}

function positiveInteger(value: unknown, at: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) throw new RelayError("RELAY_CONFIG_INVALID", `${at} must be a positive integer`);
  return value;
}

function optionalBoolean(value: unknown, fallback: boolean, at: string): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw new RelayError("RELAY_CONFIG_INVALID", `${at} must be true or false`);
  return value;
}
