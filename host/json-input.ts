/**
 * JSON input files (requests, targets, data, manifests, web policies): read with limits, so a file
 * that is too large or nested too deep is refused with a typed error before anything recurses into
 * it (a request nested 20,000 deep once overflowed the stack of the value reviver).
 */
import { readFile, stat } from "node:fs/promises";
import { MAX_DEPTH } from "../sdk/codec.js";
import { UsageError } from "./errors.js";

/** The largest JSON input file plugbox reads, bytes. */
export const MAX_JSON_INPUT_BYTES = 64 * 1024 * 1024;
/** The deepest nesting of objects and arrays a JSON input may have: what plugbox JSON carries across the sandbox. */
export const MAX_JSON_INPUT_DEPTH = MAX_DEPTH;

/** How the caller names a missing file and unreadable JSON (a manifest has codes of its own). */
export interface JsonInputErrors {
  notFound(message: string): Error;
  invalid(message: string): Error;
}

const usageErrors: JsonInputErrors = {
  notFound: (message) => new UsageError("INPUT_NOT_FOUND", message),
  invalid: (message) => new UsageError("INPUT_INVALID_JSON", message),
};

/** Reads and parses a JSON file named on the command line (or in options), within the size and depth limits. */
export async function readJsonInput(file: string, what: string, errors: JsonInputErrors = usageErrors): Promise<unknown> {
  return parseJsonInput(await readInputText(file, what, errors), `the ${what} file ${file}`, errors);
}

/** Reads an input file's text (JSON, or XML), within the size limit of JSON inputs. */
export async function readInputText(file: string, what: string, errors: Pick<JsonInputErrors, "notFound"> = usageErrors): Promise<string> {
  const unreadable = () => errors.notFound(`cannot read the ${what} file ${file}: it does not exist or is not readable`);
  const info = await stat(file).catch(() => {
    throw unreadable();
  });
  if (!info.isFile()) throw errors.notFound(`the ${what} file ${file} is not a file`);
  if (info.size > MAX_JSON_INPUT_BYTES) throw new UsageError("INPUT_TOO_LARGE", `the ${what} file ${file} is ${info.size} bytes; plugbox reads input files of up to ${MAX_JSON_INPUT_BYTES} bytes (64 MB): split it`);
  return readFile(file, "utf8").catch(() => {
    throw unreadable();
  });
}

/** Parses JSON text and checks its nesting; `what` names it in errors ("the request file x.json"). */
export function parseJsonInput(text: string, what: string, errors: JsonInputErrors = usageErrors): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw errors.invalid(`${what} is not valid JSON: ${(error as Error).message}`);
  }
  const depth = nestingDepth(value, MAX_JSON_INPUT_DEPTH);
  if (depth > MAX_JSON_INPUT_DEPTH) throw new UsageError("INPUT_TOO_DEEP", `${what} nests objects and arrays more than ${MAX_JSON_INPUT_DEPTH} levels deep; plugbox reads up to ${MAX_JSON_INPUT_DEPTH}`);
  return value;
}

/** How deeply objects and arrays nest in a parsed JSON value (0 for a scalar), walked without recursion; stops counting past `limit`. */
export function nestingDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const next = stack.pop()!;
    if (typeof next.value !== "object" || next.value === null) continue;
    const depth = next.depth + 1;
    if (depth > deepest) deepest = depth;
    if (deepest > limit) return deepest;
    for (const child of Object.values(next.value)) if (typeof child === "object" && child !== null) stack.push({ value: child, depth });
  }
  return deepest;
}
