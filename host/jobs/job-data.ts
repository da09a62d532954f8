/**
 * How a system job keeps its context (the `data` and `post` columns): plugbox JSON of the execution
 * context; or, for a post that waits (a posting step's, an outbox post's), the context serialized
 * for its endpoint as the body, beside a header that says how to read it.
 */
import { decode, isPlainObject, toPlain } from "../../sdk/codec.js";
import { readSerializedContext, type SerializedContext } from "../services/notification.js";
import { JobError } from "./errors.js";

/**
 * How a job keeps a SerializedContext: the body as it is, and a header in plugbox JSON whose `$type`
 * versions of plugbox before it do not know, so that one of them still running on the same store
 * fails such a job (to be retried) rather than post what it cannot read.
 */
const SERIALIZED_HEADER_TYPE = "SerializedContext";

export function serializedHeader(serialized: SerializedContext): string {
  const { format, sizeExceeded, fields, body } = serialized;
  return JSON.stringify({ $type: SERIALIZED_HEADER_TYPE, format, sizeExceeded, length: body.length, fields });
}

/** The SerializedContext a job keeps, checked: a header or body that was damaged throws with what is wrong. */
export function readSerializedHeader(header: string, body: string): SerializedContext {
  let parsed: { $type?: unknown; format?: unknown; sizeExceeded?: unknown; length?: unknown; fields?: unknown };
  try {
    parsed = JSON.parse(header) as typeof parsed;
  } catch (error) {
    throw new Error(`its header is not JSON: ${(error as Error).message}`);
  }
  const { $type, format, sizeExceeded, length, fields } = parsed ?? {};
  if ($type !== SERIALIZED_HEADER_TYPE || (format !== "json" && format !== "xml") || typeof sizeExceeded !== "boolean" || !isPlainObject(fields)) {
    throw new Error("its header does not describe a serialized context");
  }
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value !== "string" && typeof value !== "number") throw new Error(`its header's field ${name} is not a string or a number`);
  }
  if (length !== body.length || body.trimStart()[0] !== (format === "json" ? "{" : "<")) throw new Error(`its ${format === "json" ? "JSON" : "XML"} body is not the ${String(length)} characters that were stored`);
  return { format, sizeExceeded, fields: fields as Record<string, string | number>, body };
}

/** A job's context as the store keeps it. */
export function encodeJobData(context: Record<string, unknown>, serialized: SerializedContext | undefined): { data: string; post: string | null } {
  return serialized ? { data: serializedHeader(serialized), post: serialized.body } : { data: JSON.stringify(toPlain(context)), post: null };
}

/** What a job holds, read back: its context, or its serialized one; throws with what is wrong when it was damaged. */
export function decodeJobData(data: string, post: string | null): { context: Record<string, unknown>; serialized?: undefined } | { context?: undefined; serialized: SerializedContext } {
  return post === null ? { context: decode(data) as Record<string, unknown> } : { serialized: readSerializedHeader(data, post) };
}

/** A job's context as a person reads it (a serialized one read back); JOB_DATA_INVALID when what the store holds was damaged. */
export function readJobContext(data: string, post: string | null): Record<string, unknown> {
  try {
    const read = decodeJobData(data, post);
    return read.context ?? readSerializedContext(read.serialized);
  } catch (error) {
    throw new JobError("JOB_DATA_INVALID", `the job's stored context cannot be read: ${(error as Error).message}`);
  }
}
