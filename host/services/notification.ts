/**
 * The service-endpoint notification service a plug-in calls: the backend's contract, which the relay
 * (host/relay) fulfils by sending; the recording backend that `plugbox run` and the test harness use
 * when no relay is configured (posts are recorded, not sent); and the context serialized for an
 * endpoint when a job that posts it later is queued.
 */
import { isPlainObject } from "../../sdk/codec.js";
import { parseRemoteExecutionContext, type WireFormat } from "../../sdk/wire/index.js";
import { HostError } from "../errors.js";
import { isGuid } from "../ids.js";

/**
 * A context serialized for its endpoint when the job that posts it was queued (an asynchronous
 * posting step's, or an outbox post's): the body in the endpoint's format (already without
 * ParentContext, InputParameters and images when the whole was over the endpoint's limit), and the
 * members the claims, headers and trace read, which the body either does not carry
 * (initiatingUserAgent) or would have to be parsed for.
 */
export interface SerializedContext {
  format: WireFormat;
  body: string;
  /** True when the body is the reduced form (Dataverse's MessageMaxSizeExceeded). */
  sizeExceeded: boolean;
  fields: Record<string, string | number>;
}

/** The members a SerializedContext keeps beside its body. */
const SERIALIZED_FIELDS = ["operationId", "requestId", "correlationId", "messageName", "primaryEntityName", "userId", "initiatingUserId", "initiatingUserAgent", "stage", "mode", "depth"] as const;

export function serializedFields(context: Record<string, unknown>): Record<string, string | number> {
  const fields: Record<string, string | number> = {};
  for (const name of SERIALIZED_FIELDS) {
    const value = context[name];
    if (value !== undefined && value !== null) fields[name] = typeof value === "number" ? value : String(value);
  }
  return fields;
}

/** The context a SerializedContext was made from, read back from its body. */
export function readSerializedContext(serialized: SerializedContext): Record<string, unknown> {
  const context = parseRemoteExecutionContext(serialized.body, serialized.format) as unknown as Record<string, unknown>;
  for (const [name, value] of Object.entries(serialized.fields)) if (context[name] === undefined) context[name] = value;
  return context;
}

/**
 * How a job keeps a SerializedContext: the body as it is, and a header in plugbox JSON whose `$type`
 * versions of plugbox before it do not know, so that one of them still running on the same store
 * fails such a job (to be retried) rather than post what it cannot read.
 */
const SERIALIZED_HEADER_TYPE = "SerializedContext";

export function serializedHeader(serialized: SerializedContext): string {
  const { format, sizeExceeded, fields, body } = serialized;
  return JSON.stringify({ $type: SERIALIZED_HEADER_TYPE, format, sizeExceeded, length: body.length, fields });
}

/** The SerializedContext a job keeps, checked: a header or body that was damaged throws with what is wrong. */
export function readSerializedHeader(header: string, body: string): SerializedContext {
  let parsed: { $type?: unknown; format?: unknown; sizeExceeded?: unknown; length?: unknown; fields?: unknown };
  try {
    parsed = JSON.parse(header) as typeof parsed;
  } catch (error) {
    throw new Error(`its header is not JSON: ${(error as Error).message}`);
  }
  const { $type, format, sizeExceeded, length, fields } = parsed ?? {};
  if ($type !== SERIALIZED_HEADER_TYPE || (format !== "json" && format !== "xml") || typeof sizeExceeded !== "boolean" || !isPlainObject(fields)) {
    throw new Error("its header does not describe a serialized context");
  }
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value !== "string" && typeof value !== "number") throw new Error(`its header's field ${name} is not a string or a number`);
  }
  if (length !== body.length || body.trimStart()[0] !== (format === "json" ? "{" : "<")) throw new Error(`its ${format === "json" ? "JSON" : "XML"} body is not the ${String(length)} characters that were stored`);
  return { format, sizeExceeded, fields: fields as Record<string, string | number>, body };
}

/** Posts a serialized context: as it is, or read back for a backend that only takes contexts. */
export async function executeSerialized(backend: NotificationBackend, endpointId: string, serialized: SerializedContext, signal?: AbortSignal): Promise<string | null> {
  if (backend.executeSerialized) return backend.executeSerialized(endpointId, serialized, signal);
  return backend.execute(endpointId, readSerializedContext(serialized), signal);
}

export interface NotificationBackend {
  /** Posts the context to the endpoint; a two-way, REST or webhook endpoint's reply, else null. Aborting `signal` stops waiting for a reply. */
  execute(endpointId: string, context: Record<string, unknown>, signal?: AbortSignal): Promise<string | null>;
  /** True when posts to this endpoint from inside a transaction wait in the outbox until it commits. */
  holdsForOutbox?(endpointId: string): boolean;
  /** How many times an asynchronous post to this endpoint is attempted before its job fails. */
  maxAttemptsFor?(endpointId: string): number;
  /**
   * Serializes a context for a post to this endpoint made later, by a system job: the job keeps the
   * body, and its post is sent by `executeSerialized` without reading the context back.
   */
  serialize?(endpointId: string, context: Record<string, unknown>): SerializedContext;
  /** Posts a context that `serialize` made. */
  executeSerialized?(endpointId: string, serialized: SerializedContext, signal?: AbortSignal): Promise<string | null>;
}

export interface RecordedPost {
  endpointId: string;
  context: Record<string, unknown>;
}

/** Records each post and answers null, as a one-way endpoint does. */
export class RecordingNotificationService implements NotificationBackend {
  readonly posts: RecordedPost[] = [];
  async execute(endpointId: string, context: Record<string, unknown>): Promise<string | null> {
    this.posts.push({ endpointId, context });
    return null;
  }
}

export async function serveNotification(backend: NotificationBackend, op: string, args: unknown[], signal: AbortSignal): Promise<unknown> {
  if (op !== "execute") throw new HostError("NOTIFY_INVALID_ARGUMENT", `the notification service has no method ${op}`);
  const ref = args[0] as { logicalName?: unknown; id?: unknown } | undefined;
  if (!ref || !isGuid(ref.id)) throw new HostError("NOTIFY_INVALID_ARGUMENT", "execute(serviceEndpoint, context): serviceEndpoint must be an EntityReference to a serviceendpoint, with a Guid id");
  if (ref.logicalName !== undefined && ref.logicalName !== "serviceendpoint") {
    throw new HostError("NOTIFY_INVALID_ARGUMENT", `execute(serviceEndpoint, context): serviceEndpoint must reference a serviceendpoint, not a ${String(ref.logicalName)}`);
  }
  if (!isPlainObject(args[1])) throw new HostError("NOTIFY_INVALID_ARGUMENT", "execute(serviceEndpoint, context): context must be the execution context");
  return backend.execute(ref.id.toLowerCase(), args[1], signal);
}
