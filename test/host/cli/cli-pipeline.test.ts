import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plugbox, repo } from "../../helpers/cli.js";

let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-cli-pipeline-"));
  cpSync(path.join(repo, "samples/pipeline"), dir, { recursive: true, filter: (src) => !/\.db|bundle\.js$/.test(src) });
  // The sample imports plugbox/sdk; build it from inside the repo, then point the manifest at the bundle.
  const built = await plugbox(["build", "samples/pipeline/plugins.ts", "-o", path.join(dir, "accounts.bundle.js")], repo);
  expect(built.code, built.stderr).toBe(0);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("plugbox exec, jobs and data", () => {
  it("exec: runs a Create through the pipeline, prints the journal, and leaves the async step's job in the store", async () => {
    const db = path.join(dir, "walkthrough.db");
    const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--db", db], dir);
    expect(exec.code, exec.stderr).toBe(0);
    expect(exec.stdout).toMatch(/ok: Create of account [0-9a-f-]{36} \(depth 1\)/);
    expect(exec.stdout).toContain("stage 20 sync: Number new accounts — ok");
    expect(exec.stdout).toMatch(/\| numbered Contoso as ACC-CON-/);
    const jobId = /queued system job ([0-9a-f-]{36})/.exec(exec.stdout)?.[1];
    expect(jobId).toBeDefined();

    const list = await plugbox(["jobs", "list", "--db", db], dir);
    expect(list.stdout).toContain(`${jobId}  #1  Ready (Waiting For Resources)`);

    const show = await plugbox(["jobs", "show", jobId!, "--db", db], dir);
    const shown = JSON.parse(show.stdout) as { context: { operationId: string; mode: number; stage: number } };
    expect(shown.context).toMatchObject({ operationId: jobId, mode: 1, stage: 40 });

    const run = await plugbox(["jobs", "run", "--manifest", "plugbox.json", "--db", db], dir);
    expect(run.stdout).toContain(`job ${jobId}: succeeded`);
    expect((await plugbox(["jobs", "list", "--db", db], dir)).stdout).toContain("Completed (Succeeded)");

    const exported = await plugbox(["data", "export", "--db", db, "--entity", "task"], dir);
    const tasks = JSON.parse(exported.stdout) as { task: Array<{ attributes: { subject: string } }> };
    expect(tasks.task[0]!.attributes.subject).toMatch(/^Welcome Contoso \(ACC-CON-/);
  });

  it("exec --json: prints one object with the response and the journal", async () => {
    const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--json", "--run-jobs"], dir);
    expect(exec.code, exec.stderr).toBe(0);
    const out = JSON.parse(exec.stdout) as { ok: boolean; response: { results: { id: string } }; journal: { steps: unknown[]; jobs: string[] }; jobs: Array<{ outcome: string }> };
    expect(out.ok).toBe(true);
    expect(out.response.results.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(out.journal.steps).toHaveLength(1);
    expect(out.jobs).toEqual([expect.objectContaining({ outcome: "succeeded" })]);
  });

  it("exec: a step that fails rolls the request back and exits 1 with the plug-in's message", async () => {
    writeFileSync(path.join(dir, "nameless.json"), JSON.stringify({ requestName: "Create", parameters: { Target: { $type: "Entity", logicalName: "account", attributes: {} } } }));
    const db = path.join(dir, "rollback.db");
    const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "nameless.json", "--db", db], dir);
    expect(exec.code).toBe(1);
    expect(exec.stderr).toContain("error [PIPELINE_STEP_FAILED]");
    expect(exec.stderr).toContain("An account needs a name.");
    const exported = await plugbox(["data", "export", "--db", db], dir);
    expect(JSON.parse(exported.stdout)).toEqual({});
  });

  it("exec: bad input exits 2 naming the problem", async () => {
    writeFileSync(path.join(dir, "broken.json"), "{ not json");
    writeFileSync(path.join(dir, "not-a-request.json"), JSON.stringify({ parameters: {} }));
    writeFileSync(path.join(dir, "bad-manifest.json"), JSON.stringify({ steps: [{ bundle: "x", type: "T", message: "Create", stage: 20, mode: "async" }], bundles: { x: "x.js" } }));
    const cases: Array<[string[], RegExp]> = [
      [["exec", "--manifest", "plugbox.json", "--request", "broken.json"], /INPUT_INVALID_JSON.*broken\.json/],
      [["exec", "--manifest", "plugbox.json", "--request", "missing.json"], /INPUT_NOT_FOUND.*missing\.json/],
      [["exec", "--manifest", "plugbox.json", "--request", "not-a-request.json"], /PIPELINE_INVALID_REQUEST.*requestName/],
      [["exec", "--manifest", "nowhere.json", "--request", "create-account.json"], /MANIFEST_NOT_FOUND/],
      [["exec", "--manifest", "bad-manifest.json", "--request", "create-account.json"], /MANIFEST_INVALID.*steps\[0\]\.mode.*stage 40/],
    ];
    for (const [args, pattern] of cases) {
      const run = await plugbox(args, dir);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr).toMatch(pattern);
    }
  });

  it("jobs: retry and cancel change a job's state, and an unknown id is JOB_NOT_FOUND for show, retry and cancel", async () => {
    const db = path.join(dir, "jobs.db");
    const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--db", db], dir);
    const jobId = /queued system job ([0-9a-f-]{36})/.exec(exec.stdout)![1]!;
    const cancel = await plugbox(["jobs", "cancel", jobId, "--db", db], dir);
    expect(cancel.stdout).toContain("Completed (Canceled)");
    const retry = await plugbox(["jobs", "retry", jobId, "--db", db], dir);
    expect(retry.stdout).toContain("Ready (Waiting For Resources)");
    const unknown = await plugbox(["jobs", "cancel", "00000000-0000-0000-0000-000000000099", "--db", db], dir);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("JOB_NOT_FOUND");
    const notShown = await plugbox(["jobs", "show", "00000000-0000-0000-0000-000000000099", "--db", db], dir);
    expect(notShown.code).toBe(2);
    expect(notShown.stderr).toContain("[JOB_NOT_FOUND]: no system job has the id 00000000-0000-0000-0000-000000000099");
  });

  it("data: imports records checked against the manifest's table schema, and refuses bad ones", async () => {
    const db = path.join(dir, "data.db");
    writeFileSync(path.join(dir, "accounts.json"), JSON.stringify({ account: [{ id: "6d81597f-0f9f-e711-8122-000d3aa2331c", attributes: { name: "Fabrikam", revenue: { $type: "Money", value: 10 } } }] }));
    const imported = await plugbox(["data", "import", "accounts.json", "--db", db, "--manifest", "plugbox.json"], dir);
    expect(imported.stdout).toContain("imported 1 record(s)");
    const exported = JSON.parse((await plugbox(["data", "export", "--db", db], dir)).stdout) as { account: Array<{ id: string; attributes: Record<string, unknown> }> };
    expect(exported.account[0]).toMatchObject({ id: "6d81597f-0f9f-e711-8122-000d3aa2331c", attributes: { name: "Fabrikam", revenue: { $type: "Money", value: 10 } } });

    writeFileSync(path.join(dir, "unknown-column.json"), JSON.stringify({ account: [{ id: "6d81597f-0f9f-e711-8122-000d3aa2331d", attributes: { fax: "1" } }] }));
    writeFileSync(path.join(dir, "bad-id.json"), JSON.stringify({ account: [{ id: "42", attributes: {} }] }));
    const unknown = await plugbox(["data", "import", "unknown-column.json", "--db", db, "--manifest", "plugbox.json"], dir);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/account has no column fax; declare it in the manifest under tables\.account\.columns/);
    const badId = await plugbox(["data", "import", "bad-id.json", "--db", db], dir);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toMatch(/account\[0\]\.id must be a Guid/);
  });

  it("run --data: serves the plug-in the organization service over a store seeded from the file", async () => {
    writeFileSync(path.join(dir, "seed.json"), JSON.stringify({ account: [{ id: "6d81597f-0f9f-e711-8122-000d3aa2331c", attributes: { name: "Fabrikam" } }] }));
    const plugin = path.join(dir, "reader.js");
    writeFileSync(
      plugin,
      `module.exports = { Reader: class { async execute(sp) {
         const ctx = sp.getService("IPluginExecutionContext");
         const org = sp.getService("IOrganizationServiceFactory").createOrganizationService(null);
         const account = await org.retrieve("account", "6d81597f-0f9f-e711-8122-000d3aa2331c", { allColumns: true });
         ctx.outputParameters.name = account.attributes.name;
       } } };`,
    );
    const run = await plugbox(["run", plugin, "--type", "Reader", "--data", "seed.json", "--json"], dir);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).changes.outputParameters).toMatchObject({ name: "Fabrikam" });
  });
});
