/**
 * The local broker, driven only by the real @azure/service-bus client over real AMQP.
 */
import { ServiceBusClient, type ServiceBusReceivedMessage, type ServiceBusReceiverOptions } from "@azure/service-bus";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker, type Broker } from "../dist/host/broker/index.js";

let broker: Broker;
let client: ServiceBusClient;

beforeAll(async () => {
  broker = await startBroker({
    port: 0,
    autoCreate: true,
    topology: {
      queues: [{ name: "orders", maxDeliveryCount: 3 }, { name: "short-lock", lockDurationMs: 300 }],
      topics: [{ name: "events", subscriptions: [{ name: "audit" }, { name: "billing" }] }],
    },
  });
  client = new ServiceBusClient(broker.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 5_000 } });
});

afterAll(async () => {
  await client.close();
  await broker.close();
});

const receive = (queue: string, n = 1, options: ServiceBusReceiverOptions = {}) => {
  const receiver = client.createReceiver(queue, options);
  return { receiver, messages: () => receiver.receiveMessages(n, { maxWaitTimeInMs: 1_000 }) };
};

describe("plugbox broker with the real Service Bus client", () => {
  it("prints a development connection string for 127.0.0.1 and the port it took", () => {
    expect(broker.connectionString).toBe(`Endpoint=sb://127.0.0.1:${broker.port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;`);
  });

  it("send and peek-lock receive keep body, properties, message id, correlation id, subject and content type; complete removes the message", async () => {
    const sender = client.createSender("orders");
    await sender.sendMessages({ body: '{"n":1}', messageId: "m-1", correlationId: "c-1", subject: "new", contentType: "application/json", applicationProperties: { tenant: "contoso", n: 1 } });
    const { receiver, messages } = receive("orders");
    const [message] = await messages();
    expect(message).toMatchObject({ body: '{"n":1}', messageId: "m-1", correlationId: "c-1", subject: "new", contentType: "application/json", applicationProperties: { tenant: "contoso", n: 1 }, deliveryCount: 0 });
    expect(message!.lockToken).toMatch(/^[0-9a-f-]{36}$/);
    expect(message!.enqueuedTimeUtc).toBeInstanceOf(Date);
    expect(message!.lockedUntilUtc!.getTime()).toBeGreaterThan(message!.enqueuedTimeUtc!.getTime());
    await receiver.completeMessage(message!);
    expect(await messages()).toEqual([]);
    await receiver.close();
    await sender.close();
  });

  it("an array and a message batch are unpacked into messages with increasing sequence numbers", async () => {
    const sender = client.createSender("batch");
    await sender.sendMessages([{ body: "a" }, { body: "b" }]);
    const batch = await sender.createMessageBatch();
    expect(batch.tryAddMessage({ body: "c" })).toBe(true);
    expect(batch.tryAddMessage({ body: "d" })).toBe(true);
    await sender.sendMessages(batch);
    const { receiver, messages } = receive("batch", 10, { receiveMode: "receiveAndDelete" });
    const got = await messages();
    expect(got.map((m) => m.body)).toEqual(["a", "b", "c", "d"]);
    const sequences = got.map((m) => Number(m.sequenceNumber));
    expect(sequences).toEqual([...sequences].sort((x, y) => x - y));
    expect(new Set(sequences).size).toBe(4);
    await receiver.close();
    await sender.close();
  });

  it("abandon redelivers with the delivery count raised; past MaxDeliveryCount the message goes to the dead-letter queue", async () => {
    const sender = client.createSender("orders");
    await sender.sendMessages({ body: "poison", messageId: "p-1" });
    const { receiver, messages } = receive("orders");
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const [m] = await messages();
      counts.push(m!.deliveryCount!);
      await receiver.abandonMessage(m!);
    }
    expect(counts).toEqual([0, 1, 2]);
    expect(await messages()).toEqual([]);
    const dlq = client.createReceiver("orders", { subQueueType: "deadLetter" });
    const [dead] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 1_000 });
    expect(dead).toMatchObject({ body: "poison", messageId: "p-1", deadLetterReason: "MaxDeliveryCountExceeded" });
    await dlq.completeMessage(dead!);
    await Promise.all([dlq.close(), receiver.close(), sender.close()]);
  });

  it("deadLetterMessage moves a message to the dead-letter queue with its reason and description", async () => {
    const sender = client.createSender("orders");
    await sender.sendMessages({ body: "bad order" });
    const { receiver, messages } = receive("orders");
    const [m] = await messages();
    await receiver.deadLetterMessage(m!, { deadLetterReason: "Validation", deadLetterErrorDescription: "no customer" });
    const dlq = client.createReceiver("orders", { subQueueType: "deadLetter" });
    const [dead] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 1_000 });
    expect(dead).toMatchObject({ body: "bad order", deadLetterReason: "Validation", deadLetterErrorDescription: "no customer" });
    await dlq.completeMessage(dead!);
    await Promise.all([dlq.close(), receiver.close(), sender.close()]);
  });

  it("a lock that runs out makes the message available again", async () => {
    const sender = client.createSender("short-lock");
    await sender.sendMessages({ body: "slow" });
    const { receiver, messages } = receive("short-lock", 1, { maxAutoLockRenewalDurationInMs: 0 });
    const [first] = await messages();
    expect(first!.deliveryCount).toBe(0);
    let again: ServiceBusReceivedMessage[] = [];
    await expect.poll(async () => (again = await messages()).length, { timeout: 5_000 }).toBe(1);
    expect(again[0]).toMatchObject({ body: "slow", deliveryCount: 1 });
    await receiver.completeMessage(again[0]!);
    await receiver.close();
    await sender.close();
  });

  it("a topic fans each message out to every subscription", async () => {
    const sender = client.createSender("events");
    await sender.sendMessages({ body: "created" });
    for (const subscription of ["audit", "billing"]) {
      const receiver = client.createReceiver("events", subscription, { receiveMode: "receiveAndDelete" });
      expect((await receiver.receiveMessages(1, { maxWaitTimeInMs: 1_000 })).map((m) => m.body)).toEqual(["created"]);
      await receiver.close();
    }
    await sender.close();
  });

  it("receiveMessages asks for more than there is and returns what there is when the wait ends (drain)", async () => {
    const sender = client.createSender("drain");
    await sender.sendMessages({ body: "only" });
    const { receiver } = receive("drain");
    const got = await receiver.receiveMessages(5, { maxWaitTimeInMs: 500 });
    expect(got.map((m) => m.body)).toEqual(["only"]);
    expect(await receiver.receiveMessages(5, { maxWaitTimeInMs: 300 })).toEqual([]);
    await receiver.close();
    await sender.close();
  });

  it("an unknown topic or subscription is refused with MessagingEntityNotFound (queues are created on first use with autoCreate)", async () => {
    const receiver = client.createReceiver("events", "nobody");
    await expect(receiver.receiveMessages(1, { maxWaitTimeInMs: 500 })).rejects.toMatchObject({ code: "MessagingEntityNotFound" });
    await receiver.close();
    const strict = await startBroker({ port: 0 });
    const strictClient = new ServiceBusClient(strict.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 5_000 } });
    await expect(strictClient.createSender("missing").sendMessages({ body: 1 })).rejects.toMatchObject({ code: "MessagingEntityNotFound" });
    await strictClient.close();
    await strict.close();
  });
});
