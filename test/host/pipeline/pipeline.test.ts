/**
 * The event pipeline and the organization service over the real store, as scenarios with real
 * sandboxed plug-ins (test/fixtures/pipeline/plugins.ts, built with buildBundle). The
 * specification is ../shared/reference/dataverse.md sections 2 and 6; each test names the
 * behaviour it checks. Hosts are shared within a describe; each test uses tables of its own.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHost, type JournalRequest, type PlugboxHost } from "../../../dist/host/index.js";
import { SYSTEM_USER_ID } from "../../../dist/host/testing/internal.js";
import { Entity, EntityCollection, EntityReference, FetchExpression, Money, OptionSetValue, QueryByAttribute, QueryExpression } from "../../../dist/sdk/index.js";
import { ENGINES, sql, testDb } from "../../helpers/stores.js";
import { buildPlugins, failure, fastRuntime, hostWith, rows, snapshot, step, sqliteOf } from "../../fixtures/pipeline/support.js";

const CALLER = "aaaaaaaa-0000-4000-8000-000000000001";
const RUN_AS = "bbbbbbbb-0000-4000-8000-000000000002";
const OTHER = "cccccccc-0000-4000-8000-000000000003";
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let plugins: Awaited<ReturnType<typeof buildPlugins>>;

beforeAll(async () => {
  plugins = await buildPlugins();
});

afterAll(() => plugins?.cleanup());

const create = (host: PlugboxHost, entity: string, attributes: Record<string, unknown> = {}, caller?: { userId: string }) =>
  host.execute({ requestName: "Create", parameters: { Target: new Entity(entity, undefined, attributes as never) } }, caller);
const update = (host: PlugboxHost, entity: string, id: string, attributes: Record<string, unknown>) =>
  host.execute({ requestName: "Update", parameters: { Target: new Entity(entity, id, attributes as never) } });
const idOf = (result: { response: { results: Record<string, unknown> } }) => result.response.results.id as string;
const attributesOf = async (host: PlugboxHost, entity: string, id: string) => (await host.store.getRecord(entity, id))?.attributes;

describe.each(ENGINES)("on the %s store", (engine) => {
  describe("pipeline: stages, transactions, order and what each stage may change", () => {
    let host: PlugboxHost;
    let db: string;

    beforeAll(async () => {
      host = await hostWith(
        plugins.bundle,
        {
          settings: { traceLogSetting: "All", maxDepth: 4 },
          steps: [
            step("SetColumns", "Create", "s20", 20, { config: { description: "set at 20" } }),
            ...([10, 20, 40] as const).map((stage) => step("RecordTransaction", "Create", "tx", stage)),
            // A Create whose stage 40 fails after earlier steps wrote, associated and queued work.
            step("CreateRecord", "Create", "boom", 20, { config: { entity: "boomnote" } }),
            step("LinkAnchors", "Create", "boom", 40, { rank: 1, config: { relationship: "boom_anchor", entity: "anchor" } }),
            step("Fail", "Create", "boom", 40, { rank: 2, config: { message: "no booms today" } }),
            step("CreateRecord", "Create", "boom", 40, { rank: 3, config: { entity: "boomlate" } }),
            step("AsyncProbe", "Create", "boom", 40, { mode: "async" }),
            // The same for an Update of an existing record.
            step("SetColumns", "Update", "boomu", 20, { config: { description: "changed at 20" } }),
            step("CreateRecord", "Update", "boomu", 20, { rank: 2, config: { entity: "boomnote" } }),
            step("LinkAnchors", "Update", "boomu", 40, { rank: 1, config: { relationship: "boomu_anchor", entity: "anchor" } }),
            step("Fail", "Update", "boomu", 40, { rank: 2, config: { message: "no updates today" } }),
            // Failures stop the steps after them.
            step("Fail", "Create", "stop", 20, { rank: 1, config: { message: "stop here" } }),
            step("CreateRecord", "Create", "stop", 20, { rank: 2, config: { entity: "stopnote" } }),
            step("CreateRecord", "Create", "stop", 40, { config: { entity: "stopnote" } }),
            step("AsyncProbe", "Create", "stop", 40, { mode: "async" }),
            step("Fail", "Create", "stop10", 10, { config: { message: "refused at 10" } }),
            step("SetColumns", "Create", "stop10", 20, { config: { description: "never" } }),
            // Rank: lowest first, equal ranks in registration order, stage 10 before 20 whatever its rank.
            step("Append", "Create", "order", 20, { rank: 3, config: "c" }),
            step("Append", "Create", "order", 20, { rank: 1, config: "a" }),
            step("Append", "Create", "order", 20, { rank: 2, config: "b" }),
            step("Append", "Create", "order", 20, { rank: 5, config: "d" }),
            step("Append", "Create", "order", 20, { rank: 5, config: "e" }),
            step("Append", "Create", "order", 10, { rank: 9, config: "0" }),
            // Target changes: 10 and 20 are written, 40 is not.
            step("SetColumns", "Create", "target", 10, { config: { a10: "ten" } }),
            step("SetColumns", "Create", "target", 20, { config: { a20: "twenty", name: "renamed at 20" } }),
            step("SetColumns", "Create", "target", 40, { config: { a40: "forty" } }),
            step("SetColumns", "Update", "target", 20, { config: { u20: "updated at 20" } }),
            step("SetColumns", "Update", "target", 40, { config: { u40: "too late" } }),
            // OutputParameters at 40, and the Query of RetrieveMultiple at 20.
            step("SetOutput", "Create", "out", 40, { config: { extra: "from 40" } }),
            step("MaskName", "Retrieve", "out", 40),
            step("HideSecret", "RetrieveMultiple", "out", 20),
            // Filtering attributes.
            step("Append", "Update", "filt", 20, { filteringAttributes: ["name", "telephone1"], config: "!" }),
            // Images.
            step("Images", "Update", "img", 20, { images: [{ alias: "before20", type: "pre", attributes: ["name"] }] }),
            step("SetColumns", "Update", "img", 20, { rank: 2, config: { description: "changed at 20" } }),
            step("Images", "Update", "img", 40, {
              images: [
                { alias: "before", type: "pre", attributes: ["name", "telephone1"] },
                { alias: "after", type: "post", attributes: ["name", "description"] },
                { alias: "everything", type: "both" },
              ],
            }),
            step("Images", "Create", "img", 40, { images: [{ alias: "created", type: "post", attributes: ["name"] }] }),
            step("Images", "Update", "img10", 10, { images: [{ alias: "before10", type: "pre", attributes: ["name"] }] }),
            step("Images", "Delete", "img", 40, { images: [{ alias: "gone", type: "pre", attributes: ["name"] }] }),
            // Shared variables.
            step("Share", "Create", "shared", 10, { config: { from10: "ten" } }),
            step("Share", "Create", "shared", 20, { config: { from20: "twenty" } }),
            step("ReadShared", "Create", "shared", 20, { rank: 2 }),
            step("ReadShared", "Create", "shared", 40),
            step("Share", "Assign", "shared", 10, { config: { from10: "ten" } }),
            step("ReadShared", "Assign", "shared", 40),
            // Depth.
            step("Recurse", "Update", "loop", 40),
            step("Recurse", "Update", "loopok", 40, { config: { limit: 4 } }),
            // Nested requests.
            step("CreateRecord", "Create", "nest", 40, { rank: 1, config: { entity: "nestnote" } }),
            step("Fail", "Create", "nest", 40, { rank: 2, config: { message: "nest fails", when: "fail" } }),
            step("ParentInfo", "Create", "nestnote", 10, { rank: 1 }),
            step("RecordTransaction", "Create", "nestnote", 10, { rank: 2 }),
            // Users.
            step("Users", "Create", "users", 40, { runAs: RUN_AS, config: { other: OTHER } }),
            step("RecordUsers", "Create", "userprobe", 20),
            // Configuration, enabled, trace size.
            step("Configs", "Create", "cfg", 40, { unsecureConfig: "open text", secureConfig: "secret text" }),
            step("Fail", "Create", "off", 20, { enabled: false }),
            step("Tracer", "Create", "trace", 20, { config: { lines: 200, width: 100 } }),
          ],
        },
        { db: (db = await testDb(engine)) },
      );
    });

    afterAll(async () => {
      await host?.close();
    });

    it("stage 20: a column a plug-in sets on the Target is saved with the record", async () => {
      const id = idOf(await create(host, "s20", { name: "Contoso" }));
      expect((await attributesOf(host, "s20", id))).toMatchObject({ name: "Contoso", description: "set at 20" });
    });

    it("stage 10 runs before the transaction (IsInTransaction false); stages 20 and 40 run inside it (true)", async () => {
      const { response } = await create(host, "tx", { name: "T" });
      expect((await attributesOf(host, "tx", idOf({ response })))).toMatchObject({ in10: false, in20: true });
      expect(response.results.in40).toBe(true);
    });

    it("stage 40: a throw rolls back the core operation, the plug-ins' writes and associations, and queued jobs; the store is byte-for-byte unchanged and the trace logs survive", async () => {
      await create(host, "anchor", { name: "A1" });
      await create(host, "anchor", { name: "A2" });
      const before = await snapshot(host, db);
      const recordsBefore = (await host.store.allRecords());

      const error = await failure(create(host, "boom", { name: "Boom" }));

      expect(error).toMatchObject({ code: "PIPELINE_STEP_FAILED", innerCode: "PLUGIN_FAILED" });
      expect(error.message).toContain("no booms today");
      expect(await snapshot(host, db)).toBe(before);
      expect((await host.store.allRecords())).toEqual(recordsBefore);
      const traces = await host.traceLogs();
      const failed = traces.find((t) => t.exceptionDetails?.includes("no booms today"));
      expect(failed).toMatchObject({ typeName: "Fail", messageName: "Create", primaryEntity: "boom", stage: 40 });
      expect(failed!.messageBlock).toContain("Fail at stage 40: no booms today");
      // The stage 20 step's trace (All) survives although the record it created is gone.
      const created = traces.find((t) => t.correlationId === failed!.correlationId && t.typeName === "CreateRecord");
      expect(created?.messageBlock).toMatch(/created boomnote [0-9a-f-]{36}/);
    });

    it("stage 40: a throw on Update rolls back the update, the column set at 20, the plug-ins' creates and associations", async () => {
      await create(host, "anchor", { name: "A3" });
      const id = idOf(await create(host, "boomu", { name: "Unchanged" }));
      const before = await snapshot(host, db);
      const error = await failure(update(host, "boomu", id, { name: "Changed" }));
      expect(error.message).toContain("no updates today");
      expect(await snapshot(host, db)).toBe(before);
      expect((await host.store.getRecord("boomu", id))).toMatchObject({ version: 1, attributes: { name: "Unchanged" } });
    });

    it("after a failure the later steps of the request do not run: no later sync step, no stage 40, no system job", async () => {
      const error = await failure(create(host, "stop", { name: "S" }));
      expect(error.message).toContain("stop here");
      const journal = error.journal as JournalRequest;
      expect(journal.steps.map((s) => [s.name, s.outcome])).toEqual([[expect.stringContaining("Fail"), "failed"]]);
      expect(journal.jobs).toEqual([]);
      expect(await rows(host, "stopnote")).toEqual([]);
      expect(await rows(host, "stop")).toEqual([]);
      expect(await host.listJobs()).toEqual([]);
      const traces = (await host.traceLogs()).filter((t) => t.primaryEntity === "stop");
      expect(traces.map((t) => t.typeName)).toEqual(["Fail"]);

      const refused = await failure(create(host, "stop10", { name: "S10" }));
      expect(refused.message).toContain("refused at 10");
      expect((refused.journal as JournalRequest).steps.map((s) => s.stage)).toEqual([10]);
      expect(await rows(host, "stop10")).toEqual([]);
    });

    it("rank: steps run lowest rank first, equal ranks in registration order, and every stage 10 step before stage 20", async () => {
      const id = idOf(await create(host, "order", { name: "O" }));
      expect((await attributesOf(host, "order", id))!.description).toBe("0abcde");
    });

    it("InputParameters: Target changes made at stages 10 and 20 are what gets written; changes at 40 are not", async () => {
      const id = idOf(await create(host, "target", { name: "Original" }));
      const created = (await attributesOf(host, "target", id))!;
      expect(created).toMatchObject({ name: "renamed at 20", a10: "ten", a20: "twenty" });
      expect(created).not.toHaveProperty("a40");
      await update(host, "target", id, { telephone1: "555" });
      const updated = (await attributesOf(host, "target", id))!;
      expect(updated).toMatchObject({ telephone1: "555", u20: "updated at 20" });
      expect(updated).not.toHaveProperty("u40");
    });

    it("OutputParameters: what a stage 40 plug-in sets is what the caller gets (Create's id stays)", async () => {
      const { response } = await create(host, "out", { name: "visible" });
      expect(response.results).toEqual({ id: expect.stringMatching(GUID), extra: "from 40" });
    });

    it("OutputParameters: a stage 40 plug-in on Retrieve changes the entity the caller gets, not the stored record", async () => {
      const id = idOf(await create(host, "out", { name: "Real name" }));
      const entity = await host.organization().retrieve("out", id, { allColumns: true } as never);
      expect(entity.attributes.name).toBe("(hidden)");
      expect((await attributesOf(host, "out", id))!.name).toBe("Real name");
    });

    it("InputParameters: a stage 20 plug-in on RetrieveMultiple narrows the Query, and the narrowed query is what runs", async () => {
      await create(host, "out", { name: "secret" });
      const query = new QueryExpression("out");
      query.columnSet.columns = ["name"];
      const found = await host.organization().retrieveMultiple(query);
      const names = found.entities.map((e) => e.attributes.name);
      expect(names).not.toContain("secret");
      expect(names.length).toBeGreaterThan(0);
    });

    it("filtering attributes: an Update step runs only when one of its columns is in the Target", async () => {
      const id = idOf(await create(host, "filt", { name: "F", fax: "0" }));
      const description = async () => (await attributesOf(host, "filt", id))!.description;
      await update(host, "filt", id, { fax: "1" });
      expect(await description()).toBeUndefined();
      await update(host, "filt", id, { telephone1: "2", description: "t" });
      expect(await description()).toBe("t!");
      await update(host, "filt", id, { fax: "3", description: "f" });
      expect(await description()).toBe("f");
      await update(host, "filt", id, { name: "G", description: "n" });
      expect(await description()).toBe("n!");
    });

    it("images on Update: pre-images hold the values before, post-images (stage 40 only) the values after, limited to their attribute lists", async () => {
      const id = idOf(await create(host, "img", { name: "Old", telephone1: "1", fax: "f" }));
      const { response } = await update(host, "img", id, { name: "New", telephone1: "2" });
      const images = response.results.images as { pre: Record<string, Record<string, unknown>>; post: Record<string, Record<string, unknown>> };
      expect(images.pre.before).toEqual({ name: "Old", telephone1: "1" });
      expect(images.post.after).toEqual({ name: "New", description: "changed at 20" });
      // A "both" image without an attribute list holds every column.
      expect(images.pre.everything).toMatchObject({ name: "Old", telephone1: "1", fax: "f", createdon: expect.any(Date) });
      expect(images.pre.everything).not.toHaveProperty("description");
      expect(images.post.everything).toMatchObject({ name: "New", telephone1: "2", fax: "f", description: "changed at 20" });
      // At stage 20 there is a pre-image and no post-image.
      expect(JSON.parse((await attributesOf(host, "img", id))!.images20 as string)).toEqual({ pre: { before20: { name: "Old" } }, post: {} });
    });

    it("images at stage 10: a pre-validation step on Update gets its pre-image too", async () => {
      const id = idOf(await create(host, "img10", { name: "Old", fax: "f" }));
      await update(host, "img10", id, { name: "New" });
      expect(JSON.parse((await attributesOf(host, "img10", id))!.images10 as string)).toEqual({ pre: { before10: { name: "Old" } }, post: {} });
    });

    it("images on Create and Delete: a Create's post-image holds the new record, a Delete's pre-image the removed one", async () => {
      const { response } = await create(host, "img", { name: "Fresh", fax: "x" });
      expect(response.results.images).toEqual({ pre: {}, post: { created: { name: "Fresh" } } });
      const deleted = await host.execute({ requestName: "Delete", parameters: { Target: new EntityReference("img", idOf({ response })) } });
      expect(deleted.response.results.images).toEqual({ pre: { gone: { name: "Fresh" } }, post: {} });
    });

    it("SharedVariables: set at stage 20 they reach stage 40; set at stage 10 of a Create they reach 20 and 40 through ParentContext.SharedVariables", async () => {
      const { response } = await create(host, "shared", { name: "S" });
      const at40 = response.results.sharedReport as { shared: Record<string, unknown>; parent: Record<string, unknown> | null };
      expect(at40.shared).toMatchObject({ from20: "twenty" });
      expect(at40.parent).toMatchObject({ from10: "ten" });
      const at20 = JSON.parse((await attributesOf(host, "shared", idOf({ response })))!.shared20 as string) as typeof at40;
      expect(at20.shared).toMatchObject({ from20: "twenty" });
      expect(at20.parent).toMatchObject({ from10: "ten" });
    });

    it("SharedVariables: on a message other than Create, Update and Delete (Assign), stage 10's variables are in the later stages' own SharedVariables", async () => {
      const id = idOf(await create(host, "shared", { name: "S2" }));
      const { response } = await host.execute({ requestName: "Assign", parameters: { Target: new EntityReference("shared", id), Assignee: new EntityReference("systemuser", OTHER) } });
      expect((response.results.sharedReport as { shared: Record<string, unknown> }).shared).toMatchObject({ from10: "ten" });
    });

    it("depth: a plug-in that updates its own record on Update fails past settings.maxDepth (4) with PIPELINE_DEPTH_LIMIT and the chain of steps and messages in the message", async () => {
      const id = idOf(await create(host, "loop", { name: "L" }));
      const before = await snapshot(host, db);
      const error = await failure(update(host, "loop", id, { name: "again" }));
      expect(error.code).toBe("PIPELINE_STEP_FAILED");
      expect(error.message).toContain("maximum depth of 4");
      expect(error.message).toMatch(
        /Update of loop \(depth 1\) → step .*Recurse.* \(stage 40\) → Update of loop \(depth 2\) → step .* \(stage 40\) → Update of loop \(depth 3\) → step .* \(stage 40\) → Update of loop \(depth 4\) → step .* \(stage 40\) → Update of loop \(depth 5\)/,
      );
      // The journal's deepest request is the one refused, with the typed code.
      let deepest = error.journal as JournalRequest;
      while (deepest.steps[0]?.requests[0]) deepest = deepest.steps[0].requests[0];
      expect(deepest).toMatchObject({ message: "Update", depth: 5, outcome: "failed", error: { code: "PIPELINE_DEPTH_LIMIT" } });
      expect(await snapshot(host, db)).toBe(before);
    });

    it("depth: a chain of plug-in calls that stops at depth maxDepth (4) succeeds", async () => {
      const id = idOf(await create(host, "loopok", { name: "L" }));
      await update(host, "loopok", id, { name: "go" });
      expect((await attributesOf(host, "loopok", id))!.description).toBe("depth 4");
    });

    it("nesting: a record a plug-in creates is rolled back with its parent when a later step fails", async () => {
      const before = await snapshot(host, db);
      const error = await failure(create(host, "nest", { name: "N", fail: true }));
      expect(error.message).toContain("nest fails");
      const nested = (error.journal as JournalRequest).steps[0]!.requests[0]!;
      expect(nested).toMatchObject({ message: "Create", entity: "nestnote", depth: 2, outcome: "ok" });
      expect(await snapshot(host, db)).toBe(before);
      expect((await host.store.getRecord("nestnote", nested.id!))).toBeUndefined();
    });

    it("nesting: a plug-in's call re-enters the pipeline at depth + 1 with the caller's CorrelationId and ParentContext; its stage 10 runs inside the caller's transaction", async () => {
      const { response, journal } = await create(host, "nest", { name: "N2" });
      const note = (await rows(host, "nestnote")).find((r) => r.attributes.regarding === idOf({ response }))!;
      expect(note.attributes).toMatchObject({ depth: 2, sameCorrelation: true, parentMessage: "Create", parentEntity: "nest", parentStage: 40, in10: true });
      // The journal is the tree of what ran.
      expect(journal).toMatchObject({
        message: "Create",
        entity: "nest",
        depth: 1,
        outcome: "ok",
        steps: [
          { stage: 40, outcome: "ok", requests: [{ message: "Create", entity: "nestnote", id: note.id, depth: 2, outcome: "ok", steps: [{ stage: 10 }, { stage: 10 }] }] },
          { stage: 40, outcome: "ok", requests: [] },
        ],
      });
    });

    it("users: UserId is the step's runAs user and InitiatingUserId the caller; createOrganizationService(null) acts as SYSTEM, the empty Guid as UserId, any other id as that user", async () => {
      const { response } = await create(host, "users", { name: "U" }, { userId: CALLER });
      const users = response.results.users as { userId: string; initiatingUserId: string; whoAmINull: string; whoAmIEmpty: string; probes: Record<string, string> };
      expect(users).toMatchObject({ userId: RUN_AS, initiatingUserId: CALLER, whoAmINull: SYSTEM_USER_ID, whoAmIEmpty: RUN_AS });
      const probe = async (label: string) => (await attributesOf(host, "userprobe", users.probes[label]!))!;
      const createdBy = async (label: string) => ((await probe(label)).createdby as { id: string }).id;
      expect(await createdBy("null")).toBe(SYSTEM_USER_ID);
      expect(await createdBy("empty")).toBe(RUN_AS);
      expect(await createdBy("initiating")).toBe(CALLER);
      expect(await createdBy("other")).toBe(OTHER);
      // The nested requests' contexts: UserId is the service's user, InitiatingUserId stays the caller.
      for (const [label, user] of [["null", SYSTEM_USER_ID], ["empty", RUN_AS], ["initiating", CALLER], ["other", OTHER]] as const) {
        expect(await probe(label)).toMatchObject({ contextuserid: user, contextinitiatinguserid: CALLER });
      }
      // The core operation itself runs as the caller, not as the step's runAs user.
      expect(((await attributesOf(host, "users", idOf({ response })))!.createdby as { id: string }).id).toBe(CALLER);
    });

    it("configuration: the plug-in is constructed with the step's unsecure and secure configuration", async () => {
      const { response } = await create(host, "cfg", { name: "C" });
      expect(response.results.configs).toEqual(["open text", "secret text"]);
    });

    it("a disabled step does not run", async () => {
      const id = idOf(await create(host, "off", { name: "Off" }));
      expect((await attributesOf(host, "off", id))!.name).toBe("Off");
    });

    it("trace logs: one row per execution holding at most 10 KB of trace, the most recent lines kept", async () => {
      const { response } = await create(host, "trace", { name: "T" });
      const id = idOf({ response });
      expect(id).toMatch(GUID);
      const row = (await host.traceLogs()).find((t) => t.primaryEntity === "trace")!;
      expect(Buffer.byteLength(row.messageBlock)).toBeLessThanOrEqual(10_240);
      expect(Buffer.byteLength(row.messageBlock)).toBeGreaterThan(9_000);
      expect(row.messageBlock.trimEnd().endsWith("LAST")).toBe(true);
      expect(row.messageBlock).not.toContain("line 0000 ");
      expect(row.messageBlock).toContain("line 0199 ");
    });
  });

  describe("pipeline: trace log settings", () => {
    const steps = [step("Tracer", "Create", "ok", 20, { config: { lines: 1, width: 5 } }), step("Fail", "Create", "bad", 20, { config: { message: "bad record" } })];

    it("traceLogSetting Exceptions keeps only the traces of failed executions", async () => {
      const host = await hostWith(plugins.bundle, { steps, settings: { traceLogSetting: "Exceptions" } }, { db: await testDb(engine) });
      try {
        await create(host, "ok", { name: "fine" });
        await failure(create(host, "bad", { name: "broken" }));
        const traces = await host.traceLogs();
        expect(traces.map((t) => [t.typeName, t.exceptionDetails?.includes("bad record")])).toEqual([["Fail", true]]);
      } finally {
        await host.close();
      }
    });

    it("traceLogSetting Off keeps no traces, and tracing still works for the plug-in", async () => {
      const host = await hostWith(plugins.bundle, { steps, settings: { traceLogSetting: "Off" } }, { db: await testDb(engine) });
      try {
        const { journal } = await create(host, "ok", { name: "fine" });
        expect(journal.steps[0]!.trace).toContain("LAST");
        await failure(create(host, "bad", { name: "broken" }));
        expect(await host.traceLogs()).toEqual([]);
      } finally {
        await host.close();
      }
    });
  });

  describe("pipeline: a bundle's web allow-list", () => {
    it("a bundle's allowedHosts narrow its plug-ins' web requests: another host is refused with WEB_NOT_ALLOWED before any connection, and the journal records the call", async () => {
      const host = await createHost({
        db: await testDb(engine),
        manifest: { bundles: { f: { path: plugins.bundle, allowedHosts: ["api.contoso.com"] } }, steps: [{ bundle: "f", type: "FetchCode", message: "Create", entity: "account", stage: 40, unsecureConfig: "https://elsewhere.example/" }] },
        runJobs: false,
        runtimeOptions: fastRuntime,
      });
      try {
        const { response, journal } = await create(host, "account", { name: "W" });
        expect(response.results.code).toBe("WEB_NOT_ALLOWED");
        expect(journal.steps[0]!.calls).toEqual([expect.objectContaining({ service: "web", ok: false, error: expect.objectContaining({ code: "WEB_NOT_ALLOWED" }) })]);
      } finally {
        await host.close();
      }
    });
  });

  describe("pipeline: concurrent requests", () => {
    let host: PlugboxHost;

    beforeAll(async () => {
      host = await hostWith(plugins.bundle, {
        steps: [step("Snoop", "Create", "conc", 40), step("Parallel", "Create", "fanout", 40, { config: { entity: "ptask", count: 3, failing: 2 } }), step("SlowFail", "Create", "ptask", 20)],
      }, { db: await testDb(engine) });
    });

    afterAll(async () => {
      await host?.close();
    });

    it("two concurrent requests whose plug-ins await service calls never see each other's uncommitted writes", async () => {
      const [a, b] = await Promise.all([create(host, "conc", { name: "A" }), create(host, "conc", { name: "B" })]);
      const seenA = a.response.results.seen as string[];
      const seenB = b.response.results.seen as string[];
      // Each saw its own note, and the other's only once that request had committed: one ran wholly before the other.
      const [first, second] = seenA.length <= seenB.length ? [seenA, seenB] : [seenB, seenA];
      expect(first).toHaveLength(1);
      expect(seenA).toContain("A");
      expect(seenB).toContain("B");
      expect(second).toEqual(["A", "B"]);
    });

    it("a failing request running concurrently with others never shows its writes to them and does not roll back theirs", async () => {
      const results = await Promise.allSettled([
        create(host, "conc", { name: "F1", fail: true }),
        create(host, "conc", { name: "C" }),
        create(host, "conc", { name: "F2", fail: true }),
        create(host, "conc", { name: "D" }),
      ]);
      expect(results.map((r) => r.status)).toEqual(["rejected", "fulfilled", "rejected", "fulfilled"]);
      for (const r of results) {
        if (r.status === "fulfilled") expect(r.value.response.results.seen).not.toEqual(expect.arrayContaining(["F1"]));
        if (r.status === "fulfilled") expect(r.value.response.results.seen).not.toEqual(expect.arrayContaining(["F2"]));
      }
      const mine = ["F1", "C", "F2", "D"];
      expect((await rows(host, "concnote")).map((r) => String(r.attributes.label)).filter((l) => mine.includes(l)).sort()).toEqual(["C", "D"]);
      expect((await rows(host, "conc")).map((r) => String(r.attributes.name)).filter((l) => mine.includes(l)).sort()).toEqual(["C", "D"]);
    });

    it("nested calls a plug-in makes at once are isolated from each other: a failing one rolls back only its own writes, and every call's outcome matches the store", async () => {
      const { response } = await create(host, "fanout", { name: "Fan" });
      const calls = response.results.calls as Array<{ subject: string; status: string; message: string | null }>;
      expect(calls.map((c) => [c.subject, c.status])).toEqual([
        ["t1", "fulfilled"],
        ["t2", "rejected"],
        ["t3", "fulfilled"],
      ]);
      expect(calls[1]!.message).toContain("t2 fails");
      expect((await rows(host, "ptask")).map((r) => r.attributes.subject).sort()).toEqual(["t1", "t3"]);
      expect(host.store.inTransaction).toBe(false);
    });
  });

  describe("organization service messages through the pipeline", () => {
    let host: PlugboxHost;
    let db: string;
    const tables = {
      account: {
        primaryNameAttribute: "name",
        columns: { name: "string", accountnumber: "string", description: "string", telephone1: "string", revenue: "money", creditlimit: "number", donotemail: "boolean", primarycontactid: "lookup", industrycode: "optionset" },
        alternateKeys: { number: ["accountnumber"] },
      },
      contact: { primaryNameAttribute: "lastname", columns: { lastname: "string", firstname: "string" } },
      strict: { columns: { name: "string" } },
      upserted: { columns: { name: "string", code: "string", description: "string" }, alternateKeys: { code: ["code"] } },
    };

    beforeAll(async () => {
      host = await hostWith(plugins.bundle, {
        tables,
        steps: [
          step("EchoInputs", "SetState", "account", 40, { images: [{ alias: "before", type: "pre", attributes: ["statecode", "statuscode"] }] }),
          step("EchoInputs", "Assign", "account", 40, { images: [{ alias: "before", type: "pre", attributes: ["ownerid"] }] }),
          step("EchoInputs", "Associate", "account", 40),
          step("EchoInputs", "Disassociate", "account", 40),
          step("EchoInputs", "Delete", "account", 40, { images: [{ alias: "before", type: "pre", attributes: ["name"] }] }),
          step("EchoInputs", "WhoAmI", null, 40),
          step("SetColumns", "Create", "strict", 20, { config: { nickname: "not in the schema" } }),
          step("SetColumns", "Create", "upserted", 20, { config: { description: "create step ran" } }),
          step("SetColumns", "Update", "upserted", 20, { config: { description: "update step ran" } }),
          step("Append", "Create", "batch", 20, { config: "+" }),
          step("Fail", "Create", "batch", 20, { rank: 2, config: { message: "bad batch item", when: "fail" } }),
        ],
      }, { db: (db = await testDb(engine)) });
    });

    afterAll(async () => {
      await host?.close();
    });

    const account = (attributes: Record<string, unknown>) => create(host, "account", attributes);

    it("Create and Retrieve: the record comes back with its columns and the platform columns", async () => {
      const id = idOf(await account({ name: "Contoso", revenue: new Money(125000), creditlimit: 10, donotemail: false }));
      const entity = await host.organization({ userId: CALLER }).retrieve("account", id, { allColumns: true } as never);
      expect(entity).toMatchObject({ logicalName: "account", id });
      expect(entity.attributes).toMatchObject({ name: "Contoso", revenue: { value: 125000 }, creditlimit: 10, donotemail: false, accountid: id, statecode: { value: 0 }, statuscode: { value: 1 } });
      expect(entity.attributes.createdon).toBeInstanceOf(Date);
      const some = await host.organization().retrieve("account", id, { columns: ["name"] } as never);
      expect(Object.keys(some.attributes)).toEqual(["name"]);
    });

    it("table schema: an unknown column in a write is ORG_INVALID_ARGUMENT naming the column and the fix; nothing is written", async () => {
      const before = await snapshot(host, db);
      await expect(account({ name: "A", fax: "1" })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringMatching(/account has no column fax.*tables\.account\.columns/) });
      const id = idOf(await account({ name: "B" }));
      const afterCreate = await snapshot(host, db);
      await expect(update(host, "account", id, { fax: "1" })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("account has no column fax") });
      expect(await snapshot(host, db)).toBe(afterCreate);
      expect(afterCreate).not.toBe(before);
    });

    it("table schema: a value of the wrong type is ORG_INVALID_ARGUMENT naming the column and its type", async () => {
      const before = await snapshot(host, db);
      await expect(account({ name: "A", revenue: "lots" })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("account.revenue holds money values") });
      await expect(account({ name: "A", creditlimit: "10" })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("account.creditlimit holds number values") });
      await expect(account({ name: "A", donotemail: "yes" })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("account.donotemail holds boolean values") });
      await expect(account({ name: 42 })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("account.name holds string values") });
      expect(await snapshot(host, db)).toBe(before);
    });

    it("table schema: a column a stage 20 plug-in adds to the Target is checked too, and the request is rolled back", async () => {
      const before = await snapshot(host, db);
      await expect(create(host, "strict", { name: "S" })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("strict has no column nickname") });
      expect(await snapshot(host, db)).toBe(before);
    });

    it("table schema: a query naming an unknown column is ORG_INVALID_ARGUMENT naming the column", async () => {
      const query = new QueryExpression("account");
      query.criteria.addCondition("fax", "Equal", "1");
      await expect(host.organization().retrieveMultiple(query)).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("fax") });
    });

    it("Upsert with an alternate key creates the record (with the key's values) and then updates that same record", async () => {
      const keyed = (attributes: Record<string, unknown>) => Object.assign(new Entity("account", undefined, attributes as never), { keyAttributes: { accountnumber: "K-1" } });
      const first = await host.execute({ requestName: "Upsert", parameters: { Target: keyed({ name: "Keyed" }) } });
      expect(first.response.results.RecordCreated).toBe(true);
      const id = (first.response.results.Target as EntityReference).id;
      expect((await attributesOf(host, "account", id))).toMatchObject({ name: "Keyed", accountnumber: "K-1" });
      const second = await host.execute({ requestName: "Upsert", parameters: { Target: keyed({ name: "Renamed" }) } });
      expect(second.response.results.RecordCreated).toBe(false);
      expect((second.response.results.Target as EntityReference).id).toBe(id);
      expect((await rows(host, "account")).filter((r) => r.attributes.accountnumber === "K-1").map((r) => r.attributes.name)).toEqual(["Renamed"]);
    });

    it("Upsert: a record found by its alternate key keeps the key's values (key columns in the Target's attributes are ignored)", async () => {
      const target = (attributes: Record<string, unknown>) => Object.assign(new Entity("account", undefined, attributes as never), { keyAttributes: { accountnumber: "K-2" } });
      const first = await host.execute({ requestName: "Upsert", parameters: { Target: target({ name: "Two", accountnumber: "K-2" }) } });
      const id = (first.response.results.Target as EntityReference).id;
      await host.execute({ requestName: "Upsert", parameters: { Target: target({ name: "Two again", accountnumber: "K-3" }) } });
      expect((await attributesOf(host, "account", id))).toMatchObject({ name: "Two again", accountnumber: "K-2" });
    });

    it("Upsert: keyAttributes that are not an alternate key are ORG_INVALID_ARGUMENT naming the fix", async () => {
      const target = Object.assign(new Entity("account", undefined, { name: "X" }), { keyAttributes: { name: "X" } });
      await expect(host.execute({ requestName: "Upsert", parameters: { Target: target } })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("tables.account.alternateKeys") });
    });

    it("Upsert raises the event of the operation it performs: steps on Create run when it creates, steps on Update when it updates", async () => {
      const target = (attributes: Record<string, unknown>) => Object.assign(new Entity("upserted", undefined, attributes as never), { keyAttributes: { code: "U-1" } });
      const first = await host.execute({ requestName: "Upsert", parameters: { Target: target({ name: "First", code: "U-1" }) } });
      const id = (first.response.results.Target as EntityReference).id;
      expect((await attributesOf(host, "upserted", id))!.description).toBe("create step ran");
      await host.execute({ requestName: "Upsert", parameters: { Target: target({ name: "Second" }) } });
      expect((await attributesOf(host, "upserted", id))).toMatchObject({ name: "Second", description: "update step ran" });
    });

    it("SetState goes through the pipeline: the step sees EntityMoniker, State and Status and the pre-image; the record gets the new state", async () => {
      const id = idOf(await account({ name: "Stateful" }));
      const { response } = await host.execute({ requestName: "SetState", parameters: { EntityMoniker: new EntityReference("account", id), State: new OptionSetValue(1), Status: new OptionSetValue(2) } });
      const seen = response.results.seen as { message: string; id: string; inputs: Record<string, { value?: number; id?: string }>; pre: Record<string, { value: number }> };
      expect(seen).toMatchObject({ message: "SetState", entity: "account", id });
      expect(seen.inputs.State!.value).toBe(1);
      expect(seen.inputs.Status!.value).toBe(2);
      expect(seen.inputs.EntityMoniker!.id).toBe(id);
      expect(seen.pre).toMatchObject({ statecode: { value: 0 }, statuscode: { value: 1 } });
      expect((await attributesOf(host, "account", id))).toMatchObject({ statecode: { value: 1 }, statuscode: { value: 2 } });
    });

    it("Assign goes through the pipeline: the step sees Target, Assignee and the old owner; the record gets the new owner", async () => {
      const id = idOf(await create(host, "account", { name: "Owned" }, { userId: CALLER }));
      const { response } = await host.execute({ requestName: "Assign", parameters: { Target: new EntityReference("account", id), Assignee: new EntityReference("systemuser", OTHER) } });
      const seen = response.results.seen as { inputs: Record<string, { id: string }>; pre: { ownerid: { id: string } } };
      expect(seen.inputs.Assignee!.id).toBe(OTHER);
      expect(seen.pre.ownerid.id).toBe(CALLER);
      expect(((await attributesOf(host, "account", id))!.ownerid as { id: string }).id).toBe(OTHER);
    });

    it("Associate and Disassociate go through the pipeline and link and unlink the records", async () => {
      const a = idOf(await account({ name: "Linked" }));
      const c = idOf(await create(host, "contact", { lastname: "Doe" }));
      const org = host.organization();
      const seen = (await org.execute({ requestName: "Associate", parameters: { Target: new EntityReference("account", a), Relationship: "account_contacts", RelatedEntities: [new EntityReference("contact", c)] } })).results.seen as {
        message: string;
        inputs: { Relationship: unknown; RelatedEntities: Array<{ id: string }> };
      };
      expect(seen.message).toBe("Associate");
      expect(seen.inputs.RelatedEntities.map((r) => r.id)).toEqual([c]);
      expect((await host.store.isLinked("account_contacts", "account", a, "contact", c))).toBe(true);
      await org.disassociate(new EntityReference("account", a), "account_contacts", [new EntityReference("contact", c)]);
      expect((await host.store.isLinked("account_contacts", "account", a, "contact", c))).toBe(false);
      await expect(org.disassociate(new EntityReference("account", a), "account_contacts", [new EntityReference("contact", c)])).rejects.toMatchObject({ code: "ORG_NOT_FOUND" });
    });

    it("Delete removes the record's N:N associations with it", async () => {
      const a = idOf(await account({ name: "Keeps links" }));
      const c = idOf(await create(host, "contact", { lastname: "Gone" }));
      await host.organization().associate(new EntityReference("account", a), "account_contacts", [new EntityReference("contact", c)]);
      await host.organization().delete("contact", c);
      expect((await host.store.isLinked("account_contacts", "account", a, "contact", c))).toBe(false);
      const left = engine === "sqlite" ? sqliteOf(host).db.prepare("SELECT count(*) AS n FROM relationships WHERE id1 = ? OR id2 = ?").get(c, c) : (await sql(db, "SELECT count(*)::int AS n FROM relationships WHERE id1 = $1 OR id2 = $1", [c]))[0];
      expect(left).toEqual({ n: 0 });
    });

    it("Delete goes through the pipeline: the stage 40 step sees the pre-image; the record is gone and Retrieve is ORG_NOT_FOUND", async () => {
      const id = idOf(await account({ name: "Doomed" }));
      const { response } = await host.execute({ requestName: "Delete", parameters: { Target: new EntityReference("account", id) } });
      expect((response.results.seen as { pre: unknown }).pre).toEqual({ name: "Doomed" });
      expect((await attributesOf(host, "account", id))).toBeUndefined();
      await expect(host.organization().retrieve("account", id, { allColumns: true } as never)).rejects.toMatchObject({ code: "ORG_NOT_FOUND" });
    });

    it("RetrieveMultiple: QueryExpression, QueryByAttribute and FetchXML return the matching records", async () => {
      await account({ name: "Fabrikam", creditlimit: 500 });
      await account({ name: "Fourth Coffee", creditlimit: 50 });
      const query = new QueryExpression("account");
      query.columnSet.columns = ["name"];
      query.criteria.addCondition("creditlimit", "GreaterThan", 100);
      const byQuery = await host.organization().retrieveMultiple(query);
      expect(byQuery).toBeInstanceOf(EntityCollection);
      expect(byQuery.entities.map((e) => e.attributes.name)).toEqual(["Fabrikam"]);
      const byAttribute = new QueryByAttribute("account");
      byAttribute.columnSet.columns = ["name", "creditlimit"];
      byAttribute.addAttributeValue("creditlimit", 50);
      expect((await host.organization().retrieveMultiple(byAttribute)).entities.map((e) => [e.attributes.name, e.attributes.creditlimit])).toEqual([["Fourth Coffee", 50]]);
      const fetch = new FetchExpression(`<fetch><entity name="account"><attribute name="name"/><filter><condition attribute="name" operator="eq" value="Fourth Coffee"/></filter></entity></fetch>`);
      const byFetch = await host.organization().retrieveMultiple(fetch);
      expect(byFetch.entities.map((e) => e.attributes.name)).toEqual(["Fourth Coffee"]);
    });

    it("WhoAmI answers the calling user, the business unit and the organization, and a step on WhoAmI runs", async () => {
      const { response } = await host.execute({ requestName: "WhoAmI", parameters: {} }, { userId: CALLER });
      expect(response.results).toMatchObject({ UserId: CALLER, BusinessUnitId: expect.stringMatching(GUID), OrganizationId: expect.stringMatching(GUID), seen: { message: "WhoAmI" } });
    });

    it("ExecuteMultiple with ContinueOnError true runs every request on its own through the pipeline and reports each fault", async () => {
      const make = (name: string, extra: Record<string, unknown> = {}) => ({ requestName: "Create", parameters: { Target: new Entity("batch", undefined, { name, ...extra } as never) } });
      const missing = { requestName: "Delete", parameters: { Target: new EntityReference("batch", "00000000-0000-4000-8000-0000000000ff") } };
      const { response } = await host.execute({
        requestName: "ExecuteMultiple",
        parameters: { Requests: [make("m1"), make("m2", { fail: true }), missing, make("m3")], Settings: { ContinueOnError: true, ReturnResponses: true } },
      });
      expect(response.results.IsFaulted).toBe(true);
      const responses = response.results.Responses as Array<{ RequestIndex: number; Response?: { results: { id: string } }; Fault?: { code: string; message: string } }>;
      expect(responses.map((r) => [r.RequestIndex, r.Fault?.code ?? "ok"])).toEqual([
        [0, "ok"],
        [1, "PIPELINE_STEP_FAILED"],
        [2, "ORG_NOT_FOUND"],
        [3, "ok"],
      ]);
      expect(responses[1]!.Fault!.message).toContain("bad batch item");
      const saved = (await rows(host, "batch")).filter((r) => String(r.attributes.name).startsWith("m"));
      expect(saved.map((r) => [r.attributes.name, r.attributes.description]).sort()).toEqual([
        ["m1", "+"],
        ["m3", "+"],
      ]);
      expect(saved.map((r) => r.id).sort()).toEqual([responses[0]!.Response!.results.id, responses[3]!.Response!.results.id].sort());
    });

    it("ExecuteMultiple with ContinueOnError false stops at the first fault; the requests before it stay done; without ReturnResponses only faults are returned", async () => {
      const make = (name: string, extra: Record<string, unknown> = {}) => ({ requestName: "Create", parameters: { Target: new Entity("batch", undefined, { name, ...extra } as never) } });
      const { response } = await host.execute({ requestName: "ExecuteMultiple", parameters: { Requests: [make("s1"), make("s2", { fail: true }), make("s3")], Settings: { ContinueOnError: false, ReturnResponses: false } } });
      expect(response.results.IsFaulted).toBe(true);
      expect(response.results.Responses).toEqual([{ RequestIndex: 1, Fault: expect.objectContaining({ code: "PIPELINE_STEP_FAILED" }) }]);
      expect((await rows(host, "batch")).map((r) => r.attributes.name).filter((n) => String(n).startsWith("s"))).toEqual(["s1"]);
    });

    it("ExecuteTransaction is all or nothing: a failing request rolls back every request of the batch, naming the one that failed", async () => {
      const make = (name: string, extra: Record<string, unknown> = {}) => ({ requestName: "Create", parameters: { Target: new Entity("batch", undefined, { name, ...extra } as never) } });
      const before = await snapshot(host, db);
      const error = await failure(host.execute({ requestName: "ExecuteTransaction", parameters: { Requests: [make("t1"), make("t2"), make("t3", { fail: true })] } }));
      expect(error.message).toContain("request 2 (Create) failed");
      expect(error.message).toContain("bad batch item");
      expect(await snapshot(host, db)).toBe(before);
      const { response } = await host.execute({ requestName: "ExecuteTransaction", parameters: { Requests: [make("t4"), make("t5")], ReturnResponses: true } });
      const ids = (response.results.Responses as Array<{ results: { id: string } }>).map((r) => r.results.id);
      expect(await Promise.all(ids.map(async (id) => (await attributesOf(host, "batch", id))!.name))).toEqual(["t4", "t5"]);
    });

    it("an unsupported message is PIPELINE_UNSUPPORTED_MESSAGE naming it, alone or inside a batch", async () => {
      await expect(host.execute({ requestName: "Merge", parameters: {} })).rejects.toMatchObject({ code: "PIPELINE_UNSUPPORTED_MESSAGE", message: expect.stringContaining("the Merge message is not supported") });
      const { response } = await host.execute({ requestName: "ExecuteMultiple", parameters: { Requests: [{ requestName: "Route", parameters: {} }], Settings: { ContinueOnError: true } } });
      expect(response.results.Responses).toEqual([{ RequestIndex: 0, Fault: expect.objectContaining({ code: "PIPELINE_UNSUPPORTED_MESSAGE", message: expect.stringContaining("Route") }) }]);
    });
  });

  describe("bad input", () => {
    let host: PlugboxHost;
    let db: string;

    beforeAll(async () => {
      host = await hostWith(plugins.bundle, { tables: { account: { columns: { name: "string", primarycontactid: "lookup" } } }, steps: [] }, { db: (db = await testDb(engine)) });
    });

    afterAll(async () => {
      await host?.close();
    });

    it("a request that is not an object { requestName, parameters } is PIPELINE_INVALID_REQUEST naming what is wrong; nothing is written and the host keeps serving", async () => {
      const cases: Array<[string, unknown, string]> = [
        ["null", null, "requestName"],
        ["a string", "Create", "requestName"],
        ["an array", [{ requestName: "Create" }], "requestName"],
        ["a requestName that is not a string", { requestName: 5, parameters: {} }, "requestName"],
        ["parameters that are not an object", { requestName: "WhoAmI", parameters: [] }, "parameters"],
      ];
      const before = await snapshot(host, db);
      for (const [what, request, named] of cases) {
        const outcome = await host.execute(request as never).then(
          () => ({ code: "(resolved)", message: "" }),
          (error: { code?: string; message: string }) => ({ code: error.code ?? error.constructor.name, message: error.message }),
        );
        expect.soft(outcome, what).toMatchObject({ code: "PIPELINE_INVALID_REQUEST", message: expect.stringContaining(named) });
      }
      expect(await snapshot(host, db)).toBe(before);
      await expect(host.execute({ requestName: "WhoAmI", parameters: {} })).resolves.toBeDefined();
    });

    it("an id that is not a Guid is ORG_INVALID_ARGUMENT naming the parameter, for Retrieve, Update, Delete, SetState and Create", async () => {
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ requestName: "Retrieve", parameters: { Target: { logicalName: "account", id: "42" }, ColumnSet: { allColumns: true } } }, "Target.id"],
        [{ requestName: "Update", parameters: { Target: { logicalName: "account", id: "not-a-guid", attributes: { name: "x" } } } }, "Target.id"],
        [{ requestName: "Delete", parameters: { Target: { logicalName: "account", id: "42" } } }, "Target.id"],
        [{ requestName: "SetState", parameters: { EntityMoniker: { logicalName: "account", id: "42" }, State: new OptionSetValue(1), Status: new OptionSetValue(2) } }, "EntityMoniker.id"],
        [{ requestName: "Create", parameters: { Target: { logicalName: "account", id: "1234", attributes: { name: "x" } } } }, "Target.id"],
      ];
      for (const [request, path] of cases) {
        await expect(host.execute(request as never), path).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringMatching(new RegExp(`${path.replace(".", "\\.")} must be a Guid`)) });
      }
      expect((await host.store.allRecords())).toEqual([]);
    });

    it("a lookup whose id is not a Guid is ORG_INVALID_ARGUMENT naming the column", async () => {
      await expect(create(host, "account", { name: "x", primarycontactid: { logicalName: "contact", id: "nope" } })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("account.primarycontactid") });
      expect((await host.store.allRecords())).toEqual([]);
    });

    it("a Target that is not an entity, or names an invalid table, is ORG_INVALID_ARGUMENT", async () => {
      await expect(host.execute({ requestName: "Create", parameters: { Target: "not an entity" } })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("Target must be an Entity") });
      await expect(host.execute({ requestName: "Create", parameters: { Target: { logicalName: "bad table!", attributes: {} } } })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("Target.logicalName") });
      await expect(host.execute({ requestName: "Create", parameters: {} })).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT" });
    });

    it("a query on a table the manifest does not declare (and that holds nothing) is ORG_INVALID_ARGUMENT naming it, by QueryExpression or FetchXML", async () => {
      await expect(host.organization().retrieveMultiple(new QueryExpression("acount"))).rejects.toMatchObject({ code: "ORG_INVALID_ARGUMENT", message: expect.stringContaining("there is no table acount") });
      await expect(host.organization().retrieveMultiple(new FetchExpression(`<fetch><entity name="acount"><attribute name="name"/></entity></fetch>`))).rejects.toMatchObject({
        code: "ORG_INVALID_ARGUMENT",
        message: expect.stringContaining("acount"),
      });
      await expect(host.organization().retrieveMultiple(new QueryExpression("account"))).resolves.toBeInstanceOf(EntityCollection);
    });

    it("a closed host refuses requests with PIPELINE_CLOSED", async () => {
      const closed = await hostWith(plugins.bundle, { steps: [] }, { db: await testDb(engine) });
      await closed.close();
      await expect(closed.execute({ requestName: "WhoAmI", parameters: {} })).rejects.toMatchObject({ code: "PIPELINE_CLOSED" });
      await expect(closed.runJobs()).rejects.toMatchObject({ code: "PIPELINE_CLOSED" });
    });

    it("a Retrieve of a record that does not exist is ORG_NOT_FOUND naming the table and id", async () => {
      const id = "00000000-0000-4000-8000-00000000abcd";
      await expect(host.organization().retrieve("account", id, { allColumns: true } as never)).rejects.toMatchObject({ code: "ORG_NOT_FOUND", message: expect.stringContaining(`account with id ${id}`) });
    });
  });
});
