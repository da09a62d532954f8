/**
 * `forPlugin(bundle, type)`: one plug-in run described step by step, without a manifest:
 * `forPlugin("src/plugin.ts", "HelloPlugin").onCreate("account").stage(20).withTarget({ name: "Contoso" }).run()`.
 * Each call returns a new builder, so a described run can be shared by tests and varied. The result
 * is typed: `result.changes.target.attributes.description` needs no cast.
 */
import { open } from "node:fs/promises";
import { isPlainObject } from "../../sdk/codec.js";
import { EMPTY_GUID, Entity, EntityReference, typeOf } from "../../sdk/model.js";
import { parseRemoteExecutionContext, type RemoteExecutionContext, type WireFormat } from "../../sdk/wire/index.js";
import type { Bundle } from "../../runtime/index.js";
import { buildEntry, SOURCE_ENTRY } from "../build.js";
import type { ContextInput, EntityInput, Mode, Stage } from "../pipeline/context.js";
import { runPlugin, type PlainEntity, type PlainEntityReference, type RunChanges, type RunOptions } from "../run.js";
import { withExitStatus, type RunResult } from "../cli/exit-statuses.js";
import { TestingError } from "./errors.js";

/** What runs a described plug-in: a `TestHost` (or anything with its `run`). */
export interface PluginRunner {
  run(options: Omit<RunOptions, "runtime">): Promise<RunResult>;
}

export interface ForPluginOptions {
  /** Runs with this host's runtime and services; without one, each run starts and closes a runtime of its own. */
  host?: PluginRunner;
}

/** A target or image: an Entity, a plain `{ logicalName, id?, attributes }`, or just its columns (`{ name: "Contoso" }`) for the table of `onCreate`/`onUpdate`/`on`. */
export type EntityArgument = Entity | EntityInput | Record<string, unknown>;

/** The plain target a run's result carries for the target it was given. */
export type TargetOf<Input> = Input extends EntityReference
  ? PlainEntityReference
  : Input extends Entity
    ? PlainEntity
    : Input extends { logicalName: string; attributes: object }
      ? PlainEntity
      : Input extends { logicalName: string; id: string }
        ? PlainEntity | PlainEntityReference // a reference for a message other than Create and Update
        : PlainEntity;

export type RunTarget = PlainEntity | PlainEntityReference | null;

/** A run's result with its changes typed; reading `changes` of a run that failed throws TEST_RUN_FAILED with the run's error. */
export interface TypedRunResult<Target extends RunTarget = RunTarget> extends Omit<RunResult, "changes"> {
  changes: RunChanges<Target>;
}

type Extra = Partial<Omit<RunOptions, "bundle" | "typeName" | "context" | "unsecureConfig" | "secureConfig" | "runtime">>;

interface Described {
  readonly source: BundleSource;
  readonly typeName: string;
  readonly host: PluginRunner | undefined;
  /** The table and record of onCreate/onUpdate/onDelete/on. */
  readonly entity: string | undefined;
  readonly id: string | undefined;
  readonly target: EntityArgument | EntityReference | undefined;
  readonly preImages: Readonly<Record<string, EntityArgument>>;
  readonly postImages: Readonly<Record<string, EntityArgument>>;
  readonly context: ContextInput;
  readonly unsecureConfig: string | null;
  readonly secureConfig: string | null;
  readonly options: Extra;
}

/** The bundle, built once for every builder made from the same `forPlugin` call. */
class BundleSource {
  readonly #given: Bundle | string;
  #resolved: Promise<Bundle | string> | undefined;
  constructor(given: Bundle | string) {
    this.#given = given;
  }
  get(): Promise<Bundle | string> {
    return (this.#resolved ??= resolveBundle(this.#given));
  }
}

/** A bundle file made by `plugbox build` starts with its banner; a module that imports or exports is an entry to build. */
async function resolveBundle(given: Bundle | string): Promise<Bundle | string> {
  if (typeof given !== "string") return given;
  if (SOURCE_ENTRY.test(given) || /\.mjs$/i.test(given)) return buildEntry(given);
  let head = "";
  const file = await open(given).catch(() => undefined);
  if (!file) return given; // runPlugin says it does not exist, with the fix
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
    head = buffer.subarray(0, bytesRead).toString("utf8");
  } finally {
    await file.close();
  }
  if (head.startsWith("// plugbox bundle")) return given;
  return /^\s*(?:export|import)\s[^(]/m.test(head) ? buildEntry(given) : given;
}

function isEntityShaped(value: unknown): value is Entity | EntityReference | EntityInput {
  const tag = typeOf(value);
  return tag === "Entity" || tag === "EntityReference" || (isPlainObject(value) && typeof value.logicalName === "string");
}

/** Describes one run of the exported plug-in class `typeName` of `bundle` (a Bundle, a bundle file, or a TypeScript/JavaScript entry built in memory). */
export function forPlugin(bundle: Bundle | string, typeName: string, options: ForPluginOptions = {}): PluginRunBuilder<null> {
  return new PluginRunBuilder<null>({
    source: new BundleSource(bundle),
    typeName,
    host: options.host,
    entity: undefined,
    id: undefined,
    target: undefined,
    preImages: {},
    postImages: {},
    context: {},
    unsecureConfig: null,
    secureConfig: null,
    options: {},
  });
}

export class PluginRunBuilder<Target extends RunTarget = RunTarget> {
  readonly #d: Described;

  /** @internal use forPlugin() */
  constructor(described: Described) {
    this.#d = described;
  }

  #with<T extends RunTarget = Target>(change: Partial<Described>): PluginRunBuilder<T> {
    return new PluginRunBuilder<T>({ ...this.#d, ...change });
  }

  #context(change: ContextInput): Partial<Described> {
    return { context: { ...this.#d.context, ...change } };
  }

  /** A Create of `entity` (the target is a new record of it unless `withTarget` says otherwise). */
  onCreate(entity: string): PluginRunBuilder<Target extends null ? PlainEntity : Target> {
    return this.#with({ entity, ...this.#context({ messageName: "Create", primaryEntityName: entity }) });
  }

  /** An Update of `entity`; `id` is the record's (the target's columns then need no id of their own). */
  onUpdate(entity: string, id?: string): PluginRunBuilder<Target extends null ? PlainEntity : Target> {
    return this.#with({ entity, id, ...this.#context({ messageName: "Update", primaryEntityName: entity }) });
  }

  /** A Delete of the record `id` of `entity`: its target is an EntityReference. */
  onDelete(entity: string, id?: string): PluginRunBuilder<Target extends null ? PlainEntityReference : Target> {
    return this.#with({ entity, id, ...this.#context({ messageName: "Delete", primaryEntityName: entity }) });
  }

  /** Any message, for `entity` (or none). */
  on(message: string, entity?: string, id?: string): PluginRunBuilder<Target extends null ? RunTarget : Target> {
    return this.#with({ entity, id, ...this.#context({ messageName: message, ...(entity === undefined ? {} : { primaryEntityName: entity }) }) });
  }

  /** @default 40 */
  stage(stage: Stage): PluginRunBuilder<Target> {
    return this.#with(this.#context({ stage }));
  }

  /** @default "sync"; "async" runs only at stage 40. */
  mode(mode: Mode): PluginRunBuilder<Target> {
    return this.#with(this.#context({ mode }));
  }

  /** InputParameters.Target: an Entity or EntityReference, a plain `{ logicalName, id?, attributes }`, or the columns of the table named by `onCreate`/`onUpdate`/`on`. */
  withTarget<const Input extends EntityArgument | EntityReference>(target: Input): PluginRunBuilder<TargetOf<Input>> {
    return this.#with<TargetOf<Input>>({ target });
  }

  /** A pre-entity image, as the target is given. */
  withPreImage(alias: string, image: EntityArgument): PluginRunBuilder<Target> {
    return this.#with({ preImages: { ...this.#d.preImages, [alias]: image } });
  }

  /** A post-entity image (stage 40), as the target is given. */
  withPostImage(alias: string, image: EntityArgument): PluginRunBuilder<Target> {
    return this.#with({ postImages: { ...this.#d.postImages, [alias]: image } });
  }

  /** The step's unsecure and secure configuration, passed to the plug-in's constructor. */
  withConfig(unsecure: string | null, secure: string | null = null): PluginRunBuilder<Target> {
    return this.#with({ unsecureConfig: unsecure, secureConfig: secure });
  }

  /** The user the step runs as (UserId); InitiatingUserId is the same unless given. */
  withUser(userId: string, initiatingUserId?: string): PluginRunBuilder<Target> {
    return this.#with(this.#context({ userId, ...(initiatingUserId === undefined ? {} : { initiatingUserId }) }));
  }

  /** Shared variables, added to those given before. */
  withSharedVariables(variables: Record<string, unknown>): PluginRunBuilder<Target> {
    return this.#with(this.#context({ sharedVariables: { ...this.#d.context.sharedVariables, ...variables } }));
  }

  /** Input parameters besides Target, by their Dataverse keys, added to those given before. */
  withInputParameters(parameters: Record<string, unknown>): PluginRunBuilder<Target> {
    return this.#with(this.#context({ inputParameters: { ...this.#d.context.inputParameters, ...parameters } }));
  }

  /** Any other part of the context (depth, parentContext, correlationId, organization, …). */
  withContext(context: ContextInput): PluginRunBuilder<Target> {
    return this.#with(this.#context(context));
  }

  /** Run options: `isolation`, `limits`, `webAllowedHosts`, `signal`, `clock`, `ids`, and, without a host, the services. */
  withOptions(options: Extra): PluginRunBuilder<Target> {
    return this.#with({ options: { ...this.#d.options, ...options } });
  }

  /**
   * The context of a RemoteExecutionContext, as Dataverse posts it (JSON or Text XML text, its
   * parsed JSON, or a context already read): message, table, stage, mode, depth, target, other
   * input and output parameters, shared variables, images, users and correlation. Calls after it
   * change what they name.
   */
  fromContext(context: string | RemoteExecutionContext | Record<string, unknown>, format?: WireFormat): PluginRunBuilder<RunTarget> {
    const read = readRemoteContext(context, format);
    const { Target, ...inputParameters } = (read.inputParameters ?? {}) as Record<string, unknown>;
    const input: ContextInput = {
      messageName: read.messageName,
      primaryEntityName: read.primaryEntityName,
      stage: read.stage as Stage,
      mode: read.mode === 1 ? "async" : "sync",
      depth: read.depth,
      inputParameters,
      outputParameters: { ...read.outputParameters },
      sharedVariables: { ...read.sharedVariables },
      userId: read.userId,
      initiatingUserId: read.initiatingUserId,
      businessUnitId: read.businessUnitId,
      organizationId: read.organizationId,
      organizationName: read.organizationName,
      correlationId: read.correlationId,
      parentContext: (read.parentContext as Record<string, unknown> | null) ?? null,
      ...(read.owningExtension ? { owningExtension: read.owningExtension } : {}),
      ...(read.primaryEntityId && read.primaryEntityId !== EMPTY_GUID ? { primaryEntityId: read.primaryEntityId } : {}),
    };
    return this.#with<RunTarget>({
      entity: read.primaryEntityName === "none" ? undefined : read.primaryEntityName,
      id: read.primaryEntityId && read.primaryEntityId !== EMPTY_GUID ? read.primaryEntityId : undefined,
      target: Target as Entity | EntityReference | undefined,
      preImages: { ...(read.preEntityImages as Record<string, Entity>) },
      postImages: { ...(read.postEntityImages as Record<string, Entity>) },
      context: input,
    });
  }

  /** The options `run()` passes to the host, but for the bundle (built when it is an entry). */
  #runOptions(): Omit<RunOptions, "runtime" | "bundle"> {
    const d = this.#d;
    const context: ContextInput = { ...d.context };
    const target = d.target === undefined ? this.#defaultTarget() : this.#entity(d.target, "withTarget");
    if (target !== undefined) context.target = target;
    if (d.id !== undefined && target === undefined) context.primaryEntityId = d.id;
    if (Object.keys(d.preImages).length > 0) context.preEntityImages = this.#images(d.preImages, "withPreImage");
    if (Object.keys(d.postImages).length > 0) context.postEntityImages = this.#images(d.postImages, "withPostImage");
    return { ...d.options, typeName: d.typeName, context, unsecureConfig: d.unsecureConfig, secureConfig: d.secureConfig };
  }

  /** Runs the plug-in once in the real sandbox. */
  async run(): Promise<TypedRunResult<Target>> {
    const options = { ...this.#runOptions(), bundle: await this.#d.source.get() };
    const result = this.#d.host ? await this.#d.host.run(options) : withExitStatus(await runPlugin(options));
    return typed<Target>(result);
  }

  /** A Create or Update with no target given has a target of its table with no columns; a Delete of a record, a reference to it. */
  #defaultTarget(): Entity | EntityReference | undefined {
    const { entity, id, context } = this.#d;
    if (entity === undefined) return undefined;
    const message = context.messageName ?? "Create";
    if (message === "Create" || message === "Update") return new Entity(entity, id);
    return id === undefined ? undefined : new EntityReference(entity, id);
  }

  #entity(value: EntityArgument | EntityReference, method: string): Entity | EntityReference | EntityInput {
    if (isEntityShaped(value)) return value;
    const { entity, id } = this.#d;
    if (entity === undefined) {
      throw new TestingError("TEST_BUILDER_INVALID", `${method}({ …columns }) needs the table: call onCreate("account"), onUpdate(…) or on(message, table) first, or pass { logicalName, attributes }`);
    }
    return { logicalName: entity, ...(id === undefined ? {} : { id }), attributes: value };
  }

  #images(images: Readonly<Record<string, EntityArgument>>, method: string): Record<string, Entity | EntityInput> {
    const out: Record<string, Entity | EntityInput> = {};
    for (const [alias, image] of Object.entries(images)) {
      const entity = this.#entity(image, method);
      if (entity instanceof EntityReference) throw new TestingError("TEST_BUILDER_INVALID", `${method}("${alias}", …) takes an entity, not an EntityReference`);
      out[alias] = entity;
    }
    return out;
  }
}

function readRemoteContext(context: string | RemoteExecutionContext | Record<string, unknown>, format: WireFormat | undefined): RemoteExecutionContext {
  if (typeof context === "string") return parseRemoteExecutionContext(context, format);
  // Dataverse's JSON parsed (PascalCase members, collections as key/value arrays), or a context already read (camelCase).
  if (isPlainObject(context) && "MessageName" in context) return parseRemoteExecutionContext(JSON.stringify(context), "json");
  return context as RemoteExecutionContext;
}

/** The run's result, whose `changes` throw TEST_RUN_FAILED when read after a failed run (they are not there to read). */
function typed<Target extends RunTarget>(result: RunResult): TypedRunResult<Target> {
  if (result.changes !== null) return result as TypedRunResult<Target>;
  const { changes: _none, ...rest } = result;
  const error = result.error;
  const why = error ? `${error.code}: ${error.message}` : "no error was reported";
  Object.defineProperty(rest, "changes", {
    enumerable: false,
    get() {
      throw new TestingError("TEST_RUN_FAILED", `the plug-in run failed (${why}), so it has no changes; check result.ok first, or expect(result).toHaveFailedWith(code)${result.trace ? `\ntrace:\n${result.trace}` : ""}`);
    },
  });
  return rest as TypedRunResult<Target>;
}
