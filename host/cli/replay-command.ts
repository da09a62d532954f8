/**
 * `plugbox replay --recording <file>`: runs a recording made with `--record` again, offline, and
 * prints what differs (exit 0 when nothing does, 1 with REPLAY_DIFFERS when something does).
 */
import type { Command } from "commander";
import { isolatedVmBinding } from "../../runtime/index.js";
import { formatReplayDiff, replayRecording, REPLAY_ERRORS } from "../replay/index.js";
import { CliError } from "./errors.js";
import { EXIT_STATUSES } from "./exit-statuses.js";
import type { CliIo } from "./command-host.js";
import { INSPECT_BRK_FLAG, INSPECT_FLAG, inspectorFromFlags, type InspectFlags } from "./inspect-flags.js";

export function registerReplayCommand(program: Command, io: CliIo): void {
  program
    .command("replay")
    .description("run a recording made with --record again, offline, and print how its writes, posts, web requests and outputs differ")
    .argument("[context]", "a context file to replay (not in this build: use --recording)")
    .option("--recording <file>", "a recording made by `plugbox run|exec|jobs run --record <file>`")
    .option("--bundle <bundle.js>", "replay against this build of the plug-in instead of the recorded bundle file")
    .option("--json", "print one JSON object { ok, same, differences, executions: [{ …, differences: [{ kind, where, recorded?, replayed? }] }], sandbox }")
    .option(...INSPECT_FLAG)
    .option(...INSPECT_BRK_FLAG)
    .action(async (context: string | undefined, flags: InspectFlags & { recording?: string; bundle?: string; json?: boolean }) => {
      if (flags.recording === undefined) {
        throw new CliError("CLI_USAGE", context === undefined ? "replay needs --recording <file> (a recording made with --record)" : "replaying a context file is not in this build: replay a recording with --recording <file>");
      }
      if (context !== undefined) throw new CliError("CLI_USAGE", `replay takes either a context or --recording, not both (got ${context})`);
      // Debug mode: the recorded executions run again under the debugger, one after the other.
      const inspector = inspectorFromFlags(flags, io.err);
      const report = await replayRecording(flags.recording, { ...(flags.bundle !== undefined ? { bundle: flags.bundle } : {}), ...(inspector ? { inspector } : {}) });
      const error = report.same ? undefined : { code: "REPLAY_DIFFERS", message: `the replay differs from the recording in ${report.differences} place(s)` };
      if (flags.json) io.out(JSON.stringify({ ok: report.same, ...(error ? { error } : {}), ...report, sandbox: isolatedVmBinding() }, null, 2));
      else {
        for (const line of formatReplayDiff(report)) io.out(line);
        if (error) io.err(`plugbox: error [${error.code}]: ${error.message} (${REPLAY_ERRORS.REPLAY_DIFFERS.means})`);
      }
      if (error) io.setExitCode(EXIT_STATUSES.REPLAY_DIFFERS);
    });
}
