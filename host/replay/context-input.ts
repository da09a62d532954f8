/**
 * The execution context `plugbox replay` runs a plug-in against, read from what a listener
 * captured: a line `plugbox listen --json` printed (`{ messageId, contentType, properties, context }`),
 * or the message body itself, a RemoteExecutionContext as Dataverse posts it to Service Bus, Event
 * Hubs or a webhook, in JSON (DataContractJsonSerializer) or Text XML. The context keeps what the
 * plug-in saw: message, entity and ids, stage and mode, target and the other parameters, images,
 * shared variables, users, depth, correlation and operation ids, owning step and parent context.
 */
import type { Readable } from "node:stream";
import { fromPlain, isPlainObject } from "../../sdk/codec.js";
import { Entity, EntityReference, typeOf } from "../../sdk/model.js";
import { CONTEXT_MEMBERS, parseRemoteExecutionContext, type WireFormat } from "../../sdk/wire/index.js";
import { MAX_JSON_INPUT_BYTES, parseJsonInput, readInputText } from "../json-input.js";
import { UsageError } from "../errors.js";
import type { ContextInput, Stage } from "../pipeline/context.js";
import { ReplayError } from "./errors.js";

/** The forms a captured context comes in. */
export type CapturedForm = "listen" | "json" | "xml" | "plugbox";

export interface CapturedContext {
  context: ContextInput;
  form: CapturedForm;
  /** The message's id, from a `listen --json` line. */
  messageId?: string;
}

/** What replay reads, said in every refusal so the fix is at hand. */
const ACCEPTED = "replay reads a line `plugbox listen --json` printed, a RemoteExecutionContext as Dataverse posts it (JSON, with \"MessageName\", \"Stage\", …) or its Text XML (<RemoteExecutionContext>)";

const WIRE_MEMBERS = new Set(CONTEXT_MEMBERS.map(([wire]) => wire));

/** Reads a captured context from a file, or from standard input for `-`. */
export async function readCapturedContext(source: string, stdin: Readable = process.stdin): Promise<CapturedContext> {
  if (source === "-") return parseCapturedContext(await readStdin(stdin), "standard input");
  return parseCapturedContext(await readInputText(source, "context"), `the context file ${source}`);
}

async function readStdin(stdin: Readable): Promise<string> {
  if ((stdin as { isTTY?: boolean }).isTTY) {
    throw new ReplayError("REPLAY_INPUT_EMPTY", "standard input is a terminal, not a captured context: pipe one in (`plugbox listen … --json --max 1 | plugbox replay - …`) or name a file");
  }
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of stdin) {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
    bytes += buffer.length;
    if (bytes > MAX_JSON_INPUT_BYTES) throw new UsageError("INPUT_TOO_LARGE", `standard input holds more than ${MAX_JSON_INPUT_BYTES} bytes; plugbox reads inputs of up to 64 MB`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Reads a captured context from its text (any of the forms above); `where` names it in errors
 * ("the context file x.json"). Its `context` is what `runPlugin` and `TestHost.run` take.
 */
export function parseCapturedContext(text: string, where = "the captured context"): CapturedContext {
  const body = text.replace(/^\uFEFF/, "").trim();
  if (body === "") throw new ReplayError("REPLAY_INPUT_EMPTY", `${where} is empty; ${ACCEPTED}`);
  if (body.startsWith("<")) return { form: "xml", context: fromRemote(wire(body, "xml", where), where) };
  if (!body.startsWith("{")) throw new ReplayError("REPLAY_NOT_A_CONTEXT", `${where} is neither JSON nor XML; ${ACCEPTED}. (Binary XML, MessageFormat 1, cannot be read: register the endpoint with messageFormat Json or TextXml.)`);
  const lines = body.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (lines.length > 1 && lines.every(isListenLine)) {
    throw new ReplayError("REPLAY_SEVERAL_CONTEXTS", `${where} holds ${lines.length} \`listen --json\` lines; replay runs one context: keep the line of the message you want (such as \`sed -n 2p\`), or capture with \`listen --json --max 1\``);
  }
  const value = parseJsonInput(body, where);
  if (!isPlainObject(value)) throw new ReplayError("REPLAY_NOT_A_CONTEXT", `${where} holds JSON that is not an object; ${ACCEPTED}`);
  if ("context" in value || ("messageId" in value && "properties" in value)) return fromListenLine(value, where);
  if (Object.keys(value).some((key) => WIRE_MEMBERS.has(key))) return { form: "json", context: fromRemote(wire(body, "json", where), where) };
  if ("messageName" in value) return { form: "plugbox", context: fromRemote(revive(value, where), where) };
  throw new ReplayError("REPLAY_NOT_A_CONTEXT", `${where} holds JSON that is not an execution context (its members are ${describeKeys(value)}); ${ACCEPTED}`);
}

function isListenLine(line: string): boolean {
  try {
    const value = JSON.parse(line) as unknown;
    return isPlainObject(value) && ("context" in value || "messageId" in value);
  } catch {
    return false;
  }
}

function describeKeys(value: Record<string, unknown>): string {
  const keys = Object.keys(value);
  return keys.length === 0 ? "none" : keys.slice(0, 5).map((key) => JSON.stringify(key)).join(", ") + (keys.length > 5 ? ", …" : "");
}

function fromListenLine(line: Record<string, unknown>, where: string): CapturedContext {
  const messageId = typeof line.messageId === "string" ? line.messageId : undefined;
  const named = messageId ? ` (message ${messageId})` : "";
  if (line.context === undefined || line.context === null) {
    throw new ReplayError("REPLAY_CONTEXT_MISSING", `${where} is a \`listen --json\` line${named} without its "context"; capture the message again with \`plugbox listen --json\`, whose lines carry { messageId, contentType, properties, context }`);
  }
  if (!isPlainObject(line.context)) throw new ReplayError("REPLAY_NOT_A_CONTEXT", `${where}: the "context" of the \`listen --json\` line${named} is not an object; ${ACCEPTED}`);
  return { form: "listen", context: fromRemote(revive(line.context, where), where), ...(messageId ? { messageId } : {}) };
}

function wire(text: string, format: WireFormat, where: string): Record<string, unknown> {
  try {
    return parseRemoteExecutionContext(text, format) as unknown as Record<string, unknown>;
  } catch (error) {
    if ((error as { code?: unknown }).code !== "WIRE_INVALID") throw error;
    throw new ReplayError("REPLAY_NOT_A_CONTEXT", `${where} is not a RemoteExecutionContext in ${format === "xml" ? "Text XML" : "Dataverse JSON"}: ${(error as Error).message}; ${ACCEPTED}`, { cause: error });
  }
}

/** A context in plugbox JSON (what `listen --json` prints): its typed values read back. */
function revive(value: Record<string, unknown>, where: string): Record<string, unknown> {
  try {
    return fromPlain(value) as Record<string, unknown>;
  } catch (error) {
    throw new ReplayError("REPLAY_NOT_A_CONTEXT", `${where}: the context holds a value plugbox cannot read: ${(error as Error).message}`, { cause: error });
  }
}

/** A context's members as the ContextInput runPlugin takes; a member of the wrong kind is refused, naming it. */
function fromRemote(context: Record<string, unknown>, where: string): ContextInput {
  const bad = (member: string, expected: string): never => {
    throw new ReplayError("REPLAY_NOT_A_CONTEXT", `${where}: the context's ${member} must be ${expected}, got ${JSON.stringify(context[member]) ?? "nothing"}; ${ACCEPTED}`);
  };
  const text = (member: string, required = false): string | undefined => {
    const value = context[member];
    if (value === undefined || value === null) return required ? bad(member, "a string") : undefined;
    return typeof value === "string" ? value : bad(member, "a string");
  };
  const record = (member: string): Record<string, unknown> | undefined => {
    const value = context[member];
    if (value === undefined || value === null) return undefined;
    return isPlainObject(value) ? value : bad(member, "an object of name → value");
  };
  const images = (member: string): Record<string, Entity> | undefined => {
    const value = record(member);
    if (value && !Object.values(value).every((image) => typeOf(image) === "Entity")) bad(member, "an object of alias → entity");
    return value as Record<string, Entity> | undefined;
  };

  const messageName = text("messageName", true)!;
  const mode = context.mode;
  if (mode !== 0 && mode !== 1) bad("mode", "0 (synchronous) or 1 (asynchronous)");
  const stage = context.stage;
  if (typeof stage !== "number") bad("stage", "a number: 10, 20 or 40");
  const depth = context.depth;
  if (depth !== undefined && (typeof depth !== "number" || !Number.isInteger(depth) || depth < 1)) bad("depth", "a whole number from 1");
  const inputParameters = { ...record("inputParameters") };
  const target = inputParameters.Target;
  const isTarget = typeOf(target) === "Entity" || typeOf(target) === "EntityReference";
  if (isTarget) delete inputParameters.Target;
  const owningExtension = context.owningExtension;
  if (owningExtension !== undefined && owningExtension !== null && typeOf(owningExtension) !== "EntityReference") bad("owningExtension", "an entity reference to the step");
  const operationCreatedOn = context.operationCreatedOn;
  if (operationCreatedOn !== undefined && operationCreatedOn !== null && !(operationCreatedOn instanceof Date)) bad("operationCreatedOn", "a date");
  const parentContext = context.parentContext;
  if (parentContext !== undefined && parentContext !== null && !isPlainObject(parentContext)) bad("parentContext", "a context or null");
  const isolationMode = context.isolationMode;
  if (isolationMode !== undefined && isolationMode !== null && isolationMode !== 1 && isolationMode !== 2) bad("isolationMode", "1 (None) or 2 (Sandbox)");
  const isInTransaction = context.isInTransaction;
  if (isInTransaction !== undefined && isInTransaction !== null && typeof isInTransaction !== "boolean") bad("isInTransaction", "true or false");

  const input: ContextInput = {
    messageName,
    stage: stage as Stage,
    mode: mode === 1 ? "async" : "sync",
    inputParameters,
    outputParameters: { ...record("outputParameters") },
    ...(isTarget ? { target: target as Entity | EntityReference } : {}),
    ...(typeof depth === "number" ? { depth } : {}),
    ...(typeof isInTransaction === "boolean" ? { isInTransaction } : {}),
    ...(typeof isolationMode === "number" ? { isolationMode } : {}),
    // An asynchronous context carries no RequestId; the replay neither.
    ...(context.requestId === null ? { requestId: null } : {}),
    ...(operationCreatedOn instanceof Date ? { operationCreatedOn } : {}),
    ...(isPlainObject(parentContext) ? { parentContext } : {}),
    ...(owningExtension ? { owningExtension: owningExtension as EntityReference } : {}),
  };
  const optional = {
    primaryEntityName: text("primaryEntityName"),
    primaryEntityId: text("primaryEntityId"),
    secondaryEntityName: text("secondaryEntityName"),
    requestId: text("requestId"),
    operationId: text("operationId"),
    userId: text("userId"),
    initiatingUserId: text("initiatingUserId"),
    businessUnitId: text("businessUnitId"),
    organizationId: text("organizationId"),
    organizationName: text("organizationName"),
    correlationId: text("correlationId"),
    userAzureActiveDirectoryObjectId: text("userAzureActiveDirectoryObjectId"),
    initiatingUserAzureActiveDirectoryObjectId: text("initiatingUserAzureActiveDirectoryObjectId"),
    sharedVariables: record("sharedVariables"),
    preEntityImages: images("preEntityImages"),
    postEntityImages: images("postEntityImages"),
  };
  for (const [key, value] of Object.entries(optional)) if (value !== undefined) (input as Record<string, unknown>)[key] = value;
  return input;
}
