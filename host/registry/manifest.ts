/**
 * The manifest (`plugbox.json`): bundles and their plug-in types, steps with their images, service
 * endpoints, optional table schemas and settings. Validated with errors that name the JSON path and
 * the fix; Dataverse's registration rules are enforced at load time:
 * asynchronous steps only at stage 40; no pre-image on Create; no post-image on Delete; post-images
 * only at stage 40; images only on messages that support them; filtering attributes only on Update.
 */
import path from "node:path";
import type { Isolation } from "../../runtime/options.js";
import { isGuid } from "../ids.js";
import { readJsonInput } from "../json-input.js";
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

class Reader {
  constructor(readonly file: string) {}
  fail(at: string, problem: string): never {
    throw new RegistryError("MANIFEST_INVALID", `${this.file}: ${at}: ${problem}`);
  }
  object(at: string, value: unknown): Record<string, unknown> {
    if (typeof value !== "object" || value === null || Array.isArray(value)) this.fail(at, "must be an object");
    return value as Record<string, unknown>;
  }
  known(at: string, value: Record<string, unknown>, keys: readonly string[]): void {
    for (const key of Object.keys(value)) if (!keys.includes(key)) this.fail(`${at}.${key}`, `is not a known key; known keys are ${keys.join(", ")}`);
  }
  string(at: string, value: unknown, fallback?: string): string {
    if (value === undefined && fallback !== undefined) return fallback;
    if (typeof value !== "string" || value === "") this.fail(at, "must be a non-empty string");
    return value as string;
  }
  optionalString(at: string, value: unknown): string | null {
    if (value === undefined || value === null) return null;
    if (typeof value !== "string") this.fail(at, "must be a string");
    return value as string;
  }
  name(at: string, value: unknown): string {
    const text = this.string(at, value);
    if (!NAME.test(text)) this.fail(at, `${JSON.stringify(text)} is not a valid name (letters, digits and _, not starting with a digit)`);
    return text;
  }
  /** Column names: an array, or (where `commaSeparated`, as Dataverse stores filtering attributes) a comma-separated string. */
  names(at: string, value: unknown, commaSeparated = true): string[] {
    if (value === undefined) return [];
    if (commaSeparated && typeof value === "string") return value.split(",").map((s) => s.trim()).filter(Boolean).map((s, i) => this.name(`${at}[${i}]`, s));
    if (!Array.isArray(value)) this.fail(at, commaSeparated ? "must be an array of column names (or a comma-separated string)" : `must be an array of column names, such as ["name", "revenue"] (an empty array or none: every column)`);
    return (value as unknown[]).map((v, i) => this.name(`${at}[${i}]`, v));
  }
  boolean(at: string, value: unknown, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") this.fail(at, "must be true or false");
    return value as boolean;
  }
  integer(at: string, value: unknown, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) this.fail(at, `must be an integer from ${min} to ${max}`);
    return value as number;
  }
  guid(at: string, value: unknown): string {
    if (!isGuid(value)) this.fail(at, `must be a Guid such as "3f2504e0-4f89-11d3-9a0c-0305e82c3301"`);
    return (value as string).toLowerCase();
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

function readStep(r: Reader, at: string, raw: unknown, bundles: Map<string, BundleRegistration>, endpoints: Set<string>): StepRegistration {
  const s = r.object(at, raw);
  r.known(at, s, ["id", "name", "bundle", "type", "serviceEndpoint", "message", "entity", "stage", "mode", "rank", "filteringAttributes", "unsecureConfig", "secureConfig", "runAs", "asyncAutoDelete", "enabled", "isolation", "images", "description"]);
  const message = r.name(`${at}.message`, s.message);
  const entity = s.entity === undefined || s.entity === null || s.entity === "none" ? null : r.name(`${at}.entity`, s.entity);
  const stage = r.integer(`${at}.stage`, s.stage, 40, 0, 100);
  if (stage !== 10 && stage !== 20 && stage !== 40) r.fail(`${at}.stage`, `${stage} is not a stage custom steps can use: 10 (pre-validation), 20 (pre-operation) or 40 (post-operation)`);
  const mode = s.mode === undefined ? "sync" : s.mode;
  if (mode !== "sync" && mode !== "async") r.fail(`${at}.mode`, `must be "sync" or "async"`);
  if (mode === "async" && stage !== 40) r.fail(`${at}.mode`, "asynchronous steps can only be registered at stage 40 (post-operation); set stage to 40 or mode to \"sync\"");
  let handler: StepRegistration["handler"];
  if (s.serviceEndpoint !== undefined) {
    if (s.bundle !== undefined || s.type !== undefined) r.fail(at, "a step is handled either by a plug-in (bundle and type) or by a serviceEndpoint, not both");
    const endpoint = r.string(`${at}.serviceEndpoint`, s.serviceEndpoint);
    if (!endpoints.has(endpoint)) r.fail(`${at}.serviceEndpoint`, `no service endpoint named or with id ${JSON.stringify(endpoint)} is declared in serviceEndpoints`);
    if (s.unsecureConfig !== undefined || s.secureConfig !== undefined) r.fail(at, "steps handled by a service endpoint cannot take configuration (as in Dataverse)");
    handler = { kind: "serviceEndpoint", endpoint };
  } else {
    const bundle = r.string(`${at}.bundle`, s.bundle);
    const registered = bundles.get(bundle);
    if (!registered) r.fail(`${at}.bundle`, `no bundle named ${JSON.stringify(bundle)} is declared in bundles (declared: ${[...bundles.keys()].join(", ") || "none"})`);
    const type = r.string(`${at}.type`, s.type);
    if (registered.types && !registered.types.includes(type)) r.fail(`${at}.type`, `the bundle ${bundle} declares no plug-in type ${JSON.stringify(type)} (declared: ${registered.types.join(", ")})`);
    handler = { kind: "plugin", bundle, type };
  }
  const filteringAttributes = r.names(`${at}.filteringAttributes`, s.filteringAttributes);
  if (filteringAttributes.length > 0 && message !== "Update") r.fail(`${at}.filteringAttributes`, "filtering attributes apply only to steps on Update");
  const images: StepImage[] = [];
  if (s.images !== undefined) {
    if (!Array.isArray(s.images)) r.fail(`${at}.images`, "must be an array of { alias, type, attributes }");
    if (s.images.length > 0 && !(message in IMAGE_MESSAGES)) r.fail(`${at}.images`, `the ${message} message does not support images (messages with images: ${Object.keys(IMAGE_MESSAGES).join(", ")})`);
    (s.images as unknown[]).forEach((rawImage, i) => {
      const ia = `${at}.images[${i}]`;
      const image = r.object(ia, rawImage);
      r.known(ia, image, ["alias", "type", "attributes"]);
      const type = image.type;
      if (type !== "pre" && type !== "post" && type !== "both") r.fail(`${ia}.type`, `must be "pre", "post" or "both"`);
      if (message === "Create" && type !== "post") r.fail(`${ia}.type`, "a Create has no pre-image (the record does not exist yet); use a post-image at stage 40");
      if (message === "Delete" && type !== "pre") r.fail(`${ia}.type`, "a Delete has no post-image (the record is gone); use a pre-image");
      if (type !== "pre" && stage !== 40) r.fail(`${ia}.type`, "post-images exist only at stage 40 (post-operation)");
      const alias = r.string(`${ia}.alias`, image.alias);
      if (images.some((other) => other.alias === alias)) r.fail(`${ia}.alias`, `the alias ${alias} is used twice in this step`);
      images.push({ alias, type, attributes: r.names(`${ia}.attributes`, image.attributes, false) });
    });
  }
  const isolation = s.isolation === undefined ? "fresh" : s.isolation;
  if (isolation !== "fresh" && isolation !== "reuse") r.fail(`${at}.isolation`, `must be "fresh" or "reuse"`);
  const name = s.name === undefined ? `${handler.kind === "plugin" ? handler.type : handler.endpoint}: ${message} of ${entity ?? "any table"}` : r.string(`${at}.name`, s.name);
  return {
    id: s.id === undefined ? stableGuid(JSON.stringify([name, message, entity, stage, mode, handler, s.rank, s.unsecureConfig, s.filteringAttributes, s.images])) : r.guid(`${at}.id`, s.id),
    name,
    handler,
    message,
    entity,
    stage: stage as StageNumber,
    mode: mode as StepMode,
    rank: r.integer(`${at}.rank`, s.rank, 1, -2147483648, 2147483647),
    filteringAttributes,
    unsecureConfig: r.optionalString(`${at}.unsecureConfig`, s.unsecureConfig),
    secureConfig: r.optionalString(`${at}.secureConfig`, s.secureConfig),
    runAs: s.runAs === undefined || s.runAs === null ? null : r.guid(`${at}.runAs`, s.runAs),
    asyncAutoDelete: r.boolean(`${at}.asyncAutoDelete`, s.asyncAutoDelete, false),
    enabled: r.boolean(`${at}.enabled`, s.enabled, true),
    isolation: isolation as Isolation,
    images,
  };
}

function readTable(r: Reader, at: string, logicalName: string, raw: unknown): TableSchema {
  const t = r.object(at, raw);
  r.known(at, t, ["columns", "primaryIdAttribute", "primaryNameAttribute", "alternateKeys"]);
  const columnsRaw = r.object(`${at}.columns`, t.columns);
  const columns: Record<string, ColumnType> = {};
  for (const [column, type] of Object.entries(columnsRaw)) {
    r.name(`${at}.columns`, column);
    if (!COLUMN_TYPES.includes(type as ColumnType)) r.fail(`${at}.columns.${column}`, `must be one of ${COLUMN_TYPES.join(", ")}`);
    columns[column] = type as ColumnType;
  }
  const schema: TableSchema = { logicalName, columns };
  if (t.primaryIdAttribute !== undefined) schema.primaryIdAttribute = r.name(`${at}.primaryIdAttribute`, t.primaryIdAttribute);
  if (t.primaryNameAttribute !== undefined) {
    schema.primaryNameAttribute = r.name(`${at}.primaryNameAttribute`, t.primaryNameAttribute);
    if (!(schema.primaryNameAttribute in columns)) r.fail(`${at}.primaryNameAttribute`, `names ${schema.primaryNameAttribute}, which is not in columns`);
  }
  if (t.alternateKeys !== undefined) {
    const keys = r.object(`${at}.alternateKeys`, t.alternateKeys);
    schema.alternateKeys = {};
    for (const [key, cols] of Object.entries(keys)) {
      const list = r.names(`${at}.alternateKeys.${key}`, cols);
      if (list.length === 0) r.fail(`${at}.alternateKeys.${key}`, "must list at least one column");
      for (const c of list) if (!(c in columns)) r.fail(`${at}.alternateKeys.${key}`, `names ${c}, which is not in columns`);
      schema.alternateKeys[key] = list;
    }
  }
  return schema;
}

/** Validates a parsed manifest. `file` names it in errors; relative bundle paths resolve against `baseDir`. */
export function parseManifest(value: unknown, file = "plugbox.json", baseDir = process.cwd()): Manifest {
  const r: Reader = new Reader(file);
  const root = r.object("(root)", value);
  r.known("(root)", root, ["$schema", "bundles", "steps", "serviceEndpoints", "tables", "settings"]);
  const bundles = new Map<string, BundleRegistration>();
  for (const [name, raw] of Object.entries(root.bundles === undefined ? {} : r.object("bundles", root.bundles))) {
    const at = `bundles.${name}`;
    const entry = typeof raw === "string" ? { path: raw } : r.object(at, raw);
    r.known(at, entry, ["path", "types", "allowedHosts"]);
    const types = entry.types === undefined ? null : Array.isArray(entry.types) ? entry.types.map((t, i) => r.string(`${at}.types[${i}]`, t)) : r.fail(`${at}.types`, "must be an array of exported class names");
    const allowedHosts = entry.allowedHosts === undefined ? null : Array.isArray(entry.allowedHosts) ? entry.allowedHosts.map((h, i) => r.string(`${at}.allowedHosts[${i}]`, h)) : r.fail(`${at}.allowedHosts`, "must be an array of host names");
    bundles.set(name, { name, path: path.resolve(baseDir, r.string(`${at}.path`, entry.path)), types, allowedHosts });
  }
  const serviceEndpoints: ServiceEndpointRegistration[] = [];
  if (root.serviceEndpoints !== undefined) {
    if (!Array.isArray(root.serviceEndpoints)) r.fail("serviceEndpoints", "must be an array");
    root.serviceEndpoints.forEach((raw, i) => {
      const e = r.object(`serviceEndpoints[${i}]`, raw);
      const id = r.guid(`serviceEndpoints[${i}].id`, e.id);
      const name = r.string(`serviceEndpoints[${i}].name`, e.name);
      if (serviceEndpoints.some((o) => o.id === id || o.name === name)) r.fail(`serviceEndpoints[${i}]`, `the id or name ${name} is declared twice`);
      serviceEndpoints.push({ ...e, id, name });
    });
  }
  const endpointKeys = new Set(serviceEndpoints.flatMap((e) => [e.id, e.name]));
  const steps: StepRegistration[] = [];
  if (root.steps !== undefined) {
    if (!Array.isArray(root.steps)) r.fail("steps", "must be an array of step registrations");
    root.steps.forEach((raw, i) => {
      const step = readStep(r, `steps[${i}]`, raw, bundles, endpointKeys);
      const explicitId = (raw as { id?: unknown }).id !== undefined;
      // Two registrations alike in every way fire twice, as in Dataverse: a derived id then takes the position.
      if (!explicitId && steps.some((s) => s.id === step.id)) step.id = stableGuid(`${step.id}|${i}`);
      if (steps.some((s) => s.id === step.id)) r.fail(`steps[${i}].id`, `the step id ${step.id} is used twice; give each step its own id or name`);
      steps.push(step);
    });
  }
  const tables = new Map<string, TableSchema>();
  for (const [name, raw] of Object.entries(root.tables === undefined ? {} : r.object("tables", root.tables))) {
    tables.set(r.name("tables", name), readTable(r, `tables.${name}`, name, raw));
  }
  const s = root.settings === undefined ? {} : r.object("settings", root.settings);
  r.known("settings", s, ["maxDepth", "traceLogSetting", "maxAsyncAttempts"]);
  const traceLogSetting = (s.traceLogSetting ?? manifestSettingDefaults.traceLogSetting) as ManifestSettings["traceLogSetting"];
  if (!["Off", "Exceptions", "All"].includes(traceLogSetting)) r.fail("settings.traceLogSetting", `must be "Off", "Exceptions" or "All"`);
  const settings: ManifestSettings = {
    maxDepth: r.integer("settings.maxDepth", s.maxDepth, manifestSettingDefaults.maxDepth, 1, 64),
    traceLogSetting,
    maxAsyncAttempts: r.integer("settings.maxAsyncAttempts", s.maxAsyncAttempts, manifestSettingDefaults.maxAsyncAttempts, 1, 100),
  };
  return { source: file, bundles, steps, serviceEndpoints, tables, settings };
}

export async function loadManifest(file: string): Promise<Manifest> {
  const value = await readJsonInput(file, "manifest", {
    notFound: () => new RegistryError("MANIFEST_NOT_FOUND", `cannot read the manifest ${file}: it does not exist or is not readable`),
    invalid: (message) => new RegistryError("MANIFEST_INVALID", message),
  });
  return parseManifest(value, file, path.dirname(path.resolve(file)));
}
