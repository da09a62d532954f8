/**
 * The local broker, driven only by the real @azure/service-bus client over real AMQP.
 *
 * The parity cases run against `plugbox broker` and, when PLUGBOX_SB_CONNECTION is set, against
 * that namespace too (real Azure or Microsoft's emulator), which must hold the queue
 * `plugbox-parity` (MaxDeliveryCount 3), the session-enabled queue `plugbox-parity-sessions`, and the
 * topic `plugbox-parity-topic` with the subscriptions `audit` and `billing`. Each case leaves the
 * entities empty.
 */
import { ServiceBusClient, type ServiceBusReceivedMessage, type ServiceBusReceiver, type ServiceBusReceiverOptions } from "@azure/service-bus";
import { createRequire } from "node:module";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker, type Broker } from "../../../dist/host/index.js";
import { ManualClock } from "../../../dist/host/testing/index.js";

const QUEUE = "plugbox-parity";
const SESSIONS = "plugbox-parity-sessions";
const TOPIC = "plugbox-parity-topic";

interface Target {
  name: string;
  /** `now` and `advance` move the local broker's manual clock; a real namespace's time is real. */
  open(): Promise<{ connectionString: string; close(): Promise<void>; now(): number; advance(ms: number): Promise<void>; fresh: boolean }>;
}

const targets: Target[] = [
  {
    name: "plugbox broker",
    async open() {
      const clock = new ManualClock(Date.now());
      const broker = await startBroker({
        port: 0,
        clock,
        topology: { queues: [{ name: QUEUE, maxDeliveryCount: 3 }, { name: SESSIONS, requiresSession: true }], topics: [{ name: TOPIC, subscriptions: [{ name: "audit" }, { name: "billing" }] }] },
      });
      return { connectionString: broker.connectionString, close: () => broker.close(), now: () => clock.now().getTime(), advance: (ms) => clock.advance(ms), fresh: true };
    },
  },
];
const realNamespace = process.env.PLUGBOX_SB_CONNECTION;
if (realNamespace) targets.push({ name: "the namespace in PLUGBOX_SB_CONNECTION", open: async () => ({ connectionString: realNamespace, close: async () => undefined, now: () => Date.now(), advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)), fresh: false }) });

const WAIT = { maxWaitTimeInMs: realNamespace ? 5_000 : 1_000 };

describe.each(targets)("$name, with the real Service Bus client", (target) => {
  let server: Awaited<ReturnType<Target["open"]>>;
  let client: ServiceBusClient;
  const open: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    server = await target.open();
    client = new ServiceBusClient(server.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 10_000 } });
    if (server.fresh) return; // a broker started for this suite holds nothing yet
    await Promise.all([purge(QUEUE), purge(QUEUE, { subQueueType: "deadLetter" }), purge(TOPIC, { subscription: "audit" }), purge(TOPIC, { subscription: "billing" })]);
    for (;;) {
      const session = await client.acceptNextSession(SESSIONS, { receiveMode: "receiveAndDelete" }).catch(() => undefined);
      if (!session) break;
      while ((await session.receiveMessages(50, { maxWaitTimeInMs: 300 })).length > 0);
      await session.close();
    }
  });

  afterAll(async () => {
    await Promise.all(open.map((o) => o.close()));
    await client.close();
    await server.close();
  });

  function receiver(options: ServiceBusReceiverOptions & { subscription?: string } = {}): ServiceBusReceiver {
    const { subscription, ...rest } = options;
    const r = subscription ? client.createReceiver(TOPIC, subscription, rest) : client.createReceiver(QUEUE, rest);
    open.push(r);
    return r;
  }

  async function purge(entity: string, options: ServiceBusReceiverOptions & { subscription?: string } = {}): Promise<void> {
    const { subscription, ...rest } = options;
    const r = subscription ? client.createReceiver(entity, subscription, { ...rest, receiveMode: "receiveAndDelete" }) : client.createReceiver(entity, { ...rest, receiveMode: "receiveAndDelete" });
    while ((await r.receiveMessages(50, { maxWaitTimeInMs: 300 })).length > 0);
    await r.close();
  }

  async function send(...messages: Array<Parameters<ReturnType<ServiceBusClient["createSender"]>["sendMessages"]>[0]>): Promise<void> {
    const sender = client.createSender(QUEUE);
    for (const m of messages) await sender.sendMessages(m);
    await sender.close();
  }

  it("send and peek-lock receive keep body, properties, message id, correlation id, subject and content type; complete removes the message", async () => {
    await send({ body: '{"n":1}', messageId: "m-1", correlationId: "c-1", subject: "new", contentType: "application/json", applicationProperties: { tenant: "contoso", n: 1 } });
    const r = receiver();
    const [message] = await r.receiveMessages(1, WAIT);
    expect(message).toMatchObject({ body: '{"n":1}', messageId: "m-1", correlationId: "c-1", subject: "new", contentType: "application/json", applicationProperties: { tenant: "contoso", n: 1 }, deliveryCount: 0, state: "active" });
    expect(message!.lockToken).toMatch(/^[0-9a-f-]{36}$/);
    expect(message!.enqueuedTimeUtc).toBeInstanceOf(Date);
    expect(message!.lockedUntilUtc!.getTime()).toBeGreaterThan(message!.enqueuedTimeUtc!.getTime());
    await r.completeMessage(message!);
    expect(await r.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
  });

  it("an array and a message batch are unpacked into messages with increasing sequence numbers", async () => {
    const sender = client.createSender(QUEUE);
    await sender.sendMessages([{ body: "a" }, { body: "b" }]);
    const batch = await sender.createMessageBatch();
    expect(batch.tryAddMessage({ body: "c" })).toBe(true);
    expect(batch.tryAddMessage({ body: "d" })).toBe(true);
    await sender.sendMessages(batch);
    await sender.close();
    const r = receiver({ receiveMode: "receiveAndDelete" });
    const got: ServiceBusReceivedMessage[] = [];
    while (got.length < 4) {
      const more = await r.receiveMessages(10, WAIT);
      if (more.length === 0) break;
      got.push(...more);
    }
    expect(got.map((m) => m.body)).toEqual(["a", "b", "c", "d"]);
    const sequences = got.map((m) => Number(m.sequenceNumber));
    expect(sequences).toEqual([...sequences].sort((x, y) => x - y));
    expect(new Set(sequences).size).toBe(4);
  });

  it("abandon redelivers with the delivery count raised; past MaxDeliveryCount the message goes to the dead-letter queue", async () => {
    await send({ body: "poison", messageId: "p-1" });
    const r = receiver();
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const [m] = await r.receiveMessages(1, WAIT);
      counts.push(m!.deliveryCount!);
      await r.abandonMessage(m!);
    }
    expect(counts).toEqual([0, 1, 2]);
    expect(await r.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    const dlq = receiver({ subQueueType: "deadLetter" });
    const [dead] = await dlq.receiveMessages(1, WAIT);
    expect(dead).toMatchObject({ body: "poison", messageId: "p-1", deadLetterReason: "MaxDeliveryCountExceeded", deadLetterSource: QUEUE });
    await dlq.completeMessage(dead!);
  });

  it("abandon with properties to modify sets them on the redelivered message", async () => {
    await send({ body: "retry me" });
    const r = receiver();
    const [first] = await r.receiveMessages(1, WAIT);
    await r.abandonMessage(first!, { attempt: 1 });
    const [again] = await r.receiveMessages(1, WAIT);
    expect(again).toMatchObject({ body: "retry me", deliveryCount: 1, applicationProperties: { attempt: 1 } });
    await r.completeMessage(again!);
  });

  it("deadLetterMessage moves a message to the dead-letter queue with its reason and description", async () => {
    await send({ body: "bad order" });
    const r = receiver();
    const [m] = await r.receiveMessages(1, WAIT);
    await r.deadLetterMessage(m!, { deadLetterReason: "Validation", deadLetterErrorDescription: "no customer" });
    const dlq = receiver({ subQueueType: "deadLetter" });
    const [dead] = await dlq.receiveMessages(1, WAIT);
    expect(dead).toMatchObject({ body: "bad order", deadLetterReason: "Validation", deadLetterErrorDescription: "no customer" });
    await dlq.completeMessage(dead!);
  });

  it("defer hides a message from receives; receiveDeferredMessages fetches it by sequence number, locked, to be settled", async () => {
    await send({ body: "later" }, { body: "now" });
    const r = receiver();
    const [later] = await r.receiveMessages(1, WAIT);
    expect(later!.body).toBe("later");
    await r.deferMessage(later!);
    const [now] = await r.receiveMessages(1, WAIT);
    expect(now!.body).toBe("now");
    await r.completeMessage(now!);
    expect(await r.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    const [deferred] = await r.receiveDeferredMessages(later!.sequenceNumber!);
    expect(deferred).toMatchObject({ body: "later", state: "deferred" });
    expect(deferred!.lockToken).toMatch(/^[0-9a-f-]{36}$/);
    await r.completeMessage(deferred!);
    await expect(r.receiveDeferredMessages(later!.sequenceNumber!)).rejects.toMatchObject({ code: "MessageNotFound" });
  });

  it("a deferred message that is abandoned stays deferred; dead-lettering it goes through the management link", async () => {
    await send({ body: "deferred twice" });
    const r = receiver();
    const [m] = await r.receiveMessages(1, WAIT);
    await r.deferMessage(m!);
    const [first] = await r.receiveDeferredMessages(m!.sequenceNumber!);
    await r.abandonMessage(first!);
    const [second] = await r.receiveDeferredMessages(m!.sequenceNumber!);
    expect(second).toMatchObject({ body: "deferred twice", deliveryCount: 1 });
    await r.deadLetterMessage(second!, { deadLetterReason: "GaveUp", deadLetterErrorDescription: "twice is enough" });
    const dlq = receiver({ subQueueType: "deadLetter", receiveMode: "receiveAndDelete" });
    const [dead] = await dlq.receiveMessages(1, WAIT);
    expect(dead).toMatchObject({ body: "deferred twice", deadLetterReason: "GaveUp" });
  });

  it("peek reads messages from a sequence number on without locking them; an empty peek returns nothing", async () => {
    const r = receiver();
    expect(await r.peekMessages(5)).toEqual([]);
    await send([{ body: "p1" }, { body: "p2" }, { body: "p3" }]);
    const peeked = await r.peekMessages(2);
    expect(peeked.map((m) => m.body)).toEqual(["p1", "p2"]);
    expect((await r.peekMessages(5)).map((m) => m.body)).toEqual(["p3"]);
    const fromFirst = await r.peekMessages(10, { fromSequenceNumber: peeked[0]!.sequenceNumber });
    expect(fromFirst.map((m) => m.body)).toEqual(["p1", "p2", "p3"]);
    const received = await r.receiveMessages(3, WAIT);
    expect(received.map((m) => [m.body, m.deliveryCount])).toEqual([["p1", 0], ["p2", 0], ["p3", 0]]);
    await Promise.all(received.map((m) => r.completeMessage(m)));
  });

  it("scheduled messages are held until their time, show in peek as scheduled, and can be cancelled", async () => {
    const sender = client.createSender(QUEUE);
    const at = new Date(server.now() + 1_500);
    const [kept, cancelled] = await sender.scheduleMessages([{ body: "kept" }, { body: "cancelled" }], at);
    await sender.cancelScheduledMessages(cancelled!);
    await sender.close();
    const r = receiver();
    const peeked = await r.peekMessages(10, { fromSequenceNumber: kept });
    expect(peeked.map((m) => [m.body, m.state])).toEqual([["kept", "scheduled"]]);
    expect(await r.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    await server.advance(1_500);
    const got = await r.receiveMessages(1, WAIT);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ body: "kept" });
    expect(Number(got[0]!.sequenceNumber)).toBe(Number(kept));
    expect(got[0]!.enqueuedTimeUtc!.getTime()).toBeGreaterThanOrEqual(at.getTime() - 1_000);
    await r.completeMessage(got[0]!);
    expect(await r.receiveMessages(1, { maxWaitTimeInMs: 500 })).toEqual([]);
  });

  it("renewMessageLock moves lockedUntil later, and the message can still be completed", async () => {
    await send({ body: "long job" });
    const r = receiver({ maxAutoLockRenewalDurationInMs: 0 });
    const [m] = await r.receiveMessages(1, WAIT);
    const before = m!.lockedUntilUtc!.getTime();
    await server.advance(50);
    const after = await r.renewMessageLock(m!);
    expect(after.getTime()).toBeGreaterThan(before);
    expect(m!.lockedUntilUtc!.getTime()).toBe(after.getTime());
    await r.completeMessage(m!);
  });

  it("a topic fans each message out to every subscription", async () => {
    const sender = client.createSender(TOPIC);
    await sender.sendMessages({ body: "created" });
    await sender.close();
    for (const subscription of ["audit", "billing"]) {
      const r = receiver({ subscription, receiveMode: "receiveAndDelete" });
      expect((await r.receiveMessages(1, WAIT)).map((m) => m.body)).toEqual(["created"]);
    }
  });

  it("sessions: a session receiver gets only its session's messages, in order; a second one cannot lock the same session; state and lock renewal work", async () => {
    const sender = client.createSender(SESSIONS);
    await sender.sendMessages([
      { body: "a1", sessionId: "a" },
      { body: "b1", sessionId: "b" },
      { body: "a2", sessionId: "a" },
    ]);
    await expect(sender.sendMessages({ body: "no session" })).rejects.toThrow();
    await sender.close();
    const a = await client.acceptSession(SESSIONS, "a");
    open.push(a);
    expect(a.sessionId).toBe("a");
    expect(a.sessionLockedUntilUtc!.getTime()).toBeGreaterThan(Date.now());
    await expect(client.acceptSession(SESSIONS, "a")).rejects.toMatchObject({ code: "SessionCannotBeLocked" });
    const got = await a.receiveMessages(5, WAIT);
    expect(got.map((m) => [m.body, m.sessionId])).toEqual([["a1", "a"], ["a2", "a"]]);
    await Promise.all(got.map((m) => a.completeMessage(m)));
    await a.setSessionState({ step: 2 });
    expect(await a.getSessionState()).toEqual({ step: 2 });
    const before = a.sessionLockedUntilUtc!.getTime();
    await server.advance(20);
    await a.renewSessionLock();
    expect(a.sessionLockedUntilUtc!.getTime()).toBeGreaterThan(before);
    const next = await client.acceptNextSession(SESSIONS);
    open.push(next);
    expect(next.sessionId).toBe("b");
    const [b1] = await next.receiveMessages(1, WAIT);
    expect(b1!.body).toBe("b1");
    await next.completeMessage(b1!);
  });

  it("receiveMessages asks for more than there is and returns what there is when the wait ends (drain)", async () => {
    await send({ body: "only" });
    const r = receiver();
    const got = await r.receiveMessages(5, { maxWaitTimeInMs: 500 });
    expect(got.map((m) => m.body)).toEqual(["only"]);
    expect(await r.receiveMessages(5, { maxWaitTimeInMs: 300 })).toEqual([]);
    await r.completeMessage(got[0]!);
  });
});

describe("plugbox broker only", () => {
  let broker: Broker;
  let client: ServiceBusClient;
  const clock = new ManualClock(Date.now());

  beforeAll(async () => {
    broker = await startBroker({
      port: 0,
      clock,
      autoCreate: true,
      topology: {
        queues: [
          { name: "short-lock", lockDurationMs: 300 },
          { name: "expiring", defaultMessageTtlMs: 200, deadLetteringOnMessageExpiration: true },
          { name: "dedup", duplicateDetectionWindowMs: 60_000 },
          { name: "inbox", forwardTo: "archive" },
          { name: "archive" },
        ],
        topics: [
          {
            name: "orders",
            subscriptions: [
              { name: "everything" },
              { name: "big", rules: [{ name: "amount", sql: "amount >= 1000 AND sys.Label IN ('new', 'changed')" }] },
              { name: "contoso", rules: [{ name: "tenant", correlation: { properties: { tenant: "contoso" } } }] },
              { name: "tagged", rules: [{ name: "tag", sql: "EXISTS(region)", action: "SET routed = 'yes'; REMOVE region" }] },
            ],
          },
        ],
      },
    });
    client = new ServiceBusClient(broker.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 5_000 } });
  });

  afterAll(async () => {
    await client.close();
    await broker.close();
  });

  async function drain(entity: string, subscription?: string, options: ServiceBusReceiverOptions = {}): Promise<ServiceBusReceivedMessage[]> {
    const r = subscription ? client.createReceiver(entity, subscription, { receiveMode: "receiveAndDelete", ...options }) : client.createReceiver(entity, { receiveMode: "receiveAndDelete", ...options });
    const got = await r.receiveMessages(20, { maxWaitTimeInMs: 300 });
    await r.close();
    return got;
  }

  it("prints a development connection string for 127.0.0.1 and the port it took", () => {
    expect(broker.connectionString).toBe(`Endpoint=sb://127.0.0.1:${broker.port};SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;`);
  });

  it("a lock that runs out makes the message available again, and settling under the lost lock fails with MessageLockLost", async () => {
    await client.createSender("short-lock").sendMessages({ body: "slow" });
    const r = client.createReceiver("short-lock", { maxAutoLockRenewalDurationInMs: 0 });
    const [first] = await r.receiveMessages(1, { maxWaitTimeInMs: 1_000 });
    expect(first!.deliveryCount).toBe(0);
    expect(await r.receiveMessages(1, { maxWaitTimeInMs: 300 })).toEqual([]);
    await clock.advance(300);
    const again = await r.receiveMessages(1, { maxWaitTimeInMs: 1_000 });
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({ body: "slow", deliveryCount: 1 });
    await expect(r.completeMessage(first!)).rejects.toMatchObject({ code: "MessageLockLost" });
    await expect(r.renewMessageLock(first!)).rejects.toMatchObject({ code: "MessageLockLost" });
    await r.completeMessage(again[0]!);
    await r.close();
  });

  it("SQL and correlation rules choose the subscriptions a message reaches; a rule's action changes the copy it keeps", async () => {
    const sender = client.createSender("orders");
    await sender.sendMessages([
      { body: "small", subject: "new", applicationProperties: { amount: 10, tenant: "contoso" } },
      { body: "large", subject: "new", applicationProperties: { amount: 5000, tenant: "fabrikam", region: "eu" } },
      { body: "large but deleted", subject: "deleted", applicationProperties: { amount: 5000 } },
    ]);
    await sender.close();
    expect((await drain("orders", "everything")).map((m) => m.body)).toEqual(["small", "large", "large but deleted"]);
    expect((await drain("orders", "big")).map((m) => m.body)).toEqual(["large"]);
    expect((await drain("orders", "contoso")).map((m) => m.body)).toEqual(["small"]);
    const tagged = await drain("orders", "tagged");
    expect(tagged.map((m) => [m.body, m.applicationProperties])).toEqual([["large", { amount: 5000, tenant: "fabrikam", routed: "yes" }]]);
  });

  it("a message past its time to live is dead-lettered with TTLExpiredException when the queue says so", async () => {
    await client.createSender("expiring").sendMessages({ body: "stale" });
    await clock.advance(200);
    expect(await drain("expiring")).toEqual([]);
    const [dead] = await drain("expiring", undefined, { subQueueType: "deadLetter" });
    expect(dead).toMatchObject({ body: "stale", deadLetterReason: "TTLExpiredException", deadLetterSource: "expiring" });
  });

  it("duplicate detection drops a second message with the same id inside the window", async () => {
    const sender = client.createSender("dedup");
    await sender.sendMessages({ body: "first", messageId: "op-1" });
    await sender.sendMessages({ body: "retry", messageId: "op-1" });
    await sender.sendMessages({ body: "other", messageId: "op-2" });
    await sender.close();
    expect((await drain("dedup")).map((m) => m.body)).toEqual(["first", "other"]);
  });

  it("ForwardTo moves every message on to the named queue", async () => {
    await client.createSender("inbox").sendMessages({ body: "moved" });
    expect(await drain("inbox")).toEqual([]);
    expect((await drain("archive")).map((m) => m.body)).toEqual(["moved"]);
  });

  it("a message scheduled to a topic reaches the subscriptions at its time", async () => {
    const sender = client.createSender("orders");
    const [sequence] = await sender.scheduleMessages({ body: "soon", subject: "new", applicationProperties: { amount: 2000 } }, new Date(clock.now().getTime() + 300));
    expect(Number(sequence)).toBeGreaterThan(0);
    await sender.close();
    expect(await drain("orders", "big")).toEqual([]);
    await clock.advance(300);
    expect((await drain("orders", "big")).map((m) => m.body)).toEqual(["soon"]);
    await drain("orders", "everything");
  });

  it("counts what each entity holds, and shows its messages (dead-letter queues too) without locking them", async () => {
    await client.createSender("archive").sendMessages({ body: "counted", messageId: "c-1", contentType: "text/plain", applicationProperties: { n: 1 } });
    expect(broker.entities()).toContainEqual({ path: "archive", active: 1, locked: 0, deferred: 0, scheduled: 0 });
    // The JavaScript client writes a string body as a JSON string literal; the broker shows the text on the wire.
    expect(broker.messages("archive")).toEqual([expect.objectContaining({ state: "active", deliveryCount: 0, messageId: "c-1", body: '"counted"', contentType: "text/plain", applicationProperties: { n: 1 } })]);
    const r = client.createReceiver("archive");
    const [m] = await r.receiveMessages(1, { maxWaitTimeInMs: 1_000 });
    expect(broker.messages("archive").map((x) => x.state)).toEqual(["locked"]);
    await r.deadLetterMessage(m!, { deadLetterReason: "Inspected", deadLetterErrorDescription: "seen" });
    await r.close();
    expect(broker.messages("archive")).toEqual([]);
    expect(broker.messages("archive/$DeadLetterQueue")).toEqual([expect.objectContaining({ body: '"counted"', applicationProperties: { n: 1, DeadLetterReason: "Inspected", DeadLetterErrorDescription: "seen" } })]);
    expect(() => broker.messages("nowhere")).toThrow(expect.objectContaining({ code: "BROKER_ENTITY_NOT_FOUND" }));
    await drain("archive", undefined, { subQueueType: "deadLetter" });
  });

  it("an unknown topic or subscription is refused with MessagingEntityNotFound (queues are created on first use with autoCreate)", async () => {
    const r = client.createReceiver("orders", "nobody");
    await expect(r.receiveMessages(1, { maxWaitTimeInMs: 500 })).rejects.toMatchObject({ code: "MessagingEntityNotFound" });
    await r.close();
    const strict = await startBroker({ port: 0 });
    const strictClient = new ServiceBusClient(strict.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 5_000 } });
    await expect(strictClient.createSender("missing").sendMessages({ body: 1 })).rejects.toMatchObject({ code: "MessagingEntityNotFound" });
    await strictClient.close();
    await strict.close();
  });

  it("a session-enabled queue refuses a receiver without a session, and a session receiver on a plain queue; an expired session lock detaches the receiver", async () => {
    const sessionClock = new ManualClock(Date.now());
    const local = await startBroker({ port: 0, clock: sessionClock, topology: { queues: [{ name: "plain" }, { name: "sessions", requiresSession: true, lockDurationMs: 300 }] } });
    const localClient = new ServiceBusClient(local.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 5_000 } });
    try {
      const plain = localClient.createReceiver("sessions");
      await expect(plain.receiveMessages(1, { maxWaitTimeInMs: 500 })).rejects.toThrow(/requires sessions/);
      await plain.close();
      // The client reports any refused session attach as SessionCannotBeLocked.
      await expect(localClient.acceptSession("plain", "x")).rejects.toMatchObject({ code: "SessionCannotBeLocked" });
      // No session has messages: the attach is held for what is left of the client's timeout (5 s), then refused.
      const none = expect(localClient.acceptNextSession("sessions")).rejects.toThrow();
      await sessionClock.whenTimerSet();
      expect(sessionClock.nextDueIn).toBeLessThanOrEqual(5_000);
      await sessionClock.advance(5_000);
      await none;
      const held = await localClient.acceptSession("sessions", "s", { maxAutoLockRenewalDurationInMs: 0 });
      await expect(localClient.acceptSession("sessions", "s")).rejects.toMatchObject({ code: "SessionCannotBeLocked" });
      await sessionClock.advance(300);
      // The expired lock detaches the holder over the wire; the session is free once the detach is done.
      await expect.poll(async () => (await localClient.acceptSession("sessions", "s").then((r) => r.close().then(() => "locked again"), (e: Error) => e.message)), { timeout: 5_000 }).toBe("locked again");
      await held.close();
    } finally {
      await localClient.close();
      await local.close();
    }
  });

  it("a SQL rule outside the supported subset fails at start, naming the rule and the position", async () => {
    await expect(startBroker({ port: 0, topology: { topics: [{ name: "t", subscriptions: [{ name: "s", rules: [{ name: "odd", sql: "amount + 1 > 2" }] }] }] } })).rejects.toMatchObject({
      code: "BROKER_CONFIG_INVALID",
      message: expect.stringMatching(/rule "odd".*character 8/),
    });
  });

  it("a message over the link's maximum size is refused: by the client before it leaves, and by the broker from a peer that sends it anyway", async () => {
    await expect(client.createSender("archive").sendMessages({ body: Buffer.alloc(300_000) })).rejects.toMatchObject({ code: "MessageSizeExceeded" });
    const amqp = createRequire(import.meta.url)("rhea") as typeof import("rhea");
    const connection = amqp.create_container().connect({ host: "127.0.0.1", port: broker.port });
    try {
      const sender = connection.open_sender("archive");
      await new Promise((resolve) => sender.once("sendable", resolve));
      sender.send({ body: amqp.message.data_section(Buffer.alloc(300_000)) });
      const error = await new Promise<{ condition?: string }>((resolve) => sender.once("rejected", (context) => resolve((context.delivery!.remote_state as { error: { condition?: string } }).error)));
      expect(error.condition).toBe("amqp:link:message-size-exceeded");
      expect(broker.entities()).toContainEqual(expect.objectContaining({ path: "archive", active: 0 }));
    } finally {
      connection.close();
    }
  });

  it("a batch holding a message that cannot be decoded is rejected with amqp:decode-error and stores nothing; the connection stays up", async () => {
    const amqp = createRequire(import.meta.url)("rhea") as typeof import("rhea");
    const connection = amqp.create_container().connect({ host: "127.0.0.1", port: broker.port });
    try {
      const sender = connection.open_sender("malformed");
      await new Promise((resolve) => sender.once("sendable", resolve));
      const settled = () =>
        new Promise<{ outcome: string; condition?: string; description?: string }>((resolve) => {
          sender.once("accepted", () => resolve({ outcome: "accepted" }));
          sender.once("rejected", (context) => {
            const { condition, description } = (context.delivery!.remote_state as { error: { condition?: string; description?: string } }).error;
            resolve({ outcome: "rejected", condition, description });
          });
        });
      const good = amqp.message.encode({ body: amqp.message.data_section(Buffer.from("fine")) });
      const truncated = Buffer.from([0x00, 0x53, 0x75, 0xb0, 0xff, 0xff, 0xff, 0xff, 1, 2]); // a data section that claims 4 GB
      const batchOf = (messages: Buffer[]) => amqp.message.encode({ body: amqp.message.data_sections(messages) });
      let answer = settled();
      sender.send(batchOf([good, truncated]), undefined, 0x80013700);
      expect(await answer).toMatchObject({ outcome: "rejected", condition: "amqp:decode-error", description: expect.stringContaining("cannot be decoded") });
      answer = settled();
      sender.send(batchOf([good]), undefined, 0x80013700);
      expect(await answer).toEqual({ outcome: "accepted" });
      expect(broker.entities()).toContainEqual(expect.objectContaining({ path: "malformed", active: 1 }));
    } finally {
      connection.close();
    }
  });

  it("answers the emulator's GET /health when asked to, for tooling that waits on it", async () => {
    const withHealth = await startBroker({ port: 0, healthPort: 0 });
    try {
      const health = await request(`http://127.0.0.1:${withHealth.healthPort}/health`);
      expect(health.statusCode).toBe(200);
      expect(await health.body.json()).toEqual({ status: "healthy", message: "Service is healthy." });
      const other = await request(`http://127.0.0.1:${withHealth.healthPort}/admin`);
      expect(other.statusCode).toBe(404);
      await other.body.dump();
    } finally {
      await withHealth.close();
    }
  });

  it("a queue that forwards to an entity that does not exist fails at start", async () => {
    await expect(startBroker({ port: 0, topology: { queues: [{ name: "a", forwardTo: "nowhere" }] } })).rejects.toMatchObject({ code: "BROKER_CONFIG_INVALID", message: expect.stringContaining('"nowhere"') });
  });
});
