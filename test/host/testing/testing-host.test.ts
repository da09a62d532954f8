/**
 * plugbox/testing's TestHost (and `plugbox run`, through runPlugin) serve plug-ins the organization
 * service of a host, over a `:memory:` store: a plug-in's tests meet the rules it meets in production.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runPlugin } from "../../../dist/host/index.js";
import { TestHost } from "../../../dist/host/testing/index.js";
import { attackPlugin } from "../../helpers/runtime.js";

const SYSTEM_USER_ID = "00000000-0000-0000-0000-00000000000a";

describe("TestHost's organization service", () => {
  let host: TestHost;
  beforeAll(async () => {
    host = await TestHost.create();
  });
  afterAll(async () => {
    await host.close();
  });

  it("is the store-backed one: platform columns, every query operator, FetchXML and the messages of a host", async () => {
    const plugin = attackPlugin(`
      const id = await org.create({ logicalName: "account", attributes: { name: "Contoso" } });
      await org.execute({ requestName: "SetState", parameters: { EntityMoniker: { logicalName: "account", id }, State: 1, Status: 2 } });
      const byQuery = await org.retrieveMultiple({ entityName: "account", columnSet: { allColumns: true }, criteria: { conditions: [{ attributeName: "name", operator: "BeginsWith", values: ["Con"] }] } });
      const byFetch = await org.retrieveMultiple({ query: '<fetch><entity name="account"><attribute name="name"/></entity></fetch>' });
      const who = await org.execute({ requestName: "WhoAmI", parameters: {} });
      out.id = id;
      out.byQuery = byQuery.entities.length;
      out.byFetch = byFetch.entities.length;
      out.who = who.results.UserId;
    `);
    const result = await host.run({ bundle: plugin, typeName: "Attack" });
    expect(result.ok, JSON.stringify(result.error)).toBe(true);
    const out = result.changes!.outputParameters as Record<string, unknown>;
    expect(out).toMatchObject({ byQuery: 1, byFetch: 1, who: SYSTEM_USER_ID });
    const record = host.organization.snapshot().account![out.id as string]!;
    expect(record).toMatchObject({ name: "Contoso", statecode: { value: 1 }, statuscode: { value: 2 }, createdby: { id: SYSTEM_USER_ID } });
    expect(record.createdon).toBeInstanceOf(Date);
  });

  it("keeps records across runs, and refuses what a host refuses (a duplicate id, a missing record)", async () => {
    const id = "6d81597f-0f9f-e711-8122-000d3aa2331c";
    const create = attackPlugin(`await org.create({ logicalName: "contact", id: "${id}", attributes: { fullname: "Ada" } });`);
    expect((await host.run({ bundle: create, typeName: "Attack" })).ok).toBe(true);
    const again = await host.run({ bundle: create, typeName: "Attack" });
    expect(again.error).toMatchObject({ code: "ORG_DUPLICATE" });
    const missing = await host.run({ bundle: attackPlugin(`await org.retrieve("contact", "0b5e8a2c-1d3f-4a6b-9c7d-2e4f6a8b0c1d", true);`), typeName: "Attack" });
    expect(missing.error).toMatchObject({ code: "ORG_NOT_FOUND" });
    expect(Object.keys(host.organization.snapshot().contact!)).toEqual([id]);
  });

  it("a plug-in's methods are sugar over execute(request): their argument errors reach it with ORG_ codes naming the request's parameter, and the run records each as the method called", async () => {
    const plugin = attackPlugin(`
      const id = await org.create({ logicalName: "account", attributes: { name: "Northwind" } });
      const failures = [];
      for (const call of [
        () => org.retrieve("bad table!", id, null),
        () => org.retrieve("account", "not-a-guid", null),
        () => org.update({ logicalName: "account", attributes: { name: "x" } }),
        () => org.delete("account", "3f2504e0-4f89-41d3-9a0c-0305e82c3399"),
        () => org.retrieveMultiple(null),
        () => org.execute({ requestName: "" }),
      ]) {
        try { await call(); failures.push("resolved"); } catch (e) { failures.push([e.code, e.message]); }
      }
      out.failures = JSON.stringify(failures);
      out.name = (await org.retrieve("account", id, ["name"])).attributes.name;
      out.updated = String(await org.update({ logicalName: "account", id, attributes: { name: "Northwind Traders" } }));
      out.same = (await org.execute({ requestName: "Retrieve", parameters: { Target: { logicalName: "account", id }, ColumnSet: ["name"] } })).results.Entity.attributes.name;
      out.id = id;
    `);
    const result = await host.run({ bundle: plugin, typeName: "Attack" });
    expect(result.ok, JSON.stringify(result.error)).toBe(true);
    const out = result.changes!.outputParameters as Record<string, string>;
    expect(JSON.parse(out.failures!)).toEqual([
      ["ORG_INVALID_ARGUMENT", expect.stringContaining("Target.logicalName must be a table's logical name")],
      ["ORG_INVALID_ARGUMENT", expect.stringContaining("Target.id must be a Guid")],
      ["ORG_INVALID_ARGUMENT", "Target.id is required"],
      ["ORG_NOT_FOUND", "account with id 3f2504e0-4f89-41d3-9a0c-0305e82c3399 does not exist"],
      ["ORG_INVALID_ARGUMENT", expect.stringContaining("RetrieveMultiple needs a Query")],
      ["ORG_INVALID_ARGUMENT", expect.stringContaining("request.requestName must name a message")],
    ]);
    expect(out).toMatchObject({ name: "Northwind", updated: "undefined", same: "Northwind Traders" });
    expect(result.calls.map((c) => `${c.service}.${c.op} ${c.ok ? JSON.stringify(c.result) : c.error!.code}`)).toEqual([
      `organization.create ${JSON.stringify(out.id)}`,
      "organization.retrieve ORG_INVALID_ARGUMENT",
      "organization.retrieve ORG_INVALID_ARGUMENT",
      "organization.update ORG_INVALID_ARGUMENT",
      "organization.delete ORG_NOT_FOUND",
      "organization.retrieveMultiple ORG_INVALID_ARGUMENT",
      "organization.execute ORG_INVALID_ARGUMENT",
      expect.stringMatching(/^organization\.retrieve \{"\$type":"Entity","logicalName":"account"/),
      "organization.update null",
      expect.stringMatching(/^organization\.retrieve \{"\$type":"Entity"/),
    ]);
    expect(result.calls[1]!.args).toEqual(["bad table!", out.id, null]);
  });

  it("runPlugin without an organization service gets one of its own, over a store of its own that closes with the run", async () => {
    const plugin = attackPlugin(`out.id = await org.create({ logicalName: "account", attributes: { name: "Fabrikam" } }); out.all = (await org.retrieveMultiple({ entityName: "account", columnSet: { allColumns: true } })).entities.length;`);
    const first = await runPlugin({ bundle: plugin, typeName: "Attack", runtime: host.runtime });
    const second = await runPlugin({ bundle: plugin, typeName: "Attack", runtime: host.runtime });
    expect([first.changes?.outputParameters, second.changes?.outputParameters]).toMatchObject([{ all: 1 }, { all: 1 }]);
  });
});
