/**
 * Builds an execution context (IPluginExecutionContext's properties, camelCase) for one
 * execution, with Dataverse's defaults and rules: stages 10, 20 and 40; asynchronous only at 40;
 * OutputParameters.id of a Create from stage 40 on.
 */
import { Entity, EntityReference, EMPTY_GUID } from "../sdk/model.js";
import { UsageError } from "./errors.js";
import { isGuid, systemClock, randomIds, type Clock, type IdSource } from "./ids.js";

export type Stage = 10 | 20 | 40;
export type Mode = "sync" | "async";

export interface ContextInput {
  /** @default "Create" */
  messageName?: string;
  /** @default the target's logicalName */
  primaryEntityName?: string;
  /** InputParameters.Target: an Entity (Create, Update) or an EntityReference (Delete, …). */
  target?: Entity | EntityReference;
  /** @default 40 */
  stage?: Stage;
  /** @default "sync" */
  mode?: Mode;
  sharedVariables?: Record<string, unknown>;
  /** Further input parameters, by their Dataverse keys. */
  inputParameters?: Record<string, unknown>;
  preEntityImages?: Record<string, Entity>;
  postEntityImages?: Record<string, Entity>;
  userId?: string;
  initiatingUserId?: string;
  businessUnitId?: string;
  organizationId?: string;
  organizationName?: string;
  correlationId?: string;
  /** @default 1 */
  depth?: number;
  parentContext?: Record<string, unknown> | null;
  owningExtension?: EntityReference;
}

export const contextDefaults = Object.freeze({
  messageName: "Create",
  stage: 40 as Stage,
  mode: "sync" as Mode,
  userId: "00000000-0000-0000-0000-000000000001",
  businessUnitId: "00000000-0000-0000-0000-000000000002",
  organizationId: "00000000-0000-0000-0000-000000000003",
  organizationName: "plugbox",
});

export function buildContext(input: ContextInput, deps: { clock?: Clock; ids?: IdSource } = {}): Record<string, unknown> {
  const clock = deps.clock ?? systemClock;
  const ids = deps.ids ?? randomIds;
  const messageName = input.messageName ?? contextDefaults.messageName;
  const stage = input.stage ?? contextDefaults.stage;
  const mode = input.mode ?? contextDefaults.mode;
  if (![10, 20, 40].includes(stage)) throw new UsageError("CONTEXT_INVALID", `stage must be 10 (pre-validation), 20 (pre-operation) or 40 (post-operation), not ${String(stage)}`);
  if (mode === "async" && stage !== 40) throw new UsageError("CONTEXT_INVALID", "asynchronous steps run only at stage 40 (post-operation), as in Dataverse; use --stage 40 or --mode sync");
  const target = input.target;
  // An id that is not a Guid never reaches a plug-in as its primary entity id.
  if (target && !isGuid(target.id)) throw new UsageError("CONTEXT_INVALID", `the target's id must be a Guid such as "6d81597f-0f9f-e711-8122-000d3aa2331c", got ${JSON.stringify(target.id)}`);
  const primaryEntityName = input.primaryEntityName ?? target?.logicalName ?? "none";
  const inputParameters: Record<string, unknown> = { ...input.inputParameters };
  const outputParameters: Record<string, unknown> = {};
  let primaryEntityId = target && target.id !== EMPTY_GUID ? target.id : EMPTY_GUID;
  if (target) inputParameters.Target = target;
  if ((messageName === "Update" || messageName === "Delete") && primaryEntityId === EMPTY_GUID) {
    throw new UsageError("CONTEXT_INVALID", `a ${messageName} needs a target with an id; add "id" to the target`);
  }
  if (messageName === "Create" && stage === 40) {
    if (primaryEntityId === EMPTY_GUID) primaryEntityId = ids.newId();
    if (target) target.id = primaryEntityId;
    outputParameters.id = primaryEntityId;
  }
  const requestId = ids.newId();
  const userId = input.userId ?? contextDefaults.userId;
  return {
    messageName,
    primaryEntityName,
    primaryEntityId,
    secondaryEntityName: "none",
    stage,
    mode: mode === "async" ? 1 : 0,
    isolationMode: 2,
    depth: input.depth ?? 1,
    inputParameters,
    outputParameters,
    sharedVariables: { ...input.sharedVariables },
    preEntityImages: { ...input.preEntityImages },
    postEntityImages: { ...input.postEntityImages },
    userId,
    initiatingUserId: input.initiatingUserId ?? userId,
    businessUnitId: input.businessUnitId ?? contextDefaults.businessUnitId,
    organizationId: input.organizationId ?? contextDefaults.organizationId,
    organizationName: input.organizationName ?? contextDefaults.organizationName,
    owningExtension: input.owningExtension ?? new EntityReference("sdkmessageprocessingstep", ids.newId()),
    correlationId: input.correlationId ?? ids.newId(),
    requestId,
    // Observed in Dataverse: a synchronous context carries its RequestId as OperationId.
    operationId: requestId,
    operationCreatedOn: clock.now(),
    isExecutingOffline: false,
    isOfflinePlayback: false,
    isInTransaction: mode === "sync" && stage !== 10,
    parentContext: input.parentContext ?? null,
    userAzureActiveDirectoryObjectId: EMPTY_GUID,
    initiatingUserAzureActiveDirectoryObjectId: EMPTY_GUID,
    initiatingUserApplicationId: EMPTY_GUID,
    portalsContactId: EMPTY_GUID,
    isPortalsClientCall: false,
    authenticatedUserId: userId,
    initiatingUserAgent: "plugbox",
    environmentId: input.organizationId ?? contextDefaults.organizationId,
    tenantId: EMPTY_GUID,
    isApplicationUser: false,
  };
}
