/**
 * The HTTP status of a failed request, read from its error code's family (the areas' error tables,
 * host/error-areas.ts) so a new code gets a status without a new line here; the
 * code's own name refines it where HTTP has a closer word (a record not found, a duplicate, a body
 * too large, a host closed).
 */
import type { ErrorFamily } from "../../sdk/errors.js";
import { familyIn } from "../../sdk/errors.js";
import { ERROR_AREAS } from "../error-areas.js";

const FAMILY_STATUS: Readonly<Record<ErrorFamily, number>> = {
  usage: 400,
  plugin: 422,
  limit: 422,
  isolation: 422,
  internal: 500,
  environment: 503,
};

const BY_NAME: ReadonlyArray<[RegExp, number]> = [
  [/_NOT_FOUND$/, 404],
  [/_METHOD_NOT_ALLOWED$/, 405],
  [/_DUPLICATE$/, 409],
  [/^INPUT_TOO_LARGE$/, 413],
  [/_UNSUPPORTED_MEDIA_TYPE$/, 415],
  [/_CLOSED$/, 503],
];

const TABLES = ERROR_AREAS.map((area) => area.table);

/** 400 for the caller's input, 404 not found, 409 duplicate, 422 the plug-in failed or hit a limit, 503 busy or closing, 500 anything else. */
export function httpStatusOf(code: string): number {
  const family = familyIn(code, ...TABLES);
  if (family === undefined) return 500;
  // A name rule never turns a defect or an unavailable host into the caller's fault.
  if (family === "internal" || family === "environment") return FAMILY_STATUS[family];
  for (const [pattern, status] of BY_NAME) if (pattern.test(code)) return status;
  return FAMILY_STATUS[family];
}
