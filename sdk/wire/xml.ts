/**
 * RemoteExecutionContext as Text XML (MessageFormat 3): the DataContractSerializer form, in the
 * namespace http://schemas.microsoft.com/xrm/2011/Contracts. Collections are lists of
 * `KeyValuePairOfstringanyType` with `key` and `value` in the System.Collections.Generic namespace;
 * a value's type is its `i:type` (`b:string`, `b:int`, `b:double`, `b:boolean`, `b:dateTime`,
 * `c:guid`, or a contract such as `Entity`); null is `i:nil="true"`.
 *
 * Read with the one XML reader (xml-tree.ts, fast-xml-parser), which takes any prefixes (this
 * module matches local names), entities, character references, CDATA and comments.
 */
import { Entity, EntityCollection, EntityReference, Money, OptionSetValue, OptionSetValueCollection, typeOf } from "../model.js";
import { readXmlTree, type XmlElement } from "./xml-tree.js";
import { CONTEXT_MEMBERS, CONTRACTS_NAMESPACE, dateOffsetOf, dateWithOffset, WireFormatError } from "./json.js";

const XSI = "http://www.w3.org/2001/XMLSchema-instance";
const XSD = "http://www.w3.org/2001/XMLSchema";
const SERIALIZATION = "http://schemas.microsoft.com/2003/10/Serialization/";
const GENERIC = "http://schemas.datacontract.org/2004/07/System.Collections.Generic";
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PARAMETER_MEMBERS = new Set(["InputParameters", "OutputParameters", "SharedVariables"]);
const IMAGE_MEMBERS = new Set(["PreEntityImages", "PostEntityImages"]);

// Dates //////////////////////////////////////////////////////////////////////////////////////////
// DataContractSerializer writes a DateTime by its kind: UTC with `Z`, Local as the local clock time
// with its offset (`2020-12-15T05:47:38+01:00`), which is what JSON's `/Date(ms+0100)/` is. Keeping
// the offset through Text XML keeps the kind a .NET listener sees.

const XML_DATE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)(Z|[+-]\d{2}:\d{2})?$/;

function xmlDate(date: Date): string {
  const offset = dateOffsetOf(date);
  const at = (ms: number) => new Date(ms).toISOString().replace(/\.000Z$|Z$/, "");
  if (offset === undefined) return `${at(date.getTime())}Z`;
  const minutes = (offset[0] === "-" ? -1 : 1) * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(3, 5)));
  return `${at(date.getTime() + minutes * 60_000)}${offset.slice(0, 3)}:${offset.slice(3)}`;
}

function readXmlDate(text: string): Date {
  const match = XML_DATE.exec(text.trim());
  if (!match) return new Date(text);
  const [, clock, zone] = match;
  // No zone (kind Unspecified) is read as UTC, as plugbox writes no such date.
  if (zone === undefined || zone === "Z") return new Date(`${clock}Z`);
  return dateWithOffset(new Date(`${clock}${zone}`).getTime(), zone.replace(":", ""));
}

// Writing ////////////////////////////////////////////////////////////////////////////////////////

function escapeText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function nil(name: string): string {
  return `<${name} i:nil="true"/>`;
}

function pairsXml(name: string, record: Record<string, unknown>, value: (v: unknown) => string): string {
  const items = Object.entries(record).map(([key, v]) => `<KeyValuePairOfstringanyType><a:key>${escapeText(key)}</a:key>${value(v)}</KeyValuePairOfstringanyType>`);
  return `<${name} xmlns:a="${GENERIC}">${items.join("")}</${name}>`;
}

function stringPairsXml(name: string, record: Record<string, string>): string {
  const items = Object.entries(record).map(([key, v]) => `<KeyValuePairOfstringstring><a:key>${escapeText(key)}</a:key><a:value>${escapeText(String(v))}</a:value></KeyValuePairOfstringstring>`);
  return `<${name} xmlns:a="${GENERIC}">${items.join("")}</${name}>`;
}

function entityMembers(entity: Entity): string {
  return (
    pairsXml("Attributes", entity.attributes ?? {}, (v) => typedValue("a:value", v)) +
    nil("EntityState") +
    stringPairsXml("FormattedValues", (entity.formattedValues ?? {}) as Record<string, string>) +
    `<Id>${escapeText(entity.id)}</Id>` +
    pairsXml("KeyAttributes", entity.keyAttributes ?? {}, (v) => typedValue("a:value", v)) +
    `<LogicalName>${escapeText(entity.logicalName)}</LogicalName>` +
    `<RelatedEntities xmlns:a="${GENERIC}"/>` +
    nil("RowVersion")
  );
}

function referenceMembers(ref: EntityReference): string {
  return (
    `<Id>${escapeText(ref.id)}</Id>` +
    pairsXml("KeyAttributes", ref.keyAttributes ?? {}, (v) => typedValue("a:value", v)) +
    `<LogicalName>${escapeText(ref.logicalName)}</LogicalName>` +
    (ref.name === null || ref.name === undefined ? nil("Name") : `<Name>${escapeText(ref.name)}</Name>`) +
    nil("RowVersion")
  );
}

/** An element holding a value whose declared type is object. */
function typedValue(name: string, value: unknown): string {
  if (value === null || value === undefined) return nil(name);
  const typed = (type: string, content: string) => `<${name} i:type="${type}">${content}</${name}>`;
  if (typeof value === "string") return GUID.test(value) ? `<${name} i:type="c:guid" xmlns:c="${SERIALIZATION}">${value}</${name}>` : typed("b:string", escapeText(value)).replace(">", ` xmlns:b="${XSD}">`);
  if (typeof value === "boolean") return typed("b:boolean", String(value)).replace(">", ` xmlns:b="${XSD}">`);
  if (typeof value === "number") return typed(Number.isInteger(value) ? "b:int" : "b:double", String(value)).replace(">", ` xmlns:b="${XSD}">`);
  if (value instanceof Date) return typed("b:dateTime", xmlDate(value)).replace(">", ` xmlns:b="${XSD}">`);
  switch (typeOf(value)) {
    case "Entity":
      return typed("Entity", entityMembers(value as Entity));
    case "EntityReference":
      return typed("EntityReference", referenceMembers(value as EntityReference));
    case "OptionSetValue":
      return typed("OptionSetValue", `<Value>${(value as OptionSetValue).value}</Value>`);
    case "Money":
      return typed("Money", `<Value>${(value as Money).value}</Value>`);
    case "OptionSetValueCollection":
      return typed("OptionSetValueCollection", (value as OptionSetValueCollection).values.map((v) => `<OptionSetValue><Value>${v}</Value></OptionSetValue>`).join(""));
    case "EntityCollection": {
      const c = value as EntityCollection;
      return typed(
        "EntityCollection",
        `<Entities>${c.entities.map((e) => `<Entity>${entityMembers(e)}</Entity>`).join("")}</Entities>` +
          (c.entityName === null ? nil("EntityName") : `<EntityName>${escapeText(c.entityName)}</EntityName>`) +
          `<MinActiveRowVersion>-1</MinActiveRowVersion><MoreRecords>${c.moreRecords === true}</MoreRecords>` +
          (c.pagingCookie === null ? nil("PagingCookie") : `<PagingCookie>${escapeText(c.pagingCookie)}</PagingCookie>`) +
          `<TotalRecordCount>${c.totalRecordCount ?? -1}</TotalRecordCount><TotalRecordCountLimitExceeded>${c.totalRecordCountLimitExceeded === true}</TotalRecordCountLimitExceeded>`,
      );
    }
    default:
      throw new WireFormatError("WIRE_FORMAT_UNSUPPORTED", `a ${typeOf(value) ?? typeof value} value has no Text XML form in this version of plugbox; use JSON`);
  }
}

function contextMembers(context: Record<string, unknown>): string {
  let out = "";
  for (const [member, name] of CONTEXT_MEMBERS) {
    const value = context[name];
    if (value === undefined) continue;
    if (PARAMETER_MEMBERS.has(member)) out += pairsXml(member, (value ?? {}) as Record<string, unknown>, (v) => typedValue("a:value", v));
    else if (IMAGE_MEMBERS.has(member)) {
      const images = Object.entries((value ?? {}) as Record<string, Entity>).map(([key, e]) => `<KeyValuePairOfstringEntity><a:key>${escapeText(key)}</a:key><a:value>${entityMembers(e)}</a:value></KeyValuePairOfstringEntity>`);
      out += `<${member} xmlns:a="${GENERIC}">${images.join("")}</${member}>`;
    } else if (member === "OwningExtension") out += value === null ? nil(member) : `<${member}>${referenceMembers(value as EntityReference)}</${member}>`;
    else if (member === "ParentContext") out += value === null ? nil(member) : `<${member}>${contextMembers(value as Record<string, unknown>)}</${member}>`;
    else if (value === null) out += nil(member);
    else if (value instanceof Date) out += `<${member}>${xmlDate(value)}</${member}>`;
    else out += `<${member}>${escapeText(String(value))}</${member}>`;
  }
  return out;
}

export function writeContextXml(context: Record<string, unknown>): string {
  return `<RemoteExecutionContext xmlns="${CONTRACTS_NAMESPACE}" xmlns:i="${XSI}">${contextMembers(context)}</RemoteExecutionContext>`;
}

// Reading ////////////////////////////////////////////////////////////////////////////////////////

function local(name: string): string {
  const i = name.indexOf(":");
  return i < 0 ? name : name.slice(i + 1);
}

function parseXml(text: string): XmlElement {
  const roots = readXmlTree(text, { trim: false, malformed: (problem, line, column) => new WireFormatError("WIRE_INVALID", `the XML is malformed at line ${line}, column ${column}: ${problem}`) });
  if (roots.length !== 1) throw new WireFormatError("WIRE_INVALID", `the XML has ${roots.length} root elements; a context has one, <RemoteExecutionContext>`);
  return roots[0]!;
}

function child(e: XmlElement, name: string): XmlElement | undefined {
  return e.children.find((c) => local(c.name) === name);
}

function isNil(e: XmlElement | undefined): boolean {
  return !e || Object.entries(e.attributes).some(([k, v]) => local(k) === "nil" && v === "true");
}

function typeName(e: XmlElement): string | undefined {
  const entry = Object.entries(e.attributes).find(([k]) => local(k) === "type");
  return entry ? local(entry[1]) : undefined;
}

function readEntityXml(e: XmlElement): Entity {
  const entity = new Entity(child(e, "LogicalName")?.text ?? "", child(e, "Id")?.text ?? "00000000-0000-0000-0000-000000000000");
  for (const pair of child(e, "Attributes")?.children ?? []) entity.attributes[child(pair, "key")?.text ?? ""] = readTyped(child(pair, "value")) as never;
  for (const pair of child(e, "FormattedValues")?.children ?? []) entity.formattedValues[child(pair, "key")?.text ?? ""] = child(pair, "value")?.text ?? "";
  for (const pair of child(e, "KeyAttributes")?.children ?? []) entity.keyAttributes[child(pair, "key")?.text ?? ""] = readTyped(child(pair, "value")) as never;
  return entity;
}

function readReferenceXml(e: XmlElement): EntityReference {
  const name = child(e, "Name");
  const reference = new EntityReference(child(e, "LogicalName")?.text ?? "", child(e, "Id")?.text ?? "", isNil(name) ? null : (name?.text ?? null));
  for (const pair of child(e, "KeyAttributes")?.children ?? []) reference.keyAttributes[child(pair, "key")?.text ?? ""] = readTyped(child(pair, "value")) as never;
  return reference;
}

function readTyped(e: XmlElement | undefined): unknown {
  if (!e || isNil(e)) return null;
  const type = typeName(e);
  switch (type) {
    case "string":
    case "guid":
    case undefined:
      return e.text;
    case "int":
    case "long":
    case "short":
    case "decimal":
    case "double":
    case "float":
      return Number(e.text);
    case "boolean":
      return e.text === "true";
    case "dateTime":
      return readXmlDate(e.text);
    case "Entity":
      return readEntityXml(e);
    case "EntityReference":
      return readReferenceXml(e);
    case "OptionSetValue":
      return new OptionSetValue(Number(child(e, "Value")?.text));
    case "Money":
      return new Money(Number(child(e, "Value")?.text));
    case "OptionSetValueCollection":
      return new OptionSetValueCollection(e.children.map((c) => Number(child(c, "Value")?.text)));
    case "EntityCollection": {
      const collection = new EntityCollection((child(e, "Entities")?.children ?? []).map(readEntityXml), isNil(child(e, "EntityName")) ? null : (child(e, "EntityName")?.text ?? null));
      collection.moreRecords = child(e, "MoreRecords")?.text === "true";
      const cookie = child(e, "PagingCookie");
      collection.pagingCookie = isNil(cookie) ? null : (cookie?.text ?? null);
      collection.totalRecordCount = Number(child(e, "TotalRecordCount")?.text ?? -1);
      collection.totalRecordCountLimitExceeded = child(e, "TotalRecordCountLimitExceeded")?.text === "true";
      return collection;
    }
    default:
      throw new WireFormatError("WIRE_FORMAT_UNSUPPORTED", `a value of type ${type} in Text XML is not read by this version of plugbox`);
  }
}

function readContextXml(e: XmlElement): Record<string, unknown> {
  const context: Record<string, unknown> = {};
  for (const [member, name] of CONTEXT_MEMBERS) {
    const m = child(e, member);
    if (!m) continue;
    if (PARAMETER_MEMBERS.has(member)) {
      const out: Record<string, unknown> = {};
      for (const pair of m.children) out[child(pair, "key")?.text ?? ""] = readTyped(child(pair, "value"));
      context[name] = out;
    } else if (IMAGE_MEMBERS.has(member)) {
      const out: Record<string, Entity> = {};
      for (const pair of m.children) out[child(pair, "key")?.text ?? ""] = readEntityXml(child(pair, "value")!);
      context[name] = out;
    } else if (isNil(m)) context[name] = null;
    else if (member === "OwningExtension") context[name] = readReferenceXml(m);
    else if (member === "ParentContext") context[name] = readContextXml(m);
    else if (member === "OperationCreatedOn") context[name] = readXmlDate(m.text);
    else if (["Depth", "IsolationMode", "Mode", "Stage"].includes(member)) context[name] = Number(m.text);
    else if (member.startsWith("Is")) context[name] = m.text === "true";
    else context[name] = m.text;
  }
  return context;
}

export function readContextFromXml(text: string): Record<string, unknown> {
  const root = parseXml(text);
  if (local(root.name) !== "RemoteExecutionContext") throw new WireFormatError("WIRE_INVALID", `the XML's root is <${root.name}>, not <RemoteExecutionContext>`);
  return readContextXml(root);
}
