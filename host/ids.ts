/** One injectable clock (runtime/clock.ts) and id source, so tests and replays are deterministic. */
import { randomUUID } from "node:crypto";

export { systemClock, type Clock, type ClockTimer } from "../runtime/clock.js";

export interface IdSource {
  newId(): string;
}

export const randomIds: IdSource = Object.freeze({ newId: () => randomUUID() });

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isGuid(value: unknown): value is string {
  return typeof value === "string" && GUID.test(value);
}

/** Ids counted from a seed, for tests: 00000000-0000-4000-8000-000000000001, …02, … */
export function sequentialIds(start = 1): IdSource {
  let next = start;
  return { newId: () => `00000000-0000-4000-8000-${(next++).toString(16).padStart(12, "0")}` };
}
