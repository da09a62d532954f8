/**
 * The manifest (`plugbox.json`): bundles and their plug-in types, steps with their images, service
 * endpoints, optional table schemas and settings. Validated with errors that name the JSON path and
 * the fix; Dataverse's registration rules are enforced at load time:
 * asynchronous steps only at stage 40; no pre-image on Create; no post-image on Delete; post-images
 * only at stage 40; images only on messages that support them; filtering attributes only on Update.
 */
import path from "node:path";
import type { Bundle } from "../../runtime/bundle.js";
import type { Isolation } from "../../runtime/options.js";
import { isGuid } from "../ids.js";
import { readJsonInput } from "../json-input.js";
import { flag, formatPath, integer, parseOptions, shown, strictOptions, v } from "../../runtime/schema.js";
import type { ColumnType, TableSchema } from "../store/table-schema.js";

import { RegistryError } from "./errors.js";

export { REGISTRY_ERRORS, RegistryError, type RegistryErrorCode } from "./errors.js";

export type StageNumber = 10 | 20 | 40;
export type StepMode = "sync" | "async";
export type ImageType = "pre" | "post" | "both";

export interface StepImage {
  alias: string;
  type: ImageType;
  /** Columns in the image; empty means all. */
  attributes: string[];
}

export interface StepRegistration {
  id: string;
  name: string;
  /** The bundle and plug-in type that handle the step, or the service endpoint that does. */
  handler: { kind: "plugin"; bundle: string; type: string } | { kind: "serviceEndpoint"; endpoint: string };
  message: string;
  /** The primary entity, or null for a step on every table. */
  entity: string | null;
  stage: StageNumber;
  mode: StepMode;
  rank: number;
  filteringAttributes: string[];
  unsecureConfig: string | null;
  secureConfig: string | null;
  /** Run in this user's context; null runs as the calling user. */
  runAs: string | null;
  asyncAutoDelete: boolean;
  enabled: boolean;
  isolation: Isolation;
  images: StepImage[];
}

export interface BundleRegistration {
  name: string;
  /** Absolute path of the bundle file. */
  path: string;
  /** Exported plug-in types; when listed, steps may only name these. */
  types: string[] | null;
  /** Narrows the outbound web policy for this bundle's plug-ins. */
  allowedHosts: string[] | null;
  /** The bundle already in memory (plugbox/testing's entries built without writing a file): used instead of reading `path`. */
  loaded?: Bundle;
}

/** A service endpoint, kept as declared; the relay validates the parts it uses. */
export interface ServiceEndpointRegistration {
  id: string;
  name: string;
  [key: string]: unknown;
}

export interface ManifestSettings {
  /** Depth past which a request fails as an infinite loop. @default 8 */
  maxDepth: number;
  /** Trace logs kept: Off, Exceptions (failed executions only) or All. @default "Exceptions" */
  traceLogSetting: "Off" | "Exceptions" | "All";
  /** Attempts of an async step whose plug-in asks to be retried (OperationStatus.Retry). @default 4 */
  maxAsyncAttempts: number;
}

export interface Manifest {
  /** Where the manifest was read from (its directory resolves relative bundle paths). */
  source: string;
  bundles: Map<string, BundleRegistration>;
  steps: StepRegistration[];
  serviceEndpoints: ServiceEndpointRegistration[];
  tables: Map<string, TableSchema>;
  settings: ManifestSettings;
}

export const manifestSettingDefaults: Readonly<ManifestSettings> = Object.freeze({ maxDepth: 8, traceLogSetting: "Exceptions", maxAsyncAttempts: 4 });

/** Messages whose steps may have images, and the request parameter imaged (reference 2.7). */
export const IMAGE_MESSAGES: Readonly<Record<string, string>> = Object.freeze({
  Assign: "Target",
  Create: "Target",
  Delete: "Target",
  Update: "Target",
  SetState: "EntityMoniker",
  Merge: "Target",
  Route: "Target",
});

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const COLUMN_TYPES: readonly ColumnType[] = ["string", "number", "boolean", "datetime", "guid", "lookup", "optionset", "money", "multiselect"];
const KNOWN_KEYS = "is not a known key; known keys are";

const text = v.pipe(v.string("must be a non-empty string"), v.minLength(1, "must be a non-empty string"));
const optionalText = v.nullish(v.string("must be a string"));
const name = v.pipe(text, v.regex(NAME, (issue) => `${shown(issue.input)} is not a valid name (letters, digits and _, not starting with a digit)`));
const guid = v.pipe(v.custom<string>(isGuid, `must be a Guid such as "3f2504e0-4f89-11d3-9a0c-0305e82c3301"`), v.transform((id) => id.toLowerCase()));
/** Column names as an array; an empty array or none means every column. */
const columnList = v.array(name, `must be an array of column names, such as ["name", "revenue"] (an empty array or none: every column)`);
/** Column names as an array or, as Dataverse stores filtering attributes, a comma-separated string. */
const columnNames = v.pipe(
  v.custom<string | unknown[]>((value) => typeof value === "string" || Array.isArray(value), "must be an array of column names (or a comma-separated string)"),
  v.transform((value) => (typeof value === "string" ? value.split(",").map((c) => c.trim()).filter(Boolean) : value)),
  v.array(name),
);

const imageSchema = strictOptions(
  {
    alias: text,
    type: v.picklist(["pre", "post", "both"], `must be "pre", "post" or "both"`),
    attributes: v.optional(columnList, []),
  },
  KNOWN_KEYS,
);

const stepSchema = strictOptions(
  {
    id: v.optional(guid),
    name: v.optional(text),
    bundle: v.optional(v.unknown()),
    type: v.optional(v.unknown()),
    serviceEndpoint: v.optional(v.unknown()),
    message: name,
    entity: v.nullish(name),
    stage: v.optional(integer(0, 100), 40),
    mode: v.optional(v.picklist(["sync", "async"], `must be "sync" or "async"`), "sync"),
    rank: v.optional(integer(-2147483648, 2147483647), 1),
    filteringAttributes: v.optional(columnNames, []),
    unsecureConfig: optionalText,
    secureConfig: optionalText,
    runAs: v.nullish(guid),
    asyncAutoDelete: v.optional(flag(), false),
    enabled: v.optional(flag(), true),
    isolation: v.optional(v.picklist(["fresh", "reuse"], `must be "fresh" or "reuse"`), "fresh"),
    images: v.optional(v.array(imageSchema, "must be an array of { alias, type, attributes }"), []),
    description: optionalText,
  },
  KNOWN_KEYS,
);

const bundleSchema = v.pipe(
  v.custom<string | object>((value) => typeof value === "string" || (typeof value === "object" && value !== null && !Array.isArray(value)), "must be an object"),
  v.transform((value) => (typeof value === "string" ? { path: value } : value)),
  strictOptions(
    {
      path: v.optional(v.unknown()),
      types: v.optional(v.array(text, "must be an array of exported class names")),
      allowedHosts: v.optional(v.array(text, "must be an array of host names")),
    },
    KNOWN_KEYS,
  ),
);

const tableSchema = strictOptions(
  {
    columns: v.record(name, v.picklist(COLUMN_TYPES, `must be one of ${COLUMN_TYPES.join(", ")}`), "must be an object"),
    primaryIdAttribute: v.optional(name),
    primaryNameAttribute: v.optional(name),
    alternateKeys: v.optional(v.record(v.string(), columnNames, "must be an object")),
  },
  KNOWN_KEYS,
);

const manifestSchema = strictOptions(
  {
    $schema: v.optional(v.string("must be a string")),
    bundles: v.optional(v.record(v.string(), bundleSchema, "must be an object"), {}),
    steps: v.optional(v.array(stepSchema, "must be an array of step registrations"), []),
    serviceEndpoints: v.optional(v.array(v.looseObject({ id: guid, name: text }, "must be an object"), "must be an array"), []),
    tables: v.optional(v.record(name, tableSchema, "must be an object"), {}),
    settings: v.optional(
      strictOptions(
        {
          maxDepth: v.optional(integer(1, 64)),
          traceLogSetting: v.optional(v.picklist(["Off", "Exceptions", "All"], `must be "Off", "Exceptions" or "All"`)),
          maxAsyncAttempts: v.optional(integer(1, 100)),
        },
        KNOWN_KEYS,
      ),
      {},
    ),
  },
  KNOWN_KEYS,
);

type ParsedStep = v.InferOutput<typeof stepSchema>;

class ManifestFile {
  constructor(readonly file: string) {}
  fail(at: string, problem: string): never {
    throw new RegistryError("MANIFEST_INVALID", `${this.file}: ${at}: ${problem}`);
  }
  text(at: string, value: unknown): string {
    if (typeof value !== "string" || value === "") this.fail(at, "must be a non-empty string");
    return value as string;
  }
}

/** Makes a stable Guid from a text, so steps declared without an id keep the same id across loads. */
export function stableGuid(text: string): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  let h3 = 0x9e3779b9;
  let h4 = 0x7f4a7c15;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 16777619);
    h2 = Math.imul(h2 ^ c, 2246822507);
    h3 = Math.imul(h3 ^ c, 3266489909);
    h4 = Math.imul(h4 ^ c, 668265263);
  }
  const hex = [h1, h2, h3, h4].map((h) => (h >>> 0).toString(16).padStart(8, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function readStep(r: ManifestFile, at: string, s: ParsedStep, raw: Record<string, unknown>, bundles: Map<string, BundleRegistration>, endpoints: Set<string>): StepRegistration {
  const { message, stage, mode } = s;
  const entity = s.entity === undefined || s.entity === null || s.entity === "none" ? null : s.entity;
  if (stage !== 10 && stage !== 20 && stage !== 40) r.fail(`${at}.stage`, `${stage} is not a stage custom steps can use: 10 (pre-validation), 20 (pre-operation) or 40 (post-operation)`);
  if (mode === "async" && stage !== 40) r.fail(`${at}.mode`, "asynchronous steps can only be registered at stage 40 (post-operation); set stage to 40 or mode to \"sync\"");
  let handler: StepRegistration["handler"];
  if (s.serviceEndpoint !== undefined) {
    if (s.bundle !== undefined || s.type !== undefined) r.fail(at, "a step is handled either by a plug-in (bundle and type) or by a serviceEndpoint, not both");
    const endpoint = r.text(`${at}.serviceEndpoint`, s.serviceEndpoint);
    if (!endpoints.has(endpoint)) r.fail(`${at}.serviceEndpoint`, `no service endpoint named or with id ${JSON.stringify(endpoint)} is declared in serviceEndpoints`);
    if (s.unsecureConfig !== undefined || s.secureConfig !== undefined) r.fail(at, "steps handled by a service endpoint cannot take configuration (as in Dataverse)");
    handler = { kind: "serviceEndpoint", endpoint };
  } else {
    const bundle = r.text(`${at}.bundle`, s.bundle);
    const registered = bundles.get(bundle);
    if (!registered) r.fail(`${at}.bundle`, `no bundle named ${JSON.stringify(bundle)} is declared in bundles (declared: ${[...bundles.keys()].join(", ") || "none"})`);
    const type = r.text(`${at}.type`, s.type);
    if (registered.types && !registered.types.includes(type)) r.fail(`${at}.type`, `the bundle ${bundle} declares no plug-in type ${JSON.stringify(type)} (declared: ${registered.types.join(", ")})`);
    handler = { kind: "plugin", bundle, type };
  }
  if (s.filteringAttributes.length > 0 && message !== "Update") r.fail(`${at}.filteringAttributes`, "filtering attributes apply only to steps on Update");
  if (s.images.length > 0 && !(message in IMAGE_MESSAGES)) r.fail(`${at}.images`, `the ${message} message does not support images (messages with images: ${Object.keys(IMAGE_MESSAGES).join(", ")})`);
  s.images.forEach(({ alias, type }, i) => {
    const ia = `${at}.images[${i}]`;
    if (message === "Create" && type !== "post") r.fail(`${ia}.type`, "a Create has no pre-image (the record does not exist yet); use a post-image at stage 40");
    if (message === "Delete" && type !== "pre") r.fail(`${ia}.type`, "a Delete has no post-image (the record is gone); use a pre-image");
    if (type !== "pre" && stage !== 40) r.fail(`${ia}.type`, "post-images exist only at stage 40 (post-operation)");
    if (s.images.slice(0, i).some((other) => other.alias === alias)) r.fail(`${ia}.alias`, `the alias ${alias} is used twice in this step`);
  });
  const name = s.name ?? `${handler.kind === "plugin" ? handler.type : handler.endpoint}: ${message} of ${entity ?? "any table"}`;
  return {
    // Derived from the step as written, so that the same declaration keeps its id from one load to the next.
    id: s.id ?? stableGuid(JSON.stringify([name, message, entity, stage, mode, handler, raw.rank, raw.unsecureConfig, raw.filteringAttributes, raw.images])),
    name,
    handler,
    message,
    entity,
    stage: stage as StageNumber,
    mode,
    rank: s.rank,
    filteringAttributes: s.filteringAttributes,
    unsecureConfig: s.unsecureConfig ?? null,
    secureConfig: s.secureConfig ?? null,
    runAs: s.runAs ?? null,
    asyncAutoDelete: s.asyncAutoDelete,
    enabled: s.enabled,
    isolation: s.isolation,
    images: s.images,
  };
}

function readTable(r: ManifestFile, at: string, logicalName: string, t: v.InferOutput<typeof tableSchema>): TableSchema {
  const schema: TableSchema = { logicalName, columns: t.columns as Record<string, ColumnType> };
  if (t.primaryIdAttribute !== undefined) schema.primaryIdAttribute = t.primaryIdAttribute;
  if (t.primaryNameAttribute !== undefined) {
    schema.primaryNameAttribute = t.primaryNameAttribute;
    if (!(t.primaryNameAttribute in t.columns)) r.fail(`${at}.primaryNameAttribute`, `names ${t.primaryNameAttribute}, which is not in columns`);
  }
  if (t.alternateKeys !== undefined) {
    schema.alternateKeys = {};
    for (const [key, list] of Object.entries(t.alternateKeys)) {
      if (list.length === 0) r.fail(`${at}.alternateKeys.${key}`, "must list at least one column");
      for (const c of list) if (!(c in t.columns)) r.fail(`${at}.alternateKeys.${key}`, `names ${c}, which is not in columns`);
      schema.alternateKeys[key] = list;
    }
  }
  return schema;
}

/** Validates a parsed manifest. `file` names it in errors; relative bundle paths resolve against `baseDir`. */
export function parseManifest(value: unknown, file = "plugbox.json", baseDir = process.cwd()): Manifest {
  const r = new ManifestFile(file);
  const root = parseOptions(manifestSchema, value, (path, problem, { atKey, unknownKey }) => {
    const at = path.length === 0 ? "(root)" : unknownKey && path.length === 1 ? `(root).${path[0]}` : formatPath("", atKey ? path.slice(0, -1) : path);
    return new RegistryError("MANIFEST_INVALID", `${file}: ${at}: ${problem}`);
  });
  const bundles = new Map<string, BundleRegistration>();
  for (const [name, entry] of Object.entries(root.bundles)) {
    bundles.set(name, { name, path: path.resolve(baseDir, r.text(`bundles.${name}.path`, entry.path)), types: entry.types ?? null, allowedHosts: entry.allowedHosts ?? null });
  }
  const serviceEndpoints: ServiceEndpointRegistration[] = [];
  root.serviceEndpoints.forEach((e, i) => {
    if (serviceEndpoints.some((o) => o.id === e.id || o.name === e.name)) r.fail(`serviceEndpoints[${i}]`, `the id or name ${e.name} is declared twice`);
    serviceEndpoints.push(e);
  });
  const endpointKeys = new Set(serviceEndpoints.flatMap((e) => [e.id, e.name]));
  const steps: StepRegistration[] = [];
  const rawSteps = (value as { steps: Array<Record<string, unknown>> }).steps;
  root.steps.forEach((parsed, i) => {
    const step = readStep(r, `steps[${i}]`, parsed, rawSteps[i]!, bundles, endpointKeys);
    // Two registrations alike in every way fire twice, as in Dataverse: a derived id then takes the position.
    if (parsed.id === undefined && steps.some((s) => s.id === step.id)) step.id = stableGuid(`${step.id}|${i}`);
    if (steps.some((s) => s.id === step.id)) r.fail(`steps[${i}].id`, `the step id ${step.id} is used twice; give each step its own id or name`);
    steps.push(step);
  });
  const tables = new Map<string, TableSchema>();
  for (const [name, table] of Object.entries(root.tables)) tables.set(name, readTable(r, `tables.${name}`, name, table));
  const settings: ManifestSettings = { ...manifestSettingDefaults };
  for (const [key, setting] of Object.entries(root.settings)) if (setting !== undefined) Object.assign(settings, { [key]: setting });
  return { source: file, bundles, steps, serviceEndpoints, tables, settings };
}

export async function loadManifest(file: string): Promise<Manifest> {
  const value = await readJsonInput(file, "manifest", {
    notFound: () => new RegistryError("MANIFEST_NOT_FOUND", `cannot read the manifest ${file}: it does not exist or is not readable`),
    invalid: (message) => new RegistryError("MANIFEST_INVALID", message),
  });
  return parseManifest(value, file, path.dirname(path.resolve(file)));
}
