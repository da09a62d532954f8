/**
 * RemoteExecutionContext codecs: read and write execution contexts exactly as Dataverse posts
 * them to Service Bus, Event Hubs and webhooks, so listeners written in Node can use them.
 *
 * @example
 * import { parseRemoteExecutionContext } from "plugbox/sdk";
 * const context = parseRemoteExecutionContext(message.body);       // JSON (MessageFormat 2)
 * console.log(context.messageName, context.primaryEntityId, context.inputParameters.Target);
 * @module
 */
import type { IPluginExecutionContext } from "../plugin.js";
import { readContext, stringifyWire, WireFormatError, writeContext } from "./json.js";
import { readContextFromXml, writeContextXml } from "./xml.js";

export { CONTRACTS_NAMESPACE, CONTEXT_MEMBERS } from "./json.js";
export { WireFormatError, type WireErrorCode } from "./errors.js";

export type WireFormat = "json" | "xml";

/** The content type of each message format (Dataverse's MessageFormat 1, 2, 3). */
export const CONTENT_TYPES = Object.freeze({ json: "application/json", xml: "application/xml", binary: "application/msbin1" } as const);

/** An execution context as it travels: IPluginExecutionContext's members, camelCase, with SDK values. */
export type RemoteExecutionContext = Omit<IPluginExecutionContext, "parentContext"> & { parentContext: RemoteExecutionContext | null };

/**
 * Reads a posted context: JSON (MessageFormat 2) or Text XML (3), taken from the text when not
 * given. Binary XML (MessageFormat 1) is refused with WIRE_FORMAT_UNSUPPORTED.
 */
export function parseRemoteExecutionContext(text: string, format?: WireFormat | "binary"): RemoteExecutionContext {
  if (typeof text !== "string") throw new WireFormatError("WIRE_INVALID", "the context must be given as text (decode the message body as UTF-8 first)");
  const first = text.trimStart()[0];
  const kind = format ?? (first === "{" ? "json" : first === "<" ? "xml" : "binary");
  if (kind === "binary") {
    throw new WireFormatError("WIRE_FORMAT_UNSUPPORTED", "Binary XML (MessageFormat 1, application/msbin1) is .NET's binary encoding and cannot be read here; register the service endpoint with MessageFormat Json (2)");
  }
  if (kind === "xml") return readContextFromXml(text) as unknown as RemoteExecutionContext;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new WireFormatError("WIRE_INVALID", `the context is not valid JSON: ${(error as Error).message}`);
  }
  return readContext(value as never) as unknown as RemoteExecutionContext;
}

/** Writes a context (a plug-in's, or one parsed) as Dataverse does. */
export function serializeRemoteExecutionContext(context: RemoteExecutionContext | IPluginExecutionContext | Record<string, unknown>, format: WireFormat = "json"): string {
  if (format === "xml") return writeContextXml(context as Record<string, unknown>);
  if (format !== "json") throw new WireFormatError("WIRE_FORMAT_UNSUPPORTED", `${String(format)} is not a format plugbox writes; use "json" or "xml"`);
  return stringifyWire(writeContext(context as Record<string, unknown>));
}

/** The context without ParentContext, InputParameters and images: what Dataverse posts when the whole is over its size limit. */
export function withoutLargeParts<T extends Record<string, unknown> | RemoteExecutionContext>(context: T): T {
  const copy = Object.create(Object.getPrototypeOf(context) as object) as Record<string | symbol, unknown>;
  for (const key of Reflect.ownKeys(context)) {
    const descriptor = Object.getOwnPropertyDescriptor(context, key)!;
    Object.defineProperty(copy, key, descriptor);
  }
  copy.parentContext = null;
  copy.inputParameters = {};
  copy.preEntityImages = {};
  copy.postEntityImages = {};
  return copy as T;
}
