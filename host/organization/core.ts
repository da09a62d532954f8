/**
 * The core operations (Dataverse's stage 30) over the store: what Create, Retrieve, Update,
 * Delete, Associate, Disassociate, SetState, Assign and Upsert do to the data, with the values
 * the platform sets (createdon, modifiedon, ownerid, statecode, …) and, where a table schema is
 * declared, checks of every column and its type. The pipeline calls these inside its transaction.
 */
import { checkTypedValue, toPlain, fromPlain } from "../../sdk/codec.js";
import { ColumnSet, Entity, EntityReference, EMPTY_GUID, OptionSetValue, typeOf } from "../../sdk/model.js";
import { OrganizationError } from "./errors.js";
import { isGuid, type Clock, type IdSource } from "../ids.js";
import type { Store } from "../store/store.js";
import type { ColumnType, SchemaLookup, TableSchema } from "../store/table-schema.js";
import { SYSTEM_COLUMN_TYPES } from "./system-columns.js";

export interface CoreDeps {
  store: Store;
  clock: Clock;
  ids: IdSource;
  schemaFor: SchemaLookup;
}

const SYSTEM_COLUMNS = SYSTEM_COLUMN_TYPES;

function primaryIdAttribute(entity: string, schema: TableSchema | undefined): string {
  return schema?.primaryIdAttribute ?? `${entity}id`;
}

function typeMatches(type: ColumnType, value: unknown): boolean {
  if (value === null) return true;
  const tag = typeOf(value);
  switch (type) {
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number";
    case "boolean":
      return typeof value === "boolean";
    case "datetime":
      return value instanceof Date;
    case "guid":
      return isGuid(value);
    case "lookup":
      return tag === "EntityReference";
    case "optionset":
      return tag === "OptionSetValue";
    case "money":
      return tag === "Money";
    case "multiselect":
      return tag === "OptionSetValueCollection";
  }
}

/** Turns plain shapes into SDK values where the schema says what a column holds. */
function coerce(type: ColumnType | undefined, value: unknown): unknown {
  if (type === undefined || value === null || typeof value !== "object" || typeOf(value) !== undefined || value instanceof Date) return value;
  const v = value as { logicalName?: unknown; id?: unknown; value?: unknown; values?: unknown };
  if (type === "lookup" && typeof v.logicalName === "string" && typeof v.id === "string") return new EntityReference(v.logicalName, v.id);
  if (type === "optionset" && typeof v.value === "number") return fromPlain({ $type: "OptionSetValue", value: v.value });
  if (type === "money" && typeof v.value === "number") return fromPlain({ $type: "Money", value: v.value });
  if (type === "multiselect" && Array.isArray(v.values)) return fromPlain({ $type: "OptionSetValueCollection", values: v.values });
  return value;
}

const COLUMN_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/**
 * Names no column may have: every JavaScript object has them, and `__proto__` in particular would
 * replace a record's prototype where an assignment stores it (and stay data where a copy does).
 * One rule for every write path: they are refused.
 */
const RESERVED_COLUMN_NAMES: ReadonlySet<string> = new Set(Object.getOwnPropertyNames(Object.prototype));

/**
 * Names already found good: a request checks the same few names again and again, and a set lookup
 * costs a fraction of the pattern. Bounded, since plug-ins choose the names.
 */
const goodColumnNames = new Set<string>();
const MAX_REMEMBERED_COLUMN_NAMES = 10_000;

/** Refuses a column name that is not a logical name, or that every object already has. */
export function checkColumnName(column: string, where: string): void {
  if (goodColumnNames.has(column)) return;
  checkNewColumnName(column, where);
  if (goodColumnNames.size >= MAX_REMEMBERED_COLUMN_NAMES) goodColumnNames.clear();
  goodColumnNames.add(column);
}

function checkNewColumnName(column: string, where: string): void {
  if (!COLUMN_NAME.test(column)) throw new OrganizationError("ORG_INVALID_ARGUMENT", `${where} has an invalid column name ${JSON.stringify(column)} (letters, digits and _)`);
  if (RESERVED_COLUMN_NAMES.has(column)) {
    throw new OrganizationError("ORG_INVALID_ARGUMENT", `${where} cannot have a column named ${JSON.stringify(column)}: every JavaScript object has that name, so plugbox refuses it on every write`);
  }
}

/** Checks (against a declared schema) and converts attributes to what the store keeps. */
export function storedAttributes(entity: string, attributes: Record<string, unknown>, schema: TableSchema | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [column, raw] of Object.entries(attributes)) {
    checkColumnName(column, entity);
    if (raw === undefined) continue;
    let value: unknown = raw;
    if (schema) {
      const type = schema.columns[column] ?? SYSTEM_COLUMNS[column] ?? (column === primaryIdAttribute(entity, schema) ? "guid" : undefined);
      if (type === undefined) {
        throw new OrganizationError("ORG_INVALID_ARGUMENT", `${entity} has no column ${column}; declare it in the manifest under tables.${entity}.columns`);
      }
      value = coerce(type, value);
      if (!typeMatches(type, value)) {
        throw new OrganizationError("ORG_INVALID_ARGUMENT", `${entity}.${column} holds ${type} values; got ${JSON.stringify(toPlainSafe(value))?.slice(0, 100)}`);
      }
    }
    try {
      checkTypedValue(value);
    } catch (error) {
      throw new OrganizationError("ORG_INVALID_ARGUMENT", `${entity}.${column}: ${(error as Error).message}`);
    }
    if (typeof value === "string" && isGuid(value)) value = value.toLowerCase();
    if (typeOf(value) === "EntityReference") {
      const ref = value as EntityReference;
      if (!isGuid(ref.id)) throw new OrganizationError("ORG_INVALID_ARGUMENT", `${entity}.${column} refers to ${JSON.stringify(ref.id)}, which is not a Guid`);
      value = new EntityReference(ref.logicalName, ref.id.toLowerCase(), ref.name ?? null);
      if (Object.keys(ref.keyAttributes ?? {}).length === 0) delete (value as Partial<EntityReference>).keyAttributes;
    }
    try {
      out[column] = toPlain(value, `${entity}.${column}`);
    } catch (error) {
      throw new OrganizationError("ORG_INVALID_ARGUMENT", (error as Error).message);
    }
  }
  return out;
}

function toPlainSafe(value: unknown): unknown {
  try {
    return toPlain(value);
  } catch {
    return String(value);
  }
}

export function toEntity(entity: string, id: string, stored: Record<string, unknown>, columns?: ColumnSet): Entity {
  const decoded = fromPlain(stored) as Record<string, unknown>;
  // As in Dataverse (and RetrieveMultiple), a column holding null is left out of the entity.
  const wanted = !columns || columns.allColumns ? Object.keys(decoded) : columns.columns;
  const attributes = Object.fromEntries(wanted.filter((c) => decoded[c] !== undefined && decoded[c] !== null).map((c) => [c, decoded[c]]));
  return new Entity(entity, id, attributes as Entity["attributes"]);
}

export class OrganizationCore {
  readonly #deps: CoreDeps;
  constructor(deps: CoreDeps) {
    this.#deps = deps;
  }

  #now(): Date {
    return this.#deps.clock.now();
  }

  #user(userId: string): EntityReference {
    return new EntityReference("systemuser", userId);
  }

  read(entity: string, id: string): Record<string, unknown> | undefined {
    return this.#deps.store.getRecord(entity, id.toLowerCase())?.attributes;
  }

  #mustRead(entity: string, id: string): Record<string, unknown> {
    const row = this.read(entity, id);
    if (!row) throw new OrganizationError("ORG_NOT_FOUND", `${entity} with id ${id} does not exist`);
    return row;
  }

  /** Creates the record; returns its id. The target gets the id and the columns the platform set. */
  create(target: Entity, userId: string): string {
    const schema = this.#deps.schemaFor(target.logicalName);
    const idColumn = primaryIdAttribute(target.logicalName, schema);
    const fromColumn = target.attributes[idColumn];
    let id = target.id !== EMPTY_GUID ? target.id : isGuid(fromColumn) ? fromColumn : this.#deps.ids.newId();
    id = id.toLowerCase();
    const now = this.#now();
    const platform: Record<string, unknown> = {
      [idColumn]: id,
      createdon: now,
      modifiedon: now,
      createdby: this.#user(userId),
      modifiedby: this.#user(userId),
      ownerid: target.attributes.ownerid ?? this.#user(userId),
      statecode: target.attributes.statecode ?? new OptionSetValue(0),
      statuscode: target.attributes.statuscode ?? new OptionSetValue(1),
    };
    const attributes = { ...target.attributes, ...platform };
    try {
      this.#deps.store.insertRecord(target.logicalName, id, storedAttributes(target.logicalName, attributes, schema));
    } catch (error) {
      // The primary key says what a read before the insert would have: the row exists.
      if ((error as { code?: string }).code === "SQLITE_CONSTRAINT_PRIMARYKEY") throw new OrganizationError("ORG_DUPLICATE", `${target.logicalName} with id ${id} already exists`);
      throw error;
    }
    target.id = id;
    Object.assign(target.attributes, platform);
    return id;
  }

  retrieve(entity: string, id: string, columns: ColumnSet): Entity {
    return toEntity(entity, id.toLowerCase(), this.#mustRead(entity, id), columns);
  }

  update(target: Entity, userId: string): void {
    const existing = this.#mustRead(target.logicalName, target.id);
    const schema = this.#deps.schemaFor(target.logicalName);
    const platform = { modifiedon: this.#now(), modifiedby: this.#user(userId) };
    const changes = storedAttributes(target.logicalName, { ...target.attributes, ...platform }, schema);
    delete changes[primaryIdAttribute(target.logicalName, schema)];
    this.#deps.store.replaceRecord(target.logicalName, target.id.toLowerCase(), { ...existing, ...changes });
    Object.assign(target.attributes, platform);
  }

  delete(entity: string, id: string): void {
    if (!this.#deps.store.deleteRecord(entity, id.toLowerCase())) throw new OrganizationError("ORG_NOT_FOUND", `${entity} with id ${id} does not exist`);
  }

  associate(target: EntityReference, relationship: string, related: EntityReference[]): void {
    this.#mustRead(target.logicalName, target.id);
    for (const other of related) {
      this.#mustRead(other.logicalName, other.id);
      this.#deps.store.link(relationship, target.logicalName, target.id.toLowerCase(), other.logicalName, other.id.toLowerCase());
    }
  }

  disassociate(target: EntityReference, relationship: string, related: EntityReference[]): void {
    for (const other of related) {
      const a = [relationship, target.logicalName, target.id.toLowerCase(), other.logicalName, other.id.toLowerCase()] as const;
      const b = [relationship, other.logicalName, other.id.toLowerCase(), target.logicalName, target.id.toLowerCase()] as const;
      if (!this.#deps.store.unlink(...a) && !this.#deps.store.unlink(...b)) {
        throw new OrganizationError("ORG_NOT_FOUND", `${target.logicalName} ${target.id} and ${other.logicalName} ${other.id} are not associated through ${relationship}`);
      }
    }
  }

  /** Finds the record an Upsert targets: by id, or by one of the table's alternate keys. */
  findForUpsert(target: Entity): string | undefined {
    if (target.id !== EMPTY_GUID) return this.read(target.logicalName, target.id) ? target.id.toLowerCase() : undefined;
    const keyValues = target.keyAttributes ?? {};
    const keyColumns = Object.keys(keyValues);
    if (keyColumns.length === 0) throw new OrganizationError("ORG_INVALID_ARGUMENT", "Upsert needs a Target with an id or with keyAttributes that form an alternate key");
    const schema = this.#deps.schemaFor(target.logicalName);
    const matches = Object.values(schema?.alternateKeys ?? {}).some((cols) => cols.length === keyColumns.length && cols.every((c) => keyColumns.includes(c)));
    if (!matches) {
      throw new OrganizationError("ORG_INVALID_ARGUMENT", `${keyColumns.join(", ")} is not an alternate key of ${target.logicalName}; declare it under tables.${target.logicalName}.alternateKeys`);
    }
    const wanted = storedAttributes(target.logicalName, keyValues, schema);
    const where = keyColumns.map(() => "json_extract(attributes, ?) = json_extract(?, '$')").join(" AND ");
    const params = keyColumns.flatMap((c) => [`$.${c}`, JSON.stringify(wanted[c])]);
    const row = this.#deps.store.db.prepare(`SELECT id FROM records WHERE entity = ? AND ${where} LIMIT 1`).get(target.logicalName, ...params) as { id: string } | undefined;
    return row?.id;
  }
}
