/**
 * The base of every error plugbox raises: a stable `code`, `details` (facts for callers and `--json`
 * output, never secrets) and `cause`. Each area declares its codes in an `ErrorTable` in the
 * `errors.ts` beside the code that raises them; the CLI maps every code to an exit status.
 *
 * `instanceof` is realm-safe: it reads a brand and the error's code, never the prototype chain, so an
 * error made by another copy of plugbox (another vitest module graph, a bundled copy, another realm)
 * is still a `PlugboxError`, and an instance of each class whose `codes` hold its code.
 *
 * This module is the lowest floor that raises coded errors (`sdk/wire`), so the runtime and the host
 * import it downward. It uses no Node.js API.
 */

const BRAND = Symbol.for("plugbox.error");

/**
 * What kind of failure a code is:
 * `usage` the caller's input or command was wrong; `plugin` the plug-in failed (or a service it
 * called refused it); `limit` a limit was reached; `isolation` a sandbox rule was broken;
 * `internal` a defect in plugbox; `environment` the machine could not serve the request (a store busy,
 * full or damaged, workers unable to start, a service out of reach): nothing the caller sent was at
 * fault, and the same call may succeed later or after a repair.
 */
export type ErrorFamily = "usage" | "plugin" | "limit" | "isolation" | "internal" | "environment";

/** One code of an area: its family and what it means, in a sentence a person can act on. */
export interface ErrorCodeInfo {
  readonly family: ErrorFamily;
  readonly means: string;
}

/** One area's codes. Declare it `as const satisfies ErrorTable` so its keys form the area's code type. */
export type ErrorTable = Readonly<Record<string, ErrorCodeInfo>>;

export interface PlugboxErrorOptions {
  cause?: unknown;
  details?: Record<string, unknown>;
}

/** An object carrying the plugbox brand: an error made by any copy of plugbox. */
function isBranded(value: unknown): value is { code: unknown } {
  return typeof value === "object" && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
}

export class PlugboxError<Code extends string = string> extends Error {
  /** The codes whose errors are instances of this class; every code for `PlugboxError` itself. */
  static readonly codes: ReadonlySet<string> | undefined = undefined;
  readonly code: Code;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: Code, message: string, options?: PlugboxErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
    this.name = `${new.target.name} [${code}]`;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (!isBranded(value) || typeof value.code !== "string") return false;
    return this.codes === undefined || this.codes.has(value.code);
  }
}
Object.defineProperty(PlugboxError.prototype, BRAND, { value: true });

/** The codes of error tables, for a class's `static codes`. */
export function codesOf(...tables: ErrorTable[]): ReadonlySet<string> {
  return new Set(tables.flatMap((table) => Object.keys(table)));
}

/** Whether `value` is an error of any copy of plugbox, with `code` when one is given. */
export function isPlugboxError<Code extends string = string>(value: unknown, code?: Code): value is PlugboxError<Code> {
  return isBranded(value) && typeof value.code === "string" && (code === undefined || value.code === code);
}

/** The family of `code` in the first of `tables` that declares it; undefined when none does. */
export function familyIn(code: string, ...tables: ErrorTable[]): ErrorFamily | undefined {
  for (const table of tables) if (Object.prototype.hasOwnProperty.call(table, code)) return table[code]!.family;
  return undefined;
}
