/**
 * The Azure SDK for JS's own published samples, run unchanged against `plugbox broker`: each is a
 * process of its own, given only environment variables (the connection string and entity names it
 * reads), and checked by what it prints and what the broker holds afterwards.
 *
 * The samples' files are not part of this repository (docs/broker.md says why and lists every
 * sample with its source commit), so this suite is not part of `npm test`: `npm run conformance --
 * <samples-dir>` (scripts/azure-sdk-samples.mjs) checks the folder and runs it with
 * vitest.conformance.config.ts, the folder in PLUGBOX_AZURE_SDK_SAMPLES.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker, type Broker } from "../../dist/host/index.js";
import { repo } from "../helpers/cli.js";

interface Manifest {
  samples: Array<{ file: string; source: string; commit: string; runs: boolean }>;
}
const manifest = JSON.parse(readFileSync(path.join(repo, "test/fixtures/azure-sdk-samples.json"), "utf8")) as Manifest;
const folder = process.env.PLUGBOX_AZURE_SDK_SAMPLES ?? "";
const missing = manifest.samples.filter((sample) => !existsSync(path.join(folder, sample.file))).map((sample) => sample.file);

let broker: Broker;

/** Runs one sample as it is published; resolves with its exit code and output. */
function run(file: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [path.join(folder, file)], { cwd: repo, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, out })));
}

describe("the Azure SDK for JS's published samples, unchanged, against plugbox broker", () => {
  beforeAll(async () => {
    if (!folder || missing.length > 0) throw new Error(`PLUGBOX_AZURE_SDK_SAMPLES must name the samples' folder (npm run conformance -- <dir>); missing there: ${missing.join(", ")}`);
    // The samples are CommonJS, as in their own folder upstream; this repository's package.json says ESM.
    if (!existsSync(path.join(folder, "package.json"))) writeFileSync(path.join(folder, "package.json"), '{ "type": "commonjs" }\n');
    broker = await startBroker({
      port: 0,
      topology: {
        queues: [{ name: "samples-loop" }, { name: "samples-dlq" }, { name: "samples-poison", maxDeliveryCount: 3 }, { name: "samples-sessions", requiresSession: true }],
        eventHubs: [{ name: "samples-hub", partitionCount: 2 }],
      },
    });
  });
  afterAll(() => broker?.close());

  const serviceBus = (queue: string) => ({ SERVICEBUS_CONNECTION_STRING: broker.connectionString, QUEUE_NAME: queue, QUEUE_NAME_WITH_SESSIONS: queue });

  it("sendMessages then receiveMessagesLoop: ten scientists sent as an array and a batch, all ten received and completed", async () => {
    const sent = await run("servicebus/sendMessages.js", serviceBus("samples-loop"));
    expect(sent.code, sent.out).toBe(0);
    expect(broker.messages("samples-loop")).toHaveLength(10);
    const received = await run("servicebus/receiveMessagesLoop.js", serviceBus("samples-loop"));
    expect(received.code, received.out).toBe(0);
    expect(received.out.match(/ {2}Message: '/g)).toHaveLength(10);
    expect(broker.messages("samples-loop")).toEqual([]);
  });

  it("sendMessages then exceedMaxDeliveryCount: each message is abandoned until it reaches the dead-letter queue, which is then emptied", async () => {
    expect((await run("servicebus/sendMessages.js", serviceBus("samples-poison"))).code).toBe(0);
    const poisoned = await run("servicebus/exceedMaxDeliveryCount.js", serviceBus("samples-poison"));
    expect(poisoned.code, poisoned.out).toBe(0);
    expect(poisoned.out.match(/Picked up message; DeliveryCount/g)).toHaveLength(30);
    expect(poisoned.out.match(/Deadletter message: /g)).toHaveLength(10);
    expect(broker.messages("samples-poison")).toEqual([]);
    expect(broker.messages("samples-poison/$DeadLetterQueue")).toEqual([]);
  });

  it("movingMessagesToDLQ then processMessageFromDLQ: the recipe goes to the dead-letter queue with its reason, and back to the queue", async () => {
    const moved = await run("servicebus/advanced/movingMessagesToDLQ.js", serviceBus("samples-dlq"));
    expect(moved.code, moved.out).toBe(0);
    expect(broker.messages("samples-dlq/$DeadLetterQueue")).toEqual([expect.objectContaining({ applicationProperties: expect.objectContaining({ DeadLetterReason: "Incorrect Recipe type" }) })]);
    const fixed = await run("servicebus/advanced/processMessageFromDLQ.js", serviceBus("samples-dlq"));
    expect(fixed.code, fixed.out).toBe(0);
    expect(fixed.out).toContain(">>>>> Received the message from DLQ");
    expect(broker.messages("samples-dlq/$DeadLetterQueue")).toEqual([]);
    expect(broker.messages("samples-dlq")).toHaveLength(1);
  });

  it("sessionState: all seven shopping events are processed one receiver at a time, and the carts end as the sample says", async () => {
    const result = await run("servicebus/advanced/sessionState.js", serviceBus("samples-sessions"));
    expect(result.code, result.out).toBe(0);
    expect(result.out.match(/Received message: Customer/g)).toHaveLength(7);
    expect(result.out).not.toContain("No events were received");
    expect(result.out).toContain('Items in cart for alice: ["Milk","Bread"]');
    expect(result.out).toContain("Items in cart for alice: []");
    expect(result.out).toContain('Items in cart for bob: ["Pencil","Paper","Stapler"]');
    expect(broker.messages("samples-sessions")).toEqual([]);
  });

  it("Event Hubs sendEvents: a batch of ten events reaches the hub", async () => {
    const result = await run("eventhubs/sendEvents.js", { EVENTHUB_CONNECTION_STRING: broker.connectionString, EVENTHUB_NAME: "samples-hub" });
    expect(result.code, result.out).toBe(0);
    expect(result.out).toContain("Sent 10 events");
    expect(broker.eventHubPartitions().filter((p) => p.path.startsWith("samples-hub/")).reduce((n, p) => n + p.events, 0)).toBe(10);
  });
});
