/**
 * `plugbox broker --data-dir`: what the broker acknowledged survives SIGKILL and a restart, and
 * without a data dir nothing does. Each broker is a `plugbox broker` process of its own, driven by
 * the real @azure/service-bus client.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ServiceBusClient, type ServiceBusReceivedMessage } from "@azure/service-bus";
import { bin, plugbox } from "../../helpers/cli.js";

interface BrokerProcess {
  process: ChildProcess;
  port: number;
  connectionString: string;
  /** Sends a signal and resolves once the process is gone. */
  stop(signal: NodeJS.Signals): Promise<void>;
}

const running = new Set<BrokerProcess>();

/** Starts `plugbox broker` in a process of its own; resolves once it printed its connection string. */
async function spawnBroker(args: string[]): Promise<BrokerProcess> {
  const child = spawn(process.execPath, [bin, "broker", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const connectionString = await new Promise<string>((resolve, reject) => {
    let out = "";
    let err = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /ready: (\S+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.once("exit", (code) => reject(new Error(`the broker exited with ${code}: ${err}`)));
  });
  const broker: BrokerProcess = {
    process: child,
    port: Number(/sb:\/\/127\.0\.0\.1:(\d+)/.exec(connectionString)![1]),
    connectionString,
    async stop(signal) {
      running.delete(broker);
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
  running.add(broker);
  return broker;
}

let dir: string;
let config: string;
const clients = new Set<ServiceBusClient>();
function client(connectionString: string): ServiceBusClient {
  // No retries of the client's own: a send that fails is not acknowledged, and is not sent again behind the test's back.
  const created = new ServiceBusClient(connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 10_000 } });
  clients.add(created);
  return created;
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-broker-durability-"));
  config = path.join(dir, "Config.json");
  writeFileSync(
    config,
    JSON.stringify({
      UserConfig: {
        Namespaces: [
          {
            Name: "sbemulatorns",
            Queues: [
              { Name: "orders", Properties: { LockDuration: "PT1M", MaxDeliveryCount: 10 } },
              { Name: "carts", Properties: { RequiresSession: true } },
              { Name: "fragile", Properties: { MaxDeliveryCount: 1 } },
            ],
            Topics: [{ Name: "events", Properties: {}, Subscriptions: [{ Name: "all", Properties: {} }] }],
          },
        ],
        Logging: { Type: "File" },
      },
    }),
  );
});

afterEach(async () => {
  for (const created of clients) await created.close();
  clients.clear();
  for (const broker of [...running]) await broker.stop("SIGKILL");
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("plugbox broker --data-dir", () => {
  it("SIGKILL mid-stream loses no message whose send was acknowledged and brings back none whose completion was acknowledged", async () => {
    const dataDir = path.join(dir, "kill");
    const total = 400;
    let broker = await spawnBroker(["--config", config, "--port", "0", "--data-dir", dataDir]);
    const port = broker.port;
    let markRestarted!: () => void;
    const restarted = new Promise<void>((resolve) => (markRestarted = resolve));
    let killed = false;
    let sendingDone = false;
    const acknowledgedSends = new Set<number>();
    const completed = new Set<number>();
    /** Completions the client was not told the outcome of (the broker died while answering). */
    const unansweredCompletions = new Set<number>();
    const deliveredAfterCompletion: number[] = [];
    const deliveries = new Map<number, number>();

    const killWhenHalfway = () => {
      if (killed || acknowledgedSends.size < 120 || completed.size < 40) return;
      killed = true;
      broker.process.kill("SIGKILL");
    };

    const sending = (async () => {
      const sender = client(broker.connectionString).createSender("orders");
      for (let i = 0; i < total; i++) {
        try {
          await sender.sendMessages({ body: i, messageId: `order-${i}` });
          acknowledgedSends.add(i);
          killWhenHalfway();
        } catch {
          // Not acknowledged: it may or may not have been stored, and is not counted either way.
          if (killed) await restarted;
        }
      }
      await sender.close();
      sendingDone = true;
    })();

    const receiving = (async () => {
      const receiver = client(broker.connectionString).createReceiver("orders");
      let emptyRounds = 0;
      for (;;) {
        let received: ServiceBusReceivedMessage[] = [];
        try {
          received = await receiver.receiveMessages(10, { maxWaitTimeInMs: 2_000 });
        } catch {
          if (killed) await restarted;
          continue;
        }
        for (const message of received) {
          const n = message.body as number;
          deliveries.set(n, (deliveries.get(n) ?? 0) + 1);
          if (completed.has(n)) deliveredAfterCompletion.push(n);
          try {
            await receiver.completeMessage(message);
            completed.add(n);
            unansweredCompletions.delete(n);
          } catch {
            unansweredCompletions.add(n);
          }
          killWhenHalfway();
        }
        // Done when everything is accounted for, or (for the assertions to say what is missing) when the queue stays empty.
        emptyRounds = sendingDone && received.length === 0 ? emptyRounds + 1 : 0;
        if (emptyRounds > 0 && [...acknowledgedSends].every((n) => completed.has(n) || unansweredCompletions.has(n))) break;
        if (emptyRounds >= 3) break;
      }
      await receiver.close();
    })();

    await new Promise<void>((resolve) => {
      broker.process.once("exit", () => resolve());
    });
    expect(killed).toBe(true);
    broker = await spawnBroker(["--config", config, "--port", String(port), "--data-dir", dataDir]);
    markRestarted();
    await Promise.all([sending, receiving]);

    const lost = [...acknowledgedSends].filter((n) => !deliveries.has(n));
    expect(lost).toEqual([]);
    expect(deliveredAfterCompletion).toEqual([]);
    // A message whose completion went unanswered was either removed before the kill or delivered
    // again afterwards (then completed); that can only be the few in flight when the broker died.
    expect(unansweredCompletions.size).toBeLessThanOrEqual(10);
    const twice = [...deliveries].filter(([, count]) => count > 1).map(([n]) => n);
    expect(twice.length).toBeLessThanOrEqual(10);
    // Everything acknowledged was completed once; nothing is left behind.
    for (const n of acknowledgedSends) expect(completed.has(n) || unansweredCompletions.has(n)).toBe(true);
    const check = client(broker.connectionString).createReceiver("orders");
    expect(await check.peekMessages(10)).toEqual([]);
    expect(acknowledgedSends.size).toBeGreaterThan(total * 0.8);
  });

  it("a graceful restart keeps scheduled and deferred messages, dead-lettered ones, session state and sequence numbers; a lock does not survive and counts as a delivery", async () => {
    const dataDir = path.join(dir, "graceful");
    let broker = await spawnBroker(["--config", config, "--port", "0", "--data-dir", dataDir]);
    const port = broker.port;
    let sb = client(broker.connectionString);
    const sender = sb.createSender("orders");
    await sender.sendMessages([{ body: "to defer" }, { body: "to dead-letter" }, { body: "left locked" }]);
    const due = new Date(Date.now() + 6_000);
    const [scheduled] = await sender.scheduleMessages({ body: "scheduled" }, due);
    const receiver = sb.createReceiver("orders");
    const [toDefer, toDeadLetter, leftLocked] = await receiver.receiveMessages(3, { maxWaitTimeInMs: 5_000 });
    expect([toDefer?.body, toDeadLetter?.body, leftLocked?.body]).toEqual(["to defer", "to dead-letter", "left locked"]);
    await receiver.deferMessage(toDefer!);
    await receiver.deadLetterMessage(toDeadLetter!, { deadLetterReason: "bad", deadLetterErrorDescription: "kept across a restart" });
    const session = await sb.acceptSession("carts", "alice");
    await session.setSessionState(JSON.stringify(["milk"]));
    await sb.close();
    clients.delete(sb);
    await broker.stop("SIGTERM");

    broker = await spawnBroker(["--config", config, "--port", String(port), "--data-dir", dataDir]);
    sb = client(broker.connectionString);
    const again = sb.createReceiver("orders");
    const [relocked] = await again.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
    expect(relocked?.body).toBe("left locked");
    expect(relocked?.deliveryCount).toBe(leftLocked!.deliveryCount! + 1);
    await again.completeMessage(relocked!);
    const [deferred] = await again.receiveDeferredMessages(toDefer!.sequenceNumber!);
    expect(deferred?.body).toBe("to defer");
    await again.completeMessage(deferred!);
    const dead = sb.createReceiver("orders", { subQueueType: "deadLetter" });
    const [deadLettered] = await dead.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
    expect(deadLettered?.body).toBe("to dead-letter");
    expect(deadLettered?.deadLetterReason).toBe("bad");
    await dead.completeMessage(deadLettered!);
    const cart = await sb.acceptSession("carts", "alice");
    expect(JSON.parse(String(await cart.getSessionState()))).toEqual(["milk"]);
    const [fresh] = await sb.createSender("orders").scheduleMessages({ body: "later still" }, new Date(Date.now() + 3_600_000));
    expect(fresh!.toNumber()).toBeGreaterThan(scheduled!.toNumber());
    // The scheduled message arrives at its time, after the restart.
    const [arrived] = await again.receiveMessages(1, { maxWaitTimeInMs: 20_000 });
    expect(arrived?.body).toBe("scheduled");
    expect(arrived!.enqueuedTimeUtc!.getTime()).toBeGreaterThanOrEqual(due.getTime() - 1_000);
    expect(arrived!.sequenceNumber!.toNumber()).toBe(scheduled!.toNumber());
  });

  it("a restart keeps a queue made by --auto-create and a topic's scheduled message, and dead-letters a message whose lost lock reaches MaxDeliveryCount", async () => {
    const dataDir = path.join(dir, "more");
    let broker = await spawnBroker(["--config", config, "--port", "0", "--auto-create", "--data-dir", dataDir]);
    const port = broker.port;
    let sb = client(broker.connectionString);
    await sb.createSender("made-on-use").sendMessages({ body: "kept" });
    const due = new Date(Date.now() + 5_000);
    await sb.createSender("events").scheduleMessages({ body: "announced" }, due);
    await sb.createSender("fragile").sendMessages({ body: "once only" });
    const [held] = await sb.createReceiver("fragile").receiveMessages(1, { maxWaitTimeInMs: 5_000 });
    expect(held?.body).toBe("once only");
    await sb.close();
    clients.delete(sb);
    await broker.stop("SIGTERM");

    // Without --auto-create now: the queue is known from the data dir alone.
    broker = await spawnBroker(["--config", config, "--port", String(port), "--data-dir", dataDir]);
    sb = client(broker.connectionString);
    const [kept] = await sb.createReceiver("made-on-use").receiveMessages(1, { maxWaitTimeInMs: 5_000 });
    expect(kept?.body).toBe("kept");
    const [dead] = await sb.createReceiver("fragile", { subQueueType: "deadLetter" }).receiveMessages(1, { maxWaitTimeInMs: 5_000 });
    expect(dead?.body).toBe("once only");
    expect(dead?.deadLetterReason).toBe("MaxDeliveryCountExceeded");
    expect(await sb.createReceiver("fragile").peekMessages(5)).toEqual([]);
    const [announced] = await sb.createReceiver("events", "all").receiveMessages(1, { maxWaitTimeInMs: 20_000 });
    expect(announced?.body).toBe("announced");
    expect(announced!.enqueuedTimeUtc!.getTime()).toBeGreaterThanOrEqual(due.getTime() - 1_000);
  });

  it("a broker without --data-dir keeps nothing across a restart", async () => {
    let broker = await spawnBroker(["--config", config, "--port", "0"]);
    const port = broker.port;
    let sb = client(broker.connectionString);
    await sb.createSender("orders").sendMessages([{ body: "gone" }]);
    await (await sb.acceptSession("carts", "bob")).setSessionState("state");
    expect(await sb.createReceiver("orders").peekMessages(5)).toHaveLength(1);
    await sb.close();
    clients.delete(sb);
    await broker.stop("SIGTERM");

    broker = await spawnBroker(["--config", config, "--port", String(port)]);
    sb = client(broker.connectionString);
    expect(await sb.createReceiver("orders").peekMessages(5)).toEqual([]);
    expect(await (await sb.acceptSession("carts", "bob")).getSessionState()).toBeNull();
  });

  it("a second broker on a data dir in use, or a data dir that cannot be created, is refused with a typed error and exit code 2", async () => {
    const dataDir = path.join(dir, "shared");
    await spawnBroker(["--config", config, "--port", "0", "--data-dir", dataDir]);
    const second = await plugbox(["broker", "--config", config, "--port", "0", "--data-dir", dataDir]);
    expect(second.code).toBe(2);
    expect(second.stderr).toContain("BROKER_DATA_DIR_IN_USE");
    const file = path.join(dir, "not-a-directory");
    writeFileSync(file, "");
    const invalid = await plugbox(["broker", "--config", config, "--port", "0", "--data-dir", file]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain("BROKER_DATA_DIR_INVALID");
  });
});
