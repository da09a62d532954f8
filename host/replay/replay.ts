/**
 * `plugbox replay --recording`: runs each recorded execution again in a fresh sandbox, offline, with
 * the context it had, answering each service call from the recording in order, and compares what the
 * plug-in did (writes, reads, posts, web requests) and what it ended with (outcome, changes, trace)
 * with what it did when it was recorded.
 */
import path from "node:path";
import { fromPlain, isPlainObject } from "../../sdk/codec.js";
import { familyIn, PlugboxError } from "../../sdk/errors.js";
import { createSandboxRuntime, loadBundleFile, type Bundle, type InspectorOptions, type SandboxRuntime, type SandboxServices, type ServiceCall } from "../../runtime/index.js";
import { buildEntry, SOURCE_ENTRY } from "../build.js";
import { asMethodCall } from "../services/index.js";
import { WEB_ERRORS } from "../web/index.js";
import { ReplayError } from "./errors.js";
import { PinnedClock } from "./pinned-clock.js";
import { outcomeOf, plain } from "./recorder.js";
import { readRecording, type RecordedCall, type RecordedExecution, type RecordedOutcome } from "./recording.js";

export interface ReplayOptions {
  /**
   * Another build of the plug-in to replay against (how a fix is checked). It stands for the
   * recorded bundle of the same file name, or for the only one when the recording holds one bundle.
   * Without it each execution runs the recorded bundle file again.
   */
  bundle?: string;
  /** Debug mode: the executions run again under a debugger (`plugbox replay --inspect`). */
  inspector?: InspectorOptions;
}

/**
 * What a difference is about. `write`, `read`, `post` and `web` are service calls (an organization
 * request that changes data, one that reads, a notification post, an outbound web request);
 * `outcome` whether it succeeded and its error; `changes` the context it changed (target, output
 * parameters, shared variables); `trace` what it traced; `violations` isolation rules it tried to break.
 */
export type DifferenceKind = "write" | "read" | "post" | "web" | "outcome" | "changes" | "trace" | "violations";

export interface ReplayDifference {
  kind: DifferenceKind;
  /** Where, for people: `call 2 organization.update: args[0].attributes.name`, `changes.outputParameters.greeting`. */
  where: string;
  /** The recorded value; absent when the recording has none there (a call the replay added). */
  recorded?: unknown;
  /** The replayed value; absent when the replay has none there (a call it no longer makes). */
  replayed?: unknown;
}

export interface BundleIdentity {
  path: string;
  sha256: string;
}

export interface ExecutionReplay {
  /** 1-based, in the order the executions started. */
  index: number;
  typeName: string;
  messageName: string;
  primaryEntityName: string;
  stage: number;
  depth: number;
  bundle: { recorded: BundleIdentity; replayed: BundleIdentity; changed: boolean };
  calls: { recorded: number; replayed: number };
  recorded: RecordedOutcome;
  replayed: RecordedOutcome;
  differences: ReplayDifference[];
}

export interface ReplayReport {
  recording: string;
  plugbox: string;
  recordedAt: string;
  /** True when no execution differs. */
  same: boolean;
  differences: number;
  executions: ExecutionReplay[];
}

/** Replays a recording (REPLAY_RECORDING_INVALID, REPLAY_VERSION_UNSUPPORTED, INPUT_NOT_FOUND or a bundle's error before anything runs). */
export async function replayRecording(file: string, options: ReplayOptions = {}): Promise<ReplayReport> {
  const recording = await readRecording(file);
  const bundles = await loadBundles(recording.executions, options.bundle);
  // The plug-ins see the recorded time: pinned when each execution starts and each call is answered.
  const clock = new PinnedClock();
  const runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 1, clock, pluginTime: "clock", ...(options.inspector ? { inspector: options.inspector } : {}) });
  try {
    const executions: ExecutionReplay[] = [];
    for (const [index, entry] of recording.executions.entries()) executions.push(await replayExecution(runtime, clock, entry, bundles.get(entry.bundle.path)!, index + 1));
    const differences = executions.reduce((sum, e) => sum + e.differences.length, 0);
    return { recording: file, plugbox: recording.plugbox, recordedAt: recording.recordedAt, same: differences === 0, differences, executions };
  } finally {
    await runtime.close();
  }
}

/** Every bundle the replay needs, loaded before the first execution runs. */
async function loadBundles(executions: readonly RecordedExecution[], replacement: string | undefined): Promise<Map<string, Bundle>> {
  const paths = [...new Set(executions.map((e) => e.bundle.path))];
  const load = (file: string) => (SOURCE_ENTRY.test(file) ? buildEntry(file) : loadBundleFile(file));
  const replaced = replacement === undefined ? [] : paths.length === 1 ? paths : paths.filter((p) => path.basename(p) === path.basename(replacement));
  if (replacement !== undefined && replaced.length === 0) {
    throw new ReplayError("REPLAY_BUNDLE_UNMATCHED", `--bundle ${replacement}: the recording holds the bundles ${paths.map((p) => path.basename(p)).join(", ")}, and none has its file name; rename the build to the one it replaces`);
  }
  const bundles = new Map<string, Bundle>();
  const other = replacement === undefined ? undefined : await load(replacement);
  for (const p of paths) bundles.set(p, other && replaced.includes(p) ? other : await load(p));
  return bundles;
}

async function replayExecution(runtime: SandboxRuntime, clock: PinnedClock, entry: RecordedExecution, bundle: Bundle, index: number): Promise<ExecutionReplay> {
  const calls = new RecordedAnswers(entry.calls, clock);
  const context = fromPlain(entry.context) as Record<string, unknown>;
  clock.pin(Date.parse(entry.startedAt));
  const report = await runtime.execute(
    {
      bundle,
      typeName: entry.typeName,
      // A fresh isolate always: a reused instance's state from before the recording is not in it.
      isolation: "fresh",
      unsecureConfig: entry.unsecureConfig,
      secureConfig: entry.secureConfig,
      context,
      limits: entry.limits,
    },
    calls,
  );
  const replayed = outcomeOf(report, [...report.violations, ...calls.violations]);
  const bundlePath = bundle.directory ? path.join(bundle.directory, bundle.filename) : entry.bundle.path;
  return {
    index,
    typeName: entry.typeName,
    messageName: String(entry.context.messageName ?? ""),
    primaryEntityName: String(entry.context.primaryEntityName ?? ""),
    stage: Number(entry.context.stage),
    depth: Number(entry.context.depth),
    bundle: { recorded: entry.bundle, replayed: { path: bundlePath, sha256: bundle.id }, changed: bundle.id !== entry.bundle.sha256 },
    calls: { recorded: entry.calls.length, replayed: calls.made.length },
    recorded: entry.outcome,
    replayed,
    differences: [...callDifferences(entry.calls, calls.made), ...outcomeDifferences(entry.outcome, replayed)],
  };
}

/**
 * The services of a replay: each call is answered with the reply recorded at its position. A call of
 * another service, operation or message there gets REPLAY_CALL_NOT_RECORDED (a replay is offline:
 * there is nothing else to ask); one with other arguments gets the recorded reply, and the
 * comparison reports the arguments.
 */
class RecordedAnswers implements SandboxServices {
  readonly made: RecordedCall[] = [];
  readonly violations: string[] = [];
  readonly #recorded: readonly RecordedCall[];
  readonly #clock: PinnedClock;

  constructor(recorded: readonly RecordedCall[], clock: PinnedClock) {
    this.#recorded = recorded;
    this.#clock = clock;
  }

  async call(call: ServiceCall): Promise<unknown> {
    const made: RecordedCall = { service: call.service, op: call.op, userId: call.userId, args: plain(call.args), ok: false, at: this.#clock.now().toISOString() };
    const position = this.made.push(made);
    const recorded = this.#recorded[position - 1];
    if (!recorded || operationOf(recorded) !== operationOf(made)) {
      const there = recorded ? `the recording has ${nameOf(recorded)} there` : `the recording has ${this.#recorded.length} call(s)`;
      const error = new ReplayError("REPLAY_CALL_NOT_RECORDED", `call ${position} (${nameOf(made)}) is not in the recording: ${there}; a replay is offline and answers only recorded calls`);
      made.error = { code: error.code, message: error.message };
      throw error;
    }
    made.at = recorded.at;
    this.#clock.pin(Date.parse(recorded.at));
    if (!recorded.ok) {
      const failure = recorded.error ?? { code: "SERVICE_FAILED", message: `the ${call.service} service failed` };
      made.error = failure;
      if (call.service === "web" && familyIn(failure.code, WEB_ERRORS) === "isolation") this.violations.push(`web.fetch: ${failure.message}`);
      throw new PlugboxError(failure.code, failure.message);
    }
    made.ok = true;
    made.result = recorded.result ?? null;
    return fromPlain(recorded.result ?? null);
  }
}

/** The organization request's name ("Create", "Retrieve"), or undefined for another service. */
function requestNameOf(call: RecordedCall): string | undefined {
  if (call.service !== "organization") return undefined;
  const request = call.args[0];
  return isPlainObject(request) && typeof request.requestName === "string" ? request.requestName : undefined;
}

function operationOf(call: RecordedCall): string {
  return `${call.service}.${call.op}.${requestNameOf(call) ?? ""}`;
}

/** A call as the plug-in wrote it: `organization.update`, `organization.execute(WhoAmI)`, `web.fetch POST https://…`. */
function nameOf(call: RecordedCall): string {
  if (call.service === "web") {
    const request = (call.args[0] ?? {}) as { url?: unknown; method?: unknown };
    return `web.fetch ${typeof request.method === "string" ? request.method.toUpperCase() : "GET"} ${String(request.url)}`;
  }
  if (call.service === "organization") {
    try {
      const { op } = asMethodCall({ service: "organization", op: call.op, args: fromPlain(call.args) as unknown[] });
      return op === "execute" ? `organization.execute(${requestNameOf(call) ?? "?"})` : `organization.${op}`;
    } catch {
      return `organization.${call.op}`;
    }
  }
  return `${call.service}.${call.op}`;
}

/** A call's arguments as the plug-in passed them: `organization.update(entity)` has the entity as args[0]. */
function argsOf(call: RecordedCall): unknown[] {
  if (call.service !== "organization") return call.args;
  try {
    return plain(asMethodCall({ service: "organization", op: call.op, args: fromPlain(call.args) as unknown[] }).args);
  } catch {
    return call.args;
  }
}

const READS = /^(Retrieve|WhoAmI|Fetch)/;

function kindOf(call: RecordedCall): DifferenceKind {
  if (call.service === "web") return "web";
  if (call.service === "notification") return "post";
  return READS.test(requestNameOf(call) ?? "") ? "read" : "write";
}

function callDifferences(recorded: readonly RecordedCall[], replayed: readonly RecordedCall[]): ReplayDifference[] {
  const out: ReplayDifference[] = [];
  for (let i = 0; i < Math.max(recorded.length, replayed.length); i++) {
    const was = recorded[i];
    const now = replayed[i];
    const at = `call ${i + 1}`;
    if (was && !now) out.push({ kind: kindOf(was), where: `${at} ${nameOf(was)}: not made in the replay`, recorded: was.args });
    else if (now && !was) out.push({ kind: kindOf(now), where: `${at} ${nameOf(now)}: not in the recording`, replayed: now.args });
    else if (was && now) {
      if (operationOf(was) !== operationOf(now)) out.push({ kind: kindOf(now), where: `${at}: ${nameOf(was)} recorded, ${nameOf(now)} replayed`, recorded: was.args, replayed: now.args });
      else {
        for (const d of leafDifferences(argsOf(was), argsOf(now), "args")) out.push({ kind: kindOf(now), where: `${at} ${nameOf(now)}: ${d.where}`, recorded: d.recorded, replayed: d.replayed });
        if (was.userId !== now.userId) out.push({ kind: kindOf(now), where: `${at} ${nameOf(now)}: the user it acts as`, recorded: was.userId, replayed: now.userId });
      }
    }
  }
  return out;
}

function outcomeDifferences(recorded: RecordedOutcome, replayed: RecordedOutcome): ReplayDifference[] {
  const out: ReplayDifference[] = [];
  if (recorded.ok !== replayed.ok || recorded.error?.code !== replayed.error?.code || recorded.error?.message !== replayed.error?.message) {
    const show = (o: RecordedOutcome) => (o.ok ? "ok" : o.error);
    out.push({ kind: "outcome", where: "outcome", recorded: show(recorded), replayed: show(replayed) });
  }
  if (recorded.changes && replayed.changes) {
    for (const d of leafDifferences(recorded.changes, replayed.changes, "changes")) out.push({ kind: "changes", ...d });
  }
  if (recorded.trace !== replayed.trace) out.push({ kind: "trace", where: "trace", recorded: recorded.trace, replayed: replayed.trace });
  for (const d of leafDifferences(recorded.violations, replayed.violations, "violations")) out.push({ kind: "violations", ...d });
  return out;
}

/** The places two JSON values differ, down to the leaves: `args[0].attributes.name`. */
function leafDifferences(recorded: unknown, replayed: unknown, where: string): Array<{ where: string; recorded?: unknown; replayed?: unknown }> {
  if (equal(recorded, replayed)) return [];
  const both = (test: (x: unknown) => boolean) => test(recorded) && test(replayed);
  if (both(Array.isArray) || both(isPlainObject)) {
    const a = recorded as Record<string, unknown>;
    const b = replayed as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    const child = (key: string) => (Array.isArray(a) ? `${where}[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? `${where}.${key}` : `${where}[${JSON.stringify(key)}]`);
    return keys.flatMap((key) => {
      const has = (o: object) => Object.prototype.hasOwnProperty.call(o, key);
      if (!has(b)) return [{ where: child(key), recorded: a[key] }];
      if (!has(a)) return [{ where: child(key), replayed: b[key] }];
      return leafDifferences(a[key], b[key], child(key));
    });
  }
  return [{ where, recorded, replayed }];
}

function equal(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

const KIND_LABELS: Record<DifferenceKind, string> = { write: "write", read: "read", post: "post", web: "web request", outcome: "outcome", changes: "output", trace: "trace", violations: "isolation" };

function shownValue(value: unknown): string {
  return value === undefined ? "(none)" : JSON.stringify(value);
}

/** Two traces line by line: `- ` a recorded line the replay did not trace, `+ ` a replayed one, in order (a longest common subsequence). */
function lineDiff(recorded: string, replayed: string): string[] {
  const a = recorded === "" ? [] : recorded.split("\n");
  const b = replayed === "" ? [] : replayed.split("\n");
  // Past this size, the table would cost too much: every line is shown as changed.
  if (a.length * b.length > 4_000_000) return [...a.map((l) => `- ${l}`), ...b.map((l) => `+ ${l}`)];
  const common: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--) common[i]![j] = a[i] === b[j] ? common[i + 1]![j + 1]! + 1 : Math.max(common[i + 1]![j]!, common[i]![j + 1]!);
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      i++;
      j++;
    } else if (j >= b.length || (i < a.length && common[i + 1]![j]! >= common[i]![j + 1]!)) out.push(`- ${a[i++]}`);
    else out.push(`+ ${b[j++]}`);
  }
  if (a.length === 0) out.unshift("- (no trace)");
  if (b.length === 0) out.push("+ (no trace)");
  return out;
}

/** A replay report for people: each execution, what differs in it (recorded, then replayed), and a last line that sums it up. */
export function formatReplayDiff(report: ReplayReport): string[] {
  const lines = [`replay of ${report.recording} (recorded ${report.recordedAt} by plugbox ${report.plugbox}): ${report.executions.length} execution(s)`];
  for (const e of report.executions) {
    const what = `${e.typeName} on ${e.messageName}${e.primaryEntityName ? ` of ${e.primaryEntityName}` : ""} (stage ${e.stage}, depth ${e.depth})`;
    const verdict = e.differences.length === 0 ? "same" : `${e.differences.length} difference(s)`;
    lines.push(`execution ${e.index}: ${what}, ${e.calls.replayed} service call(s) — ${verdict}`);
    if (e.bundle.changed) {
      const moved = e.bundle.replayed.path !== e.bundle.recorded.path ? `${e.bundle.replayed.path} in place of ${e.bundle.recorded.path}` : `${e.bundle.replayed.path} has changed since the recording`;
      lines.push(`  bundle: ${moved} (sha256 ${e.bundle.replayed.sha256.slice(0, 12)}…, recorded ${e.bundle.recorded.sha256.slice(0, 12)}…)`);
    }
    for (const d of e.differences) {
      lines.push(`  ${KIND_LABELS[d.kind]}${d.where === d.kind ? "" : `: ${d.where}`}`);
      if (d.kind === "trace") {
        lines.push(...lineDiff(String(d.recorded ?? ""), String(d.replayed ?? "")).map((line) => `    ${line}`));
        continue;
      }
      lines.push(`    recorded: ${shownValue(d.recorded)}`);
      lines.push(`    replayed: ${shownValue(d.replayed)}`);
    }
  }
  const differing = report.executions.filter((e) => e.differences.length > 0).length;
  lines.push(report.same ? `same: the replay did what the recording did` : `differs: ${report.differences} difference(s) in ${differing} of ${report.executions.length} execution(s)`);
  return lines;
}
