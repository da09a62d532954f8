/**
 * `plugbox listen`: receives execution contexts from a Service Bus queue or subscription, or an
 * event hub, and prints them (the Dataverse documentation's listener sample, in Node). It answers
 * two-way requests (messages with ReplyTo) when given `--reply`. A message that is not an execution
 * context is reported and dead-lettered (Service Bus) or skipped (Event Hubs), never dropped
 * silently, and makes the command end with exit code 1.
 */
import type { ReceivedEventData } from "@azure/event-hubs";
import type { ServiceBusClient, ServiceBusReceivedMessage } from "@azure/service-bus";
import type { Command } from "commander";
import { parseRemoteExecutionContext, type RemoteExecutionContext } from "../../sdk/wire/index.js";
import { toPlain } from "../../sdk/codec.js";
import { UsageError } from "../errors.js";
import { messageText, textBody } from "../relay/body.js";
import type { CliIo } from "./pipeline-commands.js";

const CLAIMS = "http://schemas.microsoft.com/xrm/2011/Claims";

interface ListenFlags {
  connectionString: string;
  queue?: string;
  topic?: string;
  subscription?: string;
  eventHub?: string;
  consumerGroup: string;
  json?: boolean;
  max?: number;
  timeout?: number;
  reply?: string;
}

/** What a listener needs of a received message, whichever service it came from. */
interface Received {
  messageId: unknown;
  contentType: string | undefined;
  properties: Record<string, unknown>;
  body: unknown;
}

class Printer {
  received = 0;
  rejected = 0;
  constructor(
    private readonly io: CliIo,
    private readonly flags: ListenFlags,
  ) {}

  /** Prints a context; returns undefined (after saying why) when the message is not one. */
  print(message: Received): RemoteExecutionContext | undefined {
    let context: RemoteExecutionContext;
    try {
      context = parseRemoteExecutionContext(messageText(message.body), message.contentType === "application/xml" ? "xml" : "json");
    } catch (error) {
      this.rejected++;
      this.io.err(`${String(message.messageId)}: not an execution context (${(error as Error).message})`);
      return undefined;
    }
    this.received++;
    if (this.flags.json) {
      this.io.out(JSON.stringify({ messageId: message.messageId, contentType: message.contentType, properties: message.properties, context: toPlain(context) }));
    } else {
      this.io.out(
        `${String(message.messageId)}: ${context.messageName} of ${context.primaryEntityName} ${context.primaryEntityId} ` +
          `(stage ${context.stage}, mode ${context.mode}, depth ${context.depth}, operation ${context.operationId}) from ${String(message.properties[`${CLAIMS}/Organization`] ?? "?")}`,
      );
    }
    return context;
  }

  get done(): boolean {
    return this.flags.max !== undefined && this.received >= this.flags.max;
  }

  finish(): void {
    if (this.rejected > 0) {
      this.io.err(`${this.rejected} message(s) were not execution contexts${this.flags.eventHub ? " (left in the event hub)" : " (moved to the dead-letter queue)"}`);
      this.io.setExitCode(1);
    }
  }
}

export function registerListenCommand(program: Command, io: CliIo): void {
  program
    .command("listen")
    .description("receive execution contexts from a Service Bus queue, topic subscription or event hub, and print them")
    .requiredOption("--connection-string <cs>", "the namespace's connection string (plugbox broker prints one)")
    .option("--queue <name>", "the queue to receive from")
    .option("--topic <name>", "a topic, with --subscription")
    .option("--subscription <name>", "the topic's subscription")
    .option("--event-hub <name>", "an event hub: every partition is read from its start")
    .option("--consumer-group <name>", "the event hub's consumer group", "$Default")
    .option("--json", "print each context as one JSON line: { messageId, contentType, properties, context }")
    .option("--max <n>", "stop after this many messages", (v) => Number.parseInt(v, 10))
    .option("--timeout <ms>", "stop after this long without a message", (v) => Number.parseInt(v, 10))
    .option("--reply <text>", "answer two-way requests (messages with ReplyTo) with this text")
    .action(async (flags: ListenFlags) => {
      if (!flags.queue && !(flags.topic && flags.subscription) && !flags.eventHub) throw new UsageError("CLI_USAGE", "name a --queue, a --topic with its --subscription, or an --event-hub");
      if (!/(^|;)Endpoint=sb:\/\/[^;]+/i.test(flags.connectionString)) {
        throw new UsageError("CLI_USAGE", "--connection-string is malformed: it needs Endpoint=sb://<host>;SharedAccessKeyName=…;SharedAccessKey=…");
      }
      const printer = new Printer(io, flags);
      if (flags.eventHub) await listenToEventHub(flags, printer);
      else await listenToServiceBus(flags, printer);
      printer.finish();
    });
}

// The Azure clients load only for the command that uses them: other commands start without them.
async function listenToServiceBus(flags: ListenFlags, printer: Printer): Promise<void> {
  const { ServiceBusClient } = await import("@azure/service-bus");
  const client = new ServiceBusClient(flags.connectionString);
  // The body's bytes as they came (Dataverse sends the context's text as bytes), not parsed by the client.
  const receiver = flags.queue ? client.createReceiver(flags.queue, { skipParsingBodyAsJson: true }) : client.createReceiver(flags.topic!, flags.subscription!, { skipParsingBodyAsJson: true });
  const replySenders = new Map<string, ReturnType<ServiceBusClient["createSender"]>>();
  try {
    while (!printer.done) {
      const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: flags.timeout ?? 60_000 });
      if (!message) {
        if (flags.timeout !== undefined) break;
        continue;
      }
      const context = printer.print(toReceived(message));
      if (!context) {
        await receiver.deadLetterMessage(message, { deadLetterReason: "NotAnExecutionContext", deadLetterErrorDescription: "plugbox listen could not parse the body as a RemoteExecutionContext" });
        continue;
      }
      if (flags.reply !== undefined && message.replyTo) {
        let sender = replySenders.get(message.replyTo);
        if (!sender) replySenders.set(message.replyTo, (sender = client.createSender(message.replyTo)));
        await sender.sendMessages({ body: textBody(flags.reply), correlationId: message.messageId, ...(message.replyToSessionId ? { sessionId: message.replyToSessionId } : {}) });
      }
      await receiver.completeMessage(message);
    }
  } finally {
    await receiver.close();
    for (const sender of replySenders.values()) await sender.close();
    await client.close();
  }
}

function toReceived(message: ServiceBusReceivedMessage): Received {
  return { messageId: message.messageId, contentType: message.contentType, properties: message.applicationProperties ?? {}, body: message.body };
}

async function listenToEventHub(flags: ListenFlags, printer: Printer): Promise<void> {
  const { EventHubConsumerClient, earliestEventPosition } = await import("@azure/event-hubs");
  const consumer = new EventHubConsumerClient(flags.consumerGroup, flags.connectionString, flags.eventHub!);
  try {
    await new Promise<void>((resolve, reject) => {
      let idle: NodeJS.Timeout | undefined;
      const restartIdle = () => {
        if (flags.timeout === undefined) return;
        clearTimeout(idle);
        idle = setTimeout(resolve, flags.timeout);
      };
      restartIdle();
      consumer.subscribe(
        {
          processEvents: async (events: ReceivedEventData[]) => {
            for (const event of events) {
              if (printer.done) break;
              printer.print({ messageId: event.messageId, contentType: event.contentType, properties: event.properties ?? {}, body: event.body });
              restartIdle();
            }
            if (printer.done) {
              clearTimeout(idle);
              resolve();
            }
          },
          processError: async (error) => {
            clearTimeout(idle);
            reject(error);
          },
        },
        { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 1, skipParsingBodyAsJson: true },
      );
    });
  } finally {
    await consumer.close();
  }
}
