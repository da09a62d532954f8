import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, createHost, startServe, type PlugboxHost, type Serve } from "../../../dist/host/index.js";
import { repo } from "../../helpers/cli.js";

let dir: string;
let host: PlugboxHost;
let server: Serve;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-serve-"));
  cpSync(path.join(repo, "samples/pipeline"), dir, { recursive: true, filter: (src) => !/\.db|bundle\.js$/.test(src) });
  await buildBundle({ entry: path.join(repo, "samples/pipeline/plugins.ts"), outfile: path.join(dir, "accounts.bundle.js"), minify: false });
  host = await createHost({ manifest: path.join(dir, "plugbox.json"), db: ":memory:", runJobs: false, runtimeOptions: { workers: 1, prewarmIsolates: 1 } });
  server = await startServe({ host, port: 0 });
});

afterAll(async () => {
  await server?.close();
  await host?.close();
  rmSync(dir, { recursive: true, force: true });
});

const createAccount = (attributes: Record<string, unknown>) => ({ requestName: "Create", parameters: { Target: { $type: "Entity", logicalName: "account", attributes } } });

function post(pathname: string, body: unknown, contentType = "application/json"): Promise<Response> {
  return fetch(`${server.url}${pathname}`, { method: "POST", headers: { "Content-Type": contentType }, body: typeof body === "string" ? body : JSON.stringify(body) });
}

/** The samples of a Prometheus text exposition, by `name{labels}` as written. */
async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    expect(match, line).not.toBeNull();
    samples.set(match![1]!, Number(match![2]));
  }
  return samples;
}

async function expectError(res: Response, status: number, code: string, message: RegExp): Promise<void> {
  expect(res.status).toBe(status);
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.message).toMatch(message);
}

describe("plugbox serve's HTTP API", () => {
  it("POST /execute: runs a Create through the pipeline and answers the response and journal; the stage 20 plug-in's column is saved", async () => {
    const res = await post("/execute", createAccount({ name: "Contoso" }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { response: { responseName: string; results: { id: string } }; journal: { outcome: string; steps: Array<{ name: string; outcome: string }> } };
    expect(body.response.responseName).toBe("Create");
    expect(body.journal.steps).toEqual([expect.objectContaining({ name: "Number new accounts", outcome: "ok" })]);
    const record = (await host.records()).find((r) => r.id === body.response.results.id);
    expect(record?.attributes).toMatchObject({ name: "Contoso", accountnumber: expect.stringMatching(/^ACC-CON-/) });
  });

  it("POST /api/data/v9.2/accounts: creates an account from its columns, answering 204 with the OData-EntityId of the record", async () => {
    const res = await post("/api/data/v9.2/accounts", { name: "Fabrikam", revenue: 5000 });
    expect(res.status).toBe(204);
    const entityId = res.headers.get("odata-entityid");
    const id = new RegExp(`^${server.url}/api/data/v9\\.2/accounts\\(([0-9a-f-]{36})\\)$`).exec(entityId ?? "")?.[1];
    expect(id, entityId ?? "no OData-EntityId").toBeDefined();
    const record = (await host.records()).find((r) => r.id === id);
    expect(record?.attributes).toMatchObject({ name: "Fabrikam", accountnumber: expect.stringMatching(/^ACC-FAB-/), revenue: { $type: "Money", value: 5000 } });
  });

  it("GET /health: 200 with the host's health while it is ready", async () => {
    const res = await fetch(`${server.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ready", store: { status: "open" }, runtime: { workers: { wanted: 1 } } });
  });

  it("GET /metrics: Prometheus text whose counters grow with the requests served", async () => {
    const before = await scrape();
    expect(before.get('plugbox_sandbox_workers{status="wanted"}')).toBe(1);
    expect(before.get('plugbox_jobs{state="waiting_for_resources"}')).toBeGreaterThanOrEqual(0);
    await post("/execute", createAccount({ name: "Northwind" }));
    await post("/execute", createAccount({}));
    const after = await scrape();
    const grew = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    expect(grew('plugbox_requests_total{message="Create",outcome="ok"}')).toBe(1);
    expect(grew('plugbox_requests_total{message="Create",outcome="failed"}')).toBe(1);
    expect(grew('plugbox_executions_total{outcome="ok"}')).toBe(1);
    expect(grew('plugbox_executions_total{outcome="failed"}')).toBe(1);
    expect(grew("plugbox_request_duration_seconds_count")).toBe(2);
    expect(after.get('plugbox_request_duration_seconds_bucket{le="+Inf"}')).toBe(after.get("plugbox_request_duration_seconds_count"));
    // The async stage 40 step of each created account waits as a job (this host runs none in the background).
    expect(grew('plugbox_jobs{state="waiting_for_resources"}')).toBe(1);

    const ran = await host.runJobs();
    const runs = await scrape();
    expect(runs.get('plugbox_job_runs_total{outcome="succeeded"}')).toBe(ran.filter((job) => job.outcome === "succeeded").length);
    expect(runs.get('plugbox_jobs{state="succeeded"}')).toBe(ran.length);
    expect(runs.get('plugbox_jobs{state="waiting_for_resources"}')).toBe(0);
  });

  it("refuses bad requests with a typed error and the status of its family, and keeps serving after each", async () => {
    const deep = `${"[".repeat(100)}${"]".repeat(100)}`;
    await expectError(await post("/execute", "{ not json"), 400, "INPUT_INVALID_JSON", /request body is not valid JSON/);
    await expectError(await post("/execute", deep), 400, "INPUT_TOO_DEEP", /more than 64 levels/);
    await expectError(await post("/execute", { parameters: {} }), 400, "PIPELINE_INVALID_REQUEST", /requestName/);
    await expectError(await post("/execute", createAccount({ name: "x" }), "text/plain"), 415, "SERVE_UNSUPPORTED_MEDIA_TYPE", /application\/json/);
    const wrongMethod = await fetch(`${server.url}/execute`);
    expect(wrongMethod.headers.get("allow")).toBe("POST");
    await expectError(wrongMethod, 405, "SERVE_METHOD_NOT_ALLOWED", /use POST/);
    await expectError(await fetch(`${server.url}/nowhere`), 404, "SERVE_NOT_FOUND", /no endpoint at \/nowhere/);
    await expectError(await post("/api/data/v9.2/accounts%E0%A4%A", { name: "x" }), 404, "SERVE_NOT_FOUND", /not a valid URL path segment/);
    await expectError(await post("/api/data/v9.2/contacts", { lastname: "Doe" }), 404, "SERVE_NOT_FOUND", /entity set "contacts".*declares account \(entity set accounts\)/);
    await expectError(await post("/execute", { requestName: "Retrieve", parameters: { Target: { $type: "EntityReference", logicalName: "account", id: "6d81597f-0f9f-e711-8122-000d3aa2331c" }, ColumnSet: { $type: "ColumnSet", allColumns: true } } }), 404, "ORG_NOT_FOUND", /./);

    const thrown = await post("/execute", createAccount({ name: "  " }));
    expect(thrown.status).toBe(422);
    const failure = (await thrown.json()) as { error: { code: string; message: string; innerCode: string }; journal: { outcome: string; steps: Array<{ outcome: string }> } };
    expect(failure.error).toMatchObject({ code: "PIPELINE_STEP_FAILED", innerCode: "PLUGIN_FAILED", message: expect.stringContaining("An account needs a name.") });
    expect(failure.journal).toMatchObject({ outcome: "failed", steps: [{ outcome: "failed" }] });

    expect((await post("/execute", createAccount({ name: "Still serving" }))).status).toBe(200);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it("refuses a body declared larger than plugbox reads (413, INPUT_TOO_LARGE) before reading it, and closes that connection", async () => {
    const answer = await new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
      const req = request(`${server.url}/execute`, { method: "POST", headers: { "Content-Type": "application/json", "Content-Length": String(65 * 1024 * 1024) } }, (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => (body += chunk.toString()));
        res.on("end", () => {
          req.destroy();
          resolve({ status: res.statusCode!, connection: res.headers.connection, body });
        });
      });
      req.on("error", reject);
      req.flushHeaders();
    });
    expect(answer.status).toBe(413);
    expect(answer.connection).toBe("close");
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: "INPUT_TOO_LARGE", message: expect.stringContaining("up to 67108864 bytes") } });
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it("startServe: an option out of range is OPTIONS_INVALID naming it and the range", async () => {
    await expect(startServe({ host, port: 70_000 })).rejects.toMatchObject({ code: "OPTIONS_INVALID", message: "port must be a whole number from 0 to 65535; got 70000" });
    await expect(startServe({ host, port: 0, shutdownGraceMs: -1 })).rejects.toMatchObject({ code: "OPTIONS_INVALID", message: expect.stringContaining("shutdownGraceMs") });
  });

  it("close(): lets a request in flight finish (its answer closes the connection), then takes no more connections; the host stays open", async () => {
    const second = await startServe({ host, port: 0 });
    const body = JSON.stringify(createAccount({ name: "Late" }));
    let closed: Promise<void> | undefined;
    const answer = await new Promise<{ status: number; connection: string | undefined; text: string }>((resolve, reject) => {
      const req = request(`${second.url}/execute`, { method: "POST", headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } }, (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, connection: res.headers.connection, text }));
      });
      req.on("error", reject);
      req.write(body.slice(0, 10), async () => {
        // Answered after the server has read what the first socket sent: the request's headers are in.
        expect((await fetch(`${second.url}/health`)).status).toBe(200);
        closed = second.close();
        req.end(body.slice(10));
      });
    });
    await closed;
    expect(answer.status, answer.text).toBe(200);
    // Its answer ends its connection, so the client sends no further request there.
    expect(answer.connection).toBe("close");
    await expect(fetch(`${second.url}/health`)).rejects.toThrow();
    expect(host.health().status).toBe("ready");
  });
});
