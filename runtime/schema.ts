/**
 * The one style of options schema for every config surface (runtime options and limits, the web
 * policy, `HostOptions`, the manifest, service endpoints, the broker's Config.json): valibot
 * schemas whose messages say the rule and the fix, and `parseOptions`, which turns the first issue
 * into the caller's typed error with the JSON path of the value (`steps[2].stage`).
 * valibot was chosen by measurement: bench/options.ts weighs it against the hand checks it replaced
 * where it runs per execution (an execution's own limits) and what it adds to a process's start.
 * Not for the isolate shim nor the SDK, which stay free of it.
 */
import * as v from "valibot";

export { v };

export type PathItem = string | number;

/** `root` then each key: `.name` for a key, `[2]` for an index; `root` alone when the path is empty. */
export function formatPath(root: string, items: readonly PathItem[]): string {
  let out = root;
  for (const item of items) out += typeof item === "number" ? `[${item}]` : out === "" ? item : `.${item}`;
  return out;
}

type Walkable = { entries?: Record<string, Walkable>; item?: Walkable; value?: Walkable; wrapped?: Walkable; pipe?: Walkable[]; options?: Walkable[] };

/** The schema at `path` inside `schema`, through objects, arrays, records, wrappers and the first option of a union that has the key. */
function schemaAt(schema: Walkable | undefined, path: readonly PathItem[]): Walkable | undefined {
  let at = schema;
  for (const key of path) {
    while (at?.pipe || at?.wrapped) at = at.pipe ? ([...at.pipe].reverse().find((item) => item.entries ?? item.item ?? item.value ?? item.options) ?? at.pipe[0]) : at.wrapped;
    if (at?.options) at = at.options.find((option) => typeof key === "string" && option.entries?.[key]);
    at = typeof key === "number" ? at?.item : (at?.entries?.[key] ?? at?.value);
  }
  return at;
}

/** What an issue is about: a key of a record rather than its value (`atKey`), or a key no schema declares. */
export interface IssueAt {
  atKey: boolean;
  unknownKey: boolean;
}

/**
 * Validates `input`; the first issue is thrown as `fail(path, message, at)`. A required key that is missing gets the
 * message its own schema gives for no value ("must be a non-empty string").
 */
export function parseOptions<S extends v.GenericSchema>(schema: S, input: unknown, fail: (path: PathItem[], message: string, at: IssueAt) => Error): v.InferOutput<S> {
  const result = v.safeParse(schema, input, { abortEarly: true, abortPipeEarly: true });
  if (result.success) return result.output;
  const issue = result.issues[0];
  const items = issue.path ?? [];
  const path = items.map((item) => (typeof item.key === "number" ? item.key : String(item.key)));
  let message = issue.message;
  const missingKey = issue.received === "undefined" && issue.expected?.startsWith('"') === true && /object$/.test(issue.type);
  if (missingKey) {
    const entry = schemaAt(schema as Walkable, path);
    message = entry ? (v.safeParse(entry as v.GenericSchema, undefined).issues?.[0]?.message ?? "is required") : "is required";
  }
  const unknownKey = issue.type === "strict_object" && issue.expected === "never";
  throw fail(path, message, { atKey: items.at(-1)?.origin === "key" && !unknownKey && !missingKey, unknownKey });
}

/** `base` with every value `given` defines, frozen. */
export function withDefaults<T extends object>(base: T, given: { [K in keyof T]?: T[K] | undefined }): Readonly<T> {
  const out = { ...base };
  for (const key of Object.keys(given) as Array<keyof T>) if (given[key] !== undefined) out[key] = given[key] as T[keyof T];
  return Object.freeze(out);
}

/** The value an issue was about, as a reader would type it. */
export function shown(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

/** An integer within [min, max]; the message names the range and the value given. */
export function integer(min: number, max: number, rule = `must be an integer from ${min} to ${max}`) {
  const message = (issue: v.BaseIssue<unknown>) => `${rule}; got ${shown(issue.input)}`;
  return v.pipe(v.number(message), v.integer(message), v.minValue(min, message), v.maxValue(max, message));
}

export function flag(rule = "must be true or false") {
  return v.boolean((issue) => `${rule}; got ${shown(issue.input)}`);
}

/** An object of known keys only: a key not in `entries` is refused naming the keys there are. */
export function strictOptions<E extends v.ObjectEntries>(entries: E, noun = "is not an option; known options are") {
  const known = Object.keys(entries).join(", ");
  return v.strictObject(entries, (issue) => (issue.expected === "never" ? `${noun} ${known}` : "must be an object"));
}

/**
 * One whole-number option, declared once: its range, its unit, its default and what it is. The
 * schema (`integerEntries`), the frozen defaults (`defaultsOf`) and the CLI flag of the option
 * (host/cli/flags.ts) all read it.
 */
export interface IntegerOption {
  readonly min: number;
  readonly max: number;
  /** What the number counts, as a flag's help says it: "ms", "MB", "bytes", "calls", "jobs". */
  readonly unit: string;
  readonly default: number;
  /** What the option is, in a few words (a flag's help line). */
  readonly description: string;
}

export type OptionTable<K extends string = string> = Readonly<Record<K, IntegerOption>>;

const mapTable = <K extends string, T>(table: OptionTable<K>, fn: (entry: IntegerOption) => T): Record<K, T> =>
  Object.fromEntries(Object.entries<IntegerOption>(table).map(([key, entry]) => [key, fn(entry)])) as Record<K, T>;

/** The table, frozen to the last entry. */
export function optionTable<K extends string>(table: Record<K, IntegerOption>): OptionTable<K> {
  return Object.freeze(mapTable(table, (entry) => Object.freeze({ ...entry })));
}

export function defaultsOf<K extends string>(table: OptionTable<K>): Readonly<Record<K, number>> {
  return Object.freeze(mapTable(table, (entry) => entry.default));
}

export function rangesOf<K extends string>(table: OptionTable<K>): Readonly<Record<K, readonly [min: number, max: number]>> {
  return Object.freeze(mapTable(table, (entry) => Object.freeze([entry.min, entry.max] as const)));
}

/** The rule of an entry, unless a table says it otherwise: "must be an integer from 8 to 4096". */
export type RangeRule = (min: number, max: number) => string;

/** The schema of one entry: an integer within its range. */
export function integerEntry(entry: IntegerOption, rule?: RangeRule) {
  return integer(entry.min, entry.max, rule?.(entry.min, entry.max));
}

/** Each entry as an optional schema entry, for `strictOptions`. */
export function integerEntries<K extends string>(table: OptionTable<K>, rule?: RangeRule): Record<K, v.OptionalSchema<ReturnType<typeof integer>, undefined>> {
  return mapTable(table, (entry) => v.optional(integerEntry(entry, rule)));
}
