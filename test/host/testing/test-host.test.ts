/**
 * plugbox/testing's createTestHost: a plug-in's tests run the whole pipeline (the real host over a
 * `:memory:` store, the real sandbox), start each test from the same data, drain system jobs on
 * demand, and read what the relay would have sent from an inbox (or send it to a real broker).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ServiceBusClient } from "@azure/service-bus";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Entity } from "../../../dist/sdk/index.js";
import { createTestHost, ManualClock, sequentialIds, startBroker, type TestPipelineHost, type TestSnapshot } from "../../../dist/host/testing/index.js";

const MANIFEST = "test/fixtures/testing/plugbox.json";
const SAMPLE = "samples/pipeline/plugins.ts";
const FIXTURE = "test/fixtures/testing/test-host-plugins.ts";
const APPROVALS = "6f1d3a52-8c0e-4b7a-9d2f-1a3b5c7d9e01";
const EVENTS = "0b8e6c4a-2d1f-4e3b-8a7c-9f5e3d1b7a20";

const account = (name: string) => ({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name }) } });

describe("createTestHost: a manifest's steps, with each test starting from the same data", () => {
  let host: TestPipelineHost;
  let clean: TestSnapshot;
  beforeAll(async () => {
    host = await createTestHost({ manifest: MANIFEST, ids: sequentialIds() });
    clean = host.snapshot();
  });
  beforeEach(() => host.restore(clean));
  afterAll(() => host.close());

  it("runs the manifest's stage-20 step in the request, and its asynchronous step only once jobs are drained", async () => {
    const { response, journal } = await host.execute(account("Contoso"));
    const id = response.results.id as string;
    expect(journal.steps.map((s) => [s.name, s.stage, s.outcome])).toEqual([["Number new accounts", 20, "ok"]]);
    expect(journal.jobs).toHaveLength(1);
    expect(host.store.get("account", id)).toMatchObject({ name: "Contoso", accountnumber: expect.stringMatching(/^ACC-CON-/) });
    expect(host.store.records("task")).toEqual({});

    const outcomes = await host.jobs.drain();

    expect(outcomes.map((o) => o.outcome)).toEqual(["succeeded"]);
    expect(Object.values(host.store.records("task")).map((t) => t.subject)).toEqual([expect.stringMatching(/^Welcome Contoso \(ACC-CON-/)]);
    expect(host.traces().map((t) => t.typeName)).toEqual(["AccountNumbering", "WelcomeTask"]);
  });

  it("one account created: one task (the first test's account and task are gone)", async () => {
    await host.execute(account("Fabrikam"));
    await host.jobs.drain();
    expect(Object.keys(host.store.records("account"))).toHaveLength(1);
    expect(Object.keys(host.store.records("task"))).toHaveLength(1);
    expect(host.journal).toHaveLength(1);
  });

  it("one account created: one task, again", async () => {
    await host.execute(account("Northwind"));
    await host.jobs.drain();
    expect(Object.keys(host.store.records("task"))).toHaveLength(1);
    expect(host.journal.map((j) => [j.message, j.entity])).toEqual([["Create", "account"]]);
  });

  it("restores any of several snapshots, in any order", async () => {
    const first = (await host.execute(account("Adatum"))).response.results.id as string;
    const withAdatum = host.snapshot();
    const second = (await host.execute(account("Tailspin"))).response.results.id as string;
    await host.restore(clean);
    expect(host.store.records("account")).toEqual({});
    await host.restore(withAdatum); // its savepoint went with the restore of an earlier snapshot: copied back
    expect(Object.keys(host.store.records("account"))).toEqual([first]);
    expect(host.journal).toHaveLength(1);
    await host.execute(account("Tailspin"));
    await host.restore(withAdatum);
    expect(Object.keys(host.store.records("account"))).toEqual([first]);
    expect(host.store.get("account", second)).toBeUndefined();
  });

  it("a snapshot's records are every record by table and id, as stored", async () => {
    const { response } = await host.execute(account("Litware"));
    const now = host.snapshot();
    expect(Object.keys(now.records)).toEqual(["account"]);
    expect(now.records.account![response.results.id as string]).toMatchObject({ name: "Litware", statecode: { $type: "OptionSetValue", value: 0 } });
    expect(clean.records).toEqual({});
  });
});

describe("createTestHost: inline steps, seed data and run", () => {
  let host: TestPipelineHost;
  const seeded = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
  beforeAll(async () => {
    host = await createTestHost({
      steps: [{ message: "Update", entity: "account", stage: 40, mode: "async", entry: SAMPLE, type: "WelcomeTask" }],
      tables: { account: { columns: { name: "string", accountnumber: "string" } } },
      seed: { account: [{ id: seeded, name: "Seeded Ltd", accountnumber: "ACC-SEE-0001" }] },
    });
  });
  afterAll(() => host.close());

  it("seeds records as a Create's core operation writes them, without running a step", async () => {
    expect(host.store.get("account", seeded)).toMatchObject({ accountid: seeded, name: "Seeded Ltd", statecode: { value: 0 }, createdon: { $type: "DateTime" } });
    expect(host.journal).toEqual([]);
    expect(await host.jobs.drain()).toEqual([]);
  });

  it("an inline asynchronous step (an entry built in memory) runs when jobs are drained, and reads the seeded record", async () => {
    await host.execute({ requestName: "Update", parameters: { Target: new Entity("account", seeded, { name: "Seeded Limited" }) } });
    expect(host.store.records("task")).toEqual({});
    expect((await host.jobs.drain()).map((o) => o.outcome)).toEqual(["succeeded"]);
    expect(Object.values(host.store.records("task")).map((t) => t.subject)).toEqual(["Welcome Seeded Limited (ACC-SEE-0001)"]);
  });

  it("seed checks columns against the table's schema", async () => {
    await expect(host.store.seed({ account: [{ nmae: "typo" }] })).rejects.toThrow(expect.objectContaining({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("account has no column nmae") }));
  });

  it("run executes one plug-in against this host: its organization calls go through the pipeline and the store", async () => {
    const bundle = await host.build("test/fixtures/pipeline/plugins.ts");
    const result = await host.run({ bundle, typeName: "CreateRecord", unsecureConfig: JSON.stringify({ entity: "note" }) });
    expect(result.ok, result.error?.message).toBe(true);
    expect(Object.values(host.store.records("note"))).toHaveLength(1);
    expect(host.journal.at(-1)).toMatchObject({ message: "Create", entity: "note", outcome: "ok" });
  });

  it("build returns the same bundle while its files are unchanged", async () => {
    expect(await host.build(SAMPLE)).toBe(await host.build(SAMPLE));
  });
});

describe("createTestHost: the inbox holds what the relay would have sent", () => {
  let host: TestPipelineHost;
  let clean: TestSnapshot;
  beforeAll(async () => {
    host = await createTestHost({
      // Secrets are never read in inbox mode: env:NAME stands for a connection string the test need not have.
      endpoints: [
        { id: EVENTS, name: "account-events", contract: "Queue", path: "account-events", connectionString: "env:PLUGBOX_TEST_UNSET_CONNECTION" },
        { id: APPROVALS, name: "approvals", contract: "TwoWay", path: "approvals", connectionString: "env:PLUGBOX_TEST_UNSET_CONNECTION" },
      ],
      steps: [
        { message: "Create", entity: "account", stage: 40, mode: "async", serviceEndpoint: "account-events" },
        { message: "Create", entity: "account", stage: 20, entry: FIXTURE, type: "AskForApproval", unsecureConfig: APPROVALS },
      ],
      organizationUrl: "https://contoso.crm.example.com",
    });
    clean = host.snapshot();
  });
  beforeEach(() => host.restore(clean));
  afterAll(() => host.close());

  it("a scripted TwoWay reply reaches the plug-in, which gets it from execute()", async () => {
    host.inbox.reply("approvals", (context) => `approved ${String((context.inputParameters.Target as Entity).attributes.name)}`);
    const { response } = await host.execute(account("Contoso"));
    expect(host.store.get("account", response.results.id as string)).toMatchObject({ description: "approval: approved Contoso" });
    const [asked] = host.inbox.posts("approvals");
    expect(asked!.reply).toBe("approved Contoso");
    expect(asked!.context().stage).toBe(20);
  });

  it("without a scripted reply, a TwoWay post fails as when no listener answers, naming the fix", async () => {
    await expect(host.execute(account("Contoso"))).rejects.toMatchObject({ code: "PIPELINE_STEP_FAILED", message: expect.stringContaining('host.inbox.reply("approvals"') });
    expect(host.inbox.posts("approvals")).toHaveLength(1);
  });

  it("an asynchronous posting step's post holds the body's bytes, the content type, MessageId = OperationId and the claims", async () => {
    host.inbox.reply("approvals", "approved");
    const { journal } = await host.execute(account("Fabrikam"));
    expect(host.inbox.posts("account-events")).toEqual([]);
    await host.jobs.drain();

    const [post] = host.inbox.posts("account-events");
    expect(post!.messageId).toBe(journal.jobs[0]);
    expect(post!.contentType).toBe("application/json");
    const body = JSON.parse(new TextDecoder().decode(post!.body)) as Record<string, unknown>;
    expect(body).toMatchObject({ MessageName: "Create", PrimaryEntityName: "account", OperationId: journal.jobs[0], Stage: 40, Mode: 1 });
    expect(post!.properties).toMatchObject({
      "http://schemas.microsoft.com/xrm/2011/Claims/Organization": "https://contoso.crm.example.com",
      "http://schemas.microsoft.com/xrm/2011/Claims/RequestName": "Create",
    });
    expect(host.inbox.posts().map((p) => p.endpoint.name)).toEqual(["approvals", "account-events"]);
  });

  it("restore empties the inbox and forgets the replies scripted since the snapshot", () => {
    expect(host.inbox.posts()).toEqual([]);
    return expect(host.execute(account("Contoso"))).rejects.toMatchObject({ code: "PIPELINE_STEP_FAILED", message: expect.stringContaining("no reply is scripted") });
  });
});

describe("createTestHost: a webhook's post in the inbox", () => {
  it("holds the x-ms-dynamics-* headers, and the webhook's scripted reply is the post's answer", async () => {
    await using host = await createTestHost({
      endpoints: [{ id: EVENTS, name: "account-hook", contract: "Webhook", url: "https://hooks.example.com/accounts", authType: "WebhookKey", authValue: "env:PLUGBOX_TEST_UNSET_KEY" }],
      steps: [{ message: "Create", entity: "account", stage: 40, serviceEndpoint: "account-hook" }],
      organizationUrl: "https://contoso.crm.example.com",
    });
    host.inbox.reply("account-hook", "accepted");
    await host.execute(account("Contoso"));
    const [post] = host.inbox.posts("account-hook");
    expect(post!.headers).toMatchObject({ "x-ms-dynamics-organization": "contoso.crm.example.com", "x-ms-dynamics-entity-name": "account", "x-ms-dynamics-request-name": "create" });
    expect(post!.headers["x-request-id"]).toBe(post!.messageId);
    expect(post!.properties).toEqual({});
    expect(post!.reply).toBe("accepted");
    expect(() => host.inbox.reply("nowhere", "x")).toThrow(expect.objectContaining({ code: "RELAY_ENDPOINT_UNKNOWN" }));
  });
});

describe("createTestHost: builds and lifetime", () => {
  it("an entry is built again when a module it imports changes, and only then", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-testhost-"));
    try {
      const entry = path.join(dir, "plugin.ts");
      const imported = path.join(dir, "greeting.ts");
      writeFileSync(imported, 'export const greeting = "Hello";\n');
      writeFileSync(entry, 'import { greeting } from "./greeting";\nexport class Greeter { execute() { return greeting; } }\n');
      await using host = await createTestHost({ steps: [{ message: "Create", entity: "account", stage: 20, entry, type: "Greeter" }] });
      const first = await host.build(entry);
      expect(await host.build(entry)).toBe(first);
      writeFileSync(imported, 'export const greeting = "Bonjour";\n');
      const rebuilt = await host.build(entry);
      expect(rebuilt).not.toBe(first);
      expect(rebuilt.source).toContain("Bonjour");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a step takes a bundle built before, and hosts can share one runtime (which the sharing host leaves running)", async () => {
    await using first = await createTestHost();
    const bundle = await first.build(SAMPLE);
    {
      await using second = await createTestHost({ runtime: first.host.runtime, steps: [{ message: "Create", entity: "account", stage: 20, bundle, type: "AccountNumbering", unsecureConfig: "BND" }] });
      const { response } = await second.execute(account("Contoso"));
      expect(second.store.get("account", response.results.id as string)).toMatchObject({ accountnumber: expect.stringMatching(/^BND-CON-/) });
    }
    expect(first.host.health().runtime.status).not.toBe("closed");
  });

  it("with a ManualClock and pluginTime \"clock\", records and plug-ins see the clock's time", async () => {
    const clock = new ManualClock("2030-05-01T08:00:00.000Z");
    await using host = await createTestHost({ clock, pluginTime: "clock", steps: [{ message: "Create", entity: "account", stage: 20, entry: FIXTURE, type: "StampTime" }] });
    const { response } = await host.execute(account("Contoso"));
    expect(host.store.get("account", response.results.id as string)).toMatchObject({ description: "2030-05-01T08:00:00.000Z", createdon: { value: "2030-05-01T08:00:00.000Z" } });
  });

  it("jobs.advance moves the clock and runs each system job when it falls due: a retry after its back-off, with no real waiting", async () => {
    const clock = new ManualClock("2030-05-01T08:59:58.000Z");
    await using host = await createTestHost({ clock, pluginTime: "clock", steps: [{ message: "Create", entity: "account", stage: 40, mode: "async", entry: FIXTURE, type: "WaitForOfficeHours" }] });
    await host.execute(account("Contoso"));

    // Attempt 1 at 08:59:58 asks for a retry; the back-off (1 s, then 2 s) puts attempt 2 at 08:59:59 and attempt 3 at 09:00:01.
    const outcomes = await host.jobs.advance("1m");
    expect(outcomes.map((o) => o.outcome)).toEqual(["retrying", "retrying", "succeeded"]);
    expect(Object.values(host.store.records("task"))).toEqual([expect.objectContaining({ subject: "called at 2030-05-01T09:00:01.000Z" })]);
    expect(clock.now().toISOString()).toBe("2030-05-01T09:00:58.000Z");
  });

  it("users are systemuser records: a request made as one is stamped with it, and a bad id is refused naming the key", async () => {
    const ada = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
    await using host = await createTestHost({ users: [{ id: ada, fullname: "Ada Lovelace" }] });
    expect(host.store.get("systemuser", ada)).toMatchObject({ fullname: "Ada Lovelace" });
    const { response } = await host.execute(account("Contoso"), { userId: ada });
    expect(host.store.get("account", response.results.id as string)).toMatchObject({ createdby: { $type: "EntityReference", logicalName: "systemuser", id: ada } });
    await expect(createTestHost({ users: [{ id: "ada" }] })).rejects.toMatchObject({ code: "OPTIONS_INVALID", message: expect.stringContaining("createTestHost options.users[0].id must be a Guid") });
  });

  it("jobs.advance needs the host's clock to be a ManualClock, and a duration", async () => {
    await using host = await createTestHost();
    await expect(host.jobs.advance("1d")).rejects.toMatchObject({ code: "OPTIONS_INVALID", message: expect.stringContaining("clock: new ManualClock()") });
    await using manual = await createTestHost({ clock: new ManualClock() });
    await expect(manual.jobs.advance("soon")).rejects.toThrow(/jobs.advance: "soon" is not a duration; give a number of milliseconds/);
  });

  it("a test host is in the registry of open resources until it is closed", async () => {
    const open = (globalThis as Record<symbol, Map<object, { kind: string }>>)[Symbol.for("plugbox.openResources")]!;
    const host = await createTestHost();
    expect(open.get(host)).toMatchObject({ kind: "test host" });
    await host.close();
    expect(open.has(host)).toBe(false);
    await expect(host.execute(account("Contoso"))).rejects.toMatchObject({ code: "PIPELINE_CLOSED", message: expect.stringContaining("the test host was closed") });
  });
});

describe("createTestHost with relay: \"network\"", () => {
  it("sends posts to the endpoints' broker instead of the inbox", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: "account-events" }] } });
    try {
      await using host = await createTestHost({
        relay: "network",
        endpoints: [{ id: EVENTS, name: "account-events", contract: "Queue", path: "account-events", connectionString: broker.connectionString }],
        steps: [{ message: "Create", entity: "account", stage: 40, mode: "async", serviceEndpoint: "account-events" }],
      });
      const { journal } = await host.execute(account("Contoso"));
      expect((await host.jobs.drain()).map((o) => o.outcome)).toEqual(["succeeded"]);
      expect(host.inbox.posts()).toEqual([]);
      expect(() => host.inbox.reply("account-events", "x")).toThrow(expect.objectContaining({ code: "RELAY_CONFIG_INVALID", message: expect.stringContaining('relay: "network"') }));

      const client = new ServiceBusClient(broker.connectionString);
      const receiver = client.createReceiver("account-events", { receiveMode: "receiveAndDelete", skipParsingBodyAsJson: true });
      const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
      await receiver.close();
      await client.close();
      expect(message?.messageId).toBe(journal.jobs[0]);
      expect(JSON.parse(Buffer.from(message!.body as Uint8Array).toString("utf8"))).toMatchObject({ MessageName: "Create", OperationId: journal.jobs[0] });
    } finally {
      await broker.close();
    }
  });
});

describe("createTestHost's options are checked before anything starts", () => {
  it.each([
    [{ seeds: {} }, "createTestHost options.seeds is not an option; known options are manifest, steps, tables"],
    [{ clock: 5 }, "createTestHost options.clock must be a clock (an object with now())"],
    [{ relay: "broker" }, 'createTestHost options.relay must be "inbox" (posts kept in host.inbox) or "network"'],
    [{ steps: [{ message: "Create", entity: "account", stage: 30, entry: SAMPLE, type: "AccountNumbering" }] }, "createTestHost options.steps[0].stage must be 10 (pre-validation), 20 (pre-operation) or 40"],
    [{ steps: [{ message: "Create", entity: "account", entry: SAMPLE }] }, 'createTestHost options.steps[0].type is required: the exported plug-in class the step runs, e.g. "AccountNumbering"'],
    [{ steps: [{ message: "Create", entity: "account", type: "AccountNumbering" }] }, "createTestHost options.steps[0] needs exactly one of entry (a plug-in module), bundle (a built bundle) or serviceEndpoint; it has none"],
    [{ seed: { account: [{ id: "42", name: "x" }] } }, 'createTestHost options.seed.account[0].id must be a Guid'],
  ])("%j is refused with OPTIONS_INVALID naming the key and the fix", async (options, message) => {
    await expect(createTestHost(options as never)).rejects.toMatchObject({ code: "OPTIONS_INVALID", message: expect.stringContaining(message) });
  });

  it("a registration rule a step breaks is named with the step's index", async () => {
    await expect(createTestHost({ steps: [{ message: "Create", entity: "account", stage: 20, mode: "async", entry: SAMPLE, type: "WelcomeTask" }] })).rejects.toMatchObject({
      code: "MANIFEST_INVALID",
      message: expect.stringContaining("createTestHost options: steps[0].mode: asynchronous steps can only be registered at stage 40"),
    });
  });
});
