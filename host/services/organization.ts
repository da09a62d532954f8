/**
 * The organization service as the host serves it to plug-ins: each call's arguments are checked
 * (everything that comes out of a sandbox is untrusted), become the method's request, and go to
 * the backend's one `execute`.
 */
import { isPlainObject } from "../../sdk/codec.js";
import { EntityReference } from "../../sdk/model.js";
import { OrganizationError } from "../organization/errors.js";
import {
  invalid,
  readColumnSet,
  readEntity,
  readGuid,
  readLogicalName,
  readReferences,
  readRelationship,
  type CallerIdentity,
  type OrganizationBackend,
  type OrganizationRequestValue,
} from "../organization/arguments.js";
import { methodRequests, methodResults } from "../organization/service.js";

export {
  readColumnSet,
  readEntity,
  readEntityReference,
  readGuid,
  readLogicalName,
  type CallerIdentity,
  type OrganizationBackend,
  type OrganizationRequestValue,
  type OrganizationResponseValue,
} from "../organization/arguments.js";

export interface RecordedCall {
  service: string;
  op: string;
  userId: string | null;
  args: unknown[];
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

/** A sandbox's call, checked and turned into the request its method sends. */
function requestFor(op: string, args: unknown[]): { request: OrganizationRequestValue; method: keyof typeof methodResults } {
  switch (op) {
    case "create":
      return { method: op, request: methodRequests.create(readEntity(args[0], "entity")) };
    case "retrieve":
      return { method: op, request: methodRequests.retrieve(readLogicalName(args[0], "entityName"), readGuid(args[1], "id"), readColumnSet(args[2])) };
    case "update":
      return { method: op, request: methodRequests.update(readEntity(args[0], "entity", true)) };
    case "delete":
      return { method: op, request: methodRequests.delete(readLogicalName(args[0], "entityName"), readGuid(args[1], "id")) };
    case "associate":
    case "disassociate": {
      const target = new EntityReference(readLogicalName(args[0], "entityName"), readGuid(args[1], "entityId"));
      return { method: op, request: methodRequests[op](target, readRelationship(args[2]), readReferences(args[3])) };
    }
    case "retrieveMultiple":
      if (typeof args[0] !== "object" || args[0] === null) throw invalid("query must be a QueryExpression, QueryByAttribute or FetchExpression");
      return { method: op, request: methodRequests.retrieveMultiple(args[0]) };
    case "execute": {
      const raw = args[0] as { requestName?: unknown; parameters?: unknown } | undefined;
      if (typeof raw?.requestName !== "string" || raw.requestName === "") throw invalid("request.requestName must name a message, e.g. \"WhoAmI\"");
      const parameters = raw.parameters ?? {};
      if (!isPlainObject(parameters)) throw invalid("request.parameters must be an object");
      return { method: op, request: { requestName: raw.requestName, parameters } };
    }
    default:
      throw new OrganizationError("ORG_UNSUPPORTED", `the organization service has no method ${op}`);
  }
}

/** Serves one organization-service call from a sandbox: checks the arguments, then executes the method's request. */
export async function serveOrganization(backend: OrganizationBackend, op: string, args: unknown[], caller: CallerIdentity): Promise<unknown> {
  const { request, method } = requestFor(op, args);
  return methodResults[method](await backend.execute(request, caller)) ?? null;
}
