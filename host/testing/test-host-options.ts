/**
 * `createTestHost`'s options: their types, the schema that checks them before anything starts, and
 * how the manifest and the inline steps become one registration (entries built in memory, cached).
 */
import path from "node:path";
import { OptionsError } from "../../runtime/errors.js";
import type { Bundle, SandboxLimits, SandboxRuntime } from "../../runtime/index.js";
import { formatPath, parseOptions, strictOptions, v } from "../../runtime/schema.js";
import { SOURCE_ENTRY } from "../build.js";
import { isGuid, type Clock, type IdSource } from "../ids.js";
import { readJsonInput } from "../json-input.js";
import type { Identity } from "../organization/identity.js";
import { parseManifest, RegistryError, type Manifest } from "../registry/index.js";
import type { SecretSource } from "../relay/index.js";
import type { WebPolicyInput } from "../web/index.js";
import { cachedBuild } from "./build-cache.js";

// Options ////////////////////////////////////////////////////////////////////////////////////////

/** A step registered inline: the manifest's step entry, with the plug-in given as an `entry` file or a `bundle`. */
export interface TestStep {
  message: string;
  /** The primary table; none (or null) for every table. */
  entity?: string | null;
  /** @default 40 */
  stage?: 10 | 20 | 40;
  /** @default "sync" */
  mode?: "sync" | "async";
  /** The exported plug-in class. Required with `entry` or `bundle`. */
  type?: string;
  /** The plug-in's module (TypeScript or JavaScript), built in memory. */
  entry?: string;
  /** A bundle from `host.build()`, or a bundle file's path. */
  bundle?: Bundle | string;
  /** A service endpoint (name or id) that handles the step instead of a plug-in. */
  serviceEndpoint?: string;
  id?: string;
  name?: string;
  rank?: number;
  filteringAttributes?: string[] | string;
  unsecureConfig?: string | null;
  secureConfig?: string | null;
  runAs?: string | null;
  images?: Array<{ alias: string; type: "pre" | "post" | "both"; attributes?: string[] }>;
  isolation?: "fresh" | "reuse";
  asyncAutoDelete?: boolean;
  enabled?: boolean;
  description?: string | null;
}

/** Records by table: each one's `id` (a Guid; made up when left out) and its columns. */
export type SeedData = Record<string, Array<{ id?: string } & Record<string, unknown>>>;

export interface TestHostOptions {
  /** A manifest file (its relative bundle paths resolve against its folder; a `.ts` bundle path is built in memory) or a manifest object. */
  manifest?: string | Record<string, unknown>;
  /** Steps registered after the manifest's, by the same rules. */
  steps?: TestStep[];
  /** Table schemas, as the manifest's `tables`. */
  tables?: Record<string, { columns: Record<string, string>; primaryIdAttribute?: string; primaryNameAttribute?: string; alternateKeys?: Record<string, string[] | string> }>;
  /** Service endpoints, as the manifest's `serviceEndpoints`. */
  endpoints?: Array<{ id: string; name: string } & Record<string, unknown>>;
  /** The manifest's settings. @default { traceLogSetting: "All" }: every execution's trace is kept */
  settings?: { maxDepth?: number; traceLogSetting?: "Off" | "Exceptions" | "All"; maxAsyncAttempts?: number };
  /** Records written before anything runs (no step fires for them). */
  seed?: SeedData;
  /**
   * Users of the organization, as `systemuser` records (`{ id, fullname, … }`), written with the seed:
   * the ids a test passes as `execute(request, { userId })` or a step's `runAs`. The identity's default
   * user needs none.
   */
  users?: Array<{ id: string } & Record<string, unknown>>;
  /** Every execution's sandbox limits. */
  limits?: Partial<SandboxLimits>;
  /** The organization and its default user. */
  identity?: Partial<Identity>;
  /** @default the system clock */
  clock?: Clock;
  /** @default random Guids */
  ids?: IdSource;
  /** `"clock"`: plug-ins' Date and timers follow `clock` (the runtime's pluginTime). @default "system" */
  pluginTime?: "system" | "clock";
  /** `inbox` keeps every post in `host.inbox`; `network` sends them to the endpoints' brokers and webhooks. @default "inbox" */
  relay?: "inbox" | "network";
  /** Where endpoints' secrets (`env:NAME`, `file:NAME`) come from. @default the environment */
  secrets?: SecretSource;
  organizationUrl?: string;
  /** The outbound web policy, widened for tests. */
  webPolicy?: WebPolicyInput;
  /** Sandbox worker processes. @default 1 */
  workers?: number;
  /** A sandbox runtime to share (several test hosts in one file); otherwise the host starts its own. */
  runtime?: SandboxRuntime;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);
const text = v.pipe(v.string("must be a non-empty string"), v.minLength(1, "must be a non-empty string"));
const objectOf = (what: string) => v.custom<Record<string, unknown>>(isObject, `must be an object of ${what}`);
const withMethods = (what: string, ...methods: string[]) =>
  v.custom<object>((value) => isObject(value) && methods.every((m) => typeof value[m] === "function"), `must be ${what} (an object with ${methods.map((m) => `${m}()`).join(" and ")})`);
const isBundle = (value: unknown): boolean => isObject(value) && typeof value.source === "string" && typeof value.id === "string";

const stepSchema = strictOptions(
  {
    message: text,
    entity: v.nullish(text),
    stage: v.optional(v.picklist([10, 20, 40], "must be 10 (pre-validation), 20 (pre-operation) or 40 (post-operation)")),
    mode: v.optional(v.picklist(["sync", "async"], `must be "sync" or "async"`)),
    type: v.optional(text),
    entry: v.optional(v.pipe(text, v.regex(/\.(?:[cm]?[jt]s|tsx|jsx)$/i, "must be a plug-in module's path (.ts or .js), e.g. src/plugin.ts"))),
    bundle: v.optional(v.union([text, v.custom<Bundle>(isBundle)], "must be a bundle from host.build() or a bundle file's path")),
    serviceEndpoint: v.optional(text),
    id: v.optional(v.unknown()),
    name: v.optional(v.unknown()),
    rank: v.optional(v.unknown()),
    filteringAttributes: v.optional(v.unknown()),
    unsecureConfig: v.optional(v.nullable(v.string("must be a string or null"))),
    secureConfig: v.optional(v.nullable(v.string("must be a string or null"))),
    runAs: v.optional(v.unknown()),
    images: v.optional(v.unknown()),
    isolation: v.optional(v.unknown()),
    asyncAutoDelete: v.optional(v.unknown()),
    enabled: v.optional(v.unknown()),
    description: v.optional(v.unknown()),
  },
  "is not a key of a step; known keys are",
);

const testHostSchema = strictOptions({
  manifest: v.optional(v.union([text, objectOf("manifest entries")], "must be a manifest file's path or a manifest object")),
  steps: v.optional(v.array(stepSchema, "must be an array of steps ({ message, entity, stage, mode, type, entry })")),
  tables: v.optional(objectOf("table schemas (table → { columns })")),
  endpoints: v.optional(v.array(objectOf("endpoint settings ({ id, name, contract, … })"), "must be an array of service endpoints")),
  settings: v.optional(objectOf("manifest settings")),
  users: v.optional(v.array(objectOf("a user's columns ({ id, fullname, … })"), "must be an array of users ({ id, fullname, … })")),
  seed: v.optional(v.record(text, v.array(objectOf("columns"), "must be an array of records ({ id, …columns })"), "must be an object of table → records")),
  limits: v.optional(objectOf("sandbox limits")),
  identity: v.optional(objectOf("identity settings")),
  clock: v.optional(withMethods("a clock", "now")),
  ids: v.optional(withMethods("an id source", "newId")),
  pluginTime: v.optional(v.picklist(["system", "clock"], `must be "system" (plug-ins see the real time) or "clock" (they follow the clock option)`)),
  relay: v.optional(v.picklist(["inbox", "network"], `must be "inbox" (posts kept in host.inbox) or "network" (sent to the endpoints)`)),
  secrets: v.optional(objectOf("secret sources ({ env, file })")),
  organizationUrl: v.optional(text),
  webPolicy: v.optional(objectOf("web policy options")),
  workers: v.optional(v.pipe(v.number("must be an integer from 1 to 64"), v.integer("must be an integer from 1 to 64"), v.minValue(1, "must be an integer from 1 to 64"), v.maxValue(64, "must be an integer from 1 to 64"))),
  runtime: v.optional(withMethods("a sandbox runtime from createSandboxRuntime()", "execute", "close")),
});

const ROOT = "createTestHost options";

function invalid(at: string, message: string): OptionsError {
  return new OptionsError("OPTIONS_INVALID", `${at} ${message}`);
}

/** Checks every option before anything starts: OPTIONS_INVALID naming the key and the fix. */
export function checkOptions(options: TestHostOptions): void {
  parseOptions(testHostSchema, options, (items, message) => invalid(formatPath(ROOT, items), message));
  options.steps?.forEach((step, i) => {
    const at = formatPath(ROOT, ["steps", i]);
    const handlers = (["entry", "bundle", "serviceEndpoint"] as const).filter((key) => step[key] !== undefined);
    if (handlers.length !== 1) {
      throw invalid(at, `needs exactly one of entry (a plug-in module), bundle (a built bundle) or serviceEndpoint; ${handlers.length === 0 ? "it has none" : `it has ${handlers.join(" and ")}`}`);
    }
    if (step.serviceEndpoint === undefined && step.type === undefined) throw invalid(`${at}.type`, "is required: the exported plug-in class the step runs, e.g. \"AccountNumbering\"");
    if (step.serviceEndpoint !== undefined && step.type !== undefined) throw invalid(`${at}.type`, "is for plug-in steps; a step handled by a serviceEndpoint takes none");
  });
  options.users?.forEach((user, i) => {
    if (!isGuid(user.id)) throw invalid(formatPath(ROOT, ["users", i, "id"]), `must be a Guid such as "3f2504e0-4f89-11d3-9a0c-0305e82c3301": the id a request's caller or a step's runAs names; got ${JSON.stringify(user.id)}`);
  });
  for (const [table, records] of Object.entries(options.seed ?? {})) {
    records.forEach((record, i) => {
      if (record.id !== undefined && !isGuid(record.id)) throw invalid(formatPath(ROOT, ["seed", table, i, "id"]), `must be a Guid such as "3f2504e0-4f89-11d3-9a0c-0305e82c3301" (or left out to make one up); got ${JSON.stringify(record.id)}`);
    });
  }
}

// Registration ///////////////////////////////////////////////////////////////////////////////////

/** A manifest's raw entries with its relative bundle paths made absolute, and the folder they resolved against. */
async function rawManifest(given: TestHostOptions["manifest"]): Promise<{ raw: Record<string, unknown>; source: string }> {
  if (given === undefined) return { raw: {}, source: ROOT };
  if (typeof given !== "string") return { raw: given, source: `${ROOT}.manifest` };
  const raw = await readJsonInput(given, "manifest", {
    notFound: () => new RegistryError("MANIFEST_NOT_FOUND", `cannot read the manifest ${given}: it does not exist or is not readable`),
    invalid: (message) => new RegistryError("MANIFEST_INVALID", message),
  });
  if (!isObject(raw)) throw new RegistryError("MANIFEST_INVALID", `${given}: (root): must be an object`);
  const folder = path.dirname(path.resolve(given));
  const bundles = isObject(raw.bundles) ? raw.bundles : {};
  const absolute = Object.fromEntries(
    Object.entries(bundles).map(([name, entry]) => {
      const at = typeof entry === "string" ? entry : isObject(entry) && typeof entry.path === "string" ? entry.path : undefined;
      if (at === undefined) return [name, entry];
      const resolved = path.resolve(folder, at);
      return [name, typeof entry === "string" ? resolved : { ...(entry as object), path: resolved }];
    }),
  );
  return { raw: { ...raw, ...(raw.bundles === undefined ? {} : { bundles: absolute }) }, source: given };
}

/**
 * One manifest from the manifest given and the inline steps, tables and endpoints (inline steps
 * checked on their own first, so an error names their index); `.ts` bundles and `entry` steps are
 * built in memory (cached) and attached to their registration.
 */
export async function registration(options: TestHostOptions): Promise<Manifest> {
  const { raw, source } = await rawManifest(options.manifest);
  const bundles: Record<string, unknown> = { ...(isObject(raw.bundles) ? raw.bundles : {}) };
  const loaded = new Map<string, Bundle>();
  const steps = (options.steps ?? []).map((step) => {
    const { entry, bundle, ...rest } = step;
    if (entry !== undefined) {
      const name = `entry:${path.relative(process.cwd(), path.resolve(entry)) || entry}`;
      bundles[name] = { path: path.resolve(entry) };
      return { ...rest, bundle: name };
    }
    if (bundle !== undefined) {
      const name = typeof bundle === "string" ? `file:${bundle}` : `bundle:${bundle.id.slice(0, 16)}`;
      bundles[name] = { path: typeof bundle === "string" ? path.resolve(bundle) : path.resolve(bundle.directory ?? process.cwd(), bundle.filename) };
      if (typeof bundle !== "string") loaded.set(name, bundle);
      return { ...rest, bundle: name };
    }
    return rest;
  });
  const listOf = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
  const endpoints = [...listOf(raw.serviceEndpoints), ...(options.endpoints ?? [])];
  if (steps.length > 0) parseManifest({ bundles, serviceEndpoints: endpoints, steps }, ROOT);
  const merged: Record<string, unknown> = {
    ...raw,
    bundles,
    steps: [...listOf(raw.steps), ...steps],
    serviceEndpoints: endpoints,
    tables: { ...(isObject(raw.tables) ? raw.tables : {}), ...options.tables },
    settings: { traceLogSetting: "All", ...(isObject(raw.settings) ? raw.settings : {}), ...options.settings },
  };
  const manifest = parseManifest(merged, source);
  await Promise.all(
    [...manifest.bundles.values()].map(async (bundle) => {
      const given = loaded.get(bundle.name);
      if (given) bundle.loaded = given;
      else if (SOURCE_ENTRY.test(bundle.path) || bundle.name.startsWith("entry:")) bundle.loaded = await cachedBuild(bundle.path);
    }),
  );
  return manifest;
}

/** In inbox mode no secret is read: a secret an endpoint names resolves to a stand-in unless the test gives it. */
const INBOX_SECRET = "Endpoint=sb://inbox.plugbox.test/;SharedAccessKeyName=inbox;SharedAccessKey=inbox";
export function inboxSecrets(given: SecretSource | undefined): SecretSource {
  const env = given?.env ?? process.env;
  return { ...given, env: new Proxy({} as Record<string, string | undefined>, { get: (_, name) => (typeof name === "string" ? (env[name] ?? INBOX_SECRET) : undefined) }) };
}
