import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bin, plugbox, repo } from "../../helpers/cli.js";
import { testPostgres } from "../../helpers/stores.js";

let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "plugbox-cli-serve-"));
  cpSync(path.join(repo, "samples/pipeline"), dir, { recursive: true, filter: (src) => !/\.db|bundle\.js$/.test(src) });
  const built = await plugbox(["build", "samples/pipeline/plugins.ts", "-o", path.join(dir, "accounts.bundle.js")], repo);
  expect(built.code, built.stderr).toBe(0);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("plugbox serve", () => {
  it("listens on a free port, answers, and on SIGTERM finishes the request in flight, stops its job runner and exits 0", async () => {
    const child = spawn(process.execPath, [bin, "serve", "--manifest", "plugbox.json", "--db", "serve.db", "--port", "0"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    let stdout = "";
    let stderr = "";
    const printed = (pattern: RegExp, stream: "stdout" | "stderr") =>
      new Promise<RegExpExecArray>((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(stream === "stdout" ? stdout : stderr);
          if (match) resolve(match);
        };
        child[stream].on("data", check);
        child.once("exit", (code) => reject(new Error(`plugbox serve exited with ${code}: ${stderr}`)));
        check();
      });
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));

    const url = (await printed(/listening: (http:\/\/127\.0\.0\.1:\d+)/, "stdout"))[1]!;
    expect((await fetch(`${url}/health`)).status).toBe(200);

    // A request the server has begun to read when SIGTERM arrives: half its body before, half after.
    const body = JSON.stringify({ requestName: "Create", parameters: { Target: { $type: "Entity", logicalName: "account", attributes: { name: "Contoso" } } } });
    const answered = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(`${url}/execute`, { method: "POST", headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } }, (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, text }));
      });
      req.on("error", reject);
      req.write(body.slice(0, 20));
      req.once("socket", (socket) =>
        socket.once("connect", () => {
          setImmediate(async () => {
            await new Promise((r) => req.write("", r));
            // Answered after the server has read what this socket sent first: the request's headers are in.
            expect((await fetch(`${url}/health`)).status).toBe(200);
            child.kill("SIGTERM");
            await printed(/SIGTERM: finishing the requests in flight/, "stderr");
            req.end(body.slice(20));
          });
        }),
      );
    });
    const result = await answered;
    expect(result.status, result.text).toBe(200);
    expect(JSON.parse(result.text)).toMatchObject({ response: { responseName: "Create" }, journal: { outcome: "ok" } });
    expect(await exited).toBe(0);
    expect(stdout).toContain("stopped");

    // The store kept the record, and its async step's job, which the next host can run.
    const exported = await plugbox(["data", "export", "--db", "serve.db", "--entity", "account"], dir);
    expect(exported.stdout).toContain("ACC-CON-");
  });

  it("--port taken by another server: a usage error naming the port, exit 2", async () => {
    const first = spawn(process.execPath, [bin, "serve", "--manifest", "plugbox.json", "--port", "0"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number | null>((resolve) => first.once("exit", resolve));
    try {
      const port = await new Promise<string>((resolve) => {
        let out = "";
        first.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString();
          const match = /listening: http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
          if (match) resolve(match[1]!);
        });
      });
      const second = await plugbox(["serve", "--manifest", "plugbox.json", "--port", port], dir);
      expect(second.code).toBe(2);
      expect(second.stderr).toContain(`error [SERVE_PORT_IN_USE]: port ${port} is in use`);
    } finally {
      first.kill("SIGINT");
      expect(await exited).toBe(0);
    }
  });

  it("a PostgreSQL store that cannot be used is one line naming the problem and the fix, exit 2, before the server listens", async () => {
    const server = await testPostgres();
    const unreachable = server.url("plugbox").replace(`:${server.port}/`, ":1/");
    const wrongPassword = server.url("postgres").replace(`:${server.password}@`, ":not-it@");
    const cases: Array<[string, string, string]> = [
      [unreachable, "STORE_UNREACHABLE", "start it, or fix the host and port"],
      [wrongPassword, "STORE_AUTH_FAILED", "fix the user and password"],
      [server.url("no_such_database"), "STORE_UNREACHABLE", "createdb"],
    ];
    for (const [db, code, fix] of cases) {
      const run = await plugbox(["serve", "--manifest", "plugbox.json", "--port", "0", "--db", db], dir);
      expect.soft(run.code, db).toBe(2);
      expect.soft(run.stderr, db).toMatch(new RegExp(`^plugbox: error \\[${code}\\]: .*${fix}`));
      expect.soft(run.stdout, db).not.toContain("listening");
      expect.soft(run.stderr, db).not.toContain(server.password);
    }
  });

  it("data backup and restore of a PostgreSQL store: a usage error naming pg_dump or pg_restore, exit 2", async () => {
    const db = (await testPostgres()).url("postgres");
    const backup = await plugbox(["data", "backup", "--db", db, "-o", path.join(dir, "b.db")], dir);
    expect(backup.code).toBe(2);
    expect(backup.stderr).toMatch(/CLI_USAGE.*pg_dump/);
    const restore = await plugbox(["data", "restore", path.join(dir, "b.db"), "--db", db], dir);
    expect(restore.code).toBe(2);
    expect(restore.stderr).toMatch(/CLI_USAGE.*pg_restore/);
  });
});
