/**
 * Bad input on the broker's port: garbage, truncated and oversized frames, links to entities that
 * do not exist, settlement with unknown lock tokens. Each gets the documented AMQP error, and the
 * broker keeps serving with nothing lost or duplicated.
 */
import { ServiceBusClient } from "@azure/service-bus";
import { createRequire } from "node:module";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker, type Broker } from "../../../dist/host/index.js";

const amqp = createRequire(import.meta.url)("rhea") as typeof import("rhea");
const SASL_HEADER = Buffer.from([0x41, 0x4d, 0x51, 0x50, 3, 1, 0, 0]);

let broker: Broker;
let client: ServiceBusClient;

beforeAll(async () => {
  broker = await startBroker({ port: 0, topology: { queues: [{ name: "kept" }] } });
  client = new ServiceBusClient(broker.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 10_000 } });
});

afterAll(async () => {
  await client.close();
  await broker.close();
});

/** Opens a raw TCP connection to the broker; resolves when it is connected. */
async function raw(): Promise<{ socket: Socket; closed: Promise<Buffer> }> {
  const socket = connect(broker.port, "127.0.0.1");
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.on("error", () => undefined);
  const closed = new Promise<Buffer>((resolve) => socket.once("close", () => resolve(Buffer.concat(chunks))));
  await new Promise((resolve) => socket.once("connect", resolve));
  return { socket, closed };
}

/** The broker still takes and hands out messages: nothing was lost, nothing duplicated. */
async function stillServes(body: string): Promise<void> {
  const sender = client.createSender("kept");
  await sender.sendMessages({ body });
  await sender.close();
  const receiver = client.createReceiver("kept", { receiveMode: "receiveAndDelete" });
  expect((await receiver.receiveMessages(10, { maxWaitTimeInMs: 500 })).map((m) => m.body)).toEqual([body]);
  await receiver.close();
}

describe("frames", () => {
  it("a frame that declares more than the broker's max-frame-size is refused by its declared size, before any of it is read", async () => {
    const { socket, closed } = await raw();
    socket.write(SASL_HEADER);
    // A frame header declaring 4 GB; its body is never sent: the broker must not wait for it.
    socket.write(Buffer.from([0xff, 0xff, 0xff, 0xf0, 2, 1, 0, 0]));
    const answered = await closed;
    expect(answered.subarray(0, 8)).toEqual(SASL_HEADER);
    await stillServes("after an oversized frame");
  });

  it("on an open connection, an oversized frame closes it with amqp:connection:framing-error", async () => {
    const connection = amqp.create_container().connect({ host: "127.0.0.1", port: broker.port, reconnect: false });
    try {
      await new Promise((resolve) => connection.once("connection_open", resolve));
      expect((connection as unknown as { remote: { open: { max_frame_size: number } } }).remote.open.max_frame_size).toBe(65_536);
      const error = new Promise<{ condition?: string; description?: string }>((resolve) => connection.once("connection_error", (context) => resolve(context.connection!.error as { condition?: string })));
      (connection as unknown as { socket: Socket }).socket.write(Buffer.from([0x00, 0x10, 0x00, 0x01, 2, 0, 0, 0]));
      expect(await error).toMatchObject({ condition: "amqp:connection:framing-error", description: expect.stringContaining("65536 bytes at most") });
    } finally {
      connection.close();
    }
    await stillServes("after a framing error");
  });

  it("garbage instead of a protocol header, a frame shorter than its header, and a truncated frame each end that connection only", async () => {
    const garbage = await raw();
    garbage.socket.write(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    await garbage.closed;

    const tiny = await raw();
    tiny.socket.write(Buffer.concat([SASL_HEADER, Buffer.from([0, 0, 0, 3])]));
    await tiny.closed;

    const truncated = await raw();
    truncated.socket.write(Buffer.concat([SASL_HEADER, Buffer.from([0, 0, 0, 64, 2, 1, 0, 0, 0x00, 0x53])]));
    truncated.socket.end();
    await truncated.closed;

    await stillServes("after garbage");
  });
});

describe("links and settlement", () => {
  it("a receiver or sender for an entity that does not exist is refused with amqp:not-found, and the connection keeps working", async () => {
    const connection = amqp.create_container().connect({ host: "127.0.0.1", port: broker.port, reconnect: false });
    try {
      await new Promise((resolve) => connection.once("connection_open", resolve));
      const refused = (open: () => import("rhea").Receiver | import("rhea").Sender, event: string) =>
        new Promise<string | undefined>((resolve) => {
          const link = open();
          link.once(event as "receiver_error", (context) => resolve((context.receiver ?? context.sender)!.error?.condition as string | undefined));
        });
      expect(await refused(() => connection.open_receiver("nowhere"), "receiver_error")).toBe("amqp:not-found");
      expect(await refused(() => connection.open_sender("nowhere"), "sender_error")).toBe("amqp:not-found");
      const sender = connection.open_sender("kept");
      await new Promise((resolve) => sender.once("sendable", resolve));
      sender.send({ body: "over the same connection" });
      await new Promise((resolve) => sender.once("accepted", resolve));
    } finally {
      connection.close();
    }
    const receiver = client.createReceiver("kept", { receiveMode: "receiveAndDelete" });
    expect((await receiver.receiveMessages(10, { maxWaitTimeInMs: 500 })).map((m) => m.body)).toEqual(["over the same connection"]);
    await receiver.close();
  });

  it("settling with a lock token the broker never gave, or twice, fails with MessageLockLost and changes nothing", async () => {
    const sender = client.createSender("kept");
    await sender.sendMessages({ body: "settle me once" });
    await sender.close();
    const receiver = client.createReceiver("kept");
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    const { delivery } = message as unknown as { delivery: object };
    // A message the client believes deferred (no link) is settled through $management with its lock token.
    const forged = { ...message!, lockToken: "00000000-0000-0000-0000-000000000001", delivery: { ...delivery, link: undefined } };
    const other = client.createReceiver("kept");
    await expect(other.completeMessage(forged as never)).rejects.toMatchObject({ code: "MessageLockLost" });
    expect(broker.messages("kept").map((m) => m.state)).toEqual(["locked"]);
    await receiver.completeMessage(message!);
    await expect(other.renewMessageLock(message!)).rejects.toMatchObject({ code: "MessageLockLost" });
    expect(broker.messages("kept")).toEqual([]);
    await Promise.all([receiver.close(), other.close()]);
  });
});
