/**
 * Durations as people write them ("2d", "1h30m", "500ms"), read by the `ms` package: one part is a
 * number and a unit, and parts in a row add up ("1h30m" is 1h + 30m, which `ms` alone does not read).
 */
import ms from "ms";

/** The forms a duration string may take, as an error message says them. */
export const DURATION_FORMS = 'a number of milliseconds (0 or more) or a string of one or more parts, each a number and a unit (ms, s, m, h, d, w, y): "500ms", "10s", "1.5h", "2d", "1h30m"';

const PART = /\s*(\d*\.?\d+)\s*([a-zA-Z]*)\s*/y;

/** The milliseconds in `value`, or undefined when it is not a duration of 0 or more. */
export function parseDuration(value: number | string): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== "string" || value.trim() === "") return undefined;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < value.length) {
    const match = PART.exec(value);
    if (!match) return undefined;
    const part = ms(`${match[1]}${match[2]}`);
    if (part === undefined || !Number.isFinite(part)) return undefined;
    total += part;
  }
  return total;
}
