/**
 * `plugbox broker`: starts the local Service Bus, prints a ready connection string, and runs until
 * interrupted.
 */
import { InvalidArgumentError, type Command } from "commander";
import { readFile } from "node:fs/promises";
import { startBroker, type BrokerTopology, type EventHubSpec } from "../broker/broker.js";
import { parseEmulatorConfig, toEmulatorConfig } from "../broker/config.js";
import { UsageError } from "../errors.js";
import { CliError } from "./errors.js";
import type { CliIo } from "./pipeline-commands.js";

export function registerBrokerCommand(program: Command, io: CliIo): void {
  program
    .command("broker")
    .description("start a local Service Bus (AMQP 1.0 on 127.0.0.1) for the real @azure/service-bus client")
    .option("--config <Config.json...>", "the Service Bus or Event Hubs emulator's topology file (JSON with comments); give both to serve both")
    .option("--port <n>", "the port, 0 for a free one", portNumber, 5672)
    .option("--health-port <n>", "also answer GET /health over HTTP on this port, as the emulator does on 5300", portNumber)
    .option("--auto-create", "create a queue the first time a client names it")
    .option("--event-hub <name[:partitions]>", "serve an event hub (repeatable)", (v, all: EventHubSpec[] = []) => [...all, eventHubFlag(v)])
    .option("--strict", "enforce the emulator's limits on the config file")
    .option("--data-dir <dir>", "keep messages, sessions and sequence numbers in this directory across restarts (default: memory only)")
    .option("--print-config [which]", "print the topology as the Service Bus emulator's Config.json (or, with `eventhubs`, the Event Hubs emulator's) and exit")
    .action(async (flags: { config?: string[]; port: number; autoCreate?: boolean; strict?: boolean; eventHub?: EventHubSpec[]; healthPort?: number; printConfig?: true | string; dataDir?: string }) => {
      const topology: Required<BrokerTopology> = { queues: [], topics: [], eventHubs: [...(flags.eventHub ?? [])] };
      for (const file of flags.config ?? []) {
        let text: string;
        try {
          text = await readFile(file, "utf8");
        } catch {
          throw new UsageError("INPUT_NOT_FOUND", `cannot read the config file ${file}`);
        }
        const parsed = parseEmulatorConfig(text, { strict: flags.strict ?? false, file });
        topology.queues.push(...(parsed.queues ?? []));
        topology.topics.push(...(parsed.topics ?? []));
        topology.eventHubs.push(...(parsed.eventHubs ?? []));
      }
      if (flags.printConfig !== undefined) {
        const which = flags.printConfig === true ? "servicebus" : flags.printConfig.toLowerCase();
        if (which !== "servicebus" && which !== "eventhubs") throw new CliError("CLI_USAGE", `--print-config takes servicebus (the default) or eventhubs, got ${JSON.stringify(flags.printConfig)}`);
        const files = toEmulatorConfig(topology);
        const file = which === "servicebus" ? files.serviceBus : files.eventHubs;
        if (!file) throw new CliError("CLI_USAGE", "--print-config eventhubs: no event hub is configured");
        io.out(JSON.stringify(file, null, 2));
        return;
      }
      const broker = await startBroker({
        port: flags.port,
        topology,
        autoCreate: flags.autoCreate ?? false,
        ...(flags.healthPort !== undefined ? { healthPort: flags.healthPort } : {}),
        ...(flags.dataDir !== undefined ? { dataDir: flags.dataDir } : {}),
      });
      io.out(`ready: ${broker.connectionString}`);
      if (broker.healthPort !== undefined) io.out(`health: http://127.0.0.1:${broker.healthPort}/health`);
      const entities = [...topology.queues.map((q) => `queue ${q.name}`), ...topology.topics.map((t) => `topic ${t.name} (${t.subscriptions.map((s) => s.name).join(", ")})`), ...topology.eventHubs.map((h) => `event hub ${h.name} (${h.partitionCount ?? 1} partitions)`)];
      if (entities.length > 0) io.out(`serving: ${entities.join("; ")}`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      await broker.close();
    });
}

function eventHubFlag(value: string): EventHubSpec {
  const [name, partitions] = value.split(":");
  const partitionCount = partitions === undefined ? 1 : Number(partitions);
  if (!name || !Number.isInteger(partitionCount) || partitionCount < 1) throw new InvalidArgumentError("expected a name, or name:partitions such as contexts:2");
  return { name, partitionCount };
}

function portNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("expected a port number from 0 to 65535");
  return n;
}
