import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServiceBusClient } from "@azure/service-bus";
import { formatDuration, parseDuration, parseEmulatorConfig } from "../../../dist/host/testing/internal.js";
import { startBroker } from "../../../dist/host/index.js";
import { bin, plugbox, repo } from "../../helpers/cli.js";

const configFile = path.join(repo, "test/fixtures/broker/Config.json");
let dir: string;
let broker: ChildProcess;
let connectionString: string;

/** Starts `plugbox broker` in a process of its own; resolves once it printed its connection string. */
async function spawnBroker(args: string[]): Promise<{ process: ChildProcess; connectionString: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [bin, "broker", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const ready = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /ready: (\S+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once("exit", (code) => reject(new Error(`the broker exited with ${code}`)));
  });
  return {
    process: child,
    connectionString: ready,
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGINT");
      await exited;
    },
  };
}

let stopBroker: () => Promise<void>;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-cli-broker-"));
  const started = await spawnBroker(["--config", configFile, "--port", "0", "--event-hub", "account-hub:2"]);
  broker = started.process;
  connectionString = started.connectionString;
  stopBroker = started.stop;
  const built = await plugbox(["build", "samples/azure-aware/plugin.ts", "-o", path.join(dir, "azure-aware.bundle.js")]);
  expect(built.code, built.stderr).toBe(0);
  writeFileSync(path.join(dir, "plugbox.json"), readFileSync(path.join(repo, "samples/azure-aware/plugbox.json")));
  writeFileSync(path.join(dir, "create-account.json"), readFileSync(path.join(repo, "samples/azure-aware/create-account.json")));
});

afterAll(async () => {
  await stopBroker();
  rmSync(dir, { recursive: true, force: true });
});

describe("plugbox broker, exec and listen", () => {
  it("the walkthrough: the broker prints its connection string, exec relays the azure-aware sample's context, listen prints it", async () => {
    expect(connectionString).toMatch(/^Endpoint=sb:\/\/127\.0\.0\.1:\d+;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;$/);
    const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--run-jobs"], dir, { PLUGBOX_SB_CONNECTION: connectionString });
    expect(exec.code, exec.stderr).toBe(0);
    const jobId = /job ([0-9a-f-]{36}): succeeded/.exec(exec.stdout)?.[1];
    expect(jobId).toBeDefined();
    const listen = await plugbox(["listen", "--connection-string", connectionString, "--queue", "account-events", "--max", "1", "--timeout", "5000", "--json"], dir);
    expect(listen.code, listen.stderr).toBe(0);
    const received = JSON.parse(listen.stdout.trim().split("\n")[0]!);
    expect(received).toMatchObject({ messageId: jobId, contentType: "application/json", context: { messageName: "Create", primaryEntityName: "account", operationId: jobId } });
    expect(received.properties["http://schemas.microsoft.com/xrm/2011/Claims/RequestName"]).toBe("Create");
  });

  it("an EventHub endpoint: exec posts the context to the event hub, and listen --event-hub prints it", async () => {
    const sample = JSON.parse(readFileSync(path.join(dir, "plugbox.json"), "utf8"));
    sample.serviceEndpoints[0] = { ...sample.serviceEndpoints[0], contract: "EventHub", path: "account-hub" };
    writeFileSync(path.join(dir, "event-hub.json"), JSON.stringify(sample));
    const exec = await plugbox(["exec", "--manifest", "event-hub.json", "--request", "create-account.json", "--db", path.join(dir, "event-hub.db"), "--run-jobs"], dir, { PLUGBOX_SB_CONNECTION: connectionString });
    expect(exec.code, exec.stderr).toBe(0);
    const jobId = /job ([0-9a-f-]{36}): succeeded/.exec(exec.stdout)?.[1];
    const listen = await plugbox(["listen", "--connection-string", connectionString, "--event-hub", "account-hub", "--max", "1", "--timeout", "3000", "--json"], dir);
    expect(listen.code, listen.stderr).toBe(0);
    expect(JSON.parse(listen.stdout.trim().split("\n")[0]!)).toMatchObject({ messageId: jobId, contentType: "application/json", context: { messageName: "Create", operationId: jobId } });
  });

  it("listen reports a message that is not an execution context, dead-letters it, prints the rest and exits 1", async () => {
    const client = new ServiceBusClient(connectionString);
    try {
      await client.createSender("account-events").sendMessages([{ body: "hello", messageId: "not-a-context" }]);
      const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--db", path.join(dir, "bad.db"), "--run-jobs"], dir, { PLUGBOX_SB_CONNECTION: connectionString });
      expect(exec.code, exec.stderr).toBe(0);
      const listen = await plugbox(["listen", "--connection-string", connectionString, "--queue", "account-events", "--max", "1", "--timeout", "3000"], dir);
      expect(listen.code).toBe(1);
      expect(listen.stderr).toContain("not-a-context: not an execution context");
      expect(listen.stderr).toContain("1 message(s) were not execution contexts (moved to the dead-letter queue)");
      expect(listen.stdout).toMatch(/: Create of account /);
      const dlq = client.createReceiver("account-events", { subQueueType: "deadLetter", receiveMode: "receiveAndDelete" });
      const [dead] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
      expect(dead).toMatchObject({ messageId: "not-a-context", deadLetterReason: "NotAnExecutionContext" });
    } finally {
      await client.close();
    }
  });

  it("the walkthrough's second half: with the broker stopped the post waits as a job, and once the broker is back `jobs run` delivers it", async () => {
    const first = await spawnBroker(["--config", configFile, "--port", "0"]);
    const port = /127\.0\.0\.1:(\d+)/.exec(first.connectionString)![1]!;
    await first.stop();
    const db = path.join(dir, "walkthrough.db");
    const env = { PLUGBOX_SB_CONNECTION: first.connectionString };
    const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--db", db, "--run-jobs"], dir, env);
    expect(exec.code, exec.stderr).toBe(0);
    const jobId = /job ([0-9a-f-]{36}): retrying/.exec(exec.stdout)?.[1];
    expect(jobId, exec.stdout).toBeDefined();
    expect((await plugbox(["jobs", "list", "--db", db], dir)).stdout).toMatch(new RegExp(`${jobId}.*Ready \\(Waiting\\).*retries: 1`));
    const second = await spawnBroker(["--config", configFile, "--port", port]);
    try {
      await expect
        .poll(async () => (await plugbox(["jobs", "run", "--manifest", "plugbox.json", "--db", db], dir, env)).stdout, { timeout: 20_000, interval: 500 })
        .toContain(`job ${jobId}: succeeded`);
      const listen = await plugbox(["listen", "--connection-string", second.connectionString, "--queue", "account-events", "--max", "1", "--timeout", "5000"], dir);
      expect(listen.code, listen.stderr).toBe(0);
      expect(listen.stdout).toContain(`${jobId}: Create of account`);
    } finally {
      await second.stop();
    }
  });

  it("run --manifest relays the plug-in's post for real", async () => {
    writeFileSync(path.join(dir, "target.json"), JSON.stringify({ logicalName: "account", attributes: { name: "Run Co" } }));
    const run = await plugbox(
      ["run", "azure-aware.bundle.js", "--type", "AzureAwarePlugin", "--manifest", "plugbox.json", "--target", "target.json", "--unsecure-config", "c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80"],
      dir,
      { PLUGBOX_SB_CONNECTION: connectionString },
    );
    expect(run.code, run.stderr).toBe(0);
    const listen = await plugbox(["listen", "--connection-string", connectionString, "--queue", "account-events", "--max", "1", "--timeout", "5000", "--json"], dir);
    expect(listen.code, listen.stderr).toBe(0);
    const received = JSON.parse(listen.stdout.trim().split("\n")[0]!);
    expect(received.context).toMatchObject({ messageName: "Create", primaryEntityName: "account", inputParameters: { Target: { attributes: { name: "Run Co" } } }, sharedVariables: { postedBy: "AzureAwarePlugin" } });
  });

  it("exec without the endpoint's secret exits 2 naming the endpoint and the variable", async () => {
    const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json"], dir, { PLUGBOX_SB_CONNECTION: "" });
    expect(exec.code).toBe(2);
    expect(exec.stderr).toContain('RELAY_SECRET_MISSING]: serviceEndpoints "account-events".connectionString reads the environment variable PLUGBOX_SB_CONNECTION');
  });

  it("the broker closes its connections and exits at once on SIGTERM and on SIGINT, also while a receiver is connected", async () => {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const started = await spawnBroker(["--auto-create", "--port", "0"]);
      const client = new ServiceBusClient(started.connectionString, { retryOptions: { maxRetries: 0 } });
      const receiver = client.createReceiver("waiting");
      receiver.subscribe({ processMessage: async () => undefined, processError: async () => undefined });
      await client.createSender("waiting").sendMessages({ body: "connected" });
      const exited = new Promise<number | null>((resolve) => started.process.once("exit", (code) => resolve(code)));
      started.process.kill(signal);
      const outcome = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve("still running after 5 s"), 5_000))]);
      if (outcome === "still running after 5 s") started.process.kill("SIGKILL");
      expect(outcome, signal).toBe(0);
      await client.close();
    }
  });

  it("listen with a malformed connection string exits 2", async () => {
    const listen = await plugbox(["listen", "--connection-string", "nonsense", "--queue", "q"], dir);
    expect(listen.code).toBe(2);
    expect(listen.stderr).toContain("--connection-string is malformed");
  });
});

describe("the emulator's Config.json", () => {
  it("reads the shipped shape with comments: every entity property, and correlation and SQL rules with actions", () => {
    const topology = parseEmulatorConfig(readFileSync(configFile, "utf8"), { strict: true });
    expect(topology.queues).toEqual([{ name: "account-events", lockDurationMs: 60_000, maxDeliveryCount: 3, deadLetteringOnMessageExpiration: false, defaultMessageTtlMs: 3_600_000, duplicateDetectionWindowMs: 20_000 }]);
    expect(topology.topics).toEqual([
      {
        name: "topic.1",
        defaultMessageTtlMs: 3_600_000,
        subscriptions: [
          { name: "subscription.1", lockDurationMs: 30_000, maxDeliveryCount: 3 },
          { name: "subscription.2", maxDeliveryCount: 3, rules: [{ name: "user-prop-filter-1", correlation: { properties: { prop1: "value1" } } }] },
          {
            name: "subscription.3",
            maxDeliveryCount: 3,
            rules: [{ name: "sys-prop-filter-1", correlation: { contentType: "application/text", correlationId: "id1", subject: "subject1", messageId: "msgid1", replyTo: "someQueue", replyToSessionId: "sessionId", sessionId: "session1", to: "xyz" } }],
          },
          { name: "subscription.4", maxDeliveryCount: 3, rules: [{ name: "sql-filter-1", sql: "sys.MessageId = '123456' AND userProp1 = 'value1'", action: "SET sys.To = 'Entity'" }] },
        ],
      },
    ]);
  });

  it("the shipped file's rules route messages as the emulator does", async () => {
    const broker = await startBroker({ port: 0, topology: parseEmulatorConfig(readFileSync(configFile, "utf8")) });
    const client = new ServiceBusClient(broker.connectionString, { retryOptions: { maxRetries: 0, timeoutInMs: 5_000 } });
    try {
      const sender = client.createSender("topic.1");
      await sender.sendMessages([
        { body: "plain" },
        { body: "prop1", applicationProperties: { prop1: "value1" } },
        { body: "sql", messageId: "123456", applicationProperties: { userProp1: "value1" } },
      ]);
      const bodies = async (subscription: string) => {
        const receiver = client.createReceiver("topic.1", subscription, { receiveMode: "receiveAndDelete" });
        const got = await receiver.receiveMessages(10, { maxWaitTimeInMs: 500 });
        await receiver.close();
        return got.map((m) => [m.body, m.to]);
      };
      expect(await bodies("subscription.1")).toEqual([["plain", undefined], ["prop1", undefined], ["sql", undefined]]);
      expect(await bodies("subscription.2")).toEqual([["prop1", undefined]]);
      expect(await bodies("subscription.3")).toEqual([]);
      expect(await bodies("subscription.4")).toEqual([["sql", "Entity"]]);
    } finally {
      await client.close();
      await broker.close();
    }
  });

  it("--print-config writes the topology back in the emulators' formats, so it loads the same", async () => {
    const original = parseEmulatorConfig(readFileSync(configFile, "utf8"), { strict: true });
    const printed = await plugbox(["broker", "--config", configFile, "--print-config"]);
    expect(printed.code, printed.stderr).toBe(0);
    expect(parseEmulatorConfig(printed.stdout, { strict: true })).toEqual(original);
    const hubs = await plugbox(["broker", "--event-hub", "contexts:4", "--print-config", "eventhubs"]);
    expect(parseEmulatorConfig(hubs.stdout, { strict: true }).eventHubs).toEqual([{ name: "contexts", partitionCount: 4, consumerGroups: [] }]);
    expect((await plugbox(["broker", "--print-config", "eventhubs"])).code).toBe(2);
    expect(formatDuration(90_500)).toBe("PT1M30.5S");
    expect(parseDuration(formatDuration(3_600_000), "d")).toBe(3_600_000);
  });

  it("a rule the broker cannot apply fails naming its path", async () => {
    const withRule = (rule: unknown) => JSON.stringify({ UserConfig: { Namespaces: [{ Name: "n", Topics: [{ Name: "t", Subscriptions: [{ Name: "s", Rules: [rule] }] }] }] } });
    expect(() => parseEmulatorConfig(withRule({ Name: "r", Properties: { FilterType: "Boolean" } }))).toThrow(/Rules\[0\]\.Properties\.FilterType must be "Correlation" or "Sql"/);
    expect(() => parseEmulatorConfig(withRule({ Name: "r", Properties: { FilterType: "Correlation", CorrelationFilter: { Subject: "x" } } }))).toThrow(/CorrelationFilter\.Subject is not a correlation filter property/);
    await expect(startBroker({ port: 0, topology: parseEmulatorConfig(withRule({ Name: "r", Properties: { FilterType: "Sql", SqlFilter: { SqlExpression: "a = " } } })) })).rejects.toThrow(/subscription s, rule "r" SqlFilter: expected a value at the end/);
  });

  it("is lenient by default and strict on request, naming the path of what breaks the emulator's limits", () => {
    const config = (queue: Record<string, unknown>, name = "mine") => JSON.stringify({ UserConfig: { Namespaces: [{ Name: name, Queues: [queue] }] } });
    expect(parseEmulatorConfig(config({ Name: "q", Properties: { LockDuration: "PT0.5S", MaxDeliveryCount: 50 } })).queues).toEqual([{ name: "q", lockDurationMs: 500, maxDeliveryCount: 50 }]);
    expect(() => parseEmulatorConfig(config({ Name: "q" }), { strict: true })).toThrow(/exactly one namespace named "sbemulatorns"/);
    expect(() => parseEmulatorConfig(config({ Name: "q", Properties: { LockDuration: "PT1S" } }, "sbemulatorns"), { strict: true })).toThrow(/Queues\[0\]\.Properties\.LockDuration must be from PT5S to PT5M/);
    expect(() => parseEmulatorConfig(config({ Name: "q", Properties: { LockDuration: "one minute" } }))).toThrow(/Queues\[0\]\.Properties\.LockDuration must be an ISO 8601 duration/);
    expect(() => parseEmulatorConfig(config({ Properties: {} }))).toThrow(/Queues\[0\]\.Name must be a non-empty string/);
    expect(parseEmulatorConfig(config({ Name: "q", Properties: { Colour: "red" } })).queues).toEqual([{ name: "q" }]);
    expect(() => parseEmulatorConfig(config({ Name: "q", Properties: { Colour: "red" } }, "sbemulatorns"), { strict: true })).toThrow(/Queues\[0\]\.Properties\.Colour is not a property the emulator knows; it knows LockDuration, MaxDeliveryCount/);
    expect(() => parseEmulatorConfig(config({ Name: "q", Properties: { MaxDeliveryCount: 11 } }, "sbemulatorns"), { strict: true })).toThrow(/Queues\[0\]\.Properties\.MaxDeliveryCount must be from 1 to 10 in the emulator; got 11/);
    expect(() => parseEmulatorConfig("{ nope")).toThrow(/not valid JSON/);
    expect(() => parseEmulatorConfig('{\n  // a comment\n  "UserConfig": { "Namespaces": [], }\n}')).toThrow(/Config\.json is not valid JSON \(comments allowed\): property name expected at line 3, column 37/);
    expect(parseDuration("P1DT2H3M4.5S", "d")).toBe(((24 + 2) * 60 + 3) * 60_000 + 4_500);
  });
});
