/**
 * A listener for contexts posted by plugbox (or by Dataverse): the Node.js version of the
 * Dataverse documentation's Service Bus listener. It receives from a queue, checks the claims that
 * say the message came from an organization, parses the RemoteExecutionContext with plugbox/sdk
 * and drops duplicates by MessageId (a retried post carries the same one).
 *
 *   PLUGBOX_SB_CONNECTION="Endpoint=sb://127.0.0.1:5672;…;UseDevelopmentEmulator=true;" node listener.js account-events
 */
import { ServiceBusClient } from "@azure/service-bus";
import { parseRemoteExecutionContext } from "plugbox/sdk";

const ORGANIZATION_CLAIM = "http://schemas.microsoft.com/xrm/2011/Claims/Organization";

export async function listen(connectionString: string, queue: string, onContext: (summary: string) => void, signal: AbortSignal): Promise<void> {
  const client = new ServiceBusClient(connectionString);
  // Dataverse sends the context's text as the body's bytes: take them as they are.
  const receiver = client.createReceiver(queue, { skipParsingBodyAsJson: true });
  const seen = new Set<string>();
  receiver.subscribe({
    async processMessage(message) {
      const id = String(message.messageId);
      if (seen.has(id)) return; // a retried post: already handled
      seen.add(id);
      if (!message.applicationProperties?.[ORGANIZATION_CLAIM]) return; // not from an organization
      const format = message.contentType === "application/xml" ? "xml" : "json";
      const body = Buffer.from(message.body as Uint8Array).toString("utf8");
      const context = parseRemoteExecutionContext(body, format);
      onContext(`${context.messageName} of ${context.primaryEntityName} ${context.primaryEntityId} (operation ${context.operationId}, depth ${context.depth})`);
    },
    async processError(args) {
      onContext(`error: ${args.error.message}`);
    },
  });
  await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  await receiver.close();
  await client.close();
}

const [queue] = process.argv.slice(2);
if (queue && process.env.PLUGBOX_SB_CONNECTION) {
  const controller = new AbortController();
  process.once("SIGINT", () => controller.abort());
  await listen(process.env.PLUGBOX_SB_CONNECTION, queue, (line) => console.log(line), controller.signal);
}
