/**
 * Condition values → what they compare as against each kind of stored value. A stored value is
 * compared as a number (numbers, booleans as 1/0, OptionSetValue and Money by value), as an ISO
 * 8601 string (DateTime) or as text, case-insensitively (strings, and lookups and guids by their
 * lower-case id). A literal carries its form for each of the three, or null where it has none:
 * the string "5" compares with the number 5, "true" and "1" with a stored true, and
 * "2024-01-31" with a DateTime as 2024-01-31T00:00:00.000Z.
 */
import { typeOf } from "../../../sdk/model.js";
import { invalid, show } from "./model.js";

export interface Literal {
  num: number | null;
  iso: string | null;
  text: string | null;
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i;
const BRACED_GUID = /^\{([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\}$/i;

/** An ISO 8601 date or date-time (UTC unless it says otherwise) → the form the store keeps, or null. */
export function isoOf(text: string): string | null {
  const m = DATE.exec(text.trim());
  if (!m) return null;
  const [, y, mo, d, h = "00", mi = "00", s = "00", frac = "0", zone = "Z"] = m;
  const ms = frac.padEnd(3, "0").slice(0, 3);
  const offset = zone.toUpperCase() === "Z" ? "Z" : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone;
  const time = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}.${ms}${offset}`);
  if (!Number.isFinite(time)) return null;
  const date = new Date(time);
  // Date.parse rolls 2024-02-31 over to March; a date that is not on the calendar is not a date.
  if (offset === "Z" && (date.getUTCMonth() + 1 !== Number(mo) || date.getUTCDate() !== Number(d))) return null;
  return date.toISOString();
}

function fromString(value: string): Literal {
  const braced = BRACED_GUID.exec(value.trim());
  const text = braced ? braced[1]! : value;
  const trimmed = text.trim();
  const lower = trimmed.toLowerCase();
  const num = NUMBER.test(trimmed) ? Number(trimmed) : lower === "true" ? 1 : lower === "false" ? 0 : null;
  return { num: num !== null && Number.isFinite(num) ? num : null, iso: isoOf(trimmed), text };
}

function fromDate(value: Date, where: string): Literal {
  const time = Date.prototype.getTime.call(value);
  if (!Number.isFinite(time)) throw invalid(`${where}: the value is an invalid Date`);
  const iso = new Date(time).toISOString();
  return { num: null, iso, text: iso };
}

/** A condition value → its literal, or null for a null value. */
export function toLiteral(value: unknown, where: string): Literal | null {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case "string":
      return fromString(value);
    case "number":
      if (!Number.isFinite(value)) throw invalid(`${where}: ${String(value)} cannot be compared`);
      return { num: value, iso: null, text: String(value) };
    case "boolean":
      return { num: value ? 1 : 0, iso: null, text: null };
    case "object":
      break;
    default:
      throw invalid(`${where}: a ${typeof value} cannot be a condition value`);
  }
  if (Object.prototype.toString.call(value) === "[object Date]") return fromDate(value as Date, where);
  const raw = value as { $type?: unknown; id?: unknown; logicalName?: unknown; value?: unknown };
  const tag = typeOf(value) ?? (typeof raw.$type === "string" ? raw.$type : undefined);
  if (tag === "DateTime") {
    if (typeof raw.value !== "string") throw invalid(`${where}: a DateTime value needs an ISO 8601 string, got ${show(raw.value)}`);
    const iso = isoOf(raw.value);
    if (iso === null) throw invalid(`${where}: ${show(raw.value)} is not an ISO 8601 date`);
    return { num: null, iso, text: iso };
  }
  if (tag === "EntityReference" || (tag === undefined && typeof raw.id === "string" && typeof raw.logicalName === "string")) {
    if (typeof raw.id !== "string") throw invalid(`${where}: an EntityReference value needs an id, got ${show(raw.id)}`);
    return { num: null, iso: null, text: raw.id.replace(BRACED_GUID, "$1").toLowerCase() };
  }
  if (tag === "OptionSetValue" || tag === "Money" || (tag === undefined && typeof raw.value === "number")) {
    if (typeof raw.value !== "number" || !Number.isFinite(raw.value)) throw invalid(`${where}: a ${tag ?? "value"} needs a numeric value, got ${show(raw.value)}`);
    return { num: raw.value, iso: null, text: String(raw.value) };
  }
  throw invalid(`${where}: ${tag ? `a ${tag}` : show(value)} cannot be a condition value; use a string, number, boolean, Date, EntityReference, OptionSetValue or Money`);
}
