/**
 * Hosts sharing one PostgreSQL store share its system jobs: a job queued by one host is taken at once
 * by an idle runner of another (announced with NOTIFY, not found at the next poll), and many runners
 * leasing at once run every job once (FOR UPDATE SKIP LOCKED), each job completed once in the store.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Entity } from "../../../dist/sdk/index.js";
import { buildPlugins, hostWith, outcomesOf, rows, step } from "../../fixtures/pipeline/support.js";
import { sql, testDb } from "../../helpers/stores.js";

let plugins: Awaited<ReturnType<typeof buildPlugins>>;
beforeAll(async () => {
  plugins = await buildPlugins();
});
afterAll(() => plugins?.cleanup());

const manifest = { steps: [step("AsyncProbe", "Create", "shared", 40, { mode: "async" })] };
/** Long enough that a runner that finds a job in time was woken, not polling. */
const AN_HOUR = 3_600_000;

describe("hosts sharing a PostgreSQL store", () => {
  it("a job one host queues is run at once by another host's idle runner, woken by the announcement (its poll is an hour away)", async () => {
    const db = await testDb("postgres");
    const runner = await hostWith(plugins.bundle, manifest, { db, runJobs: true, jobs: { pollMs: AN_HOUR } });
    const caller = await hostWith(plugins.bundle, manifest, { db, runJobs: false });
    try {
      // The runner's first round found nothing; from now on only an announcement can wake it within the hour.
      const ran = outcomesOf([runner], 1);
      const { journal } = await caller.execute({ requestName: "Create", parameters: { Target: new Entity("shared", undefined, { name: "over there" }) } });
      expect(await ran).toEqual([expect.objectContaining({ id: journal.jobs[0], outcome: "succeeded", host: 0 })]);
      expect((await rows(caller, "jobrun")).map((r) => r.attributes.operationid)).toEqual([journal.jobs[0]]);
    } finally {
      await Promise.all([runner.close(), caller.close()]);
    }
  });

  it("three runners leasing from one store run each of 45 jobs once, and each job is completed once", async () => {
    const db = await testDb("postgres");
    const runners = await Promise.all([0, 1, 2].map(() => hostWith(plugins.bundle, manifest, { db, runJobs: true, jobs: { pollMs: AN_HOUR, concurrency: 4 } })));
    const caller = await hostWith(plugins.bundle, manifest, { db, runJobs: false });
    try {
      const ran = outcomesOf(runners, 45);
      const ids: string[] = [];
      for (let i = 0; i < 45; i++) {
        const { journal } = await caller.execute({ requestName: "Create", parameters: { Target: new Entity("shared", undefined, { name: `record ${i}` }) } });
        ids.push(...journal.jobs);
      }
      const outcomes = await ran;
      expect(outcomes.map((o) => o.outcome)).toEqual(ids.map(() => "succeeded"));
      expect(outcomes.map((o) => o.id).sort()).toEqual([...ids].sort());
      // Every job's plug-in ran once: one jobrun record per job, none twice.
      expect((await rows(caller, "jobrun")).map((r) => r.attributes.operationid).sort()).toEqual([...ids].sort());
      const states = await sql<{ state_code: number; status_code: number; n: number }>(db, "SELECT state_code, status_code, count(*)::int AS n FROM system_jobs GROUP BY 1, 2");
      expect(states).toEqual([{ state_code: 3, status_code: 30, n: 45 }]);
    } finally {
      await Promise.all([caller.close(), ...runners.map((r) => r.close())]);
    }
  });
});
