/**
 * The `<entity>/$management` request/response operations @azure/service-bus uses: renew-lock,
 * peek-message, schedule-message, cancel-scheduled-message, receive-by-sequence-number and
 * update-disposition (shared/reference/service-bus-broker.md §3.5). Replies carry both
 * `statusCode` and `status-code`, since the client reads one or the other depending on the call.
 */
import { randomBytes } from "node:crypto";
import { rhea, longValue, uuidKey, type AmqpMessage, type ManagementReply } from "./amqp.js";
import { ManagementFailure, type Disposition, type Entity } from "./entities.js";
import type { Namespace } from "./namespace.js";

export type { ManagementReply } from "./amqp.js";

type Body = Record<string, unknown>;
type Operation = (ns: Namespace, path: string, body: Body) => ManagementReply;

const ok = (body: unknown = {}): ManagementReply => ({ status: 200, body });

function entityAt(ns: Namespace, path: string): Entity {
  const entity = ns.entity(path);
  if (!entity) throw new ManagementFailure(404, "amqp:not-found", `The messaging entity '${path}' could not be found.`);
  return entity;
}

function list(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  if (value && typeof value === "object" && Array.isArray((value as { value?: unknown }).value)) return (value as { value: unknown[] }).value;
  return value === undefined ? [] : [value];
}

const encode = (message: AmqpMessage) => rhea.message.encode(message);

const DISPOSITIONS: Record<string, (body: Body) => Disposition> = {
  completed: () => ({ kind: "complete" }),
  abandoned: (b) => ({ kind: "abandon", properties: b["properties-to-modify"] as Body | undefined }),
  defered: (b) => ({ kind: "defer", properties: b["properties-to-modify"] as Body | undefined }),
  deferred: (b) => ({ kind: "defer", properties: b["properties-to-modify"] as Body | undefined }),
  suspended: (b) => ({
    kind: "deadLetter",
    reason: b["deadletter-reason"] as string | undefined,
    description: b["deadletter-description"] as string | undefined,
    properties: b["properties-to-modify"] as Body | undefined,
  }),
};

const OPERATIONS: Record<string, Operation> = {
  "com.microsoft:renew-lock": (ns, _path, body) => ok({ expirations: list(body["lock-tokens"]).map((token) => ns.renewLock(uuidKey(token))) }),

  "com.microsoft:peek-message": (ns, path, body) => {
    const from = longValue(body["from-sequence-number"]);
    const count = Number(body["message-count"] ?? 1);
    const omitBody = body["omit-message-body"] === true;
    const session = typeof body["session-id"] === "string" ? body["session-id"] : undefined;
    const found = ns.peek(entityAt(ns, path), Number.isFinite(from) ? from : 1, count, session);
    if (found.length === 0) return { status: 204, body: {}, description: "No messages to peek" };
    return ok({
      messages: found.map((stored) => {
        const message = ns.outgoing(stored);
        if (omitBody) delete message.body;
        return { message: encode(message) };
      }),
    });
  },

  "com.microsoft:schedule-message": (ns, path, body) => {
    const messages = list(body.messages).map((entry) => rhea.message.decode((entry as Body).message as Buffer));
    return ok({ "sequence-numbers": rhea.types.wrap_array(ns.schedule(path, messages), 0x81) });
  },

  "com.microsoft:cancel-scheduled-message": (ns, path, body) => {
    ns.cancelScheduled(path, list(body["sequence-numbers"]).map(longValue));
    return ok();
  },

  "com.microsoft:receive-by-sequence-number": (ns, path, body) => {
    const entity = entityAt(ns, path);
    const receiveAndDelete = Number(body["receiver-settle-mode"]) === 0;
    const found = ns.deferred(entity, list(body["sequence-numbers"]).map(longValue));
    return ok({
      messages: found.map((stored) => {
        if (receiveAndDelete) {
          const message = ns.outgoing(stored);
          ns.take(entity, stored);
          return { message: encode(message) };
        }
        // The client uses this token as it is (no .NET reordering), and sends the same bytes back.
        const token = randomBytes(16);
        ns.lock(entity, stored, token.toString("hex"));
        return { message: encode(ns.outgoing(stored)), "lock-token": rhea.types.wrap_uuid(token) };
      }),
    });
  },

  "com.microsoft:renew-session-lock": (ns, path, body) => ok({ expiration: ns.renewSessionLock(entityAt(ns, path), String(body["session-id"] ?? "")) }),

  "com.microsoft:set-session-state": (ns, path, body) => {
    const state = body["session-state"];
    ns.sessionState(entityAt(ns, path), String(body["session-id"] ?? ""), Buffer.isBuffer(state) ? state : null);
    return ok();
  },

  "com.microsoft:get-session-state": (ns, path, body) => ok({ "session-state": ns.sessionState(entityAt(ns, path), String(body["session-id"] ?? "")) }),

  "com.microsoft:update-disposition": (ns, _path, body) => {
    const status = String(body["disposition-status"] ?? "");
    const disposition = DISPOSITIONS[status];
    if (!disposition) throw new ManagementFailure(400, "amqp:invalid-field", `disposition-status ${JSON.stringify(status)} is not one of ${Object.keys(DISPOSITIONS).join(", ")}`);
    for (const token of list(body["lock-tokens"])) ns.settle(uuidKey(token), disposition(body));
    return ok();
  },
};

export function manage(ns: Namespace, path: string, request: AmqpMessage): ManagementReply {
  const operation = String(request.application_properties?.operation ?? "");
  const handler = OPERATIONS[operation];
  if (!handler) {
    return { status: 501, body: {}, condition: "amqp:not-implemented", description: `plugbox broker does not implement the management operation ${JSON.stringify(operation)} (listing sessions and rule management are not supported)` };
  }
  try {
    return handler(ns, path, (request.body ?? {}) as Body);
  } catch (error) {
    if (error instanceof ManagementFailure) return { status: error.status, body: {}, condition: error.condition, description: error.message };
    return { status: 500, body: {}, condition: "amqp:internal-error", description: (error as Error).message };
  }
}

/** The response message for a request, with the status under both spellings the client reads. */
export function replyTo(request: AmqpMessage, reply: ManagementReply): AmqpMessage {
  const properties: Record<string, unknown> = { statusCode: reply.status, "status-code": reply.status };
  if (reply.description) Object.assign(properties, { statusDescription: reply.description, "status-description": reply.description });
  if (reply.condition) Object.assign(properties, { errorCondition: reply.condition, "error-condition": reply.condition });
  return { correlation_id: request.message_id, application_properties: properties, body: reply.body };
}
