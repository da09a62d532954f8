/**
 * Record and replay, as Dataverse's Plug-in Profiler does: `--record` captures what each sandboxed
 * execution of a run saw and did; `replayRecording` runs it again offline and reports what differs.
 * @module
 */
export { Recorder } from "./recorder.js";
export { replayRecording, formatReplayDiff } from "./replay.js";
export type { ReplayOptions, ReplayReport, ExecutionReplay, ReplayDifference, DifferenceKind, BundleIdentity } from "./replay.js";
export { readRecording, parseRecording, writeRecording, assertRecordingWritable, RECORDING_FORMAT, RECORDING_VERSION, PLUGBOX_VERSION } from "./recording.js";
export type { Recording, RecordedExecution, RecordedCall, RecordedOutcome, RecordedChanges, RecordedError } from "./recording.js";
export { ReplayError, REPLAY_ERRORS } from "./errors.js";
export type { ReplayErrorCode } from "./errors.js";
