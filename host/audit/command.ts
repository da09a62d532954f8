/**
 * `plugbox audit [bundle...] [--manifest f] [--web-policy f] [--isolation mode] [--limits f] [--against old] [--context f] [--html f] [--json]`:
 * runs the confinement checks in the configuration the host would use, and reports what each bundle reaches for. Progress goes to stderr, the report
 * to stdout. Exit 0 when every check passes and the inputs load, 4 when a check fails, otherwise
 * the exit code of the first finding (2 for a bundle or manifest that does not load).
 */
import { Option, type Command } from "commander";
import { readFile, writeFile } from "node:fs/promises";
import { parseRemoteExecutionContext } from "../../sdk/wire/index.js";
import { isPlainObject } from "../../sdk/codec.js";
import { UsageError } from "../errors.js";
import { resolveLimits, type SandboxLimits } from "../../runtime/options.js";
import type { WebPolicyInput } from "../../runtime/web/policy.js";
import { readJsonInput } from "../json-input.js";
import { runAudit } from "./audit.js";
import { auditHtml } from "./html.js";
import { auditJson, auditText, progressLine } from "./report.js";

interface AuditFlags {
  manifest?: string;
  webPolicy?: string;
  isolation?: "fresh" | "reuse";
  against?: string;
  limits?: string;
  context?: string;
  html?: string;
  json?: boolean;
}

/** Where the command writes, and how it sets the exit status (the CLI's io). */
export interface AuditCommandIo {
  out: (text: string) => void;
  err: (text: string) => void;
  setExitCode: (code: number) => void;
}

export function registerAuditCommand(program: Command, io: AuditCommandIo): void {
  program
    .command("audit")
    .description("prove that the sandbox holds under this configuration: run every confinement check, and report the environment")
    .argument("[bundle...]", "bundles to load (a bundle that does not load is a finding)")
    .option("--manifest <plugbox.json>", "audit the configuration of this manifest (its bundles, its steps' isolation modes)")
    .option("--web-policy <file.json>", "the outbound web policy the host uses (as given to plugbox exec/serve)")
    .addOption(new Option("--isolation <mode>", "the isolation mode to audit (default: reuse when a manifest step reuses instances, else fresh)").choices(["fresh", "reuse"]))
    .option("--against <older-bundle>", "say what changed in what the (first) bundle reaches for since this older version, one line each")
    .option("--limits <file.json>", "the sandbox limits the host applies, as a JSON object (wallTimeMs, cpuTimeMs, memoryMb, …); default: the runtime's defaults")
    .option("--context <file>", "run each plug-in type on this captured RemoteExecutionContext (JSON or Text XML, as Dataverse posts it) instead of a sample context")
    .option("--html <file>", "also write the report as one self-contained HTML page")
    .option("--json", "print one JSON object: { schemaVersion, environment, findings, capabilities, diff?, checks, summary } (see docs/audit.md)")
    .action(async (bundles: string[], flags: AuditFlags) => {
      if (flags.against && bundles.length === 0) throw new UsageError("CLI_USAGE", "--against compares a bundle with an older version of it: name the newer bundle too (plugbox audit new.js --against old.js)");
      let webPolicy: WebPolicyInput | undefined;
      if (flags.webPolicy) {
        const policy = await readJsonInput(flags.webPolicy, "web policy");
        if (!isPlainObject(policy)) throw new UsageError("INPUT_INVALID_JSON", `the web policy file ${flags.webPolicy} must hold a JSON object`);
        webPolicy = policy as WebPolicyInput;
      }
      let limits: Partial<SandboxLimits> | undefined;
      if (flags.limits) {
        const value = await readJsonInput(flags.limits, "limits");
        if (!isPlainObject(value)) throw new UsageError("INPUT_INVALID_JSON", `the limits file ${flags.limits} must hold a JSON object such as { "cpuTimeMs": 2000, "memoryMb": 64 }`);
        limits = resolveLimits(value as Partial<SandboxLimits>);
      }
      let capturedContext: Record<string, unknown> | undefined;
      if (flags.context) {
        const text = await readFile(flags.context, "utf8").catch(() => {
          throw new UsageError("INPUT_NOT_FOUND", `cannot read the context file ${flags.context}: it does not exist or is not readable`);
        });
        try {
          capturedContext = parseRemoteExecutionContext(text) as unknown as Record<string, unknown>;
        } catch (error) {
          throw new UsageError("INPUT_INVALID_JSON", `the context file ${flags.context} is not a RemoteExecutionContext: ${(error as Error).message}`);
        }
      }
      const report = await runAudit({
        bundles,
        ...(flags.manifest ? { manifest: flags.manifest } : {}),
        ...(webPolicy ? { webPolicy } : {}),
        ...(flags.isolation ? { isolation: flags.isolation } : {}),
        ...(flags.against ? { against: flags.against } : {}),
        ...(capturedContext ? { capturedContext } : {}),
        ...(limits ? { limits } : {}),
        onProgress: (check, index, total) => io.err(progressLine(check, index, total)),
      });
      if (flags.html) {
        try {
          await writeFile(flags.html, auditHtml(report));
        } catch (error) {
          throw new UsageError("CLI_USAGE", `cannot write the HTML report to ${flags.html}: ${(error as Error).message}`);
        }
      }
      io.out(flags.json ? JSON.stringify(auditJson(report), null, 2) : auditText(report));
      io.setExitCode(report.exitCode);
    });
}
