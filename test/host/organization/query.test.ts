/**
 * RetrieveMultiple over the store as a specification: QueryExpression, QueryByAttribute and FetchXML
 * against a seeded in-memory store of accounts and contacts — column sets, every supported
 * condition operator with type-aware comparison, filters, link entities, orders, distinct, top,
 * paging, aggregates, table schemas, and how malformed or unsupported queries are refused.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { QueryStore } from "../../../dist/host/organization/query/index.js";
import { openStore, retrieveMultiple, Store, toPositional, type SchemaLookup, type TableSchema } from "../../../dist/host/testing/internal.js";
import { startPostgres, type TestPostgres } from "../../helpers/postgres.js";
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

/** The stores the specification runs on: SQLite's, and PostgreSQL's through a real server. */
const ENGINES = ["sqlite", "postgres"] as const;
type EngineName = (typeof ENGINES)[number];

/** Records the specification reads, besides accounts and contacts: values PostgreSQL could trip on. */
const M = (n: number) => `e0000000-0000-0000-0000-00000000000${n}`;
const oddities: Array<[string, Record<string, unknown>]> = [
  [M(1), { label: "one", code: 5, stamp: "2024-01-31T10:00:00Z", path: "a\\b" }],
  [M(2), { label: "two", code: "5", stamp: "2024-02-30", path: "a%b" }],
  [M(3), { label: "three", code: "abc", stamp: "2024-13-01", path: "a_b" }],
  [M(4), { label: "four", code: 12, stamp: "not a date", path: "Émile" }],
  [M(5), { label: "five", code: true, stamp: 20240131, path: "émile" }],
  [M(6), { label: "six", code: null, stamp: null }],
  [M(7), { label: "seven", code: "12abc", stamp: "2023-12-31T23:30:00-02:00", path: "A\\B" }],
];

/** Every record as [entity, id, attributes], as both stores hold them. */
const RECORDS: Array<[string, string, Record<string, unknown>]> = [
  ...accounts.map(([id, attributes]): [string, string, Record<string, unknown>] => ["account", id, { accountid: id, ...attributes }]),
  ...contacts.map(([id, attributes]): [string, string, Record<string, unknown>] => ["contact", id, { contactid: id, ...attributes }]),
  ...oddities.map(([id, attributes]): [string, string, Record<string, unknown>] => ["oddity", id, { oddityid: id, ...attributes }]),
  // PostgreSQL's text cannot hold the character \u0000, and its json operators fail on a text holding it.
  ["note", M(8), { noteid: M(8), body: "before\u0000after", size: 1, parts: { $type: "OptionSetValueCollection", values: [1, 2] } }],
  ["note", M(9), { noteid: M(9), body: "plain", size: 2 }],
];

interface TestStore extends QueryStore {
  findRecordId(entity: string, values: Record<string, unknown>): Promise<string | undefined> | string | undefined;
  close(): Promise<void> | void;
}

/** The SQLite store, seeded. */
function openSqlite(): TestStore {
  const sqlite = Store.open({ path: ":memory:" });
  for (const [entity, id, attributes] of RECORDS) sqlite.insertRecord(entity, id, attributes);
  return {
    engine: "sqlite",
    selectRows: (sql, params) => sqlite.selectRows(sql, params),
    findRecordId: (entity, values) => sqlite.findRecordId(entity, values),
    close: () => sqlite.close(),
  };
}

/** The PostgreSQL store on a fresh database of the test server, seeded with the same rows. */
async function openPostgres(server: TestPostgres): Promise<TestStore> {
  const postgres = await openStore({ path: await server.createDatabase() });
  for (const [entity, id, attributes] of RECORDS) await postgres.insertRecord(entity, id, attributes);
  return postgres;
}

let server: TestPostgres | undefined;
const stores = new Map<EngineName, TestStore>();
/** The store the running test queries. */
let store: TestStore;

beforeAll(async () => {
  server = await startPostgres();
  stores.set("sqlite", openSqlite());
  stores.set("postgres", await openPostgres(server));
});

afterAll(async () => {
  for (const opened of stores.values()) await opened.close();
  await server?.close();
});

// Helpers /////////////////////////////////////////////////////////////////////////////////////

const run = (query: unknown, schemaFor?: SchemaLookup): Promise<EntityCollection> => retrieveMultiple(store, query, schemaFor ? { schemaFor } : {});

/** The value of `column` of every returned record, in order. */
const values = (result: EntityCollection, column: string): unknown[] => result.entities.map((e: Entity) => e.attributes[column]);

/** The names of the accounts a condition on account matches, sorted. */
async function accountsWhere(attribute: string, operator: string, ...conditionValues: unknown[]): Promise<string[]> {
  const query = new QueryExpression("account");
  query.columnSet = new ColumnSet("name");
  query.criteria.addCondition(attribute, operator, ...(conditionValues as never[]));
  return (values(await run(query), "name") as string[]).sort();
}

/** The first names of the contacts a condition on contact matches, sorted. */
async function contactsWhere(attribute: string, operator: string, ...conditionValues: unknown[]): Promise<string[]> {
  const query = new QueryExpression("contact");
  query.columnSet = new ColumnSet("firstname");
  query.criteria.addCondition(attribute, operator, ...(conditionValues as never[]));
  return (values(await run(query), "firstname") as string[]).sort();
}

/** The code and message a call fails with. */
async function failure(call: () => Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await call();
  } catch (error) {
    return { code: (error as { code: string }).code, message: (error as Error).message };
  }
  throw new Error("expected the call to fail");
}

const fetchNames = async (xml: string): Promise<string[]> => values(await run(new FetchExpression(xml)), "name") as string[];

describe.each(ENGINES)("on %s", (engine) => {
  beforeAll(() => {
    store = stores.get(engine)!;
  });

  // Column sets //////////////////////////////////////////////////////////////////////////////////

  describe("column sets", () => {
    test("all columns returns every stored column of every record, decoded into SDK types", async () => {
      const query = new QueryExpression("account");
      query.columnSet = new ColumnSet(true);
      const result = await run(query);
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

    test("a stored null is left out of the entity, as Dataverse leaves out null columns", async () => {
      const query = new QueryExpression("account");
      query.columnSet = new ColumnSet(true);
      query.criteria.addCondition("accountid", "Equal", A.contoso);
      const [contoso] = (await run(query)).entities;
      expect(contoso!.contains("description")).toBe(false);
    });

    test("a list of columns returns only those columns, plus the id as Entity.id and as the primary id column", async () => {
      const query = new QueryExpression("account");
      query.columnSet = new ColumnSet("name", "city");
      query.criteria.addCondition("name", "Equal", "Fabrikam");
      const [fabrikam] = (await run(query)).entities;
      expect(fabrikam!.id).toBe(A.fabrikam);
      expect(fabrikam!.attributes).toEqual({ name: "Fabrikam", city: "Seattle", accountid: A.fabrikam });
    });

    test("an empty column set returns the ids only", async () => {
      const result = await run(new QueryExpression("contact"));
      expect(result.entities).toHaveLength(7);
      expect(result.entities.map((e) => Object.keys(e.attributes))).toEqual(Array(7).fill(["contactid"]));
    });

    test("a query on a table with no rows and no declared schema returns an empty collection", async () => {
      const result = await run(new QueryExpression("invoice"));
      expect(result.entities).toEqual([]);
      expect(result.moreRecords).toBe(false);
      expect(result.pagingCookie).toBeNull();
      expect(result.totalRecordCount).toBe(-1);
    });
  });

  // Conditions ///////////////////////////////////////////////////////////////////////////////////

  describe("condition operators", () => {
    test("Equal on a string compares case-insensitively", async () => {
      expect(await accountsWhere("name", "Equal", "CONTOSO")).toEqual(["Contoso"]);
      expect(await accountsWhere("city", "Equal", "seattle")).toEqual(["Contoso", "Fabrikam", "contoso east"]);
    });

    test("NotEqual matches other values and, as in SQL, not nulls", async () => {
      expect(await contactsWhere("age", "NotEqual", 34)).toEqual(["Bob", "Cara", "Eve", "Finn", "gail"]);
    });

    test("GreaterThan, GreaterEqual, LessThan and LessEqual compare numbers numerically", async () => {
      expect(await accountsWhere("numberofemployees", "GreaterThan", 50)).toEqual(["Fabrikam", "contoso east"]);
      expect(await accountsWhere("numberofemployees", "GreaterEqual", 50)).toEqual(["Contoso", "Fabrikam", "contoso east"]);
      expect(await accountsWhere("numberofemployees", "LessThan", 75)).toEqual(["Adventure Works", "Contoso"]);
      expect(await accountsWhere("numberofemployees", "LessEqual", 75)).toEqual(["Adventure Works", "Contoso", "contoso east"]);
    });

    test("Money compares by its value, given as Money or as a number", async () => {
      expect(await accountsWhere("revenue", "GreaterThan", new Money(4000))).toEqual(["Contoso", "Fabrikam"]);
      expect(await accountsWhere("revenue", "LessEqual", 3000)).toEqual(["Adventure Works", "contoso east"]);
    });

    test("OptionSetValue compares by its value, given as OptionSetValue or as a number", async () => {
      expect(await accountsWhere("industrycode", "Equal", new OptionSetValue(1))).toEqual(["Adventure Works", "Contoso"]);
      expect(await accountsWhere("industrycode", "Equal", 2)).toEqual(["Fabrikam", "contoso east"]);
    });

    test("a lookup compares by its id, given as EntityReference or guid string in any case", async () => {
      expect(await contactsWhere("parentcustomerid", "Equal", new EntityReference("account", A.contoso.toUpperCase()))).toEqual(["Ann", "Bob"]);
      expect(await contactsWhere("parentcustomerid", "Equal", A.fabrikam.toUpperCase())).toEqual(["Cara", "Dan"]);
      expect(await contactsWhere("contactid", "Equal", C.eve.toUpperCase())).toEqual(["Eve"]);
    });

    test("DateTime compares by instant, given as Date or ISO string", async () => {
      expect(await accountsWhere("openedon", "GreaterThan", new Date("2024-01-31T09:00:00.000Z"))).toEqual(["Adventure Works", "Northwind 100%_Traders"]);
      expect(await accountsWhere("openedon", "GreaterEqual", "2024-01-31T09:00:00Z")).toEqual(["Adventure Works", "Fabrikam", "Northwind 100%_Traders"]);
      expect(await accountsWhere("openedon", "LessThan", "2024-01-01")).toEqual(["Contoso", "contoso east"]);
    });

    test("On, OnOrAfter and OnOrBefore compare the date (UTC) without the time", async () => {
      expect(await accountsWhere("openedon", "On", new Date("2024-01-31T00:00:00.000Z"))).toEqual(["Fabrikam", "Northwind 100%_Traders"]);
      expect(await accountsWhere("openedon", "OnOrAfter", "2024-01-31")).toEqual(["Adventure Works", "Fabrikam", "Northwind 100%_Traders"]);
      expect(await accountsWhere("openedon", "OnOrBefore", "2024-01-31")).toEqual(["Contoso", "Fabrikam", "Northwind 100%_Traders", "contoso east"]);
      expect(await accountsWhere("openedon", "NotOn", "2024-01-31")).toEqual(["Adventure Works", "Contoso", "contoso east"]);
    });

    test("booleans compare as true and false", async () => {
      expect(await accountsWhere("creditonhold", "Equal", true)).toEqual(["Fabrikam", "Northwind 100%_Traders"]);
      expect(await accountsWhere("creditonhold", "Equal", false)).toEqual(["Adventure Works", "Contoso", "contoso east"]);
    });

    test("Like and NotLike use SQL wildcards % and _, case-insensitively", async () => {
      expect(await accountsWhere("name", "Like", "contoso%")).toEqual(["Contoso", "contoso east"]);
      expect(await accountsWhere("name", "Like", "_abrikam")).toEqual(["Fabrikam"]);
      expect(await accountsWhere("name", "NotLike", "%o%")).toEqual(["Fabrikam"]);
    });

    test("BeginsWith, EndsWith and Contains match the text literally, with their negations", async () => {
      expect(await accountsWhere("name", "BeginsWith", "CON")).toEqual(["Contoso", "contoso east"]);
      expect(await accountsWhere("name", "DoesNotBeginWith", "con")).toEqual(["Adventure Works", "Fabrikam", "Northwind 100%_Traders"]);
      expect(await accountsWhere("name", "EndsWith", "works")).toEqual(["Adventure Works"]);
      expect(await accountsWhere("name", "DoesNotEndWith", "s")).toEqual(["Contoso", "Fabrikam", "contoso east"]);
      expect(await accountsWhere("name", "Contains", "TOSO")).toEqual(["Contoso", "contoso east"]);
      expect(await accountsWhere("name", "DoesNotContain", "o")).toEqual(["Fabrikam"]);
      // % and _ in the value are not wildcards.
      expect(await accountsWhere("name", "Contains", "100%_")).toEqual(["Northwind 100%_Traders"]);
      expect(await accountsWhere("name", "Contains", "%")).toEqual(["Northwind 100%_Traders"]);
      expect(await accountsWhere("name", "BeginsWith", "_")).toEqual([]);
    });

    test("In and NotIn take several values, or one array of values", async () => {
      expect(await accountsWhere("city", "In", "REDMOND", "portland")).toEqual(["Adventure Works", "Northwind 100%_Traders"]);
      expect(await accountsWhere("industrycode", "In", [new OptionSetValue(2), 3])).toEqual(["Fabrikam", "Northwind 100%_Traders", "contoso east"]);
      expect(await contactsWhere("parentcustomerid", "In", A.contoso, new EntityReference("account", A.adventure))).toEqual(["Ann", "Bob", "Eve"]);
      expect(await accountsWhere("city", "NotIn", "Seattle", "Redmond")).toEqual(["Northwind 100%_Traders"]);
      expect(await contactsWhere("age", "NotIn", 34, 45)).toEqual(["Cara", "Eve", "Finn", "gail"]);
    });

    test("Between and NotBetween include both ends", async () => {
      expect(await accountsWhere("numberofemployees", "Between", 10, 75)).toEqual(["Adventure Works", "Contoso", "contoso east"]);
      expect(await accountsWhere("numberofemployees", "NotBetween", 10, 75)).toEqual(["Fabrikam"]);
      expect(await accountsWhere("openedon", "Between", "2024-01-01", "2024-01-31T23:59:59Z")).toEqual(["Fabrikam", "Northwind 100%_Traders"]);
    });

    test("Null matches a missing column and a stored null; NotNull matches a value", async () => {
      expect(await contactsWhere("age", "Null")).toEqual(["Dan"]);
      expect(await contactsWhere("parentcustomerid", "Null")).toEqual(["Finn"]);
      expect(await accountsWhere("numberofemployees", "Null")).toEqual(["Northwind 100%_Traders"]);
      expect(await accountsWhere("revenue", "NotNull")).toEqual(["Adventure Works", "Contoso", "Fabrikam", "contoso east"]);
    });

    test("Equal null is Null and NotEqual null is NotNull", async () => {
      expect(await contactsWhere("parentcustomerid", "Equal", null)).toEqual(["Finn"]);
      expect(await contactsWhere("age", "NotEqual", null)).toHaveLength(6);
    });

    test("ContainValues and DoesNotContainValues match options of a multi-select column", async () => {
      expect(await contactsWhere("hobbies", "ContainValues", 3)).toEqual(["Ann", "Cara"]);
      expect(await contactsWhere("hobbies", "ContainValues", new OptionSetValue(2), 1)).toEqual(["Ann", "Bob"]);
      expect(await contactsWhere("hobbies", "DoesNotContainValues", 3)).toEqual(["Bob"]);
    });

    test("a value that looks like SQL is only ever a value", async () => {
      expect(await accountsWhere("name", "Equal", "x' OR '1'='1")).toEqual([]);
      expect((await run(new QueryExpression("account"))).entities).toHaveLength(5);
    });

    test("an unsupported operator is ORG_UNSUPPORTED naming it and listing the supported ones", async () => {
      const error = await failure(async () => await accountsWhere("openedon", "LastXDays", 7));
      expect(error.code).toBe("ORG_UNSUPPORTED");
      expect(error.message).toContain('"LastXDays"');
      expect(error.message).toContain("supported operators: Equal, NotEqual");
      expect(error.message).toContain("Between");
    });

    test("a wrong number of values is ORG_INVALID_ARGUMENT", async () => {
      expect(await failure(async () => await accountsWhere("numberofemployees", "Between", 10))).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("Between on numberofemployees takes 2 values, got 1") });
      expect((await failure(async () => await accountsWhere("city", "In"))).code).toBe("ORG_INVALID_ARGUMENT");
      expect((await failure(async () => await accountsWhere("openedon", "On", "not a date"))).message).toContain("needs a date");
    });
  });

  // Filters //////////////////////////////////////////////////////////////////////////////////////

  describe("filters", () => {
    test("an And filter with a nested Or filter matches records meeting all conditions of the And and one of the Or", async () => {
      const query = new QueryExpression("account");
      query.columnSet = new ColumnSet("name");
      query.criteria.addCondition("city", "Equal", "Seattle");
      const either = new FilterExpression("Or");
      either.addCondition("numberofemployees", "GreaterThan", 100);
      either.addCondition("name", "BeginsWith", "contoso e");
      query.criteria.addFilter(either);
      expect((values(await run(query), "name") as string[]).sort()).toEqual(["Fabrikam", "contoso east"]);
    });

    test("an Or filter at the top with nested And filters", async () => {
      const query = new QueryExpression("contact");
      query.columnSet = new ColumnSet("firstname");
      query.criteria = new FilterExpression("Or");
      query.criteria.addFilter(new FilterExpression("And").addCondition("age", "GreaterThan", 40).addCondition("donotemail", "Equal", true));
      query.criteria.addFilter(new FilterExpression("And").addCondition("age", "LessThan", 25));
      expect((values(await run(query), "firstname") as string[]).sort()).toEqual(["Bob", "Eve", "Finn"]);
    });

    test("an empty filter matches every record", async () => {
      const query = new QueryExpression("account");
      query.criteria.addFilter(new FilterExpression("Or"));
      expect((await run(query)).entities).toHaveLength(5);
    });
  });

  // Link entities ////////////////////////////////////////////////////////////////////////////////

  describe("link entities", () => {
    test("an inner join returns the linked columns as alias.column and drops records without a match", async () => {
      const query = new QueryExpression("contact");
      query.columnSet = new ColumnSet("firstname");
      const link = query.addLink("account", "parentcustomerid", "accountid");
      link.entityAlias = "acct";
      link.columns = new ColumnSet("name", "revenue");
      query.addOrder("firstname");
      const result = await run(query);
      expect(values(result, "firstname")).toEqual(["Ann", "Bob", "Cara", "Dan", "Eve", "gail"]);
      expect(values(result, "acct.name")).toEqual(["Contoso", "Contoso", "Fabrikam", "Fabrikam", "Adventure Works", "contoso east"]);
      expect(result.entities[0]!.attributes["acct.revenue"]).toBeInstanceOf(Money);
    });

    test("a link without an alias is named after its table and position", async () => {
      const query = new QueryExpression("contact");
      query.columnSet = new ColumnSet("firstname");
      query.addLink("account", "parentcustomerid", "accountid").columns = new ColumnSet("name");
      query.criteria.addCondition("firstname", "Equal", "Eve");
      expect((await run(query)).entities[0]!.attributes).toMatchObject({ firstname: "Eve", "account1.name": "Adventure Works" });
    });

    test("a left outer join keeps records without a match, without the linked columns", async () => {
      const query = new QueryExpression("account");
      query.columnSet = new ColumnSet("name");
      const link = query.addLink("contact", "accountid", "parentcustomerid", "LeftOuter");
      link.entityAlias = "c";
      link.columns = new ColumnSet("firstname");
      query.addOrder("name");
      query.orders.push(Object.assign(new OrderExpression("firstname"), { alias: "c" }));
      const result = await run(query);
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

    test("a condition on an outer link's alias in the main criteria finds records with no match", async () => {
      const query = new QueryExpression("contact");
      query.columnSet = new ColumnSet("firstname");
      const link = query.addLink("account", "parentcustomerid", "accountid", "LeftOuter");
      link.entityAlias = "a";
      const none = new ConditionExpression("accountid", "Null");
      none.entityName = "a";
      query.criteria.conditions.push(none);
      expect(values(await run(query), "firstname")).toEqual(["Finn"]);
    });

    test("link criteria limit the linked records", async () => {
      const query = new QueryExpression("account");
      query.columnSet = new ColumnSet("name");
      query.distinct = true;
      const link = query.addLink("contact", "accountid", "parentcustomerid");
      link.linkCriteria.addCondition("age", "GreaterThan", 40);
      expect((values(await run(query), "name") as string[]).sort()).toEqual(["Adventure Works", "Contoso"]);
    });

    test("nested link entities join through their parent link", async () => {
      const query = new QueryExpression("contact");
      query.columnSet = new ColumnSet("firstname");
      const parent = query.addLink("account", "parentcustomerid", "accountid");
      parent.entityAlias = "acct";
      const primary = new LinkEntity("account", "contact", "primarycontactid", "contactid");
      primary.entityAlias = "pc";
      primary.columns = new ColumnSet("firstname");
      parent.linkEntities.push(primary);
      query.addOrder("firstname");
      const result = await run(query);
      expect(result.entities.map((e) => [e.attributes.firstname, e.attributes["pc.firstname"]])).toEqual([
        ["Ann", "Ann"],
        ["Bob", "Ann"],
        ["Cara", "Cara"],
        ["Dan", "Cara"],
      ]);
    });

    test("all columns of a link entity come back under its alias", async () => {
      const query = new QueryExpression("contact");
      query.columnSet = new ColumnSet("firstname");
      query.criteria.addCondition("firstname", "Equal", "Cara");
      const link = query.addLink("account", "parentcustomerid", "accountid");
      link.entityAlias = "a";
      link.columns = new ColumnSet(true);
      const attributes = (await run(query)).entities[0]!.attributes;
      expect(attributes["a.name"]).toBe("Fabrikam");
      expect(attributes["a.accountid"]).toBe(A.fabrikam);
      expect(attributes["a.openedon"]).toBeInstanceOf(Date);
    });

    test("a condition naming an alias that is not in the query is ORG_INVALID_ARGUMENT", async () => {
      const query = new QueryExpression("contact");
      const condition = new ConditionExpression("name", "Equal", "x");
      condition.entityName = "nosuch";
      query.criteria.conditions.push(condition);
      expect(await failure(async () => await run(query))).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("nosuch is not the alias of a link entity") });
    });
  });

  // Orders, distinct, top, paging ////////////////////////////////////////////////////////////////

  describe("orders, distinct, top and paging", () => {
    test("orders sort ascending and descending, strings case-insensitively and numbers numerically", async () => {
      const query = new QueryExpression("account");
      query.columnSet = new ColumnSet("name");
      query.addOrder("name");
      expect(values(await run(query), "name")).toEqual(["Adventure Works", "Contoso", "contoso east", "Fabrikam", "Northwind 100%_Traders"]);
      const byEmployees = new QueryExpression("account");
      byEmployees.columnSet = new ColumnSet("name");
      byEmployees.addOrder("numberofemployees", "Descending");
      expect(values(await run(byEmployees), "name")).toEqual(["Fabrikam", "contoso east", "Contoso", "Adventure Works", "Northwind 100%_Traders"]);
    });

    test("several orders apply in turn", async () => {
      const query = new QueryExpression("account");
      query.columnSet = new ColumnSet("name");
      query.addOrder("industrycode", "Descending").addOrder("revenue", "Ascending");
      expect(values(await run(query), "name")).toEqual(["Northwind 100%_Traders", "contoso east", "Fabrikam", "Adventure Works", "Contoso"]);
    });

    test("an order may be on a link entity's column through its alias", async () => {
      const query = new QueryExpression("contact");
      query.columnSet = new ColumnSet("firstname");
      query.addLink("account", "parentcustomerid", "accountid").entityAlias = "a";
      query.orders.push(Object.assign(new OrderExpression("revenue", "Descending"), { alias: "a" }));
      query.addOrder("firstname", "Descending");
      expect(values(await run(query), "firstname")).toEqual(["Dan", "Cara", "Bob", "Ann", "gail", "Eve"]);
    });

    test("distinct returns each combination of the columns once", async () => {
      const query = new QueryExpression("account");
      query.columnSet = new ColumnSet("creditonhold");
      query.distinct = true;
      query.addOrder("creditonhold");
      const result = await run(query);
      expect(values(result, "creditonhold")).toEqual([false, true]);
    });

    test("topCount returns at most that many records and no paging cookie", async () => {
      const query = new QueryExpression("account");
      query.columnSet = new ColumnSet("name");
      query.addOrder("revenue", "Descending");
      query.topCount = 2;
      const result = await run(query);
      expect(values(result, "name")).toEqual(["Fabrikam", "Contoso"]);
      expect(result.moreRecords).toBe(false);
      expect(result.pagingCookie).toBeNull();
    });

    test("paging walks 3 pages by page number, with moreRecords, a cookie and the total count when asked", async () => {
      const page = async (pageNumber: number, pagingCookie: string | null) => {
        const query = new QueryExpression("contact");
        query.columnSet = new ColumnSet("firstname");
        query.addOrder("firstname");
        query.pageInfo = { count: 3, pageNumber, pagingCookie, returnTotalRecordCount: true };
        return await run(query);
      };
      const first = await page(1, null);
      expect(values(first, "firstname")).toEqual(["Ann", "Bob", "Cara"]);
      expect(first.moreRecords).toBe(true);
      expect(first.totalRecordCount).toBe(7);
      expect(first.pagingCookie).toMatch(/^<cookie page="1"/);
      const second = await page(2, first.pagingCookie);
      expect(values(second, "firstname")).toEqual(["Dan", "Eve", "Finn"]);
      expect(second.moreRecords).toBe(true);
      const third = await page(3, second.pagingCookie);
      expect(values(third, "firstname")).toEqual(["gail"]);
      expect(third.moreRecords).toBe(false);
      expect(third.totalRecordCount).toBe(7);
      // Without the cookie the page number alone finds the page.
      expect(values(await page(3, null), "firstname")).toEqual(["gail"]);
      // A page past the end is empty and still counts.
      const past = await page(4, null);
      expect(past.entities).toEqual([]);
      expect(past.totalRecordCount).toBe(7);
    });

    test("the total record count is -1 unless asked for", async () => {
      const query = new QueryExpression("contact");
      query.pageInfo = { count: 2, pageNumber: 1, pagingCookie: null, returnTotalRecordCount: false };
      const result = await run(query);
      expect(result.entities).toHaveLength(2);
      expect(result.totalRecordCount).toBe(-1);
      expect(result.moreRecords).toBe(true);
    });

    test("topCount together with a page size is ORG_INVALID_ARGUMENT", async () => {
      const query = new QueryExpression("contact");
      query.topCount = 3;
      query.pageInfo = { count: 2, pageNumber: 1, pagingCookie: null, returnTotalRecordCount: false };
      expect((await failure(async () => await run(query))).code).toBe("ORG_INVALID_ARGUMENT");
    });
  });

  // QueryByAttribute and plain objects ///////////////////////////////////////////////////////////

  describe("QueryByAttribute and plain query objects", () => {
    test("QueryByAttribute matches records equal on every attribute, with orders and topCount", async () => {
      const query = new QueryByAttribute("contact");
      query.columnSet = new ColumnSet("firstname");
      query.addAttributeValue("donotemail", false).addAttributeValue("preferredcontactmethodcode", new OptionSetValue(1));
      query.orders.push(new OrderExpression("firstname", "Descending"));
      expect(values(await run(query), "firstname")).toEqual(["Cara", "Ann"]);
      query.topCount = 1;
      expect(values(await run(query), "firstname")).toEqual(["Cara"]);
    });

    test("QueryByAttribute with attributes and values that do not pair up is ORG_INVALID_ARGUMENT", async () => {
      const error = await failure(async () => await run({ entityName: "contact", attributes: ["firstname", "lastname"], values: ["Ann"] }));
      expect(error.code).toBe("ORG_INVALID_ARGUMENT");
      expect(error.message).toContain("must pair up");
    });

    test("plain objects of the three shapes are accepted", async () => {
      const plainQuery = {
        entityName: "account",
        columnSet: { allColumns: false, columns: ["name"] },
        criteria: { filterOperator: "And", conditions: [{ attributeName: "city", operator: "Equal", values: ["Redmond"] }], filters: [] },
      };
      expect(values(await run(plainQuery), "name")).toEqual(["Adventure Works"]);
      expect(values(await run({ entityName: "account", columnSet: ["name"], attributes: ["city"], values: ["Portland"] }), "name")).toEqual(["Northwind 100%_Traders"]);
      expect(await fetchNames('<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="name" operator="eq" value="fabrikam"/></filter></entity></fetch>')).toEqual(["Fabrikam"]);
      expect(values(await run({ query: '<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="city" operator="eq" value="Portland"/></filter></entity></fetch>' }), "name")).toEqual(["Northwind 100%_Traders"]);
    });

    test("a query that crossed the sandbox bridge as plugbox JSON runs as the original would", async () => {
      const query = new QueryExpression("contact");
      query.columnSet = new ColumnSet("firstname");
      query.criteria.addCondition("parentcustomerid", "Equal", new EntityReference("account", A.contoso));
      query.criteria.addCondition("birthdate", "OnOrBefore", new Date("1990-05-01T10:00:00.000Z"));
      const link = query.addLink("account", "parentcustomerid", "accountid");
      link.linkCriteria.addCondition("revenue", "GreaterEqual", new Money(5000));
      expect(values(await run(decode(encode(query))), "firstname")).toEqual(["Ann"]);
    });

    test("a plain query object without a column set returns all columns", async () => {
      const result = await run({ entityName: "contact", criteria: { conditions: [{ attributeName: "firstname", operator: "Equal", values: ["Ann"] }] } });
      expect(result.entities[0]!.attributes.hobbies).toBeInstanceOf(OptionSetValueCollection);
    });
  });

  // FetchXML /////////////////////////////////////////////////////////////////////////////////////

  describe("FetchXML", () => {
    test("attributes, filters with nested or, and orders", async () => {
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
      const result = await run(new FetchExpression(xml));
      expect(values(result, "name")).toEqual(["Contoso", "contoso east", "Adventure Works"]);
      expect(result.entities[0]!.attributes.revenue).toBeInstanceOf(Money);
    });

    test("condition values are strings compared with the stored type: numbers, guids, dates, booleans", async () => {
      const where = async (condition: string) =>
        await fetchNames(`<fetch><entity name="account"><attribute name="name"/><order attribute="name"/><filter>${condition}</filter></entity></fetch>`);
      expect(await where('<condition attribute="numberofemployees" operator="gt" value="60" />')).toEqual(["contoso east", "Fabrikam"]);
      expect(await where('<condition attribute="revenue" operator="ge" value="5000.00" />')).toEqual(["Contoso", "Fabrikam"]);
      expect(await where(`<condition attribute="accountid" operator="eq" value="{${A.fabrikam.toUpperCase()}}" />`)).toEqual(["Fabrikam"]);
      expect(await where(`<condition attribute="primarycontactid" operator="eq" value="${C.cara.toUpperCase()}" />`)).toEqual(["Fabrikam"]);
      expect(await where('<condition attribute="openedon" operator="lt" value="2024-01-01" />')).toEqual(["Contoso", "contoso east"]);
      expect(await where('<condition attribute="openedon" operator="on" value="2024-01-31" />')).toEqual(["Fabrikam", "Northwind 100%_Traders"]);
      expect(await where('<condition attribute="openedon" operator="on-or-after" value="2024-02-01" />')).toEqual(["Adventure Works"]);
      expect(await where('<condition attribute="openedon" operator="on-or-before" value="2023-06-01" />')).toEqual(["Contoso", "contoso east"]);
      expect(await where('<condition attribute="creditonhold" operator="eq" value="true" />')).toEqual(["Fabrikam", "Northwind 100%_Traders"]);
      expect(await where('<condition attribute="creditonhold" operator="eq" value="1" />')).toEqual(["Fabrikam", "Northwind 100%_Traders"]);
      expect(await where('<condition attribute="industrycode" operator="eq" value="3" />')).toEqual(["Northwind 100%_Traders"]);
    });

    test("every FetchXML operator maps to its ConditionOperator", async () => {
      const where = async (condition: string) =>
        await fetchNames(`<fetch><entity name="account"><attribute name="name"/><order attribute="name"/><filter>${condition}</filter></entity></fetch>`);
      expect(await where('<condition attribute="city" operator="ne" value="seattle" />')).toEqual(["Adventure Works", "Northwind 100%_Traders"]);
      expect(await where('<condition attribute="numberofemployees" operator="le" value="50" />')).toEqual(["Adventure Works", "Contoso"]);
      expect(await where('<condition attribute="name" operator="like" value="%works" />')).toEqual(["Adventure Works"]);
      expect(await where('<condition attribute="name" operator="not-like" value="%w%" />')).toEqual(["Contoso", "contoso east", "Fabrikam"]);
      expect(await where('<condition attribute="name" operator="begins-with" value="north" />')).toEqual(["Northwind 100%_Traders"]);
      expect(await where('<condition attribute="name" operator="not-begin-with" value="c" />')).toEqual(["Adventure Works", "Fabrikam", "Northwind 100%_Traders"]);
      expect(await where('<condition attribute="name" operator="ends-with" value="EAST" />')).toEqual(["contoso east"]);
      expect(await where('<condition attribute="name" operator="not-end-with" value="o" />')).toEqual(["Adventure Works", "contoso east", "Fabrikam", "Northwind 100%_Traders"]);
      expect(await where('<condition attribute="city" operator="in"><value>Redmond</value><value>Portland</value></condition>')).toEqual(["Adventure Works", "Northwind 100%_Traders"]);
      expect(await where('<condition attribute="industrycode" operator="not-in"><value>1</value><value>2</value></condition>')).toEqual(["Northwind 100%_Traders"]);
      expect(await where('<condition attribute="revenue" operator="between"><value>1000</value><value>6000</value></condition>')).toEqual(["Contoso", "contoso east"]);
      expect(await where('<condition attribute="revenue" operator="not-between"><value>1000</value><value>6000</value></condition>')).toEqual(["Adventure Works", "Fabrikam"]);
      expect(await where('<condition attribute="revenue" operator="null" />')).toEqual(["Northwind 100%_Traders"]);
      expect(await where('<condition attribute="primarycontactid" operator="not-null" />')).toEqual(["Contoso", "Fabrikam"]);
    });

    test("an outer link-entity with its own attributes, filter and alias, and a condition on the alias", async () => {
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
      const result = await run(new FetchExpression(xml));
      expect(result.entities.map((e) => [e.attributes.name, e.attributes["older.firstname"]])).toEqual([
        ["Adventure Works", "Eve"],
        ["Contoso", "Bob"],
        ["Northwind 100%_Traders", undefined],
      ]);
    });

    test("nested link-entities and link orders", async () => {
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
      const result = await run(new FetchExpression(xml));
      expect(result.entities.map((e) => [e.attributes.firstname, e.attributes.company, e.attributes["pc.lastname"]])).toEqual([
        ["Cara", "Fabrikam", "Diaz"],
        ["Dan", "Fabrikam", "Diaz"],
        ["Ann", "Contoso", "Lee"],
        ["Bob", "Contoso", "Lee"],
      ]);
    });

    test("all-attributes, distinct and top", async () => {
      expect((await run(new FetchExpression('<fetch top="2"><entity name="contact"><all-attributes/><order attribute="age" descending="true"/></entity></fetch>'))).entities.map((e) => e.attributes.firstname)).toEqual(["Eve", "Bob"]);
      const cities = await run(new FetchExpression('<fetch distinct="true"><entity name="account"><attribute name="city"/><order attribute="city"/></entity></fetch>'));
      expect(values(cities, "city")).toEqual(["Portland", "Redmond", "Seattle", "seattle"]);
    });

    test("count, page and paging-cookie page through the results", async () => {
      const page = async (n: number, cookie?: string) => {
        const cookieAttr = cookie === undefined ? "" : ` paging-cookie="${cookie.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")}"`;
        return await run(new FetchExpression(`<fetch count="2" page="${n}"${cookieAttr} returntotalrecordcount="true"><entity name="account"><attribute name="name"/><order attribute="name"/></entity></fetch>`));
      };
      const first = await page(1);
      expect(values(first, "name")).toEqual(["Adventure Works", "Contoso"]);
      expect(first.moreRecords).toBe(true);
      expect(first.totalRecordCount).toBe(5);
      const second = await page(2, first.pagingCookie!);
      expect(values(second, "name")).toEqual(["contoso east", "Fabrikam"]);
      expect(second.moreRecords).toBe(true);
      const third = await page(3, second.pagingCookie!);
      expect(values(third, "name")).toEqual(["Northwind 100%_Traders"]);
      expect(third.moreRecords).toBe(false);
    });

    test("aggregate count returns one entity with the count under its alias", async () => {
      const result = await run(new FetchExpression('<fetch aggregate="true"><entity name="contact"><attribute name="contactid" aggregate="count" alias="total"/></entity></fetch>'));
      expect(result.entities).toHaveLength(1);
      expect(result.entities[0]!.attributes).toEqual({ total: 7 });
      const filtered = await run(new FetchExpression('<fetch aggregate="true"><entity name="contact"><attribute name="contactid" aggregate="count" alias="n"/><filter><condition attribute="age" operator="gt" value="30"/></filter></entity></fetch>'));
      expect(filtered.entities[0]!.attributes.n).toBe(4);
    });

    test("aggregates with groupby return one entity per group, values typed as stored", async () => {
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
      const result = await run(new FetchExpression(xml));
      const rows = result.entities.map((e) => e.attributes);
      expect(rows.map((r) => r.city)).toEqual(["Seattle", "Portland", "Redmond"]);
      expect(rows[0]).toMatchObject({ accounts: 3, avgemployees: 325 / 3, maxemployees: 200, withemployees: 3 });
      expect(rows[0]!.revenue).toBeInstanceOf(Money);
      expect((rows[0]!.revenue as Money).value).toBe(20000);
      expect((rows[0]!.firstopened as Date).toISOString()).toBe("2022-11-20T08:15:00.000Z");
      expect(rows[1]).toMatchObject({ accounts: 1, withemployees: 0 });
      expect(result.entities[1]!.contains("revenue")).toBe(false);
    });

    test("groupby on a lookup and on a link-entity column, and dategrouping", async () => {
      const byParent = await run(new FetchExpression(`
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
      const byMonth = await run(new FetchExpression(`
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

    test("link types other than inner and outer are ORG_UNSUPPORTED, as are join operators other than Inner, LeftOuter and Natural", async () => {
      const fetch = await failure(async () => await run(new FetchExpression('<fetch><entity name="account"><link-entity name="contact" from="parentcustomerid" to="accountid" link-type="exists"/></entity></fetch>')));
      expect(fetch).toMatchObject({ code: "ORG_UNSUPPORTED", message: expect.stringContaining('link-type "exists"') });
      const query = new QueryExpression("account");
      query.addLink("contact", "accountid", "parentcustomerid", "Exists" as never);
      expect(await failure(async () => await run(query))).toMatchObject({ code: "ORG_UNSUPPORTED", message: expect.stringContaining('join operator "Exists"') });
    });

    test("entities in values are decoded, and a DOCTYPE is refused", async () => {
      expect(await fetchNames('<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="name" operator="eq" value="Northwind 100%_Traders"/></filter></entity></fetch>')).toEqual(["Northwind 100%_Traders"]);
      expect(await fetchNames('<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="name" operator="like" value="&#x41;dventure%"/></filter></entity></fetch>')).toEqual(["Adventure Works"]);
      const doctype = await failure(async () => await run(new FetchExpression('<!DOCTYPE fetch [<!ENTITY x "y">]><fetch><entity name="account"/></fetch>')));
      expect(doctype).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("DOCTYPE") });
    });

    test("an unknown FetchXML operator is ORG_UNSUPPORTED naming it", async () => {
      const error = await failure(async () => await run(new FetchExpression('<fetch><entity name="account"><filter><condition attribute="openedon" operator="last-x-days" value="3"/></filter></entity></fetch>')));
      expect(error.code).toBe("ORG_UNSUPPORTED");
      expect(error.message).toContain('"last-x-days"');
      expect(error.message).toContain("supported operators: eq, ne");
    });

    test("malformed FetchXML is ORG_INVALID_ARGUMENT saying what is wrong", async () => {
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
        const error = await failure(async () => await run(new FetchExpression(xml)));
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

    test("with a schema declared, declared columns, the primary id and platform columns may be queried", async () => {
      const query = new QueryExpression("account");
      query.columnSet = new ColumnSet("name", "accountid", "createdon");
      query.criteria.addCondition("city", "Equal", "Redmond");
      query.addOrder("modifiedon");
      expect(values(await run(query, schemaFor), "name")).toEqual(["Adventure Works"]);
    });

    test("with a schema declared, a column it does not declare is ORG_INVALID_ARGUMENT naming the table and column", async () => {
      const inColumns = new QueryExpression("account");
      inColumns.columnSet = new ColumnSet("name", "fax");
      const error = await failure(async () => await run(inColumns, schemaFor));
      expect(error.code).toBe("ORG_INVALID_ARGUMENT");
      expect(error.message).toContain("account has no column fax");
      expect(error.message).toContain("declare it");

      const inCondition = new QueryExpression("account");
      inCondition.criteria.addCondition("fax", "Null");
      expect((await failure(async () => await run(inCondition, schemaFor))).message).toContain("account has no column fax");

      const inOrder = new QueryExpression("account");
      inOrder.addOrder("fax");
      expect((await failure(async () => await run(inOrder, schemaFor))).message).toContain("account has no column fax");

      const inLink = new QueryExpression("contact");
      inLink.addLink("account", "parentcustomerid", "parentaccountid");
      expect((await failure(async () => await run(inLink, schemaFor))).message).toContain("account has no column parentaccountid");

      expect((await failure(async () => await run(new FetchExpression('<fetch><entity name="account"><attribute name="fax"/></entity></fetch>'), schemaFor))).message).toContain("account has no column fax");
    });

    test("a query without an entity name is ORG_INVALID_ARGUMENT", async () => {
      expect(await failure(async () => await run({ columnSet: ["name"] }))).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("query.entityName") });
      expect((await failure(async () => await run(new QueryExpression("")))).code).toBe("ORG_INVALID_ARGUMENT");
    });

    test("a filter that is not an object is ORG_INVALID_ARGUMENT", async () => {
      expect(await failure(async () => await run({ entityName: "account", criteria: "name eq 'x'" }))).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("query.criteria must be a FilterExpression") });
      expect((await failure(async () => await run({ entityName: "account", criteria: { filters: [42] } }))).message).toContain("query.criteria.filters[0] must be a FilterExpression");
    });

    test("a column name that is not a plain name is ORG_INVALID_ARGUMENT before it reaches SQL", async () => {
      const query = new QueryExpression("account");
      query.criteria.addCondition("name') OR 1=1 --", "Equal", "x");
      expect(await failure(async () => await run(query))).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("attributeName must be a name") });
    });

    test("a value that is not a query is ORG_INVALID_ARGUMENT", async () => {
      expect((await failure(async () => await run(42))).code).toBe("ORG_INVALID_ARGUMENT");
      expect((await failure(async () => await run(new EntityReference("account", A.contoso)))).message).toContain("got a value of type EntityReference");
    });
  });

  // What PostgreSQL makes risky //////////////////////////////////////////////////////////////////

  describe("values a typed database could trip on (same rows as SQLite, no error)", () => {
    /** The labels of the oddities a condition matches, sorted. */
    async function odditiesWhere(attribute: string, operator: string, ...conditionValues: unknown[]): Promise<string[]> {
      const query = new QueryExpression("oddity");
      query.columnSet = new ColumnSet("label");
      query.criteria.addCondition(attribute, operator, ...(conditionValues as never[]));
      return (values(await run(query), "label") as string[]).sort();
    }
    const aggregate = async (xml: string) => (await run(new FetchExpression(`<fetch aggregate="true"><entity name="oddity">${xml}</entity></fetch>`))).entities.map((e) => e.attributes);

    test("a column holding a number in one record and text in another compares each as its kind, with a number or with text", async () => {
      expect(await odditiesWhere("code", "Equal", 5)).toEqual(["one", "two"]);
      expect(await odditiesWhere("code", "Equal", "5")).toEqual(["one", "two"]);
      expect(await odditiesWhere("code", "GreaterThan", 4)).toEqual(["four", "one", "three", "two"]);
      expect(await odditiesWhere("code", "Equal", "ABC")).toEqual(["three"]);
      expect(await odditiesWhere("code", "LessThan", "2")).toEqual(["five", "seven"]);
      expect(await odditiesWhere("code", "In", 5, "abc")).toEqual(["one", "three", "two"]);
      expect(await odditiesWhere("code", "NotEqual", 5)).toEqual(["five", "four", "seven", "three"]);
      expect(await odditiesWhere("code", "Like", "1%")).toEqual(["five", "four", "seven"]);
      expect(await odditiesWhere("code", "Between", 1, 6)).toEqual(["five", "one", "seven", "two"]);
    });

    test("a mixed column sorts NULLs first, then numbers, then text case-insensitively (and the reverse descending)", async () => {
      const ordered = async (descending: boolean) => {
        const query = new QueryExpression("oddity");
        query.columnSet = new ColumnSet("label");
        query.addOrder("code", descending ? "Descending" : "Ascending");
        return values(await run(query), "label");
      };
      expect(await ordered(false)).toEqual(["six", "five", "one", "four", "seven", "two", "three"]);
      expect(await ordered(true)).toEqual(["three", "two", "seven", "four", "one", "five", "six"]);
      const accountsByEmployees = new QueryExpression("account");
      accountsByEmployees.columnSet = new ColumnSet("name");
      accountsByEmployees.addOrder("numberofemployees");
      expect(values(await run(accountsByEmployees), "name")).toEqual(["Northwind 100%_Traders", "Adventure Works", "Contoso", "contoso east", "Fabrikam"]);
    });

    test("aggregates over a mixed column: min is a number while there is one, max text while there is any, text adds as its leading number", async () => {
      const [row] = await aggregate(
        '<attribute name="code" aggregate="min" alias="least"/><attribute name="code" aggregate="max" alias="most"/><attribute name="code" aggregate="sum" alias="total"/>' +
          '<attribute name="code" aggregate="avg" alias="mean"/><attribute name="code" aggregate="countcolumn" alias="n"/><attribute name="code" aggregate="countcolumn" distinct="true" alias="distinct"/>',
      );
      expect(row).toEqual({ least: 1, most: "abc", total: 35, mean: 35 / 6, n: 6, distinct: 6 });
      const byCode = await aggregate('<attribute name="code" groupby="true" alias="code"/><attribute name="oddityid" aggregate="count" alias="n"/><order alias="code" descending="true"/>');
      expect(byCode).toEqual([{ code: "abc", n: 1 }, { code: "5", n: 1 }, { code: "12abc", n: 1 }, { code: 12, n: 1 }, { code: 5, n: 1 }, { code: true, n: 1 }, { n: 1 }]);
    });

    test("date grouping reads only dates (normalizing 30 February and taking off an offset); anything else is the NULL group", async () => {
      const parts = ["year", "quarter", "month", "week", "day"].map((p) => `<attribute name="stamp" groupby="true" dategrouping="${p}" alias="${p}"/>`).join("");
      const groups = await aggregate(`${parts}<attribute name="oddityid" aggregate="count" alias="n"/>`);
      expect(groups).toEqual([
        { n: 4 },
        { year: 2024, quarter: 1, month: 1, week: 1, day: 1, n: 1 },
        { year: 2024, quarter: 1, month: 1, week: 5, day: 31, n: 1 },
        { year: 2024, quarter: 1, month: 3, week: 9, day: 1, n: 1 },
      ]);
    });

    test("date operators on text that is not a date compare text, and a malformed date literal is ORG_INVALID_ARGUMENT", async () => {
      expect(await odditiesWhere("stamp", "OnOrAfter", "2024-02-01")).toEqual(["four", "three", "two"]);
      expect(await odditiesWhere("stamp", "On", "2024-01-31")).toEqual(["one"]);
      expect(await odditiesWhere("stamp", "GreaterThan", "2024-01-01")).toEqual(["four", "one", "three", "two"]);
      const error = await failure(async () => await odditiesWhere("stamp", "On", "2024-02-30"));
      expect(error).toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("needs a date") });
    });

    test("LIKE: % and _ in a Contains value are literal, a backslash is literal in both, and Like's own wildcards work", async () => {
      expect(await odditiesWhere("path", "Contains", "%")).toEqual(["two"]);
      expect(await odditiesWhere("path", "Contains", "_")).toEqual(["three"]);
      expect(await odditiesWhere("path", "Contains", "\\")).toEqual(["one", "seven"]);
      expect(await odditiesWhere("path", "BeginsWith", "a%")).toEqual(["two"]);
      expect(await odditiesWhere("path", "Like", "a\\%")).toEqual(["one", "seven"]);
      expect(await odditiesWhere("path", "Like", "a_b")).toEqual(["one", "seven", "three", "two"]);
      expect(await odditiesWhere("path", "NotLike", "%b")).toEqual(["five", "four"]);
    });

    test("text equality folds ASCII case only, as SQLite's NOCASE does", async () => {
      expect(await odditiesWhere("path", "Equal", "a\\B")).toEqual(["one", "seven"]);
      expect(await odditiesWhere("path", "Equal", "émile")).toEqual(["five"]);
      expect(await odditiesWhere("path", "In", "ÉMILE", "A%B")).toEqual(["four", "two"]);
    });

    test("a record holding the character \\u0000 is read back as stored and can be filtered, ordered and grouped", async () => {
      const query = new QueryExpression("note");
      query.columnSet = new ColumnSet(true);
      query.addOrder("body", "Descending");
      expect((await run(query)).entities.map((e) => e.attributes.body)).toEqual(["plain", "before\u0000after"]);
      const one = new QueryExpression("note");
      one.columnSet = new ColumnSet("body");
      one.criteria.addCondition("size", "LessThan", 2);
      one.criteria.addCondition("parts", "ContainValues", 2);
      expect((await run(one)).entities.map((e) => e.attributes.body)).toEqual(["before\u0000after"]);
      const groups = await run(new FetchExpression('<fetch aggregate="true"><entity name="note"><attribute name="body" groupby="true" alias="body"/><attribute name="size" aggregate="sum" alias="size"/></entity></fetch>'));
      expect(groups.entities.map((e) => e.attributes)).toEqual([{ body: "before\u0000after", size: 1 }, { body: "plain", size: 2 }]);
      expect(await store.findRecordId("note", { size: 1 })).toBe(M(8));
    });

    test("an alternate-key lookup finds a record by plugbox JSON values", async () => {
      expect(await store.findRecordId("account", { name: "Fabrikam" })).toBe(A.fabrikam);
      expect(await store.findRecordId("account", { city: "Seattle", numberofemployees: 200 })).toBe(A.fabrikam);
      expect(await store.findRecordId("account", { primarycontactid: contact(C.cara) })).toBe(A.fabrikam);
      expect(await store.findRecordId("account", { name: "fabrikam" })).toBeUndefined();
      expect(await store.findRecordId("account", { description: null })).toBeUndefined();
      expect(await store.findRecordId("oddity", { code: 5 })).toBe(M(1));
      expect(await store.findRecordId("oddity", { code: "5" })).toBe(M(2));
    });
  });
});

describe("both engines", () => {
  const queries: Array<[string, unknown]> = [
    ["every column of every table", null],
    ["a mixed column's JSON, distinct", '<fetch distinct="true"><entity name="oddity"><attribute name="code"/><attribute name="stamp"/><order attribute="code"/></entity></fetch>'],
    ["links with all columns", '<fetch><entity name="contact"><all-attributes/><link-entity name="account" from="accountid" to="parentcustomerid" link-type="outer" alias="a"><all-attributes/></link-entity><order attribute="age"/></entity></fetch>'],
    ["a join on a mixed column", '<fetch><entity name="oddity"><attribute name="label"/><link-entity name="oddity" from="code" to="code" alias="same"><attribute name="label"/></link-entity></entity></fetch>'],
    [
      "aggregates by group",
      '<fetch aggregate="true"><entity name="account"><attribute name="creditonhold" groupby="true" alias="hold"/><attribute name="revenue" aggregate="avg" alias="avg"/><attribute name="openedon" aggregate="max" alias="last"/><attribute name="name" aggregate="min" alias="first"/><attribute name="city" aggregate="count" distinct="true" alias="cities"/><order alias="hold" descending="true"/></entity></fetch>',
    ],
  ];

  test.each(queries)("give identical results: %s", async (_, query) => {
    const results: unknown[] = [];
    for (const engine of ENGINES) {
      store = stores.get(engine)!;
      const all = query === null ? ["account", "contact", "oddity", "note"].map((name) => Object.assign(new QueryExpression(name), { columnSet: new ColumnSet(true) })) : [new FetchExpression(query as string)];
      const collections = [];
      for (const each of all) collections.push(await run(each));
      expect(collections.map((c) => c.entities.length).every((n) => n > 0)).toBe(true);
      results.push(JSON.parse(encode(collections)));
    }
    expect(results[1]).toEqual(results[0]);
  });
});

describe("toPositional", () => {
  test("numbers each @name once, in order of first use, outside quoted literals and identifiers", () => {
    expect(toPositional(`SELECT @b, '@a' AS "@x", @a, @b, 'it''s @b' FROM t WHERE x = @a`, { a: 1, b: "two" })).toEqual({
      text: `SELECT $1, '@a' AS "@x", $2, $1, 'it''s @b' FROM t WHERE x = $2`,
      values: ["two", 1],
    });
  });

  test("a placeholder without a value is an error", () => {
    expect(() => toPositional("SELECT @missing", {})).toThrow("@missing");
  });
});
