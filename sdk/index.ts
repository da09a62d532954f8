/**
 * What plug-in authors import. No Node.js APIs: this module runs inside the sandbox.
 *
 * @example
 * import { InvalidPluginExecutionError, type IPlugin, type IServiceProvider } from "plugbox/sdk";
 * export class Hello implements IPlugin {
 *   async execute(sp: IServiceProvider) {
 *     const context = sp.getService("IPluginExecutionContext");
 *     sp.getService("ITracingService").trace("{0} of {1}", context.messageName, context.primaryEntityName);
 *   }
 * }
 * @module
 */
export {
  TYPE_TAG,
  EMPTY_GUID,
  typeOf,
  Entity,
  EntityReference,
  OptionSetValue,
  OptionSetValueCollection,
  Money,
  EntityCollection,
  ColumnSet,
  QueryExpression,
  FilterExpression,
  ConditionExpression,
  LinkEntity,
  OrderExpression,
  QueryByAttribute,
  FetchExpression,
  Relationship,
} from "./model.js";
export type {
  TypeName,
  AttributeValue,
  Attributes,
  ConditionOperator,
  LogicalOperator,
  OrderType,
  JoinOperator,
  PagingInfo,
  QueryBase,
} from "./model.js";
export { OperationStatus, InvalidPluginExecutionError } from "./plugin.js";
export type {
  IPlugin,
  PluginClass,
  IServiceProvider,
  ServiceMap,
  IExecutionContext,
  IPluginExecutionContext,
  ParameterCollection,
  EntityImageCollection,
  ITracingService,
  IOrganizationService,
  IOrganizationServiceFactory,
  OrganizationRequest,
  OrganizationResponse,
  IServiceEndpointNotificationService,
  IWebClient,
  WebRequestInit,
  WebResponse,
} from "./plugin.js";
export { encode, decode, toPlain, fromPlain, isPlainObject } from "./codec.js";
export { parseRemoteExecutionContext, serializeRemoteExecutionContext, withoutLargeParts, WireFormatError, CONTENT_TYPES } from "./wire/index.js";
export { PlugboxError, isPlugboxError } from "./errors.js";
export type { ErrorFamily, ErrorCodeInfo, ErrorTable, PlugboxErrorOptions } from "./errors.js";
export type { RemoteExecutionContext, WireFormat } from "./wire/index.js";
