/**
 * A job whose plug-in's own store call fails because of the store (here: another host holds the
 * record past busyTimeoutMs, as hosts sharing one PostgreSQL do): the fault is not the plug-in's, so
 * the job is retried with back-off, like one whose sandbox worker crashed, and succeeds once the
 * store answers. Before, it failed for good (3, 31) at the first attempt.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHost } from "../../../dist/host/index.js";
import { ManualClock } from "../../../dist/host/testing/index.js";
import { Entity } from "../../../dist/sdk/index.js";
import { testDb } from "../../helpers/stores.js";
import { buildPlugins, fastRuntime, rows, step } from "../../fixtures/pipeline/support.js";

let plugins: Awaited<ReturnType<typeof buildPlugins>>;

beforeAll(async () => {
  plugins = await buildPlugins("plugbox-jobs-store-faults-");
});

afterAll(() => plugins?.cleanup());

describe("a plug-in's store call refused by a store fault", () => {
  it("STORE_BUSY (another host holds the record past busyTimeoutMs): the job is retried, not failed, and succeeds once the record is free", async () => {
    const db = await testDb("postgres");
    const clock = new ManualClock();
    const BACKOFF = 1_000;
    const host = await createHost({
      manifest: { bundles: { p: { path: plugins.bundle } }, steps: [step("AsyncProbe", "Create", "probed", 40, { mode: "async" })] },
      db,
      runJobs: false,
      runtimeOptions: fastRuntime,
      busyTimeoutMs: 200,
      clock,
      jobs: { backoffBaseMs: BACKOFF },
    });
    try {
      const { response, journal } = await host.execute({ requestName: "Create", parameters: { Target: new Entity("probed", undefined, { name: "P" }) } });
      const [jobId] = journal.jobs;
      const holder = new pg.Client({ connectionString: db });
      await holder.connect();
      try {
        await holder.query("BEGIN");
        await holder.query("SELECT 1 FROM records WHERE entity = 'probed' AND id = $1 FOR UPDATE", [response.results.id]);
        expect(await host.runJobs()).toEqual([{ id: jobId, outcome: "retrying", message: expect.stringContaining("another host held the rows") }]);
        expect(await host.getJob(jobId!)).toMatchObject({ stateCode: 0, statusCode: 10, retryCount: 1 });
      } finally {
        await holder.query("ROLLBACK");
        await holder.end();
      }
      expect(await host.runJobs()).toEqual([]); // its back-off holds
      await clock.advance(BACKOFF);
      expect(await host.runJobs()).toEqual([{ id: jobId, outcome: "succeeded" }]);
      expect((await rows(host, "jobrun")).map((r) => r.attributes.operationid)).toEqual([jobId]);
    } finally {
      await host.close();
    }
  });
});
