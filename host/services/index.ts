/**
 * The services a host offers to sandboxed plug-ins, behind the runtime's one `call` entry point:
 * the organization service, the notification service and the outbound web client. Every call is
 * recorded with its outcome, for `plugbox run`'s report and for tests.
 */
import { toPlain } from "../../sdk/codec.js";
import { methodCall, methodResult, type OrganizationMethod } from "../../sdk/requests.js";
import type { SandboxServices, ServiceCall } from "../../runtime/index.js";
import type { WebCallRecord } from "../../runtime/protocol.js";
import { PlugboxError } from "../../sdk/errors.js";
import type { WebFetchOptions } from "../web/index.js";
import { serveNotification, type NotificationBackend } from "./notification.js";
import { serveOrganization, type OrganizationBackend, type RecordedCall } from "./organization.js";

export interface WebBackend {
  fetch(request: unknown, options: WebFetchOptions): Promise<unknown>;
}

export interface HostServiceBackends {
  organization: OrganizationBackend;
  notification: NotificationBackend;
  web: WebBackend;
}

export interface RecordingServices extends SandboxServices {
  readonly calls: RecordedCall[];
}

function plain(value: unknown): unknown {
  try {
    return toPlain(value);
  } catch {
    return "[unrepresentable]";
  }
}

export interface HostServiceOptions {
  /** The bundle's allow-list of web hosts, which narrows the web policy; null for none. */
  webAllowedHosts?: readonly string[] | null;
}

/** How a web request the worker served appears among the run's service calls. */
export function webCallRecord(call: WebCallRecord): RecordedCall {
  return {
    service: "web",
    op: "fetch",
    userId: null,
    args: [{ url: call.url, method: call.method }],
    ok: call.ok,
    ...(call.status !== undefined ? { result: { status: call.status } } : {}),
    ...(call.error ? { error: call.error } : {}),
  };
}

export function createHostServices(backends: HostServiceBackends, options: HostServiceOptions = {}): RecordingServices {
  const calls: RecordedCall[] = [];
  return {
    calls,
    async call(request: ServiceCall): Promise<unknown> {
      const { op, args, method } = asMethodCall(request);
      const record: RecordedCall = { service: request.service, op, userId: request.userId, args: args.map(plain), ok: false };
      calls.push(record);
      try {
        const result = await dispatch(backends, request, options);
        record.ok = true;
        record.result = plain(method ? (methodResult(method, result) ?? null) : result);
        return result;
      } catch (error) {
        record.error = error instanceof PlugboxError ? { code: error.code, message: error.message } : { code: "SERVICE_FAILED", message: `the ${request.service} service failed` };
        throw error;
      }
    },
  };
}

/** A call as the plug-in made it: an organization request as the method that sends it (`organization.create(entity)`), or `execute(request)`. */
export function asMethodCall(call: Pick<ServiceCall, "service" | "op" | "args">): { op: string; args: unknown[]; method?: OrganizationMethod } {
  if (call.service !== "organization" || call.op !== "execute") return { op: call.op, args: call.args };
  const { method, args } = methodCall(call.args[0]);
  return method === "execute" ? { op: method, args } : { op: method, args, method };
}

function dispatch(backends: HostServiceBackends, request: ServiceCall, options: HostServiceOptions): Promise<unknown> {
  switch (request.service) {
    case "organization":
      return serveOrganization(backends.organization, request.op, request.args, { userId: request.userId });
    case "notification":
      return serveNotification(backends.notification, request.op, request.args, request.signal);
    case "web":
      return backends.web.fetch(request.args[0], {
        executionId: request.executionId,
        signal: request.signal,
        deadline: request.deadline,
        allowedHosts: options.webAllowedHosts ?? null,
      });
  }
}

export { serveOrganization } from "./organization.js";
export { OrganizationService } from "../organization/service.js";
export type { OrganizationBackend, RecordedCall, CallerIdentity } from "./organization.js";

export { RecordingNotificationService } from "./notification.js";
export type { NotificationBackend, RecordedPost } from "./notification.js";
