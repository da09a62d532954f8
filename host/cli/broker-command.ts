/**
 * `plugbox broker`: starts the local Service Bus, prints a ready connection string, and runs until
 * interrupted.
 */
import { InvalidArgumentError, type Command } from "commander";
import { readFile } from "node:fs/promises";
import { startBroker } from "../broker/broker.js";
import { parseEmulatorConfig } from "../broker/config.js";
import { UsageError } from "../errors.js";
import type { CliIo } from "./pipeline-commands.js";

export function registerBrokerCommand(program: Command, io: CliIo): void {
  program
    .command("broker")
    .description("start a local Service Bus (AMQP 1.0 on 127.0.0.1) for the real @azure/service-bus client")
    .option("--config <Config.json>", "the Service Bus emulator's topology file (JSON with comments)")
    .option("--port <n>", "the port, 0 for a free one", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError("expected a port number from 0 to 65535");
      return n;
    }, 5672)
    .option("--auto-create", "create a queue the first time a client names it")
    .option("--strict", "enforce the emulator's limits on the config file")
    .action(async (flags: { config?: string; port: number; autoCreate?: boolean; strict?: boolean }) => {
      let topology;
      if (flags.config) {
        let text: string;
        try {
          text = await readFile(flags.config, "utf8");
        } catch {
          throw new UsageError("INPUT_NOT_FOUND", `cannot read the config file ${flags.config}`);
        }
        topology = parseEmulatorConfig(text, { strict: flags.strict ?? false, file: flags.config });
      }
      const broker = await startBroker({ port: flags.port, ...(topology ? { topology } : {}), autoCreate: flags.autoCreate ?? false });
      io.out(`ready: ${broker.connectionString}`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      await broker.close();
    });
}
