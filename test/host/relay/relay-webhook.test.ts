import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHost, type PlugboxHost, createSandboxRuntime, type SandboxRuntime } from "../../../dist/host/index.js";
import { ManualClock } from "../../../dist/host/testing/index.js";
import { Entity, parseRemoteExecutionContext } from "../../../dist/sdk/index.js";
import { sqliteOf } from "../../fixtures/pipeline/support.js";

interface Hit {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

let dir: string;
let runtime: SandboxRuntime;
let server: http.Server;
let url: string;
const hits: Hit[] = [];
/** How the webhook answers the next requests: a status and a body. */
let answers: Array<[number, string]> = [];

const ENDPOINT = "c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80";

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-relay-"));
  writeFileSync(
    path.join(dir, "poster.js"),
    `module.exports = { Post: class {
       constructor(config) { this.endpoint = config; }
       async execute(sp) {
         const c = sp.getService("IPluginExecutionContext");
         c.sharedVariables.postedBy = "Post";
         try {
           const reply = await sp.getService("IServiceEndpointNotificationService").execute({ logicalName: "serviceendpoint", id: this.endpoint }, c);
           sp.getService("ITracingService").trace("reply {0}", reply);
           if (c.stage === 40 && c.mode === 0) c.outputParameters.reply = reply;
         } catch (e) {
           const E = class extends Error { constructor(m) { super(m); this.name = "InvalidPluginExecutionError"; this.status = 0; } };
           throw new E("post failed: " + e.code + ": " + e.message);
         }
       } } };`,
  );
  server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      hits.push({ url: req.url!, headers: req.headers, body });
      const [status, text] = answers.shift() ?? [200, ""];
      res.statusCode = status;
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 1 });
  await runtime.ready;
});

afterAll(async () => {
  await runtime.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  hits.length = 0;
  answers = [];
});

function endpoint(extra: Record<string, unknown> = {}) {
  return { id: ENDPOINT, name: "hook", contract: "Webhook", url, authType: "HttpHeader", authValue: { "x-api-key": "env:PLUGBOX_TEST_HOOK_KEY" }, ...extra };
}

const BACKOFF = 1_000;
const clock = new ManualClock();

async function hostWith(steps: Array<Record<string, unknown>>, endpointExtra: Record<string, unknown> = {}, settings: Record<string, unknown> = {}): Promise<PlugboxHost> {
  return createHost({
    clock,
    manifest: {
      bundles: { p: { path: path.join(dir, "poster.js") } },
      serviceEndpoints: [endpoint(endpointExtra)],
      steps: steps.map((s) => ({ bundle: "p", type: "Post", message: "Create", entity: "account", unsecureConfig: ENDPOINT, ...s })),
      settings,
    },
    runtime,
    runJobs: false,
    jobs: { backoffBaseMs: BACKOFF },
    secrets: { env: { PLUGBOX_TEST_HOOK_KEY: "s3cret" } },
    organizationUrl: "https://contoso.crm.example.com",
  });
}

const create = (host: PlugboxHost, name = "Contoso") => host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name }) } });

describe("relay: webhooks", () => {
  it("a plug-in's post reaches the webhook as Dataverse's JSON with its headers, and the webhook's reply comes back to the plug-in", async () => {
    const host = await hostWith([{ stage: 40 }]);
    answers = [[200, "thanks"]];
    const { response } = await create(host);
    expect(response.results.reply).toBe("thanks");
    expect(hits).toHaveLength(1);
    const [hit] = hits;
    expect(hit!.headers).toMatchObject({
      "content-type": "application/json",
      "x-api-key": "s3cret",
      "x-ms-dynamics-organization": "contoso.crm.example.com",
      "x-ms-dynamics-entity-name": "account",
      "x-ms-dynamics-request-name": "create",
    });
    expect(hit!.headers["x-ms-dynamics-msg-size-exceeded"]).toBeUndefined();
    const context = parseRemoteExecutionContext(hit!.body);
    expect(context).toMatchObject({ messageName: "Create", primaryEntityName: "account", stage: 40, primaryEntityId: response.results.id });
    expect(context.sharedVariables.postedBy).toBe("Post");
    expect((context.inputParameters.Target as Entity).attributes.name).toBe("Contoso");
    expect(hit!.headers["x-ms-correlation-request-id"]).toBe(context.correlationId);
    await host.close();
  });

  it("WebhookKey and HttpQueryString put their secrets in the query string", async () => {
    const key = await hostWith([{ stage: 40 }], { authType: "WebhookKey", authValue: "env:PLUGBOX_TEST_HOOK_KEY" });
    await create(key);
    expect(hits[0]!.url).toBe("/hook?code=s3cret");
    await key.close();
    const query = await hostWith([{ stage: 40 }], { authType: "HttpQueryString", authValue: { token: "env:PLUGBOX_TEST_HOOK_KEY" } });
    await create(query);
    expect(hits[1]!.url).toBe("/hook?token=s3cret");
    await query.close();
  });

  it("from a synchronous step a failed post throws into the plug-in and rolls the request back; 502/503/504 get exactly one more attempt", async () => {
    const host = await hostWith([{ stage: 40 }]);
    answers = [[503, ""], [503, ""]];
    const error = await create(host).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "PIPELINE_STEP_FAILED", message: expect.stringContaining("post failed: RELAY_UNREACHABLE") });
    expect(hits).toHaveLength(2);
    expect((await host.store.allRecords())).toEqual([]);
    answers = [[500, ""]];
    await expect(create(host)).rejects.toMatchObject({ message: expect.stringContaining("RELAY_REJECTED") });
    expect(hits).toHaveLength(3);
    await host.close();
  });

  it("from an asynchronous step a failed post is retried as a system job, re-running the plug-in, until it is delivered", async () => {
    const host = await hostWith([{ stage: 40, mode: "async" }]);
    const jobId = (await create(host)).journal.jobs[0]!;
    answers = [[500, ""], [500, ""]]; // a non-retryable webhook status still fails the post: RELAY_REJECTED ends the job
    expect((await host.runJobs()).map((o) => o.outcome)).toEqual(["failed"]);
    await host.retryJob(jobId);
    server.closeAllConnections();
    answers = [[503, ""], [503, ""], [200, "ok"]];
    const outcomes: string[] = [];
    for (const o of await host.runJobs()) outcomes.push(o.outcome);
    await clock.advance(BACKOFF);
    for (const o of await host.runJobs()) outcomes.push(o.outcome);
    expect(outcomes).toEqual(["retrying", "succeeded"]);
    expect(await host.getJob(jobId)).toMatchObject({ statusCode: 30 });
    const posted = parseRemoteExecutionContext(hits.at(-1)!.body);
    expect(posted).toMatchObject({ mode: 1, operationId: jobId });
    await host.close();
  });

  it("a synchronous posting step posts during the request and changes nothing in it: the Create at stages 20 and 40 still creates its record and returns its id", async () => {
    const host = await createHost({
      manifest: {
        serviceEndpoints: [endpoint()],
        steps: [20, 40].map((stage) => ({ serviceEndpoint: "hook", message: "Create", entity: "account", stage })),
      },
      runtime,
      runJobs: false,
      secrets: { env: { PLUGBOX_TEST_HOOK_KEY: "s3cret" } },
    });
    try {
      const { response } = await create(host, "Posted in sync");
      const id = response.results.id as string;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(hits.map((h) => parseRemoteExecutionContext(h.body)).map((c) => [c.stage, c.mode])).toEqual([[20, 0], [40, 0]]);
      expect(parseRemoteExecutionContext(hits[1]!.body).outputParameters.id).toBe(id);
      expect((await host.store.getRecord("account", id))?.attributes).toMatchObject({ name: "Posted in sync" });
    } finally {
      await host.close();
    }
  });

  it("outbox: a post from a synchronous step waits for the commit; a rolled-back request never posts", async () => {
    const host = await createHost({
      manifest: {
        bundles: { p: { path: path.join(dir, "poster.js") } },
        serviceEndpoints: [endpoint({ outbox: true })],
        steps: [
          { bundle: "p", type: "Post", message: "Create", entity: "account", stage: 20, unsecureConfig: ENDPOINT },
          { bundle: "p", type: "Post", message: "Update", entity: "account", stage: 20, unsecureConfig: ENDPOINT },
        ],
      },
      runtime,
      runJobs: false,
      secrets: { env: { PLUGBOX_TEST_HOOK_KEY: "s3cret" } },
    });
    const { response } = await create(host);
    expect(hits).toHaveLength(0);
    await host.runJobs();
    expect(hits).toHaveLength(1);
    expect(parseRemoteExecutionContext(hits[0]!.body).primaryEntityName).toBe("account");
    // The post was serialized when it was queued, and sent exactly so.
    const held = sqliteOf(host).db.prepare("SELECT data, post FROM system_jobs WHERE owning_extension_id = ?").get(`serviceendpoint:${ENDPOINT}`) as { data: string; post: string };
    expect(hits[0]!.body).toBe(held.post);
    expect(JSON.parse(held.data)).toMatchObject({ $type: "SerializedContext", format: "json", fields: { messageName: "Create", primaryEntityName: "account" } });
    // An Update of a record that does not exist fails after its stage-20 post was queued: nothing is sent.
    await expect(host.execute({ requestName: "Update", parameters: { Target: new Entity("account", "00000000-0000-0000-0000-0000000000aa", { name: "x" }) } })).rejects.toBeDefined();
    await host.runJobs();
    expect(hits).toHaveLength(1);
    expect(response.results.id).toBeDefined();
    await host.close();
  });

  it("size: past 256 KB the webhook gets the context without ParentContext, InputParameters and images, and the size header", async () => {
    const host = await hostWith([{ stage: 40 }]);
    await create(host, "x".repeat(300_000));
    const hit = hits[0]!;
    expect(hit.headers["x-ms-dynamics-msg-size-exceeded"]).toBe("true");
    const context = parseRemoteExecutionContext(hit.body);
    expect(context.inputParameters).toEqual({});
    expect(context.parentContext).toBeNull();
    await host.close();
  });

  it("bad endpoints: an unknown id fails inside the plug-in; a missing secret, a literal secret, Binary XML and a misfit of contract and auth fail at start naming the endpoint", async () => {
    const host = await hostWith([{ stage: 40, unsecureConfig: "00000000-0000-0000-0000-0000000000bb" }]);
    await expect(create(host)).rejects.toMatchObject({ message: expect.stringContaining("RELAY_ENDPOINT_UNKNOWN") });
    await host.close();
    const start = (extra: Record<string, unknown>, env: Record<string, string> = {}) =>
      createHost({ manifest: { serviceEndpoints: [endpoint(extra)] }, runtime, runJobs: false, secrets: { env } });
    await expect(start({})).rejects.toMatchObject({ code: "RELAY_SECRET_MISSING", message: expect.stringContaining('serviceEndpoints "hook".authValue.x-api-key reads the environment variable PLUGBOX_TEST_HOOK_KEY') });
    await expect(start({ authValue: { "x-api-key": "hunter2" } })).rejects.toMatchObject({ code: "RELAY_CONFIG_INVALID", message: expect.stringContaining("env:NAME") });
    await expect(start({ contract: "Queue", messageFormat: "BinaryXml", path: "q", connectionString: "env:X" })).rejects.toMatchObject({ code: "RELAY_FORMAT_UNSUPPORTED" });
    await expect(start({ authType: "SASKey" })).rejects.toMatchObject({ code: "RELAY_CONFIG_INVALID", message: expect.stringContaining("a Webhook takes authType WebhookKey, HttpHeader or HttpQueryString") });
    await expect(start({ contract: "Queue", path: "q", connectionString: "Endpoint=nowhere;UseDevelopmentEmulator=true" })).rejects.toMatchObject({ code: "RELAY_CONFIG_INVALID", message: expect.stringContaining("malformed") });
    await expect(start({ contract: "Fax" })).rejects.toMatchObject({ code: "RELAY_CONFIG_INVALID", message: expect.stringContaining('serviceEndpoints "hook".contract must be one of OneWay (1), Queue (2), Rest (3), TwoWay (4), Topic (5), PersistentQueue (6), EventHub (7), Webhook (8); got "Fax"') });
    await expect(start({ timeoutMs: 0 })).rejects.toMatchObject({ code: "RELAY_CONFIG_INVALID", message: expect.stringContaining('serviceEndpoints "hook".timeoutMs must be a positive integer; got 0') });
    await expect(start({ retries: 3 })).rejects.toMatchObject({ code: "RELAY_CONFIG_INVALID", message: expect.stringContaining('serviceEndpoints "hook".retries is not a known key; known keys are id, name, description, contract') });
    await expect(createHost({ manifest: { serviceEndpoints: [endpoint({})] }, runtime, runJobs: false, secrets: { env: { PLUGBOX_TEST_HOOK_KEY: "k" } }, organizationUrl: "contoso" })).rejects.toMatchObject({
      code: "RELAY_CONFIG_INVALID",
      message: expect.stringContaining('the organization URL "contoso" is not a URL'),
    });
  });
});
