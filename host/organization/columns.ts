/**
 * Columns as the store keeps them: which names a column may have, and how a value is checked
 * (against a declared schema) and converted to what the store keeps.
 */
import { checkTypedValue, toPlain, fromPlain } from "../../sdk/codec.js";
import { ColumnSet, Entity, EntityReference, typeOf } from "../../sdk/model.js";
import { OrganizationError } from "./errors.js";
import { isGuid } from "../ids.js";
import type { ColumnType, TableSchema } from "../store/table-schema.js";
import { SYSTEM_COLUMN_TYPES } from "./system-columns.js";

const SYSTEM_COLUMNS = SYSTEM_COLUMN_TYPES;

export function primaryIdAttribute(entity: string, schema: TableSchema | undefined): string {
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

