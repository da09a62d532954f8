/**
 * `plugbox listen`: receives execution contexts from a Service Bus queue or subscription, or an
 * event hub, and prints them (the Dataverse documentation's listener sample, in Node). It answers
 * two-way requests (messages with ReplyTo) when given `--reply`. A message that is not an execution
 * context is reported and dead-lettered (Service Bus) or skipped (Event Hubs), never dropped
 * silently, and makes the command end with exit code 1.
 *
 * It behaves like a service: a namespace it cannot reach, or loses (a broker that stops or
 * restarts), is tried again with a back-off (250 ms doubling to 10 s), said on stderr each time,
 * forever; a receive that neither answers nor fails is abandoned and the connection made anew, so
 * it never stalls. It ends only when told to (SIGINT, SIGTERM, --max, --timeout) or when the entity
 * does not exist (LISTEN_ENTITY_NOT_FOUND); a --timeout that runs out while the namespace cannot be
 * reached is LISTEN_UNREACHABLE. A message received but not completed before a connection was lost
 * comes again once its lock expires (at least once, as Service Bus delivers).
 */
import type { ReceivedEventData } from "@azure/event-hubs";
import type { ServiceBusClient, ServiceBusReceivedMessage } from "@azure/service-bus";
import type { Command } from "commander";
import { parseRemoteExecutionContext, type RemoteExecutionContext } from "../../sdk/wire/index.js";
import { toPlain } from "../../sdk/codec.js";
import { CliError } from "./errors.js";
import { checkConnectionString, positiveInteger, refusedAsUsage } from "./listen-options.js";
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
    readonly io: CliIo,
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
    .option("--max <n>", "stop after this many messages", positiveInteger)
    .option("--timeout <ms>", "stop after this long without a message", positiveInteger)
    .option("--reply <text>", "answer two-way requests (messages with ReplyTo) with this text")
    .action(async (flags: ListenFlags) => {
      if (!flags.queue && !(flags.topic && flags.subscription) && !flags.eventHub) throw new CliError("CLI_USAGE", "name a --queue, a --topic with its --subscription, or an --event-hub");
      const endpoint = checkConnectionString(flags.connectionString);
      const printer = new Printer(io, flags);
      const session = new Session(io, endpoint, flags.timeout);
      const onSignal = (signal: NodeJS.Signals) => session.stop(signal);
      process.once("SIGINT", onSignal);
      process.once("SIGTERM", onSignal);
      try {
        if (flags.eventHub) await listenToEventHub(flags, printer, session);
        else await listenToServiceBus(flags, printer, session);
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
      if (session.stoppedBy) io.err(`listen: stopped by ${session.stoppedBy} after ${printer.received} context(s)`);
      printer.finish();
    });
}

/** The longest one receive waits for a message, ms: a quiet link is asked again this often. */
const RECEIVE_WAIT_MS = 30_000;
/** The wait of a receive on a connection just made again. */
const RECONNECT_WAIT_MS = 1_000;
/** How long past its own wait a receive may take before it counts as stalled and the connection is made anew, ms. */
const STALL_GRACE_MS = 15_000;
/** How long one operation (a settlement, a reply, opening a link) may take, ms. */
const OPERATION_TIMEOUT_MS = 10_000;
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 10_000;

/** A receive or a settlement that neither answered nor failed in time. */
class StalledError extends Error {}

/** The event hub listened to was made anew (its createdOn changed): its events are numbered from 0 again. */
class HubMadeAnew extends Error {}

/** How often an event hub's properties are asked for while it is read, ms. */
const HUB_PROBE_MS = 3_000;

/**
 * One listen's life: whether it was told to stop, how long it may stay idle, and the connection's
 * ups and downs (each said on stderr) with the back-off between attempts.
 */
class Session {
  readonly #stop = new AbortController();
  stoppedBy: NodeJS.Signals | undefined;
  #failures = 0;
  #down = false;
  #idleSince = Date.now();

  constructor(
    readonly io: CliIo,
    private readonly endpoint: string,
    private readonly timeoutMs: number | undefined,
  ) {}

  get stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  stop(signal: NodeJS.Signals): void {
    this.stoppedBy ??= signal;
    this.#stop.abort(new Error(`stopped by ${signal}`));
  }

  /** A message arrived: the idle clock starts again. */
  heard(): void {
    this.#idleSince = Date.now();
  }

  /**
   * How long the next receive may wait: until --timeout runs out, at most RECEIVE_WAIT_MS; a second
   * while the connection is being made again, so that it is known (and said) soon that it works.
   */
  nextWait(): number {
    const most = this.#down ? RECONNECT_WAIT_MS : RECEIVE_WAIT_MS;
    if (this.timeoutMs === undefined) return most;
    return Math.min(most, this.timeoutMs - (Date.now() - this.#idleSince));
  }

  /** --timeout ran out: a normal end, unless the namespace could not be reached then. */
  timedOut(): void {
    if (this.#down) throw new CliError("LISTEN_UNREACHABLE", `${this.endpoint} could not be reached for the last ${this.timeoutMs} ms (--timeout), after ${this.#failures} attempt(s)`);
  }

  /** The link answered (a receive came back, with or without a message). */
  up(): void {
    if (this.#down) this.io.err(`listen: connected to ${this.endpoint} again`);
    this.#down = false;
    this.#failures = 0;
  }

  /** The connection failed: says so, and waits out the back-off (or until told to stop). */
  async lost(error: unknown): Promise<void> {
    this.#failures++;
    this.#down = true;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(this.#failures - 1, 10));
    this.io.err(`listen: cannot reach ${this.endpoint} (${describe(error)}); trying again in ${delay} ms (attempt ${this.#failures})`);
    await new Promise<void>((resolve) => {
      const signal = this.signal;
      const timer = setTimeout(done, delay);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * Waits for an operation of the client, at most `ms`: one that outlives it is abandoned
   * (`abandon` aborts it where the client can) and counts as a lost connection.
   */
  async guard<T>(operation: (signal: AbortSignal) => Promise<T>, ms: number): Promise<T> {
    const abandon = new AbortController();
    const onStop = () => abandon.abort(this.signal.reason);
    this.signal.addEventListener("abort", onStop, { once: true });
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        operation(abandon.signal),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            abandon.abort();
            reject(new StalledError(`no answer within ${ms} ms`));
          }, ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.signal.removeEventListener("abort", onStop);
    }
  }
}

function describe(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown };
  const message = String(e.message ?? error).split("\n")[0]!.slice(0, 200);
  return typeof e.code === "string" && !message.startsWith(e.code) ? `${e.code}: ${message}` : message;
}

/** The entity named does not exist: Service Bus says MessagingEntityNotFound, Event Hubs MessagingEntityNotFoundError. */
function isEntityNotFound(error: unknown): boolean {
  return /^MessagingEntityNotFound/.test(String((error as { code?: unknown }).code));
}

/** Closes what a connection opened, without waiting on a peer that is gone. */
async function closeQuietly(...closing: Array<Promise<unknown> | undefined>): Promise<void> {
  await Promise.race([Promise.allSettled(closing), new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
}

// The Azure clients load only for the command that uses them: other commands start without them.
async function listenToServiceBus(flags: ListenFlags, printer: Printer, session: Session): Promise<void> {
  const { ServiceBusClient } = await import("@azure/service-bus");
  const what = flags.queue ? `queue ${flags.queue}` : `subscription ${flags.subscription} on the topic ${flags.topic}`;
  while (!printer.done && !session.stopped) {
    // The client's own retries are off: this loop retries, with its back-off, and says so.
    const client = refusedAsUsage(() => new ServiceBusClient(flags.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: OPERATION_TIMEOUT_MS } }));
    // The body's bytes as they came (Dataverse sends the context's text as bytes), not parsed by the client.
    const receiver = flags.queue ? client.createReceiver(flags.queue, { skipParsingBodyAsJson: true }) : client.createReceiver(flags.topic!, flags.subscription!, { skipParsingBodyAsJson: true });
    const replySenders = new Map<string, ReturnType<ServiceBusClient["createSender"]>>();
    try {
      while (!printer.done && !session.stopped) {
        const wait = session.nextWait();
        if (wait <= 0) return session.timedOut();
        const [message] = await session.guard((abortSignal) => receiver.receiveMessages(1, { maxWaitTimeInMs: wait, abortSignal }), wait + STALL_GRACE_MS);
        session.up();
        if (!message) continue;
        session.heard();
        const context = printer.print(toReceived(message));
        if (!context) {
          await session.guard(
            () => receiver.deadLetterMessage(message, { deadLetterReason: "NotAnExecutionContext", deadLetterErrorDescription: "plugbox listen could not parse the body as a RemoteExecutionContext" }),
            OPERATION_TIMEOUT_MS + STALL_GRACE_MS,
          );
          continue;
        }
        if (flags.reply !== undefined && message.replyTo) {
          let sender = replySenders.get(message.replyTo);
          if (!sender) replySenders.set(message.replyTo, (sender = client.createSender(message.replyTo)));
          const reply = { body: textBody(flags.reply), correlationId: message.messageId, ...(message.replyToSessionId ? { sessionId: message.replyToSessionId } : {}) };
          await session.guard((abortSignal) => sender.sendMessages(reply, { abortSignal }), OPERATION_TIMEOUT_MS + STALL_GRACE_MS);
        }
        await session.guard(() => receiver.completeMessage(message), OPERATION_TIMEOUT_MS + STALL_GRACE_MS);
      }
    } catch (error) {
      if (session.stopped) return;
      if (error instanceof CliError) throw error;
      if (isEntityNotFound(error)) throw new CliError("LISTEN_ENTITY_NOT_FOUND", `${flags.connectionString.match(/Endpoint=([^;]+)/i)?.[1]} has no ${what}: ${describe(error)}`);
      await session.lost(error);
    } finally {
      await closeQuietly(receiver.close(), ...[...replySenders.values()].map((sender) => sender.close()), client.close());
    }
  }
}

function toReceived(message: ServiceBusReceivedMessage): Received {
  return { messageId: message.messageId, contentType: message.contentType, properties: message.applicationProperties ?? {}, body: message.body };
}

/**
 * Reads every partition of an event hub from its start; after a lost connection it reads on from
 * the last event it printed of each partition, so nothing is printed twice or skipped (a hub made
 * anew meanwhile is read from its start).
 */
async function listenToEventHub(flags: ListenFlags, printer: Printer, session: Session): Promise<void> {
  const { EventHubConsumerClient, earliestEventPosition } = await import("@azure/event-hubs");
  const lastSeen = new Map<string, number>();
  let hubCreatedOn: number | undefined;
  while (!printer.done && !session.stopped) {
    if (session.nextWait() <= 0) return session.timedOut();
    const consumer = refusedAsUsage(() => new EventHubConsumerClient(flags.consumerGroup, flags.connectionString, flags.eventHub!, { retryOptions: { maxRetries: 0, timeoutInMs: OPERATION_TIMEOUT_MS } }));
    let subscription: { close(): Promise<void> } | undefined;
    try {
      const hub = await session.guard((abortSignal) => consumer.getEventHubProperties({ abortSignal }), OPERATION_TIMEOUT_MS + STALL_GRACE_MS);
      session.up();
      // A hub made anew meanwhile (an emulator that restarted keeps nothing) numbers its events from 0 again: read it from its start.
      if (hubCreatedOn !== undefined && hub.createdOn.getTime() !== hubCreatedOn) lastSeen.clear();
      hubCreatedOn = hub.createdOn.getTime();
      const startPosition = Object.fromEntries(hub.partitionIds.map((id) => [id, lastSeen.has(id) ? { sequenceNumber: lastSeen.get(id)!, isInclusive: false } : earliestEventPosition]));
      await new Promise<void>((resolve, reject) => {
        // Each partition's processEvents is called every second, empty when idle: silence is a stall.
        let answered = Date.now();
        // Once this subscription is given up, what it still delivers is not this connection's to tell.
        let live = true;
        const settle = (fn: () => void) => {
          live = false;
          clearInterval(watchdog);
          fn();
        };
        // The client reconnects by itself and goes on where it was, so a lost connection, or a hub made
        // anew behind it, is found by asking the hub's properties every few seconds.
        let probed = Date.now();
        let probing = false;
        const probe = async () => {
          probing = true;
          try {
            const now = await session.guard((abortSignal) => consumer.getEventHubProperties({ abortSignal }), OPERATION_TIMEOUT_MS + STALL_GRACE_MS);
            if (now.createdOn.getTime() !== hubCreatedOn) settle(() => reject(new HubMadeAnew()));
          } catch (error) {
            if (live) settle(() => reject(error));
          } finally {
            probing = false;
            probed = Date.now();
          }
        };
        const watchdog = setInterval(() => {
          if (session.stopped || printer.done || session.nextWait() <= 0) settle(resolve);
          else if (Date.now() - answered > STALL_GRACE_MS) settle(() => reject(new StalledError(`no answer from the event hub for ${STALL_GRACE_MS} ms`)));
          else if (!probing && Date.now() - probed > HUB_PROBE_MS) void probe();
        }, 100);
        subscription = consumer.subscribe(
          {
            processEvents: async (events: ReceivedEventData[], context) => {
              if (!live) return;
              answered = Date.now();
              session.up();
              for (const event of events) {
                if (printer.done) break;
                printer.print({ messageId: event.messageId, contentType: event.contentType, properties: event.properties ?? {}, body: event.body });
                lastSeen.set(context.partitionId, event.sequenceNumber);
                session.heard();
              }
              if (printer.done) settle(resolve);
            },
            processError: async (error) => {
              if (live) settle(() => reject(error));
            },
          },
          { startPosition, maxWaitTimeInSeconds: 1, skipParsingBodyAsJson: true },
        );
      });
    } catch (error) {
      if (session.stopped) return;
      if (error instanceof HubMadeAnew) {
        session.io.err(`listen: the event hub ${flags.eventHub} was made anew (its broker restarted); reading it from its start`);
        continue;
      }
      if (isEntityNotFound(error)) throw new CliError("LISTEN_ENTITY_NOT_FOUND", `${flags.connectionString.match(/Endpoint=([^;]+)/i)?.[1]} has no event hub ${flags.eventHub}: ${describe(error)}`);
      await session.lost(error);
    } finally {
      await closeQuietly(subscription?.close(), consumer.close());
    }
  }
}
