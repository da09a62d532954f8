/**
 * System jobs run by several processes sharing one store file: every job runs once, its post arrives
 * once, and bad options are refused.
 */
import { spawn } from "node:child_process";
import { createServer, type Server, type ServerResponse } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHost, runJobsInProcesses } from "../../../dist/host/index.js";
import { ManualClock } from "../../../dist/host/testing/index.js";
import { Entity } from "../../../dist/sdk/index.js";
import { bin, plugbox } from "../../helpers/cli.js";
import { childrenOf, isRunning } from "../../helpers/faults.js";
import { ENGINES, testDb } from "../../helpers/stores.js";

let dir: string;
let server: Server;
const posts: string[] = [];
/** While set, the webhook holds its answers back until `answerHeld()`: a process killed meanwhile is in the middle of its jobs. */
let holding = false;
const held: ServerResponse[] = [];
const answerHeld = () => {
  holding = false;
  for (const response of held.splice(0)) response.end();
};
const postWaiters: Array<{ count: number; resolve: () => void }> = [];
/** Resolves once `count` posts have arrived. */
function untilPosts(count: number): Promise<void> {
  return new Promise((resolve) => {
    postWaiters.push({ count, resolve });
    heardPost();
  });
}
function heardPost(): void {
  for (const waiter of [...postWaiters]) if (posts.length >= waiter.count) postWaiters.splice(postWaiters.indexOf(waiter), 1) && waiter.resolve();
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-job-processes-"));
  server = createServer((request, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      // The job's id is the posted context's OperationId.
      posts.push(String((JSON.parse(body) as { OperationId?: unknown }).OperationId));
      if (holding) held.push(response);
      else response.end();
      heardPost();
    });
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
  it.each(ENGINES)("three processes on one %s store run every job exactly once", async (engine) => {
    const db = engine === "sqlite" ? path.join(dir, "three.db") : await testDb("postgres");
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

  it("a job process killed mid-run: the survivor's outcomes are all printed, the dead one is named with JOB_PROCESS_FAILED, and its jobs run again after --lease-ms", { timeout: 120_000 }, async () => {
    const db = path.join(dir, "killed.db");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(path.join(dir, "plugbox.json"), JSON.stringify(manifest()));
    writeFileSync(path.join(dir, "web.json"), JSON.stringify({ unsafeAllowLoopback: true, extraPorts: [(server.address() as AddressInfo).port] }));
    const ids = await queue(db, 80);
    posts.length = 0;
    holding = true;
    try {
      const cli = spawn(process.execPath, [bin, "jobs", "run", "--manifest", "plugbox.json", "--db", db, "--processes", "2", "--lease-ms", "600000", "--web-policy", "web.json"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      cli.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      cli.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => cli.once("close", (code) => resolve(code)));
      // A process runs 8 jobs at once: with the answers held, a 9th post means both are in the middle of theirs.
      await untilPosts(9);
      const [victim, survivor] = childrenOf(cli.pid!);
      expect(survivor).toBeDefined();
      process.kill(victim!, "SIGKILL");
      answerHeld();
      expect(await exited).toBe(1);
      const printed = [...stdout.matchAll(/job ([0-9a-f-]{36}): succeeded/g)].map((m) => m[1]);
      expect(printed.length).toBeGreaterThan(0);
      expect(stdout).toMatch(new RegExp(`1 processes ran ${printed.length} jobs in`));
      expect(stderr).toContain(`error [JOB_PROCESS_FAILED]: job process ${victim} failed: process ${victim} exited (SIGKILL) before it reported; the jobs it held run again once their leases run out (600000 ms)`);
      // Once the dead process's leases ran out, the next run takes its jobs: every job ends succeeded, none lost.
      const clock = new ManualClock(Date.now());
      const host = await createHost({ manifest: manifest(), db, clock, runJobs: false, webPolicy: { unsafeAllowLoopback: true, extraPorts: [(server.address() as AddressInfo).port] }, runtimeOptions: { workers: 1, prewarmIsolates: 0 } });
      try {
        const left = (await host.listJobs()).filter((job) => job.statusCode !== 30);
        expect(left.length).toBeGreaterThan(0);
        expect(await host.runJobs()).toEqual([]); // still leased by the dead process
        await clock.advance(600_000);
        expect((await host.runJobs()).map((o) => o.outcome)).toEqual(left.map(() => "succeeded"));
        expect((await host.listJobs()).filter((job) => job.statusCode === 30)).toHaveLength(ids.length);
      } finally {
        await host.close();
      }
      expect(new Set(posts)).toEqual(new Set(ids));
    } finally {
      answerHeld();
    }
  });

  it("job processes orphaned by a killed `jobs run` finish the jobs they run, take no more, and exit cleanly (no ERR_IPC_DISCONNECTED)", { timeout: 120_000 }, async () => {
    const db = path.join(dir, "orphans.db");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(path.join(dir, "plugbox.json"), JSON.stringify(manifest()));
    writeFileSync(path.join(dir, "web.json"), JSON.stringify({ unsafeAllowLoopback: true, extraPorts: [(server.address() as AddressInfo).port] }));
    await queue(db, 80);
    posts.length = 0;
    holding = true;
    try {
      // A lease longer than the test: a job the orphans left held would show as Locked.
      const cli = spawn(process.execPath, [bin, "jobs", "run", "--manifest", "plugbox.json", "--db", db, "--processes", "2", "--lease-ms", "600000", "--web-policy", "web.json"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      cli.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      const streamsClosed = new Promise((resolve) => cli.once("close", resolve));
      await untilPosts(9);
      const orphans = childrenOf(cli.pid!);
      expect(orphans).toHaveLength(2);
      cli.kill("SIGKILL");
      answerHeld();
      await expect.poll(() => orphans.filter(isRunning), { timeout: 60_000 }).toEqual([]);
      await streamsClosed;
      for (const pid of orphans) expect(stderr).toContain(`job process ${pid}: its parent went away; it finishes the jobs it runs, takes no more, and exits`);
      expect(stderr).not.toMatch(/ERR_IPC|internal error|^\s+at /m);
      const host = await createHost({ manifest: manifest(), db, runJobs: false, runtimeOptions: { workers: 1, prewarmIsolates: 0 } });
      try {
        const jobs = await host.listJobs();
        expect(jobs.filter((job) => job.stateCode === 2)).toEqual([]);
        const done = jobs.filter((job) => job.statusCode === 30).map((job) => job.id);
        expect(done.length).toBeGreaterThan(0);
        for (const id of done) expect(posts).toContain(id);
      } finally {
        await host.close();
      }
    } finally {
      answerHeld();
    }
  });

  it("job runner options are checked, naming the option: jobs.leaseMs", async () => {
    await expect(runJobsInProcesses({ manifest: manifest(), db: path.join(dir, "z.db"), jobs: { leaseMs: 5 } })).rejects.toMatchObject({ code: "OPTIONS_INVALID", message: expect.stringContaining("jobs.leaseMs must be a whole number from 100") });
    await expect(createHost({ jobs: { concurrency: 0 }, runtimeOptions: { workers: 1, prewarmIsolates: 0, startOnFirstExecution: true } })).rejects.toMatchObject({ code: "OPTIONS_INVALID", message: expect.stringContaining("jobs.concurrency") });
  });
});
