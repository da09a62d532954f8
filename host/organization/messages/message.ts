/** What a message is to the pipeline: its core operation (stage 30) and what its stages may read. */
import type { EntityCollection } from "../../../sdk/model.js";
import type { OrganizationRequestValue, OrganizationResponseValue } from "../arguments.js";
import type { OrganizationCore } from "../core.js";
import type { Identity } from "../identity.js";

/** The parts of a running request a core operation reads and sets. */
export interface MessageOperation {
  readonly inputParameters: Record<string, unknown>;
  readonly outputParameters: Record<string, unknown>;
  /** The primary entity's logical name, when the request names one. */
  readonly entity: string | null;
  /** The primary record's id (the empty Guid until a Create made it). */
  primaryId: string;
  readonly scope: { readonly userId: string };
}

/** What a core operation may use besides the request. */
export interface MessageServices {
  readonly core: OrganizationCore;
  readonly identity: Identity;
  /** Runs another request inside this one's transaction, with its own steps (Upsert's Create or Update). */
  nested(request: OrganizationRequestValue, operation: MessageOperation): Promise<OrganizationResponseValue>;
}

export interface Message {
  readonly name: string;
  /** How InputParameters.Target is read before the stages: an Entity, one with an id, or not at all. */
  readonly target?: "entity" | "entityWithId";
  /** The record as it was before the operation can be a step's pre-image. */
  readonly hasPreImage?: boolean;
  /** False where no record is left after the operation to be a step's post-image (Delete). */
  readonly hasPostImage?: boolean;
  /** Stage 10's SharedVariables reach later stages through ParentContext, not as their own (Create, Update, Delete). */
  readonly sharedThroughParent?: boolean;
  /** The operation: changes the data and sets OutputParameters. */
  run(operation: MessageOperation, services: MessageServices): void | Promise<void>;
}

export type { EntityCollection };
