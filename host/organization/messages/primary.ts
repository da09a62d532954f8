/** The primary entity and record of a request, from its parameters (what its journal and its steps' contexts name). */
import { EMPTY_GUID } from "../../../sdk/model.js";
import { isGuid } from "../../ids.js";

export interface PrimaryRecord {
  entity: string | null;
  id: string | null;
}

const FETCH_ENTITY = /<entity\s+name=["']([A-Za-z0-9_]+)["']/;

function reference(value: unknown): PrimaryRecord | null {
  if (typeof value !== "object" || value === null) return null;
  const v = value as { logicalName?: unknown; id?: unknown };
  if (typeof v.logicalName !== "string") return null;
  return { entity: v.logicalName, id: isGuid(v.id) && v.id !== EMPTY_GUID ? v.id.toLowerCase() : null };
}

/** Target's or EntityMoniker's record; a RetrieveMultiple's queried table. */
export function primaryRecord(message: string, p: Record<string, unknown>): PrimaryRecord {
  const found = reference(p.Target) ?? reference(p.EntityMoniker);
  if (found) return found;
  if (message === "RetrieveMultiple" && typeof p.Query === "object" && p.Query !== null) {
    const q = p.Query as { entityName?: unknown; query?: unknown };
    if (typeof q.entityName === "string") return { entity: q.entityName, id: null };
    if (typeof q.query === "string") return { entity: FETCH_ENTITY.exec(q.query)?.[1] ?? null, id: null };
  }
  return { entity: null, id: null };
}
