/**
 * The execution context (IPluginExecutionContext's properties, camelCase): `executionContext` is
 * the one builder, which the pipeline fills for each step; `buildContext` fills it for a plug-in
 * run on its own, with Dataverse's defaults and rules: stages 10, 20 and 40; asynchronous only at
 * 40; OutputParameters.id of a Create from stage 40 on.
 */
import { isPlainObject } from "../../sdk/codec.js";
import { ColumnSet, Entity, EntityReference, EMPTY_GUID, typeOf, type Attributes, type AttributeValue } from "../../sdk/model.js";
import { UsageError } from "../errors.js";
import { isGuid, systemClock, randomIds, type Clock, type IdSource } from "../ids.js";
import { toEntity } from "../organization/columns.js";
import { identityDefaults, type Identity } from "../organization/identity.js";
import type { StageNumber, StepImage, StepRegistration } from "../registry/index.js";
import type { StepRun } from "./journal.js";

export type Stage = 10 | 20 | 40;
export type Mode = "sync" | "async";

/**
 * An entity as a plain object of an Entity's shape, accepted wherever an Entity is:
 * `{ logicalName: "account", attributes: { name: "Contoso" } }`. Attribute values are SDK values
 * or their plugbox JSON (`{ "$type": "Money", "value": 10 }`).
 */
export interface EntityInput {
  logicalName: string;
  /** @default the empty Guid (a Create's new record) */
  id?: string;
  attributes?: Record<string, unknown>;
  formattedValues?: Record<string, string>;
  keyAttributes?: Record<string, unknown>;
}

/** An entity reference as a plain object: `{ logicalName, id, name? }`. */
export interface EntityReferenceInput {
  logicalName: string;
  id: string;
  name?: string | null;
}

export interface ContextInput {
  /** @default "Create" */
  messageName?: string;
  /** @default the target's logicalName */
  primaryEntityName?: string;
  /** @default the target's id (a Create's at stage 40: a new one) */
  primaryEntityId?: string;
  /**
   * InputParameters.Target: an Entity (Create, Update) or an EntityReference (Delete, …), as an
   * instance or a plain object. A plain `{ logicalName, id }` with no attributes is a reference for
   * a message other than Create and Update, as a `--target` file is.
   */
  target?: Entity | EntityReference | EntityInput;
  /** @default 40 */
  stage?: Stage;
  /** @default "sync" */
  mode?: Mode;
  sharedVariables?: Record<string, unknown>;
  /** Further input parameters, by their Dataverse keys. */
  inputParameters?: Record<string, unknown>;
  /** Output parameters already set (a post-operation context replayed); a Create's `id` at stage 40 is added. */
  outputParameters?: Record<string, unknown>;
  preEntityImages?: Record<string, Entity | EntityInput>;
  postEntityImages?: Record<string, Entity | EntityInput>;
  userId?: string;
  initiatingUserId?: string;
  businessUnitId?: string;
  organizationId?: string;
  organizationName?: string;
  correlationId?: string;
  /** @default 1 */
  depth?: number;
  parentContext?: Record<string, unknown> | null;
  owningExtension?: EntityReference | EntityReferenceInput;
  // A context captured elsewhere (`plugbox replay`) keeps its ids and parts; made afresh when not given.
  /** @default "none" */
  secondaryEntityName?: string;
  /** @default a new id (null in a captured asynchronous context, as Dataverse posts it) */
  requestId?: string | null;
  /** @default the RequestId */
  operationId?: string;
  /** @default now */
  operationCreatedOn?: Date;
  /** @default true for a synchronous step past stage 10 */
  isInTransaction?: boolean;
  /** @default 2 (Sandbox), where plugbox runs every plug-in; 1 (None) in a context captured from a step registered so */
  isolationMode?: number;
  userAzureActiveDirectoryObjectId?: string;
  initiatingUserAzureActiveDirectoryObjectId?: string;
}

export const contextDefaults = Object.freeze({
  messageName: "Create",
  stage: 40 as Stage,
  mode: "sync" as Mode,
  userId: identityDefaults.defaultUserId,
  businessUnitId: identityDefaults.businessUnitId,
  organizationId: identityDefaults.organizationId,
  organizationName: identityDefaults.organizationName,
});

/** What differs from one execution context to the next; the rest is the same for every one. */
export interface ContextFields {
  messageName: string;
  primaryEntityName: string;
  primaryEntityId: string;
  stage: number;
  mode: 0 | 1;
  depth: number;
  inputParameters: Record<string, unknown>;
  outputParameters: Record<string, unknown>;
  sharedVariables: Record<string, unknown>;
  preEntityImages: Record<string, Entity>;
  postEntityImages: Record<string, Entity>;
  userId: string;
  initiatingUserId: string;
  businessUnitId: string;
  organizationId: string;
  organizationName: string;
  owningExtension: EntityReference;
  correlationId: string;
  requestId: string | null;
  operationId: string;
  operationCreatedOn: Date;
  isInTransaction: boolean;
  parentContext: Record<string, unknown> | null;
  authenticatedUserId: string;
  /** @default "none" */
  secondaryEntityName?: string;
  /** @default 2 (Sandbox) */
  isolationMode?: number;
  /** @default the empty Guid */
  userAzureActiveDirectoryObjectId?: string;
  /** @default the empty Guid */
  initiatingUserAzureActiveDirectoryObjectId?: string;
}

/** The execution context of one execution. */
export function executionContext(f: ContextFields): Record<string, unknown> {
  return {
    messageName: f.messageName,
    primaryEntityName: f.primaryEntityName,
    primaryEntityId: f.primaryEntityId,
    secondaryEntityName: f.secondaryEntityName ?? "none",
    stage: f.stage,
    mode: f.mode,
    isolationMode: f.isolationMode ?? 2,
    depth: f.depth,
    inputParameters: f.inputParameters,
    outputParameters: f.outputParameters,
    sharedVariables: f.sharedVariables,
    preEntityImages: f.preEntityImages,
    postEntityImages: f.postEntityImages,
    userId: f.userId,
    initiatingUserId: f.initiatingUserId,
    businessUnitId: f.businessUnitId,
    organizationId: f.organizationId,
    organizationName: f.organizationName,
    owningExtension: f.owningExtension,
    correlationId: f.correlationId,
    requestId: f.requestId,
    operationId: f.operationId,
    operationCreatedOn: f.operationCreatedOn,
    isExecutingOffline: false,
    isOfflinePlayback: false,
    isInTransaction: f.isInTransaction,
    parentContext: f.parentContext,
    userAzureActiveDirectoryObjectId: f.userAzureActiveDirectoryObjectId ?? EMPTY_GUID,
    initiatingUserAzureActiveDirectoryObjectId: f.initiatingUserAzureActiveDirectoryObjectId ?? EMPTY_GUID,
    initiatingUserApplicationId: EMPTY_GUID,
    portalsContactId: EMPTY_GUID,
    isPortalsClientCall: false,
    authenticatedUserId: f.authenticatedUserId,
    initiatingUserAgent: "plugbox",
    environmentId: f.organizationId,
    tenantId: EMPTY_GUID,
    isApplicationUser: false,
  };
}

export function buildContext(input: ContextInput, deps: { clock?: Clock; ids?: IdSource } = {}): Record<string, unknown> {
  const clock = deps.clock ?? systemClock;
  const ids = deps.ids ?? randomIds;
  const messageName = input.messageName ?? contextDefaults.messageName;
  const stage = input.stage ?? contextDefaults.stage;
  const mode = input.mode ?? contextDefaults.mode;
  if (![10, 20, 40].includes(stage)) throw new UsageError("CONTEXT_INVALID", `stage must be 10 (pre-validation), 20 (pre-operation) or 40 (post-operation), not ${String(stage)}`);
  if (mode === "async" && stage !== 40) throw new UsageError("CONTEXT_INVALID", "asynchronous steps run only at stage 40 (post-operation), as in Dataverse; use --stage 40 or --mode sync");
  const target = input.target === undefined ? undefined : entityOrReference(input.target, "target", messageName);
  // An id that is not a Guid never reaches a plug-in as its primary entity id.
  if (target && !isGuid(target.id)) throw new UsageError("CONTEXT_INVALID", `the target's id must be a Guid such as "6d81597f-0f9f-e711-8122-000d3aa2331c", got ${JSON.stringify(target.id)}`);
  if (input.primaryEntityId !== undefined && !isGuid(input.primaryEntityId)) throw new UsageError("CONTEXT_INVALID", `the primary entity id must be a Guid, got ${JSON.stringify(input.primaryEntityId)}`);
  const primaryEntityName = input.primaryEntityName ?? target?.logicalName ?? "none";
  const inputParameters: Record<string, unknown> = { ...input.inputParameters };
  const outputParameters: Record<string, unknown> = { ...input.outputParameters };
  let primaryEntityId = input.primaryEntityId ?? (target && target.id !== EMPTY_GUID ? target.id : EMPTY_GUID);
  if (target) inputParameters.Target = target;
  if ((messageName === "Update" || messageName === "Delete") && primaryEntityId === EMPTY_GUID) {
    throw new UsageError("CONTEXT_INVALID", `a ${messageName} needs a target with an id; add "id" to the target`);
  }
  // A captured context (its output parameters given) is replayed as it was, its Target untouched.
  if (messageName === "Create" && stage === 40 && input.outputParameters === undefined) {
    if (primaryEntityId === EMPTY_GUID) primaryEntityId = ids.newId();
    if (target) target.id = primaryEntityId;
    outputParameters.id = primaryEntityId;
  }
  const requestId = input.requestId === undefined ? ids.newId() : input.requestId;
  const userId = input.userId ?? contextDefaults.userId;
  const organizationId = input.organizationId ?? contextDefaults.organizationId;
  return executionContext({
    messageName,
    primaryEntityName,
    primaryEntityId,
    stage,
    mode: mode === "async" ? 1 : 0,
    depth: input.depth ?? 1,
    inputParameters,
    outputParameters,
    sharedVariables: { ...input.sharedVariables },
    preEntityImages: images(input.preEntityImages, "preEntityImages"),
    postEntityImages: images(input.postEntityImages, "postEntityImages"),
    userId,
    initiatingUserId: input.initiatingUserId ?? userId,
    businessUnitId: input.businessUnitId ?? contextDefaults.businessUnitId,
    organizationId,
    organizationName: input.organizationName ?? contextDefaults.organizationName,
    owningExtension: input.owningExtension ? reference(input.owningExtension) : new EntityReference("sdkmessageprocessingstep", ids.newId()),
    correlationId: input.correlationId ?? ids.newId(),
    requestId,
    // Observed in Dataverse: a synchronous context carries its RequestId as OperationId.
    operationId: input.operationId ?? requestId ?? ids.newId(),
    operationCreatedOn: input.operationCreatedOn ?? clock.now(),
    isInTransaction: input.isInTransaction ?? (mode === "sync" && stage !== 10),
    parentContext: input.parentContext ?? null,
    authenticatedUserId: userId,
    ...(input.secondaryEntityName !== undefined ? { secondaryEntityName: input.secondaryEntityName } : {}),
    ...(input.isolationMode !== undefined ? { isolationMode: input.isolationMode } : {}),
    ...(input.userAzureActiveDirectoryObjectId !== undefined ? { userAzureActiveDirectoryObjectId: input.userAzureActiveDirectoryObjectId } : {}),
    ...(input.initiatingUserAzureActiveDirectoryObjectId !== undefined ? { initiatingUserAzureActiveDirectoryObjectId: input.initiatingUserAzureActiveDirectoryObjectId } : {}),
  });
}

/**
 * An Entity or EntityReference given as an instance (kept: a Create's target at stage 40 gets its
 * new id) or as a plain object of its shape (copied into one): a context's target and images, and
 * `plugbox run --target`'s file.
 */
export function entityOrReference(value: Entity | EntityReference | EntityInput, what: string, messageName: string): Entity | EntityReference {
  const tag = typeOf(value);
  if (tag === "Entity" || tag === "EntityReference") return value as Entity | EntityReference;
  const plain = value as unknown;
  if (!isPlainObject(plain) || typeof plain.logicalName !== "string" || plain.logicalName === "") {
    throw new UsageError("CONTEXT_INVALID", `the ${what} must be an Entity, an EntityReference or a plain { logicalName, id?, attributes? }`);
  }
  if (plain.attributes !== undefined && !isPlainObject(plain.attributes)) throw new UsageError("CONTEXT_INVALID", `the ${what}'s attributes must be an object of column values`);
  const id = typeof plain.id === "string" ? plain.id.toLowerCase() : (plain.id ?? undefined);
  if (id !== undefined && !isGuid(id)) throw new UsageError("CONTEXT_INVALID", `the ${what}'s "id" must be a Guid such as "6d81597f-0f9f-e711-8122-000d3aa2331c", got ${JSON.stringify(plain.id)}`);
  // Its plugbox JSON says which it is (a run's changes given back); else, as a --target file is read.
  const isReference = plain.$type === "EntityReference" || (plain.$type === undefined && plain.attributes === undefined && id !== undefined && messageName !== "Create" && messageName !== "Update");
  if (isReference) {
    if (id === undefined) throw new UsageError("CONTEXT_INVALID", `the ${what} is an EntityReference, which needs an id`);
    return new EntityReference(plain.logicalName, id, typeof plain.name === "string" ? plain.name : null);
  }
  const entity = new Entity(plain.logicalName, id, { ...(plain.attributes as Attributes | undefined) });
  if (isPlainObject(plain.formattedValues)) entity.formattedValues = { ...(plain.formattedValues as Record<string, string>) };
  if (isPlainObject(plain.keyAttributes)) entity.keyAttributes = { ...(plain.keyAttributes as Record<string, AttributeValue>) };
  return entity;
}

function images(input: Record<string, Entity | EntityInput> | undefined, what: string): Record<string, Entity> {
  const out: Record<string, Entity> = {};
  for (const [alias, value] of Object.entries(input ?? {})) {
    const image = entityOrReference(value, `${what}.${alias}`, "Create");
    if (!(image instanceof Entity)) throw new UsageError("CONTEXT_INVALID", `${what}.${alias} must be an entity, not a reference`);
    out[alias] = image;
  }
  return out;
}

function reference(value: EntityReference | EntityReferenceInput): EntityReference {
  if (value instanceof EntityReference) return value;
  return new EntityReference(value.logicalName, value.id, value.name ?? null);
}

/** Whether a step runs for this request: an Update's step with filtering attributes runs when the target has one of them. */
export function passesFilter(step: StepRegistration, run: StepRun): boolean {
  if (run.message !== "Update" || step.filteringAttributes.length === 0) return true;
  const target = run.inputParameters.Target as Entity | undefined;
  return step.filteringAttributes.some((column) => target !== undefined && column in target.attributes);
}

function image(step: StepImage, record: Record<string, unknown> | undefined, entity: string, id: string): Entity | undefined {
  if (!record) return undefined;
  const columns = step.attributes.length === 0 ? new ColumnSet(true) : new ColumnSet(...step.attributes);
  return toEntity(entity, id, record, columns);
}

/** The contexts the pipeline's steps see. */
export class StepContexts {
  readonly #identity: Identity;
  readonly #clock: Clock;
  readonly #ids: IdSource;

  constructor(identity: Identity, clock: Clock, ids: IdSource) {
    this.#identity = identity;
    this.#clock = clock;
    this.#ids = ids;
  }

  /** The execution context a step sees; an async step's job gives its operation. */
  forStep(step: StepRegistration, stage: StageNumber, run: StepRun, mode: 0 | 1, operation?: { id: string; createdOn: Date }): Record<string, unknown> {
    const scope = run.scope;
    const preEntityImages: Record<string, Entity> = {};
    const postEntityImages: Record<string, Entity> = {};
    for (const wanted of step.images) {
      if (!run.entity) continue;
      if (wanted.type !== "post") {
        const pre = image(wanted, run.preImage, run.entity, run.primaryId);
        if (pre) preEntityImages[wanted.alias] = pre;
      }
      if (wanted.type !== "pre" && stage === 40) {
        const post = image(wanted, run.postImage, run.entity, run.primaryId);
        if (post) postEntityImages[wanted.alias] = post;
      }
    }
    const requestId = this.#ids.newId();
    const identity = this.#identity;
    return executionContext({
      messageName: run.message,
      primaryEntityName: run.entity ?? "none",
      primaryEntityId: run.primaryId,
      stage,
      mode,
      depth: scope.depth,
      inputParameters: run.inputParameters,
      outputParameters: run.outputParameters,
      sharedVariables: run.sharedVariables,
      preEntityImages,
      postEntityImages,
      userId: step.runAs ?? scope.userId,
      initiatingUserId: scope.initiatingUserId,
      businessUnitId: identity.businessUnitId,
      organizationId: identity.organizationId,
      organizationName: identity.organizationName,
      owningExtension: new EntityReference("sdkmessageprocessingstep", step.id, step.name),
      correlationId: scope.correlationId,
      requestId,
      operationId: operation?.id ?? requestId,
      operationCreatedOn: operation?.createdOn ?? this.#clock.now(),
      isInTransaction: mode === 0 && scope.inTransaction,
      parentContext: run.parentContext,
      authenticatedUserId: scope.initiatingUserId,
    });
  }
}
