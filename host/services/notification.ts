/**
 * The service-endpoint notification service as plug-ins call it, and the backend the relay (or a
 * recorder, where no endpoint is configured) implements.
 */
import { isPlainObject } from "../../sdk/codec.js";
import { parseRemoteExecutionContext, type WireFormat } from "../../sdk/wire/index.js";
import { HostServiceError } from "./errors.js";
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
  if (op !== "execute") throw new HostServiceError("NOTIFY_INVALID_ARGUMENT", `the notification service has no method ${op}`);
  const ref = args[0] as { logicalName?: unknown; id?: unknown } | undefined;
  if (!ref || !isGuid(ref.id)) throw new HostServiceError("NOTIFY_INVALID_ARGUMENT", "execute(serviceEndpoint, context): serviceEndpoint must be an EntityReference to a serviceendpoint, with a Guid id");
  if (ref.logicalName !== undefined && ref.logicalName !== "serviceendpoint") {
    throw new HostServiceError("NOTIFY_INVALID_ARGUMENT", `execute(serviceEndpoint, context): serviceEndpoint must reference a serviceendpoint, not a ${String(ref.logicalName)}`);
  }
  if (!isPlainObject(args[1])) throw new HostServiceError("NOTIFY_INVALID_ARGUMENT", "execute(serviceEndpoint, context): context must be the execution context");
  return backend.execute(ref.id.toLowerCase(), args[1], signal);
}
