#!/usr/bin/env node
/**
 * `npm run conformance -- <samples-dir>`: runs the Azure SDK for JS's published samples, unchanged,
 * against `plugbox broker` (test/conformance/azure-sdk-samples.conformance.ts). The samples are not
 * committed here (docs/broker.md, "The Azure SDK for JS's samples"); the folder must hold every file
 * test/fixtures/azure-sdk-samples.json lists, at the path it names.
 *
 * `node scripts/azure-sdk-samples.mjs --urls` prints, one a line, each sample's raw URL at its
 * recorded commit and the path it goes to in the folder, for fetching them.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const manifest = JSON.parse(readFileSync(path.join(repo, "test/fixtures/azure-sdk-samples.json"), "utf8"));
const args = process.argv.slice(2);

function fail(message) {
  process.stderr.write(`azure-sdk-samples: ${message}\n`);
  process.exit(2);
}

if (args[0] === "--urls") {
  for (const sample of manifest.samples) {
    process.stdout.write(`https://raw.githubusercontent.com/${manifest.repository}/${sample.commit}/${sample.source} ${sample.file}\n`);
  }
  process.exit(0);
}

if (args.length !== 1 || args[0].startsWith("-")) {
  fail("usage: npm run conformance -- <samples-dir>   (the folder holding the samples; `node scripts/azure-sdk-samples.mjs --urls` lists where to fetch them, docs/broker.md says how)");
}
const folder = path.resolve(args[0]);
if (!existsSync(folder) || !statSync(folder).isDirectory()) {
  fail(`${folder} is not a directory. Fetch the samples into it first (docs/broker.md, "The Azure SDK for JS's samples"), then run again.`);
}
const missing = manifest.samples.filter((sample) => !existsSync(path.join(folder, sample.file))).map((sample) => sample.file);
if (missing.length > 0) {
  fail(`${folder} lacks ${missing.length} of the ${manifest.samples.length} samples: ${missing.join(", ")}. Fetch them as docs/broker.md says, then run again.`);
}

const vitest = path.join(repo, "node_modules/vitest/vitest.mjs");
const child = spawn(process.execPath, [vitest, "run", "--config", path.join(repo, "vitest.conformance.config.ts")], {
  cwd: repo,
  stdio: "inherit",
  env: { ...process.env, PLUGBOX_AZURE_SDK_SAMPLES: folder },
});
child.once("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
