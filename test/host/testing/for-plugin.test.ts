/**
 * plugbox/testing's forPlugin: one plug-in run described step by step, without a manifest, in the
 * real sandbox; its result typed so that a test reads the changed target without a cast. Also
 * checked by `tsc -p test`: the lines reading `result.changes.target.attributes` and the plain
 * `{ logicalName, attributes }` targets do not compile without the types they test.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import { buildBundle } from "../../../dist/host/index.js";
import { forPlugin, TestHost, type PlainEntity, type PlainEntityReference, type RunTarget } from "../../../dist/host/testing/index.js";
import { Entity, fromPlain, Money, serializeRemoteExecutionContext } from "../../../dist/sdk/index.js";
import { repo } from "../../helpers/cli.js";

const hello = path.join(repo, "samples/hello/plugin.ts");
const fixtures = fileURLToPath(new URL("../../fixtures/testing/plugins.ts", import.meta.url));
const ACCOUNT_ID = "6d81597f-0f9f-e711-8122-000d3aa2331c";
const USER_ID = "aaaaaaaa-0000-4000-8000-000000000001";

let host: TestHost;
let dir: string;
beforeAll(async () => {
  host = await TestHost.create();
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-for-plugin-"));
});
afterAll(async () => {
  await host?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("forPlugin", () => {
  it("runs samples/hello/plugin.ts on a Create at stage 20 with a target given as its columns, and types the changed target", async () => {
    const result = await forPlugin(hello, "HelloPlugin", { host }).onCreate("account").stage(20).withTarget({ name: "Contoso" }).withConfig("Welcome").run();

    expect(result.ok, result.error?.message).toBe(true);
    expect(result.changes.target.attributes.description).toBe("Welcome, Contoso!");
    expect(result.changes.target).toMatchObject({ logicalName: "account", attributes: { name: "Contoso" } });
    expect(result.changes.sharedVariables.welcomeTaskId).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.trace).toContain("Create of account at stage 20");
    expectTypeOf(result.changes.target).toEqualTypeOf<PlainEntity>();
    expectTypeOf(result.changes.outputParameters).toEqualTypeOf<Record<string, unknown>>();
  });

  it("takes a plain { logicalName, id, attributes } or an Entity as the target, and without a host starts and closes a runtime of its own", async () => {
    const plain = await forPlugin(hello, "HelloPlugin").onUpdate("account").stage(10).withTarget({ logicalName: "account", id: ACCOUNT_ID, attributes: { name: "Fabrikam" } }).run();
    expect(plain.ok, plain.error?.message).toBe(true);
    expect(plain.changes.target).toMatchObject({ id: ACCOUNT_ID, attributes: { description: "Hello, Fabrikam!" } });
    expect(plain.context).toMatchObject({ messageName: "Update", stage: 10, primaryEntityId: ACCOUNT_ID });

    const entity = await forPlugin(hello, "HelloPlugin", { host }).onCreate("account").withTarget(new Entity("account", undefined, { name: "Northwind" })).run();
    expect(entity.changes.target.attributes.description).toBe("Hello, Northwind!");
    expect(entity.context).toMatchObject({ stage: 40, primaryEntityId: entity.changes.target.id });
  });

  it("fills the context: images, configuration, user, shared variables, input parameters, mode; each call returns a new builder", async () => {
    const update = forPlugin(fixtures, "Echo", { host }).onUpdate("account", ACCOUNT_ID).stage(40).withTarget({ name: "New" });
    const described = update
      .withPreImage("pre", { name: "Old" })
      .withPostImage("post", { logicalName: "account", id: ACCOUNT_ID, attributes: { name: "New" } })
      .withConfig("unsecure", "secure")
      .withUser(USER_ID)
      .withSharedVariables({ a: 1 })
      .withSharedVariables({ b: "two" })
      .withInputParameters({ SuppressDuplicateDetection: true })
      .mode("async");
    const result = await described.run();
    expect(result.ok, result.error?.message).toBe(true);
    expect(result.changes.outputParameters.seen).toEqual({
      message: "Update",
      entity: "account",
      id: ACCOUNT_ID,
      stage: 40,
      mode: 1,
      depth: 1,
      userId: USER_ID,
      initiatingUserId: USER_ID,
      correlationId: expect.any(String),
      config: ["unsecure", "secure"],
      target: "Entity",
      targetColumns: { name: "New" },
      targetKinds: { name: "string" },
      inputs: { SuppressDuplicateDetection: true },
      shared: { a: 1, b: "two" },
      pre: { pre: { name: "Old" } },
      post: { post: { name: "New" } },
    });
    expect(result.changes.sharedVariables).toEqual({ a: 1, b: "two", echoed: true });

    // The builder it was made from is unchanged.
    const plainer = await update.run();
    expect(plainer.changes.outputParameters.seen).toMatchObject({ mode: 0, config: [null, null], pre: {}, shared: {} });
  });

  it("takes a run's changed target back as the next run's: its plugbox JSON read as an Entity (typed values revived) or an EntityReference", async () => {
    const echo = forPlugin(fixtures, "Echo", { host });
    const first = await echo.onCreate("account").stage(20).withTarget({ name: "Contoso", revenue: new Money(5), due: new Date("2026-01-31T00:00:00Z") }).run();
    expect(first.changes.target.attributes).toEqual({ name: "Contoso", revenue: { $type: "Money", value: 5 }, due: { $type: "DateTime", value: "2026-01-31T00:00:00.000Z" } });
    const second = await echo.onUpdate("account").stage(20).withTarget({ ...first.changes.target, id: ACCOUNT_ID }).run();
    expect(second.changes.outputParameters.seen).toMatchObject({ target: "Entity", id: ACCOUNT_ID, targetKinds: { name: "string", revenue: "Money", due: "Date" } });

    const deleted = await echo.onDelete("account", ACCOUNT_ID).stage(20).run();
    const again = await echo.on("Assign", "account").stage(20).withTarget(deleted.changes.target).run();
    expect(again.changes.outputParameters.seen).toMatchObject({ message: "Assign", target: "EntityReference", id: ACCOUNT_ID });
  });

  it("onDelete(table, id) gives the plug-in an EntityReference, and the result types it as one", async () => {
    const result = await forPlugin(fixtures, "Echo", { host }).onDelete("account", ACCOUNT_ID).stage(20).run();
    expect(result.changes.outputParameters.seen).toMatchObject({ message: "Delete", target: "EntityReference", id: ACCOUNT_ID });
    expect(result.changes.target).toMatchObject({ $type: "EntityReference", logicalName: "account", id: ACCOUNT_ID });
    expectTypeOf(result.changes.target).toEqualTypeOf<PlainEntityReference>();
    // @ts-expect-error a reference has no attributes
    expect(result.changes.target.attributes).toBeUndefined();
  });

  it("runs the same context again from a RemoteExecutionContext, in Dataverse's JSON and in Text XML", async () => {
    const first = await forPlugin(hello, "HelloPlugin", { host }).onCreate("account").stage(20).withTarget({ name: "Contoso" }).withSharedVariables({ from: "first" }).run();
    const posted = fromPlain(first.context) as Record<string, unknown>;
    for (const format of ["json", "xml"] as const) {
      const text = serializeRemoteExecutionContext(posted, format);
      const again = await forPlugin(hello, "HelloPlugin", { host }).withConfig("Welcome").fromContext(text, format).run();
      expect(again.ok, again.error?.message).toBe(true);
      expect(again.trace).toContain("Create of account at stage 20");
      expect(again.changes.target).toMatchObject({ logicalName: "account", attributes: { name: "Contoso", description: "Welcome, Contoso!" } });
      expect(again.context).toMatchObject({ correlationId: first.context.correlationId, userId: first.context.userId, sharedVariables: { from: "first" } });
      expectTypeOf(again.changes.target).toEqualTypeOf<RunTarget>();
    }
    // Its parsed JSON too, and later calls change what they name.
    const json = JSON.parse(serializeRemoteExecutionContext(posted, "json")) as Record<string, unknown>;
    const changed = await forPlugin(hello, "HelloPlugin", { host }).fromContext(json).withTarget({ logicalName: "account", attributes: { name: "Other" } }).run();
    expect(changed.changes.target.attributes.description).toBe("Hello, Other!");
  });

  it("takes a bundle file made by plugbox build, and a JavaScript entry, which it builds in memory", async () => {
    const bundleFile = path.join(dir, "hello.bundle.js");
    await buildBundle({ entry: hello, outfile: bundleFile });
    const fromFile = await forPlugin(bundleFile, "HelloPlugin", { host }).onCreate("account").stage(20).withTarget({ name: "Bundled" }).run();
    expect(fromFile.changes.target.attributes.description).toBe("Hello, Bundled!");

    const entry = path.join(dir, "entry.js");
    writeFileSync(entry, `export class Shout { execute(sp) { const t = sp.getService("IPluginExecutionContext").inputParameters.Target; t.attributes.name = t.attributes.name.toUpperCase(); } }\n`);
    const fromEntry = await forPlugin(entry, "Shout", { host }).onCreate("contact").stage(20).withTarget({ name: "ada" }).run();
    expect(fromEntry.ok, fromEntry.error?.message).toBe(true);
    expect(fromEntry.changes.target.attributes.name).toBe("ADA");
  });

  it("reading the changes of a failed run throws TEST_RUN_FAILED with the run's error; the result itself says why", async () => {
    const result = await forPlugin(hello, "HelloPlugin", { host }).onCreate("account").stage(20).withTarget({ description: "no name" }).run();
    expect(result).toMatchObject({ ok: false, exitCode: 1, error: { code: "PLUGIN_FAILED", message: "An account needs a name." } });
    expect(() => result.changes.target).toThrow(expect.objectContaining({ code: "TEST_RUN_FAILED", message: expect.stringContaining("PLUGIN_FAILED: An account needs a name.") }));
  });

  it("refuses a target given as columns before its table is named (TEST_BUILDER_INVALID), and a target the context cannot take (CONTEXT_INVALID)", async () => {
    await expect(forPlugin(hello, "HelloPlugin", { host }).withTarget({ name: "x" }).run()).rejects.toMatchObject({ code: "TEST_BUILDER_INVALID", message: expect.stringContaining('onCreate("account")') });
    await expect(forPlugin(hello, "HelloPlugin", { host }).onUpdate("account").withTarget({ name: "x" }).run()).rejects.toMatchObject({ code: "CONTEXT_INVALID", message: expect.stringContaining("needs a target with an id") });
    await expect(forPlugin(hello, "HelloPlugin", { host }).withTarget({ logicalName: "account", id: "42" }).run()).rejects.toMatchObject({ code: "CONTEXT_INVALID", message: expect.stringContaining("must be a Guid") });
  });
});

describe("ContextInput", () => {
  it("takes plain { logicalName, attributes } entities as the target and images, as the docs show them", async () => {
    const result = await host.run({
      bundle: await host.build(fixtures),
      typeName: "Echo",
      context: { messageName: "Update", stage: 20, target: { logicalName: "account", id: ACCOUNT_ID, attributes: { name: "Plain" } }, preEntityImages: { pre: { logicalName: "account", attributes: { name: "Before" } } } },
    });
    expect(result.ok, result.error?.message).toBe(true);
    expect(result.changes?.outputParameters.seen).toMatchObject({ target: "Entity", targetColumns: { name: "Plain" }, pre: { pre: { name: "Before" } } });
  });
});
