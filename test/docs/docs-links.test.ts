import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repo } from "../helpers/cli.js";
import { anchors, codeSpans, documentationFiles, fences, links, readDoc } from "../helpers/markdown.js";

const files = documentationFiles();

/** Where a relative link points, as a path from the repository's root, and its anchor. */
function resolve(from: string, target: string): { file: string; anchor: string | undefined } {
  const [pathPart, anchor] = target.split("#", 2) as [string, string | undefined];
  const file = pathPart === "" ? from : path.posix.normalize(path.posix.join(path.posix.dirname(from), decodeURIComponent(pathPart)));
  return { file, anchor };
}

describe("the documentation's links", () => {
  it("covers the README, bench/README.md and every page in docs/", () => {
    expect(files).toContain("README.md");
    expect(files).toContain("bench/README.md");
    expect(files).toEqual(expect.arrayContaining(["docs/cli.md", "docs/sandbox.md", "docs/pipeline.md", "docs/api.md", "docs/testing.md", "docs/architecture.md"]));
  });

  it.each(files)("every relative link in %s points at a file that exists, and at a heading of it", (file) => {
    const broken: string[] = [];
    for (const { target, line } of links(readDoc(file))) {
      if (/^[a-z]+:/i.test(target)) continue;
      const { file: linked, anchor } = resolve(file, target);
      if (!existsSync(path.join(repo, linked))) broken.push(`${file}:${line}: ${target} (no file ${linked})`);
      else if (anchor !== undefined && linked.endsWith(".md") && !anchors(readDoc(linked)).has(anchor)) {
        broken.push(`${file}:${line}: ${target} (${linked} has no heading #${anchor}; it has ${[...anchors(readDoc(linked))].map((a) => `#${a}`).join(", ")})`);
      }
    }
    expect(broken).toEqual([]);
  });

  // A path is the repository's, or (in a sample's README) the sample folder's.
  it.each(files)("every repository path %s names in prose exists", (file) => {
    const missing = codeSpans(readDoc(file))
      .filter(({ code }) => /^(sdk|runtime|host|test|bench|samples|scripts|bindings|docs)\/[\w./-]*$/.test(code) && !code.includes("…"))
      .filter(({ code }) => !existsSync(path.join(repo, code)) && !(file.startsWith("samples/") && existsSync(path.join(repo, path.dirname(file), code))))
      .map(({ code, line }) => `${file}:${line}: ${code}`);
    expect(missing).toEqual([]);
  });

  it.each(files)("every command in %s runs the CLI as `npx plugbox`, which works from a checkout, never as a bare `plugbox`", (file) => {
    const bare: string[] = [];
    for (const fence of fences(readDoc(file)).filter((f) => f.info === "sh")) {
      fence.body.split("\n").forEach((line, i) => {
        if (/^\s*(\$\s+)?plugbox\s/.test(line)) bare.push(`${file}:${fence.line + 1 + i}: ${line.trim()}`);
      });
    }
    expect(bare).toEqual([]);
  });
});

describe("docs/architecture.md", () => {
  it("lists in its layout only folders and files that exist", () => {
    const text = readDoc("docs/architecture.md");
    const layout = fences(text).find((fence) => fence.line > text.split("\n").indexOf("## Layout"))!;
    let folder = "";
    const missing: string[] = [];
    const listed: string[] = [];
    for (const line of layout.body.split("\n")) {
      const entry = /^( *)([^\s,]+(?:, [^\s,]+)*)/.exec(line);
      if (!entry) continue;
      const names = entry[2]!.split(", ");
      if (entry[1] === "") folder = names[0]!;
      for (const name of entry[1] === "" ? names : names.map((n) => `${folder}${n}`)) {
        listed.push(name);
        if (!existsSync(path.join(repo, name))) missing.push(name);
      }
    }
    expect(listed).toEqual(expect.arrayContaining(["sdk/", "runtime/", "host/", "host/cli/", "runtime/worker/"]));
    expect(missing).toEqual([]);
  });
});

describe("the README", () => {
  const readme = readDoc("README.md");

  it("starts with the two commands a newcomer runs, npm ci and npm test", () => {
    const first = fences(readme)[0]!;
    expect(first.info).toBe("sh");
    expect(first.body.split("\n").map((line) => line.split("#")[0]!.trim())).toEqual(["npm ci", "npm test"]);
    expect(readme.indexOf("```sh")).toBeLessThan(readme.indexOf("\n## "));
  });

  it("stays short: under 250 lines, the rest in docs/", () => {
    expect(readme.split("\n").length).toBeLessThan(250);
  });

  it("names the four supported Node.js majors", () => {
    expect(readme).toMatch(/Node\.js 20, 22, 24 or 26/);
  });
});
