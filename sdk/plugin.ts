/**
 * The plug-in contract: what a plug-in class implements and the services it may obtain.
 * Members follow Dataverse's names in camelCase; every service call returns a promise.
 */
import type {
  AttributeValue,
  ColumnSet,
  Entity,
  EntityCollection,
  EntityReference,
  QueryBase,
  Relationship,
} from "./model.js";

/** Dataverse's OperationStatus, carried by InvalidPluginExecutionError. */
export const OperationStatus = Object.freeze({
  Failed: 0,
  Canceled: 1,
  Retry: 2,
  Suspended: 3,
  Succeeded: 4,
} as const);
export type OperationStatus = (typeof OperationStatus)[keyof typeof OperationStatus];

const PLUGIN_ERROR_TAG = Symbol.for("plugbox.InvalidPluginExecutionError");

/**
 * The error a plug-in throws to fail its operation with a message for the user. Anything else a
 * plug-in throws is reported as an unexpected error (Dataverse's "IsvUnExpected").
 *
 * `new InvalidPluginExecutionError("message")`, `(status, "message")` or `(status, errorCode, "message")`.
 */
export class InvalidPluginExecutionError extends Error {
  readonly status: OperationStatus;
  readonly errorCode: number;
  constructor(message?: string);
  constructor(status: OperationStatus, message?: string);
  constructor(status: OperationStatus, errorCode: number, message?: string);
  constructor(a?: string | OperationStatus, b?: string | number, c?: string) {
    let status: OperationStatus = OperationStatus.Failed;
    let errorCode = -2147220891; // 0x80040265, Dataverse's code for a plug-in failure
    let message = "";
    if (typeof a === "string" || a === undefined) {
      message = a ?? "";
    } else {
      status = a;
      if (typeof b === "number") {
        errorCode = b;
        message = c ?? "";
      } else {
        message = b ?? "";
      }
    }
    super(message);
    this.name = "InvalidPluginExecutionError";
    this.status = status;
    this.errorCode = errorCode;
  }
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as { [PLUGIN_ERROR_TAG]?: unknown })[PLUGIN_ERROR_TAG] === true;
  }
}
Object.defineProperty(InvalidPluginExecutionError.prototype, PLUGIN_ERROR_TAG, { value: true });

/** A parameter collection keeps Dataverse's keys: `inputParameters.Target`, `outputParameters.id`. */
export type ParameterCollection = Record<string, unknown>;
export type EntityImageCollection = Record<string, Entity>;

/** Properties of Dataverse's IExecutionContext / IPluginExecutionContext (2 to 7), camelCase. */
export interface IExecutionContext {
  readonly messageName: string;
  readonly primaryEntityName: string;
  readonly primaryEntityId: string;
  readonly secondaryEntityName: string;
  /** 1 none, 2 sandbox. */
  readonly isolationMode: number;
  /** 0 synchronous, 1 asynchronous. */
  readonly mode: number;
  readonly depth: number;
  inputParameters: ParameterCollection;
  outputParameters: ParameterCollection;
  sharedVariables: ParameterCollection;
  readonly preEntityImages: EntityImageCollection;
  readonly postEntityImages: EntityImageCollection;
  readonly userId: string;
  readonly initiatingUserId: string;
  readonly businessUnitId: string;
  readonly organizationId: string;
  readonly organizationName: string;
  readonly owningExtension: EntityReference | null;
  readonly correlationId: string;
  readonly requestId: string | null;
  readonly operationId: string;
  readonly operationCreatedOn: Date | null;
  readonly isExecutingOffline: boolean;
  readonly isOfflinePlayback: boolean;
  readonly isInTransaction: boolean;
  // IPluginExecutionContext2..7
  readonly userAzureActiveDirectoryObjectId: string;
  readonly initiatingUserAzureActiveDirectoryObjectId: string;
  readonly initiatingUserApplicationId: string;
  readonly portalsContactId: string;
  readonly isPortalsClientCall: boolean;
  readonly authenticatedUserId: string;
  readonly initiatingUserAgent: string;
  readonly environmentId: string;
  readonly tenantId: string;
  readonly isApplicationUser: boolean;
}

export interface IPluginExecutionContext extends IExecutionContext {
  /** 10 pre-validation, 20 pre-operation, 40 post-operation. */
  readonly stage: number;
  readonly parentContext: IPluginExecutionContext | null;
}

export interface ITracingService {
  /** Formats `{0}`-style or `%s`-style placeholders with the arguments and keeps the line. */
  trace(format: string, ...args: unknown[]): void;
}

export interface OrganizationRequest {
  requestName: string;
  parameters: Record<string, unknown>;
  requestId?: string;
}

export interface OrganizationResponse {
  responseName: string;
  results: Record<string, unknown>;
}

export interface IOrganizationService {
  create(entity: Entity | { logicalName: string; id?: string; attributes: Record<string, AttributeValue | undefined> }): Promise<string>;
  retrieve(entityName: string, id: string, columnSet: ColumnSet | { allColumns?: boolean; columns?: string[] }): Promise<Entity>;
  update(entity: Entity | { logicalName: string; id: string; attributes: Record<string, AttributeValue | undefined> }): Promise<void>;
  delete(entityName: string, id: string): Promise<void>;
  associate(entityName: string, entityId: string, relationship: Relationship | string, relatedEntities: EntityReference[]): Promise<void>;
  disassociate(entityName: string, entityId: string, relationship: Relationship | string, relatedEntities: EntityReference[]): Promise<void>;
  retrieveMultiple(query: QueryBase): Promise<EntityCollection>;
  execute(request: OrganizationRequest): Promise<OrganizationResponse>;
}

export interface IOrganizationServiceFactory {
  /** `null` or omitted: the SYSTEM user; the empty Guid: `context.userId`; any other id: that user. */
  createOrganizationService(userId?: string | null): IOrganizationService;
}

export interface IServiceEndpointNotificationService {
  /** Posts the context to the service endpoint; a two-way, REST or webhook endpoint's reply, else null. */
  execute(serviceEndpoint: EntityReference | { logicalName?: string; id: string }, context: IExecutionContext): Promise<string | null>;
}

export interface WebRequestInit {
  method?: string;
  headers?: Record<string, string> | Array<[string, string]>;
  body?: string | Uint8Array | ArrayBuffer | null;
}

export interface WebResponse {
  readonly status: number;
  readonly statusText: string;
  readonly ok: boolean;
  readonly url: string;
  readonly redirected: boolean;
  readonly headers: { get(name: string): string | null; has(name: string): boolean; entries(): Array<[string, string]> };
  text(): Promise<string>;
  json(): Promise<unknown>;
  arrayBuffer(): Promise<ArrayBuffer>;
}

export interface IWebClient {
  fetch(url: string, init?: WebRequestInit): Promise<WebResponse>;
}

export interface ServiceMap {
  IPluginExecutionContext: IPluginExecutionContext;
  ITracingService: ITracingService;
  IOrganizationServiceFactory: IOrganizationServiceFactory;
  IServiceEndpointNotificationService: IServiceEndpointNotificationService;
  IWebClient: IWebClient;
}

export interface IServiceProvider {
  getService<K extends keyof ServiceMap>(name: K): ServiceMap[K];
}

export interface IPlugin {
  execute(serviceProvider: IServiceProvider): void | Promise<void>;
}

/** A plug-in class: constructed with the step's unsecure and secure configuration. */
export type PluginClass = new (unsecureConfig: string | null, secureConfig: string | null) => IPlugin;
