#!/usr/bin/env node
/**
 * The `plugbox` command. Exit codes: 0 ok, 1 the plug-in failed, 2 usage or input error,
 * 3 a limit was exceeded, 4 an isolation rule was broken.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { createRequire } from "node:module";
import { isPlainObject } from "../../sdk/codec.js";
import type { Entity, EntityReference } from "../../sdk/model.js";
import { isolatedVmBinding } from "../../runtime/index.js";
import { buildBundle } from "../build.js";
import { entityOrReference, type ContextInput, type EntityInput, type Mode, type Stage } from "../pipeline/context.js";
import { PlugboxError } from "../../sdk/errors.js";
import { UsageError } from "../errors.js";
import { EXIT_STATUSES, exitStatusOf } from "./exit-statuses.js";
import { readPlugboxJson, registerPipelineCommands } from "./pipeline-commands.js";
import { toStoreError } from "../store/errors.js";
import { isGuid } from "../ids.js";
import { registerListenCommand } from "./listen-command.js";
import { registerBrokerCommand } from "./broker-command.js";
import { registerAuditCommand } from "./audit-command.js";
import { addPluginRunOptions, runAndReport, type PluginRunFlags } from "./plugin-run.js";
import { registerReplayCommand } from "./replay-command.js";
import { registerServeCommand } from "./serve-command.js";

const { version } = createRequire(import.meta.url)("../../../package.json") as { version: string };

/** "0.1.0 (Node.js 24.22.3, isolated-vm 7.0.1)"; on a Node with no binding, why instead of the binding. */
function versionLine(): string {
  try {
    const binding = isolatedVmBinding();
    return `${version} (Node.js ${binding.node}, isolated-vm ${binding.isolatedVm})`;
  } catch (error) {
    return `${version} (${(error as Error).message})`;
  }
}

function stage(value: string): Stage {
  const n = Number(value);
  if (n !== 10 && n !== 20 && n !== 40) throw new InvalidArgumentError("expected 10 (pre-validation), 20 (pre-operation) or 40 (post-operation)");
  return n;
}

/** `--target`'s file: an entity (or, for a message other than Create and Update, a reference) as plugbox JSON. */
async function readTarget(file: string, messageName: string): Promise<Entity | EntityReference> {
  const value = await readPlugboxJson(file, "target");
  let target: Entity | EntityReference;
  try {
    target = entityOrReference(value as EntityInput, "target", messageName);
  } catch (error) {
    if (error instanceof UsageError && error.code === "CONTEXT_INVALID") throw new UsageError("INPUT_INVALID_JSON", `the target file ${file}: ${error.message}`);
    throw error;
  }
  if (!isGuid(target.id)) throw new UsageError("INPUT_INVALID_JSON", `the target file ${file}: "id" must be a Guid such as "6d81597f-0f9f-e711-8122-000d3aa2331c", got ${JSON.stringify(target.id)}`);
  return target;
}

interface RunFlags extends PluginRunFlags {
  message: string;
  entity?: string;
  target?: string;
  stage: Stage;
  mode: Mode;
  shared?: string;
}

export function createProgram(io: { out: (text: string) => void; err: (text: string) => void; setExitCode: (code: number) => void }): Command {
  const program = new Command("plugbox")
    .description("Run Dataverse-style plug-ins in an isolated-vm sandbox")
    .version(versionLine())
    .exitOverride()
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, "")),
      writeErr: (s) => io.err(s.replace(/\n$/, "")),
      // Commander's own refusals read as every other error plugbox prints.
      outputError: (s, write) => write(s.replace(/^error: /, "plugbox: error [CLI_USAGE]: ")),
    });

  program
    .command("build")
    .description("bundle a plug-in module (TypeScript or JavaScript) into a bundle the sandbox loads")
    .argument("<entry>", "the module whose exports are plug-in classes")
    .requiredOption("-o, --outfile <bundle.js>", "where to write the bundle")
    .option("--minify", "minify the bundle (the source map still maps stack traces)")
    .action(async (entry: string, flags: { outfile: string; minify?: boolean }) => {
      const result = await buildBundle({ entry, outfile: flags.outfile, minify: flags.minify ?? false });
      for (const warning of result.warnings) io.err(`plugbox: warning: ${warning}`);
      io.out(`built ${result.outfile} (${(result.bytes / 1024).toFixed(1)} KB)`);
    });

  const run = program
    .command("run")
    .description("run one plug-in once, with the store-backed organization service over a :memory: store; notification posts are recorded, not sent")
    .argument("<bundle>", "a bundle made by `plugbox build`, or a plug-in module's .ts source (bundled in memory first)")
    .requiredOption("-t, --type <ExportName>", "the exported plug-in class to run")
    .option("--message <name>", "the message the step is registered on", "Create")
    .option("--entity <logicalName>", "the primary entity (default: the target's logicalName)")
    .option("--target <file.json>", "InputParameters.Target: { \"logicalName\", \"id\"?, \"attributes\" }")
    .option("--stage <10|20|40>", "pipeline stage", stage, 40 as Stage)
    .addOption(new Option("--mode <mode>", "execution mode").choices(["sync", "async"]).default("sync"))
    .option("--shared <file.json>", "SharedVariables as a JSON object");
  const limitsOf = addPluginRunOptions(run);
  registerPipelineCommands(program, io);
  registerListenCommand(program, io);
  registerReplayCommand(program, io);
  registerBrokerCommand(program, io);
  registerAuditCommand(program, io);
  registerServeCommand(program, io);
  run.action(async (bundlePath: string, flags: RunFlags) => {
    const target = flags.target ? await readTarget(flags.target, flags.message) : undefined;
    let sharedVariables: Record<string, unknown> | undefined;
    if (flags.shared) {
      const shared = await readPlugboxJson(flags.shared, "shared variables");
      if (!isPlainObject(shared)) throw new UsageError("INPUT_INVALID_JSON", `the shared variables file ${flags.shared} must hold a JSON object of name → value`);
      sharedVariables = shared;
    }
    const context: ContextInput = {
      messageName: flags.message,
      stage: flags.stage,
      mode: flags.mode,
      ...(flags.entity ? { primaryEntityName: flags.entity } : {}),
      ...(target ? { target } : {}),
      ...(sharedVariables ? { sharedVariables } : {}),
    };
    await runAndReport(io, bundlePath, context, flags, limitsOf(flags));
  });
  return program;
}

/** Runs the CLI; resolves with the exit code. */
export async function main(argv: string[], io = { out: (t: string) => console.log(t), err: (t: string) => console.error(t) }): Promise<number> {
  let exitCode = 0;
  const wantsJson = argv.includes("--json");
  const program = createProgram({ ...io, setExitCode: (code) => (exitCode = code) });
  try {
    await program.parseAsync(argv, { from: "user" });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.code === "commander.help") return 0;
      if (wantsJson) io.out(JSON.stringify({ ok: false, error: { code: "CLI_USAGE", message: error.message.replace(/^error: /, "") } }));
      return EXIT_STATUSES.CLI_USAGE;
    }
    // A store's SQLite error that no layer above turned into its own code still gets the store's.
    const typed = toStoreError(error);
    if (typed instanceof PlugboxError) {
      if (wantsJson) io.out(JSON.stringify({ ok: false, error: { code: typed.code, message: typed.message } }, null, 2));
      else io.err(`plugbox: error [${typed.code}]: ${typed.message}`);
      return exitStatusOf(typed.code);
    }
    io.err(`plugbox: internal error: ${error instanceof Error ? error.stack : String(error)}`);
    return 1;
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === new URL(`file://${(await import("node:fs")).realpathSync(process.argv[1])}`).href;
if (invokedDirectly) {
  process.exitCode = await main(process.argv.slice(2));
}
