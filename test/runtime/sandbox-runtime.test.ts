/**
 * The sandbox runtime's API as a specification: what a plug-in sees (context, configuration,
 * services), what comes back (changes, trace, errors, stats), how bad input and bad options are
 * reported, and how `reuse` isolation and timers behave.
 */
import { build } from "esbuild";
import { describe, expect, test } from "vitest";
import { createSandboxRuntime, PluginExecutionError, SandboxError, sandboxLimitDefaults, type Bundle, type ExecutionReport, type PlugboxError, type SandboxLimits, type SandboxServices, type ServiceCall } from "../../dist/host/index.js";
import {
  ColumnSet,
  Entity,
  EntityCollection,
  EntityReference,
  Money,
  OptionSetValue,
  OptionSetValueCollection,
  QueryExpression,
  Relationship,
} from "../../dist/sdk/index.js";
import { bundle, context, recorder, useRuntime, wireRecorder } from "../helpers/runtime.js";

const ACCOUNT_ID = "0b9f4a1e-5a7d-4c1b-8f3e-2d6c9a7b1e01";
const PARENT_ID = "7c2e8d4f-1b3a-4e5c-9d7f-6a8b0c2e4f10";
const CONTACT_ID = "3e5f7a9b-2c4d-4e6f-8a0b-1c3d5e7f9a21";
const USER_ID = "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c52";
const TYPE = 'Symbol.for("plugbox.type")';

/**
 * A plug-in named Spec whose execute() body is `body`, with `sp`, `ctx` (the execution context),
 * `out` (its output parameters) and `trace` (the tracing service) in scope. Module-level code goes
 * in `prelude`; class members (a constructor, fields) in `members`.
 */
function plugin(body: string, options: { prelude?: string; members?: string } = {}): Bundle {
  return bundle(`${options.prelude ?? ""}
module.exports = {
  Spec: class {
    ${options.members ?? ""}
    async execute(sp) {
      const ctx = sp.getService("IPluginExecutionContext");
      const out = ctx.outputParameters;
      const trace = sp.getService("ITracingService");
      ${body}
    }
  }
};`);
}


function outputsOf(report: ExecutionReport): Record<string, unknown> {
  if (!report.ok) throw new Error(`expected the execution to succeed; it failed with ${report.error.code}: ${report.error.message}`);
  return report.changes.outputParameters;
}

function errorOf(report: ExecutionReport): PlugboxError {
  if (report.ok) throw new Error(`expected the execution to fail; it succeeded with ${JSON.stringify(report.changes.outputParameters)}`);
  return report.error;
}

describe("sandbox runtime", () => {
  const runtime = useRuntime();
  const exec = (b: Bundle, overrides: { context?: Record<string, unknown>; limits?: Partial<SandboxLimits>; services?: SandboxServices; typeName?: string; isolation?: "fresh" | "reuse"; instanceKey?: string; unsecureConfig?: string | null; secureConfig?: string | null; signal?: AbortSignal } = {}) => {
    const { context: ctx, services, typeName, ...rest } = overrides;
    return runtime().execute({ bundle: b, typeName: typeName ?? "Spec", context: ctx ?? context(), ...rest }, services);
  };

  describe("context", () => {
    const target = () =>
      new Entity("account", ACCOUNT_ID, {
        name: "Contoso",
        parentaccountid: new EntityReference("account", PARENT_ID, "Contoso Holdings"),
        industrycode: new OptionSetValue(7),
        revenue: new Money(1234.5),
        foundedon: new Date("2001-02-03T04:05:06.000Z"),
        categories: new OptionSetValueCollection([1, 3]),
        employees: 42,
        active: true,
        fax: null,
      });

    test("context: the plug-in reads its message and a Target entity whose typed attributes are decoded from their $type tags", async () => {
      const report = await exec(
        plugin(`
          const t = ctx.inputParameters.Target;
          const parent = t.get("parentaccountid");
          out.read = JSON.stringify({
            message: ctx.messageName, entity: ctx.primaryEntityName, stage: ctx.stage, depth: ctx.depth,
            type: t[${TYPE}], logicalName: t.logicalName, id: t.id, name: t.get("name"),
            contains: [t.contains("name"), t.contains("missing")],
            parent: [parent[${TYPE}], parent.logicalName, parent.id, parent.name],
            industry: [t.get("industrycode")[${TYPE}], t.get("industrycode").value],
            revenue: [t.get("revenue")[${TYPE}], t.get("revenue").value],
            founded: [t.get("foundedon") instanceof Date, t.get("foundedon").toISOString()],
            categories: [t.get("categories")[${TYPE}], t.get("categories").values],
            plain: [t.get("employees"), t.get("active"), t.get("fax")],
            reference: [t.toEntityReference()[${TYPE}], t.toEntityReference().id],
          });
        `),
        { context: context({ messageName: "Update", stage: 40, depth: 2, inputParameters: { Target: target() } }) },
      );
      expect(JSON.parse(outputsOf(report).read as string)).toEqual({
        message: "Update",
        entity: "account",
        stage: 40,
        depth: 2,
        type: "Entity",
        logicalName: "account",
        id: ACCOUNT_ID,
        name: "Contoso",
        contains: [true, false],
        parent: ["EntityReference", "account", PARENT_ID, "Contoso Holdings"],
        industry: ["OptionSetValue", 7],
        revenue: ["Money", 1234.5],
        founded: [true, "2001-02-03T04:05:06.000Z"],
        categories: ["OptionSetValueCollection", [1, 3]],
        plain: [42, true, null],
        reference: ["EntityReference", ACCOUNT_ID],
      });
    });

    test("context: plain JSON values with $type tags (as in a --target file) decode like SDK instances", async () => {
      const report = await exec(plugin(`const v = ctx.inputParameters; out.read = JSON.stringify([v.Amount[${TYPE}], v.Amount.value, v.When instanceof Date, v.Who[${TYPE}], v.Who.id]);`), {
        context: context({
          inputParameters: {
            Amount: { $type: "Money", value: 10 },
            When: { $type: "DateTime", value: "2024-01-31T00:00:00.000Z" },
            Who: { $type: "EntityReference", logicalName: "systemuser", id: USER_ID, name: null },
          },
        }),
      });
      expect(JSON.parse(outputsOf(report).read as string)).toEqual(["Money", 10, true, "EntityReference", USER_ID]);
    });

    test("changes: Target, output parameters and shared variables changed by the plug-in come back decoded in report.changes", async () => {
      const report = await exec(
        plugin(`
          const t = ctx.inputParameters.Target;
          t.set("description", "updated by plug-in");
          t.attributes.revenue.value = 2000;
          t.set("industrycode", { $type: "OptionSetValue", value: 9 });
          t.set("lastcheckedon", new Date("2024-05-06T07:08:09.000Z"));
          delete t.attributes.fax;
          out.accountId = t.id;
          out.owner = { $type: "EntityReference", logicalName: "systemuser", id: "${USER_ID}", name: "Owner" };
          ctx.sharedVariables.validated = true;
          ctx.sharedVariables.count = ctx.sharedVariables.count + 1;
          ctx.messageName = "Tampered";
        `),
        { context: context({ inputParameters: { Target: target() }, sharedVariables: { count: 1, fromEarlierStep: "kept" } }) },
      );
      if (!report.ok) throw new Error(report.error.message);
      const { changes } = report;
      expect(Object.keys(changes).sort()).toEqual(["inputParameters", "outputParameters", "sharedVariables"]);
      const changed = changes.inputParameters.Target as Entity;
      expect(changed).toBeInstanceOf(Entity);
      expect(changed.logicalName).toBe("account");
      expect(changed.id).toBe(ACCOUNT_ID);
      expect(changed.get("description")).toBe("updated by plug-in");
      expect(changed.get("revenue")).toBeInstanceOf(Money);
      expect(changed.get<Money>("revenue")!.value).toBe(2000);
      expect(changed.get("industrycode")).toBeInstanceOf(OptionSetValue);
      expect(changed.get<OptionSetValue>("industrycode")!.value).toBe(9);
      expect(changed.get("parentaccountid")).toBeInstanceOf(EntityReference);
      expect(changed.get<EntityReference>("parentaccountid")!.name).toBe("Contoso Holdings");
      expect(changed.get("lastcheckedon")).toEqual(new Date("2024-05-06T07:08:09.000Z"));
      expect(changed.get("foundedon")).toEqual(new Date("2001-02-03T04:05:06.000Z"));
      expect(changed.contains("fax")).toBe(false);
      expect(changes.outputParameters.accountId).toBe(ACCOUNT_ID);
      expect(changes.outputParameters.owner).toBeInstanceOf(EntityReference);
      expect((changes.outputParameters.owner as EntityReference).id).toBe(USER_ID);
      expect(changes.sharedVariables).toEqual({ count: 2, fromEarlierStep: "kept", validated: true });
    });

    test("changes: an output value with no JSON form fails with PLUGIN_RESULT_INVALID naming its path", async () => {
      const report = await exec(plugin(`out.callback = () => 1;`));
      const error = errorOf(report);
      expect(error.code).toBe("PLUGIN_RESULT_INVALID");
      expect(error.message).toContain("outputParameters.callback");
    });

    test("changes: replacing outputParameters with a non-object fails with PLUGIN_RESULT_INVALID", async () => {
      const report = await exec(plugin(`ctx.outputParameters = [1, 2];`));
      const error = errorOf(report);
      expect(error.code).toBe("PLUGIN_RESULT_INVALID");
      expect(error.message).toContain("outputParameters");
    });

    test("context: a context the host cannot encode is rejected with OPTIONS_INVALID before it reaches a worker", async () => {
      await expect(exec(plugin(`out.x = 1;`), { context: context({ inputParameters: { bad: () => 1 } }) })).rejects.toMatchObject({ code: "OPTIONS_INVALID" });
    });
  });

  describe("tracing", () => {
    test("tracing: {0} placeholders, %s/%d formats, extra arguments and console lines are written to report.trace in order", async () => {
      const report = await exec(
        plugin(`
          trace.trace("Hello {0}, you are {1}", "Ada", 36);
          trace.trace("{1} before {0}", "first", "second");
          trace.trace("{0} of {2}", "a");
          trace.trace("%s has %d items (%i whole)", "cart", 3, 2.7);
          trace.trace("100%% sure: %s", "yes");
          trace.trace("no placeholders", "extra", 1);
          trace.trace("object {0}, date {1}", { a: [1, 2] }, new Date("2024-01-02T03:04:05.000Z"));
          trace.trace("entity {0}", ctx.inputParameters.Target);
          console.log("log %s", "line");
          console.warn("careful");
          console.error("bad", 42);
        `),
        { context: context({ inputParameters: { Target: new EntityReference("account", ACCOUNT_ID) } }) },
      );
      outputsOf(report);
      expect(report.trace.split("\n")).toEqual([
        "Hello Ada, you are 36",
        "second before first",
        "a of {2}",
        "cart has 3 items (2 whole)",
        "100% sure: yes",
        "no placeholders extra 1",
        'object {"a":[1,2]}, date 2024-01-02T03:04:05.000Z',
        `entity {"$type":"EntityReference","logicalName":"account","id":"${ACCOUNT_ID}","name":null,"keyAttributes":{}}`,
        "log line",
        "warn: careful",
        "error: bad 42",
      ]);
    });

    test("tracing: the trace is kept when the plug-in fails", async () => {
      const report = await exec(plugin(`trace.trace("step {0}", 1); trace.trace("step {0}", 2); throw new Error("after tracing");`));
      expect(errorOf(report).code).toBe("PLUGIN_UNEXPECTED_ERROR");
      expect(report.trace).toBe("step 1\nstep 2");
    });

    test("tracing: the trace is kept when the plug-in is stopped by a limit", async () => {
      const report = await exec(plugin(`trace.trace("before the loop"); for (;;) {}`), { limits: { cpuTimeMs: 200, wallTimeMs: 1_500 } });
      expect(["SANDBOX_CPU_LIMIT", "SANDBOX_TIMEOUT"]).toContain(errorOf(report).code);
      expect(report.trace).toBe("before the loop");
    });
  });

  describe("configuration and services", () => {
    test("configuration: the constructor receives the step's unsecure and secure configuration", async () => {
      const configured = plugin(`out.config = JSON.stringify([this.unsecure, this.secure]);`, { members: `constructor(unsecure, secure) { this.unsecure = unsecure; this.secure = secure; }` });
      const given = await exec(configured, { unsecureConfig: "<settings mode='strict'/>", secureConfig: "api-key-123" });
      expect(JSON.parse(outputsOf(given).config as string)).toEqual(["<settings mode='strict'/>", "api-key-123"]);
      const absent = await exec(configured);
      expect(JSON.parse(outputsOf(absent).config as string)).toEqual([null, null]);
    });

    test("getService: the five services answer by name (and by a type's name), and an unknown name throws a TypeError listing them", async () => {
      const report = await exec(
        plugin(`
          const names = ["IPluginExecutionContext", "IExecutionContext", "ITracingService", "IOrganizationServiceFactory", "IServiceEndpointNotificationService", "IWebClient"];
          out.kinds = JSON.stringify(names.map((n) => [n, typeof sp.getService(n)]));
          out.same = sp.getService("IExecutionContext") === ctx && sp.getService(class ITracingService {}) === trace;
          out.members = JSON.stringify([
            typeof trace.trace,
            typeof sp.getService("IOrganizationServiceFactory").createOrganizationService,
            typeof sp.getService("IServiceEndpointNotificationService").execute,
            typeof sp.getService("IWebClient").fetch,
          ]);
          try { sp.getService("IFileSystem"); out.unknown = "returned"; } catch (e) { out.unknown = e.name + ": " + e.message; }
        `),
      );
      const out = outputsOf(report);
      expect(JSON.parse(out.kinds as string)).toEqual([
        ["IPluginExecutionContext", "object"],
        ["IExecutionContext", "object"],
        ["ITracingService", "object"],
        ["IOrganizationServiceFactory", "object"],
        ["IServiceEndpointNotificationService", "object"],
        ["IWebClient", "object"],
      ]);
      expect(out.same).toBe(true);
      expect(JSON.parse(out.members as string)).toEqual(["function", "function", "function", "function"]);
      expect(out.unknown).toMatch(/^TypeError: getService: unknown service "IFileSystem"; available: /);
      for (const name of ["IPluginExecutionContext", "ITracingService", "IOrganizationServiceFactory", "IServiceEndpointNotificationService", "IWebClient"]) {
        expect(out.unknown).toContain(name);
      }
    });

    test("organization service: every method reaches the handler as execute(request) with the request it stands for, decoded, and the user (null for SYSTEM, else the guid)", async () => {
      const services = wireRecorder((call) => {
        const { requestName } = call.args[0] as { requestName: string };
        switch (requestName) {
          case "Create":
            return { responseName: requestName, results: { id: CONTACT_ID } };
          case "Retrieve":
            return { responseName: requestName, results: { Entity: new Entity("account", ACCOUNT_ID, { name: "Contoso", revenue: new Money(99.5), primarycontactid: new EntityReference("contact", CONTACT_ID) }) } };
          case "RetrieveMultiple":
            return { responseName: requestName, results: { EntityCollection: new EntityCollection([new Entity("contact", CONTACT_ID, { fullname: "Ada" })], "contact") } };
          case "WhoAmI":
            return { responseName: requestName, results: { UserId: USER_ID } };
          default:
            return { responseName: requestName, results: {} };
        }
      });
      const report = await exec(
        plugin(`
          const factory = sp.getService("IOrganizationServiceFactory");
          const system = factory.createOrganizationService(null);
          const asUser = factory.createOrganizationService("${USER_ID}");
          const implicit = factory.createOrganizationService();
          const account = await system.retrieve("account", "${ACCOUNT_ID}", { $type: "ColumnSet", allColumns: false, columns: ["name", "revenue"] });
          out.account = JSON.stringify([account[${TYPE}], account.get("name"), account.get("revenue")[${TYPE}], account.get("revenue").value, account.get("primarycontactid")[${TYPE}]]);
          out.created = await asUser.create({ $type: "Entity", logicalName: "contact", id: "00000000-0000-0000-0000-000000000000", attributes: { lastname: "Lovelace", parentcustomerid: account.toEntityReference() } });
          account.set("name", "Contoso Ltd");
          out.updated = String(await asUser.update(account));
          out.deleted = String(await implicit.delete("contact", "${CONTACT_ID}"));
          await system.associate("account", "${ACCOUNT_ID}", { $type: "Relationship", schemaName: "account_contacts", primaryEntityRole: null }, [{ $type: "EntityReference", logicalName: "contact", id: "${CONTACT_ID}", name: null }]);
          await system.disassociate("account", "${ACCOUNT_ID}", { $type: "Relationship", schemaName: "account_contacts", primaryEntityRole: null }, []);
          const found = await system.retrieveMultiple({ $type: "QueryExpression", entityName: "contact", columnSet: { $type: "ColumnSet", allColumns: true, columns: [] } });
          out.found = JSON.stringify([found[${TYPE}], found.entities.length, found.entities[0][${TYPE}], found.entities[0].get("fullname"), found.entityName]);
          const who = await asUser.execute({ requestName: "WhoAmI", parameters: {} });
          out.who = who.results.UserId;
        `),
        { services },
      );
      const out = outputsOf(report);
      expect(JSON.parse(out.account as string)).toEqual(["Entity", "Contoso", "Money", 99.5, "EntityReference"]);
      expect(out.created).toBe(CONTACT_ID);
      expect(out.updated).toBe("undefined");
      expect(out.deleted).toBe("undefined");
      expect(JSON.parse(out.found as string)).toEqual(["EntityCollection", 1, "Entity", "Ada", "contact"]);
      expect(out.who).toBe(USER_ID);
      expect(report.stats.hostCalls).toBe(8);

      const calls = services.calls;
      expect(calls.map((c) => [c.service, c.op, (c.args[0] as { requestName: string }).requestName, c.userId])).toEqual([
        ["organization", "execute", "Retrieve", null],
        ["organization", "execute", "Create", USER_ID],
        ["organization", "execute", "Update", USER_ID],
        ["organization", "execute", "Delete", null],
        ["organization", "execute", "Associate", null],
        ["organization", "execute", "Disassociate", null],
        ["organization", "execute", "RetrieveMultiple", null],
        ["organization", "execute", "WhoAmI", USER_ID],
      ]);
      expect(calls.every((c) => c.args.length === 1)).toBe(true);
      const executionIds = new Set(calls.map((c) => c.executionId));
      expect(executionIds.size).toBe(1);
      expect(calls.every((c) => c.signal.aborted)).toBe(true); // the execution has ended

      const [retrieve, create, update, del, associate, disassociate, retrieveMultiple, execute] = calls.map((c) => (c.args[0] as { parameters: Record<string, unknown> }).parameters);
      expect(retrieve!.Target).toBeInstanceOf(EntityReference);
      expect(retrieve!.Target).toMatchObject({ logicalName: "account", id: ACCOUNT_ID });
      expect(retrieve!.ColumnSet).toBeInstanceOf(ColumnSet);
      expect((retrieve!.ColumnSet as ColumnSet).columns).toEqual(["name", "revenue"]);
      const created = create!.Target as Entity;
      expect(created).toBeInstanceOf(Entity);
      expect(created.get("lastname")).toBe("Lovelace");
      expect(created.get("parentcustomerid")).toBeInstanceOf(EntityReference);
      expect(created.get<EntityReference>("parentcustomerid")!.id).toBe(ACCOUNT_ID);
      const updated = update!.Target as Entity;
      expect(updated).toBeInstanceOf(Entity);
      expect(updated.get("name")).toBe("Contoso Ltd");
      expect(updated.get("revenue")).toBeInstanceOf(Money);
      expect(del!.Target).toBeInstanceOf(EntityReference);
      expect(del!.Target).toMatchObject({ logicalName: "contact", id: CONTACT_ID });
      expect(associate!.Target).toMatchObject({ logicalName: "account", id: ACCOUNT_ID });
      expect(associate!.Relationship).toBeInstanceOf(Relationship);
      expect((associate!.Relationship as Relationship).schemaName).toBe("account_contacts");
      expect((associate!.RelatedEntities as unknown[])[0]).toBeInstanceOf(EntityReference);
      expect(disassociate!.Target).toMatchObject({ logicalName: "account", id: ACCOUNT_ID });
      expect(disassociate!.RelatedEntities).toEqual([]);
      expect(retrieveMultiple!.Query).toBeInstanceOf(QueryExpression);
      expect((retrieveMultiple!.Query as QueryExpression).entityName).toBe("contact");
      expect(execute).toEqual({});
    });

    test("organization service: the handler's signal is live while the call is served", async () => {
      let sawSignal: boolean | undefined;
      const services = recorder((call) => {
        sawSignal = call.signal.aborted;
        return null;
      });
      outputsOf(await exec(plugin(`await sp.getService("IOrganizationServiceFactory").createOrganizationService(null).delete("account", "${ACCOUNT_ID}"); out.done = true;`), { services }));
      expect(sawSignal).toBe(false);
    });

    test("organization service: a failing call rejects inside the plug-in with the host's PlugboxError code, or SERVICE_FAILED", async () => {
      const services = recorder((call) => {
        if (call.op === "retrieve") throw new SandboxError("SANDBOX_ISOLATION_VIOLATION", "account not found");
        throw new RangeError("internal detail");
      });
      const report = await exec(
        plugin(`
          const org = sp.getService("IOrganizationServiceFactory").createOrganizationService(null);
          const failures = [];
          for (const call of [() => org.retrieve("account", "${ACCOUNT_ID}", null), () => org.delete("account", "${ACCOUNT_ID}")]) {
            try { await call(); failures.push("resolved"); } catch (e) { failures.push([e.name, e.code, e.message]); }
          }
          out.failures = JSON.stringify(failures);
        `),
        { services },
      );
      expect(JSON.parse(outputsOf(report).failures as string)).toEqual([
        ["PlugboxServiceError", "SANDBOX_ISOLATION_VIOLATION", "account not found"],
        ["PlugboxServiceError", "SERVICE_FAILED", "the organization service failed"],
      ]);
    });

    test("notification service: execute() reaches the handler with the endpoint reference and the context", async () => {
      const services = recorder(() => "posted-message-id");
      const report = await exec(
        plugin(`
          const notify = sp.getService("IServiceEndpointNotificationService");
          out.byId = await notify.execute("${PARENT_ID}");
          out.byRef = await notify.execute({ logicalName: "serviceendpoint", id: "${CONTACT_ID}" }, { custom: true });
        `),
        { services, context: context({ messageName: "Create", primaryEntityName: "contact" }) },
      );
      expect(outputsOf(report)).toMatchObject({ byId: "posted-message-id", byRef: "posted-message-id" });
      expect(services.calls.map((c) => [c.service, c.op])).toEqual([
        ["notification", "execute"],
        ["notification", "execute"],
      ]);
      expect(services.calls[0]!.args[0]).toEqual({ logicalName: "serviceendpoint", id: PARENT_ID });
      expect(services.calls[0]!.args[1]).toMatchObject({ messageName: "Create", primaryEntityName: "contact" });
      expect(services.calls[1]!.args).toEqual([{ logicalName: "serviceendpoint", id: CONTACT_ID }, { custom: true }]);
    });

    test("web client: IWebClient.fetch and the global fetch send a request description and read the host's response", async () => {
      const body = Buffer.from(JSON.stringify({ greeting: "héllo" })).toString("base64");
      const services = recorder(() => ({
        status: 201,
        statusText: "Created",
        url: "https://api.example.com/items",
        redirected: false,
        headers: [["Content-Type", "application/json"], ["X-Trace", "a"], ["x-trace", "b"]],
        bodyBase64: body,
      }));
      const report = await exec(
        plugin(`
          const res = await sp.getService("IWebClient").fetch("https://api.example.com/items", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ n: 1 }) });
          out.status = [res.status, res.statusText, res.ok, res.url, res.headers.get("content-type"), res.headers.get("x-trace"), res.headers.has("missing")].join("|");
          out.json = (await res.json()).greeting;
          try { await res.text(); out.second = "read twice"; } catch (e) { out.second = e.name; }
          const again = await fetch("https://api.example.com/items?raw", { body: new Uint8Array([1, 2, 255]) });
          out.text = await again.text();
        `),
        { services },
      );
      const out = outputsOf(report);
      expect(out.status).toBe("201|Created|true|https://api.example.com/items|application/json|a, b|false");
      expect(out.json).toBe("héllo");
      expect(out.second).toBe("TypeError");
      expect(out.text).toBe(JSON.stringify({ greeting: "héllo" }));
      expect(services.calls.map((c) => [c.service, c.op])).toEqual([
        ["web", "fetch"],
        ["web", "fetch"],
      ]);
      expect(services.calls[0]!.args).toEqual([{ url: "https://api.example.com/items", method: "POST", headers: [["content-type", "application/json"]], bodyText: JSON.stringify({ n: 1 }) }]);
      expect(services.calls[1]!.args).toEqual([{ url: "https://api.example.com/items?raw", method: "GET", headers: [], bodyBase64: Buffer.from([1, 2, 255]).toString("base64") }]);
    });

    test("services: a runtime given no services handler refuses every call with SANDBOX_INTERNAL", async () => {
      const report = await exec(plugin(`try { await sp.getService("IOrganizationServiceFactory").createOrganizationService(null).retrieve("account", "${ACCOUNT_ID}", null); } catch (e) { out.code = e.code; out.message = e.message; }`));
      expect(outputsOf(report)).toMatchObject({ code: "SANDBOX_INTERNAL", message: "no organization service is configured in this host" });
    });
  });

  describe("plug-in failures", () => {
    test("failures: an InvalidPluginExecutionError-shaped throw gives PLUGIN_FAILED with its message, status and errorCode", async () => {
      const report = await exec(plugin(`const e = new Error("Credit limit exceeded"); e.name = "InvalidPluginExecutionError"; e.status = 2; e.errorCode = 123; throw e;`));
      const error = errorOf(report);
      expect(error).toBeInstanceOf(PluginExecutionError);
      expect(error).toMatchObject({ code: "PLUGIN_FAILED", message: "Credit limit exceeded", status: 2, errorCode: 123 });
    });

    test("failures: an error tagged as the SDK's InvalidPluginExecutionError gives PLUGIN_FAILED whatever its name", async () => {
      const report = await exec(plugin(`const e = new Error("tagged"); e[Symbol.for("plugbox.InvalidPluginExecutionError")] = true; e.status = 1; throw e;`));
      expect(errorOf(report)).toMatchObject({ code: "PLUGIN_FAILED", message: "tagged", status: 1, errorCode: -2147220891 });
    });

    test("failures: any other throw gives PLUGIN_UNEXPECTED_ERROR, named, with Dataverse's default status and errorCode", async () => {
      const report = await exec(plugin(`null.boom;`));
      const error = errorOf(report);
      expect(error).toBeInstanceOf(PluginExecutionError);
      expect(error).toMatchObject({ code: "PLUGIN_UNEXPECTED_ERROR", status: 0, errorCode: -2147220891 });
      expect(error.message).toMatch(/^TypeError: Cannot read properties of null/);
    });

    test("failures: a synchronous execute() that throws, and one that returns a rejected promise, both give PLUGIN_UNEXPECTED_ERROR", async () => {
      const sync = bundle(`module.exports = { Spec: class { execute() { throw new Error("sync failure"); } } };`);
      const rejected = bundle(`module.exports = { Spec: class { execute() { return Promise.reject(new Error("rejected failure")); } } };`);
      expect(errorOf(await exec(sync))).toMatchObject({ code: "PLUGIN_UNEXPECTED_ERROR", message: "sync failure" });
      expect(errorOf(await exec(rejected))).toMatchObject({ code: "PLUGIN_UNEXPECTED_ERROR", message: "rejected failure" });
    });

    test("failures: a synchronous execute() that returns a value succeeds with its changes", async () => {
      const sync = bundle(`module.exports = { Spec: class { execute(sp) { sp.getService("IPluginExecutionContext").outputParameters.sync = true; return 42; } } };`);
      expect(outputsOf(await exec(sync))).toEqual({ sync: true });
    });

    test("failures: the plug-in's stack comes back in error.pluginStack, naming its functions and the bundle file", async () => {
      const report = await exec(plugin(`validateTarget(ctx);`, { prelude: `function validateTarget(ctx) {\n  throw new Error("no target");\n}` }));
      const error = errorOf(report) as PluginExecutionError;
      expect(error.code).toBe("PLUGIN_UNEXPECTED_ERROR");
      expect(error.pluginStack).toMatch(/^Error: no target\n/);
      expect(error.pluginStack).toMatch(/at validateTarget \(test-plugin\.js:2:\d+\)/);
      expect(error.pluginStack).toMatch(/at Spec\.execute \(test-plugin\.js:\d+:\d+\)/);
    });

    test("failures: error.pluginStack is mapped to the author's sources through the bundle's inline source map", async () => {
      const source = [
        "export class Spec {", // 1
        "  async execute(sp: unknown): Promise<void> {", // 2
        "    const limit: number = 10;", // 3
        "    checkLimit(limit);", // 4
        "  }", // 5
        "}", // 6
        "function checkLimit(limit: number): void {", // 7
        "  throw new Error(`limit ${limit} exceeded`);", // 8
        "}", // 9
      ].join("\n");
      const built = await build({ stdin: { contents: source, sourcefile: "src/limits.ts", loader: "ts" }, format: "cjs", platform: "neutral", target: "es2022", sourcemap: "inline", write: false });
      const report = await exec(bundle(built.outputFiles[0]!.text, "limits.js"));
      const error = errorOf(report) as PluginExecutionError;
      expect(error.message).toBe("limit 10 exceeded");
      expect(error.pluginStack).toMatch(/at checkLimit \(src\/limits\.ts:8:\d+\)/);
      expect(error.pluginStack).toMatch(/src\/limits\.ts:4:\d+/);
      expect(error.pluginStack).not.toContain("limits.js:");
    });
  });

  describe("bad bundles and types", () => {
    test("bundles: an unknown export gives PLUGIN_TYPE_NOT_FOUND, and the message lists the exports", async () => {
      const report = await exec(bundle(`module.exports = { Alpha: class { async execute() {} }, Beta: class { async execute() {} } };`), { typeName: "Gamma" });
      const error = errorOf(report);
      expect(error.code).toBe("PLUGIN_TYPE_NOT_FOUND");
      expect(error.message).toContain('"Gamma"');
      expect(error.message).toContain("Alpha, Beta");
    });

    test("bundles: an export that is not a class gives PLUGIN_TYPE_INVALID", async () => {
      const report = await exec(bundle(`module.exports = { Spec: { execute() {} } };`));
      expect(errorOf(report).code).toBe("PLUGIN_TYPE_INVALID");
    });

    test("bundles: a class with no execute method gives PLUGIN_TYPE_INVALID", async () => {
      const report = await exec(bundle(`module.exports = { Spec: class { run() {} } };`));
      const error = errorOf(report);
      expect(error.code).toBe("PLUGIN_TYPE_INVALID");
      expect(error.message).toContain("execute");
    });

    test("bundles: a throwing constructor gives PLUGIN_CONSTRUCTOR_FAILED with its message", async () => {
      const report = await exec(bundle(`module.exports = { Spec: class { constructor(unsecure) { throw new Error("bad config: " + unsecure); } async execute() {} } };`), { unsecureConfig: "{oops" });
      const error = errorOf(report);
      expect(error.code).toBe("PLUGIN_CONSTRUCTOR_FAILED");
      expect(error.message).toContain("bad config: {oops");
    });

    test("bundles: a bundle with a syntax error gives BUNDLE_INVALID", async () => {
      const report = await exec(bundle(`module.exports = { Spec: class { async execute() { return ; } }`));
      const error = errorOf(report);
      expect(error.code).toBe("BUNDLE_INVALID");
      expect(error.message).toContain("test-plugin.js");
    });

    test("bundles: a bundle that throws while it loads gives BUNDLE_INVALID with the thrown message", async () => {
      const report = await exec(bundle(`throw new Error("missing polyfill");\nmodule.exports = {};`));
      const error = errorOf(report);
      expect(error.code).toBe("BUNDLE_INVALID");
      expect(error.message).toContain("missing polyfill");
    });

    test("bundles: a bundle whose module.exports is not an object gives BUNDLE_INVALID", async () => {
      const report = await exec(bundle(`module.exports = null;`));
      expect(errorOf(report).code).toBe("BUNDLE_INVALID");
    });

    test("bundles: the type name \"default\" selects a class exported as module.exports itself", async () => {
      const report = await exec(bundle(`module.exports = class { async execute(sp) { sp.getService("IPluginExecutionContext").outputParameters.ran = "default"; } };`), { typeName: "default" });
      expect(outputsOf(report).ran).toBe("default");
    });
  });

  describe("limits and options", () => {
    const invalid: Array<[keyof SandboxLimits, unknown]> = [
      ["wallTimeMs", 0],
      ["cpuTimeMs", 1.5],
      ["memoryMb", 4],
      ["traceBytes", -1],
      ["maxHostCalls", "10"],
      ["maxConcurrentHostCalls", 0],
      ["maxHostCallBytes", 100],
      ["maxResultBytes", Number.POSITIVE_INFINITY],
    ];

    test("limits: the table of invalid values covers every limit field", () => {
      expect(invalid.map(([field]) => field).sort()).toEqual(Object.keys(sandboxLimitDefaults).sort());
    });

    // `async () => exec(...)` turns a synchronous throw into a rejection: these tests are about which values are
    // refused; how execute() reports misuse (a rejection, never a throw) has a test of its own below.
    test.each(invalid)("limits: an invalid limits.%s (%s) is rejected with OPTIONS_INVALID naming the path", async (field, value) => {
      const attempt = (async () => exec(plugin(`out.ran = true;`), { limits: { [field]: value } as Partial<SandboxLimits> }))();
      await expect(attempt).rejects.toMatchObject({ code: "OPTIONS_INVALID", message: expect.stringContaining(`limits.${field} must be an integer`) });
    });

    test("limits: an unknown limit is rejected with OPTIONS_INVALID naming it", async () => {
      const attempt = (async () => exec(plugin(`out.ran = true;`), { limits: { timeoutMs: 10 } as unknown as Partial<SandboxLimits> }))();
      await expect(attempt).rejects.toMatchObject({ code: "OPTIONS_INVALID", message: expect.stringContaining("limits.timeoutMs is not an option") });
    });

    test("execute: misuse is reported as a rejected promise, never a synchronous throw (invalid limits, like an unencodable context)", async () => {
      let thrown: unknown;
      let attempt: Promise<ExecutionReport> | undefined;
      try {
        attempt = exec(plugin(`out.ran = true;`), { limits: { wallTimeMs: 0 } });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeUndefined();
      await expect(attempt).rejects.toMatchObject({ code: "OPTIONS_INVALID", message: expect.stringContaining("limits.wallTimeMs") });
    });

    test("limits: the smallest valid values are accepted (traceBytes 0 keeps no trace, maxHostCalls 0 refuses every call)", async () => {
      const report = await exec(
        plugin(`trace.trace("dropped"); try { await sp.getService("IOrganizationServiceFactory").createOrganizationService(null).delete("a", "b"); } catch (e) { out.code = e.code; }`),
        { limits: { wallTimeMs: 60_000, cpuTimeMs: 60_000, memoryMb: 8, traceBytes: 0, maxHostCalls: 0, maxConcurrentHostCalls: 1, maxHostCallBytes: 1_024, maxResultBytes: 1_024 }, services: recorder() },
      );
      expect(errorOf(report).code).toBe("SANDBOX_HOST_CALL_LIMIT");
      expect(report.trace).toBe("");
    });

    test("runtime options: an invalid runtime option or default limit throws OPTIONS_INVALID naming the path", () => {
      expect(() => createSandboxRuntime({ workers: 0 })).toThrow(expect.objectContaining({ code: "OPTIONS_INVALID", message: expect.stringContaining("options.workers") }));
      expect(() => createSandboxRuntime({ limits: { memoryMb: 1 } })).toThrow(expect.objectContaining({ code: "OPTIONS_INVALID", message: expect.stringContaining("options.limits.memoryMb") }));
      expect(() => createSandboxRuntime({ sandboxes: 2 } as never)).toThrow(expect.objectContaining({ code: "OPTIONS_INVALID", message: expect.stringContaining("options.sandboxes is not an option") }));
    });
  });

  describe("reuse isolation", () => {
    const counter = plugin(
      `
        if (ctx.sharedVariables.fail) throw new Error("failing on purpose");
        executions++;
        out.state = JSON.stringify({ executions, constructed, instance: this.id });
      `,
      { prelude: `let executions = 0; let constructed = 0;`, members: `constructor() { constructed++; this.id = constructed; }` },
    );
    const runCounter = (instanceKey: string, sharedVariables: Record<string, unknown> = {}) =>
      exec(counter, { isolation: "reuse", instanceKey, context: context({ sharedVariables }) });
    const state = (report: ExecutionReport) => JSON.parse(outputsOf(report).state as string) as { executions: number; constructed: number; instance: number };

    test("reuse: executions with the same instanceKey share module state and one instance; stats.isolateReused is true from the second", async () => {
      const first = await runCounter("step-1");
      const second = await runCounter("step-1");
      expect(state(first)).toEqual({ executions: 1, constructed: 1, instance: 1 });
      expect(first.stats.isolateReused).toBe(false);
      expect(state(second)).toEqual({ executions: 2, constructed: 1, instance: 1 });
      expect(second.stats.isolateReused).toBe(true);
      const otherKey = await runCounter("step-2");
      expect(state(otherKey)).toEqual({ executions: 1, constructed: 1, instance: 1 });
      expect(otherKey.stats.isolateReused).toBe(false);
    });

    test("reuse: a failed execution drops the instance, so the next one starts with fresh state", async () => {
      expect(state(await runCounter("step-fail"))).toMatchObject({ executions: 1 });
      expect(state(await runCounter("step-fail"))).toMatchObject({ executions: 2 });
      const failed = await runCounter("step-fail", { fail: true });
      expect(errorOf(failed)).toMatchObject({ code: "PLUGIN_UNEXPECTED_ERROR", message: "failing on purpose" });
      expect(failed.stats.isolateReused).toBe(true);
      const after = await runCounter("step-fail");
      expect(state(after)).toEqual({ executions: 1, constructed: 1, instance: 1 });
      expect(after.stats.isolateReused).toBe(false);
    });

    test("reuse: an instance stopped by a limit is dropped too", async () => {
      const spinner = plugin(`runs++; out.runs = runs; if (ctx.sharedVariables.spin) for (;;) {}`, { prelude: `let runs = 0;` });
      const go = (spin: boolean) => exec(spinner, { isolation: "reuse", instanceKey: "spin", context: context({ sharedVariables: { spin } }), limits: { cpuTimeMs: 200, wallTimeMs: 1_500 } });
      expect(outputsOf(await go(false)).runs).toBe(1);
      expect(["SANDBOX_CPU_LIMIT", "SANDBOX_TIMEOUT"]).toContain(errorOf(await go(true)).code);
      const after = await go(false);
      expect(outputsOf(after).runs).toBe(1);
      expect(after.stats.isolateReused).toBe(false);
    });

    test("fresh: every execution loads the bundle and constructs the plug-in anew", async () => {
      const first = await exec(counter, { isolation: "fresh" });
      const second = await exec(counter);
      expect(state(first)).toEqual({ executions: 1, constructed: 1, instance: 1 });
      expect(state(second)).toEqual({ executions: 1, constructed: 1, instance: 1 });
      expect(second.stats.isolateReused).toBe(false);
    });
  });

  describe("timers and stats", () => {
    test("timers: setTimeout (with arguments), setInterval, clearTimeout and queueMicrotask run inside the execution", async () => {
      const report = await exec(
        plugin(`
          const order = [];
          queueMicrotask(() => order.push("microtask"));
          const cancelled = setTimeout(() => order.push("cancelled"), 1);
          clearTimeout(cancelled);
          out.arg = await new Promise((resolve) => setTimeout(resolve, 5, "timeout argument"));
          await new Promise((resolve) => {
            let ticks = 0;
            const id = setInterval(() => { order.push("tick " + ++ticks); if (ticks === 3) { clearInterval(id); resolve(); } }, 1);
          });
          out.order = order.join(",");
        `),
      );
      expect(outputsOf(report)).toEqual({ arg: "timeout argument", order: "microtask,tick 1,tick 2,tick 3" });
    });

    test("stats: a report counts service calls and heap, and a healthy run records no violations", async () => {
      const report = await exec(
        plugin(`const org = sp.getService("IOrganizationServiceFactory").createOrganizationService(null); await org.delete("a", "1"); await org.delete("a", "2"); out.done = true;`),
        { services: recorder() },
      );
      outputsOf(report);
      expect(report.stats.hostCalls).toBe(2);
      expect(report.stats.heapUsedBytes).toBeGreaterThan(0);
      expect(report.stats.cpuMs).toBeGreaterThanOrEqual(0);
      expect(report.stats.isolateReused).toBe(false);
      expect(report.violations).toEqual([]);
    });
  });

  describe("abort", () => {
    test("abort: aborting the request's signal while a service call is pending ends the execution with SANDBOX_ABORTED", async () => {
      const controller = new AbortController();
      let entered!: () => void;
      const inCall = new Promise<void>((resolve) => (entered = resolve));
      const services: SandboxServices = {
        call: (call) =>
          new Promise((resolve) => {
            call.signal.addEventListener("abort", () => resolve(null));
            entered();
          }),
      };
      const pending = exec(plugin(`trace.trace("calling"); await sp.getService("IOrganizationServiceFactory").createOrganizationService(null).delete("a", "1"); out.never = true;`), {
        services,
        signal: controller.signal,
      });
      await inCall;
      controller.abort("user cancelled");
      const report = await pending;
      const error = errorOf(report);
      expect(error.code).toBe("SANDBOX_ABORTED");
      expect(error.message).toContain("user cancelled");
      expect(report.trace).toBe("calling");
      expect(outputsOf(await exec(plugin(`out.after = true;`)))).toEqual({ after: true });
    });

    test("abort: an already-aborted signal fails at once with SANDBOX_ABORTED", async () => {
      const report = await exec(plugin(`out.ran = true;`), { signal: AbortSignal.abort("too late") });
      expect(errorOf(report).code).toBe("SANDBOX_ABORTED");
    });
  });
});

describe("sandbox runtime: lifecycle", () => {
  test("lifecycle: runtime limits are the defaults of every execution, an execution's own limits override them, and a closed runtime refuses work", async () => {
    const runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 0, limits: { traceBytes: 16 } });
    try {
      await runtime.ready;
      expect(runtime.workerPids).toHaveLength(1);
      const tracer = plugin(`trace.trace("0123456789abcdefghijklmnopqrstuvwxyz");`);
      const byDefault = await runtime.execute({ bundle: tracer, typeName: "Spec", context: context() });
      expect(byDefault.trace).toBe("ghijklmnopqrstuvwxyz".slice(-16));
      const overridden = await runtime.execute({ bundle: tracer, typeName: "Spec", context: context(), limits: { traceBytes: 1_024 } });
      expect(overridden.trace).toBe("0123456789abcdefghijklmnopqrstuvwxyz");
    } finally {
      await runtime.close();
    }
    await expect(runtime.execute({ bundle: plugin(`out.x = 1;`), typeName: "Spec", context: context() })).rejects.toMatchObject({ code: "SANDBOX_CLOSED" });
    expect(runtime.workerPids).toEqual([]);
  });
});
