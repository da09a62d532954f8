/**
 * `plugbox listen`: receives execution contexts from a Service Bus queue or subscription and
 * prints them (the Dataverse documentation's listener sample, in Node). It answers two-way
 * requests (messages with ReplyTo) when given `--reply`.
 */
import { ServiceBusClient, type ServiceBusReceivedMessage } from "@azure/service-bus";
import type { Command } from "commander";
import { parseRemoteExecutionContext } from "../../sdk/wire/index.js";
import { toPlain } from "../../sdk/codec.js";
import { UsageError } from "../errors.js";
import type { CliIo } from "./pipeline-commands.js";

const CLAIMS = "http://schemas.microsoft.com/xrm/2011/Claims";

interface ListenFlags {
  connectionString: string;
  queue?: string;
  topic?: string;
  subscription?: string;
  json?: boolean;
  max?: number;
  timeout?: number;
  reply?: string;
}

function bodyText(message: ServiceBusReceivedMessage): string {
  const body: unknown = message.body;
  if (typeof body === "string") return body;
  if (body instanceof Uint8Array) return Buffer.from(body).toString("utf8");
  return JSON.stringify(body);
}

export function registerListenCommand(program: Command, io: CliIo): void {
  program
    .command("listen")
    .description("receive execution contexts from a Service Bus queue (or topic subscription) and print them")
    .requiredOption("--connection-string <cs>", "the namespace's connection string (plugbox broker prints one)")
    .option("--queue <name>", "the queue to receive from")
    .option("--topic <name>", "a topic, with --subscription")
    .option("--subscription <name>", "the topic's subscription")
    .option("--json", "print each context as one JSON line: { messageId, contentType, properties, context }")
    .option("--max <n>", "stop after this many messages", (v) => Number.parseInt(v, 10))
    .option("--timeout <ms>", "stop after this long without a message", (v) => Number.parseInt(v, 10))
    .option("--reply <text>", "answer two-way requests (messages with ReplyTo) with this text")
    .action(async (flags: ListenFlags) => {
      if (!flags.queue && !(flags.topic && flags.subscription)) throw new UsageError("CLI_USAGE", "name a --queue, or a --topic with its --subscription");
      if (!/(^|;)Endpoint=sb:\/\/[^;]+/i.test(flags.connectionString)) {
        throw new UsageError("CLI_USAGE", "--connection-string is malformed: it needs Endpoint=sb://<host>;SharedAccessKeyName=…;SharedAccessKey=…");
      }
      const client = new ServiceBusClient(flags.connectionString);
      const receiver = flags.queue ? client.createReceiver(flags.queue) : client.createReceiver(flags.topic!, flags.subscription!);
      const sender = flags.reply !== undefined ? new Map<string, ReturnType<ServiceBusClient["createSender"]>>() : undefined;
      let received = 0;
      try {
        for (;;) {
          const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: flags.timeout ?? 60_000 });
          if (!message) {
            if (flags.timeout !== undefined) break;
            continue;
          }
          const format = message.contentType === "application/xml" ? "xml" : "json";
          const context = parseRemoteExecutionContext(bodyText(message), format);
          const properties = message.applicationProperties ?? {};
          if (flags.json) {
            io.out(JSON.stringify({ messageId: message.messageId, contentType: message.contentType, properties, context: toPlain(context) }));
          } else {
            io.out(
              `${String(message.messageId)}: ${context.messageName} of ${context.primaryEntityName} ${context.primaryEntityId} ` +
                `(stage ${context.stage}, mode ${context.mode}, depth ${context.depth}, operation ${context.operationId}) from ${String(properties[`${CLAIMS}/Organization`] ?? "?")}`,
            );
          }
          if (sender && message.replyTo) {
            let replySender = sender.get(message.replyTo);
            if (!replySender) sender.set(message.replyTo, (replySender = client.createSender(message.replyTo)));
            await replySender.sendMessages({ body: flags.reply, correlationId: message.messageId });
          }
          await receiver.completeMessage(message);
          if (flags.max !== undefined && ++received >= flags.max) break;
        }
      } finally {
        await receiver.close();
        for (const s of sender?.values() ?? []) await s.close();
        await client.close();
      }
    });
}
