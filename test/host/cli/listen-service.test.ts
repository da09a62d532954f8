/**
 * `plugbox listen` behaves like a service: it waits for a broker that is not up yet, reconnects with
 * a back-off when the broker is killed and started again (saying so on stderr), keeps receiving,
 * and ends with exit 0 when told to stop.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { afterEach, describe, expect, it, onTestFailed } from "vitest";
import { EventHubProducerClient } from "@azure/event-hubs";
import { ServiceBusClient } from "@azure/service-bus";
import { serializeRemoteExecutionContext } from "../../../dist/sdk/index.js";
import { bin } from "../../helpers/cli.js";
import { freePort, startBrokerProcess, type BrokerProcess } from "../../helpers/faults.js";

const running: Array<{ kill(): Promise<void> }> = [];
afterEach(async () => {
  for (const process of running.splice(0)) await process.kill();
});

/** A posted execution context, as the relay sends it: the body is the context's text as bytes. */
function context(operationId: string) {
  const text = serializeRemoteExecutionContext({
    messageName: "Create",
    primaryEntityName: "account",
    primaryEntityId: "6d81597f-0f9f-e711-8122-000d3aa2331c",
    stage: 40,
    mode: 1,
    depth: 1,
    operationId,
    inputParameters: {},
    outputParameters: {},
    sharedVariables: {},
  });
  return { body: Buffer.from(text), messageId: operationId, contentType: "application/json" };
}

async function send(connectionString: string, ids: string[]): Promise<void> {
  const client = new ServiceBusClient(connectionString);
  try {
    await client.createSender("contexts").sendMessages(ids.map(context));
  } finally {
    await client.close();
  }
}

async function sendEvents(connectionString: string, ids: string[]): Promise<void> {
  const producer = new EventHubProducerClient(connectionString, "contexts-hub");
  try {
    await producer.sendBatch(ids.map(context));
  } finally {
    await producer.close();
  }
}

/** `plugbox listen` as a long-running process, its output kept as it comes. */
function listen(connectionString: string, source: string[] = ["--queue", "contexts"]): { child: ChildProcess; out: () => string; err: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [bin, "listen", "--connection-string", connectionString, ...source], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  running.push({
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
    },
  });
  return { child, out: () => out, err: () => err, exited };
}

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;

async function broker(port: number): Promise<BrokerProcess> {
  const started = await startBrokerProcess(["--auto-create", "--event-hub", "contexts-hub:2", "--port", String(port)]);
  running.push(started);
  return started;
}

describe("plugbox listen as a service", () => {
  it("keeps receiving across three broker kills and restarts, says on stderr that it lost and regained the connection, and ends on SIGTERM with exit 0", { timeout: 120_000 }, async () => {
    const port = await freePort();
    let current = await broker(port);
    const listener = listen(current.connectionString);
    let sent = 0;
    for (let round = 0; round < 3; round++) {
      const ids = [uuid(++sent), uuid(++sent)];
      await send(current.connectionString, ids);
      for (const id of ids) await expect.poll(listener.out, { timeout: 30_000 }).toContain(`${id}: Create of account`);
      await current.kill();
      current = await broker(port);
      await expect.poll(listener.err, { timeout: 30_000 }).toMatch(new RegExp(`(listen: connected to sb://127\\.0\\.0\\.1:${port} again[\\s\\S]*){${round + 1}}`));
    }
    const last = [uuid(++sent)];
    await send(current.connectionString, last);
    await expect.poll(listener.out, { timeout: 30_000 }).toContain(`${last[0]}: Create of account`);
    expect(listener.err()).toMatch(new RegExp(`listen: cannot reach sb://127\\.0\\.0\\.1:${port} \\(.+\\); trying again in \\d+ ms \\(attempt 1\\)`));
    expect(listener.child.exitCode).toBeNull();
    listener.child.kill("SIGTERM");
    expect(await listener.exited).toBe(0);
    expect(listener.err()).toContain("listen: stopped by SIGTERM after 7 context(s)");
    expect(listener.err()).not.toMatch(/internal error|^\s+at /m);
  });

  it("waits for a broker that is not up yet, then receives what is sent once it is", { timeout: 60_000 }, async () => {
    const port = await freePort();
    const listener = listen(`Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;`);
    await expect.poll(listener.err, { timeout: 20_000 }).toMatch(/trying again in \d+ ms \(attempt 2\)/);
    const started = await broker(port);
    await send(started.connectionString, [uuid(100)]);
    await expect.poll(listener.out, { timeout: 30_000 }).toContain(`${uuid(100)}: Create of account`);
    listener.child.kill("SIGINT");
    expect(await listener.exited).toBe(0);
  });

  it("an event hub too: after the broker is killed and started again it finds the hub made anew, and prints what the new one holds", { timeout: 60_000 }, async () => {
    const port = await freePort();
    let current = await broker(port);
    const listener = listen(current.connectionString, ["--event-hub", "contexts-hub"]);
    // On a failure, what the listener said is the evidence.
    onTestFailed(() => console.log(`listen's stdout:\n${listener.out()}\nlisten's stderr:\n${listener.err()}`));
    await sendEvents(current.connectionString, [uuid(200), uuid(201)]);
    for (const id of [uuid(200), uuid(201)]) await expect.poll(listener.out, { timeout: 30_000 }).toContain(`${id}: Create of account`);
    await current.kill();
    current = await broker(port);
    // Restarted within a second, the broker may be back before the loss shows: then the hub is new.
    await expect.poll(listener.err, { timeout: 30_000 }).toMatch(/listen: (connected to sb:\/\/127\.0\.0\.1:\d+ again|the event hub contexts-hub was made anew \(its broker restarted\); reading it from its start)/);
    await sendEvents(current.connectionString, [uuid(202)]);
    await expect.poll(listener.out, { timeout: 30_000 }).toContain(`${uuid(202)}: Create of account`);
    listener.child.kill("SIGTERM");
    expect(await listener.exited).toBe(0);
    expect(listener.out().match(/: Create of account/g)).toHaveLength(3);
  });
});
