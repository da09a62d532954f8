import { fork } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHost } from "../dist/host/index.js";
import { Entity } from "../dist/sdk/index.js";

const hostModule = fileURLToPath(new URL("../dist/host/index.js", import.meta.url));
let dir: string;
let server: http.Server;
let port: number;
let answer = false;
const seen: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-restart-"));
  // The async step calls a web service and creates a record with its answer.
  writeFileSync(
    path.join(dir, "plugin.js"),
    `module.exports = { Notify: class { async execute(sp) {
       const c = sp.getService("IPluginExecutionContext");
       const r = await sp.getService("IWebClient").fetch("http://hang.test:" + ${"process_port"} + "/" + c.operationId);
       await sp.getService("IOrganizationServiceFactory").createOrganizationService(null).create({ logicalName: "task", attributes: { subject: await r.text() } });
     } } };`,
  );
  server = http.createServer((req, res) => {
    seen.push(req.url!);
    if (answer) res.end(`answered ${req.url}`);
    // otherwise: never answer, like a service that hangs while the host is killed
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  const source = path.join(dir, "plugin.js");
  writeFileSync(source, (await import("node:fs")).readFileSync(source, "utf8").replace("process_port", String(port)));
  writeFileSync(
    path.join(dir, "plugbox.json"),
    JSON.stringify({ bundles: { p: { path: "plugin.js" } }, steps: [{ bundle: "p", type: "Notify", message: "Create", entity: "account", stage: 40, mode: "async" }] }),
  );
  writeFileSync(
    path.join(dir, "runner.mjs"),
    `import { createHost } from ${JSON.stringify(hostModule)};
     const host = await createHost({ manifest: process.argv[2], db: process.argv[3], runJobs: false, jobs: { leaseMs: 1000 },
       webPolicy: { resolve: { "hang.test": ["127.0.0.1"] }, unsafeAllowLoopback: true, extraPorts: [${port}] }, runtimeOptions: { workers: 1, prewarmIsolates: 0 } });
     process.send("ready");
     await host.runJobs();`,
  );
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

describe("system jobs across a host restart", () => {
  it("a job runner killed with SIGKILL mid-job loses nothing: after restart the job runs again and completes once", async () => {
    const db = path.join(dir, "jobs.db");
    const manifest = path.join(dir, "plugbox.json");
    const writer = await createHost({ manifest, db, runJobs: false, runtimeOptions: { workers: 1, prewarmIsolates: 0 } });
    const { journal } = await writer.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "Contoso" }) } });
    const jobId = journal.jobs[0]!;
    await writer.close();

    const child = fork(path.join(dir, "runner.mjs"), [manifest, db], { execArgv: [], stdio: ["ignore", "ignore", "ignore", "ipc"] });
    await expect.poll(() => seen.length, { timeout: 30_000 }).toBe(1);
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;

    answer = true;
    const host = await createHost({
      manifest,
      db,
      runJobs: false,
      jobs: { leaseMs: 1000 },
      webPolicy: { resolve: { "hang.test": ["127.0.0.1"] }, unsafeAllowLoopback: true, extraPorts: [port] },
      runtimeOptions: { workers: 1, prewarmIsolates: 0 },
    });
    try {
      expect(await host.getJob(jobId)).toMatchObject({ stateCode: 2, statusCode: 20 }); // still leased by the dead runner
      const outcomes: string[] = [];
      await expect.poll(async () => {
        for (const o of await host.runJobs()) outcomes.push(`${o.id}:${o.outcome}`);
        return (await host.getJob(jobId))?.statusCode;
      }, { timeout: 30_000 }).toBe(30);
      expect(outcomes).toEqual([`${jobId}:succeeded`]);
      expect(seen).toEqual([`/${jobId}`, `/${jobId}`]);
      const tasks = host.store.allRecords().filter((r) => r.entity === "task");
      expect(tasks.map((t) => t.attributes.subject)).toEqual([`answered /${jobId}`]);
      expect(await host.runJobs()).toEqual([]);
    } finally {
      await host.close();
    }
  });
});
