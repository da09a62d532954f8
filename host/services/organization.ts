/**
 * The organization service as the host serves it to plug-ins: argument checks (everything that
 * comes out of a sandbox is untrusted), and the backend interface that an implementation fills in.
 *
 * `InMemoryOrganizationService` is the backend `plugbox run` offers until a store-backed pipeline
 * is configured: records live in memory for the run, and every call is recorded.
 */
import {
  ColumnSet,
  Entity,
  EntityCollection,
  EntityReference,
  typeOf,
  type AttributeValue,
  type ConditionExpression,
  type FilterExpression,
} from "../../sdk/model.js";
import { isPlainObject } from "../../sdk/codec.js";
import { OrganizationError } from "../organization/errors.js";
import { checkColumnName } from "../organization/core.js";
import { isGuid, randomIds, type IdSource } from "../ids.js";

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

/** What an organization service implements: the eight IOrganizationService methods. */
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

// Argument checks ///////////////////////////////////////////////////////////////////////////////

function invalid(message: string): OrganizationError {
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

function readRelationship(value: unknown): string {
  if (typeof value === "string") return readLogicalName(value, "relationship");
  if (typeof value === "object" && value !== null) return readLogicalName((value as { schemaName?: unknown }).schemaName, "relationship.schemaName");
  throw invalid("relationship must be a Relationship or its schema name");
}

function readReferences(value: unknown): EntityReference[] {
  if (!Array.isArray(value)) throw invalid("relatedEntities must be an array of EntityReference");
  return value.map((v, i) => readEntityReference(v, `relatedEntities[${i}]`));
}

/** Serves one organization-service call from a sandbox: checks the arguments, then calls the backend. */
export async function serveOrganization(backend: OrganizationBackend, op: string, args: unknown[], caller: CallerIdentity): Promise<unknown> {
  switch (op) {
    case "create":
      return backend.create(readEntity(args[0], "entity"), caller);
    case "retrieve":
      return backend.retrieve(readLogicalName(args[0], "entityName"), readGuid(args[1], "id"), readColumnSet(args[2]), caller);
    case "update":
      await backend.update(readEntity(args[0], "entity", true), caller);
      return null;
    case "delete":
      await backend.delete(readLogicalName(args[0], "entityName"), readGuid(args[1], "id"), caller);
      return null;
    case "associate":
    case "disassociate": {
      const target = new EntityReference(readLogicalName(args[0], "entityName"), readGuid(args[1], "entityId"));
      await backend[op](target, readRelationship(args[2]), readReferences(args[3]), caller);
      return null;
    }
    case "retrieveMultiple":
      if (typeof args[0] !== "object" || args[0] === null) throw invalid("query must be a QueryExpression, QueryByAttribute or FetchExpression");
      return backend.retrieveMultiple(args[0], caller);
    case "execute": {
      const raw = args[0] as { requestName?: unknown; parameters?: unknown } | undefined;
      if (typeof raw?.requestName !== "string" || raw.requestName === "") throw invalid("request.requestName must name a message, e.g. \"WhoAmI\"");
      const parameters = raw.parameters ?? {};
      if (!isPlainObject(parameters)) throw invalid("request.parameters must be an object");
      return backend.execute({ requestName: raw.requestName, parameters }, caller);
    }
    default:
      throw new OrganizationError("ORG_UNSUPPORTED", `the organization service has no method ${op}`);
  }
}

// The in-memory backend //////////////////////////////////////////////////////////////////////////

export interface RecordedCall {
  service: string;
  op: string;
  userId: string | null;
  args: unknown[];
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

export interface InMemoryOrganizationOptions {
  ids?: IdSource;
  /** Records to start from: `{ "account": [{ "id": "…", "attributes": {…} }] }`. */
  records?: Record<string, Array<{ id: string; attributes: Record<string, AttributeValue> }>>;
  /** The ids WhoAmI answers with. */
  identity?: { userId: string; businessUnitId: string; organizationId: string };
}

export class InMemoryOrganizationService implements OrganizationBackend {
  readonly #tables = new Map<string, Map<string, Record<string, AttributeValue>>>();
  readonly #links: Array<{ relationship: string; from: EntityReference; to: EntityReference }> = [];
  readonly #ids: IdSource;
  readonly #identity: { userId: string; businessUnitId: string; organizationId: string };

  constructor(options: InMemoryOrganizationOptions = {}) {
    this.#ids = options.ids ?? randomIds;
    this.#identity = options.identity ?? {
      userId: "00000000-0000-0000-0000-000000000001",
      businessUnitId: "00000000-0000-0000-0000-000000000002",
      organizationId: "00000000-0000-0000-0000-000000000003",
    };
    for (const [table, rows] of Object.entries(options.records ?? {})) {
      for (const row of rows) this.#table(table).set(row.id.toLowerCase(), { ...row.attributes });
    }
  }

  /** Every record, by table, as plain data. */
  snapshot(): Record<string, Record<string, Record<string, AttributeValue>>> {
    const out: Record<string, Record<string, Record<string, AttributeValue>>> = {};
    for (const [table, rows] of this.#tables) out[table] = Object.fromEntries(rows);
    return out;
  }

  #table(name: string): Map<string, Record<string, AttributeValue>> {
    let table = this.#tables.get(name);
    if (!table) this.#tables.set(name, (table = new Map()));
    return table;
  }

  #row(entityName: string, id: string): Record<string, AttributeValue> {
    const row = this.#tables.get(entityName)?.get(id);
    if (!row) throw new OrganizationError("ORG_NOT_FOUND", `${entityName} with id ${id} does not exist`);
    return row;
  }

  async create(entity: Entity): Promise<string> {
    const id = entity.id === "00000000-0000-0000-0000-000000000000" ? this.#ids.newId() : entity.id;
    const table = this.#table(entity.logicalName);
    if (table.has(id)) throw new OrganizationError("ORG_DUPLICATE", `${entity.logicalName} with id ${id} already exists`);
    table.set(id, { ...entity.attributes, [`${entity.logicalName}id`]: id } as Record<string, AttributeValue>);
    return id;
  }

  async retrieve(entityName: string, id: string, columns: ColumnSet): Promise<Entity> {
    return this.#toEntity(entityName, id, this.#row(entityName, id), columns);
  }

  #toEntity(entityName: string, id: string, row: Record<string, AttributeValue>, columns: ColumnSet): Entity {
    const attributes = columns.allColumns ? { ...row } : Object.fromEntries(columns.columns.filter((c) => c in row).map((c) => [c, row[c]!]));
    return new Entity(entityName, id, attributes);
  }

  async update(entity: Entity): Promise<void> {
    const row = this.#row(entity.logicalName, entity.id);
    Object.assign(row, entity.attributes);
  }

  async delete(entityName: string, id: string): Promise<void> {
    this.#row(entityName, id);
    this.#tables.get(entityName)!.delete(id);
  }

  async associate(target: EntityReference, relationship: string, related: EntityReference[]): Promise<void> {
    for (const to of related) this.#links.push({ relationship, from: target, to });
  }

  async disassociate(target: EntityReference, relationship: string, related: EntityReference[]): Promise<void> {
    for (const to of related) {
      const index = this.#links.findIndex((l) => l.relationship === relationship && l.from.id === target.id && l.to.id === to.id);
      if (index >= 0) this.#links.splice(index, 1);
    }
  }

  async retrieveMultiple(query: unknown): Promise<EntityCollection> {
    const type = typeOf(query) ?? ((query as { query?: unknown }).query !== undefined ? "FetchExpression" : (query as { attributes?: unknown }).attributes !== undefined ? "QueryByAttribute" : "QueryExpression");
    if (type === "FetchExpression") {
      throw new OrganizationError("ORG_UNSUPPORTED", "FetchExpression (FetchXML) needs the store-backed organization service; the in-memory one of `plugbox run` answers QueryExpression and QueryByAttribute");
    }
    const q = query as { entityName?: unknown; columnSet?: unknown; criteria?: FilterExpression; attributes?: unknown[]; values?: unknown[]; topCount?: unknown };
    const entityName = readLogicalName(q.entityName, "query.entityName");
    const columns = readColumnSet(q.columnSet);
    let match: (row: Record<string, AttributeValue>) => boolean = () => true;
    if (type === "QueryByAttribute") {
      const attributes = (q.attributes ?? []) as string[];
      const values = (q.values ?? []) as AttributeValue[];
      match = (row) => attributes.every((a, i) => sameValue(row[a], values[i]));
    } else if (type === "QueryExpression") {
      if (q.criteria) match = compileFilter(q.criteria);
    } else {
      throw new OrganizationError("ORG_UNSUPPORTED", `${type} is not a query; pass a QueryExpression, QueryByAttribute or FetchExpression`);
    }
    const rows = [...(this.#tables.get(entityName) ?? new Map()).entries()].filter(([, row]) => match(row));
    const top = typeof q.topCount === "number" && q.topCount > 0 ? q.topCount : rows.length;
    return new EntityCollection(rows.slice(0, top).map(([id, row]) => this.#toEntity(entityName, id, row, columns)), entityName);
  }

  async execute(request: OrganizationRequestValue, caller: CallerIdentity): Promise<OrganizationResponseValue> {
    const p = request.parameters;
    switch (request.requestName) {
      case "WhoAmI":
        return {
          responseName: "WhoAmI",
          results: { UserId: caller.userId ?? this.#identity.userId, BusinessUnitId: this.#identity.businessUnitId, OrganizationId: this.#identity.organizationId },
        };
      case "Create":
        return { responseName: "Create", results: { id: await this.create(readEntity(p.Target, "Target")) } };
      case "Update":
        await this.update(readEntity(p.Target, "Target", true));
        return { responseName: "Update", results: {} };
      case "Delete": {
        const target = readEntityReference(p.Target, "Target");
        await this.delete(target.logicalName, target.id);
        return { responseName: "Delete", results: {} };
      }
      case "Retrieve": {
        const target = readEntityReference(p.Target, "Target");
        return { responseName: "Retrieve", results: { Entity: await this.retrieve(target.logicalName, target.id, readColumnSet(p.ColumnSet)) } };
      }
      case "RetrieveMultiple":
        return { responseName: "RetrieveMultiple", results: { EntityCollection: await this.retrieveMultiple(p.Query) } };
      default:
        throw new OrganizationError(
          "ORG_UNSUPPORTED",
          `the in-memory organization service of \`plugbox run\` does not implement the ${request.requestName} message; it answers WhoAmI, Create, Retrieve, Update, Delete and RetrieveMultiple`,
        );
    }
  }
}

function comparable(value: unknown): unknown {
  if (value instanceof Date) return value.getTime();
  if (typeof value === "object" && value !== null) {
    const v = value as { id?: unknown; value?: unknown };
    if (typeof v.id === "string") return v.id.toLowerCase();
    if (v.value !== undefined) return v.value;
  }
  return typeof value === "string" && /^[0-9a-f-]{36}$/i.test(value) ? value.toLowerCase() : value;
}

function sameValue(a: unknown, b: unknown): boolean {
  return comparable(a) === comparable(b);
}

function compileCondition(condition: ConditionExpression): (row: Record<string, AttributeValue>) => boolean {
  const values = (condition.values ?? []) as unknown[];
  const name = condition.attributeName;
  switch (condition.operator) {
    case "Equal":
      return (row) => sameValue(row[name], values[0]);
    case "NotEqual":
      return (row) => !sameValue(row[name], values[0]);
    case "Null":
      return (row) => row[name] === undefined || row[name] === null;
    case "NotNull":
      return (row) => row[name] !== undefined && row[name] !== null;
    case "In":
      return (row) => values.some((v) => sameValue(row[name], v));
    case "NotIn":
      return (row) => !values.some((v) => sameValue(row[name], v));
    default:
      throw new OrganizationError(
        "ORG_UNSUPPORTED",
        `the condition operator ${String(condition.operator)} is not supported by the in-memory organization service (it supports Equal, NotEqual, Null, NotNull, In, NotIn)`,
      );
  }
}

function compileFilter(filter: FilterExpression): (row: Record<string, AttributeValue>) => boolean {
  const parts = [...(filter.conditions ?? []).map(compileCondition), ...(filter.filters ?? []).map(compileFilter)];
  if (parts.length === 0) return () => true;
  return filter.filterOperator === "Or" ? (row) => parts.some((p) => p(row)) : (row) => parts.every((p) => p(row));
}
