/**
 * The one query model every input form (QueryExpression, QueryByAttribute, FetchXML, and plain
 * objects of those shapes) is normalized into before it is compiled to SQL. Names in it have been
 * checked against NAME_PATTERN; values are still the caller's (they become SQL parameters).
 */
import { OrganizationError } from "../errors.js";

/** What a column, table or alias name must look like before it is used in a JSON path. */
export const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** How deep filters and link entities may nest. */
export const MAX_NESTING = 32;

/** Rows a page holds when the query does not say (Dataverse's limit). */
export const DEFAULT_PAGE_SIZE = 5000;

/** The condition operators this service implements, by Dataverse's ConditionOperator names. */
export const OPERATORS = [
  "Equal",
  "NotEqual",
  "GreaterThan",
  "GreaterEqual",
  "LessThan",
  "LessEqual",
  "Like",
  "NotLike",
  "BeginsWith",
  "DoesNotBeginWith",
  "EndsWith",
  "DoesNotEndWith",
  "Contains",
  "DoesNotContain",
  "In",
  "NotIn",
  "Between",
  "NotBetween",
  "Null",
  "NotNull",
  "On",
  "NotOn",
  "OnOrAfter",
  "OnOrBefore",
  "ContainValues",
  "DoesNotContainValues",
] as const;
export type Operator = (typeof OPERATORS)[number];

/** FetchXML operator names → the operators above. */
export const FETCH_OPERATORS: Readonly<Record<string, Operator>> = {
  eq: "Equal",
  ne: "NotEqual",
  neq: "NotEqual",
  gt: "GreaterThan",
  ge: "GreaterEqual",
  lt: "LessThan",
  le: "LessEqual",
  like: "Like",
  "not-like": "NotLike",
  "begins-with": "BeginsWith",
  "not-begin-with": "DoesNotBeginWith",
  "ends-with": "EndsWith",
  "not-end-with": "DoesNotEndWith",
  in: "In",
  "not-in": "NotIn",
  between: "Between",
  "not-between": "NotBetween",
  null: "Null",
  "not-null": "NotNull",
  on: "On",
  "not-on": "NotOn",
  "on-or-after": "OnOrAfter",
  "on-or-before": "OnOrBefore",
  "contain-values": "ContainValues",
  "not-contain-values": "DoesNotContainValues",
};

export type AggregateFunction = "count" | "countcolumn" | "sum" | "avg" | "min" | "max";
export const AGGREGATE_FUNCTIONS: readonly AggregateFunction[] = ["count", "countcolumn", "sum", "avg", "min", "max"];

export type DateGrouping = "day" | "week" | "month" | "quarter" | "year";
export const DATE_GROUPINGS: readonly DateGrouping[] = ["day", "week", "month", "quarter", "year"];

/** One requested column. `alias` and the aggregate fields come from FetchXML only. */
export interface ColumnItem {
  name: string;
  /** The key the value comes back under (FetchXML `alias`), or null for the default key. */
  alias: string | null;
  aggregate: AggregateFunction | null;
  groupBy: boolean;
  dateGrouping: DateGrouping | null;
  /** count(DISTINCT …) and friends. */
  distinct: boolean;
}

export interface ColumnsModel {
  all: boolean;
  items: ColumnItem[];
}

export interface ConditionModel {
  attribute: string;
  operator: Operator;
  /** The caller's values, untouched: strings, numbers, booleans, Dates, SDK values, null. */
  values: unknown[];
  /** A link-entity alias (or the main table's name) the attribute belongs to, or null for the enclosing table. */
  entityName: string | null;
  /** Where the condition came from, for messages: "criteria.conditions[0]". */
  where: string;
}

export interface FilterModel {
  type: "and" | "or";
  conditions: ConditionModel[];
  filters: FilterModel[];
}

export interface OrderModel {
  /** The column to order on, or null when ordering on an aggregate alias. */
  attribute: string | null;
  /** A link-entity alias the column belongs to; in aggregate queries, the alias of an output column. */
  alias: string | null;
  descending: boolean;
  where: string;
}

export interface LinkModel {
  /** The linked table. */
  entity: string;
  /** The column of the parent table the link starts from. */
  fromAttribute: string;
  /** The column of the linked table it matches. */
  toAttribute: string;
  alias: string | null;
  join: "inner" | "outer";
  columns: ColumnsModel;
  criteria: FilterModel | null;
  links: LinkModel[];
  orders: OrderModel[];
  where: string;
}

export interface PageModel {
  size: number;
  /** 1-based. */
  number: number;
  cookie: string | null;
  returnTotalRecordCount: boolean;
}

export interface QueryModel {
  entity: string;
  columns: ColumnsModel;
  criteria: FilterModel | null;
  links: LinkModel[];
  orders: OrderModel[];
  distinct: boolean;
  /** topCount / `top`: at most this many rows, no paging. */
  top: number | null;
  page: PageModel;
  aggregate: boolean;
}

// Errors ///////////////////////////////////////////////////////////////////////////////////////

export function invalid(message: string): OrganizationError {
  return new OrganizationError("ORG_INVALID_ARGUMENT", message);
}

export function unsupported(message: string): OrganizationError {
  return new OrganizationError("ORG_UNSUPPORTED", message);
}

export function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (value === undefined) return "undefined";
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text.length > 80 ? `${text.slice(0, 80)}…` : text;
  } catch {
    return String(value);
  }
}

/** Checks a table, column or alias name. */
export function readName(value: unknown, what: string): string {
  if (typeof value !== "string" || !NAME_PATTERN.test(value)) {
    throw invalid(`${what} must be a name of letters, digits and _ (not starting with a digit), got ${show(value)}`);
  }
  return value;
}

export function emptyColumns(): ColumnsModel {
  return { all: false, items: [] };
}

export function column(name: string): ColumnItem {
  return { name, alias: null, aggregate: null, groupBy: false, dateGrouping: null, distinct: false };
}
