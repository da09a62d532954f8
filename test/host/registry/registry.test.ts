/**
 * The registry: manifest validation (every error names the JSON path and the fix; Dataverse's
 * registration rules of reference 2.1, 2.2, 2.7 and 2.8 are enforced at load time) and steps
 * registered in code, which run like manifest steps.
 */
import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHost, type PlugboxHost } from "../../../dist/host/index.js";
import { loadManifest } from "../../../dist/host/testing/internal.js";
import { Entity } from "../../../dist/sdk/index.js";
import { buildPlugins, fastRuntime, rows } from "../../fixtures/pipeline/support.js";

let plugins: Awaited<ReturnType<typeof buildPlugins>>;

beforeAll(async () => {
  plugins = await buildPlugins("plugbox-registry-");
});

afterAll(() => plugins?.cleanup());

/** The error createHost refuses a manifest with (a manifest that loads is closed and fails the test). */
async function refusal(manifest: Record<string, unknown>): Promise<{ code: string; message: string }> {
  let host: PlugboxHost | undefined;
  try {
    host = await createHost({ manifest, runJobs: false, runtimeOptions: fastRuntime });
  } catch (error) {
    return error as { code: string; message: string };
  }
  await host.close();
  throw new Error("the manifest was accepted");
}

const ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
const withStep = (s: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  bundles: { p: { path: "p.js", types: ["A"] } },
  steps: [{ bundle: "p", type: "A", message: "Create", entity: "account", ...s }],
  ...extra,
});

describe("manifest validation: each rule is refused with MANIFEST_INVALID, the JSON path and the fix", () => {
  const rules: Array<[string, Record<string, unknown>, string, string]> = [
    // [rule, manifest, path, what the message says (problem and fix)]
    ["asynchronous steps only at stage 40 (not 20)", withStep({ stage: 20, mode: "async" }), "steps[0].mode", 'asynchronous steps can only be registered at stage 40 (post-operation); set stage to 40 or mode to "sync"'],
    ["asynchronous steps only at stage 40 (not 10)", withStep({ stage: 10, mode: "async" }), "steps[0].mode", "set stage to 40"],
    ["no pre-image on Create", withStep({ stage: 40, images: [{ alias: "x", type: "pre" }] }), "steps[0].images[0].type", "a Create has no pre-image (the record does not exist yet); use a post-image at stage 40"],
    ["no pre-image on Create, not even as part of a 'both' image", withStep({ stage: 40, images: [{ alias: "x", type: "both" }] }), "steps[0].images[0].type", "a Create has no pre-image"],
    ["no post-image on Delete", withStep({ message: "Delete", stage: 40, images: [{ alias: "x", type: "post" }] }), "steps[0].images[0].type", "a Delete has no post-image (the record is gone); use a pre-image"],
    ["post-images only at stage 40", withStep({ message: "Update", stage: 20, images: [{ alias: "x", type: "post" }] }), "steps[0].images[0].type", "post-images exist only at stage 40 (post-operation)"],
    ["post-images only at stage 40, not as part of a 'both' image at stage 10", withStep({ message: "Update", stage: 10, images: [{ alias: "x", type: "both" }] }), "steps[0].images[0].type", "post-images exist only at stage 40"],
    ["images only on messages that have them", withStep({ message: "Retrieve", stage: 40, images: [{ alias: "x", type: "pre" }] }), "steps[0].images", "the Retrieve message does not support images (messages with images: Assign, Create, Delete, Update, SetState"],
    ["filtering attributes only on Update", withStep({ stage: 20, filteringAttributes: ["name"] }), "steps[0].filteringAttributes", "filtering attributes apply only to steps on Update"],
    ["a stage of 30 (the core operation) is not for custom steps", withStep({ stage: 30 }), "steps[0].stage", "30 is not a stage custom steps can use: 10 (pre-validation), 20 (pre-operation) or 40 (post-operation)"],
    ["an unknown bundle", { bundles: { p: "p.js" }, steps: [{ bundle: "q", type: "A", message: "Create" }] }, "steps[0].bundle", 'no bundle named "q" is declared in bundles (declared: p)'],
    ["an unknown plug-in type when the bundle declares its types", withStep({ type: "B" }), "steps[0].type", 'the bundle p declares no plug-in type "B" (declared: A)'],
    [
      "duplicate step ids",
      { bundles: { p: "p.js" }, steps: [{ id: ID, bundle: "p", type: "A", message: "Create" }, { id: ID.toUpperCase(), bundle: "p", type: "A", message: "Update" }] },
      "steps[1].id",
      `the step id ${ID} is used twice; give each step its own id or name`,
    ],
    ["a step id that is not a Guid", withStep({ id: "step-1" }), "steps[0].id", "must be a Guid"],
    ["a table column of an unknown type", { tables: { account: { columns: { name: "text" } } } }, "tables.account.columns.name", "must be one of string, number, boolean, datetime, guid, lookup, optionset, money, multiselect"],
    ["an alternate key over a column the table does not declare", { tables: { account: { columns: { name: "string" }, alternateKeys: { byNumber: ["accountnumber"] } } } }, "tables.account.alternateKeys.byNumber", "names accountnumber, which is not in columns"],
    ["a primary name column the table does not declare", { tables: { account: { columns: { name: "string" }, primaryNameAttribute: "title" } } }, "tables.account.primaryNameAttribute", "names title, which is not in columns"],
    ["an unknown key in a step", withStep({ colour: "red" }), "steps[0].colour", "is not a known key; known keys are id, name, bundle, type"],
    ["an unknown key at the root", { plugins: [] }, "(root).plugins", "is not a known key; known keys are $schema, bundles, steps"],
    ["an unknown key in an image", withStep({ message: "Update", stage: 40, images: [{ alias: "x", type: "pre", columns: ["name"] }] }), "steps[0].images[0].columns", "is not a known key; known keys are alias, type, attributes"],
    ["an unknown key in a bundle", { bundles: { p: { file: "p.js" } } }, "bundles.p.file", "is not a known key; known keys are path, types, allowedHosts"],
    ["an unknown key in a table", { tables: { account: { columns: {}, fields: {} } } }, "tables.account.fields", "is not a known key"],
    ["an unknown setting", { settings: { depth: 4 } }, "settings.depth", "is not a known key; known keys are maxDepth, traceLogSetting, maxAsyncAttempts"],
    ["a mode other than sync and async", withStep({ mode: "later" }), "steps[0].mode", 'must be "sync" or "async"'],
    ["an image type other than pre, post and both", withStep({ message: "Update", images: [{ alias: "x", type: "after" }] }), "steps[0].images[0].type", 'must be "pre", "post" or "both"'],
    ["an image alias used twice in a step", withStep({ message: "Update", stage: 40, images: [{ alias: "x", type: "pre" }, { alias: "x", type: "post" }] }), "steps[0].images[1].alias", "the alias x is used twice in this step"],
    ["a runAs user that is not a Guid", withStep({ runAs: "admin" }), "steps[0].runAs", "must be a Guid"],
    ["a message name that is not a name", withStep({ message: "Create Account" }), "steps[0].message", "is not a valid name"],
    ["a step without a bundle or service endpoint", { bundles: { p: "p.js" }, steps: [{ type: "A", message: "Create" }] }, "steps[0].bundle", "must be a non-empty string"],
    ["a step handled by both a plug-in and a service endpoint", withStep({ serviceEndpoint: "hook" }), "steps[0]", "either by a plug-in (bundle and type) or by a serviceEndpoint, not both"],
    ["a step on a service endpoint that is not declared", { steps: [{ serviceEndpoint: "hook", message: "Create" }] }, "steps[0].serviceEndpoint", 'no service endpoint named or with id "hook" is declared in serviceEndpoints'],
    ["a maxDepth out of range", { settings: { maxDepth: 0 } }, "settings.maxDepth", "must be an integer from 1 to 64"],
    ["an unknown trace log setting", { settings: { traceLogSetting: "Verbose" } }, "settings.traceLogSetting", 'must be "Off", "Exceptions" or "All"'],
    ["steps that are not an array", { steps: {} }, "steps", "must be an array of step registrations"],
    ["an image's attributes given as a string rather than an array", withStep({ message: "Update", stage: 40, images: [{ alias: "x", type: "pre", attributes: "name" }] }), "steps[0].images[0].attributes", 'must be an array of column names, such as ["name", "revenue"]'],
  ];

  for (const [rule, manifest, at, says] of rules) {
    it(`${rule} is refused at ${at}`, async () => {
      const error = await refusal(manifest);
      expect(error.code).toBe("MANIFEST_INVALID");
      expect(error.message).toContain(`manifest: ${at}: `);
      expect(error.message).toContain(says);
    });
  }

  it("a valid manifest with every kind of entry loads", async () => {
    const host = await createHost({
      manifest: {
        bundles: { p: { path: plugins.bundle, types: ["SetColumns"], allowedHosts: ["api.contoso.com"] } },
        steps: [
          { id: ID, name: "Pre-validate", bundle: "p", type: "SetColumns", message: "Create", entity: "account", stage: 10, rank: 2, unsecureConfig: "{}", secureConfig: "s", runAs: ID, isolation: "reuse" },
          { bundle: "p", type: "SetColumns", message: "Update", entity: "account", stage: 40, mode: "async", asyncAutoDelete: true, filteringAttributes: "name, telephone1", images: [{ alias: "both", type: "both", attributes: ["name"] }], enabled: false },
          { bundle: "p", type: "SetColumns", message: "Delete", stage: 20, images: [{ alias: "gone", type: "pre" }] },
        ],
        tables: { account: { primaryNameAttribute: "name", columns: { name: "string", accountnumber: "string" }, alternateKeys: { number: ["accountnumber"] } } },
        settings: { maxDepth: 8, traceLogSetting: "All", maxAsyncAttempts: 4 },
      },
      runJobs: false,
      runtimeOptions: fastRuntime,
    });
    try {
      const [first, second, third] = host.registry.steps;
      expect(first).toMatchObject({ id: ID, name: "Pre-validate", stage: 10, rank: 2, mode: "sync", secureConfig: "s", runAs: ID, isolation: "reuse" });
      expect(second).toMatchObject({ mode: "async", asyncAutoDelete: true, filteringAttributes: ["name", "telephone1"], images: [{ alias: "both", type: "both", attributes: ["name"] }], enabled: false });
      expect(third).toMatchObject({ entity: null, stage: 20 });
      expect(host.registry.settings).toEqual({ maxDepth: 8, traceLogSetting: "All", maxAsyncAttempts: 4 });
      // Steps without an id keep the same derived id from one load to the next.
      expect(second!.id).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await host.close();
    }
  });

  it("a bundle's types and its steps' types are checked against what the bundle exports when the host loads", async () => {
    const missingType = await refusal({ bundles: { p: { path: plugins.bundle, types: ["SetColumns", "NoSuchPlugin"] } } });
    expect(missingType).toMatchObject({ code: "MANIFEST_INVALID", message: expect.stringContaining('manifest: bundles.p.types[1]: the bundle') });
    expect(missingType.message).toContain('exports no "NoSuchPlugin" (it exports ');
    expect(missingType.message).toContain("SetColumns");
    const missingStep = await refusal({ bundles: { p: { path: plugins.bundle } }, steps: [{ bundle: "p", type: "SetColumn", message: "Create", entity: "account", stage: 20 }] });
    expect(missingStep).toMatchObject({ code: "MANIFEST_INVALID", message: expect.stringContaining('manifest: steps[0].type: the bundle p') });
    expect(missingStep.message).toContain('exports no "SetColumn"');
  });

  it("settings default to Dataverse's: maxDepth 8, trace logs of exceptions, 4 async attempts", async () => {
    const host = await createHost({ manifest: {}, runJobs: false, runtimeOptions: fastRuntime });
    try {
      expect(host.registry.settings).toEqual({ maxDepth: 8, traceLogSetting: "Exceptions", maxAsyncAttempts: 4 });
    } finally {
      await host.close();
    }
  });
});

describe("manifest files", () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-manifest-"));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("a manifest file that does not exist is MANIFEST_NOT_FOUND naming it", async () => {
    const file = path.join(dir, "missing.json");
    await expect(loadManifest(file)).rejects.toMatchObject({ code: "MANIFEST_NOT_FOUND", message: expect.stringContaining(file) });
    await expect(createHost({ manifest: file, runJobs: false, runtimeOptions: fastRuntime })).rejects.toMatchObject({ code: "MANIFEST_NOT_FOUND" });
  });

  it("a manifest file that is not JSON is MANIFEST_INVALID naming the file", async () => {
    const file = path.join(dir, "broken.json");
    writeFileSync(file, "{ bundles: ");
    await expect(loadManifest(file)).rejects.toMatchObject({ code: "MANIFEST_INVALID", message: expect.stringContaining(`${file} is not valid JSON`) });
  });

  it("a rule broken in a manifest file is reported with the file and the JSON path", async () => {
    const file = path.join(dir, "rules.json");
    writeFileSync(file, JSON.stringify(withStep({ stage: 20, mode: "async" })));
    await expect(loadManifest(file)).rejects.toMatchObject({ code: "MANIFEST_INVALID", message: expect.stringContaining(`${file}: steps[0].mode: asynchronous steps can only be registered at stage 40`) });
  });

  describe("a manifest file with relative bundle paths", () => {
    let host: PlugboxHost;

    beforeAll(async () => {
      copyFileSync(plugins.bundle, path.join(dir, "local.bundle.js"));
      const file = path.join(dir, "plugbox.json");
      writeFileSync(
        file,
        JSON.stringify({
          bundles: { local: "local.bundle.js" },
          steps: [
            { bundle: "local", type: "SetColumns", message: "Create", entity: "account", stage: 20, unsecureConfig: JSON.stringify({ description: "from the file's bundle" }) },
            // Two registrations alike in every way: both fire, as in Dataverse.
            { bundle: "local", type: "Append", message: "Create", entity: "twice", stage: 20, unsecureConfig: "!" },
            { bundle: "local", type: "Append", message: "Create", entity: "twice", stage: 20, unsecureConfig: "!" },
          ],
        }),
      );
      host = await createHost({ manifest: file, runJobs: false, runtimeOptions: fastRuntime });
    });

    afterAll(async () => {
      await host?.close();
    });

    it("resolves them against the manifest's directory, and the steps run", async () => {
      expect(host.registry.bundles.get("local")!.path).toBe(path.join(dir, "local.bundle.js"));
      const { response } = await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "A" }) } });
      expect((await host.store.getRecord("account", response.results.id as string))!.attributes.description).toBe("from the file's bundle");
    });

    it("two identical registrations each fire (the plug-in runs twice)", async () => {
      const { response } = await host.execute({ requestName: "Create", parameters: { Target: new Entity("twice", undefined, { name: "T" }) } });
      expect((await host.store.getRecord("twice", response.results.id as string))!.attributes.description).toBe("!!");
      expect(new Set(host.registry.steps.filter((s) => s.entity === "twice").map((s) => s.id)).size).toBe(2);
    });
  });
});

describe("steps registered in code", () => {
  let host: PlugboxHost;

  beforeAll(async () => {
    host = await createHost({ runJobs: false, runtimeOptions: fastRuntime });
    host.registry.addBundle("p", plugins.bundle);
  });

  afterAll(async () => {
    await host?.close();
  });

  const create = (entity: string, name = "X") => host.execute({ requestName: "Create", parameters: { Target: new Entity(entity, undefined, { name }) } });

  it("a step added with registry.addStep runs like a manifest step", async () => {
    host.registry.addStep({ bundle: "p", type: "SetColumns", message: "Create", entity: "coded", stage: 20, unsecureConfig: JSON.stringify({ description: "from code" }) });
    const { response } = await create("coded");
    expect((await host.store.getRecord("coded", response.results.id as string))!.attributes.description).toBe("from code");
  });

  it("steps added in code run in rank order, whatever order they were added in", async () => {
    host.registry.addStep({ bundle: "p", type: "Append", message: "Create", entity: "ranked", stage: 20, rank: 2, unsecureConfig: "b" });
    host.registry.addStep({ bundle: "p", type: "Append", message: "Create", entity: "ranked", stage: 20, rank: 1, unsecureConfig: "a" });
    const { response } = await create("ranked");
    expect((await host.store.getRecord("ranked", response.results.id as string))!.attributes.description).toBe("ab");
  });

  it("an asynchronous step added in code becomes a system job that runs", async () => {
    const registered = host.registry.addStep({ bundle: "p", type: "AsyncProbe", message: "Create", entity: "codedasync", stage: 40, mode: "async" });
    const { journal } = await create("codedasync", "Async");
    const [jobId] = journal.jobs;
    expect(await host.getJob(jobId!)).toMatchObject({ owningExtensionId: registered.id, stateCode: 0 });
    expect(await host.runJobs()).toEqual([{ id: jobId, outcome: "succeeded" }]);
    expect((await rows(host, "jobrun")).map((r) => r.attributes.operationid)).toEqual([jobId]);
  });

  it("a step without a table runs for every table", async () => {
    host.registry.addStep({ bundle: "p", type: "SetColumns", message: "Update", stage: 20, unsecureConfig: JSON.stringify({ touched: true }) });
    for (const entity of ["anyone", "anything"]) {
      const id = (await create(entity)).response.results.id as string;
      await host.execute({ requestName: "Update", parameters: { Target: new Entity(entity, id, { name: "changed" }) } });
      expect((await host.store.getRecord(entity, id))!.attributes.touched).toBe(true);
    }
  });

  it("a removed step no longer runs", async () => {
    const registered = host.registry.addStep({ bundle: "p", type: "SetColumns", message: "Create", entity: "removed", stage: 20, unsecureConfig: JSON.stringify({ description: "present" }) });
    expect(host.registry.removeStep(registered.id)).toBe(true);
    const { response } = await create("removed");
    expect((await host.store.getRecord("removed", response.results.id as string))!.attributes.description).toBeUndefined();
  });

  it("addStep applies the manifest's rules, naming the path and the fix", () => {
    expect(() => host.registry.addStep({ bundle: "p", type: "AsyncProbe", message: "Create", stage: 20, mode: "async" })).toThrow(/registerStep: steps\[0\]\.mode: asynchronous steps can only be registered at stage 40/);
    expect(() => host.registry.addStep({ bundle: "nope", type: "A", message: "Create" })).toThrow(/registerStep: steps\[0\]\.bundle: no bundle named "nope"/);
    expect(() => host.registry.addStep({ bundle: "p", type: "A", message: "Delete", stage: 40, images: [{ alias: "x", type: "post" }] })).toThrow(/a Delete has no post-image/);
  });

  it("addStep refuses a second step with the same id", () => {
    host.registry.addStep({ id: ID, bundle: "p", type: "SetColumns", message: "Create", entity: "once", stage: 20 });
    expect(() => host.registry.addStep({ id: ID, bundle: "p", type: "SetColumns", message: "Create", entity: "once", stage: 20 })).toThrow(new RegExp(`${ID}.*already registered`));
  });
});
