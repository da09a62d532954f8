/**
 * RemoteExecutionContext as Dataverse posts it in JSON: the DataContractJsonSerializer form.
 *
 * - Members in alphabetical order; collections (parameters, attributes, formatted values, key
 *   attributes, images) as arrays of `{ "key", "value" }`.
 * - `__type` only where the declared type is object (values of parameters and attributes), always
 *   first: `"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts"`.
 * - `/` written `\/`; dates as `"\/Date(ms)\/"` (UTC) or `"\/Date(ms±HHMM)\/"`.
 *
 * Parsing keeps what re-serializing needs to give back the same JSON value: the members a context
 * had, a date's offset, the parts of an entity plugbox does not model (EntityState, RowVersion,
 * RelatedEntities), and any value of a type it does not know, verbatim.
 */
import { Entity, EntityCollection, EntityReference, Money, OptionSetValue, OptionSetValueCollection, typeOf } from "../model.js";
import { WireFormatError } from "./errors.js";

export { WireFormatError };

export const CONTRACTS_NAMESPACE = "http://schemas.microsoft.com/xrm/2011/Contracts";
const KEY_VALUE_TYPE = "KeyValuePairOfstringstring:#System.Collections.Generic";

/** A wire value plugbox keeps as it came (a type it does not model), re-serialized unchanged. */
const kRaw = Symbol.for("plugbox.wire.raw");
/** Wire details of a parsed object that re-serializing restores (member list, EntityState, …). */
const kWire = Symbol.for("plugbox.wire.details");
/** The original text of a parsed date (its offset), for an exact round trip. */
const kDateText = Symbol.for("plugbox.wire.date");
/** Marks an array parsed from KeyValuePairOfstringstring items. */
const kKeyValues = Symbol.for("plugbox.wire.keyValues");

/** The context's members, PascalCase on the wire, camelCase in plugbox, in the wire's order. */
export const CONTEXT_MEMBERS: ReadonlyArray<readonly [wire: string, plugbox: string]> = [
  ["BusinessUnitId", "businessUnitId"],
  ["CorrelationId", "correlationId"],
  ["Depth", "depth"],
  ["InitiatingUserAzureActiveDirectoryObjectId", "initiatingUserAzureActiveDirectoryObjectId"],
  ["InitiatingUserId", "initiatingUserId"],
  ["InputParameters", "inputParameters"],
  ["IsExecutingOffline", "isExecutingOffline"],
  ["IsInTransaction", "isInTransaction"],
  ["IsOfflinePlayback", "isOfflinePlayback"],
  ["IsolationMode", "isolationMode"],
  ["MessageName", "messageName"],
  ["Mode", "mode"],
  ["OperationCreatedOn", "operationCreatedOn"],
  ["OperationId", "operationId"],
  ["OrganizationId", "organizationId"],
  ["OrganizationName", "organizationName"],
  ["OutputParameters", "outputParameters"],
  ["OwningExtension", "owningExtension"],
  ["ParentContext", "parentContext"],
  ["PostEntityImages", "postEntityImages"],
  ["PreEntityImages", "preEntityImages"],
  ["PrimaryEntityId", "primaryEntityId"],
  ["PrimaryEntityName", "primaryEntityName"],
  ["RequestId", "requestId"],
  ["SecondaryEntityName", "secondaryEntityName"],
  ["SharedVariables", "sharedVariables"],
  ["Stage", "stage"],
  ["UserAzureActiveDirectoryObjectId", "userAzureActiveDirectoryObjectId"],
  ["UserId", "userId"],
];
const toPlugboxName = new Map(CONTEXT_MEMBERS);
const PARAMETER_MEMBERS = new Set(["InputParameters", "OutputParameters", "SharedVariables"]);
const IMAGE_MEMBERS = new Set(["PreEntityImages", "PostEntityImages"]);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function hidden(target: object, key: symbol, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: false, configurable: true, writable: true });
}

// Reading ////////////////////////////////////////////////////////////////////////////////////////

const DATE = /^\/Date\((-?\d+)([+-]\d{4})?\)\/$/;

function readDate(text: string): Date | undefined {
  const match = DATE.exec(text);
  if (!match) return undefined;
  const date = new Date(Number(match[1]));
  hidden(date, kDateText, text);
  return date;
}

/**
 * The offset a wire date carries (`+0000`, `-0700`): a .NET DateTime of kind Local, which
 * DataContractJsonSerializer writes `/Date(ms±HHMM)/`. Undefined for a UTC date (`/Date(ms)/`).
 */
export function dateOffsetOf(date: Date): string | undefined {
  const text = (date as unknown as Record<symbol, unknown>)[kDateText];
  const match = typeof text === "string" ? DATE.exec(text) : null;
  return match && Number(match[1]) === date.getTime() ? match[2] : undefined;
}

/** A date that keeps its offset (`+0100`) when written as JSON again, as one read from the wire does. */
export function dateWithOffset(ms: number, offset: string | undefined): Date {
  const date = new Date(ms);
  if (offset !== undefined) hidden(date, kDateText, `/Date(${ms}${offset})/`);
  return date;
}

function readPairs(value: Json, what: string): Array<{ key: string; value: Json }> {
  if (value === null) return [];
  if (!Array.isArray(value)) throw new WireFormatError("WIRE_INVALID", `${what} must be an array of { "key", "value" }`);
  return value.map((item, i) => {
    if (typeof item !== "object" || item === null || Array.isArray(item) || typeof item.key !== "string") {
      throw new WireFormatError("WIRE_INVALID", `${what}[${i}] must be { "key": "<name>", "value": … }`);
    }
    return { key: item.key, value: item.value ?? null };
  });
}

function readEntity(raw: JsonObject, what: string): Entity {
  const entity = new Entity(String(raw.LogicalName ?? ""), String(raw.Id ?? "00000000-0000-0000-0000-000000000000"));
  for (const { key, value } of readPairs(raw.Attributes ?? [], `${what}.Attributes`)) entity.attributes[key] = readValue(value, `${what}.Attributes.${key}`) as never;
  for (const { key, value } of readPairs(raw.FormattedValues ?? [], `${what}.FormattedValues`)) entity.formattedValues[key] = String(value);
  for (const { key, value } of readPairs(raw.KeyAttributes ?? [], `${what}.KeyAttributes`)) entity.keyAttributes[key] = readValue(value, `${what}.KeyAttributes.${key}`) as never;
  hidden(entity, kWire, { EntityState: raw.EntityState ?? null, RelatedEntities: raw.RelatedEntities ?? [], RowVersion: raw.RowVersion ?? null, typed: "__type" in raw });
  return entity;
}

function readReference(raw: JsonObject, what: string): EntityReference {
  const ref = new EntityReference(String(raw.LogicalName ?? ""), String(raw.Id ?? ""), typeof raw.Name === "string" ? raw.Name : null);
  for (const { key, value } of readPairs(raw.KeyAttributes ?? [], `${what}.KeyAttributes`)) ref.keyAttributes[key] = readValue(value, what) as never;
  hidden(ref, kWire, { RowVersion: raw.RowVersion ?? null });
  return ref;
}

function contractOf(type: string): string {
  return type.split(":")[0]!;
}

/** A value in an object slot: its `__type` says what it is. */
function readValue(value: Json, what: string): unknown {
  if (typeof value === "string") return readDate(value) ?? value;
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    if (value.length > 0 && value.every((v) => typeof v === "object" && v !== null && !Array.isArray(v) && v.__type === KEY_VALUE_TYPE)) {
      const pairs = value.map((v) => ({ key: (v as JsonObject).key, value: (v as JsonObject).value }));
      hidden(pairs, kKeyValues, true);
      return pairs;
    }
    if (value.length > 0 && value.every((v) => typeof v === "object" && v !== null && !Array.isArray(v) && typeof v.__type === "string" && contractOf(v.__type) === "OptionSetValue")) {
      return new OptionSetValueCollection(value.map((v) => Number((v as JsonObject).Value)));
    }
    return value.map((v, i) => readValue(v, `${what}[${i}]`));
  }
  const type = typeof value.__type === "string" ? contractOf(value.__type) : undefined;
  switch (type) {
    case "Entity":
      return readEntity(value, what);
    case "EntityReference":
      return readReference(value, what);
    case "OptionSetValue":
      return new OptionSetValue(Number(value.Value));
    case "Money":
      return new Money(Number(value.Value));
    case "EntityCollection": {
      const entities = Array.isArray(value.Entities) ? value.Entities.map((e, i) => readEntity(e as JsonObject, `${what}.Entities[${i}]`)) : [];
      const collection = new EntityCollection(entities, typeof value.EntityName === "string" ? value.EntityName : null);
      collection.moreRecords = value.MoreRecords === true;
      collection.pagingCookie = typeof value.PagingCookie === "string" ? value.PagingCookie : null;
      collection.totalRecordCount = typeof value.TotalRecordCount === "number" ? value.TotalRecordCount : -1;
      collection.totalRecordCountLimitExceeded = value.TotalRecordCountLimitExceeded === true;
      hidden(collection, kWire, { MinActiveRowVersion: value.MinActiveRowVersion ?? "-1" });
      return collection;
    }
    default: {
      // A type plugbox does not model (QueryExpression, Relationship, …): kept verbatim.
      const kept = { ...value };
      hidden(kept, kRaw, value);
      return kept;
    }
  }
}

function readParameters(value: Json, what: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value: item } of readPairs(value, what)) out[key] = readValue(item, `${what}.${key}`);
  return out;
}

export function readContext(raw: Json, what = "context"): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new WireFormatError("WIRE_INVALID", `${what} must be a JSON object`);
  const context: Record<string, unknown> = {};
  const members: string[] = [];
  const extra: JsonObject = {};
  for (const [member, value] of Object.entries(raw)) {
    members.push(member);
    const name = toPlugboxName.get(member);
    if (name === undefined) {
      extra[member] = value;
      continue;
    }
    if (PARAMETER_MEMBERS.has(member)) context[name] = readParameters(value, `${what}.${member}`);
    else if (IMAGE_MEMBERS.has(member)) {
      const images: Record<string, Entity> = {};
      for (const { key, value: image } of readPairs(value, `${what}.${member}`)) images[key] = readEntity(image as JsonObject, `${what}.${member}.${key}`);
      context[name] = images;
    } else if (member === "OwningExtension") context[name] = value === null ? null : readReference(value as JsonObject, `${what}.OwningExtension`);
    else if (member === "ParentContext") context[name] = value === null ? null : readContext(value, `${what}.ParentContext`);
    else if (member === "OperationCreatedOn") context[name] = typeof value === "string" ? (readDate(value) ?? value) : value;
    else context[name] = value;
  }
  hidden(context, kWire, { members, extra });
  return context;
}

// Writing ////////////////////////////////////////////////////////////////////////////////////////

function writeDate(date: Date): string {
  const text = (date as unknown as Record<symbol, unknown>)[kDateText];
  if (typeof text === "string") {
    const match = DATE.exec(text);
    if (match && Number(match[1]) === date.getTime()) return text;
  }
  return `/Date(${date.getTime()})/`;
}

function pairs(record: Record<string, unknown>, write: (value: unknown) => Json): Json[] {
  return Object.entries(record).map(([key, value]) => ({ key, value: write(value) }));
}

function writeEntity(entity: Entity, typed: boolean): JsonObject {
  const wire = ((entity as unknown as Record<symbol, unknown>)[kWire] ?? {}) as Record<string, Json>;
  const out: JsonObject = {};
  if (typed) out.__type = `Entity:${CONTRACTS_NAMESPACE}`;
  out.Attributes = pairs(entity.attributes ?? {}, writeValue);
  out.EntityState = wire.EntityState ?? null;
  out.FormattedValues = pairs(entity.formattedValues ?? {}, (v) => String(v));
  out.Id = entity.id;
  out.KeyAttributes = pairs(entity.keyAttributes ?? {}, writeValue);
  out.LogicalName = entity.logicalName;
  out.RelatedEntities = wire.RelatedEntities ?? [];
  out.RowVersion = wire.RowVersion ?? null;
  return out;
}

function writeReference(ref: EntityReference, typed: boolean): JsonObject {
  const wire = ((ref as unknown as Record<symbol, unknown>)[kWire] ?? {}) as Record<string, Json>;
  const out: JsonObject = {};
  if (typed) out.__type = `EntityReference:${CONTRACTS_NAMESPACE}`;
  out.Id = ref.id;
  out.KeyAttributes = pairs(ref.keyAttributes ?? {}, writeValue);
  out.LogicalName = ref.logicalName;
  out.Name = ref.name ?? null;
  out.RowVersion = wire.RowVersion ?? null;
  return out;
}

/** A value in an object slot, with its `__type`. */
function writeValue(value: unknown): Json {
  if (value === undefined || value === null) return null;
  if (typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (value instanceof Date) return writeDate(value);
  if (typeof value !== "object") return String(value);
  const raw = (value as Record<symbol, unknown>)[kRaw];
  if (raw !== undefined) return raw as Json;
  if (Array.isArray(value)) {
    if ((value as unknown as Record<symbol, unknown>)[kKeyValues]) {
      return value.map((p: { key: Json; value: Json }) => ({ __type: KEY_VALUE_TYPE, key: p.key, value: p.value }));
    }
    return value.map(writeValue);
  }
  switch (typeOf(value)) {
    case "Entity":
      return writeEntity(value as Entity, true);
    case "EntityReference":
      return writeReference(value as EntityReference, true);
    case "OptionSetValue":
      return { __type: `OptionSetValue:${CONTRACTS_NAMESPACE}`, Value: (value as OptionSetValue).value };
    case "Money":
      return { __type: `Money:${CONTRACTS_NAMESPACE}`, Value: (value as Money).value };
    case "OptionSetValueCollection":
      return (value as OptionSetValueCollection).values.map((v) => ({ __type: `OptionSetValue:${CONTRACTS_NAMESPACE}`, Value: v }));
    case "EntityCollection": {
      const c = value as EntityCollection;
      const wire = ((c as unknown as Record<symbol, unknown>)[kWire] ?? {}) as Record<string, Json>;
      return {
        __type: `EntityCollection:${CONTRACTS_NAMESPACE}`,
        Entities: c.entities.map((e) => writeEntity(e, false)),
        EntityName: c.entityName ?? null,
        MinActiveRowVersion: wire.MinActiveRowVersion ?? "-1",
        MoreRecords: c.moreRecords === true,
        PagingCookie: c.pagingCookie ?? null,
        TotalRecordCount: c.totalRecordCount ?? -1,
        TotalRecordCountLimitExceeded: c.totalRecordCountLimitExceeded === true,
      };
    }
    default: {
      // A plain object of the same shape as an SDK type is written as that type.
      const v = value as Record<string, unknown>;
      if (typeof v.logicalName === "string" && v.attributes !== undefined) return writeEntity(Object.assign(new Entity(v.logicalName, String(v.id ?? "")), v) as Entity, true);
      if (typeof v.logicalName === "string" && typeof v.id === "string") return writeReference(Object.assign(new EntityReference(v.logicalName, v.id), v) as EntityReference, true);
      const out: JsonObject = {};
      for (const key of Object.keys(v).sort()) out[key] = writeValue(v[key]);
      return out;
    }
  }
}

/** The JSON value of a context (camelCase plugbox form, or one parsed from the wire). */
export function writeContext(context: Record<string, unknown>): JsonObject {
  const wire = ((context as Record<symbol, unknown>)[kWire] ?? undefined) as { members: string[]; extra: JsonObject } | undefined;
  const present = wire ? new Set(wire.members) : undefined;
  const out: JsonObject = {};
  for (const [member, name] of CONTEXT_MEMBERS) {
    const value = context[name];
    if (present ? !present.has(member) : value === undefined) continue;
    if (PARAMETER_MEMBERS.has(member)) out[member] = pairs((value ?? {}) as Record<string, unknown>, writeValue);
    else if (IMAGE_MEMBERS.has(member)) out[member] = pairs((value ?? {}) as Record<string, unknown>, (image) => writeEntity(image as Entity, false));
    else if (member === "OwningExtension") out[member] = value === null || value === undefined ? null : writeReference(value as EntityReference, false);
    else if (member === "ParentContext") out[member] = value === null || value === undefined ? null : writeContext(value as Record<string, unknown>);
    else if (value instanceof Date) out[member] = writeDate(value);
    else out[member] = value === undefined ? null : (value as Json);
  }
  if (wire) for (const [member, value] of Object.entries(wire.extra)) out[member] = value;
  return out;
}

/** JSON text as WCF writes it: `/` escaped as `\/`. */
export function stringifyWire(value: Json): string {
  return JSON.stringify(value).replace(/\//g, "\\/");
}
