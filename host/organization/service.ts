/** IOrganizationService over one `execute`: each method sends its request (sdk/requests.ts) and reads its response. */
import { type ColumnSet, type Entity, type EntityCollection, type EntityReference } from "../../sdk/model.js";
import { methodRequests, methodResult, type OrganizationMethod } from "../../sdk/requests.js";
import type { CallerIdentity, OrganizationBackend, OrganizationRequestValue, OrganizationResponseValue } from "./arguments.js";

export const ORGANIZATION_METHODS = Object.freeze([...(Object.keys(methodRequests) as OrganizationMethod[]), "execute"] as const);

type Execute = (request: OrganizationRequestValue, caller: CallerIdentity) => Promise<OrganizationResponseValue>;

/** IOrganizationService over one `execute`: each method sends its request and reads its response. */
export class OrganizationService implements OrganizationBackend {
  readonly #execute: Execute;
  constructor(execute: Execute) {
    this.#execute = execute;
  }
  async create(entity: Entity, caller: CallerIdentity): Promise<string> {
    return methodResult("create", await this.#execute(methodRequests.create(entity), caller)) as string;
  }
  async retrieve(entityName: string, id: string, columns: ColumnSet, caller: CallerIdentity): Promise<Entity> {
    return methodResult("retrieve", await this.#execute(methodRequests.retrieve(entityName, id, columns), caller)) as Entity;
  }
  async update(entity: Entity, caller: CallerIdentity): Promise<void> {
    await this.#execute(methodRequests.update(entity), caller);
  }
  async delete(entityName: string, id: string, caller: CallerIdentity): Promise<void> {
    await this.#execute(methodRequests.delete(entityName, id), caller);
  }
  async associate(target: EntityReference, relationship: string, related: EntityReference[], caller: CallerIdentity): Promise<void> {
    await this.#execute(methodRequests.associate(target.logicalName, target.id, relationship, related), caller);
  }
  async disassociate(target: EntityReference, relationship: string, related: EntityReference[], caller: CallerIdentity): Promise<void> {
    await this.#execute(methodRequests.disassociate(target.logicalName, target.id, relationship, related), caller);
  }
  async retrieveMultiple(query: unknown, caller: CallerIdentity): Promise<EntityCollection> {
    return methodResult("retrieveMultiple", await this.#execute(methodRequests.retrieveMultiple(query), caller)) as EntityCollection;
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
