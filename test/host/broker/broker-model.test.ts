/**
 * A model test of the broker's receive, settle and close rules: random sequences of operations,
 * made with the real @azure/service-bus client, are checked after every step against a model of
 * what Service Bus does. A seeded generator makes each sequence reproducible: a failure names its
 * seed and step (rerun one with PLUGBOX_MODEL_SEED=<seed>).
 *
 * The rules modelled: a receive of n returns the n oldest active messages (fewer if there are
 * fewer) and locks exactly those; complete removes; abandon makes a message active again in its
 * place with its delivery count raised, and past MaxDeliveryCount moves it to the dead-letter
 * queue; defer sets it aside; dead-letter moves it; a receiver that closes leaves its received
 * messages locked (until their lock runs out, which these sequences stay well within).
 */
import { ServiceBusClient, type ServiceBusReceivedMessage, type ServiceBusReceiver } from "@azure/service-bus";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker, type Broker } from "../../../dist/host/index.js";

const MAX_DELIVERY_COUNT = 3;
const STEPS = 30;
const SEEDS = process.env.PLUGBOX_MODEL_SEED ? [Number(process.env.PLUGBOX_MODEL_SEED)] : [1, 2, 3, 4, 5, 6];

/** mulberry32: a small seeded generator, so a sequence can be replayed from its seed. */
function generator(seed: number): { int(below: number): number; pick<T>(items: T[]): T } {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  return { int: (below) => Math.floor(next() * below), pick: (items) => items[Math.floor(next() * items.length)]! };
}

interface ModelMessage {
  body: string;
  sequence: number;
  state: "active" | "locked" | "deferred";
  deliveryCount: number;
}

/** What Service Bus holds, by the rules above. */
class Model {
  readonly queue = new Map<string, ModelMessage>();
  readonly deadLetters: string[] = [];
  #sequence = 0;

  send(body: string): void {
    this.queue.set(body, { body, sequence: ++this.#sequence, state: "active", deliveryCount: 0 });
  }
  receive(n: number): Array<[string, number]> {
    const taken = [...this.queue.values()].filter((m) => m.state === "active").sort((a, b) => a.sequence - b.sequence).slice(0, n);
    for (const m of taken) m.state = "locked";
    return taken.map((m) => [m.body, m.deliveryCount]);
  }
  settle(body: string, how: "complete" | "abandon" | "defer" | "deadLetter"): void {
    const m = this.queue.get(body)!;
    if (how === "complete") this.queue.delete(body);
    else if (how === "defer") m.state = "deferred";
    else if (how === "deadLetter") {
      this.queue.delete(body);
      this.deadLetters.push(body);
    } else if (++m.deliveryCount >= MAX_DELIVERY_COUNT) {
      this.queue.delete(body);
      this.deadLetters.push(body);
    } else m.state = "active";
  }
  snapshot(): Array<[string, string, number]> {
    return [...this.queue.values()].sort((a, b) => a.sequence - b.sequence).map((m) => [m.body, m.state, m.deliveryCount]);
  }
}

let broker: Broker;
let client: ServiceBusClient;

beforeAll(async () => {
  broker = await startBroker({ port: 0, topology: { queues: SEEDS.map((seed) => ({ name: `model-${seed}`, maxDeliveryCount: MAX_DELIVERY_COUNT })) } });
  client = new ServiceBusClient(broker.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 10_000 } });
});

afterAll(async () => {
  await client.close();
  await broker.close();
});

describe("random receive, settle and close sequences against a model of Service Bus", () => {
  it.each(SEEDS)("seed %i: every step leaves the broker as the model says", async (seed) => {
    const queue = `model-${seed}`;
    const random = generator(seed);
    const model = new Model();
    const receivers: Array<{ receiver: ServiceBusReceiver | undefined; held: Map<string, ServiceBusReceivedMessage> }> = [
      { receiver: undefined, held: new Map() },
      { receiver: undefined, held: new Map() },
    ];
    const sender = client.createSender(queue);
    let sent = 0;
    const log: string[] = [];
    try {
      for (let step = 0; step < STEPS; step++) {
        const slot = random.pick(receivers);
        const operation = random.pick(["send", "send", "receive", "receive", "receive", "settle", "settle", "settle", "close"]);
        if (operation === "send") {
          const bodies = Array.from({ length: 1 + random.int(4) }, () => `s${seed}-m${++sent}`);
          log.push(`send ${bodies.join(",")}`);
          await sender.sendMessages(bodies.map((body) => ({ body })));
          for (const body of bodies) model.send(body);
        } else if (operation === "receive") {
          const n = 1 + random.int(4);
          log.push(`receive ${n} on receiver ${receivers.indexOf(slot)}`);
          slot.receiver ??= client.createReceiver(queue, { maxAutoLockRenewalDurationInMs: 0 });
          const expected = model.receive(n);
          const got = await slot.receiver.receiveMessages(n, { maxWaitTimeInMs: expected.length === n ? 5_000 : 200 });
          expect(got.map((m) => [m.body, m.deliveryCount]), `seed ${seed}, step ${step}: ${log.join("; ")}`).toEqual(expected);
          for (const m of got) slot.held.set(m.body as string, m);
        } else if (operation === "settle" && slot.receiver && slot.held.size > 0) {
          const body = random.pick([...slot.held.keys()]);
          const how = random.pick(["complete", "abandon", "abandon", "defer", "deadLetter"] as const);
          log.push(`${how} ${body}`);
          const message = slot.held.get(body)!;
          slot.held.delete(body);
          if (how === "complete") await slot.receiver.completeMessage(message);
          else if (how === "abandon") await slot.receiver.abandonMessage(message);
          else if (how === "defer") await slot.receiver.deferMessage(message);
          else await slot.receiver.deadLetterMessage(message, { deadLetterReason: "model", deadLetterErrorDescription: "random" });
          model.settle(body, how);
        } else if (operation === "close" && slot.receiver) {
          log.push(`close receiver ${receivers.indexOf(slot)}`);
          await slot.receiver.close();
          slot.receiver = undefined;
          slot.held.clear();
        } else continue;
        const where = `seed ${seed}, step ${step}: ${log.join("; ")}`;
        expect(broker.messages(queue).map((m) => [JSON.parse(m.body as string), m.state, m.deliveryCount]), where).toEqual(model.snapshot());
        expect(broker.messages(`${queue}/$DeadLetterQueue`).map((m) => JSON.parse(m.body as string)).sort(), where).toEqual([...model.deadLetters].sort());
      }
    } finally {
      await sender.close();
      await Promise.all(receivers.map((r) => r.receiver?.close()));
    }
  });
});
