/**
 * System jobs run by several processes sharing one store file: every job runs once, its post arrives
 * once, and bad options are refused.
 */
import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHost, runJobsInProcesses } from "../dist/host/index.js";
import { Entity } from "../dist/sdk/index.js";
import { plugbox } from "./helpers/cli.js";

let dir: string;
let server: Server;
const posts: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-job-processes-"));
  server = createServer((request, response) => {
    posts.push(String(request.headers["x-ms-correlation-request-id"] ?? ""));
    request.resume();
    request.on("end", () => response.end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

const manifest = () => ({
  serviceEndpoints: [{ id: "c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80", name: "hook", contract: "Webhook", url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook` }],
  steps: [{ serviceEndpoint: "hook", message: "Create", entity: "account", stage: 40, mode: "async" }],
});

async function queue(db: string, count: number): Promise<string[]> {
  const host = await createHost({ manifest: manifest(), db, runJobs: false, runtimeOptions: { workers: 1, prewarmIsolates: 0 } });
  try {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push((await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: `Account ${i}` }) } })).journal.jobs[0]!);
    return ids;
  } finally {
    await host.close();
  }
}

describe("jobs in several processes", () => {
  it("three processes on one store file run every job exactly once", async () => {
    const db = path.join(dir, "three.db");
    const ids = await queue(db, 60);
    posts.length = 0;
    const { outcomes, processes } = await runJobsInProcesses({ manifest: manifest(), db, processes: 3, webPolicy: { unsafeAllowLoopback: true, extraPorts: [(server.address() as AddressInfo).port] } });
    expect(processes).toHaveLength(3);
    expect(processes.reduce((sum, p) => sum + p.jobs, 0)).toBe(60);
    for (const p of processes) expect(p.cpuMs).toBeGreaterThan(0);
    expect(outcomes.map((o) => o.outcome)).toEqual(ids.map(() => "succeeded"));
    expect(new Set(outcomes.map((o) => o.id))).toEqual(new Set(ids));
    expect(posts).toHaveLength(60);
    const host = await createHost({ manifest: manifest(), db, runJobs: false, runtimeOptions: { workers: 1, prewarmIsolates: 0 } });
    try {
      expect((await host.listJobs()).every((job) => job.statusCode === 30)).toBe(true);
    } finally {
      await host.close();
    }
  });

  it("refuses an in-memory store and a bad process count", async () => {
    await expect(runJobsInProcesses({ manifest: manifest(), db: ":memory:" })).rejects.toMatchObject({ code: "JOB_PROCESSES_INVALID", message: expect.stringContaining("not :memory:") });
    await expect(runJobsInProcesses({ manifest: manifest(), db: path.join(dir, "x.db"), processes: 0 })).rejects.toMatchObject({ code: "JOB_PROCESSES_INVALID" });
  });

  it("a process whose host cannot start fails the run with JOB_PROCESS_FAILED and the reason", async () => {
    await expect(runJobsInProcesses({ manifest: path.join(dir, "missing.json"), db: path.join(dir, "y.db"), processes: 2 })).rejects.toMatchObject({
      code: "JOB_PROCESS_FAILED",
      message: expect.stringContaining("missing.json"),
    });
  });

  it("plugbox jobs run --processes 2 runs them from the command line", async () => {
    const db = path.join(dir, "cli.db");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(path.join(dir, "plugbox.json"), JSON.stringify(manifest()));
    writeFileSync(path.join(dir, "web.json"), JSON.stringify({ unsafeAllowLoopback: true, extraPorts: [(server.address() as AddressInfo).port] }));
    const ids = await queue(db, 10);
    const run = await plugbox(["jobs", "run", "--manifest", "plugbox.json", "--db", db, "--processes", "2", "--web-policy", "web.json"], dir);
    expect(run.code, run.stderr).toBe(0);
    for (const id of ids) expect(run.stdout).toContain(`job ${id}: succeeded`);
    expect(run.stdout).toMatch(/2 processes ran \d+ \+ \d+ jobs in [\d.]+ s, using [\d.]+ s of CPU/);
    const bad = await plugbox(["jobs", "run", "--manifest", "plugbox.json", "--processes", "zero"], dir);
    expect(bad.code).toBe(2);
  });
});
