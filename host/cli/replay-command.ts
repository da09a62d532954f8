/**
 * `plugbox replay`: runs a plug-in against an execution context captured from Service Bus, Event
 * Hubs or a webhook (a `plugbox listen --json` line, or the body Dataverse posted: JSON or Text
 * XML), from a file or standard input, the way `plugbox run` runs it: same flags, output and exit
 * statuses. The context is the capture's, ids and all; `--data` seeds the store the plug-in reads.
 */
import type { Command } from "commander";
import { readCapturedContext } from "../replay/context-input.js";
import type { CliIo } from "./command-host.js";
import { CliError } from "./errors.js";
import { addPluginRunOptions, runAndReport, type PluginRunFlags } from "./plugin-run.js";

interface ReplayFlags extends PluginRunFlags {
  bundle: string;
}

export function registerReplayCommand(program: Command, io: CliIo): void {
  const replay = program
    .command("replay")
    .description("run a plug-in against an execution context captured by `listen --json`, or posted by Dataverse (JSON or Text XML), as `run` runs it")
    .argument("[context]", "the captured context: a file holding a `plugbox listen --json` line, a RemoteExecutionContext in JSON or Text XML; - for standard input")
    .requiredOption("--bundle <bundle>", "a bundle made by `plugbox build`, or a plug-in module's .ts source (bundled in memory first)")
    .requiredOption("-t, --type <ExportName>", "the exported plug-in class to run");
  const limitsOf = addPluginRunOptions(replay);
  replay.action(async (source: string | undefined, flags: ReplayFlags) => {
    if (source === undefined) {
      throw new CliError("CLI_USAGE", "name the context to replay: a file holding a `plugbox listen --json` line or a RemoteExecutionContext (JSON or Text XML), or - to read it from standard input");
    }
    const captured = await readCapturedContext(source);
    await runAndReport(io, flags.bundle, captured.context, flags, limitsOf(flags));
  });
}
