#!/usr/bin/env node
// Walks the relative imports (type-only ones too) of the .ts modules in a folder and prints every
// import cycle among them; exits 1 when there is one. Usage: node scripts/import-cycles.mjs host/broker
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

const dir = process.argv[2] ?? "host/broker";
const files = readdirSync(dir).filter((f) => f.endsWith(".ts"));
const SPECIFIER = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["'](\.[^"']+)["']/g;
const edges = new Map();
for (const file of files) {
  const text = readFileSync(path.join(dir, file), "utf8");
  const targets = new Set();
  for (const [, spec] of text.matchAll(SPECIFIER)) {
    const target = path.relative(dir, path.join(dir, spec)).replace(/\.js$/, ".ts");
    if (files.includes(target)) targets.add(target);
  }
  edges.set(file, [...targets].sort());
}

const cycles = [];
const state = new Map();
const stack = [];
function visit(file) {
  state.set(file, "open");
  stack.push(file);
  for (const next of edges.get(file)) {
    if (state.get(next) === "open") cycles.push([...stack.slice(stack.indexOf(next)), next].join(" -> "));
    else if (!state.has(next)) visit(next);
  }
  stack.pop();
  state.set(file, "done");
}
for (const file of files) if (!state.has(file)) visit(file);

for (const [file, targets] of edges) console.log(`${file} -> ${targets.join(", ") || "(none)"}`);
console.log(cycles.length === 0 ? `no import cycles among ${files.length} modules in ${dir}` : `${cycles.length} import cycle(s):\n${cycles.join("\n")}`);
process.exitCode = cycles.length === 0 ? 0 : 1;
