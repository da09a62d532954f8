/**
 * The query model → one parameterized SELECT over `records`.
 *
 * The main table is `t0`; each link entity is a self-join `lN` (depth first, in query order) whose
 * ON clause matches the comparable value of its column with the parent's, plus its link criteria.
 * A column's comparable value ("key") is the record id for the primary id column, a lookup's id,
 * an OptionSetValue's or Money's value, a DateTime's ISO string, or the stored scalar itself.
 *
 *   SELECT q.* [, count(*) OVER () AS __total]
 *   FROM (SELECT [DISTINCT] <columns>, <order keys> FROM records AS t0 [JOIN records AS l1 ON …]
 *         WHERE t0.entity = @p0 AND <criteria> [GROUP BY …]) AS q
 *   ORDER BY <order keys>, <tie-breakers> LIMIT @limit OFFSET @offset
 *
 * Only checked names (NAME_PATTERN) are written into the SQL text, in JSON paths; every value,
 * table name included, is a named parameter.
 */
import type { SchemaLookup, TableSchema } from "../../store/table-schema.js";
import { toLiteral, type Literal } from "./literal.js";
import {
  invalid,
  NAME_PATTERN,
  show,
  type AggregateFunction,
  type ColumnsModel,
  type ConditionModel,
  type DateGrouping,
  type FilterModel,
  type LinkModel,
  type OrderModel,
  type PageModel,
  type QueryModel,
} from "./model.js";
import { SYSTEM_COLUMN_TYPES } from "../system-columns.js";

/** Columns the platform maintains on every table; a table schema need not declare them. */
export const SYSTEM_COLUMNS: ReadonlySet<string> = new Set(Object.keys(SYSTEM_COLUMN_TYPES));

/** How one column of a result row becomes attributes of an Entity. */
export type Output =
  /** The main record's id. */
  | { kind: "id"; column: string }
  /** A whole attributes object (all columns), each key prefixed (`alias.` for link entities). */
  | { kind: "all"; column: string; prefix: string }
  /** One column as plugbox JSON text. */
  | { kind: "json"; column: string; key: string }
  /** An aggregate; `tagColumn` holds the $type of the aggregated values (Money, DateTime). */
  | { kind: "aggregate"; column: string; key: string; fn: AggregateFunction; tagColumn: string | null }
  /** A group-by value: plugbox JSON text when `json`, else a number (date grouping). */
  | { kind: "group"; column: string; key: string; json: boolean };

type OutputWithoutColumn = Output extends infer O ? (O extends Output ? Omit<O, "column"> : never) : never;

export interface CompiledQuery {
  entity: string;
  primaryIdAttribute: string;
  /** The SELECT without ordering and paging (what a total count counts). */
  inner: string;
  /** The whole statement; binds `params` plus @limit and @offset. */
  sql: string;
  params: Record<string, unknown>;
  outputs: Output[];
  aggregate: boolean;
  distinct: boolean;
  top: number | null;
  page: PageModel;
  /** The statement returns the number of matching rows in a `__total` column. */
  withTotal: boolean;
}

interface Scope {
  /** The table alias in the SQL: t0, l1, l2, … */
  sql: string;
  entity: string;
  /** The alias a query uses for it: the entity alias of a link, the table name of the main table. */
  alias: string;
  schema: TableSchema | undefined;
  primaryId: string;
  index: number;
  columns: ColumnsModel;
  orders: OrderModel[];
}

interface ColumnRef {
  scope: Scope;
  name: string;
  isId: boolean;
}

const COMPARISONS = {
  Equal: "=",
  NotEqual: "<>",
  GreaterThan: ">",
  GreaterEqual: ">=",
  LessThan: "<",
  LessEqual: "<=",
} as const;

const hasOwn = (object: object, key: string) => Object.prototype.hasOwnProperty.call(object, key);

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
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

class Compiler {
  readonly params: Record<string, unknown> = {};
  readonly #schemaFor: SchemaLookup | undefined;
  readonly #model: QueryModel;
  readonly #scopes: Scope[] = [];
  readonly #aliases = new Map<string, Scope>();
  readonly #links = new Map<LinkModel, Scope>();
  #next = 0;

  constructor(model: QueryModel, schemaFor: SchemaLookup | undefined) {
    this.#model = model;
    this.#schemaFor = schemaFor;
    this.#scopes.push(this.#scope(model.entity, model.entity, 0, model.columns, model.orders));
    this.#register(model.links);
  }

  get main(): Scope {
    return this.#scopes[0]!;
  }

  #scope(entity: string, alias: string, index: number, columns: ColumnsModel, orders: OrderModel[]): Scope {
    const schema = this.#schemaFor?.(entity);
    return { sql: index === 0 ? "t0" : `l${index}`, entity, alias, schema, primaryId: schema?.primaryIdAttribute ?? `${entity}id`, index, columns, orders };
  }

  /** Gives every link entity its scope, depth first, so that any condition can name any alias. */
  #register(links: LinkModel[]): void {
    for (const link of links) {
      const index = this.#scopes.length;
      const alias = link.alias ?? `${link.entity}${index}`;
      if (this.#aliases.has(alias)) throw invalid(`${link.where}: the alias ${alias} is used by two link entities; give each its own entityAlias`);
      const scope = this.#scope(link.entity, alias, index, link.columns, link.orders);
      this.#scopes.push(scope);
      this.#aliases.set(alias, scope);
      this.#links.set(link, scope);
      this.#register(link.links);
    }
  }

  param(value: unknown): string {
    if (value === null || value === undefined) return "NULL";
    const name = `p${this.#next++}`;
    this.params[name] = typeof value === "boolean" ? (value ? 1 : 0) : value;
    return `@${name}`;
  }

  #resolve(entityName: string | null, fallback: Scope, where: string, maxIndex = Number.POSITIVE_INFINITY): Scope {
    if (entityName === null) return fallback;
    const scope = this.#aliases.get(entityName) ?? (entityName === this.main.entity ? this.main : undefined);
    if (!scope) {
      const known = [...this.#aliases.keys()];
      throw invalid(`${where}: ${entityName} is not the alias of a link entity in this query (${known.length > 0 ? `aliases: ${known.join(", ")}` : "it has no link entities"})`);
    }
    if (scope.index > maxIndex) throw invalid(`${where}: a link entity's criteria can name only that link entity and those joined before it, not ${entityName}`);
    return scope;
  }

  /** A column of a table, checked against the table's schema when one is declared. */
  #column(scope: Scope, name: string, where: string): ColumnRef {
    if (!NAME_PATTERN.test(name)) throw invalid(`${where}: ${show(name)} is not a column name`);
    const isId = name === scope.primaryId;
    if (scope.schema && !isId && !hasOwn(scope.schema.columns, name) && !SYSTEM_COLUMNS.has(name)) {
      throw invalid(`${scope.entity} has no column ${name} (${where}); declare it in the manifest under tables.${scope.entity}.columns`);
    }
    return { scope, name, isId };
  }

  /** The comparable value of a column (see the module comment). */
  #key(ref: ColumnRef): string {
    const { sql } = ref.scope;
    if (ref.isId) return `${sql}.id`;
    const path = `'$.${ref.name}`;
    return `coalesce(${sql}.attributes ->> ${path}.id', ${sql}.attributes ->> ${path}.value', ${sql}.attributes ->> ${path}')`;
  }

  /** The `$type` of a column's stored value (NULL for plain JSON values). */
  #tag(ref: ColumnRef): string {
    return ref.isId ? "NULL" : `(${ref.scope.sql}.attributes ->> '$.${ref.name}."$type"')`;
  }

  /** The stored value as plugbox JSON text (NULL when the record has no such column). */
  #json(ref: ColumnRef): string {
    return ref.isId ? `json_quote(${ref.scope.sql}.id)` : `(${ref.scope.sql}.attributes -> '$.${ref.name}')`;
  }

  /** `column <op> literal`, comparing as the stored value's kind: number, DateTime or text (case-insensitive). */
  #compare(ref: ColumnRef, op: string, literal: Literal): string {
    const key = this.#key(ref);
    if (ref.isId) return `${key} ${op} ${this.param(literal.text?.toLowerCase() ?? null)}`;
    return (
      `(CASE WHEN typeof(${key}) IN ('integer', 'real') THEN ${key} ${op} ${this.param(literal.num)}` +
      ` WHEN ${this.#tag(ref)} = 'DateTime' THEN ${key} ${op} ${this.param(literal.iso)}` +
      ` ELSE ${key} ${op} ${this.param(literal.text)} COLLATE NOCASE END)`
    );
  }

  /** `column IN (literals)`, each list a JSON array parameter. */
  #member(ref: ColumnRef, literals: Literal[]): string {
    const key = this.#key(ref);
    const list = (values: Array<string | number | null>) => `(SELECT value FROM json_each(${this.param(JSON.stringify(values.filter((v) => v !== null)))}))`;
    if (ref.isId) return `(CASE WHEN ${key} IS NULL THEN NULL ELSE ${key} IN ${list(literals.map((l) => l.text?.toLowerCase() ?? null))} END)`;
    return (
      `(CASE WHEN ${key} IS NULL THEN NULL` +
      ` WHEN typeof(${key}) IN ('integer', 'real') THEN ${key} IN ${list(literals.map((l) => l.num))}` +
      ` WHEN ${this.#tag(ref)} = 'DateTime' THEN ${key} IN ${list(literals.map((l) => l.iso))}` +
      ` ELSE ${key} COLLATE NOCASE IN ${list(literals.map((l) => l.text))} END)`
    );
  }

  #condition(condition: ConditionModel, fallback: Scope, maxIndex: number): string {
    const { operator, values, where } = condition;
    const scope = this.#resolve(condition.entityName, fallback, where, maxIndex);
    const ref = this.#column(scope, condition.attribute, where);
    const key = this.#key(ref);
    const count = (n: number) => {
      if (values.length !== n) throw invalid(`${where}: ${operator} on ${condition.attribute} takes ${n === 1 ? "one value" : `${n} values`}, got ${values.length}`);
    };
    const literal = (value: unknown): Literal => {
      const lit = toLiteral(value, where);
      if (lit === null) throw invalid(`${where}: ${operator} on ${condition.attribute} cannot compare with null; use Null or NotNull`);
      return lit;
    };
    const text = (lit: Literal): string => lit.text ?? (lit.num !== null ? String(lit.num) : lit.iso ?? "");
    const day = (lit: Literal): string => {
      if (lit.iso === null) throw invalid(`${where}: ${operator} on ${condition.attribute} needs a date such as 2024-01-31, got ${show(values[0])}`);
      return lit.iso.slice(0, 10);
    };
    switch (operator) {
      case "Null":
        return `${key} IS NULL`;
      case "NotNull":
        return `${key} IS NOT NULL`;
      case "Equal":
      case "NotEqual":
      case "GreaterThan":
      case "GreaterEqual":
      case "LessThan":
      case "LessEqual": {
        count(1);
        const lit = toLiteral(values[0], where);
        if (lit === null) {
          if (operator === "Equal") return `${key} IS NULL`;
          if (operator === "NotEqual") return `${key} IS NOT NULL`;
          throw invalid(`${where}: ${operator} on ${condition.attribute} cannot compare with null; use Null or NotNull`);
        }
        return this.#compare(ref, COMPARISONS[operator], lit);
      }
      case "Between":
      case "NotBetween": {
        count(2);
        const range = `(${this.#compare(ref, ">=", literal(values[0]))} AND ${this.#compare(ref, "<=", literal(values[1]))})`;
        return operator === "Between" ? range : `NOT ${range}`;
      }
      case "In":
      case "NotIn": {
        if (values.length === 0) throw invalid(`${where}: ${operator} on ${condition.attribute} needs at least one value`);
        const inList = this.#member(ref, values.map(literal));
        return operator === "In" ? inList : `NOT ${inList}`;
      }
      case "Like":
      case "NotLike":
        count(1);
        return `${key} ${operator === "NotLike" ? "NOT LIKE" : "LIKE"} ${this.param(text(literal(values[0])))}`;
      case "BeginsWith":
      case "DoesNotBeginWith":
      case "EndsWith":
      case "DoesNotEndWith":
      case "Contains":
      case "DoesNotContain": {
        count(1);
        const escaped = escapeLike(text(literal(values[0])));
        const pattern = operator.endsWith("BeginWith") || operator === "BeginsWith" ? `${escaped}%` : operator.endsWith("EndWith") || operator === "EndsWith" ? `%${escaped}` : `%${escaped}%`;
        const not = operator.startsWith("DoesNot") ? "NOT LIKE" : "LIKE";
        return `${key} ${not} ${this.param(pattern)} ESCAPE '\\'`;
      }
      case "On":
      case "NotOn":
      case "OnOrAfter":
      case "OnOrBefore": {
        count(1);
        const op = operator === "On" ? "=" : operator === "NotOn" ? "<>" : operator === "OnOrAfter" ? ">=" : "<=";
        return `(typeof(${key}) = 'text' AND substr(${key}, 1, 10) ${op} ${this.param(day(literal(values[0])))})`;
      }
      case "ContainValues":
      case "DoesNotContainValues": {
        if (values.length === 0) throw invalid(`${where}: ${operator} on ${condition.attribute} needs at least one value`);
        const numbers = values.map((v) => {
          const lit = literal(v);
          if (lit.num === null) throw invalid(`${where}: ${operator} on ${condition.attribute} takes option values (numbers), got ${show(v)}`);
          return lit.num;
        });
        if (ref.isId) throw invalid(`${where}: ${operator} needs a multi-select choice column, not the id`);
        const exists = `EXISTS (SELECT 1 FROM json_each(${scope.sql}.attributes, '$.${ref.name}.values') WHERE value IN (SELECT value FROM json_each(${this.param(JSON.stringify(numbers))})))`;
        return operator === "ContainValues" ? exists : `(${key} IS NOT NULL AND NOT ${exists})`;
      }
    }
  }

  #filter(filter: FilterModel | null, fallback: Scope, maxIndex = Number.POSITIVE_INFINITY): string | null {
    if (!filter) return null;
    const parts: string[] = [];
    for (const condition of filter.conditions) parts.push(this.#condition(condition, fallback, maxIndex));
    for (const nested of filter.filters) {
      const part = this.#filter(nested, fallback, maxIndex);
      if (part !== null) parts.push(part);
    }
    if (parts.length === 0) return null;
    if (parts.length === 1) return parts[0]!;
    return `(${parts.map((p) => `(${p})`).join(filter.type === "or" ? " OR " : " AND ")})`;
  }

  #joins(links: LinkModel[], parent: Scope): string {
    let sql = "";
    for (const link of links) {
      const scope = this.#links.get(link)!;
      const to = this.#column(scope, link.toAttribute, `${link.where} (the column of ${link.entity} it links to)`);
      const from = this.#column(parent, link.fromAttribute, `${link.where} (the column of ${parent.entity} it links from)`);
      const on = [`${scope.sql}.entity = ${this.param(link.entity)}`, `${this.#key(to)} = ${this.#key(from)}`];
      const criteria = this.#filter(link.criteria, scope, scope.index);
      if (criteria !== null) on.push(criteria);
      sql += ` ${link.join === "outer" ? "LEFT JOIN" : "JOIN"} records AS ${scope.sql} ON ${on.join(" AND ")}`;
      sql += this.#joins(link.links, scope);
    }
    return sql;
  }

  compile(): CompiledQuery {
    const model = this.#model;
    const main = this.main;
    const joins = this.#joins(model.links, main);
    const where = [`t0.entity = ${this.param(model.entity)}`];
    const criteria = this.#filter(model.criteria, main);
    if (criteria !== null) where.push(criteria);

    const selects: string[] = [];
    const outputs: Output[] = [];
    const orderBy: string[] = [];
    const groupBy: string[] = [];
    let columnIndex = 0;
    const add = (expression: string, output: OutputWithoutColumn): string => {
      const column = `c${columnIndex++}`;
      selects.push(`${expression} AS ${column}`);
      outputs.push({ ...output, column } as Output);
      return column;
    };
    const keyFor = (scope: Scope, name: string, alias: string | null) => alias ?? (scope === main ? name : `${scope.alias}.${name}`);

    if (model.aggregate) {
      /** Output key → the column to order on for it. */
      const orderColumns = new Map<string, string>();
      /** `scope index:column name` → the group column, for orders that name a group-by column. */
      const groupColumns = new Map<string, string>();
      for (const scope of this.#scopes) {
        const where = scope === main ? "<entity>" : `link entity ${scope.alias}`;
        if (scope.columns.all) throw invalid(`${where}: all columns cannot be requested in an aggregate query; list the attributes with aggregate or groupby`);
        for (const item of scope.columns.items) {
          const ref = this.#column(scope, item.name, `${where} attribute ${item.name}`);
          const key = this.#key(ref);
          if (item.aggregate !== null) {
            if (item.alias === null) throw invalid(`${where}: the aggregate attribute ${item.name} needs an alias`);
            if (item.groupBy) throw invalid(`${where}: attribute ${item.name} cannot be both an aggregate and a groupby`);
            const distinct = item.distinct ? "DISTINCT " : "";
            let expression: string;
            let tagColumn: string | null = null;
            if (item.aggregate === "count") expression = item.distinct ? `count(DISTINCT ${key})` : "count(*)";
            else if (item.aggregate === "countcolumn") expression = `count(${distinct}${key})`;
            else {
              expression = `${item.aggregate}(${distinct}${key})`;
              tagColumn = `__tag${columnIndex}`;
              selects.push(`max(${this.#tag(ref)}) AS ${tagColumn}`);
            }
            const column = add(expression, { kind: "aggregate", key: item.alias, fn: item.aggregate, tagColumn });
            orderColumns.set(item.alias, column);
          } else if (item.groupBy) {
            const group = item.dateGrouping ? dateGroupExpression(key, item.dateGrouping) : key;
            const groupColumn = `g${groupBy.length}`;
            // Text groups as Dataverse's case-insensitive collation does: "Seattle" and "seattle" are one group.
            groupBy.push(item.dateGrouping ? group : `${group} COLLATE NOCASE`);
            selects.push(`${group} AS ${groupColumn}`);
            const outputKey = keyFor(scope, item.name, item.alias);
            if (item.dateGrouping) outputs.push({ kind: "group", column: groupColumn, key: outputKey, json: false });
            else add(`min(${this.#json(ref)})`, { kind: "group", key: outputKey, json: true });
            orderColumns.set(outputKey, groupColumn);
            groupColumns.set(`${scope.index}:${item.name}`, groupColumn);
          } else if (item.dateGrouping) {
            throw invalid(`${where}: attribute ${item.name} has a dategrouping but no groupby="true"`);
          } else {
            throw invalid(`${where}: in an aggregate query every attribute needs aggregate="…" or groupby="true"; ${item.name} has neither`);
          }
        }
      }
      for (const scope of this.#scopes) {
        for (const order of scope.orders) {
          let column = order.alias !== null ? orderColumns.get(order.alias) : undefined;
          if (column === undefined && order.attribute !== null) {
            const target = order.alias !== null && this.#aliases.has(order.alias) ? this.#aliases.get(order.alias)! : scope;
            column = groupColumns.get(`${target.index}:${order.attribute}`);
          }
          if (column === undefined) throw invalid(`${order.where}: in an aggregate query, order by the alias of an aggregate or groupby attribute`);
          orderBy.push(`q.${column} COLLATE NOCASE ${order.descending ? "DESC" : "ASC"}`);
        }
      }
      for (let i = 0; i < groupBy.length; i++) orderBy.push(`q.g${i}`);
    } else {
      if (!model.distinct) {
        selects.push("t0.id AS __id");
        outputs.push({ kind: "id", column: "__id" });
      }
      for (const scope of this.#scopes) {
        const where = scope === main ? "columns" : `columns of link entity ${scope.alias}`;
        if (scope.columns.all) add(`${scope.sql}.attributes`, { kind: "all", prefix: scope === main ? "" : `${scope.alias}.` });
        for (const item of scope.columns.items) {
          if (item.aggregate !== null || item.groupBy || item.dateGrouping !== null) {
            throw invalid(`${where}: attribute ${item.name} has an aggregate, groupby or dategrouping, which needs <fetch aggregate="true">`);
          }
          add(this.#json(this.#column(scope, item.name, where)), { kind: "json", key: keyFor(scope, item.name, item.alias) });
        }
      }
      let orderIndex = 0;
      for (const scope of this.#scopes) {
        for (const order of scope.orders) {
          if (order.attribute === null) throw invalid(`${order.where}: an order needs the column to order on (attributeName)`);
          const target = this.#resolve(order.alias, scope, order.where);
          const column = `o${orderIndex++}`;
          selects.push(`${this.#key(this.#column(target, order.attribute, order.where))} AS ${column}`);
          orderBy.push(`q.${column} COLLATE NOCASE ${order.descending ? "DESC" : "ASC"}`);
        }
      }
      if (model.distinct) {
        for (const output of outputs) orderBy.push(`q.${output.column}`);
      } else {
        orderBy.push("q.__id");
        for (const scope of this.#scopes.slice(1)) {
          selects.push(`${scope.sql}.id AS __k${scope.index}`);
          orderBy.push(`q.__k${scope.index}`);
        }
      }
    }

    const distinct = model.distinct && !model.aggregate;
    const inner =
      `SELECT ${distinct ? "DISTINCT " : ""}${selects.length > 0 ? selects.join(", ") : "1 AS __one"} FROM records AS t0${joins}` +
      ` WHERE ${where.join(" AND ")}${groupBy.length > 0 ? ` GROUP BY ${groupBy.join(", ")}` : ""}`;
    const withTotal = model.page.returnTotalRecordCount && model.top === null;
    const sql =
      `SELECT q.*${withTotal ? ", count(*) OVER () AS __total" : ""} FROM (${inner}) AS q` +
      `${orderBy.length > 0 ? ` ORDER BY ${orderBy.join(", ")}` : ""} LIMIT @limit OFFSET @offset`;
    return {
      entity: model.entity,
      primaryIdAttribute: main.primaryId,
      inner,
      sql,
      params: this.params,
      outputs,
      aggregate: model.aggregate,
      distinct,
      top: model.top,
      page: model.page,
      withTotal,
    };
  }
}

/** Compiles a normalized query; `schemaFor` supplies the table schemas columns are checked against. */
export function compileQuery(model: QueryModel, schemaFor?: SchemaLookup): CompiledQuery {
  return new Compiler(model, schemaFor).compile();
}
