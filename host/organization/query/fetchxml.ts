/**
 * FetchXML → the query model. Read with the one XML reader (sdk/wire/xml-tree.ts; no value coercion:
 * every attribute and <value> stays a string, and the compiler compares it with the stored type).
 */
import { readXmlTree, type XmlElement } from "../../../sdk/wire/xml-tree.js";
import {
  AGGREGATE_FUNCTIONS,
  DATE_GROUPINGS,
  DEFAULT_PAGE_SIZE,
  emptyColumns,
  FETCH_OPERATORS,
  invalid,
  MAX_NESTING,
  readName,
  show,
  unsupported,
  type AggregateFunction,
  type ColumnItem,
  type ColumnsModel,
  type ConditionModel,
  type DateGrouping,
  type FilterModel,
  type LinkModel,
  type OrderModel,
  type QueryModel,
} from "./model.js";

/** The longest FetchXML accepted, in characters. */
export const MAX_FETCH_LENGTH = 1_000_000;

function parseXml(xml: string): XmlElement {
  if (xml.trim() === "") throw invalid("the FetchExpression's query is empty; it must be FetchXML such as <fetch><entity name=\"account\"/></fetch>");
  if (xml.length > MAX_FETCH_LENGTH) throw invalid(`the FetchXML is ${xml.length} characters long; the limit is ${MAX_FETCH_LENGTH}`);
  const roots = readXmlTree(xml, {
    trim: true,
    maxDepth: MAX_NESTING * 2 + 8,
    malformed: (problem, line, column) => invalid(`the FetchXML is not well-formed: ${problem} (line ${line}, column ${column})`),
    tooDeep: () => invalid(`the FetchXML nests elements more than ${MAX_NESTING} levels deep`),
  });
  if (roots.length !== 1 || roots[0]!.name !== "fetch") {
    throw invalid(`the FetchXML must have one <fetch> root element, found ${roots.map((r) => `<${r.name}>`).join(", ") || "none"}`);
  }
  return roots[0]!;
}

function bool(node: XmlElement, name: string, fallback = false): boolean {
  const value = node.attributes[name];
  if (value === undefined) return fallback;
  switch (value.trim().toLowerCase()) {
    case "true":
    case "1":
      return true;
    case "false":
    case "0":
      return false;
    default:
      throw invalid(`<${node.name} ${name}="${value}"> must be true or false`);
  }
}

function whole(node: XmlElement, name: string, min: number): number | null {
  const value = node.attributes[name];
  if (value === undefined || value.trim() === "") return null;
  if (!/^\s*\d+\s*$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    throw invalid(`<${node.name} ${name}="${value}"> must be a whole number of at least ${min}`);
  }
  return Number(value);
}

function nameAttr(node: XmlElement, attr: string, where: string): string {
  const value = node.attributes[attr];
  if (value === undefined || value === "") throw invalid(`${where}: <${node.name}> needs a ${attr} attribute`);
  return readName(value, `${where}: <${node.name} ${attr}>`);
}

function optionalName(node: XmlElement, attr: string, where: string): string | null {
  const value = node.attributes[attr];
  return value === undefined || value === "" ? null : readName(value, `${where}: <${node.name} ${attr}>`);
}

/** What an <entity> or <link-entity> holds. */
interface EntityBody {
  columns: ColumnsModel;
  filters: FilterModel[];
  orders: OrderModel[];
  links: LinkModel[];
}

function readEntityBody(node: XmlElement, entity: string, where: string, depth: number): EntityBody {
  if (depth > MAX_NESTING) throw invalid(`${where} nests link entities more than ${MAX_NESTING} levels deep`);
  const body: EntityBody = { columns: emptyColumns(), filters: [], orders: [], links: [] };
  let orderIndex = 0;
  let linkIndex = 0;
  let filterIndex = 0;
  for (const child of node.children) {
    switch (child.name) {
      case "all-attributes":
        body.columns.all = true;
        break;
      case "attribute":
        body.columns.items.push(readAttribute(child, where));
        break;
      case "order":
        body.orders.push(readOrder(child, `${where} <order> ${++orderIndex}`));
        break;
      case "filter":
        body.filters.push(readFilter(child, `${where} <filter> ${++filterIndex}`, 1));
        break;
      case "link-entity":
        body.links.push(readLink(child, entity, `${where} <link-entity> ${++linkIndex}`, depth + 1));
        break;
      default:
        throw invalid(`${where}: unexpected <${child.name}> inside <${node.name}>; expected attribute, all-attributes, order, filter or link-entity`);
    }
  }
  return body;
}

function readAttribute(node: XmlElement, where: string): ColumnItem {
  const name = nameAttr(node, "name", where);
  const aggregateName = node.attributes.aggregate?.trim().toLowerCase();
  let aggregate: AggregateFunction | null = null;
  if (aggregateName !== undefined && aggregateName !== "") {
    if (!(AGGREGATE_FUNCTIONS as readonly string[]).includes(aggregateName)) {
      throw unsupported(`the aggregate ${show(node.attributes.aggregate)} (attribute ${name}) is not supported; supported aggregates: ${AGGREGATE_FUNCTIONS.join(", ")}`);
    }
    aggregate = aggregateName as AggregateFunction;
  }
  const groupingName = node.attributes.dategrouping?.trim().toLowerCase();
  let dateGrouping: DateGrouping | null = null;
  if (groupingName !== undefined && groupingName !== "") {
    if (!(DATE_GROUPINGS as readonly string[]).includes(groupingName)) {
      throw unsupported(`the date grouping ${show(node.attributes.dategrouping)} (attribute ${name}) is not supported; supported date groupings: ${DATE_GROUPINGS.join(", ")}`);
    }
    dateGrouping = groupingName as DateGrouping;
  }
  return { name, alias: optionalName(node, "alias", where), aggregate, groupBy: bool(node, "groupby"), dateGrouping, distinct: bool(node, "distinct") };
}

function readOrder(node: XmlElement, where: string): OrderModel {
  const attribute = optionalName(node, "attribute", where);
  const alias = optionalName(node, "alias", where) ?? optionalName(node, "entityname", where);
  if (attribute === null && alias === null) throw invalid(`${where}: <order> needs an attribute (or, in an aggregate query, an alias)`);
  return { attribute, alias, descending: bool(node, "descending"), where };
}

function readFilter(node: XmlElement, where: string, depth: number): FilterModel {
  if (depth > MAX_NESTING) throw invalid(`${where} nests filters more than ${MAX_NESTING} levels deep`);
  const typeName = (node.attributes.type ?? "and").trim().toLowerCase();
  if (typeName !== "and" && typeName !== "or") throw invalid(`${where}: <filter type="${node.attributes.type}"> must be "and" or "or"`);
  const filter: FilterModel = { type: typeName, conditions: [], filters: [] };
  let conditionIndex = 0;
  let filterIndex = 0;
  for (const child of node.children) {
    switch (child.name) {
      case "condition":
        filter.conditions.push(readCondition(child, `${where} <condition> ${++conditionIndex}`));
        break;
      case "filter":
        filter.filters.push(readFilter(child, `${where} <filter> ${++filterIndex}`, depth + 1));
        break;
      case "link-entity":
        throw unsupported(`${where}: a <link-entity> inside a <filter> (link-type any, not any, all, not all) is not supported; use a link-entity under the entity instead`);
      default:
        throw invalid(`${where}: unexpected <${child.name}> inside <filter>; expected condition or filter`);
    }
  }
  return filter;
}

function readCondition(node: XmlElement, where: string): ConditionModel {
  const attribute = nameAttr(node, "attribute", where);
  if (node.attributes.valueof !== undefined) throw unsupported(`${where}: valueof (comparing two columns) is not supported`);
  const operatorName = node.attributes.operator;
  if (operatorName === undefined || operatorName === "") throw invalid(`${where}: <condition attribute="${attribute}"> needs an operator attribute`);
  const key = operatorName.trim().toLowerCase();
  const operator = Object.prototype.hasOwnProperty.call(FETCH_OPERATORS, key) ? FETCH_OPERATORS[key] : undefined;
  if (operator === undefined) {
    throw unsupported(`the FetchXML condition operator ${show(operatorName)} (attribute ${attribute}) is not supported; supported operators: ${Object.keys(FETCH_OPERATORS).join(", ")}`);
  }
  const values: unknown[] = [];
  if (node.attributes.value !== undefined) values.push(node.attributes.value);
  for (const child of node.children) {
    if (child.name !== "value") throw invalid(`${where}: unexpected <${child.name}> inside <condition>; expected value`);
    values.push(child.text);
  }
  return { attribute, operator, values, entityName: optionalName(node, "entityname", where), where };
}

function readLink(node: XmlElement, parentEntity: string, where: string, depth: number): LinkModel {
  const entity = nameAttr(node, "name", where);
  const typeName = (node.attributes["link-type"] ?? "inner").trim().toLowerCase();
  if (typeName !== "inner" && typeName !== "outer") {
    throw unsupported(`${where}: link-type ${show(node.attributes["link-type"])} is not supported; supported link types: inner, outer`);
  }
  const from = node.attributes.from;
  const to = node.attributes.to;
  if (from === undefined || to === undefined) {
    throw invalid(`${where}: <link-entity name="${entity}"> needs from (a column of ${entity}) and to (a column of ${parentEntity})`);
  }
  const body = readEntityBody(node, entity, where, depth);
  return {
    entity,
    fromAttribute: readName(to, `${where}: <link-entity to>`),
    toAttribute: readName(from, `${where}: <link-entity from>`),
    alias: optionalName(node, "alias", where),
    join: typeName,
    columns: body.columns,
    criteria: combine(body.filters),
    links: body.links,
    orders: body.orders,
    where,
  };
}

/** Several <filter> elements side by side all apply. */
function combine(filters: FilterModel[]): FilterModel | null {
  if (filters.length === 0) return null;
  if (filters.length === 1) return filters[0]!;
  return { type: "and", conditions: [], filters };
}

/** FetchXML text → the query model. */
export function fromFetchXml(xml: unknown): QueryModel {
  if (typeof xml !== "string") throw invalid(`a FetchExpression's query must be a FetchXML string, got ${show(xml)}`);
  const fetch = parseXml(xml);
  const entities = fetch.children.filter((c) => c.name === "entity");
  const other = fetch.children.find((c) => c.name !== "entity" && c.name !== "order");
  if (other) throw invalid(`unexpected <${other.name}> inside <fetch>; expected one <entity>`);
  if (entities.length !== 1) throw invalid(`the FetchXML must have exactly one <entity> inside <fetch>, found ${entities.length}`);
  const entityNode = entities[0]!;
  const entity = nameAttr(entityNode, "name", "<entity>");
  const body = readEntityBody(entityNode, entity, "<entity>", 1);
  // Orders directly under <fetch> (seen in aggregate queries) apply like those under <entity>.
  const fetchOrders = fetch.children.filter((c) => c.name === "order").map((c, i) => readOrder(c, `<fetch> <order> ${i + 1}`));

  const top = whole(fetch, "top", 1);
  const count = whole(fetch, "count", 1);
  const pageNumber = whole(fetch, "page", 1);
  const cookie = fetch.attributes["paging-cookie"];
  if (top !== null && (count !== null || pageNumber !== null)) throw invalid("<fetch top> cannot be combined with count or page; use one or the other");
  return {
    entity,
    columns: body.columns,
    criteria: combine(body.filters),
    links: body.links,
    orders: [...fetchOrders, ...body.orders],
    distinct: bool(fetch, "distinct"),
    top,
    page: {
      size: count ?? DEFAULT_PAGE_SIZE,
      number: pageNumber ?? 1,
      cookie: cookie === undefined || cookie === "" ? null : cookie,
      returnTotalRecordCount: bool(fetch, "returntotalrecordcount"),
    },
    aggregate: bool(fetch, "aggregate"),
  };
}
