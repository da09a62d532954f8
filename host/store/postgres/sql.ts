/**
 * SQL pieces of the PostgreSQL store that the query compiler's PostgreSQL dialect shares
 * (host/organization/query/postgres.ts): `@name` parameters as `$n`, reading a record's attributes
 * whatever they hold, and the alternate-key lookup.
 */

/** The escape \u0000 and what stands in for it, as SQL literals (standard_conforming_strings = on, the default). */
export const NUL = `'\\u0000'`;
export const STAND_IN = `'\\ufffd'`;

/** SQL true when a record's JSON text holds the escape \u0000. */
export const hasNul = (table: string) => `strpos(${table}.attributes::text, ${NUL}) > 0`;

/**
 * A record's attributes, readable: PostgreSQL fails any `->` into a `json` text holding \u0000
 * (its text type cannot hold the character), so such a record is read with \ufffd in its place.
 */
export const readable = (table: string) => `(CASE WHEN ${hasNul(table)} THEN replace(${table}.attributes::text, ${NUL}, ${STAND_IN})::json ELSE ${table}.attributes END)`;

/** A number's exponent that numeric (or jsonb) might refuse: 1000 or more. */
export const HUGE_EXPONENT = `'[eE][+-]?0*[1-9][0-9]{3}'`;

/** A statement with `$1…$n` placeholders and its values, as `pg` takes them. */
export interface PositionalSql {
  text: string;
  values: unknown[];
}

/**
 * `@name` placeholders → `$1…$n` (a name used twice gets one number), outside quoted literals and
 * identifiers. A placeholder without a value in `params` is a bug in the statement: it throws.
 */
export function toPositional(sql: string, params: Record<string, unknown>): PositionalSql {
  const numbers = new Map<string, number>();
  const values: unknown[] = [];
  const text = sql.replace(/'(?:[^']|'')*'|"(?:[^"]|"")*"|@([A-Za-z_][A-Za-z0-9_]*)/g, (match, name: string | undefined) => {
    if (name === undefined) return match;
    let n = numbers.get(name);
    if (n === undefined) {
      if (!Object.prototype.hasOwnProperty.call(params, name)) throw new TypeError(`the statement's placeholder @${name} has no value`);
      values.push(params[name] === undefined ? null : params[name]);
      n = values.length;
      numbers.set(name, n);
    }
    return `$${n}`;
  });
  return { text, values };
}

/**
 * The alternate-key lookup (the SQLite store's findRecordId): the id of a record of `entity` whose
 * columns hold these plugbox JSON values, compared as JSON values (key order and 1.0 = 1 do not
 * matter). A stored or given null matches nothing, as in SQLite.
 */
export function findRecordSql(entity: string, values: Record<string, unknown>): PositionalSql {
  const params: unknown[] = [entity];
  const where = Object.keys(values).map((column) => {
    params.push(column, JSON.stringify(values[column]) ?? "null");
    const [name, value] = [`$${params.length - 1}::text`, `$${params.length}::text`];
    const had = `(${readable("records")} -> ${name})`;
    return (
      ` AND (CASE WHEN json_typeof(${had}) = 'null' OR ${value} = 'null' THEN false` +
      ` WHEN ${had}::text ~ ${HUGE_EXPONENT} OR ${value} ~ ${HUGE_EXPONENT} THEN ${had}::text = ${value}` +
      ` ELSE ${had}::jsonb = replace(${value}, ${NUL}, ${STAND_IN})::jsonb END)`
    );
  });
  return { text: `SELECT id FROM records WHERE entity = $1${where.join("")} LIMIT 1`, values: params };
}
