/**
 * Value types of the Dataverse data model, as plug-in authors use them.
 *
 * Every class carries a type tag under `Symbol.for("plugbox.type")` and answers `instanceof` by that
 * tag, so an object built by another copy of this module (the sandbox's own, or a second bundled copy)
 * is still an `Entity`. Plain objects of the same shape are accepted wherever a class is.
 */

export const TYPE_TAG: unique symbol = Symbol.for("plugbox.type") as never;

export type TypeName =
  | "Entity"
  | "EntityReference"
  | "OptionSetValue"
  | "OptionSetValueCollection"
  | "Money"
  | "EntityCollection"
  | "ColumnSet"
  | "QueryExpression"
  | "FilterExpression"
  | "ConditionExpression"
  | "LinkEntity"
  | "OrderExpression"
  | "QueryByAttribute"
  | "FetchExpression"
  | "Relationship";

/** The tag of a value built by any copy of the SDK, or undefined for a plain value. */
export function typeOf(value: unknown): TypeName | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const tag = (value as { [TYPE_TAG]?: unknown })[TYPE_TAG];
  return typeof tag === "string" ? (tag as TypeName) : undefined;
}

function tagged(name: TypeName) {
  return {
    tag: {
      [TYPE_TAG]: { value: name, enumerable: false, configurable: false, writable: false },
    } as PropertyDescriptorMap,
    is: (value: unknown) => typeOf(value) === name,
  };
}

/** A value of an attribute, as found in `Entity.attributes`. */
export type AttributeValue =
  | string
  | number
  | boolean
  | null
  | Date
  | EntityReference
  | OptionSetValue
  | OptionSetValueCollection
  | Money
  | EntityCollection
  | AttributeValue[]
  | { [key: string]: unknown };

export type Attributes = Record<string, AttributeValue | undefined>;

export const EMPTY_GUID = "00000000-0000-0000-0000-000000000000";

const entityTag = tagged("Entity");
export class Entity {
  logicalName: string;
  id: string;
  attributes: Attributes;
  formattedValues: Record<string, string>;
  keyAttributes: Record<string, AttributeValue>;
  constructor(logicalName: string, id: string = EMPTY_GUID, attributes: Attributes = {}) {
    this.logicalName = logicalName;
    this.id = id;
    this.attributes = attributes;
    this.formattedValues = {};
    this.keyAttributes = {};
  }
  /** The attribute's value, or undefined when the entity does not contain it. */
  get<T extends AttributeValue = AttributeValue>(name: string): T | undefined {
    return this.attributes[name] as T | undefined;
  }
  set(name: string, value: AttributeValue): this {
    this.attributes[name] = value;
    return this;
  }
  contains(name: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.attributes, name);
  }
  toEntityReference(): EntityReference {
    return new EntityReference(this.logicalName, this.id);
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return entityTag.is(value);
  }
}
Object.defineProperties(Entity.prototype, entityTag.tag);

const entityReferenceTag = tagged("EntityReference");
export class EntityReference {
  logicalName: string;
  id: string;
  name: string | null;
  keyAttributes: Record<string, AttributeValue>;
  constructor(logicalName: string, id: string, name: string | null = null) {
    this.logicalName = logicalName;
    this.id = id;
    this.name = name;
    this.keyAttributes = {};
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return entityReferenceTag.is(value);
  }
}
Object.defineProperties(EntityReference.prototype, entityReferenceTag.tag);

const optionSetValueTag = tagged("OptionSetValue");
export class OptionSetValue {
  value: number;
  constructor(value: number) {
    this.value = value;
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return optionSetValueTag.is(value);
  }
}
Object.defineProperties(OptionSetValue.prototype, optionSetValueTag.tag);

/** The value of a multi-select choice column. */
const optionSetValueCollectionTag = tagged("OptionSetValueCollection");
export class OptionSetValueCollection {
  values: number[];
  constructor(values: number[] = []) {
    this.values = values;
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return optionSetValueCollectionTag.is(value);
  }
}
Object.defineProperties(OptionSetValueCollection.prototype, optionSetValueCollectionTag.tag);

const moneyTag = tagged("Money");
export class Money {
  value: number;
  constructor(value: number) {
    this.value = value;
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return moneyTag.is(value);
  }
}
Object.defineProperties(Money.prototype, moneyTag.tag);

const entityCollectionTag = tagged("EntityCollection");
export class EntityCollection {
  entities: Entity[];
  entityName: string | null;
  moreRecords: boolean;
  pagingCookie: string | null;
  totalRecordCount: number;
  totalRecordCountLimitExceeded: boolean;
  constructor(entities: Entity[] = [], entityName: string | null = null) {
    this.entities = entities;
    this.entityName = entityName;
    this.moreRecords = false;
    this.pagingCookie = null;
    this.totalRecordCount = -1;
    this.totalRecordCountLimitExceeded = false;
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return entityCollectionTag.is(value);
  }
}
Object.defineProperties(EntityCollection.prototype, entityCollectionTag.tag);

const columnSetTag = tagged("ColumnSet");
export class ColumnSet {
  allColumns: boolean;
  columns: string[];
  /** `new ColumnSet(true)` for all columns, or `new ColumnSet("name", "revenue")`. */
  constructor(...args: [boolean] | string[]) {
    if (args.length === 1 && typeof args[0] === "boolean") {
      this.allColumns = args[0];
      this.columns = [];
    } else {
      this.allColumns = false;
      this.columns = args as string[];
    }
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return columnSetTag.is(value);
  }
}
Object.defineProperties(ColumnSet.prototype, columnSetTag.tag);

/** Condition operators, named as in Dataverse's ConditionOperator enum. */
export type ConditionOperator =
  | "Equal"
  | "NotEqual"
  | "GreaterThan"
  | "LessThan"
  | "GreaterEqual"
  | "LessEqual"
  | "Like"
  | "NotLike"
  | "In"
  | "NotIn"
  | "Between"
  | "NotBetween"
  | "Null"
  | "NotNull"
  | "BeginsWith"
  | "DoesNotBeginWith"
  | "EndsWith"
  | "DoesNotEndWith"
  | "Contains"
  | "DoesNotContain"
  | (string & {});

const conditionTag = tagged("ConditionExpression");
export class ConditionExpression {
  attributeName: string;
  operator: ConditionOperator;
  values: AttributeValue[];
  entityName: string | null;
  constructor(attributeName: string, operator: ConditionOperator, ...values: AttributeValue[]) {
    this.attributeName = attributeName;
    this.operator = operator;
    this.values = values;
    this.entityName = null;
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return conditionTag.is(value);
  }
}
Object.defineProperties(ConditionExpression.prototype, conditionTag.tag);

export type LogicalOperator = "And" | "Or";

const filterTag = tagged("FilterExpression");
export class FilterExpression {
  filterOperator: LogicalOperator;
  conditions: ConditionExpression[];
  filters: FilterExpression[];
  constructor(filterOperator: LogicalOperator = "And") {
    this.filterOperator = filterOperator;
    this.conditions = [];
    this.filters = [];
  }
  addCondition(attributeName: string, operator: ConditionOperator, ...values: AttributeValue[]): this {
    this.conditions.push(new ConditionExpression(attributeName, operator, ...values));
    return this;
  }
  addFilter(filter: FilterExpression): this {
    this.filters.push(filter);
    return this;
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return filterTag.is(value);
  }
}
Object.defineProperties(FilterExpression.prototype, filterTag.tag);

export type OrderType = "Ascending" | "Descending";

const orderTag = tagged("OrderExpression");
export class OrderExpression {
  attributeName: string;
  orderType: OrderType;
  alias: string | null;
  constructor(attributeName: string, orderType: OrderType = "Ascending") {
    this.attributeName = attributeName;
    this.orderType = orderType;
    this.alias = null;
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return orderTag.is(value);
  }
}
Object.defineProperties(OrderExpression.prototype, orderTag.tag);

export type JoinOperator = "Inner" | "LeftOuter" | "Natural";

const linkTag = tagged("LinkEntity");
export class LinkEntity {
  linkFromEntityName: string;
  linkToEntityName: string;
  linkFromAttributeName: string;
  linkToAttributeName: string;
  joinOperator: JoinOperator;
  columns: ColumnSet;
  linkCriteria: FilterExpression;
  linkEntities: LinkEntity[];
  entityAlias: string | null;
  constructor(
    linkFromEntityName: string,
    linkToEntityName: string,
    linkFromAttributeName: string,
    linkToAttributeName: string,
    joinOperator: JoinOperator = "Inner",
  ) {
    this.linkFromEntityName = linkFromEntityName;
    this.linkToEntityName = linkToEntityName;
    this.linkFromAttributeName = linkFromAttributeName;
    this.linkToAttributeName = linkToAttributeName;
    this.joinOperator = joinOperator;
    this.columns = new ColumnSet();
    this.linkCriteria = new FilterExpression();
    this.linkEntities = [];
    this.entityAlias = null;
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return linkTag.is(value);
  }
}
Object.defineProperties(LinkEntity.prototype, linkTag.tag);

export interface PagingInfo {
  count: number;
  pageNumber: number;
  pagingCookie: string | null;
  returnTotalRecordCount: boolean;
}

const queryTag = tagged("QueryExpression");
export class QueryExpression {
  entityName: string;
  columnSet: ColumnSet;
  criteria: FilterExpression;
  linkEntities: LinkEntity[];
  orders: OrderExpression[];
  distinct: boolean;
  topCount: number | null;
  pageInfo: PagingInfo;
  constructor(entityName: string) {
    this.entityName = entityName;
    this.columnSet = new ColumnSet();
    this.criteria = new FilterExpression();
    this.linkEntities = [];
    this.orders = [];
    this.distinct = false;
    this.topCount = null;
    this.pageInfo = { count: 0, pageNumber: 0, pagingCookie: null, returnTotalRecordCount: false };
  }
  addOrder(attributeName: string, orderType: OrderType = "Ascending"): this {
    this.orders.push(new OrderExpression(attributeName, orderType));
    return this;
  }
  addLink(
    linkToEntityName: string,
    linkFromAttributeName: string,
    linkToAttributeName: string,
    joinOperator: JoinOperator = "Inner",
  ): LinkEntity {
    const link = new LinkEntity(this.entityName, linkToEntityName, linkFromAttributeName, linkToAttributeName, joinOperator);
    this.linkEntities.push(link);
    return link;
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return queryTag.is(value);
  }
}
Object.defineProperties(QueryExpression.prototype, queryTag.tag);

const queryByAttributeTag = tagged("QueryByAttribute");
export class QueryByAttribute {
  entityName: string;
  columnSet: ColumnSet;
  attributes: string[];
  values: AttributeValue[];
  orders: OrderExpression[];
  topCount: number | null;
  constructor(entityName: string) {
    this.entityName = entityName;
    this.columnSet = new ColumnSet();
    this.attributes = [];
    this.values = [];
    this.orders = [];
    this.topCount = null;
  }
  addAttributeValue(attributeName: string, value: AttributeValue): this {
    this.attributes.push(attributeName);
    this.values.push(value);
    return this;
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return queryByAttributeTag.is(value);
  }
}
Object.defineProperties(QueryByAttribute.prototype, queryByAttributeTag.tag);

const fetchTag = tagged("FetchExpression");
export class FetchExpression {
  query: string;
  constructor(query: string) {
    this.query = query;
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return fetchTag.is(value);
  }
}
Object.defineProperties(FetchExpression.prototype, fetchTag.tag);

export type QueryBase = QueryExpression | QueryByAttribute | FetchExpression;

const relationshipTag = tagged("Relationship");
export class Relationship {
  schemaName: string;
  primaryEntityRole: "Referencing" | "Referenced" | null;
  constructor(schemaName: string) {
    this.schemaName = schemaName;
    this.primaryEntityRole = null;
  }
  static [Symbol.hasInstance](value: unknown): boolean {
    return relationshipTag.is(value);
  }
}
Object.defineProperties(Relationship.prototype, relationshipTag.tag);
