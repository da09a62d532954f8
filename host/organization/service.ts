/**
 * The organization service's methods as sugar over `execute(request)`, as Dataverse's proxy does:
 * the one place that says which request each method sends and what of its response it returns.
 */
import { EntityReference, type ColumnSet, type Entity, type EntityCollection } from "../../sdk/model.js";
import type { CallerIdentity, OrganizationBackend, OrganizationRequestValue, OrganizationResponseValue } from "./arguments.js";

/** The request each method sends. */
export const methodRequests = {
  create: (entity: Entity): OrganizationRequestValue => ({ requestName: "Create", parameters: { Target: entity } }),
  retrieve: (entityName: string, id: string, columns: ColumnSet): OrganizationRequestValue => ({
    requestName: "Retrieve",
    parameters: { Target: new EntityReference(entityName, id), ColumnSet: columns },
  }),
  update: (entity: Entity): OrganizationRequestValue => ({ requestName: "Update", parameters: { Target: entity } }),
  delete: (entityName: string, id: string): OrganizationRequestValue => ({ requestName: "Delete", parameters: { Target: new EntityReference(entityName, id) } }),
  associate: (target: EntityReference, relationship: string, related: EntityReference[]): OrganizationRequestValue => ({
    requestName: "Associate",
    parameters: { Target: target, Relationship: relationship, RelatedEntities: related },
  }),
  disassociate: (target: EntityReference, relationship: string, related: EntityReference[]): OrganizationRequestValue => ({
    requestName: "Disassociate",
    parameters: { Target: target, Relationship: relationship, RelatedEntities: related },
  }),
  retrieveMultiple: (query: unknown): OrganizationRequestValue => ({ requestName: "RetrieveMultiple", parameters: { Query: query } }),
  execute: (request: OrganizationRequestValue): OrganizationRequestValue => request,
} as const;

export type OrganizationMethod = keyof typeof methodRequests;

/** What each method returns of its response. */
export const methodResults: { readonly [M in OrganizationMethod]: (response: OrganizationResponseValue) => Awaited<ReturnType<OrganizationBackend[M]>> } = {
  create: (r) => r.results.id as string,
  retrieve: (r) => r.results.Entity as Entity,
  update: () => undefined,
  delete: () => undefined,
  associate: () => undefined,
  disassociate: () => undefined,
  retrieveMultiple: (r) => r.results.EntityCollection as EntityCollection,
  execute: (r) => r,
};

export const ORGANIZATION_METHODS = Object.freeze(Object.keys(methodRequests) as OrganizationMethod[]);

type Execute = (request: OrganizationRequestValue, caller: CallerIdentity) => Promise<OrganizationResponseValue>;

/** IOrganizationService over one `execute`: each method sends its request and reads its response. */
export class OrganizationService implements OrganizationBackend {
  readonly #execute: Execute;
  constructor(execute: Execute) {
    this.#execute = execute;
  }
  async create(entity: Entity, caller: CallerIdentity): Promise<string> {
    return methodResults.create(await this.#execute(methodRequests.create(entity), caller));
  }
  async retrieve(entityName: string, id: string, columns: ColumnSet, caller: CallerIdentity): Promise<Entity> {
    return methodResults.retrieve(await this.#execute(methodRequests.retrieve(entityName, id, columns), caller));
  }
  async update(entity: Entity, caller: CallerIdentity): Promise<void> {
    await this.#execute(methodRequests.update(entity), caller);
  }
  async delete(entityName: string, id: string, caller: CallerIdentity): Promise<void> {
    await this.#execute(methodRequests.delete(entityName, id), caller);
  }
  async associate(target: EntityReference, relationship: string, related: EntityReference[], caller: CallerIdentity): Promise<void> {
    await this.#execute(methodRequests.associate(target, relationship, related), caller);
  }
  async disassociate(target: EntityReference, relationship: string, related: EntityReference[], caller: CallerIdentity): Promise<void> {
    await this.#execute(methodRequests.disassociate(target, relationship, related), caller);
  }
  async retrieveMultiple(query: unknown, caller: CallerIdentity): Promise<EntityCollection> {
    return methodResults.retrieveMultiple(await this.#execute(methodRequests.retrieveMultiple(query), caller));
  }
  execute(request: OrganizationRequestValue, caller: CallerIdentity): Promise<OrganizationResponseValue> {
    return this.#execute(request, caller);
  }
}

type WithoutCaller<F> = F extends (...args: [...infer A, infer _Caller]) => infer R ? (...args: A) => R : never;

/** IOrganizationService for code outside the sandbox: the backend's methods, the caller fixed. */
export type OrganizationClient = { [K in keyof OrganizationBackend]: WithoutCaller<OrganizationBackend[K]> };

/** The service's methods with the caller fixed. */
export function withCaller(service: OrganizationBackend, caller: CallerIdentity): OrganizationClient {
  const client: Record<string, unknown> = {};
  for (const method of ORGANIZATION_METHODS) client[method] = (...args: unknown[]) => (service[method] as (...a: unknown[]) => unknown).call(service, ...args, caller);
  return client as OrganizationClient;
}
