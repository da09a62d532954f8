/**
 * What a request to the organization service is, and the checks of its arguments: everything that
 * comes out of a sandbox or a request file is untrusted until it is read here.
 */
import { ColumnSet, Entity, EntityCollection, EntityReference, typeOf, type AttributeValue } from "../../sdk/model.js";
import { isPlainObject } from "../../sdk/codec.js";
import { OrganizationError } from "./errors.js";
import { isGuid } from "../ids.js";
import { checkColumnName } from "./columns.js";

export interface CallerIdentity {
  /** The user a plug-in's service acts for: null for SYSTEM (createOrganizationService(null)). */
  userId: string | null;
}

export interface OrganizationRequestValue {
  requestName: string;
  parameters: Record<string, unknown>;
}

export interface OrganizationResponseValue {
  responseName: string;
  results: Record<string, unknown>;
}

/**
 * What an organization service implements: the eight IOrganizationService methods. A sandbox's
 * calls reach it through `execute` alone; `OrganizationService` makes the others sugar over it.
 */
export interface OrganizationBackend {
  create(entity: Entity, caller: CallerIdentity): Promise<string>;
  retrieve(entityName: string, id: string, columns: ColumnSet, caller: CallerIdentity): Promise<Entity>;
  update(entity: Entity, caller: CallerIdentity): Promise<void>;
  delete(entityName: string, id: string, caller: CallerIdentity): Promise<void>;
  associate(target: EntityReference, relationship: string, related: EntityReference[], caller: CallerIdentity): Promise<void>;
  disassociate(target: EntityReference, relationship: string, related: EntityReference[], caller: CallerIdentity): Promise<void>;
  retrieveMultiple(query: unknown, caller: CallerIdentity): Promise<EntityCollection>;
  execute(request: OrganizationRequestValue, caller: CallerIdentity): Promise<OrganizationResponseValue>;
}

export function invalid(message: string): OrganizationError {
  return new OrganizationError("ORG_INVALID_ARGUMENT", message);
}

export function readLogicalName(value: unknown, what: string): string {
  if (typeof value !== "string" || !/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(value)) {
    throw invalid(`${what} must be a table's logical name (letters, digits and _), got ${JSON.stringify(value) ?? String(value)}`);
  }
  return value;
}

export function readGuid(value: unknown, what: string): string {
  if (!isGuid(value)) throw invalid(`${what} must be a Guid such as 00000000-0000-0000-0000-000000000000, got ${JSON.stringify(value) ?? String(value)}`);
  return value.toLowerCase();
}

/** An Entity, or a plain `{ logicalName, id?, attributes }` of the same shape. */
export function readEntity(value: unknown, what = "entity", requireId = false): Entity {
  if (typeof value !== "object" || value === null || (typeOf(value) !== undefined && typeOf(value) !== "Entity")) {
    throw invalid(`${what} must be an Entity or { logicalName, id, attributes }`);
  }
  const raw = value as { logicalName?: unknown; id?: unknown; attributes?: unknown };
  const logicalName = readLogicalName(raw.logicalName, `${what}.logicalName`);
  const emptyId = raw.id === undefined || raw.id === null || raw.id === "" || raw.id === "00000000-0000-0000-0000-000000000000";
  if (requireId && emptyId) throw invalid(`${what}.id is required`);
  const id = emptyId ? "00000000-0000-0000-0000-000000000000" : readGuid(raw.id, `${what}.id`);
  const attributes = raw.attributes === undefined ? {} : raw.attributes;
  if (!isPlainObject(attributes)) throw invalid(`${what}.attributes must be an object of column values`);
  for (const key of Object.keys(attributes)) checkColumnName(key, `${what}.attributes`);
  const entity = new Entity(logicalName, id, { ...(attributes as Record<string, AttributeValue>) });
  const keys = (value as { keyAttributes?: unknown }).keyAttributes;
  if (keys !== undefined && keys !== null) {
    if (!isPlainObject(keys)) throw invalid(`${what}.keyAttributes must be an object of column values`);
    for (const key of Object.keys(keys)) checkColumnName(key, `${what}.keyAttributes`);
    entity.keyAttributes = { ...(keys as Record<string, AttributeValue>) };
  }
  return entity;
}

export function readEntityReference(value: unknown, what: string): EntityReference {
  if (typeof value !== "object" || value === null) throw invalid(`${what} must be an EntityReference or { logicalName, id }`);
  const raw = value as { logicalName?: unknown; id?: unknown; name?: unknown };
  return new EntityReference(readLogicalName(raw.logicalName, `${what}.logicalName`), readGuid(raw.id, `${what}.id`), typeof raw.name === "string" ? raw.name : null);
}

export function readColumnSet(value: unknown): ColumnSet {
  if (value === undefined || value === null || value === true) return new ColumnSet(true);
  if (Array.isArray(value)) return new ColumnSet(...value.map((c, i) => readLogicalName(c, `columnSet[${i}]`)));
  if (typeof value !== "object") throw invalid("columnSet must be a ColumnSet, an array of column names or true");
  const raw = value as { allColumns?: unknown; columns?: unknown };
  if (raw.allColumns === true) return new ColumnSet(true);
  const columns = raw.columns ?? [];
  if (!Array.isArray(columns)) throw invalid("columnSet.columns must be an array of column names");
  return new ColumnSet(...columns.map((c, i) => readLogicalName(c, `columnSet.columns[${i}]`)));
}
