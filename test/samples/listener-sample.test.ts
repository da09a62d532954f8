/**
 * samples/listener: the documentation's listener in Node, against the local broker and a real relay.
 */
import { ServiceBusClient } from "@azure/service-bus";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBroker, type Broker } from "../../dist/host/index.js";
import { Relay } from "../../dist/host/testing/internal.js";
import { Entity } from "../../dist/sdk/index.js";
import { listen } from "../../dist/samples/listener/listener.js";

const ENDPOINT = "c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80";
let broker: Broker;

beforeAll(async () => {
  broker = await startBroker({ port: 0, topology: { queues: [{ name: "account-events" }] } });
});
afterAll(() => broker.close());

describe("the listener sample", () => {
  it("prints each relayed context once, drops a retried post by MessageId, and ignores a message without the organization claim", async () => {
    const relay = new Relay({ endpoints: [{ id: ENDPOINT, name: "e", contract: "Queue", path: "account-events", connectionString: broker.connectionString }], organizationUrl: "https://contoso.example" });
    const target = new Entity("account", "6d81597f-0f9f-e711-8122-000d3aa2331c", { name: "Contoso" });
    const context = { messageName: "Create", primaryEntityName: "account", primaryEntityId: target.id, stage: 40, mode: 1, depth: 1, inputParameters: { Target: target }, outputParameters: {}, sharedVariables: {}, preEntityImages: {}, postEntityImages: {}, userId: "75c2dd85-e89e-e711-8122-000d3aa2331c", initiatingUserId: "75c2dd85-e89e-e711-8122-000d3aa2331c", operationId: "4af10637-4ea2-e711-8122-000d3aa2331c", correlationId: "b374239d-4233-41a9-8b17-a86cb4f737b5" };
    const signal = new AbortController();
    const lines: string[] = [];
    const listening = listen(broker.connectionString, "account-events", (line) => lines.push(line), signal.signal);
    try {
      await relay.execute("e", context, signal.signal);
      await relay.execute("e", context, signal.signal); // the same OperationId again: a retried post
      const client = new ServiceBusClient(broker.connectionString);
      await client.createSender("account-events").sendMessages({ body: "not from an organization", messageId: "stray" });
      await client.close();
      await expect.poll(() => broker.entities().find((e) => e.path === "account-events"), { timeout: 5_000 }).toMatchObject({ active: 0, locked: 0 });
      expect(lines).toEqual([`Create of account ${target.id} (operation 4af10637-4ea2-e711-8122-000d3aa2331c, depth 1)`]);
    } finally {
      signal.abort();
      await listening;
      await relay.close();
    }
  });
});
