/**
 * Compiled queries name their parameters (`@p0`, `@limit`), as SQLite binds them; PostgreSQL numbers
 * them (`$1`). The compiler writes only checked names into SQL text and every value as a parameter,
 * but a parameter's name can still appear inside a quoted literal or identifier, which is skipped.
 */
export function toPositional(sql: string, params: Record<string, unknown>): { text: string; values: unknown[] } {
  const numbers = new Map<string, number>();
  const values: unknown[] = [];
  const text = sql.replace(/'(?:[^']|'')*'|"(?:[^"]|"")*"|@([A-Za-z_][A-Za-z0-9_]*)/g, (match, name: string | undefined) => {
    if (name === undefined) return match;
    if (!(name in params)) throw new Error(`the query names the parameter @${name}, which it was not given`);
    let n = numbers.get(name);
    if (n === undefined) {
      values.push(params[name]);
      numbers.set(name, (n = values.length));
    }
    return `$${n}`;
  });
  return { text, values };
}
