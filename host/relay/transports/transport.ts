/**
 * What every transport implements, and how a client's error is described without its keys.
 */
import type { ServiceEndpoint } from "../endpoints.js";

export interface OutgoingPost {
  endpoint: ServiceEndpoint;
  /** The serialized RemoteExecutionContext. */
  body: string;
  contentType: string;
  /** Derived from OperationId, so a retried post can be dropped as a duplicate. */
  messageId: string;
  /** Claim properties (reference 4.7), and MessageMaxSizeExceeded when parts were dropped. */
  properties: Record<string, string | boolean>;
  /** For webhooks: the x-ms-dynamics-* headers. */
  headers: Record<string, string>;
  /** Stops waiting for a reply (a system job's post has none to wait for, and no signal). */
  signal?: AbortSignal;
}

export interface RelayTransport {
  /** Delivers the post; resolves with a two-way, REST or webhook reply, else null. */
  post(post: OutgoingPost): Promise<string | null>;
  /** Loads the client and opens the link the endpoint's posts will use; rejects when it cannot. */
  connect?(endpoint: ServiceEndpoint): Promise<void>;
  close(): Promise<void>;
}

/** An error's code and message, with any key masked. */
export function describeError(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown };
  const text = typeof e.message === "string" ? e.message : String(error);
  // Never let a key out, whatever the client put in its message.
  return `${typeof e.code === "string" ? `${e.code}: ` : ""}${text.replace(/SharedAccessKey=[^;\s]*/gi, "SharedAccessKey=***").slice(0, 300)}`;
}
