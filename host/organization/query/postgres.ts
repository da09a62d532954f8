/**
 * The PostgreSQL dialect of the query compiler (see dialect.ts), over `records.attributes json`,
 * written to give SQLite's results row for row:
 *
 * - Each column a statement uses is read once per row, in a LATERAL item after its table fenced
 *   with OFFSET 0 (`t0_1.j` the stored value, `.k` its key, `.t` its `$type`), since every `->` on
 *   a `json` value parses the record's text again.
 * - A key is a number (numbers, and booleans as 1/0, as SQLite's `->>` reads them), text (strings,
 *   and objects and arrays as their JSON text) or NULL (no column, or JSON null). Numbers compare
 *   numerically, text case-insensitively as NOCASE does (`lower()` under the "C" collation folds
 *   ASCII only), DateTime values by their ISO text, byte by byte.
 * - Nothing casts a stored value without checking its JSON type first, so no record can make a
 *   statement fail: a number with an exponent too large for `numeric` is read as ±1e309 (or 0), and
 *   a record holding \u0000 (which PostgreSQL's text cannot hold) is read with \ufffd in its place.
 * - The SQL's literals (`'\u0000'`, regular expressions) assume standard_conforming_strings = on,
 *   PostgreSQL's default.
 * - Sorts put NULLs first, then numbers, then text, as SQLite does, with explicit NULLS FIRST/LAST.
 * - Results come back with SQLite's JavaScript types: numbers as float8, JSON as text.
 */
import type { AggregateFunction, DateGrouping } from "./model.js";
import type { AggregateSql, ColumnSql, Comparison, Dialect, GroupSql, Param, Sorted } from "./dialect.js";
import type { Literal } from "./literal.js";
import { HUGE_EXPONENT, hasNul, NUL, readable, STAND_IN } from "../../store/postgres/sql.js";

const TEXT_TYPES = `('string', 'object', 'array')`;
const NUMBER_TYPES = `('number', 'boolean')`;

/** The stored JSON value of a column (SQL NULL when the record has none). */
const stored = (c: ColumnSql) => `(${readable(c.table)} -> '${c.name}')`;

/** A JSON value's text: a string unquoted, anything else as JSON. */
const safeText = (j: string) => `((${j}) #>> '{}')`;

/** A JSON number's text as numeric, never failing: `numeric` takes exponents up to about ±16000. */
const safeNumeric = (t: string) => `(CASE WHEN ${t} ~ ${HUGE_EXPONENT} THEN (CASE WHEN ${t} ~ '[eE]-' THEN 0 WHEN ${t} ~ '^-' THEN -1e309 ELSE 1e309 END) ELSE (${t})::numeric END)`;

/** A key's number (numbers, booleans as 1 and 0), else NULL. */
const numOf = (k: string) => `(CASE json_typeof(${k}) WHEN 'number' THEN ${safeNumeric(`(${k})::text`)} WHEN 'boolean' THEN (CASE WHEN (${k})::text = 'true' THEN 1 ELSE 0 END) END)`;

/** A key's text (strings, objects and arrays), else NULL. */
const textOf = (k: string) => `(CASE WHEN json_typeof(${k}) IN ${TEXT_TYPES} THEN ${safeText(k)} END)`;

/** What SQLite's sum and avg add for a key: a number, or the number text starts with (0 if none). */
const addendOf = (k: string) => {
  const prefix = `coalesce(substring(${textOf(k)} from '^\\s*([+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?)'), '0')`;
  return `(CASE WHEN json_typeof(${k}) IN ${TEXT_TYPES} THEN ${safeNumeric(prefix)} ELSE ${numOf(k)} END)`;
};

/** A key as SQLite turns any value into text (booleans are 1 and 0), for LIKE and for equality with an id. */
const anyTextOf = (k: string) => `(CASE json_typeof(${k}) WHEN 'boolean' THEN (CASE WHEN (${k})::text = 'true' THEN '1' ELSE '0' END) WHEN 'number' THEN (${k})::text ELSE ${safeText(k)} END)`;

/** A numeric as float8, never failing: beyond float8's range it is ±Infinity or 0, as SQLite's doubles are. */
const toFloat = (x: string) =>
  `(CASE WHEN abs(${x}) > 1.7976931348623157e308 THEN sign(${x})::float8 * 'Infinity'::float8 WHEN abs(${x}) < 1e-320 THEN 0::float8 ELSE (${x})::float8 END)`;

const lower = (t: string) => `lower((${t}) COLLATE "C")`;

/** The item of a FROM list that reads a column once per row: `alias.j` stored, `alias.k` its key, `alias.t` its `$type`. */
function lateral(c: ColumnSql, alias: string): string {
  const j = "w.j";
  const present = (x: string) => `json_typeof(${x}) <> 'null'`;
  // The key: the lookup's id, the value of an OptionSetValue, Money or DateTime, or the stored value itself.
  const k = `CASE WHEN ${present(`${j} -> 'id'`)} THEN ${j} -> 'id' WHEN ${present(`${j} -> 'value'`)} THEN ${j} -> 'value' WHEN ${present(j)} THEN ${j} END`;
  return ` CROSS JOIN LATERAL (SELECT ${j}, ${k}, ${j} -> '$type' FROM (SELECT ${stored(c)} OFFSET 0) AS w(j) OFFSET 0) AS ${alias}(j, k, t)`;
}

/** Where the reads of a table's columns go in the FROM list, once the statement is compiled. */
const MARK = "\u0001";

const direction = (descending: boolean) => (descending ? "DESC NULLS LAST" : "ASC NULLS FIRST");

/**
 * SQLite's order of a value held as a number column `n` and a text column `t` of the result (at most
 * one of them set, unless `textWins` says the text counts when both are): NULL, numbers, text.
 */
function sortTerms(n: string, t: string, descending: boolean, textWins = false): string[] {
  const dir = descending ? "DESC" : "ASC";
  const [qn, qt] = [`q.${n}`, `q.${t}`];
  if (textWins) {
    return [`(CASE WHEN ${qt} IS NOT NULL THEN 2 WHEN ${qn} IS NOT NULL THEN 1 ELSE 0 END) ${dir}`, `(CASE WHEN ${qt} IS NULL THEN ${qn} END) ${dir}`, `${lower(qt)} ${dir}`];
  }
  return [`(CASE WHEN ${qn} IS NOT NULL THEN 1 WHEN ${qt} IS NOT NULL THEN 2 ELSE 0 END) ${dir}`, `${qn} ${dir}`, `${lower(`CASE WHEN ${qn} IS NULL THEN ${qt} END`)} ${dir}`];
}

// Date grouping: SQLite's strftime reads YYYY-MM-DD[[T ]HH:MM[:SS[.fff]][Z|±HH:MM]] and normalizes
// (2023-02-30 is 2 March, 24:00 the next day, an offset is taken off); anything else groups as NULL.
const DATE = String.raw`^(\d{4})-(\d{2})-(\d{2})(?:[\sT]*|[\sT]*(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(?:(?:[Zz]|([+-])(\d{2}):(\d{2}))\s*)?)$`;

const STORED_DATE = String.raw`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$`;

function dateGroup(t: string, grouping: DateGrouping): string {
  const m = (i: number) => `r.m[${i}]::int`;
  const z = (i: number) => `coalesce(${m(i)}, 0)`;
  const valid = `r.m IS NOT NULL AND ${m(1)} >= 1 AND ${m(2)} BETWEEN 1 AND 12 AND ${m(3)} BETWEEN 1 AND 31 AND ${z(4)} <= 24 AND ${z(5)} <= 59 AND ${z(6)} <= 59 AND ${z(8)} <= 14 AND ${z(9)} <= 59`;
  const sign = `(CASE r.m[7] WHEN '-' THEN -1 ELSE 1 END)`;
  const ts = `(make_date(${m(1)}, ${m(2)}, 1)::timestamp + make_interval(days => ${m(3)} - 1, hours => ${z(4)} - ${sign} * ${z(8)}, mins => ${z(5)} - ${sign} * ${z(9)}))`;
  const part = (field: string, of = ts) => `EXTRACT(${field} FROM ${of})::int`;
  const value = {
    year: part("YEAR"),
    quarter: `((${part("MONTH")} + 2) / 3)`,
    month: part("MONTH"),
    day: part("DAY"),
    // As SQLite's week: ((day of year - 1 + weekday of 1 January) / 7 + 1), weeks starting on Sunday.
    week: `((${part("DOY")} - 1 + ${part("DOW", `date_trunc('year', ${ts})`)}) / 7 + 1)`,
  }[grouping];
  // The store's own form (2024-01-31T09:00:00.000Z) is cut apart without regexp_match, which is slow.
  const cut = `ARRAY[substr(x.t, 1, 4), substr(x.t, 6, 2), substr(x.t, 9, 2), substr(x.t, 12, 2), substr(x.t, 15, 2), substr(x.t, 18, 2), NULL, NULL, NULL]`;
  const parts = `CASE WHEN x.t ~ '${STORED_DATE}' THEN ${cut} ELSE regexp_match(x.t, '${DATE}') END`;
  return `(SELECT CASE WHEN ${valid} THEN ${value} END FROM (SELECT ${parts} FROM (SELECT ${t} OFFSET 0) AS x(t) OFFSET 0) AS r(m))`;
}

/**
 * The PostgreSQL dialect for one statement: every column a statement reads is read once per row,
 * in a LATERAL item after its table (`t0_1`, `l1_2`, …), and the rest of the statement refers to it.
 */
export class PostgresDialect implements Dialect {
  readonly engine = "postgres";
  readonly total = "(count(*) OVER ())::float8";
  /** `table.column` → the alias of its read; table → its reads. */
  readonly #reads = new Map<string, string>();
  readonly #laterals = new Map<string, string[]>();

  /** The read of a column (registered on first use): `.j`, `.k` and `.t`. */
  #read(c: ColumnSql): string {
    const key = `${c.table}.${c.name}`;
    let alias = this.#reads.get(key);
    if (alias === undefined) {
      const items = this.#laterals.get(c.table) ?? [];
      alias = `${c.table}_${items.length + 1}`;
      items.push(lateral(c, alias));
      this.#laterals.set(c.table, items);
      this.#reads.set(key, alias);
    }
    return alias;
  }

  #num(c: ColumnSql): string {
    return c.isId ? "NULL::numeric" : numOf(`${this.#read(c)}.k`);
  }

  #text(c: ColumnSql): string {
    return c.isId ? `${c.table}.id` : textOf(`${this.#read(c)}.k`);
  }

  #present(c: ColumnSql): string {
    return c.isId ? `${c.table}.id IS NOT NULL` : `${this.#read(c)}.k IS NOT NULL`;
  }

  table(alias: string, main: boolean): string {
    return `${MARK}${main ? "main" : "join"} ${alias}${MARK}`;
  }

  /** Writes each table's FROM item: the table and the reads of its columns (a joined one in parentheses). */
  finish(sql: string): string {
    return sql.replace(new RegExp(`${MARK}(main|join) (\\w+)${MARK}`, "g"), (_, kind: string, table: string) => {
      const reads = this.#laterals.get(table) ?? [];
      const item = `records AS ${table}${reads.join("")}`;
      return kind === "join" && reads.length > 0 ? `(${item})` : item;
    });
  }

  isNull(c: ColumnSql): string {
    return c.isId ? `${c.table}.id IS NULL` : `${this.#read(c)}.k IS NULL`;
  }

  compare(c: ColumnSql, op: Comparison, literal: Literal, param: Param): string {
    if (c.isId) return `${c.table}.id COLLATE "C" ${op} ${param(literal.text?.toLowerCase() ?? null)}::text`;
    const r = this.#read(c);
    return (
      `(CASE WHEN json_typeof(${r}.k) IN ${NUMBER_TYPES} THEN ${numOf(`${r}.k`)} ${op} ${param(literal.num)}::numeric` +
      ` WHEN (${r}.t)::text = '"DateTime"' THEN ${textOf(`${r}.k`)} COLLATE "C" ${op} ${param(literal.iso)}::text` +
      ` ELSE ${lower(textOf(`${r}.k`))} ${op} ${lower(`${param(literal.text)}::text`)} END)`
    );
  }

  member(c: ColumnSql, literals: Literal[], param: Param): string {
    const list = (values: Array<string | number | null>) => `${param(JSON.stringify(values.filter((v) => v !== null)))}::json`;
    if (c.isId) return `(${c.table}.id IN (SELECT json_array_elements_text(${list(literals.map((l) => l.text?.toLowerCase() ?? null))})))`;
    const r = this.#read(c);
    return (
      `(CASE WHEN ${r}.k IS NULL THEN NULL` +
      ` WHEN json_typeof(${r}.k) IN ${NUMBER_TYPES} THEN ${numOf(`${r}.k`)} IN (SELECT value::numeric FROM json_array_elements_text(${list(literals.map((l) => l.num))}))` +
      ` WHEN (${r}.t)::text = '"DateTime"' THEN ${textOf(`${r}.k`)} IN (SELECT json_array_elements_text(${list(literals.map((l) => l.iso))}))` +
      ` ELSE ${lower(textOf(`${r}.k`))} IN (SELECT ${lower("value")} FROM json_array_elements_text(${list(literals.map((l) => l.text))})) END)`
    );
  }

  like(c: ColumnSql, negate: boolean, pattern: string, escaped: boolean): string {
    const subject = c.isId ? `${c.table}.id` : anyTextOf(`${this.#read(c)}.k`);
    return `(${lower(subject)} ${negate ? "NOT LIKE" : "LIKE"} ${lower(`${pattern}::text`)} ESCAPE '${escaped ? "\\" : ""}')`;
  }

  onDate(c: ColumnSql, op: Comparison, day: string): string {
    return `coalesce(substr(${this.#text(c)}, 1, 10) COLLATE "C" ${op} ${day}::text, false)`;
  }

  containsAny(c: ColumnSql, numbers: string): string {
    const values = `(${this.#read(c)}.j -> 'values')`;
    const elements = `CASE json_typeof(${values}) WHEN 'array' THEN ${values} WHEN 'object' THEN (SELECT json_agg(o.value) FROM json_each(${values}) AS o) WHEN 'null' THEN NULL ELSE json_build_array(${values}) END`;
    return `EXISTS (SELECT 1 FROM json_array_elements(${elements}) AS e(v) WHERE ${numOf("e.v")} IN (SELECT value::numeric FROM json_array_elements_text(${numbers}::json)))`;
  }

  joinOn(to: ColumnSql, from: ColumnSql): string {
    if (to.isId && from.isId) return `${to.table}.id = ${from.table}.id`;
    // SQLite compares a value with the id column as text.
    if (to.isId || from.isId) {
      const [id, other] = to.isId ? [to, from] : [from, to];
      return `${id.table}.id = ${anyTextOf(`${this.#read(other)}.k`)}`;
    }
    const [a, b] = [`${this.#read(to)}.k`, `${this.#read(from)}.k`];
    return `coalesce(${numOf(a)} = ${numOf(b)}, ${textOf(a)} = ${textOf(b)})`;
  }

  // As stored: a record holding \u0000 is read with \ufffd in its place (see `readable`), and given back with \u0000.
  json(c: ColumnSql): string {
    if (c.isId) return `to_json(${c.table}.id)::text`;
    const j = `${this.#read(c)}.j::text`;
    return `(CASE WHEN ${hasNul(c.table)} THEN replace(${j}, ${STAND_IN}, ${NUL}) ELSE ${j} END)`;
  }

  attributes(table: string): string {
    return `${table}.attributes::text`;
  }

  orderKey(c: ColumnSql, name: string): Sorted {
    return { selects: [`${this.#num(c)} AS ${name}`, `${this.#text(c)} AS ${name}t`], order: (descending) => sortTerms(name, `${name}t`, descending) };
  }

  tieBreaker(name: string): string {
    return `q.${name} COLLATE "C" ASC NULLS FIRST`;
  }

  aggregate(fn: AggregateFunction, c: ColumnSql, distinct: boolean, name: string): AggregateSql {
    const d = distinct ? "DISTINCT " : "";
    const single = (expression: string): AggregateSql => ({
      selects: [`${expression} AS ${name}`],
      textColumn: null,
      order: (descending) => [`q.${name} ${direction(descending)}`],
    });
    // What SQLite counts: non-NULL values; with DISTINCT, distinct numbers plus distinct texts (byte for byte).
    const counted = distinct ? `(count(DISTINCT ${this.#num(c)}) + count(DISTINCT ${this.#text(c)}))` : `count(CASE WHEN ${this.#present(c)} THEN 1 END)`;
    // SQLite adds text as the number it starts with, or 0.
    const sum = `coalesce(sum(${d}${addendOf(c.isId ? `to_json(${c.table}.id)` : `${this.#read(c)}.k`)}), 0)`;
    switch (fn) {
      case "count":
        return single(`${distinct ? counted : "count(*)"}::float8`);
      case "countcolumn":
        return single(`${counted}::float8`);
      case "sum":
        return single(`(CASE WHEN ${counted} > 0 THEN ${toFloat(sum)} END)`);
      case "avg":
        return single(`(${toFloat(sum)} / NULLIF(${counted}, 0)::float8)`);
      case "min":
      case "max": {
        const textColumn = `${name}t`;
        return {
          selects: [`${toFloat(`${fn}(${this.#num(c)})`)} AS ${name}`, `${fn}(${this.#text(c)} COLLATE "C") AS ${textColumn}`],
          textColumn,
          // SQLite's min is a number when there is one, its max text when there is any.
          order: (descending) => sortTerms(name, textColumn, descending, fn === "max"),
        };
      }
    }
  }

  maxTag(c: ColumnSql): string {
    return c.isId ? "max(NULL::text)" : `max(${safeText(`${this.#read(c)}.t`)} COLLATE "C")`;
  }

  group(c: ColumnSql, grouping: DateGrouping | null, name: string): GroupSql {
    if (grouping) {
      const expression = dateGroup(this.#text(c), grouping);
      return { selects: [`${expression} AS ${name}`], groupBy: [expression], order: (descending) => [`q.${name} ${direction(descending)}`] };
    }
    // Text groups case-insensitively, as SQLite's GROUP BY … COLLATE NOCASE does.
    const parts = [this.#num(c), lower(this.#text(c))];
    return { selects: [`${parts[0]} AS ${name}`, `${parts[1]} AS ${name}t`], groupBy: parts, order: (descending) => sortTerms(name, `${name}t`, descending) };
  }

  groupJson(c: ColumnSql): string {
    return `min(${this.json(c)} COLLATE "C")`;
  }
}

// Statements for the PostgreSQL store ///////////////////////////////////////////////////////////
