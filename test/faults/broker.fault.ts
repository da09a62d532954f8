/**
 * Fault suite: `plugbox broker`, a process of its own, killed with SIGKILL in the middle of a relay
 * and started again on the same port, while `plugbox listen` reads the queue. The relay retries the
 * posts that could not go and every job ends succeeded; listen reconnects and receives every post
 * the new broker took. (A broker keeps messages in memory only, like the emulators: what the killed
 * one had accepted and not yet delivered dies with it, as it would with any broker that loses its
 * disk; plugbox's part, that a job completes only once its post was accepted, is what is checked.)
 * A post in flight when the broker dies waits out the endpoint's timeoutMs (the Service Bus client
 * waits for its link to come back): 3 s here, where the default is 60 s.
 */
import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { createHost } from "../../dist/host/index.js";
import { Entity } from "../../dist/sdk/index.js";
import { bin } from "../helpers/cli.js";
import { freePort, startBrokerProcess, type BrokerProcess } from "../helpers/faults.js";

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

async function broker(port: number): Promise<BrokerProcess> {
  const started = await startBrokerProcess(["--auto-create", "--port", String(port)]);
  stops.push(() => started.kill());
  return started;
}

describe("fault: the broker killed mid-relay", () => {
  it("every job ends succeeded (none failed, none lost), the relay and listen reconnect, and listen receives every post the restarted broker took", { timeout: 180_000 }, async () => {
    const port = await freePort();
    let current = await broker(port);
    const listen = spawn(process.execPath, [bin, "listen", "--connection-string", current.connectionString, "--queue", "contexts", "--json"], { stdio: ["ignore", "pipe", "pipe"] });
    let listened = "";
    let listenErr = "";
    listen.stdout!.on("data", (chunk: Buffer) => (listened += chunk.toString()));
    listen.stderr!.on("data", (chunk: Buffer) => (listenErr += chunk.toString()));
    const listenExited = new Promise<number | null>((resolve) => listen.once("exit", (code) => resolve(code)));
    stops.push(async () => {
      if (listen.exitCode === null) {
        listen.kill("SIGKILL");
        await listenExited;
      }
    });
    const host = await createHost({
      manifest: {
        serviceEndpoints: [{ id: "c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80", name: "contexts", contract: "Queue", path: "contexts", connectionString: "env:PLUGBOX_FAULT_SB", maxAttempts: 50, timeoutMs: 3_000 }],
        steps: [{ serviceEndpoint: "contexts", message: "Create", entity: "account", stage: 40, mode: "async" }],
      },
      secrets: { env: { PLUGBOX_FAULT_SB: current.connectionString } },
      runtimeOptions: { workers: 1, prewarmIsolates: 0, startOnFirstExecution: true },
      jobs: { backoffBaseMs: 100, pollMs: 50 },
    });
    stops.push(() => host.close());
    const total = 300;
    const ids: string[] = [];
    const create = async (i: number) => ids.push((await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: `Account ${i}` }) } })).journal.jobs[0]!);
    const succeeded = async () => (await host.listJobs()).filter((job) => job.statusCode === 30).length;
    // The runner relays as the requests come; a third of the way, the broker dies.
    for (let i = 0; i < total / 3; i++) await create(i);
    await expect.poll(succeeded, { timeout: 60_000, interval: 20 }).toBeGreaterThan(0);
    await current.kill();
    for (let i = total / 3; i < total; i++) await create(i);
    // Posts fail while it is down, and their jobs wait for another attempt.
    await expect.poll(async () => (await host.listJobs()).some((job) => job.retryCount > 0), { timeout: 30_000, interval: 20 }).toBe(true);
    current = await broker(port);
    const restartedAt = new Date().toISOString();
    await expect.poll(succeeded, { timeout: 120_000, interval: 200 }).toBe(total);
    const jobs = await host.listJobs();
    expect(jobs.filter((job) => job.statusCode === 31)).toEqual([]);
    const takenByTheNewBroker = jobs.filter((job) => job.completedOn! > restartedAt).map((job) => job.id);
    expect(takenByTheNewBroker.length).toBeGreaterThan(0);
    const received = () => new Set(listened.trim().split("\n").filter(Boolean).map((line) => (JSON.parse(line) as { messageId: string }).messageId));
    await expect.poll(() => takenByTheNewBroker.filter((id) => !received().has(id)), { timeout: 60_000, interval: 200 }).toEqual([]);
    for (const id of received()) expect(ids).toContain(id);
    expect(listenErr).toMatch(new RegExp(`listen: connected to sb://127\\.0\\.0\\.1:${port} again`));
    listen.kill("SIGTERM");
    expect(await listenExited).toBe(0);
  });
});
