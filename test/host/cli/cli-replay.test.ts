/**
 * `plugbox replay`: a context captured for real (the azure-aware sample relayed by `exec` to
 * `plugbox broker`, received by `listen --json`, or the body as Service Bus carried it, in JSON and
 * Text XML, or as a webhook received it) runs the plug-in again, which posts the very context it
 * was given; `--data` seeds the store from `data export`; bad inputs exit 2 naming the problem and
 * the fix.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { ServiceBusClient } from "@azure/service-bus";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromPlain, serializeRemoteExecutionContext } from "../../../dist/sdk/index.js";
import { plugbox, repo, type CliRun } from "../../helpers/cli.js";
import { startBrokerProcess, type BrokerProcess } from "../../helpers/faults.js";

const ENDPOINT = "c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80";
let dir: string;
let broker: BrokerProcess;
let env: Record<string, string>;
/** The line `listen --json --max 1` printed for the sample's post, as it printed it. */
let capturedLine: string;
let captured: { messageId: string; contentType: string; properties: Record<string, unknown>; context: Record<string, unknown> };

const file = (name: string) => path.join(dir, name);
const azureAware = ["--bundle", "azure-aware.bundle.js", "--type", "AzureAwarePlugin", "--unsecure-config", ENDPOINT];

/** The context a `replay --json` run's plug-in posted through the notification service. */
function postedContext(run: CliRun): Record<string, unknown> {
  const result = JSON.parse(run.stdout) as { ok: boolean; calls: Array<{ service: string; op: string; args: unknown[] }> };
  expect(result.ok, run.stdout).toBe(true);
  const posts = result.calls.filter((call) => call.service === "notification" && call.op === "execute");
  expect(posts).toHaveLength(1);
  return posts[0]!.args[1] as Record<string, unknown>;
}

/** A context (plugbox JSON) as Dataverse would post it: every member of the RemoteExecutionContext, and nothing else. */
const onTheWire = (context: unknown, format: "json" | "xml" = "json") => serializeRemoteExecutionContext(fromPlain(context) as Record<string, unknown>, format);

/** Receives one message's body from a queue as its bytes came (not parsed as JSON). */
async function receiveBody(queue: string): Promise<{ body: string; contentType: string | undefined }> {
  const client = new ServiceBusClient(broker.connectionString);
  try {
    const receiver = client.createReceiver(queue, { receiveMode: "receiveAndDelete", skipParsingBodyAsJson: true });
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 10_000 });
    expect(message, `a message on ${queue}`).toBeDefined();
    return { body: String(message!.body), contentType: message!.contentType };
  } finally {
    await client.close();
  }
}

async function execSample(manifest: string, db?: string): Promise<void> {
  const exec = await plugbox(["exec", "--manifest", manifest, "--request", "create-account.json", "--run-jobs", ...(db ? ["--db", db] : [])], dir, env);
  expect(exec.code, exec.stderr).toBe(0);
  expect(exec.stdout).toMatch(/job [0-9a-f-]{36}: succeeded/);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-cli-replay-"));
  broker = await startBrokerProcess(["--auto-create", "--port", "0"]);
  env = { PLUGBOX_SB_CONNECTION: broker.connectionString, PLUGBOX_TEST_HOOK_KEY: "replay-test" };
  for (const [entry, out] of [
    ["samples/azure-aware/plugin.ts", "azure-aware.bundle.js"],
    ["test/fixtures/pipeline/plugins.ts", "plugins.bundle.js"],
  ] as const) {
    const built = await plugbox(["build", path.join(repo, entry), "-o", file(out)]);
    expect(built.code, built.stderr).toBe(0);
  }
  const manifest = JSON.parse(readFileSync(path.join(repo, "samples/azure-aware/plugbox.json"), "utf8"));
  writeFileSync(file("plugbox.json"), JSON.stringify(manifest));
  manifest.serviceEndpoints[0] = { ...manifest.serviceEndpoints[0], messageFormat: "TextXml", path: "account-xml" };
  writeFileSync(file("text-xml.json"), JSON.stringify(manifest));
  writeFileSync(file("create-account.json"), readFileSync(path.join(repo, "samples/azure-aware/create-account.json")));

  // The capture: the sample relays its context from an asynchronous step, on a store kept in a file.
  await execSample("plugbox.json", "captured.db");
  const listen = await plugbox(["listen", "--connection-string", broker.connectionString, "--queue", "account-events", "--max", "1", "--timeout", "10000", "--json"], dir);
  expect(listen.code, listen.stderr).toBe(0);
  capturedLine = listen.stdout.trim();
  expect(capturedLine.split("\n")).toHaveLength(1);
  captured = JSON.parse(capturedLine);
  writeFileSync(file("captured.jsonl"), `${capturedLine}\n`);
}, 120_000);

afterAll(async () => {
  await broker?.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe("plugbox replay: a context captured by listen --json", () => {
  it("the azure-aware plug-in replayed from the captured line posts the context it was captured with: message, entity, ids, stage, mode, attributes, every member", async () => {
    const replay = await plugbox(["replay", "captured.jsonl", ...azureAware, "--json"], dir);
    expect(replay.code, replay.stderr).toBe(0);
    const posted = postedContext(replay);
    const context = captured.context;
    expect(posted).toMatchObject({
      messageName: "Create",
      primaryEntityName: "account",
      primaryEntityId: context.primaryEntityId,
      stage: 40,
      mode: 1,
      depth: 1,
      operationId: captured.messageId,
      operationCreatedOn: context.operationCreatedOn,
      requestId: context.requestId,
      correlationId: context.correlationId,
      userId: context.userId,
      initiatingUserId: context.initiatingUserId,
      owningExtension: context.owningExtension,
      inputParameters: { Target: { logicalName: "account", id: context.primaryEntityId, attributes: { name: "Contoso" } } },
      outputParameters: { id: context.primaryEntityId },
      sharedVariables: { postedBy: "AzureAwarePlugin" },
    });
    expect((posted.inputParameters as { Target: unknown }).Target).toEqual((context.inputParameters as { Target: unknown }).Target);
    // No difference at all in what Dataverse would post.
    expect(onTheWire(posted)).toBe(onTheWire(context));
  });

  it("--help: the context is optional, --bundle and --type are required, and run's options (data, manifest, limits, debug) are there", async () => {
    const help = await plugbox(["replay", "--help"], dir);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: plugbox replay \[options\] \[context\]/);
    for (const flag of ["--bundle <bundle>", "-t, --type <ExportName>", "--data <file.json>", "--manifest <plugbox.json>", "--unsecure-config <text>", "--isolation <mode>", "--json", "--timeout <ms>", "--memory <MB>", "--inspect-brk [port]"]) {
      expect(help.stdout, flag).toContain(`  ${flag} `);
    }
  });

  it("prints what run prints: the plug-in, its message and entity, stage and mode, its trace and its post; exit 0", async () => {
    const replay = await plugbox(["replay", "captured.jsonl", ...azureAware], dir);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toMatch(/^ok: AzureAwarePlugin on Create of account \(stage 40, async\) in /);
    expect(replay.stdout).toContain("  Posting the execution context.\n  Done.");
    expect(replay.stdout).toContain(`notification.execute({"logicalName":"serviceendpoint","id":"${ENDPOINT}"}`);
  });

  it("with --manifest the replayed post reaches the broker again, and listen prints the captured line again: same message id, properties and context", async () => {
    const replay = await plugbox(["replay", "captured.jsonl", ...azureAware, "--manifest", "plugbox.json"], dir, env);
    expect(replay.code, replay.stderr).toBe(0);
    const listen = await plugbox(["listen", "--connection-string", broker.connectionString, "--queue", "account-events", "--max", "1", "--timeout", "10000", "--json"], dir);
    expect(listen.code, listen.stderr).toBe(0);
    expect(JSON.parse(listen.stdout.trim())).toEqual(captured);
  });

  it("reads the line from standard input with -", async () => {
    const replay = await plugbox(["replay", "-", ...azureAware, "--json"], dir, {}, capturedLine);
    expect(replay.code, replay.stderr).toBe(0);
    expect(onTheWire(postedContext(replay))).toBe(onTheWire(captured.context));
  });

  it("--data seeds the store from `data export` of the captured run's store: the plug-in reads the record it ran for", async () => {
    const exported = await plugbox(["data", "export", "--db", "captured.db", "-o", "seed.json"], dir);
    expect(exported.code, exported.stderr).toBe(0);
    const replay = await plugbox(["replay", "captured.jsonl", "--bundle", "plugins.bundle.js", "--type", "AsyncProbe", "--data", "seed.json", "--json"], dir);
    expect(replay.code, replay.stderr).toBe(0);
    const result = JSON.parse(replay.stdout) as { ok: boolean; trace: string; calls: Array<{ op: string; ok: boolean; result: unknown; args: unknown[] }> };
    expect(result.ok).toBe(true);
    expect(result.trace).toBe(`job ${captured.messageId} for ${captured.context.primaryEntityId}`);
    const [retrieve, create] = result.calls;
    expect(retrieve).toMatchObject({ op: "retrieve", ok: true, result: { logicalName: "account", id: captured.context.primaryEntityId, attributes: { name: "Contoso" } } });
    expect(create).toMatchObject({ op: "create", ok: true, args: [{ logicalName: "jobrun", attributes: { operationid: captured.messageId, recordid: captured.context.primaryEntityId, recordname: "Contoso", mode: 1, stage: 40 } }] });

    const unseeded = await plugbox(["replay", "captured.jsonl", "--bundle", "plugins.bundle.js", "--type", "AsyncProbe"], dir);
    expect(unseeded.code).toBe(1);
    expect(unseeded.stderr).toContain(`error [ORG_NOT_FOUND]: account with id ${String(captured.context.primaryEntityId)} does not exist`);
  });
});

describe("plugbox replay: the body Dataverse posts", () => {
  it("a JSON body (DataContractJsonSerializer) as Service Bus carried it: the plug-in posts that body again, byte for byte", async () => {
    await execSample("plugbox.json");
    const { body, contentType } = await receiveBody("account-events");
    expect(contentType).toBe("application/json");
    writeFileSync(file("body.json"), body);
    const replay = await plugbox(["replay", "body.json", ...azureAware, "--json"], dir);
    expect(replay.code, replay.stderr).toBe(0);
    const posted = postedContext(replay);
    expect(posted).toMatchObject({ messageName: "Create", primaryEntityName: "account", stage: 40, mode: 1, sharedVariables: { postedBy: "AzureAwarePlugin" } });
    expect(onTheWire(posted)).toBe(body);
  });

  it("a Text XML body from an endpoint with MessageFormat TextXml: the plug-in posts that body again, byte for byte", async () => {
    await execSample("text-xml.json");
    const { body, contentType } = await receiveBody("account-xml");
    expect(contentType).toBe("application/xml");
    expect(body).toMatch(/^<RemoteExecutionContext /);
    writeFileSync(file("body.xml"), body);
    const replay = await plugbox(["replay", "body.xml", ...azureAware, "--json"], dir);
    expect(replay.code, replay.stderr).toBe(0);
    const posted = postedContext(replay);
    expect(posted).toMatchObject({ messageName: "Create", primaryEntityName: "account", stage: 40, mode: 1 });
    expect(onTheWire(posted, "xml")).toBe(body);
  });
});

describe("plugbox replay: a webhook's request body", () => {
  it("the body a webhook received replays to the same post, and with --manifest the webhook receives that body again, byte for byte", async () => {
    const bodies: string[] = [];
    const server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        bodies.push(body);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const manifest = JSON.parse(readFileSync(file("plugbox.json"), "utf8"));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      manifest.serviceEndpoints[0] = { id: ENDPOINT, name: "hook", contract: "Webhook", url, authType: "HttpHeader", authValue: { "x-api-key": "env:PLUGBOX_TEST_HOOK_KEY" } };
      writeFileSync(file("webhook.json"), JSON.stringify(manifest));
      await execSample("webhook.json");
      expect(bodies).toHaveLength(1);
      writeFileSync(file("hook-body.json"), bodies[0]!);
      const replay = await plugbox(["replay", "hook-body.json", ...azureAware, "--manifest", "webhook.json", "--json"], dir, env);
      expect(replay.code, replay.stderr).toBe(0);
      expect(onTheWire(postedContext(replay))).toBe(bodies[0]);
      expect(bodies).toHaveLength(2);
      expect(bodies[1]).toBe(bodies[0]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("plugbox replay: bad input exits 2 naming the problem and the fix", () => {
  const inputs: Array<[title: string, name: string, content: string, code: string, says: string]> = [
    ["JSON that is no context", "other.json", JSON.stringify({ name: "Contoso" }), "REPLAY_NOT_A_CONTEXT", 'holds JSON that is not an execution context (its members are "name"); replay reads a line `plugbox listen --json` printed'],
    ["text that is neither JSON nor XML", "hello.txt", "hello", "REPLAY_NOT_A_CONTEXT", "is neither JSON nor XML"],
    ["XML that is no context", "other.xml", "<account><name>Contoso</name></account>", "REPLAY_NOT_A_CONTEXT", "is not a RemoteExecutionContext in Text XML: the XML's root is <account>, not <RemoteExecutionContext>"],
    ["Dataverse JSON without a MessageName", "no-message.json", JSON.stringify({ Stage: 40, Mode: 0 }), "REPLAY_NOT_A_CONTEXT", "the context's messageName must be a string, got nothing"],
    ["a listen --json line whose context is missing", "no-context.jsonl", JSON.stringify({ messageId: "m-1", contentType: "application/json", properties: {} }), "REPLAY_CONTEXT_MISSING", 'is a `listen --json` line (message m-1) without its "context"; capture the message again with `plugbox listen --json`'],
    ["an empty file", "empty.json", "", "REPLAY_INPUT_EMPTY", "is empty"],
  ];

  it.each(inputs)("%s: %s", async (_title, name, content, code, says) => {
    writeFileSync(file(name), content);
    const replay = await plugbox(["replay", name, ...azureAware], dir);
    expect(replay.code, replay.stdout).toBe(2);
    expect(replay.stderr).toContain(`plugbox: error [${code}]: the context file ${name}`);
    expect(replay.stderr).toContain(says);
  });

  it("several listen --json lines: says which to keep", async () => {
    writeFileSync(file("two.jsonl"), `${capturedLine}\n${capturedLine}\n`);
    const replay = await plugbox(["replay", "two.jsonl", ...azureAware], dir);
    expect(replay.code).toBe(2);
    expect(replay.stderr).toContain("error [REPLAY_SEVERAL_CONTEXTS]: the context file two.jsonl holds 2 `listen --json` lines; replay runs one context: keep the line of the message you want");
  });

  it("nothing on standard input", async () => {
    const replay = await plugbox(["replay", "-", ...azureAware], dir, {}, "");
    expect(replay.code).toBe(2);
    expect(replay.stderr).toContain("error [REPLAY_INPUT_EMPTY]: standard input is empty");
  });

  it("no context named, a file that is not there", async () => {
    const none = await plugbox(["replay", ...azureAware], dir);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("error [CLI_USAGE]: name the context to replay: a file holding a `plugbox listen --json` line or a RemoteExecutionContext (JSON or Text XML), or - to read it from standard input");
    const missing = await plugbox(["replay", "nowhere.json", ...azureAware], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("error [INPUT_NOT_FOUND]: cannot read the context file nowhere.json: it does not exist or is not readable");
  });

  it("a type the bundle does not export, no --bundle, no --type, a bundle that is not there", async () => {
    const unknown = await plugbox(["replay", "captured.jsonl", "--bundle", "azure-aware.bundle.js", "--type", "Nope", "--json"], dir);
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ ok: false, exitCode: 2, error: { code: "PLUGIN_TYPE_NOT_FOUND", message: 'the bundle exports no plug-in type named "Nope"; it exports: AzureAwarePlugin' } });
    const noBundle = await plugbox(["replay", "captured.jsonl", "--type", "AzureAwarePlugin"], dir);
    expect(noBundle.code).toBe(2);
    expect(noBundle.stderr).toContain("error [CLI_USAGE]: replaying a context needs --bundle <bundle>");
    const noType = await plugbox(["replay", "captured.jsonl", "--bundle", "azure-aware.bundle.js"], dir);
    expect(noType.code).toBe(2);
    expect(noType.stderr).toContain("error [CLI_USAGE]: replaying a context needs --type <ExportName>");
    const missing = await plugbox(["replay", "captured.jsonl", "--bundle", "nowhere.js", "--type", "AzureAwarePlugin"], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("error [BUNDLE_NOT_FOUND]: cannot read the bundle nowhere.js: it does not exist or is not readable; build one with `plugbox build <entry> -o <bundle.js>`");
  });

  it("a usage error with --json is one JSON object with ok false and the code", async () => {
    writeFileSync(file("line-without-context.jsonl"), JSON.stringify({ messageId: "m-2", contentType: "application/json", properties: {} }));
    const replay = await plugbox(["replay", "line-without-context.jsonl", ...azureAware, "--json"], dir);
    expect(replay.code).toBe(2);
    expect(JSON.parse(replay.stdout)).toMatchObject({ ok: false, error: { code: "REPLAY_CONTEXT_MISSING" } });
  });
});
