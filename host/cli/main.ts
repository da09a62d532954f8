#!/usr/bin/env node
/**
 * The `plugbox` command. Exit codes: 0 ok, 1 the plug-in failed, 2 usage or input error,
 * 3 a limit was exceeded, 4 an isolation rule was broken.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { createRequire } from "node:module";
import { isPlainObject } from "../../sdk/codec.js";
import { Entity, EntityReference, typeOf } from "../../sdk/model.js";
import { createSandboxRuntime, isolatedVmBinding, type SandboxLimits } from "../../runtime/index.js";
import { derivedFlags, optionOf } from "./flags.js";
import { buildBundle, buildEntry, SOURCE_ENTRY } from "../build.js";
import type { ContextInput, Mode, Stage } from "../pipeline/context.js";
import { PlugboxError } from "../../sdk/errors.js";
import { UsageError } from "../errors.js";
import { heapText, runPlugin } from "../run.js";
import { EXIT_STATUSES, exitStatusOf, withExitStatus, type RunResult } from "./exit-statuses.js";
import { createHost, type PlugboxHost } from "../host.js";
import { importData, readJson, readPlugboxJson, registerPipelineCommands, STORE_CHECK_FLAG } from "./pipeline-commands.js";
import { RECORD_FLAG, withRecording } from "./command-host.js";
import { registerReplayCommand } from "./replay-command.js";
import { toStoreError } from "../store/errors.js";
import { isGuid } from "../ids.js";
import { registerListenCommand } from "./listen-command.js";
import { registerBrokerCommand } from "./broker-command.js";
import { INSPECT_BRK_FLAG, INSPECT_FLAG, inspectorFromFlags, type InspectFlags } from "./inspect-flags.js";
import { registerAuditCommand } from "./audit-command.js";
import type { WebPolicyInput } from "../web/index.js";

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

async function readTarget(file: string, messageName: string): Promise<Entity | EntityReference> {
  const value = await readPlugboxJson(file, "target");
  const tag = typeOf(value);
  if (tag === "Entity" || tag === "EntityReference") {
    const typed = value as Entity | EntityReference;
    if (!isGuid(typed.id)) throw new UsageError("INPUT_INVALID_JSON", `the target file ${file}: "id" must be a Guid such as "6d81597f-0f9f-e711-8122-000d3aa2331c", got ${JSON.stringify(typed.id)}`);
    return typed;
  }
  if (!isPlainObject(value) || typeof value.logicalName !== "string") {
    throw new UsageError("INPUT_INVALID_JSON", `the target file ${file} must hold an entity: { "logicalName": "account", "id"?: "<guid>", "attributes": { … } }`);
  }
  if (value.attributes !== undefined && !isPlainObject(value.attributes)) {
    throw new UsageError("INPUT_INVALID_JSON", `the target file ${file}: "attributes" must be an object of column values`);
  }
  if (value.id !== undefined && value.id !== null && !isGuid(value.id)) {
    throw new UsageError("INPUT_INVALID_JSON", `the target file ${file}: "id" must be a Guid such as "6d81597f-0f9f-e711-8122-000d3aa2331c", got ${JSON.stringify(value.id)}`);
  }
  const id = typeof value.id === "string" ? value.id.toLowerCase() : undefined;
  if (value.attributes === undefined && id !== undefined && messageName !== "Create" && messageName !== "Update") {
    return new EntityReference(value.logicalName, id);
  }
  return new Entity(value.logicalName, id, (value.attributes ?? {}) as Entity["attributes"]);
}

interface RunFlags extends InspectFlags {
  type: string;
  message: string;
  entity?: string;
  target?: string;
  stage: Stage;
  mode: Mode;
  unsecureConfig?: string;
  secureConfig?: string;
  shared?: string;
  isolation: "fresh" | "reuse";
  manifest?: string;
  secrets?: string;
  db?: string;
  data?: string;
  webPolicy?: string;
  allowHost?: string[];
  json?: boolean;
  storeCheck?: boolean;
  record?: string;
  [limit: string]: unknown;
}

function indent(text: string, prefix = "  "): string {
  return text.split("\n").map((line) => prefix + line).join("\n");
}

function printHuman(result: RunResult, flags: RunFlags, out: (text: string) => void): void {
  const what = `${flags.type} on ${flags.message}${flags.entity ? ` of ${flags.entity}` : ""} (stage ${flags.stage}, ${flags.mode})`;
  const took = `${result.durationMs.toFixed(1)} ms, cpu ${result.stats.cpuMs.toFixed(2)} ms, heap ${heapText(result.stats.heapUsedBytes)}, ${result.stats.hostCalls} service call(s)`;
  out(result.ok ? `ok: ${what} in ${took}` : `failed: ${what} after ${took}`);
  if (result.error) {
    out(`error [${result.error.code}]: ${result.error.message}`);
    if (result.error.stack) out(indent(result.error.stack.split("\n").slice(1).join("\n").trim(), "    "));
  }
  out("trace:");
  out(result.trace ? indent(result.trace) : "  (empty)");
  if (result.changes) {
    out("changes:");
    out(`  target: ${JSON.stringify(result.changes.target)}`);
    out(`  outputParameters: ${JSON.stringify(result.changes.outputParameters)}`);
    out(`  sharedVariables: ${JSON.stringify(result.changes.sharedVariables)}`);
  }
  out(`service calls: ${result.calls.length === 0 ? "none" : ""}`);
  for (const call of result.calls) {
    const outcome = call.ok ? `→ ${JSON.stringify(call.result)}` : `✗ [${call.error?.code}] ${call.error?.message}`;
    out(`  ${call.service}.${call.op}(${call.args.map((a) => JSON.stringify(a)).join(", ")}) ${outcome}`);
  }
  if (result.violations.length > 0) out(`isolation violations:\n${indent(result.violations.join("\n"))}`);
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
    .option("--unsecure-config <text>", "the step's unsecure configuration (first constructor argument)")
    .option("--secure-config <text>", "the step's secure configuration (second constructor argument)")
    .option("--shared <file.json>", "SharedVariables as a JSON object")
    .addOption(new Option("--isolation <mode>", "fresh: a never-used isolate; reuse: a cached plug-in instance").choices(["fresh", "reuse"]).default("fresh"))
    .option("--manifest <plugbox.json>", "relay notification posts to this manifest's service endpoints (and check its table schemas)")
    .option("--secrets <file.json>", "where service endpoints' file:NAME secrets come from")
    .option("--db <path>", "serve the organization service from this store (file), through the pipeline")
    .option("--data <file.json>", "records to load into the store first (an in-memory store unless --db is given)")
    .option("--web-policy <file.json>", "widen or tune the outbound web policy (allowed hosts, extra ports, resolver override, …)")
    .option("--allow-host <host...>", "narrow outbound web requests to these hosts, as a bundle's manifest entry does")
    .option("--json", "print one JSON object: { ok, error?, trace, changes, calls, …, sandbox: { node, isolatedVm, package } }")
    .option(...RECORD_FLAG)
    .option(...STORE_CHECK_FLAG)
    .option(...INSPECT_FLAG)
    .option(...INSPECT_BRK_FLAG);
  registerPipelineCommands(program, io);
  registerReplayCommand(program, io);
  registerListenCommand(program, io);
  registerBrokerCommand(program, io);
  registerAuditCommand(program, io);
  const limitOptions = derivedFlags.run.map((flag) => ({ key: flag.key as keyof SandboxLimits, option: optionOf(flag) }));
  for (const { option } of limitOptions) run.addOption(option);
  run.action(async (bundlePath: string, flags: RunFlags) => {
    const target = flags.target ? await readTarget(flags.target, flags.message) : undefined;
    let sharedVariables: Record<string, unknown> | undefined;
    if (flags.shared) {
      const shared = await readPlugboxJson(flags.shared, "shared variables");
      if (!isPlainObject(shared)) throw new UsageError("INPUT_INVALID_JSON", `the shared variables file ${flags.shared} must hold a JSON object of name → value`);
      sharedVariables = shared;
    }
    const limits: Partial<SandboxLimits> = {};
    for (const { key, option } of limitOptions) {
      if (flags[option.attributeName()] !== undefined) limits[key] = flags[option.attributeName()] as number;
    }
    const context: ContextInput = {
      messageName: flags.message,
      stage: flags.stage,
      mode: flags.mode,
      ...(flags.entity ? { primaryEntityName: flags.entity } : {}),
      ...(target ? { target } : {}),
      ...(sharedVariables ? { sharedVariables } : {}),
    };
    let webPolicy: WebPolicyInput | undefined;
    if (flags.webPolicy) {
      const policy = await readPlugboxJson(flags.webPolicy, "web policy");
      if (!isPlainObject(policy)) throw new UsageError("INPUT_INVALID_JSON", `the web policy file ${flags.webPolicy} must hold a JSON object; see the README's "Outbound web requests"`);
      webPolicy = policy as WebPolicyInput;
    }
    const bundle = SOURCE_ENTRY.test(bundlePath) ? await buildEntry(bundlePath) : bundlePath;
    const inspector = inspectorFromFlags(flags, io.err);
    const runtimeOptions = { workers: 1, prewarmIsolates: flags.isolation === "reuse" ? 0 : 1, ...(inspector ? { inspector } : {}) };
    const result = await withRecording(flags.record, runtimeOptions, async (recording) => {
      if (recording && typeof bundle !== "string") recording.recorder.noteSource(bundle, bundlePath);
      let host: PlugboxHost | undefined;
      if (flags.db || flags.data || flags.manifest) {
        host = await createHost({
          db: flags.db ?? ":memory:",
          runJobs: false,
          ...(recording ? { runtime: recording.runtime } : { runtimeOptions }),
          storeOptions: { quickCheck: flags.storeCheck !== false },
          ...(flags.manifest ? { manifest: flags.manifest } : {}),
          ...(flags.secrets ? { secrets: { file: flags.secrets } } : {}),
        });
        if (flags.data) await importData(host, await readJson(flags.data, "data"), flags.data).catch(async (error: unknown) => {
          await host!.close();
          throw error;
        });
      }
      const runtime = recording?.runtime ?? (!host && inspector ? createSandboxRuntime(runtimeOptions) : undefined);
      const ownRuntime = recording ? undefined : runtime;
      return withExitStatus(await runPlugin({
        ...(host ? { runtime: host.runtime, organization: host.organization(), notification: host.notification } : {}),
        ...(runtime ? { runtime } : {}),
        bundle,
        ...(webPolicy ? { webPolicy } : {}),
        ...(flags.allowHost ? { webAllowedHosts: flags.allowHost } : {}),
        typeName: flags.type,
        context,
        unsecureConfig: flags.unsecureConfig ?? null,
        secureConfig: flags.secureConfig ?? null,
        isolation: flags.isolation,
        limits,
      }).finally(() => Promise.all([host?.close(), ownRuntime?.close()])));
    });
    if (flags.json) io.out(JSON.stringify({ ...result, sandbox: isolatedVmBinding() }, null, 2));
    else printHuman(result, { ...flags, entity: flags.entity ?? target?.logicalName }, result.ok ? io.out : io.err);
    io.setExitCode(result.exitCode);
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
