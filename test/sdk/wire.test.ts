import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  Entity,
  EntityCollection,
  EntityReference,
  Money,
  OptionSetValue,
  OptionSetValueCollection,
  parseRemoteExecutionContext,
  serializeRemoteExecutionContext,
  withoutLargeParts,
} from "../../dist/sdk/index.js";

const exampleA = readFileSync(new URL("../fixtures/wire/example-a.json", import.meta.url), "utf8");

describe("RemoteExecutionContext JSON", () => {
  it("reads Dataverse's documented async webhook payload (Example A)", () => {
    const context = parseRemoteExecutionContext(exampleA);
    expect(context).toMatchObject({ messageName: "Update", mode: 1, depth: 1, stage: 40, primaryEntityName: "contact", operationId: "4af10637-4ea2-e711-8122-000d3aa2331c", requestId: null });
    expect(context.operationCreatedOn?.toISOString()).toBe("2017-09-26T07:04:08.000Z"); // the milliseconds are UTC; the -0700 only says where
    const target = context.inputParameters.Target as Entity;
    expect(target).toBeInstanceOf(Entity);
    expect(target.attributes.firstname).toBe("James");
    expect(target.attributes.modifiedby).toBeInstanceOf(EntityReference);
    expect((target.attributes.modifiedon as Date).toISOString()).toBe("2017-09-26T00:04:07.000Z");
    expect(context.owningExtension).toMatchObject({ logicalName: "sdkmessageprocessingstep", id: "75417616-4ea2-e711-8122-000d3aa2331c" });
    expect(context.parentContext?.stage).toBe(30);
    const changed = context.parentContext!.sharedVariables.ChangedEntityTypes as Array<{ key: string; value: string }>;
    expect(changed.map((p) => p.key)).toContain("salesorder");
    expect(context.postEntityImages.AsynchronousStepPrimaryName!.attributes.fullname).toBe("James Glynn (sample)");
  });

  it("writes Example A back to the same JSON value, with \\/ escaping and the date's own offset", () => {
    const text = serializeRemoteExecutionContext(parseRemoteExecutionContext(exampleA), "json");
    expect(JSON.parse(text)).toEqual(JSON.parse(exampleA));
    expect(text).toContain('"OperationCreatedOn":"\\/Date(1506409448000-0700)\\/"');
    expect(text).toContain('"__type":"Entity:http:\\/\\/schemas.microsoft.com\\/xrm\\/2011\\/Contracts"');
    expect(text).not.toMatch(/[^\\]\//);
  });

  it("writes a plugbox context as Dataverse does: alphabetical PascalCase members, {key,value} collections, __type first in object slots only", () => {
    const target = new Entity("account", "6d81597f-0f9f-e711-8122-000d3aa2331c", {
      name: "Contoso",
      revenue: new Money(12.5),
      industrycode: new OptionSetValue(7),
      categories: new OptionSetValueCollection([1, 2]),
      primarycontactid: new EntityReference("contact", "75c2dd85-e89e-e711-8122-000d3aa2331c"),
      createdon: new Date(Date.UTC(2024, 0, 31, 9)),
      employees: 42,
      active: true,
      fax: null,
    });
    const related = new EntityCollection([new Entity("contact", "75c2dd85-e89e-e711-8122-000d3aa2331c", { lastname: "Glynn" })], "contact");
    const text = serializeRemoteExecutionContext({
      messageName: "Create",
      primaryEntityName: "account",
      primaryEntityId: target.id,
      stage: 40,
      mode: 1,
      depth: 1,
      inputParameters: { Target: target, Related: related },
      outputParameters: { id: target.id },
      sharedVariables: {},
      preEntityImages: {},
      postEntityImages: { after: target },
      owningExtension: new EntityReference("sdkmessageprocessingstep", "75417616-4ea2-e711-8122-000d3aa2331c"),
      parentContext: null,
      operationCreatedOn: new Date(Date.UTC(2024, 0, 31, 9)),
      userId: "75c2dd85-e89e-e711-8122-000d3aa2331c",
    });
    const value = JSON.parse(text);
    expect(Object.keys(value)).toEqual([...Object.keys(value)].sort());
    const targetWire = value.InputParameters[0].value;
    expect(Object.keys(targetWire)[0]).toBe("__type");
    expect(Object.keys(targetWire).slice(1)).toEqual(["Attributes", "EntityState", "FormattedValues", "Id", "KeyAttributes", "LogicalName", "RelatedEntities", "RowVersion"]);
    const attribute = (name: string) => targetWire.Attributes.find((a: { key: string }) => a.key === name).value;
    expect(attribute("revenue")).toEqual({ __type: "Money:http://schemas.microsoft.com/xrm/2011/Contracts", Value: 12.5 });
    expect(attribute("categories")).toHaveLength(2);
    expect(attribute("createdon")).toBe("/Date(1706691600000)/");
    expect(value.PostEntityImages[0].value.__type).toBeUndefined();
    expect(value.OwningExtension.__type).toBeUndefined();
    expect(value.InputParameters[1].value).toMatchObject({ __type: "EntityCollection:http://schemas.microsoft.com/xrm/2011/Contracts", EntityName: "contact", MoreRecords: false });
    expect(value.OutputParameters).toEqual([{ key: "id", value: target.id }]);
    // …and it reads back to the same values.
    const back = parseRemoteExecutionContext(text);
    const read = back.inputParameters.Target as Entity;
    expect(read.attributes.revenue).toBeInstanceOf(Money);
    expect((read.attributes.categories as OptionSetValueCollection).values).toEqual([1, 2]);
    expect((read.attributes.createdon as Date).getTime()).toBe(Date.UTC(2024, 0, 31, 9));
    expect(read.attributes.fax).toBeNull();
    expect((back.inputParameters.Related as EntityCollection).entities[0]!.attributes.lastname).toBe("Glynn");
  });

  it("withoutLargeParts drops ParentContext, InputParameters and the images, as Dataverse does past its size limit", () => {
    const context = parseRemoteExecutionContext(exampleA);
    const reduced = JSON.parse(serializeRemoteExecutionContext(withoutLargeParts(context), "json"));
    expect(reduced).toMatchObject({ ParentContext: null, InputParameters: [], PreEntityImages: [], PostEntityImages: [], PrimaryEntityId: "6d81597f-0f9f-e711-8122-000d3aa2331c" });
  });

  it("refuses Binary XML with WIRE_FORMAT_UNSUPPORTED, and malformed JSON or XML with WIRE_INVALID", () => {
    expect(() => parseRemoteExecutionContext("\u0040\u0001binary", undefined)).toThrow(expect.objectContaining({ code: "WIRE_FORMAT_UNSUPPORTED", message: expect.stringContaining("Binary XML") }));
    expect(() => parseRemoteExecutionContext("<RemoteExecutionContext><Depth>1</Stage></RemoteExecutionContext>")).toThrow(expect.objectContaining({ code: "WIRE_INVALID", message: expect.stringContaining("malformed at line 1, column 33: Expected closing tag 'Depth'") }));
    expect(() => parseRemoteExecutionContext('<!DOCTYPE x [<!ENTITY e "boom">]><RemoteExecutionContext><MessageName>&e;</MessageName></RemoteExecutionContext>')).toThrow(expect.objectContaining({ code: "WIRE_INVALID", message: expect.stringContaining("DOCTYPE is not allowed") }));
    expect(() => parseRemoteExecutionContext("<Other/>")).toThrow(expect.objectContaining({ code: "WIRE_INVALID", message: expect.stringContaining("not <RemoteExecutionContext>") }));
    expect(() => parseRemoteExecutionContext("{ not json")).toThrow(expect.objectContaining({ code: "WIRE_INVALID" }));
    expect(() => parseRemoteExecutionContext('{"InputParameters": {"Target": 1}}')).toThrow(expect.objectContaining({ code: "WIRE_INVALID", message: expect.stringContaining("InputParameters") }));
  });

  it("Text XML: a context written as DataContract XML reads back to the same values", () => {
    const target = new Entity("account", "6d81597f-0f9f-e711-8122-000d3aa2331c", {
      name: "Contoso & <Sons>",
      revenue: new Money(12.5),
      industrycode: new OptionSetValue(7),
      categories: new OptionSetValueCollection([1, 2]),
      primarycontactid: new EntityReference("contact", "75c2dd85-e89e-e711-8122-000d3aa2331c", "Jim"),
      createdon: new Date(Date.UTC(2024, 0, 31, 9)),
      employees: 42,
      active: true,
      fax: null,
    });
    const context = {
      messageName: "Create", primaryEntityName: "account", primaryEntityId: target.id, stage: 40, mode: 1, depth: 2, isInTransaction: false,
      inputParameters: { Target: target }, outputParameters: { id: target.id }, sharedVariables: { note: "a/b" },
      preEntityImages: {}, postEntityImages: { after: target },
      owningExtension: new EntityReference("sdkmessageprocessingstep", "75417616-4ea2-e711-8122-000d3aa2331c"),
      parentContext: { messageName: "Create", stage: 30, depth: 1, parentContext: null },
      operationCreatedOn: new Date(Date.UTC(2024, 0, 31, 9)),
    };
    const xml = serializeRemoteExecutionContext(context, "xml");
    expect(xml).toMatch(/^<RemoteExecutionContext xmlns="http:\/\/schemas\.microsoft\.com\/xrm\/2011\/Contracts"/);
    expect(xml).toContain('<a:value i:type="Money"><Value>12.5</Value></a:value>');
    const back = parseRemoteExecutionContext(xml);
    expect(back).toMatchObject({ messageName: "Create", stage: 40, mode: 1, depth: 2, isInTransaction: false });
    expect(back.parentContext).toMatchObject({ stage: 30, depth: 1, parentContext: null });
    const read = back.inputParameters.Target as Entity;
    expect(read.attributes).toMatchObject({ name: "Contoso & <Sons>", employees: 42, active: true, fax: null });
    expect(read.attributes.revenue).toEqual(new Money(12.5));
    expect((read.attributes.industrycode as OptionSetValue).value).toBe(7);
    expect((read.attributes.categories as OptionSetValueCollection).values).toEqual([1, 2]);
    expect(read.attributes.primarycontactid).toMatchObject({ logicalName: "contact", name: "Jim" });
    expect((read.attributes.createdon as Date).getTime()).toBe(Date.UTC(2024, 0, 31, 9));
    expect(back.postEntityImages.after!.attributes.name).toBe("Contoso & <Sons>");
    expect(back.operationCreatedOn?.getTime()).toBe(Date.UTC(2024, 0, 31, 9));
  });

  it("Text XML keeps every DateTime's kind and offset: JSON → Text XML → JSON gives back the same /Date(…)/ texts", () => {
    const dates = (text: string) => text.match(/\\\/Date\([^)]*\)\\\//g) ?? [];
    const viaXml = (json: string) => serializeRemoteExecutionContext(parseRemoteExecutionContext(serializeRemoteExecutionContext(parseRemoteExecutionContext(json), "xml")), "json");
    // Example A, less the one shared variable Text XML has no form for here (a list of string pairs).
    const parsed = parseRemoteExecutionContext(exampleA);
    delete parsed.parentContext!.sharedVariables.ChangedEntityTypes;
    const source = serializeRemoteExecutionContext(parsed, "json");
    const xml = serializeRemoteExecutionContext(parseRemoteExecutionContext(source), "xml");
    expect(xml).toContain("<OperationCreatedOn>2017-09-26T00:04:08-07:00</OperationCreatedOn>");
    expect(xml).toContain('i:type="b:dateTime" xmlns:b="http://www.w3.org/2001/XMLSchema">2017-09-26T00:04:07Z<');
    expect(dates(source)).toHaveLength(3);
    expect(dates(viaXml(source))).toEqual(dates(source));
    const utcOffset = JSON.stringify({ OperationCreatedOn: "/Date(1608007658000+0000)/", Depth: 1, InputParameters: [{ key: "When", value: "/Date(1608007658123+0530)/" }] }).replace(/\//g, "\\/");
    expect(JSON.parse(viaXml(utcOffset))).toMatchObject({ OperationCreatedOn: "/Date(1608007658000+0000)/", InputParameters: [{ key: "When", value: "/Date(1608007658123+0530)/" }] });
    expect(serializeRemoteExecutionContext(parseRemoteExecutionContext(utcOffset), "xml")).toContain("<a:value i:type=\"b:dateTime\" xmlns:b=\"http://www.w3.org/2001/XMLSchema\">2020-12-15T10:17:38.123+05:30</a:value>");
  });

  it("Text XML keeps an EntityReference's key attributes and an EntityCollection's paging cookie", () => {
    const account = new EntityReference("account", "6d81597f-0f9f-e711-8122-000d3aa2331c", "Contoso");
    account.keyAttributes.accountnumber = "ACC-1";
    const page = new EntityCollection([new Entity("contact", "75c2dd85-e89e-e711-8122-000d3aa2331c", { lastname: "Glynn" })], "contact");
    page.moreRecords = true;
    page.pagingCookie = '<cookie page="1"><contactid last="{75C2DD85}" /></cookie>';
    page.totalRecordCount = 42;
    page.totalRecordCountLimitExceeded = true;
    const xml = serializeRemoteExecutionContext({ messageName: "RetrieveMultiple", inputParameters: { Target: account }, outputParameters: { BusinessEntityCollection: page } }, "xml");
    const back = parseRemoteExecutionContext(xml);
    expect((back.inputParameters.Target as EntityReference).keyAttributes).toEqual({ accountnumber: "ACC-1" });
    const read = back.outputParameters.BusinessEntityCollection as EntityCollection;
    expect(read).toMatchObject({ moreRecords: true, pagingCookie: '<cookie page="1"><contactid last="{75C2DD85}" /></cookie>', totalRecordCount: 42, totalRecordCountLimitExceeded: true });
    expect(read.entities[0]!.attributes.lastname).toBe("Glynn");
  });

  it("Text XML: reads documents written with other prefixes, comments, CDATA and character references", () => {
    const xml = `<?xml version="1.0" encoding="utf-8"?>
      <!-- from another serializer -->
      <x:RemoteExecutionContext xmlns:x="http://schemas.microsoft.com/xrm/2011/Contracts" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:g="http://schemas.datacontract.org/2004/07/System.Collections.Generic" xmlns:s="http://www.w3.org/2001/XMLSchema">
        <x:Depth>1</x:Depth>
        <x:InputParameters>
          <x:KeyValuePairOfstringanyType><g:key>Target</g:key><g:value xsi:type="x:Entity">
            <x:Attributes><x:KeyValuePairOfstringanyType><g:key>name</g:key><g:value xsi:type="s:string"><![CDATA[A & B]]> &#x263A;</g:value></x:KeyValuePairOfstringanyType></x:Attributes>
            <x:Id>6d81597f-0f9f-e711-8122-000d3aa2331c</x:Id><x:LogicalName>account</x:LogicalName>
          </g:value></x:KeyValuePairOfstringanyType>
        </x:InputParameters>
        <x:MessageName>Update</x:MessageName>
        <x:ParentContext xsi:nil="true"/>
      </x:RemoteExecutionContext>`;
    const context = parseRemoteExecutionContext(xml);
    expect(context).toMatchObject({ depth: 1, messageName: "Update", parentContext: null });
    expect((context.inputParameters.Target as Entity).attributes.name).toBe("A & B \u263A");
  });
});
