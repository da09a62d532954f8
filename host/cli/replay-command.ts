/**
 * `plugbox replay`, in two forms:
 * - `replay <context> --bundle <b> --type <T>` runs a plug-in against an execution context captured
 *   from Service Bus, Event Hubs or a webhook (a `plugbox listen --json` line, or the body Dataverse
 *   posted: JSON or Text XML), from a file or standard input, the way `plugbox run` runs it: same
 *   flags, output and exit statuses. The context is the capture's, ids and all; `--data` seeds the
 *   store the plug-in reads.
 * - `replay --recording <file>` runs a recording made with `--record` again, offline, and prints what
 *   differs (exit 0 when nothing does, 1 with REPLAY_DIFFERS when something does).
 */
import type { Command } from "commander";
import { isolatedVmBinding } from "../../runtime/index.js";
import { readCapturedContext } from "../replay/context-input.js";
import { formatReplayDiff, replayRecording, REPLAY_ERRORS } from "../replay/index.js";
import type { CliIo } from "./command-host.js";
import { CliError } from "./errors.js";
import { EXIT_STATUSES } from "./exit-statuses.js";
import { inspectorFromFlags } from "./inspect-flags.js";
import { addPluginRunOptions, runAndReport, type PluginRunFlags } from "./plugin-run.js";

/** run's flags, but --type (and --bundle) only with a context: commander leaves them out otherwise. */
interface ReplayFlags extends PluginRunFlags {
  bundle?: string;
  recording?: string;
}

export function registerReplayCommand(program: Command, io: CliIo): void {
  const replay = program
    .command("replay")
    .description("run a plug-in against an execution context captured by `listen --json` or posted by Dataverse (JSON or Text XML), as `run` runs it; or a recording made with --record again, offline, printing what differs")
    .argument("[context]", "the captured context: a file holding a `plugbox listen --json` line, a RemoteExecutionContext in JSON or Text XML; - for standard input")
    .option("--recording <file>", "a recording made by `plugbox run|exec|jobs run --record <file>`, to run again instead of a context")
    .option("--bundle <bundle>", "with a context: the bundle made by `plugbox build`, or a plug-in module's .ts source, to run (required); with --recording: this build instead of the recorded bundle")
    .option("-t, --type <ExportName>", "with a context: the exported plug-in class to run (required)");
  const limitsOf = addPluginRunOptions(replay);
  replay.action(async (source: string | undefined, flags: ReplayFlags) => {
    if (flags.recording !== undefined) {
      if (source !== undefined) throw new CliError("CLI_USAGE", `replay takes either a context or --recording, not both (got ${source})`);
      await replayRecordingAndReport(io, flags.recording, flags);
      return;
    }
    if (source === undefined) {
      throw new CliError("CLI_USAGE", "name the context to replay: a file holding a `plugbox listen --json` line or a RemoteExecutionContext (JSON or Text XML), or - to read it from standard input; or give --recording <file>");
    }
    if (flags.bundle === undefined) throw new CliError("CLI_USAGE", "replaying a context needs --bundle <bundle>: the plug-in's bundle (`plugbox build`) or its .ts module");
    if (!flags.type) throw new CliError("CLI_USAGE", "replaying a context needs --type <ExportName>: the exported plug-in class to run");
    const captured = await readCapturedContext(source);
    await runAndReport(io, flags.bundle, captured.context, flags, limitsOf(flags));
  });
}

/** Runs a recording again and prints its differences (or one JSON object with --json). */
async function replayRecordingAndReport(io: CliIo, file: string, flags: ReplayFlags): Promise<void> {
  // Debug mode: the recorded executions run again under the debugger, one after the other.
  const inspector = inspectorFromFlags(flags, io.err);
  const report = await replayRecording(file, { ...(flags.bundle !== undefined ? { bundle: flags.bundle } : {}), ...(inspector ? { inspector } : {}) });
  const error = report.same ? undefined : { code: "REPLAY_DIFFERS", message: `the replay differs from the recording in ${report.differences} place(s)` };
  if (flags.json) io.out(JSON.stringify({ ok: report.same, ...(error ? { error } : {}), ...report, sandbox: isolatedVmBinding() }, null, 2));
  else {
    for (const line of formatReplayDiff(report)) io.out(line);
    if (error) io.err(`plugbox: error [${error.code}]: ${error.message} (${REPLAY_ERRORS.REPLAY_DIFFERS.means})`);
  }
  if (error) io.setExitCode(EXIT_STATUSES.REPLAY_DIFFERS);
}
