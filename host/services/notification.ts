/**
 * The service-endpoint notification service. Until the relay is configured, posts are recorded
 * rather than sent: `plugbox run` shows them, and tests read them.
 */
import { isPlainObject } from "../../sdk/codec.js";
import { HostError } from "../errors.js";
import { isGuid } from "../ids.js";

export interface NotificationBackend {
  /** Posts the context to the endpoint; a two-way, REST or webhook endpoint's reply, else null. Aborting `signal` stops waiting for a reply. */
  execute(endpointId: string, context: Record<string, unknown>, signal?: AbortSignal): Promise<string | null>;
  /** True when posts to this endpoint from inside a transaction wait in the outbox until it commits. */
  holdsForOutbox?(endpointId: string): boolean;
  /** How many times an asynchronous post to this endpoint is attempted before its job fails. */
  maxAttemptsFor?(endpointId: string): number;
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
