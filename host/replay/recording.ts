/**
 * The recording file of `--record` and `plugbox replay --recording`: what one run, exec or job run
 * did in the sandbox, execution by execution, as plain JSON (plugbox JSON for SDK values).
 *
 * ```json
 * { "format": "plugbox-recording", "version": 1, "plugbox": "0.1.0", "recordedAt": "2026-12-02T14:00:00.000Z",
 *   "checksum": "<sha256 of the executions' JSON>",
 *   "executions": [ { "bundle": { "path": "/abs/dist/plugin.js", "sha256": "…" }, "typeName": "HelloPlugin",
 *     "unsecureConfig": null, "secureConfig": null, "isolation": "fresh", "limits": {},
 *     "context": { … the context as the plug-in received it … }, "startedAt": "2026-12-02T14:00:00.120Z",
 *     "calls": [ { "service": "organization", "op": "execute", "userId": "…", "args": [ … ], "ok": true, "at": "2026-12-02T14:00:00.131Z", "result": … } ],
 *     "outcome": { "ok": true, "changes": { "inputParameters": …, "outputParameters": …, "sharedVariables": … }, "trace": "…", "violations": [] } } ] }
 * ```
 *
 * A file is read whole and checked before anything runs: its format and version, this plugbox's
 * version, its shape, its checksum (a file cut short or changed by hand is refused) and every SDK value
 * in it; any fault is a typed error and nothing is replayed.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { access, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { createRequire } from "node:module";
import { fromPlain, MAX_DEPTH } from "../../sdk/codec.js";
import { formatPath, parseOptions, v } from "../../runtime/schema.js";
import { resolveLimits, type ExecutionChanges, type Isolation, type SandboxLimits } from "../../runtime/index.js";
import { nestingDepth } from "../json-input.js";
import { UsageError } from "../errors.js";
import { ReplayError } from "./errors.js";

export const RECORDING_FORMAT = "plugbox-recording";
export const RECORDING_VERSION = 1;
/** The plugbox version that writes recordings, and the only one that replays them. */
export const PLUGBOX_VERSION: string = (createRequire(import.meta.url)("../../../package.json") as { version: string }).version;
/** The largest recording read, bytes. */
export const MAX_RECORDING_BYTES = 256 * 1024 * 1024;
/** A recording nests the plug-in's values a few levels inside its own structure. */
const MAX_RECORDING_DEPTH = MAX_DEPTH + 8;

export interface RecordedError {
  code: string;
  message: string;
}

/** One service call of an execution, in the order the plug-in made them, with the reply it got. */
export interface RecordedCall {
  service: "organization" | "notification" | "web";
  /** The operation on the wire: `execute` (organization, notification) or `fetch` (web). */
  op: string;
  /** The user the organization service acts as (null: SYSTEM). */
  userId: string | null;
  /** The arguments, plugbox JSON: an organization request, a notification's endpoint and context, a web request. */
  args: unknown[];
  ok: boolean;
  /** When the reply was given: the time the plug-in saw when it resumed (ISO 8601, ms). */
  at: string;
  /** The reply, plugbox JSON: an organization response, a post's answer, a web response with its status, headers and body. */
  result?: unknown;
  error?: RecordedError;
}

/** The writable parts of the context after execute(), as the sandbox reports them (plugbox JSON). */
export type RecordedChanges = ExecutionChanges;

export interface RecordedOutcome {
  ok: boolean;
  error?: RecordedError;
  /** The writable parts of the context after execute(), plugbox JSON; null when it failed. */
  changes: RecordedChanges | null;
  trace: string;
  violations: string[];
}

/** One sandboxed execution of a plug-in. */
export interface RecordedExecution {
  /** The bundle file (absolute; a `.ts` source for a run from source) and the sha256 of the bundle's code. */
  bundle: { path: string; sha256: string };
  typeName: string;
  unsecureConfig: string | null;
  secureConfig: string | null;
  isolation: Isolation;
  limits: Partial<SandboxLimits>;
  /** The execution context as the plug-in received it, plugbox JSON. */
  context: Record<string, unknown>;
  /** When it started: the time the plug-in saw when its code was first entered (ISO 8601, ms). */
  startedAt: string;
  calls: RecordedCall[];
  outcome: RecordedOutcome;
}

export interface Recording {
  format: typeof RECORDING_FORMAT;
  version: typeof RECORDING_VERSION;
  plugbox: string;
  recordedAt: string;
  /** sha256 of `JSON.stringify(executions)`: a value changed in the file fails the check. */
  checksum: string;
  executions: RecordedExecution[];
}

export function checksumOf(executions: readonly RecordedExecution[]): string {
  return createHash("sha256").update(JSON.stringify(executions)).digest("hex");
}

export function makeRecording(executions: RecordedExecution[], recordedAt: Date): Recording {
  return { format: RECORDING_FORMAT, version: RECORDING_VERSION, plugbox: PLUGBOX_VERSION, recordedAt: recordedAt.toISOString(), checksum: checksumOf(executions), executions };
}

/** Refuses, before anything runs, a recording file that could not be written at the end (REPLAY_RECORDING_NOT_WRITTEN). */
export async function assertRecordingWritable(file: string): Promise<void> {
  const folder = path.dirname(path.resolve(file));
  const refuse = (why: string) => new ReplayError("REPLAY_RECORDING_NOT_WRITTEN", `cannot write the recording ${file}: ${why}; nothing ran`);
  const info = await stat(folder).catch(() => undefined);
  if (!info?.isDirectory()) throw refuse(`the folder ${folder} does not exist`);
  if (await access(folder, constants.W_OK).then(() => false, () => true)) throw refuse(`the folder ${folder} is not writable`);
  if ((await stat(file).catch(() => undefined))?.isDirectory()) throw refuse("it is a folder");
}

/** Writes a recording whole or not at all: to a file beside it, then renamed over it. */
export async function writeRecording(file: string, recording: Recording): Promise<void> {
  const partial = `${file}.${process.pid}.partial`;
  try {
    await writeFile(partial, `${JSON.stringify(recording, null, 2)}\n`);
    await rename(partial, file);
  } catch (error) {
    await rm(partial, { force: true }).catch(() => undefined);
    throw new ReplayError("REPLAY_RECORDING_NOT_WRITTEN", `cannot write the recording ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
}

const text = v.string("must be a string");
const time = v.pipe(text, v.isoTimestamp("must be a time such as 2026-12-02T14:39:01.247Z"));
const error = v.strictObject({ code: text, message: text }, "must be an object { code, message }");
const plainObject = v.record(v.string(), v.unknown(), "must be an object");
const call = v.strictObject(
  {
    service: v.picklist(["organization", "notification", "web"], "must be organization, notification or web"),
    op: text,
    userId: v.nullable(text),
    args: v.array(v.unknown(), "must be an array"),
    ok: v.boolean("must be true or false"),
    at: time,
    result: v.optional(v.unknown()),
    error: v.optional(error),
  },
  "must be a recorded service call",
);
const outcome = v.strictObject(
  {
    ok: v.boolean("must be true or false"),
    error: v.optional(error),
    changes: v.nullable(v.strictObject({ inputParameters: plainObject, outputParameters: plainObject, sharedVariables: plainObject }, "must be null or { inputParameters, outputParameters, sharedVariables }")),
    trace: text,
    violations: v.array(text, "must be an array of strings"),
  },
  "must be an execution's outcome",
);
const execution = v.strictObject(
  {
    bundle: v.strictObject({ path: text, sha256: v.pipe(text, v.regex(/^[0-9a-f]{64}$/, "must be a sha256 in hex")) }, "must be { path, sha256 }"),
    typeName: text,
    unsecureConfig: v.nullable(text),
    secureConfig: v.nullable(text),
    isolation: v.picklist(["fresh", "reuse"], "must be fresh or reuse"),
    limits: v.record(v.string(), v.number(), "must be an object of sandbox limits"),
    context: plainObject,
    startedAt: time,
    calls: v.array(call, "must be an array"),
    outcome,
  },
  "must be a recorded execution",
);
const recordingSchema = v.strictObject(
  {
    format: v.literal(RECORDING_FORMAT),
    version: v.literal(RECORDING_VERSION),
    plugbox: text,
    recordedAt: time,
    checksum: v.pipe(text, v.regex(/^[0-9a-f]{64}$/, "must be a sha256 in hex")),
    executions: v.array(execution, "must be an array"),
  },
  "must be a recording",
);

const invalid = (file: string, why: string) => new ReplayError("REPLAY_RECORDING_INVALID", `the recording ${file} ${why}; nothing was replayed`);

/** Reads and checks a recording; throws REPLAY_RECORDING_INVALID, REPLAY_VERSION_UNSUPPORTED or INPUT_NOT_FOUND, never a part of one. */
export async function readRecording(file: string): Promise<Recording> {
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) throw new UsageError("INPUT_NOT_FOUND", `cannot read the recording ${file}: it does not exist or is not a file (make one with \`--record ${file}\` on run, exec or jobs run)`);
  if (info.size > MAX_RECORDING_BYTES) throw invalid(file, `is ${info.size} bytes; plugbox reads recordings of up to ${MAX_RECORDING_BYTES} bytes`);
  return parseRecording(await readFile(file, "utf8"), file);
}

/** Checks a recording's text; `file` names it in errors. */
export function parseRecording(source: string, file: string): Recording {
  let value: unknown;
  try {
    value = JSON.parse(source);
  } catch (error) {
    throw invalid(file, `is not JSON (cut short or damaged?): ${(error as Error).message}`);
  }
  if (nestingDepth(value, MAX_RECORDING_DEPTH) > MAX_RECORDING_DEPTH) throw invalid(file, `nests values more than ${MAX_RECORDING_DEPTH} levels deep`);
  const head = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  if (head.format !== RECORDING_FORMAT) throw invalid(file, `is not a plugbox recording (its "format" is ${JSON.stringify(head.format) ?? "missing"}, not "${RECORDING_FORMAT}")`);
  if (head.version !== RECORDING_VERSION || head.plugbox !== PLUGBOX_VERSION) {
    throw new ReplayError(
      "REPLAY_VERSION_UNSUPPORTED",
      `the recording ${file} was made by plugbox ${JSON.stringify(head.plugbox)} in recording format ${JSON.stringify(head.version)}; this is plugbox ${PLUGBOX_VERSION}, format ${RECORDING_VERSION}: record it again with this version; nothing was replayed`,
    );
  }
  const recording = parseOptions(recordingSchema, value, (path, message) => invalid(file, `is damaged: ${formatPath("", path) || "the file"} ${message}`)) as Recording;
  if (checksumOf(recording.executions) !== recording.checksum) throw invalid(file, "does not match its checksum: it was changed or damaged after it was written");
  recording.executions.forEach((entry, index) => {
    try {
      resolveLimits(entry.limits, undefined, `executions[${index}].limits`);
      fromPlain(entry.context);
      for (const c of entry.calls) fromPlain({ args: c.args, result: c.result ?? null });
    } catch (error) {
      throw invalid(file, `holds a value plugbox cannot use in executions[${index}]: ${(error as Error).message}`);
    }
  });
  return recording;
}
