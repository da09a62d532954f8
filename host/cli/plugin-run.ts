/**
 * What `run` and `replay` share: the flags that say how to run one plug-in once (configs, isolation,
 * stores and seed data, endpoints, web policy, limits, debug mode, JSON output), running it against a
 * context, and printing what it did with `run`'s exit status.
 */
import { Option, type Command } from "commander";
import { isPlainObject } from "../../sdk/codec.js";
import { createSandboxRuntime, isolatedVmBinding, type SandboxLimits } from "../../runtime/index.js";
import { buildEntry, SOURCE_ENTRY } from "../build.js";
import { UsageError } from "../errors.js";
import { createHost, type PlugboxHost } from "../host.js";
import { contextDefaults, type ContextInput } from "../pipeline/context.js";
import { heapText, runPlugin } from "../run.js";
import type { WebPolicyInput } from "../web/index.js";
import { readJson, RECORD_FLAG, STORE_CHECK_FLAG, withRecording, type CliIo } from "./command-host.js";
import { importData } from "./data-commands.js";
import { withExitStatus, type RunResult } from "./exit-statuses.js";
import { derivedFlags, optionOf } from "./flags.js";
import { INSPECT_BRK_FLAG, INSPECT_FLAG, inspectorFromFlags, type InspectFlags } from "./inspect-flags.js";
import { readPlugboxJson } from "./pipeline-commands.js";

export interface PluginRunFlags extends InspectFlags {
  type: string;
  unsecureConfig?: string;
  secureConfig?: string;
  isolation: "fresh" | "reuse";
  manifest?: string;
  secrets?: string;
  db?: string;
  data?: string;
  webPolicy?: string;
  allowHost?: string[];
  json?: boolean;
  storeCheck?: boolean;
  /** --record <file> */
  record?: string;
  [limit: string]: unknown;
}

/** The limit flags a command was given, read from its parsed flags. */
export type LimitsOf = (flags: PluginRunFlags) => Partial<SandboxLimits>;

/** Adds the flags of running a plug-in (after the command's own context flags); returns how to read its limit flags. */
export function addPluginRunOptions(command: Command): LimitsOf {
  command
    .option("--unsecure-config <text>", "the step's unsecure configuration (first constructor argument)")
    .option("--secure-config <text>", "the step's secure configuration (second constructor argument)")
    .addOption(new Option("--isolation <mode>", "fresh: a never-used isolate; reuse: a cached plug-in instance").choices(["fresh", "reuse"]).default("fresh"))
    .option("--manifest <plugbox.json>", "relay notification posts to this manifest's service endpoints (and check its table schemas)")
    .option("--secrets <file.json>", "where service endpoints' file:NAME secrets come from")
    .option("--db <path>", "serve the organization service from this store (file), through the pipeline")
    .option("--data <file.json>", "records to load into the store first, as `data export` prints them (an in-memory store unless --db is given)")
    .option("--web-policy <file.json>", "widen or tune the outbound web policy (allowed hosts, extra ports, resolver override, …)")
    .option("--allow-host <host...>", "narrow outbound web requests to these hosts, as a bundle's manifest entry does")
    .option("--json", "print one JSON object: { ok, error?, trace, changes, calls, …, sandbox: { node, isolatedVm, package } }")
    .option(...RECORD_FLAG)
    .option(...STORE_CHECK_FLAG)
    .option(...INSPECT_FLAG)
    .option(...INSPECT_BRK_FLAG);
  const limitOptions = derivedFlags.run.map((flag) => ({ key: flag.key as keyof SandboxLimits, option: optionOf(flag) }));
  for (const { option } of limitOptions) command.addOption(option);
  return (flags) => {
    const limits: Partial<SandboxLimits> = {};
    for (const { key, option } of limitOptions) {
      if (flags[option.attributeName()] !== undefined) limits[key] = flags[option.attributeName()] as number;
    }
    return limits;
  };
}

function indent(text: string, prefix = "  "): string {
  return text.split("\n").map((line) => prefix + line).join("\n");
}

/** "Hello on Create of account (stage 40, sync)" */
function describeRun(typeName: string, context: ContextInput): string {
  const entity = context.primaryEntityName ?? context.target?.logicalName;
  return `${typeName} on ${context.messageName ?? contextDefaults.messageName}${entity ? ` of ${entity}` : ""} (stage ${context.stage ?? contextDefaults.stage}, ${context.mode ?? contextDefaults.mode})`;
}

function printHuman(result: RunResult, what: string, out: (text: string) => void): void {
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

/**
 * Runs the plug-in of `bundlePath` (a bundle, or a module's .ts source bundled in memory) once
 * against `context`, on a store of its own (seeded from --data) or --db's, prints what it did (or
 * one JSON object with --json) and sets the exit status `plugbox run` gives it.
 */
export async function runAndReport(io: CliIo, bundlePath: string, context: ContextInput, flags: PluginRunFlags, limits: Partial<SandboxLimits>): Promise<void> {
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
    // A recording's runtime is closed by withRecording; one started here for the debugger, here.
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
  else printHuman(result, describeRun(flags.type, context), result.ok ? io.out : io.err);
  io.setExitCode(result.exitCode);
}
