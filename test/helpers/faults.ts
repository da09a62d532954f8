/**
 * Real faults for tests: a store file damaged in the middle, another process holding a store's
 * write lock, `plugbox broker` in a process of its own that can be killed and started again on the
 * same port, and a small filesystem of its own (a tmpfs in a private mount namespace).
 */
import { execFile, fork, spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { bin, repo } from "./cli.js";

/**
 * Overwrites the middle third of a store file's pages with a pattern (its WAL checkpointed first,
 * so the pages are in the file): SQLite's quick_check then reports the file damaged.
 */
export function damageStore(file: string): void {
  const db = new Database(file);
  db.pragma("wal_checkpoint(TRUNCATE)");
  const pageSize = db.pragma("page_size", { simple: true }) as number;
  db.close();
  const pages = Math.floor(statSync(file).size / pageSize);
  if (pages < 6) throw new Error(`${file} has ${pages} pages; put some records in it first`);
  const fd = openSync(file, "r+");
  try {
    const junk = Buffer.alloc(pageSize, 0xa5);
    for (let page = Math.floor(pages / 3); page < Math.floor((2 * pages) / 3); page++) writeSync(fd, junk, 0, pageSize, page * pageSize);
  } finally {
    closeSync(fd);
  }
}

/** Another process holding a store file's write lock (a write transaction it keeps open) until `release()`. */
export interface LockHolder {
  pid: number;
  release(): Promise<void>;
}

const holderScript = `
const Database = require(${JSON.stringify(path.join(repo, "node_modules/better-sqlite3"))});
const db = new Database(process.argv[2]);
db.pragma("journal_mode = WAL");
db.exec("BEGIN IMMEDIATE");
process.send("held");
process.once("message", () => { db.exec("ROLLBACK"); db.close(); process.disconnect(); });
`;

export async function holdWriteLock(file: string): Promise<LockHolder> {
  const script = path.join(os.tmpdir(), `plugbox-lock-holder-${process.pid}.cjs`);
  writeFileSync(script, holderScript);
  const child = fork(script, [file], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
  await new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code) => reject(new Error(`the lock holder exited with ${code}`)));
  });
  return {
    pid: child.pid!,
    async release() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.send("release");
      await exited;
    },
  };
}

/** A free TCP port on 127.0.0.1 (for a broker that must come back on the same one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** `plugbox broker` in a process of its own. */
export interface BrokerProcess {
  process: ChildProcess;
  connectionString: string;
  /** Kills it at once (SIGKILL): what it held in memory is gone, as when a broker dies. */
  kill(): Promise<void>;
}

export async function startBrokerProcess(args: string[]): Promise<BrokerProcess> {
  const child = spawn(process.execPath, [bin, "broker", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const connectionString = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /ready: (\S+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once("exit", (code) => reject(new Error(`the broker exited with ${code}: ${stderr}`)));
  });
  return {
    process: child,
    connectionString,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Output of a command, and how it ended. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a Node script in a mount namespace of its own where `mountPoint` is a fresh tmpfs of
 * `sizeKb` (`unshare --mount`, as root; `--map-root-user` otherwise): the filesystem vanishes with
 * the process, so no test leaves a mount behind. The script gets the mount point as argv[2].
 */
export function inSmallFilesystem(script: string, mountPoint: string, sizeKb: number, env: Record<string, string> = {}, timeoutMs = 120_000): Promise<Ran> {
  const asRoot = process.getuid?.() === 0;
  const shell = `mount -t tmpfs -o size=${sizeKb}k plugbox-fault ${JSON.stringify(mountPoint)} && exec ${JSON.stringify(process.execPath)} ${JSON.stringify(script)} ${JSON.stringify(mountPoint)}`;
  const args = [...(asRoot ? [] : ["--map-root-user"]), "--mount", "--propagation", "private", "sh", "-c", shell];
  return new Promise((resolve) => {
    execFile("unshare", args, { cwd: repo, timeout: timeoutMs, env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof (error as { code?: unknown }).code === "number" ? ((error as { code: number }).code) : 1) : 0, stdout, stderr });
    });
  });
}

/** The processes whose parent is `pid` (from /proc). */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/** True while the process runs (a zombie, exited but not yet reaped by whoever adopted it, does not). */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}
