/**
 * `npm run bench`: every benchmark, each figure with a ratio against a baseline measured in the
 * same run. Runs with --no-node-snapshot (the sandbox suite loads isolated-vm in this process).
 * `npm run bench -- sandbox web` runs only the suites named.
 */
import { runPipelineBench } from "./pipeline.js";
import { runSandboxBench } from "./sandbox.js";
import { runWebBench } from "./web.js";
import { runRelayBench } from "./relay.js";
import { runStoreBench } from "./store.js";
import { runOptionsBench } from "./options.js";
import { runTestHostBench } from "./test-host.js";
import { runScaleOutBench } from "./scale-out.js";
import type { BenchRow } from "./row.js";

type Row = BenchRow;

const suites: Record<string, () => Promise<Row[]>> = {
  sandbox: runSandboxBench,
  pipeline: () => runPipelineBench(),
  relay: () => runRelayBench(),
  store: () => runStoreBench(),
  options: () => runOptionsBench(),
  "test-host": () => runTestHostBench(),
  "scale-out": () => runScaleOutBench(),
  web: async () =>
    (await runWebBench()).map((r) => ({ name: r.name, value: r.value, unit: r.unit, baseline: `${Math.round(r.baseline)} ${r.unit}`, ratio: r.ratio, goal: "ratio ≤ 1.5" })),
};

function format(value: number): string {
  return value >= 100 ? Math.round(value).toLocaleString("en-US") : value.toFixed(2);
}

const wanted = process.argv.slice(2).filter((a) => a in suites);
for (const name of wanted.length > 0 ? wanted : Object.keys(suites)) {
  const started = performance.now();
  const rows = await suites[name]!();
  console.log(`\n## ${name} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`);
  console.log("| benchmark | value | baseline | ratio | goal |");
  console.log("| --- | ---: | --- | ---: | --- |");
  for (const row of rows) console.log(`| ${row.name} | ${format(row.value)} ${row.unit} | ${row.baseline} | ${row.ratio.toFixed(2)}x | ${row.goal ?? ""} |`);
}
console.log(`\nnode ${process.version}, ${(await import("node:os")).cpus().length} cores`);
