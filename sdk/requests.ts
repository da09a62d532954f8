/**
 * IOrganizationService's methods as sugar over `execute(request)`, as Dataverse's proxy does: the
 * one place that says which request each method sends and what of its response it returns. The
 * sandbox's shim builds its requests here, and so does the host's OrganizationService.
 *
 * Intrinsics are captured when this module is evaluated (before any plug-in code, in a sandbox),
 * and a response is read through own data properties only: no getter a plug-in put on a prototype
 * runs while the shim maps an answer.
 */
import { EntityReference } from "./model.js";
import type { OrganizationRequest, OrganizationResponse } from "./plugin.js";

const getOwnPropertyDescriptor = Reflect.getOwnPropertyDescriptor;
const hasOwn = Object.hasOwn;

/** The request each method sends, from the method's own arguments. */
export const methodRequests = {
  create: (entity: unknown): OrganizationRequest => ({ requestName: "Create", parameters: { Target: entity } }),
  retrieve: (entityName: unknown, id: unknown, columnSet: unknown): OrganizationRequest => ({
    requestName: "Retrieve",
    parameters: { Target: new EntityReference(entityName as string, id as string), ColumnSet: columnSet },
  }),
  update: (entity: unknown): OrganizationRequest => ({ requestName: "Update", parameters: { Target: entity } }),
  delete: (entityName: unknown, id: unknown): OrganizationRequest => ({ requestName: "Delete", parameters: { Target: new EntityReference(entityName as string, id as string) } }),
  associate: (entityName: unknown, entityId: unknown, relationship: unknown, related: unknown): OrganizationRequest => ({
    requestName: "Associate",
    parameters: { Target: new EntityReference(entityName as string, entityId as string), Relationship: relationship, RelatedEntities: related },
  }),
  disassociate: (entityName: unknown, entityId: unknown, relationship: unknown, related: unknown): OrganizationRequest => ({
    requestName: "Disassociate",
    parameters: { Target: new EntityReference(entityName as string, entityId as string), Relationship: relationship, RelatedEntities: related },
  }),
  retrieveMultiple: (query: unknown): OrganizationRequest => ({ requestName: "RetrieveMultiple", parameters: { Query: query } }),
} as const;

export type OrganizationMethod = keyof typeof methodRequests;

/** Each method's request name, and the key of the response's results its return value is (none: it returns nothing). */
const METHODS: { readonly [M in OrganizationMethod]: readonly [requestName: string, resultKey: string | null] } = {
  create: ["Create", "id"],
  retrieve: ["Retrieve", "Entity"],
  update: ["Update", null],
  delete: ["Delete", null],
  associate: ["Associate", null],
  disassociate: ["Disassociate", null],
  retrieveMultiple: ["RetrieveMultiple", "EntityCollection"],
};

/** An own data property of a value, or undefined: reading it runs no code. */
function own(value: unknown, key: string): unknown {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return undefined;
  const descriptor = getOwnPropertyDescriptor(value, key);
  return descriptor !== undefined && hasOwn(descriptor, "value") ? descriptor.value : undefined;
}

/** What a method returns of its response. */
export function methodResult(method: OrganizationMethod, response: unknown): unknown {
  const key = METHODS[method][1];
  return key === null ? undefined : own(own(response, "results"), key);
}

/** The response a method's return value comes from: what a service that answers by method sends back. */
export function methodResponse(method: OrganizationMethod, value: unknown): OrganizationResponse {
  const [responseName, key] = METHODS[method];
  return { responseName, results: key === null ? {} : { [key]: value } };
}

function methodOf(requestName: unknown): OrganizationMethod | undefined {
  for (const method of Object.keys(METHODS) as OrganizationMethod[]) if (METHODS[method][0] === requestName) return method;
  return undefined;
}

/**
 * A request as the method call that sends it, for records people read (`organization.create(…)`):
 * the method and its arguments, or `execute` and the request where no method sends it.
 */
export function methodCall(request: unknown): { method: OrganizationMethod | "execute"; args: unknown[] } {
  const method = methodOf(own(request, "requestName"));
  const parameters = own(request, "parameters");
  if (method === undefined || (typeof parameters !== "object" || parameters === null)) return { method: "execute", args: [request] };
  const p = (key: string) => own(parameters, key);
  const target = p("Target");
  switch (method) {
    case "create":
    case "update":
      return { method, args: [target] };
    case "retrieve":
      return { method, args: [own(target, "logicalName"), own(target, "id"), p("ColumnSet")] };
    case "delete":
      return { method, args: [own(target, "logicalName"), own(target, "id")] };
    case "associate":
    case "disassociate":
      return { method, args: [own(target, "logicalName"), own(target, "id"), p("Relationship"), p("RelatedEntities")] };
    case "retrieveMultiple":
      return { method, args: [p("Query")] };
  }
}

export type { OrganizationRequest, OrganizationResponse };
