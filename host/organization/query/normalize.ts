/**
 * QueryExpression and QueryByAttribute (SDK instances, decoded values or plain objects of the same
 * shape) → the query model. Everything read here is untrusted: a shape that is wrong is an
 * ORG_INVALID_ARGUMENT naming where it is wrong.
 */
import { typeOf } from "../../../sdk/model.js";
import {
  column,
  DEFAULT_PAGE_SIZE,
  emptyColumns,
  invalid,
  MAX_NESTING,
  OPERATORS,
  readName,
  show,
  unsupported,
  type ColumnsModel,
  type ConditionModel,
  type FilterModel,
  type LinkModel,
  type Operator,
  type OrderModel,
  type PageModel,
  type QueryModel,
} from "./model.js";

export type QueryKind = "QueryExpression" | "QueryByAttribute" | "FetchExpression";

type Raw = Record<string, unknown>;

function isObject(value: unknown): value is Raw {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Which kind of query a value is: by its SDK tag, a `$type` member, or its shape. */
export function queryKind(query: unknown): QueryKind {
  if (typeof query === "string") return "FetchExpression";
  if (!isObject(query)) throw invalid(`the query must be a QueryExpression, QueryByAttribute or FetchExpression, got ${show(query)}`);
  const tag = typeOf(query) ?? (typeof query.$type === "string" ? query.$type : undefined);
  if (tag === "QueryExpression" || tag === "QueryByAttribute" || tag === "FetchExpression") return tag;
  if (tag !== undefined) throw invalid(`the query must be a QueryExpression, QueryByAttribute or FetchExpression, got a value of type ${tag}`);
  if (query.query !== undefined) return "FetchExpression";
  if (query.attributes !== undefined && query.values !== undefined) return "QueryByAttribute";
  return "QueryExpression";
}

const operatorsByLowerName = new Map<string, Operator>(OPERATORS.map((op) => [op.toLowerCase(), op]));

export function readOperator(value: unknown, where: string): Operator {
  if (typeof value !== "string" || value === "") throw invalid(`${where}.operator must be a ConditionOperator name such as "Equal", got ${show(value)}`);
  const operator = operatorsByLowerName.get(value.toLowerCase());
  if (!operator) {
    throw unsupported(`the condition operator ${show(value)} (${where}) is not supported; supported operators: ${OPERATORS.join(", ")}`);
  }
  return operator;
}

function readBoolean(value: unknown, what: string, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "boolean") throw invalid(`${what} must be true or false, got ${show(value)}`);
  return value;
}

function readCount(value: unknown, what: string, min: number): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw invalid(`${what} must be a whole number of at least ${min}, got ${show(value)}`);
  }
  return value;
}

function readArray(value: unknown, what: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalid(`${what} must be an array, got ${show(value)}`);
  return value;
}

/**
 * A ColumnSet, `{ allColumns, columns }`, an array of names, or true. `missing` says what an
 * absent column set means (all columns for a plain query, none for a link entity).
 */
export function readColumns(value: unknown, what: string, missing: "all" | "none"): ColumnsModel {
  if (value === undefined || value === null) return missing === "all" ? { all: true, items: [] } : emptyColumns();
  if (value === true) return { all: true, items: [] };
  if (value === false) return emptyColumns();
  if (Array.isArray(value)) return { all: false, items: value.map((c, i) => column(readName(c, `${what}[${i}]`))) };
  if (!isObject(value)) throw invalid(`${what} must be a ColumnSet, an array of column names or true, got ${show(value)}`);
  if (readBoolean(value.allColumns, `${what}.allColumns`, false)) return { all: true, items: [] };
  return { all: false, items: readArray(value.columns, `${what}.columns`).map((c, i) => column(readName(c, `${what}.columns[${i}]`))) };
}

export function readFilter(value: unknown, what: string, depth = 0): FilterModel | null {
  if (value === undefined || value === null) return null;
  if (!isObject(value)) throw invalid(`${what} must be a FilterExpression (an object with filterOperator, conditions and filters), got ${show(value)}`);
  if (depth > MAX_NESTING) throw invalid(`${what} nests filters more than ${MAX_NESTING} levels deep`);
  let type: "and" | "or" = "and";
  const op = value.filterOperator;
  if (op !== undefined && op !== null) {
    const lower = typeof op === "string" ? op.toLowerCase() : "";
    if (lower !== "and" && lower !== "or") throw invalid(`${what}.filterOperator must be "And" or "Or", got ${show(op)}`);
    type = lower;
  }
  const conditions = readArray(value.conditions, `${what}.conditions`).map((c, i) => readCondition(c, `${what}.conditions[${i}]`));
  const filters: FilterModel[] = [];
  readArray(value.filters, `${what}.filters`).forEach((f, i) => {
    if (f === null || f === undefined) throw invalid(`${what}.filters[${i}] must be a FilterExpression, got ${show(f)}`);
    const filter = readFilter(f, `${what}.filters[${i}]`, depth + 1);
    if (filter) filters.push(filter);
  });
  return { type, conditions, filters };
}

function readCondition(value: unknown, where: string): ConditionModel {
  if (!isObject(value)) throw invalid(`${where} must be a ConditionExpression (attributeName, operator, values), got ${show(value)}`);
  const attribute = readName(value.attributeName, `${where}.attributeName`);
  const operator = readOperator(value.operator, where);
  let values = readArray(value.values, `${where}.values`);
  // new ConditionExpression("x", "In", [a, b]) passes the list as the one value.
  if (values.length === 1 && Array.isArray(values[0])) values = values[0] as unknown[];
  const entityName = value.entityName === undefined || value.entityName === null ? null : readName(value.entityName, `${where}.entityName`);
  return { attribute, operator, values, entityName, where };
}

function readOrder(value: unknown, where: string): OrderModel {
  if (!isObject(value)) throw invalid(`${where} must be an OrderExpression (attributeName, orderType), got ${show(value)}`);
  const alias = value.alias ?? value.entityName;
  const attribute = value.attributeName === undefined || value.attributeName === null ? null : readName(value.attributeName, `${where}.attributeName`);
  if (attribute === null && (alias === undefined || alias === null)) throw invalid(`${where}.attributeName must name the column to order on`);
  let descending = false;
  const type = value.orderType;
  if (type !== undefined && type !== null) {
    const lower = typeof type === "string" ? type.toLowerCase() : "";
    if (lower !== "ascending" && lower !== "descending") throw invalid(`${where}.orderType must be "Ascending" or "Descending", got ${show(type)}`);
    descending = lower === "descending";
  }
  return { attribute, alias: alias === undefined || alias === null ? null : readName(alias, `${where}.alias`), descending, where };
}

function readJoin(value: unknown, where: string): "inner" | "outer" {
  if (value === undefined || value === null) return "inner";
  if (typeof value !== "string") throw invalid(`${where}.joinOperator must be "Inner", "LeftOuter" or "Natural", got ${show(value)}`);
  switch (value.toLowerCase()) {
    case "inner":
    case "natural":
      return "inner";
    case "leftouter":
      return "outer";
    default:
      throw unsupported(`the join operator ${show(value)} (${where}) is not supported; supported join operators: Inner, LeftOuter, Natural`);
  }
}

function readLink(value: unknown, parentEntity: string, where: string, depth: number): LinkModel {
  if (!isObject(value)) throw invalid(`${where} must be a LinkEntity, got ${show(value)}`);
  if (depth > MAX_NESTING) throw invalid(`${where} nests link entities more than ${MAX_NESTING} levels deep`);
  const entity = readName(value.linkToEntityName, `${where}.linkToEntityName`);
  if (value.linkFromEntityName !== undefined && value.linkFromEntityName !== null && value.linkFromEntityName !== "" && value.linkFromEntityName !== parentEntity) {
    throw invalid(`${where}.linkFromEntityName is ${show(value.linkFromEntityName)}, but the link hangs under ${parentEntity}`);
  }
  const alias = value.entityAlias === undefined || value.entityAlias === null || value.entityAlias === "" ? null : readName(value.entityAlias, `${where}.entityAlias`);
  return {
    entity,
    fromAttribute: readName(value.linkFromAttributeName, `${where}.linkFromAttributeName`),
    toAttribute: readName(value.linkToAttributeName, `${where}.linkToAttributeName`),
    alias,
    join: readJoin(value.joinOperator, where),
    columns: readColumns(value.columns, `${where}.columns`, "none"),
    criteria: readFilter(value.linkCriteria, `${where}.linkCriteria`, 1),
    links: readArray(value.linkEntities, `${where}.linkEntities`).map((l, i) => readLink(l, entity, `${where}.linkEntities[${i}]`, depth + 1)),
    orders: readArray(value.orders, `${where}.orders`).map((o, i) => readOrder(o, `${where}.orders[${i}]`)),
    where,
  };
}

function readPage(value: unknown, top: number | null): PageModel {
  const page: PageModel = { size: DEFAULT_PAGE_SIZE, number: 1, cookie: null, returnTotalRecordCount: false };
  if (value === undefined || value === null) return page;
  if (!isObject(value)) throw invalid(`query.pageInfo must be a PagingInfo (count, pageNumber, pagingCookie, returnTotalRecordCount), got ${show(value)}`);
  const count = readCount(value.count, "query.pageInfo.count", 0) ?? 0;
  const number = readCount(value.pageNumber, "query.pageInfo.pageNumber", 0) ?? 0;
  const cookie = value.pagingCookie;
  if (cookie !== undefined && cookie !== null && typeof cookie !== "string") throw invalid(`query.pageInfo.pagingCookie must be a string or null, got ${show(cookie)}`);
  if (top !== null && count > 0) throw invalid("query.topCount cannot be combined with query.pageInfo.count; use one or the other");
  if (count > 0) page.size = count;
  page.number = Math.max(1, number);
  page.cookie = cookie === undefined || cookie === "" ? null : cookie;
  page.returnTotalRecordCount = readBoolean(value.returnTotalRecordCount, "query.pageInfo.returnTotalRecordCount", false);
  return page;
}

function readTop(value: unknown): number | null {
  return readCount(value, "query.topCount", 1);
}

/** A QueryExpression (or its plain shape) → the query model. */
export function fromQueryExpression(query: Raw): QueryModel {
  const entity = readName(query.entityName, "query.entityName");
  const top = readTop(query.topCount);
  return {
    entity,
    columns: readColumns(query.columnSet, "query.columnSet", "all"),
    criteria: readFilter(query.criteria, "query.criteria"),
    links: readArray(query.linkEntities, "query.linkEntities").map((l, i) => readLink(l, entity, `query.linkEntities[${i}]`, 1)),
    orders: readArray(query.orders, "query.orders").map((o, i) => readOrder(o, `query.orders[${i}]`)),
    distinct: readBoolean(query.distinct, "query.distinct", false),
    top,
    page: readPage(query.pageInfo, top),
    aggregate: false,
  };
}

/** A QueryByAttribute (or its plain shape) → the query model: one Equal condition per attribute. */
export function fromQueryByAttribute(query: Raw): QueryModel {
  const entity = readName(query.entityName, "query.entityName");
  const attributes = readArray(query.attributes, "query.attributes");
  const values = readArray(query.values, "query.values");
  if (attributes.length !== values.length) {
    throw invalid(`query.attributes names ${attributes.length} column(s) but query.values holds ${values.length} value(s); they must pair up`);
  }
  const conditions: ConditionModel[] = attributes.map((a, i) => {
    const where = `query.attributes[${i}]`;
    const value = values[i];
    return value === null || value === undefined
      ? { attribute: readName(a, where), operator: "Null", values: [], entityName: null, where }
      : { attribute: readName(a, where), operator: "Equal", values: [value], entityName: null, where };
  });
  const top = readTop(query.topCount);
  return {
    entity,
    columns: readColumns(query.columnSet, "query.columnSet", "all"),
    criteria: conditions.length > 0 ? { type: "and", conditions, filters: [] } : null,
    links: [],
    orders: readArray(query.orders, "query.orders").map((o, i) => readOrder(o, `query.orders[${i}]`)),
    distinct: false,
    top,
    page: readPage(query.pageInfo, top),
    aggregate: false,
  };
}
