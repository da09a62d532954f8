/**
 * The seed document's flow: an Azure-aware plug-in posts its context to a Service Bus queue; the
 * listener receives it with the real ServiceBusReceiver. Against the local broker.
 */
import { EventHubConsumerClient, earliestEventPosition, type ReceivedEventData } from "@azure/event-hubs";
import { ServiceBusClient } from "@azure/service-bus";
import { fork } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, createHost, startBroker, type Broker, createSandboxRuntime, type SandboxRuntime } from "../../../dist/host/index.js";
import { Relay, jobRunnerDefaults } from "../../../dist/host/testing/internal.js";
import { decode, Entity, Money, OptionSetValue, parseRemoteExecutionContext } from "../../../dist/sdk/index.js";
import { sqliteOf } from "../../fixtures/pipeline/support.js";
import { ManualClock } from "../../../dist/host/testing/index.js";
import { repo } from "../../helpers/cli.js";

const ENDPOINT = "c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80";
const CLAIMS = "http://schemas.microsoft.com/xrm/2011/Claims";
let dir: string;
let bundlePath: string;
let runtime: SandboxRuntime;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-sb-"));
  bundlePath = path.join(dir, "azure-aware.js");
  await buildBundle({ entry: path.join(repo, "samples/azure-aware/plugin.ts"), outfile: bundlePath });
  runtime = createSandboxRuntime({ workers: 1, prewarmIsolates: 1 });
  await runtime.ready;
});

afterAll(async () => {
  await runtime.close();
  rmSync(dir, { recursive: true, force: true });
});

function manifest(connectionString: string, mode: "sync" | "async") {
  return {
    bundles: { azure: { path: bundlePath } },
    serviceEndpoints: [{ id: ENDPOINT, name: "account-events", contract: "Queue", path: "account-events", connectionString, userClaim: "UserId" }],
    steps: [{ bundle: "azure", type: "AzureAwarePlugin", message: "Create", entity: "account", stage: 40, mode, unsecureConfig: ENDPOINT }],
  };
}

async function receiveOne(broker: Broker) {
  const client = new ServiceBusClient(broker.connectionString);
  // As a .NET listener reads it: the body's bytes, not parsed by the client.
  const receiver = client.createReceiver("account-events", { receiveMode: "receiveAndDelete", skipParsingBodyAsJson: true });
  const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
  await receiver.close();
  await client.close();
  return message;
}

describe("relay: Service Bus queues", () => {
  it("the azure-aware sample posts its context from an async step; the listener gets Dataverse's JSON, the claims, the content type and MessageId = OperationId", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: "account-events" }] } });
    const host = await createHost({ manifest: manifest(broker.connectionString, "async"), runtime, runJobs: false, organizationUrl: "https://contoso.crm.example.com" });
    try {
      const { response, journal } = await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "Contoso" }) } }, { userId: "75c2dd85-e89e-e711-8122-000d3aa2331c" });
      const jobId = journal.jobs[0]!;
      expect((await host.runJobs()).map((o) => o.outcome)).toEqual(["succeeded"]);
      const message = (await receiveOne(broker))!;
      expect(message.contentType).toBe("application/json");
      expect(message.messageId).toBe(jobId);
      expect(message.applicationProperties).toMatchObject({
        [`${CLAIMS}/Organization`]: "https://contoso.crm.example.com",
        [`${CLAIMS}/User`]: "75c2dd85-e89e-e711-8122-000d3aa2331c",
        [`${CLAIMS}/EntityLogicalName`]: "account",
        [`${CLAIMS}/RequestName`]: "Create",
      });
      // The context's JSON text is the body itself, as Dataverse sends it (not a JSON string literal).
      expect(Buffer.isBuffer(message.body)).toBe(true);
      expect(String(message.body)).toMatch(/^\{"BusinessUnitId":/);
      const context = parseRemoteExecutionContext(String(message.body));
      expect(context).toMatchObject({ messageName: "Create", mode: 1, stage: 40, operationId: jobId, primaryEntityId: response.results.id });
      expect(context.sharedVariables.postedBy).toBe("AzureAwarePlugin");
    } finally {
      await host.close();
      await broker.close();
    }
  });

  it("connectServiceEndpoints opens the endpoints' links before the first post, and names, within its timeout, an endpoint it cannot reach", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: "account-events" }] } });
    const host = await createHost({ manifest: manifest(broker.connectionString, "async"), runtime, runJobs: false });
    try {
      // [] means the sender's link is attached: the client sizes a batch only from an open link.
      expect(await host.connectServiceEndpoints()).toEqual([]);
    } finally {
      await host.close();
    }
    const port = broker.port;
    await broker.close();
    const unreachable = await createHost({ manifest: manifest(`Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true`, "async"), runtime, runJobs: false });
    try {
      expect(await unreachable.connectServiceEndpoints({ timeoutMs: 500 })).toEqual([{ endpoint: "account-events", message: expect.any(String) }]);
    } finally {
      await unreachable.close();
    }
  });

  /**
   * Queues a Create while the broker is down and runs its job once (it must wait to retry), then
   * starts the broker again on the same port and, once the back-off has run out, runs the job again: the post is delivered.
   */
  async function deliveredOnceTheBrokerIsBack(manifestFor: (connectionString: string) => Record<string, unknown>) {
    const first = await startBroker({ port: 0, topology: { queues: [{ name: "account-events" }] } });
    const port = first.port;
    const clock = new ManualClock();
    const host = await createHost({ manifest: manifestFor(first.connectionString), runtime, clock, runJobs: false, jobs: { backoffBaseMs: 100 } });
    try {
      await first.close();
      const jobId = (await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "Fabrikam" }) } })).journal.jobs[0]!;
      expect((await host.runJobs()).map((o) => o.outcome)).toEqual(["retrying"]);
      const waiting = await host.getJob(jobId);
      const second = await startBroker({ port, topology: { queues: [{ name: "account-events" }] } });
      try {
        expect(await host.runJobs()).toEqual([]); // its back-off has not run out
        await clock.advance(100);
        expect(await host.runJobs()).toEqual([{ id: jobId, outcome: "succeeded" }]);
        return { jobId, waiting, message: (await receiveOne(second))! };
      } finally {
        await second.close();
      }
    } finally {
      await host.close();
    }
  }

  it("nothing is lost while the broker is down: the job waits and retries, and the post arrives once the broker is back", async () => {
    const { jobId, waiting, message } = await deliveredOnceTheBrokerIsBack((connectionString) => manifest(connectionString, "async"));
    expect(waiting).toMatchObject({ stateCode: 0, statusCode: 10, retryCount: 1, message: expect.stringContaining("Failed to post the context to the service endpoint") });
    expect(message.messageId).toBe(jobId);
    expect(parseRemoteExecutionContext(String(message.body)).primaryEntityName).toBe("account");
  });

  it("an asynchronous posting step (the endpoint is the step's handler) is retried while the broker is down, and its post arrives once it is back", async () => {
    const { jobId, waiting, message } = await deliveredOnceTheBrokerIsBack((connectionString) => ({
      serviceEndpoints: [{ id: ENDPOINT, name: "account-events", contract: "Queue", path: "account-events", connectionString, maxAttempts: 5 }],
      steps: [{ serviceEndpoint: "account-events", message: "Create", entity: "account", stage: 40, mode: "async" }],
    }));
    expect(waiting).toMatchObject({ stateCode: 0, statusCode: 10, retryCount: 1 });
    expect(message.messageId).toBe(jobId);
    expect(parseRemoteExecutionContext(String(message.body))).toMatchObject({ primaryEntityName: "account", operationId: jobId, stage: 40, mode: 1 });
  });

  it("a posting step gives up after its endpoint's maxAttempts and the job fails with the reason", async () => {
    const probe = await startBroker({ port: 0 });
    await probe.close();
    const posting = {
      serviceEndpoints: [{ id: ENDPOINT, name: "account-events", contract: "Queue", path: "account-events", connectionString: probe.connectionString, maxAttempts: 2 }],
      steps: [{ serviceEndpoint: "account-events", message: "Create", entity: "account", stage: 40, mode: "async" }],
    };
    const clock = new ManualClock();
    const host = await createHost({ manifest: posting, runtime, clock, runJobs: false, jobs: { backoffBaseMs: 1_000 } });
    try {
      const jobId = (await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "Fabrikam" }) } })).journal.jobs[0]!;
      const outcomes: string[] = [];
      outcomes.push(...(await host.runJobs()).map((o) => o.outcome));
      await clock.advance(1_000);
      outcomes.push(...(await host.runJobs()).map((o) => o.outcome));
      expect(outcomes).toEqual(["retrying", "failed"]);
      expect(await host.getJob(jobId)).toMatchObject({ stateCode: 3, statusCode: 31, message: expect.stringContaining("gave up after 2 attempts") });
    } finally {
      await host.close();
    }
  });

  it("a host killed with SIGKILL while its posts wait for an unreachable broker loses none: after a restart, every context arrives at least once", async () => {
    const probe = await startBroker({ port: 0 });
    const port = probe.port;
    await probe.close();
    const connectionString = probe.connectionString;
    const db = path.join(dir, "killed.db");
    const manifestFile = path.join(dir, "killed.json");
    // Enough attempts that the posts are still waiting, not failed for good, when the host is killed.
    const patient = manifest(connectionString, "async");
    patient.serviceEndpoints = patient.serviceEndpoints.map((e) => ({ ...e, maxAttempts: 100 }));
    writeFileSync(manifestFile, JSON.stringify(patient));
    const script = path.join(dir, "killed-host.mjs");
    writeFileSync(
      script,
      `import { createHost } from ${JSON.stringify(new URL("../../../dist/host/index.js", import.meta.url).href)};
import { Entity } from ${JSON.stringify(new URL("../../../dist/sdk/index.js", import.meta.url).href)};
const [manifest, db] = process.argv.slice(2);
const host = await createHost({ manifest, db, runJobs: true, jobs: { backoffBaseMs: 50, pollMs: 20 }, runtimeOptions: { workers: 1, prewarmIsolates: 1 } });
host.jobRunner.onOutcome((outcome) => process.send({ outcome }));
const ids = [];
for (let i = 0; i < 3; i++) ids.push((await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "Killed " + i }) } })).journal.jobs[0]);
process.send({ ids });
`,
    );
    const child = fork(script, [manifestFile, db], { execArgv: ["--no-node-snapshot"], stdio: ["ignore", "ignore", "pipe", "ipc"] });
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    // The runner fails posts against the closed port; it is killed in the middle of that, once each job failed a post twice.
    const { ids } = await new Promise<{ ids: string[] }>((resolve, reject) => {
      const failed = new Map<string, number>();
      let ids: string[] | undefined;
      const check = () => ids && ids.every((id) => (failed.get(id) ?? 0) >= 2) && resolve({ ids });
      child.on("message", (m: { ids?: string[]; outcome?: { id: string; outcome: string } }) => {
        if (m.ids) ids = m.ids;
        if (m.outcome?.outcome === "retrying") failed.set(m.outcome.id, (failed.get(m.outcome.id) ?? 0) + 1);
        check();
      });
      child.once("exit", () => reject(new Error(`the host exited early: ${stderr}`)));
    });
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");

    const broker = await startBroker({ port, topology: { queues: [{ name: "account-events" }] } });
    // The dead host's leases (180 s) and back-offs began before this clock starts.
    const clock = new ManualClock(Date.now());
    const host = await createHost({ manifest: patient, db, runtime, clock, runJobs: false, jobs: { backoffBaseMs: 50 } });
    try {
      const pending = (await Promise.all(ids.map((id) => host.getJob(id)))).map((job) => job!.stateCode);
      expect(pending.every((state) => state === 0 || state === 2)).toBe(true);
      await clock.advance(jobRunnerDefaults.leaseMs);
      expect((await host.runJobs()).map((o) => o.outcome)).toEqual(["succeeded", "succeeded", "succeeded"]);
      expect((await Promise.all(ids.map((id) => host.getJob(id)))).map((job) => job!.statusCode)).toEqual([30, 30, 30]);
      const client = new ServiceBusClient(broker.connectionString);
      const receiver = client.createReceiver("account-events", { receiveMode: "receiveAndDelete" });
      const received = await receiver.receiveMessages(10, { maxWaitTimeInMs: 1_000 });
      await client.close();
      expect(new Set(received.map((m) => m.messageId))).toEqual(new Set(ids));
    } finally {
      await host.close();
      await broker.close();
    }
  });

  it("from a synchronous step a failed post throws into the plug-in, which fails the request with its message", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: "account-events" }] } });
    const host = await createHost({ manifest: manifest(broker.connectionString, "sync"), runtime, runJobs: false });
    await broker.close();
    try {
      await expect(host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "x" }) } })).rejects.toMatchObject({
        code: "PIPELINE_STEP_FAILED",
        message: expect.stringContaining("Failed to post the context to the service endpoint"),
      });
      expect((await host.store.allRecords())).toEqual([]);
    } finally {
      await host.close();
    }
  });

  describe("TwoWay", () => {
    let asker: string;
    beforeAll(() => {
      asker = path.join(dir, "asker.js");
      writeFileSync(
        asker,
        `module.exports = { Ask: class { async execute(sp) {
           const c = sp.getService("IPluginExecutionContext");
           c.outputParameters.answer = await sp.getService("IServiceEndpointNotificationService").execute({ id: "${ENDPOINT}" }, c);
         } } };`,
      );
    });

    const twoWayHost = (connectionString: string, extra: Record<string, unknown> = {}) =>
      createHost({
        manifest: {
          bundles: { a: { path: asker } },
          serviceEndpoints: [{ id: ENDPOINT, name: "credit-check", contract: "TwoWay", path: "credit-requests", replyQueue: "credit-replies", connectionString, timeoutMs: 10_000, ...extra }],
          steps: [{ bundle: "a", type: "Ask", message: "Create", entity: "account", stage: 40 }],
        },
        runtime,
        runJobs: false,
      });

    /** A listener that answers each request with its account's name, on the reply queue and session the request names. */
    function answer(client: ServiceBusClient, count: number, { raw = false } = {}) {
      const requests = client.createReceiver("credit-requests", { skipParsingBodyAsJson: true });
      return (async () => {
        const seen = [];
        while (seen.length < count) {
          const [request] = await requests.receiveMessages(1, { maxWaitTimeInMs: 10_000 });
          if (!request) break;
          const context = parseRemoteExecutionContext(String(request.body));
          const reply = client.createSender(request.replyTo!);
          const text = `approved ${String((context.inputParameters.Target as Entity).attributes.name)}`;
          // A JavaScript listener's string body travels as a JSON string literal; a .NET one's as the bytes of the text.
          await reply.sendMessages({ body: raw ? Buffer.from(text) : text, correlationId: request.messageId, sessionId: request.replyToSessionId });
          await reply.close();
          await requests.completeMessage(request);
          seen.push(request);
        }
        await requests.close();
        return seen;
      })();
    }

    it("two hosts share one session-enabled reply queue: each request names its host's session in ReplyToSessionId, and each plug-in gets its own answer", async () => {
      const broker = await startBroker({ port: 0, topology: { queues: [{ name: "credit-requests" }, { name: "credit-replies", requiresSession: true }] } });
      const [first, second] = await Promise.all([twoWayHost(broker.connectionString), twoWayHost(broker.connectionString)]);
      const client = new ServiceBusClient(broker.connectionString);
      const listener = answer(client, 4);
      try {
        const ask = (host: typeof first, name: string) => host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name }) } }).then((r) => r.response.results.answer);
        expect(await Promise.all([ask(first, "Contoso"), ask(second, "Fabrikam"), ask(first, "Litware"), ask(second, "Northwind")])).toEqual([
          "approved Contoso",
          "approved Fabrikam",
          "approved Litware",
          "approved Northwind",
        ]);
        const requests = await listener;
        expect(requests.every((r) => r.replyTo === "credit-replies")).toBe(true);
        expect(new Set(requests.map((r) => r.replyToSessionId)).size).toBe(2);
      } finally {
        await client.close();
        await Promise.all([first.close(), second.close()]);
        await broker.close();
      }
    });

    it("with replySessions: false the reply queue is a plain queue, correlated by CorrelationId alone", async () => {
      const broker = await startBroker({ port: 0, autoCreate: true });
      const host = await twoWayHost(broker.connectionString, { replySessions: false });
      const client = new ServiceBusClient(broker.connectionString);
      const listener = answer(client, 1, { raw: true });
      try {
        const { response } = await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "Contoso" }) } });
        expect(response.results.answer).toBe("approved Contoso");
        expect((await listener)[0]!.replyToSessionId).toBeUndefined();
      } finally {
        await client.close();
        await host.close();
        await broker.close();
      }
    });

    it("a reply queue that is not session-enabled fails the post with a message that says so", async () => {
      const broker = await startBroker({ port: 0, topology: { queues: [{ name: "credit-requests" }, { name: "credit-replies" }] } });
      const host = await twoWayHost(broker.connectionString);
      try {
        await expect(host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "x" }) } })).rejects.toMatchObject({
          message: expect.stringContaining("set replySessions: false for a plain queue"),
        });
      } finally {
        await host.close();
        await broker.close();
      }
    });
  });
});

describe("relay: topics and Event Hubs", () => {
  const post = (contract: "Topic" | "EventHub", connectionString: string, path: string, messageFormat = "Json") => ({
    bundles: { azure: { path: bundlePath } },
    serviceEndpoints: [{ id: ENDPOINT, name: "account-events", contract, path, connectionString, messageFormat }],
    steps: [{ bundle: "azure", type: "AzureAwarePlugin", message: "Create", entity: "account", stage: 40, mode: "async", unsecureConfig: ENDPOINT }],
  });

  it("a Topic endpoint's post reaches every subscription of the topic", async () => {
    const broker = await startBroker({ port: 0, topology: { topics: [{ name: "account-topic", subscriptions: [{ name: "crm" }, { name: "erp" }] }] } });
    const host = await createHost({ manifest: post("Topic", broker.connectionString, "account-topic"), runtime, runJobs: false });
    const client = new ServiceBusClient(broker.connectionString);
    try {
      await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "Topic Co" }) } });
      expect((await host.runJobs()).map((o) => o.outcome)).toEqual(["succeeded"]);
      for (const subscription of ["crm", "erp"]) {
        const receiver = client.createReceiver("account-topic", subscription, { receiveMode: "receiveAndDelete", skipParsingBodyAsJson: true });
        const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
        await receiver.close();
        expect(parseRemoteExecutionContext(String(message!.body))).toMatchObject({ messageName: "Create", primaryEntityName: "account" });
      }
    } finally {
      await client.close();
      await host.close();
      await broker.close();
    }
  });

  it("an EventHub endpoint's post is read back by the real EventHubConsumerClient: the context as Text XML, its content type, MessageId and claims", async () => {
    const broker = await startBroker({ port: 0, topology: { eventHubs: [{ name: "account-hub" }] } });
    const host = await createHost({ manifest: post("EventHub", broker.connectionString, "account-hub", "TextXml"), runtime, runJobs: false });
    const consumer = new EventHubConsumerClient("$Default", broker.connectionString, "account-hub");
    try {
      const { journal } = await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "Hub Co" }) } });
      expect((await host.runJobs()).map((o) => o.outcome)).toEqual(["succeeded"]);
      const events = await new Promise<ReceivedEventData[]>((resolve, reject) => {
        const subscription = consumer.subscribe(
          "0",
          { processEvents: async (batch) => void (batch.length > 0 && subscription.close().then(() => resolve(batch))), processError: async (error) => reject(error) },
          { startPosition: earliestEventPosition, maxWaitTimeInSeconds: 1, skipParsingBodyAsJson: true },
        );
      });
      const [event] = events;
      expect(event!.contentType).toBe("application/xml");
      expect(event!.messageId).toBe(journal.jobs[0]);
      expect(event!.properties).toMatchObject({ [`${CLAIMS}/EntityLogicalName`]: "account", [`${CLAIMS}/RequestName`]: "Create" });
      expect(String(event!.body)).toMatch(/^<RemoteExecutionContext /);
      const context = parseRemoteExecutionContext(String(event!.body), "xml");
      expect(context).toMatchObject({ messageName: "Create", stage: 40, operationId: journal.jobs[0] });
    } finally {
      await consumer.close();
      await host.close();
      await broker.close();
    }
  });
});

describe("relay: SAS authentication and size", () => {
  const context = (extra: Record<string, unknown> = {}) => ({
    messageName: "Create",
    primaryEntityName: "account",
    primaryEntityId: "6d81597f-0f9f-e711-8122-000d3aa2331c",
    stage: 40,
    mode: 1,
    depth: 1,
    inputParameters: { Target: new Entity("account", "6d81597f-0f9f-e711-8122-000d3aa2331c", { name: "Contoso" }) },
    outputParameters: {},
    sharedVariables: {},
    preEntityImages: {},
    postEntityImages: {},
    userId: "75c2dd85-e89e-e711-8122-000d3aa2331c",
    initiatingUserId: "75c2dd85-e89e-e711-8122-000d3aa2331c",
    operationId: "4af10637-4ea2-e711-8122-000d3aa2331c",
    ...extra,
  });

  it("an endpoint with namespaceAddress, sasKeyName and a sasKey from the environment posts; the key appears in no error", async () => {
    const sasRelay = (port: number) =>
      new Relay({
        endpoints: [{ id: ENDPOINT, name: "sas-endpoint", contract: "Queue", path: "sas", namespaceAddress: `sb://127.0.0.1:${port}`, sasKeyName: "RootManageSharedAccessKey", sasKey: "env:PLUGBOX_TEST_SAS_KEY", timeoutMs: 5_000 }],
        secrets: { env: { PLUGBOX_TEST_SAS_KEY: "sekrit-key-value" } },
        organizationUrl: "https://contoso.example",
      });
    const signal = new AbortController().signal;
    const gone = await startBroker({ port: 0 });
    await gone.close();
    const unreachable = sasRelay(gone.port);
    try {
      const failure = await unreachable.execute("sas-endpoint", context(), signal).then(() => undefined, (error: Error) => error);
      expect(failure).toMatchObject({ code: "RELAY_UNREACHABLE", message: expect.stringContaining('endpoint "sas-endpoint"') });
      expect(JSON.stringify({ message: failure!.message, stack: failure!.stack })).not.toContain("sekrit-key-value");
    } finally {
      await unreachable.close();
    }
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: "sas" }] } });
    const relay = sasRelay(broker.port);
    try {
      expect(relay.endpoint("sas-endpoint").authType).toBe("SASKey");
      await relay.execute("sas-endpoint", context(), signal);
      const client = new ServiceBusClient(broker.connectionString);
      const [message] = await client.createReceiver("sas", { receiveMode: "receiveAndDelete", skipParsingBodyAsJson: true }).receiveMessages(1, { maxWaitTimeInMs: 2_000 });
      await client.close();
      expect(parseRemoteExecutionContext(String(message!.body))).toMatchObject({ operationId: "4af10637-4ea2-e711-8122-000d3aa2331c" });
    } finally {
      await relay.close();
      await broker.close();
    }
  });

  it("past 192 KB a Service Bus post drops ParentContext, InputParameters and images and says so in MessageMaxSizeExceeded; still too big is RELAY_TOO_LARGE naming the endpoint", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: "big" }] } });
    const relay = new Relay({ endpoints: [{ id: ENDPOINT, name: "big-endpoint", contract: "Queue", path: "big", connectionString: broker.connectionString }], organizationUrl: "https://contoso.example" });
    const signal = new AbortController().signal;
    const large = new Entity("account", "6d81597f-0f9f-e711-8122-000d3aa2331c", { description: "x".repeat(200 * 1024) });
    try {
      await relay.execute("big-endpoint", context({ inputParameters: { Target: large }, postEntityImages: { Image: large } }), signal);
      const client = new ServiceBusClient(broker.connectionString);
      const [message] = await client.createReceiver("big", { receiveMode: "receiveAndDelete", skipParsingBodyAsJson: true }).receiveMessages(1, { maxWaitTimeInMs: 2_000 });
      await client.close();
      expect(message!.applicationProperties).toMatchObject({ MessageMaxSizeExceeded: true });
      const posted = parseRemoteExecutionContext(String(message!.body));
      expect(posted.inputParameters).toEqual({});
      expect(posted.postEntityImages).toEqual({});
      expect(posted.operationId).toBe("4af10637-4ea2-e711-8122-000d3aa2331c");
      await expect(relay.execute("big-endpoint", context({ sharedVariables: { blob: "y".repeat(200 * 1024) } }), signal)).rejects.toMatchObject({
        code: "RELAY_TOO_LARGE",
        message: expect.stringContaining("big-endpoint"),
      });
    } finally {
      await relay.close();
      await broker.close();
    }
  });
});

describe("relay: asynchronous posting steps keep their context serialized", () => {
  const USER = "75c2dd85-e89e-e711-8122-000d3aa2331c";
  const STEP_ID = "1d7c0b8e-5a3f-4c55-9a61-0f2b6c3d4e5f";
  const postingManifest = (connectionString: string, endpoint: Record<string, unknown> = {}) => ({
    serviceEndpoints: [{ id: ENDPOINT, name: "account-events", contract: "Queue", path: "account-events", connectionString, ...endpoint }],
    steps: [{ id: STEP_ID, serviceEndpoint: "account-events", message: "Create", entity: "account", stage: 40, mode: "async" }],
  });
  const create = (host: Awaited<ReturnType<typeof createHost>>, target: Entity) =>
    host.execute({ requestName: "Create", parameters: { Target: target } }, { userId: USER }).then((r) => r.journal.jobs[0]!);
  const stored = (host: Awaited<ReturnType<typeof createHost>>, jobId: string) => sqliteOf(host).db.prepare("SELECT data, post FROM system_jobs WHERE id = ?").get(jobId) as { data: string; post: string };

  it("the job keeps the body serialized when it is queued; the listener gets exactly that body, with the claims and MessageId = OperationId, and the job's context reads back from it", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: "account-events" }] } });
    const host = await createHost({ manifest: postingManifest(broker.connectionString, { userClaim: "UserId" }), runtime, runJobs: false, organizationUrl: "https://contoso.crm.example.com" });
    try {
      const jobId = await create(host, new Entity("account", undefined, { name: "Serialized" }));
      const row = stored(host, jobId);
      expect(row.post).toMatch(/^\{"BusinessUnitId":/);
      expect(JSON.parse(row.data)).toEqual({
        $type: "SerializedContext",
        format: "json",
        sizeExceeded: false,
        length: row.post.length,
        fields: expect.objectContaining({ operationId: jobId, messageName: "Create", userId: USER, initiatingUserAgent: "plugbox", stage: 40, mode: 1 }),
      });
      // A plugbox from before this layout, still running on the store, cannot read the job: it fails it (to be retried) rather than post nothing.
      expect(() => decode(row.data)).toThrow(/unknown \$type "SerializedContext"/);
      expect(await host.pipeline.jobs.data(jobId)).toMatchObject({ operationId: jobId, messageName: "Create", initiatingUserAgent: "plugbox", inputParameters: { Target: expect.any(Entity) } });
      expect((await host.runJobs()).map((o) => o.outcome)).toEqual(["succeeded"]);
      const message = (await receiveOne(broker))!;
      expect(String(message.body)).toBe(row.post);
      expect(message.messageId).toBe(jobId);
      expect(message.contentType).toBe("application/json");
      expect(message.applicationProperties).toEqual({
        [`${CLAIMS}/Organization`]: "https://contoso.crm.example.com",
        [`${CLAIMS}/EntityLogicalName`]: "account",
        [`${CLAIMS}/RequestName`]: "Create",
        [`${CLAIMS}/InitiatingUserAgent`]: "plugbox",
        [`${CLAIMS}/User`]: USER,
        [`${CLAIMS}/InitiatingUser`]: USER,
      });
    } finally {
      await host.close();
      await broker.close();
    }
  });

  it("a serialized context's post is the post of the context itself, for every kind of endpoint and format, whole or over the limit", () => {
    const relay = new Relay({
      endpoints: [
        { id: ENDPOINT, name: "json", contract: "Queue", path: "q", connectionString: "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true" },
        { id: "0d2f4c1e-0000-4000-8000-000000000002", name: "xml", contract: "Topic", path: "t", messageFormat: "TextXml", userClaim: "None", connectionString: "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true" },
        { id: "0d2f4c1e-0000-4000-8000-000000000003", name: "hub", contract: "EventHub", path: "h", messageFormat: "TextXml", connectionString: "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true" },
        { id: "0d2f4c1e-0000-4000-8000-000000000004", name: "hook", contract: "Webhook", url: "http://127.0.0.1:1/hook", authType: "HttpHeader", authValue: { "x-key": "env:PLUGBOX_TEST_KEY" } },
      ],
      secrets: { env: { PLUGBOX_TEST_KEY: "k" } },
      organizationUrl: "https://contoso.example",
    });
    const target = new Entity("account", "6d81597f-0f9f-e711-8122-000d3aa2331c", { name: "Contoso", revenue: new Money(12.5), industrycode: new OptionSetValue(3), createdon: new Date("2026-12-01T04:00:00Z") });
    const parent = { messageName: "Create", primaryEntityName: "account", stage: 30, mode: 0, depth: 1, inputParameters: { Target: target }, operationId: "4af10637-4ea2-e711-8122-000d3aa2331c" };
    const context = (description: string) => ({
      messageName: "Create", primaryEntityName: "account", primaryEntityId: target.id, stage: 40, mode: 1, depth: 1,
      inputParameters: { Target: new Entity("account", target.id, { ...target.attributes, description }) },
      outputParameters: { id: target.id }, sharedVariables: { seen: true }, preEntityImages: {}, postEntityImages: { Image: target },
      userId: USER, initiatingUserId: USER, initiatingUserAgent: "plugbox-test", correlationId: "b374239d-4233-41a9-8b17-a86cb4f737b5",
      operationId: "4af10637-4ea2-e711-8122-000d3aa2331c", operationCreatedOn: new Date("2026-12-01T04:00:01Z"), parentContext: parent,
    });
    for (const name of ["json", "xml", "hub", "hook"]) {
      for (const description of ["small", "x".repeat(300 * 1024)]) {
        const endpoint = relay.endpoint(name);
        const direct = relay.prepare(endpoint, context(description));
        expect(relay.prepareSerialized(endpoint, relay.serialize(name, context(description))), `${name}, ${description.length} characters`).toEqual(direct);
        expect(direct.sizeExceeded).toBe(description.length > 100);
      }
    }
    // Read back from the body when the endpoint's format or limit is not the one it was serialized for.
    const between = context("x".repeat(220 * 1024)); // under a webhook's 256 KB, over Service Bus's 192 KB
    expect(relay.prepareSerialized(relay.endpoint("json"), relay.serialize("hook", between))).toEqual(relay.prepare(relay.endpoint("json"), between));
    expect(relay.prepareSerialized(relay.endpoint("json"), relay.serialize("xml", context("small")))).toEqual(relay.prepare(relay.endpoint("json"), context("small")));
  });

  it("an endpoint whose message format changed to Text XML after the job was queued gets the context as Text XML", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: "account-events" }] } });
    const db = path.join(dir, "format-changed.db");
    const queuing = await createHost({ manifest: postingManifest(broker.connectionString), db, runtime, runJobs: false });
    const jobId = await create(queuing, new Entity("account", undefined, { name: "Changed" })).finally(() => queuing.close());
    const host = await createHost({ manifest: postingManifest(broker.connectionString, { messageFormat: "TextXml" }), db, runtime, runJobs: false });
    try {
      expect((await host.runJobs()).map((o) => o.outcome)).toEqual(["succeeded"]);
      const message = (await receiveOne(broker))!;
      expect(message.contentType).toBe("application/xml");
      expect(parseRemoteExecutionContext(String(message.body), "xml")).toMatchObject({ operationId: jobId, messageName: "Create", inputParameters: { Target: expect.objectContaining({ logicalName: "account" }) } });
    } finally {
      await host.close();
      await broker.close();
    }
  });

  it("a context over the endpoint's limit is kept reduced from the start, and goes out without InputParameters and images, flagged MessageMaxSizeExceeded", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: "account-events" }] } });
    const host = await createHost({ manifest: postingManifest(broker.connectionString), runtime, runJobs: false });
    try {
      const jobId = await create(host, new Entity("account", undefined, { name: "Big", description: "x".repeat(200 * 1024) }));
      expect(JSON.parse(stored(host, jobId).data)).toMatchObject({ sizeExceeded: true });
      expect((await host.runJobs()).map((o) => o.outcome)).toEqual(["succeeded"]);
      const message = (await receiveOne(broker))!;
      expect(message.applicationProperties).toMatchObject({ MessageMaxSizeExceeded: true });
      expect(parseRemoteExecutionContext(String(message.body))).toMatchObject({ operationId: jobId, inputParameters: {} });
    } finally {
      await host.close();
      await broker.close();
    }
  });

  it("a job whose stored header or body was damaged fails alone with JOB_DATA_INVALID's reason, and jobs show says so; the other posts go out", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: "account-events" }] } });
    const host = await createHost({ manifest: postingManifest(broker.connectionString), runtime, runJobs: false });
    try {
      const badHeader = await create(host, new Entity("account", undefined, { name: "Bad header" }));
      const cutBody = await create(host, new Entity("account", undefined, { name: "Cut body" }));
      const fine = await create(host, new Entity("account", undefined, { name: "Fine" }));
      sqliteOf(host).db.prepare("UPDATE system_jobs SET data = ? WHERE id = ?").run('{"$type":"SerializedContext","format":"binary"}', badHeader);
      sqliteOf(host).db.prepare("UPDATE system_jobs SET post = substr(post, 1, 100) WHERE id = ?").run(cutBody);
      await expect(host.pipeline.jobs.data(cutBody)).rejects.toThrow(expect.objectContaining({ code: "JOB_DATA_INVALID", message: expect.stringContaining("is not the") }));
      const outcomes = await host.runJobs();
      expect(Object.fromEntries(outcomes.map((o) => [o.id, o.outcome]))).toEqual({ [badHeader]: "failed", [cutBody]: "failed", [fine]: "succeeded" });
      expect(await host.getJob(badHeader)).toMatchObject({ statusCode: 31, message: expect.stringContaining("does not describe a serialized context") });
      expect(await host.getJob(cutBody)).toMatchObject({ statusCode: 31, message: expect.stringContaining("is not the") });
      expect((await receiveOne(broker))?.messageId).toBe(fine);
    } finally {
      await host.close();
      await broker.close();
    }
  });

  it("a job queued by a posting step whose step runs a plug-in by the time the job runs fails with the reason, and does not run the plug-in on a partial context", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: "account-events" }] } });
    const db = path.join(dir, "step-changed.db");
    const queuing = await createHost({ manifest: postingManifest(broker.connectionString), db, runtime, runJobs: false });
    const jobId = await create(queuing, new Entity("account", undefined, { name: "Changed step" })).finally(() => queuing.close());
    const changed = { ...manifest(broker.connectionString, "async"), steps: [{ ...manifest(broker.connectionString, "async").steps[0], id: STEP_ID }] };
    const host = await createHost({ manifest: changed, db, runtime, runJobs: false });
    try {
      expect((await host.runJobs()).map((o) => o.outcome)).toEqual(["failed"]);
      expect(await host.getJob(jobId)).toMatchObject({ statusCode: 31, message: expect.stringContaining("runs a plug-in now") });
      expect(await receiveOne(broker)).toBeUndefined();
    } finally {
      await host.close();
      await broker.close();
    }
  });
});

describe("relay: one post that cannot go does not fail the others sent with it", () => {
  it("a message the Service Bus client refuses fails with RELAY_REJECTED, which a system job does not retry", async () => {
    const broker = await startBroker({ port: 0, topology: { queues: [{ name: "account-events" }] } });
    const relay = new Relay({ endpoints: [{ id: ENDPOINT, name: "account-events", contract: "Queue", path: "account-events", connectionString: broker.connectionString }], organizationUrl: "https://contoso.example" });
    try {
      const prepared = relay.prepare(relay.endpoint("account-events"), { messageName: "Create", primaryEntityName: "account", operationId: "4af10637-4ea2-e711-8122-000d3aa2331c" });
      await expect(relay.send({ ...prepared, messageId: "x".repeat(200) })).rejects.toMatchObject({ code: "RELAY_REJECTED", message: expect.stringContaining("messageId") });
      // The client was not taken for broken: the next post goes out on it.
      await expect(relay.send(prepared)).resolves.toBeNull();
    } finally {
      await relay.close();
      await broker.close();
    }
  });

  it("a post larger than the link's maximum message size fails its own job with RELAY_TOO_LARGE (not retried); the posts sent with it arrive", async () => {
    const broker = await startBroker({ port: 0, maxMessageSize: 64 * 1024, topology: { queues: [{ name: "account-events" }] } });
    const host = await createHost({
      manifest: {
        serviceEndpoints: [{ id: ENDPOINT, name: "account-events", contract: "Queue", path: "account-events", connectionString: broker.connectionString, maxAttempts: 5 }],
        steps: [{ serviceEndpoint: "account-events", message: "Create", entity: "account", stage: 40, mode: "async" }],
      },
      runtime,
      runJobs: false,
      jobs: { concurrency: 8 },
    });
    try {
      const ids: string[] = [];
      for (const description of ["small", "x".repeat(100 * 1024), "small too"]) {
        ids.push((await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "Batched", description }) } })).journal.jobs[0]!);
      }
      const outcomes = await host.runJobs();
      expect(Object.fromEntries(outcomes.map((o) => [o.id, o.outcome]))).toEqual({ [ids[0]!]: "succeeded", [ids[1]!]: "failed", [ids[2]!]: "succeeded" });
      expect(await host.getJob(ids[1]!)).toMatchObject({ statusCode: 31, retryCount: 0, message: expect.stringContaining("too large") });
      const client = new ServiceBusClient(broker.connectionString);
      const received = await client.createReceiver("account-events", { receiveMode: "receiveAndDelete" }).receiveMessages(10, { maxWaitTimeInMs: 1_000 });
      await client.close();
      expect(received.map((m) => m.messageId).sort()).toEqual([ids[0], ids[2]].sort());
    } finally {
      await host.close();
      await broker.close();
    }
  });
});
