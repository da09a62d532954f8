/**
 * The Azure SDK for JS's published samples run in an opt-in conformance script (they cannot be
 * committed here; docs/broker.md): `npm run conformance -- <samples-dir>`. What `npm test` checks is
 * the manifest the script reads and that the script refuses, clearly, a folder that does not hold
 * the samples.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repo } from "../../helpers/cli.js";

interface Manifest {
  repository: string;
  samples: Array<{ file: string; source: string; commit: string; runs: boolean }>;
}
const manifest = JSON.parse(readFileSync(path.join(repo, "test/fixtures/azure-sdk-samples.json"), "utf8")) as Manifest;
const script = path.join(repo, "scripts/azure-sdk-samples.mjs");
const empty = mkdtempSync(path.join(os.tmpdir(), "plugbox-samples-"));
afterAll(() => rmSync(empty, { recursive: true, force: true }));

function runScript(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [script, ...args], { cwd: repo, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe("the Azure SDK samples' conformance script", () => {
  it("the manifest names, for each sample, its file in Azure/azure-sdk-for-js and the commit it was read at", () => {
    expect(manifest.repository).toBe("Azure/azure-sdk-for-js");
    for (const sample of manifest.samples) {
      expect(sample.source).toMatch(/^sdk\/(servicebus\/service-bus\/samples\/v7|eventhub\/event-hubs\/samples\/v5)\/javascript\//);
      expect(sample.commit).toMatch(/^[0-9a-f]{40}$/);
      expect(sample.source.endsWith(sample.file.replace(/^(servicebus|eventhubs)\//, ""))).toBe(true);
    }
  });

  it("--urls prints each sample's raw URL at its recorded commit and where it goes in the folder", async () => {
    const result = await runScript(["--urls"]);
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split("\n")).toEqual(manifest.samples.map((s) => `https://raw.githubusercontent.com/Azure/azure-sdk-for-js/${s.commit}/${s.source} ${s.file}`));
  });

  it("fails with exit code 2 and says how to fetch the samples when the folder does not exist", async () => {
    const result = await runScript([path.join(empty, "nowhere")]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("is not a directory");
    expect(result.stderr).toContain("docs/broker.md");
  });

  it("fails with exit code 2 and names every missing sample when the folder lacks them", async () => {
    const result = await runScript([empty]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`lacks ${manifest.samples.length} of the ${manifest.samples.length} samples`);
    for (const sample of manifest.samples) expect(result.stderr).toContain(sample.file);
  });

  it("fails with a usage line when no folder is given", async () => {
    const result = await runScript([]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("usage: npm run conformance -- <samples-dir>");
  });
});
