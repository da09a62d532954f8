/**
 * The documentation's TypeScript, pasted as a reader would paste it. A fence tagged ```ts check is
 * type-checked against the built package; one tagged ```ts test is type-checked and then run with
 * Node, and must exit 0 with nothing on stderr. They run in a folder of their own where `plugbox`
 * resolves to this checkout (as it does in a project that depends on it), with `samples/` copied
 * and built as the quick start builds it. The request files docs/cli.md shows run through
 * `plugbox exec` there too, with the data file it shows.
 */
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { transform } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plugbox, repo } from "../helpers/cli.js";
import { documentationFiles, fences, readDoc } from "../helpers/markdown.js";

interface Snippet {
  /** "docs/api.md:25" */
  where: string;
  /** The module's file name in the snippets' folder. */
  file: string;
  body: string;
  run: boolean;
}

const snippets: Snippet[] = documentationFiles().flatMap((doc) =>
  fences(readDoc(doc))
    .filter((fence) => fence.info === "ts test" || fence.info === "ts check")
    .map((fence) => ({
      where: `${doc}:${fence.line}`,
      file: `${doc.replace(/[^A-Za-z0-9]+/g, "-")}-${fence.line}.mts`,
      body: fence.body,
      run: fence.info === "ts test",
    })),
);

/** The JSON fences of docs/cli.md between a heading and the next one. */
function cliSection(heading: string): string[] {
  const text = readDoc("docs/cli.md");
  const lines = text.split("\n");
  const start = lines.indexOf(heading);
  const end = lines.findIndex((line, i) => i > start && /^#{1,3} /.test(line));
  return fences(text)
    .filter((fence) => fence.info === "json" && fence.line > start && fence.line <= end)
    .map((fence) => fence.body);
}

const requestFiles = cliSection("### The request file");
const dataFiles = cliSection("### Data files");

function node(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-doc-snippets-"));
  mkdirSync(path.join(dir, "node_modules"));
  symlinkSync(repo, path.join(dir, "node_modules", "plugbox"), "dir");
  for (const dependency of ["@types", "@azure", "vitest"]) symlinkSync(path.join(repo, "node_modules", dependency), path.join(dir, "node_modules", dependency), "dir");
  cpSync(path.join(repo, "samples"), path.join(dir, "samples"), { recursive: true, filter: (source) => !source.endsWith(".bundle.js") && !source.endsWith(".db") });
  for (const [entry, outfile] of [
    ["samples/hello/plugin.ts", "hello.bundle.js"],
    ["samples/pipeline/plugins.ts", "samples/pipeline/accounts.bundle.js"],
  ] as const) {
    const built = await plugbox(["build", entry, "-o", outfile], dir);
    expect(built.code, built.stderr).toBe(0);
  }
  writeFileSync(
    path.join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, skipLibCheck: true, verbatimModuleSyntax: true, lib: ["ES2022"], types: ["node"] },
      files: snippets.map((s) => s.file),
    }),
  );
  for (const snippet of snippets) {
    writeFileSync(path.join(dir, snippet.file), `${snippet.body}\n`);
    if (snippet.run) {
      const js = await transform(snippet.body, { loader: "ts", format: "esm", target: "node20", sourcefile: snippet.where });
      writeFileSync(path.join(dir, snippet.file.replace(/\.mts$/, ".mjs")), js.code);
    }
  }
}, 180_000);
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the documentation's TypeScript snippets, pasted into a project", () => {
  it("there are snippets to check: the README's plug-in and test, the API's createHost, createSandboxRuntime and startBroker", () => {
    expect(snippets.filter((s) => s.where.startsWith("README.md")).map((s) => s.run)).toEqual([false, true]);
    const api = snippets.filter((s) => s.where.startsWith("docs/api.md")).map((s) => s.body);
    expect(api).toHaveLength(3);
    for (const name of ["createHost", "createSandboxRuntime", "startBroker"]) expect(api.some((body) => body.includes(`${name}(`))).toBe(true);
  });

  it("every snippet type-checks under strict TypeScript against the built package", async () => {
    const tsc = await node([path.join(repo, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], dir);
    const located = tsc.stdout.replace(/^([\w.-]+\.mts)\((\d+),\d+\)/gm, (_, file: string, line: string) => `${snippets.find((s) => s.file === file)?.where ?? file}, line ${line} of the snippet`);
    expect(located, "tsc's errors, at the snippet's fence and the line within it").toBe("");
    expect(tsc.code).toBe(0);
  }, 180_000);

  it.each(snippets.filter((s) => s.run).map((s) => [s.where, s] as const))("%s runs and exits 0 with nothing on stderr", async (_where, snippet) => {
    const run = await node([snippet.file.replace(/\.mts$/, ".mjs")], dir);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
  }, 180_000);
});

describe("the request files docs/cli.md shows, run with plugbox exec", () => {
  it("shows one data file and requests of several messages", () => {
    expect(dataFiles).toHaveLength(1);
    expect(requestFiles.map((text) => (JSON.parse(text) as { requestName: string }).requestName)).toEqual(["Create", "Retrieve", "Update", "RetrieveMultiple", "RetrieveMultiple", "WhoAmI"]);
  });

  it.each(requestFiles.map((text, i) => [`${i + 1}: ${(JSON.parse(text) as { requestName: string }).requestName}`, text] as const))(
    "request %s succeeds against samples/pipeline's manifest with the data file loaded",
    async (name, text) => {
      const pipeline = path.join(dir, "samples/pipeline");
      writeFileSync(path.join(pipeline, "data.json"), dataFiles[0]!);
      const file = `request-${name.split(":")[0]}.json`;
      writeFileSync(path.join(pipeline, file), text);
      const exec = await plugbox(["exec", "--manifest", "plugbox.json", "--request", file, "--data", "data.json", "--run-jobs", "--json"], pipeline);
      expect(exec.stderr).toBe("");
      expect(exec.code).toBe(0);
      const result = JSON.parse(exec.stdout) as { ok: boolean; response: { responseName: string; results: Record<string, unknown> } };
      expect(result.ok).toBe(true);
      expect(result.response.responseName).toBe((JSON.parse(text) as { requestName: string }).requestName);
      if (result.response.responseName === "Retrieve") expect(result.response.results.Entity).toMatchObject({ attributes: { name: "Contoso" } });
      if (result.response.responseName === "RetrieveMultiple") {
        expect((result.response.results.EntityCollection as { entities: unknown[] }).entities).toHaveLength(1);
      }
    },
    120_000,
  );
});
