/**
 * Event Hubs on the local broker, driven only by the real @azure/event-hubs clients over AMQP.
 */
import { EventHubConsumerClient, EventHubProducerClient, earliestEventPosition, latestEventPosition, type ReceivedEventData } from "@azure/event-hubs";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEmulatorConfig } from "../../../dist/host/testing/internal.js";
import { startBroker, type Broker } from "../../../dist/host/index.js";
import { repo } from "../../helpers/cli.js";

let broker: Broker;

beforeAll(async () => {
  broker = await startBroker({ port: 0, topology: { queues: [{ name: "q" }], eventHubs: [{ name: "contexts", partitionCount: 2, consumerGroups: ["audit"] }, { name: "single" }] } });
});
afterAll(() => broker.close());

/**
 * Reads a partition from a position until `count` events arrived. `onReceiving` is called once the
 * reader's link is open (its first batch, empty when nothing came within the batch wait).
 */
async function read(hub: string, partitionId: string, count: number, position = earliestEventPosition, group = "$Default", onReceiving?: () => void): Promise<ReceivedEventData[]> {
  const consumer = new EventHubConsumerClient(group, broker.connectionString, hub);
  const events: ReceivedEventData[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let receiving = false;
      const subscription = consumer.subscribe(
        partitionId,
        {
          processEvents: async (batch) => {
            if (!receiving) {
              receiving = true;
              onReceiving?.();
            }
            events.push(...batch);
            if (events.length >= count) resolve();
          },
          processError: async (error) => reject(error),
        },
        { startPosition: position, maxWaitTimeInSeconds: 0.05 },
      );
      void subscription;
    });
  } finally {
    await consumer.close();
  }
  return events;
}

describe("plugbox broker as an Event Hubs namespace", () => {
  it("reports the hub's partitions and each partition's last sequence number", async () => {
    const producer = new EventHubProducerClient(broker.connectionString, "contexts");
    expect(await producer.getPartitionIds()).toEqual(["0", "1"]);
    const properties = await producer.getEventHubProperties();
    expect(properties).toMatchObject({ name: "contexts", partitionIds: ["0", "1"] });
    expect(await producer.getPartitionProperties("0")).toMatchObject({ partitionId: "0", isEmpty: true, lastEnqueuedSequenceNumber: -1 });
    await producer.close();
  });

  it("a batch sent to one partition is read back in order with body, properties, content type, sequence numbers and offsets", async () => {
    const producer = new EventHubProducerClient(broker.connectionString, "single");
    const batch = await producer.createBatch({ partitionId: "0" });
    expect(batch.tryAdd({ body: '{"n":1}', contentType: "application/json", messageId: "m-1", properties: { kind: "first" } })).toBe(true);
    expect(batch.tryAdd({ body: '{"n":2}', contentType: "application/json", properties: { kind: "second" } })).toBe(true);
    await producer.sendBatch(batch);
    await producer.close();
    const events = await read("single", "0", 2);
    expect(events.map((e) => [e.body, e.contentType, e.properties?.kind])).toEqual([['{"n":1}', "application/json", "first"], ['{"n":2}', "application/json", "second"]]);
    expect(events[0]!.messageId).toBe("m-1");
    expect(events.map((e) => e.sequenceNumber)).toEqual([0, 1]);
    expect(events.map((e) => String(e.offset))).toEqual(["0", "1"]);
    expect(events[0]!.enqueuedTimeUtc).toBeInstanceOf(Date);
  });

  it("events without a partition are spread over the partitions, and one partition key always lands on one partition", async () => {
    const producer = new EventHubProducerClient(broker.connectionString, "contexts");
    await producer.sendBatch([{ body: "a" }, { body: "b" }]);
    await producer.sendBatch([{ body: "k1" }, { body: "k2" }], { partitionKey: "account-1" });
    const held = async (id: string) => (await producer.getPartitionProperties(id)).lastEnqueuedSequenceNumber + 1;
    const [inZero, inOne] = [await held("0"), await held("1")];
    await producer.close();
    expect(inZero + inOne).toBe(4);
    const [zero, one] = await Promise.all([read("contexts", "0", inZero), read("contexts", "1", inOne)]);
    const bodies = [...zero, ...one].map((e) => e.body);
    expect(bodies.sort()).toEqual(["a", "b", "k1", "k2"]);
    const keyed = zero.some((e) => e.body === "k1") ? zero : one;
    expect(keyed.filter((e) => e.body === "k1" || e.body === "k2").map((e) => e.partitionKey)).toEqual(["account-1", "account-1"]);
    expect(zero.length).toBeGreaterThan(0);
    expect(one.length).toBeGreaterThan(0);
  });

  it("a reader starts where its position says: after a sequence number, or at the end for new events only", async () => {
    const producer = new EventHubProducerClient(broker.connectionString, "single");
    await producer.sendBatch([{ body: "x" }, { body: "y" }], { partitionId: "0" });
    const all = await read("single", "0", 4);
    const lastTwo = all.slice(-2);
    expect(lastTwo.map((e) => e.body)).toEqual(["x", "y"]);
    const after = await read("single", "0", 1, { sequenceNumber: lastTwo[0]!.sequenceNumber });
    expect(after.map((e) => e.body)).toEqual(["y"]);
    let receiving!: () => void;
    const open = new Promise<void>((resolve) => (receiving = resolve));
    const latest = read("single", "0", 1, latestEventPosition, "$Default", receiving);
    await open;
    await producer.sendBatch([{ body: "new" }], { partitionId: "0" });
    expect((await latest).map((e) => e.body)).toEqual(["new"]);
    await producer.close();
  });

  it("consumer groups read independently; an unknown group or hub is refused", async () => {
    expect((await read("contexts", "0", 1, earliestEventPosition, "audit")).length).toBeGreaterThan(0);
    await expect(read("single", "0", 1, earliestEventPosition, "nobody")).rejects.toMatchObject({ message: expect.stringContaining("nobody") });
    const producer = new EventHubProducerClient(broker.connectionString, "missing");
    await expect(producer.getPartitionIds()).rejects.toMatchObject({ code: "MessagingEntityNotFoundError" });
    await producer.close();
  });

  it("counts the events each partition holds", () => {
    expect(broker.eventHubPartitions()).toContainEqual({ path: "single/Partitions/0", events: 5 });
  });

  it("reads the Event Hubs emulator's Config.json", () => {
    const topology = parseEmulatorConfig(readFileSync(path.join(repo, "test/fixtures/broker/EventHubs.Config.json"), "utf8"), { strict: true });
    expect(topology.eventHubs).toEqual([{ name: "eh1", partitionCount: 2, consumerGroups: ["cg1"] }]);
    expect(() => parseEmulatorConfig(JSON.stringify({ UserConfig: { NamespaceConfig: [{ Type: "EventHub", Entities: [{ Name: "x", PartitionCount: "many" }] }] } }))).toThrow(/Entities\[0\]\.PartitionCount must be a whole number/);
  });
});
