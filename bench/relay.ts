/**
 * Relay benchmark: contexts posted per second from asynchronous steps (the out-of-box posting step,
 * one system job per context) to the local broker, against sending the same serialized bodies with
 * @azure/service-bus directly; and what serializing a context of 1, 10 and 100 KB costs.
 */
import { ServiceBusClient } from "@azure/service-bus";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createHost } from "../host/host.js";
import { runJobsInProcesses } from "../host/job-processes.js";
import { textBody } from "../host/relay/body.js";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { Relay } from "../host/relay/relay.js";
import { Entity } from "../sdk/model.js";
import { serializeRemoteExecutionContext } from "../sdk/wire/index.js";
import { decode, encode } from "../sdk/codec.js";
import type { BenchRow } from "./row.js";

const ENDPOINT = "c2c5d1a6-4f6f-4b71-9a0b-5b0c3d6e7f80";
const PROCESS_ROUNDS = 3;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function contextOf(bytes: number): Record<string, unknown> {
  const target = new Entity("account", "6d81597f-0f9f-e711-8122-000d3aa2331c", { name: "Contoso", description: "x".repeat(Math.max(0, bytes - 1_500)) });
  return {
    messageName: "Create", primaryEntityName: "account", primaryEntityId: target.id, stage: 40, mode: 1, depth: 1,
    inputParameters: { Target: target }, outputParameters: { id: target.id }, sharedVariables: {}, preEntityImages: {}, postEntityImages: {},
    userId: "75c2dd85-e89e-e711-8122-000d3aa2331c", initiatingUserId: "75c2dd85-e89e-e711-8122-000d3aa2331c",
    operationId: "4af10637-4ea2-e711-8122-000d3aa2331c", operationCreatedOn: new Date(), correlationId: "b374239d-4233-41a9-8b17-a86cb4f737b5",
  };
}

export async function runRelayBench(options: { contexts?: number } = {}): Promise<BenchRow[]> {
  const count = options.contexts ?? 2_000;
  const rows: BenchRow[] = [];

  // Serialization cost.
  for (const kb of [1, 10, 100]) {
    const context = contextOf(kb * 1024);
    const n = kb === 100 ? 300 : 3_000;
    for (let i = 0; i < 50; i++) serializeRemoteExecutionContext(context, "json");
    const started = performance.now();
    for (let i = 0; i < n; i++) serializeRemoteExecutionContext(context, "json");
    const micros = ((performance.now() - started) / n) * 1000;
    rows.push({ name: `serialize a ${kb} KB context (RemoteExecutionContext JSON)`, value: micros, unit: "µs", baseline: "JSON.stringify of the same context", ratio: micros / jsonMicros(context, n) });
  }

  // Reading a job's context back (plugbox JSON, revived into SDK values), as the job runner does for
  // a plug-in's job (a posting step's job keeps its body serialized and reads nothing back).
  const stored = encode(contextOf(1024));
  const decodeMicros = perCall(() => decode(stored), 20_000);
  rows.push({ name: `read back a plug-in job's context (plugbox JSON, ${stored.length} bytes)`, value: decodeMicros, unit: "µs", baseline: "JSON.parse of the same text", ratio: decodeMicros / perCall(() => JSON.parse(stored), 20_000) });

  // The broker runs in a process of its own, as Service Bus would be elsewhere: its work does not
  // share this process's thread with the relay's (nor with the baseline's sends).
  const broker = await startBrokerProcess();
  try {
    // Baseline: the SDK sending the same bodies, as many at a time as the job runner posts.
    const relay = new Relay({ endpoints: [{ id: ENDPOINT, name: "e", contract: "Queue", path: "direct", connectionString: broker.connectionString }], organizationUrl: "https://bench.example" });
    const prepared = relay.prepare(relay.endpoint("e"), contextOf(1024));
    const wireBody = textBody(prepared.body);
    await relay.close();
    const sdkMessage = { body: wireBody, contentType: prepared.contentType, applicationProperties: prepared.properties };
    const { oneByOne: direct, batched: directBatched } = await sdkSendRates(broker.connectionString, sdkMessage, count);
    // The same sends to a broker that keeps messages in a data directory (an fsync'd commit per transfer).
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "plugbox-bench-broker-"));
    const durableBroker = await startBrokerProcess(["--data-dir", dataDir]);
    let durable: { oneByOne: number; batched: number };
    try {
      durable = await sdkSendRates(durableBroker.connectionString, sdkMessage, count);
    } finally {
      await durableBroker.close();
      rmSync(dataDir, { recursive: true, force: true });
    }

    // plugbox: Create requests whose async posting step becomes a system job each; then the jobs run.
    const host = await createHost({
      manifest: {
        serviceEndpoints: [{ id: ENDPOINT, name: "e", contract: "Queue", path: "relayed", connectionString: broker.connectionString }],
        steps: [{ serviceEndpoint: "e", message: "Create", entity: "account", stage: 40, mode: "async", asyncAutoDelete: true }],
        settings: { traceLogSetting: "Off" },
      },
      runJobs: false,
      jobs: { concurrency: 64 },
      runtimeOptions: { workers: 1, prewarmIsolates: 0 },
    });
    for (let i = 0; i < count; i++) await host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: `Account ${i}` }) } });
    let started = performance.now();
    const outcomes = await host.runJobs();
    const relayed = outcomes.filter((o) => o.outcome === "succeeded").length / ((performance.now() - started) / 1000);
    await host.close();

    // The same, with the jobs run by two processes sharing a store file, each round against a broker
    // of its own. Jobs are queued once; each round runs a copy of that store. The median of the
    // rounds is reported: on a small machine one round can be a quarter off the next.
    const dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-bench-relay-"));
    const up: number[] = [];
    const withStart: number[] = [];
    const many = count * 4;
    try {
      const queuedDb = path.join(dir, "queued.db");
      const manifestFor = (connectionString: string) => ({
        serviceEndpoints: [{ id: ENDPOINT, name: "e", contract: "Queue", path: "relayed", connectionString }],
        steps: [{ serviceEndpoint: "e", message: "Create", entity: "account", stage: 40, mode: "async", asyncAutoDelete: true }],
        settings: { traceLogSetting: "Off" },
      });
      const queued = await createHost({ manifest: manifestFor(broker.connectionString), db: queuedDb, runJobs: false, runtimeOptions: { workers: 1, prewarmIsolates: 0, startOnFirstExecution: true } });
      for (let i = 0; i < many; i++) await queued.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: `Account ${i}` }) } });
      await queued.close();
      for (let round = 0; round < PROCESS_ROUNDS; round++) {
        const db = path.join(dir, `round-${round}.db`);
        copyFileSync(queuedDb, db);
        const freshBroker = await startBrokerProcess();
        try {
          started = performance.now();
          const result = await runJobsInProcesses({ manifest: manifestFor(freshBroker.connectionString), db, processes: 2, jobs: { concurrency: 64 } });
          const succeeded = result.outcomes.filter((o) => o.outcome === "succeeded").length;
          withStart.push(succeeded / ((performance.now() - started) / 1000));
          up.push(succeeded / (result.runningMs / 1000));
        } finally {
          await freshBroker.close();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const relayedByTwo = median(up);
    const relayedByTwoWithStart = median(withStart);

    rows.push({ name: "SDK sends of the same bodies, 64 at a time", value: direct, unit: "msg/s", baseline: "itself", ratio: 1 });
    rows.push({ name: "SDK sends of the same bodies in batches of 100", value: directBatched, unit: "msg/s", baseline: "itself", ratio: 1 });
    rows.push({ name: "SDK sends, 64 at a time, to a broker with --data-dir (each answered after an fsync'd commit)", value: durable.oneByOne, unit: "msg/s", baseline: "SDK sends, 64 at a time (memory only)", ratio: durable.oneByOne / direct });
    rows.push({ name: "SDK sends in batches of 100 to a broker with --data-dir", value: durable.batched, unit: "msg/s", baseline: "SDK sends in batches of 100 (memory only)", ratio: durable.batched / directBatched });
    rows.push({ name: "contexts relayed from async steps (one system job each, 64 at a time)", value: relayed, unit: "ctx/s", baseline: "SDK sends, 64 at a time", ratio: relayed / direct, goal: "≥ 0.8x" });
    rows.push({ name: `… ${many.toLocaleString("en-US")} jobs run by 2 processes sharing a store file, once they are up (median of ${PROCESS_ROUNDS} rounds: ${up.map((v) => Math.round(v).toLocaleString("en-US")).join(", ")})`, value: relayedByTwo, unit: "ctx/s", baseline: "SDK sends, 64 at a time", ratio: relayedByTwo / direct, goal: "> 5,000/s" });
    rows.push({ name: `… the same, counting the start of the 2 processes (median of ${PROCESS_ROUNDS} rounds)`, value: relayedByTwoWithStart, unit: "ctx/s", baseline: "SDK sends, 64 at a time", ratio: relayedByTwoWithStart / direct });
  } finally {
    await broker.close();
  }
  return rows;
}

/** Messages per second the SDK sends to a broker: one message per send, 64 sends at a time; and in batches of 100. */
async function sdkSendRates(connectionString: string, message: { body: unknown; contentType?: string; applicationProperties?: Record<string, string | number | boolean | Date | null> }, count: number): Promise<{ oneByOne: number; batched: number }> {
  const client = new ServiceBusClient(connectionString);
  const sender = client.createSender("direct");
  await sender.sendMessages(message);
  let started = performance.now();
  for (let sent = 0; sent < count; sent += 64) {
    await Promise.all(Array.from({ length: Math.min(64, count - sent) }, (_, i) => sender.sendMessages({ ...message, messageId: `${sent + i}` })));
  }
  const oneByOne = count / ((performance.now() - started) / 1000);
  started = performance.now();
  for (let sent = 0; sent < count; sent += 100) {
    const batch = await sender.createMessageBatch();
    for (let i = 0; i < Math.min(100, count - sent); i++) batch.tryAddMessage(message);
    await sender.sendMessages(batch);
  }
  const batched = count / ((performance.now() - started) / 1000);
  await sender.close();
  await client.close();
  return { oneByOne, batched };
}

async function startBrokerProcess(extraArgs: string[] = []): Promise<{ connectionString: string; close(): Promise<void> }> {
  const cli = fileURLToPath(new URL("../host/cli/main.js", import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [cli, "broker", "--port", "0", "--auto-create", ...extraArgs], { stdio: ["ignore", "pipe", "inherit"] });
  let output = "";
  const connectionString = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the broker exited with ${code} before it was ready`)));
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const ready = /ready: (\S+)/.exec(output);
      if (ready) resolve(ready[1]!);
    });
  });
  return {
    connectionString,
    async close() {
      child.kill("SIGTERM");
      if (child.exitCode === null) await once(child, "exit");
    },
  };
}

function perCall(f: () => unknown, n: number): number {
  for (let i = 0; i < n / 10; i++) f();
  const started = performance.now();
  for (let i = 0; i < n; i++) f();
  return ((performance.now() - started) / n) * 1000;
}

function jsonMicros(context: Record<string, unknown>, n: number): number {
  const started = performance.now();
  for (let i = 0; i < n; i++) JSON.stringify(context);
  return ((performance.now() - started) / n) * 1000;
}
