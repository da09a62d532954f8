/**
 * Flow control on the local broker, with the real @azure/service-bus client (and raw rhea where the
 * client cannot express a case): a receiver gets exactly the messages it asked for, and only those
 * are locked; competing receivers share a queue; unsettled locks of a receiver that goes away
 * follow Service Bus's documented behaviour.
 *
 * The broker's time is a manual clock: a lock runs out when a test advances it, and the client
 * settles against the broker's lock; every other wait is on an observed state, not a sleep.
 */
import { ServiceBusClient, type ServiceBusReceivedMessage } from "@azure/service-bus";
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker, type Broker } from "../../../dist/host/index.js";
import { ManualClock } from "../../../dist/host/testing/index.js";

const amqp = createRequire(import.meta.url)("rhea") as typeof import("rhea");

let broker: Broker;
let client: ServiceBusClient;
const clock = new ManualClock(Date.now());

beforeAll(async () => {
  broker = await startBroker({
    port: 0,
    clock,
    topology: {
      queues: [
        { name: "three" },
        { name: "competing" },
        { name: "proportional" },
        { name: "short", lockDurationMs: 800 },
        { name: "closing", lockDurationMs: 800 },
        { name: "streaming" },
        { name: "dead" },
        { name: "cart", requiresSession: true },
        { name: "raw" },
      ],
      topics: [{ name: "events", subscriptions: [{ name: "all" }] }],
    },
  });
  client = new ServiceBusClient(broker.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 10_000 } });
});

afterAll(async () => {
  await client.close();
  await broker.close();
});

const states = (path: string) => broker.messages(path).map((m) => [m.body, m.state, m.deliveryCount]);
const bodies = (messages: ServiceBusReceivedMessage[]) => messages.map((m) => m.body);

async function send(queue: string, ...values: string[]): Promise<void> {
  const sender = client.createSender(queue);
  await sender.sendMessages(values.map((body) => ({ body })));
  await sender.close();
}

describe("credit-exact delivery with the real Service Bus client", () => {
  it("receiveMessages(1) on a queue of 3 locks only the one it returns, and a second receiver gets the other two at once", async () => {
    await send("three", "a", "b", "c");
    const first = client.createReceiver("three");
    const [a] = await first.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(a!.body).toBe("a");
    expect(states("three")).toEqual([['"a"', "locked", 0], ['"b"', "active", 0], ['"c"', "active", 0]]);
    const second = client.createReceiver("three");
    const rest = await second.receiveMessages(2, { maxWaitTimeInMs: 2_000 });
    expect(bodies(rest)).toEqual(["b", "c"]);
    await Promise.all([first.completeMessage(a!), ...rest.map((m) => second.completeMessage(m))]);
    expect(broker.messages("three")).toEqual([]);
    await Promise.all([first.close(), second.close()]);
  });

  it("accept session, receive one, complete, close, accept again: the rest of the session is still there (the SDK's session-state sample)", async () => {
    const sender = client.createSender("cart");
    await sender.sendMessages(["Milk", "Bread", "Eggs", "Checkout"].map((body) => ({ body, sessionId: "alice" })));
    await sender.close();
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      const session = await client.acceptSession("cart", "alice");
      const [message] = await session.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
      got.push(message!.body as string);
      await session.completeMessage(message!);
      await session.close();
    }
    expect(got).toEqual(["Milk", "Bread", "Eggs", "Checkout"]);
    expect(broker.messages("cart")).toEqual([]);
  });

  it("with a short lock, a receiver that asks again after its lock ran out gets no stale copies: only the one it held comes back, counted once", async () => {
    await send("short", "s1", "s2", "s3");
    const receiver = client.createReceiver("short", { maxAutoLockRenewalDurationInMs: 0 });
    const [held] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(held!.body).toBe("s1");
    await clock.advance(799);
    expect(states("short")).toEqual([['"s1"', "locked", 0], ['"s2"', "active", 0], ['"s3"', "active", 0]]);
    await clock.advance(1);
    expect(states("short")).toEqual([['"s1"', "active", 1], ['"s2"', "active", 0], ['"s3"', "active", 0]]);
    const again = await receiver.receiveMessages(3, { maxWaitTimeInMs: 2_000 });
    expect(again.map((m) => [m.body, m.deliveryCount])).toEqual([["s1", 1], ["s2", 0], ["s3", 0]]);
    await Promise.all(again.map((m) => receiver.completeMessage(m)));
    await expect(receiver.completeMessage(held!)).rejects.toMatchObject({ code: "MessageLockLost" });
    expect(broker.messages("short")).toEqual([]);
    await receiver.close();
  });

  it("a dead-letter queue and a subscription hand out only what is asked for too", async () => {
    await send("dead", "d1", "d2", "d3");
    const receiver = client.createReceiver("dead", { receiveMode: "receiveAndDelete" });
    const all = await receiver.receiveMessages(3, { maxWaitTimeInMs: 2_000 });
    await receiver.close();
    expect(all).toHaveLength(3);
    // Move them to the dead-letter queue through a peek-lock receiver, one at a time.
    await send("dead", "x1", "x2", "x3");
    const mover = client.createReceiver("dead");
    for (let i = 0; i < 3; i++) {
      const [m] = await mover.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
      await mover.deadLetterMessage(m!, { deadLetterReason: "test", deadLetterErrorDescription: "moved" });
    }
    await mover.close();
    const dlq = client.createReceiver("dead", { subQueueType: "deadLetter" });
    const [one] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(broker.messages("dead/$DeadLetterQueue").map((m) => m.state)).toEqual(["locked", "active", "active"]);
    await dlq.completeMessage(one!);
    await dlq.close();

    const topic = client.createSender("events");
    await topic.sendMessages([{ body: "e1" }, { body: "e2" }, { body: "e3" }]);
    await topic.close();
    const subscription = client.createReceiver("events", "all");
    const [e1] = await subscription.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(e1!.body).toBe("e1");
    expect(broker.messages("events/Subscriptions/all").map((m) => m.state)).toEqual(["locked", "active", "active"]);
    const others = await client.createReceiver("events", "all", { receiveMode: "receiveAndDelete" }).receiveMessages(5, { maxWaitTimeInMs: 500 });
    expect(bodies(others)).toEqual(["e2", "e3"]);
    await subscription.completeMessage(e1!);
    await subscription.close();
  });

  it("subscribe() with maxConcurrentCalls 1 never holds more than one lock: the client's credit is honoured", async () => {
    await send("streaming", ...Array.from({ length: 6 }, (_, i) => `m${i}`));
    const receiver = client.createReceiver("streaming");
    const seen: string[] = [];
    const lockedWhileHandling: number[] = [];
    await new Promise<void>((resolve, reject) => {
      receiver.subscribe(
        {
          processMessage: async (message) => {
            lockedWhileHandling.push(broker.messages("streaming").filter((m) => m.state === "locked").length);
            seen.push(message.body as string);
            if (seen.length === 6) resolve();
          },
          processError: async ({ error }) => reject(error),
        },
        { maxConcurrentCalls: 1 },
      );
    });
    await receiver.close();
    expect(seen).toEqual(["m0", "m1", "m2", "m3", "m4", "m5"]);
    expect(Math.max(...lockedWhileHandling)).toBe(1);
  });
});

describe("competing receivers", () => {
  it("two receivers on one queue get distinct messages, each as many as it asked for", async () => {
    await send("competing", ...Array.from({ length: 6 }, (_, i) => `c${i}`));
    const [a, b] = [client.createReceiver("competing"), client.createReceiver("competing")];
    const [fromA, fromB] = await Promise.all([a.receiveMessages(2, { maxWaitTimeInMs: 2_000 }), b.receiveMessages(4, { maxWaitTimeInMs: 2_000 })]);
    expect(fromA).toHaveLength(2);
    expect(fromB).toHaveLength(4);
    expect(new Set([...bodies(fromA), ...bodies(fromB)])).toEqual(new Set(["c0", "c1", "c2", "c3", "c4", "c5"]));
    await Promise.all([...fromA.map((m) => a.completeMessage(m)), ...fromB.map((m) => b.completeMessage(m))]);
    await Promise.all([a.close(), b.close()]);
  });

  it("receivers waiting with credit 2 and 4 share messages that arrive in proportion to their credit", async () => {
    const connection = amqp.create_container().connect({ host: "127.0.0.1", port: broker.port });
    try {
      const got: Record<string, string[]> = { two: [], four: [] };
      const open = (name: "two" | "four", credit: number) =>
        new Promise<void>((resolve) => {
          const receiver = connection.open_receiver({ source: "proportional", credit_window: 0, autoaccept: false, rcv_settle_mode: 1 });
          receiver.on("message", (context) => got[name]!.push(String((context.message!.body as { content: Buffer }).content)));
          receiver.once("receiver_open", () => {
            receiver.add_credit(credit);
            resolve();
          });
        });
      await open("two", 2);
      await open("four", 4);
      // Sent on the same connection, after the credit: the broker reads the flows before the messages.
      const sender = connection.open_sender("proportional");
      await new Promise((resolve) => sender.once("sendable", resolve));
      for (let i = 0; i < 6; i++) sender.send({ body: amqp.message.data_section(Buffer.from(`p${i}`)) });
      await expect.poll(() => got.two!.length + got.four!.length, { timeout: 5_000, interval: 20 }).toBe(6);
      expect([got.two!.length, got.four!.length]).toEqual([2, 4]);
      expect(new Set([...got.two!, ...got.four!]).size).toBe(6);
    } finally {
      connection.close();
    }
  });
});

describe("acceptNextSession", () => {
  // A broker of its own: the only timer on its clock is the one of a held attach.
  const sessionClock = new ManualClock(Date.now());
  let sessions: Broker;
  beforeAll(async () => {
    sessions = await startBroker({ port: 0, clock: sessionClock, topology: { queues: [{ name: "cart", requiresSession: true }] } });
  });
  afterAll(() => sessions.close());

  it("waits for a session to have messages and takes it the moment one does", async () => {
    const patient = new ServiceBusClient(sessions.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 10_000 } });
    try {
      const accepting = patient.acceptNextSession("cart");
      let settled = false;
      void accepting.then(() => (settled = true), () => (settled = true));
      await sessionClock.whenTimerSet(); // the broker holds the attach until the client's timeout
      expect(settled).toBe(false);
      await patient.createSender("cart").sendMessages({ body: "late", sessionId: "carol" });
      const session = await accepting;
      expect(session.sessionId).toBe("carol");
      const [late] = await session.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
      await session.completeMessage(late!);
      await session.close();
    } finally {
      await patient.close();
    }
  });

  it("fails with ServiceTimeout when no session has messages within the client's timeout", async () => {
    const impatient = new ServiceBusClient(sessions.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 400 } });
    try {
      const refused = expect(impatient.acceptNextSession("cart")).rejects.toMatchObject({ code: "ServiceTimeout" });
      await sessionClock.whenTimerSet();
      await sessionClock.advance(400);
      await refused;
    } finally {
      await impatient.close();
    }
  });
});

describe("a receiver that goes away with unsettled messages", () => {
  it("its received messages stay locked until the lock runs out, can still be completed through $management meanwhile, and then come back counted once", async () => {
    await send("closing", "kept", "lapsed");
    const receiver = client.createReceiver("closing", { maxAutoLockRenewalDurationInMs: 0 });
    const [kept, lapsed] = await receiver.receiveMessages(2, { maxWaitTimeInMs: 2_000 });
    await receiver.close();
    expect(states("closing")).toEqual([['"kept"', "locked", 0], ['"lapsed"', "locked", 0]]);
    // The client settles a message whose receiver is closed through the management link.
    const other = client.createReceiver("closing");
    await other.completeMessage(kept!);
    expect(states("closing")).toEqual([['"lapsed"', "locked", 0]]);
    await clock.advance(800);
    expect(states("closing")).toEqual([['"lapsed"', "active", 1]]);
    await expect(other.completeMessage(lapsed!)).rejects.toMatchObject({ code: "MessageLockLost" });
    await other.close();
    const again = client.createReceiver("closing", { receiveMode: "receiveAndDelete" });
    expect((await again.receiveMessages(5, { maxWaitTimeInMs: 500 })).map((m) => [m.body, m.deliveryCount])).toEqual([["lapsed", 1]]);
    await again.close();
  });

  it("a session receiver that closes gives its unsettled messages back to the session at once, counted as delivered", async () => {
    const sender = client.createSender("cart");
    await sender.sendMessages(["one", "two"].map((body) => ({ body, sessionId: "bob" })));
    await sender.close();
    const first = await client.acceptSession("cart", "bob");
    const [one] = await first.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(one!.body).toBe("one");
    await first.close();
    const second = await client.acceptSession("cart", "bob", { receiveMode: "receiveAndDelete" });
    const rest = await second.receiveMessages(5, { maxWaitTimeInMs: 500 });
    expect(rest.map((m) => [m.body, m.deliveryCount])).toEqual([["one", 1], ["two", 0]]);
    await second.close();
  });
});

describe("raw AMQP peers", () => {
  it("a drain asked for with no credit left is answered as drained (rhea alone would not answer it)", async () => {
    await send("raw", "r1");
    const connection = amqp.create_container().connect({ host: "127.0.0.1", port: broker.port });
    try {
      const receiver = connection.open_receiver({ source: "raw", credit_window: 0, autoaccept: false });
      const received = new Promise((resolve) => receiver.once("message", resolve));
      await new Promise((resolve) => receiver.once("receiver_open", resolve));
      receiver.add_credit(1);
      await received;
      const drained = new Promise((resolve) => receiver.once("receiver_drained", resolve));
      receiver.drain_credit();
      await drained;
      expect((receiver as unknown as { credit: number }).credit).toBe(0);
    } finally {
      connection.close();
    }
    await expect.poll(() => states("raw"), { timeout: 5_000 }).toEqual([['"r1"', "locked", 0]]);
  });

  it("a receiver that grants more credit than there are messages gets each message once and no more", async () => {
    const sender = client.createSender("raw");
    await sender.sendMessages(Array.from({ length: 20 }, (_, i) => ({ body: `many${i}` })));
    await sender.close();
    const connection = amqp.create_container().connect({ host: "127.0.0.1", port: broker.port });
    try {
      const receiver = connection.open_receiver({ source: "raw", credit_window: 0, autoaccept: false, rcv_settle_mode: 1 });
      const got: string[] = [];
      receiver.on("message", (context) => got.push(String((context.message!.body as { content: Buffer }).content)));
      await new Promise((resolve) => receiver.once("receiver_open", resolve));
      receiver.add_credit(4_294_967_295);
      await expect.poll(() => got.length, { timeout: 5_000, interval: 20 }).toBeGreaterThanOrEqual(20);
      await send("raw", "late");
      await expect.poll(() => got.length, { timeout: 5_000, interval: 20 }).toBe(21);
      expect(new Set(got).size).toBe(21);
    } finally {
      connection.close();
    }
  });
});
