/**
 * RetrieveMultiple over the store: QueryExpression, QueryByAttribute and FetchExpression (FetchXML),
 * as SDK instances, decoded values or plain objects of the same shapes.
 *
 * Every form is normalized into one query model (model.ts), compiled to one parameterized SELECT
 * over `records` in the store's dialect (compile.ts: SQLite's, or PostgreSQL's from postgres.ts,
 * which gives the same rows), run by the store, and the rows mapped back to Entities:
 * attributes decoded from plugbox JSON, columns of link entities under `alias.column` (the value
 * of Dataverse's AliasedValue), aggregates under their aliases. As in Dataverse, a column whose
 * value is null is left out of the Entity.
 */
import { decode } from "../../../sdk/codec.js";
import { EMPTY_GUID, Entity, EntityCollection, type Attributes } from "../../../sdk/model.js";
import type { DataStore } from "../../store/engine.js";
import { StoreError } from "../../store/store.js";
import type { SchemaLookup } from "../../store/table-schema.js";
import { compileQuery } from "./compile.js";
import type { CompiledQuery, Output } from "./compiled.js";
import { fromFetchXml } from "./fetchxml.js";
import { invalid, type QueryModel } from "./model.js";
import { fromQueryByAttribute, fromQueryExpression, queryKind } from "./normalize.js";

export { compileQuery, SYSTEM_COLUMNS, type CompiledQuery, type Output } from "./compile.js";
export type { Engine } from "./dialect.js";
export { fromFetchXml } from "./fetchxml.js";
export { FETCH_OPERATORS, OPERATORS, DEFAULT_PAGE_SIZE, type Operator, type QueryModel } from "./model.js";
export { queryKind, type QueryKind } from "./normalize.js";

export interface RetrieveMultipleOptions {
  /** The declared schema of a table, if any: columns a query names must be in it. */
  schemaFor?: SchemaLookup;
}

/** Any accepted query form → the query model. */
export function normalizeQuery(query: unknown): QueryModel {
  switch (queryKind(query)) {
    case "FetchExpression":
      return fromFetchXml(typeof query === "string" ? query : (query as { query?: unknown }).query);
    case "QueryByAttribute":
      return fromQueryByAttribute(query as Record<string, unknown>);
    case "QueryExpression":
      return fromQueryExpression(query as Record<string, unknown>);
  }
}

/** What a query runs on: the store's engine (its SQL dialect) and its query method. */
export type QueryStore = Pick<DataStore, "engine" | "selectRows">;

/** Runs a query against the store's database and returns the matching records. */
export async function retrieveMultiple(store: QueryStore, query: unknown, options: RetrieveMultipleOptions = {}): Promise<EntityCollection> {
  return runQuery(store, compileQuery(normalizeQuery(query), options.schemaFor, store.engine));
}

// Paging cookies ////////////////////////////////////////////////////////////////////////////////

const COOKIE = /^\s*<cookie page="(\d+)" plugbox-offset="(\d+)"\s*\/>\s*$/;

/** The cookie handed out with a page: which page it was and where the next one starts. */
export function pagingCookie(page: number, nextOffset: number): string {
  return `<cookie page="${page}" plugbox-offset="${nextOffset}" />`;
}

/** Where a page starts: after the previous page's cookie when given one, else at (page - 1) × size. */
function pageOffset(compiled: CompiledQuery): number {
  const { cookie, number, size } = compiled.page;
  const m = cookie === null ? null : COOKIE.exec(cookie);
  if (m && Number(m[1]) === number - 1) return Number(m[2]);
  return (number - 1) * size;
}

// Running ////////////////////////////////////////////////////////////////////////////////////////

/** The engine refusing a statement for its size is the query's fault; anything else is ours. */
function tooLarge(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  const sqlite = /too many SQL variables|too many terms|Expression tree is too large|parser stack overflow|string or blob too big|too many FROM clause terms/i;
  const postgres = /stack depth limit exceeded|number of parameters must be between|too many range table entries|target lists can have at most/i;
  if (sqlite.test(message) || postgres.test(message)) {
    throw invalid(`the query is too large to run (${message}); use fewer values or conditions`);
  }
  throw error;
}

type Row = Record<string, unknown>;

async function all(store: QueryStore, sql: string, params: Record<string, unknown>): Promise<Row[]> {
  try {
    return await store.selectRows(sql, params);
  } catch (error) {
    return tooLarge(error);
  }
}

function decodeStored(text: unknown, what: string): unknown {
  if (text === null || text === undefined) return null;
  try {
    return decode(String(text));
  } catch (error) {
    throw new StoreError("STORE_CORRUPT_VALUE", `${what} cannot be read back: ${(error as Error).message}`);
  }
}

function aggregateValue(output: Extract<Output, { kind: "aggregate" }>, row: Row): unknown {
  // A min or max in two columns (number, text): SQLite's min is the number when there is one, its max the text.
  const text = output.textColumn === null ? null : row[output.textColumn];
  const number = row[output.column];
  const value = output.fn === "max" ? (text ?? number) : (number ?? text);
  if (value === null || value === undefined) return null;
  if (output.fn === "count" || output.fn === "countcolumn") return value;
  const tag = output.tagColumn === null ? null : row[output.tagColumn];
  if (tag === "Money" && typeof value === "number") return decode(JSON.stringify({ $type: "Money", value }));
  if (tag === "DateTime" && typeof value === "string" && (output.fn === "min" || output.fn === "max")) return decodeStored(JSON.stringify({ $type: "DateTime", value }), output.key);
  return value;
}

function toEntity(compiled: CompiledQuery, row: Row): Entity {
  const attributes: Attributes = {};
  let id: string | null = null;
  const set = (key: string, value: unknown) => {
    if (value !== null && value !== undefined) attributes[key] = value as Attributes[string];
  };
  for (const output of compiled.outputs) {
    const raw = row[output.column];
    switch (output.kind) {
      case "id":
        id = typeof raw === "string" ? raw : null;
        break;
      case "all": {
        const values = decodeStored(raw, `a ${compiled.entity} record's attributes`);
        if (values !== null && typeof values === "object") {
          for (const [key, value] of Object.entries(values as Record<string, unknown>)) set(`${output.prefix}${key}`, value);
        }
        break;
      }
      case "json":
        set(output.key, decodeStored(raw, `${compiled.entity}.${output.key}`));
        break;
      case "group":
        set(output.key, output.json ? decodeStored(raw, output.key) : raw);
        break;
      case "aggregate":
        set(output.key, aggregateValue(output, row));
        break;
    }
  }
  if (compiled.aggregate) return new Entity(compiled.entity, EMPTY_GUID, attributes);
  if (id !== null) {
    attributes[compiled.primaryIdAttribute] = id;
  } else {
    // A distinct query returns ids only when it asks for the id column (or all columns).
    const fromColumn = attributes[compiled.primaryIdAttribute];
    id = typeof fromColumn === "string" ? fromColumn : EMPTY_GUID;
  }
  return new Entity(compiled.entity, id, attributes);
}

/** Runs a compiled query (compiled for the store's engine). */
export async function runQuery(store: QueryStore, compiled: CompiledQuery): Promise<EntityCollection> {
  if (compiled.engine !== store.engine) throw new Error(`a query compiled for ${compiled.engine} cannot run on ${store.engine}`);
  const paged = compiled.top === null;
  const offset = paged ? pageOffset(compiled) : 0;
  const limit = paged ? compiled.page.size + 1 : compiled.top!;
  let rows = await all(store, compiled.sql, { ...compiled.params, limit, offset });
  const moreRecords = paged && rows.length > compiled.page.size;
  if (moreRecords) rows = rows.slice(0, compiled.page.size);
  const collection = new EntityCollection(
    rows.map((row) => toEntity(compiled, row)),
    compiled.entity,
  );
  collection.moreRecords = moreRecords;
  collection.pagingCookie = paged && rows.length > 0 ? pagingCookie(compiled.page.number, offset + rows.length) : null;
  if (compiled.withTotal) {
    if (rows.length > 0) collection.totalRecordCount = Number(rows[0]!.__total);
    else if (offset === 0) collection.totalRecordCount = 0;
    // A page past the end has no row to carry the count: count on its own.
    else collection.totalRecordCount = Number((await all(store, compiled.countSql, compiled.params))[0]!.n);
  }
  return collection;
}
