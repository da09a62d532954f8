#!/usr/bin/env bash
# `npm run bench:nodes` (default: Node 20 and 24) or `npm run bench:nodes -- 20 24 26`:
# runs `npm run bench -- sandbox pipeline` once on each Node and prints the ratios side by side.
# The machine's Node runs in this checkout; any other gets a copy of the working tree in
# $PLUGBOX_NODE_CACHE/bench-<major> with its own `npm ci` (native addons built for it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(20 24)
cache="${PLUGBOX_NODE_CACHE:-$HOME/.cache/plugbox-ci}"
mine=$(node -p 'process.versions.node.split(".")[0]')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for major in "${majors[@]}"; do
  if [ "$major" = "$mine" ]; then
    dir=$root
  else
    dir="$cache/bench-$major"
    scripts/fresh-copy.sh "$dir"
    echo "bench-nodes: npm ci with Node $major in $dir" >&2
    (cd "$dir" && "$root/scripts/with-node.sh" "$major" npm ci --loglevel=error >&2)
  fi
  echo "bench-nodes: npm run bench -- sandbox pipeline with Node $major" >&2
  cut -d' ' -f1 /proc/loadavg > "$out/$major.load"
  (cd "$dir" && "$root/scripts/with-node.sh" "$major" npm run --silent bench -- sandbox pipeline) | tee "$out/$major.md" >&2
done
# Joins the tables on suite and benchmark name: | benchmark | ratio on each Node | value on each Node |
node - "$out" "${majors[@]}" <<'JS'
const fs = require("node:fs");
const [dir, ...majors] = process.argv.slice(2);
const tables = majors.map((major) => {
  const rows = new Map();
  let suite = "";
  let versions = "";
  for (const line of fs.readFileSync(`${dir}/${major}.md`, "utf8").split("\n")) {
    const heading = /^## (\w+)/.exec(line);
    if (heading) suite = heading[1];
    if (line.startsWith("node v")) versions = line.split(",")[0].slice(5);
    const cells = line.split("|").slice(1, -1).map((c) => c.trim());
    if (cells.length === 5 && cells[0] !== "benchmark" && !cells[0].startsWith("---")) rows.set(`${suite}: ${cells[0]}`, { value: cells[1], ratio: cells[3] });
  }
  return { major, versions, rows, load: fs.readFileSync(`${dir}/${major}.load`, "utf8").trim() };
});
console.log(`| benchmark | ${tables.map((t) => `ratio, Node ${t.versions}`).join(" | ")} | ${tables.map((t) => `value, Node ${t.major}`).join(" | ")} |`);
console.log(`| --- | ${tables.map(() => "---:").join(" | ")} | ${tables.map(() => "---:").join(" | ")} |`);
for (const name of tables[0].rows.keys()) {
  const cells = tables.map((t) => t.rows.get(name));
  console.log(`| ${name} | ${cells.map((c) => c?.ratio ?? "–").join(" | ")} | ${cells.map((c) => c?.value ?? "–").join(" | ")} |`);
}
// Other work on the machine moves every figure; this says how busy it was when each Node's run began.
console.log(`\nload average (1 min) when each run began: ${tables.map((t) => `Node ${t.major} ${t.load}`).join(", ")}`);
JS
