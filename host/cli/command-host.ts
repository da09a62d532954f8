/**
 * What the exec, jobs and data commands share: the output they write to, their JSON inputs, the
 * store flags, and a host opened from the flags.
 */
import { isPostgresUrl } from "../store/open.js";
import { existsSync } from "node:fs";
import { isPlainObject } from "../../sdk/codec.js";
import type { InspectorOptions, SandboxRuntime, SandboxRuntimeInput } from "../../runtime/index.js";
import { UsageError } from "../errors.js";
import { createHost, type PlugboxHost } from "../host.js";
import { readJsonInput } from "../json-input.js";
import { assertRecordingWritable, Recorder } from "../replay/index.js";
import type { WebPolicyInput } from "../web/index.js";

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  setExitCode: (code: number) => void;
}

/** A JSON input file, within plugbox's size and depth limits (INPUT_NOT_FOUND, INPUT_INVALID_JSON, INPUT_TOO_LARGE, INPUT_TOO_DEEP). */
export function readJson(file: string, what: string): Promise<unknown> {
  return readJsonInput(file, what);
}

export async function readWebPolicy(file: string): Promise<WebPolicyInput> {
  const policy = await readJson(file, "web policy");
  if (!isPlainObject(policy)) throw new UsageError("INPUT_INVALID_JSON", `the web policy file ${file} must hold a JSON object`);
  return policy as WebPolicyInput;
}

export const STORE_DEFAULT = "plugbox.db";
/** The --db flag of the commands that work on a store file that exists. */
export const DB_FLAG = ["--db <path>", "the store file (it must exist)", STORE_DEFAULT] as const;

/** The flag that skips the store's quick_check when it opens (for a large store checked otherwise). */
export const STORE_CHECK_FLAG = ["--no-store-check", "open the store without SQLite's quick_check (faster for a large store; a damaged one is then found only when read)"] as const;

/** The flag of run, exec and jobs run that records their sandboxed executions for `plugbox replay --recording`. */
export const RECORD_FLAG = ["--record <file>", "record every plug-in execution (context, service calls and replies, web exchanges, posts, outcome) to this file, for `plugbox replay --recording <file>`"] as const;

/**
 * Runs `fn` with a sandbox runtime that records its executions when `file` is given, and writes the
 * recording when `fn` is over, whether it succeeded or failed (a failed run is worth replaying too).
 */
export async function withRecording<T>(file: string | undefined, runtimeInput: Parameters<Recorder["createRuntime"]>[0], fn: (recording: { recorder: Recorder; runtime: SandboxRuntime } | undefined) => Promise<T>): Promise<T> {
  if (file === undefined) return fn(undefined);
  await assertRecordingWritable(file);
  const recorder = new Recorder();
  const runtime = recorder.createRuntime(runtimeInput);
  try {
    return await fn({ recorder, runtime });
  } finally {
    await runtime.close();
    await recorder.close();
    await recorder.write(file);
  }
}

export interface HostFlags {
  /** Debug mode of the sandbox runtime (`--inspect`), set from the command's flags only. */
  inspector?: InspectorOptions;
  manifest?: string;
  db?: string;
  webPolicy?: string;
  secrets?: string;
  /** false with --no-store-check */
  storeCheck?: boolean;
  leaseMs?: number;
  /** `serve --poll-ms`: how often an idle job runner looks for jobs. */
  pollMs?: number;
  /** `serve --jobs-queue`: a Service Bus connection string whose EntityPath is the queue that carries the jobs. */
  jobsQueue?: string;
  /** --record <file> */
  record?: string;
  /**
   * Run system jobs in the background (`serve`), set by the command, never from a flag (exec's
   * `--run-jobs` runs them in the foreground, after its request); other commands run them in the
   * foreground or not at all.
   */
  backgroundJobs?: boolean;
}

/**
 * A store file a command reads or works on must be there already: a mistyped --db is refused, not
 * answered from a new, empty store left behind in its place.
 */
export function assertStoreExists(db: string): void {
  if (db === ":memory:" || isPostgresUrl(db) || existsSync(db)) return;
  throw new UsageError("INPUT_NOT_FOUND", `the store ${db} does not exist (check --db; a store is made by \`plugbox exec --db ${db}\` or \`plugbox data import <file.json> --db ${db}\`)`);
}

export async function withHost<T>(options: HostFlags & { existingStore?: boolean }, fn: (host: PlugboxHost) => Promise<T>): Promise<T> {
  if (options.existingStore) assertStoreExists(options.db ?? STORE_DEFAULT);
  const webPolicy = options.webPolicy ? await readWebPolicy(options.webPolicy) : undefined;
  const runtimeOptions = { workers: 1, prewarmIsolates: 1, ...(options.inspector ? { inspector: options.inspector } : {}) };
  return withRecording(options.record, runtimeOptions, (recording) => withOpenHost(options, webPolicy, recording ? { runtime: recording.runtime } : { runtimeOptions }, fn));
}

async function withOpenHost<T>(options: HostFlags, webPolicy: WebPolicyInput | undefined, runtime: { runtime: SandboxRuntime } | { runtimeOptions: SandboxRuntimeInput }, fn: (host: PlugboxHost) => Promise<T>): Promise<T> {
  await using host = await createHost({
    ...(options.manifest ? { manifest: options.manifest } : {}),
    db: options.db ?? ":memory:",
    runJobs: options.backgroundJobs ?? false,
    ...runtime,
    storeOptions: { quickCheck: options.storeCheck !== false },
    jobs: {
      ...(options.leaseMs !== undefined ? { leaseMs: options.leaseMs } : {}),
      ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
      ...(options.jobsQueue !== undefined ? { transport: { kind: "servicebus" as const, connectionString: options.jobsQueue } } : {}),
    },
    ...(webPolicy ? { webPolicy } : {}),
    ...(options.secrets ? { secrets: { file: options.secrets } } : {}),
  });
  return await fn(host);
}
