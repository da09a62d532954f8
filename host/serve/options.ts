/** `startServe`'s options: the numbers declared once (range, unit, default), read by the schema and by `plugbox serve`'s flags. */
import { OptionsError } from "../../runtime/errors.js";
import { defaultsOf, formatPath, integerEntries, optionTable, parseOptions, strictOptions, v, withDefaults, type OptionTable } from "../../runtime/schema.js";

export const serveTable = optionTable({
  port: { min: 0, max: 65_535, unit: "port", default: 8080, description: "the port to listen on, 0 for a free one" },
  shutdownGraceMs: { min: 0, max: 3_600_000, unit: "ms", default: 10_000, description: "how long shutdown waits for the requests in flight before it drops their connections" },
}) satisfies OptionTable;

export interface ServeSettings {
  port: number;
  shutdownGraceMs: number;
  /** The address to listen on. */
  hostname: string;
}

export const serveDefaults: Readonly<ServeSettings> = Object.freeze({ ...defaultsOf(serveTable), hostname: "127.0.0.1" });

const serveSchema = strictOptions({
  ...integerEntries(serveTable, (min, max) => `must be a whole number from ${min} to ${max}`),
  hostname: v.optional(v.pipe(v.string("must be a non-empty string"), v.minLength(1, "must be a non-empty string"))),
});

/** Fills in the defaults and checks each option; throws OPTIONS_INVALID naming it and the rule. */
export function resolveServeOptions(options: Partial<ServeSettings> = {}): Readonly<ServeSettings> {
  const given = parseOptions(serveSchema, options, (at, message) => new OptionsError("OPTIONS_INVALID", `${formatPath("", at)} ${message}`));
  return withDefaults<ServeSettings>(serveDefaults, given);
}
