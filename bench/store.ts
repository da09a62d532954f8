/**
 * What checking a store file when it opens costs: `Store.open` of a file of about 64 MB with
 * SQLite's quick_check (the default) against the same open without it (`quickCheck: false`), and
 * the check's cost per MB of store. Also what a full integrity_check would cost, for comparison.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Store } from "../host/store/index.js";
import type { BenchRow } from "./row.js";

const TARGET_BYTES = 64 * 1024 * 1024;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function timeOpen(file: string, quickCheck: boolean): number {
  const started = performance.now();
  Store.open({ path: file, quickCheck }).close();
  return performance.now() - started;
}

export async function runStoreBench(): Promise<BenchRow[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-bench-store-"));
  const file = path.join(dir, "big.db");
  try {
    const store = Store.open({ path: file });
    const attributes = { name: "Contoso", description: "x".repeat(1_500), revenue: { $type: "Money", value: 1 } };
    for (let batch = 0; statSync(file).size + (statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0) < TARGET_BYTES; batch++) {
      store.transaction(() => {
        for (let i = 0; i < 2_000; i++) store.insertRecord("account", `${String(batch).padStart(8, "0")}-0000-4000-8000-${String(i).padStart(12, "0")}`, attributes);
      });
    }
    store.db.pragma("wal_checkpoint(TRUNCATE)");
    store.close();
    const megabytes = statSync(file).size / (1024 * 1024);
    const rounds = 7;
    const unchecked: number[] = [];
    const checked: number[] = [];
    for (let i = 0; i < rounds; i++) {
      unchecked.push(timeOpen(file, false));
      checked.push(timeOpen(file, true));
    }
    const integrity = Store.open({ path: file, quickCheck: false });
    const started = performance.now();
    integrity.db.pragma("integrity_check");
    const integrityMs = performance.now() - started;
    integrity.close();
    const [withCheck, without] = [median(checked), median(unchecked)];
    return [
      { name: `Store.open of a ${megabytes.toFixed(0)} MB store with quick_check (median of ${rounds})`, value: withCheck, unit: "ms", baseline: `${without.toFixed(1)} ms without the check`, ratio: withCheck / without },
      { name: "quick_check's cost per MB of store", value: (withCheck - without) / megabytes, unit: "ms/MB", baseline: `integrity_check: ${(integrityMs / megabytes).toFixed(2)} ms/MB`, ratio: (withCheck - without) / integrityMs },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
