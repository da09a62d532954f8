/**
 * `jobs.transport`: system jobs travel over a Service Bus queue (the real @azure/service-bus client
 * against `plugbox broker`), while the store keeps each job's record. Hosts sharing a store are
 * competing consumers of the queue; a job that asks to be retried comes back as a scheduled message
 * and, past settings.maxAsyncAttempts, fails in the store and its message is dead-lettered; a job
 * whose message could not be sent is found by the store sweep.
 */
import { ServiceBusClient } from "@azure/service-bus";
import Database from "better-sqlite3";
import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startBroker, type Broker, type PlugboxHost } from "../../../dist/host/index.js";
import { ManualClock } from "../../../dist/host/testing/index.js";
import { jobTransportDefaults } from "../../../dist/host/testing/internal.js";
import { Entity } from "../../../dist/sdk/index.js";
import { buildPlugins, failure, hostWith, outcomesOf, rows, step } from "../../fixtures/pipeline/support.js";
import { bin, plugbox, repo } from "../../helpers/cli.js";
import { sql, testDb } from "../../helpers/stores.js";

let plugins: Awaited<ReturnType<typeof buildPlugins>>;
let dir: string;
beforeAll(async () => {
  plugins = await buildPlugins();
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-sbjobs-"));
});
afterAll(() => {
  plugins?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const QUEUE = "plugbox-jobs";
/** Long enough that a job run within a test was brought by its message, not found by the sweep. */
const AN_HOUR = 3_600_000;

const manifest = {
  settings: { maxAsyncAttempts: 3 },
  steps: [
    step("AsyncProbe", "Create", "shared", 40, { mode: "async" }),
    step("Retry", "Create", "retry", 40, { mode: "async" }),
    step("Fail", "Create", "failing", 40, { mode: "async", config: { message: "no good" } }),
  ],
};

const transport = (broker: Broker, extra: Record<string, unknown> = {}) => ({ kind: "servicebus" as const, connectionString: broker.connectionString, queue: QUEUE, sweepMs: AN_HOUR, ...extra });

async function create(host: PlugboxHost, entity: string, name: string): Promise<string[]> {
  return (await host.execute({ requestName: "Create", parameters: { Target: new Entity(entity, undefined, { name }) } })).journal.jobs;
}

/** The dead-letter queue's messages, received (and completed) with the real client. */
async function deadLettered(broker: Broker) {
  const client = new ServiceBusClient(broker.connectionString);
  try {
    const receiver = client.createReceiver(QUEUE, { subQueueType: "deadLetter" });
    const messages = await receiver.receiveMessages(10, { maxWaitTimeInMs: 1_000 });
    for (const message of messages) await receiver.completeMessage(message);
    return messages.map((m) => ({ jobId: m.applicationProperties?.jobId, attempt: m.applicationProperties?.attempt, reason: m.deadLetterReason, description: m.deadLetterErrorDescription }));
  } finally {
    await client.close();
  }
}

const queueCounts = (broker: Broker) => broker.entities().find((e) => e.path === QUEUE);

describe("jobs over a Service Bus queue", () => {
  it("two hosts sharing a PostgreSQL store: jobs queued on either host travel over the queue and each runs once and completes once", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: QUEUE }] } });
    const db = await testDb("postgres");
    const hosts = await Promise.all([0, 1].map(() => hostWith(plugins.bundle, manifest, { db, runJobs: true, jobs: { concurrency: 2, transport: transport(broker) } })));
    try {
      const ran = outcomesOf(hosts, 12);
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) ids.push(...(await create(hosts[i % 2]!, "shared", `record ${i}`)));
      expect(ids).toHaveLength(12);
      const outcomes = await ran;
      expect(outcomes.map((o) => o.outcome)).toEqual(ids.map(() => "succeeded"));
      expect(outcomes.map((o) => o.id).sort()).toEqual([...ids].sort());
      // Competing consumers: the broker shares the messages between the hosts' receivers.
      expect(new Set(outcomes.map((o) => o.host))).toEqual(new Set([0, 1]));
      // Each job's plug-in ran once, and each job is completed once, in the store.
      expect((await rows(hosts[0]!, "jobrun")).map((r) => r.attributes.operationid).sort()).toEqual([...ids].sort());
      expect(await sql(db, "SELECT state_code, status_code, count(*)::int AS n FROM system_jobs GROUP BY 1, 2")).toEqual([{ state_code: 3, status_code: 30, n: 12 }]);
      expect(hosts.map((h) => h.health().jobs.queue)).toEqual([{ queue: QUEUE }, { queue: QUEUE }]);
    } finally {
      await Promise.all(hosts.map((h) => h.close()));
    }
    // Every message was settled (completed): none waits, none is locked, none was dead-lettered.
    expect(queueCounts(broker)).toMatchObject({ active: 0, locked: 0, scheduled: 0 });
    expect(broker.entities().find((e) => e.path === `${QUEUE}/$DeadLetterQueue`)).toMatchObject({ active: 0 });
    await broker.close();
  });

  it("a job that asks to be retried comes back as a scheduled message; after maxAsyncAttempts it is Failed in the store and its message dead-lettered with the reason (two hosts on one SQLite file)", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: QUEUE }] } });
    const db = path.join(dir, "retry.db");
    const hosts = await Promise.all([0, 1].map(() => hostWith(plugins.bundle, manifest, { db, runJobs: true, jobs: { backoffBaseMs: 20, transport: transport(broker) } })));
    try {
      const ran = outcomesOf(hosts, 4);
      const [retried] = await create(hosts[0]!, "retry", "again");
      const [failed] = await create(hosts[1]!, "failing", "once");
      const outcomes = await ran;
      expect(outcomes.filter((o) => o.id === retried).map((o) => o.outcome)).toEqual(["retrying", "retrying", "failed"]);
      expect(outcomes.filter((o) => o.id === failed).map((o) => o.outcome)).toEqual(["failed"]);
      expect(await hosts[0]!.getJob(retried!)).toMatchObject({ stateCode: 3, statusCode: 31, retryCount: 2, errorCode: 4242, message: expect.stringContaining("gave up after 3 attempts") });
      expect(await hosts[0]!.getJob(failed!)).toMatchObject({ stateCode: 3, statusCode: 31, retryCount: 0, message: expect.stringContaining("no good") });
    } finally {
      await Promise.all(hosts.map((h) => h.close()));
    }
    const dead = await deadLettered(broker);
    expect(dead).toHaveLength(2);
    expect(dead).toEqual(
      expect.arrayContaining([
        // The last attempt's message: the retries were messages of their own, scheduled at the job's postpone time.
        { jobId: expect.any(String), attempt: 2, reason: "MaxAttemptsExceeded", description: expect.stringMatching(/try again later.*gave up after 3 attempts/) },
        { jobId: expect.any(String), attempt: 0, reason: "JobFailed", description: expect.stringContaining("no good") },
      ]),
    );
    expect(queueCounts(broker)).toMatchObject({ active: 0, locked: 0, scheduled: 0 });
    await broker.close();
  });

  it("a job whose message could not be sent stays Ready in the store and the sweep runs it (nothing is dropped); health names why", async () => {
    // No such queue: every send is refused, as by a namespace that lost the queue.
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: QUEUE }] } });
    const clock = new ManualClock();
    const host = await hostWith(plugins.bundle, manifest, { db: path.join(dir, "sweep.db"), clock, runJobs: true, jobs: { transport: { kind: "servicebus", connectionString: `${broker.connectionString};EntityPath=no-such-queue` } } });
    try {
      const [jobId] = await create(host, "shared", "unsent");
      await vi.waitFor(() => expect(host.health().jobs.queue?.lastError?.code).toBe("JOB_QUEUE_UNREACHABLE"), { timeout: 10_000 });
      expect(host.health().status).toBe("degraded");
      expect(await host.getJob(jobId!)).toMatchObject({ stateCode: 0 }); // not run: nothing brought it yet
      const ran = outcomesOf([host], 1);
      await clock.advance(jobTransportDefaults.sweepMs);
      expect(await ran).toEqual([expect.objectContaining({ id: jobId, outcome: "succeeded" })]);
      expect(await host.getJob(jobId!)).toMatchObject({ stateCode: 3, statusCode: 30 });
    } finally {
      await host.close();
      await broker.close();
    }
  });

  it("a duplicate message of a job already run is completed without running it again", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: QUEUE }] } });
    const host = await hostWith(plugins.bundle, manifest, { db: path.join(dir, "dup.db"), runJobs: true, jobs: { transport: transport(broker) } });
    const client = new ServiceBusClient(broker.connectionString);
    try {
      const ran = outcomesOf([host], 1);
      const [jobId] = await create(host, "shared", "once");
      await ran;
      // A resend of its message, as after a send whose acknowledgement was lost.
      const sender = client.createSender(QUEUE);
      await sender.sendMessages({ body: jobId, messageId: jobId, applicationProperties: { jobId: jobId!, attempt: 0 } });
      await vi.waitFor(() => expect(queueCounts(broker)).toMatchObject({ active: 0, locked: 0 }), { timeout: 10_000 });
      expect((await rows(host, "jobrun")).map((r) => r.attributes.operationid)).toEqual([jobId]);
    } finally {
      await client.close();
      await host.close();
      await broker.close();
    }
  });

  it("a message whose job another host holds (a host that died mid-job) comes back when that lease runs out, and runs the job then", async () => {
    // The broker's scheduled messages and the hosts' leases go by one manual clock.
    const clock = new ManualClock();
    const broker = await startBroker({ port: 0, clock, topology: { queues: [{ name: QUEUE }] } });
    const db = path.join(dir, "died.db");
    const caller = await hostWith(plugins.bundle, manifest, { db, clock, runJobs: false, jobs: { transport: transport(broker) } });
    const [jobId] = await create(caller, "shared", "orphan");
    // A host that leased the job and died: its lease runs for a minute more.
    const [held] = await caller.store.write(() => caller.pipeline.jobs.claimBatch("a host that died", 60_000, 1));
    expect(held?.job.id).toBe(jobId);
    const runner = await hostWith(plugins.bundle, manifest, { db, clock, runJobs: true, jobs: { leaseMs: 60_000, transport: transport(broker) } });
    try {
      // The message found the job Locked: it was completed, and a message scheduled for when the lease runs out.
      await vi.waitFor(() => expect(queueCounts(broker)).toMatchObject({ active: 0, locked: 0, scheduled: 1 }), { timeout: 10_000 });
      expect(await caller.getJob(jobId!)).toMatchObject({ stateCode: 2 });
      const ran = outcomesOf([runner], 1);
      await clock.advance(65_000);
      expect(await ran).toEqual([expect.objectContaining({ id: jobId, outcome: "succeeded" })]);
      expect((await rows(caller, "jobrun")).map((r) => r.attributes.operationid)).toEqual([jobId]);
    } finally {
      await Promise.all([caller.close(), runner.close()]);
      await broker.close();
    }
  });

  it("plugbox serve --jobs-queue: a request's job travels over the queue and runs; SIGTERM closes the receiver and exits 0", async () => {
    const project = path.join(dir, "serve");
    cpSync(path.join(repo, "samples/pipeline"), project, { recursive: true, filter: (src) => !/\.db|bundle\.js$/.test(src) });
    const built = await plugbox(["build", "samples/pipeline/plugins.ts", "-o", path.join(project, "accounts.bundle.js")], repo);
    expect(built.code, built.stderr).toBe(0);
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: QUEUE }] } });
    const child = spawn(process.execPath, [bin, "serve", "--manifest", "plugbox.json", "--db", "serve.db", "--port", "0", "--jobs-queue", `${broker.connectionString}EntityPath=${QUEUE}`], { cwd: project, stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let stdout = "";
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString();
          const match = /listening: (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
          if (match) resolve(match[1]!);
        });
        child.once("exit", (code) => reject(new Error(`plugbox serve exited with ${code}: ${stderr}`)));
      });
      const body = { requestName: "Create", parameters: { Target: { $type: "Entity", logicalName: "account", attributes: { name: "Contoso" } } } };
      const answer = await fetch(`${url}/execute`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      expect(answer.status).toBe(200);
      const [jobId] = ((await answer.json()) as { journal: { jobs: string[] } }).journal.jobs;
      const store = new Database(path.join(project, "serve.db"), { readonly: true });
      try {
        await vi.waitFor(() => expect(store.prepare("SELECT state_code, status_code FROM system_jobs WHERE id = ?").get(jobId)).toEqual({ state_code: 3, status_code: 30 }), { timeout: 20_000, interval: 50 });
      } finally {
        store.close();
      }
      expect(((await (await fetch(`${url}/health`)).json()) as { jobs: unknown }).jobs).toMatchObject({ running: true, queue: { queue: QUEUE } });
    } finally {
      child.kill("SIGTERM");
      expect(await exited, stderr).toBe(0);
      await broker.close();
    }
    expect(queueCounts(broker)).toMatchObject({ active: 0, locked: 0, scheduled: 0 });
  });

  describe("bad options are OPTIONS_INVALID naming the option and the fix", () => {
    const good = { kind: "servicebus", connectionString: "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true", queue: "jobs" };
    it.each([
      [{ ...good, kind: "rabbitmq" }, {}, 'createHost options.jobs.transport.kind must be "servicebus" (the only transport there is); got "rabbitmq"'],
      [{ ...good, connectionString: "" }, {}, "createHost options.jobs.transport.connectionString must be a non-empty string"],
      [{ ...good, connectionString: "not a connection string" }, {}, "createHost options.jobs.transport.connectionString is not a Service Bus connection string"],
      [{ ...good, queue: undefined }, {}, "createHost options.jobs.transport.queue is required: name the queue the jobs travel on (or end the connection string with ;EntityPath=<queue>)"],
      [{ ...good, connectionString: `${good.connectionString};EntityPath=other` }, {}, 'createHost options.jobs.transport.queue is "jobs" but the connection string\'s EntityPath is "other"'],
      [{ ...good, sweepMs: 5 }, {}, "createHost options.jobs.transport.sweepMs must be a whole number from 100 to 86400000"],
      [{ ...good, topic: "t" }, {}, "createHost options.jobs.transport.topic is not an option; known options are kind, connectionString, queue, sweepMs"],
      [good, { pollMs: 50 }, "createHost options.jobs.pollMs does not apply with jobs.transport"],
    ])("%j %j", async (transportOptions, jobs, message) => {
      const error = await failure(hostWith(plugins.bundle, manifest, { jobs: { ...jobs, transport: transportOptions as never } }));
      expect(error).toMatchObject({ code: "OPTIONS_INVALID", message: expect.stringContaining(message) });
    });

    it("plugbox serve --jobs-queue with --poll-ms exits 2 with CLI_USAGE", async () => {
      const ran = await plugbox(["serve", "--manifest", "nowhere.json", "--jobs-queue", `${good.connectionString};EntityPath=jobs`, "--poll-ms", "50"]);
      expect(ran.code).toBe(2);
      expect(ran.stderr).toContain("[CLI_USAGE]: --poll-ms does not apply with --jobs-queue");
    });
  });
});
