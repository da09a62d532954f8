/**
 * Typed errors at every edge: a table of faults of the environment and bad inputs, each run through
 * the real `plugbox` bin, each answered with its exit code and its error code, never with
 * "internal error" and a stack trace.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plugbox, repo, type CliRun } from "../../helpers/cli.js";
import { damageStore, freePort, holdWriteLock, inSmallFilesystem, startBrokerProcess, type BrokerProcess } from "../../helpers/faults.js";

let dir: string;
let broker: BrokerProcess;

/** A request nested `depth` levels deep inside a Target attribute. */
function nested(depth: number): string {
  return `{"requestName":"Create","parameters":{"Target":{"$type":"Entity","logicalName":"account","attributes":{"deep":${"[".repeat(depth)}${"]".repeat(depth)}}}}}`;
}

const request = (attributes: Record<string, unknown>) => JSON.stringify({ requestName: "Create", parameters: { Target: { $type: "Entity", logicalName: "account", attributes: { name: "Contoso", ...attributes } } } });

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-cli-errors-"));
  cpSync(path.join(repo, "samples/pipeline"), dir, { recursive: true, filter: (src) => !/\.db|bundle\.js$/.test(src) });
  const built = await plugbox(["build", "samples/pipeline/plugins.ts", "-o", path.join(dir, "accounts.bundle.js")], repo);
  expect(built.code, built.stderr).toBe(0);
  writeFileSync(path.join(dir, "deep.json"), nested(20_000));
  writeFileSync(path.join(dir, "deep-target.json"), `{"logicalName":"account","attributes":{"deep":${"[".repeat(20_000)}${"]".repeat(20_000)}}}`);
  writeFileSync(path.join(dir, "huge.json"), "");
  truncateSync(path.join(dir, "huge.json"), 65 * 1024 * 1024); // sparse: no disk, no time
  writeFileSync(path.join(dir, "money-lots.json"), request({ revenue: { $type: "Money", value: "lots" } }));
  writeFileSync(path.join(dir, "optionset-seven.json"), request({ industrycode: { $type: "OptionSetValue", value: "seven" } }));
  writeFileSync(path.join(dir, "bad-id-target.json"), JSON.stringify({ logicalName: "account", id: "not-a-guid", attributes: { name: "x" } }));
  const manifest = JSON.parse(readFileSync(path.join(dir, "plugbox.json"), "utf8"));
  writeFileSync(path.join(dir, "missing-type.json"), JSON.stringify({ ...manifest, bundles: { accounts: { ...manifest.bundles.accounts, types: ["AccountNumbering", "WelcomeTask", "NoSuchPlugin"] } } }));
  const withStringImage = structuredClone(manifest);
  withStringImage.steps[1].images[0].attributes = "name, accountnumber";
  writeFileSync(path.join(dir, "string-image.json"), JSON.stringify(withStringImage));
  // A store with enough pages to damage in the middle, and one truncated to nothing.
  const records = { account: Array.from({ length: 200 }, (_, i) => ({ id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`, attributes: { name: `Account ${i}`.padEnd(300, ".") } })) };
  writeFileSync(path.join(dir, "records.json"), JSON.stringify(records));
  const imported = await plugbox(["data", "import", "records.json", "--db", "damaged.db"], dir);
  expect(imported.code, imported.stderr).toBe(0);
  damageStore(path.join(dir, "damaged.db"));
  writeFileSync(path.join(dir, "empty.db"), "");
  const backedUp = await plugbox(["data", "import", "records.json", "--db", "for-backup.db"], dir);
  expect(backedUp.code, backedUp.stderr).toBe(0);
  expect((await plugbox(["data", "backup", "--db", "for-backup.db", "-o", "damaged-backup.db"], dir)).code).toBe(0);
  damageStore(path.join(dir, "damaged-backup.db"));
  broker = await startBrokerProcess(["--port", "0"]);
}, 120_000);

afterAll(async () => {
  await broker?.kill();
  rmSync(dir, { recursive: true, force: true });
});

interface Row {
  /** What goes wrong. */
  fault: string;
  run: () => Promise<CliRun>;
  exit: number;
  code: string;
  /** Something the message must say (the fix, the path). */
  says?: string | RegExp;
}

const cli = (...args: string[]) => () => plugbox(args, dir);

/**
 * `exec` on a store in a filesystem of 1 MB that is full: the store is made first (and grows to its
 * size), then a file fills the rest of the disk, then a request needs a new page.
 */
async function execOnFullDisk(): Promise<CliRun> {
  const script = path.join(dir, "full-disk.mjs");
  writeFileSync(
    script,
    `import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
const mount = process.argv[2];
const cli = (args) => spawnSync(process.execPath, [${JSON.stringify(path.join(repo, "dist/host/cli/main.js"))}, ...args], { cwd: ${JSON.stringify(dir)}, encoding: "utf8" });
const first = cli(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--db", mount + "/full.db"]);
if (first.status !== 0) { console.log(JSON.stringify({ code: 99, stdout: first.stdout, stderr: "setup: " + first.stderr })); process.exit(0); }
try { for (let i = 0; ; i++) writeFileSync(mount + "/filler-" + i, Buffer.alloc(64 * 1024)); } catch {}
try { for (let i = 0; ; i++) writeFileSync(mount + "/crumb-" + i, Buffer.alloc(4096)); } catch {}
const full = cli(["exec", "--manifest", "plugbox.json", "--request", "money-ok.json", "--db", mount + "/full.db"]);
console.log(JSON.stringify({ code: full.status, stdout: full.stdout, stderr: full.stderr }));
`,
  );
  writeFileSync(path.join(dir, "money-ok.json"), request({ description: "x".repeat(60_000) }));
  const mountPoint = path.join(dir, "small-disk");
  mkdirSync(mountPoint, { recursive: true });
  const ran = await inSmallFilesystem(script, mountPoint, 1024);
  if (ran.code !== 0) return { code: 98, stdout: ran.stdout, stderr: `the small filesystem could not be set up: ${ran.stderr}` };
  return JSON.parse(ran.stdout.trim().split("\n").at(-1)!) as CliRun;
}

async function execWhileAnotherProcessHoldsTheStore(): Promise<CliRun> {
  const db = path.join(dir, "held.db");
  const made = await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--db", db], dir);
  if (made.code !== 0) return made;
  const holder = await holdWriteLock(db);
  try {
    return await plugbox(["exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--db", db], dir);
  } finally {
    await holder.release();
  }
}

const rows: Row[] = [
  { fault: "exec while another process holds the store's write lock (SQLITE_BUSY)", run: execWhileAnotherProcessHoldsTheStore, exit: 5, code: "STORE_BUSY", says: "another process held the write lock" },
  { fault: "exec on a full disk (SQLITE_FULL, once hidden by 'cannot rollback')", run: execOnFullDisk, exit: 5, code: "STORE_FULL", says: "the disk is full" },
  { fault: "exec with a request nested 20,000 deep", run: cli("exec", "--manifest", "plugbox.json", "--request", "deep.json"), exit: 2, code: "INPUT_TOO_DEEP", says: "more than 64 levels" },
  { fault: "run --target nested 20,000 deep", run: cli("run", "accounts.bundle.js", "--type", "AccountNumbering", "--target", "deep-target.json"), exit: 2, code: "INPUT_TOO_DEEP" },
  { fault: "exec with a request file over 64 MB", run: cli("exec", "--manifest", "plugbox.json", "--request", "huge.json"), exit: 2, code: "INPUT_TOO_LARGE", says: "split it" },
  { fault: "data export -o into a folder that does not exist", run: cli("data", "export", "--db", "for-backup.db", "-o", "no/such/folder/out.json"), exit: 2, code: "OUTPUT_NOT_WRITABLE", says: "does not exist; create it first" },
  { fault: "jobs list on a store damaged in the middle", run: cli("jobs", "list", "--db", "damaged.db"), exit: 5, code: "STORE_CORRUPT", says: "plugbox data restore" },
  { fault: "data export on a store damaged in the middle", run: cli("data", "export", "--db", "damaged.db"), exit: 5, code: "STORE_CORRUPT", says: "quick_check" },
  { fault: "exec on a store damaged in the middle (it exited 0)", run: cli("exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--db", "damaged.db"), exit: 5, code: "STORE_CORRUPT" },
  { fault: "data export without the check, reading the damage", run: cli("data", "export", "--db", "damaged.db", "--no-store-check"), exit: 5, code: "STORE_CORRUPT", says: "database disk image is malformed" },
  { fault: "exec on a store file truncated to 0 bytes", run: cli("exec", "--manifest", "plugbox.json", "--request", "create-account.json", "--db", "empty.db"), exit: 5, code: "STORE_CORRUPT", says: "empty file (0 bytes)" },
  { fault: "data restore from a damaged backup", run: cli("data", "restore", "damaged-backup.db", "--db", "restored.db"), exit: 5, code: "STORE_BACKUP_FAILED", says: "damaged" },
  { fault: "data backup into a folder that does not exist", run: cli("data", "backup", "--db", "for-backup.db", "-o", "no/such/folder/b.db"), exit: 5, code: "STORE_BACKUP_FAILED", says: "does not exist; create it first" },
  { fault: "exec storing a Money whose value is not a number", run: cli("exec", "--manifest", "plugbox.json", "--request", "money-lots.json"), exit: 2, code: "INPUT_INVALID_JSON", says: "a Money's value must be a finite number" },
  { fault: "exec storing an OptionSetValue whose value is not an integer", run: cli("exec", "--manifest", "plugbox.json", "--request", "optionset-seven.json"), exit: 2, code: "INPUT_INVALID_JSON", says: "an OptionSetValue's value must be an integer" },
  { fault: "run with a target whose id is not a Guid", run: cli("run", "accounts.bundle.js", "--type", "AccountNumbering", "--target", "bad-id-target.json"), exit: 2, code: "INPUT_INVALID_JSON", says: '"id" must be a Guid' },
  { fault: "a manifest whose types list an export the bundle does not have", run: cli("exec", "--manifest", "missing-type.json", "--request", "create-account.json"), exit: 2, code: "MANIFEST_INVALID", says: 'bundles.accounts.types[2]: the bundle' },
  { fault: "a manifest whose image attributes are a string", run: cli("exec", "--manifest", "string-image.json", "--request", "create-account.json"), exit: 2, code: "MANIFEST_INVALID", says: "images[0].attributes: must be an array" },
  { fault: "jobs run with a lease too short to mean anything", run: cli("jobs", "run", "--manifest", "plugbox.json", "--lease-ms", "5"), exit: 2, code: "CLI_USAGE" },
  {
    fault: "listen with the broker down, until --timeout",
    run: async () => plugbox(["listen", "--connection-string", `Endpoint=sb://127.0.0.1:${await freePort()};SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true;`, "--queue", "q", "--timeout", "1500"], dir),
    exit: 5,
    code: "LISTEN_UNREACHABLE",
    says: "could not be reached",
  },
  { fault: "listen on a queue the namespace does not have", run: () => plugbox(["listen", "--connection-string", broker.connectionString, "--queue", "no-such-queue", "--timeout", "5000"], dir), exit: 2, code: "LISTEN_ENTITY_NOT_FOUND", says: "has no queue no-such-queue" },
  { fault: "listen on an event hub the namespace does not have", run: () => plugbox(["listen", "--connection-string", broker.connectionString, "--event-hub", "no-such-hub", "--timeout", "5000"], dir), exit: 2, code: "LISTEN_ENTITY_NOT_FOUND", says: "has no event hub no-such-hub" },
];

describe("typed errors at every edge: each fault gets its exit code and error code, never a stack trace", () => {
  for (const row of rows) {
    it(`${row.fault}: exit ${row.exit}, ${row.code}`, { timeout: 60_000 }, async () => {
      const ran = await row.run();
      const shown = `${ran.stdout}\n${ran.stderr}`;
      expect(shown).not.toContain("internal error");
      expect(shown).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
      expect(ran.stderr).toMatch(new RegExp(`error \\[${row.code}\\]`));
      expect(ran.code, shown).toBe(row.exit);
      if (row.says !== undefined) expect(ran.stderr).toMatch(typeof row.says === "string" ? new RegExp(row.says.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : row.says);
    });
  }
});
