/**
 * RetrieveMultiple over the store as a specification: QueryExpression, QueryByAttribute and FetchXML
 * against a seeded in-memory store of accounts and contacts — column sets, every supported
 * condition operator with type-aware comparison, filters, link entities, orders, distinct, top,
 * paging, aggregates, table schemas, and how malformed or unsupported queries are refused.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { retrieveMultiple, Store, type SchemaLookup, type TableSchema } from "../../../dist/host/testing/internal.js";
import {
  ColumnSet,
  ConditionExpression,
  decode,
  encode,
  EntityCollection,
  EntityReference,
  FetchExpression,
  FilterExpression,
  LinkEntity,
  Money,
  OptionSetValue,
  OptionSetValueCollection,
  OrderExpression,
  QueryByAttribute,
  QueryExpression,
  type Entity,
} from "../../../dist/sdk/index.js";

// Seed data ///////////////////////////////////////////////////////////////////////////////////

const A = {
  contoso: "a0000000-0000-0000-0000-000000000001",
  fabrikam: "a0000000-0000-0000-0000-000000000002",
  adventure: "a0000000-0000-0000-0000-000000000003",
  northwind: "a0000000-0000-0000-0000-000000000004",
  contosoEast: "a0000000-0000-0000-0000-000000000005",
};
const C = {
  ann: "c0000000-0000-0000-0000-000000000001",
  bob: "c0000000-0000-0000-0000-000000000002",
  cara: "c0000000-0000-0000-0000-000000000003",
  dan: "c0000000-0000-0000-0000-000000000004",
  eve: "c0000000-0000-0000-0000-000000000005",
  finn: "c0000000-0000-0000-0000-000000000006",
  gail: "c0000000-0000-0000-0000-000000000007",
};

const money = (value: number) => ({ $type: "Money", value });
const option = (value: number) => ({ $type: "OptionSetValue", value });
const options = (...values: number[]) => ({ $type: "OptionSetValueCollection", values });
const date = (value: string) => ({ $type: "DateTime", value });
const account = (id: string) => ({ $type: "EntityReference", logicalName: "account", id, name: null });
const contact = (id: string) => ({ $type: "EntityReference", logicalName: "contact", id, name: null });

const accounts: Array<[string, Record<string, unknown>]> = [
  [A.contoso, { name: "Contoso", revenue: money(5000), numberofemployees: 50, industrycode: option(1), openedon: date("2023-06-01T12:00:00.000Z"), creditonhold: false, city: "Seattle", primarycontactid: contact(C.ann), description: null }],
  [A.fabrikam, { name: "Fabrikam", revenue: money(12000), numberofemployees: 200, industrycode: option(2), openedon: date("2024-01-31T09:00:00.000Z"), creditonhold: true, city: "Seattle", primarycontactid: contact(C.cara) }],
  [A.adventure, { name: "Adventure Works", revenue: money(800), numberofemployees: 10, industrycode: option(1), openedon: date("2024-02-15T00:00:00.000Z"), creditonhold: false, city: "Redmond" }],
  [A.northwind, { name: "Northwind 100%_Traders", numberofemployees: null, industrycode: option(3), openedon: date("2024-01-31T23:30:00.000Z"), creditonhold: true, city: "Portland" }],
  [A.contosoEast, { name: "contoso east", revenue: money(3000), numberofemployees: 75, industrycode: option(2), openedon: date("2022-11-20T08:15:00.000Z"), creditonhold: false, city: "seattle" }],
];

const contacts: Array<[string, Record<string, unknown>]> = [
  [C.ann, { firstname: "Ann", lastname: "Lee", parentcustomerid: account(A.contoso), age: 34, donotemail: false, preferredcontactmethodcode: option(1), hobbies: options(1, 3), birthdate: date("1990-05-01T00:00:00.000Z") }],
  [C.bob, { firstname: "Bob", lastname: "Stone", parentcustomerid: account(A.contoso), age: 45, donotemail: true, preferredcontactmethodcode: option(2), hobbies: options(2) }],
  [C.cara, { firstname: "Cara", lastname: "Diaz", parentcustomerid: account(A.fabrikam), age: 29, donotemail: false, preferredcontactmethodcode: option(1), hobbies: options(3) }],
  [C.dan, { firstname: "Dan", lastname: "Wu", parentcustomerid: account(A.fabrikam), donotemail: false, preferredcontactmethodcode: option(2) }],
  [C.eve, { firstname: "Eve", lastname: "Zed", parentcustomerid: account(A.adventure), age: 51, donotemail: true, preferredcontactmethodcode: option(1) }],
  [C.finn, { firstname: "Finn", lastname: "Hall", parentcustomerid: null, age: 23, donotemail: false }],
  [C.gail, { firstname: "gail", lastname: "Ito", parentcustomerid: account(A.contosoEast), age: 38, donotemail: false, preferredcontactmethodcode: option(2) }],
];

let store: Store;

beforeAll(() => {
  store = Store.open({ path: ":memory:" });
  for (const [id, attributes] of accounts) store.insertRecord("account", id, { accountid: id, ...attributes });
  for (const [id, attributes] of contacts) store.insertRecord("contact", id, { contactid: id, ...attributes });
});

afterAll(() => store.close());

// Helpers /////////////////////////////////////////////////////////////////////////////////////

const run = (query: unknown, schemaFor?: SchemaLookup): EntityCollection => retrieveMultiple(store, query, schemaFor ? { schemaFor } : {});

/** The value of `column` of every returned record, in order. */
const values = (result: EntityCollection, column: string): unknown[] => result.entities.map((e: Entity) => e.attributes[column]);

/** The names of the accounts a condition on account matches, sorted. */
function accountsWhere(attribute: string, operator: string, ...conditionValues: unknown[]): string[] {
  const query = new QueryExpression("account");
  query.columnSet = new ColumnSet("name");
  query.criteria.addCondition(attribute, operator, ...(conditionValues as never[]));
  return (values(run(query), "name") as string[]).sort();
}

/** The first names of the contacts a condition on contact matches, sorted. */
function contactsWhere(attribute: string, operator: string, ...conditionValues: unknown[]): string[] {
  const query = new QueryExpression("contact");
  query.columnSet = new ColumnSet("firstname");
  query.criteria.addCondition(attribute, operator, ...(conditionValues as never[]));
  return (values(run(query), "firstname") as string[]).sort();
}

/** The code and message a call fails with. */
function failure(call: () => unknown): { code: string; message: string } {
  try {
    call();
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message };
  }
  throw new Error("expected the call to fail");
}

const fetchNames = (xml: string): string[] => values(run(new FetchExpression(xml)), "name") as string[];

// Column sets //////////////////////////////////////////////////////////////////////////////////

describe("column sets", () => {
  test("all columns returns every stored column of every record, decoded into SDK types", () => {
    const query = new QueryExpression("account");
    query.columnSet = new ColumnSet(true);
    const result = run(query);
    expect(result).toBeInstanceOf(EntityCollection);
    expect(result.entityName).toBe("account");
    expect(result.entities).toHaveLength(5);
    const contoso = result.entities.find((e) => e.id === A.contoso)!;
    expect(contoso.logicalName).toBe("account");
    expect(contoso.attributes.name).toBe("Contoso");
    expect(contoso.attributes.revenue).toBeInstanceOf(Money);
    expect((contoso.attributes.revenue as Money).value).toBe(5000);
    expect(contoso.attributes.industrycode).toBeInstanceOf(OptionSetValue);
    expect(contoso.attributes.openedon).toBeInstanceOf(Date);
    expect((contoso.attributes.openedon as Date).toISOString()).toBe("2023-06-01T12:00:00.000Z");
    expect(contoso.attributes.primarycontactid).toBeInstanceOf(EntityReference);
    expect((contoso.attributes.primarycontactid as EntityReference).id).toBe(C.ann);
    expect(contoso.attributes.creditonhold).toBe(false);
    expect(contoso.attributes.accountid).toBe(A.contoso);
  });

  test("a stored null is left out of the entity, as Dataverse leaves out null columns", () => {
    const query = new QueryExpression("account");
    query.columnSet = new ColumnSet(true);
    query.criteria.addCondition("accountid", "Equal", A.contoso);
    const [contoso] = run(query).entities;
    expect(contoso!.contains("description")).toBe(false);
  });

  test("a list of columns returns only those columns, plus the id as Entity.id and as the primary id column", () => {
    const query = new QueryExpression("account");
    query.columnSet = new ColumnSet("name", "city");
    query.criteria.addCondition("name", "Equal", "Fabrikam");
    const [fabrikam] = run(query).entities;
    expect(fabrikam!.id).toBe(A.fabrikam);
    expect(fabrikam!.attributes).toEqual({ name: "Fabrikam", city: "Seattle", accountid: A.fabrikam });
  });

  test("an empty column set returns the ids only", () => {
    const result = run(new QueryExpression("contact"));
    expect(result.entities).toHaveLength(7);
    expect(result.entities.map((e) => Object.keys(e.attributes))).toEqual(Array(7).fill(["contactid"]));
  });

  test("a query on a table with no rows and no declared schema returns an empty collection", () => {
    const result = run(new QueryExpression("invoice"));
    expect(result.entities).toEqual([]);
    expect(result.moreRecords).toBe(false);
    expect(result.pagingCookie).toBeNull();
    expect(result.totalRecordCount).toBe(-1);
  });
});

// Conditions ///////////////////////////////////////////////////////////////////////////////////

describe("condition operators", () => {
  test("Equal on a string compares case-insensitively", () => {
    expect(accountsWhere("name", "Equal", "CONTOSO")).toEqual(["Contoso"]);
    expect(accountsWhere("city", "Equal", "seattle")).toEqual(["Contoso", "Fabrikam", "contoso east"]);
  });

  test("NotEqual matches other values and, as in SQL, not nulls", () => {
    expect(contactsWhere("age", "NotEqual", 34)).toEqual(["Bob", "Cara", "Eve", "Finn", "gail"]);
  });

  test("GreaterThan, GreaterEqual, LessThan and LessEqual compare numbers numerically", () => {
    expect(accountsWhere("numberofemployees", "GreaterThan", 50)).toEqual(["Fabrikam", "contoso east"]);
    expect(accountsWhere("numberofemployees", "GreaterEqual", 50)).toEqual(["Contoso", "Fabrikam", "contoso east"]);
    expect(accountsWhere("numberofemployees", "LessThan", 75)).toEqual(["Adventure Works", "Contoso"]);
    expect(accountsWhere("numberofemployees", "LessEqual", 75)).toEqual(["Adventure Works", "Contoso", "contoso east"]);
  });

  test("Money compares by its value, given as Money or as a number", () => {
    expect(accountsWhere("revenue", "GreaterThan", new Money(4000))).toEqual(["Contoso", "Fabrikam"]);
    expect(accountsWhere("revenue", "LessEqual", 3000)).toEqual(["Adventure Works", "contoso east"]);
  });

  test("OptionSetValue compares by its value, given as OptionSetValue or as a number", () => {
    expect(accountsWhere("industrycode", "Equal", new OptionSetValue(1))).toEqual(["Adventure Works", "Contoso"]);
    expect(accountsWhere("industrycode", "Equal", 2)).toEqual(["Fabrikam", "contoso east"]);
  });

  test("a lookup compares by its id, given as EntityReference or guid string in any case", () => {
    expect(contactsWhere("parentcustomerid", "Equal", new EntityReference("account", A.contoso.toUpperCase()))).toEqual(["Ann", "Bob"]);
    expect(contactsWhere("parentcustomerid", "Equal", A.fabrikam.toUpperCase())).toEqual(["Cara", "Dan"]);
    expect(contactsWhere("contactid", "Equal", C.eve.toUpperCase())).toEqual(["Eve"]);
  });

  test("DateTime compares by instant, given as Date or ISO string", () => {
    expect(accountsWhere("openedon", "GreaterThan", new Date("2024-01-31T09:00:00.000Z"))).toEqual(["Adventure Works", "Northwind 100%_Traders"]);
    expect(accountsWhere("openedon", "GreaterEqual", "2024-01-31T09:00:00Z")).toEqual(["Adventure Works", "Fabrikam", "Northwind 100%_Traders"]);
    expect(accountsWhere("openedon", "LessThan", "2024-01-01")).toEqual(["Contoso", "contoso east"]);
  });

  test("On, OnOrAfter and OnOrBefore compare the date (UTC) without the time", () => {
    expect(accountsWhere("openedon", "On", new Date("2024-01-31T00:00:00.000Z"))).toEqual(["Fabrikam", "Northwind 100%_Traders"]);
    expect(accountsWhere("openedon", "OnOrAfter", "2024-01-31")).toEqual(["Adventure Works", "Fabrikam", "Northwind 100%_Traders"]);
    expect(accountsWhere("openedon", "OnOrBefore", "2024-01-31")).toEqual(["Contoso", "Fabrikam", "Northwind 100%_Traders", "contoso east"]);
    expect(accountsWhere("openedon", "NotOn", "2024-01-31")).toEqual(["Adventure Works", "Contoso", "contoso east"]);
  });

  test("booleans compare as true and false", () => {
    expect(accountsWhere("creditonhold", "Equal", true)).toEqual(["Fabrikam", "Northwind 100%_Traders"]);
    expect(accountsWhere("creditonhold", "Equal", false)).toEqual(["Adventure Works", "Contoso", "contoso east"]);
  });

  test("Like and NotLike use SQL wildcards % and _, case-insensitively", () => {
    expect(accountsWhere("name", "Like", "contoso%")).toEqual(["Contoso", "contoso east"]);
    expect(accountsWhere("name", "Like", "_abrikam")).toEqual(["Fabrikam"]);
    expect(accountsWhere("name", "NotLike", "%o%")).toEqual(["Fabrikam"]);
  });

  test("BeginsWith, EndsWith and Contains match the text literally, with their negations", () => {
    expect(accountsWhere("name", "BeginsWith", "CON")).toEqual(["Contoso", "contoso east"]);
    expect(accountsWhere("name", "DoesNotBeginWith", "con")).toEqual(["Adventure Works", "Fabrikam", "Northwind 100%_Traders"]);
    expect(accountsWhere("name", "EndsWith", "works")).toEqual(["Adventure Works"]);
    expect(accountsWhere("name", "DoesNotEndWith", "s")).toEqual(["Contoso", "Fabrikam", "contoso east"]);
    expect(accountsWhere("name", "Contains", "TOSO")).toEqual(["Contoso", "contoso east"]);
    expect(accountsWhere("name", "DoesNotContain", "o")).toEqual(["Fabrikam"]);
    // % and _ in the value are not wildcards.
    expect(accountsWhere("name", "Contains", "100%_")).toEqual(["Northwind 100%_Traders"]);
    expect(accountsWhere("name", "Contains", "%")).toEqual(["Northwind 100%_Traders"]);
    expect(accountsWhere("name", "BeginsWith", "_")).toEqual([]);
  });

  test("In and NotIn take several values, or one array of values", () => {
    expect(accountsWhere("city", "In", "REDMOND", "portland")).toEqual(["Adventure Works", "Northwind 100%_Traders"]);
    expect(accountsWhere("industrycode", "In", [new OptionSetValue(2), 3])).toEqual(["Fabrikam", "Northwind 100%_Traders", "contoso east"]);
    expect(contactsWhere("parentcustomerid", "In", A.contoso, new EntityReference("account", A.adventure))).toEqual(["Ann", "Bob", "Eve"]);
    expect(accountsWhere("city", "NotIn", "Seattle", "Redmond")).toEqual(["Northwind 100%_Traders"]);
    expect(contactsWhere("age", "NotIn", 34, 45)).toEqual(["Cara", "Eve", "Finn", "gail"]);
  });

  test("Between and NotBetween include both ends", () => {
    expect(accountsWhere("numberofemployees", "Between", 10, 75)).toEqual(["Adventure Works", "Contoso", "contoso east"]);
    expect(accountsWhere("numberofemployees", "NotBetween", 10, 75)).toEqual(["Fabrikam"]);
    expect(accountsWhere("openedon", "Between", "2024-01-01", "2024-01-31T23:59:59Z")).toEqual(["Fabrikam", "Northwind 100%_Traders"]);
  });

  test("Null matches a missing column and a stored null; NotNull matches a value", () => {
    expect(contactsWhere("age", "Null")).toEqual(["Dan"]);
    expect(contactsWhere("parentcustomerid", "Null")).toEqual(["Finn"]);
    expect(accountsWhere("numberofemployees", "Null")).toEqual(["Northwind 100%_Traders"]);
    expect(accountsWhere("revenue", "NotNull")).toEqual(["Adventure Works", "Contoso", "Fabrikam", "contoso east"]);
  });

  test("Equal null is Null and NotEqual null is NotNull", () => {
    expect(contactsWhere("parentcustomerid", "Equal", null)).toEqual(["Finn"]);
    expect(contactsWhere("age", "NotEqual", null)).toHaveLength(6);
  });

  test("ContainValues and DoesNotContainValues match options of a multi-select column", () => {
    expect(contactsWhere("hobbies", "ContainValues", 3)).toEqual(["Ann", "Cara"]);
    expect(contactsWhere("hobbies", "ContainValues", new OptionSetValue(2), 1)).toEqual(["Ann", "Bob"]);
    expect(contactsWhere("hobbies", "DoesNotContainValues", 3)).toEqual(["Bob"]);
  });

  test("a value that looks like SQL is only ever a value", () => {
    expect(accountsWhere("name", "Equal", "x' OR '1'='1")).toEqual([]);
    expect(run(new QueryExpression("account")).entities).toHaveLength(5);
  });

  test("an unsupported operator is ORG_UNSUPPORTED naming it and listing the supported ones", () => {
    const error = failure(() => accountsWhere("openedon", "LastXDays", 7));
    expect(error.code).toBe("ORG_UNSUPPORTED");
    expect(error.message).toContain('"LastXDays"');
    expect(error.message).toContain("supported operators: Equal, NotEqual");
    expect(error.message).toContain("Between");
  });

  test("a wrong number of values is ORG_INVALID_ARGUMENT", () => {
    expect(failure(() => accountsWhere("numberofemployees", "Between", 10))).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("Between on numberofemployees takes 2 values, got 1") });
    expect(failure(() => accountsWhere("city", "In")).code).toBe("ORG_INVALID_ARGUMENT");
    expect(failure(() => accountsWhere("openedon", "On", "not a date")).message).toContain("needs a date");
  });
});

// Filters //////////////////////////////////////////////////////////////////////////////////////

describe("filters", () => {
  test("an And filter with a nested Or filter matches records meeting all conditions of the And and one of the Or", () => {
    const query = new QueryExpression("account");
    query.columnSet = new ColumnSet("name");
    query.criteria.addCondition("city", "Equal", "Seattle");
    const either = new FilterExpression("Or");
    either.addCondition("numberofemployees", "GreaterThan", 100);
    either.addCondition("name", "BeginsWith", "contoso e");
    query.criteria.addFilter(either);
    expect((values(run(query), "name") as string[]).sort()).toEqual(["Fabrikam", "contoso east"]);
  });

  test("an Or filter at the top with nested And filters", () => {
    const query = new QueryExpression("contact");
    query.columnSet = new ColumnSet("firstname");
    query.criteria = new FilterExpression("Or");
    query.criteria.addFilter(new FilterExpression("And").addCondition("age", "GreaterThan", 40).addCondition("donotemail", "Equal", true));
    query.criteria.addFilter(new FilterExpression("And").addCondition("age", "LessThan", 25));
    expect((values(run(query), "firstname") as string[]).sort()).toEqual(["Bob", "Eve", "Finn"]);
  });

  test("an empty filter matches every record", () => {
    const query = new QueryExpression("account");
    query.criteria.addFilter(new FilterExpression("Or"));
    expect(run(query).entities).toHaveLength(5);
  });
});

// Link entities ////////////////////////////////////////////////////////////////////////////////

describe("link entities", () => {
  test("an inner join returns the linked columns as alias.column and drops records without a match", () => {
    const query = new QueryExpression("contact");
    query.columnSet = new ColumnSet("firstname");
    const link = query.addLink("account", "parentcustomerid", "accountid");
    link.entityAlias = "acct";
    link.columns = new ColumnSet("name", "revenue");
    query.addOrder("firstname");
    const result = run(query);
    expect(values(result, "firstname")).toEqual(["Ann", "Bob", "Cara", "Dan", "Eve", "gail"]);
    expect(values(result, "acct.name")).toEqual(["Contoso", "Contoso", "Fabrikam", "Fabrikam", "Adventure Works", "contoso east"]);
    expect(result.entities[0]!.attributes["acct.revenue"]).toBeInstanceOf(Money);
  });

  test("a link without an alias is named after its table and position", () => {
    const query = new QueryExpression("contact");
    query.columnSet = new ColumnSet("firstname");
    query.addLink("account", "parentcustomerid", "accountid").columns = new ColumnSet("name");
    query.criteria.addCondition("firstname", "Equal", "Eve");
    expect(run(query).entities[0]!.attributes).toMatchObject({ firstname: "Eve", "account1.name": "Adventure Works" });
  });

  test("a left outer join keeps records without a match, without the linked columns", () => {
    const query = new QueryExpression("account");
    query.columnSet = new ColumnSet("name");
    const link = query.addLink("contact", "accountid", "parentcustomerid", "LeftOuter");
    link.entityAlias = "c";
    link.columns = new ColumnSet("firstname");
    query.addOrder("name");
    query.orders.push(Object.assign(new OrderExpression("firstname"), { alias: "c" }));
    const result = run(query);
    expect(result.entities.map((e) => [e.attributes.name, e.attributes["c.firstname"]])).toEqual([
      ["Adventure Works", "Eve"],
      ["Contoso", "Ann"],
      ["Contoso", "Bob"],
      ["contoso east", "gail"],
      ["Fabrikam", "Cara"],
      ["Fabrikam", "Dan"],
      ["Northwind 100%_Traders", undefined],
    ]);
    expect(result.entities[6]!.contains("c.firstname")).toBe(false);
  });

  test("a condition on an outer link's alias in the main criteria finds records with no match", () => {
    const query = new QueryExpression("contact");
    query.columnSet = new ColumnSet("firstname");
    const link = query.addLink("account", "parentcustomerid", "accountid", "LeftOuter");
    link.entityAlias = "a";
    const none = new ConditionExpression("accountid", "Null");
    none.entityName = "a";
    query.criteria.conditions.push(none);
    expect(values(run(query), "firstname")).toEqual(["Finn"]);
  });

  test("link criteria limit the linked records", () => {
    const query = new QueryExpression("account");
    query.columnSet = new ColumnSet("name");
    query.distinct = true;
    const link = query.addLink("contact", "accountid", "parentcustomerid");
    link.linkCriteria.addCondition("age", "GreaterThan", 40);
    expect((values(run(query), "name") as string[]).sort()).toEqual(["Adventure Works", "Contoso"]);
  });

  test("nested link entities join through their parent link", () => {
    const query = new QueryExpression("contact");
    query.columnSet = new ColumnSet("firstname");
    const parent = query.addLink("account", "parentcustomerid", "accountid");
    parent.entityAlias = "acct";
    const primary = new LinkEntity("account", "contact", "primarycontactid", "contactid");
    primary.entityAlias = "pc";
    primary.columns = new ColumnSet("firstname");
    parent.linkEntities.push(primary);
    query.addOrder("firstname");
    const result = run(query);
    expect(result.entities.map((e) => [e.attributes.firstname, e.attributes["pc.firstname"]])).toEqual([
      ["Ann", "Ann"],
      ["Bob", "Ann"],
      ["Cara", "Cara"],
      ["Dan", "Cara"],
    ]);
  });

  test("all columns of a link entity come back under its alias", () => {
    const query = new QueryExpression("contact");
    query.columnSet = new ColumnSet("firstname");
    query.criteria.addCondition("firstname", "Equal", "Cara");
    const link = query.addLink("account", "parentcustomerid", "accountid");
    link.entityAlias = "a";
    link.columns = new ColumnSet(true);
    const attributes = run(query).entities[0]!.attributes;
    expect(attributes["a.name"]).toBe("Fabrikam");
    expect(attributes["a.accountid"]).toBe(A.fabrikam);
    expect(attributes["a.openedon"]).toBeInstanceOf(Date);
  });

  test("a condition naming an alias that is not in the query is ORG_INVALID_ARGUMENT", () => {
    const query = new QueryExpression("contact");
    const condition = new ConditionExpression("name", "Equal", "x");
    condition.entityName = "nosuch";
    query.criteria.conditions.push(condition);
    expect(failure(() => run(query))).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("nosuch is not the alias of a link entity") });
  });
});

// Orders, distinct, top, paging ////////////////////////////////////////////////////////////////

describe("orders, distinct, top and paging", () => {
  test("orders sort ascending and descending, strings case-insensitively and numbers numerically", () => {
    const query = new QueryExpression("account");
    query.columnSet = new ColumnSet("name");
    query.addOrder("name");
    expect(values(run(query), "name")).toEqual(["Adventure Works", "Contoso", "contoso east", "Fabrikam", "Northwind 100%_Traders"]);
    const byEmployees = new QueryExpression("account");
    byEmployees.columnSet = new ColumnSet("name");
    byEmployees.addOrder("numberofemployees", "Descending");
    expect(values(run(byEmployees), "name")).toEqual(["Fabrikam", "contoso east", "Contoso", "Adventure Works", "Northwind 100%_Traders"]);
  });

  test("several orders apply in turn", () => {
    const query = new QueryExpression("account");
    query.columnSet = new ColumnSet("name");
    query.addOrder("industrycode", "Descending").addOrder("revenue", "Ascending");
    expect(values(run(query), "name")).toEqual(["Northwind 100%_Traders", "contoso east", "Fabrikam", "Adventure Works", "Contoso"]);
  });

  test("an order may be on a link entity's column through its alias", () => {
    const query = new QueryExpression("contact");
    query.columnSet = new ColumnSet("firstname");
    query.addLink("account", "parentcustomerid", "accountid").entityAlias = "a";
    query.orders.push(Object.assign(new OrderExpression("revenue", "Descending"), { alias: "a" }));
    query.addOrder("firstname", "Descending");
    expect(values(run(query), "firstname")).toEqual(["Dan", "Cara", "Bob", "Ann", "gail", "Eve"]);
  });

  test("distinct returns each combination of the columns once", () => {
    const query = new QueryExpression("account");
    query.columnSet = new ColumnSet("creditonhold");
    query.distinct = true;
    query.addOrder("creditonhold");
    const result = run(query);
    expect(values(result, "creditonhold")).toEqual([false, true]);
  });

  test("topCount returns at most that many records and no paging cookie", () => {
    const query = new QueryExpression("account");
    query.columnSet = new ColumnSet("name");
    query.addOrder("revenue", "Descending");
    query.topCount = 2;
    const result = run(query);
    expect(values(result, "name")).toEqual(["Fabrikam", "Contoso"]);
    expect(result.moreRecords).toBe(false);
    expect(result.pagingCookie).toBeNull();
  });

  test("paging walks 3 pages by page number, with moreRecords, a cookie and the total count when asked", () => {
    const page = (pageNumber: number, pagingCookie: string | null) => {
      const query = new QueryExpression("contact");
      query.columnSet = new ColumnSet("firstname");
      query.addOrder("firstname");
      query.pageInfo = { count: 3, pageNumber, pagingCookie, returnTotalRecordCount: true };
      return run(query);
    };
    const first = page(1, null);
    expect(values(first, "firstname")).toEqual(["Ann", "Bob", "Cara"]);
    expect(first.moreRecords).toBe(true);
    expect(first.totalRecordCount).toBe(7);
    expect(first.pagingCookie).toMatch(/^<cookie page="1"/);
    const second = page(2, first.pagingCookie);
    expect(values(second, "firstname")).toEqual(["Dan", "Eve", "Finn"]);
    expect(second.moreRecords).toBe(true);
    const third = page(3, second.pagingCookie);
    expect(values(third, "firstname")).toEqual(["gail"]);
    expect(third.moreRecords).toBe(false);
    expect(third.totalRecordCount).toBe(7);
    // Without the cookie the page number alone finds the page.
    expect(values(page(3, null), "firstname")).toEqual(["gail"]);
    // A page past the end is empty and still counts.
    const past = page(4, null);
    expect(past.entities).toEqual([]);
    expect(past.totalRecordCount).toBe(7);
  });

  test("the total record count is -1 unless asked for", () => {
    const query = new QueryExpression("contact");
    query.pageInfo = { count: 2, pageNumber: 1, pagingCookie: null, returnTotalRecordCount: false };
    const result = run(query);
    expect(result.entities).toHaveLength(2);
    expect(result.totalRecordCount).toBe(-1);
    expect(result.moreRecords).toBe(true);
  });

  test("topCount together with a page size is ORG_INVALID_ARGUMENT", () => {
    const query = new QueryExpression("contact");
    query.topCount = 3;
    query.pageInfo = { count: 2, pageNumber: 1, pagingCookie: null, returnTotalRecordCount: false };
    expect(failure(() => run(query)).code).toBe("ORG_INVALID_ARGUMENT");
  });
});

// QueryByAttribute and plain objects ///////////////////////////////////////////////////////////

describe("QueryByAttribute and plain query objects", () => {
  test("QueryByAttribute matches records equal on every attribute, with orders and topCount", () => {
    const query = new QueryByAttribute("contact");
    query.columnSet = new ColumnSet("firstname");
    query.addAttributeValue("donotemail", false).addAttributeValue("preferredcontactmethodcode", new OptionSetValue(1));
    query.orders.push(new OrderExpression("firstname", "Descending"));
    expect(values(run(query), "firstname")).toEqual(["Cara", "Ann"]);
    query.topCount = 1;
    expect(values(run(query), "firstname")).toEqual(["Cara"]);
  });

  test("QueryByAttribute with attributes and values that do not pair up is ORG_INVALID_ARGUMENT", () => {
    const error = failure(() => run({ entityName: "contact", attributes: ["firstname", "lastname"], values: ["Ann"] }));
    expect(error.code).toBe("ORG_INVALID_ARGUMENT");
    expect(error.message).toContain("must pair up");
  });

  test("plain objects of the three shapes are accepted", () => {
    const plainQuery = {
      entityName: "account",
      columnSet: { allColumns: false, columns: ["name"] },
      criteria: { filterOperator: "And", conditions: [{ attributeName: "city", operator: "Equal", values: ["Redmond"] }], filters: [] },
    };
    expect(values(run(plainQuery), "name")).toEqual(["Adventure Works"]);
    expect(values(run({ entityName: "account", columnSet: ["name"], attributes: ["city"], values: ["Portland"] }), "name")).toEqual(["Northwind 100%_Traders"]);
    expect(fetchNames('<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="name" operator="eq" value="fabrikam"/></filter></entity></fetch>')).toEqual(["Fabrikam"]);
    expect(values(run({ query: '<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="city" operator="eq" value="Portland"/></filter></entity></fetch>' }), "name")).toEqual(["Northwind 100%_Traders"]);
  });

  test("a query that crossed the sandbox bridge as plugbox JSON runs as the original would", () => {
    const query = new QueryExpression("contact");
    query.columnSet = new ColumnSet("firstname");
    query.criteria.addCondition("parentcustomerid", "Equal", new EntityReference("account", A.contoso));
    query.criteria.addCondition("birthdate", "OnOrBefore", new Date("1990-05-01T10:00:00.000Z"));
    const link = query.addLink("account", "parentcustomerid", "accountid");
    link.linkCriteria.addCondition("revenue", "GreaterEqual", new Money(5000));
    expect(values(run(decode(encode(query))), "firstname")).toEqual(["Ann"]);
  });

  test("a plain query object without a column set returns all columns", () => {
    const result = run({ entityName: "contact", criteria: { conditions: [{ attributeName: "firstname", operator: "Equal", values: ["Ann"] }] } });
    expect(result.entities[0]!.attributes.hobbies).toBeInstanceOf(OptionSetValueCollection);
  });
});

// FetchXML /////////////////////////////////////////////////////////////////////////////////////

describe("FetchXML", () => {
  test("attributes, filters with nested or, and orders", () => {
    const xml = `
      <fetch>
        <entity name="account">
          <attribute name="name" />
          <attribute name="revenue" />
          <order attribute="revenue" descending="true" />
          <filter type="and">
            <condition attribute="creditonhold" operator="eq" value="0" />
            <filter type="or">
              <condition attribute="city" operator="eq" value="SEATTLE" />
              <condition attribute="numberofemployees" operator="lt" value="20" />
            </filter>
          </filter>
        </entity>
      </fetch>`;
    const result = run(new FetchExpression(xml));
    expect(values(result, "name")).toEqual(["Contoso", "contoso east", "Adventure Works"]);
    expect(result.entities[0]!.attributes.revenue).toBeInstanceOf(Money);
  });

  test("condition values are strings compared with the stored type: numbers, guids, dates, booleans", () => {
    const where = (condition: string) =>
      fetchNames(`<fetch><entity name="account"><attribute name="name"/><order attribute="name"/><filter>${condition}</filter></entity></fetch>`);
    expect(where('<condition attribute="numberofemployees" operator="gt" value="60" />')).toEqual(["contoso east", "Fabrikam"]);
    expect(where('<condition attribute="revenue" operator="ge" value="5000.00" />')).toEqual(["Contoso", "Fabrikam"]);
    expect(where(`<condition attribute="accountid" operator="eq" value="{${A.fabrikam.toUpperCase()}}" />`)).toEqual(["Fabrikam"]);
    expect(where(`<condition attribute="primarycontactid" operator="eq" value="${C.cara.toUpperCase()}" />`)).toEqual(["Fabrikam"]);
    expect(where('<condition attribute="openedon" operator="lt" value="2024-01-01" />')).toEqual(["Contoso", "contoso east"]);
    expect(where('<condition attribute="openedon" operator="on" value="2024-01-31" />')).toEqual(["Fabrikam", "Northwind 100%_Traders"]);
    expect(where('<condition attribute="openedon" operator="on-or-after" value="2024-02-01" />')).toEqual(["Adventure Works"]);
    expect(where('<condition attribute="openedon" operator="on-or-before" value="2023-06-01" />')).toEqual(["Contoso", "contoso east"]);
    expect(where('<condition attribute="creditonhold" operator="eq" value="true" />')).toEqual(["Fabrikam", "Northwind 100%_Traders"]);
    expect(where('<condition attribute="creditonhold" operator="eq" value="1" />')).toEqual(["Fabrikam", "Northwind 100%_Traders"]);
    expect(where('<condition attribute="industrycode" operator="eq" value="3" />')).toEqual(["Northwind 100%_Traders"]);
  });

  test("every FetchXML operator maps to its ConditionOperator", () => {
    const where = (condition: string) =>
      fetchNames(`<fetch><entity name="account"><attribute name="name"/><order attribute="name"/><filter>${condition}</filter></entity></fetch>`);
    expect(where('<condition attribute="city" operator="ne" value="seattle" />')).toEqual(["Adventure Works", "Northwind 100%_Traders"]);
    expect(where('<condition attribute="numberofemployees" operator="le" value="50" />')).toEqual(["Adventure Works", "Contoso"]);
    expect(where('<condition attribute="name" operator="like" value="%works" />')).toEqual(["Adventure Works"]);
    expect(where('<condition attribute="name" operator="not-like" value="%w%" />')).toEqual(["Contoso", "contoso east", "Fabrikam"]);
    expect(where('<condition attribute="name" operator="begins-with" value="north" />')).toEqual(["Northwind 100%_Traders"]);
    expect(where('<condition attribute="name" operator="not-begin-with" value="c" />')).toEqual(["Adventure Works", "Fabrikam", "Northwind 100%_Traders"]);
    expect(where('<condition attribute="name" operator="ends-with" value="EAST" />')).toEqual(["contoso east"]);
    expect(where('<condition attribute="name" operator="not-end-with" value="o" />')).toEqual(["Adventure Works", "contoso east", "Fabrikam", "Northwind 100%_Traders"]);
    expect(where('<condition attribute="city" operator="in"><value>Redmond</value><value>Portland</value></condition>')).toEqual(["Adventure Works", "Northwind 100%_Traders"]);
    expect(where('<condition attribute="industrycode" operator="not-in"><value>1</value><value>2</value></condition>')).toEqual(["Northwind 100%_Traders"]);
    expect(where('<condition attribute="revenue" operator="between"><value>1000</value><value>6000</value></condition>')).toEqual(["Contoso", "contoso east"]);
    expect(where('<condition attribute="revenue" operator="not-between"><value>1000</value><value>6000</value></condition>')).toEqual(["Adventure Works", "Fabrikam"]);
    expect(where('<condition attribute="revenue" operator="null" />')).toEqual(["Northwind 100%_Traders"]);
    expect(where('<condition attribute="primarycontactid" operator="not-null" />')).toEqual(["Contoso", "Fabrikam"]);
  });

  test("an outer link-entity with its own attributes, filter and alias, and a condition on the alias", () => {
    const xml = `
      <fetch>
        <entity name="account">
          <attribute name="name" />
          <order attribute="name" />
          <link-entity name="contact" from="parentcustomerid" to="accountid" link-type="outer" alias="older">
            <attribute name="firstname" />
            <filter><condition attribute="age" operator="ge" value="40" /></filter>
          </link-entity>
          <filter type="or">
            <condition entityname="older" attribute="contactid" operator="not-null" />
            <condition attribute="city" operator="eq" value="Portland" />
          </filter>
        </entity>
      </fetch>`;
    const result = run(new FetchExpression(xml));
    expect(result.entities.map((e) => [e.attributes.name, e.attributes["older.firstname"]])).toEqual([
      ["Adventure Works", "Eve"],
      ["Contoso", "Bob"],
      ["Northwind 100%_Traders", undefined],
    ]);
  });

  test("nested link-entities and link orders", () => {
    const xml = `
      <fetch>
        <entity name="contact">
          <attribute name="firstname" />
          <link-entity name="account" from="accountid" to="parentcustomerid" alias="a">
            <attribute name="name" alias="company" />
            <order attribute="name" descending="true" />
            <link-entity name="contact" from="contactid" to="primarycontactid" link-type="inner" alias="pc">
              <attribute name="lastname" />
            </link-entity>
          </link-entity>
        </entity>
      </fetch>`;
    const result = run(new FetchExpression(xml));
    expect(result.entities.map((e) => [e.attributes.firstname, e.attributes.company, e.attributes["pc.lastname"]])).toEqual([
      ["Cara", "Fabrikam", "Diaz"],
      ["Dan", "Fabrikam", "Diaz"],
      ["Ann", "Contoso", "Lee"],
      ["Bob", "Contoso", "Lee"],
    ]);
  });

  test("all-attributes, distinct and top", () => {
    expect(run(new FetchExpression('<fetch top="2"><entity name="contact"><all-attributes/><order attribute="age" descending="true"/></entity></fetch>')).entities.map((e) => e.attributes.firstname)).toEqual(["Eve", "Bob"]);
    const cities = run(new FetchExpression('<fetch distinct="true"><entity name="account"><attribute name="city"/><order attribute="city"/></entity></fetch>'));
    expect(values(cities, "city")).toEqual(["Portland", "Redmond", "Seattle", "seattle"]);
  });

  test("count, page and paging-cookie page through the results", () => {
    const page = (n: number, cookie?: string) => {
      const cookieAttr = cookie === undefined ? "" : ` paging-cookie="${cookie.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")}"`;
      return run(new FetchExpression(`<fetch count="2" page="${n}"${cookieAttr} returntotalrecordcount="true"><entity name="account"><attribute name="name"/><order attribute="name"/></entity></fetch>`));
    };
    const first = page(1);
    expect(values(first, "name")).toEqual(["Adventure Works", "Contoso"]);
    expect(first.moreRecords).toBe(true);
    expect(first.totalRecordCount).toBe(5);
    const second = page(2, first.pagingCookie!);
    expect(values(second, "name")).toEqual(["contoso east", "Fabrikam"]);
    expect(second.moreRecords).toBe(true);
    const third = page(3, second.pagingCookie!);
    expect(values(third, "name")).toEqual(["Northwind 100%_Traders"]);
    expect(third.moreRecords).toBe(false);
  });

  test("aggregate count returns one entity with the count under its alias", () => {
    const result = run(new FetchExpression('<fetch aggregate="true"><entity name="contact"><attribute name="contactid" aggregate="count" alias="total"/></entity></fetch>'));
    expect(result.entities).toHaveLength(1);
    expect(result.entities[0]!.attributes).toEqual({ total: 7 });
    const filtered = run(new FetchExpression('<fetch aggregate="true"><entity name="contact"><attribute name="contactid" aggregate="count" alias="n"/><filter><condition attribute="age" operator="gt" value="30"/></filter></entity></fetch>'));
    expect(filtered.entities[0]!.attributes.n).toBe(4);
  });

  test("aggregates with groupby return one entity per group, values typed as stored", () => {
    const xml = `
      <fetch aggregate="true">
        <entity name="account">
          <attribute name="city" groupby="true" alias="city" />
          <attribute name="accountid" aggregate="count" alias="accounts" />
          <attribute name="revenue" aggregate="sum" alias="revenue" />
          <attribute name="numberofemployees" aggregate="avg" alias="avgemployees" />
          <attribute name="numberofemployees" aggregate="max" alias="maxemployees" />
          <attribute name="openedon" aggregate="min" alias="firstopened" />
          <attribute name="numberofemployees" aggregate="countcolumn" alias="withemployees" />
          <order alias="accounts" descending="true" />
        </entity>
      </fetch>`;
    const result = run(new FetchExpression(xml));
    const rows = result.entities.map((e) => e.attributes);
    expect(rows.map((r) => r.city)).toEqual(["Seattle", "Portland", "Redmond"]);
    expect(rows[0]).toMatchObject({ accounts: 3, avgemployees: 325 / 3, maxemployees: 200, withemployees: 3 });
    expect(rows[0]!.revenue).toBeInstanceOf(Money);
    expect((rows[0]!.revenue as Money).value).toBe(20000);
    expect((rows[0]!.firstopened as Date).toISOString()).toBe("2022-11-20T08:15:00.000Z");
    expect(rows[1]).toMatchObject({ accounts: 1, withemployees: 0 });
    expect(result.entities[1]!.contains("revenue")).toBe(false);
  });

  test("groupby on a lookup and on a link-entity column, and dategrouping", () => {
    const byParent = run(new FetchExpression(`
      <fetch aggregate="true">
        <entity name="contact">
          <attribute name="parentcustomerid" groupby="true" alias="parent" />
          <attribute name="age" aggregate="sum" alias="ages" />
          <link-entity name="account" from="accountid" to="parentcustomerid" alias="a">
            <attribute name="name" groupby="true" alias="company" />
          </link-entity>
          <order alias="company" />
        </entity>
      </fetch>`));
    expect(byParent.entities.map((e) => [e.attributes.company, (e.attributes.parent as EntityReference).id, e.attributes.ages])).toEqual([
      ["Adventure Works", A.adventure, 51],
      ["Contoso", A.contoso, 79],
      ["contoso east", A.contosoEast, 38],
      ["Fabrikam", A.fabrikam, 29],
    ]);
    const byMonth = run(new FetchExpression(`
      <fetch aggregate="true">
        <entity name="account">
          <attribute name="openedon" groupby="true" dategrouping="year" alias="year" />
          <attribute name="openedon" groupby="true" dategrouping="month" alias="month" />
          <attribute name="accountid" aggregate="count" alias="n" />
          <order alias="year" /><order alias="month" />
        </entity>
      </fetch>`));
    expect(byMonth.entities.map((e) => [e.attributes.year, e.attributes.month, e.attributes.n])).toEqual([
      [2022, 11, 1],
      [2023, 6, 1],
      [2024, 1, 2],
      [2024, 2, 1],
    ]);
  });

  test("link types other than inner and outer are ORG_UNSUPPORTED, as are join operators other than Inner, LeftOuter and Natural", () => {
    const fetch = failure(() => run(new FetchExpression('<fetch><entity name="account"><link-entity name="contact" from="parentcustomerid" to="accountid" link-type="exists"/></entity></fetch>')));
    expect(fetch).toMatchObject({ code: "ORG_UNSUPPORTED", message: expect.stringContaining('link-type "exists"') });
    const query = new QueryExpression("account");
    query.addLink("contact", "accountid", "parentcustomerid", "Exists" as never);
    expect(failure(() => run(query))).toMatchObject({ code: "ORG_UNSUPPORTED", message: expect.stringContaining('join operator "Exists"') });
  });

  test("entities in values are decoded, and a DOCTYPE is refused", () => {
    expect(fetchNames('<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="name" operator="eq" value="Northwind 100%_Traders"/></filter></entity></fetch>')).toEqual(["Northwind 100%_Traders"]);
    expect(fetchNames('<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="name" operator="like" value="&#x41;dventure%"/></filter></entity></fetch>')).toEqual(["Adventure Works"]);
    const doctype = failure(() => run(new FetchExpression('<!DOCTYPE fetch [<!ENTITY x "y">]><fetch><entity name="account"/></fetch>')));
    expect(doctype).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("DOCTYPE") });
  });

  test("an unknown FetchXML operator is ORG_UNSUPPORTED naming it", () => {
    const error = failure(() => run(new FetchExpression('<fetch><entity name="account"><filter><condition attribute="openedon" operator="last-x-days" value="3"/></filter></entity></fetch>')));
    expect(error.code).toBe("ORG_UNSUPPORTED");
    expect(error.message).toContain('"last-x-days"');
    expect(error.message).toContain("supported operators: eq, ne");
  });

  test("malformed FetchXML is ORG_INVALID_ARGUMENT saying what is wrong", () => {
    const cases: Array<[string, string]> = [
      ['<fetch><entity name="account"></fetch>', "not well-formed"],
      ["<query/>", "one <fetch> root"],
      ["<fetch/>", "exactly one <entity>"],
      ["<fetch><entity/></fetch>", "needs a name attribute"],
      ['<fetch><entity name="account"><filter><condition attribute="name"/></filter></entity></fetch>', "needs an operator"],
      ['<fetch><entity name="account"><bogus/></entity></fetch>', "unexpected <bogus>"],
      ['<fetch count="x"><entity name="account"/></fetch>', "whole number"],
      ['<fetch><entity name="account"><link-entity name="contact" alias="c"/></entity></fetch>', "needs from"],
      ['<fetch aggregate="true"><entity name="account"><attribute name="revenue" aggregate="sum"/></entity></fetch>', "needs an alias"],
      ['<fetch><entity name="account"><attribute name="name; DROP TABLE records"/></entity></fetch>', "must be a name"],
    ];
    for (const [xml, message] of cases) {
      const error = failure(() => run(new FetchExpression(xml)));
      expect(error, xml).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining(message) });
    }
  });
});

// Schemas and malformed queries ////////////////////////////////////////////////////////////////

describe("table schemas and malformed queries", () => {
  const accountSchema: TableSchema = {
    logicalName: "account",
    columns: { name: "string", city: "string", revenue: "money", numberofemployees: "number", industrycode: "optionset", openedon: "datetime", creditonhold: "boolean", primarycontactid: "lookup" },
  };
  const schemaFor: SchemaLookup = (name) => (name === "account" ? accountSchema : undefined);

  test("with a schema declared, declared columns, the primary id and platform columns may be queried", () => {
    const query = new QueryExpression("account");
    query.columnSet = new ColumnSet("name", "accountid", "createdon");
    query.criteria.addCondition("city", "Equal", "Redmond");
    query.addOrder("modifiedon");
    expect(values(run(query, schemaFor), "name")).toEqual(["Adventure Works"]);
  });

  test("with a schema declared, a column it does not declare is ORG_INVALID_ARGUMENT naming the table and column", () => {
    const inColumns = new QueryExpression("account");
    inColumns.columnSet = new ColumnSet("name", "fax");
    const error = failure(() => run(inColumns, schemaFor));
    expect(error.code).toBe("ORG_INVALID_ARGUMENT");
    expect(error.message).toContain("account has no column fax");
    expect(error.message).toContain("declare it");

    const inCondition = new QueryExpression("account");
    inCondition.criteria.addCondition("fax", "Null");
    expect(failure(() => run(inCondition, schemaFor)).message).toContain("account has no column fax");

    const inOrder = new QueryExpression("account");
    inOrder.addOrder("fax");
    expect(failure(() => run(inOrder, schemaFor)).message).toContain("account has no column fax");

    const inLink = new QueryExpression("contact");
    inLink.addLink("account", "parentcustomerid", "parentaccountid");
    expect(failure(() => run(inLink, schemaFor)).message).toContain("account has no column parentaccountid");

    expect(failure(() => run(new FetchExpression('<fetch><entity name="account"><attribute name="fax"/></entity></fetch>'), schemaFor)).message).toContain("account has no column fax");
  });

  test("a query without an entity name is ORG_INVALID_ARGUMENT", () => {
    expect(failure(() => run({ columnSet: ["name"] }))).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("query.entityName") });
    expect(failure(() => run(new QueryExpression(""))).code).toBe("ORG_INVALID_ARGUMENT");
  });

  test("a filter that is not an object is ORG_INVALID_ARGUMENT", () => {
    expect(failure(() => run({ entityName: "account", criteria: "name eq 'x'" }))).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("query.criteria must be a FilterExpression") });
    expect(failure(() => run({ entityName: "account", criteria: { filters: [42] } })).message).toContain("query.criteria.filters[0] must be a FilterExpression");
  });

  test("a column name that is not a plain name is ORG_INVALID_ARGUMENT before it reaches SQL", () => {
    const query = new QueryExpression("account");
    query.criteria.addCondition("name') OR 1=1 --", "Equal", "x");
    expect(failure(() => run(query))).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("attributeName must be a name") });
  });

  test("a value that is not a query is ORG_INVALID_ARGUMENT", () => {
    expect(failure(() => run(42)).code).toBe("ORG_INVALID_ARGUMENT");
    expect(failure(() => run(new EntityReference("account", A.contoso))).message).toContain("got a value of type EntityReference");
  });
});
