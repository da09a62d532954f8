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
 * table name included, is a named parameter. What reads, compares, orders, groups and aggregates
 * keys is the dialect's (dialect.ts for SQLite, postgres.ts for PostgreSQL); the statement's shape
 * and its parameters are the same for both.
 */
import type { SchemaLookup, TableSchema } from "../../store/table-schema.js";
import type { CompiledQuery, Output } from "./compiled.js";
import { COMPARISONS, sqliteDialect, type ColumnSql, type Dialect, type Engine, type Sorted } from "./dialect.js";
import { toLiteral, type Literal } from "./literal.js";
import { PostgresDialect } from "./postgres.js";
import {
  invalid,
  NAME_PATTERN,
  show,
  type ColumnsModel,
  type ConditionModel,
  type FilterModel,
  type LinkModel,
  type OrderModel,
  type QueryModel,
} from "./model.js";
import { SYSTEM_COLUMN_TYPES } from "../system-columns.js";

/** Columns the platform maintains on every table; a table schema need not declare them. */
export const SYSTEM_COLUMNS: ReadonlySet<string> = new Set(Object.keys(SYSTEM_COLUMN_TYPES));

export type { CompiledQuery, Output } from "./compiled.js";

type OutputWithoutColumn = Output extends infer O ? (O extends Output ? Omit<O, "column"> : never) : never;

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

interface ColumnRef extends ColumnSql {
  scope: Scope;
}

const hasOwn = (object: object, key: string) => Object.prototype.hasOwnProperty.call(object, key);

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

class Compiler {
  readonly params: Record<string, unknown> = {};
  readonly #schemaFor: SchemaLookup | undefined;
  readonly #model: QueryModel;
  readonly #dialect: Dialect;
  readonly #scopes: Scope[] = [];
  readonly #aliases = new Map<string, Scope>();
  readonly #links = new Map<LinkModel, Scope>();
  #next = 0;

  constructor(model: QueryModel, schemaFor: SchemaLookup | undefined, dialect: Dialect) {
    this.#model = model;
    this.#dialect = dialect;
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

  readonly param = (value: unknown): string => {
    if (value === null || value === undefined) return "NULL";
    const name = `p${this.#next++}`;
    this.params[name] = typeof value === "boolean" ? (value ? 1 : 0) : value;
    return `@${name}`;
  };

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
    return { scope, table: scope.sql, name, isId };
  }

  #condition(condition: ConditionModel, fallback: Scope, maxIndex: number): string {
    const { operator, values, where } = condition;
    const scope = this.#resolve(condition.entityName, fallback, where, maxIndex);
    const ref = this.#column(scope, condition.attribute, where);
    const dialect = this.#dialect;
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
        return dialect.isNull(ref);
      case "NotNull":
        return `NOT (${dialect.isNull(ref)})`;
      case "Equal":
      case "NotEqual":
      case "GreaterThan":
      case "GreaterEqual":
      case "LessThan":
      case "LessEqual": {
        count(1);
        const lit = toLiteral(values[0], where);
        if (lit === null) {
          if (operator === "Equal") return dialect.isNull(ref);
          if (operator === "NotEqual") return `NOT (${dialect.isNull(ref)})`;
          throw invalid(`${where}: ${operator} on ${condition.attribute} cannot compare with null; use Null or NotNull`);
        }
        return dialect.compare(ref, COMPARISONS[operator], lit, this.param);
      }
      case "Between":
      case "NotBetween": {
        count(2);
        const range = `(${dialect.compare(ref, ">=", literal(values[0]), this.param)} AND ${dialect.compare(ref, "<=", literal(values[1]), this.param)})`;
        return operator === "Between" ? range : `NOT ${range}`;
      }
      case "In":
      case "NotIn": {
        if (values.length === 0) throw invalid(`${where}: ${operator} on ${condition.attribute} needs at least one value`);
        const inList = dialect.member(ref, values.map(literal), this.param);
        return operator === "In" ? inList : `NOT ${inList}`;
      }
      case "Like":
      case "NotLike":
        count(1);
        return dialect.like(ref, operator === "NotLike", this.param(text(literal(values[0]))), false);
      case "BeginsWith":
      case "DoesNotBeginWith":
      case "EndsWith":
      case "DoesNotEndWith":
      case "Contains":
      case "DoesNotContain": {
        count(1);
        const escaped = escapeLike(text(literal(values[0])));
        const pattern = operator.endsWith("BeginWith") || operator === "BeginsWith" ? `${escaped}%` : operator.endsWith("EndWith") || operator === "EndsWith" ? `%${escaped}` : `%${escaped}%`;
        return dialect.like(ref, operator.startsWith("DoesNot"), this.param(pattern), true);
      }
      case "On":
      case "NotOn":
      case "OnOrAfter":
      case "OnOrBefore": {
        count(1);
        const op = operator === "On" ? "=" : operator === "NotOn" ? "<>" : operator === "OnOrAfter" ? ">=" : "<=";
        return dialect.onDate(ref, op, this.param(day(literal(values[0]))));
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
        const exists = dialect.containsAny(ref, this.param(JSON.stringify(numbers)));
        return operator === "ContainValues" ? exists : `(NOT (${dialect.isNull(ref)}) AND NOT ${exists})`;
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
      const on = [`${scope.sql}.entity = ${this.param(link.entity)}`, this.#dialect.joinOn(to, from)];
      const criteria = this.#filter(link.criteria, scope, scope.index);
      if (criteria !== null) on.push(criteria);
      sql += ` ${link.join === "outer" ? "LEFT JOIN" : "JOIN"} ${this.#dialect.table(scope.sql, false)} ON ${on.join(" AND ")}`;
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
    const dialect = this.#dialect;
    let columnIndex = 0;
    const add = (expression: string, output: OutputWithoutColumn): string => {
      const column = `c${columnIndex++}`;
      selects.push(`${expression} AS ${column}`);
      outputs.push({ ...output, column } as Output);
      return column;
    };
    const keyFor = (scope: Scope, name: string, alias: string | null) => alias ?? (scope === main ? name : `${scope.alias}.${name}`);

    if (model.aggregate) {
      /** Output key → how to order on it. */
      const orderColumns = new Map<string, Sorted>();
      /** `scope index:column name` → the group, for orders that name a group-by column. */
      const groupColumns = new Map<string, Sorted>();
      const groups: Sorted[] = [];
      for (const scope of this.#scopes) {
        const where = scope === main ? "<entity>" : `link entity ${scope.alias}`;
        if (scope.columns.all) throw invalid(`${where}: all columns cannot be requested in an aggregate query; list the attributes with aggregate or groupby`);
        for (const item of scope.columns.items) {
          const ref = this.#column(scope, item.name, `${where} attribute ${item.name}`);
          if (item.aggregate !== null) {
            if (item.alias === null) throw invalid(`${where}: the aggregate attribute ${item.name} needs an alias`);
            if (item.groupBy) throw invalid(`${where}: attribute ${item.name} cannot be both an aggregate and a groupby`);
            const column = `c${columnIndex++}`;
            let tagColumn: string | null = null;
            if (item.aggregate !== "count" && item.aggregate !== "countcolumn") {
              tagColumn = `__tag${column.slice(1)}`;
              selects.push(`${dialect.maxTag(ref)} AS ${tagColumn}`);
            }
            const aggregate = dialect.aggregate(item.aggregate, ref, item.distinct, column);
            selects.push(...aggregate.selects);
            outputs.push({ kind: "aggregate", column, key: item.alias, fn: item.aggregate, tagColumn, textColumn: aggregate.textColumn });
            orderColumns.set(item.alias, aggregate);
          } else if (item.groupBy) {
            const groupColumn = `g${groups.length}`;
            const group = dialect.group(ref, item.dateGrouping, groupColumn);
            groups.push(group);
            groupBy.push(...group.groupBy);
            selects.push(...group.selects);
            const outputKey = keyFor(scope, item.name, item.alias);
            if (item.dateGrouping) outputs.push({ kind: "group", column: groupColumn, key: outputKey, json: false });
            else add(dialect.groupJson(ref), { kind: "group", key: outputKey, json: true });
            orderColumns.set(outputKey, group);
            groupColumns.set(`${scope.index}:${item.name}`, group);
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
          orderBy.push(...column.order(order.descending));
        }
      }
      for (const group of groups) orderBy.push(...group.order(false));
    } else {
      if (!model.distinct) {
        selects.push("t0.id AS __id");
        outputs.push({ kind: "id", column: "__id" });
      }
      for (const scope of this.#scopes) {
        const where = scope === main ? "columns" : `columns of link entity ${scope.alias}`;
        if (scope.columns.all) add(dialect.attributes(scope.sql), { kind: "all", prefix: scope === main ? "" : `${scope.alias}.` });
        for (const item of scope.columns.items) {
          if (item.aggregate !== null || item.groupBy || item.dateGrouping !== null) {
            throw invalid(`${where}: attribute ${item.name} has an aggregate, groupby or dategrouping, which needs <fetch aggregate="true">`);
          }
          add(dialect.json(this.#column(scope, item.name, where)), { kind: "json", key: keyFor(scope, item.name, item.alias) });
        }
      }
      let orderIndex = 0;
      for (const scope of this.#scopes) {
        for (const order of scope.orders) {
          if (order.attribute === null) throw invalid(`${order.where}: an order needs the column to order on (attributeName)`);
          const target = this.#resolve(order.alias, scope, order.where);
          const key = dialect.orderKey(this.#column(target, order.attribute, order.where), `o${orderIndex++}`);
          selects.push(...key.selects);
          orderBy.push(...key.order(order.descending));
        }
      }
      if (model.distinct) {
        for (const output of outputs) orderBy.push(dialect.tieBreaker(output.column));
      } else {
        orderBy.push(dialect.tieBreaker("__id"));
        for (const scope of this.#scopes.slice(1)) {
          selects.push(`${scope.sql}.id AS __k${scope.index}`);
          orderBy.push(dialect.tieBreaker(`__k${scope.index}`));
        }
      }
    }

    const distinct = model.distinct && !model.aggregate;
    const inner = dialect.finish(
      `SELECT ${distinct ? "DISTINCT " : ""}${selects.length > 0 ? selects.join(", ") : "1 AS __one"} FROM ${dialect.table("t0", true)}${joins}` +
        ` WHERE ${where.join(" AND ")}${groupBy.length > 0 ? ` GROUP BY ${groupBy.join(", ")}` : ""}`,
    );
    const withTotal = model.page.returnTotalRecordCount && model.top === null;
    const sql =
      `SELECT q.*${withTotal ? `, ${dialect.total} AS __total` : ""} FROM (${inner}) AS q` +
      `${orderBy.length > 0 ? ` ORDER BY ${orderBy.join(", ")}` : ""} LIMIT @limit OFFSET @offset`;
    return {
      engine: dialect.engine,
      entity: model.entity,
      primaryIdAttribute: main.primaryId,
      inner,
      countSql: `SELECT count(*) AS n FROM (${inner}) AS q`,
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

/**
 * Compiles a normalized query for an engine's SQL dialect; `schemaFor` supplies the table schemas
 * columns are checked against. The statement and its `params` are the same for both engines but
 * for the SQL text: `@name` placeholders (toPositional turns them into PostgreSQL's `$n`).
 */
export function compileQuery(model: QueryModel, schemaFor?: SchemaLookup, dialect: Engine = "sqlite"): CompiledQuery {
  return new Compiler(model, schemaFor, dialect === "postgres" ? new PostgresDialect() : sqliteDialect).compile();
}
