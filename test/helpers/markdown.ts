import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { repo } from "./cli.js";

/** The documentation a newcomer reads: the README, docs/, the benchmarks' and the samples' READMEs (paths relative to the repository). */
export function documentationFiles(): string[] {
  const docs = readdirSync(path.join(repo, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`);
  const samples = readdirSync(path.join(repo, "samples")).map((s) => `samples/${s}/README.md`);
  return ["README.md", "bench/README.md", ...docs, ...samples].filter((f) => existsSync(path.join(repo, f))).sort();
}

export function readDoc(file: string): string {
  return readFileSync(path.join(repo, file), "utf8");
}

export interface Fence {
  /** The info string after the opening backticks: "ts test", "sh", "json". */
  info: string;
  body: string;
  /** 1-based line of the opening fence. */
  line: number;
}

/** The fenced code blocks of a Markdown text. */
export function fences(text: string): Fence[] {
  const out: Fence[] = [];
  const lines = text.split("\n");
  let open: { info: string; line: number; body: string[] } | undefined;
  lines.forEach((line, i) => {
    const fence = /^```(.*)$/.exec(line);
    if (open) {
      if (fence && fence[1]!.trim() === "") {
        out.push({ info: open.info, line: open.line, body: open.body.join("\n") });
        open = undefined;
      } else open.body.push(line);
    } else if (fence) open = { info: fence[1]!.trim(), line: i + 1, body: [] };
  });
  return out;
}

/** The text outside code fences, each fenced line blanked so that line numbers stay. */
export function prose(text: string): string {
  let inFence = false;
  return text
    .split("\n")
    .map((line) => {
      if (/^```/.test(line)) {
        inFence = !inFence;
        return "";
      }
      return inFence ? "" : line;
    })
    .join("\n");
}

export interface Link {
  target: string;
  line: number;
}

/** Markdown links `[text](target)` in prose, outside inline code. */
export function links(text: string): Link[] {
  const out: Link[] = [];
  prose(text)
    .split("\n")
    .forEach((line, i) => {
      const withoutCode = line.replace(/`[^`]*`/g, "");
      for (const match of withoutCode.matchAll(/\]\(([^)\s]+)\)/g)) out.push({ target: match[1]!, line: i + 1 });
    });
  return out;
}

/** Inline code spans in prose (`like this`), with their lines. */
export function codeSpans(text: string): Array<{ code: string; line: number }> {
  const out: Array<{ code: string; line: number }> = [];
  prose(text)
    .split("\n")
    .forEach((line, i) => {
      for (const match of line.matchAll(/`([^`]+)`/g)) out.push({ code: match[1]!, line: i + 1 });
    });
  return out;
}

/** The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of prose(text).split("\n")) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const slug = heading[1]!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    out.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return out;
}
