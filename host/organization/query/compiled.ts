/**
 * What the compiler (compile.ts) hands the runner (index.ts): one statement in the store's dialect,
 * its parameters, and how each column of its rows becomes attributes of an Entity.
 */
import type { Engine } from "./dialect.js";
import type { AggregateFunction, PageModel } from "./model.js";

/** How one column of a result row becomes attributes of an Entity. */
export type Output =
  /** The main record's id. */
  | { kind: "id"; column: string }
  /** A whole attributes object (all columns), each key prefixed (`alias.` for link entities). */
  | { kind: "all"; column: string; prefix: string }
  /** One column as plugbox JSON text. */
  | { kind: "json"; column: string; key: string }
  /**
   * An aggregate; `tagColumn` holds the $type of the aggregated values (Money, DateTime); `textColumn`,
   * when set, the text result of a min or max whose `column` holds only its number result.
   */
  | { kind: "aggregate"; column: string; key: string; fn: AggregateFunction; tagColumn: string | null; textColumn: string | null }
  /** A group-by value: plugbox JSON text when `json`, else a number (date grouping). */
  | { kind: "group"; column: string; key: string; json: boolean };

export interface CompiledQuery {
  engine: Engine;
  entity: string;
  primaryIdAttribute: string;
  /** The SELECT without ordering and paging (what a total count counts). */
  inner: string;
  /** Counts the rows of `inner` as `n` (binds `params`). */
  countSql: string;
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
