import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plugbox, repo } from "../../helpers/cli.js";

/**
 * `--record` on run, exec and jobs run, and `plugbox replay --recording`, through the real CLI and
 * sandbox. The plug-in under test is test/fixtures/replay/account-review.ts; account-review-fixed.ts
 * is its next build (the task's subject and the description change).
 */
let dir: string;
let credit: Server;
let creditUrl: string;
let recorded: string;
const ENDPOINT_ID = "5b1f3c2e-8d4a-4f6b-9c7e-2a1d0e9f8b7c";

interface RecordingFile {
  format: string;
  version: number;
  plugbox: string;
  executions: Array<{
    typeName: string;
    secureConfig: string | null;
    bundle: { path: string; sha256: string };
    context: { messageName: string; stage: number };
    startedAt: string;
    calls: Array<{ service: string; op: string; args: unknown[]; ok: boolean; at: string; result?: unknown }>;
    outcome: { ok: boolean; error?: { code: string }; trace: string; changes: { sharedVariables: Record<string, unknown> } | null };
  }>;
}

const readRecording = (file: string) => JSON.parse(readFileSync(file, "utf8")) as RecordingFile;

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-cli-replay-"));
  for (const [from, to] of [["account-review.ts", "v1"], ["account-review-fixed.ts", "v2"]] as const) {
    mkdirSync(path.join(dir, to));
    const built = await plugbox(["build", `test/fixtures/replay/${from}`, "-o", path.join(dir, to, "account-review.js")], repo);
    expect(built.code, built.stderr).toBe(0);
  }
  credit = createServer((request, response) => {
    response.writeHead(200, { "content-type": "application/json", "x-credit-source": "local" });
    response.end(JSON.stringify({ score: 720, asked: request.url }));
  });
  const port = await listen(credit);
  creditUrl = `http://credit.test:${port}`;
  writeFileSync(path.join(dir, "web-policy.json"), JSON.stringify({ resolve: { "credit.test": ["127.0.0.1"] }, unsafeAllowLoopback: true, extraPorts: [port] }));
  writeFileSync(path.join(dir, "account.json"), JSON.stringify({ logicalName: "account", attributes: { name: "Contoso" } }));
  writeFileSync(path.join(dir, "nameless.json"), JSON.stringify({ logicalName: "account", attributes: {} }));

  // The recording the replay tests share: a run that writes, reads, traces, asks the credit service over the web and posts.
  recorded = path.join(dir, "review.recording.json");
  const run = await plugbox(["run", "v1/account-review.js", "--type", "AccountReview", "--stage", "20", "--target", "account.json", "--unsecure-config", creditUrl, "--secure-config", ENDPOINT_ID, "--web-policy", "web-policy.json", "--record", recorded], dir);
  expect(run.code, run.stderr).toBe(0);
  // Replays are offline: the credit service is gone before any of them runs.
  await new Promise((resolve) => credit.close(resolve));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("plugbox run --record", () => {
  it("records the context, each service call with its reply in order, the whole web exchange, the post and the outcome", () => {
    const recording = readRecording(recorded);
    expect(recording).toMatchObject({ format: "plugbox-recording", version: 1, plugbox: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(recording.executions).toHaveLength(1);
    const [execution] = recording.executions;
    expect(execution!.typeName).toBe("AccountReview");
    expect(execution!.bundle.path).toBe(path.join(dir, "v1/account-review.js"));
    expect(execution!.context).toMatchObject({ messageName: "Create", stage: 20 });
    expect(execution!.calls.map((c) => `${c.service}.${c.op} ${(c.args[0] as { requestName?: string }).requestName ?? ""}`.trim())).toEqual([
      "organization.execute Create",
      "organization.execute Retrieve",
      "organization.execute Update",
      "web.fetch",
      "notification.execute",
    ]);
    expect(execution!.secureConfig).toBe(ENDPOINT_ID);
    expect(execution!.calls[4]!.args[0]).toEqual({ logicalName: "serviceendpoint", id: ENDPOINT_ID });
    expect(execution!.calls[4]!.args[1]).toMatchObject({ messageName: "Create", primaryEntityName: "account" });
    const web = execution!.calls[3]!;
    expect(web.args[0]).toMatchObject({ url: `${creditUrl}/score?name=Contoso` });
    expect(web.result).toMatchObject({ status: 200, headers: expect.arrayContaining([["x-credit-source", "local"]]), bodyBase64: expect.any(String) });
    expect(JSON.parse(Buffer.from((web.result as { bodyBase64: string }).bodyBase64, "base64").toString())).toEqual({ score: 720, asked: "/score?name=Contoso" });
    expect(execution!.outcome).toMatchObject({ ok: true, trace: "reviewing Contoso\ntask due this week\ncredit score 720" });
  });

  it("records the time the plug-in saw when it started and when each answer resumed it, and a replay shows it the same times", async () => {
    const [execution] = readRecording(recorded).executions;
    const shared = execution!.outcome.changes!.sharedVariables;
    expect(shared.reviewStartedAt).toBe(execution!.startedAt);
    expect(shared.reviewedAt).toBe(execution!.calls[2]!.at);
    const replay = await plugbox(["replay", "--recording", recorded, "--json"], dir);
    expect(replay.code, replay.stderr).toBe(0);
    const report = JSON.parse(replay.stdout) as { executions: Array<{ replayed: { changes: { sharedVariables: Record<string, unknown> } } }> };
    expect(report.executions[0]!.replayed.changes.sharedVariables).toMatchObject({ reviewStartedAt: execution!.startedAt, reviewedAt: execution!.calls[2]!.at });
  });

  it("records a run that fails too, and its replay is the same failure", async () => {
    const file = path.join(dir, "failed.recording.json");
    const run = await plugbox(["run", "v1/account-review.js", "--type", "AccountReview", "--stage", "20", "--target", "nameless.json", "--record", file], dir);
    expect(run.code).toBe(1);
    expect(readRecording(file).executions[0]!.outcome).toMatchObject({ ok: false, error: { code: "PLUGIN_FAILED" } });
    const replay = await plugbox(["replay", "--recording", file], dir);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toContain("same: the replay did what the recording did");
  });

  it("refuses a recording file it could not write before the plug-in runs: REPLAY_RECORDING_NOT_WRITTEN", async () => {
    for (const [file, why] of [[path.join(dir, "no-such-folder/r.json"), "does not exist"], [dir, "it is a folder"]] as const) {
      const run = await plugbox(["run", "v1/account-review.js", "--type", "AccountReview", "--stage", "20", "--target", "account.json", "--record", file], dir);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/^plugbox: error \[REPLAY_RECORDING_NOT_WRITTEN\]: cannot write the recording /);
      expect(run.stderr).toContain(why);
      expect(run.stdout).toBe("");
    }
  });
});

describe("plugbox replay --recording", () => {
  it("re-runs the recording offline and finds no difference: exit 0", async () => {
    const replay = await plugbox(["replay", "--recording", recorded], dir);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toContain("execution 1: AccountReview on Create of account (stage 20, depth 1), 5 service call(s) — same");
    expect(replay.stdout).toMatch(/same: the replay did what the recording did\n$/);
  });

  it("--bundle: replays the next build and prints the write, the output and the trace that changed, exit 1 with REPLAY_DIFFERS", async () => {
    const replay = await plugbox(["replay", "--recording", recorded, "--bundle", "v2/account-review.js"], dir);
    expect(replay.code).toBe(1);
    expect(replay.stdout).toContain(`bundle: ${path.join(dir, "v2/account-review.js")} in place of ${path.join(dir, "v1/account-review.js")}`);
    const taskId = (readRecording(recorded).executions[0]!.calls[0]!.result as { results: { id: string } }).results.id;
    expect(replay.stdout).toContain(
      [
        "  write: call 3 organization.update: args[0].attributes.subject",
        '    recorded: "Review Contoso this week"',
        '    replayed: "Review Contoso today"',
        "  output: changes.inputParameters.Target.attributes.description",
        `    recorded: "reviewed by task ${taskId}"`,
        `    replayed: "review task ${taskId}"`,
        "  trace",
        "    - task due this week",
        "    + task due today",
      ].join("\n"),
    );
    expect(replay.stdout).toContain("differs: 3 difference(s) in 1 of 1 execution(s)");
    expect(replay.stderr).toContain("plugbox: error [REPLAY_DIFFERS]: the replay differs from the recording in 3 place(s)");
  });

  it("--json: prints the differences as data", async () => {
    const replay = await plugbox(["replay", "--recording", recorded, "--bundle", "v2/account-review.js", "--json"], dir);
    expect(replay.code).toBe(1);
    const report = JSON.parse(replay.stdout) as { ok: boolean; same: boolean; error: { code: string }; executions: Array<{ bundle: { changed: boolean }; differences: Array<{ kind: string; where: string; recorded?: unknown; replayed?: unknown }> }> };
    expect(report).toMatchObject({ ok: false, same: false, error: { code: "REPLAY_DIFFERS" } });
    expect(report.executions[0]!.bundle.changed).toBe(true);
    expect(report.executions[0]!.differences).toEqual([
      { kind: "write", where: "call 3 organization.update: args[0].attributes.subject", recorded: "Review Contoso this week", replayed: "Review Contoso today" },
      { kind: "changes", where: "changes.inputParameters.Target.attributes.description", recorded: expect.stringMatching(/^reviewed by task /), replayed: expect.stringMatching(/^review task /) },
      { kind: "trace", where: "trace", recorded: "reviewing Contoso\ntask due this week\ncredit score 720", replayed: "reviewing Contoso\ntask due today\ncredit score 720" },
    ]);
  });

  it("a call the recording does not hold at its position is answered with REPLAY_CALL_NOT_RECORDED, and shown as a difference", async () => {
    const file = path.join(dir, "no-credit.recording.json");
    expect((await plugbox(["run", "v1/account-review.js", "--type", "AccountReview", "--stage", "20", "--target", "account.json", "--record", file], dir)).code).toBe(0);
    const replay = await plugbox(["replay", "--recording", file, "--bundle", "v2/account-review.js", "--json"], dir);
    expect(replay.code).toBe(1);
    const report = JSON.parse(replay.stdout) as { executions: Array<{ calls: { recorded: number; replayed: number }; differences: Array<{ kind: string; where: string; recorded?: unknown; replayed?: unknown }> }> };
    const [execution] = report.executions;
    expect(execution!.calls).toEqual({ recorded: 3, replayed: 4 });
    expect(execution!.differences).toContainEqual({ kind: "read", where: "call 4 organization.execute(WhoAmI): not in the recording", replayed: [{ requestName: "WhoAmI", parameters: {} }] });
    expect(execution!.differences).toContainEqual({
      kind: "outcome",
      where: "outcome",
      recorded: "ok",
      replayed: { code: "REPLAY_CALL_NOT_RECORDED", message: expect.stringMatching(/^call 4 \(organization\.execute\(WhoAmI\)\) is not in the recording: the recording has 3 call\(s\); a replay is offline/) },
    });
  });

  it("--inspect: replays under debug mode, with the endpoint on stderr", async () => {
    const replay = await plugbox(["replay", "--recording", recorded, "--inspect=0"], dir);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stderr).toMatch(/^Debugger listening on ws:\/\/127\.0\.0\.1:\d+\//);
    expect(replay.stdout).toContain("same: the replay did what the recording did");
  });

  it("reports a recorded bundle file that changed since the recording", async () => {
    const file = path.join(dir, "moved.recording.json");
    mkdirSync(path.join(dir, "moving"));
    writeFileSync(path.join(dir, "moving/account-review.js"), readFileSync(path.join(dir, "v1/account-review.js")));
    expect((await plugbox(["run", "moving/account-review.js", "--type", "AccountReview", "--stage", "20", "--target", "account.json", "--record", file], dir)).code).toBe(0);
    writeFileSync(path.join(dir, "moving/account-review.js"), readFileSync(path.join(dir, "v2/account-review.js")));
    const replay = await plugbox(["replay", "--recording", file], dir);
    expect(replay.code).toBe(1);
    expect(replay.stdout).toContain(`bundle: ${path.join(dir, "moving/account-review.js")} has changed since the recording`);
  });
});

describe("exec and jobs run --record", () => {
  beforeAll(() => {
    const step = (name: string, type: string, stage: number, mode: string) => ({ name, bundle: "review", type, message: "Create", entity: "account", stage, mode });
    const manifest = (mode: string) => ({
      bundles: { review: { path: "v1/account-review.js", types: ["AccountReview", "AccountAudit"] } },
      steps: [step("Review new accounts", "AccountReview", 20, "sync"), step("Audit new accounts", "AccountAudit", 40, mode)],
      tables: { account: { primaryNameAttribute: "name", columns: { name: "string", description: "string" } }, task: { primaryNameAttribute: "subject", columns: { subject: "string" } } },
    });
    writeFileSync(path.join(dir, "plugbox.json"), JSON.stringify(manifest("sync")));
    writeFileSync(path.join(dir, "plugbox-async.json"), JSON.stringify(manifest("async")));
    writeFileSync(path.join(dir, "create-account.json"), JSON.stringify({ requestName: "Create", parameters: { Target: { $type: "Entity", logicalName: "account", attributes: { name: "Fabrikam" } } } }));
  });

  it("exec --record: records each step the request ran, and the replay of both is the same", async () => {
    const file = path.join(dir, "exec.recording.json");
    const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--record", file], dir);
    expect(exec.code, exec.stderr).toBe(0);
    const recording = readRecording(file);
    expect(recording.executions.map((e) => `${e.typeName} ${e.context.stage}`)).toEqual(["AccountReview 20", "AccountAudit 40"]);
    expect(recording.executions[1]!.outcome.trace).toMatch(/^audited account [0-9a-f-]{36}$/);
    const replay = await plugbox(["replay", "--recording", file], dir);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toContain("execution 2: AccountAudit on Create of account (stage 40, depth 1), 0 service call(s) — same");
  });

  it("jobs run --record: records the system jobs the runner ran", async () => {
    const db = path.join(dir, "jobs.db");
    expect((await plugbox(["exec", "--manifest", "plugbox-async.json", "--request", "create-account.json", "--db", db], dir)).code).toBe(0);
    const file = path.join(dir, "jobs.recording.json");
    const run = await plugbox(["jobs", "run", "--manifest", "plugbox-async.json", "--db", db, "--record", file], dir);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/job [0-9a-f-]{36}: succeeded/);
    expect(readRecording(file).executions.map((e) => e.typeName)).toEqual(["AccountAudit"]);
    expect((await plugbox(["replay", "--recording", file], dir)).code).toBe(0);
  });

  it("jobs run --record refuses --processes above 1 (the jobs would run in other processes)", async () => {
    const run = await plugbox(["jobs", "run", "--manifest", "plugbox-async.json", "--db", path.join(dir, "no-such.db"), "--processes", "2", "--record", path.join(dir, "never.json")], dir);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("plugbox: error [CLI_USAGE]: --record records the jobs run in this process");
  });
});

/** A recording changed as a tool that knows the format would change it: its checksum made again. */
function rewritten(text: string, change: (recording: { executions: Array<Record<string, unknown>>; checksum: string }) => void): string {
  const recording = JSON.parse(text) as { executions: Array<Record<string, unknown>>; checksum: string };
  change(recording);
  recording.checksum = createHash("sha256").update(JSON.stringify(recording.executions)).digest("hex");
  return JSON.stringify(recording);
}

describe("replay refuses a recording it cannot trust, and replays none of it", () => {
  const refusals: Array<[string, (text: string) => string, string, RegExp]> = [
    ["a damaged file (not JSON)", (text) => text.replace(/"executions": \[/, '"executions": [}'), "REPLAY_RECORDING_INVALID", /is not JSON \(cut short or damaged\?\)/],
    ["a truncated file", (text) => text.slice(0, Math.floor(text.length / 2)), "REPLAY_RECORDING_INVALID", /is not JSON \(cut short or damaged\?\)/],
    ["a value changed after it was written", (text) => text.replace('"Review Contoso this week"', '"Review Contoso next week"'), "REPLAY_RECORDING_INVALID", /does not match its checksum/],
    ["a missing part", (text) => text.replace(/"typeName": "AccountReview",/, ""), "REPLAY_RECORDING_INVALID", /is damaged: executions\[0\]\.typeName must be a string/],
    ["another plugbox version", (text) => text.replace(/"plugbox": "[^"]+"/, '"plugbox": "0.0.1"'), "REPLAY_VERSION_UNSUPPORTED", /was made by plugbox "0\.0\.1" in recording format 1; this is plugbox .*record it again/],
    ["another recording format", (text) => text.replace('"version": 1', '"version": 2'), "REPLAY_VERSION_UNSUPPORTED", /in recording format 2/],
    ["a value plugbox cannot use, with the checksum made again", (text) => rewritten(text, (r) => (r.executions[0]!.limits = { timeoutMs: -1 })), "REPLAY_RECORDING_INVALID", /cannot use in executions\[0\]: .*timeoutMs/],
    ["an unknown member, with the checksum made again", (text) => rewritten(text, (r) => Object.assign(r.executions[0]!, { profiler: true })), "REPLAY_RECORDING_INVALID", /is damaged: executions\[0\]\.profiler/],
    ["a file that is not a recording", () => JSON.stringify({ logicalName: "account" }), "REPLAY_RECORDING_INVALID", /is not a plugbox recording/],
  ];
  for (const [what, damage, code, message] of refusals) {
    it(`${what}: ${code}, exit 2`, async () => {
      const file = path.join(dir, `refused-${what.replace(/\W+/g, "-")}.json`);
      writeFileSync(file, damage(readFileSync(recorded, "utf8")));
      const replay = await plugbox(["replay", "--recording", file], dir);
      expect(replay.code).toBe(2);
      expect(replay.stderr).toMatch(new RegExp(`^plugbox: error \\[${code}\\]: `));
      expect(replay.stderr).toMatch(message);
      expect(replay.stdout).toBe("");
    });
  }

  it("a missing recording: INPUT_NOT_FOUND", async () => {
    const replay = await plugbox(["replay", "--recording", "nowhere.json"], dir);
    expect(replay.code).toBe(2);
    expect(replay.stderr).toContain("plugbox: error [INPUT_NOT_FOUND]: cannot read the recording nowhere.json");
  });

  it("a context and --recording together: CLI_USAGE, nothing replayed", async () => {
    const replay = await plugbox(["replay", "context.json", "--recording", "hello.recording.json"], dir);
    expect(replay.code).toBe(2);
    expect(replay.stderr).toContain("plugbox: error [CLI_USAGE]: replay takes either a context or --recording, not both (got context.json)");
    expect(replay.stdout).toBe("");
  });
});
