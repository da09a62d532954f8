/**
 * Pipeline benchmark: Create of an account with one synchronous stage-20 plug-in, through the
 * whole pipeline over an in-memory store, with the plug-in sandboxed (reuse and fresh isolation)
 * and called directly in Node, against a bare store insert; 1 and 4 concurrent callers.
 */
import type { BenchRow } from "./row.js";
import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createSandboxRuntime, type ExecutionReport, type ExecutionRequest, type SandboxRuntime, type SandboxServices } from "../runtime/index.js";
import { createHost, type PlugboxHost } from "../host/host.js";
import { Store } from "../host/store/store.js";
import { Entity } from "../sdk/model.js";

export type { BenchRow };

/** A stage-20 plug-in that numbers an account: the plug-in of the pipeline and test-host benchmarks. */
export const PLUGIN_SOURCE = `
class Numbering {
  execute(sp) {
    const ctx = sp.getService("IPluginExecutionContext");
    const target = ctx.inputParameters.Target;
    target.attributes.accountnumber = "ACC-" + String(target.attributes.name).slice(0, 3).toUpperCase();
  }
}
module.exports = { Numbering };
`;

/** The same plug-in, as a Node class: what "called directly" runs. */
class Numbering {
  execute(sp: { getService(name: string): unknown }): void {
    const ctx = sp.getService("IPluginExecutionContext") as { inputParameters: { Target: Entity } };
    const target = ctx.inputParameters.Target;
    target.attributes.accountnumber = "ACC-" + String(target.attributes.name).slice(0, 3).toUpperCase();
  }
}

/** A stand-in runtime that runs the plug-in class in this process, for the "direct" baseline. */
function directRuntime(): SandboxRuntime {
  return {
    ready: Promise.resolve(),
    execute: async (request: ExecutionRequest, _services?: SandboxServices): Promise<ExecutionReport> => {
      const context = request.context as Record<string, unknown> & { inputParameters: Record<string, unknown>; outputParameters: Record<string, unknown>; sharedVariables: Record<string, unknown> };
      new Numbering().execute({ getService: () => context });
      return {
        ok: true,
        changes: { inputParameters: context.inputParameters, outputParameters: context.outputParameters, sharedVariables: context.sharedVariables },
        trace: "",
        stats: { wallMs: 0, cpuMs: 0, heapUsedBytes: 0, hostCalls: 0, isolateReused: true },
        violations: [],
        webCalls: [],
      };
    },
    close: async () => undefined,
  } as unknown as SandboxRuntime;
}

function manifest(bundlePath: string, isolation: "fresh" | "reuse") {
  return {
    bundles: { b: { path: bundlePath } },
    steps: [{ name: "number", bundle: "b", type: "Numbering", message: "Create", entity: "account", stage: 20, isolation }],
    settings: { traceLogSetting: "Off" },
  };
}

/**
 * Runs `count` requests from `callers` concurrent callers and returns the rate. A fixed count,
 * not a fixed time, so every variant writes the same number of rows into a table of the same size.
 */
async function requestsPerSecond(run: (i: number) => Promise<unknown>, callers: number, count: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next < count) await run(next++);
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

async function createRate(host: PlugboxHost, callers: number, count: number): Promise<number> {
  const make = (i: number) => host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: `Account ${i}` }) } });
  await requestsPerSecond(make, callers, Math.ceil(count / 10));
  return requestsPerSecond(make, callers, count);
}

export async function runPipelineBench(options: { count?: number } = {}): Promise<BenchRow[]> {
  const count = options.count ?? 10_000;
  const dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-bench-"));
  const bundlePath = path.join(dir, "numbering.js");
  writeFileSync(bundlePath, PLUGIN_SOURCE);
  const rows: BenchRow[] = [];

  // Baseline: a bare insert of the row a Create writes (its columns and the platform's), one transaction each.
  const store = Store.open();
  let n = 0;
  const user = { $type: "EntityReference", logicalName: "systemuser", id: "00000000-0000-0000-0000-000000000001", name: null };
  const bare = async () => {
    const release = await store.acquire();
    const tx = store.begin();
    const id = randomUUID(); // as a Create makes it: random ids, not appends to the index
    n++;
    const now = { $type: "DateTime", value: new Date().toISOString() };
    store.insertRecord("account", id, {
      name: `Account ${n}`,
      accountnumber: "ACC-ACC",
      accountid: id,
      createdon: now,
      modifiedon: now,
      createdby: user,
      modifiedby: user,
      ownerid: user,
      statecode: { $type: "OptionSetValue", value: 0 },
      statuscode: { $type: "OptionSetValue", value: 1 },
    });
    tx.commit();
    release();
  };
  const bareRate: Record<number, number> = {};
  for (const callers of [1, 4]) {
    await requestsPerSecond(bare, callers, Math.ceil(count / 10));
    bareRate[callers] = await requestsPerSecond(bare, callers, count);
  }
  store.close();

  const runtime = createSandboxRuntime({ workers: 2, prewarmIsolates: 4 });
  await runtime.ready;
  try {
    const direct = await createHost({ manifest: manifest(bundlePath, "reuse"), runtime: directRuntime(), runJobs: false });
    const directRate: Record<number, number> = {};
    for (const callers of [1, 4]) directRate[callers] = await createRate(direct, callers, count);
    await direct.close();
    for (const callers of [1, 4]) {
      rows.push({ name: `bare store insert, ${callers} caller(s)`, value: bareRate[callers]!, unit: "req/s", baseline: "itself", ratio: 1 });
      rows.push({ name: `pipeline, plug-in called directly, ${callers} caller(s)`, value: directRate[callers]!, unit: "req/s", baseline: "bare insert", ratio: bareRate[callers]! / directRate[callers]! });
    }
    for (const isolation of ["reuse", "fresh"] as const) {
      const host = await createHost({ manifest: manifest(bundlePath, isolation), runtime, runJobs: false });
      for (const callers of [1, 4]) {
        const rate = await createRate(host, callers, isolation === "fresh" ? Math.ceil(count / 25) : count);
        rows.push({ name: `pipeline, sandboxed plug-in (${isolation}), ${callers} caller(s)`, value: rate, unit: "req/s", baseline: "direct pipeline", ratio: directRate[callers]! / rate });
      }
      await host.close();
    }
  } finally {
    await runtime.close();
  }
  return rows;
}
