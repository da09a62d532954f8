/**
 * What the query compiler writes differently for each engine: how a column's comparable value
 * ("key", see compile.ts) is read from a record's JSON and compared, ordered, grouped and
 * aggregated. SQLite's dialect is here; PostgreSQL's, which reproduces SQLite's results, is in
 * postgres.ts.
 *
 * SQLite reads the JSON with `->>` (numbers and booleans come back as numbers, strings as text)
 * and compares text with COLLATE NOCASE; a sort puts NULLs first, then numbers, then text.
 */
import type { Literal } from "./literal.js";
import type { AggregateFunction, DateGrouping } from "./model.js";

export type Engine = "sqlite" | "postgres";

/** A column of a table in the SQL: its table alias (t0, l1, …), its name, whether it is the record id. */
export interface ColumnSql {
  table: string;
  name: string;
  isId: boolean;
}

/** Binds a value and returns its placeholder (`@p3`), or `NULL` for null. */
export type Param = (value: unknown) => string;

/** Select-list items (`expr AS name`) and the ORDER BY terms over them (as `q.name`). */
export interface Sorted {
  selects: string[];
  order(descending: boolean): string[];
}

export interface AggregateSql extends Sorted {
  /** A second column holding the text result of min/max when the values are text (PostgreSQL), or null. */
  textColumn: string | null;
}

export interface GroupSql extends Sorted {
  groupBy: string[];
}

/** The comparison operators by the condition operator's name. */
export const COMPARISONS = {
  Equal: "=",
  NotEqual: "<>",
  GreaterThan: ">",
  GreaterEqual: ">=",
  LessThan: "<",
  LessEqual: "<=",
} as const;

export type Comparison = (typeof COMPARISONS)[keyof typeof COMPARISONS];

/** A statement's dialect: a new one for each statement (PostgreSQL's remembers the columns it reads). */
export interface Dialect {
  readonly engine: Engine;
  /** The FROM item of a table of the records (`main` for t0, else a joined one). */
  table(alias: string, main: boolean): string;
  /** The statement as it runs, once every part of it is written. */
  finish(sql: string): string;
  isNull(column: ColumnSql): string;
  /** `column <op> literal`, comparing as the stored value's kind: number, DateTime or text (case-insensitive). */
  compare(column: ColumnSql, op: Comparison, literal: Literal, param: Param): string;
  /** `column IN (literals)`, each list a JSON array parameter. */
  member(column: ColumnSql, literals: Literal[], param: Param): string;
  /** Case-insensitive LIKE with a bound pattern; `escaped` when the pattern escapes % and _ with a backslash. */
  like(column: ColumnSql, negate: boolean, pattern: string, escaped: boolean): string;
  /** The first 10 characters (the date) of a text value against a bound `YYYY-MM-DD`. */
  onDate(column: ColumnSql, op: Comparison, day: string): string;
  /** Whether a multi-select column holds any of a bound JSON array of numbers. */
  containsAny(column: ColumnSql, numbers: string): string;
  /** A link's ON equality of the two keys. */
  joinOn(to: ColumnSql, from: ColumnSql): string;
  /** The stored value as plugbox JSON text (NULL when the record has no such column). */
  json(column: ColumnSql): string;
  /** A table's whole attributes object as JSON text. */
  attributes(table: string): string;
  /** The key selected as `name` (and helper columns) and ordered on. */
  orderKey(column: ColumnSql, name: string): Sorted;
  /** An ascending tie-breaker on a text (or NULL) column of the result. */
  tieBreaker(name: string): string;
  aggregate(fn: AggregateFunction, column: ColumnSql, distinct: boolean, name: string): AggregateSql;
  /** The `$type` of the values, aggregated: what `max` of the tags is. */
  maxTag(column: ColumnSql): string;
  /** A group-by on the key (text case-insensitively) or on a part of its date. */
  group(column: ColumnSql, dateGrouping: DateGrouping | null, name: string): GroupSql;
  /** One JSON value of a (non-date) group. */
  groupJson(column: ColumnSql): string;
  /** The window count of all rows, as a number. */
  readonly total: string;
}

// SQLite /////////////////////////////////////////////////////////////////////////////////////////

function key(c: ColumnSql): string {
  if (c.isId) return `${c.table}.id`;
  const path = `'$.${c.name}`;
  return `coalesce(${c.table}.attributes ->> ${path}.id', ${c.table}.attributes ->> ${path}.value', ${c.table}.attributes ->> ${path}')`;
}

function tag(c: ColumnSql): string {
  return c.isId ? "NULL" : `(${c.table}.attributes ->> '$.${c.name}."$type"')`;
}

function dateGroupExpression(key: string, grouping: DateGrouping): string {
  const part = (format: string, of = key) => `CAST(strftime('${format}', ${of}) AS INTEGER)`;
  switch (grouping) {
    case "year":
      return part("%Y");
    case "quarter":
      return `((${part("%m")} + 2) / 3)`;
    case "month":
      return part("%m");
    case "day":
      return part("%d");
    case "week":
      // Week of the year as Dataverse (SQL Server's DATEPART(week)) counts it: weeks start on Sunday, 1 January is in week 1.
      return `((${part("%j")} - 1 + ${part("%w", `strftime('%Y-01-01', ${key})`)}) / 7 + 1)`;
  }
}

const nocase = (name: string) => (descending: boolean) => [`q.${name} COLLATE NOCASE ${descending ? "DESC" : "ASC"}`];

export const sqliteDialect: Dialect = {
  engine: "sqlite",
  table: (alias) => `records AS ${alias}`,
  finish: (sql) => sql,
  isNull: (c) => `${key(c)} IS NULL`,
  compare(c, op, literal, param) {
    const k = key(c);
    if (c.isId) return `${k} ${op} ${param(literal.text?.toLowerCase() ?? null)}`;
    return (
      `(CASE WHEN typeof(${k}) IN ('integer', 'real') THEN ${k} ${op} ${param(literal.num)}` +
      ` WHEN ${tag(c)} = 'DateTime' THEN ${k} ${op} ${param(literal.iso)}` +
      ` ELSE ${k} ${op} ${param(literal.text)} COLLATE NOCASE END)`
    );
  },
  member(c, literals, param) {
    const k = key(c);
    const list = (values: Array<string | number | null>) => `(SELECT value FROM json_each(${param(JSON.stringify(values.filter((v) => v !== null)))}))`;
    if (c.isId) return `(CASE WHEN ${k} IS NULL THEN NULL ELSE ${k} IN ${list(literals.map((l) => l.text?.toLowerCase() ?? null))} END)`;
    return (
      `(CASE WHEN ${k} IS NULL THEN NULL` +
      ` WHEN typeof(${k}) IN ('integer', 'real') THEN ${k} IN ${list(literals.map((l) => l.num))}` +
      ` WHEN ${tag(c)} = 'DateTime' THEN ${k} IN ${list(literals.map((l) => l.iso))}` +
      ` ELSE ${k} COLLATE NOCASE IN ${list(literals.map((l) => l.text))} END)`
    );
  },
  like: (c, negate, pattern, escaped) => `${key(c)} ${negate ? "NOT LIKE" : "LIKE"} ${pattern}${escaped ? " ESCAPE '\\'" : ""}`,
  onDate: (c, op, day) => `(typeof(${key(c)}) = 'text' AND substr(${key(c)}, 1, 10) ${op} ${day})`,
  containsAny: (c, numbers) => `EXISTS (SELECT 1 FROM json_each(${c.table}.attributes, '$.${c.name}.values') WHERE value IN (SELECT value FROM json_each(${numbers})))`,
  joinOn: (to, from) => `${key(to)} = ${key(from)}`,
  json: (c) => (c.isId ? `json_quote(${c.table}.id)` : `(${c.table}.attributes -> '$.${c.name}')`),
  attributes: (table) => `${table}.attributes`,
  orderKey: (c, name) => ({ selects: [`${key(c)} AS ${name}`], order: nocase(name) }),
  tieBreaker: (name) => `q.${name}`,
  aggregate(fn, c, distinct, name) {
    const k = key(c);
    const d = distinct ? "DISTINCT " : "";
    const expression = fn === "count" ? (distinct ? `count(DISTINCT ${k})` : "count(*)") : fn === "countcolumn" ? `count(${d}${k})` : `${fn}(${d}${k})`;
    return { selects: [`${expression} AS ${name}`], textColumn: null, order: nocase(name) };
  },
  maxTag: (c) => `max(${tag(c)})`,
  group(c, grouping, name) {
    const group = grouping ? dateGroupExpression(key(c), grouping) : key(c);
    // Text groups as Dataverse's case-insensitive collation does: "Seattle" and "seattle" are one group.
    return { selects: [`${group} AS ${name}`], groupBy: [grouping ? group : `${group} COLLATE NOCASE`], order: nocase(name) };
  },
  groupJson: (c) => `min(${sqliteDialect.json(c)})`,
  total: "count(*) OVER ()",
};
