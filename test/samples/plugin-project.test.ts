/**
 * samples/plugin-project: what a newcomer copies into an empty folder. Copied to a folder of its own,
 * given plugbox by `npm install` of this checkout (a link, as `npm install ../plugbox` makes), its
 * vitest suite passes with the harness and the matchers, its TypeScript checks, its captured context
 * replays, and a test file that leaves a host open fails naming the line that opened it.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bin, repo } from "../helpers/cli.js";

const sample = path.join(repo, "samples/plugin-project");
let project: string;

interface Ran {
  code: number;
  output: string;
}

/** Runs a command in the copied project, without the variables of the vitest running this file. */
function inProject(command: string, args: string[]): Promise<Ran> {
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("VITEST") && name !== "NODE_OPTIONS" && name !== "TEST" && name !== "FORCE_COLOR")), NO_COLOR: "1" };
  return new Promise((resolve) => {
    execFile(command, args, { cwd: project, env, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: `${stdout}\n${stderr}` });
    });
  });
}

const npm = (...args: string[]) => inProject("npm", args);
const vitest = (...args: string[]) => inProject(process.execPath, [path.join(project, "node_modules/vitest/vitest.mjs"), "run", ...args]);

beforeAll(async () => {
  project = mkdtempSync(path.join(os.tmpdir(), "plugbox-plugin-project-"));
  cpSync(sample, project, { recursive: true });
  // The sample names plugbox as ../.. (its place in this repository) and the registry's vitest,
  // TypeScript and Node types; tests reach no registry, so each comes from this checkout instead.
  const manifest = JSON.parse(readFileSync(path.join(project, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
  manifest.devDependencies = Object.fromEntries(
    Object.keys(manifest.devDependencies).map((name) => [name, `file:${name === "plugbox" ? repo : path.join(repo, "node_modules", name)}`]),
  );
  writeFileSync(path.join(project, "package.json"), JSON.stringify(manifest, null, 2));
  const install = await npm("install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts");
  if (install.code !== 0) throw new Error(`npm install in the copied sample failed:\n${install.output}`);
}, 240_000);
afterAll(() => rmSync(project, { recursive: true, force: true }));

describe("the plug-in project sample, copied into an empty folder", () => {
  it("passes its own vitest suite: the pipeline harness, the matchers, the builder and a captured context", { timeout: 240_000 }, async () => {
    const run = await vitest();
    expect(run.output).toMatch(/Tests\s+6 passed \(6\)/);
    expect(run.code, run.output).toBe(0);
  });

  it("type-checks: results and matchers need no casts", { timeout: 240_000 }, async () => {
    const check = await npm("run", "typecheck");
    expect(check.code, check.output).toBe(0);
  });

  it("replays the captured context with the plugbox command", { timeout: 120_000 }, async () => {
    const replay = await inProject(process.execPath, [bin, "replay", "contexts/account-created.jsonl", "--bundle", "src/plugins.ts", "--type", "FollowUpTask"]);
    expect(replay.code, replay.output).toBe(0);
    expect(replay.output).toContain("ok: FollowUpTask on Create of account (stage 40, async)");
    expect(replay.output).toMatch(/organization\.create\(\{"\$type":"Entity","logicalName":"task".*"subject":"Call Contoso \(ACC-CON-20261202\)"/);
  });

  it("fails a test file that leaves a test host open, naming the line that created it", { timeout: 240_000 }, async () => {
    writeFileSync(
      path.join(project, "test/forgets-to-close.test.ts"),
      ['import { it } from "vitest";', 'import { createTestHost } from "plugbox/testing";', "", 'it("opens a host and never closes it", async () => {', "  await createTestHost();", "});", ""].join("\n"),
    );
    try {
      const run = await vitest("test/forgets-to-close.test.ts");
      expect(run.code).not.toBe(0);
      expect(run.output).toContain("this test file left 1 thing(s) open");
      expect(run.output).toMatch(/test host \(with the host, sandbox runtime, sandbox worker it opened\), created at .*test\/forgets-to-close\.test\.ts:5:\d+/);
    } finally {
      rmSync(path.join(project, "test/forgets-to-close.test.ts"));
    }
  });
});
