/**
 * Asynchronous steps and system jobs (reference 2.2, 5.1 to 5.3): jobs queued in the request's
 * transaction, run after the commit with OperationId and OperationCreatedOn from the job, retried
 * with exponential back-off on OperationStatus.Retry, auto-deleted, retried and cancelled by hand,
 * taken over when a runner's lease runs out, and completed once across a SIGKILL of the runner.
 */
import Database from "better-sqlite3";
import { fork } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobRunnerDefaults } from "../../../dist/host/testing/internal.js";
import { createHost, type JobOutcome, type PlugboxHost, type SystemJob } from "../../../dist/host/index.js";
import { Entity } from "../../../dist/sdk/index.js";
import { ManualClock } from "../../../dist/host/testing/index.js";
import { ENGINES, sql, testDb } from "../../helpers/stores.js";
import { buildPlugins, failure, fastRuntime, hostWith, rows, step, sqliteOf } from "../../fixtures/pipeline/support.js";

const CALLER = "aaaaaaaa-0000-4000-8000-000000000001";

let plugins: Awaited<ReturnType<typeof buildPlugins>>;

beforeAll(async () => {
  plugins = await buildPlugins("plugbox-jobs-");
});

afterAll(() => plugins?.cleanup());

const create = (host: PlugboxHost, entity: string, attributes: Record<string, unknown> = {}, caller?: { userId: string }) =>
  host.execute({ requestName: "Create", parameters: { Target: new Entity(entity, undefined, attributes as never) } }, caller);

/** The next outcome the host's job runner hears. */
function nextOutcome(host: PlugboxHost): Promise<JobOutcome> {
  return new Promise((resolve) => {
    const off = host.jobRunner.onOutcome((outcome) => {
      off();
      resolve(outcome);
    });
  });
}

/** Creates a record and returns it with the one system job its request queued. */
async function queued(host: PlugboxHost, entity: string, attributes: Record<string, unknown> = { name: "X" }, caller?: { userId: string }) {
  const { response, journal } = await create(host, entity, attributes, caller);
  expect(journal.jobs).toHaveLength(1);
  return { id: response.results.id as string, jobId: journal.jobs[0]! };
}

describe.each(ENGINES)("on the %s store", (engine) => {
  describe("system jobs from asynchronous steps", () => {
    let host: PlugboxHost;
    const clock = new ManualClock();
    const BACKOFF = 1_000;

    beforeAll(async () => {
      host = await hostWith(
        plugins.bundle,
        {
          settings: { traceLogSetting: "All" },
          steps: [
            step("SetOutput", "Create", "asy", 40, { rank: 1, config: { extra: "from sync 40" } }),
            step("Share", "Create", "asy", 40, { rank: 2, config: { fromSync: "yes" } }),
            step("AsyncProbe", "Create", "asy", 40, { name: "Probe asy", mode: "async", images: [{ alias: "created", type: "post", attributes: ["name"] }] }),
            step("AsyncProbe", "Create", "rb", 40, { mode: "async" }),
            step("Fail", "Create", "rb", 40, { rank: 2, config: { message: "roll it back" } }),
            step("Retry", "Create", "retry", 40, { mode: "async" }),
            step("Fail", "Create", "failing", 40, { mode: "async", config: { message: "async failure" } }),
            step("FailUnlessFlag", "Create", "flagged", 40, { mode: "async" }),
            step("RetryUntilFlag", "Create", "retryflag", 40, { mode: "async" }),
            step("AsyncProbe", "Create", "auto", 40, { mode: "async", asyncAutoDelete: true }),
            step("Fail", "Create", "autofail", 40, { mode: "async", asyncAutoDelete: true, config: { message: "kept for the record" } }),
            step("AsyncProbe", "Update", "filt", 40, { mode: "async", filteringAttributes: ["name"] }),
            step("AsyncProbe", "Create", "cancelme", 40, { mode: "async" }),
            step("AsyncProbe", "Create", "lease", 40, { mode: "async" }),
          ],
        }, { db: await testDb(engine), clock, jobs: { backoffBaseMs: BACKOFF } },
      );
    });

    afterAll(async () => {
      await host?.close();
    });

    it("an async step runs after the commit as a system job: OperationId is the job's id, OperationCreatedOn its createdOn, Mode 1, IsInTransaction false", async () => {
      const { id, jobId } = await queued(host, "asy", { name: "Contoso" }, { userId: CALLER });
      const step = host.registry.steps.find((s) => s.name === "Probe asy")!;
      const job = (await host.getJob(jobId))!;
      expect(job).toMatchObject({
        id: jobId,
        name: "Probe asy",
        operationType: 1,
        stateCode: 0,
        statusCode: 0,
        owningExtensionId: step.id,
        messageName: "Create",
        primaryEntityType: "asy",
        regardingObjectId: id,
        depth: 1,
        retryCount: 0,
        autoDelete: false,
        completedOn: null,
      });
      // Queued, not run: nothing has happened yet.
      expect((await rows(host, "jobrun")).filter((r) => r.attributes.recordid === id)).toEqual([]);

      expect(await host.runJobs()).toEqual([{ id: jobId, outcome: "succeeded" }]);

      const run = (await rows(host, "jobrun")).find((r) => r.attributes.recordid === id)!.attributes;
      expect(run).toMatchObject({
        operationid: jobId,
        operationcreatedon: job.createdOn,
        mode: 1,
        stage: 40,
        depth: 1,
        intransaction: false,
        recordname: "Contoso", // the committed record, read by the job
        imagename: "Contoso", // its post-image
        userid: CALLER,
        initiatinguserid: CALLER,
      });
      expect(await host.getJob(jobId)).toMatchObject({ stateCode: 3, statusCode: 30, startedOn: expect.any(String), completedOn: expect.any(String) });
      const trace = (await host.traceLogs()).find((t) => t.operationId === jobId);
      expect(trace).toMatchObject({ mode: 1, stage: 40, messageBlock: `job ${jobId} for ${id}`, exceptionDetails: null });
    });

    it("an async step gets a copy of the OutputParameters and SharedVariables as the synchronous stage 40 steps left them", async () => {
      const { id } = await queued(host, "asy", { name: "Copies" });
      await host.runJobs();
      const run = (await rows(host, "jobrun")).find((r) => r.attributes.recordid === id)!.attributes;
      expect(run.extra).toBe("from sync 40");
      expect(JSON.parse(run.shared as string)).toMatchObject({ fromSync: "yes" });
    });

    it("jobs are queued in the request's transaction: a request that rolls back leaves no job", async () => {
      const error = await failure(create(host, "rb", { name: "R" }));
      expect(error.message).toContain("roll it back");
      expect((await host.listJobs()).filter((j) => j.primaryEntityType === "rb")).toEqual([]);
      expect(await host.runJobs()).toEqual([]);
    });

    it("filtering attributes apply to asynchronous Update steps: a job is queued only when a listed column changes", async () => {
      const id = (await create(host, "filt", { name: "F" })).response.results.id as string;
      const updateWith = (attributes: Record<string, unknown>) => host.execute({ requestName: "Update", parameters: { Target: new Entity("filt", id, attributes as never) } });
      expect((await updateWith({ telephone1: "1" })).journal.jobs).toEqual([]);
      const { journal } = await updateWith({ name: "G" });
      expect(journal.jobs).toHaveLength(1);
      expect(await host.runJobs()).toEqual([{ id: journal.jobs[0], outcome: "succeeded" }]);
    });

    it("retry: a plug-in throwing with OperationStatus.Retry runs again after an exponential back-off, four attempts in all, then the job is Failed (3, 31) with its message and error code", async () => {
      const { jobId } = await queued(host, "retry");
      const attempts: Array<{ outcome: JobOutcome | undefined; job: SystemJob; at: number }> = [];
      for (let i = 0; i < 4; i++) {
        const at = clock.now().getTime();
        attempts.push({ outcome: await host.jobRunner.runOne(), job: (await host.getJob(jobId))!, at });
        if (i === 3) break;
        const delay = BACKOFF * 2 ** i;
        await clock.advance(delay - 1);
        expect(await host.jobRunner.runOne()).toBeUndefined(); // not due before its back-off runs out
        await clock.advance(1);
      }
      expect(attempts.map((a) => [a.outcome?.id, a.outcome?.outcome])).toEqual([
        [jobId, "retrying"],
        [jobId, "retrying"],
        [jobId, "retrying"],
        [jobId, "failed"],
      ]);
      attempts.slice(0, 3).forEach(({ job, at }, i) => {
        // Waiting for its next attempt: Ready (0) / Waiting (10), the attempt counted, postponed by base × 2^i.
        expect(job).toMatchObject({ stateCode: 0, statusCode: 10, retryCount: i + 1, message: expect.stringContaining("try again later") });
        expect(Date.parse(job.postponeUntil!)).toBe(at + BACKOFF * 2 ** i);
      });
      expect(attempts[3]!.job).toMatchObject({ stateCode: 3, statusCode: 31, retryCount: 3, errorCode: 4242, completedOn: expect.any(String) });
      expect(attempts[3]!.job.message).toContain("try again later");
      expect(attempts[3]!.job.message).toContain("4 attempts");
      // Every attempt left its trace, with the failure.
      const traces = (await host.traceLogs()).filter((t) => t.operationId === jobId);
      expect(traces).toHaveLength(4);
      expect(traces.every((t) => t.messageBlock.includes(`attempt for ${jobId}`) && t.exceptionDetails?.includes("try again later"))).toBe(true);
    });

    it("a job that succeeds after attempts that asked to be retried is Succeeded (3, 30) without their error code or message; its attempts stay counted and traced", async () => {
      const { id, jobId } = await queued(host, "retryflag");
      expect(await host.runJobs()).toEqual([{ id: jobId, outcome: "retrying", message: expect.stringContaining("no flag yet") }]);
      expect(await host.getJob(jobId)).toMatchObject({ stateCode: 0, statusCode: 10, retryCount: 1, errorCode: 4242, message: expect.stringContaining("no flag yet") });
      await create(host, "flag", { regarding: id });
      await clock.advance(BACKOFF);
      expect(await host.runJobs()).toEqual([{ id: jobId, outcome: "succeeded" }]);
      expect(await host.getJob(jobId)).toMatchObject({ stateCode: 3, statusCode: 30, retryCount: 1, errorCode: null, message: null, friendlyMessage: null });
      expect((await host.traceLogs()).filter((t) => t.operationId === jobId)).toHaveLength(2);
    });

    it("a failure without OperationStatus.Retry fails the job at its first attempt, with the message on the job", async () => {
      const { jobId } = await queued(host, "failing");
      const outcomes = await host.runJobs();
      expect(outcomes).toEqual([{ id: jobId, outcome: "failed", message: expect.stringContaining("async failure") }]);
      expect(await host.getJob(jobId)).toMatchObject({ stateCode: 3, statusCode: 31, retryCount: 0, message: expect.stringContaining("async failure"), errorCode: -2147220891 });
    });

    it("asyncAutoDelete: a job that succeeds is deleted; one that fails is kept", async () => {
      const succeeded = await queued(host, "auto");
      const failed = await queued(host, "autofail");
      expect((await host.runJobs()).map((o) => [o.id, o.outcome]).sort()).toEqual(
        [
          [succeeded.jobId, "succeeded"],
          [failed.jobId, "failed"],
        ].sort(),
      );
      expect(await host.getJob(succeeded.jobId)).toBeUndefined();
      expect((await host.listJobs()).map((j) => j.id)).not.toContain(succeeded.jobId);
      expect((await rows(host, "jobrun")).map((r) => r.attributes.operationid)).toContain(succeeded.jobId);
      expect(await host.getJob(failed.jobId)).toMatchObject({ stateCode: 3, statusCode: 31, autoDelete: true });
    });

    it("retryJob makes a failed job Ready again with a fresh set of attempts, and it then runs", async () => {
      const { id, jobId } = await queued(host, "flagged");
      expect(await host.runJobs()).toEqual([{ id: jobId, outcome: "failed", message: expect.stringContaining("no flag yet") }]);
      await create(host, "flag", { regarding: id });
      expect(await host.retryJob(jobId)).toMatchObject({ stateCode: 0, statusCode: 0, retryCount: 0, message: null, completedOn: null });
      expect(await host.runJobs()).toEqual([{ id: jobId, outcome: "succeeded" }]);
      expect(await host.getJob(jobId)).toMatchObject({ stateCode: 3, statusCode: 30 });
      expect((await rows(host, "jobrun")).filter((r) => r.attributes.operationid === jobId)).toHaveLength(1);
    });

    it("cancelJob cancels a waiting job (3, 32): it never runs, until retryJob makes it Ready again", async () => {
      const { id, jobId } = await queued(host, "cancelme");
      expect(await host.cancelJob(jobId)).toMatchObject({ stateCode: 3, statusCode: 32, completedOn: expect.any(String) });
      expect(await host.runJobs()).toEqual([]);
      expect((await rows(host, "jobrun")).filter((r) => r.attributes.recordid === id)).toEqual([]);
      await host.retryJob(jobId);
      expect(await host.runJobs()).toEqual([{ id: jobId, outcome: "succeeded" }]);
      expect((await rows(host, "jobrun")).filter((r) => r.attributes.recordid === id)).toHaveLength(1);
    });

    it("retryJob and cancelJob refuse jobs in the wrong state (JOB_INVALID_STATE) and unknown ids (JOB_NOT_FOUND)", async () => {
      const { jobId } = await queued(host, "cancelme");
      await expect(host.retryJob(jobId)).rejects.toMatchObject({ code: "JOB_INVALID_STATE", message: expect.stringContaining("Ready") });
      await host.runJobs();
      await expect(host.retryJob(jobId)).rejects.toMatchObject({ code: "JOB_INVALID_STATE", message: expect.stringContaining("Succeeded") });
      await expect(host.cancelJob(jobId)).rejects.toMatchObject({ code: "JOB_INVALID_STATE", message: expect.stringContaining("already Completed") });
      const unknown = "00000000-0000-4000-8000-00000000beef";
      await expect(host.retryJob(unknown)).rejects.toMatchObject({ code: "JOB_NOT_FOUND", message: expect.stringContaining(unknown) });
      await expect(host.cancelJob(unknown)).rejects.toMatchObject({ code: "JOB_NOT_FOUND" });
    });

    it("listJobs lists jobs in the order they were queued and filters by state", async () => {
      const all = await host.listJobs();
      expect(all.map((j) => j.sequence)).toEqual([...all.map((j) => j.sequence)].sort((a, b) => a - b));
      const completed = await host.listJobs({ stateCode: 3 });
      expect(completed.length).toBeGreaterThan(0);
      expect(completed.every((j) => j.stateCode === 3)).toBe(true);
      expect(await host.listJobs({ stateCode: 1 })).toEqual([]);
    });

    it("leases: a job leased by a runner that died is not taken while the lease holds; once it runs out another runner completes it, once, and the dead runner cannot complete it", async () => {
      await host.runJobs();
      const held = await queued(host, "lease", { name: "held" });
      const expired = await queued(host, "lease", { name: "expired" });
      const release = await host.store.acquire();
      try {
        expect((await host.pipeline.jobs.claim("a runner that died", 60_000))?.job.id).toBe(held.jobId);
        expect((await host.pipeline.jobs.claim("a runner that died", 1))?.job.id).toBe(expired.jobId);
      } finally {
        release();
      }
      expect(await host.getJob(held.jobId)).toMatchObject({ stateCode: 2, statusCode: 20 });
      expect(await host.runJobs()).toEqual([]);
      await clock.advance(2);
      expect(await host.runJobs()).toEqual([{ id: expired.jobId, outcome: "succeeded" }]);
      expect((await rows(host, "jobrun")).filter((r) => r.attributes.recordid === expired.id)).toHaveLength(1);
      expect(await host.getJob(held.jobId)).toMatchObject({ stateCode: 2, statusCode: 20 });
      const late = await host.store.acquire();
      try {
        expect(await host.pipeline.jobs.succeed(expired.jobId, "a runner that died", false)).toBe(false);
        expect(await host.pipeline.jobs.fail(held.jobId, "another runner", { message: "not mine", errorCode: null })).toBe(false);
      } finally {
        late();
      }
      expect(await host.getJob(expired.jobId)).toMatchObject({ stateCode: 3, statusCode: 30 });
      await host.cancelJob(held.jobId);
    });
  });

  describe("limits", () => {
    it("settings.maxAsyncAttempts sets how many attempts a Retry job gets", async () => {
      const clock = new ManualClock();
      const host = await hostWith(plugins.bundle, { steps: [step("Retry", "Create", "retry", 40, { mode: "async" })], settings: { maxAsyncAttempts: 2 } }, { db: await testDb(engine), clock, jobs: { backoffBaseMs: 1_000 } });
      try {
        const { jobId } = await queued(host, "retry");
        const outcomes: string[] = [];
        outcomes.push(...(await host.runJobs()).map((o) => o.outcome));
        await clock.advance(1_000);
        outcomes.push(...(await host.runJobs()).map((o) => o.outcome));
        expect(outcomes).toEqual(["retrying", "failed"]);
        expect((await host.getJob(jobId))!.statusCode).toBe(31);
        expect((await host.getJob(jobId))!.message).toContain("2 attempts");
      } finally {
        await host.close();
      }
    });
  });

  describe("asynchronous steps and depth", () => {
    it("an asynchronous step that updates its own record loops through system jobs at depth + 1 until the depth limit fails the last job", async () => {
      const host = await hostWith(plugins.bundle, { steps: [step("Recurse", "Update", "aloop", 40, { mode: "async" })], settings: { maxDepth: 3 } }, { db: await testDb(engine) });
      try {
        const id = (await create(host, "aloop", { name: "L" })).response.results.id as string;
        await host.execute({ requestName: "Update", parameters: { Target: new Entity("aloop", id, { name: "go" }) } });
        const outcomes: JobOutcome[] = [];
        await expect
          .poll(async () => {
            outcomes.push(...(await host.runJobs()));
            return outcomes.some((o) => o.outcome === "failed");
          })
          .toBe(true);
        expect(outcomes.map((o) => o.outcome)).toEqual(["succeeded", "succeeded", "failed"]);
        const jobs = await host.listJobs();
        expect(jobs.map((j) => [j.depth, j.statusCode])).toEqual([
          [1, 30],
          [2, 30],
          [3, 31],
        ]);
        expect(jobs[2]!.message).toContain("maximum depth of 3");
        expect((await host.store.getRecord("aloop", id))!.attributes.description).toBe("depth 3");
      } finally {
        await host.close();
      }
    });

    it("an asynchronous step triggered by a plug-in's nested request is queued in the outer transaction: it exists only if the outer request commits", async () => {
      const host = await hostWith(plugins.bundle, {
        steps: [
          step("CreateRecord", "Create", "outer", 40, { rank: 1, config: { entity: "inner" } }),
          step("Fail", "Create", "outer", 40, { rank: 2, config: { message: "outer fails", when: "fail" } }),
          step("AsyncProbe", "Create", "inner", 40, { mode: "async" }),
        ],
      }, { db: await testDb(engine) });
      try {
        await failure(create(host, "outer", { name: "O", fail: true }));
        expect(await host.listJobs()).toEqual([]);
        const { journal } = await create(host, "outer", { name: "O" });
        const nested = journal.steps[0]!.requests[0]!;
        expect(nested.jobs).toHaveLength(1);
        expect(await host.getJob(nested.jobs[0]!)).toMatchObject({ depth: 2, primaryEntityType: "inner", regardingObjectId: nested.id });
        expect(await host.runJobs()).toEqual([{ id: nested.jobs[0], outcome: "succeeded" }]);
        expect((await rows(host, "jobrun")).map((r) => r.attributes)).toEqual([expect.objectContaining({ operationid: nested.jobs[0], depth: 2, recordid: nested.id })]);
      } finally {
        await host.close();
      }
    });
  });

  describe("the background job runner", () => {
    it("with runJobs on (the default), a queued job runs after the commit without being asked", async () => {
      const host = await hostWith(plugins.bundle, { steps: [step("AsyncProbe", "Create", "bg", 40, { mode: "async" })] }, { db: await testDb(engine), runJobs: true, jobs: { pollMs: 50 } });
      try {
        const outcome = nextOutcome(host);
        const { jobId } = await queued(host, "bg", { name: "Background" });
        expect(await outcome).toEqual({ id: jobId, outcome: "succeeded" });
        expect(await host.getJob(jobId)).toMatchObject({ stateCode: 3, statusCode: 30 });
        expect((await rows(host, "jobrun")).map((r) => r.attributes.operationid)).toEqual([jobId]);
      } finally {
        await host.close();
      }
    });
  });
});

describe("jobs on a store file another process is writing", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-jobs-busy-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const jobState = (db: Database.Database, id: string) => (db.prepare("SELECT state_code FROM system_jobs WHERE id = ?").get(id) as { state_code: number }).state_code;

  it("the runner waits for the other process's write lock with its event loop free, then runs the job", async () => {
    const db = path.join(dir, "wait.db");
    const host = await hostWith(plugins.bundle, { steps: [step("AsyncProbe", "Create", "bg", 40, { mode: "async" })] }, { db, runJobs: false });
    const other = new Database(db);
    try {
      const { jobId } = await queued(host, "bg", { name: "Waits" });
      other.exec("BEGIN IMMEDIATE");
      let settled = false;
      const running = host.runJobs();
      running.then(
        () => (settled = true),
        () => (settled = true),
      );
      // Turns of the event loop go on while the runner waits (a synchronous wait would hold them back
      // until busyTimeoutMs, and runJobs would have failed by then); the job stays Ready.
      for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
      expect(settled).toBe(false);
      expect(jobState(other, jobId)).toBe(0);
      other.exec("COMMIT");
      expect(await running).toEqual([{ id: jobId, outcome: "succeeded" }]);
    } finally {
      other.close();
      await host.close();
    }
  });

  it("a lock held past busyTimeoutMs fails runJobs with STORE_BUSY and leaves the job Ready; the background runner keeps trying and runs it once the lock goes", async () => {
    const db = path.join(dir, "busy.db");
    const clock = new ManualClock();
    const host = await hostWith(plugins.bundle, { steps: [step("AsyncProbe", "Create", "bg", 40, { mode: "async" })] }, { db, clock, runJobs: false, busyTimeoutMs: 50, jobs: { pollMs: 20 } });
    const other = new Database(db);
    try {
      const { jobId } = await queued(host, "bg", { name: "Held" });
      other.exec("BEGIN IMMEDIATE");
      await expect(host.runJobs()).rejects.toMatchObject({ code: "STORE_BUSY", message: expect.stringContaining(db) });
      expect(jobState(other, jobId)).toBe(0);
      const outcomes: JobOutcome[] = [];
      host.jobRunner.onOutcome((o) => outcomes.push(o));
      host.jobRunner.start();
      // Several rounds fail while the lock is held: each ends with STORE_BUSY and sets the timer of the next.
      for (let round = 0; round < 3; round++) {
        await clock.whenTimerSet();
        expect(host.health().jobs.lastError?.code).toBe("STORE_BUSY");
        await clock.advance(20);
      }
      await clock.whenTimerSet();
      expect(outcomes).toEqual([]);
      other.exec("COMMIT");
      const outcome = nextOutcome(host);
      await clock.advance(20);
      expect(await outcome).toEqual({ id: jobId, outcome: "succeeded" });
      expect(outcomes).toEqual([{ id: jobId, outcome: "succeeded" }]);
    } finally {
      other.close();
      await host.close();
    }
  });
});

describe("jobs that cannot run as stored", () => {
  it.each(ENGINES)("a job whose stored context cannot be read fails alone, with the reason; the others of its batch run (%s)", async (engine) => {
    const db = await testDb(engine);
    const host = await hostWith(plugins.bundle, { steps: [step("AsyncProbe", "Create", "bg", 40, { mode: "async" })] }, { db, runJobs: false });
    try {
      const broken = await queued(host, "bg", { name: "Broken" });
      const fine = await queued(host, "bg", { name: "Fine" });
      const damage = ["UPDATE system_jobs SET data = $1 WHERE id = $2", "{not json", broken.jobId] as const;
      if (engine === "sqlite") sqliteOf(host).db.prepare(damage[0].replace(/\$\d/g, "?")).run(damage[1], damage[2]);
      else await sql(db, damage[0], [damage[1], damage[2]]);
      const outcomes = await host.runJobs();
      expect(outcomes).toEqual(
        expect.arrayContaining([
          { id: broken.jobId, outcome: "failed", message: expect.stringContaining("the job's stored context cannot be read") },
          { id: fine.jobId, outcome: "succeeded" },
        ]),
      );
      expect(await host.getJob(broken.jobId)).toMatchObject({ stateCode: 3, statusCode: 31 });
    } finally {
      await host.close();
    }
  });

  it("closing the host while its background rounds fail on a store another process holds closes everything", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-jobs-close-"));
    const db = path.join(dir, "close.db");
    const clock = new ManualClock();
    const host = await hostWith(plugins.bundle, { steps: [step("AsyncProbe", "Create", "bg", 40, { mode: "async" })] }, { db, clock, runJobs: false, busyTimeoutMs: 30, jobs: { pollMs: 10 } });
    const other = new Database(db);
    try {
      await queued(host, "bg", { name: "Held" });
      other.exec("BEGIN IMMEDIATE");
      host.jobRunner.start();
      await clock.whenTimerSet(); // the first round failed on the lock
      expect(host.health().jobs.lastError?.code).toBe("STORE_BUSY");
      await clock.advance(10); // the next round is under way
      await expect(host.close()).resolves.toBeUndefined();
      expect(host.runtime.workerPids).toEqual([]);
      expect(() => sqliteOf(host).db.prepare("SELECT 1")).toThrow(/not open/);
    } finally {
      other.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a job whose runner stops mid-job", () => {
  let dir: string;
  let server: http.Server;
  let port: number;
  let answering = false;
  const seen: string[] = [];
  const waiting: http.ServerResponse[] = [];
  const webPolicy = () => ({ resolve: { "hang.test": ["127.0.0.1"] }, unsafeAllowLoopback: true, extraPorts: [port] });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-jobs-restart-"));
    server = http.createServer((req, res) => {
      seen.push(req.url!);
      if (answering) res.end(`answer to ${req.url}`);
      else waiting.push(res); // a service that does not answer
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    for (const res of waiting) res.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const answerAll = () => {
    answering = true;
    for (const res of waiting.splice(0)) if (!res.destroyed) res.end("late answer");
  };

  it.each(ENGINES)("a job cancelled while it runs stays Canceled: the runner's completion is refused (outcome lost) (%s)", async (engine) => {
    answering = false;
    const host = await hostWith(plugins.bundle, { steps: [step("CallOut", "Create", "remote", 40, { mode: "async", config: { port } })] }, { db: await testDb(engine), webPolicy: webPolicy() });
    try {
      const { jobId } = await queued(host, "remote", { name: "R" });
      const running = host.runJobs();
      await expect.poll(() => seen.includes(`/${jobId}`), { timeout: 30_000 }).toBe(true);
      expect(await host.getJob(jobId)).toMatchObject({ stateCode: 2, statusCode: 20 });
      expect(await host.cancelJob(jobId)).toMatchObject({ stateCode: 3, statusCode: 32 });
      answerAll();
      expect(await running).toEqual([{ id: jobId, outcome: "lost" }]);
      expect(await host.getJob(jobId)).toMatchObject({ stateCode: 3, statusCode: 32 });
    } finally {
      await host.close();
    }
  });

  it("an outcome that cannot be written (another process holds the store past busyTimeoutMs) comes back lost, and the job runs again once its lease runs out", async () => {
    answering = false;
    const db = path.join(dir, "held.db");
    const clock = new ManualClock();
    const LEASE = 60_000;
    const host = await hostWith(plugins.bundle, { steps: [step("CallOut", "Create", "remote", 40, { mode: "async", config: { port } })] }, { webPolicy: webPolicy(), db, clock, runJobs: false, busyTimeoutMs: 50, jobs: { leaseMs: LEASE } });
    const other = new Database(db);
    try {
      const { jobId } = await queued(host, "remote", { name: "Unrecorded" });
      const outcomes: JobOutcome[] = [];
      host.jobRunner.onOutcome((o) => outcomes.push(o));
      const running = host.runJobs();
      await expect.poll(() => seen.includes(`/${jobId}`), { timeout: 30_000 }).toBe(true);
      other.exec("BEGIN IMMEDIATE");
      answerAll();
      // The round ends when the next lease cannot be taken either.
      await expect(running).rejects.toMatchObject({ code: "STORE_BUSY" });
      expect(outcomes).toEqual([{ id: jobId, outcome: "lost", message: expect.stringContaining("its outcome could not be recorded, so it runs again when its lease runs out") }]);
      other.exec("COMMIT");
      expect(await host.getJob(jobId)).toMatchObject({ stateCode: 2 });
      expect(await host.runJobs()).toEqual([]); // its lease holds
      await clock.advance(LEASE + 1);
      expect(await host.runJobs()).toEqual([{ id: jobId, outcome: "succeeded" }]);
    } finally {
      other.close();
      await host.close();
    }
  });

  it("a job runner killed with SIGKILL mid-job loses nothing: after a restart on the same database the job runs again and completes once", async () => {
    answering = false;
    const db = path.join(dir, "jobs.db");
    const manifest = path.join(dir, "plugbox.json");
    writeFileSync(manifest, JSON.stringify({ bundles: { p: { path: plugins.bundle } }, steps: [step("CallOut", "Create", "remote", 40, { mode: "async", config: { port } })] }));
    const runner = path.join(dir, "runner.mjs");
    writeFileSync(
      runner,
      `import { createHost } from ${JSON.stringify(new URL("../../../dist/host/index.js", import.meta.url).href)};
const [manifest, db, port] = process.argv.slice(2);
const host = await createHost({
  manifest, db, runJobs: false,
  webPolicy: { resolve: { "hang.test": ["127.0.0.1"] }, unsafeAllowLoopback: true, extraPorts: [Number(port)] },
  runtimeOptions: { workers: 1, prewarmIsolates: 1 },
});
process.send("running");
const outcomes = await host.runJobs();
process.send({ finished: outcomes });
`,
    );

    const writer = await createHost({ manifest, db, runJobs: false, runtimeOptions: fastRuntime });
    let jobId: string;
    try {
      jobId = (await queued(writer, "remote", { name: "Contoso" })).jobId;
    } finally {
      await writer.close();
    }

    const child = fork(runner, [manifest, db, String(port)], { execArgv: [], stdio: ["ignore", "ignore", "pipe", "ipc"] });
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const messages: unknown[] = [];
    child.on("message", (m) => messages.push(m));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    await expect.poll(() => (child.exitCode !== null ? `exited: ${stderr}` : seen.includes(`/${jobId}`)), { timeout: 30_000 }).toBe(true);
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");
    expect(messages).toEqual(["running"]);

    answerAll();
    // The dead runner leased the job (for the default 180 s) before this clock starts.
    const clock = new ManualClock(Date.now());
    const host = await createHost({ manifest, db, clock, runJobs: false, webPolicy: webPolicy(), runtimeOptions: fastRuntime });
    try {
      // Still leased by the dead runner: Locked, In Progress.
      expect(await host.getJob(jobId)).toMatchObject({ stateCode: 2, statusCode: 20 });
      await clock.advance(jobRunnerDefaults.leaseMs);
      expect(await host.runJobs()).toEqual([{ id: jobId, outcome: "succeeded" }]);
      expect(await host.getJob(jobId)).toMatchObject({ stateCode: 3, statusCode: 30, retryCount: 0, completedOn: expect.any(String) });
      expect(seen.filter((url) => url === `/${jobId}`)).toHaveLength(2);
      expect((await rows(host, "calldone")).map((r) => r.attributes)).toEqual([expect.objectContaining({ operationid: jobId, answer: `answer to /${jobId}` })]);
      expect(await host.runJobs()).toEqual([]);
    } finally {
      await host.close();
    }
  });
});
