/**
 * plugbox/testing/vitest: importing it registers matchers for runs and pipeline requests. Each
 * passes on what it names, and fails with a message that shows what there was: the journal as
 * indented text (request, step, outcome, error, trace), the trace, or the posts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "../../../dist/host/testing/vitest.js";
import { buildBundle, createHost, type PlugboxHost, type RequestResult } from "../../../dist/host/index.js";
import { createTestHost, forPlugin, storeDiff, TestHost, type TypedRunResult } from "../../../dist/host/testing/index.js";
import { Entity, EntityReference, Money } from "../../../dist/sdk/index.js";
import { repo } from "../../helpers/cli.js";

const hello = path.join(repo, "samples/hello/plugin.ts");
const fixtures = fileURLToPath(new URL("../../fixtures/testing/plugins.ts", import.meta.url));
const ENDPOINT = "5f2c3d4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f";

let dir: string;
let pipeline: PlugboxHost;
let host: TestHost;
let created: RequestResult;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-matchers-"));
  const bundles = { hello: path.join(dir, "hello.bundle.js"), fixtures: path.join(dir, "fixtures.bundle.js") };
  await buildBundle({ entry: hello, outfile: bundles.hello });
  await buildBundle({ entry: fixtures, outfile: bundles.fixtures });
  pipeline = await createHost({
    manifest: {
      bundles: { hello: { path: bundles.hello }, fixtures: { path: bundles.fixtures } },
      steps: [
        { name: "Greet new accounts", bundle: "hello", type: "HelloPlugin", message: "Create", entity: "account", stage: 20, unsecureConfig: "Welcome" },
        { name: "Tag new tasks", bundle: "fixtures", type: "Tag", message: "Create", entity: "task", stage: 20 },
      ],
    },
    runJobs: false,
    runtimeOptions: { workers: 1, prewarmIsolates: 1 },
  });
  host = await TestHost.create();
  created = await pipeline.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "Contoso" }) } });
});

afterAll(async () => {
  await pipeline?.close();
  await host?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("toHaveRunStep", () => {
  it("passes for a step the request ran, by name or by any of its members, nested requests' steps included", () => {
    expect(created).toHaveRunStep("Greet new accounts");
    expect(created).toHaveRunStep({ name: "Greet new accounts", stage: 20, mode: "sync", outcome: "ok", message: "Create", entity: "account", depth: 1 });
    expect(created).toHaveRunStep({ name: "Tag new tasks", entity: "task", depth: 2, trace: /tagged task/ });
    expect(created).not.toHaveRunStep({ stage: 40 });
  });

  it("fails showing the journal: request, step, outcome and trace, nested requests indented", () => {
    expect(() => expect(created).toHaveRunStep("Number new accounts")).toThrow(
      new RegExp(
        [
          'expected the request to have run a step matching \\{"name":"Number new accounts"\\}; its journal:',
          "ok: Create of account [0-9a-f-]{36} \\(depth 1\\) in [0-9.]+ ms",
          "  stage 20 sync: Greet new accounts — ok \\([0-9.]+ ms\\)",
          "    \\| Create of account at stage 20",
          "    \\| created task [0-9a-f-]{36}",
          "    ok: Create of task [0-9a-f-]{36} \\(depth 2\\) in [0-9.]+ ms",
          "      stage 20 sync: Tag new tasks — ok \\([0-9.]+ ms\\)",
          "        \\| tagged task",
        ].join("\n"),
      ),
    );
    expect(() => expect(created).not.toHaveRunStep("Greet new accounts")).toThrow(/expected the request not to have run a step matching \{"name":"Greet new accounts"\}; its journal:\nok: Create of account/);
  });

  it("reads the journal of a rejected request too, and says what it takes when given something else", async () => {
    const error = await pipeline.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, {}) } }).catch((e: unknown) => e);
    expect(error).toHaveRunStep({ name: "Greet new accounts", outcome: "failed", error: { code: "PIPELINE_STEP_FAILED", message: /An account needs a name\.$/ } });
    expect(error).toHaveTraced("Create of account at stage 20");
    expect(() => expect({ ok: true }).toHaveRunStep("x")).toThrow(/toHaveRunStep takes a RequestResult \(host\.execute's\), a failed request's error or a journal; it received \{"ok":true\}/);
  });
});

describe("toHaveTraced", () => {
  it("passes when a run's trace, or any step's of a request, has the text or matches the pattern", async () => {
    const run = await forPlugin(hello, "HelloPlugin", { host }).onCreate("account").stage(20).withTarget({ name: "Contoso" }).run();
    expect(run).toHaveTraced("Create of account at stage 20");
    expect(run).toHaveTraced(/created task [0-9a-f-]{36}/);
    expect(created).toHaveTraced("tagged task");
    expect(run).not.toHaveTraced("tagged");
  });

  it("fails showing the run's trace, or the request's journal", async () => {
    const run = await forPlugin(hello, "HelloPlugin", { host }).onCreate("account").stage(20).withTarget({ name: "Contoso" }).run();
    expect(() => expect(run).toHaveTraced("Goodbye")).toThrow(/expected a trace matching "Goodbye"; its trace:\n {2}\| Create of account at stage 20\n {2}\| created task/);
    expect(() => expect(created).toHaveTraced(/^never/)).toThrow(/expected a trace matching \/\^never\/; its journal:\nok: Create of account .*\n {2}stage 20 sync: Greet new accounts — ok/);
  });
});

describe("toHaveFailedWith", () => {
  let failed: TypedRunResult;
  beforeAll(async () => {
    failed = await forPlugin(hello, "HelloPlugin", { host }).onCreate("account").stage(20).withTarget({ description: "no name" }).run();
  });

  it("passes for a failed run's code and message; with rejects, for a request's error, its plug-in's code inside it, and its message", async () => {
    expect(failed).toHaveFailedWith("PLUGIN_FAILED");
    expect(failed).toHaveFailedWith("PLUGIN_FAILED", "needs a name");
    expect(failed).toHaveFailedWith("PLUGIN_FAILED", /^An account needs a name\.$/);
    const bad = { requestName: "Create", parameters: { Target: new Entity("account", undefined, {}) } };
    await expect(pipeline.execute(bad)).rejects.toHaveFailedWith("PIPELINE_STEP_FAILED");
    await expect(pipeline.execute(bad)).rejects.toHaveFailedWith("PLUGIN_FAILED", "An account needs a name.");
    await expect(pipeline.execute(bad)).rejects.not.toHaveFailedWith("SANDBOX_TIMEOUT");
  });

  it("fails saying how it ended: the run's error and trace, the request's journal, or that it succeeded", async () => {
    expect(() => expect(failed).toHaveFailedWith("SANDBOX_TIMEOUT")).toThrow(
      /expected a failure with SANDBOX_TIMEOUT; it failed with \[PLUGIN_FAILED\] An account needs a name\.\nits trace:\n {2}\| Create of account at stage 20/,
    );
    expect(() => expect(failed).toHaveFailedWith("PLUGIN_FAILED", "timed out")).toThrow(/expected a failure with PLUGIN_FAILED and a message matching "timed out"; it failed with \[PLUGIN_FAILED\] An account needs a name\./);
    const bad = { requestName: "Create", parameters: { Target: new Entity("account", undefined, {}) } };
    await expect(expect(pipeline.execute(bad)).rejects.toHaveFailedWith("ORG_NOT_FOUND")).rejects.toThrow(
      /expected a failure with ORG_NOT_FOUND; it failed with \[PIPELINE_STEP_FAILED\] step Greet new accounts failed at stage 20: An account needs a name\.; \[PLUGIN_FAILED\] An account needs a name\.\nits journal:\nFAILED: Create of account .*\n {2}stage 20 sync: Greet new accounts — failed \[PIPELINE_STEP_FAILED\] step Greet new accounts failed at stage 20: An account needs a name\. \([0-9.]+ ms\)\n {4}\| Create of account at stage 20/,
    );
    expect(() => expect(created).toHaveFailedWith("PLUGIN_FAILED")).toThrow(/expected a failure with PLUGIN_FAILED; it succeeded\nits journal:\nok: Create of account/);
    expect(() => expect(pipeline.execute(bad).catch(() => undefined)).toHaveFailedWith("X")).toThrow(/it received a promise \(await it, or use `await expect\(promise\)\.rejects`/);
  });
});

describe("toHavePosted", () => {
  let run: TypedRunResult;
  beforeAll(async () => {
    run = await forPlugin(fixtures, "Notify", { host }).onCreate("account").withTarget({ name: "Contoso" }).withConfig(ENDPOINT).run();
  });

  it("passes for a post to an endpoint with a context having the given members: from a RunResult, a recording notification service, its posts, or an inbox", () => {
    expect(run.ok, run.error?.message).toBe(true);
    expect(run).toHavePosted();
    expect(run).toHavePosted(ENDPOINT, { messageName: "Create", primaryEntityName: "account", inputParameters: { Target: { attributes: { name: "Contoso" } } } });
    expect(host.notifications).toHavePosted(ENDPOINT.toUpperCase(), { stage: 40 });
    expect(host).toHavePosted(ENDPOINT);
    expect(host.notifications.posts).toHavePosted(ENDPOINT, { primaryEntityId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(run).not.toHavePosted("00000000-0000-0000-0000-0000000000ff");
  });

  it("reads a test host's inbox: its endpoint by name or id, the context parsed from the body that would have been sent", async () => {
    await using pipeline = await createTestHost({
      endpoints: [{ id: ENDPOINT, name: "account-events", contract: "Queue", path: "account-events", connectionString: "env:SB_CONNECTION" }],
      steps: [{ message: "Create", entity: "account", stage: 40, mode: "async", serviceEndpoint: "account-events" }],
    });
    await pipeline.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "Contoso" }) } });
    expect(pipeline).not.toHavePosted(); // not yet: the posting step is asynchronous
    await pipeline.jobs.drain();
    expect(pipeline).toHavePosted("account-events", { messageName: "Create", primaryEntityName: "account", stage: 40 });
    expect(pipeline.inbox).toHavePosted(ENDPOINT.toUpperCase());
    expect(() => expect(pipeline.inbox).toHavePosted("account-events", { messageName: "Update" })).toThrow(
      /expected a post to "account-events" with a context matching \{"messageName":"Update"\}; the posts:\n {2}account-events: Create of account [0-9a-f-]{36} \(stage 40, depth 1\)/,
    );
  });

  it("fails listing the posts there were", () => {
    expect(() => expect(run).toHavePosted(ENDPOINT, { messageName: "Update" })).toThrow(
      new RegExp(`expected a post to "${ENDPOINT}" with a context matching \\{"messageName":"Update"\\}; the posts:\\n {2}${ENDPOINT}: Create of account [0-9a-f-]{36} \\(stage 40, depth 1\\)`),
    );
    expect(() => expect(created).toHavePosted()).toThrow(/expected a post to any endpoint; the posts:\n {2}\(no posts\)/);
  });
});

describe("storeDiff", () => {
  it("lists the records added, removed and changed, column by column, and prints them", () => {
    const id = "6d81597f-0f9f-e711-8122-000d3aa2331c";
    const before = { account: { [id]: { name: "Contoso", revenue: new Money(10), ownerid: new EntityReference("systemuser", id) } }, contact: { [id]: { fullname: "Ada" } } };
    const after = { records: { account: { [id]: { name: "Contoso Ltd", revenue: new Money(10), ownerid: new EntityReference("systemuser", id), modifiedon: new Date("2026-01-02T00:00:00Z") } }, task: { [id]: { subject: "Welcome" } } } };
    const diff = storeDiff(before, after);
    expect(diff).toMatchObject({
      added: [{ table: "task", id, columns: { subject: { before: undefined, after: "Welcome" } } }],
      removed: [{ table: "contact", id, columns: { fullname: { before: "Ada", after: undefined } } }],
      changed: [{ table: "account", id, columns: { name: { before: "Contoso", after: "Contoso Ltd" }, modifiedon: { before: undefined } } }],
      empty: false,
    });
    expect(Object.keys(diff.changed[0]!.columns)).toEqual(["modifiedon", "name"]);
    expect(diff.toString()).toBe(
      [
        `+ task ${id}`,
        `    subject: "Welcome"`,
        `- contact ${id}`,
        `    fullname: "Ada"`,
        `~ account ${id}`,
        `    modifiedon: undefined -> {"$type":"DateTime","value":"2026-01-02T00:00:00.000Z"}`,
        `    name: "Contoso" -> "Contoso Ltd"`,
      ].join("\n"),
    );
    expect(storeDiff(before, after, { ignoreColumns: ["modifiedon"] }).changed[0]!.columns).toEqual({ name: { before: "Contoso", after: "Contoso Ltd" } });
    expect(storeDiff(before, { records: before }).toString()).toBe("no records added, removed or changed");
  });

  it("shows what a run wrote through a TestHost's organization service", async () => {
    const before = host.organization.snapshot();
    await forPlugin(hello, "HelloPlugin", { host }).onCreate("account").stage(20).withTarget({ name: "Diffed" }).run();
    const diff = storeDiff(before, host.organization.snapshot());
    expect(diff.added).toEqual([expect.objectContaining({ table: "task", columns: expect.objectContaining({ subject: { before: undefined, after: "Welcome Diffed" } }) })]);
    expect(diff.removed.length + diff.changed.length).toBe(0);
  });
});
