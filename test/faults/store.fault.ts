/**
 * Fault suite: the store under pressure from outside. Six hosts in processes of their own share one
 * file with a 50 ms busy timeout while a seventh process holds its write lock for two seconds; a
 * host's store fills a small filesystem of its own. Every request settles (never a wedge), fails
 * only with a typed error, and the file holds exactly what succeeded.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { fork } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Store } from "../../dist/host/testing/internal.js";
import { buildPlugins } from "../fixtures/pipeline/support.js";
import { repo } from "../helpers/cli.js";
import { holdWriteLock, inSmallFilesystem } from "../helpers/faults.js";

let plugins: Awaited<ReturnType<typeof buildPlugins>>;
let dir: string;

beforeAll(async () => {
  plugins = await buildPlugins("plugbox-fault-store-");
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-fault-store-db-"));
});

afterAll(() => {
  plugins?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const hostModule = JSON.stringify(path.join(repo, "dist/host/index.js"));
const sdkModule = JSON.stringify(path.join(repo, "dist/sdk/index.js"));
const testHooks = JSON.stringify(path.join(repo, "dist/host/testing/internal.js"));

/**
 * A host that makes `requests` Creates one after another and reports how each ended; a request
 * that has not settled 15 s after it began is reported as hung (what a wedged host did).
 */
const requesterScript = (bundle: string) => `
import { createHost } from ${hostModule};
import { Entity } from ${sdkModule};
const [db, requests, busyTimeoutMs] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const host = await createHost({
  db, busyTimeoutMs, runJobs: false,
  manifest: { bundles: { p: { path: ${JSON.stringify(bundle)} } }, steps: [{ bundle: "p", type: "Tracer", message: "Create", entity: "account", stage: 10 }], settings: { traceLogSetting: "All" } },
  runtimeOptions: { workers: 1, prewarmIsolates: 1 },
});
process.send({ ready: true });
await new Promise((resolve) => process.once("message", resolve));
const outcomes = { ok: 0, hung: 0, codes: {} };
for (let i = 0; i < requests; i++) {
  const settled = host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: process.pid + "-" + i }) } }).then(() => "ok", (error) => error.code ?? String(error));
  const outcome = await Promise.race([settled, new Promise((resolve) => setTimeout(() => resolve("hung"), 15_000))]);
  if (outcome === "ok") outcomes.ok++;
  else if (outcome === "hung") { outcomes.hung++; break; }
  else outcomes.codes[outcome] = (outcomes.codes[outcome] ?? 0) + 1;
}
process.send(outcomes, () => process.exit(0));
`;

describe("fault: the store held and filled from outside", () => {
  it("six hosts in processes of their own on one file (busy timeout 50 ms) while another process holds the write lock for 2 s: every request settles, ok or STORE_BUSY, and the file holds exactly the ok ones", { timeout: 120_000 }, async () => {
    const db = path.join(dir, "shared.db");
    Store.open({ path: db }).close();
    const script = path.join(dir, "requester.mjs");
    writeFileSync(script, requesterScript(plugins.bundle));
    const hosts = Array.from({ length: 6 }, () => fork(script, [db, "40", "50"], { stdio: ["ignore", "ignore", "inherit", "ipc"] }));
    const reports = hosts.map(
      (child) =>
        new Promise<{ ok: number; hung: number; codes: Record<string, number> }>((resolve, reject) => {
          child.on("message", (message: { ready?: boolean }) => {
            if (!message.ready) resolve(message as never);
          });
          child.once("exit", (code) => reject(new Error(`a host process exited with ${code} before it reported`)));
        }),
    );
    await Promise.all(hosts.map((child) => new Promise<void>((resolve) => child.once("message", () => resolve()))));
    const holder = await holdWriteLock(db);
    for (const child of hosts) child.send("go");
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // the lock is held this long, on purpose
    await holder.release();
    const outcomes = await Promise.all(reports);
    expect(outcomes.map((o) => o.hung)).toEqual([0, 0, 0, 0, 0, 0]);
    for (const o of outcomes) expect(Object.keys(o.codes).filter((code) => code !== "STORE_BUSY")).toEqual([]);
    expect(outcomes.reduce((sum, o) => sum + Object.values(o.codes).reduce((a, b) => a + b, 0), 0)).toBeGreaterThan(0);
    const ok = outcomes.reduce((sum, o) => sum + o.ok, 0);
    expect(ok).toBeGreaterThan(0);
    const store = Store.open({ path: db });
    try {
      expect((store.db.prepare("SELECT count(*) AS n FROM records WHERE entity = 'account'").get() as { n: number }).n).toBe(ok);
    } finally {
      store.close();
    }
  });

  it("a full disk (a 2 MB tmpfs): requests fail with STORE_FULL, each at once, the host stays up, and once space is freed the next request works; the file holds exactly the ok ones", { timeout: 120_000 }, async () => {
    const script = path.join(dir, "fill.mjs");
    writeFileSync(
      script,
      `
import { rmSync, writeFileSync } from "node:fs";
import { createHost } from ${hostModule};
import { Store } from ${testHooks};
import { Entity } from ${sdkModule};
const mount = process.argv[2];
// Room to free later: a file that takes a quarter of the disk.
writeFileSync(mount + "/spare", Buffer.alloc(512 * 1024));
const host = await createHost({
  db: mount + "/full.db", runJobs: false,
  manifest: { bundles: { p: { path: ${JSON.stringify(plugins.bundle)} } }, steps: [{ bundle: "p", type: "Tracer", message: "Create", entity: "account", stage: 10 }], settings: { traceLogSetting: "All" } },
  runtimeOptions: { workers: 1, prewarmIsolates: 1 },
});
const report = { ok: 0, codes: {}, hung: 0, afterFree: null, stored: null };
const create = (i) => {
  const settled = host.execute({ requestName: "Create", parameters: { Target: new Entity("account", undefined, { name: "a" + i, description: "x".repeat(4000) }) } }).then(() => "ok", (error) => error.code ?? String(error));
  return Promise.race([settled, new Promise((resolve) => setTimeout(() => resolve("hung"), 15_000))]);
};
let fullInARow = 0;
for (let i = 0; i < 2000 && fullInARow < 3; i++) {
  const outcome = await create(i);
  if (outcome === "ok") { report.ok++; fullInARow = 0; continue; }
  if (outcome === "hung") { report.hung++; break; }
  report.codes[outcome] = (report.codes[outcome] ?? 0) + 1;
  if (outcome === "STORE_FULL") fullInARow++;
}
rmSync(mount + "/spare");
const after = await create("after");
report.afterFree = after;
if (after === "ok") report.ok++;
await host.close();
const store = Store.open({ path: mount + "/full.db" });
report.stored = store.db.prepare("SELECT count(*) AS n FROM records WHERE entity = 'account'").get().n;
store.close();
console.log(JSON.stringify(report));
`,
    );
    const mountPoint = path.join(dir, "small-disk");
    mkdirSync(mountPoint, { recursive: true });
    const ran = await inSmallFilesystem(script, mountPoint, 2048);
    expect(ran.code, ran.stderr).toBe(0);
    const report = JSON.parse(ran.stdout.trim().split("\n").at(-1)!) as { ok: number; codes: Record<string, number>; hung: number; afterFree: string; stored: number };
    expect(report.hung).toBe(0);
    expect(report.ok).toBeGreaterThan(10);
    expect(report.codes.STORE_FULL).toBeGreaterThanOrEqual(3);
    expect(Object.keys(report.codes).filter((code) => code !== "STORE_FULL")).toEqual([]);
    expect(report.afterFree).toBe("ok");
    expect(report.stored).toBe(report.ok);
  });
});
