import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHost, type PlugboxHost } from "../dist/host/index.js";
import { createSandboxRuntime, type SandboxRuntime } from "../dist/runtime/index.js";
import { Entity, EntityReference, OptionSetValue, QueryExpression } from "../dist/sdk/index.js";

let dir: string;
let runtime: SandboxRuntime;

/** Writes a CommonJS plug-in bundle and returns its path. */
function plugin(name: string, source: string): string {
  const file = path.join(dir, `${name}.js`);
  writeFileSync(file, source);
  return file;
}

const PLUGINS = `
const E = class extends Error { constructor(status, message) { super(message); this.name = "InvalidPluginExecutionError"; this.status = status; this.errorCode = -2147220891; } };
const ctxOf = (sp) => sp.getService("IPluginExecutionContext");
const orgOf = (sp, user) => sp.getService("IOrganizationServiceFactory").createOrganizationService(user === undefined ? null : user);
module.exports = {
  SetColumn: class { constructor(c) { this.c = c; } execute(sp) { ctxOf(sp).inputParameters.Target.attributes.description = this.c || "set at 20"; } },
  Append: class { constructor(c) { this.c = c; } execute(sp) { const t = ctxOf(sp).inputParameters.Target; t.attributes.description = (t.attributes.description || "") + this.c; } },
  RecordTransaction: class { execute(sp) { const c = ctxOf(sp); if (c.stage === 40) c.outputParameters.in40 = c.isInTransaction; else c.inputParameters.Target.attributes["in" + c.stage] = c.isInTransaction; } },
  Throw: class { constructor(c) { this.c = c; } execute(sp) { throw new E(0, this.c || "stop"); } },
  CreateTask: class { async execute(sp) { await orgOf(sp).create({ logicalName: "task", attributes: { subject: "from " + ctxOf(sp).stage } }); } },
  Output: class { execute(sp) { ctxOf(sp).outputParameters.extra = "from 40"; } },
  Images: class { execute(sp) { const c = ctxOf(sp); c.sharedVariables.pre = c.preEntityImages.before ? c.preEntityImages.before.attributes : null; c.sharedVariables.post = c.postEntityImages.after ? c.postEntityImages.after.attributes : null; } },
  Share10: class { execute(sp) { ctxOf(sp).sharedVariables.from10 = "ten"; } },
  Share20: class { execute(sp) { ctxOf(sp).sharedVariables.from20 = "twenty"; } },
  Read40: class { execute(sp) { const c = ctxOf(sp); c.outputParameters.seen20 = c.sharedVariables.from20; c.outputParameters.seen10 = c.parentContext && c.parentContext.sharedVariables.from10; } },
  Recurse: class { async execute(sp) { const c = ctxOf(sp); await orgOf(sp).update({ logicalName: c.primaryEntityName, id: c.primaryEntityId, attributes: { description: "again " + c.depth } }); } },
  Users: class { async execute(sp) { const c = ctxOf(sp); const who = await orgOf(sp, null).execute({ requestName: "WhoAmI", parameters: {} }); c.outputParameters.users = [c.userId, c.initiatingUserId, who.results.UserId]; } },
  Async: class { execute(sp) { const c = ctxOf(sp); sp.getService("ITracingService").trace("job {0} mode {1} tx {2} created {3}", c.operationId, c.mode, c.isInTransaction, c.operationCreatedOn.toISOString()); } },
  Retry: class { execute() { throw new E(2, "try again later"); } },
  Count: class { async execute(sp) { const c = ctxOf(sp); const all = await orgOf(sp).retrieveMultiple({ entityName: "account", columnSet: { allColumns: true } }); c.outputParameters.count = all.entities.length; } },
};`;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-pipeline-"));
  plugin("plugins", PLUGINS);
  runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 1 });
  await runtime.ready;
});

afterAll(async () => {
  await runtime.close();
  rmSync(dir, { recursive: true, force: true });
});

type Step = Record<string, unknown>;

async function hostWith(steps: Step[], extra: Record<string, unknown> = {}): Promise<PlugboxHost> {
  return createHost({
    manifest: { bundles: { p: { path: path.join(dir, "plugins.js") } }, steps: steps.map((s) => ({ bundle: "p", entity: "account", ...s })), settings: { traceLogSetting: "All", ...(extra.settings as object) }, ...(extra.tables ? { tables: extra.tables } : {}) },
    runtime,
    runJobs: false,
    jobs: { backoffBaseMs: 1 },
  });
}

const create = (host: PlugboxHost, attributes: Record<string, unknown> = { name: "Contoso" }) =>
  host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, attributes as never) } });

function snapshot(host: PlugboxHost): string {
  const rows = host.store.db.prepare("SELECT entity, id, attributes, version FROM records ORDER BY entity, id").all();
  const links = host.store.db.prepare("SELECT * FROM relationships ORDER BY 1, 2, 3, 4, 5").all();
  const jobs = host.store.db.prepare("SELECT id FROM system_jobs ORDER BY id").all();
  return JSON.stringify({ rows, links, jobs });
}

describe("pipeline: stages and transactions", () => {
  it("stage 20: a column set on the Target is written with the record", async () => {
    const host = await hostWith([{ type: "SetColumn", message: "Create", stage: 20 }]);
    const { response } = await create(host);
    const saved = await host.organization().retrieve("account", response.results.id as string, { allColumns: true, columns: [] } as never);
    expect(saved.attributes.description).toBe("set at 20");
    await host.close();
  });

  it("stage 10 runs outside the transaction, stages 20 and 40 inside it", async () => {
    const host = await hostWith([10, 20, 40].map((stage) => ({ type: "RecordTransaction", message: "Create", stage })));
    const { response } = await create(host);
    const row = host.store.getRecord("account", response.results.id as string)!.attributes;
    expect(row).toMatchObject({ in10: false, in20: true });
    expect(response.results.in40).toBe(true);
    await host.close();
  });

  it("stage 40: a throw rolls back the core operation and every write of earlier steps; the store is unchanged and the trace log survives", async () => {
    const host = await hostWith([
      { type: "CreateTask", message: "Create", stage: 20 },
      { type: "Throw", message: "Create", stage: 40, unsecureConfig: "no accounts today" },
    ]);
    await create(host, { name: "Before" }).catch(() => undefined);
    const before = snapshot(host);
    const error = await create(host).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "PIPELINE_STEP_FAILED", innerCode: "PLUGIN_FAILED" });
    expect((error as Error).message).toContain("no accounts today");
    expect(snapshot(host)).toBe(before);
    const traces = await host.traceLogs();
    expect(traces.some((t) => t.exceptionDetails?.includes("no accounts today"))).toBe(true);
    await host.close();
  });

  it("rank: steps run lowest rank first, and after a failure the later steps do not run", async () => {
    const ordered = await hostWith([
      { type: "Append", message: "Create", stage: 20, rank: 3, unsecureConfig: "c" },
      { type: "Append", message: "Create", stage: 20, rank: 1, unsecureConfig: "a" },
      { type: "Append", message: "Create", stage: 20, rank: 2, unsecureConfig: "b" },
    ]);
    const { response } = await create(ordered);
    expect(ordered.store.getRecord("account", response.results.id as string)!.attributes.description).toBe("abc");
    await ordered.close();

    const stopped = await hostWith([
      { type: "Throw", message: "Create", stage: 20, rank: 1 },
      { type: "CreateTask", message: "Create", stage: 20, rank: 2 },
    ]);
    const error = (await create(stopped).catch((e: unknown) => e)) as { journal: { steps: unknown[] } };
    expect(error.journal.steps).toHaveLength(1);
    expect(stopped.store.allRecords()).toEqual([]);
    await stopped.close();
  });

  it("stage 40: OutputParameters the plug-in sets are what the caller gets", async () => {
    const host = await hostWith([{ type: "Output", message: "Create", stage: 40 }]);
    const { response } = await create(host);
    expect(response.results).toMatchObject({ extra: "from 40", id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    await host.close();
  });

  it("filtering attributes: an Update step runs only when one of its columns is in the Target", async () => {
    const host = await hostWith([{ type: "Append", message: "Update", stage: 20, filteringAttributes: ["name"], unsecureConfig: "!" }]);
    const id = (await create(host)).response.results.id as string;
    await host.execute({ requestName: "Update", parameters: { Target: new Entity("account", id, { telephone1: "555" }) } });
    expect(host.store.getRecord("account", id)!.attributes.description).toBeUndefined();
    await host.execute({ requestName: "Update", parameters: { Target: new Entity("account", id, { name: "Renamed" }) } });
    expect(host.store.getRecord("account", id)!.attributes.description).toBe("!");
    await host.close();
  });

  it("images and shared variables: a post-operation step sees the images, variables from stage 20, and from stage 10 through ParentContext", async () => {
    const host = await hostWith([
      { type: "Share10", message: "Update", stage: 10 },
      { type: "Share20", message: "Update", stage: 20 },
      { type: "Images", message: "Update", stage: 40, images: [{ alias: "before", type: "pre", attributes: ["name"] }, { alias: "after", type: "post", attributes: ["name", "telephone1"] }] },
      { type: "Read40", message: "Update", stage: 40, rank: 2 },
    ]);
    const id = (await create(host, { name: "Old", telephone1: "1", fax: "f" })).response.results.id as string;
    const { response } = await host.execute({ requestName: "Update", parameters: { Target: new Entity("account", id, { name: "New", telephone1: "2" }) } });
    expect(response.results).toMatchObject({ seen20: "twenty", seen10: "ten" });
    await host.close();
  });
});

describe("pipeline: images content", () => {
  it("a pre-image has the old values and a post-image the new ones, limited to their columns", async () => {
    const file = plugin(
      "imagecheck",
      `module.exports = { Check: class { execute(sp) { const c = sp.getService("IPluginExecutionContext"); c.outputParameters.pre = c.preEntityImages.before.attributes; c.outputParameters.post = c.postEntityImages.after.attributes; } } };`,
    );
    const host = await createHost({
      manifest: {
        bundles: { i: { path: file } },
        steps: [{ bundle: "i", type: "Check", message: "Update", entity: "account", stage: 40, images: [{ alias: "before", type: "pre", attributes: ["name"] }, { alias: "after", type: "post", attributes: ["name", "telephone1"] }] }],
      },
      runtime,
      runJobs: false,
    });
    const id = (await create(host, { name: "Old", telephone1: "1", fax: "f" })).response.results.id as string;
    const { response } = await host.execute({ requestName: "Update", parameters: { Target: new Entity("account", id, { name: "New", telephone1: "2" }) } });
    expect(response.results.pre).toEqual({ name: "Old" });
    expect(response.results.post).toEqual({ name: "New", telephone1: "2" });
    await host.close();
  });
});

describe("pipeline: depth, nesting and users", () => {
  it("depth: a plug-in that updates its own record on Update fails past maxDepth with the chain in the message", async () => {
    const host = await hostWith([{ type: "Recurse", message: "Update", stage: 40 }], { settings: { maxDepth: 4 } });
    const id = (await create(host)).response.results.id as string;
    const error = (await host.execute({ requestName: "Update", parameters: { Target: new Entity("account", id, { name: "x" }) } }).catch((e: unknown) => e)) as Error;
    expect(error).toMatchObject({ code: "PIPELINE_STEP_FAILED" });
    expect(error.message).toContain("maximum depth of 4");
    expect(error.message).toMatch(/Update of account \(depth 1\) → step .* \(stage 40\) → Update of account \(depth 2\) → .*Update of account \(depth 5\)/);
    expect(host.store.getRecord("account", id)!.attributes.description).toBeUndefined();
    await host.close();
  });

  it("nesting: a record a plug-in creates is rolled back with its parent when a later step fails", async () => {
    const host = await hostWith([
      { type: "CreateTask", message: "Create", stage: 40, rank: 1 },
      { type: "Throw", message: "Create", stage: 40, rank: 2 },
    ]);
    await expect(create(host)).rejects.toMatchObject({ code: "PIPELINE_STEP_FAILED" });
    expect(host.store.allRecords()).toEqual([]);
    await host.close();
  });

  it("users: UserId is the step's runAs user, InitiatingUserId the caller, and createOrganizationService(null) acts as SYSTEM", async () => {
    const runAs = "11111111-2222-3333-4444-555555555555";
    const caller = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    const host = await hostWith([{ type: "Users", message: "Create", stage: 40, runAs }]);
    const { response } = await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "U" }) } }, { userId: caller });
    const [userId, initiating, system] = response.results.users as string[];
    expect(userId).toBe(runAs);
    expect(initiating).toBe(caller);
    expect(system).toBe("00000000-0000-0000-0000-00000000000a");
    await host.close();
  });
});

describe("pipeline: asynchronous steps", () => {
  it("an async step runs after the commit as a system job whose id and creation time are the context's OperationId and OperationCreatedOn", async () => {
    const host = await hostWith([{ type: "Async", message: "Create", stage: 40, mode: "async" }]);
    const { journal } = await create(host);
    const [jobId] = journal.jobs;
    const queued = await host.getJob(jobId!);
    expect(queued).toMatchObject({ stateCode: 0, statusCode: 0, operationType: 1 });
    const outcomes = await host.runJobs();
    expect(outcomes).toEqual([{ id: jobId, outcome: "succeeded" }]);
    const trace = (await host.traceLogs()).find((t) => t.operationId === jobId)!;
    expect(trace.messageBlock).toBe(`job ${jobId} mode 1 tx false created ${queued!.createdOn}`);
    expect(await host.getJob(jobId!)).toMatchObject({ stateCode: 3, statusCode: 30 });
    await host.close();
  });

  it("retry: OperationStatus.Retry runs the plug-in again with back-off, four attempts in all, then fails the job with its message", async () => {
    const host = await hostWith([{ type: "Retry", message: "Create", stage: 40, mode: "async" }]);
    const jobId = (await create(host)).journal.jobs[0]!;
    const outcomes: string[] = [];
    await expect
      .poll(async () => {
        for (const o of await host.runJobs()) outcomes.push(o.outcome);
        return (await host.getJob(jobId))!.statusCode;
      })
      .toBe(31);
    expect(outcomes).toEqual(["retrying", "retrying", "retrying", "failed"]);
    expect(await host.getJob(jobId)).toMatchObject({ stateCode: 3, statusCode: 31, retryCount: 3, message: expect.stringContaining("try again later") });
    await host.close();
  });

  it("asyncAutoDelete: a job that succeeds is deleted", async () => {
    const host = await hostWith([{ type: "Async", message: "Create", stage: 40, mode: "async", asyncAutoDelete: true }]);
    const jobId = (await create(host)).journal.jobs[0]!;
    await host.runJobs();
    expect(await host.getJob(jobId)).toBeUndefined();
    await host.close();
  });

  it("leases: a job whose runner died is taken again after its lease and completed once; the dead runner cannot complete it", async () => {
    const host = await hostWith([{ type: "Async", message: "Create", stage: 40, mode: "async" }]);
    const jobId = (await create(host)).journal.jobs[0]!;
    const release = await host.store.acquire();
    const claimed = host.pipeline.jobs.claim("a runner that dies", 1);
    release();
    expect(claimed?.job.id).toBe(jobId);
    await expect.poll(async () => (await host.runJobs()).map((o) => o.outcome)).toEqual(["succeeded"]);
    const late = await host.store.acquire();
    expect(host.pipeline.jobs.succeed(jobId, "a runner that dies", false)).toBe(false);
    late();
    expect(await host.runJobs()).toEqual([]);
    await host.close();
  });
});

describe("pipeline: concurrency", () => {
  it("two concurrent requests never see each other's uncommitted writes, and a failing one does not roll back the other", async () => {
    const host = await hostWith([
      { type: "Count", message: "Create", stage: 40 },
      { type: "Throw", message: "Create", stage: 40, rank: 2, filteringAttributes: [] , name: "fails on Fail", entity: "contact" },
    ]);
    const [a, b] = await Promise.all([create(host, { name: "A" }), create(host, { name: "B" })]);
    // Each request ran alone: the first saw one account (its own), the second two.
    expect([a.response.results.count, b.response.results.count].sort()).toEqual([1, 2]);
    const results = await Promise.allSettled([create(host, { name: "C" }), host.execute({ requestName: "Create", parameters: { Target: new Entity("contact", undefined, { lastname: "x" }) } })]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected"]);
    expect(host.store.allRecords().filter((r) => r.entity === "account")).toHaveLength(3);
    expect(host.store.allRecords().filter((r) => r.entity === "contact")).toHaveLength(0);
    await host.close();
  });
});

describe("organization service messages", () => {
  const tables = {
    account: { primaryNameAttribute: "name", columns: { name: "string", accountnumber: "string", revenue: "money", primarycontactid: "lookup", description: "string" }, alternateKeys: { number: ["accountnumber"] } },
  };

  it("schema: an unknown column or a value of the wrong type is refused, naming the column", async () => {
    const host = await hostWith([], { tables });
    await expect(create(host, { name: "A", fax: "1" })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("account has no column fax") });
    await expect(create(host, { name: "A", revenue: "lots" })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("account.revenue holds money values") });
    expect(host.store.allRecords()).toEqual([]);
    await host.close();
  });

  it("Upsert: creates by alternate key, then updates the same record", async () => {
    const host = await hostWith([], { tables });
    const target = () => Object.assign(new Entity("account", undefined, { name: "Keyed" }), { keyAttributes: { accountnumber: "K-1" } });
    const first = await host.execute({ requestName: "Upsert", parameters: { Target: Object.assign(target(), { attributes: { name: "Keyed", accountnumber: "K-1" } }) } });
    expect(first.response.results.RecordCreated).toBe(true);
    const second = await host.execute({ requestName: "Upsert", parameters: { Target: Object.assign(target(), { attributes: { name: "Renamed" } }) } });
    expect(second.response.results.RecordCreated).toBe(false);
    expect((second.response.results.Target as EntityReference).id).toBe((first.response.results.Target as EntityReference).id);
    expect(host.store.allRecords().map((r) => r.attributes.name)).toEqual(["Renamed"]);
    await host.close();
  });

  it("SetState, Assign, Associate, Disassociate, Retrieve, RetrieveMultiple and WhoAmI go through the pipeline", async () => {
    const host = await hostWith([]);
    const org = host.organization();
    const a = await org.create(new Entity("account", undefined, { name: "A" }) as never);
    const c = await org.create(new Entity("contact", undefined, { lastname: "C" }) as never);
    await host.execute({ requestName: "SetState", parameters: { EntityMoniker: new EntityReference("account", a), State: new OptionSetValue(1), Status: new OptionSetValue(2) } });
    await host.execute({ requestName: "Assign", parameters: { Target: new EntityReference("account", a), Assignee: new EntityReference("systemuser", "12345678-1234-1234-1234-123456789012") } });
    await org.associate(new EntityReference("account", a), "account_contacts", [new EntityReference("contact", c)]);
    expect(host.store.isLinked("account_contacts", "account", a, "contact", c)).toBe(true);
    await org.disassociate(new EntityReference("account", a), "account_contacts", [new EntityReference("contact", c)]);
    expect(host.store.isLinked("account_contacts", "account", a, "contact", c)).toBe(false);
    const account = await org.retrieve("account", a, { allColumns: true } as never);
    expect((account.attributes.statecode as OptionSetValue).value).toBe(1);
    expect((account.attributes.ownerid as EntityReference).id).toBe("12345678-1234-1234-1234-123456789012");
    const query = new QueryExpression("account");
    query.columnSet.allColumns = true;
    query.criteria.addCondition("name", "Equal", "A");
    expect((await org.retrieveMultiple(query)).entities.map((e) => e.id)).toEqual([a]);
    const who = await host.execute({ requestName: "WhoAmI", parameters: {} }, { userId: "99999999-9999-9999-9999-999999999999" });
    expect(who.response.results.UserId).toBe("99999999-9999-9999-9999-999999999999");
    await host.close();
  });

  it("ExecuteMultiple runs each request on its own; ExecuteTransaction is all or nothing", async () => {
    const host = await hostWith([]);
    const good = { requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "ok" }) } };
    const bad = { requestName: "Delete", parameters: { Target: new EntityReference("account", "00000000-0000-0000-0000-0000000000ff") } };
    const multiple = await host.execute({ requestName: "ExecuteMultiple", parameters: { Requests: [good, bad, good], Settings: { ContinueOnError: true, ReturnResponses: true } } });
    expect(multiple.response.results.IsFaulted).toBe(true);
    expect((multiple.response.results.Responses as unknown[]).length).toBe(3);
    expect(host.store.allRecords()).toHaveLength(2);
    const stopped = await host.execute({ requestName: "ExecuteMultiple", parameters: { Requests: [bad, good], Settings: { ContinueOnError: false } } });
    expect(stopped.response.results.Responses).toEqual([{ RequestIndex: 0, Fault: expect.objectContaining({ code: "ORG_NOT_FOUND" }) }]);
    expect(host.store.allRecords()).toHaveLength(2);
    await expect(host.execute({ requestName: "ExecuteTransaction", parameters: { Requests: [good, good, bad] } })).rejects.toMatchObject({ message: expect.stringContaining("request 2 (Delete) failed, and every request was rolled back") });
    expect(host.store.allRecords()).toHaveLength(2);
    await host.close();
  });

  it("an unsupported message, a malformed request and a non-Guid id are typed errors naming the problem", async () => {
    const host = await hostWith([]);
    await expect(host.execute({ requestName: "Merge", parameters: {} })).rejects.toMatchObject({ code: "PIPELINE_UNSUPPORTED_MESSAGE", message: expect.stringContaining("the Merge message is not supported") });
    await expect(host.execute({ requestName: "Retrieve", parameters: { Target: { logicalName: "account", id: "42" } } })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("must be a Guid") });
    await expect(host.execute({ requestName: "Create", parameters: { Target: "not an entity" } })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT" });
    await host.close();
  });
});

describe("registry", () => {
  const base = (step: Record<string, unknown>) => ({ bundles: { p: { path: "p.js", types: ["A"] } }, steps: [{ bundle: "p", type: "A", message: "Create", entity: "account", ...step }] });
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["async only at stage 40", base({ stage: 20, mode: "async" }), /steps\[0\]\.mode: asynchronous steps can only be registered at stage 40/],
    ["no pre-image on Create", base({ stage: 40, images: [{ alias: "x", type: "pre" }] }), /steps\[0\]\.images\[0\]\.type: a Create has no pre-image/],
    ["no post-image on Delete", base({ message: "Delete", stage: 40, images: [{ alias: "x", type: "post" }] }), /a Delete has no post-image/],
    ["post-images only at 40", base({ message: "Update", stage: 20, images: [{ alias: "x", type: "post" }] }), /post-images exist only at stage 40/],
    ["images only on image messages", base({ message: "Retrieve", stage: 40, images: [{ alias: "x", type: "pre" }] }), /the Retrieve message does not support images/],
    ["filtering attributes only on Update", base({ stage: 20, filteringAttributes: ["name"] }), /filtering attributes apply only to steps on Update/],
    ["stage 30", base({ stage: 30 }), /steps\[0\]\.stage: 30 is not a stage custom steps can use/],
    ["unknown bundle", { steps: [{ bundle: "q", type: "A", message: "Create" }] }, /steps\[0\]\.bundle: no bundle named "q"/],
    ["unknown type", base({ type: "B" }), /steps\[0\]\.type: the bundle p declares no plug-in type "B"/],
    ["unknown key", base({ colour: "red" }), /steps\[0\]\.colour: is not a known key/],
    ["bad column type", { tables: { account: { columns: { name: "text" } } } }, /tables\.account\.columns\.name: must be one of string/],
    ["duplicate ids", { bundles: { p: "p.js" }, steps: [{ id: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", bundle: "p", type: "A", message: "Create" }, { id: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", bundle: "p", type: "A", message: "Update" }] }, /steps\[1\]\.id: the step id .* is used twice/],
  ];
  for (const [rule, manifest, message] of cases) {
    it(`manifest: ${rule} is refused with the path and the fix`, async () => {
      await expect(createHost({ manifest, runtime, runJobs: false })).rejects.toMatchObject({ code: "MANIFEST_INVALID", message: expect.stringMatching(message) });
    });
  }

  it("steps registered in code run like manifest steps", async () => {
    const host = await hostWith([]);
    host.registry.addStep({ bundle: "p", type: "SetColumn", message: "Create", entity: "account", stage: 20, unsecureConfig: "from code" });
    const id = (await create(host)).response.results.id as string;
    expect(host.store.getRecord("account", id)!.attributes.description).toBe("from code");
    await host.close();
  });
});

describe("pipeline: trace logs, unknown tables and the web allow-list of a bundle", () => {
  it("traceLogSetting Exceptions keeps the trace of failed executions only, Off keeps none", async () => {
    for (const [setting, expected] of [["Exceptions", 1], ["Off", 0]] as const) {
      const host = await hostWith([{ type: "Async", message: "Create", stage: 20 }, { type: "Throw", message: "Update", stage: 20 }], { settings: { traceLogSetting: setting } });
      const id = (await create(host)).response.results.id as string;
      await host.execute({ requestName: "Update", parameters: { Target: new Entity("account", id, { name: "x" }) } }).catch(() => undefined);
      const traces = await host.traceLogs();
      expect(traces).toHaveLength(expected);
      if (expected) expect(traces[0]!.exceptionDetails).toContain("PIPELINE_STEP_FAILED");
      await host.close();
    }
  });

  it("a query on a table the manifest does not declare and that holds nothing is ORG_INVALID_ARGUMENT naming it", async () => {
    const host = await hostWith([], { tables: { account: { columns: { name: "string" } } } });
    await expect(host.execute({ requestName: "RetrieveMultiple", parameters: { Query: new QueryExpression("acount") } })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("there is no table acount") });
    await expect(host.execute({ requestName: "RetrieveMultiple", parameters: { Query: new QueryExpression("account") } })).resolves.toBeDefined();
    await host.close();
  });

  it("a bundle's allowedHosts narrow its plug-ins' web requests: another host is refused with WEB_NOT_ALLOWED before any connection", async () => {
    const file = plugin("fetcher", `module.exports = { Fetch: class { async execute(sp) { const c = sp.getService("IPluginExecutionContext"); try { await fetch("https://elsewhere.example/"); } catch (e) { c.outputParameters.code = e.code; } } } };`);
    const host = await createHost({ manifest: { bundles: { f: { path: file, allowedHosts: ["api.contoso.com"] } }, steps: [{ bundle: "f", type: "Fetch", message: "Create", entity: "account", stage: 40 }] }, runtime, runJobs: false });
    const { response, journal } = await create(host);
    expect(response.results.code).toBe("WEB_NOT_ALLOWED");
    expect(journal.steps[0]!.calls).toEqual([expect.objectContaining({ service: "web", ok: false, error: expect.objectContaining({ code: "WEB_NOT_ALLOWED" }) })]);
    await host.close();
  });
});
