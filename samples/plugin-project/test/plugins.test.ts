import { readFileSync } from "node:fs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Entity } from "plugbox/sdk";
import { createTestHost, forPlugin, ManualClock, parseCapturedContext, sequentialIds, storeDiff, type TestPipelineHost, type TestSnapshot } from "plugbox/testing";

const clock = new ManualClock("2026-03-01T09:00:00.000Z");
let host: TestPipelineHost;
let clean: TestSnapshot;

beforeAll(async () => {
  // The manifest's steps, its TypeScript bundle built in memory; plug-ins see the clock's time.
  host = await createTestHost({ manifest: "plugbox.json", clock, pluginTime: "clock", ids: sequentialIds() });
  clean = host.snapshot();
});
beforeEach(() => host.restore(clean)); // every test starts from the same (empty) store
afterAll(() => host.close());

const createAccount = (name: string) => host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name }) } });

describe("a new account", () => {
  it("is numbered by the synchronous step, with the day it was created", async () => {
    const result = await createAccount("Contoso");

    expect(result).toHaveRunStep({ name: "Number new accounts", stage: 20, outcome: "ok" });
    expect(result).toHaveTraced("numbered Contoso as ACC-CON-20260301");
    expect(host.store.get("account", result.response.results.id as string)).toMatchObject({ name: "Contoso", accountnumber: "ACC-CON-20260301" });
  });

  it("without a name is refused, and nothing is saved", async () => {
    const before = host.snapshot();

    await expect(createAccount(" ")).rejects.toHaveFailedWith("PLUGIN_FAILED", "An account needs a name.");
    expect(storeDiff(before, host.snapshot()).empty).toBe(true);
  });

  it("gets a follow-up task due two days later, once its asynchronous step has run", async () => {
    const { response } = await createAccount("Contoso");
    expect(host.store.records("task")).toEqual({}); // not yet: the step runs as a system job

    await clock.advance("1h"); // the job runs an hour later: plug-ins see the clock's time
    await host.jobs.drain();

    const twoDaysLater = new Date(clock.now().getTime() + 2 * 24 * 60 * 60 * 1000).toISOString();
    const [task] = Object.values(host.store.records("task"));
    expect(task).toMatchObject({
      subject: "Call Contoso (ACC-CON-20260301)",
      scheduledend: { $type: "DateTime", value: twoDaysLater },
      regardingobjectid: { $type: "EntityReference", logicalName: "account", id: response.results.id },
    });
  });

  it("is posted to the account-events queue, as Service Bus would receive it", async () => {
    const { response } = await createAccount("Contoso");
    await host.jobs.drain();

    expect(host.inbox).toHavePosted("account-events", { messageName: "Create", primaryEntityName: "account", primaryEntityId: response.results.id });
    const [post] = host.inbox.posts("account-events");
    expect(post!.contentType).toBe("application/json");
    expect(post!.properties).toMatchObject({ "http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName": "account" });
  });
});

describe("AccountNumbering on its own", () => {
  const numbering = forPlugin("src/plugins.ts", "AccountNumbering").onCreate("account").stage(20).withConfig("KEY");

  it("takes its prefix from the step's configuration", async () => {
    const result = await numbering.withTarget({ name: "fabrikam" }).run();

    expect(result.ok, result.error?.message).toBe(true);
    expect(result.changes.target.attributes.accountnumber).toMatch(/^KEY-FAB-\d{8}$/);
  });
});

describe("FollowUpTask against a context captured from Service Bus", () => {
  it("creates the task for the captured account", async () => {
    // `plugbox listen --json --max 1` printed this line; `plugbox replay` runs the same from the command line.
    const captured = parseCapturedContext(readFileSync("contexts/account-created.jsonl", "utf8"));
    const result = await forPlugin("src/plugins.ts", "FollowUpTask", { host }).withContext(captured.context).run();

    expect(result.ok, result.error?.message).toBe(true);
    expect(Object.values(host.store.records("task"))).toEqual([expect.objectContaining({ subject: "Call Contoso (ACC-CON-20261202)" })]);
  });
});
